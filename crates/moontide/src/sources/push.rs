//! `push`: other systems (a gateway, a job queue, a CI system) push metric
//! values to Moontide's server instead of Moontide pulling them:
//!
//! ```text
//! POST /push/SOURCE
//! Authorization: Bearer TOKEN
//! Content-Type: application/json
//!
//! {"pending_requests": 42, "inflight": 7}
//! ```
//!
//! Every push needs the source's token (compared in constant time). A body
//! is taken whole or not at all: one bad name or value refuses it and keeps
//! the values already held. A value older than `max_age` is stale, and a
//! policy never scales down on it.

use super::{QueryResult, Value};
use crate::secret::{Secret, SecretRef};
use moontide_core::Timestamp;
use moontide_core::duration::serde_text;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use subtle::ConstantTimeEq;

fn default_max_age() -> Duration {
    Duration::from_secs(60)
}

/// Most names one source holds.
pub const MAX_NAMES: usize = 1000;

/// `type = "push"`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Environment variable holding the token pushers must send.
    #[serde(default)]
    pub token_env: Option<String>,
    /// File holding the token pushers must send.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Values older than this are stale (default 60s).
    #[serde(default = "default_max_age", with = "serde_text")]
    pub max_age: Duration,
}

impl PushConfig {
    /// Problems with the settings.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        match (&self.token_env, &self.token_file) {
            (None, None) => errs.push("a push source needs a token: give token_env or token_file".into()),
            (Some(_), Some(_)) => errs.push("give either token_env or token_file, not both".into()),
            _ => {}
        }
        if self.max_age.is_zero() {
            errs.push("max_age must be longer than 0s".into());
        }
        errs
    }
}

