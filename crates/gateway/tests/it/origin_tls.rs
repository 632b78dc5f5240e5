//! TLS to origins, against real rustls origins: a private CA with two intermediates,
//! sessions resumed; a wrong name, an expired and a self-signed certificate refused and
//! counted as TLS failures with their reasons; mTLS with and without a client certificate;
//! a client certificate rotated on reload; a failover from a data center whose certificate
//! expired, with no failed GET; config errors at their key.

use crate::common::*;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A certificate with its key, and the issuer data to sign others with.
struct Issued {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Issued {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    Issued { cert: p.self_signed(&key).unwrap(), key }
}

fn intermediate(name: &str, by: &Issued) -> Issued {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    Issued { cert: p.signed_by(&key, &by.cert, &by.key).unwrap(), key }
}

/// A leaf for `names`, valid now unless `expired` (it ended in 2021).
fn leaf(names: &[&str], by: &Issued, expired: bool) -> Issued {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, names[0]);
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    Issued { cert: p.signed_by(&key, &by.cert, &by.key).unwrap(), key }
}

/// A private PKI: root, two intermediates, and the files of each.
struct Pki {
    dir: PathBuf,
    root: Issued,
    int2: Issued,
    /// The chain an origin sends above its leaf: int2, then int1.
    above_leaf: Vec<rustls_pki_types::CertificateDer<'static>>,
}

fn pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("holdfast-otls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = ca("holdfast test root");
    let int1 = intermediate("holdfast test intermediate 1", &root);
    let int2 = intermediate("holdfast test intermediate 2", &int1);
    std::fs::write(dir.join("root.pem"), root.cert.pem()).unwrap();
    let above_leaf = vec![int2.cert.der().clone(), int1.cert.der().clone()];
    Pki { dir, root, int2, above_leaf }
}

impl Pki {
    fn path(&self, f: &str) -> String {
        self.dir.join(f).display().to_string()
    }

    /// A leaf's chain as an origin sends it (leaf, int2, int1).
    fn chain(&self, leaf: &Issued) -> Vec<rustls_pki_types::CertificateDer<'static>> {
        let mut c = vec![leaf.cert.der().clone()];
        c.extend(self.above_leaf.iter().cloned());
        c
    }

    /// Writes a client certificate signed by the root as `name.crt` / `name.key`.
    fn client(&self, name: &str) -> Issued {
        let c = leaf(&[name], &self.root, false);
        std::fs::write(self.dir.join(format!("{name}.crt")), c.cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{name}.key")), c.key.serialize_pem()).unwrap();
        c
    }
}

fn server_config(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: &KeyPair,
    client_roots: Option<&Issued>,
) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b =
        rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().unwrap();
    let b = match client_roots {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.cert.der().clone()).unwrap();
            let v =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().unwrap();
            b.with_client_cert_verifier(v)
        }
        None => b.with_no_client_auth(),
    };
    let key = rustls_pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    Arc::new(b.with_single_cert(chain, key).unwrap())
}

/// A TLS origin: answers `200 name` over HTTP/1.1; its certificate can be changed (which
/// closes its open connections, as a restart with a new certificate would).
struct TlsOrigin {
    addr: std::net::SocketAddr,
    hits: Arc<AtomicUsize>,
    /// Handshakes completed, and the client certificates seen (DER), in order.
    handshakes: Arc<AtomicUsize>,
    client_certs: Arc<Mutex<Vec<Vec<u8>>>>,
    config: Arc<Mutex<Arc<rustls::ServerConfig>>>,
    conns: Arc<Mutex<tokio::task::JoinSet<()>>>,
}

