//! Invariant checks over what a run recorded (docs/ARCHITECTURE.md §Simulation).
//!
//! Each check is a pure function of plain records the scenario fills in, and returns the first
//! [`Violation`] it finds. Events are identified by their `seq` ([`SEQ_FIELD`](tether_model::SEQ_FIELD)),
//! which the workload numbers in enqueue order.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use tether_core::classify::Outcome;
use tether_core::patch::DocumentSchema;
use tether_core::time::Instant;

pub use tether_model::fault::Span;

/// A broken invariant, said so a person can act on it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Violation {
    /// The run hit its step bound: a livelock or a busy loop.
    StepLimit {
        /// The bound.
        steps: u64,
    },
    /// The run ended (nothing more was scheduled) without a terminal status.
    NoTerminalStatus {
        /// When it stopped.
        at: Instant,
    },
    /// The connect sequence gave up after the wrong number of failures.
    ConnectGiveUp {
        /// Connect failures the session saw.
        failures: u32,
        /// Retries the controller allows.
        max_attempts: u32,
    },
    /// An enqueued event was neither delivered nor handed back.
    EventLost {
        /// The stream.
        stream: String,
        /// The event's seq.
        seq: u64,
    },
    /// The server holds an event that was never enqueued on this stream.
    EventUnknown {
        /// The stream.
        stream: String,
        /// The event's seq.
        seq: u64,
    },
    /// The server holds the same event twice (it was re-sent under another uuid).
    EventDuplicated {
        /// The stream.
        stream: String,
        /// The event's seq.
        seq: u64,
    },
    /// The server holds `later` before `earlier`, against enqueue order.
    EventReordered {
        /// The stream.
        stream: String,
        /// Enqueued first, delivered second.
        earlier: u64,
        /// Enqueued second, delivered first.
        later: u64,
    },
    /// The server's document is not the acknowledged patches applied in order.
    StateDiverged {
        /// Where the two first differ, as a JSON pointer.
        path: String,
        /// The sequential application of the acknowledged patches.
        expected: Value,
        /// The server's document.
        actual: Value,
    },
    /// No heartbeat for longer than the bound while connected.
    HeartbeatGap {
        /// Start of the gap (a beat, or the start of the connected span).
        from: Instant,
        /// End of the gap (a beat, or the end of the connected span).
        to: Instant,
        /// The bound it exceeds.
        bound: Duration,
    },
    /// The session ended differently from what the give-up rules say.
    WrongEnd {
        /// What the rules say, with the instant of the deciding outcome.
        expected: Option<(Instant, Terminal)>,
        /// What the session did.
        actual: Option<(Instant, Terminal)>,
    },
    /// A caller the driver held was never answered, though the session ended.
    Unanswered {
        /// Who waited, and for what.
        what: String,
        /// When the run ended.
        at: Instant,
    },
    /// The session produced output after a terminal status.
    OutputAfterTerminal {
        /// The terminal output.
        terminal: String,
        /// When it came.
        terminal_at: Instant,
        /// The output that followed it.
        output: String,
        /// When that came.
        at: Instant,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::StepLimit { steps } => {
                write!(
                    f,
                    "the run did not finish within {steps} steps: a livelock?"
                )
            }
            Violation::NoTerminalStatus { at } => {
                write!(
                    f,
                    "nothing was left to do at {at}, but the session never ended"
                )
            }
            Violation::ConnectGiveUp {
                failures,
                max_attempts,
            } => write!(
                f,
                "connect gave up after {failures} failures; the rule is {max_attempts} retries, then give up"
            ),
            Violation::EventLost { stream, seq } => write!(
                f,
                "{stream}: event seq {seq} was lost: neither delivered nor handed back"
            ),
            Violation::EventUnknown { stream, seq } => write!(
                f,
                "{stream}: the server holds event seq {seq}, which was never enqueued there"
            ),
            Violation::EventDuplicated { stream, seq } => write!(
                f,
                "{stream}: event seq {seq} is stored twice after de-duplication"
            ),
            Violation::EventReordered {
                stream,
                earlier,
                later,
            } => write!(
                f,
                "{stream}: event seq {later} was delivered before seq {earlier}, enqueued earlier"
            ),
            Violation::StateDiverged {
                path,
                expected,
                actual,
            } => write!(
                f,
                "state diverged at {path:?}: expected {expected}, server has {actual}"
            ),
            Violation::HeartbeatGap { from, to, bound } => write!(
                f,
                "no heartbeat from {from} to {to} while connected ({} > bound {})",
                Instant::ZERO + to.saturating_duration_since(*from),
                Instant::ZERO + *bound,
            ),
            Violation::WrongEnd { expected, actual } => {
                let show = |end: &Option<(Instant, Terminal)>| match end {
                    Some((at, t)) => format!("{t} at {at}"),
                    None => String::from("no terminal end"),
                };
                write!(
                    f,
                    "the rules say {}, the session did {}",
                    show(expected),
                    show(actual)
                )
            }
            Violation::Unanswered { what, at } => {
                write!(
                    f,
                    "the session ended but was still unanswered at {at}: {what}"
                )
            }
            Violation::OutputAfterTerminal {
                terminal,
                terminal_at,
                output,
                at,
            } => write!(
                f,
                "output {output:?} at {at} after terminal {terminal:?} at {terminal_at}"
            ),
        }
    }
}

