//! HTTP/2 over TLS with ALPN and a certificate per site by SNI; HTTP/2 with prior knowledge.

use crate::common::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use std::sync::Arc;

struct Certs {
    dir: std::path::PathBuf,
    roots: rustls::RootCertStore,
}

fn make_certs(names: &[&str]) -> Certs {
    let dir = std::env::temp_dir().join(format!("holdfast-tls-{}-{}", std::process::id(), names[0]));
    std::fs::create_dir_all(&dir).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for name in names {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        std::fs::write(dir.join(format!("{name}.crt")), ck.cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), ck.key_pair.serialize_pem()).unwrap();
        roots.add(ck.cert.der().clone()).unwrap();
    }
    Certs { dir, roots }
}

pub(crate) async fn tls_connect(
    addr: std::net::SocketAddr,
    roots: &rustls::RootCertStore,
    sni: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from(sni.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.unwrap()
}

#[tokio::test]
async fn h2_over_tls_with_a_certificate_per_site() {
    let de = echo_origin("de").await;
    let fr = echo_origin("fr").await;
    let certs = make_certs(&["shop.de", "shop.fr"]);
    let d = certs.dir.display();
    let text = config(&[("de", &["shop.de"], de.addr), ("fr", &["shop.fr"], fr.addr)], "")
        .replace("[listen]\n", "[listen]\nhttps = [\"127.0.0.1:0\"]\n")
        .replace(
            "name = \"de\"\n",
            &format!("name = \"de\"\ntls = {{ cert = \"{d}/shop.de.crt\", key = \"{d}/shop.de.key\" }}\n"),
        )
        .replace(
            "name = \"fr\"\n",
            &format!("name = \"fr\"\ntls = {{ cert = \"{d}/shop.fr.crt\", key = \"{d}/shop.fr.key\" }}\n"),
        );
    let gw = gateway(&text).await;
    let addr = gw.https_addrs[0];

    for (sni, want) in [("shop.de", "de"), ("shop.fr", "fr")] {
        // Each name's certificate verifies only for that name, so a handshake success proves SNI selection.
        let tls = tls_connect(addr, &certs.roots, sni, &[b"h2", b"http/1.1"]).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (mut tx, conn) = hyper::client::conn::http2::handshake(executor(), TokioIo::new(tls)).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(format!("https://{sni}/p/1")).body(Empty::<Bytes>::new()).unwrap();
        let resp = tx.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        assert_eq!(resp.headers()["x-origin"], want);
        let body = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        assert!(body.contains(&format!("host: {sni}\n")), "Host from :authority: {body}");
        assert!(body.contains("x-forwarded-proto: https\n"), "{body}");
        assert!(body.contains("via: 2 holdfast\n"), "{body}");
    }

    // HTTP/1.1 over TLS by ALPN; a Host that doesn't match the SNI is misdirected (421).
    let tls = tls_connect(addr, &certs.roots, "shop.de", &[b"http/1.1"]).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let r = tx
        .send_request(http::Request::get("/").header("host", "shop.de").body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.into_body().collect().await;
    let r = tx
        .send_request(http::Request::get("/").header("host", "shop.fr").body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 421);
    let _ = std::fs::remove_dir_all(&certs.dir);
}

#[tokio::test]
async fn h2_prior_knowledge_on_plain_listener() {
    let de = echo_origin("de").await;
    let gw = gateway(&config(&[("de", &["shop.de"], de.addr)], "")).await;
    let tcp = tokio::net::TcpStream::connect(http_addr(&gw)).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http2::handshake(executor(), TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let mut handles = Vec::new();
    for i in 0..20 {
        let req = http::Request::get(format!("http://shop.de/{i}")).body(Empty::<Bytes>::new()).unwrap();
        handles.push(tx.send_request(req));
    }
    for h in handles {
        let resp = h.await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
    }
}

/// A streamed response over HTTP/1.1 with TLS: each piece reaches the client when the
/// origin sends it (TLS records are flushed, not held until the next piece). The origin
/// sends its second piece only after the client has the first.
#[tokio::test]
async fn h1_over_tls_streams_each_piece_as_it_comes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = l.local_addr().unwrap();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).await.unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n").await.unwrap();
        let _ = released.await;
        s.write_all(b"6\r\nsecond\r\n0\r\n\r\n").await.unwrap();
    });
    let certs = make_certs(&["stream.de"]);
    let d = certs.dir.display();
    let text = config(&[("de", &["stream.de"], origin)], "")
        .replace("[listen]\n", "[listen]\nhttps = [\"127.0.0.1:0\"]\n")
        .replace(
            "name = \"de\"\n",
            &format!("name = \"de\"\ntls = {{ cert = \"{d}/stream.de.crt\", key = \"{d}/stream.de.key\" }}\n"),
        );
    let gw = gateway(&text).await;
    let mut tls = tls_connect(gw.https_addrs[0], &certs.roots, "stream.de", &[b"http/1.1"]).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: stream.de\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("first") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut buf))
            .await
            .expect("the first piece must arrive before the origin sends the second")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    release.send(()).unwrap();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read_to_end(&mut got)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.contains("second") && text.ends_with("0\r\n\r\n"), "{text}");
    let _ = std::fs::remove_dir_all(&certs.dir);
}

