//! A seeded workload: what the application asks of the session over a run.
//!
//! [`generate`] turns a seed and a [`WorkloadConfig`] into a time-ordered list of [`Action`]s
//! ending with one [`Action::Close`]. Each kind of action is drawn from its own stream of the
//! seed, so changing one rate leaves the others' timing alone. Every event carries a `seq` field
//! ([`SEQ_FIELD`]), increasing in enqueue order across both streams, so the checks can tell loss,
//! duplication and reordering apart without knowing the uuids the session assigned.

use std::time::Duration;

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use tether_core::rng::Rng;
use tether_core::time::Instant;
pub use tether_model::{SEQ_FIELD, seq_of};

/// One thing the application does to the session.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Enqueue an event (a JSON object with [`SEQ_FIELD`]) on the events stream.
    Event(Value),
    /// Enqueue an event on the internal-events stream.
    InternalEvent(Value),
    /// Report the delivery status of an event the worker received.
    Ack {
        /// The event the update is about.
        event_id: String,
        /// `received`, `processing` or `processed`.
        status: String,
    },
    /// A worker-document patch (a JSON object).
    Patch(Value),
    /// Wait until everything enqueued so far is delivered or handed back, or the timeout passes.
    Flush {
        /// How long the flush may take.
        timeout: Duration,
    },
    /// Stop intake, drain until the timeout, hand back the rest. Always the last action.
    Close {
        /// How long the close may take.
        timeout: Duration,
    },
}

/// The shape of a workload. Rates are means; gaps are uniform in `[0, 2 / rate]`.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadConfig {
    /// When [`Action::Close`] comes. Default 10 minutes.
    pub duration: Duration,
    /// Event arrivals per second (a burst counts as one arrival). Default 2.
    pub events_per_second: f64,
    /// Probability that an arrival is a burst. Default 0.05.
    pub burst_probability: f64,
    /// A burst has `[2, burst_max]` events, 1 ms apart. Default 200.
    pub burst_max: u32,
    /// The smallest event, in bytes of JSON. Default 50.
    pub event_size_min: usize,
    /// The largest event, in bytes of JSON. Default 4 KiB.
    pub event_size_max: usize,
    /// Internal events per second. Default 0.2.
    pub internal_events_per_second: f64,
    /// Fraction of events that come with their own `uuid`. Default 0.1.
    pub uuid_share: f64,
    /// Delivery acks per second. Default 0.2.
    pub acks_per_second: f64,
    /// Patch arrivals per second (a reset-then-object pair counts as one). Default 0.3.
    pub patches_per_second: f64,
    /// Flushes per second. Default 1/120.
    pub flushes_per_second: f64,
    /// Each flush's timeout. Default 30 s.
    pub flush_timeout: Duration,
    /// The close's timeout. Default 30 s.
    pub close_timeout: Duration,
}

impl WorkloadConfig {
    /// The seed sweep's light workload: ten minutes with ~180 events and ~50 patches, so that
    /// thousands of runs fit in seconds. `cargo test`, `tether sim` and the bench share it.
    pub fn sweep() -> Self {
        WorkloadConfig {
            events_per_second: 0.3,
            burst_probability: 0.02,
            burst_max: 40,
            event_size_max: 1024,
            ..WorkloadConfig::default()
        }
    }
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            duration: Duration::from_secs(600),
            events_per_second: 2.0,
            burst_probability: 0.05,
            burst_max: 200,
            event_size_min: 50,
            event_size_max: 4096,
            internal_events_per_second: 0.2,
            uuid_share: 0.1,
            acks_per_second: 0.2,
            patches_per_second: 0.3,
            flushes_per_second: 1.0 / 120.0,
            flush_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(30),
        }
    }
}

/// The time-ordered actions of a run: same seed and config, same list.
pub fn generate(seed: u64, config: &WorkloadConfig) -> Vec<(Instant, Action)> {
    steps(seed, config)
        .into_iter()
        .map(|(at, step)| (at, step.into_action()))
        .collect()
}

/// An event [`steps`] made: the fields of its payload, serialised in the order of a `Value`'s
/// (sorted) keys, so that its JSON is byte for byte that of the `Value` [`generate`] gives.
#[derive(Clone, Debug)]
pub(crate) struct PlannedEvent {
    /// The payload's [`SEQ_FIELD`].
    pub(crate) seq: u64,
    stream: &'static str,
    /// The `data` string as JSON, quotes included: letters need no escaping, so it is written
    /// as it is instead of being escaped byte by byte.
    data: Box<RawValue>,
    uuid: Option<String>,
}

