//! The fast path for event batches and heartbeats: their fields read straight from the bytes,
//! without building a `Value`, answering exactly as the `Value` path would.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::events::{Incoming, SEQ_FIELD, StoredPayload};

// The fast path for event batches and heartbeats.
//
// The session assembles a batch as `{"worker_epoch":N,"events":[item,..]}`, each item
// `{"payload":P}` or `{"payload":P,"ephemeral":true}`, byte for byte (`batch::body`).
// [`scan_events`] reads exactly that shape. serde_json reads each payload as strictly as parsing
// it into a `Value` would, keeping only the last `uuid` and `seq` (what `Value::get` would
// return) and where the payload ends. Any other shape, a payload without a string uuid or deep
// nesting returns `None` and the body takes the `Value` path, so every answer is the same either
// way; only the work differs.

/// The deepest nesting the fast paths take, counting the object read as level 1 (the `Value`
/// path allows 125 levels for a payload, 128 for a heartbeat body).
const FAST_MAX_DEPTH: usize = 64;

/// The epoch and events of a batch in the session's own layout, or `None` for the slow path.
pub(super) fn scan_events(body: &[u8]) -> Option<(u64, Vec<Incoming<'_>>)> {
    let body = std::str::from_utf8(body).ok()?;
    let rest = body.strip_prefix("{\"worker_epoch\":")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || (digits > 1 && rest.starts_with('0')) {
        return None;
    }
    let mut epoch = 0u64;
    for d in rest[..digits].bytes() {
        epoch = epoch.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    let mut rest = rest[digits..].strip_prefix(",\"events\":[")?;
    let mut events = Vec::new();
    if rest == "]}" {
        return Some((epoch, events));
    }
    loop {
        rest = rest.strip_prefix("{\"payload\":")?;
        if !rest.starts_with('{') {
            return None;
        }
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<PayloadProbe<'_>>();
        let probe = stream.next()?.ok()?;
        let (json, after) = rest.split_at_checked(stream.byte_offset())?;
        let (ephemeral, after) = match after.strip_prefix('}') {
            Some(after) => (false, after),
            None => (true, after.strip_prefix(",\"ephemeral\":true}")?),
        };
        events.push(Incoming {
            uuid: probe.uuid?,
            payload: StoredPayload::Json {
                text: json.into(),
                value: OnceCell::new(),
            },
            seq: probe.seq,
            ephemeral,
        });
        match after.strip_prefix(',') {
            Some(after) => rest = after,
            None => return (after == "]}").then_some((epoch, events)),
        }
    }
}

/// What the fast path reads of a payload object: its `uuid` if a string, its `seq` if a `u64`.
struct PayloadProbe<'a> {
    uuid: Option<Cow<'a, str>>,
    seq: Option<u64>,
}

impl<'de> Deserialize<'de> for PayloadProbe<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let [uuid, seq] = deserializer.deserialize_map(Pick {
            keys: ["uuid", SEQ_FIELD],
        })?;
        Ok(PayloadProbe {
            uuid: uuid.and_then(Any::into_str),
            seq: seq.and_then(Any::into_u64),
        })
    }
}

/// A heartbeat body's `worker_epoch` (if a `u64`) and `session_id` (if a string), read without
/// building a `Value`; `Err` if it is not a JSON object.
pub(super) struct Beat<'a> {
    pub(super) epoch: Option<u64>,
    pub(super) session_id: Option<Cow<'a, str>>,
}

impl<'de> Deserialize<'de> for Beat<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let [epoch, session_id] = deserializer.deserialize_map(Pick {
            keys: ["worker_epoch", "session_id"],
        })?;
        Ok(Beat {
            epoch: epoch.and_then(Any::into_u64),
            session_id: session_id.and_then(Any::into_str),
        })
    }
}

/// A visitor of a JSON object keeping the last value of each of two keys (as `Value`, which
/// keeps the last of duplicate keys, does) and validating and skipping the rest.
struct Pick<'k> {
    keys: [&'k str; 2],
}

impl<'de> Visitor<'de> for Pick<'_> {
    type Value = [Option<Any<'de>>; 2];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut picked = [None, None];
        while let Some(key) = map.next_key_seed(AnySeed { level: 2 })? {
            let value = map.next_value_seed(AnySeed { level: 2 })?;
            if let Any::Str(key) = key {
                if let Some(i) = self.keys.iter().position(|k| *k == key) {
                    picked[i] = Some(value);
                }
            }
        }
        Ok(picked)
    }
}

/// Any JSON value, validated as strictly as `Value` parses it; only a `u64` or a string is kept,
/// so `into_u64` and `into_str` answer as `Value::as_u64` and `Value::as_str` would.
enum Any<'a> {
    U64(u64),
    Str(Cow<'a, str>),
    Other,
}

impl<'a> Any<'a> {
    fn into_u64(self) -> Option<u64> {
        match self {
            Any::U64(n) => Some(n),
            _ => None,
        }
    }

