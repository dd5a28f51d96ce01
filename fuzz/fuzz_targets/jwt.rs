//! libFuzzer entry of the `jwt` target; the run body is `keygate_fuzz::jwt::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz::jwt::run(data));
