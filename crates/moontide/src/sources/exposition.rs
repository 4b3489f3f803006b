//! A reader for the Prometheus text exposition format (version 0.0.4), the
//! body of a `/metrics` endpoint: one sample per line,
//! `name{label="value",...} value [timestamp]`, with `#` comment lines.
//!
//! Written here rather than taken from a crate: of the crates for the job,
//! `prometheus-parse` silently drops metric names with a colon (every
//! `vllm:*` metric), and `openmetrics-parser` rejects whole, valid bodies
//! whose samples have no `# TYPE` line. This reader takes every sample line
//! the format allows, ignores comments (HELP, TYPE), and rejects a malformed
//! line with its line number, as Prometheus fails a scrape it cannot parse.

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric name, e.g. `vllm:num_requests_waiting` or `http_requests_total`.
    pub name: String,
    /// Label pairs in the order written, values unescaped.
    pub labels: Vec<(String, String)>,
    /// The value (NaN and ±Inf included).
    pub value: f64,
}

impl Sample {
    /// A label's value, or "" when the sample has no such label (as PromQL treats it).
    pub fn label(&self, name: &str) -> &str {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

/// Every sample in `body`; the error names the first malformed line.
pub fn parse(body: &str) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for (i, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).map_err(|e| format!("line {}: {e}: `{}`", i + 1, shorten(line)))?);
    }
    Ok(out)
}

fn shorten(s: &str) -> String {
    if s.chars().count() <= 80 { s.to_string() } else { format!("{}…", s.chars().take(80).collect::<String>()) }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn parse_line(line: &str) -> Result<Sample, String> {
    let mut rest = line;
    let name_len = rest.char_indices().find(|&(_, c)| !is_name_char(c)).map(|(i, _)| i).unwrap_or(rest.len());
    let name = &rest[..name_len];
    if !name.starts_with(is_name_start) {
        return Err("expected a metric name".into());
    }
    rest = rest[name_len..].trim_start();
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = parse_labels(after, &mut labels)?;
    }
    let mut fields = rest.split_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = parse_value(value)?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>().map_err(|_| format!("timestamp `{ts}` is not an integer"))?;
    }
    if fields.next().is_some() {
        return Err("unexpected text after the value and timestamp".into());
    }
    Ok(Sample { name: name.to_string(), labels, value })
}

/// Reads `label="value", ...}` and returns what follows the closing brace.
fn parse_labels<'a>(mut rest: &'a str, labels: &mut Vec<(String, String)>) -> Result<&'a str, String> {
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let len = rest.char_indices().find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_')).map(|(i, _)| i);
        let len = len.ok_or("unclosed label set")?;
        let key = &rest[..len];
        if key.is_empty() || key.starts_with(|c: char| c.is_ascii_digit()) {
            return Err("expected a label name".into());
        }
        rest = rest[len..].trim_start().strip_prefix('=').ok_or_else(|| format!("expected `=` after label `{key}`"))?;
        rest = rest.trim_start().strip_prefix('"').ok_or_else(|| format!("label `{key}`: expected a quoted value"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("label `{key}`: unterminated value")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, c)) => {
                        value.push('\\');
                        value.push(c)
                    }
                    None => return Err(format!("label `{key}`: unterminated value")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        rest = rest[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected `,` or `}}` after label `{key}`"));
        }
    }
}

fn parse_value(v: &str) -> Result<f64, String> {
    match v {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => v.parse::<f64>().map_err(|_| format!("value `{v}` is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_the_lines_the_format_allows() {
        let body = r#"# HELP vllm:num_requests_waiting Number of requests waiting.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta/llama"} 12.0
plain 3
spaced { a = "1" , b="2", } 4.5e1 1700000000000
escaped{path="C:\\dir",quote="say \"hi\"",nl="a\nb"} +Inf

odd_value NaN
"#;
        let s = parse(body).unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].name, "vllm:num_requests_waiting");
        assert_eq!(s[0].labels, labels(&[("engine", "0"), ("model_name", "meta/llama")]));
        assert_eq!(s[0].value, 12.0);
        assert_eq!((s[1].name.as_str(), s[1].value, s[1].labels.len()), ("plain", 3.0, 0));
        assert_eq!(s[2].labels, labels(&[("a", "1"), ("b", "2")]));
        assert_eq!(s[2].value, 45.0);
        assert_eq!(s[3].label("path"), "C:\\dir");
        assert_eq!(s[3].label("quote"), "say \"hi\"");
        assert_eq!(s[3].label("nl"), "a\nb");
        assert_eq!(s[3].label("missing"), "");
        assert!(s[3].value.is_infinite());
        assert!(s[4].value.is_nan());
    }

    #[test]
    fn a_malformed_line_is_named() {
        for (body, want) in [
            ("ok 1\n9bad 1\n", "line 2: expected a metric name"),
            ("m{a=\"1\" 2\n", "line 1: expected `,` or `}` after label `a`"),
            ("m{a=1} 2\n", "label `a`: expected a quoted value"),
            ("m{a=\"1} 2\n", "unterminated value"),
            ("m\n", "line 1: no value"),
            ("m one\n", "value `one` is not a number"),
            ("m 1 soon\n", "timestamp `soon` is not an integer"),
            ("m 1 2 3\n", "unexpected text"),
            ("m{=\"x\"} 1\n", "expected a label name"),
        ] {
            let err = parse(body).unwrap_err();
            assert!(err.contains(want), "{body:?}: {err}");
        }
    }
}
