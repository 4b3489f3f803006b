//! Trace readers: the load a simulation replays.
//!
//! Two kinds of trace:
//! - a rate series: requests per step, from a CSV with a time column and a
//!   count column (per-minute logs), or from plain numbers separated by
//!   whitespace at a stated step (one value per line, or all on one line);
//! - a request trace: one row per request with its arrival time and,
//!   optionally, its size (input and output tokens for LLM serving).
//!
//! Files may be gzip-compressed (`.gz`). Bad input is an error naming the
//! file and line; missing steps in a timed series are reported as gaps, not
//! filled in.

use chrono::{DateTime, NaiveDateTime};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a trace could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("{}: cannot read trace: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is wrong.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The file as a whole is wrong (empty, no usable rows, bad settings).
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// How to read a trace.
#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    /// Look at the file: a CSV header with two columns is a rate CSV, with
    /// more a request trace; anything else is plain values at 1 s.
    Auto,
    /// Plain non-negative numbers separated by whitespace, one per `step`.
    Values {
        /// The time each value covers.
        step: Duration,
    },
    /// A CSV with a header: time and count columns (by name or 0-based index).
    RateCsv {
        /// The time column.
        time: String,
        /// The count column (requests in the step).
        count: String,
    },
    /// A CSV with a header: one row per request.
    Requests {
        /// The arrival time column.
        time: String,
        /// The input size column (e.g. prompt tokens), if any.
        input: Option<String>,
        /// The output size column (e.g. generated tokens), if any.
        output: Option<String>,
    },
}

/// Layout settings given for a trace (a command's flags, a suite's keys),
/// each optional: they refine what [`Format::Auto`] guesses or override an
/// explicit format's defaults, and one that does not fit the layout is an
/// error rather than ignored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    /// The time each plain value covers.
    pub step: Option<Duration>,
    /// The time (or arrival time) column of a CSV.
    pub time: Option<String>,
    /// The count column of a rate CSV.
    pub count: Option<String>,
}

impl Format {
    /// This format with `layout`'s settings applied; `Auto` is first resolved
    /// from `text`.
    pub fn with_layout(&self, text: &str, layout: &Layout) -> Result<Format, String> {
        let base = match self {
            Format::Auto => detect(text),
            f => f.clone(),
        };
        let step_misfit =
            || "a step is for plain values, and this trace is a CSV: its rows carry their own times".to_string();
        Ok(match base {
            Format::Auto => unreachable!("detect gives a concrete format"),
            Format::Values { step } => {
                if layout.time.is_some() || layout.count.is_some() {
                    return Err("time and count columns are for CSV traces, and this trace is plain values".into());
                }
                Format::Values { step: layout.step.unwrap_or(step) }
            }
            Format::RateCsv { time, count } => {
                if layout.step.is_some() {
                    return Err(step_misfit());
                }
                Format::RateCsv {
                    time: layout.time.clone().unwrap_or(time),
                    count: layout.count.clone().unwrap_or(count),
                }
            }
            Format::Requests { time, input, output } => {
                if layout.step.is_some() {
                    return Err(step_misfit());
                }
                if layout.count.is_some() {
                    return Err("a count column is for rate CSVs, and this trace has a row per request".into());
                }
                Format::Requests { time: layout.time.clone().unwrap_or(time), input, output }
            }
        })
    }
}

/// A stretch of a timed series with no rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Gap {
    /// The line after which rows are missing.
    pub after_line: usize,
    /// Steps missing.
    pub steps: usize,
}

/// Requests per second, one value per step.
#[derive(Clone, Debug, PartialEq)]
pub struct RateTrace {
    /// Unix seconds of the first step, when the trace says.
    pub start: Option<f64>,
    /// The time each value covers.
    pub step: Duration,
    /// Requests per second in each step; `None` where the trace has a gap.
    pub rates: Vec<Option<f64>>,
    /// Where rows were missing.
    pub gaps: Vec<Gap>,
}

