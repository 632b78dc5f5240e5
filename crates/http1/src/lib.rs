//! holdfast's HTTP/1.x codec, on its own: what both sides of the gateway's HTTP/1 (its
//! server for clients, its client for origins) need from the wire, with no sockets and no
//! dependency on the gateway, so that it can be fuzzed (`fuzz/`), checked against other
//! parsers (`tests/differential.rs`) and reused.
//!
//! - [`request`]: request heads (httparse, strict), the framing decision that keeps smuggled
//!   requests out (RFC 9112 §6), keep-alive and `Expect: 100-continue`;
//! - [`response`]: response heads from origins, their framing and hop-by-hop fields;
//! - [`framing`]: Content-Length values and the chunked coding, decoded strictly;
//! - [`encode`]: request heads written to origins;
//! - [`fields`]: header field names (the fast lookup), hop-by-hop and forwarding fields;
//! - [`host`]: the request's Host, and Host values as routing keys;
//! - [`proxy_v2`]: the PROXY protocol v2 header;
//! - [`split`]: a stream split into requests as the server reads it (for fuzzing and tests).
//!
//! Heads are parsed with httparse (the parser hyper uses); everything after the head is
//! written here, for the reasons `docs/architecture.md` gives (measured).

#![forbid(unsafe_code)]

pub mod encode;
pub mod fields;
pub mod framing;
pub mod host;
pub mod proxy_v2;
pub mod request;
pub mod response;
pub mod split;

pub use framing::*;
