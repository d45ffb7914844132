//! A session's timeline as the server saw it, from its own request log, for the same renderer
//! as `tether demo --svg` ([`tether_model::render::render`]).
//!
//! Each request is a bar from its arrival to its answer (or the close of its connection),
//! coloured by how the response table classifies its status; injected faults are shaded under
//! their bar, partitions set from the page across every lane, forced takeovers are vertical
//! lines. Time zero is the session's first request kept in the log. The server cannot know the
//! worker's status or queue depth, so those rows stay empty.

use std::fmt::Write as _;
use std::time::Duration;

use tether_core::Instant;
use tether_core::classify::{Reply, classify};
use tether_model::timeline::{Bar, Class, Lane, Span, SpanKind, Timeline};

use crate::journal::{Asked, Entry, SessionNotes};
use tether_core::session::Endpoint;
use tether_model::fault::FaultKind;

/// The timeline of session `id` from its logged requests (`trimmed`: older ones were dropped
/// from the log) and its notes, up to `now` (since the server started).
pub(crate) fn build(
    id: &str,
    entries: &[&Entry],
    trimmed: bool,
    notes: &SessionNotes,
    now: Duration,
) -> Timeline {
    let origin = entries
        .first()
        .map(|e| e.at)
        .into_iter()
        .chain(notes.partitions.front().map(|p| p.start))
        .chain(notes.takeovers.first().copied())
        .min()
        .unwrap_or(now);
    let at = |d: Duration| Instant::from_duration(d.saturating_sub(origin));
    let mut timeline = Timeline {
        title: format!(
            "session {id} as the server saw it{}",
            if trimmed { " (latest requests)" } else { "" }
        ),
        end: at(now),
        ..Timeline::default()
    };
    // A trimmed log may have lost the connect: take the session as connected then.
    let mut connected = trimmed;
    for entry in entries {
        let lane = match entry.asked {
            Asked::Route(route) => Lane::of(route, connected),
            Asked::Thread => Lane::Threads,
            Asked::Other => continue,
        };
        let ok = entry.status.is_some_and(|s| (200..300).contains(&s));
        if entry.asked == Asked::Route(Endpoint::GetWorker) && ok {
            connected = true;
        }
        let class = match entry.status {
            Some(status) => Class::of(classify(Reply::Status {
                status,
                retry_after: (entry.fault == Some(FaultKind::Throttled)).then_some("1"),
                date: None,
            })),
            None if entry.fault == Some(FaultKind::Hang) => Class::TimedOut,
            None => Class::Transient,
        };
        let start = at(entry.at);
        let end = at(entry.at + entry.took);
        let mut details = String::new();
        let what = match entry.asked {
            Asked::Route(route) => route.to_string(),
            _ => "thread sync".to_owned(),
        };
        let _ = write!(details, "{what}");
        if let Some(bytes) = entry.bytes {
            let _ = write!(details, " ({bytes} B)");
        }
        let _ = write!(details, " at {}: ", secs(start));
        match entry.status {
            Some(status) => {
                let _ = write!(details, "{status}");
            }
            None => details.push_str("closed without an answer"),
        }
        let _ = write!(details, " after {} ms", entry.took.as_millis());
        let fault = match (entry.fault, entry.partitioned) {
            (_, true) => Some("partition".to_owned()),
            (Some(kind), _) => Some(kind.to_string()),
            _ => None,
        };
        if let Some(fault) = &fault {
            let _ = write!(details, "; fault: {fault}");
            // A partition is drawn across every lane below; a fault under its own bar.
            if !entry.partitioned {
                timeline.spans.push(Span {
                    kind: SpanKind::Fault,
                    lane: Some(lane),
                    start,
                    end,
                    label: format!("{}: {fault}", lane.name()),
                });
            }
        }
        timeline.bars.push(Bar {
            lane,
            start,
            end,
            class,
            faulted: fault.is_some(),
            details,
        });
    }
    for p in &notes.partitions {
        let (start, end) = (at(p.start), at(p.end.min(now)));
        timeline.spans.push(Span {
            kind: SpanKind::Partition,
            lane: None,
            start,
            end,
            label: format!(
                "partitioned from the inspector, {} to {}",
                secs(start),
                secs(end)
            ),
        });
    }
    for &t in &notes.takeovers {
        timeline.spans.push(Span {
            kind: SpanKind::Takeover,
            lane: None,
            start: at(t),
            end: at(t),
            label: format!("takeover forced at {}", secs(at(t))),
        });
    }
    timeline.spans.sort_by_key(|s| (s.start, s.kind));
    timeline
}

/// `12.345 s`.
fn secs(at: Instant) -> String {
    let ms = at.as_micros() / 1_000;
    format!("{}.{:03} s", ms / 1_000, ms % 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Partition;

    fn entry(asked: Asked, at_ms: u64, status: Option<u16>, fault: Option<FaultKind>) -> Entry {
        Entry {
            session: 0,
            asked,
            at: Duration::from_millis(at_ms),
            took: Duration::from_millis(5),
            status,
            fault,
            partitioned: false,
            bytes: Some(42),
        }
    }

    #[test]
    fn bars_lanes_classes_and_spans() {
        let entries = [
            entry(Asked::Route(Endpoint::Register), 1_000, Some(200), None),
            entry(Asked::Route(Endpoint::PutWorker), 1_010, Some(200), None),
            entry(Asked::Route(Endpoint::GetWorker), 1_020, Some(200), None),
            entry(
                Asked::Route(Endpoint::PutWorker),
                1_030,
                Some(429),
                Some(FaultKind::Throttled),
            ),
            entry(
                Asked::Route(Endpoint::Events),
                1_040,
                None,
                Some(FaultKind::Hang),
            ),
            entry(Asked::Route(Endpoint::Events), 1_050, Some(409), None),
            entry(Asked::Thread, 1_060, Some(200), None),
            entry(Asked::Other, 1_070, Some(404), None),
        ];
        let refs: Vec<&Entry> = entries.iter().collect();
        let mut notes = SessionNotes::default();
        notes.partitions.push_back(Partition {
            start: Duration::from_secs(2),
            end: Duration::from_secs(9),
        });
        notes.takeovers.push(Duration::from_secs(3));
        let t = build("s", &refs, false, &notes, Duration::from_secs(5));
        let lanes: Vec<Lane> = t.bars.iter().map(|b| b.lane).collect();
        assert_eq!(
            lanes,
            [
                Lane::Connect,
                Lane::Connect,
                Lane::Connect,
                Lane::State,
                Lane::Events,
                Lane::Events,
                Lane::Threads
            ]
        );
        let classes: Vec<Class> = t.bars.iter().map(|b| b.class).collect();
        assert_eq!(
            classes,
            [
                Class::Success,
                Class::Success,
                Class::Success,
                Class::Throttled,
                Class::TimedOut,
                Class::Permanent,
                Class::Success
            ]
        );
        assert_eq!(t.bars[0].start, Instant::ZERO);
        assert_eq!(t.end, Instant::from_secs(4));
        assert!(t.bars[3].details.contains("PUT /worker (42 B)"));
        assert!(t.bars[3].details.contains("fault: 429"));
        let kinds: Vec<SpanKind> = t.spans.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                SpanKind::Fault,
                SpanKind::Fault,
                SpanKind::Partition,
                SpanKind::Takeover
            ]
        );
        // The partition still on is drawn up to now.
        assert_eq!(t.spans[2].end, Instant::from_secs(4));
        let svg = tether_model::render::render(&t);
        assert!(svg.starts_with("<svg") && svg.contains("session s as the server saw it"));
    }
}
