#![no_main]
//! Arbitrary bytes as a stored outbox record (what a torn or corrupt disk may hold): decoding
//! never panics, a record it accepts re-encodes to the same bytes (the format is canonical),
//! and what it accepts is an event whose payload and bytes can be read.

use libfuzzer_sys::fuzz_target;
use tether_core::session::{decode_record, encode_record};

fuzz_target!(|bytes: &[u8]| {
    if let Ok((stream, event)) = decode_record(bytes) {
        assert_eq!(encode_record(stream, &event), bytes);
        let _ = event.payload_bytes().len();
        assert!(event.payload().is_ok());
    }
});
