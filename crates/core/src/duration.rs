//! Durations written the way people write them: "10s", "5m", "1h30m", "250ms".

use serde::{Deserializer, Serializer};
use std::time::Duration;

/// Parses "10s", "5m", "1h30m", "250ms" (and "0s"). Units: ms, s, m, h, d, w.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let hint = "write a whole number followed by a unit (ms, s, m, h, d, w), like \"10s\", \"5m\" or \"1h30m\"";
    if s.is_empty() {
        return Err(format!("empty duration: {hint}"));
    }
    if s.starts_with('-') {
        return Err(format!("negative duration \"{text}\": {hint}"));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("invalid duration \"{text}\": {hint}"));
        }
        let n: u128 = rest[..digits].parse().map_err(|_| format!("invalid duration \"{text}\": number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit_ms: u128 = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "" => return Err(format!("duration \"{text}\" has no unit: {hint}")),
            other => return Err(format!("unknown unit \"{other}\" in duration \"{text}\": {hint}")),
        };
        rest = &rest[unit_len..];
        total =
            total.checked_add(n.saturating_mul(unit_ms)).ok_or_else(|| format!("duration \"{text}\" is too large"))?;
    }
    let ms = u64::try_from(total).map_err(|_| format!("duration \"{text}\" is too large"))?;
    Ok(Duration::from_millis(ms))
}

/// Formats a duration the way [`parse`] reads it ("1m30s", "250ms", "0s").
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// Serde adapter: `#[serde(with = "moontide_core::duration::serde_text")]`.
pub mod serde_text {
    use super::*;

    /// Reads a duration from text such as "10s".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(Text)
    }

    /// Text, or a number refused with the way to write it.
    pub(super) struct Text;

    impl serde::de::Visitor<'_> for Text {
        type Value = Duration;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration written as text with a unit, like \"10s\" or \"5m\"")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
            parse(v).map_err(E::custom)
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
            Err(unitless(v))
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
            Err(unitless(v))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
            Err(unitless(v))
        }
    }

    /// The error for a number written where a duration goes.
    fn unitless<E: serde::de::Error>(v: impl std::fmt::Display) -> E {
        E::custom(format!("a duration needs a unit: write \"{v}s\" for {v} seconds (or ms, m, h, d)"))
    }

    /// Writes a duration as text such as "10s".
    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*v))
    }
}

/// Serde adapter for optional durations.
pub mod serde_text_opt {
    use super::*;

    /// Reads an optional duration from text such as "10s".
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        struct Opt;
        impl<'de> serde::de::Visitor<'de> for Opt {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration written as text with a unit, like \"10s\"")
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                d.deserialize_any(super::serde_text::Text).map(Some)
            }
        }
        d.deserialize_option(Opt)
    }

    /// Writes an optional duration as text.
    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_str(&format(*v)),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let cases = [
            ("10s", 10_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("250ms", 250),
            ("0s", 0),
            ("1d", 86_400_000),
            (" 2s ", 2_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
    }

    #[test]
    fn rejects_bad_forms_with_a_hint() {
        for text in ["", "-5s", "10", "s", "5x", "1.5s", "5 m", "99999999999999999999999s"] {
            let err = parse(text).unwrap_err();
            assert!(err.contains("duration") || err.contains("unit"), "{text}: {err}");
        }
        assert!(parse("-5s").unwrap_err().contains("negative"));
        assert!(parse("10").unwrap_err().contains("no unit"));
    }

    #[test]
    fn a_number_where_a_duration_goes_is_told_how_to_write_it() {
        #[derive(Debug, serde::Deserialize)]
        struct Settings {
            #[serde(with = "serde_text")]
            every: Duration,
            #[serde(default, with = "serde_text_opt")]
            history: Option<Duration>,
        }
        let read = |text: &str| serde_json::from_str::<Settings>(text);
        let err = read(r#"{"every": 10}"#).unwrap_err().to_string();
        assert!(err.contains(r#"write "10s" for 10 seconds"#), "{err}");
        let err = read(r#"{"every": "10s", "history": 2.5}"#).unwrap_err().to_string();
        assert!(err.contains(r#"write "2.5s""#), "{err}");
        let err = read(r#"{"every": true}"#).unwrap_err().to_string();
        assert!(err.contains(r#"like "10s""#), "{err}");
        let ok = read(r#"{"every": "1m", "history": "2d"}"#).unwrap();
        assert_eq!((ok.every, ok.history), (Duration::from_secs(60), Some(Duration::from_secs(172_800))));
        assert_eq!(read(r#"{"every": "1m", "history": null}"#).unwrap().history, None);
        assert_eq!(read(r#"{"every": "1m"}"#).unwrap().history, None);
    }

    #[test]
    fn format_round_trips() {
        for ms in [0u64, 250, 1_000, 90_000, 5_400_000, 86_400_001] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)), Ok(d));
        }
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
    }
}
