//! Batch bodies, assembled by concatenating the events' serialised items: nothing is
//! serialised twice.

use alloc::vec::Vec;

use super::config::Envelope;

const fn array_key(envelope: Envelope) -> &'static [u8] {
    match envelope {
        Envelope::Events => b",\"events\":[",
        Envelope::DeliveryUpdates => b",\"updates\":[",
    }
}

/// The body's length for `count` items of `bytes` in total, so it is allocated once.
pub(crate) fn body_len(envelope: Envelope, epoch: u64, count: usize, bytes: usize) -> usize {
    b"{\"worker_epoch\":".len()
        + decimal_len(epoch)
        + array_key(envelope).len()
        + bytes
        + count.saturating_sub(1)
        + b"]}".len()
}

/// Appends `{"worker_epoch":N,"events":[item,item,..]}` (or `"updates"`) to `out`.
pub(crate) fn write<'a>(
    out: &mut Vec<u8>,
    envelope: Envelope,
    epoch: u64,
    items: impl IntoIterator<Item = &'a [u8]>,
) {
    out.extend_from_slice(b"{\"worker_epoch\":");
    write_decimal(out, epoch);
    out.extend_from_slice(array_key(envelope));
    let mut first = true;
    for item in items {
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(item);
    }
    out.extend_from_slice(b"]}");
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

fn write_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_exact_and_epoch_is_decimal() {
        for epoch in [0, 9, 10, 12_345, u64::MAX] {
            let items: [&[u8]; 3] = [b"{\"a\":1}", b"{}", b"{\"b\":[]}"];
            let mut out = Vec::new();
            write(&mut out, Envelope::Events, epoch, items);
            let bytes = items.iter().map(|i| i.len()).sum();
            assert_eq!(out.len(), body_len(Envelope::Events, epoch, 3, bytes));
            let text = alloc::format!(
                "{{\"worker_epoch\":{epoch},\"events\":[{{\"a\":1}},{{}},{{\"b\":[]}}]}}"
            );
            assert_eq!(out, text.as_bytes());
        }
        let mut out = Vec::new();
        write(&mut out, Envelope::DeliveryUpdates, 3, core::iter::empty());
        assert_eq!(out, b"{\"worker_epoch\":3,\"updates\":[]}");
        assert_eq!(out.len(), body_len(Envelope::DeliveryUpdates, 3, 0, 0));
    }
}
