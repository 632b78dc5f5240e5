//! Host values as routing keys: lowercase, no port, and normalizing twice changes nothing.
#![no_main]
use holdfast_http1::host::normalize_host;
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(v) = HeaderValue::from_bytes(data) else { return };
    if let Some(h) = normalize_host(&v) {
        assert!(!h.is_empty());
        assert!(!h.bytes().any(|b| b.is_ascii_uppercase()));
        let again = HeaderValue::from_str(&h).expect("a host is a valid value");
        assert_eq!(normalize_host(&again).as_deref(), Some(&*h), "idempotent");
    }
});