impl Serialize for PlannedEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = 3 + usize::from(self.uuid.is_some());
        let mut payload = serializer.serialize_struct("Event", len)?;
        payload.serialize_field("data", &*self.data)?;
        payload.serialize_field(SEQ_FIELD, &self.seq)?;
        payload.serialize_field("stream", self.stream)?;
        if let Some(uuid) = &self.uuid {
            payload.serialize_field("uuid", uuid)?;
        }
        payload.end()
    }
}

impl PlannedEvent {
    /// The payload as a `Value`, as [`generate`] gives it.
    pub(crate) fn into_value(self) -> Value {
        let mut payload = Map::new();
        payload.insert(SEQ_FIELD.to_string(), json!(self.seq));
        payload.insert("stream".to_string(), json!(self.stream));
        let data = self.data.get();
        payload.insert(
            "data".to_string(),
            Value::String(data[1..data.len() - 1].to_string()),
        );
        if let Some(uuid) = self.uuid {
            payload.insert("uuid".to_string(), Value::String(uuid));
        }
        Value::Object(payload)
    }
}

/// One step of [`steps`]: an [`Action`], with events kept typed for the session's typed path.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// [`Action::Event`].
    Event(PlannedEvent),
    /// [`Action::InternalEvent`].
    InternalEvent(PlannedEvent),
    /// Any other action.
    Other(Action),
}

impl Step {
    fn into_action(self) -> Action {
        match self {
            Step::Event(event) => Action::Event(event.into_value()),
            Step::InternalEvent(event) => Action::InternalEvent(event.into_value()),
            Step::Other(action) => action,
        }
    }
}

/// [`generate`] with events left typed: the same draws, the same list.
pub(crate) fn steps(seed: u64, config: &WorkloadConfig) -> Vec<(Instant, Step)> {
    let mut root = Rng::new(seed);
    let end = Instant::from_duration(config.duration);
    // (time, rank, action): rank keeps same-instant actions in generation order per kind.
    let mut drafts: Vec<(Instant, u8, Action)> = Vec::new();

    let mut rng = root.fork();
    for at in arrivals(&mut rng, config.events_per_second, end) {
        let burst = rng.unit() < config.burst_probability;
        let n = if burst {
            2 + rng.below(u64::from(config.burst_max.max(2)) - 1)
        } else {
            1
        };
        for i in 0..n {
            drafts.push((at + Duration::from_millis(i), 0, Action::Event(Value::Null)));
        }
    }
    let mut rng = root.fork();
    for at in arrivals(&mut rng, config.internal_events_per_second, end) {
        drafts.push((at, 0, Action::InternalEvent(Value::Null)));
    }
    let mut rng = root.fork();
    for at in arrivals(&mut rng, config.acks_per_second, end) {
        let status = ["received", "processing", "processed"][rng.below(3) as usize];
        drafts.push((
            at,
            1,
            Action::Ack {
                event_id: rng.uuid_v4(),
                status: status.to_string(),
            },
        ));
    }
    let mut rng = root.fork();
    for at in arrivals(&mut rng, config.patches_per_second, end) {
        for patch in patches(&mut rng) {
            drafts.push((at, 2, Action::Patch(patch)));
        }
    }
    let mut rng = root.fork();
    for at in arrivals(&mut rng, config.flushes_per_second, end) {
        drafts.push((
            at,
            3,
            Action::Flush {
                timeout: config.flush_timeout,
            },
        ));
    }
    drafts.retain(|(at, _, _)| *at < end);
    drafts.sort_by_key(|(at, rank, _)| (*at, *rank)); // stable: generation order within a kind

    // Fill event bodies in enqueue order, so `seq` increases along the list.
    let mut rng = root.fork();
    let mut seq = 0u64;
    let mut out: Vec<(Instant, Step)> = Vec::with_capacity(drafts.len() + 1);
    for (at, _, action) in drafts {
        let step = match action {
            Action::Event(_) => Step::Event(event(&mut rng, config, &mut seq, "events")),
            Action::InternalEvent(_) => {
                Step::InternalEvent(event(&mut rng, config, &mut seq, "internal"))
            }
            other => Step::Other(other),
        };
        out.push((at, step));
    }
    out.push((
        end,
        Step::Other(Action::Close {
            timeout: config.close_timeout,
        }),
    ));
    out
}