/// One request.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Request {
    /// Seconds after the first request.
    pub at: f64,
    /// Input size (prompt tokens), if the trace has it.
    pub input: Option<u32>,
    /// Output size (generated tokens), if the trace has it.
    pub output: Option<u32>,
}

/// Requests with their arrival times, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestTrace {
    /// Unix seconds of the first request.
    pub start: f64,
    /// The requests, arrival times non-decreasing.
    pub requests: Vec<Request>,
}

/// A trace of either kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Trace {
    /// A rate series.
    Rate(RateTrace),
    /// A request trace.
    Requests(RequestTrace),
}

impl Trace {
    /// Reads `path` (gzip if it ends in `.gz`) in `format`.
    pub fn load(path: &Path, format: &Format) -> Result<Trace, TraceError> {
        let text = read_text(path)?;
        Trace::parse(path, &text, format)
    }

    /// Reads `path` in `format` refined by `layout` (see [`Format::with_layout`]).
    pub fn load_with(path: &Path, format: &Format, layout: &Layout) -> Result<Trace, TraceError> {
        let text = read_text(path)?;
        let format =
            format.with_layout(&text, layout).map_err(|message| TraceError::File { path: path.into(), message })?;
        Trace::parse(path, &text, &format)
    }

    /// Parses trace text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str, format: &Format) -> Result<Trace, TraceError> {
        if text.trim().is_empty() {
            return Err(TraceError::File { path: path.into(), message: "the trace is empty".into() });
        }
        match format {
            Format::Auto => Trace::parse(path, text, &detect(text)),
            Format::Values { step } => values(path, text, *step).map(Trace::Rate),
            Format::RateCsv { time, count } => rate_csv(path, text, time, count).map(Trace::Rate),
            Format::Requests { time, input, output } => {
                requests(path, text, time, input.as_deref(), output.as_deref()).map(Trace::Requests)
            }
        }
    }

    /// Requests per second at a resolution of `step`, gaps as `None`
    /// (a request trace is counted into steps).
    pub fn rates(&self, step: Duration) -> RateTrace {
        match self {
            Trace::Rate(r) => r.clone(),
            Trace::Requests(t) => {
                let secs = step.as_secs_f64();
                let n = t.requests.last().map(|r| (r.at / secs).floor() as usize + 1).unwrap_or(0);
                let mut counts = vec![0.0; n];
                for r in &t.requests {
                    counts[(r.at / secs).floor() as usize] += 1.0;
                }
                RateTrace {
                    start: Some(t.start),
                    step,
                    rates: counts.into_iter().map(|c| Some(c / secs)).collect(),
                    gaps: Vec::new(),
                }
            }
        }
    }
}

fn read_text(path: &Path) -> Result<String, TraceError> {
    let io = |source| TraceError::Io { path: path.into(), source };
    let bytes = std::fs::read(path).map_err(io)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        GzDecoder::new(&bytes[..]).read_to_string(&mut text).map_err(io)?;
        Ok(text)
    } else {
        String::from_utf8(bytes).map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }
}

/// Guesses the format from the first line.
pub fn detect(text: &str) -> Format {
    let first = text.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#')).unwrap_or("");
    if !first.contains(',') {
        return Format::Values { step: Duration::from_secs(1) };
    }
    let cols: Vec<&str> = first.split(',').map(str::trim).collect();
    if cols.len() == 2 {
        Format::RateCsv { time: cols[0].into(), count: cols[1].into() }
    } else {
        Format::Requests {
            time: cols[0].into(),
            input: Some(cols[1].into()),
            output: cols.get(2).map(|c| c.to_string()),
        }
    }
}