/// `[site.https] hsts`: Strict-Transport-Security on TLS responses (cache hits and the
/// site's own pages too), never over plain HTTP; the redirect leaves TLS requests alone.
#[tokio::test]
async fn hsts_goes_on_tls_responses_only() {
    let de = echo_origin("de").await;
    let certs = make_certs(&["hsts.shop.de"]);
    let d = certs.dir.display();
    let text = config(&[("de", &["hsts.shop.de"], de.addr)], "")
        .replace("[listen]\n", "[listen]\nhttps = [\"127.0.0.1:0\"]\n")
        .replace(
            "name = \"de\"\n",
            &format!("name = \"de\"\ntls = {{ cert = \"{d}/hsts.shop.de.crt\", key = \"{d}/hsts.shop.de.key\" }}\n"),
        )
        + "[site.https]\nredirect = true\nhsts = \"max-age=31536000; includeSubDomains\"\n";
    let gw = gateway(&text).await;
    let tls = tls_connect(gw.https_addrs[0], &certs.roots, "hsts.shop.de", &[b"http/1.1"]).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    for path in ["/p/1", "/nowhere/slow/1"] {
        let req = http::Request::get(path).header("host", "hsts.shop.de").body(Empty::<Bytes>::new()).unwrap();
        let r = tx.send_request(req).await.unwrap();
        assert_eq!(r.status(), 200, "TLS requests are not redirected");
        assert_eq!(r.headers()["strict-transport-security"], "max-age=31536000; includeSubDomains");
        let _ = r.into_body().collect().await;
    }
    let (status, h, _) = get(http_addr(&gw), "hsts.shop.de", "/p/1").await;
    assert_eq!(status, 308);
    assert!(!h.contains_key("strict-transport-security"));
    let _ = std::fs::remove_dir_all(&certs.dir);
}

/// Certificates given as files are read again on reload: a renewed file is served with no
/// restart, to new handshakes.
#[tokio::test]
async fn a_certificate_file_replaced_is_served_after_a_reload() {
    let de = echo_origin("renewed").await;
    let certs = make_certs(&["renewed.de"]);
    let d = certs.dir.display();
    let text = config(&[("de", &["renewed.de"], de.addr)], "")
        .replace("[listen]\n", "[listen]\nhttps = [\"127.0.0.1:0\"]\n")
        .replace(
            "name = \"de\"\n",
            &format!("name = \"de\"\ntls = {{ cert = \"{d}/renewed.de.crt\", key = \"{d}/renewed.de.key\" }}\n"),
        );
    let path = certs.dir.join("gw.toml");
    std::fs::write(&path, &text).unwrap();
    let gw = holdfast_gateway::Gateway::start(holdfast_gateway::config::load_file(&path).unwrap(), Some(path.clone()))
        .await
        .unwrap();
    let addr = gw.https_addrs[0];
    let leaf = |tls: &tokio_rustls::client::TlsStream<tokio::net::TcpStream>| {
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
    };
    let first = leaf(&tls_connect(addr, &certs.roots, "renewed.de", &[b"http/1.1"]).await);
    // The renewal writes new files; the reload serves them.
    let renewed = rcgen::generate_simple_self_signed(vec!["renewed.de".to_string()]).unwrap();
    std::fs::write(certs.dir.join("renewed.de.crt"), renewed.cert.pem()).unwrap();
    std::fs::write(certs.dir.join("renewed.de.key"), renewed.key_pair.serialize_pem()).unwrap();
    let mut roots = certs.roots.clone();
    roots.add(renewed.cert.der().clone()).unwrap();
    assert_eq!(crate::lifecycle::admin_post(&gw, "/admin/reload", None).await.0, 200);
    let second = leaf(&tls_connect(addr, &roots, "renewed.de", &[b"http/1.1"]).await);
    assert_ne!(first, second);
    assert_eq!(second, renewed.cert.der().to_vec());
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&certs.dir);
}
