//! The inspector's API: the state of every session as JSON, the timeline picture, and the two
//! changes (fault plan, partition).

use std::time::Duration;

use hyper::StatusCode;
use serde_json::{Map, Value, json};
use tether_core::session::Stream;

use super::query::shown;
use super::{Answer, Query};
use crate::journal::{describe_plan, preset_name};
use crate::shared::Shared;
use crate::store::{Session, instant};
use tether_core::session::Endpoint;
use tether_model::fault::FaultPlan;

/// Sessions shown in full at most; the rest are counted.
const SESSIONS_SHOWN: usize = 100;
/// A JSON value larger than this (as text) is shown as a preview string.
const VALUE_PREVIEW: usize = 4 * 1024;
/// The document is cut above this size.
const DOCUMENT_PREVIEW: usize = 256 * 1024;
/// The event rate is taken over this window.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Messages shown per thread (the last ones).
const MESSAGES_SHOWN: usize = 20;
/// The longest partition the page can set.
pub(crate) const MAX_PARTITION_SECS: u64 = 3600;

/// `GET /inspect/api/state?session=ID&events=N`.
pub(super) fn state(shared: &Shared, query: &Query) -> Answer {
    let events_shown = match query.integer("events", 0..=200, 10) {
        Ok(n) => n as usize,
        Err(reason) => return Answer::bad_request(reason),
    };
    let only = query.get("session");
    if only == Some("") {
        return Answer::bad_request("parameter `session` is empty");
    }
    let now = shared.elapsed();
    let ttl = shared.config.heartbeat_ttl;
    let journal = shared.journal();
    let plan = journal.plan().clone();
    let changes: Vec<Value> = journal
        .changes()
        .rev()
        .take(50)
        .map(|c| json!({"at_ms": millis(c.at), "text": c.text}))
        .collect();
    let store = shared.store();
    let ids = store.session_ids();
    if let Some(id) = only.filter(|id| store.session(id).is_none()) {
        return Answer::error(
            StatusCode::NOT_FOUND,
            format!(
                "no session `{}` (none of its requests arrived yet)",
                shown(id)
            ),
        );
    }
    let mut sessions = Vec::new();
    for id in ids
        .iter()
        .filter(|id| only.is_none_or(|o| o == id.as_str()))
    {
        if sessions.len() == SESSIONS_SHOWN {
            break;
        }
        if let Some(session) = store.session(id) {
            let notes = journal.notes(id);
            sessions.push(session_json(id, session, &notes, now, ttl, events_shown));
        }
    }
    let totals = store.totals();
    Answer::ok(&json!({
        "uptime_ms": millis(now),
        "heartbeat_ttl_ms": millis(ttl),
        "faults": {
            "preset": preset_name(&plan),
            "description": describe_plan(&plan),
            "rate": plan.mix.total(),
            "seed": plan.seed,
        },
        "totals": {
            "requests": totals.total_requests(),
            "faults": totals.total_faults(),
        },
        "sessions_total": ids.len(),
        "sessions": sessions,
        "changes": changes,
        "max_partition_s": MAX_PARTITION_SECS,
    }))
}

