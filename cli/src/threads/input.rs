//! `tether threads`' input: one JSON object per line, read into an [`Input`], and applied to
//! the thread handle.

use serde_json::{Map, Value};
use tether_blocking::{ThreadCallError, ThreadHandle};
use tether_core::thread::Message;

/// One input line, read.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// `{"add": {"thread": T, "message": {...}}}`: append a message (the thread is created if
    /// new).
    Add { thread: String, message: Value },
    /// `{"edit": {"thread": T, "message": {...}}}`: replace a message, by its `id`.
    Edit { thread: String, message: Value },
    /// `{"delete": {"thread": T, "message": ID}}`: delete a message, by id (a tombstone).
    Delete { thread: String, message: String },
    /// `{"set": {"thread": T, "field": F, "value": V}}`: set a top-level field; without
    /// `value`, remove it.
    Set {
        thread: String,
        field: String,
        value: Option<Value>,
    },
    /// `{"sync_now": T}`: push the thread's queued edits now, skipping the push window.
    SyncNow(String),
    /// `{"flush": true}`: wait until every edit before is on the server and a pull made after
    /// it answered; answered with a `flush` line.
    Flush,
    /// `{"pull_now": true}`: pull as soon as possible.
    PullNow,
    /// `{"pause": true}`: no request goes until `resume`; edits queue.
    Pause,
    /// `{"resume": true}`.
    Resume,
    /// `{"online": BOOL}`: the caller's word on connectivity.
    Online(bool),
}

/// The keys a line may have, for the error message.
const KEYS: &str = "`add`, `edit`, `delete`, `set`, `sync_now`, `flush`, `pull_now`, `pause`, \
                    `resume` or `online`";

/// Reads one line; `Err` says why it is malformed.
pub fn parse(line: &str) -> Result<Input, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("expected a JSON object".into());
    };
    let mut entries = map.into_iter();
    let (Some((key, body)), None) = (entries.next(), entries.next()) else {
        return Err(format!("expected exactly one key: {KEYS}"));
    };
    match key.as_str() {
        "add" | "edit" => {
            let mut body = object(&key, body)?;
            let thread = thread_of(&key, &mut body)?;
            let message = body
                .remove("message")
                .filter(Value::is_object)
                .ok_or_else(|| format!("`{key}` needs a `message` object"))?;
            no_more(&key, &body)?;
            Ok(if key == "add" {
                Input::Add { thread, message }
            } else {
                Input::Edit { thread, message }
            })
        }
        "delete" => {
            let mut body = object(&key, body)?;
            let thread = thread_of(&key, &mut body)?;
            let message = match body.remove("message") {
                Some(Value::String(id)) => id,
                _ => return Err("`delete` needs a `message` id (a string)".into()),
            };
            no_more(&key, &body)?;
            Ok(Input::Delete { thread, message })
        }
        "set" => {
            let mut body = object(&key, body)?;
            let thread = thread_of(&key, &mut body)?;
            let field = match body.remove("field") {
                Some(Value::String(field)) => field,
                _ => return Err("`set` needs a `field` (a string)".into()),
            };
            let value = body.remove("value");
            no_more(&key, &body)?;
            Ok(Input::Set {
                thread,
                field,
                value,
            })
        }
        "sync_now" => match body {
            Value::String(thread) => Ok(Input::SyncNow(thread)),
            _ => Err("`sync_now` must be a thread id (a string)".into()),
        },
        "online" => match body {
            Value::Bool(online) => Ok(Input::Online(online)),
            _ => Err("`online` must be true or false".into()),
        },
        "flush" | "pull_now" | "pause" | "resume" => {
            if body != Value::Bool(true) {
                return Err(format!("`{key}` must be true"));
            }
            Ok(match key.as_str() {
                "flush" => Input::Flush,
                "pull_now" => Input::PullNow,
                "pause" => Input::Pause,
                _ => Input::Resume,
            })
        }
        other => Err(format!("unknown key `{other}`: expected {KEYS}")),
    }
}

fn object(key: &str, body: Value) -> Result<Map<String, Value>, String> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(format!("`{key}` must be a JSON object")),
    }
}