impl std::error::Error for Violation {}

// ---------------------------------------------------------------------------------------------
// (a), (b) events

/// What happened to one stream's events, by seq.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamRecord {
    /// The stream's name, for messages.
    pub stream: String,
    /// Seqs the caller enqueued (accepted or not), in enqueue order.
    pub enqueued: Vec<u64>,
    /// Seqs the server stored, in its delivery order (after its de-duplication by uuid).
    pub delivered: Vec<u64>,
    /// Seqs handed back to the caller (rejected, dropped, dead-lettered, or left at close).
    pub handed_back: Vec<u64>,
}

/// (a) No event lost: every enqueued event was delivered or handed back, and the server holds
/// nothing that was not enqueued. An event both delivered and handed back is allowed (the
/// client could not know a lost response had been applied).
pub fn no_event_lost(record: &StreamRecord) -> Result<(), Violation> {
    let enqueued: BTreeSet<u64> = record.enqueued.iter().copied().collect();
    if let Some(&seq) = record.delivered.iter().find(|s| !enqueued.contains(s)) {
        return Err(Violation::EventUnknown {
            stream: record.stream.clone(),
            seq,
        });
    }
    let accounted: BTreeSet<u64> = record
        .delivered
        .iter()
        .chain(&record.handed_back)
        .copied()
        .collect();
    match record.enqueued.iter().find(|s| !accounted.contains(s)) {
        Some(&seq) => Err(Violation::EventLost {
            stream: record.stream.clone(),
            seq,
        }),
        None => Ok(()),
    }
}

/// (b) None duplicated or reordered: the server's list is unique and a subsequence of the
/// enqueue order. Events the server holds but the caller never enqueued are (a)'s business and
/// skipped here.
pub fn in_order_and_unique(record: &StreamRecord) -> Result<(), Violation> {
    let position: BTreeMap<u64, usize> = record
        .enqueued
        .iter()
        .enumerate()
        .map(|(i, &s)| (s, i))
        .collect();
    let mut seen = BTreeSet::new();
    let mut last: Option<(usize, u64)> = None;
    for &seq in &record.delivered {
        if !seen.insert(seq) {
            return Err(Violation::EventDuplicated {
                stream: record.stream.clone(),
                seq,
            });
        }
        let Some(&pos) = position.get(&seq) else {
            continue;
        };
        if let Some((last_pos, last_seq)) = last {
            if pos < last_pos {
                return Err(Violation::EventReordered {
                    stream: record.stream.clone(),
                    earlier: seq,
                    later: last_seq,
                });
            }
        }
        last = Some((pos, seq));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (c) state

/// What became of one patch the caller submitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchFate {
    /// The server acknowledged a PUT that carried it (alone or coalesced).
    Acknowledged,
    /// A permanent failure rolled it back; the server never applied it.
    Rejected,
    /// Refused at enqueue, or a no-op never sent.
    Abandoned,
    /// Unacknowledged when the session ended. A PUT whose response was lost (or that was in
    /// flight) may have landed, so the server may hold any prefix of these, in order.
    Unknown,
}

/// One submitted patch and its fate.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchRecord {
    /// The patch, as the caller submitted it (a JSON object).
    pub patch: Value,
    /// What became of it.
    pub fate: PatchFate,
}