    fn into_str(self) -> Option<Cow<'a, str>> {
        match self {
            Any::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Reads [`Any`] value that, if a container, sits at nesting `level`; deeper than
/// [`FAST_MAX_DEPTH`] is an error (the caller falls back to the `Value` path).
#[derive(Clone, Copy)]
struct AnySeed {
    level: usize,
}

impl AnySeed {
    fn enter<E: de::Error>(self) -> Result<AnySeed, E> {
        if self.level > FAST_MAX_DEPTH {
            return Err(E::custom("nested too deep for the fast path"));
        }
        Ok(AnySeed {
            level: self.level + 1,
        })
    }
}

impl<'de> DeserializeSeed<'de> for AnySeed {
    type Value = Any<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Any<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnySeed {
    type Value = Any<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Any<'de>, E> {
        Ok(Any::Other)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Any<'de>, E> {
        // `Value` stores a non-negative i64 as a positive integer.
        Ok(u64::try_from(n).map_or(Any::Other, Any::U64))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Any<'de>, E> {
        Ok(Any::U64(n))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Any<'de>, E> {
        Ok(Any::Other)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Owned(s.to_string())))
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Borrowed(s)))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Any<'de>, E> {
        Ok(Any::Str(Cow::Owned(s)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Any<'de>, E> {
        Ok(Any::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Any<'de>, A::Error> {
        let inner = self.enter()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(Any::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Any<'de>, A::Error> {
        let inner = self.enter()?;
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(Any::Other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ServerModel;
    use crate::server::events::{parse_object, seq_of};
    use serde_json::Value;
    use tether_core::session::{Endpoint, Response, Stream};
    use tether_core::time::Instant;

    /// Bodies and payloads that must get the same answer from the fast paths and `Value`.
    const TRICKY_PAYLOADS: [&str; 24] = [
        r#"{"uuid":"a","seq":1,"data":"xyz"}"#,
        r#"{"seq":2,"uuid":"b"}"#,
        r#"{"uuid":"q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}"#,
        r#"{"u\u0075id":"escaped-key","s\u0065q":7}"#,
        r#"{"uuid":"first","uuid":"last"}"#,
        r#"{"uuid":1,"uuid":"string-wins"}"#,
        r#"{"uuid":"x","uuid":1}"#,
        r#"{"uuid":"s1","seq":-1}"#,
        r#"{"uuid":"s2","seq":-0}"#,
        r#"{"uuid":"s3","seq":1.5}"#,
        r#"{"uuid":"s4","seq":"3"}"#,
        r#"{"uuid":"s5","seq":null}"#,
        r#"{"uuid":"s6","seq":1,"seq":2}"#,
        r#"{"uuid":"s7","seq":18446744073709551615}"#,
        r#"{"uuid":"s8","seq":18446744073709551616}"#,
        r#"{"uuid":"s9","seq":1e2}"#,
        r#"{"uuid":"bad","x":"\ud800"}"#,
        r#"{"uuid":"bad","x":1e400}"#,
        r#"{"uuid":"bad","x":"\u0001"}"#,
        "{\"uuid\":\"ctl\",\"x\":\"\x01\"}",
        r#"{"uuid":"nested","x":[{"a":[1,{"b":null}]},true,false,-3.5e-2]}"#,
        r#"{"uuid":null}"#,
        r#"{}"#,
        r#"[{"uuid":"array"}]"#,
    ];

    fn nested(depth: usize) -> String {
        let mut s = String::from(r#"{"uuid":"deep","x":"#);
        s.push_str(&"[".repeat(depth));
        s.push_str(&"]".repeat(depth));
        s.push('}');
        s
    }

    #[test]
    fn the_payload_probe_reads_what_value_reads() {
        let mut payloads: Vec<String> = TRICKY_PAYLOADS.iter().map(|p| p.to_string()).collect();
        payloads.extend([nested(62), nested(63), nested(64), nested(200)]);
        for payload in &payloads {
            let value = serde_json::from_str::<Value>(payload);
            match serde_json::from_str::<PayloadProbe<'_>>(payload) {
                Ok(probe) => {
                    let value = value.unwrap_or_else(|e| panic!("{payload}: {e}"));
                    assert!(value.is_object(), "{payload}");
                    assert_eq!(probe.uuid.as_deref(), value["uuid"].as_str(), "{payload}");
                    assert_eq!(probe.seq, seq_of(&value), "{payload}");
                }
                // Not a JSON object, or only too deep for the fast path.
                Err(_) => assert!(
                    value.as_ref().map_or(true, |v| !v.is_object()) || payload.len() > 100,
                    "{payload}"
                ),
            }
        }
    }

    #[test]
    fn the_heartbeat_probe_reads_what_value_reads() {
        let bodies = [
            r#"{"worker_epoch":3,"session_id":"s"}"#,
            r#" {"session_id":"s" , "worker_epoch":3} "#,
            r#"{"worker_epoch":3,"worker_epoch":4,"session_id":"a","session_id":"b"}"#,
            r#"{"worker_epoch":-3,"session_id":"s"}"#,
            r#"{"worker_epoch":3.0,"session_id":"s"}"#,
            r#"{"worker_epoch":3,"session_id":5}"#,
            r#"{"worker_epoch":3,"session_id":"s","x":"\ud800"}"#,
            r#"{"worker_epoch":3,"session_id":"s\u00e9"}"#,
            r#"{"worker_epoch":3}"#,
            r#"[1]"#,
            r#"{"worker_epoch":3,"session_id":"s"} x"#,
            "",
        ];
        for body in bodies {
            let value = parse_object(body.as_bytes());
            match serde_json::from_slice::<Beat<'_>>(body.as_bytes()) {
                Ok(beat) => {
                    let value = value.unwrap_or_else(|e| panic!("{body}: {e:?}"));
                    assert_eq!(
                        beat.epoch,
                        value.get("worker_epoch").and_then(Value::as_u64)
                    );
                    assert_eq!(
                        beat.session_id.as_deref(),
                        value.get("session_id").and_then(Value::as_str)
                    );
                }
                Err(_) => assert!(value.is_err(), "{body}"),
            }
        }
    }

    /// A server at epoch 2 after `body`, and what it answered.
    fn after_batch(body: &[u8]) -> (Response, ServerModel) {
        let mut server = ServerModel::default();
        server.force_takeover();
        server.force_takeover();
        let response = server.handle(Instant::from_secs(3), Endpoint::Events, body);
        (response, server)
    }

    #[test]
    fn event_batches_get_the_same_answer_on_both_paths() {
        let canonical = |epoch: &str, items: &[String]| {
            format!(
                r#"{{"worker_epoch":{epoch},"events":[{}]}}"#,
                items.join(",")
            )
        };
        let item = |payload: &str| format!(r#"{{"payload":{payload}}}"#);
        let ephemeral = |payload: &str| format!(r#"{{"payload":{payload},"ephemeral":true}}"#);
        let mut bodies: Vec<(String, bool)> = vec![
            (canonical("2", &[]), true),
            (
                canonical(
                    "3",
                    &[
                        item(r#"{"uuid":"a","seq":0,"data":"x"}"#),
                        ephemeral(r#"{"seq":1,"uuid":"b"}"#),
                        item(r#"{"uuid":"a","seq":2}"#),
                    ],
                ),
                true,
            ),
            (canonical("1", &[item(r#"{"uuid":"a"}"#)]), true), // fenced
            (canonical("02", &[item(r#"{"uuid":"a"}"#)]), false),
            (
                canonical("18446744073709551616", &[item(r#"{"uuid":"a"}"#)]),
                false,
            ),
            (canonical("2", &[item(r#"{"uuid":"a"}"#)]) + " ", false),
            (canonical("2", &[item(r#"{"uuid":"a"}"#)]) + "x", false),
            (canonical("2", &[item(r#" {"uuid":"a"}"#)]), false),
            (
                canonical(
                    "2",
                    &[r#"{"payload":{"uuid":"a"},"ephemeral":false}"#.into()],
                ),
                false,
            ),
            (
                canonical("2", &[r#"{"payload":{"uuid":"a"},"ephemeral":1}"#.into()]),
                false,
            ),
            (
                canonical(
                    "2",
                    &[r#"{"ephemeral":true,"payload":{"uuid":"a"}}"#.into()],
                ),
                false,
            ),
            (r#"{"worker_epoch":2,"events":{}}"#.into(), false),
            (r#"{"worker_epoch":2}"#.into(), false),
            (
                canonical("2", &[item(&nested(30)), item(&nested(70))]),
                false,
            ),
        ];
        for payload in TRICKY_PAYLOADS {
            let fast =
                serde_json::from_str::<PayloadProbe<'_>>(payload).is_ok_and(|p| p.uuid.is_some());
            bodies.push((canonical("2", &[item(payload), ephemeral(payload)]), fast));
        }
        let mut invalid_utf8 = canonical("2", &[item(r#"{"uuid":"a","x":"??"}"#)]).into_bytes();
        let at = invalid_utf8.len() - 6;
        invalid_utf8[at..at + 2].copy_from_slice(&[0xff, 0xfe]);
        for (body, fast) in bodies
            .iter()
            .map(|(b, f)| (b.as_bytes(), *f))
            .chain([(&invalid_utf8[..], false)])
        {
            let shown = String::from_utf8_lossy(body);
            assert_eq!(scan_events(body).is_some(), fast, "{shown}");
            // A leading space keeps the body valid JSON and sends it down the `Value` path.
            let slow: Vec<u8> = [b" ", body].concat();
            assert!(scan_events(&slow).is_none());
            let (fast_response, fast_server) = after_batch(body);
            let (slow_response, slow_server) = after_batch(&slow);
            assert_eq!(fast_response, slow_response, "{shown}");
            assert_eq!(fast_server.epoch(), slow_server.epoch(), "{shown}");
            assert_eq!(
                fast_server.events(Stream::Events),
                slow_server.events(Stream::Events),
                "{shown}"
            );
            assert_eq!(
                fast_server.seqs(Stream::Events),
                fast_server
                    .payloads(Stream::Events)
                    .filter_map(seq_of)
                    .collect::<Vec<_>>(),
                "{shown}"
            );
            assert_eq!(
                fast_server.duplicates(Stream::Events),
                slow_server.duplicates(Stream::Events)
            );
        }
    }
}
