//! Data-center failure with real shop origins and injected faults: refused, black hole,
//! slow, 5xx, flapping and recovery. Shoppers' GETs never fail; POSTs are never duplicated.

use crate::common::*;
use bytes::Bytes;
use holdfast_gateway::Gateway;
use holdfast_shop::{Fault, Shop, ShopConfig};
use http_body_util::Full;
use std::sync::Arc;
use std::time::Duration;

struct World {
    gw: Gateway,
    west: Vec<Arc<Shop>>,
    central: Arc<Shop>,
}

impl World {
    fn set_west(&self, f: Fault) {
        for s in &self.west {
            s.faults.set(f);
        }
    }

    /// Waits until events of all these kinds have been reported.
    async fn eventually_events(&self, kinds: &[&str]) -> bool {
        eventually(Duration::from_secs(10), || async {
            let seen: Vec<String> = self.events().await.into_iter().map(|e| e.0).collect();
            kinds.iter().all(|k| seen.iter().any(|s| s == k))
        })
        .await
    }

    async fn events(&self) -> Vec<(String, String)> {
        let st = status_json(&self.gw).await;
        let events = st["events"].as_array().cloned().unwrap_or_default();
        events
            .iter()
            .map(|e| (e["kind"].as_str().unwrap().to_string(), e["datacenter"].as_str().unwrap().to_string()))
            .collect()
    }
}

async fn world() -> World {
    world_with(true).await
}

