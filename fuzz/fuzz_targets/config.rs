//! Fuzz target: see `moontide::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| moontide::fuzzing::config(data));
