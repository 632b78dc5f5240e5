//! Compression by Accept-Encoding, kept in the cache: a hit serves the stored compressed
//! body; one variant per coding; ranges and conditional requests stay correct; what is
//! never compressed.

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A shop page of about 9 kB.
fn page() -> String {
    let mut s = String::from("<!doctype html><html lang=\"de\"><body><ul>\n");
    for i in 0..120 {
        s.push_str(&format!("<li class=\"product\"><a href=\"/p/{i}\">Adventskranz Nr. {i}</a> 24,99 €</li>\n"));
    }
    s + "</ul></body></html>\n"
}

/// An origin of cacheable responses: `/page` (HTML, strong ETag), `/nt` (no-transform),
/// `/png`, `/small`, `/pre` (already gzip-encoded by the origin). Counts its requests.
async fn origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let h = h.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    let (ctype, body, extra): (&str, Vec<u8>, Option<(&str, &str)>) = match req.uri().path() {
                        "/nt" => (
                            "text/html",
                            page().into_bytes(),
                            Some(("cache-control", "public, max-age=60, no-transform")),
                        ),
                        "/png" => ("image/png", vec![7u8; 4000], None),
                        "/small" => ("text/html", b"<p>small</p>".to_vec(), None),
                        "/pre" => {
                            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                            std::io::Write::write_all(&mut e, page().as_bytes()).unwrap();
                            ("text/html", e.finish().unwrap(), Some(("content-encoding", "gzip")))
                        }
                        _ => ("text/html; charset=utf-8", page().into_bytes(), None),
                    };
                    let mut resp = http::Response::new(Full::new(Bytes::from(body)));
                    let hd = resp.headers_mut();
                    hd.insert("content-type", ctype.parse().unwrap());
                    hd.insert("cache-control", "public, max-age=60".parse().unwrap());
                    hd.insert("etag", "\"v1\"".parse().unwrap());
                    if let Some((k, v)) = extra {
                        hd.insert(k, v.parse().unwrap());
                    }
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    (addr, hits)
}

async fn fetch(gw: SocketAddr, path: &str, fields: &[(&str, &str)]) -> (u16, http::HeaderMap, Vec<u8>) {
    let tcp = tokio::net::TcpStream::connect(gw).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(path).header("host", "shop.de");
    for (k, v) in fields {
        req = req.header(*k, *v);
    }
    let resp = tx.send_request(req.body(Full::new(Bytes::new())).unwrap()).await.unwrap();
    let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
    (status, headers, resp.into_body().collect().await.unwrap().to_bytes().to_vec())
}

fn decode(coding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(body).read_to_end(&mut out).unwrap(),
        "br" => brotli::Decompressor::new(body, 4096).read_to_end(&mut out).unwrap(),
        "zstd" => zstd::stream::read::Decoder::new(body).unwrap().read_to_end(&mut out).unwrap(),
        other => panic!("coding {other}"),
    };
    out
}

