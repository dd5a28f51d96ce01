//! libFuzzer entry of the `api_key` target; the run body is `keygate_fuzz::api_key::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz::api_key::run(data));
