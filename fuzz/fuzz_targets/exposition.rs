//! Fuzz target: see `moontide::fuzzing::exposition`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| moontide::fuzzing::exposition(data));