/// Arrival instants before `end` at a mean `per_second` rate.
fn arrivals(rng: &mut Rng, per_second: f64, end: Instant) -> Vec<Instant> {
    let mut out = Vec::new();
    if !(per_second.is_finite() && per_second > 0.0) {
        return out;
    }
    let max_gap = Duration::from_secs_f64((2.0 / per_second).min(1e12));
    let mut t = Instant::ZERO;
    loop {
        t += rng.duration_between(Duration::from_micros(1), max_gap);
        if t >= end {
            return out;
        }
        out.push(t);
    }
}

/// An event of a size drawn between the bounds: mostly small, sometimes large.
fn event(
    rng: &mut Rng,
    config: &WorkloadConfig,
    seq: &mut u64,
    stream: &'static str,
) -> PlannedEvent {
    let (lo, hi) = (
        config.event_size_min,
        config.event_size_max.max(config.event_size_min),
    );
    let size = match rng.below(20) {
        0..=13 => between(rng, lo, hi.min(lo.max(512))),
        14..=18 => between(rng, lo.max(512).min(hi), hi.min(2048).max(lo)),
        _ => between(rng, lo.max(2048).min(hi), hi),
    };
    let uuid = (rng.unit() < config.uuid_share).then(|| rng.uuid_v4());
    // One draw per letter, in order, straight into the quoted JSON string.
    let letters = size.saturating_sub(envelope_len(*seq, stream, uuid.as_deref()));
    let mut data = vec![b'"'; letters + 2];
    for byte in &mut data[1..=letters] {
        *byte = b'a' + rng.below(26) as u8;
    }
    // ASCII letters in quotes: valid UTF-8 and a valid JSON string.
    let data = String::from_utf8(data)
        .ok()
        .and_then(|data| RawValue::from_string(data).ok())
        .unwrap_or_else(|| RawValue::from_string("\"\"".to_string()).expect("an empty string"));
    let event = PlannedEvent {
        seq: *seq,
        stream,
        data,
        uuid,
    };
    *seq += 1;
    event
}

