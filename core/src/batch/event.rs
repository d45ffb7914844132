//! Events: what the caller gives, and the serialised form the drainer keeps and hands back.
//!
//! An event is serialised exactly once, at enqueue, straight into the item it will be on the
//! wire (`{"payload":{..}}` or the bare object), so its size is exact and a batch body is a
//! concatenation of these bytes.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::Serialize;
use serde_json::Value;

use super::config::Envelope;
use super::error::Error;
use super::typed::TypedItem;
use crate::rng::Rng;

/// The drainer's name for an accepted event: unique and increasing per drainer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub u64);

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "event#{}", self.0)
    }
}

/// An event as the caller hands it in: a JSON object and its delivery options.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    payload: Value,
    ephemeral: bool,
    replace_key: Option<String>,
}

impl Event {
    /// An event with this payload; it must be a JSON object to be accepted.
    pub fn new(payload: Value) -> Self {
        Event {
            payload,
            ephemeral: false,
            replace_key: None,
        }
    }

    /// An event from any serialisable value; fails for values JSON cannot express (e.g. a map
    /// with non-string keys).
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, Error> {
        serde_json::to_value(value)
            .map(Event::new)
            .map_err(|e| Error::Unserializable {
                message: e.to_string(),
            })
    }

    /// Marks the event ephemeral (the server need not persist it). Default `false`.
    pub fn ephemeral(mut self, ephemeral: bool) -> Self {
        self.ephemeral = ephemeral;
        self
    }

    /// While this event is unsent, a newer event with the same key replaces it in place,
    /// keeping its position and its `uuid` (e.g. a growing text snapshot).
    pub fn replace_key(mut self, key: impl Into<String>) -> Self {
        self.replace_key = Some(key.into());
        self
    }

    /// The replace key, if any.
    pub fn key(&self) -> Option<&str> {
        self.replace_key.as_deref()
    }

    /// The payload as given.
    pub fn payload(&self) -> &Value {
        &self.payload
    }

    /// The payload, consuming the event.
    pub fn into_payload(self) -> Value {
        self.payload
    }
}

/// What lets an unsent keyed event be replaced: its key and the uuid the replacement inherits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Keyed {
    pub(crate) key: String,
    pub(crate) uuid: Option<String>,
}

/// An event serialised into its wire item, `uuid` stamped. Handed back in errors and in
/// [`Undelivered`], and can be enqueued again with
/// [`BatchDrainer::enqueue_prepared`](super::BatchDrainer::enqueue_prepared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedEvent {
    item: Vec<u8>,
    envelope: Envelope,
    ephemeral: bool,
    keyed: Option<Box<Keyed>>,
}

/// `{"payload":`
const PAYLOAD_PREFIX: usize = 11;
/// `}` or `,"ephemeral":true}`
const fn payload_suffix(ephemeral: bool) -> usize {
    if ephemeral { 18 } else { 1 }
}