fn session_json(
    id: &str,
    session: &Session,
    notes: &crate::journal::SessionNotes,
    now: Duration,
    ttl: Duration,
    events_shown: usize,
) -> Value {
    let model = &session.model;
    let beats = model.heartbeats();
    let last_beat = beats.last().map(|b| b.since_origin());
    let alive = model.is_alive(instant(now));
    let events = model.events(Stream::Events);
    let internal = model.events(Stream::InternalEvents);
    let last_events: Vec<Value> = events
        .iter()
        .rev()
        .take(events_shown)
        .rev()
        .map(|e| {
            json!({
                "uuid": e.uuid,
                "at_ms": millis(e.at.since_origin()),
                "epoch": e.epoch,
                "payload": preview(e.payload(), VALUE_PREVIEW),
            })
        })
        .collect();
    let last_patch = model.applied_puts().last().map(|put| {
        json!({
            "at_ms": millis(put.at.since_origin()),
            "epoch": put.epoch,
            "patch": preview(&Value::Object(put.patch.clone()), VALUE_PREVIEW),
        })
    });
    let mut document = model.worker();
    let document_bytes = document.to_string().len();
    if document_bytes > DOCUMENT_PREVIEW {
        document = preview(&document, DOCUMENT_PREVIEW);
    }
    let requests: Vec<Value> = Endpoint::ALL
        .iter()
        .map(|route| {
            json!({
                "route": route.to_string(),
                "anchor": super::markdown::slug(&route.to_string()),
                "count": session.stats.requests.get(route).copied().unwrap_or(0),
            })
        })
        .collect();
    let mut faults = Map::new();
    for (kind, n) in &session.stats.faults {
        faults.insert(kind.to_string(), json!(n));
    }
    if notes.partitioned > 0 {
        faults.insert("partition".into(), json!(notes.partitioned));
    }
    let store = model.threads();
    let threads: Vec<Value> = store
        .threads()
        .map(|t| {
            let mut fields = t.fields.clone();
            fields.retain(|_, v| !v.is_array() && !v.is_object());
            let skip = t.messages.len().saturating_sub(MESSAGES_SHOWN);
            let messages: Vec<Value> = t.messages[skip..]
                .iter()
                .map(|m| preview(&m.to_value(), VALUE_PREVIEW))
                .collect();
            json!({
                "id": t.id,
                "v": t.v,
                "fields": fields,
                "message_count": t.messages.len(),
                "messages": messages,
            })
        })
        .collect();
    let partitioned_until = notes.partitioned_until(now);
    let liveness = match (last_beat, alive) {
        (None, _) => "no heartbeat",
        (Some(_), true) => "live",
        (Some(_), false) => "stale",
    };
    json!({
        "id": id,
        "epoch": model.epoch(),
        "worker_status": model.document().get("worker_status").cloned().unwrap_or(Value::Null),
        "liveness": liveness,
        "heartbeats": beats.len(),
        "last_heartbeat_ms": last_beat.map(millis),
        "heartbeat_age_ms": last_beat.map(|b| millis(now.saturating_sub(b))),
        "heartbeat_ttl_ms": millis(ttl),
        "events": {
            "stored": events.len(),
            "rate": rate(events.iter().map(|e| e.at.since_origin()), events.len(), now),
            "duplicates": model.duplicates(Stream::Events),
            "last": last_events,
        },
        "internal_events": {
            "stored": internal.len(),
            "duplicates": model.duplicates(Stream::InternalEvents),
        },
        "delivery_updates": model.delivery_updates().len(),
        "document": document,
        "document_bytes": document_bytes,
        "last_patch": last_patch,
        "puts": model.applied_puts().len(),
        "requests": requests,
        "requests_total": session.stats.total_requests(),
        "faults": faults,
        "faults_total": session.stats.total_faults() + notes.partitioned,
        "partitioned_until_ms": partitioned_until.map(millis),
        "partition_left_ms": partitioned_until.map(|u| millis(u.saturating_sub(now))),
        "threads_version": store.version(),
        "threads": threads,
        "timeline": format!("/inspect/timeline.svg?session={}", encode(id)),
    })
}

/// Events a second over the last [`RATE_WINDOW`] (or since the first, if sooner). `times` are
/// the arrival times, in order.
fn rate(times: impl DoubleEndedIterator<Item = Duration>, total: usize, now: Duration) -> f64 {
    let from = now.saturating_sub(RATE_WINDOW);
    let mut recent = 0usize;
    let mut first_recent = None;
    for at in times.rev() {
        if at < from {
            break;
        }
        recent += 1;
        first_recent = Some(at);
    }
    if recent == 0 {
        return 0.0;
    }
    // Over the whole window, unless every event came within it: then since the first one.
    let span = if recent == total {
        now.saturating_sub(first_recent.unwrap_or(now))
    } else {
        RATE_WINDOW
    };
    let secs = span.as_secs_f64().max(1.0);
    (recent as f64 / secs * 10.0).round() / 10.0
}

