//! The bearer token, kept out of every `Debug`, `Display` and log line.

use std::fmt;

/// A bearer token for `Authorization: Bearer <token>`.
///
/// Its `Debug` and `Display` print `[redacted]`, so it cannot leak through a log line, a panic
/// message or the `Debug` of a struct that holds it. Only the HTTP layer reads the secret: the
/// built-in transport, or a [`Transport`](crate::Transport) of yours through
/// [`expose`](Token::expose).
///
/// ```
/// use tether_blocking::Token;
///
/// let token = Token::new("s3cr3t");
/// assert_eq!(format!("{token:?} {token}"), "[redacted] [redacted]");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Token(secret.into())
    }

    /// The secret itself, for the `Authorization: Bearer` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The `Authorization` header's value.
    pub(crate) fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }
}

impl From<String> for Token {
    fn from(secret: String) -> Self {
        Token(secret)
    }
}

impl From<&str> for Token {
    fn from(secret: &str) -> Self {
        Token(secret.to_owned())
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
    use super::Token;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let token = Token::new("hunter2-secret");
        let shown = format!("{token:?} {token} {:?}", Some(&token));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(shown, "[redacted] [redacted] Some([redacted])");
        assert_eq!(token.header_value(), "Bearer hunter2-secret");
    }
}
