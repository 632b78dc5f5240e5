//! Response heads from origins: no panic, nothing past the head consumed, and a response
//! whose framing is in doubt never keeps its connection.
#![no_main]
use bytes::BytesMut;
use holdfast_http1::response::{parse_response, skip_interim, ResponseFraming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let _ = skip_interim(&mut buf);
    let before = buf.len();
    if let Ok(Some(head)) = parse_response(&mut buf) {
        assert!(buf.len() < before);
        assert!(!head.headers.contains_key(http::header::TRANSFER_ENCODING), "hop-by-hop fields stay here");
        assert!(!head.headers.contains_key(http::header::CONNECTION));
        if head.framing == ResponseFraming::UntilClose {
            assert!(!head.keep_alive, "a body until close ends the connection");
        }
    }
});
