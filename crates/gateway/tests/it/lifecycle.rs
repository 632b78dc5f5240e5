//! Reload without loss, refusal of a bad config, and draining on stop.

use crate::common::*;
use bytes::Bytes;
use holdfast_gateway::Gateway;
use http_body_util::{BodyExt, Full};
use std::time::Duration;

fn temp_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("holdfast-test-{}-{name}.toml", std::process::id()))
}

pub(crate) async fn admin_post(gw: &Gateway, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = http::Request::post(path).header("host", "admin");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let (status, _, body) = send(gw.admin_addr.unwrap(), req.body(Full::new(Bytes::new())).unwrap()).await;
    (status, body)
}

/// Requests waiting for an origin's response head now.
async fn in_flight_at_origin(gw: &Gateway) -> u64 {
    status_json(gw).await["requests"]["by_phase"]["response_headers"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn reload_swaps_config_without_dropping_requests_or_connections() {
    let a = echo_origin("a").await;
    let b = echo_origin("b").await;
    let path = temp_path("reload");
    let token = "[listen]\nadmin_token = \"s3cret\"\n";
    let v1 = config(&[("s", &["shop.de"], a.addr)], "").replace("[listen]\n", token);
    std::fs::write(&path, &v1).unwrap();
    let file = holdfast_gateway::config::load_file(&path).unwrap();
    let gw = Gateway::start(file, Some(path.clone())).await.unwrap();

    // One keep-alive connection, with a slow request in flight across the reload.
    let tcp = tokio::net::TcpStream::connect(http_addr(&gw)).await.unwrap();
    let (mut tx, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let slow = tx
        .send_request(http::Request::get("/slow/800").header("host", "shop.de").body(Full::new(Bytes::new())).unwrap());
    let slow = tokio::spawn(slow);
    assert!(eventually(Duration::from_secs(5), || async { in_flight_at_origin(&gw).await == 1 }).await);

    let v2 = config(&[("s", &["shop.de"], b.addr), ("t", &["shop.fr"], b.addr)], "").replace("[listen]\n", token);
    std::fs::write(&path, v2).unwrap();
    assert_eq!(admin_post(&gw, "/admin/reload", None).await.0, 401, "token required");
    let (status, body) = admin_post(&gw, "/admin/reload", Some("s3cret")).await;
    assert_eq!(status, 200, "{body}");

    let resp = slow.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200, "the request in flight during the reload completes");
    assert_eq!(resp.headers()["x-origin"], "a", "and keeps the snapshot it started with");
    let _ = resp.into_body().collect().await;

    // The same connection now sees the new config.
    let r = tx
        .send_request(http::Request::get("/").header("host", "shop.fr").body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-origin"], "b");
    let _ = r.into_body().collect().await;

    // A bad config is refused with its position; the old one keeps serving.
    std::fs::write(&path, "[listen]\nadmin_token = \"s3cret\"\nbogus = 1\n").unwrap();
    let (status, body) = admin_post(&gw, "/admin/reload", Some("s3cret")).await;
    assert_eq!(status, 422);
    assert!(body.contains(":3:1: unknown field `bogus`"), "{body}");
    let (status, headers, _) = get(http_addr(&gw), "shop.fr", "/").await;
    assert_eq!((status, &headers["x-origin"]), (200, &"b".parse::<http::HeaderValue>().unwrap()));
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn stop_drains_in_flight_requests_and_refuses_new_connections() {
    let a = echo_origin("a").await;
    let gw = gateway(&config(&[("s", &["shop.de"], a.addr)], "")).await;
    let addr = http_addr(&gw);
    let inflight = tokio::spawn(get(addr, "shop.de", "/slow/600"));
    assert!(eventually(Duration::from_secs(5), || async { in_flight_at_origin(&gw).await == 1 }).await);
    let stopped = tokio::spawn(gw.stop());
    let (status, _, body) = inflight.await.unwrap();
    assert_eq!(status, 200);
    assert!(body.contains("GET /slow/600"));
    stopped.await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener closed after stop");
}

/// `[listen]` changes on reload: new listeners start (and serve), removed ones stop (and
/// refuse), the rest keep their sockets; an address that cannot be bound refuses the
/// reload and changes nothing.
#[tokio::test]
async fn listeners_added_on_reload_start_and_removed_ones_stop() {
    let a = echo_origin("a").await;
    let path = temp_path("listeners");
    let v1 = config(&[("s", &["shop.de"], a.addr)], "");
    std::fs::write(&path, &v1).unwrap();
    let gw = Gateway::start(holdfast_gateway::config::load_file(&path).unwrap(), Some(path.clone())).await.unwrap();
    let (first, _, admin, _) = gw.listening();
    assert_eq!(first.len(), 1);

    // Two more plain listeners and a status page.
    let more = "http = [\"127.0.0.1:0\", \"127.0.0.1:0\", \"127.0.0.1:0\"]\nstatus = \"127.0.0.1:0\"";
    std::fs::write(&path, v1.replacen("http = [\"127.0.0.1:0\"]", more, 1)).unwrap();
    let (status, body) = admin_post(&gw, "/admin/reload", None).await;
    assert_eq!(status, 200, "{body}");
    let (http, _, admin_now, status_page) = gw.listening();
    assert_eq!(http.len(), 3);
    assert_eq!(http[0], first[0], "a listener the reload keeps keeps its socket");
    assert_eq!(admin_now, admin);
    for addr in &http {
        assert_eq!(get(*addr, "shop.de", "/").await.0, 200, "{addr} serves");
    }
    assert_eq!(get(status_page[0], "status", "/").await.0, 200, "the status page serves");

    // Back to one: the others stop and refuse; the first never stopped.
    std::fs::write(&path, &v1).unwrap();
    assert_eq!(admin_post(&gw, "/admin/reload", None).await.0, 200);
    assert_eq!(gw.listening().0, first);
    assert!(gw.listening().3.is_empty());
    for addr in [http[1], http[2], status_page[0]] {
        let refused =
            eventually(Duration::from_secs(5), || async move { tokio::net::TcpStream::connect(addr).await.is_err() });
        assert!(refused.await, "{addr} stopped");
    }
    assert_eq!(get(first[0], "shop.de", "/").await.0, 200);

    // An address already taken refuses the whole reload: the old listeners serve on.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = format!("http = [\"127.0.0.1:0\", \"{}\"]", taken.local_addr().unwrap());
    std::fs::write(&path, v1.replacen("http = [\"127.0.0.1:0\"]", &busy, 1)).unwrap();
    let (status, body) = admin_post(&gw, "/admin/reload", None).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("cannot listen on"), "{body}");
    assert_eq!(gw.listening().0, first);
    gw.stop().await;
    let _ = std::fs::remove_file(&path);
}
