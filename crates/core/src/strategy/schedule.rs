//! `schedule`: cron-style windows that keep a floor (`min`) or a count
//! (`count`) while open, in a time zone. Combined with the other checks by
//! the safest-wins rule, other checks may ask for more; a floor alone never
//! scales in, a count alone sets the count.
//!
//! ```toml
//! [policies.web.checks.office_hours]
//! strategy = "schedule"
//! timezone = "Europe/Paris"
//! windows = [
//!   { cron = "0 8 * * MON-FRI", duration = "10h", min = 10 },
//!   { cron = "30 19 * * *", duration = "1h", count = 25, name = "evening batch" },
//! ]
//! ```
//!
//! Cron expressions have five fields (minute hour day-of-month month
//! day-of-week, Vixie cron's meaning: Sunday is 0 or 7) or six with seconds
//! first. A window is open from each time its expression matches, for
//! `duration`. Outside every window the check has no opinion.

use super::Recommendation;
use crate::duration::{format as fmt_d, serde_text};
use crate::observation::Observation;
use crate::time::Timestamp;
use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::Duration;

fn utc() -> String {
    "UTC".into()
}

/// Parameters of the `schedule` strategy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The IANA time zone the expressions are read in, like "Europe/Paris" (default UTC).
    #[serde(default = "utc")]
    pub timezone: String,
    /// The windows; when several are open the largest count wins.
    pub windows: Vec<ScheduleWindow>,
}

/// One recurring window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleWindow {
    /// When it opens: a cron expression.
    pub cron: String,
    /// How long it stays open.
    #[serde(with = "serde_text")]
    pub duration: Duration,
    /// At least this many replicas while open: a floor, which holds the count
    /// up under the other checks and never scales in on its own.
    #[serde(default)]
    pub min: Option<u32>,
    /// This many replicas while open: alone it sets the count (scaling in
    /// too); with other checks, safest wins.
    #[serde(default)]
    pub count: Option<u32>,
    /// A name for the reasons (default: the expression).
    #[serde(default)]
    pub name: Option<String>,
}

impl ScheduleWindow {
    fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.cron)
    }

    fn replicas(&self) -> u32 {
        self.min.or(self.count).unwrap_or(0)
    }
}

/// The windows open at some time, and when the next one opens.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenWindows<'a> {
    /// Each open window with the time it opened.
    pub open: Vec<(&'a ScheduleWindow, Timestamp)>,
    /// When the next window opens.
    pub next: Option<Timestamp>,
}

/// What is wrong with a cron expression croner refused, in the user's terms:
/// the field at fault, as written (croner's own message names the field
/// rewritten, `mon-fry` as `1-FRY`), with what that field takes.
fn explain(expr: &str, err: croner::errors::CronError) -> String {
    const FIVE: [(&str, &str); 5] = [
        ("minute", "0-59"),
        ("hour", "0-23"),
        ("day-of-month", "1-31, L, W"),
        ("month", "1-12 or JAN-DEC"),
        ("day-of-week", "0-7 or SUN-SAT (0 and 7 are Sunday), L, #"),
    ];
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let names: Vec<(&str, &str)> = match fields.len() {
        5 => FIVE.to_vec(),
        6 => [("second", "0-59")].into_iter().chain(FIVE).collect(),
        7 => [("second", "0-59")].into_iter().chain(FIVE).chain([("year", "1-4999")]).collect(),
        1 if expr.trim_start().starts_with('@') => return err.to_string(),
        n => {
            return format!(
                "it has {n} field(s); give 5 (minute hour day-of-month month day-of-week), \
                 6 (a second first) or 7 (and a year last)"
            );
        }
    };
    // each field alone, the others `*`: the first that croner refuses is the culprit
    for (i, (field, (name, takes))) in fields.iter().zip(&names).enumerate() {
        let alone: Vec<&str> = (0..fields.len()).map(|j| if j == i { *field } else { "*" }).collect();
        if let Err(e) = croner::Cron::from_str(&alone.join(" ")) {
            return format!(
                "field {} ({name}) `{field}` is not valid: it takes {takes}, with `*`, `,`, `-` and `/` (croner: {e})",
                i + 1
            );
        }
    }
    err.to_string()
}

