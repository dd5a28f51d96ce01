//! libFuzzer entry of the `config` target; the run body is `keygate_fuzz::config::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz::config::run(data));