/// The patches of a run in submission order, and the document they should have produced.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRecord {
    /// The server's document before the first patch (usually `{}`).
    pub initial: Value,
    /// Every patch the caller submitted, the session's init PUT included, in order.
    pub patches: Vec<PatchRecord>,
    /// Resets the server acknowledged ahead of the unacknowledged rest of their update (the
    /// first of a two-PUT coalesced form).
    pub applied_resets: Option<Value>,
    /// When patches were left unacknowledged: points where an acknowledgement reached the
    /// client, each as the document the client then believed the server held and the PUT bodies
    /// (without `worker_epoch`) the server applied after it. Lost responses put partial or
    /// repeated coalesced updates among those bodies.
    pub anchors: Vec<(Value, Vec<Value>)>,
    /// The server's final document, without `worker_epoch`.
    pub server_document: Value,
}

/// (c) The server's document equals the in-order application of every acknowledged patch.
///
/// Unacknowledged patches ([`PatchFate::Unknown`]) may have landed as any prefix (a PUT whose
/// response was lost), and the acknowledged resets of the unacknowledged update may sit on top
/// of that prefix; each of those documents is accepted too. Failing that, the document must be
/// reachable from one of the [`anchors`](StateRecord::anchors): what the client knew had landed
/// at an acknowledgement, then only bodies it never heard back about.
pub fn state_converged(schema: &DocumentSchema, record: &StateRecord) -> Result<(), Violation> {
    let mut doc = record.initial.clone();
    let mut unknown = Vec::new();
    for p in &record.patches {
        match (p.fate, &p.patch) {
            (PatchFate::Acknowledged, Value::Object(patch)) => schema.apply(&mut doc, patch),
            (PatchFate::Unknown, Value::Object(patch)) => unknown.push(patch),
            _ => {}
        }
    }
    let expected = doc.clone();
    let matches = |doc: &Value| {
        if *doc == record.server_document {
            return true;
        }
        match &record.applied_resets {
            Some(Value::Object(resets)) => {
                let mut with_resets = doc.clone();
                schema.apply(&mut with_resets, resets);
                with_resets == record.server_document
            }
            _ => false,
        }
    };
    if matches(&doc) {
        return Ok(());
    }
    for patch in unknown {
        schema.apply(&mut doc, patch);
        if matches(&doc) {
            return Ok(());
        }
    }
    // Patches were left unacknowledged: at some acknowledgement the client's belief must have
    // matched the server, and only bodies the client never heard back about came after it.
    for (acknowledged, bodies) in &record.anchors {
        let mut doc = acknowledged.clone();
        for body in bodies {
            if let Value::Object(body) = body {
                schema.apply(&mut doc, body);
            }
        }
        if doc == record.server_document {
            return Ok(());
        }
    }
    Err(Violation::StateDiverged {
        path: first_difference(&expected, &record.server_document),
        expected,
        actual: record.server_document.clone(),
    })
}

/// The JSON pointer of the first place two values differ (`""` for the roots).
fn first_difference(a: &Value, b: &Value) -> String {
    if let (Value::Object(a), Value::Object(b)) = (a, b) {
        let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
        for key in keys {
            match (a.get(key), b.get(key)) {
                (Some(x), Some(y)) if x == y => continue,
                (Some(x), Some(y)) => return format!("/{key}{}", first_difference(x, y)),
                _ => return format!("/{key}"),
            }
        }
    }
    String::new()
}

// ---------------------------------------------------------------------------------------------
// (d) heartbeats

