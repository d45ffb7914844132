//! The crash scenario's checks, as pure functions of what the caller gave, what it was told
//! was durable, and what the server holds.

use std::collections::HashMap;

use serde_json::Value;
use tether_core::session::Stream;

use super::GivenPatch;

/// One stream's events on the server against what the caller gave and was acknowledged.
pub(super) fn check_stream(
    stream: Stream,
    on_server: &[u64],
    given: &[u64],
    acknowledged: &[u64],
    violations: &mut Vec<String>,
) {
    let mut position: HashMap<u64, usize> = HashMap::new();
    for (i, seq) in on_server.iter().enumerate() {
        if position.insert(*seq, i).is_some() {
            violations.push(format!("{stream}: event {seq} is on the server twice"));
        }
    }
    for seq in on_server {
        if given.binary_search(seq).is_err() {
            violations.push(format!(
                "{stream}: the server holds event {seq}, never given"
            ));
        }
    }
    let mut acknowledged = acknowledged.to_vec();
    acknowledged.sort_unstable();
    let mut last = None;
    for seq in acknowledged {
        match position.get(&seq) {
            None => violations.push(format!(
                "{stream}: acknowledged event {seq} never reached the server"
            )),
            Some(&at) => {
                if last.is_some_and(|l| l > at) {
                    violations.push(format!(
                        "{stream}: acknowledged event {seq} landed out of order"
                    ));
                }
                last = Some(at);
            }
        }
    }
}

/// Every key holds the value of its last acknowledged patch or of a later one.
pub(super) fn check_state(patches: &[GivenPatch], document: &Value, violations: &mut Vec<String>) {
    for (i, patch) in patches.iter().enumerate() {
        if !patch.acknowledged {
            continue;
        }
        let held = document.get(&patch.key).and_then(Value::as_u64);
        let later = patches[i..]
            .iter()
            .filter(|p| p.key == patch.key)
            .any(|p| Some(p.value) == held);
        if !later {
            violations.push(format!(
                "state key {} holds {held:?}, not acknowledged {} or a later value",
                patch.key, patch.value
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn stream(on_server: &[u64], given: &[u64], acknowledged: &[u64]) -> Vec<String> {
        let mut violations = Vec::new();
        check_stream(
            Stream::Events,
            on_server,
            given,
            acknowledged,
            &mut violations,
        );
        violations
    }

    #[test]
    fn each_stream_check_can_fail() {
        assert!(stream(&[0, 1, 2], &[0, 1, 2, 3], &[0, 2]).is_empty());
        let twice = stream(&[0, 1, 1], &[0, 1], &[]);
        assert!(
            twice[0].contains("event 1 is on the server twice"),
            "{twice:?}"
        );
        let unknown = stream(&[0, 9], &[0, 1], &[]);
        assert!(
            unknown[0].contains("holds event 9, never given"),
            "{unknown:?}"
        );
        let lost = stream(&[0], &[0, 1], &[0, 1]);
        assert!(
            lost[0].contains("acknowledged event 1 never reached"),
            "{lost:?}"
        );
        let reordered = stream(&[2, 0, 1], &[0, 1, 2], &[0, 2]);
        assert!(
            reordered.iter().all(|v| !v.contains("event 0")),
            "{reordered:?}"
        );
        assert!(
            reordered[0].contains("event 2 landed out of order"),
            "{reordered:?}"
        );
    }

    #[test]
    fn the_state_check_wants_the_last_acknowledged_value_or_a_later_one() {
        let patch = |key: &str, value, acknowledged| GivenPatch {
            key: key.into(),
            value,
            life: 0,
            acknowledged,
        };
        let patches = [
            patch("k0", 0, true),
            patch("k0", 1, false),
            patch("k1", 2, true),
        ];
        let check = |document: Value| {
            let mut violations = Vec::new();
            check_state(&patches, &document, &mut violations);
            violations
        };
        assert!(check(json!({"k0": 0, "k1": 2})).is_empty());
        // A later patch, not acknowledged, may have landed.
        assert!(check(json!({"k0": 1, "k1": 2})).is_empty());
        let stale = check(json!({"k0": 1, "k1": 7}));
        assert_eq!(stale.len(), 1, "{stale:?}");
        assert!(stale[0].contains("k1 holds Some(7)"), "{stale:?}");
        assert_eq!(check(json!({"k1": 2})).len(), 1, "a missing key");
    }
}
