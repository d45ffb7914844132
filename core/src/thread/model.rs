//! Threads and messages: docs/PROTOCOL.md §Thread sync's data model, validated at the edge.

use alloc::collections::BTreeSet;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde_json::{Map, Value};

/// One message of a thread: `{"id", "role", "content", "timestamp"}`, plus any other keys,
/// kept as they came so nothing is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Unique within its thread; what identifies the message when merging.
    pub id: String,
    /// Who wrote it (`"user"`, `"assistant"`, ...).
    pub role: String,
    /// The text.
    pub content: String,
    /// Milliseconds (any origin the application picks); merges order new messages by
    /// `(timestamp, id)`.
    pub timestamp: u64,
    /// Any other keys, kept as they came.
    pub extra: Map<String, Value>,
}

impl Message {
    /// A message with no extra keys.
    pub fn new(
        id: impl Into<String>,
        role: impl Into<String>,
        content: impl Into<String>,
        timestamp: u64,
    ) -> Self {
        Message {
            id: id.into(),
            role: role.into(),
            content: content.into(),
            timestamp,
            extra: Map::new(),
        }
    }

    /// Reads a message from JSON.
    ///
    /// # Errors
    /// [`Error`] naming what is wrong; never panics.
    pub fn from_value(value: &Value) -> Result<Self, Error> {
        let Value::Object(map) = value else {
            return Err(Error::MessageNotAnObject);
        };
        let id = match map.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Err(Error::MessageWithoutId),
        };
        let text = |key: &'static str| match map.get(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(Error::BadMessageField {
                id: id.clone(),
                field: key,
            }),
        };
        let role = text("role")?;
        let content = text("content")?;
        let timestamp = map
            .get("timestamp")
            .and_then(Value::as_u64)
            .ok_or_else(|| Error::BadMessageField {
                id: id.clone(),
                field: "timestamp",
            })?;
        let extra = map
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "id" | "role" | "content" | "timestamp"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(Message {
            id,
            role,
            content,
            timestamp,
            extra,
        })
    }

    /// The message as JSON.
    pub fn to_value(&self) -> Value {
        let mut map = self.extra.clone();
        map.insert("id".into(), Value::String(self.id.clone()));
        map.insert("role".into(), Value::String(self.role.clone()));
        map.insert("content".into(), Value::String(self.content.clone()));
        map.insert("timestamp".into(), Value::from(self.timestamp));
        Value::Object(map)
    }

    /// The merge order of new messages: `(timestamp, id)`.
    pub fn order_key(&self) -> (u64, &str) {
        (self.timestamp, self.id.as_str())
    }
}

/// A shared thread: an `id`, the server's version `v`, `messages`, the ids of deleted messages,
/// and other top-level fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thread {
    /// The thread's id.
    pub id: String,
    /// The server-assigned version; `0` for a thread the server has never stored.
    pub v: u64,
    /// The messages, in order; ids are unique.
    pub messages: Vec<Message>,
    /// Tombstones (`"deleted"` on the wire): ids of messages deleted from the thread. None of
    /// them is in `messages`; merges take the union of both sides', so a delete sticks.
    pub deleted: BTreeSet<String>,
    /// Every other top-level key (e.g. `title`), each merged as one value.
    pub fields: Map<String, Value>,
}

impl Thread {
    /// An empty thread that the server does not have yet (`v = 0`).
    pub fn new(id: impl Into<String>) -> Self {
        Thread {
            id: id.into(),
            v: 0,
            messages: Vec::new(),
            deleted: BTreeSet::new(),
            fields: Map::new(),
        }
    }

