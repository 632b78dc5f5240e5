//! The config loader: any text is a config or an error that names where, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = holdfast_gateway::config::parse_str("fuzz.toml", text) {
        assert!(e.to_string().starts_with("fuzz.toml"), "errors name the file: {e}");
    }
});
