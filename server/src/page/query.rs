//! Query strings of the inspector's routes, read strictly: an unknown or repeated parameter, bad
//! percent-encoding or a value out of range is a `400` with a reason, never a panic.

use std::collections::BTreeMap;

/// The parameters of one request, decoded. `token` is taken out by the caller's check and never
/// kept here.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Query {
    params: BTreeMap<String, String>,
    /// The `token` parameter, if any.
    pub token: Option<String>,
}

impl Query {
    /// Parses `query` (without `?`), accepting only the keys in `allowed` (and `token`).
    pub fn parse(query: &str, allowed: &[&str]) -> Result<Query, String> {
        let mut out = Query::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(key)?;
            let value = decode(value)?;
            if key == "token" {
                if out.token.replace(value).is_some() {
                    return Err("parameter `token` given twice".into());
                }
                continue;
            }
            if !allowed.contains(&key.as_str()) {
                let expected = if allowed.is_empty() {
                    "this route takes none".to_owned()
                } else {
                    format!("expected {}", allowed.join(", "))
                };
                return Err(format!("unknown parameter `{}` ({expected})", shown(&key)));
            }
            if out.params.contains_key(&key) {
                return Err(format!("parameter `{key}` given twice"));
            }
            out.params.insert(key, value);
        }
        Ok(out)
    }

    /// The value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// The value of `key`, which must be given and not empty.
    pub fn required(&self, key: &str) -> Result<&str, String> {
        match self.get(key) {
            Some(v) if !v.is_empty() => Ok(v),
            Some(_) => Err(format!("parameter `{key}` is empty")),
            None => Err(format!("parameter `{key}` is required")),
        }
    }

    /// The value of `key` as an integer in `range`, or `default` when not given.
    pub fn integer(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<u64>,
        default: u64,
    ) -> Result<u64, String> {
        let Some(text) = self.get(key) else {
            return Ok(default);
        };
        let n: u64 = text.parse().map_err(|_| {
            format!(
                "parameter `{key}` must be a whole number from {} to {}, not `{}`",
                range.start(),
                range.end(),
                shown(text)
            )
        })?;
        if !range.contains(&n) {
            return Err(format!(
                "parameter `{key}` must be from {} to {}, not {n}",
                range.start(),
                range.end()
            ));
        }
        Ok(n)
    }
}

/// Percent-decodes one component (`+` is a space), which must be UTF-8.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        "a `%` in the query is not followed by two hex digits".to_owned()
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "the query is not UTF-8 once decoded".to_owned())
}

/// `text` for an error message: at most 64 characters, control characters replaced.
pub(crate) fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_checks_keys() {
        let q = Query::parse(
            "session=a%20b+c&events=5&token=t%26",
            &["session", "events"],
        );
        let q = q.unwrap();
        assert_eq!(q.get("session"), Some("a b c"));
        assert_eq!(q.integer("events", 0..=10, 3), Ok(5));
        assert_eq!(q.integer("other", 0..=10, 3), Ok(3));
        assert_eq!(q.token.as_deref(), Some("t&"));
        assert_eq!(Query::parse("", &[]).unwrap(), Query::default());
    }

    #[test]
    fn refuses_with_a_reason() {
        let err = |q: &str| Query::parse(q, &["session"]).unwrap_err();
        assert!(err("nope=1").contains("unknown parameter `nope`"));
        assert!(err("session=a&session=b").contains("twice"));
        assert!(err("session=%zz").contains("hex"));
        assert!(err("session=%ff").contains("UTF-8"));
        assert!(err("session=%4").contains("hex"));
        let q = Query::parse("session=", &["session"]).unwrap();
        assert!(q.required("session").unwrap_err().contains("empty"));
        let q = Query::parse("events=-1", &["events"]).unwrap();
        assert!(
            q.integer("events", 0..=10, 0)
                .unwrap_err()
                .contains("whole number")
        );
        let q = Query::parse("events=11", &["events"]).unwrap();
        assert!(
            q.integer("events", 0..=10, 0)
                .unwrap_err()
                .contains("from 0 to 10")
        );
        let q = Query::parse("events=99999999999999999999999", &["events"]).unwrap();
        assert!(q.integer("events", 0..=10, 0).is_err());
    }
}