/// The length of an event's JSON without its data: `{"data":"","seq":N,"stream":"S"}`, plus
/// `,"uuid":"U"` if it has one. The stream name and uuid are plain ASCII (nothing to escape).
fn envelope_len(seq: u64, stream: &str, uuid: Option<&str>) -> usize {
    let digits = seq.checked_ilog10().map_or(1, |d| d as usize + 1);
    r#"{"data":"","seq":,"stream":""}"#.len()
        + digits
        + stream.len()
        + uuid.map_or(0, |u| r#","uuid":"""#.len() + u.len())
}

fn between(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    lo + rng.below((hi.saturating_sub(lo) + 1) as u64) as usize
}

const MERGE_KEYS: [&str; 2] = ["external_metadata", "internal_metadata"];
const KEYS: [&str; 5] = ["a", "b", "c", "d", "e"];
const STATUSES: [&str; 3] = ["idle", "running", "requires_action"];

/// One patch, or a pair that must land in order (a reset, then an object at the same key).
fn patches(rng: &mut Rng) -> Vec<Value> {
    let mk = MERGE_KEYS[rng.below(2) as usize];
    let key = KEYS[rng.below(KEYS.len() as u64) as usize];
    match rng.below(20) {
        // worker_status changes, sometimes to the same value (a no-op patch).
        0..=4 => vec![json!({ "worker_status": STATUSES[rng.below(3) as usize] })],
        // A metadata merge patch with nested objects, arrays, scalars and nulls.
        5..=11 => vec![json!({ mk: object(rng, 2) })],
        // Reset (null, scalar or array), then an object: not one merge patch.
        12..=14 => {
            let reset = match rng.below(4) {
                0 => Value::Null,
                1 => json!(5),
                2 => json!([1, 2]),
                _ => json!("s"),
            };
            vec![
                json!({ mk: { key: reset } }),
                json!({ mk: { key: object(rng, 1) } }),
            ]
        }
        // The same one level deeper, or for the whole merge key.
        15 => {
            let inner = KEYS[rng.below(KEYS.len() as u64) as usize];
            vec![
                json!({ mk: { key: { inner: null } } }),
                json!({ mk: { key: { inner: object(rng, 1) } } }),
            ]
        }
        16 => vec![json!({ mk: null }), json!({ mk: object(rng, 1) })],
        // A non-merge top-level key: replaced whole, or deleted.
        17 => vec![json!({ "tags": if rng.below(4) == 0 { Value::Null } else { value(rng, 1) } })],
        // Deletions inside metadata.
        18 => vec![json!({ mk: { key: null, KEYS[rng.below(5) as usize]: null } })],
        // Status and metadata together.
        _ => vec![json!({
            "worker_status": STATUSES[rng.below(3) as usize],
            mk: object(rng, 1),
        })],
    }
}

/// An object of 1–3 keys from a small pool, so patches collide.
fn object(rng: &mut Rng, depth: u32) -> Value {
    let mut map = Map::new();
    for _ in 0..1 + rng.below(3) {
        let key = KEYS[rng.below(KEYS.len() as u64) as usize];
        let v = if rng.below(6) == 0 {
            Value::Null
        } else {
            value(rng, depth)
        };
        map.insert(key.to_string(), v);
    }
    Value::Object(map)
}

/// A scalar, an array, or (with depth left) an object.
fn value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 0 { 6 } else { 4 }) {
        0 => json!(rng.below(100)),
        1 => json!(KEYS[rng.below(5) as usize]),
        2 => json!(rng.below(2) == 0),
        3 => Value::Array((0..rng.below(3)).map(|i| json!(i)).collect()),
        _ => object(rng, depth - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::patch::DocumentSchema;

    fn count(actions: &[(Instant, Action)], f: impl Fn(&Action) -> bool) -> usize {
        actions.iter().filter(|(_, a)| f(a)).count()
    }

    #[test]
    fn same_seed_same_workload_and_seeds_differ() {
        let config = WorkloadConfig::default();
        assert_eq!(generate(9, &config), generate(9, &config));
        assert_ne!(generate(9, &config), generate(10, &config));
    }

    #[test]
    fn time_ordered_ending_with_one_close() {
        let config = WorkloadConfig::default();
        for seed in 0..5 {
            let actions = generate(seed, &config);
            assert!(actions.windows(2).all(|w| w[0].0 <= w[1].0));
            let (at, last) = actions.last().unwrap();
            assert_eq!(*at, Instant::from_secs(600));
            assert_eq!(
                *last,
                Action::Close {
                    timeout: config.close_timeout
                }
            );
            assert_eq!(count(&actions, |a| matches!(a, Action::Close { .. })), 1);
        }
    }

    #[test]
    fn events_carry_increasing_seq_across_both_streams() {
        let actions = generate(1, &WorkloadConfig::default());
        let seqs: Vec<u64> = actions
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Event(v) | Action::InternalEvent(v) => Some(seq_of(v).unwrap()),
                _ => None,
            })
            .collect();
        assert!(seqs.len() > 500, "only {} events", seqs.len());
        assert!(seqs.iter().enumerate().all(|(i, &s)| s == i as u64));
    }

    #[test]
    fn every_kind_of_action_appears_at_plausible_rates() {
        let actions = generate(2, &WorkloadConfig::default());
        let internal = count(&actions, |a| matches!(a, Action::InternalEvent(_)));
        let acks = count(&actions, |a| matches!(a, Action::Ack { .. }));
        let patches = count(&actions, |a| matches!(a, Action::Patch(_)));
        let flushes = count(&actions, |a| matches!(a, Action::Flush { .. }));
        // Means over 600 s: 120 internal events, 120 acks, 180+ patches, 5 flushes.
        assert!((60..=180).contains(&internal), "{internal}");
        assert!((60..=180).contains(&acks), "{acks}");
        assert!((120..=400).contains(&patches), "{patches}");
        assert!((1..=15).contains(&flushes), "{flushes}");
        for (_, action) in &actions {
            if let Action::Ack { status, event_id } = action {
                assert!(["received", "processing", "processed"].contains(&status.as_str()));
                assert_eq!(event_id.len(), 36);
            }
        }
    }

    #[test]
    fn bursts_put_many_events_in_a_short_time() {
        let actions = generate(3, &WorkloadConfig::default());
        let times: Vec<Instant> = actions
            .iter()
            .filter(|(_, a)| matches!(a, Action::Event(_)))
            .map(|(t, _)| *t)
            .collect();
        let densest = times
            .windows(20)
            .map(|w| w[19].saturating_duration_since(w[0]))
            .min()
            .unwrap();
        // Without bursts, 20 events at 2 per second take about 10 s.
        assert!(densest <= Duration::from_millis(100), "{densest:?}");
    }

    #[test]
    fn event_sizes_span_the_configured_range() {
        let config = WorkloadConfig::default();
        let sizes: Vec<usize> = generate(4, &config)
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Event(v) | Action::InternalEvent(v) => {
                    Some(serde_json::to_vec(v).unwrap().len())
                }
                _ => None,
            })
            .collect();
        assert!(sizes.iter().all(|&s| s >= config.event_size_min));
        // Only the envelope (seq, stream, uuid) can push a tiny event past its drawn size.
        assert!(sizes.iter().all(|&s| s <= config.event_size_max));
        assert!(sizes.iter().any(|&s| s < 200));
        assert!(sizes.iter().any(|&s| s > 3000));
    }

    #[test]
    fn some_events_bring_their_own_uuid() {
        let actions = generate(5, &WorkloadConfig::default());
        let with = count(
            &actions,
            |a| matches!(a, Action::Event(v) if v.get("uuid").is_some()),
        );
        let all = count(&actions, |a| matches!(a, Action::Event(_)));
        assert!(with > 0 && with < all / 4, "{with} of {all}");
    }

    #[test]
    fn patches_include_the_cases_that_break_naive_coalescing() {
        let actions = generate(6, &WorkloadConfig::default());
        let patches: Vec<&Value> = actions
            .iter()
            .filter_map(|(_, a)| match a {
                Action::Patch(p) => Some(p),
                _ => None,
            })
            .collect();
        assert!(patches.iter().all(|p| p.is_object()));
        // A reset (null, scalar or array) of a key, then an object at it: merging the two as
        // plain merge patches loses the reset.
        let schema = DocumentSchema::default();
        let naive_breaks = patches.windows(2).any(|w| {
            let base = json!({"external_metadata": {"a": {"z": 0}, "b": {"z": 0}, "c": {"z": 0},
                                                    "d": {"z": 0}, "e": {"z": 0}},
                              "internal_metadata": {"a": {"z": 0}, "b": {"z": 0}, "c": {"z": 0},
                                                    "d": {"z": 0}, "e": {"z": 0}}});
            let mut sequential = base.clone();
            schema.apply(&mut sequential, w[0].as_object().unwrap());
            schema.apply(&mut sequential, w[1].as_object().unwrap());
            let mut merged = w[0].clone();
            tether_core::patch::apply(&mut merged, w[1]);
            let mut naive = base;
            schema.apply(&mut naive, merged.as_object().unwrap());
            naive != sequential
        });
        assert!(naive_breaks);
        let has = |f: &dyn Fn(&Value) -> bool| patches.iter().any(|p| f(p));
        assert!(has(&|p| p.get("worker_status").is_some()));
        assert!(has(&|p| p.get("tags").is_some()));
        assert!(has(&|p| p
            .get("external_metadata")
            .is_some_and(Value::is_null)));
        assert!(has(&|p| p.to_string().contains("null")));
        assert!(has(&|p| p.to_string().contains('[')));
    }

    #[test]
    fn envelope_len_is_the_serialised_length_without_data() {
        for seq in [0, 9, 10, 99, 100, 12_345, u64::MAX] {
            for stream in ["events", "internal"] {
                for uuid in [None, Some("0b5e2c1a-9f3d-4e6b-8a7c-1d2e3f405162")] {
                    let mut payload = json!({ SEQ_FIELD: seq, "stream": stream, "data": "" });
                    if let Some(uuid) = uuid {
                        payload["uuid"] = json!(uuid);
                    }
                    assert_eq!(
                        envelope_len(seq, stream, uuid),
                        serde_json::to_vec(&payload).unwrap().len(),
                        "{payload}"
                    );
                }
            }
        }
    }

    #[test]
    fn planned_events_serialise_as_the_values_generate_gives() {
        let (mut with_uuid, mut without) = (0, 0);
        for (_, step) in steps(8, &WorkloadConfig::default()) {
            if let Step::Event(event) | Step::InternalEvent(event) = step {
                let typed = serde_json::to_vec(&event).unwrap();
                let value = event.into_value();
                match value.get("uuid") {
                    Some(_) => with_uuid += 1,
                    None => without += 1,
                }
                assert_eq!(typed, serde_json::to_vec(&value).unwrap(), "{value}");
            }
        }
        assert!(with_uuid > 0 && without > 0, "{with_uuid} {without}");
    }

    #[test]
    fn zero_rates_give_only_a_close() {
        let config = WorkloadConfig {
            events_per_second: 0.0,
            internal_events_per_second: 0.0,
            acks_per_second: 0.0,
            patches_per_second: 0.0,
            flushes_per_second: 0.0,
            ..WorkloadConfig::default()
        };
        let actions = generate(7, &config);
        assert_eq!(actions.len(), 1);
        assert!(matches!(actions[0].1, Action::Close { .. }));
    }
}
