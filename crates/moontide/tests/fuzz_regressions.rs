//! Replays every input the fuzz targets crashed on (fuzz/regressions/TARGET/)
//! and their seeds (fuzz/seeds/TARGET/) through the same entry points
//! (`moontide::fuzzing`), so a fixed crash stays fixed. The fuzzing itself
//! runs with `fuzz/run`.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut out = Vec::new();
    for dir in ["regressions", "seeds"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else { continue };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_file() && path.file_name().is_some_and(|n| n != ".gitkeep") {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn replay(target: &str, run: fn(&[u8])) {
    let all = inputs(target);
    assert!(!all.is_empty(), "no seeds for {target}");
    for (path, data) in all {
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
    }
}

#[test]
fn config_inputs() {
    replay("config", moontide::fuzzing::config);
}

#[test]
fn trace_inputs() {
    replay("trace", moontide::fuzzing::trace);
}

#[test]
fn exposition_inputs() {
    replay("exposition", moontide::fuzzing::exposition);
}

#[test]
fn json_pointer_inputs() {
    replay("json_pointer", moontide::fuzzing::json_pointer);
}
