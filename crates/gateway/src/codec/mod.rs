//! The HTTP/1 wire, below everything that does I/O: body framing (Content-Length values,
//! the chunked coding), header field names (the fast lookup, hop-by-hop and forwarding
//! fields) and buffer helpers. Both HTTP/1 sides use it: the client's (`listen::h1`) and
//! the origins' (`upstream::http1`). It imports nothing from the rest of the gateway.

pub(crate) mod fields;
mod framing;
pub(crate) mod io;

pub(crate) use framing::*;

/// Marks a request whose framing is ambiguous (both Content-Length and Transfer-Encoding,
/// differing lengths, an obfuscated Transfer-Encoding): the request path answers it 400
/// and the connection is closed after that answer. Set by the HTTP/1 server as it parses
/// the head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BadFraming;
