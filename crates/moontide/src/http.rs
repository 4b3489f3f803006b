//! The one way Moontide builds HTTP clients: rustls, a timeout, its own
//! User-Agent.

use std::time::Duration;

/// A client whose every request times out after `timeout`.
pub fn client(timeout: Duration) -> Result<reqwest::Client, String> {
    builder(timeout).build().map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The same, but never following redirects (a redirect is returned as it is):
/// for requests whose destination is checked against an allow list.
pub fn client_without_redirects(timeout: Duration) -> Result<reqwest::Client, String> {
    builder(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// The common settings, for clients that need more (CA files, client certificates).
pub fn builder(timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder().timeout(timeout).user_agent(concat!("moontide/", env!("CARGO_PKG_VERSION")))
}

/// Problems with a URL a config gives for an HTTP endpoint: `FIELD: ...`, or
/// none. A user name or password in it is refused (the URL shows in errors
/// and decisions), with `instead` saying which settings take the
/// credentials, e.g. "a bearer token with token_env or token_file".
pub fn check_url_credentials(field: &str, url: &str, instead: &str) -> Option<String> {
    match reqwest::Url::parse(url) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            Some(format!("{field}: scheme `{}` is not http or https", u.scheme()))
        }
        // said without the URL, which holds a password
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            Some(format!("{field}: leave credentials out of the URL, which errors and decisions show; give {instead}"))
        }
        Ok(_) => None,
        // shown unless it may hold credentials
        Err(e) if url.contains('@') => Some(format!("{field}: not a valid URL ({e})")),
        Err(e) => Some(format!("{field}: `{url}` is not a valid URL ({e})")),
    }
}

/// Problems with extra request headers a config gives.
pub fn check_headers(headers: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    headers
        .iter()
        .filter(|(k, v)| {
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(v).is_err()
        })
        .map(|(k, _)| format!("headers: `{k}` is not a valid HTTP header"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_headers_are_checked() {
        let check_url = |field: &str, url: &str| check_url_credentials(field, url, "a token");
        assert_eq!(check_url("url", "http://127.0.0.1:9/x"), None);
        assert!(check_url("url", "ftp://h/").unwrap().contains("url: scheme `ftp` is not http or https"));
        assert!(check_url("address", "nope").unwrap().contains("address: `nope` is not a valid URL"));
        // a URL that fails to parse is not shown when it may hold a password
        let err = check_url("url", "http://u:hunter2@[bad/").unwrap();
        assert!(!err.contains("hunter2") && err.contains("url: not a valid URL"), "{err}");
        let users = ["http://moontide:hunter2@127.0.0.1:9/x", "http://moontide@127.0.0.1:9/x", "http://:hunter2@h/"];
        for with_user in users {
            let err = check_url_credentials("url", with_user, "token_env or token_file").unwrap();
            assert!(err.contains("url: leave credentials out of the URL") && err.contains("token_env"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
            assert!(check_url("address", with_user).unwrap().contains("leave credentials out"));
        }
        let mut h = std::collections::BTreeMap::new();
        h.insert("X-Ok".to_string(), "fine".to_string());
        assert!(check_headers(&h).is_empty());
        h.insert("bad header".to_string(), "x".to_string());
        h.insert("X-Newline".to_string(), "a\nb".to_string());
        assert_eq!(check_headers(&h).len(), 2);
    }
}
