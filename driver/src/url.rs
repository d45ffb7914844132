//! The session URL and the bearer token: the rules every shim applies the same way.
//!
//! Only `http` and `https`, with a host, no credentials and no query. The token is sent as
//! `Authorization: Bearer <token>` and never shown: its `Debug` and `Display` are redacted.

use std::fmt;
use std::sync::Arc;

use http::Uri;

use crate::error::BuildError;

/// A parsed session URL, e.g. `http://127.0.0.1:8787/v1/code/sessions/s1`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionUrl {
    https: bool,
    host: String,
    port: u16,
    /// The URL without a trailing slash; endpoint paths are appended to it.
    base: String,
    /// The last path segment: the session id unless the configuration names one.
    last_segment: String,
}

impl SessionUrl {
    /// Parses and checks `url`.
    ///
    /// # Errors
    /// [`BuildError::InvalidUrl`] or [`BuildError::UnsupportedScheme`].
    pub fn parse(url: &str) -> Result<Self, BuildError> {
        let invalid = |reason: &str| BuildError::InvalidUrl {
            reason: reason.to_string(),
        };
        // The scheme first, so that `file:///x` is refused for its scheme, not its shape.
        let Some((scheme, _)) = url.split_once("://") else {
            return Err(invalid("no scheme (http:// or https://)"));
        };
        let https = if scheme.eq_ignore_ascii_case("http") {
            false
        } else if scheme.eq_ignore_ascii_case("https") {
            true
        } else {
            return Err(BuildError::UnsupportedScheme {
                scheme: scheme.chars().take(16).collect(),
            });
        };
        let uri: Uri = url.parse().map_err(|_| invalid("not a URL"))?;
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("credentials in the URL are refused; use a token"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(invalid("no host"));
        }
        if uri.query().is_some() {
            return Err(invalid("a session URL has no query"));
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let path = uri.path().trim_end_matches('/');
        let last_segment = path.rsplit('/').next().unwrap_or_default().to_string();
        let base = format!(
            "{}://{}{}",
            if https { "https" } else { "http" },
            authority.as_str(),
            path
        );
        Ok(SessionUrl {
            https,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            base,
            last_segment,
        })
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// The host, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port, the scheme's default if none was given.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The session URL without a trailing slash.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// The full URL of a path relative to the session URL.
    pub fn join(&self, path: &str) -> String {
        let mut url = String::with_capacity(self.base.len() + path.len());
        url.push_str(&self.base);
        url.push_str(path);
        url
    }

    /// The last path segment (the default session id).
    pub fn last_segment(&self) -> &str {
        &self.last_segment
    }
}

impl fmt::Debug for SessionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SessionUrl").field(&self.base).finish()
    }
}

impl fmt::Display for SessionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.base)
    }
}

/// A bearer token. Cheap to clone; never printed.
///
/// It keeps its `Authorization` header's value whole, so a request borrows it instead of
/// formatting it again.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

/// What precedes the secret in the header's value.
const BEARER: &str = "Bearer ";

impl Token {
    /// A token with this secret.
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        let mut header = String::with_capacity(BEARER.len() + secret.len());
        header.push_str(BEARER);
        header.push_str(&secret);
        Token(Arc::from(header))
    }

    /// The secret, for a transport to put on the wire. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0[BEARER.len()..]
    }

    /// The `Authorization` header's value, `Bearer <secret>`. Do not log it.
    pub fn header_value(&self) -> &str {
        &self.0
    }
}

impl From<String> for Token {
    fn from(secret: String) -> Self {
        Token::new(secret)
    }
}

impl From<&str> for Token {
    fn from(secret: &str) -> Self {
        Token::new(secret)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_only() {
        let url = SessionUrl::parse("http://127.0.0.1:8787/v1/code/sessions/s1/").unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8787/v1/code/sessions/s1");
        assert_eq!(url.port(), 8787);
        assert_eq!(url.last_segment(), "s1");
        assert_eq!(
            url.join("/worker"),
            "http://127.0.0.1:8787/v1/code/sessions/s1/worker"
        );
        let tls = SessionUrl::parse("https://example.test/s").unwrap();
        assert!(tls.is_https());
        assert_eq!(tls.port(), 443);
        let v6 = SessionUrl::parse("http://[::1]:9/s").unwrap();
        assert_eq!(v6.host(), "::1");
        for bad in [
            "ftp://example.test/s",
            "file:///etc/passwd",
            "ws://example.test/s",
            "example.test/s",
            "http://user:pw@example.test/s",
            "http://example.test/s?x=1",
            "",
        ] {
            assert!(SessionUrl::parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(matches!(
            SessionUrl::parse("ftp://example.test/s"),
            Err(BuildError::UnsupportedScheme { .. })
        ));
    }

    #[test]
    fn the_token_is_never_shown() {
        let token = Token::new("hunter2-secret");
        let shown = format!("{token:?} {token} {:?}", Some(&token));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown, "[redacted] [redacted] Some([redacted])");
        assert_eq!(token.header_value(), "Bearer hunter2-secret");
    }
}
