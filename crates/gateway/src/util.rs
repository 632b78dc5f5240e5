//! Small shared helpers.

/// Serde helper: `SystemTime` as an RFC 3339 UTC timestamp with milliseconds.
pub mod rfc3339 {
    use serde::Serializer;
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }
}

/// Serializes an optional `SystemTime` as an RFC 3339 timestamp or null.
pub mod rfc3339_opt {
    use serde::Serializer;
    use std::time::SystemTime;

    pub fn serialize<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.collect_str(&humantime::format_rfc3339_millis(*t)),
            None => s.serialize_none(),
        }
    }
}

/// Compares secrets in time that does not depend on where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A query parameter's value, percent-decoded (and `+` as space); None when absent, badly
/// escaped or not UTF-8.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    let raw = query.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('='))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let h = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Reads from `io` into the spare room of `buf` (making room for `chunk` bytes first when
/// less than a quarter of that is left), without zeroing it; Ok(0) at the end of the
/// stream. Shared by the client side (`listen::h1`) and the origin side (`upstream::http1`).
pub fn poll_fill<R: tokio::io::AsyncRead + Unpin + ?Sized>(
    io: &mut R,
    buf: &mut bytes::BytesMut,
    chunk: usize,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<std::io::Result<usize>> {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
    let mut rb = tokio::io::ReadBuf::uninit(buf.spare_capacity_mut());
    std::task::ready!(std::pin::Pin::new(io).poll_read(cx, &mut rb))?;
    let n = rb.filled().len();
    // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    std::task::Poll::Ready(Ok(n))
}

/// The parts of a vectored write still to go after the first `done` bytes, as IoSlices in
/// `out` (at most its length of them); returns how many. Shared by both HTTP/1 sides.
pub fn unwritten<'a>(parts: &[&'a [u8]], mut done: usize, out: &mut [std::io::IoSlice<'a>]) -> usize {
    let mut k = 0;
    for p in parts {
        if done >= p.len() {
            done -= p.len();
            continue;
        }
        if k == out.len() {
            break;
        }
        out[k] = std::io::IoSlice::new(&p[done..]);
        done = 0;
        k += 1;
    }
    k
}