fn values(path: &Path, text: &str, step: Duration) -> Result<RateTrace, TraceError> {
    if step.is_zero() {
        return Err(TraceError::File { path: path.into(), message: "the step must be longer than 0s".into() });
    }
    let per_sec = 1.0 / step.as_secs_f64();
    let mut rates = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        for word in line.split_ascii_whitespace() {
            let v = number(word).map_err(|message| TraceError::Line { path: path.into(), line: i + 1, message })?;
            rates.push(Some(v * per_sec));
        }
    }
    Ok(RateTrace { start: None, step, rates, gaps: Vec::new() })
}

fn number(word: &str) -> Result<f64, String> {
    match word.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(v) if v < 0.0 => Err(format!("negative count {word}")),
        _ => Err(format!("`{word}` is not a number")),
    }
}

/// Unix seconds from RFC 3339 (with an offset), `YYYY-MM-DD HH:MM:SS[.fff]`
/// (taken as UTC) or a plain number of seconds.
pub fn parse_time(s: &str) -> Result<f64, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_micros() as f64 / 1e6);
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc().timestamp_micros() as f64 / 1e6);
        }
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a time (RFC 3339, `YYYY-MM-DD HH:MM:SS` or Unix seconds)")),
    }
}

struct Table {
    headers: Vec<String>,
    rows: Vec<(usize, csv::StringRecord)>,
}

fn table(path: &Path, text: &str) -> Result<Table, TraceError> {
    let mut reader = csv::ReaderBuilder::new().comment(Some(b'#')).trim(csv::Trim::All).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| TraceError::Line { path: path.into(), line: 1, message: e.to_string() })?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    // csv's own line count misses CRLF line endings: lines are counted here
    // from each record's byte offset instead, in one pass
    let mut lines = LineCounter::new(text);
    for r in reader.records() {
        let r = r.map_err(|e| {
            let line = e.position().map(|p| lines.line_at(p.byte())).unwrap_or(0);
            TraceError::Line { path: path.into(), line, message: e.to_string() }
        })?;
        let line = r.position().map(|p| lines.line_at(p.byte())).unwrap_or(0);
        rows.push((line, r));
    }
    if rows.is_empty() {
        return Err(TraceError::File { path: path.into(), message: "the trace has a header and no rows".into() });
    }
    Ok(Table { headers, rows })
}

/// Line numbers (from 1) of byte offsets asked for in increasing order.
struct LineCounter<'a> {
    text: &'a [u8],
    at: usize,
    line: usize,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        LineCounter { text: text.as_bytes(), at: 0, line: 1 }
    }

    fn line_at(&mut self, byte: u64) -> usize {
        let mut byte = (byte as usize).min(self.text.len());
        // a record's position may be where the reader started looking for it:
        // the \n of a CRLF before it, or comment lines (`#`) it skipped
        while let Some(&b) = self.text.get(byte) {
            match b {
                b'\r' | b'\n' => byte += 1,
                b'#' => byte += self.text[byte..].iter().position(|&c| c == b'\n').unwrap_or(self.text.len() - byte),
                _ => break,
            }
        }
        if byte < self.at {
            // not in order: count from the start
            (self.at, self.line) = (0, 1);
        }
        self.line += self.text[self.at..byte].iter().filter(|&&b| b == b'\n').count();
        self.at = byte;
        self.line
    }
}

fn column(path: &Path, headers: &[String], name: &str) -> Result<usize, TraceError> {
    if let Some(i) = headers.iter().position(|h| h == name) {
        return Ok(i);
    }
    match name.parse::<usize>() {
        Ok(i) if i < headers.len() => Ok(i),
        _ => Err(TraceError::File {
            path: path.into(),
            message: format!("no column `{name}` (the header has: {})", headers.join(", ")),
        }),
    }
}

