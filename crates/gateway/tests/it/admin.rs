//! The admin listener: /metrics, /healthz, /status.json.

use crate::common::*;
use bytes::Bytes;
use http_body_util::Full;

#[tokio::test]
async fn metrics_status_and_healthz() {
    let de = echo_origin("de").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let gw = gateway(&config(&[("shop-de", &["shop.de"], de.addr), ("shop-fr", &["shop.fr"], dead)], "")).await;
    for _ in 0..3 {
        assert_eq!(get(http_addr(&gw), "shop.de", "/").await.0, 200);
    }
    assert_eq!(get(http_addr(&gw), "shop.fr", "/").await.0, 503);
    assert_eq!(get(http_addr(&gw), "nowhere.example", "/").await.0, 404);
    let admin = gw.admin_addr.unwrap();

    let (status, headers, text) = get(admin, "admin", "/metrics").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    assert!(
        text.contains("holdfast_requests_total{site=\"shop-de\",datacenter=\"dc1\",status_class=\"2xx\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("holdfast_requests_total{site=\"shop-fr\",datacenter=\"none\",status_class=\"5xx\"} 1"),
        "{text}"
    );
    assert!(text.contains(&format!("holdfast_origin_errors_total{{site=\"shop-fr\",datacenter=\"dc1\",origin=\"{dead}\",kind=\"connect_refused\"}} 1")), "{text}");
    assert!(text.contains("holdfast_requests_rejected_total{reason=\"unknown_host\"} 1"), "{text}");
    assert!(text.contains("holdfast_request_duration_seconds_count{site=\"shop-de\"} 3"), "{text}");
    assert!(text.contains("holdfast_open_connections"), "{text}");

    let (status, _, json) = get(admin, "admin", "/status.json").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["sites"][0]["name"], "shop-de");
    assert_eq!(v["sites"][0]["pools"][0]["datacenter"], "dc1");
    assert_eq!(v["sites"][0]["pools"][0]["origins"][0]["requests"], 3);
    assert_eq!(v["sites"][1]["pools"][0]["origins"][0]["errors"], 1);
    assert_eq!(v["sites"][1]["pools"][0]["origins"][0]["last_error"]["kind"], "connect_refused");
    assert_eq!(v["datacenters"][0]["name"], "dc1");

    assert_eq!(get(admin, "admin", "/healthz").await.0, 200);
    assert_eq!(get(admin, "admin", "/nope").await.0, 404);
    let (status, _, _) =
        send(admin, http::Request::post("/metrics").header("host", "a").body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(status, 405);
}