/// (d) While connected, no gap between heartbeats exceeds `bound`.
///
/// `connected` are the spans the session reported itself connected; `beats` the instants of
/// heartbeats sent (or succeeded), in any order. Within each span the edges count as beats, so a
/// span must see its first beat within `bound` of its start and its last within `bound` of its
/// end. A fair bound is `interval · (1 + jitter) + heartbeat deadline`.
pub fn heartbeat_gaps(
    connected: &[Span],
    beats: &[Instant],
    bound: Duration,
) -> Result<(), Violation> {
    let mut beats = beats.to_vec();
    beats.sort();
    for span in connected {
        let inside = beats
            .iter()
            .copied()
            .filter(|&b| span.start <= b && b <= span.end);
        let mut prev = span.start;
        for t in inside.chain(std::iter::once(span.end)) {
            if t.saturating_duration_since(prev) > bound {
                return Err(Violation::HeartbeatGap {
                    from: prev,
                    to: t,
                    bound,
                });
            }
            prev = t;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// (e) give-up

/// How a session ends by the rules, rather than by a close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Terminal {
    /// Ten (the configured number of) auth failures with no success between them.
    GaveUpAuth,
    /// A 404 while the session-unknown outcome is terminal.
    GaveUpSessionUnknown,
    /// A 409: a newer worker owns the session.
    Superseded,
}

impl fmt::Display for Terminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Terminal::GaveUpAuth => "give-up (auth failures)",
            Terminal::GaveUpSessionUnknown => "give-up (session unknown)",
            Terminal::Superseded => "superseded",
        })
    }
}

/// The give-up rules of docs/PROTOCOL.md, as a reference model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GiveUpRules {
    /// Auth failures in a row (across channels; only a success resets the count) that give up.
    /// Default 10.
    pub max_auth_failures: u32,
    /// Whether a 404 gives up at once. Default true.
    pub session_unknown_terminal: bool,
}

impl Default for GiveUpRules {
    fn default() -> Self {
        GiveUpRules {
            max_auth_failures: 10,
            session_unknown_terminal: true,
        }
    }
}

/// One classified outcome the session saw, in the order it handled them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutcomeRecord {
    /// When the session handled it.
    pub at: Instant,
    /// How it was classified.
    pub outcome: Outcome,
}

