//! Content coding of responses (RFC 9110 §8.4, §12.5.3): which coding a request gets by its
//! `Accept-Encoding` and the site's `[site.compression]`, which responses are compressed,
//! what that changes in their header fields, and the encoders (gzip by flate2, Brotli by
//! brotli, Zstandard by zstd).
//!
//! The choice is made once per request, before the cache, and the request's
//! `Accept-Encoding` is then the one coding chosen (or `identity`): the cache keys its
//! variants by that (`Vary: Accept-Encoding`), so a URL has at most one stored variant per
//! coding, however clients spell their lists, and a hit serves the stored compressed body
//! as it is: **a hit costs no compression**. The body is compressed once, as it streams
//! from the origin (into the cache, or to the client).
//!
//! Never compressed: a response already encoded, a `206` (a request with `Range` gets the
//! identity variant, so ranges stay byte ranges of the identity body), `no-transform`, a
//! type not in `types`, one smaller than `min_bytes`, a HEAD's. A response that could be
//! compressed gets `Vary: Accept-Encoding` whether it is or not (its identity form must not
//! answer a request for a coding from a cache); a compressed one loses Content-Length and
//! Accept-Ranges, and a strong `ETag` becomes weak (the bytes are no longer the origin's).

use crate::config::{Coding, Compression};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;
use std::io::Write;

/// gzip level 6 (zlib's default), Brotli quality 5, zstd level 3 (its default): each
/// compresses a typical shop page (HTML, 1 to 100 kB) smaller than gzip at nginx's default
/// level 1, at a cost paid once per stored variant.
const GZIP_LEVEL: u32 = 6;
const BROTLI_QUALITY: u32 = 5;
const BROTLI_WINDOW: u32 = 22;
const ZSTD_LEVEL: i32 = 3;

/// The coding a request gets: the highest q-value among the site's algorithms that the
/// client accepts (a tie goes to the site's order); None: identity.
pub(crate) fn choose(req: &HeaderMap, cfg: &Compression) -> Option<Coding> {
    if !cfg.enabled || req.contains_key(header::RANGE) {
        return None;
    }
    let mut best: Option<(u16, usize, Coding)> = None;
    for (rank, &coding) in cfg.algorithms.iter().enumerate() {
        let q = accepted(req, coding.as_str());
        if q == 0 {
            continue;
        }
        // Higher q wins; on a tie the earlier in the site's list.
        if best.is_none_or(|(bq, br, _)| q > bq || (q == bq && rank < br)) {
            best = Some((q, rank, coding));
        }
    }
    best.map(|(_, _, c)| c)
}

/// The client's q-value (0 to 1000) for `coding`: its own entry, else `*`'s, else 0.
fn accepted(req: &HeaderMap, coding: &str) -> u16 {
    let (mut own, mut star) = (None, None);
    for value in req.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").or_else(|| p.trim().strip_prefix("Q=")))
                .map_or(Some(1000), qvalue);
            let Some(q) = q else { continue }; // a malformed weight: the entry is ignored
            if name.eq_ignore_ascii_case(coding) {
                own = Some(own.map_or(q, |o: u16| o.max(q)));
            } else if name == "*" {
                star = Some(q);
            }
        }
    }
    own.or(star).unwrap_or(0)
}

/// An RFC 9110 §12.4.2 qvalue in thousandths: `0`, `0.5`, `1.000`.
fn qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = format!("{frac:0<3}").parse::<u16>().ok()?;
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The request's Accept-Encoding becomes the coding chosen, for the cache's Vary and the
/// origin (which may send that coding itself).
pub(crate) fn settle_request(req: &mut HeaderMap, coding: Option<Coding>) {
    let value = coding.map_or("identity", Coding::as_str);
    req.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
}

/// The coding a request's settled Accept-Encoding names (a background refresh codes its
/// variant as the request that stored it did).
pub(crate) fn settled(req: &HeaderMap) -> Option<Coding> {
    match req.get(header::ACCEPT_ENCODING)?.as_bytes() {
        b"gzip" => Some(Coding::Gzip),
        b"br" => Some(Coding::Br),
        b"zstd" => Some(Coding::Zstd),
        _ => None,
    }
}

/// Whether a response to a request that chose a coding is compressed.
pub(crate) fn applies(status: StatusCode, headers: &HeaderMap, cfg: &Compression, head_request: bool) -> bool {
    if head_request || !matches!(status.as_u16(), 200 | 203 | 404 | 410) {
        return false;
    }
    let encoded =
        headers.get(header::CONTENT_ENCODING).is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded || headers.contains_key(header::CONTENT_RANGE) {
        return false;
    }
    let no_transform = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|d| d.trim().eq_ignore_ascii_case("no-transform"))));
    if no_transform {
        return false;
    }
    let small = crate::codec::content_length(headers).is_some_and(|n| n < cfg.min_bytes.get());
    !small && compressible(headers, &cfg.types)
}

fn compressible(headers: &HeaderMap, types: &[String]) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    types.iter().any(|t| match t.strip_suffix("/*") {
        Some(family) => media.strip_prefix(family).is_some_and(|rest| rest.starts_with('/')),
        None => t.eq_ignore_ascii_case(&media),
    })
}

