//! Config errors that say where (file, line, column, field) and what.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// The dotted field path, like `policies.web.min`.
    pub field: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Problem {
    /// A problem at byte `offset` of `text`.
    pub fn at(file: &Path, text: &str, offset: usize, field: String, message: String) -> Self {
        let (line, column) = line_col(text, offset);
        Problem { file: file.to_path_buf(), line, column, field, message }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.file.display(), self.line, self.column, self.field, self.message)
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not fit the schema.
    #[error("{problem}")]
    Syntax {
        /// Where and what.
        problem: Problem,
    },
    /// The file parsed but its content is inconsistent.
    #[error("{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ConfigError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn syntax(path: &Path, text: &str, e: &toml::de::Error) -> Self {
        let offset = e.span().map(|s| refine(text, s, e.message())).unwrap_or(0);
        let field = field_at(text, offset);
        let mut message = e.message().trim().replace('\n', " ");
        // a number where text goes is almost always a duration written without its unit
        let number =
            message.starts_with("invalid type: integer") || message.starts_with("invalid type: floating point");
        if number && message.ends_with("expected a string") {
            message.push_str(" (a duration is text with a unit, like \"10s\")");
        }
        ConfigError::Syntax { problem: Problem::at(path, text, offset, field, message) }
    }

    /// All problems (one for I/O and syntax errors).
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { problems } => problems.iter().map(|p| p.to_string()).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Errors inside tagged tables (sources, targets, checks) point at the
/// table's header; when the message quotes the offending key or value, point
/// at its first occurrence in that table's body instead.
fn refine(text: &str, span: std::ops::Range<usize>, message: &str) -> usize {
    let start = text.floor_char_boundary(span.start.min(text.len()));
    if !text[start..].starts_with('[') {
        return span.start;
    }
    // The body runs to the next table header.
    let body_start = text[start..].find('\n').map(|i| start + i + 1).unwrap_or(text.len());
    let mut body_end = body_start;
    for line in text[body_start..].split_inclusive('\n') {
        if line.trim_start().starts_with('[') && !line.trim_start().starts_with("[{") {
            break;
        }
        body_end += line.len();
    }
    let body = &text[body_start..body_end];
    // Every `quoted` key and "quoted" value in the message, in order.
    let mut needles = Vec::new();
    for (open, keep) in [('`', false), ('"', true)] {
        let mut rest = message;
        while let Some(a) = rest.find(open) {
            let Some(len) = rest[a + 1..].find(open) else { break };
            let (inner, outer) = (&rest[a + 1..a + 1 + len], &rest[a..a + len + 2]);
            needles.push(if keep { outer } else { inner });
            rest = &rest[a + len + 2..];
        }
    }
    needles
        .into_iter()
        .filter(|n| !n.trim_matches('"').is_empty())
        .find_map(|needle| body.find(needle))
        .map(|i| body_start + i)
        .unwrap_or(span.start)
}

/// The dotted path of the table and key at `offset`, found from the text
/// (the TOML parser reports a byte span, not a path).
fn field_at(text: &str, offset: usize) -> String {
    let offset = text.floor_char_boundary(offset.min(text.len()));
    let line_begin = text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[offset..].find('\n').map(|i| offset + i).unwrap_or(text.len());
    // The last table header at or before the offending line.
    let table = text[..line_end]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
        .unwrap_or_default();
    // The key on the offending line, if it has one.
    let line = text[line_begin..line_end].trim_start();
    let key = if line.starts_with('{') {
        inline_key(text, line_begin, offset)
    } else {
        match line.split_once('=') {
            Some((k, _)) if !line.starts_with('[') => k.trim().to_string(),
            _ => String::new(),
        }
    };
    match (table.is_empty(), key.is_empty()) {
        (true, true) => "(top level)".into(),
        (true, false) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

/// On a line that is an inline table in an array (`  { name = "a", role = "x" },`):
/// the array's key and the key whose value is at `offset`, like `tokens.role`.
fn inline_key(text: &str, line_begin: usize, offset: usize) -> String {
    // the error points at a key (an unknown field) or at a value (after its `=`)
    let after = &text[offset..];
    let word = after.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-')).next().unwrap_or("");
    let at_key = !word.is_empty() && after[word.len()..].trim_start().starts_with('=');
    let before = &text[line_begin..offset];
    let inner = if at_key {
        Some(word.to_string())
    } else {
        before
            .rsplit_once('=')
            .map(|(k, _)| k.rsplit(['{', ',']).next().unwrap_or("").trim().to_string())
            .filter(|k| !k.is_empty())
    };
    // the array: the nearest line above that opens one (`tokens = [`), within this table
    let array = text[..line_begin]
        .lines()
        .rev()
        .map(str::trim)
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| l.split_once('=').filter(|(_, v)| v.trim_start().starts_with('[')).map(|(k, _)| k.trim()))
        .unwrap_or("");
    match (array.is_empty(), inner) {
        (false, Some(k)) => format!("{array}.{k}"),
        (false, None) => array.to_string(),
        (true, Some(k)) => k,
        (true, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, 11), (2, 6));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn field_is_table_and_key() {
        let text = "[policies.web]\nmin = -1\n";
        assert_eq!(field_at(text, text.find("-1").unwrap()), "policies.web.min");
        assert_eq!(field_at("x = 1", 4), "x");
        let text = "[a]\nx = 1\n[b.c]\ny = 2\n";
        assert_eq!(field_at(text, text.find("[b.c]").unwrap()), "b.c");
        assert_eq!(field_at(text, text.find("y =").unwrap()), "b.c.y");
    }

    #[test]
    fn errors_in_a_table_point_at_the_quoted_key_or_value() {
        let text = "[a]\nx = 1\n[b]\nt = \"5x\"\nz = 2\n[c]\nt = \"5x\"\n";
        let header = text.find("[b]").unwrap();
        let at = refine(text, header..header + 3, "unknown unit \"x\" in duration \"5x\"");
        assert_eq!(at, text.find("\"5x\"").unwrap());
        let at = refine(text, header..header + 3, "unknown field `z`");
        assert_eq!(field_at(text, at), "b.z");
        assert_eq!(refine(text, header..header + 3, "unknown field `nowhere`"), header);
    }
}
