//! Certificates by ACME against a real ACME server: Debian's Pebble, with
//! pebble-challtestsrv as its DNS (scripts/test installs both). A site gets a certificate by
//! HTTP-01 and serves it; with a renewal window that leaves its certificate due at once, it
//! is renewed and the new one served; an order the server refuses (its host resolves where
//! holdfast does not listen) is an event, retried with backoff, and the site is served
//! nothing false meanwhile. A certificate from files that expires within seven days is an
//! operator alert in /incidents.json.

use crate::common::*;
use holdfast_gateway::Gateway;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A child process, killed (by its PID) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(cmd: &mut Command, what: &str) -> Killed {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({e}); scripts/test installs it (apt-get install pebble)"));
    Killed(child)
}

async fn wait_listening(addr: SocketAddr) {
    let up = eventually(Duration::from_secs(20), || async move { tokio::net::TcpStream::connect(addr).await.is_ok() });
    assert!(up.await, "{addr} never listened");
}

/// Pebble and its DNS on free ports; Pebble validates HTTP-01 on `http_port` and
/// TLS-ALPN-01 on `tls_port`.
struct Pebble {
    _dns: Killed,
    _pebble: Killed,
    directory: String,
    /// The CA file for Pebble's own listener (holdfast's `[acme] ca`).
    ca: std::path::PathBuf,
    roots: rustls::RootCertStore,
    challtest: SocketAddr,
}

async fn pebble(http_port: u16, tls_port: u16, dir: &std::path::Path) -> Pebble {
    std::fs::create_dir_all(dir).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let (cert, key) = (dir.join("pebble.crt"), dir.join("pebble.key"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let (dns, challtest, listen, mgmt) = (free_port(), free_port(), free_port(), free_port());
    let dns_srv = spawn(
        Command::new("pebble-challtestsrv").args([
            "-defaultIPv4",
            "127.0.0.1",
            "-defaultIPv6",
            "",
            "-dns01",
            &format!("127.0.0.1:{dns}"),
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            &format!("127.0.0.1:{challtest}"),
        ]),
        "pebble-challtestsrv",
    );
    let config = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{listen}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt}"),
        "certificate": cert, "privateKey": key,
        "httpPort": http_port, "tlsPort": tls_port,
        "ocspResponderURL": "", "externalAccountBindingRequired": false,
    }});
    let cfg = dir.join("pebble.json");
    std::fs::write(&cfg, config.to_string()).unwrap();
    let pebble = spawn(
        Command::new("pebble")
            .arg("-config")
            .arg(&cfg)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0"),
        "pebble",
    );
    let challtest = SocketAddr::from(([127, 0, 0, 1], challtest));
    wait_listening(challtest).await;
    wait_listening(SocketAddr::from(([127, 0, 0, 1], listen))).await;
    wait_listening(SocketAddr::from(([127, 0, 0, 1], mgmt))).await;
    // The roots Pebble issues under, from its management interface.
    let mut own = rustls::RootCertStore::empty();
    own.add(ck.cert.der().clone()).unwrap();
    let mut tls = crate::tls_h2::tls_connect(SocketAddr::from(([127, 0, 0, 1], mgmt)), &own, "localhost", &[]).await;
    tls.write_all(b"GET /roots/0 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut text = Vec::new();
    let _ = tls.read_to_end(&mut text).await;
    let text = String::from_utf8_lossy(&text);
    let pem = text.split_once("\r\n\r\n").unwrap().1;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile_certs(pem) {
        roots.add(c).unwrap();
    }
    Pebble {
        _dns: dns_srv,
        _pebble: pebble,
        directory: format!("https://127.0.0.1:{listen}/dir"),
        ca: cert,
        roots,
        challtest,
    }
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).map(|c| c.unwrap()).collect()
}