    /// Reads a thread from JSON, checking docs/PROTOCOL.md's shape: an object with a non-empty
    /// string `id`, an optional integer `v`, an optional `messages` array of valid messages with
    /// unique ids, an optional `deleted` array of message ids none of which is in `messages`.
    ///
    /// # Errors
    /// [`Error`] naming what is wrong; never panics.
    pub fn from_value(value: &Value) -> Result<Self, Error> {
        let Value::Object(map) = value else {
            return Err(Error::NotAnObject);
        };
        let id = match map.get("id") {
            Some(Value::String(id)) if !id.is_empty() => id.clone(),
            _ => return Err(Error::MissingId),
        };
        let v = match map.get("v") {
            None => 0,
            Some(v) => v.as_u64().ok_or(Error::BadVersion)?,
        };
        let messages = match map.get("messages") {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(Message::from_value)
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(Error::MessagesNotAnArray),
        };
        let deleted = match map.get("deleted") {
            None => BTreeSet::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|id| match id {
                    Value::String(id) if !id.is_empty() => Ok(id.clone()),
                    _ => Err(Error::BadDeleted),
                })
                .collect::<Result<BTreeSet<_>, _>>()?,
            Some(_) => return Err(Error::BadDeleted),
        };
        let fields = map
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let thread = Thread {
            id,
            v,
            messages,
            deleted,
            fields,
        };
        thread.validate()?;
        Ok(thread)
    }

    /// Checks what the types cannot: a non-empty id, message ids non-empty, unique and not
    /// deleted, and no field named like a reserved key.
    ///
    /// # Errors
    /// [`Error`].
    pub fn validate(&self) -> Result<(), Error> {
        if self.id.is_empty() {
            return Err(Error::MissingId);
        }
        let mut seen = BTreeSet::new();
        for message in &self.messages {
            if message.id.is_empty() {
                return Err(Error::MessageWithoutId);
            }
            if !seen.insert(message.id.as_str()) {
                return Err(Error::DuplicateMessage {
                    id: message.id.clone(),
                });
            }
            if self.deleted.contains(&message.id) {
                return Err(Error::DeletedMessage {
                    id: message.id.clone(),
                });
            }
        }
        if self.deleted.iter().any(String::is_empty) {
            return Err(Error::BadDeleted);
        }
        if let Some(key) = RESERVED.into_iter().find(|k| self.fields.contains_key(*k)) {
            return Err(Error::ReservedField { key });
        }
        Ok(())
    }

    /// The thread as JSON: `{"id", "v", "messages", "deleted", ...fields}`; `deleted` only when
    /// a message was deleted, so threads without deletions read as before.
    pub fn to_value(&self) -> Value {
        let mut map = self.fields.clone();
        map.insert("id".into(), Value::String(self.id.clone()));
        map.insert("v".into(), Value::from(self.v));
        map.insert(
            "messages".into(),
            Value::Array(self.messages.iter().map(Message::to_value).collect()),
        );
        if !self.deleted.is_empty() {
            map.insert(
                "deleted".into(),
                Value::Array(self.deleted.iter().cloned().map(Value::String).collect()),
            );
        }
        Value::Object(map)
    }

    /// The message with this id.
    pub fn message(&self, id: &str) -> Option<&Message> {
        self.messages.iter().find(|m| m.id == id)
    }

    /// Whether the two threads hold the same content, whatever their versions.
    pub fn same_content(&self, other: &Thread) -> bool {
        self.id == other.id
            && self.messages == other.messages
            && self.deleted == other.deleted
            && self.fields == other.fields
    }
}

/// The top-level keys a thread owns; no field may take their names.
const RESERVED: [&str; 4] = ["id", "v", "messages", "deleted"];

/// A thread or message that is not valid, or an edit that cannot be applied.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The thread is not a JSON object.
    NotAnObject,
    /// The thread has no non-empty string `id`.
    MissingId,
    /// `v` is not a non-negative integer.
    BadVersion,
    /// `messages` is not an array.
    MessagesNotAnArray,
    /// A message is not a JSON object.
    MessageNotAnObject,
    /// A message has no non-empty string `id`.
    MessageWithoutId,
    /// A message field has the wrong type (`role` and `content` are strings, `timestamp` a
    /// non-negative integer).
    BadMessageField {
        /// The message.
        id: String,
        /// The field.
        field: &'static str,
    },
    /// Two messages of one thread share an id.
    DuplicateMessage {
        /// The id.
        id: String,
    },
    /// `deleted` is not an array of non-empty message ids.
    BadDeleted,
    /// A message id is both present and deleted: deleted ids never come back (unless the
    /// merge policy resurrects them).
    DeletedMessage {
        /// The id.
        id: String,
    },
    /// A field is named like a key the thread owns (`id`, `v`, `messages`, `deleted`).
    ReservedField {
        /// The key.
        key: &'static str,
    },
    /// A thread came back under another thread's id.
    IdMismatch {
        /// The id it should have had.
        expected: String,
    },
    /// The edit names a thread this replica does not hold.
    UnknownThread {
        /// The thread.
        id: String,
    },
    /// The edit names a message the thread does not hold.
    UnknownMessage {
        /// The message.
        id: String,
    },
    /// The machine stopped (superseded or given up); edits are refused.
    Stopped,
}

impl Error {
    /// The reason as one line, as a rejected result carries it.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotAnObject => f.write_str("a thread must be a JSON object"),
            Error::MissingId => f.write_str("a thread needs a non-empty string `id`"),
            Error::BadVersion => f.write_str("`v` must be a non-negative integer"),
            Error::MessagesNotAnArray => f.write_str("`messages` must be an array"),
            Error::MessageNotAnObject => f.write_str("a message must be a JSON object"),
            Error::MessageWithoutId => f.write_str("a message needs a non-empty string `id`"),
            Error::BadMessageField { id, field } => {
                write!(f, "message `{id}` has a bad `{field}`")
            }
            Error::DuplicateMessage { id } => write!(f, "message id `{id}` is repeated"),
            Error::BadDeleted => f.write_str("`deleted` must be an array of non-empty message ids"),
            Error::DeletedMessage { id } => write!(f, "message `{id}` was deleted"),
            Error::ReservedField { key } => write!(f, "`{key}` cannot be set as a field"),
            Error::IdMismatch { expected } => write!(f, "the thread is not `{expected}`"),
            Error::UnknownThread { id } => write!(f, "no thread `{id}` here"),
            Error::UnknownMessage { id } => write!(f, "no message `{id}` in the thread"),
            Error::Stopped => f.write_str("thread sync has stopped"),
        }
    }
}

impl core::error::Error for Error {}
