//! libFuzzer entry of the `policy` target; the run body is `keygate_fuzz::policy::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz::policy::run(data));