/// Tells pebble-challtestsrv that `host` resolves to `addr`.
async fn resolve_to(challtest: SocketAddr, host: &str, addr: &str) {
    let body = serde_json::json!({"host": host, "addresses": [addr]}).to_string();
    let req =
        format!("POST /add-a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let (resp, _) = raw(challtest, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
}

/// The leaf certificate `https` presents for `sni`, verified against `roots`.
async fn served_leaf(https: SocketAddr, roots: &rustls::RootCertStore, sni: &str) -> Vec<u8> {
    let tls = crate::tls_h2::tls_connect(https, roots, sni, &[b"http/1.1"]).await;
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn events(status: &serde_json::Value, kind: &str, site: &str) -> Vec<String> {
    status["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind && e["site"] == site)
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_by_acme_are_issued_served_renewed_and_a_refused_order_is_retried() {
    let origin = echo_origin("acme").await;
    let (http_port, https_port) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("holdfast-acme-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let p = pebble(http_port, free_port(), &dir).await;
    // refused.test resolves where holdfast does not listen: its validation fails.
    resolve_to(p.challtest, "refused.test", "127.0.0.2").await;
    let state = dir.join("state");
    let sites = format!(
        "[[site]]\nname = \"shop\"\nhosts = [\"shop.test\"]\ntls = {{ acme = true }}\n\
         [[site.pool]]\ndatacenter = \"dc1\"\norigins = [\"{o}\"]\n\
         [[site]]\nname = \"refused\"\nhosts = [\"refused.test\"]\ntls = {{ acme = true }}\n\
         [[site.pool]]\ndatacenter = \"dc1\"\norigins = [\"{o}\"]\n",
        o = origin.addr
    );
    // A renewal window that leaves a certificate due about two seconds into its life
    // (Pebble's live five years), so that the test sees a renewal.
    let acme = format!(
        "[acme]\ndirectory = \"{}\"\ncontact = [\"mailto:ops@shop.test\"]\nca = \"{}\"\nstate_dir = \"{}\"\n\
         renewal_window = 0.99999998\nretry = \"1s\"\n",
        p.directory,
        p.ca.display(),
        state.display()
    );
    let text = format!(
        "[listen]\nhttp = [\"127.0.0.1:{http_port}\"]\nhttps = [\"127.0.0.1:{https_port}\"]\nadmin = \"127.0.0.1:0\"\n\
         {acme}\n[[datacenter]]\nname = \"dc1\"\n{sites}"
    );
    let file = holdfast_gateway::config::parse_str("acme.toml", &text).unwrap();
    let gw = Gateway::start(file, None).await.unwrap();
    let https = SocketAddr::from(([127, 0, 0, 1], https_port));

    // Issued by HTTP-01, kept private, served.
    let issued = eventually(Duration::from_secs(60), || async {
        !events(&status_json(&gw).await, "certificate_issued", "shop").is_empty()
    });
    assert!(issued.await, "{:#}", status_json(&gw).await["events"]);
    let first = served_leaf(https, &p.roots, "shop.test").await;
    let stored = std::fs::read_to_string(state.join("shop.crt")).unwrap();
    assert_eq!(rustls_pemfile_certs(&stored)[0].to_vec(), first, "the certificate served is the one kept");
    use std::os::unix::fs::PermissionsExt;
    for f in ["shop.key", "account.json"] {
        assert_eq!(std::fs::metadata(state.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
    }
    assert_eq!(std::fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
    let tls = crate::tls_h2::tls_connect(https, &p.roots, "shop.test", &[b"http/1.1"]).await;
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/").header("host", "shop.test").body(http_body_util::Empty::<bytes::Bytes>::new());
    assert_eq!(tx.send_request(req.unwrap()).await.unwrap().status(), 200);

    // Renewed: a second certificate, served in place of the first, with no restart.
    let renewed = eventually(Duration::from_secs(60), || async {
        events(&status_json(&gw).await, "certificate_issued", "shop").len() >= 2
    });
    assert!(renewed.await);
    let second =
        eventually(Duration::from_secs(10), || async { served_leaf(https, &p.roots, "shop.test").await != first });
    assert!(second.await, "the renewed certificate is served");

    // Refused: each attempt is an event, retried with backoff; no certificate for it.
    let failed = eventually(Duration::from_secs(60), || async {
        events(&status_json(&gw).await, "certificate_order_failed", "refused").len() >= 2
    });
    assert!(failed.await, "{:#}", status_json(&gw).await["events"]);
    let why = events(&status_json(&gw).await, "certificate_order_failed", "refused");
    assert!(why[0].contains("refused") && why[0].contains("retry 1 in 1s"), "{why:?}");
    assert!(why[1].contains("retry 2 in 2s"), "{why:?}");
    assert!(!state.join("refused.crt").exists());
    let (_, _, metrics) = get(gw.admin_addr.unwrap(), "admin", "/metrics").await;
    assert!(metrics.contains("holdfast_certificate_expiry_seconds{site=\"shop\"}"), "{metrics}");
    gw.stop().await;
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_certificate_that_expires_within_seven_days_is_an_operator_alert_not_a_public_one() {
    let origin = echo_origin("soon").await;
    let dir = std::env::temp_dir().join(format!("holdfast-expiring-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["soon.test".to_string()]).unwrap();
    let now = std::time::SystemTime::now();
    params.not_before = (now - Duration::from_secs(86_400)).into();
    params.not_after = (now + Duration::from_secs(3 * 86_400)).into();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.join("soon.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("soon.key"), key.serialize_pem()).unwrap();
    let d = dir.display();
    let site = format!("name = \"soon\"\ntls = {{ cert = \"{d}/soon.crt\", key = \"{d}/soon.key\" }}\n");
    let text =
        config(&[("soon", &["soon.test"], origin.addr)], "status = \"127.0.0.1:0\"\nhttps = [\"127.0.0.1:0\"]\n")
            .replace("name = \"soon\"\n", &site);
    let gw = Gateway::start(holdfast_gateway::config::parse_str("soon.toml", &text).unwrap(), None).await.unwrap();
    let (_, _, body) = get(gw.admin_addr.unwrap(), "admin", "/incidents.json").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let alert = &v["alerts"][0];
    assert_eq!(alert["kind"], "certificate_expiring", "{v:#}");
    assert_eq!(alert["site"], "soon");
    let left = alert["seconds_left"].as_u64().unwrap();
    assert!(left > 2 * 86_400 && left <= 3 * 86_400, "{left}");
    // The public status page and its API say nothing of it.
    for path in ["/", "/api/v2/summary.json", "/api/v2/incidents.json"] {
        let (_, _, public) = get(gw.status_addr.unwrap(), "status", path).await;
        assert!(!public.contains("certificate"), "{path}: {public}");
    }
    let (_, _, metrics) = get(gw.admin_addr.unwrap(), "admin", "/metrics").await;
    assert!(metrics.contains("holdfast_certificate_expiry_seconds{site=\"soon\"}"));
    gw.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn acme_settings_are_checked_with_their_position() {
    let site = |tls: &str| {
        format!("[[datacenter]]\nname = \"dc\"\n[[site]]\nname = \"s\"\nhosts = [\"s.test\"]\ntls = {tls}\n[[site.pool]]\ndatacenter = \"dc\"\norigins = [\"127.0.0.1:1\"]\n")
    };
    let err = |text: &str| holdfast_gateway::config::parse_str("a.toml", text).unwrap_err().to_string();
    assert!(err(&site("{ acme = true }")).contains("a.toml:4:8: site \"s\": tls.acme = true needs an [acme] section"));
    assert!(err(&site("{}")).contains("tls needs cert and key, or acme = true"));
    assert!(err(&site("{ cert = \"a.crt\" }")).contains("tls.cert without tls.key"));
    let acme = "[acme]\ndirectory = \"https://127.0.0.1:1/dir\"\nstate_dir = \"acme\"\nrenewal_window = 1.5\n";
    let e = err(&format!("{acme}{}", site("{ acme = true }")));
    assert!(e.contains("a.toml:4:1: renewal_window = 1.5: expected a share of the lifetime between 0 and 1"), "{e}");
    // Files and ACME together: the files serve until the ACME certificate is issued.
    let both = format!("{}{}", acme.replace("1.5", "0.3"), site("{ acme = true, cert = \"a.crt\", key = \"a.key\" }"));
    assert!(holdfast_gateway::config::parse_str("a.toml", &both).is_ok());
}

/// Without an http listener the challenge is TLS-ALPN-01 on the https listener (RFC 8737):
/// the validation's handshake gets the challenge's certificate, shoppers' the site's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_http_listener_tls_alpn_01_is_answered_on_the_https_one() {
    let origin = echo_origin("alpn").await;
    let https_port = free_port();
    let dir = std::env::temp_dir().join(format!("holdfast-acme-alpn-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let p = pebble(free_port(), https_port, &dir).await;
    let state = dir.join("state");
    let text = format!(
        "[listen]\nhttps = [\"127.0.0.1:{https_port}\"]\nadmin = \"127.0.0.1:0\"\n\
         [acme]\ndirectory = \"{}\"\nca = \"{}\"\nstate_dir = \"{}\"\n\
         [[datacenter]]\nname = \"dc1\"\n\
         [[site]]\nname = \"shop\"\nhosts = [\"shop.test\"]\ntls = {{ acme = true }}\n\
         [[site.pool]]\ndatacenter = \"dc1\"\norigins = [\"{}\"]\n",
        p.directory,
        p.ca.display(),
        state.display(),
        origin.addr
    );
    let path = dir.join("alpn.toml");
    std::fs::write(&path, &text).unwrap();
    let file = holdfast_gateway::config::load_file(&path).unwrap();
    let gw = Gateway::start(file, Some(path.clone())).await.unwrap();
    let issued = eventually(Duration::from_secs(60), || async {
        !events(&status_json(&gw).await, "certificate_issued", "shop").is_empty()
    });
    assert!(issued.await, "{:#}", status_json(&gw).await["events"]);
    let https = SocketAddr::from(([127, 0, 0, 1], https_port));
    let leaf = served_leaf(https, &p.roots, "shop.test").await;
    let stored = std::fs::read_to_string(state.join("shop.crt")).unwrap();
    assert_eq!(rustls_pemfile_certs(&stored)[0].to_vec(), leaf);

    // A site new to ACME on reload gets its certificate with no restart.
    let more = format!(
        "[[site]]\nname = \"more\"\nhosts = [\"more.test\"]\ntls = {{ acme = true }}\n\
         [[site.pool]]\ndatacenter = \"dc1\"\norigins = [\"{}\"]\n",
        origin.addr
    );
    std::fs::write(&path, format!("{text}{more}")).unwrap();
    assert_eq!(crate::lifecycle::admin_post(&gw, "/admin/reload", None).await.0, 200);
    let issued = eventually(Duration::from_secs(60), || async {
        !events(&status_json(&gw).await, "certificate_issued", "more").is_empty()
    });
    assert!(issued.await, "{:#}", status_json(&gw).await["events"]);
    assert_ne!(served_leaf(https, &p.roots, "more.test").await, leaf);
    gw.stop().await;
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}

/// In a fleet one instance orders, under the fleet's Redis lock, and both serve the result.
/// Pebble validates at the first instance's port whoever ordered: the HTTP-01 answer is the
/// fleet's, known at every point of presence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_fleet_one_instance_orders_and_every_instance_serves_the_certificate() {
    let redis = crate::redis::Redis::start();
    let origin = echo_origin("fleet-acme").await;
    let (http_a, https_a, https_b) = (free_port(), free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("holdfast-acme-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let p = pebble(http_a, free_port(), &dir).await;
    let gateway = |instance: &str, http: String, https: u16| {
        let state = dir.join(format!("state-{instance}"));
        format!(
            "[listen]\nhttp = [\"{http}\"]\nhttps = [\"127.0.0.1:{https}\"]\nadmin = \"127.0.0.1:0\"\n\
             [fleet]\nredis = \"{}\"\ninstance = \"{instance}\"\nsync_interval = \"100ms\"\n\
             [acme]\ndirectory = \"{}\"\nca = \"{}\"\nstate_dir = \"{}\"\nretry = \"1s\"\n\
             [[datacenter]]\nname = \"dc1\"\n\
             [[site]]\nname = \"shop\"\nhosts = [\"shop.test\"]\ntls = {{ acme = true }}\n\
             [[site.pool]]\ndatacenter = \"dc1\"\norigins = [\"{}\"]\n",
            redis.url(),
            p.directory,
            p.ca.display(),
            state.display(),
            origin.addr
        )
    };
    let a = gateway("pop-a", format!("127.0.0.1:{http_a}"), https_a);
    let b = gateway("pop-b", "127.0.0.1:0".into(), https_b);
    // pop-b starts first and takes the lock; pop-a, where Pebble validates, comes up while
    // pop-b's order is on, and answers the challenge from the fleet's answers.
    let gb = Gateway::start(holdfast_gateway::config::parse_str("b.toml", &b).unwrap(), None).await.unwrap();
    let ordering = eventually(Duration::from_secs(20), || async {
        !events(&status_json(&gb).await, "certificate_ordering", "shop").is_empty()
    });
    assert!(ordering.await);
    let ga = Gateway::start(holdfast_gateway::config::parse_str("a.toml", &a).unwrap(), None).await.unwrap();
    let both_issued = eventually(Duration::from_secs(60), || async {
        let (sa, sb) = (status_json(&ga).await, status_json(&gb).await);
        !events(&sa, "certificate_issued", "shop").is_empty() && !events(&sb, "certificate_issued", "shop").is_empty()
    });
    assert!(both_issued.await, "{:#}\n{:#}", status_json(&ga).await["events"], status_json(&gb).await["events"]);
    let (sa, sb) = (status_json(&ga).await, status_json(&gb).await);
    let orders = events(&sa, "certificate_ordering", "shop").len() + events(&sb, "certificate_ordering", "shop").len();
    assert_eq!(orders, 1, "one instance ordered: {:#}\n{:#}", sa["events"], sb["events"]);
    let from_fleet = [&sa, &sb]
        .iter()
        .flat_map(|s| events(s, "certificate_issued", "shop"))
        .filter(|r| r.contains("from the fleet"))
        .count();
    assert_eq!(from_fleet, 1, "the other took it from the fleet");
    assert_eq!(events(&sb, "certificate_ordering", "shop").len(), 1, "pop-b ordered");
    assert!(events(&sa, "certificate_issued", "shop")[0].contains("from the fleet"));
    let leaf_a = served_leaf(SocketAddr::from(([127, 0, 0, 1], https_a)), &p.roots, "shop.test").await;
    let leaf_b = served_leaf(SocketAddr::from(([127, 0, 0, 1], https_b)), &p.roots, "shop.test").await;
    assert_eq!(leaf_a, leaf_b, "both serve the one certificate");
    ga.stop().await;
    gb.stop().await;
    drop(p);
    let _ = std::fs::remove_dir_all(&dir);
}
