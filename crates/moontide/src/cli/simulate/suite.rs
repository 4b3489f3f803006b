//! `moontide simulate --suite FILE`: a list of traces, each with its own
//! model settings, run against the same policies; used for the benchmark
//! table in BENCHMARKS.md.
//!
//! ```toml
//! [defaults]              # settings for every trace (each may override them)
//! startup = "60s"
//!
//! [[trace]]
//! name = "bursty"          # the label in the output (default: the file name)
//! file = "../shared/traces/autothrottle-nsdi24/bursty.txt"   # relative to the suite file
//! capacity = 20
//! ```

use super::{SimulateArgs, TraceFormat};
use moontide_core::duration::serde_text_opt;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings a suite may give, for every trace or for one.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The trace's label.
    pub name: Option<String>,
    /// The trace file, relative to the suite file.
    pub file: Option<PathBuf>,
    pub format: Option<TraceFormat>,
    #[serde(default, with = "serde_text_opt")]
    pub step: Option<Duration>,
    pub time_column: Option<String>,
    pub count_column: Option<String>,
    pub capacity: Option<f64>,
    #[serde(default, with = "serde_text_opt")]
    pub startup: Option<Duration>,
    #[serde(default, with = "serde_text_opt")]
    pub drain: Option<Duration>,
    #[serde(default, with = "serde_text_opt")]
    pub service_time: Option<Duration>,
    #[serde(default, with = "serde_text_opt")]
    pub slo: Option<Duration>,
    pub scale: Option<f64>,
    pub speed: Option<f64>,
    #[serde(default, with = "serde_text_opt")]
    pub scrape_delay: Option<Duration>,
    pub noise: Option<f64>,
    pub seed: Option<u64>,
    pub initial: Option<u32>,
    pub hpa_target: Option<f64>,
}

impl Settings {
    /// Sets on `a` what these settings give.
    fn apply(&self, a: &mut SimulateArgs) {
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = &self.$field { a.$field = v.clone(); } )* };
        }
        set!(format, capacity, startup, drain, service_time, slo, scale, speed, scrape_delay, noise, seed, hpa_target);
        if self.step.is_some() {
            a.step = self.step;
        }
        if self.time_column.is_some() {
            a.time_column = self.time_column.clone();
        }
        if self.count_column.is_some() {
            a.count_column = self.count_column.clone();
        }
        if self.initial.is_some() {
            a.initial = self.initial;
        }
    }
}

/// A suite file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    #[serde(default)]
    defaults: Settings,
    #[serde(default)]
    trace: Vec<Settings>,
}

/// One entry, ready to run.
pub struct Entry {
    /// Its label.
    pub name: String,
    /// The trace file.
    pub file: PathBuf,
    /// The arguments to simulate it with.
    pub args: SimulateArgs,
}

/// Reads a suite, applying its settings over `base` (the command line).
pub fn load(path: &Path, base: &SimulateArgs) -> Result<Vec<Entry>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let suite: SuiteFile = toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if suite.defaults.file.is_some() || suite.defaults.name.is_some() {
        return Err(format!("{}: [defaults] cannot set `file` or `name`; give them in each [[trace]]", path.display()));
    }
    if suite.trace.is_empty() {
        return Err(format!("{}: no [[trace]] entries", path.display()));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut entries = Vec::new();
    for (i, t) in suite.trace.iter().enumerate() {
        let Some(file) = &t.file else {
            return Err(format!("{}: trace {} has no `file`", path.display(), i + 1));
        };
        let file = tidy(&dir.join(file));
        let mut args = base.clone();
        suite.defaults.apply(&mut args);
        t.apply(&mut args);
        let name = t.name.clone().unwrap_or_else(|| file_label(&file));
        entries.push(Entry { name, file, args });
    }
    Ok(entries)
}

/// `a/b/../c` as `a/c` (without touching the file system), so messages name files plainly.
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A trace's file name, for labels.
pub fn file_label(path: &Path) -> String {
    path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_paths_drop_dot_dot_where_it_can() {
        assert_eq!(tidy(Path::new("bench/../../shared/t.txt")), Path::new("../shared/t.txt"));
        assert_eq!(tidy(Path::new("./a/./b/../c")), Path::new("a/c"));
        assert_eq!(tidy(Path::new("/x/../y")), Path::new("/y"));
    }
}
