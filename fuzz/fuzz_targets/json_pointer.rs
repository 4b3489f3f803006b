//! Fuzz target: see `moontide::fuzzing::json_pointer`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| moontide::fuzzing::json_pointer(data));
