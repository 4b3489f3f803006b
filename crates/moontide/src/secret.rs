//! Secrets (bearer tokens and the like): read from an environment variable or
//! a file, kept in a type that never prints its content.

use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;

/// A secret value. `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(v: impl Into<String>) -> Self {
        Secret(v.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where a secret comes from, as written in config: `token_env = "VAR"` or `token_file = "path"`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct SecretRef {
    /// Name of an environment variable holding the value.
    pub env: Option<String>,
    /// A file holding the value (surrounding whitespace is trimmed).
    pub file: Option<PathBuf>,
}

impl SecretRef {
    /// From the two optional config fields.
    pub fn new(env: Option<String>, file: Option<PathBuf>) -> Self {
        SecretRef { env, file }
    }

    /// Reads the secret, if one is configured. The error names the variable or file, never the value.
    pub fn load(&self) -> Result<Option<Secret>, String> {
        match (&self.env, &self.file) {
            (Some(_), Some(_)) => Err("give either token_env or token_file, not both".into()),
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
                Ok(_) => Err(format!("environment variable {var} is empty")),
                Err(_) => Err(format!("environment variable {var} is not set")),
            },
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
                Ok(_) => Err(format!("token file {} is empty", path.display())),
                Err(e) => Err(format!("cannot read token file {}: {e}", path.display())),
            },
            (None, None) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn loads_from_a_file_and_names_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        let got = SecretRef::new(None, Some(path.clone())).load().unwrap().unwrap();
        assert_eq!(got.expose(), "abc");
        let err = SecretRef::new(None, Some(dir.path().join("nope"))).load().unwrap_err();
        assert!(err.contains("nope"), "{err}");
        let err = SecretRef::new(Some("MOONTIDE_TEST_SURELY_UNSET".into()), None).load().unwrap_err();
        assert!(err.contains("MOONTIDE_TEST_SURELY_UNSET is not set"), "{err}");
        assert!(SecretRef::new(Some("A".into()), Some(path)).load().is_err());
        assert_eq!(SecretRef::default().load(), Ok(None));
    }
}