/// `value`, or a string preview of it when its text is over `max` bytes.
fn preview(value: &Value, max: usize) -> Value {
    let text = value.to_string();
    if text.len() <= max {
        return value.clone();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Value::String(format!("{}… ({} bytes in all)", &text[..cut], text.len()))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Percent-encodes a session id for a query string.
pub(super) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `GET /inspect/timeline.svg?session=ID`.
pub(super) fn timeline_svg(shared: &Shared, query: &Query) -> Answer {
    let id = match query.required("session") {
        Ok(id) => id,
        Err(reason) => return Answer::bad_request(reason),
    };
    if shared.store().session(id).is_none() {
        return Answer::error(StatusCode::NOT_FOUND, format!("no session `{}`", shown(id)));
    }
    let now = shared.elapsed();
    let timeline = {
        let journal = shared.journal();
        let (entries, trimmed) = journal.requests_of(id);
        super::timeline::build(id, &entries, trimmed, &journal.notes(id), now)
    };
    Answer::text(
        "image/svg+xml; charset=utf-8",
        tether_model::render::render(&timeline),
    )
}

/// `POST /inspect/api/faults?plan=PLAN`: a preset name or a full plan string. What the string
/// does not set (seed, delay, hang and retry-after sizes) is kept from the plan in force.
pub(super) fn set_faults(shared: &Shared, query: &Query) -> Answer {
    let text = match query.required("plan") {
        Ok(t) => t,
        Err(reason) => return Answer::bad_request(reason),
    };
    let mut plan: FaultPlan = match text.parse() {
        Ok(p) => p,
        Err(e) => return Answer::bad_request(format!("{e}")),
    };
    let current = shared.journal().plan().clone();
    if !text.contains("seed=") {
        plan.seed = current.seed;
    }
    if !text.contains("hang-ms=") {
        plan.hang_for = current.hang_for;
    }
    if !text.contains("delay-max-ms=") && !text.contains("latency-max-ms=") {
        plan.mix.latency_max = current.mix.latency_max;
    }
    if !text.contains("retry-after-s=") {
        plan.mix.retry_after_max_secs = current.mix.retry_after_max_secs;
    }
    let description = describe_plan(&plan);
    shared.set_plan(plan);
    Answer::ok(&json!({ "faults": description }))
}

/// `POST /inspect/api/partition?session=ID&seconds=N`.
pub(super) fn partition(shared: &Shared, query: &Query) -> Answer {
    let id = match query.required("session") {
        Ok(id) => id,
        Err(reason) => return Answer::bad_request(reason),
    };
    let seconds = match query.get("seconds") {
        None => return Answer::bad_request("parameter `seconds` is required"),
        Some(_) => match query.integer("seconds", 0..=MAX_PARTITION_SECS, 0) {
            Ok(s) => s,
            Err(reason) => return Answer::bad_request(reason),
        },
    };
    if shared.store().session(id).is_none() {
        return Answer::error(StatusCode::NOT_FOUND, format!("no session `{}`", shown(id)));
    }
    let now = shared.elapsed();
    let mut journal = shared.journal();
    journal.partition(id, now, Duration::from_secs(seconds));
    shared.announce(&journal);
    let until = journal.notes(id).partitioned_until(now);
    Answer::ok(&json!({
        "session": id,
        "partitioned_until_ms": until.map(millis),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_the_window_or_since_the_first() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        // 100 events in the last 2 s, none before: 50/s.
        let times: Vec<Duration> = (0..100).map(|i| s(8) + ms(i * 20)).collect();
        assert_eq!(rate(times.iter().copied(), 100, s(10)), 50.0);
        // Older events too: over the whole 5 s window.
        let mut older: Vec<Duration> = vec![s(1); 10];
        older.extend(&times);
        assert_eq!(rate(older.iter().copied(), 110, s(10)), 20.0);
        // Nothing recent.
        assert_eq!(rate(older.iter().copied(), 110, s(100)), 0.0);
        assert_eq!(rate(std::iter::empty(), 0, s(1)), 0.0);
    }

    #[test]
    fn previews_cut_on_a_char_boundary() {
        let v = json!({"text": "é".repeat(100)});
        let p = preview(&v, 11);
        assert!(p.as_str().unwrap().contains("bytes in all"));
        assert_eq!(preview(&v, 10_000), v);
    }

    #[test]
    fn session_ids_are_encoded() {
        assert_eq!(encode("a b/ç"), "a%20b%2F%C3%A7");
        assert_eq!(encode("demo-1_x.y~"), "demo-1_x.y~");
    }
}
