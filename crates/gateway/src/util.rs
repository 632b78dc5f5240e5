//! Small shared helpers.

/// Serde helper: `SystemTime` as an RFC 3339 UTC timestamp with milliseconds.
pub mod rfc3339 {
    use serde::Serializer;
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }
}
