//! The PROXY protocol v2 header: never takes more than it was given, and a header found in
//! a prefix of the input is found the same in the whole input.
#![no_main]
use holdfast_http1::proxy_v2::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((client, n))) = parse(data) {
        assert!((16..=data.len()).contains(&n));
        assert_eq!(parse(&data[..n]), Ok(Some((client, n))));
    }
});