#[derive(Serialize)]
struct Item<'a> {
    payload: &'a Value,
    #[serde(skip_serializing_if = "is_false")]
    ephemeral: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl PreparedEvent {
    /// Validates, stamps and serialises `event` for `envelope`.
    ///
    /// With [`Envelope::Events`] a payload without a string `uuid` gets one from `rng` (a
    /// non-string `uuid` is overwritten: the server de-duplicates on a string). `inherit` forces
    /// the uuid of the event being replaced.
    pub(crate) fn prepare(
        event: Event,
        envelope: Envelope,
        max_bytes: usize,
        inherit: Option<&str>,
        rng: &mut Rng,
    ) -> Result<Self, Error> {
        let Event {
            mut payload,
            ephemeral,
            replace_key,
        } = event;
        let Value::Object(map) = &mut payload else {
            return Err(Error::NotAnObject {
                event: Event {
                    payload,
                    ephemeral,
                    replace_key,
                },
            });
        };
        let (item, ephemeral, uuid) = match envelope {
            Envelope::Events => {
                let uuid = match (inherit, map.get("uuid")) {
                    (Some(old), Some(Value::String(s))) if s == old => None,
                    (Some(old), _) => Some(String::from(old)),
                    (None, Some(Value::String(_))) => None,
                    (None, _) => Some(rng.uuid_v4()),
                };
                if let Some(uuid) = uuid {
                    map.insert(String::from("uuid"), Value::String(uuid));
                }
                let uuid = match (&replace_key, map.get("uuid")) {
                    (Some(_), Some(Value::String(s))) => Some(s.clone()),
                    _ => None,
                };
                let item = serialise(&Item {
                    payload: &payload,
                    ephemeral,
                });
                (item, ephemeral, uuid)
            }
            Envelope::DeliveryUpdates => (serialise(&payload), false, None),
        };
        let prepared = PreparedEvent {
            item,
            envelope,
            ephemeral,
            keyed: replace_key.map(|key| Box::new(Keyed { key, uuid })),
        };
        prepared.check_size(max_bytes)
    }

    /// Serialises `value` straight into its wire item, stamping a `uuid` when it has no string
    /// one, with no [`Value`] in between. What one pass cannot do (a top level that is not an
    /// object, a `uuid` that is not a string, the delivery envelope) goes through
    /// [`Event::from_serialize`] and [`prepare`](Self::prepare), with the same result.
    pub(crate) fn prepare_serialize<T: Serialize + ?Sized>(
        value: &T,
        envelope: Envelope,
        max_bytes: usize,
        rng: &mut Rng,
    ) -> Result<Self, Error> {
        if envelope == Envelope::Events {
            let bailed = core::cell::Cell::new(false);
            let cell = core::cell::RefCell::new(rng.clone());
            let item = TypedItem {
                payload: value,
                ephemeral: false,
                rng: &cell,
                bailed: &bailed,
            };
            match serde_json::to_vec(&item) {
                Ok(item) => {
                    *rng = cell.into_inner();
                    let prepared = PreparedEvent {
                        item,
                        envelope,
                        ephemeral: false,
                        keyed: None,
                    };
                    return prepared.check_size(max_bytes);
                }
                Err(error) if !bailed.get() => {
                    return Err(Error::Unserializable {
                        message: error.to_string(),
                    });
                }
                Err(_) => {}
            }
        }
        let event = Event::from_serialize(value)?;
        PreparedEvent::prepare(event, envelope, max_bytes, None, rng)
    }

    /// Fails with [`Error::TooLarge`] if the item alone exceeds `max_bytes`.
    pub(crate) fn check_size(self, max_bytes: usize) -> Result<Self, Error> {
        if self.item.len() > max_bytes {
            return Err(self.too_large(max_bytes));
        }
        Ok(self)
    }

    /// [`Error::TooLarge`] for this event and `limit`.
    pub(crate) fn too_large(self, limit: usize) -> Error {
        let bytes = self.item.len();
        Error::TooLarge {
            event: self,
            bytes,
            limit,
        }
    }

    /// Gives this event `uuid` (it replaces an event that had it); re-serialises, which only
    /// happens when a prepared keyed event is enqueued again over a different one.
    ///
    /// # Errors
    /// [`Error::Unreadable`], with the event as it was, when its payload cannot be read
    /// back (e.g. nested deeper than serde_json reads): it cannot be re-stamped.
    pub(crate) fn inherit_uuid(self, uuid: &str, rng: &mut Rng) -> Result<Self, Error> {
        if self.envelope != Envelope::Events || self.uuid_is(uuid) {
            return Ok(self);
        }
        let payload = match self.payload() {
            Ok(payload) => payload,
            Err(error) => {
                return Err(Error::Unreadable {
                    message: error.to_string(),
                    event: self,
                });
            }
        };
        let event = Event {
            payload,
            ephemeral: self.ephemeral,
            replace_key: self.keyed.clone().map(|k| k.key),
        };
        // The payload was an object and fitted before; a uuid of the same length keeps it so.
        PreparedEvent::prepare(event, self.envelope, usize::MAX, Some(uuid), rng)
    }

    fn uuid_is(&self, uuid: &str) -> bool {
        self.keyed
            .as_ref()
            .and_then(|k| k.uuid.as_deref())
            .is_some_and(|u| u == uuid)
    }

    /// An event read back from an outbox; the caller checked that `item` is its wire item.
    pub(crate) fn restored(
        item: Vec<u8>,
        delivery: bool,
        ephemeral: bool,
        key: Option<String>,
        uuid: Option<String>,
    ) -> Self {
        PreparedEvent {
            item,
            envelope: if delivery {
                Envelope::DeliveryUpdates
            } else {
                Envelope::Events
            },
            ephemeral,
            keyed: key.map(|key| Box::new(Keyed { key, uuid })),
        }
    }

    /// The bytes this event adds to a batch: its whole wire item.
    pub fn bytes(&self) -> usize {
        self.item.len()
    }

    /// The wire item: `{"payload":{..}}` (plus `"ephemeral":true`) or the bare object.
    pub fn item_bytes(&self) -> &[u8] {
        &self.item
    }

    /// The payload's JSON as it is sent, `uuid` included.
    pub fn payload_bytes(&self) -> &[u8] {
        match self.envelope {
            Envelope::Events => {
                &self.item[PAYLOAD_PREFIX..self.item.len() - payload_suffix(self.ephemeral)]
            }
            Envelope::DeliveryUpdates => &self.item,
        }
    }

    /// The payload parsed back, `uuid` included.
    pub fn payload(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(self.payload_bytes())
    }

    /// Whether the event was marked ephemeral.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// The replace key, if any.
    pub fn replace_key(&self) -> Option<&str> {
        self.keyed.as_deref().map(|k| k.key.as_str())
    }

    /// The envelope this event was serialised for.
    pub fn envelope(&self) -> Envelope {
        self.envelope
    }

    pub(crate) fn keyed(&self) -> Option<&Keyed> {
        self.keyed.as_deref()
    }
}

fn serialise<T: Serialize>(value: &T) -> Vec<u8> {
    // A `Value` (or a struct of one) always serialises: its keys are strings and its numbers
    // finite.
    serde_json::to_vec(value).unwrap_or_default()
}

/// An event the drainer will not deliver, handed back with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undelivered {
    /// The id [`enqueue`](super::BatchDrainer::enqueue) returned for it.
    pub id: EventId,
    /// The event, payload and `uuid` included.
    pub event: PreparedEvent,
    /// Whether a send of it ended without an answer (a lost response, a timeout, or the
    /// session ending while it was on the wire): the server may hold it after all.
    pub maybe_delivered: bool,
}
