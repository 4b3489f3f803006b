//! Metric readings and the short history of each metric a policy keeps.

use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// How a reading turned out.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadingStatus {
    /// A fresh value read this tick.
    Ok,
    /// A value was read but it is older than the allowed age.
    Stale,
    /// Nothing usable was read (timeout, HTTP error, bad payload, missing field).
    Failed,
    /// A value was read, implausibly far from the recent series: held back
    /// until the next reading confirms it (the sanity check).
    Held,
}

/// One metric's reading in one tick, as recorded in the decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The policy's name for the metric.
    pub metric: String,
    /// The source it was read from.
    pub source: String,
    /// What was asked of the source (JSON pointer, host metric name, ...).
    pub query: String,
    /// When it was read.
    pub at: Timestamp,
    /// The value, when one was read (also kept for stale readings, for the record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Fresh, stale or failed.
    pub status: ReadingStatus,
    /// Why the reading is stale or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Input {
    /// The value if, and only if, the reading is fresh.
    pub fn usable(&self) -> Option<f64> {
        match self.status {
            ReadingStatus::Ok => self.value,
            _ => None,
        }
    }
}

/// One point of a series: a usable value, or a gap where the reading failed or was stale.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Point {
    /// When it was read.
    pub at: Timestamp,
    /// The value, or `None` for a failed or stale reading.
    pub value: Option<f64>,
}

/// The recent history of one metric, oldest first, bounded in age and length.
#[derive(Clone, Debug, Default)]
pub struct Series {
    points: VecDeque<Point>,
}

/// Most points a series keeps, whatever its retention.
pub const MAX_POINTS: usize = 100_000;

impl Series {
    /// An empty series.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a point and drops those older than `retention` before it. A
    /// point older than the newest means the clock went back: the points
    /// from the "future" can no longer be trusted and are dropped.
    pub fn push(&mut self, point: Point, retention: Duration) {
        if self.points.back().is_some_and(|last| point.at < last.at) {
            self.points.clear();
        }
        self.points.push_back(point);
        let cutoff = point.at.minus(retention);
        while self.points.len() > MAX_POINTS || self.points.front().is_some_and(|p| p.at < cutoff) {
            self.points.pop_front();
        }
    }

    /// The newest point.
    pub fn latest(&self) -> Option<Point> {
        self.points.back().copied()
    }

    /// All points, oldest first.
    pub fn points(&self) -> impl DoubleEndedIterator<Item = &Point> + ExactSizeIterator {
        self.points.iter()
    }

    /// Number of points kept.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when no point is kept.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// How long `pred` has held without a break, ending at the newest point.
    ///
    /// A failed reading, a value for which `pred` is false, or a gap between
    /// two points longer than `max_gap` ends the run. Returns `None` when the
    /// newest point does not satisfy `pred` (or the series is empty), else the
    /// time from the first point of the run to the newest point.
    pub fn held_for(&self, pred: impl Fn(f64) -> bool, max_gap: Duration) -> Option<Duration> {
        let mut iter = self.points.iter().rev();
        let newest = iter.next()?;
        if !newest.value.is_some_and(&pred) {
            return None;
        }
        let mut start = newest.at;
        for p in iter {
            if !p.value.is_some_and(&pred) || start.since(p.at) > max_gap {
                break;
            }
            start = p.at;
        }
        Some(newest.at.since(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, Option<f64>)]) -> Series {
        let mut s = Series::new();
        for &(t, v) in points {
            s.push(Point { at: Timestamp::from_secs(t), value: v }, Duration::from_secs(3600));
        }
        s
    }

    #[test]
    fn held_for_measures_the_unbroken_run() {
        let gap = Duration::from_secs(25);
        let above = |v: f64| v > 80.0;
        type Points = &'static [(i64, Option<f64>)];
        let cases: &[(Points, Option<u64>)] = &[
            (&[], None),
            (&[(0, Some(90.0))], Some(0)),
            (&[(0, Some(90.0)), (10, Some(95.0)), (20, Some(85.0))], Some(20)),
            (&[(0, Some(90.0)), (10, Some(50.0)), (20, Some(85.0))], Some(0)),
            (&[(0, Some(90.0)), (10, None), (20, Some(85.0))], Some(0)),
            (&[(0, Some(90.0)), (10, Some(95.0)), (20, Some(50.0))], None),
            (&[(0, Some(90.0)), (10, Some(95.0)), (20, None)], None),
            // a 40 s hole (a restart, say) breaks the run
            (&[(0, Some(90.0)), (40, Some(95.0)), (50, Some(85.0))], Some(10)),
        ];
        for (points, want) in cases {
            let got = series(points).held_for(above, gap);
            assert_eq!(got, want.map(Duration::from_secs), "{points:?}");
        }
    }

    #[test]
    fn retention_and_order_are_enforced() {
        let mut s = Series::new();
        let keep = Duration::from_secs(30);
        for t in 0..10 {
            s.push(Point { at: Timestamp::from_secs(t * 10), value: Some(t as f64) }, keep);
        }
        assert_eq!(s.len(), 4); // 60, 70, 80, 90
        assert_eq!(s.points().next().unwrap().at, Timestamp::from_secs(60));
        // the clock went back: the future is forgotten, the new point kept
        s.push(Point { at: Timestamp::from_secs(5), value: Some(1.0) }, keep);
        assert_eq!(s.len(), 1);
        assert_eq!(s.latest().unwrap().at, Timestamp::from_secs(5));
    }

    #[test]
    fn only_fresh_inputs_are_usable() {
        let mut i = Input {
            metric: "cpu".into(),
            source: "app".into(),
            query: "/cpu".into(),
            at: Timestamp::from_secs(1),
            value: Some(3.0),
            status: ReadingStatus::Ok,
            error: None,
        };
        assert_eq!(i.usable(), Some(3.0));
        i.status = ReadingStatus::Stale;
        assert_eq!(i.usable(), None);
    }
}
