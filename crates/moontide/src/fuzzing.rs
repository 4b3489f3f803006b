//! Entry points for the fuzz targets in `fuzz/` and for the regression test
//! that replays every input they ever crashed on (`fuzz/regressions/`).
//! Each takes arbitrary bytes, runs one reader of untrusted input, and checks
//! what must hold whatever the input: no panic, errors that render, values
//! that are finite.

use std::path::Path;
use std::time::Duration;

/// The config parser and its error messages.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match crate::config::Config::parse(Path::new("fuzz/moontide.toml"), text) {
        Ok(c) => assert!(!c.policies.is_empty(), "a valid config has policies"),
        Err(e) => assert!(!e.to_string().is_empty(), "an error says something"),
    }
}

/// The trace readers, in every format, and the rates they give.
pub fn trace(data: &[u8]) {
    use moontide_sim::trace::{Format, Trace};
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz.csv");
    let formats = [
        Format::Auto,
        Format::Values { step: Duration::from_secs(1) },
        Format::RateCsv { time: "0".into(), count: "1".into() },
        Format::Requests { time: "0".into(), input: Some("1".into()), output: Some("2".into()) },
    ];
    for f in &formats {
        match Trace::parse(path, text, f) {
            Ok(t) => {
                let r = t.rates(Duration::from_secs(1));
                for v in r.rates.iter().flatten() {
                    assert!(v.is_finite() && *v >= 0.0, "rate {v} from {f:?}");
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

/// The Prometheus text-format reader.
pub fn exposition(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(samples) = crate::sources::exposition::parse(text) {
        for s in samples {
            assert!(!s.name.is_empty(), "a sample has a name");
        }
    }
}

/// The JSON pointer reader: first line the pointer, the rest the document.
pub fn json_pointer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (pointer, doc) = text.split_once('\n').unwrap_or((text, "{}"));
    if crate::sources::http_json::check_query(pointer).is_err() {
        return;
    }
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(doc) else { return };
    if let Ok(v) = crate::sources::http_json::pick(&doc, pointer) {
        assert!(v.is_finite(), "picked {v}");
    }
}
