//! The bearer token: kept out of every `Debug`, `Display` and log line.

use std::fmt;
use std::sync::Arc;

/// A bearer token for the `Authorization` header.
///
/// Its `Debug` and `Display` print `Token(<redacted>)`; the only way to read it is
/// [`Token::expose`], which a [`Transport`](crate::Transport) calls to write the header.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Token(Arc::from(token.into()))
    }

    /// The secret itself, for the `Authorization: Bearer` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Token {
    fn from(s: String) -> Self {
        Token::new(s)
    }
}

impl From<&str> for Token {
    fn from(s: &str) -> Self {
        Token::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let token = Token::new("s3cr3t-value");
        assert!(!format!("{token:?}").contains("s3cr3t"));
        assert!(!format!("{token}").contains("s3cr3t"));
        assert_eq!(token.expose(), "s3cr3t-value");
    }
}
