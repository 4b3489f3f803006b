//! The trace readers on every trace in ../shared/traces (when this checkout
//! has it beside) and on broken files.

use moontide_sim::trace::{Format, Gap, Trace, parse_time};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn shared(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is not beside this checkout", p.display());
        None
    }
}

fn rate(t: Trace) -> moontide_sim::RateTrace {
    match t {
        Trace::Rate(r) => r,
        other => panic!("expected a rate trace, got {other:?}"),
    }
}

#[test]
fn every_shared_trace_loads() {
    // (file, rows, step seconds, total requests, missing steps) as stated in each SOURCE.txt
    let rate_traces: &[(&str, usize, u64, Option<f64>, usize)] = &[
        ("autothrottle-nsdi24/bursty.txt", 3600, 1, None, 0),
        ("autothrottle-nsdi24/diurnal.txt", 3600, 1, None, 0),
        ("autothrottle-nsdi24/diurnal-2.txt", 3600, 1, None, 0),
        ("autothrottle-nsdi24/noisy.txt", 3600, 1, None, 0),
        ("nasa-http-1995/nasa_http_1995_rps_per_second.txt.gz", 5_059_950, 1, Some(3_461_610.0), 0),
        // the July log ends 1995-07-28 13:32; August starts 08-01 00:00: 4,947 minutes missing
        ("nasa-http-1995/nasa_http_1995_per_minute.csv", 84_334, 60, Some(3_461_610.0), 4_947),
        ("worldcup98/worldcup98_per_minute.csv", 125_310, 60, Some(1_352_804_107.0), 0),
    ];
    for &(rel, rows, step, total, missing) in rate_traces {
        let Some(path) = shared(rel) else { return };
        let r = rate(Trace::load(&path, &Format::Auto).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(r.step, Duration::from_secs(step), "{rel}");
        assert_eq!(r.rates.iter().flatten().count(), rows, "{rel}");
        assert_eq!(r.gaps.iter().map(|g| g.steps).sum::<usize>(), missing, "{rel}: {:?}", r.gaps);
        assert_eq!(r.rates.len(), rows + missing, "{rel}");
        if let Some(total) = total {
            let sum: f64 = r.rates.iter().flatten().map(|x| x * step as f64).sum();
            assert!((sum - total).abs() < 0.5, "{rel}: {sum} requests, expected {total}");
        }
    }
    for (rel, n) in [
        ("azure-llm-2023/AzureLLMInferenceTrace_code.csv", 8_819),
        ("azure-llm-2023/AzureLLMInferenceTrace_conv.csv", 19_366),
    ] {
        let Some(path) = shared(rel) else { return };
        let Trace::Requests(t) = Trace::load(&path, &Format::Auto).unwrap() else { panic!("{rel}: not requests") };
        assert_eq!(t.requests.len(), n, "{rel}");
        assert_eq!(t.requests[0].at, 0.0);
        assert!(t.requests.iter().all(|r| r.input.is_some() && r.output.is_some()));
        let span = t.requests.last().unwrap().at;
        assert!((3_300.0..3_600.0).contains(&span), "{rel}: spans {span} s");
        let per_sec = Trace::Requests(t).rates(Duration::from_secs(60));
        let total: f64 = per_sec.rates.iter().flatten().map(|r| r * 60.0).sum();
        assert!((total - n as f64).abs() < 1e-6);
    }
}

fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    (dir, p)
}

