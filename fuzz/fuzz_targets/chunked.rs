//! The chunked decoder fed in arbitrary pieces: the first byte of the input says where
//! the body is cut; decoding it in pieces gives exactly what decoding it whole gives.
#![no_main]
use bytes::{Bytes, BytesMut};
use holdfast_http1::Chunked;
use libfuzzer_sys::fuzz_target;

/// Decodes `pieces` one after the other; the data, whether it ended, and whether it failed.
fn decode(pieces: &[&[u8]]) -> (Vec<u8>, bool, bool) {
    let mut c = Chunked::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for p in pieces {
        buf.extend_from_slice(p);
        loop {
            match c.decode(&mut buf) {
                Ok(Some(d)) => out.extend_from_slice(&d),
                Ok(None) => break,
                Err(_) => return (out, c.is_done(), true),
            }
        }
        if c.is_done() {
            break;
        }
    }
    (out, c.is_done(), false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else { return };
    let whole = decode(&[body]);
    let step = usize::from(step).max(1);
    let pieces: Vec<&[u8]> = body.chunks(step).collect();
    let split = decode(&pieces);
    assert_eq!(whole, split, "the same body in pieces of {step}");
    let _ = Bytes::new();
});
