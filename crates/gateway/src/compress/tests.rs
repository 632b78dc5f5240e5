use super::*;
use std::io::Read;

fn h(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(header::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    m
}

#[test]
fn the_coding_follows_q_values_then_the_sites_order() {
    let cfg = Compression::default(); // zstd, br, gzip
    let ae = |v: &str| choose(&h(&[("accept-encoding", v)]), &cfg);
    assert_eq!(ae("gzip, br"), Some(Coding::Br), "a tie: the site's order");
    assert_eq!(ae("gzip, deflate, br, zstd"), Some(Coding::Zstd));
    assert_eq!(ae("gzip;q=1.0, br;q=0.5"), Some(Coding::Gzip));
    assert_eq!(ae("br;q=0, gzip"), Some(Coding::Gzip));
    assert_eq!(ae("*;q=0.1, zstd;q=0"), Some(Coding::Br), "* covers the rest");
    assert_eq!(ae("identity"), None);
    assert_eq!(ae("deflate"), None);
    assert_eq!(ae("gzip;q=2"), None, "a malformed weight is ignored");
    assert_eq!(ae("GZIP;Q=0.8"), Some(Coding::Gzip));
    assert_eq!(choose(&h(&[]), &cfg), None);
    assert_eq!(choose(&h(&[("accept-encoding", "gzip"), ("range", "bytes=0-9")]), &cfg), None, "ranges: identity");
    let gzip_only = Compression { algorithms: vec![Coding::Gzip], ..Compression::default() };
    assert_eq!(choose(&h(&[("accept-encoding", "br, zstd")]), &gzip_only), None);
    let off = Compression { enabled: false, ..Compression::default() };
    assert_eq!(choose(&h(&[("accept-encoding", "gzip")]), &off), None);
}

#[test]
fn which_responses_are_compressed() {
    let cfg = Compression::default();
    let ok =
        |status: u16, fields: &[(&str, &str)]| applies(StatusCode::from_u16(status).unwrap(), &h(fields), &cfg, false);
    assert!(ok(200, &[("content-type", "text/html; charset=utf-8")]));
    assert!(ok(200, &[("content-type", "application/json"), ("content-length", "300")]));
    assert!(ok(404, &[("content-type", "text/html")]));
    assert!(!ok(200, &[("content-type", "text/html"), ("content-length", "100")]), "under min_bytes");
    assert!(!ok(200, &[("content-type", "image/png")]));
    assert!(!ok(200, &[("content-type", "textual/html")]));
    assert!(!ok(200, &[("content-type", "text/html"), ("content-encoding", "gzip")]), "already encoded");
    assert!(!ok(206, &[("content-type", "text/html"), ("content-range", "bytes 0-9/100")]));
    assert!(!ok(200, &[("content-type", "text/html"), ("cache-control", "public, no-transform")]));
    assert!(!ok(304, &[("content-type", "text/html")]));
    assert!(!applies(StatusCode::OK, &h(&[("content-type", "text/html")]), &cfg, true), "HEAD");
    assert!(!ok(200, &[]), "no type");
}

#[test]
fn marking_a_response() {
    let mut m = h(&[("etag", "\"v1\""), ("content-length", "999"), ("accept-ranges", "bytes"), ("vary", "Cookie")]);
    mark(&mut m, Coding::Br);
    assert_eq!(m["content-encoding"], "br");
    assert_eq!(m["etag"], "W/\"v1\"");
    assert!(!m.contains_key("content-length") && !m.contains_key("accept-ranges"));
    let vary: Vec<_> = m.get_all("vary").iter().collect();
    assert_eq!(vary, ["Cookie", "Accept-Encoding"]);
    let mut m = h(&[("etag", "W/\"weak\""), ("vary", "accept-encoding")]);
    mark(&mut m, Coding::Gzip);
    assert_eq!(m["etag"], "W/\"weak\"");
    assert_eq!(m.get_all("vary").iter().count(), 1);
}

fn roundtrip(coding: Coding, pieces: &[&[u8]]) -> Vec<u8> {
    let mut e = Encoder::new(coding).unwrap();
    let mut out = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        out.extend_from_slice(&e.push(p, i % 2 == 0).unwrap());
    }
    out.extend_from_slice(&e.finish().unwrap());
    let mut plain = Vec::new();
    match coding {
        Coding::Gzip => flate2::read::GzDecoder::new(&out[..]).read_to_end(&mut plain).unwrap(),
        Coding::Br => brotli::Decompressor::new(&out[..], 4096).read_to_end(&mut plain).unwrap(),
        Coding::Zstd => zstd::stream::read::Decoder::new(&out[..]).unwrap().read_to_end(&mut plain).unwrap(),
    };
    assert!(out.len() < pieces.iter().map(|p| p.len()).sum::<usize>(), "{coding:?} compresses");
    plain
}

#[test]
fn each_encoder_streams_what_its_decoder_reads_back() {
    let page = "<li class=\"product\"><a href=\"/p/1\">Adventskranz</a> 24,99 €</li>\n".repeat(200);
    let pieces: Vec<&[u8]> = page.as_bytes().chunks(1000).collect();
    for coding in [Coding::Gzip, Coding::Br, Coding::Zstd] {
        assert_eq!(roundtrip(coding, &pieces), page.as_bytes(), "{coding:?}");
    }
}
