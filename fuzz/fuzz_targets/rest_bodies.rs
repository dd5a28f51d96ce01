//! libFuzzer entry of the `rest_bodies` target; the run body is `keygate_fuzz::rest_bodies::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz::rest_bodies::run(data));
