//! Unit tests of the HTTP/1.x server's own parts (its heads are parsed and judged by
//! `holdfast_http1::request`, tested there; the connection's behaviour end to end in
//! tests/it: framing.rs, http1.rs, limits.rs, proxying.rs).

use super::*;

#[test]
fn the_date_field_is_an_http_date() {
    let d = date::now();
    let text = std::str::from_utf8(&d).unwrap();
    assert!(httpdate::parse_http_date(text).is_ok(), "{text}");
}