/// The header fields of a response compressed with `coding`.
pub(crate) fn mark(headers: &mut HeaderMap, coding: Coding) {
    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding.as_str()));
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    add_vary(headers);
    weaken_etag(headers);
}

/// `Vary: Accept-Encoding`, unless it is there (or `*`) already.
pub(crate) fn add_vary(headers: &mut HeaderMap) {
    let has = headers.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|f| f.trim() == "*" || f.trim().eq_ignore_ascii_case("accept-encoding")))
    });
    if !has {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// A strong ETag made weak: the compressed bytes are not the origin's (RFC 9110 §8.8.1).
/// Also applied to a 304 that revalidates a compressed variant, so that the stored tag
/// stays weak.
pub(crate) fn weaken_etag(headers: &mut HeaderMap) {
    if let Some(tag) = headers.get(header::ETAG) {
        if tag.as_bytes().starts_with(b"\"") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(tag.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&weak) {
                headers.insert(header::ETAG, v);
            }
        }
    }
}

/// The next piece of `body` compressed as it streams, for the client and for the cache's
/// fill alike: what the coder makes of each piece, pushed out whenever the body pauses
/// (a streamed page is not held back; a body that keeps coming is coded in large
/// blocks), then the coded stream's end after the body's. `encoder` is None once that end
/// has gone out.
pub(crate) fn poll_coded<B>(
    body: &mut B,
    encoder: &mut Option<Box<Encoder>>,
    cx: &mut std::task::Context<'_>,
) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, crate::body::BoxError>>>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::body::BoxError>,
{
    use http_body::Frame;
    use std::task::Poll;
    let coded = |r: std::io::Result<Bytes>| match r {
        Ok(bytes) => Some(Ok(Frame::data(bytes))),
        Err(e) => Some(Err(format!("compression: {e}").into())),
    };
    loop {
        let Some(enc) = encoder.as_mut() else { return Poll::Ready(None) };
        let out = match std::pin::Pin::new(&mut *body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let Ok(data) = frame.into_data() else { continue }; // trailers: dropped
                enc.push(&data, false)
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => match encoder.take() {
                Some(enc) => return Poll::Ready(coded(enc.finish())),
                None => return Poll::Ready(None),
            },
            // The body pauses: what the coder holds goes out now.
            Poll::Pending => match enc.push(&[], true) {
                Ok(b) if b.is_empty() => return Poll::Pending,
                pushed => return Poll::Ready(coded(pushed)),
            },
        };
        match out {
            Ok(b) if b.is_empty() => continue,
            pushed => return Poll::Ready(coded(pushed)),
        }
    }
}

/// A streaming encoder: each piece in, what the coding has made of it so far out.
pub(crate) struct Encoder {
    coder: Coder,
    /// Bytes went in since the last flush (a flush with nothing new would still emit an
    /// empty block in gzip: a pause must not make bytes out of nothing).
    dirty: bool,
}

enum Coder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    pub(crate) fn new(coding: Coding) -> std::io::Result<Encoder> {
        let coder = match coding {
            Coding::Gzip => {
                Coder::Gzip(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(GZIP_LEVEL)))
            }
            Coding::Br => {
                Coder::Br(Box::new(brotli::CompressorWriter::new(Vec::new(), 4096, BROTLI_QUALITY, BROTLI_WINDOW)))
            }
            Coding::Zstd => Coder::Zstd(zstd::stream::write::Encoder::new(Vec::new(), ZSTD_LEVEL)?),
        };
        Ok(Encoder { coder, dirty: false })
    }

    /// Compresses `data`; `flush`: push out all that went in (a pause in the origin's
    /// body, so the client is not kept waiting), else what the coder has ready.
    pub(crate) fn push(&mut self, data: &[u8], flush: bool) -> std::io::Result<Bytes> {
        self.dirty |= !data.is_empty();
        let flush = flush && std::mem::take(&mut self.dirty);
        let out = match &mut self.coder {
            Coder::Gzip(e) => write(e, data, flush)?.get_mut(),
            Coder::Br(e) => write(&mut **e, data, flush)?.get_mut(),
            Coder::Zstd(e) => write(e, data, flush)?.get_mut(),
        };
        Ok(Bytes::from(std::mem::take(out)))
    }

    /// The end of the stream: the rest of the coded bytes.
    pub(crate) fn finish(self) -> std::io::Result<Bytes> {
        Ok(Bytes::from(match self.coder {
            Coder::Gzip(e) => e.finish()?,
            Coder::Br(e) => e.into_inner(),
            Coder::Zstd(e) => e.finish()?,
        }))
    }
}

/// Writes `data` into a coder (and flushes it when asked); the coder, to take its output.
fn write<'w, W: Write>(w: &'w mut W, data: &[u8], flush: bool) -> std::io::Result<&'w mut W> {
    w.write_all(data)?;
    if flush {
        w.flush()?;
    }
    Ok(w)
}

#[cfg(test)]
mod tests;
