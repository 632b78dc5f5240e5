//! Request heads: any bytes are either incomplete, refused with a status, or a head whose
//! parts hold what the head said, and nothing past it is consumed.
#![no_main]
use bytes::BytesMut;
use holdfast_http1::request::{parse_request, BodyFraming};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    match parse_request(&mut buf, 16 * 1024, 100) {
        Ok(Some(head)) => {
            assert!(buf.len() < data.len(), "a head consumes bytes");
            assert!(data.ends_with(&buf), "what is left is the end of the input");
            assert!(head.headers.len() <= 100);
            assert!(head.method != http::Method::CONNECT);
            if let Some(BodyFraming::Chunked) = head.framing {
                assert_eq!(head.version, http::Version::HTTP_11, "chunked only in HTTP/1.1");
                assert!(!head.headers.contains_key(http::header::CONTENT_LENGTH), "never both");
            }
            if head.framing.is_some() {
                assert!(head.headers.get_all(http::header::TRANSFER_ENCODING).iter().count() <= 1);
            }
        }
        Ok(None) => assert!(buf.len() <= 16 * 1024, "an incomplete head is bounded"),
        Err(_) => {}
    }
});