#[tokio::test]
async fn a_compressed_variant_per_coding_is_stored_and_a_hit_serves_it_as_it_is() {
    let (o, hits) = origin().await;
    let gw = gateway(&config(&[("s", &["shop.de"], o)], "")).await;
    let at = http_addr(&gw);
    let plain = page().into_bytes();
    for (offer, coding) in
        [("gzip, br", "br"), ("gzip", "gzip"), ("br;q=0.5, zstd", "zstd"), ("gzip;q=0, br;q=0.9, zstd;q=0.8", "br")]
    {
        let (status, h, body) = fetch(at, "/page", &[("accept-encoding", offer)]).await;
        assert_eq!(status, 200);
        assert_eq!(h["content-encoding"], coding, "{offer}");
        assert!(h.get_all("vary").iter().any(|v| v.to_str().unwrap().eq_ignore_ascii_case("accept-encoding")));
        assert_eq!(h["etag"], "W/\"v1\"", "a strong tag is weakened");
        assert!(body.len() * 3 < plain.len(), "{coding}: {} of {} bytes", body.len(), plain.len());
        assert_eq!(decode(coding, &body), plain, "{coding}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3, "one fetch per coding, however the list is spelled");
    // Hits: the stored bytes, no new fetch.
    for _ in 0..5 {
        let (_, h, body) = fetch(at, "/page", &[("accept-encoding", "br, gzip")]).await;
        assert_eq!(h["content-encoding"], "br");
        assert!(h["cache-status"].to_str().unwrap().contains("hit"), "{h:?}");
        assert_eq!(decode("br", &body), plain);
    }
    // No Accept-Encoding: the identity variant.
    let (_, h, body) = fetch(at, "/page", &[]).await;
    assert!(!h.contains_key("content-encoding"));
    assert_eq!(h["etag"], "\"v1\"");
    assert_eq!(body, plain);
    assert_eq!(hits.load(Ordering::SeqCst), 4);

    // A conditional request on the compressed variant: its weak tag matches.
    let (status, h, body) = fetch(at, "/page", &[("accept-encoding", "br"), ("if-none-match", "W/\"v1\"")]).await;
    assert_eq!((status, body.len()), (304, 0));
    assert_eq!(h["etag"], "W/\"v1\"");
    // A range is a range of the identity body, whatever the client accepts.
    let (status, h, body) = fetch(at, "/page", &[("accept-encoding", "gzip, br"), ("range", "bytes=10-29")]).await;
    assert_eq!(status, 206);
    assert!(!h.contains_key("content-encoding"));
    assert_eq!(body, &plain[10..30]);
    assert_eq!(hits.load(Ordering::SeqCst), 4, "served from the stored identity variant");
}

/// The identity form of a compressible page, stored first, varies by Accept-Encoding too:
/// it never answers a client that asked for a coding.
#[tokio::test]
async fn an_identity_variant_stored_first_does_not_answer_a_request_for_a_coding() {
    let (o, hits) = origin().await;
    let gw = gateway(&config(&[("s", &["shop.de"], o)], "")).await;
    let at = http_addr(&gw);
    let (_, h, body) = fetch(at, "/page?first=identity", &[]).await;
    assert!(!h.contains_key("content-encoding"));
    assert!(h.get_all("vary").iter().any(|v| v.to_str().unwrap().eq_ignore_ascii_case("accept-encoding")), "{h:?}");
    assert_eq!(body, page().into_bytes());
    let (_, h, body) = fetch(at, "/page?first=identity", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(h["content-encoding"], "br");
    assert_eq!(decode("br", &body), page().into_bytes());
    let (_, h, _) = fetch(at, "/page?first=identity", &[]).await;
    assert!(h["cache-status"].to_str().unwrap().contains("hit") && !h.contains_key("content-encoding"));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn what_is_never_compressed() {
    let (o, _) = origin().await;
    let gw = gateway(&config(&[("s", &["shop.de"], o)], "")).await;
    let at = http_addr(&gw);
    let ae = [("accept-encoding", "gzip, br, zstd")];
    for path in ["/nt", "/png", "/small"] {
        let (status, h, _) = fetch(at, path, &ae).await;
        assert_eq!(status, 200);
        assert!(!h.contains_key("content-encoding"), "{path}: {h:?}");
        assert_eq!(h["etag"], "\"v1\"", "{path}");
    }
    // Already encoded by the origin: passed on as it is, not coded twice.
    let (_, h, body) = fetch(at, "/pre", &ae).await;
    assert_eq!(h["content-encoding"], "gzip");
    assert_eq!(decode("gzip", &body), page().into_bytes());
    // With the cache off: compressed as it streams to the client.
    let gw2 =
        gateway(&config(&[("s", &["shop.de"], o)], "").replace("language", "cache = { enabled = false }\nlanguage"))
            .await;
    let (_, h, body) = fetch(http_addr(&gw2), "/page", &ae).await;
    assert_eq!(h["content-encoding"], "zstd", "uncached, compressed as it streams");
    assert_eq!(decode("zstd", &body), page().into_bytes());
    // Off for a site: nothing changes, the client's Accept-Encoding goes to the origin.
    let off = config(&[("s", &["shop.de"], o)], "") + "[site.compression]\nenabled = false\n";
    let gw3 = gateway(&off).await;
    let (_, h, _) = fetch(http_addr(&gw3), "/page", &ae).await;
    assert!(!h.contains_key("content-encoding"));
}
