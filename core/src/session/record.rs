//! How an outbox stores an accepted event: a small versioned record around its wire item.
//!
//! A store keeps bytes; [`encode_record`] turns a [`PreparedEvent`] and its stream into them,
//! and [`decode_record`] turns them back, checking everything, so that a torn or corrupt record
//! is a [`RecordError`] that says what is wrong, never a panic and never an event that is not
//! what was accepted.
//!
//! ```text
//! byte 0    version (1)
//! byte 1    stream: 0 events, 1 internal events, 2 delivery
//! byte 2    flags: bit 0 ephemeral, bit 1 keyed
//! [keyed]   u32 little-endian key length, then the key (UTF-8)
//! rest      the wire item, exactly as it is sent
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde_json::Value;

use super::io::Stream;
use crate::batch::{PreparedEvent, Reason};

const VERSION: u8 = 1;
const EPHEMERAL: u8 = 1;
const KEYED: u8 = 2;

/// The record of `event` accepted on `stream`.
pub fn encode_record(stream: Stream, event: &PreparedEvent) -> Vec<u8> {
    let key = event.replace_key();
    let item = event.item_bytes();
    let mut out = Vec::with_capacity(3 + key.map_or(0, |k| 4 + k.len()) + item.len());
    out.push(VERSION);
    out.push(match stream {
        Stream::Events => 0,
        Stream::InternalEvents => 1,
        Stream::Delivery => 2,
    });
    let mut flags = 0;
    if event.is_ephemeral() {
        flags |= EPHEMERAL;
    }
    if key.is_some() {
        flags |= KEYED;
    }
    out.push(flags);
    if let Some(key) = key {
        // A key longer than 4 GiB cannot have fitted in a batch.
        let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(key.as_bytes());
    }
    out.extend_from_slice(item);
    out
}

/// The stream and event of a record written by [`encode_record`].
///
/// # Errors
/// A [`RecordError`] naming what is wrong: a torn record, an unknown version or stream, a key
/// that is not UTF-8, or an item that is not the wire item of an event.
pub fn decode_record(bytes: &[u8]) -> Result<(Stream, PreparedEvent), RecordError> {
    let [version, stream, flags, rest @ ..] = bytes else {
        return Err(RecordError::Truncated { len: bytes.len() });
    };
    if *version != VERSION {
        return Err(RecordError::Version(*version));
    }
    let stream = match stream {
        0 => Stream::Events,
        1 => Stream::InternalEvents,
        2 => Stream::Delivery,
        other => return Err(RecordError::Stream(*other)),
    };
    if flags & !(EPHEMERAL | KEYED) != 0 {
        return Err(RecordError::Flags(*flags));
    }
    let ephemeral = flags & EPHEMERAL != 0;
    let (key, item) = if flags & KEYED != 0 {
        let Some((len, rest)) = rest.split_first_chunk::<4>() else {
            return Err(RecordError::Truncated { len: bytes.len() });
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(RecordError::Truncated { len: bytes.len() });
        }
        let (key, item) = rest.split_at(len);
        let key = core::str::from_utf8(key).map_err(|_| RecordError::Key)?;
        (Some(String::from(key)), item)
    } else {
        (None, rest)
    };
    let event = PreparedEvent::from_stored(stream == Stream::Delivery, item, ephemeral, key)
        .map_err(RecordError::Item)?;
    Ok((stream, event))
}

/// What an outbox does with the record of an event the session handed back: the rule of what
/// a durable outbox keeps. A record leaves only when the server took the event or the caller
/// let it go on purpose; anything else keeps it for the next run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordFate {
    /// Kept pending: the next run on the outbox sends it again, first, with its uuid (a close
    /// that timed out, a give-up, a supersede, a run of transient failures).
    Kept,
    /// Kept but marked dead: the server refused it for good, so it is not sent again; it stays
    /// until the caller discards it, so a crash right after the hand-back loses nothing.
    Dead,
    /// Forgotten: the caller's own policy let it go (a newer event with its replace key took
    /// its place, or the overflow policy dropped it).
    Forgotten,
}

impl RecordFate {
    /// The fate of an event handed back for `reason`.
    pub fn of(reason: &Reason) -> RecordFate {
        match reason {
            Reason::TooLarge | Reason::Rejected { .. } => RecordFate::Dead,
            Reason::Replaced { .. } | Reason::DroppedOldest | Reason::DroppedNewest => {
                RecordFate::Forgotten
            }
            Reason::TooManyFailures { .. }
            | Reason::Closed
            | Reason::Superseded
            | Reason::GivenUp => RecordFate::Kept,
        }
    }
}

/// A record [`decode_record`] refused: what a recovery reports when it drops it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// The record ends early (a torn write): this many bytes.
    Truncated {
        /// Its length.
        len: usize,
    },
    /// A version this build does not know.
    Version(u8),
    /// A stream number this build does not know.
    Stream(u8),
    /// Flag bits this build does not know.
    Flags(u8),
    /// The replace key is not UTF-8.
    Key,
    /// The item is not an event's wire item.
    Item(String),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Truncated { len } => write!(f, "the record is torn ({len} bytes)"),
            RecordError::Version(v) => write!(f, "unknown record version {v}"),
            RecordError::Stream(s) => write!(f, "unknown stream {s}"),
            RecordError::Flags(x) => write!(f, "unknown flags {x:#04x}"),
            RecordError::Key => f.write_str("the replace key is not UTF-8"),
            RecordError::Item(why) => write!(f, "the event is unreadable: {why}"),
        }
    }
}

