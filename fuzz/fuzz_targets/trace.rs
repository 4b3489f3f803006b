//! Fuzz target: see `moontide::fuzzing::trace`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| moontide::fuzzing::trace(data));
