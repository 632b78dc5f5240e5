//! The simulated shop over real sockets.

// A test's helpers may unwrap and panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use holdfast_shop::{spawn, ShopConfig};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn request(addr: std::net::SocketAddr, raw: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Polls `f` until it holds, for at most 5 s.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

fn get(addr: std::net::SocketAddr, path: &str) -> String {
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: shop.de\r\nConnection: close\r\n\r\n"))
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_a_localized_shop_with_realistic_caching() {
    let (addr, _) = spawn(ShopConfig::new("shop-de", "de", "eu-west"), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let home = get(addr, "/");
        assert!(home.starts_with("HTTP/1.1 200"), "{home}");
        assert!(home.contains("x-datacenter: eu-west"));
        assert!(home.contains("cache-control: public, max-age=30"));
        assert!(home.contains("Weihnachtsgeschenke"), "{home}");
        let p = get(addr, "/p/1");
        assert!(p.contains("Holzeisenbahn") && p.contains("/img/1.svg") && p.contains("39,99 €"), "{p}");
        assert!(get(addr, "/img/1.svg").contains("image/svg+xml"));
        assert!(get(addr, "/static/shop.css").contains("text/css"));
        assert!(get(addr, "/c/toys").contains("Teddybär"));
        assert!(get(addr, "/search?q=kalender").contains("Adventskalender"));
        assert!(get(addr, "/cart").contains("cache-control: private, no-store"));
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
        assert!(get(addr, "/healthz").starts_with("HTTP/1.1 200"));
        let added =
            request(addr, "POST /cart HTTP/1.1\r\nHost: shop.de\r\nContent-Length: 4\r\nConnection: close\r\n\r\nid=2");
        assert!(added.starts_with("HTTP/1.1 303") && added.contains("set-cookie: cart=2;"), "{added}");
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn checkout_records_orders_and_honours_idempotency_keys() {
    let (addr, shop) =
        spawn(ShopConfig::new("shop-it", "it", "eu-central"), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let co = |key: &str| {
            request(addr, &format!("POST /checkout HTTP/1.1\r\nHost: shop.it\r\nCookie: cart=1.4\r\nIdempotency-Key: {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
        };
        let first = co("k1");
        assert!(first.contains("x-order-id: eu-central-1") && first.contains("cache-control: no-store"), "{first}");
        let again = co("k1");
        assert!(again.contains("x-order-id: eu-central-1") && again.contains("già stato"), "{again}");
        assert!(co("k2").contains("x-order-id: eu-central-2"));
        let json = get(addr, "/orders.json");
        assert!(json.contains("\"placed\":2") && json.contains("\"repeated_keys\":1"), "{json}");
    })
    .await
    .unwrap();
    assert_eq!(shop.orders.placed(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_queues_then_refuses_with_503() {
    let mut cfg = ShopConfig::new("shop-de", "de", "eu-west");
    cfg.capacity = Some(5);
    cfg.queue_limit = Duration::from_millis(300);
    let (addr, _) = spawn(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let results = tokio::task::spawn_blocking(move || {
        let handles: Vec<_> = (0..10).map(|_| std::thread::spawn(move || get(addr, "/"))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let ok = results.iter().filter(|r| r.starts_with("HTTP/1.1 200")).count();
    let busy: Vec<_> = results.iter().filter(|r| r.starts_with("HTTP/1.1 503")).collect();
    // 5 rps with 300 ms of queue: the first request and the two queued within 300 ms pass.
    assert!((2..=4).contains(&ok), "{ok} served");
    assert_eq!(ok + busy.len(), 10);
    assert!(busy.iter().all(|r| r.contains("retry-after: 1")));
}

mod faults {
    use super::eventually;
    use holdfast_shop::{spawn, Fault, ShopConfig};
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    fn try_get(addr: std::net::SocketAddr, timeout: Duration) -> Result<String, std::io::Error> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: shop.de\r\nConnection: close\r\n\r\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn refused_blackhole_slow_errors_and_recovery() {
        let (addr, shop) =
            spawn(ShopConfig::new("shop-de", "de", "eu-west"), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let faults = shop.faults.clone();
        tokio::task::spawn_blocking(move || {
            assert!(try_get(addr, Duration::from_secs(2)).unwrap().starts_with("HTTP/1.1 200"));

            // A keep-alive connection opened before the black hole.
            let mut before = TcpStream::connect(addr).unwrap();
            before.set_read_timeout(Some(Duration::from_millis(800))).unwrap();

            // Takes effect at once: each connection and request reads the switch.
            faults.set(Fault::Blackhole);
            // New connections are accepted (TCP handshake completes) but never answered.
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).expect("black hole still accepts");
            s.set_read_timeout(Some(Duration::from_millis(800))).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: shop.de\r\n\r\n").unwrap();
            let mut buf = [0u8; 64];
            let err = s.read(&mut buf).expect_err("a black hole never answers");
            assert!(matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{err}");
            before.write_all(b"GET / HTTP/1.1\r\nHost: shop.de\r\n\r\n").unwrap();
            assert!(before.read(&mut buf).is_err(), "requests on older connections hang too");

            // The listener closes (its task sees the switch): connects are refused.
            faults.set(Fault::Refused);
            let refused = |addr| {
                matches!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused)
            };
            assert!(eventually(|| refused(addr)), "refused");

            // The listener opens again.
            faults.set(Fault::Slow(Duration::from_millis(300)));
            assert!(eventually(|| !refused(addr)), "listening again");
            let t = Instant::now();
            assert!(try_get(addr, Duration::from_secs(3)).unwrap().starts_with("HTTP/1.1 200"));
            assert!(t.elapsed() >= Duration::from_millis(300));

            faults.set(Fault::Errors(0.5));
            let errors =
                (0..200).filter(|_| try_get(addr, Duration::from_secs(2)).unwrap().starts_with("HTTP/1.1 500")).count();
            assert!((60..=140).contains(&errors), "about half of 200 fail: {errors}");

            faults.set(Fault::None);
            assert!(try_get(addr, Duration::from_secs(2)).unwrap().starts_with("HTTP/1.1 200"));
        })
        .await
        .unwrap();
    }
}

/// A shop that serves TLS: plain HTTP and TLS on one port; with the expired-certificate
/// fault, a new handshake sees a certificate past its end and a plain client is refused,
/// while a TLS connection opened before goes on.
#[tokio::test]
async fn tls_beside_plain_http_and_an_expired_certificate() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca.self_signed(&ca_key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = |expired: bool| {
        let mut p = rcgen::CertificateParams::new(vec!["origin.test".to_string()]).unwrap();
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let cfg = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der)
            .unwrap();
        Arc::new(cfg)
    };
    let mut cfg = ShopConfig::new("shop-de", "de", "eu-west");
    cfg.tls = Some(holdfast_shop::ShopTls { valid: server(false), expired: server(true) });
    let (addr, shop) = spawn(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der().clone()).unwrap();
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let tls_connect = || async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("origin.test").unwrap();
        tokio_rustls::TlsConnector::from(client.clone()).connect(name, tcp).await
    };
    async fn ask<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(s: &mut S) -> String {
        s.write_all(b"GET / HTTP/1.1\r\nHost: shop.de\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 65536];
        let n = s.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    }
    let mut open = tls_connect().await.expect("a valid certificate");
    assert!(ask(&mut open).await.starts_with("HTTP/1.1 200"));
    let plain = tokio::task::spawn_blocking(move || get(addr, "/")).await.unwrap();
    assert!(plain.starts_with("HTTP/1.1 200"), "plain HTTP on the same port");

    shop.faults.set(holdfast_shop::Fault::ExpiredCertificate);
    let err = tls_connect().await.expect_err("an expired certificate");
    assert!(err.to_string().contains("expired"), "{err}");
    let plain = tokio::task::spawn_blocking(move || get(addr, "/")).await.unwrap();
    assert!(plain.is_empty(), "a plain client is refused: {plain}");
    assert!(ask(&mut open).await.starts_with("HTTP/1.1 200"), "an open TLS connection goes on");
}
