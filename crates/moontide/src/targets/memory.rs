//! A count kept in memory, ready at once: what `moontide lua check --script
//! --config` scales instead of the policy's real target. Not a config kind.

use crate::targets::Status;
use moontide_core::Actuation;
use std::sync::Mutex;

/// A fleet that is only a number.
pub struct Memory {
    count: Mutex<u32>,
}

impl Memory {
    /// A fleet of `count` replicas.
    pub fn new(count: u32) -> Self {
        Memory { count: Mutex::new(count) }
    }

    fn count(&self) -> u32 {
        *self.count.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The count, all of it ready.
    pub fn status(&self) -> Status {
        let n = self.count();
        Status { current: n, ready: n, note: None }
    }

    /// Sets the count.
    pub fn scale(&self, desired: u32, key: &str) -> Actuation {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) = desired;
        Actuation {
            key: key.to_string(),
            attempts: 1,
            detail: "a count in memory (lua check): nothing was scaled".into(),
        }
    }
}