async fn world_with(health_checks: bool) -> World {
    let mut west = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let (a, s) = holdfast_shop::spawn(ShopConfig::new("shop-de", "de", "eu-west"), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        addrs.push(format!("\"{a}\""));
        west.push(s);
    }
    let (c, central) =
        holdfast_shop::spawn(ShopConfig::new("shop-de", "de", "eu-central"), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let text = format!(
        r#"[listen]
http = ["127.0.0.1:0"]
admin = "127.0.0.1:0"
[log]
access = false
[timeouts]
connect = "300ms"
origin_response = "4s"
[[datacenter]]
name = "eu-west"
[[datacenter]]
name = "eu-central"
[[site]]
name = "shop-de"
hosts = ["shop.de"]
language = "de"
  [site.health]
  enabled = {health_checks}
  interval = "100ms"
  timeout = "150ms"
  [site.cache]
  enabled = false
  [site.outlier]
  base_ejection = "500ms"
  [site.retry]
  per_try_timeout = "400ms"
  [site.failover]
  slow_start = "1s"
  [[site.pool]]
  datacenter = "eu-west"
  origins = [{}]
  [[site.pool]]
  datacenter = "eu-central"
  origins = ["{c}"]
"#,
        addrs.join(", ")
    );
    World { gw: gateway(&text).await, west, central }
}

async fn shop_get(w: &World, path: &str) -> (u16, String) {
    let (status, headers, _) = get(http_addr(&w.gw), "shop.de", path).await;
    (status, headers.get("x-datacenter").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string())
}

async fn checkout(w: &World, key: Option<&str>) -> u16 {
    let mut req = http::Request::post("/checkout").header("host", "shop.de").header("cookie", "cart=1");
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    send(http_addr(&w.gw), req.body(Full::new(Bytes::new())).unwrap()).await.0
}

fn orders(w: &World) -> (u64, u64) {
    (w.west.iter().map(|s| s.orders.placed()).sum(), w.central.orders.placed())
}

#[tokio::test]
async fn refused_data_center_costs_no_request_and_fails_over() {
    let w = world().await;
    assert_eq!(shop_get(&w, "/").await, (200, "eu-west".into()));
    w.set_west(Fault::Refused);
    for i in 0..20 {
        let (status, dc) = shop_get(&w, &format!("/p/{}", i % 12 + 1)).await;
        assert_eq!(status, 200, "request {i}");
        assert_eq!(dc, "eu-central");
    }
    // Nothing of a POST reaches a refused origin, so it is safe to send it elsewhere.
    assert_eq!(checkout(&w, None).await, 200);
    assert_eq!(orders(&w), (0, 1));
    // The health checks see it too, and say so.
    assert!(w.eventually_events(&["origin_down", "failover"]).await);
}

#[tokio::test]
async fn black_hole_retries_gets_and_never_duplicates_a_post() {
    let w = world().await;
    assert_eq!(shop_get(&w, "/").await.0, 200);
    w.set_west(Fault::Blackhole);
    // Requests sent right away hang in the black hole, are cut at the per-try timeout and
    // retried in eu-central: slow, but never failed.
    let firsts: Vec<_> = (0..6)
        .map(|i| {
            tokio::spawn({
                let addr = http_addr(&w.gw);
                async move { get(addr, "shop.de", &format!("/p/{}", i + 1)).await }
            })
        })
        .collect();
    for f in firsts {
        let (status, headers, _) = f.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(headers["x-datacenter"], "eu-central");
    }
    // A checkout with an Idempotency-Key is retried; exactly one order is placed.
    assert_eq!(checkout(&w, Some("order-1")).await, 200);
    assert_eq!(orders(&w), (0, 1));
    // After the health checks: straight to eu-central, fast.
    assert!(w.eventually_events(&["failover"]).await);
    for _ in 0..10 {
        assert_eq!(shop_get(&w, "/").await, (200, "eu-central".into()));
    }
}

#[tokio::test]
async fn a_post_without_key_that_reached_a_hanging_origin_is_not_sent_twice() {
    let w = world().await;
    // Only one west origin hangs; health checks are slower than this request.
    w.west[0].faults.set(Fault::Blackhole);
    w.west[1].faults.set(Fault::Blackhole);
    let status = checkout(&w, None).await;
    assert_eq!(status, 503, "no second POST: the first may have been received");
    assert_eq!(orders(&w), (0, 0));
}

#[tokio::test]
async fn slow_data_center_is_routed_around() {
    let w = world().await;
    w.set_west(Fault::Slow(Duration::from_secs(3)));
    for _ in 0..5 {
        assert_eq!(shop_get(&w, "/").await, (200, "eu-central".into()), "slow: cut at the per-try timeout, retried");
    }
    let kinds: Vec<String> = w.events().await.into_iter().map(|e| e.0).collect();
    assert!(kinds.contains(&"failover".to_string()), "{kinds:?}");
}

#[tokio::test]
async fn failing_origins_are_ejected_by_passive_detection() {
    // Without active checks, only real traffic tells that eu-west answers 503.
    let w = world_with(false).await;
    w.set_west(Fault::Errors(1.0));
    for _ in 0..12 {
        assert_eq!(shop_get(&w, "/").await, (200, "eu-central".into()), "503s retried elsewhere");
    }
    let kinds: Vec<String> = w.events().await.into_iter().map(|e| e.0).collect();
    assert!(kinds.contains(&"origin_ejected".to_string()), "{kinds:?}");
}

#[tokio::test]
async fn flapping_data_center_never_fails_a_get() {
    let w = world().await;
    let flapper = {
        let shops = w.west.clone();
        tokio::spawn(async move {
            for i in 0..16 {
                let f = if i % 2 == 0 { Fault::Refused } else { Fault::None };
                for s in &shops {
                    s.faults.set(f);
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };
    let mut n = 0;
    while !flapper.is_finished() {
        assert_eq!(shop_get(&w, "/").await.0, 200, "request {n}");
        n += 1;
    }
    assert!(n > 20);
}

#[tokio::test]
async fn recovered_data_center_gets_its_traffic_back_with_slow_start() {
    let w = world().await;
    w.set_west(Fault::Refused);
    for _ in 0..5 {
        assert_eq!(shop_get(&w, "/").await.1, "eu-central");
    }
    // The health checks take eu-west out before it recovers.
    assert!(w.eventually_events(&["origin_down", "failover"]).await);
    w.set_west(Fault::None);
    // Health checks pass again after healthy_after (2) checks; then the share ramps up.
    let mut west_after = 0;
    for _ in 0..200 {
        let (status, dc) = shop_get(&w, "/").await;
        assert_eq!(status, 200);
        if dc == "eu-west" {
            west_after += 1;
            if west_after >= 20 {
                break;
            }
        } else {
            west_after = 0;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(west_after >= 20, "traffic is back on eu-west");
    let kinds: Vec<String> = w.events().await.into_iter().map(|e| e.0).collect();
    assert!(kinds.contains(&"origin_up".to_string()) && kinds.contains(&"failback".to_string()), "{kinds:?}");
    let status: serde_json::Value =
        serde_json::from_str(&get(w.gw.admin_addr.unwrap(), "a", "/status.json").await.2).unwrap();
    assert_eq!(status["sites"][0]["pools"][0]["available"], 2);
    assert!(status["events"].as_array().unwrap().iter().any(|e| e["kind"] == "failback"));
}