impl GiveUpRules {
    /// Where the rules end the session: the index of the deciding outcome and how, or `None`.
    pub fn expected_end(&self, outcomes: &[Outcome]) -> Option<(usize, Terminal)> {
        let mut auth_failures = 0u32;
        for (i, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Outcome::Success => auth_failures = 0,
                Outcome::Superseded => return Some((i, Terminal::Superseded)),
                Outcome::SessionUnknown if self.session_unknown_terminal => {
                    return Some((i, Terminal::GaveUpSessionUnknown));
                }
                Outcome::AuthFailure => {
                    auth_failures += 1;
                    if auth_failures >= self.max_auth_failures {
                        return Some((i, Terminal::GaveUpAuth));
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// (e) The session ended exactly when and how the rules say: `actual` is the terminal status it
/// reported (`None` if it ran to a close or is still running), compared with the rules' verdict
/// on `outcomes` by kind and by the instant of the deciding outcome.
pub fn give_up_as_ruled(
    rules: &GiveUpRules,
    outcomes: &[OutcomeRecord],
    actual: Option<(Instant, Terminal)>,
) -> Result<(), Violation> {
    let plain: Vec<Outcome> = outcomes.iter().map(|o| o.outcome).collect();
    let expected = rules
        .expected_end(&plain)
        .map(|(i, terminal)| (outcomes[i].at, terminal));
    if expected == actual {
        Ok(())
    } else {
        Err(Violation::WrongEnd { expected, actual })
    }
}

// ---------------------------------------------------------------------------------------------
// (f) quiet after the end

/// One output of the session, as the scenario saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputRecord {
    /// When it came.
    pub at: Instant,
    /// What it was, e.g. `request`, `status given-up`, `handed-back`.
    pub kind: Cow<'static, str>,
    /// Whether it is a terminal status (given up, superseded, closed).
    pub terminal: bool,
}

/// (f) Nothing comes after the first terminal output: hand-backs must precede it.
pub fn quiet_after_terminal(outputs: &[OutputRecord]) -> Result<(), Violation> {
    let Some(end) = outputs.iter().position(|o| o.terminal) else {
        return Ok(());
    };
    match outputs.get(end + 1) {
        Some(next) => Err(Violation::OutputAfterTerminal {
            terminal: outputs[end].kind.to_string(),
            terminal_at: outputs[end].at,
            output: next.kind.to_string(),
            at: next.at,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tether_core::classify::TransientCause;

    fn stream(enqueued: &[u64], delivered: &[u64], handed_back: &[u64]) -> StreamRecord {
        StreamRecord {
            stream: "events".to_string(),
            enqueued: enqueued.to_vec(),
            delivered: delivered.to_vec(),
            handed_back: handed_back.to_vec(),
        }
    }

    #[test]
    fn no_event_lost_passes_when_each_is_delivered_or_handed_back() {
        assert_eq!(no_event_lost(&stream(&[1, 2, 3], &[1, 3], &[2])), Ok(()));
        assert_eq!(no_event_lost(&stream(&[1, 2], &[1, 2], &[2])), Ok(()));
    }

    #[test]
    fn no_event_lost_fails_on_a_missing_or_unknown_event() {
        let lost = no_event_lost(&stream(&[1, 2, 3], &[1], &[3])).unwrap_err();
        assert_eq!(
            lost,
            Violation::EventLost {
                stream: "events".into(),
                seq: 2
            }
        );
        assert_eq!(
            lost.to_string(),
            "events: event seq 2 was lost: neither delivered nor handed back"
        );
        assert!(matches!(
            no_event_lost(&stream(&[1], &[1, 7], &[])),
            Err(Violation::EventUnknown { seq: 7, .. })
        ));
    }

    #[test]
    fn order_passes_for_a_subsequence_of_enqueue_order() {
        assert_eq!(
            in_order_and_unique(&stream(&[5, 1, 9, 4], &[5, 9, 4], &[1])),
            Ok(())
        );
    }

    #[test]
    fn order_fails_on_a_reordering_or_a_duplicate() {
        let reordered = in_order_and_unique(&stream(&[1, 2, 3], &[1, 3, 2], &[])).unwrap_err();
        assert_eq!(
            reordered.to_string(),
            "events: event seq 3 was delivered before seq 2, enqueued earlier"
        );
        assert!(matches!(
            in_order_and_unique(&stream(&[1, 2], &[1, 2, 1], &[])),
            Err(Violation::EventDuplicated { seq: 1, .. })
        ));
    }

    fn patch(patch: Value, fate: PatchFate) -> PatchRecord {
        PatchRecord { patch, fate }
    }

    fn state(patches: Vec<PatchRecord>, server_document: Value) -> StateRecord {
        StateRecord {
            initial: json!({}),
            patches,
            applied_resets: None,
            anchors: Vec::new(),
            server_document,
        }
    }

    #[test]
    fn state_passes_when_the_server_applied_exactly_the_acknowledged_patches() {
        let schema = DocumentSchema::default();
        let record = state(
            vec![
                patch(json!({"worker_status": "idle"}), PatchFate::Acknowledged),
                patch(
                    json!({"external_metadata": {"a": 5}}),
                    PatchFate::Acknowledged,
                ),
                patch(
                    json!({"external_metadata": {"a": {"b": 1}}}),
                    PatchFate::Acknowledged,
                ),
                patch(json!({"worker_status": "bad"}), PatchFate::Rejected),
                patch(json!({"tags": [1]}), PatchFate::Abandoned),
            ],
            json!({"worker_status": "idle", "external_metadata": {"a": {"b": 1}}}),
        );
        assert_eq!(state_converged(&schema, &record), Ok(()));
    }

    #[test]
    fn state_accepts_any_prefix_of_the_unknown_patches() {
        let schema = DocumentSchema::default();
        let patches = || {
            vec![
                patch(json!({"worker_status": "idle"}), PatchFate::Acknowledged),
                patch(json!({"worker_status": "running"}), PatchFate::Unknown),
                patch(json!({"tags": 1}), PatchFate::Unknown),
            ]
        };
        for doc in [
            json!({"worker_status": "idle"}),
            json!({"worker_status": "running"}),
            json!({"worker_status": "running", "tags": 1}),
        ] {
            assert_eq!(state_converged(&schema, &state(patches(), doc)), Ok(()));
        }
        // Not a prefix: the second landed without the first.
        let skipped = state(patches(), json!({"worker_status": "idle", "tags": 1}));
        assert!(state_converged(&schema, &skipped).is_err());
    }

    #[test]
    fn state_accepts_acknowledged_resets_of_an_unacknowledged_update() {
        let schema = DocumentSchema::default();
        let mut record = state(
            vec![
                patch(
                    json!({"external_metadata": {"a": 1}}),
                    PatchFate::Acknowledged,
                ),
                // Coalesced, these two are a reset of "a", then {"a": {"b": 2}}.
                patch(json!({"external_metadata": {"a": 5}}), PatchFate::Unknown),
                patch(
                    json!({"external_metadata": {"a": {"b": 2}}}),
                    PatchFate::Unknown,
                ),
            ],
            json!({"external_metadata": {}}),
        );
        assert!(state_converged(&schema, &record).is_err());
        record.applied_resets = Some(json!({"external_metadata": {"a": null}}));
        assert_eq!(state_converged(&schema, &record), Ok(()));
    }

    #[test]
    fn state_fails_on_a_naively_coalesced_result_and_names_the_path() {
        let schema = DocumentSchema::default();
        // {"a": null} then {"a": {"b": 1}} merged naively keeps the old "c".
        let record = StateRecord {
            initial: json!({"external_metadata": {"a": {"c": 2}}}),
            patches: vec![
                patch(
                    json!({"external_metadata": {"a": null}}),
                    PatchFate::Acknowledged,
                ),
                patch(
                    json!({"external_metadata": {"a": {"b": 1}}}),
                    PatchFate::Acknowledged,
                ),
            ],
            applied_resets: None,
            anchors: Vec::new(),
            server_document: json!({"external_metadata": {"a": {"b": 1, "c": 2}}}),
        };
        let violation = state_converged(&schema, &record).unwrap_err();
        let Violation::StateDiverged { path, expected, .. } = &violation else {
            panic!("{violation}");
        };
        assert_eq!(path, "/external_metadata/a/c");
        assert_eq!(*expected, json!({"external_metadata": {"a": {"b": 1}}}));
        assert!(
            violation
                .to_string()
                .starts_with("state diverged at \"/external_metadata/a/c\"")
        );
    }

    fn span(start: u64, end: u64) -> Span {
        Span {
            start: Instant::from_secs(start),
            end: Instant::from_secs(end),
        }
    }

    fn secs(list: &[u64]) -> Vec<Instant> {
        list.iter().map(|&s| Instant::from_secs(s)).collect()
    }

    #[test]
    fn heartbeat_gaps_pass_within_the_bound_and_ignore_disconnected_time() {
        let bound = Duration::from_secs(25);
        let beats = secs(&[20, 40, 60, 200, 220]);
        assert_eq!(
            heartbeat_gaps(&[span(0, 70), span(190, 230)], &beats, bound),
            Ok(())
        );
    }

    #[test]
    fn heartbeat_gaps_fail_on_a_long_silence_or_a_late_first_beat() {
        let bound = Duration::from_secs(25);
        let gap = heartbeat_gaps(&[span(0, 100)], &secs(&[20, 40, 80, 100]), bound).unwrap_err();
        assert_eq!(
            gap,
            Violation::HeartbeatGap {
                from: Instant::from_secs(40),
                to: Instant::from_secs(80),
                bound
            }
        );
        assert_eq!(
            gap.to_string(),
            "no heartbeat from 40.000s to 80.000s while connected (40.000s > bound 25.000s)"
        );
        assert!(heartbeat_gaps(&[span(100, 150)], &secs(&[20, 140]), bound).is_err());
        assert!(heartbeat_gaps(&[span(0, 60)], &secs(&[20]), bound).is_err());
    }

    fn outcomes(list: &[Outcome]) -> Vec<OutcomeRecord> {
        list.iter()
            .enumerate()
            .map(|(i, &outcome)| OutcomeRecord {
                at: Instant::from_secs(i as u64),
                outcome,
            })
            .collect()
    }

    #[test]
    fn give_up_model_follows_the_rules() {
        let rules = GiveUpRules::default();
        let auth = Outcome::AuthFailure;
        let transient = Outcome::Transient(TransientCause::Transport);
        let mut list = vec![auth; 9];
        list.push(transient); // a transient failure does not reset the count
        assert_eq!(rules.expected_end(&list), None);
        list.push(auth);
        assert_eq!(rules.expected_end(&list), Some((10, Terminal::GaveUpAuth)));
        let mut reset = vec![auth; 9];
        reset.push(Outcome::Success);
        reset.extend([auth; 9]);
        assert_eq!(rules.expected_end(&reset), None);
        let early = [transient, Outcome::SessionUnknown, Outcome::Superseded];
        assert_eq!(
            rules.expected_end(&early),
            Some((1, Terminal::GaveUpSessionUnknown))
        );
        let lenient = GiveUpRules {
            session_unknown_terminal: false,
            ..rules
        };
        assert_eq!(
            lenient.expected_end(&early),
            Some((2, Terminal::Superseded))
        );
        assert_eq!(
            rules.expected_end(&[Outcome::TooLarge, Outcome::Permanent(422)]),
            None
        );
    }

    #[test]
    fn give_up_passes_when_the_session_ends_as_ruled() {
        let rules = GiveUpRules::default();
        let seen = outcomes(&[Outcome::Success, Outcome::Superseded]);
        let end = Some((Instant::from_secs(1), Terminal::Superseded));
        assert_eq!(give_up_as_ruled(&rules, &seen, end), Ok(()));
        assert_eq!(
            give_up_as_ruled(&rules, &outcomes(&[Outcome::Success]), None),
            Ok(())
        );
    }

    #[test]
    fn give_up_fails_when_late_early_or_wrong() {
        let rules = GiveUpRules::default();
        let seen = outcomes(&[Outcome::AuthFailure; 11]);
        // Gave up at the 11th instead of the 10th.
        let late = give_up_as_ruled(
            &rules,
            &seen,
            Some((Instant::from_secs(10), Terminal::GaveUpAuth)),
        );
        assert_eq!(
            late.unwrap_err().to_string(),
            "the rules say give-up (auth failures) at 9.000s, the session did give-up (auth failures) at 10.000s"
        );
        assert!(give_up_as_ruled(&rules, &seen, None).is_err());
        let early = give_up_as_ruled(
            &rules,
            &outcomes(&[Outcome::AuthFailure; 3]),
            Some((Instant::from_secs(2), Terminal::GaveUpAuth)),
        );
        assert!(early.is_err());
        let wrong_kind = give_up_as_ruled(
            &rules,
            &outcomes(&[Outcome::SessionUnknown]),
            Some((Instant::ZERO, Terminal::Superseded)),
        );
        assert!(wrong_kind.is_err());
    }

    fn out(at: u64, kind: &str, terminal: bool) -> OutputRecord {
        OutputRecord {
            at: Instant::from_secs(at),
            kind: kind.to_string().into(),
            terminal,
        }
    }

    #[test]
    fn quiet_after_terminal_passes_when_the_terminal_is_last() {
        let outputs = [
            out(1, "request", false),
            out(2, "handed-back", false),
            out(2, "status superseded", true),
        ];
        assert_eq!(quiet_after_terminal(&outputs), Ok(()));
        assert_eq!(quiet_after_terminal(&outputs[..2]), Ok(()));
    }

    #[test]
    fn quiet_after_terminal_fails_on_any_later_output() {
        let outputs = [out(1, "status given-up", true), out(3, "request", false)];
        let violation = quiet_after_terminal(&outputs).unwrap_err();
        assert_eq!(
            violation.to_string(),
            "output \"request\" at 3.000s after terminal \"status given-up\" at 1.000s"
        );
        let two_ends = [
            out(1, "status superseded", true),
            out(1, "status closed", true),
        ];
        assert!(quiet_after_terminal(&two_ends).is_err());
    }
}