impl core::error::Error for RecordError {}

impl PreparedEvent {
    /// Rebuilds a stored event from its wire item, checking that it is one: for the events
    /// envelope `{"payload":{.., "uuid": str}}` with `,"ephemeral":true` as `ephemeral` says;
    /// for delivery updates an object.
    pub(crate) fn from_stored(
        delivery: bool,
        item: &[u8],
        ephemeral: bool,
        key: Option<String>,
    ) -> Result<PreparedEvent, String> {
        if delivery {
            if ephemeral {
                return Err("a delivery update cannot be ephemeral".into());
            }
            let value: Value = serde_json::from_slice(item).map_err(|e| e.to_string())?;
            if !value.is_object() {
                return Err("not an object".into());
            }
            return Ok(PreparedEvent::restored(
                item.to_vec(),
                true,
                false,
                key,
                None,
            ));
        }
        const PREFIX: &[u8] = b"{\"payload\":";
        let suffix: &[u8] = if ephemeral {
            b",\"ephemeral\":true}"
        } else {
            b"}"
        };
        if item.len() < PREFIX.len() + suffix.len()
            || !item.starts_with(PREFIX)
            || !item.ends_with(suffix)
        {
            return Err("not an events item".into());
        }
        // `{"payload":P}` with P one JSON object: the item is then that object's envelope,
        // and the payload reads back from exactly the bytes that are sent.
        let payload = &item[PREFIX.len()..item.len() - suffix.len()];
        let payload: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let uuid = match payload {
            Value::Object(mut payload) => match payload.remove("uuid") {
                Some(Value::String(uuid)) => uuid,
                _ => return Err("the payload has no string uuid".into()),
            },
            _ => return Err("the payload is not an object".into()),
        };
        let uuid = key.as_ref().map(|_| uuid);
        Ok(PreparedEvent::restored(
            item.to_vec(),
            false,
            ephemeral,
            key,
            uuid,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;
    use crate::batch::{BatchDrainer, Config, Envelope, Event};
    use serde_json::json;

    fn prepared(envelope: Envelope, event: Event) -> PreparedEvent {
        let config = Config {
            envelope,
            ..Config::default()
        };
        let mut drainer = BatchDrainer::new(config, Rng::new(3)).expect("valid");
        drainer.prepare(event).expect("prepared")
    }

    #[test]
    fn records_round_trip_and_every_truncation_is_an_error() {
        let cases = [
            (
                Stream::Events,
                prepared(Envelope::Events, Event::new(json!({"a": 1}))),
            ),
            (
                Stream::InternalEvents,
                prepared(
                    Envelope::Events,
                    Event::new(json!({"a": "é"}))
                        .ephemeral(true)
                        .replace_key("k"),
                ),
            ),
            (
                Stream::Delivery,
                prepared(
                    Envelope::DeliveryUpdates,
                    Event::new(json!({"event_id": "x"})),
                ),
            ),
        ];
        for (stream, event) in cases {
            let record = encode_record(stream, &event);
            assert_eq!(decode_record(&record), Ok((stream, event.clone())));
            for len in 0..record.len() {
                assert!(decode_record(&record[..len]).is_err(), "{len}");
            }
        }
    }

    #[test]
    fn an_outbox_keeps_what_the_server_did_not_take_unless_the_caller_let_it_go() {
        let kept = [
            Reason::Closed,
            Reason::Superseded,
            Reason::GivenUp,
            Reason::TooManyFailures { failures: 5 },
        ];
        assert!(kept.iter().all(|r| RecordFate::of(r) == RecordFate::Kept));
        let dead = [Reason::TooLarge, Reason::Rejected { status: 400 }];
        assert!(dead.iter().all(|r| RecordFate::of(r) == RecordFate::Dead));
        let forgotten = [
            Reason::Replaced {
                by: crate::batch::EventId(1),
            },
            Reason::DroppedOldest,
            Reason::DroppedNewest,
        ];
        assert!(
            forgotten
                .iter()
                .all(|r| RecordFate::of(r) == RecordFate::Forgotten)
        );
    }

    #[test]
    fn corrupt_records_say_what_is_wrong() {
        let event = prepared(Envelope::Events, Event::new(json!({"a": 1})));
        let record = encode_record(Stream::Events, &event);
        let mut bad = record.clone();
        bad[0] = 9;
        assert_eq!(decode_record(&bad), Err(RecordError::Version(9)));
        let mut bad = record.clone();
        bad[1] = 7;
        assert_eq!(decode_record(&bad), Err(RecordError::Stream(7)));
        let mut bad = record.clone();
        bad[2] = 0x80;
        assert_eq!(decode_record(&bad), Err(RecordError::Flags(0x80)));
        // Every flipped byte of the item is refused or still a well-formed event.
        for i in 3..record.len() {
            for flip in [0x01, 0x5a, 0xff] {
                let mut bad = record.clone();
                bad[i] ^= flip;
                if let Ok((stream, event)) = decode_record(&bad) {
                    assert!(event.payload().is_ok());
                    assert_eq!(encode_record(stream, &event), bad, "canonical");
                }
            }
        }
        // Duplicate keys read as one by a map, but not as the bytes that are sent.
        let twice = [&record[..3], br#"{"payload":1,"payload":{"uuid":"u"}}"#].concat();
        assert!(decode_record(&twice).is_err());
        let wrong = [&record[..3], br#"{"payload":{"a":1}}"#].concat();
        assert!(matches!(decode_record(&wrong), Err(RecordError::Item(_))));
    }
}