fn thread_of(key: &str, body: &mut Map<String, Value>) -> Result<String, String> {
    match body.remove("thread") {
        Some(Value::String(thread)) if !thread.is_empty() => Ok(thread),
        _ => Err(format!("`{key}` needs a `thread` id (a non-empty string)")),
    }
}

fn no_more(key: &str, body: &Map<String, Value>) -> Result<(), String> {
    match body.keys().next() {
        Some(extra) => Err(format!("`{key}` has an unknown key `{extra}`")),
        None => Ok(()),
    }
}

/// Applies an edit or a control to the handle (not `Flush`, which the caller waits for).
/// `Err` says why the handle refused it; nothing changed then.
pub fn apply(threads: &ThreadHandle, input: Input) -> Result<(), String> {
    let refused = |e: ThreadCallError| e.to_string();
    match input {
        Input::Add { thread, message } => {
            threads.add_message_json(&thread, &message).map_err(refused)
        }
        Input::Edit { thread, message } => {
            let message = Message::from_value(&message).map_err(|e| format!("refused: {e}"))?;
            threads.update_message(&thread, message).map_err(refused)
        }
        Input::Delete { thread, message } => {
            threads.delete_message(&thread, &message).map_err(refused)
        }
        Input::Set {
            thread,
            field,
            value,
        } => threads.set_field(&thread, &field, value).map_err(refused),
        Input::SyncNow(thread) => threads.sync_now(&thread).map(|_| ()).map_err(refused),
        Input::PullNow => {
            threads.pull_now();
            Ok(())
        }
        Input::Pause => {
            threads.pause();
            Ok(())
        }
        Input::Resume => {
            threads.resume();
            Ok(())
        }
        Input::Online(online) => {
            threads.set_online(online);
            Ok(())
        }
        Input::Flush => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_kind_of_line_reads() {
        let m = json!({"id": "m1", "role": "user", "content": "hi", "timestamp": 1});
        let cases = [
            (
                json!({"add": {"thread": "t", "message": m}}),
                Input::Add {
                    thread: "t".into(),
                    message: m.clone(),
                },
            ),
            (
                json!({"edit": {"thread": "t", "message": m}}),
                Input::Edit {
                    thread: "t".into(),
                    message: m.clone(),
                },
            ),
            (
                json!({"delete": {"thread": "t", "message": "m1"}}),
                Input::Delete {
                    thread: "t".into(),
                    message: "m1".into(),
                },
            ),
            (
                json!({"set": {"thread": "t", "field": "title", "value": "x"}}),
                Input::Set {
                    thread: "t".into(),
                    field: "title".into(),
                    value: Some(json!("x")),
                },
            ),
            (
                json!({"set": {"thread": "t", "field": "title"}}),
                Input::Set {
                    thread: "t".into(),
                    field: "title".into(),
                    value: None,
                },
            ),
            (json!({"sync_now": "t"}), Input::SyncNow("t".into())),
            (json!({"flush": true}), Input::Flush),
            (json!({"pull_now": true}), Input::PullNow),
            (json!({"pause": true}), Input::Pause),
            (json!({"resume": true}), Input::Resume),
            (json!({"online": false}), Input::Online(false)),
        ];
        for (line, input) in cases {
            assert_eq!(parse(&line.to_string()), Ok(input), "{line}");
        }
    }

    #[test]
    fn malformed_lines_say_why() {
        for (line, why) in [
            ("{", "not JSON"),
            ("[1]", "a JSON object"),
            ("{}", "exactly one key"),
            (r#"{"flush": true, "pause": true}"#, "exactly one key"),
            (r#"{"nope": 1}"#, "unknown key `nope`"),
            (r#"{"add": {"message": {}}}"#, "`thread` id"),
            (r#"{"add": {"thread": "t"}}"#, "`message` object"),
            (
                r#"{"add": {"thread": "t", "message": {}, "x": 1}}"#,
                "unknown key `x`",
            ),
            (
                r#"{"delete": {"thread": "t", "message": 3}}"#,
                "`message` id",
            ),
            (r#"{"set": {"thread": "t"}}"#, "`field`"),
            (r#"{"sync_now": 1}"#, "thread id"),
            (r#"{"flush": 1}"#, "must be true"),
            (r#"{"online": "yes"}"#, "true or false"),
        ] {
            let error = parse(line).unwrap_err();
            assert!(error.contains(why), "{line}: {error}");
        }
    }
}
