//! libFuzzer entry of the `envoy_check` target; the run body is `keygate_fuzz::envoy_check::run`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| keygate_fuzz::envoy_check::run(data));
