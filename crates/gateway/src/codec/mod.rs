//! The HTTP/1 wire, below everything that does I/O: the codec crate (`holdfast-http1`:
//! heads, framing, the chunked coding, field names) as the gateway uses it, and buffer
//! helpers. Both HTTP/1 sides use it: the client's (`listen::h1`) and the origins'
//! (`upstream::http1`). It imports nothing from the rest of the gateway.

pub(crate) mod io;

pub(crate) use holdfast_http1::fields;
pub(crate) use holdfast_http1::framing::*;

/// Marks a request whose framing is ambiguous (both Content-Length and Transfer-Encoding,
/// differing lengths, an obfuscated Transfer-Encoding): the request path answers it 400
/// and the connection is closed after that answer. Set by the HTTP/1 server as it parses
/// the head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BadFraming;