impl Schedule {
    fn zone(&self) -> Result<chrono_tz::Tz, String> {
        chrono_tz::Tz::from_str(&self.timezone).map_err(|_| {
            format!("`timezone`: unknown time zone `{}` (use an IANA name like \"Europe/Paris\")", self.timezone)
        })
    }

    /// Problems with the parameters.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if let Err(e) = self.zone() {
            errs.push(e);
        }
        if self.windows.is_empty() {
            errs.push("`windows` is empty: give at least one { cron, duration, min }".into());
        }
        for (i, w) in self.windows.iter().enumerate() {
            let at = format!("windows[{i}]");
            match croner::Cron::from_str(&w.cron) {
                Err(e) => {
                    errs.push(format!("{at}.cron: `{}` is not a cron expression: {}", w.cron, explain(&w.cron, e)))
                }
                // a window that can never open (Feb 31, a year gone by) is a mistake, and
                // each tick would search for its next opening in vain
                Ok(cron) if cron.find_next_occurrence(&Utc::now(), false).is_err() => {
                    errs.push(format!("{at}.cron: `{}` never matches from now on", w.cron))
                }
                Ok(_) => {}
            }
            if w.duration.is_zero() {
                errs.push(format!("{at}.duration: must be longer than 0s"));
            }
            if w.min.is_some() == w.count.is_some() {
                errs.push(format!("{at}: give exactly one of `min` or `count`"));
            }
        }
        errs
    }

    /// The windows open at `now` with when each opened, and when the next one opens.
    pub fn open_at(&self, now: Timestamp) -> Result<OpenWindows<'_>, String> {
        let tz = self.zone()?;
        let at = Utc
            .timestamp_millis_opt(now.as_millis())
            .single()
            .ok_or_else(|| format!("time {now} is out of range"))?
            .with_timezone(&tz);
        let mut open = Vec::new();
        let mut next: Option<Timestamp> = None;
        for w in &self.windows {
            let cron = croner::Cron::from_str(&w.cron).map_err(|e| format!("`{}`: {e}", w.cron))?;
            let opened = cron
                .find_previous_occurrence(&at, true)
                .ok()
                .map(|prev| Timestamp::from_millis(prev.timestamp_millis()))
                .filter(|&opened| opened <= now && now < opened.plus(w.duration))
                .or_else(|| {
                    // in the hour a daylight-saving change repeats, the search back from
                    // now can miss an opening made within the window's duration: look
                    // forward from the start of that span too
                    let from = at - chrono::Duration::from_std(w.duration).ok()?;
                    let first = cron.find_next_occurrence(&from, true).ok()?;
                    let opened = Timestamp::from_millis(first.timestamp_millis());
                    let matches = cron.is_time_matching(&first).unwrap_or(false);
                    (matches && opened <= now && now < opened.plus(w.duration)).then_some(opened)
                });
            if let Some(opened) = opened {
                open.push((w, opened));
            }
            if let Ok(n) = cron.find_next_occurrence(&at, false) {
                let t = Timestamp::from_millis(n.timestamp_millis());
                if t > now {
                    next = Some(next.map_or(t, |x| x.min(t)));
                }
            }
        }
        Ok(OpenWindows { open, next })
    }

    /// Recommends the largest count among the open windows; no opinion when
    /// none is open. With only `min` windows open it is a floor (it never
    /// scales in on its own); a `count` window open makes it a count.
    pub fn decide(&self, obs: &Observation<'_>) -> Recommendation {
        let OpenWindows { open, next } = match self.open_at(obs.now) {
            Ok(x) => x,
            Err(e) => return Recommendation::failed(e),
        };
        let Some((w, opened)) = open.iter().max_by_key(|(w, _)| (w.replicas(), w.count.is_some())) else {
            let next = next.map(|t| format!("; the next opens in {}", fmt_d(t.since(obs.now)))).unwrap_or_default();
            return Recommendation::none(format!("no window open{next}"));
        };
        let n = w.replicas();
        let closes = fmt_d(opened.plus(w.duration).since(obs.now));
        let when = if w.name.is_some() { format!("{}, {}", w.cron, self.timezone) } else { self.timezone.clone() };
        let why = |what: String| format!("window `{}` ({when}) open, closes in {closes}: {what}", w.label());
        let what = if w.count.is_some() { format!("{n}") } else { format!("at least {n}") };
        match open.iter().find(|(w, _)| w.count.is_some()) {
            // a larger floor and a count open together: the floor's number, as a count
            Some((c, _)) if w.count.is_none() => {
                Recommendation::want(n, why(format!("{what}, a count while `{}` is open", c.label())))
            }
            Some(_) => Recommendation::want(n, why(what)),
            None => Recommendation::at_least(n, why(what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn schedule(tz: &str, windows: &[(&str, u64, Option<u32>, Option<u32>)]) -> Schedule {
        Schedule {
            timezone: tz.into(),
            windows: windows
                .iter()
                .map(|(cron, hours, min, count)| ScheduleWindow {
                    cron: cron.to_string(),
                    duration: Duration::from_secs(hours * 3600),
                    min: *min,
                    count: *count,
                    name: None,
                })
                .collect(),
        }
    }

    /// A UTC time as a timestamp.
    fn utc_at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Timestamp {
        Timestamp::from_millis(Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap().timestamp_millis())
    }

    fn decide(s: &Schedule, now: Timestamp) -> Recommendation {
        let series = BTreeMap::new();
        let obs = Observation {
            now,
            interval: Duration::from_secs(10),
            current: 3,
            ready: 3,
            min: 1,
            max: 50,
            series: &series,
        };
        s.decide(&obs)
    }

    #[test]
    fn a_window_is_a_floor_in_its_time_zone() {
        // 08:00-18:00 Paris time on weekdays; Paris is UTC+1 in January
        let s = schedule("Europe/Paris", &[("0 8 * * MON-FRI", 10, Some(10), None)]);
        // Wednesday 2026-01-07 07:30 UTC = 08:30 Paris: open
        let r = decide(&s, utc_at(2026, 1, 7, 7, 30));
        assert_eq!(r.desired, Some(10), "{}", r.reason);
        assert!(r.floor, "a `min` window is a floor");
        assert!(
            r.reason.contains("window `0 8 * * MON-FRI` (Europe/Paris) open, closes in 9h30m: at least 10"),
            "{}",
            r.reason
        );
        // 06:59 UTC = 07:59 Paris: not yet
        let r = decide(&s, utc_at(2026, 1, 7, 6, 59));
        assert_eq!(r.desired, None);
        assert!(r.reason.contains("the next opens in 1m"), "{}", r.reason);
        // 17:00 UTC = 18:00 Paris: closed
        assert_eq!(decide(&s, utc_at(2026, 1, 7, 17, 0)).desired, None);
        // Saturday: closed
        assert_eq!(decide(&s, utc_at(2026, 1, 10, 9, 0)).desired, None);
        // in July Paris is UTC+2: 06:30 UTC = 08:30 Paris, open
        assert_eq!(decide(&s, utc_at(2026, 7, 8, 6, 30)).desired, Some(10));
    }

    /// Daylight-saving nights in Paris: 02:30 does not exist on the spring
    /// one (the clocks go from 02:00 to 03:00, 01:00 UTC) and comes twice on
    /// the autumn one (00:30 and 01:30 UTC).
    #[test]
    fn a_window_on_a_daylight_saving_night_opens_once_for_its_whole_duration() {
        let s = schedule("Europe/Paris", &[("30 2 * * *", 1, Some(5), None)]);
        let open = |m, d, h, min| decide(&s, utc_at(2026, m, d, h, min)).desired == Some(5);
        // spring: it opens when the clocks jump, at 03:00 (01:00 UTC), for an hour
        assert!(!open(3, 29, 0, 40));
        assert!(open(3, 29, 1, 5) && open(3, 29, 1, 40));
        assert!(!open(3, 29, 2, 10));
        // autumn: open from the first 02:30 (00:30 UTC) for its full hour, through the
        // repeated hour, and not again at the second 02:30
        assert!(!open(10, 25, 0, 10));
        assert!(open(10, 25, 0, 40));
        let r = decide(&s, utc_at(2026, 10, 25, 1, 10));
        assert_eq!(r.desired, Some(5), "the repeated hour cut the window short: {}", r.reason);
        assert!(r.reason.contains("closes in 20m"), "{}", r.reason);
        assert!(!open(10, 25, 1, 40) && !open(10, 25, 2, 10));
    }

    #[test]
    fn overlapping_windows_take_the_largest_and_sunday_is_zero() {
        let s = schedule("UTC", &[("0 0 * * 0", 24, Some(4), None), ("0 12 * * *", 2, None, Some(9))]);
        // Sunday 2026-01-11 13:00 UTC: both open
        let r = decide(&s, utc_at(2026, 1, 11, 13, 0));
        assert_eq!(r.desired, Some(9), "{}", r.reason);
        assert!(r.reason.contains(": 9"), "{}", r.reason);
        assert!(!r.floor, "a `count` window open makes it a count");
        // Sunday 15:00: only the Sunday floor
        let r = decide(&s, utc_at(2026, 1, 11, 15, 0));
        assert_eq!(r.desired, Some(4));
        assert!(r.reason.contains("at least 4"), "{}", r.reason);
        assert!(r.floor);
        // a larger floor open with a count: the floor's number, as a count
        let s = schedule("UTC", &[("0 0 * * 0", 24, Some(12), None), ("0 12 * * *", 2, None, Some(9))]);
        let r = decide(&s, utc_at(2026, 1, 11, 13, 0));
        assert_eq!(r.desired, Some(12));
        assert!(!r.floor);
        assert!(r.reason.contains("at least 12, a count while `0 12 * * *` is open"), "{}", r.reason);
    }

    #[test]
    fn validation_names_what_is_wrong() {
        let bad = schedule("Mars/Olympus", &[("61 * * * *", 0, Some(1), Some(2))]);
        let errs = bad.validate();
        assert!(errs.iter().any(|e| e.contains("unknown time zone `Mars/Olympus`")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("windows[0].cron")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("windows[0].duration")), "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("exactly one of `min` or `count`")), "{errs:?}");
        assert!(schedule("UTC", &[]).validate()[0].contains("`windows` is empty"));
        for never in ["0 0 31 2 *", "0 0 0 1 1 * 2020"] {
            let errs = schedule("UTC", &[(never, 60, Some(2), None)]).validate();
            assert!(errs.iter().any(|e| e.contains("never matches")), "{never}: {errs:?}");
        }
        assert!(schedule("America/New_York", &[("*/15 9-17 * * 1-5", 1, Some(2), None)]).validate().is_empty());
    }

    #[test]
    fn a_bad_cron_expression_names_its_field_as_written() {
        let err = |cron: &str| schedule("UTC", &[(cron, 60, Some(2), None)]).validate().join("\n");
        let e = err("0 8 * * mon-fry");
        assert!(e.contains("field 5 (day-of-week) `mon-fry` is not valid: it takes 0-7 or SUN-SAT"), "{e}");
        let e = err("61 8 * * *");
        assert!(e.contains("field 1 (minute) `61`"), "{e}");
        let e = err("0 0 8 * * * 99999");
        assert!(e.contains("field 7 (year) `99999`"), "{e}");
        let e = err("0 8 * *");
        assert!(e.contains("it has 4 field(s); give 5"), "{e}");
        assert!(err("@hourly").is_empty(), "nicknames pass through");
        assert!(!err("@fortnightly").is_empty());
    }
}
