//! Statistics over a time window of a series: what Lua's `ctx.metrics.NAME`
//! helpers (and later the predictive strategy) compute. Failed readings are
//! skipped; a window holds the points with `now - window < at <= now`.

use crate::series::Series;
use crate::time::Timestamp;
use std::time::Duration;

/// The usable (time, value) points of `series` within `window` before `now`, oldest first.
pub fn points(series: &Series, now: Timestamp, window: Duration) -> Vec<(Timestamp, f64)> {
    let cut = now.minus(window);
    let mut out: Vec<(Timestamp, f64)> = series
        .points()
        .rev()
        .take_while(|p| p.at > cut)
        .filter(|p| p.at <= now)
        .filter_map(|p| p.value.map(|v| (p.at, v)))
        .collect();
    out.reverse();
    out
}

/// Mean, or `None` when the window holds no value.
pub fn avg(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Smallest value.
pub fn min(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::min)
}

/// Largest value.
pub fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::max)
}

/// The `p`-th percentile (0-100), interpolating linearly between the closest ranks.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() || !(0.0..=100.0).contains(&p) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = p / 100.0 * (v.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (rank - lo as f64))
}

/// Change per second between the first and last point (for counters:
/// requests served, bytes sent). `None` with fewer than two points.
pub fn rate(points: &[(Timestamp, f64)]) -> Option<f64> {
    let (first, last) = (points.first()?, points.last()?);
    let dt = last.0.since(first.0).as_secs_f64();
    (dt > 0.0).then(|| (last.1 - first.1) / dt)
}

/// Least-squares slope, in units per second. `None` with fewer than two
/// points or when they all share one time.
pub fn slope(points: &[(Timestamp, f64)]) -> Option<f64> {
    fit_slope(points).map(|(slope, _)| slope)
}

/// Least-squares slope, in units per second, with its standard error (how
/// far noise alone could move it; `None` with fewer than three points).
/// `None` with fewer than two points or when they all share one time.
pub fn fit_slope(points: &[(Timestamp, f64)]) -> Option<(f64, Option<f64>)> {
    if points.len() < 2 {
        return None;
    }
    let t0 = points[0].0;
    let n = points.len() as f64;
    let xs: Vec<f64> = points.iter().map(|p| p.0.since(t0).as_secs_f64()).collect();
    let mx = xs.iter().sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = xs.iter().zip(points).map(|(x, p)| (x - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let stderr = (points.len() > 2).then(|| {
        let sse: f64 = xs.iter().zip(points).map(|(x, p)| (p.1 - my - slope * (x - mx)).powi(2)).sum();
        (sse / (n - 2.0) / sxx).sqrt()
    });
    Some((slope, stderr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::Point;

    fn series(points: &[(i64, Option<f64>)]) -> Series {
        let mut s = Series::new();
        for &(t, v) in points {
            s.push(Point { at: Timestamp::from_secs(t), value: v }, Duration::from_secs(3600));
        }
        s
    }

    fn values(p: &[(Timestamp, f64)]) -> Vec<f64> {
        p.iter().map(|x| x.1).collect()
    }

    #[test]
    fn the_window_is_half_open_and_skips_failed_readings() {
        let s = series(&[(0, Some(1.0)), (10, Some(2.0)), (20, None), (30, Some(4.0)), (40, Some(5.0))]);
        let now = Timestamp::from_secs(40);
        assert_eq!(values(&points(&s, now, Duration::from_secs(30))), [4.0, 5.0]); // 10 is not > 40-30
        assert_eq!(values(&points(&s, now, Duration::from_secs(31))), [2.0, 4.0, 5.0]);
        assert_eq!(values(&points(&s, now, Duration::from_secs(3600))), [1.0, 2.0, 4.0, 5.0]);
        assert!(points(&s, now, Duration::ZERO).is_empty());
        // points after `now` (a replay looking back) are not seen
        assert_eq!(values(&points(&s, Timestamp::from_secs(15), Duration::from_secs(60))), [1.0, 2.0]);
    }

    #[test]
    fn statistics_on_known_values() {
        let v = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0];
        assert_eq!(avg(&v), Some(31.0 / 8.0));
        assert_eq!(min(&v), Some(1.0));
        assert_eq!(max(&v), Some(9.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(9.0));
        assert_eq!(percentile(&v, 50.0), Some(3.5)); // between 3 and 4
        assert_eq!(percentile(&[10.0, 20.0], 90.0), Some(19.0));
        assert_eq!(percentile(&v, 101.0), None);
        for f in [avg, min, max] {
            assert_eq!(f(&[]), None);
        }
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn rate_and_slope() {
        let t = Timestamp::from_secs;
        // a counter growing 5 per second with noise in the middle
        let p = [(t(0), 100.0), (t(10), 160.0), (t(20), 190.0), (t(30), 250.0)];
        assert_eq!(rate(&p), Some(5.0));
        let line = [(t(0), 1.0), (t(10), 3.0), (t(20), 5.0)];
        assert!((slope(&line).unwrap() - 0.2).abs() < 1e-12);
        let flat = [(t(0), 7.0), (t(60), 7.0)];
        assert_eq!(slope(&flat), Some(0.0));
        assert_eq!(rate(&[(t(0), 1.0)]), None);
        assert_eq!(slope(&[(t(0), 1.0)]), None);
        assert_eq!(slope(&[(t(5), 1.0), (t(5), 2.0)]), None);
        // an exact line has no error; two points give no estimate of it
        assert_eq!(fit_slope(&line).unwrap().1, Some(0.0));
        assert_eq!(fit_slope(&[(t(0), 1.0), (t(10), 2.0)]), Some((0.1, None)));
        // a zigzag: a small slope, and an error from the scatter about it
        // (x = 0, 1, 2, 3 s; y = 1, -1, 1, -1: slope -0.4, residuals 0.4, -1.2, 1.2, -0.4, SSE 3.2, Sxx 5)
        let zigzag: Vec<(Timestamp, f64)> =
            [1.0, -1.0, 1.0, -1.0].iter().enumerate().map(|(i, v)| (t(i as i64), *v)).collect();
        let (s, e) = fit_slope(&zigzag).unwrap();
        assert!((s + 0.4).abs() < 1e-12, "{s}");
        assert!((e.unwrap() - (3.2f64 / 2.0 / 5.0).sqrt()).abs() < 1e-12, "{e:?}");
    }
}
