//! libFuzzer entry of the `oauth_forms` target; the run body is `keygate_fuzz::oauth_forms::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz::oauth_forms::run(data));