/// A metric name pushers may use: `[A-Za-z_:][A-Za-z0-9_:.-]*`, at most 200 characters.
pub fn check_query(q: &str) -> Result<(), String> {
    let ok = q.len() <= 200
        && q.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && q.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{q}` is not a pushed metric name; use letters, digits, `_`, `:`, `.` and `-`, like \"pending_requests\""
        ))
    }
}

/// Why a push was refused, with the HTTP status it maps to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No token, or the wrong one (401).
    Unauthorized,
    /// The body is not what the endpoint takes (400), and why.
    BadBody(String),
}

/// What is told of each push taken: its names and values.
pub type Listener = Box<dyn Fn(&[(String, f64)]) + Send + Sync>;

/// A live `push` source: the values pushed to it, with when they came.
pub struct Push {
    token: Secret,
    max_age: Duration,
    values: Mutex<BTreeMap<String, (f64, Timestamp)>>,
    listeners: Mutex<Vec<Listener>>,
}

impl Push {
    /// Reads the token.
    pub fn new(name: &str, config: &PushConfig) -> Result<Self, String> {
        let token = SecretRef::new(config.token_env.clone(), config.token_file.clone())
            .load()
            .map_err(|e| format!("source `{name}`: {e}"))?
            .ok_or_else(|| format!("source `{name}`: a push source needs a token"))?;
        Ok(Push { token, max_age: config.max_age, values: Mutex::new(BTreeMap::new()), listeners: Mutex::default() })
    }

    /// Calls `f` with the values of each push taken (the engine wakes a policy at zero with it).
    pub fn on_push(&self, f: Listener) {
        self.listeners.lock().unwrap_or_else(|p| p.into_inner()).push(f);
    }

    /// How old a value may be.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Takes a push made at `now` with the bearer token `token`: all of its values, or none.
    pub fn accept(&self, token: Option<&str>, body: &[u8], now: Timestamp) -> Result<usize, Refused> {
        let expected = self.token.expose().as_bytes();
        if !token.is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected))) {
            return Err(Refused::Unauthorized);
        }
        let doc: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| Refused::BadBody(format!("the body is not JSON: {e}")))?;
        let obj = doc.as_object().ok_or_else(|| {
            Refused::BadBody("the body must be a JSON object of names and numbers, like {\"pending\": 12}".into())
        })?;
        if obj.is_empty() {
            return Err(Refused::BadBody("the body holds no values".into()));
        }
        let mut taken = Vec::with_capacity(obj.len());
        for (k, v) in obj {
            check_query(k).map_err(Refused::BadBody)?;
            let n = v
                .as_f64()
                .filter(|n| n.is_finite())
                .ok_or_else(|| Refused::BadBody(format!("`{k}` is {v}, not a number")))?;
            taken.push((k.clone(), n));
        }
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let new_names =
            |values: &BTreeMap<String, (f64, Timestamp)>| taken.iter().filter(|(k, _)| !values.contains_key(k)).count();
        if values.len() + new_names(&values) > MAX_NAMES {
            // make room: names not pushed within max_age are stale already
            values.retain(|_, (_, at)| now.since(*at) <= self.max_age);
            if values.len() + new_names(&values) > MAX_NAMES {
                return Err(Refused::BadBody(format!(
                    "a push source holds at most {MAX_NAMES} names pushed within its max_age ({})",
                    moontide_core::duration::format(self.max_age)
                )));
            }
        }
        for (k, v) in &taken {
            values.insert(k.clone(), (*v, now));
        }
        drop(values);
        for f in self.listeners.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            f(&taken);
        }
        Ok(taken.len())
    }

    /// The values pushed within `max_age` of `now`, as one JSON object of
    /// names and numbers: what a script-mode URL mapped to this source
    /// returns. A value older than that is left out, so a script reads it as
    /// missing rather than acting on what a gateway said long ago.
    pub fn document(&self, now: Timestamp) -> serde_json::Value {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = values
            .iter()
            .filter(|(_, (_, at))| now.since(*at) <= self.max_age)
            .map(|(k, (v, _))| (k.clone(), serde_json::json!(v)));
        serde_json::Value::Object(fresh.collect())
    }

    /// The latest value of each query, stamped with when it was pushed.
    pub fn read(&self, queries: &[String]) -> Vec<QueryResult> {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        queries
            .iter()
            .map(|q| match values.get(q) {
                Some(&(value, at)) => Ok(Value { value, measured_at: Some(at) }),
                None => Err(format!("nothing pushed yet for `{q}`")),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push() -> Push {
        Push {
            token: Secret::new("tok"),
            max_age: default_max_age(),
            values: Mutex::new(BTreeMap::new()),
            listeners: Mutex::default(),
        }
    }

    #[test]
    fn a_push_is_taken_whole_or_not_at_all() {
        let p = push();
        let t0 = Timestamp::from_secs(100);
        assert_eq!(p.accept(Some("tok"), br#"{"pending": 12, "inflight": 3.5}"#, t0), Ok(2));
        let got = p.read(&["pending".into(), "inflight".into(), "other".into()]);
        assert_eq!(got[0], Ok(Value { value: 12.0, measured_at: Some(t0) }));
        assert_eq!(got[1].as_ref().unwrap().value, 3.5);
        assert!(got[2].as_ref().unwrap_err().contains("nothing pushed yet for `other`"));
        // one bad value refuses the body, and what was held stays
        for (body, want) in [
            (&br#"{"pending": 99, "inflight": "lots"}"#[..], "`inflight` is \"lots\", not a number"),
            (br#"{"pending": 99, "bad name": 1}"#, "not a pushed metric name"),
            (br#"[1, 2]"#, "JSON object"),
            (br#"{}"#, "no values"),
            (br#"{"pending": 9"#, "not JSON"),
        ] {
            match p.accept(Some("tok"), body, Timestamp::from_secs(200)) {
                Err(Refused::BadBody(e)) => assert!(e.contains(want), "{e}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(p.read(&["pending".into()])[0].as_ref().unwrap().value, 12.0);
    }

    #[test]
    fn names_past_max_age_make_room_for_new_ones() {
        let p = push();
        let body = |from: usize| {
            let names: Vec<String> = (from..from + MAX_NAMES / 2).map(|i| format!("\"q{i}\": 1")).collect();
            format!("{{{}}}", names.join(", ")).into_bytes()
        };
        let t0 = Timestamp::from_secs(1_000);
        assert_eq!(p.accept(Some("tok"), &body(0), t0), Ok(MAX_NAMES / 2));
        assert_eq!(p.accept(Some("tok"), &body(MAX_NAMES / 2), t0.plus(Duration::from_secs(30))), Ok(MAX_NAMES / 2));
        // full, and every name fresh: a new one is refused, what is held stays
        let fresh = t0.plus(Duration::from_secs(45));
        match p.accept(Some("tok"), br#"{"late": 1}"#, fresh) {
            Err(Refused::BadBody(e)) => assert!(e.contains("at most 1000 names pushed within its max_age (1m)"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(p.read(&["q0".into()])[0].is_ok());
        // once the first half is past max_age, it makes room
        let later = t0.plus(Duration::from_secs(61));
        assert_eq!(p.accept(Some("tok"), br#"{"late": 1}"#, later), Ok(1));
        assert!(p.read(&["q0".into()])[0].as_ref().unwrap_err().contains("nothing pushed yet"));
        assert!(p.read(&["q999".into(), "late".into()]).iter().all(Result::is_ok));
    }

    #[test]
    fn the_token_is_required() {
        let p = push();
        let body = br#"{"pending": 1}"#;
        for token in [None, Some(""), Some("to"), Some("tok2"), Some("TOK")] {
            assert_eq!(p.accept(token, body, Timestamp::from_secs(1)), Err(Refused::Unauthorized), "{token:?}");
        }
        assert!(p.read(&["pending".into()])[0].is_err(), "a refused push leaves nothing behind");
    }

    #[test]
    fn the_document_holds_the_values_pushed_within_max_age() {
        let p = push();
        assert_eq!(p.document(Timestamp::from_secs(0)), serde_json::json!({}));
        p.accept(Some("tok"), br#"{"pending": 4, "inflight": 2}"#, Timestamp::from_secs(100)).unwrap();
        p.accept(Some("tok"), br#"{"pending": 7}"#, Timestamp::from_secs(150)).unwrap();
        assert_eq!(p.document(Timestamp::from_secs(160)), serde_json::json!({"pending": 7.0, "inflight": 2.0}));
        // 60 s later `inflight` is stale (max_age 60 s) and left out; `pending` is not yet
        assert_eq!(p.document(Timestamp::from_secs(200)), serde_json::json!({"pending": 7.0}));
        assert_eq!(p.document(Timestamp::from_secs(211)), serde_json::json!({}));
    }
}