impl TlsOrigin {
    async fn start(name: &'static str, config: Arc<rustls::ServerConfig>) -> TlsOrigin {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let o = TlsOrigin {
            addr,
            hits: Default::default(),
            handshakes: Default::default(),
            client_certs: Default::default(),
            config: Arc::new(Mutex::new(config)),
            conns: Arc::new(Mutex::new(tokio::task::JoinSet::new())),
        };
        let (hits, hs, seen, cfg, conns) =
            (o.hits.clone(), o.handshakes.clone(), o.client_certs.clone(), o.config.clone(), o.conns.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = l.accept().await else { continue };
                let acceptor = tokio_rustls::TlsAcceptor::from(cfg.lock().unwrap().clone());
                let (hits, hs, seen) = (hits.clone(), hs.clone(), seen.clone());
                conns.lock().unwrap().spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    hs.fetch_add(1, Ordering::SeqCst);
                    if let Some(c) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                        seen.lock().unwrap().push(c.to_vec());
                    }
                    let svc = service_fn(move |req: http::Request<Incoming>| {
                        hits.fetch_add(1, Ordering::SeqCst);
                        async move {
                            // `/slow` keeps its connection busy a while (so others open beside it).
                            if req.uri().path() == "/slow" {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                            }
                            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(name))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
                });
            }
        });
        o
    }

    /// A new certificate; open connections are closed.
    fn set_config(&self, config: Arc<rustls::ServerConfig>) {
        *self.config.lock().unwrap() = config;
        self.conns.lock().unwrap().abort_all();
    }
}

/// A site `s` on shop.de whose pools are `(datacenter, origin, tls table)`.
fn tls_config(pools: &[(&str, std::net::SocketAddr, String)], extra: &str) -> String {
    let mut s = format!(
        "[listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n{extra}\n[[datacenter]]\nname = \"dc1\"\n[[datacenter]]\nname = \"dc2\"\n\
         [[site]]\nname = \"s\"\nhosts = [\"shop.de\"]\nlanguage = \"de\"\n"
    );
    for (dc, origin, tls) in pools {
        s.push_str(&format!(
            "[[site.pool]]\ndatacenter = \"{dc}\"\norigins = [\"{origin}\"]\n[site.pool.tls]\n{tls}\n"
        ));
    }
    s
}

fn no_checks(text: String) -> String {
    text.replace("language = \"de\"\n", "language = \"de\"\nhealth = { enabled = false }\n")
}

async fn origin_tls_status(gw: &holdfast_gateway::Gateway, pool: usize) -> serde_json::Value {
    status_json(gw).await["sites"][0]["pools"][pool]["origins"][0]["tls"].clone()
}

#[tokio::test]
async fn a_chain_with_two_intermediates_verifies_and_sessions_resume() {
    let pki = pki("chain");
    let l = leaf(&["origin.shop.test"], &pki.int2, false);
    let origin = TlsOrigin::start("dc1", server_config(pki.chain(&l), &l.key, None)).await;
    let tls = format!("server_name = \"origin.shop.test\"\nca = \"{}\"", pki.path("root.pem"));
    let gw = gateway(&no_checks(tls_config(&[("dc1", origin.addr, tls)], ""))).await;
    let addr = http_addr(&gw);
    let (status, _, body) = get(addr, "shop.de", "/").await;
    assert_eq!((status, body.as_str()), (200, "dc1"));
    // Keep-alive: more requests, one after another, on the same origin connection.
    for _ in 0..5 {
        assert_eq!(get(addr, "shop.de", "/").await.0, 200);
    }
    assert_eq!(origin.handshakes.load(Ordering::SeqCst), 1, "the origin connection is pooled");
    // Requests at once need more connections: those resume the first one's session.
    let at_once: Vec<_> = (0..4).map(|_| tokio::spawn(get(addr, "shop.de", "/slow"))).collect();
    for r in at_once {
        assert_eq!(r.await.unwrap().0, 200);
    }
    let t = origin_tls_status(&gw, 0).await;
    assert_eq!(t["server_name"], "origin.shop.test");
    assert_eq!(t["verify"], true);
    let (handshakes, resumed) = (t["handshakes"].as_u64().unwrap(), t["resumed"].as_u64().unwrap());
    assert_eq!(handshakes as usize, origin.handshakes.load(Ordering::SeqCst));
    assert!(handshakes >= 2, "{t}");
    assert!(resumed >= 1, "new connections resumed the first one's session: {t}");
    assert!(status_json(&gw).await["warnings"].as_array().unwrap().is_empty());
}

