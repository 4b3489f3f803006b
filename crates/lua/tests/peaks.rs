//! `require("peaks")`: its Lua tests (tests/lua/peaks_test.lua) pass in the sandbox.

use std::path::Path;

#[test]
fn the_peaks_module_keeps_per_minute_highs() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lua/peaks_test.lua");
    let results = moontide_lua::testing::run_file(&file).unwrap();
    assert!(results.len() >= 5, "the tests ran: {}", results.len());
    let failed: Vec<String> =
        results.iter().filter_map(|r| r.failure.as_ref().map(|f| format!("{}: {f}", r.name))).collect();
    assert!(failed.is_empty(), "{failed:#?}");
}
