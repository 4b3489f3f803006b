//! The HTML report: one self-contained page (inline SVG and CSS, no script,
//! nothing fetched when viewed) with the score table and, for each policy,
//! load against capacity and replicas against demand over time.

use crate::run::{Run, Sample};
use std::fmt::Write;

/// What the page says about the run as a whole.
pub struct ReportHeader<'a> {
    /// The page title.
    pub title: &'a str,
    /// One line about the trace.
    pub trace: &'a str,
    /// One line about the model.
    pub model: &'a str,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const W: f64 = 900.0;
const H: f64 = 180.0;
const PAD: f64 = 40.0;

/// An SVG polyline of `ys` over `samples`' times, scaled to `y_max`.
fn line(samples: &[Sample], y_max: f64, ys: impl Fn(&Sample) -> f64, class: &str) -> String {
    let t_max = samples.last().map(|s| s.t).unwrap_or(1.0).max(1.0);
    let mut pts = String::new();
    for s in samples {
        let x = PAD + (s.t / t_max) * (W - 2.0 * PAD);
        let y = H - PAD / 2.0 - (ys(s) / y_max.max(1e-9)).min(1.0) * (H - PAD);
        let _ = write!(pts, "{x:.1},{y:.1} ");
    }
    format!("<polyline class=\"{class}\" points=\"{}\"/>", pts.trim_end())
}

/// A plotted line: its name, its CSS class and what it reads from a sample.
type Line<'a> = (&'a str, &'a str, &'a dyn Fn(&Sample) -> f64);

fn plot(title: &str, samples: &[Sample], series: &[Line<'_>], unit: &str) -> String {
    let y_max = samples.iter().flat_map(|s| series.iter().map(move |(_, _, f)| f(s))).fold(0.0, f64::max) * 1.05;
    let hours = samples.last().map(|s| s.t / 3600.0).unwrap_or(0.0);
    let mut svg = format!(
        "<svg class=\"plot\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>\
         <line class=\"axis\" x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/>\
         <line class=\"axis\" x1=\"{PAD}\" y1=\"{top}\" x2=\"{PAD}\" y2=\"{b}\"/>\
         <text x=\"{PAD}\" y=\"{top2}\">{ymax:.0} {unit}</text><text x=\"{r}\" y=\"{lab}\" text-anchor=\"end\">{hours:.1} h</text>",
        t = esc(title),
        b = H - PAD / 2.0,
        r = W - PAD,
        top = PAD / 2.0,
        top2 = PAD / 2.0 - 4.0,
        lab = H - 4.0,
        ymax = y_max,
    );
    for (_, class, f) in series {
        svg.push_str(&line(samples, y_max, f, class));
    }
    let legend: Vec<String> =
        series.iter().map(|(name, class, _)| format!("<span class=\"key {class}\">{}</span>", esc(name))).collect();
    svg.push_str("</svg>");
    format!("<figure>{svg}<figcaption>{} — {}</figcaption></figure>", esc(title), legend.join(" "))
}

/// The page.
pub fn html(header: &ReportHeader<'_>, runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{}</style></head><body>",
        esc(header.title),
        CSS
    );
    let _ = write!(out, "<h1>{}</h1><p>{}</p><p>{}</p>", esc(header.title), esc(header.trace), esc(header.model));
    out.push_str("<table><thead><tr>");
    for c in crate::score::COLUMNS {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr></thead><tbody>");
    for r in runs {
        let _ = write!(out, "<tr><td>{}</td>", esc(&r.name));
        for c in r.scores.cells() {
            let _ = write!(out, "<td>{}</td>", esc(&c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    for r in runs {
        let _ = write!(out, "<section class=\"policy\"><h2>{}</h2>", esc(&r.name));
        out.push_str(&plot(
            &format!("{}: load and capacity", r.name),
            &r.samples,
            &[("load", "load", &|s: &Sample| s.rate), ("capacity", "capacity", &|s: &Sample| s.capacity)],
            "req/s",
        ));
        out.push_str(&plot(
            &format!("{}: replicas", r.name),
            &r.samples,
            &[("replicas", "replicas", &|s: &Sample| s.replicas), ("needed", "demand", &|s: &Sample| s.demand)],
            "replicas",
        ));
        out.push_str("</section>");
    }
    out.push_str(
        "<p class=\"note\">Scores: cost in replica-hours paid for; SLO violations as the share of requests over the latency objective; \
         θU, θO, τU, τO as defined by the SPEC Research Group (Herbst et al., ICAC 2013), against demand = the fewest replicas that \
         keep every request within the SLO (queueing allowed while in time). Made by moontide simulate.</p></body></html>",
    );
    out
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:980px}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}svg.plot{width:100%;height:auto;background:#fafafa}\
polyline{fill:none;stroke-width:1.5}.load{stroke:#888}.capacity{stroke:#1f77b4}.replicas{stroke:#d62728}\
.demand{stroke:#2ca02c;stroke-dasharray:4 3}.axis{stroke:#999}text{font-size:11px;fill:#555}\
.key{display:inline-block;margin-left:1em}.key::before{content:'';display:inline-block;width:1.5em;height:3px;\
margin-right:.3em;vertical-align:middle;background:currentColor}.key.load{color:#888}.key.capacity{color:#1f77b4}\
.key.replicas{color:#d62728}.key.demand{color:#2ca02c}.note{color:#666;font-size:12px}";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::Scores;

    #[test]
    fn one_pair_of_plots_per_policy_and_nothing_fetched() {
        let samples: Vec<Sample> = (0..10)
            .map(|i| Sample { t: i as f64 * 60.0, rate: 10.0 * i as f64, capacity: 100.0, replicas: 3.0, demand: 2.0 })
            .collect();
        let runs: Vec<Run> = ["a <b>", "oracle"]
            .iter()
            .map(|n| Run { name: n.to_string(), scores: Scores::default(), samples: samples.clone(), problems: None })
            .collect();
        let page = html(&ReportHeader { title: "t", trace: "x", model: "m" }, &runs);
        assert_eq!(page.matches("<svg class=\"plot\"").count(), 4);
        assert_eq!(page.matches("<section class=\"policy\">").count(), 2);
        assert!(page.contains("a &lt;b&gt;") && !page.contains("a <b>"));
        assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("<script"));
    }
}