/// Without `server_name`, an origin given by IP address is verified against the IP
/// addresses its certificate names; an origin that speaks TLS 1.2 only is served too.
#[tokio::test]
async fn tls_1_2_and_an_origin_verified_by_its_ip_address() {
    let pki = pki("tls12");
    let l = leaf(&["127.0.0.1"], &pki.int2, false);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls_pki_types::PrivateKeyDer::try_from(l.key.serialize_der()).unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain(&l), key)
        .unwrap();
    let origin = TlsOrigin::start("tls12", Arc::new(cfg)).await;
    let tls = format!("ca = \"{}\"", pki.path("root.pem"));
    let gw = gateway(&no_checks(tls_config(&[("dc1", origin.addr, tls)], ""))).await;
    let (status, _, body) = get(http_addr(&gw), "shop.de", "/").await;
    assert_eq!((status, body.as_str()), (200, "tls12"));
    assert_eq!(origin_tls_status(&gw, 0).await["server_name"], "127.0.0.1");
}

#[tokio::test]
async fn wrong_name_expired_and_self_signed_certificates_are_refused_as_tls_failures() {
    let pki = pki("bad");
    let wrong = leaf(&["other.shop.test"], &pki.int2, false);
    let expired = leaf(&["origin.shop.test"], &pki.int2, true);
    let selfsigned = {
        let ck = rcgen::generate_simple_self_signed(vec!["origin.shop.test".to_string()]).unwrap();
        Issued { cert: ck.cert, key: ck.key_pair }
    };
    let cases = [
        (server_config(pki.chain(&wrong), &wrong.key, None), "name_mismatch"),
        (server_config(pki.chain(&expired), &expired.key, None), "expired"),
        (server_config(vec![selfsigned.cert.der().clone()], &selfsigned.key, None), "unknown_issuer"),
    ];
    for (cfg, reason) in cases {
        let origin = TlsOrigin::start("bad", cfg).await;
        let tls = format!("server_name = \"origin.shop.test\"\nca = \"{}\"", pki.path("root.pem"));
        let gw = gateway(&no_checks(tls_config(&[("dc1", origin.addr, tls)], ""))).await;
        let (status, _, _) = get(http_addr(&gw), "shop.de", "/").await;
        assert!(status >= 500, "{reason}: {status}");
        assert_eq!(origin.hits.load(Ordering::SeqCst), 0, "{reason}: nothing reached the origin");
        let t = origin_tls_status(&gw, 0).await;
        assert_eq!(t["last_failure"]["reason"], reason, "{t}");
        let o = &status_json(&gw).await["sites"][0]["pools"][0]["origins"][0];
        assert_eq!(o["last_error"]["kind"], "tls", "counted as TLS, not as a connect error: {o}");
        if reason == "expired" {
            assert_eq!(t["last_failure"]["not_after"], "2021-01-01T00:00:00.000Z", "{t}");
        }
        let (_, _, metrics) = get(gw.admin_addr.unwrap(), "admin", "/metrics").await;
        assert!(metrics.lines().any(|l| l.contains("kind=\"tls\"") && !l.ends_with(" 0")), "{reason}");
        gw.stop().await;
    }
}

#[tokio::test]
async fn verify_false_accepts_any_certificate_with_a_warning() {
    let ck = rcgen::generate_simple_self_signed(vec!["whatever.test".to_string()]).unwrap();
    let cfg = server_config(vec![ck.cert.der().clone()], &ck.key_pair, None);
    let origin = TlsOrigin::start("lab", cfg).await;
    let gw = gateway(&no_checks(tls_config(&[("dc1", origin.addr, "verify = false".into())], ""))).await;
    let (status, _, body) = get(http_addr(&gw), "shop.de", "/").await;
    assert_eq!((status, body.as_str()), (200, "lab"));
    let warnings = status_json(&gw).await["warnings"].clone();
    assert!(warnings[0].as_str().unwrap().contains("verify = false"), "{warnings}");
}

