//! Printing simulation results: a terminal table, JSON or Markdown.

use moontide_sim::run::Run;
use moontide_sim::score::COLUMNS;

/// One simulation: a trace under one set of settings, every policy's run.
pub struct Row {
    /// The trace's label (its file name, or a suite entry's name).
    pub trace: String,
    /// The settings that differ from the command line (sweeps), or "".
    pub settings: String,
    /// One line on the trace (length, mean and peak rate, gaps).
    pub trace_line: String,
    /// One line on the service model.
    pub model_line: String,
    /// The trace and model as JSON.
    pub summary: serde_json::Value,
    /// The runs: the policies under test, then the baselines, the oracle last.
    pub runs: Vec<Run>,
}

/// How to print.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Style {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON document.
    Json,
    /// Markdown tables, one per row, for documents such as BENCHMARKS.md.
    Markdown,
}

/// The cells of a score table, header first.
pub fn score_table(runs: &[Run]) -> Vec<Vec<String>> {
    let mut rows = vec![COLUMNS.iter().map(|c| c.to_string()).collect()];
    for r in runs {
        let mut row = vec![r.name.clone()];
        row.extend(r.scores.cells());
        rows.push(row);
    }
    rows
}

fn runs_json(runs: &[Run]) -> serde_json::Value {
    runs.iter()
        .map(|r| match &r.problems {
            Some(p) => serde_json::json!({"name": r.name, "scores": r.scores, "problems": p}),
            None => serde_json::json!({"name": r.name, "scores": r.scores}),
        })
        .collect()
}

/// Warns on stderr of each run whose checks failed while it decided: its
/// scores are those of a policy that could not do what it was written to.
pub fn warn_problems(rows: &[Row]) {
    for r in rows {
        for run in r.runs.iter().filter(|run| run.problems.is_some()) {
            warn_problem(&r.trace, &run.name, run.problems.as_deref().unwrap_or_default());
        }
    }
}

/// Warns on stderr that `policy`'s checks failed on `trace`.
pub fn warn_problem(trace: &str, policy: &str, problems: &str) {
    eprintln!("warning: {trace}: {policy}: {problems}");
}

/// Prints `rows` in `style`; `single` prints one simulation without the trace and settings columns.
pub fn print(rows: &[Row], style: Style, single: bool) {
    match style {
        Style::Json if single => {
            let r = &rows[0];
            let out = serde_json::json!({"trace": r.summary["trace"], "model": r.summary["model"], "runs": runs_json(&r.runs)});
            println!("{out}");
        }
        Style::Json => {
            let out: Vec<_> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({"trace": r.trace, "settings": r.settings, "file": r.summary["trace"]["file"],
                        "summary": r.summary, "runs": runs_json(&r.runs)})
                })
                .collect();
            println!("{}", serde_json::Value::Array(out));
        }
        Style::Markdown => {
            for (i, r) in rows.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                let title =
                    if r.settings.is_empty() { r.trace.clone() } else { format!("{} ({})", r.trace, r.settings) };
                println!("#### {title}\n\n{}  \n{}\n", r.trace_line, r.model_line);
                let table = score_table(&r.runs);
                println!("| {} |", table[0].join(" | "));
                println!("|---|{}", "---:|".repeat(table[0].len() - 1));
                for row in &table[1..] {
                    println!("| {} |", row.join(" | "));
                }
            }
        }
        Style::Table if single => {
            let r = &rows[0];
            println!("{}", r.trace_line);
            println!("{}\n", r.model_line);
            print_aligned(&score_table(&r.runs), 1);
        }
        Style::Table => {
            let mut table = vec![vec!["trace".to_string(), "settings".to_string()]];
            table[0].extend(COLUMNS.iter().map(|c| c.to_string()));
            for r in rows {
                for run in score_table(&r.runs).into_iter().skip(1) {
                    let settings = if r.settings.is_empty() { "-".to_string() } else { r.settings.clone() };
                    let mut line = vec![r.trace.clone(), settings];
                    line.extend(run);
                    table.push(line);
                }
            }
            print_aligned(&table, 3);
        }
    }
}

/// Prints cells in columns as wide as their widest cell: the first `text_columns` left-aligned, the
/// numbers after them right-aligned.
fn print_aligned(table: &[Vec<String>], text_columns: usize) {
    let columns = table.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| table.iter().filter_map(|r| r.get(i)).map(|c| c.chars().count()).max().unwrap_or(0))
        .collect();
    for row in table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| if i < text_columns { format!("{c:<w$}") } else { format!("{c:>w$}") })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
