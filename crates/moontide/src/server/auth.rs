//! API tokens and roles.
//!
//! A token is declared in the config by name, role and the SHA-256 of its
//! value, never the value itself (`moontide token new` makes one). A
//! request's bearer token is hashed and compared with every declared hash
//! in constant time. `viewer` may read; `operator` may also pause, resume,
//! override, toggle dry-run and reload. The audit log names the token,
//! never its value.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read policies, decisions, the event stream and metrics.
    Viewer,
    /// Also pause, resume, override, toggle dry-run and reload.
    Operator,
}

impl Role {
    /// The name used in config.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// `[[server.tokens]]`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds it, as the audit log names them.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// When the token stops working (RFC 3339, e.g. "2027-01-31T00:00:00Z"); default never.
    #[serde(default)]
    pub expires: Option<String>,
}

impl TokenConfig {
    /// Problems with one token entry.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.name.trim().is_empty() || self.name.len() > 64 {
            errs.push("tokens: a token's name must be 1 to 64 characters".into());
        }
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            errs.push(format!(
                "tokens.{}: sha256 must be 64 hex digits (the hash `moontide token new` prints, never the token)",
                self.name
            ));
        }
        if let Some(e) = &self.expires
            && humantime::parse_rfc3339_weak(e).is_err()
        {
            errs.push(format!(
                "tokens.{}: expires `{e}` is not an RFC 3339 time like \"2027-01-31T00:00:00Z\"",
                self.name
            ));
        }
        errs
    }

    /// Whether the token has expired at `now`.
    pub fn expired(&self, now: std::time::SystemTime) -> bool {
        self.expires.as_deref().and_then(|e| humantime::parse_rfc3339_weak(e).ok()).is_some_and(|t| now >= t)
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (the scheme's case
/// does not matter, as HTTP says), or None.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?.trim_start();
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The hex SHA-256 of a token.
pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A new random token: `mt_` and 43 URL-safe characters (256 bits).
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the system: {e}"))?;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    // base64url without padding, 6 bits at a time
    let mut out = String::from("mt_");
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    Ok(out)
}

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's name.
    pub name: String,
    /// Its role.
    pub role: Role,
}

/// What a bearer value turns out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A declared, valid token.
    Known(Caller),
    /// A declared token past its `expires` (its name, for the audit log).
    Expired(String),
    /// No declared token.
    Unknown,
}

/// The token a bearer value matches, compared in constant time against every declared hash.
pub fn identify(tokens: &[TokenConfig], bearer: &str, now: std::time::SystemTime) -> Identity {
    let presented = hash(bearer);
    let mut found = Identity::Unknown;
    for t in tokens {
        // no early exit: every hash is compared
        if bool::from(presented.as_bytes().ct_eq(t.sha256.to_ascii_lowercase().as_bytes())) {
            found = if t.expired(now) {
                Identity::Expired(t.name.clone())
            } else {
                Identity::Known(Caller { name: t.name.clone(), role: t.role })
            };
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        let with = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert(axum::http::header::AUTHORIZATION, v.parse().unwrap());
            super::bearer(&h).map(str::to_string)
        };
        assert_eq!(with("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("bearer abc").as_deref(), Some("abc"));
        assert_eq!(with("BEARER   abc ").as_deref(), Some("abc"));
        assert_eq!(with("Basic abc"), None);
        assert_eq!(with("Bearer "), None);
        assert_eq!(with("Bearerabc"), None);
        assert_eq!(super::bearer(&axum::http::HeaderMap::new()), None);
    }

    use super::*;

    #[test]
    fn tokens_are_random_and_known_only_by_their_hash() {
        let (a, b, c) = (new_token().unwrap(), new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 43);
        assert!(a[3..].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        let token = |name: &str, role, sha256: String, expires: Option<&str>| TokenConfig {
            name: name.into(),
            role,
            sha256,
            expires: expires.map(str::to_string),
        };
        let tokens = vec![
            token("alice", Role::Operator, hash(&a), None),
            token("viewer", Role::Viewer, hash(&b).to_uppercase(), None),
            token("temp", Role::Operator, hash(&c), Some("2030-01-01T00:00:00Z")),
        ];
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000); // 2027
        let later = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_900_000_000); // 2030
        assert_eq!(identify(&tokens, &a, now), Identity::Known(Caller { name: "alice".into(), role: Role::Operator }));
        assert!(matches!(identify(&tokens, &b, now), Identity::Known(Caller { role: Role::Viewer, .. })));
        assert!(matches!(identify(&tokens, &c, now), Identity::Known(_)));
        assert_eq!(identify(&tokens, &c, later), Identity::Expired("temp".into()));
        assert_eq!(identify(&tokens, "mt_guess", now), Identity::Unknown);
        assert_eq!(identify(&tokens, &a[..a.len() - 1], now), Identity::Unknown);
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let errs = token("x", Role::Viewer, a, Some("soon")).validate();
        assert!(errs[0].contains("64 hex digits") && errs[1].contains("not an RFC 3339 time"), "{errs:?}");
    }
}
