//! The decision store: an embedded SQLite database in the state directory.
//!
//! One row per decision, with the full record as JSON beside the columns
//! used for filtering. Writes go through a mutex on one connection, off the
//! async threads.

use moontide_core::{Decision, Timestamp};
use rusqlite::{Connection, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "moontide.db";

/// Actuations (scaled or failed decisions) of each policy that pruning keeps, however old.
pub const KEEP_ACTUATIONS: usize = 50;

/// Decisions deleted per statement when pruning.
const PRUNE_BATCH: usize = 10_000;

/// Refused API requests the audit log keeps at most (anyone who reaches the
/// port can add them; the changes operators made are never capped).
pub const KEEP_REFUSED: usize = 10_000;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory could not be created.
    #[error("cannot create state directory {}: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A store was to be read, and there is none.
    #[error("no decision store in {} (no {DB_FILE} there)", path.display())]
    Missing {
        /// The directory.
        path: PathBuf,
    },
    /// SQLite failed.
    #[error("decision store {}: {source}", path.display())]
    Sql {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A stored record could not be decoded.
    #[error("decision store {}: record {id} is unreadable: {source}", path.display())]
    Record {
        /// The database file.
        path: PathBuf,
        /// The row.
        id: i64,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    /// When.
    pub at: Timestamp,
    /// The token's name (`-` when no known token was given).
    pub who: String,
    /// What was asked: method and path.
    pub action: String,
    /// The HTTP status answered.
    pub status: u16,
    /// What changed, or why it was refused.
    pub detail: String,
}

/// A handle to the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

/// A filter for [`Store::list`].
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Only this policy.
    pub policy: Option<String>,
    /// Only this outcome kind (`hold`, `scaled`, ...).
    pub outcome: Option<String>,
    /// Only at or after this time.
    pub since: Option<Timestamp>,
    /// Only before this time.
    pub until: Option<Timestamp>,
    /// At most this many, newest first.
    pub limit: usize,
}

/// An actuation that was started: written before the target is told, cleared once the outcome is recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// When it started.
    pub at: Timestamp,
    /// The count before.
    pub from: u32,
    /// The count asked for.
    pub to: u32,
    /// The idempotency key sent with it.
    pub key: String,
}

