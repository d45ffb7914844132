//! Thread edits kept durable. With a durable outbox, every thread edit the caller makes is
//! journaled (its thread, the edit as JSON) until that thread is synced; the journal is stored
//! whole as the outbox's thread record with the next group commit, and a restart on the same
//! outbox applies it again before thread sync starts. The edits keep thread sync's own ids
//! (message ids), so the server, which merges by id, takes each once.

use serde_json::{Map, Value, json};
use tether_core::thread::{Edit, Message, Thread};

/// Journaled edits of threads not yet synced, in the order they were made.
#[derive(Debug, Default)]
pub(crate) struct ThreadJournal {
    entries: Vec<(String, Value)>,
    changed: bool,
}

impl ThreadJournal {
    /// An edit of `thread` that was applied.
    pub(crate) fn record(&mut self, thread: &str, edit: &Edit) {
        self.entries.push((thread.to_owned(), encode(edit)));
        self.changed = true;
    }

    /// `thread` is synced: its edits are on the server.
    pub(crate) fn synced(&mut self, thread: &str) {
        let before = self.entries.len();
        self.entries.retain(|(t, _)| t != thread);
        self.changed |= self.entries.len() != before;
    }

    /// The journal as the record to store, if it changed since the last call.
    pub(crate) fn take_record(&mut self) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        let entries: Vec<Value> = self
            .entries
            .iter()
            .map(|(thread, edit)| json!({"thread": thread, "edit": edit}))
            .collect();
        Some(serde_json::to_vec(&entries).unwrap_or_default())
    }

    /// The edits a stored record holds, in order; what cannot be read is said so.
    pub(crate) fn decode(record: &[u8]) -> Result<Vec<(String, Edit)>, String> {
        let entries: Vec<Value> =
            serde_json::from_slice(record).map_err(|e| format!("the thread record: {e}"))?;
        entries
            .iter()
            .map(|entry| {
                let thread = entry["thread"]
                    .as_str()
                    .ok_or("an entry without a thread")?;
                Ok((thread.to_owned(), decode(&entry["edit"])?))
            })
            .collect()
    }
}

fn encode(edit: &Edit) -> Value {
    match edit {
        Edit::Add(message) => json!({"add": message.to_value()}),
        Edit::Update(message) => json!({"update": message.to_value()}),
        Edit::Delete(id) => json!({"delete": id}),
        Edit::Set(key, value) => json!({"set": {"key": key, "value": value}}),
        Edit::Put(thread) => json!({"put": thread.to_value()}),
        // A kind this journal does not know: stored as such, said so when read back.
        _ => Value::Null,
    }
}

fn decode(edit: &Value) -> Result<Edit, String> {
    let object: &Map<String, Value> = edit.as_object().ok_or("an edit that is not an object")?;
    let message = |v: &Value| Message::from_value(v).map_err(|e| e.to_string());
    match object.iter().next() {
        Some((kind, body)) if kind == "add" => message(body).map(Edit::Add),
        Some((kind, body)) if kind == "update" => message(body).map(Edit::Update),
        Some((kind, Value::String(id))) if kind == "delete" => Ok(Edit::Delete(id.clone())),
        Some((kind, body)) if kind == "set" => {
            let key = body["key"].as_str().ok_or("a set without a key")?;
            let value = body.get("value").filter(|v| !v.is_null()).cloned();
            Ok(Edit::Set(key.to_owned(), value))
        }
        Some((kind, body)) if kind == "put" => Thread::from_value(body)
            .map(Edit::Put)
            .map_err(|e| e.to_string()),
        _ => Err(format!("an edit of no known kind: {edit}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_edit_comes_back_as_it_was_and_synced_threads_leave_the_journal() {
        let message = Message::new("m1", "user", "hello", 7);
        let mut thread = Thread::new("t2");
        thread.messages.push(message.clone());
        let edits = [
            ("t1", Edit::Add(message.clone())),
            (
                "t1",
                Edit::Update(Message::new("m1", "user", "hello again", 8)),
            ),
            ("t1", Edit::Set("title".into(), Some(json!("Title")))),
            ("t1", Edit::Set("draft".into(), None)),
            ("t1", Edit::Delete("m1".into())),
            ("t2", Edit::Put(thread)),
        ];
        let mut journal = ThreadJournal::default();
        for (t, edit) in &edits {
            journal.record(t, edit);
        }
        let record = journal.take_record().expect("changed");
        assert_eq!(journal.take_record(), None, "only when changed");
        let back = ThreadJournal::decode(&record).unwrap();
        let expected: Vec<(String, Edit)> = edits
            .iter()
            .map(|(t, e)| (t.to_string(), e.clone()))
            .collect();
        assert_eq!(back, expected);

        journal.synced("t1");
        let record = journal.take_record().expect("t1 left");
        let back = ThreadJournal::decode(&record).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].0, "t2");
        assert!(ThreadJournal::decode(b"{not json").is_err());
    }
}
