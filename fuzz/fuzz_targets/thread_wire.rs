#![no_main]
//! Thread sync's wire bodies from the server (PROTOCOL.md §Thread sync): whatever the bytes,
//! reading a pull page, push results or a thread never panics; a page accounts for every
//! thread it carries (valid, or reported invalid); every thread read is valid and reads back
//! the same from its own JSON.

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tether_core::thread::wire::{parse_pull, parse_sync_results};
use tether_core::thread::{ItemResult, Thread};

fuzz_target!(|data: &[u8]| {
    let round_trip = |t: &Thread| {
        assert!(t.validate().is_ok(), "{t:?}");
        assert_eq!(Thread::from_value(&t.to_value()).as_ref(), Ok(t));
    };
    if let Ok((page, invalid)) = parse_pull(data) {
        let value: Value = serde_json::from_slice(data).expect("a page is JSON");
        let carried = value["threads"].as_array().map_or(0, Vec::len);
        assert_eq!(page.threads.len() + invalid.len(), carried);
        page.threads.iter().for_each(round_trip);
    }
    if let Ok(results) = parse_sync_results(data) {
        for result in &results {
            if let ItemResult::Conflict { id, thread } = result {
                assert_eq!(id, &thread.id);
                round_trip(thread);
            }
            // What the client read, the server's writer writes back the same way.
            let again = parse_sync_results(
                format!(r#"{{"results":[{}]}}"#, result.to_value()).as_bytes(),
            );
            assert_eq!(again.as_deref(), Ok(std::slice::from_ref(result)));
        }
    }
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        if let Ok(thread) = Thread::from_value(&value) {
            round_trip(&thread);
        }
    }
});