#[tokio::test]
async fn mtls_with_and_without_the_client_certificate() {
    let pki = pki("mtls");
    let l = leaf(&["origin.shop.test"], &pki.int2, false);
    let origin = TlsOrigin::start("m", server_config(pki.chain(&l), &l.key, Some(&pki.root))).await;
    pki.client("edge");
    let base = format!("server_name = \"origin.shop.test\"\nca = \"{}\"", pki.path("root.pem"));
    let with = format!("{base}\nclient_cert = \"{}\"\nclient_key = \"{}\"", pki.path("edge.crt"), pki.path("edge.key"));
    let gw = gateway(&no_checks(tls_config(&[("dc1", origin.addr, with)], ""))).await;
    let (status, _, body) = get(http_addr(&gw), "shop.de", "/").await;
    assert_eq!((status, body.as_str()), (200, "m"));
    gw.stop().await;

    let gw = gateway(&no_checks(tls_config(&[("dc1", origin.addr, base)], ""))).await;
    let (status, _, _) = get(http_addr(&gw), "shop.de", "/").await;
    assert!(status >= 500, "{status}");
    assert_eq!(origin.hits.load(Ordering::SeqCst), 1, "only the request with the certificate got through");
    let t = origin_tls_status(&gw, 0).await;
    assert_eq!(t["last_failure"]["reason"], "refused", "{t}");
}