fn rate_csv(path: &Path, text: &str, time: &str, count: &str) -> Result<RateTrace, TraceError> {
    let t = table(path, text)?;
    let (ti, ci) = (column(path, &t.headers, time)?, column(path, &t.headers, count)?);
    let mut points = Vec::with_capacity(t.rows.len());
    for (line, r) in &t.rows {
        let bad = |message: String| TraceError::Line { path: path.into(), line: *line, message };
        let at = parse_time(r.get(ti).unwrap_or("")).map_err(bad)?;
        let n = number(r.get(ci).unwrap_or("")).map_err(bad)?;
        if let Some(&(prev, _, _)) = points.last()
            && at <= prev
        {
            return Err(bad(format!("time goes backwards or repeats ({} after {})", r.get(ti).unwrap_or(""), prev)));
        }
        points.push((at, n, *line));
    }
    // The step is the smallest spacing between rows.
    let step = points.windows(2).map(|w| w[1].0 - w[0].0).fold(f64::INFINITY, f64::min);
    let step = if step.is_finite() { step } else { 60.0 };
    let span_steps = (points[points.len() - 1].0 - points[0].0) / step;
    let step_len = Duration::try_from_secs_f64(step).ok().filter(|_| span_steps <= MAX_RATE_STEPS);
    let Some(step_len) = step_len else {
        return Err(TraceError::Line {
            path: path.into(),
            line: points[points.len() - 1].2,
            message: format!(
                "rows {step} s apart spanning {span_steps:.0} steps: a rate trace may hold at most {MAX_RATE_STEPS} steps"
            ),
        });
    };
    let mut rates = Vec::with_capacity(points.len());
    let mut gaps = Vec::new();
    for (i, &(at, n, _)) in points.iter().enumerate() {
        if i > 0 {
            let missing = ((at - points[i - 1].0) / step).round() as usize - 1;
            if missing > 0 {
                gaps.push(Gap { after_line: points[i - 1].2, steps: missing });
                rates.extend(std::iter::repeat_n(None, missing));
            }
        }
        rates.push(Some(n / step));
    }
    Ok(RateTrace { start: Some(points[0].0), step: step_len, rates, gaps })
}

/// The most steps a rate CSV may span, gaps included (NASA per second holds 5 million).
const MAX_RATE_STEPS: f64 = 100_000_000.0;

/// The longest time a request trace may span (it is counted into steps of a second or more).
const MAX_SPAN_SECS: f64 = 31.0 * 86_400.0;

fn requests(
    path: &Path,
    text: &str,
    time: &str,
    input: Option<&str>,
    output: Option<&str>,
) -> Result<RequestTrace, TraceError> {
    let t = table(path, text)?;
    let ti = column(path, &t.headers, time)?;
    let ii = input.map(|c| column(path, &t.headers, c)).transpose()?;
    let oi = output.map(|c| column(path, &t.headers, c)).transpose()?;
    let mut start = None;
    let mut prev = f64::NEG_INFINITY;
    let mut out = Vec::with_capacity(t.rows.len());
    for (line, r) in &t.rows {
        let bad = |message: String| TraceError::Line { path: path.into(), line: *line, message };
        let at = parse_time(r.get(ti).unwrap_or("")).map_err(bad)?;
        if at < prev {
            return Err(bad(format!(
                "arrival time goes backwards ({} is before the row above)",
                r.get(ti).unwrap_or("")
            )));
        }
        prev = at;
        let size = |i: Option<usize>| -> Result<Option<u32>, TraceError> {
            i.map(|i| {
                let v = r.get(i).unwrap_or("");
                v.parse::<u32>().map_err(|_| bad(format!("`{v}` is not a token count")))
            })
            .transpose()
        };
        let s = *start.get_or_insert(at);
        if at - s > MAX_SPAN_SECS {
            return Err(bad(format!(
                "this request arrives {:.0} days after the first; a trace may span at most {} days",
                (at - s) / 86_400.0,
                MAX_SPAN_SECS / 86_400.0
            )));
        }
        out.push(Request { at: at - s, input: size(ii)?, output: size(oi)? });
    }
    Ok(RequestTrace { start: start.unwrap_or(0.0), requests: out })
}