/// The tables and indexes of a store.
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        policy TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        current INTEGER NOT NULL,
        desired INTEGER NOT NULL,
        reason TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS decisions_policy_at ON decisions (policy, at_ms);
    CREATE TABLE IF NOT EXISTS check_state (
        policy TEXT NOT NULL,
        check_name TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (policy, check_name)
    );
    CREATE TABLE IF NOT EXISTS pending (
        policy TEXT PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        from_n INTEGER NOT NULL,
        to_n INTEGER NOT NULL,
        key TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS controls (
        policy TEXT PRIMARY KEY,
        at_ms INTEGER NOT NULL,
        state TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        who TEXT NOT NULL,
        action TEXT NOT NULL,
        status INTEGER NOT NULL,
        detail TEXT NOT NULL
    );";

impl Store {
    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir { path: dir.to_path_buf(), source })?;
        let path = dir.join(DB_FILE);
        let sql = |source| StoreError::Sql { path: path.clone(), source };
        let conn = Connection::open(&path).map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sql)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Store { path, conn: Arc::new(Mutex::new(conn)) })
    }

    /// A store in memory, gone when the last handle is dropped (for a dry run
    /// that must not touch the daemon's store).
    pub fn in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let sql = |source| StoreError::Sql { path: path.clone(), source };
        let conn = Connection::open_in_memory().map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Store { path, conn: Arc::new(Mutex::new(conn)) })
    }

    /// Opens an existing store read-only-in-spirit: fails if there is none.
    pub fn open_existing(dir: &Path) -> Result<Store, StoreError> {
        if !dir.join(DB_FILE).exists() {
            return Err(StoreError::Missing { path: dir.to_path_buf() });
        }
        Store::open(dir)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|source| StoreError::Sql { path: self.path.clone(), source })
    }

    /// Runs `f` on a clone of the store on Tokio's blocking pool (SQLite
    /// blocks), so async code never stalls the runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(store)).await.unwrap_or_else(|e| {
            Err(StoreError::Sql {
                path: self.path.clone(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })
        })
    }

    /// Appends a decision.
    pub fn append(&self, d: &Decision) -> Result<(), StoreError> {
        let record = serde_json::to_string(d).map_err(|source| StoreError::Record {
            path: self.path.clone(),
            id: -1,
            source,
        })?;
        self.with(|c| {
            c.execute(
                "INSERT INTO decisions (policy, at_ms, outcome, current, desired, reason, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![d.policy, d.at.as_millis(), d.outcome.kind(), d.current, d.desired, d.reason, record],
            )
            .map(|_| ())
        })
    }

    /// Appends a decision from async code without blocking the runtime.
    pub async fn append_async(&self, d: Decision) -> Result<(), StoreError> {
        self.blocking(move |store| store.append(&d)).await
    }

    /// Records who did what through the API (a token's name, never its value).
    pub fn audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO audit (at_ms, who, action, status, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![e.at.as_millis(), e.who, e.action, e.status, e.detail],
            )
            .map(|_| ())
        })
    }

    /// The latest audit entries, newest first.
    pub fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.with(|c| {
            let mut stmt =
                c.prepare("SELECT at_ms, who, action, status, detail FROM audit ORDER BY id DESC LIMIT ?1")?;
            let rows = stmt.query_map(params![limit as i64], |r| {
                Ok(AuditEntry {
                    at: Timestamp::from_millis(r.get(0)?),
                    who: r.get(1)?,
                    action: r.get(2)?,
                    status: r.get(3)?,
                    detail: r.get(4)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Decisions matching `q`, newest first.
    pub fn list(&self, q: &Query) -> Result<Vec<Decision>, StoreError> {
        let rows: Vec<(i64, String)> = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, record FROM decisions
                 WHERE (?1 IS NULL OR policy = ?1) AND (?2 IS NULL OR outcome = ?2)
                   AND (?3 IS NULL OR at_ms >= ?3) AND (?4 IS NULL OR at_ms < ?4)
                 ORDER BY at_ms DESC, id DESC LIMIT ?5",
            )?;
            let rows = stmt.query_map(
                params![
                    q.policy,
                    q.outcome,
                    q.since.map(|t| t.as_millis()),
                    q.until.map(|t| t.as_millis()),
                    q.limit as i64
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            rows.collect()
        })?;
        // A record this version cannot read (written by a newer one, or damaged)
        // is skipped with a warning rather than hiding every other decision.
        Ok(rows
            .into_iter()
            .filter_map(|(id, json)| match serde_json::from_str(&json) {
                Ok(d) => Some(d),
                Err(source) => {
                    tracing::warn!("{}", StoreError::Record { path: self.path.clone(), id, source });
                    None
                }
            })
            .collect())
    }

    /// A policy's decisions since `since`, oldest first (to rebuild windows after a restart).
    pub fn since(&self, policy: &str, since: Timestamp, limit: usize) -> Result<Vec<Decision>, StoreError> {
        let mut v =
            self.list(&Query { policy: Some(policy.into()), since: Some(since), limit, ..Default::default() })?;
        v.reverse();
        Ok(v)
    }

    /// Saves the latest state of a check (a Lua check's `ctx.state`), replacing the previous one.
    pub async fn save_state(&self, policy: &str, check: &str, at: Timestamp, state: String) -> Result<(), StoreError> {
        let (policy, check) = (policy.to_string(), check.to_string());
        self.blocking(move |store| {
            store.with(|c| {
                c.execute(
                    "INSERT INTO check_state (policy, check_name, at_ms, state) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (policy, check_name) DO UPDATE SET at_ms = ?3, state = ?4",
                    params![policy, check, at.as_millis(), state],
                )
                .map(|_| ())
            })
        })
        .await
    }

    /// The latest saved state of each check of a policy.
    pub fn states(&self, policy: &str) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let rows: Vec<(String, String)> = self.with(|c| {
            let mut stmt = c.prepare("SELECT check_name, state FROM check_state WHERE policy = ?1")?;
            let rows = stmt.query_map(params![policy], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        Ok(rows.into_iter().filter_map(|(k, v)| serde_json::from_str(&v).ok().map(|v| (k, v))).collect())
    }

    /// Notes an actuation about to start, so that one cut short by a crash is
    /// found and reconciled on the next start. Written synchronously: it must
    /// be on disk before the target is told anything.
    pub async fn begin_actuation(&self, policy: &str, p: Pending) -> Result<(), StoreError> {
        let policy = policy.to_string();
        self.blocking(move |store| {
            store.with(|c| {
                c.execute(
                    "INSERT INTO pending (policy, at_ms, from_n, to_n, key) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (policy) DO UPDATE SET at_ms = ?2, from_n = ?3, to_n = ?4, key = ?5",
                    params![policy, p.at.as_millis(), p.from, p.to, p.key],
                )
                .map(|_| ())
            })
        })
        .await
    }

    /// Clears a policy's pending actuation (it finished, one way or the other, and is recorded).
    pub fn clear_pending(&self, policy: &str) -> Result<(), StoreError> {
        self.with(|c| c.execute("DELETE FROM pending WHERE policy = ?1", params![policy]).map(|_| ()))
    }

    /// [`Store::clear_pending`] from async code.
    pub async fn end_actuation(&self, policy: &str) -> Result<(), StoreError> {
        let policy = policy.to_string();
        self.blocking(move |store| store.clear_pending(&policy)).await
    }

    /// An actuation of the policy that started and never finished (the process died in it).
    pub fn pending(&self, policy: &str) -> Result<Option<Pending>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT at_ms, from_n, to_n, key FROM pending WHERE policy = ?1")?;
            let mut rows = stmt.query_map(params![policy], |r| {
                Ok(Pending { at: Timestamp::from_millis(r.get(0)?), from: r.get(1)?, to: r.get(2)?, key: r.get(3)? })
            })?;
            rows.next().transpose()
        })
    }

    /// Takes in a policy's shared history (high availability: what the last
    /// owner recorded): decisions not yet here, the check states and the
    /// pending actuation (which replaces the local one). Returns the number
    /// of decisions added.
    pub async fn import(
        &self,
        policy: &str,
        decisions: &[Decision],
        states: &[(String, String)],
        pending: Option<Pending>,
    ) -> Result<usize, StoreError> {
        let policy = policy.to_string();
        let path = self.path.clone();
        let mut rows = Vec::new();
        for d in decisions {
            let record =
                serde_json::to_string(d).map_err(|source| StoreError::Record { path: path.clone(), id: -1, source })?;
            rows.push((d.at.as_millis(), d.outcome.kind(), d.current, d.desired, d.reason.clone(), record));
        }
        let states = states.to_vec();
        self.blocking(move |store| {
            let mut conn = store.conn.lock().unwrap_or_else(|p| p.into_inner());
            let sql = |source| StoreError::Sql { path: store.path.clone(), source };
            let tx = conn.transaction().map_err(sql)?;
            let mut added = 0;
            for (at, outcome, current, desired, reason, record) in rows {
                added += tx
                    .execute(
                        "INSERT INTO decisions (policy, at_ms, outcome, current, desired, reason, record)
                         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                         WHERE NOT EXISTS (SELECT 1 FROM decisions WHERE policy = ?1 AND at_ms = ?2)",
                        params![policy, at, outcome, current, desired, reason, record],
                    )
                    .map_err(sql)?;
            }
            for (check, state) in states {
                tx.execute(
                    "INSERT INTO check_state (policy, check_name, at_ms, state) VALUES (?1, ?2, 0, ?3)
                     ON CONFLICT (policy, check_name) DO UPDATE SET state = ?3",
                    params![policy, check, state],
                )
                .map_err(sql)?;
            }
            match pending {
                Some(p) => tx.execute(
                    "INSERT INTO pending (policy, at_ms, from_n, to_n, key) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (policy) DO UPDATE SET at_ms = ?2, from_n = ?3, to_n = ?4, key = ?5",
                    params![policy, p.at.as_millis(), p.from, p.to, p.key],
                ),
                None => tx.execute("DELETE FROM pending WHERE policy = ?1", params![policy]),
            }
            .map_err(sql)?;
            tx.commit().map_err(sql)?;
            Ok(added)
        })
        .await
    }

    /// Saves what operators set on a policy (JSON), replacing what was saved.
    pub fn save_control(&self, policy: &str, at: Timestamp, state: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO controls (policy, at_ms, state) VALUES (?1, ?2, ?3)
                 ON CONFLICT (policy) DO UPDATE SET at_ms = excluded.at_ms, state = excluded.state",
                params![policy, at.as_millis(), state],
            )
            .map(|_| ())
        })
    }

    /// What operators last set on a policy (JSON), if anything was saved.
    pub fn control(&self, policy: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT state FROM controls WHERE policy = ?1")?;
            let mut rows = stmt.query_map(params![policy], |r| r.get(0))?;
            rows.next().transpose()
        })
    }

    /// Deletes the decisions made before `before`, except each policy's
    /// last [`KEEP_ACTUATIONS`] actuations (a restart reads the count the
    /// target was brought to from them, however old). Deletes a batch at a
    /// time, so a tick writing meanwhile waits for one batch at most.
    /// Returns how many were deleted.
    pub fn prune(&self, before: Timestamp) -> Result<usize, StoreError> {
        let kept: Vec<i64> = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY policy ORDER BY at_ms DESC, id DESC) AS n
                 FROM decisions WHERE outcome IN ('scaled', 'failed')) WHERE n <= ?1",
            )?;
            let rows = stmt.query_map(params![KEEP_ACTUATIONS as i64], |r| r.get(0))?;
            rows.collect()
        })?;
        let kept = serde_json::to_string(&kept).unwrap_or_else(|_| "[]".into());
        self.delete_in_batches(
            "DELETE FROM decisions WHERE id IN (SELECT id FROM decisions WHERE at_ms < ?1
             AND id NOT IN (SELECT value FROM json_each(?2)) LIMIT ?3)",
            params![before.as_millis(), kept, PRUNE_BATCH as i64],
        )
    }

    /// Runs a `DELETE` whose last parameter limits it to [`PRUNE_BATCH`] rows
    /// until it deletes fewer, so a tick writing meanwhile waits for one batch
    /// at most. Returns how many rows were deleted.
    fn delete_in_batches(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self.with(|c| c.execute(sql, params))?;
            total += n;
            if n < PRUNE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Deletes, from the audit log, refused requests (status 400 and up)
    /// logged before `before` and all but the newest [`KEEP_REFUSED`]; the
    /// changes operators made stay. Returns how many were deleted.
    pub fn prune_audit(&self, before: Timestamp) -> Result<usize, StoreError> {
        self.delete_in_batches(
            "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE status >= 400 AND (at_ms < ?1
             OR id <= (SELECT id FROM audit WHERE status >= 400 ORDER BY id DESC LIMIT 1 OFFSET ?2))
             LIMIT ?3)",
            params![before.as_millis(), KEEP_REFUSED as i64, PRUNE_BATCH as i64],
        )
    }

    /// [`Store::prune_audit`] from async code without blocking the runtime.
    pub async fn prune_audit_async(&self, before: Timestamp) -> Result<usize, StoreError> {
        self.blocking(move |store| store.prune_audit(before)).await
    }

    /// [`Store::prune`] from async code without blocking the runtime.
    pub async fn prune_async(&self, before: Timestamp) -> Result<usize, StoreError> {
        self.blocking(move |store| store.prune(before)).await
    }

    /// The count the target was last brought to by a policy: the last
    /// successful actuation, or the part of a failed one that happened.
    pub fn last_scaled_to(&self, policy: &str) -> Result<Option<u32>, StoreError> {
        let rows: Vec<(i64, String)> = self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, record FROM decisions WHERE policy = ?1 AND outcome IN ('scaled', 'failed')
                 ORDER BY at_ms DESC, id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![policy, KEEP_ACTUATIONS as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })?;
        for (_, json) in rows {
            let Ok(d) = serde_json::from_str::<Decision>(&json) else { continue };
            if let Some((_, to)) = d.outcome.change() {
                return Ok(Some(to));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moontide_core::Outcome;

    fn decision(policy: &str, at: i64, outcome: Outcome) -> Decision {
        let mut d = Decision::skipped(policy, Timestamp::from_secs(at), 2, 2, "x");
        d.outcome = outcome;
        d.desired = 3;
        d
    }

    #[test]
    fn lists_filter_and_skip_unreadable_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.append(&decision("a", 10, Outcome::Hold)).unwrap();
        store.append(&decision("a", 20, Outcome::Scaled { from: 2, to: 3 })).unwrap();
        store.append(&decision("b", 30, Outcome::Hold)).unwrap();
        store
            .with(|c| {
                c.execute(
                    "INSERT INTO decisions (policy, at_ms, outcome, current, desired, reason, record)
                     VALUES ('a', 25000, 'hold', 1, 1, 'r', '{not json')",
                    [],
                )
            })
            .unwrap();
        let all_a = store.list(&Query { policy: Some("a".into()), limit: 10, ..Default::default() }).unwrap();
        assert_eq!(all_a.iter().map(|d| d.at.as_millis()).collect::<Vec<_>>(), [20_000, 10_000]);
        let scaled = store.list(&Query { outcome: Some("scaled".into()), limit: 10, ..Default::default() }).unwrap();
        assert_eq!(scaled.len(), 1);
        let since = store.since("a", Timestamp::from_secs(15), 10).unwrap();
        assert_eq!(since.len(), 1);
        assert_eq!(store.last_scaled_to("a").unwrap(), Some(3));
        assert_eq!(store.last_scaled_to("b").unwrap(), None);
        // reopening keeps everything
        drop(store);
        let again = Store::open(dir.path()).unwrap();
        assert_eq!(again.list(&Query { limit: 10, ..Default::default() }).unwrap().len(), 3);
        assert!(Store::open_existing(&dir.path().join("nope")).is_err());
    }

    #[test]
    fn pruning_deletes_old_decisions_but_keeps_each_policys_last_actuations() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // policy a: one old actuation, then only holds, old and new, more than a batch of them
        store.append(&decision("a", 5, Outcome::Scaled { from: 2, to: 7 })).unwrap();
        for i in 0..(PRUNE_BATCH as i64 + 5) {
            store.append(&decision("a", 10 + i % 1000, Outcome::Hold)).unwrap();
        }
        store.append(&decision("a", 5_000, Outcome::Hold)).unwrap();
        // policy b: more old actuations than are kept, then a new one
        for i in 0..(KEEP_ACTUATIONS as i64 + 10) {
            store.append(&decision("b", 100 + i, Outcome::Scaled { from: 1, to: 2 })).unwrap();
        }
        store.append(&decision("b", 6_000, Outcome::Scaled { from: 2, to: 4 })).unwrap();
        let deleted = store.prune(Timestamp::from_secs(2_000)).unwrap();
        // every old hold of a, and b's 11 oldest actuations (it keeps its last 50, one of them new)
        assert_eq!(deleted, PRUNE_BATCH + 5 + 11);
        let left = |p: &str| store.list(&Query { policy: Some(p.into()), limit: 1_000, ..Default::default() }).unwrap();
        let a: Vec<i64> = left("a").iter().map(|d| d.at.as_millis() / 1000).collect();
        assert_eq!(a, [5_000, 5], "the new hold and the old actuation stay");
        assert_eq!(store.last_scaled_to("a").unwrap(), Some(7), "a restart still finds the count a was brought to");
        let b = left("b");
        assert_eq!(b.len(), KEEP_ACTUATIONS);
        assert_eq!(b.last().unwrap().at.as_millis() / 1000, 100 + 11, "the oldest kept is the 12th");
        assert_eq!(store.last_scaled_to("b").unwrap(), Some(4));
        // nothing more to delete
        assert_eq!(store.prune(Timestamp::from_secs(2_000)).unwrap(), 0);
    }

    #[test]
    fn pruning_the_audit_log_drops_old_and_surplus_refusals_and_keeps_every_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let entry = |secs: i64, status: u16, detail: &str| AuditEntry {
            at: Timestamp::from_secs(secs),
            who: "-".into(),
            action: "POST /api/v1/policies/web/pause".into(),
            status,
            detail: detail.into(),
        };
        store.audit(&entry(10, 200, "old change")).unwrap();
        store.audit(&entry(11, 401, "old refusal")).unwrap();
        // a flood of refusals, new ones: more than are kept
        for i in 0..(KEEP_REFUSED as i64 + 7) {
            store.audit(&entry(3_000 + i, if i % 2 == 0 { 401 } else { 403 }, "refused")).unwrap();
        }
        store.audit(&entry(20_000, 200, "new change")).unwrap();
        let deleted = store.prune_audit(Timestamp::from_secs(2_000)).unwrap();
        assert_eq!(deleted, 1 + 7, "the old refusal and the 7 oldest of the flood");
        let log = store.audit_log(KEEP_REFUSED + 10).unwrap();
        assert_eq!(log.len(), KEEP_REFUSED + 2);
        assert_eq!(log.first().unwrap().detail, "new change");
        assert_eq!(log.last().unwrap().detail, "old change", "a change is kept however old");
        assert_eq!(log.iter().filter(|e| e.status >= 400).count(), KEEP_REFUSED);
        assert_eq!(log[log.len() - 2].at, Timestamp::from_secs(3_007), "the newest refusals are the ones kept");
        assert_eq!(store.prune_audit(Timestamp::from_secs(2_000)).unwrap(), 0);
    }
}