#[test]
fn broken_traces_name_file_and_line() {
    let cases: &[(&str, &str, Format, &str)] = &[
        ("empty.txt", "  \n", Format::Auto, "the trace is empty"),
        ("letters.txt", "1\n2\nthree\n", Format::Auto, ":3: `three` is not a number"),
        ("negative.txt", "1\n-2\n", Format::Auto, ":2: negative count -2"),
        ("back.csv", "t,n\n2020-01-01T00:01:00Z,1\n2020-01-01T00:00:00Z,1\n", Format::Auto, ":3: time goes backwards"),
        (
            "repeat.csv",
            "t,n\n2020-01-01T00:01:00Z,1\n2020-01-01T00:01:00Z,1\n",
            Format::Auto,
            ":3: time goes backwards or repeats",
        ),
        ("badtime.csv", "t,n\nyesterday,1\n", Format::Auto, ":2: `yesterday` is not a time"),
        ("negcsv.csv", "t,n\n2020-01-01T00:01:00Z,-5\n", Format::Auto, ":2: negative count"),
        ("header.csv", "t,n\n", Format::Auto, "a header and no rows"),
        (
            "nocol.csv",
            "t,n\n2020-01-01T00:01:00Z,1\n",
            Format::RateCsv { time: "time".into(), count: "n".into() },
            "no column `time` (the header has: t, n)",
        ),
        (
            "req.csv",
            "t,in,out\n2020-01-01 00:00:01,5,6\n2020-01-01 00:00:00,5,6\n",
            Format::Auto,
            ":3: arrival time goes backwards",
        ),
        ("tokens.csv", "t,in,out\n2020-01-01 00:00:01,5,many\n", Format::Auto, ":2: `many` is not a token count"),
        ("zero.txt", "1\n", Format::Values { step: Duration::ZERO }, "the step must be longer than 0s"),
        // CRLF line endings (the Azure traces have them) and comment lines count as lines
        ("crlf.csv", "t,n\r\n0,1\r\n60,2\r\n120,x\r\n", Format::Auto, ":4: `x` is not a number"),
        ("crlf-tok.csv", "t,in,out\r\n1,5,6\r\n2,5,6\r\n3,5,lots\r\n", Format::Auto, ":4: `lots` is not a token count"),
        ("comment.csv", "# a note\nt,n\n0,1\n# more\n60,y\n", Format::Auto, ":5: `y` is not a number"),
        ("quoted.csv", "t,n\n0,\"1\n\"\n60,z\n", Format::Auto, ":4: `z` is not a number"),
    ];
    for (name, text, format, want) in cases {
        let (_d, p) = write(name, text);
        let err = Trace::load(&p, format).unwrap_err().to_string();
        assert!(err.starts_with(&p.display().to_string()), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
    let err = Trace::load(Path::new("/nonexistent/trace.csv"), &Format::Auto).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/trace.csv: cannot read trace"), "{err}");
}

#[test]
fn gaps_are_reported_not_filled() {
    let text = "minute,requests\n2020-01-01T00:00:00Z,60\n2020-01-01T00:01:00Z,120\n2020-01-01T00:04:00Z,60\n";
    let (_d, p) = write("gappy.csv", text);
    let r = rate(Trace::load(&p, &Format::Auto).unwrap());
    assert_eq!(r.step, Duration::from_secs(60));
    assert_eq!(r.rates, [Some(1.0), Some(2.0), None, None, Some(1.0)]);
    assert_eq!(r.gaps, [Gap { after_line: 3, steps: 2 }]);
}

#[test]
fn values_at_a_stated_step_and_gzip() {
    let (_d, p) = write("v.txt", "# a comment\n10 20\n30\n");
    let r = rate(Trace::load(&p, &Format::Values { step: Duration::from_secs(10) }).unwrap());
    assert_eq!(r.rates, [Some(1.0), Some(2.0), Some(3.0)]);
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("v.txt.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, b"4 5 6").unwrap();
    enc.finish().unwrap();
    let r = rate(Trace::load(&gz, &Format::Auto).unwrap());
    assert_eq!(r.rates, [Some(4.0), Some(5.0), Some(6.0)]);
}

#[test]
fn times_in_every_shape_the_traces_use() {
    assert_eq!(parse_time("1998-04-30T21:30:00Z"), Ok(893_971_800.0));
    assert_eq!(parse_time("1995-07-01T00:00:00-04:00"), Ok(804_571_200.0));
    assert_eq!(parse_time("2023-11-16 18:17:03.9799600"), Ok(1_700_158_623.979_96));
    assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000.5));
    assert!(parse_time("noon").is_err());
}

/// Layout settings refine the guess (a step for plain values, columns for a
/// CSV whose columns are not in the usual order) and are refused where they
/// do not fit, instead of being ignored.
#[test]
fn layout_settings_refine_the_guess_or_are_refused() {
    use moontide_sim::trace::Layout;
    let five = Layout { step: Some(Duration::from_secs(5)), ..Layout::default() };
    let (_d, values) = write("v.txt", "10\n20\n");
    let r = rate(Trace::load_with(&values, &Format::Auto, &five).unwrap());
    assert_eq!((r.step, r.rates), (Duration::from_secs(5), vec![Some(2.0), Some(4.0)]));
    let r = rate(Trace::load_with(&values, &Format::Auto, &Layout::default()).unwrap());
    assert_eq!(r.step, Duration::from_secs(1), "1 s unless told");

    let (_d, swapped) = write("swapped.csv", "requests,minute\n60,2020-01-01T00:00:00Z\n120,2020-01-01T00:01:00Z\n");
    let columns = Layout { time: Some("minute".into()), count: Some("requests".into()), ..Layout::default() };
    let r = rate(Trace::load_with(&swapped, &Format::Auto, &columns).unwrap());
    assert_eq!((r.step, r.rates), (Duration::from_secs(60), vec![Some(1.0), Some(2.0)]));
    let err = Trace::load(&swapped, &Format::Auto).unwrap_err().to_string();
    assert!(
        err.contains(":2: `2020-01-01T00:00:00Z` is not a number"),
        "without the columns the guess fails at the line: {err}"
    );

    let (_d, requests) = write("req.csv", "t,in,out\n1,5,6\n2,5,6\n");
    let misfits = [
        (&swapped, five.clone(), "a step is for plain values"),
        (&requests, five.clone(), "a step is for plain values"),
        (&values, Layout { time: Some("t".into()), ..Layout::default() }, "this trace is plain values"),
        (&requests, Layout { count: Some("in".into()), ..Layout::default() }, "a row per request"),
    ];
    for (path, layout, want) in misfits {
        let err = Trace::load_with(path, &Format::Auto, &layout).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()) && err.contains(want), "{layout:?}: {err}");
    }
    // an explicit format takes them the same way
    let r = rate(Trace::load_with(&values, &Format::Values { step: Duration::from_secs(1) }, &five).unwrap());
    assert_eq!(r.step, Duration::from_secs(5));
    let csv = Format::RateCsv { time: "0".into(), count: "1".into() };
    assert!(Trace::load_with(&swapped, &csv, &five).is_err());
}