#[tokio::test]
async fn a_client_certificate_rotated_on_reload() {
    let pki = pki("rotate");
    let l = leaf(&["origin.shop.test"], &pki.int2, false);
    let origin = TlsOrigin::start("r", server_config(pki.chain(&l), &l.key, Some(&pki.root))).await;
    let first = pki.client("edge");
    let tls = format!(
        "server_name = \"origin.shop.test\"\nca = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"",
        pki.path("root.pem"),
        pki.path("edge.crt"),
        pki.path("edge.key")
    );
    let path = pki.dir.join("holdfast.toml");
    std::fs::write(&path, no_checks(tls_config(&[("dc1", origin.addr, tls)], ""))).unwrap();
    let file = holdfast_gateway::config::load_file(&path).unwrap();
    let gw = holdfast_gateway::Gateway::start(file, Some(path.clone())).await.unwrap();
    assert_eq!(get(http_addr(&gw), "shop.de", "/").await.0, 200);
    assert_eq!(origin.client_certs.lock().unwrap().last().unwrap(), first.cert.der().as_ref());

    let second = pki.client("edge"); // the same files, a new certificate and key
    let req = http::Request::post("/admin/reload").header("host", "admin").body(Full::new(Bytes::new())).unwrap();
    let (status, _, body) = send(gw.admin_addr.unwrap(), req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(get(http_addr(&gw), "shop.de", "/").await.0, 200);
    assert_eq!(
        origin.client_certs.lock().unwrap().last().unwrap(),
        second.cert.der().as_ref(),
        "new connections show the new certificate"
    );
}

#[tokio::test]
async fn a_data_center_whose_certificate_expired_fails_over_with_no_failed_get() {
    let pki = pki("failover");
    let good = leaf(&["origin.shop.test"], &pki.int2, false);
    let expired = leaf(&["origin.shop.test"], &pki.int2, true);
    let dc1 = TlsOrigin::start("dc1", server_config(pki.chain(&good), &good.key, None)).await;
    let dc2 = TlsOrigin::start("dc2", server_config(pki.chain(&good), &good.key, None)).await;
    let tls = format!("server_name = \"origin.shop.test\"\nca = \"{}\"", pki.path("root.pem"));
    let health = "health = { interval = \"100ms\", timeout = \"500ms\", unhealthy_after = 2, healthy_after = 2 }\n";
    let text = tls_config(&[("dc1", dc1.addr, tls.clone()), ("dc2", dc2.addr, tls)], "")
        .replace("[listen]\n", "[listen]\nstatus = \"127.0.0.1:0\"\n")
        .replace("language = \"de\"\n", &format!("language = \"de\"\n{health}"));
    let gw = gateway(&text).await;
    let addr = http_addr(&gw);
    assert_eq!(get(addr, "shop.de", "/").await.2, "dc1");
    // Mid-evening, dc1 comes back from a restart with an expired certificate.
    dc1.set_config(server_config(pki.chain(&expired), &expired.key, None));
    let mut failed = 0;
    let mut from_dc2 = 0;
    for _ in 0..200 {
        let (status, _, body) = get(addr, "shop.de", "/").await;
        failed += usize::from(status != 200);
        from_dc2 += usize::from(body == "dc2");
        if from_dc2 >= 20 && status_json(&gw).await["sites"][0]["pools"][0]["available"] == 0 {
            break;
        }
    }
    assert_eq!(failed, 0, "no GET failed");
    assert!(from_dc2 >= 20, "dc2 took over");
    let tls_failure = || async {
        let (_, _, body) = get(gw.admin_addr.unwrap(), "admin", "/incidents.json").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["incidents"].as_array().unwrap().iter().find(|i| i["facts"]["mode"] == "tls").cloned()
    };
    assert!(eventually(Duration::from_secs(10), || async { tls_failure().await.is_some() }).await);
    let i = tls_failure().await.unwrap();
    assert_eq!(i["kind"], "datacenter_failure", "{i}");
    assert_eq!(i["datacenters"][0], "dc1", "{i}");
    assert_eq!(i["facts"]["tls"]["reason"], "expired", "{i}");
    let details: Vec<&str> = i["evidence"].as_array().unwrap().iter().filter_map(|e| e["detail"].as_str()).collect();
    assert!(details.contains(&"certificate expired at 2021-01-01T00:00:00Z"), "{i}");
    // The public status page says why, in each of its languages.
    let status = gw.status_addr.unwrap();
    for (lang, words) in [
        ("de", "sein Zertifikat ist am 2021-01-01 00:00 UTC abgelaufen"),
        ("en", "its certificate expired at 2021-01-01 00:00 UTC"),
        ("fr", "son certificat a expiré le 2021-01-01 00:00 UTC"),
        ("it", "il suo certificato è scaduto il 2021-01-01 00:00 UTC"),
    ] {
        let (code, _, page) = get(status, "status", &format!("/api/v2/incidents.json?lang={lang}")).await;
        assert_eq!(code, 200);
        assert!(page.contains(words), "{lang}: {page}");
        assert!(!page.contains("127.0.0.1"), "origins stay off the public page");
    }
}

/// `holdfast check`'s errors: file, line and column of the key, and what was wrong.
#[tokio::test]
async fn bad_tls_files_are_config_errors_at_their_key() {
    let pki = pki("errors");
    std::fs::write(
        pki.dir.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(pki.dir.join("empty.pem"), "nothing here\n").unwrap();
    pki.client("a");
    pki.client("b");
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let cases = [
        (format!("ca = \"{}\"", pki.path("missing.pem")), "ca =", "cannot read"),
        (format!("ca = \"{}\"", pki.path("garbage.pem")), "ca =", "invalid PEM"),
        (format!("ca = \"{}\"", pki.path("empty.pem")), "ca =", "no certificate found"),
        (
            format!("client_cert = \"{}\"\nclient_key = \"{}\"", pki.path("a.crt"), pki.path("b.key")),
            "client_key =",
            "does not match",
        ),
        (format!("client_cert = \"{}\"", pki.path("a.crt")), "client_cert =", "needs client_key"),
        ("server_name = \"not a name!\"".to_string(), "server_name =", "server_name"),
    ];
    for (tls, key, want) in cases {
        let text = tls_config(&[("dc1", addr, tls.clone())], "");
        let file = holdfast_gateway::config::parse_str("shop.toml", &text).unwrap();
        let err = holdfast_gateway::check(&file).expect_err(&tls);
        let line = text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
        assert!(err.message.contains(want), "{tls}: {err}");
        assert_eq!((err.file.as_str(), err.line), ("shop.toml", line), "{tls}: {err}");
        assert!(err.column > 0, "{err}");
        assert!(holdfast_gateway::Gateway::start(file, None).await.is_err(), "{tls}: refused at start too");
    }
}
