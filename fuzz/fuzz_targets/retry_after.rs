#![no_main]
//! `Retry-After` parsing never panics, and the delay it leads to stays within the policy's clamp.

use libfuzzer_sys::fuzz_target;
use tether_core::backoff::{retry_after, BackoffPolicy};

fuzz_target!(|input: (&str, Option<&str>, f64)| {
    let (value, date, draw) = input;
    let Some(hint) = retry_after::parse(value, date) else {
        return;
    };
    for policy in [
        BackoffPolicy::reconnect(),
        BackoffPolicy::uploader(),
        BackoffPolicy::tunnel(),
    ] {
        let delay = policy.delay_for_hint_with_draw(hint, draw);
        assert!(
            delay >= policy.base,
            "{value:?} {date:?}: {delay:?} under the base"
        );
        assert!(
            delay <= policy.max_hinted_delay(),
            "{value:?} {date:?}: {delay:?} over the clamp"
        );
    }
});
