//! Path routes (`[[site.route]]`: the longest prefix wins, each with its own pools and
//! failover), HTTPS redirects, and request ids with W3C trace context.

use crate::common::*;
use bytes::Bytes;
use http_body_util::Full;
use std::net::SocketAddr;

/// An address nothing listens on (connections to it are refused).
async fn dead_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn the_longest_route_prefix_wins_and_a_route_fails_over_on_its_own() {
    let pages = echo_origin("pages").await;
    let api = echo_origin("api").await;
    let api_v2 = echo_origin("api-v2").await;
    let backup = echo_origin("checkout-backup").await;
    let dead = dead_addr().await;
    let text = format!(
        "[listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n\
         [[datacenter]]\nname = \"dc1\"\n[[datacenter]]\nname = \"dc2\"\n\
         [[site]]\nname = \"shop-de\"\nhosts = [\"shop.de\"]\nhealth = {{ enabled = false }}\ncache = {{ enabled = false }}\n\
         [[site.pool]]\ndatacenter = \"dc1\"\norigins = [\"{}\"]\n\
         [[site.route]]\npath_prefix = \"/api/\"\n[[site.route.pool]]\ndatacenter = \"dc1\"\norigins = [\"{}\"]\n\
         [[site.route]]\npath_prefix = \"/api/v2/\"\n[[site.route.pool]]\ndatacenter = \"dc1\"\norigins = [\"{}\"]\n\
         [[site.route]]\npath_prefix = \"/checkout/\"\n\
         [[site.route.pool]]\ndatacenter = \"dc1\"\norigins = [\"{dead}\"]\n\
         [[site.route.pool]]\ndatacenter = \"dc2\"\norigins = [\"{}\"]\n",
        pages.addr, api.addr, api_v2.addr, backup.addr
    );
    let gw = gateway(&text).await;
    let at = http_addr(&gw);
    for (path, want) in [
        ("/", "pages"),
        ("/apix", "pages"),
        ("/api", "pages"),
        ("/api/cart", "api"),
        ("/api/v2/cart?x=1", "api-v2"),
        ("/api/v3/cart", "api"),
    ] {
        let (status, h, body) = get(at, "shop.de", path).await;
        assert_eq!((status, h["x-origin"].to_str().unwrap()), (200, want), "{path}: {body}");
    }
    // The checkout's own pool in dc1 refuses: its requests, a POST too (nothing was
    // sent), go to its next pool; the site's pages stay where they are.
    for _ in 0..3 {
        let req = http::Request::post("/checkout/pay").header("host", "shop.de").body(Full::new(Bytes::from("x")));
        let (status, h, body) = send(at, req.unwrap()).await;
        assert_eq!((status, h["x-origin"].to_str().unwrap()), (200, "checkout-backup"), "{body}");
    }
    assert_eq!(get(at, "shop.de", "/").await.1["x-origin"], "pages");

    // /status.json shows the routes with their pools, longest prefix first.
    let s = status_json(&gw).await;
    let routes = s["sites"][0]["routes"].as_array().unwrap().clone();
    let names: Vec<&str> = routes.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["checkout", "api/v2", "api"]);
    assert_eq!(routes[0]["pools"].as_array().unwrap().len(), 2);
    // Metrics carry the route (and the site's totals count its requests too).
    let metrics = get(gw.admin_addr.unwrap(), "admin", "/metrics").await.2;
    let line =
        "holdfast_route_requests_total{site=\"shop-de\",route=\"checkout\",datacenter=\"dc2\",status_class=\"2xx\"} 3";
    assert!(metrics.contains(line), "{metrics}");
    assert!(metrics.contains(
        "holdfast_route_requests_total{site=\"shop-de\",route=\"api/v2\",datacenter=\"dc1\",status_class=\"2xx\"} 1"
    ));
    assert!(metrics.contains("holdfast_requests_total{site=\"shop-de\",datacenter=\"dc2\",status_class=\"2xx\"} 3"));
}

#[tokio::test]
async fn a_route_prefix_must_start_with_a_slash_and_not_repeat() {
    let base = "[[datacenter]]\nname = \"dc1\"\n[[site]]\nname = \"s\"\nhosts = [\"shop.de\"]\n\
                [[site.pool]]\ndatacenter = \"dc1\"\norigins = [\"127.0.0.1:1\"]\n";
    let route = |p: &str| {
        format!("[[site.route]]\npath_prefix = \"{p}\"\n[[site.route.pool]]\ndatacenter = \"dc1\"\norigins = [\"127.0.0.1:2\"]\n")
    };
    let e = holdfast_gateway::config::parse_str("t.toml", &format!("{base}{}", route("api/"))).unwrap_err();
    assert_eq!((e.line, e.column), (10, 15), "{e}");
    assert!(e.message.contains("must start with '/'"), "{e}");
    let e = holdfast_gateway::config::parse_str("t.toml", &format!("{base}{}{}", route("/api/"), route("/api/")))
        .unwrap_err();
    assert_eq!(e.line, 15, "{e}");
    assert!(e.message.contains("defined twice"), "{e}");
}

#[tokio::test]
async fn plain_http_is_redirected_to_https_except_acme_challenges() {
    let origin = echo_origin("o").await;
    let text = config(&[("s", &["shop.de"], origin.addr)], "")
        + "[site.https]\nredirect = true\nhsts = \"max-age=31536000\"\n";
    let gw = gateway(&text).await;
    let at = http_addr(&gw);
    let (status, h, _) = get(at, "Shop.DE:8080", "/p/1?size=42&c=%C3%BC").await;
    assert_eq!(status, 308);
    assert_eq!(h["location"], "https://shop.de/p/1?size=42&c=%C3%BC");
    assert!(!h.contains_key("strict-transport-security"), "HSTS only over TLS");
    // A POST keeps its method with 308 (the client sends it again to https).
    let req = http::Request::post("/checkout").header("host", "shop.de").body(Full::new(Bytes::from("a=1")));
    assert_eq!(send(at, req.unwrap()).await.0, 308);
    // ACME's HTTP-01 challenge is answered over plain HTTP.
    let (status, h, _) = get(at, "shop.de", "/.well-known/acme-challenge/token123").await;
    assert_eq!((status, h["x-origin"].to_str().unwrap()), (200, "o"));
    // The port of the https listeners, when it is not 443.
    let gw2 = gateway(&text.replace("redirect = true", "redirect = true\nport = 8443")).await;
    assert_eq!(get(http_addr(&gw2), "shop.de", "/").await.1["location"], "https://shop.de:8443/");
}

#[tokio::test]
async fn request_ids_and_trace_context_reach_the_origin_and_come_back() {
    let origin = echo_origin("o").await;
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], "")).await;
    let at = http_addr(&gw);
    // None sent: holdfast makes one, sends it on with a trace that has the same id.
    let (_, h, body) = get(at, "shop.de", "/p/1").await;
    let id = h["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32, "{id}");
    assert!(body.contains(&format!("x-request-id: {id}\n")), "{body}");
    let tp = body.lines().find_map(|l| l.strip_prefix("traceparent: ")).expect("a traceparent");
    assert!(tp.starts_with(&format!("00-{id}-")) && tp.ends_with("-01"), "{tp}");
    // A new one per request.
    assert_ne!(get(at, "shop.de", "/p/1").await.1["x-request-id"], id.as_str());

    // Sent by the client: kept, and the client's trace continues with holdfast's span.
    let req = http::Request::get("/p/2")
        .header("host", "shop.de")
        .header("x-request-id", "shop-app-7")
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .header("tracestate", "shop=1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (_, h, body) = send(at, req).await;
    assert_eq!(h["x-request-id"], "shop-app-7");
    assert!(body.contains("x-request-id: shop-app-7\n"), "{body}");
    assert!(body.contains("tracestate: shop=1\n"), "{body}");
    let tp = body.lines().find_map(|l| l.strip_prefix("traceparent: ")).unwrap();
    assert!(tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{tp}");
    assert_ne!(&tp[36..52], "00f067aa0ba902b7", "the origin's parent is holdfast's span");

    // `traces = "pass"`: nothing started for a request that is not in a trace.
    let gw = gateway(&config(&[("s", &["shop.de"], origin.addr)], "[proxy]\ntraces = \"pass\"\n")).await;
    let (_, h, body) = get(http_addr(&gw), "shop.de", "/p/3").await;
    assert!(h.contains_key("x-request-id"));
    assert!(!body.contains("traceparent"), "{body}");
}

/// The checkout's own origin in eu-west goes away while the site's pages are served as
/// usual: an origin failure named with the route ("checkout of shop-de"), never a
/// data-center failure, and the checkout fails over to its next pool.
#[tokio::test]
async fn a_route_pool_that_fails_is_named_with_its_route() {
    use holdfast_shop::{Fault, ShopConfig};
    let spawn = |dc: &str| {
        let cfg = ShopConfig::new("shop-de", "de", dc);
        async move { holdfast_shop::spawn(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap() }
    };
    let (w1, _) = spawn("eu-west").await;
    let (w2, _) = spawn("eu-west").await;
    let (checkout, checkout_shop) = spawn("eu-west").await;
    let (central, _) = spawn("eu-central").await;
    let text = format!(
        "[listen]\nhttp = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[log]\naccess = false\n\
         [timeouts]\nconnect = \"300ms\"\n[incidents]\nresolve_after = \"2s\"\n\
         [[datacenter]]\nname = \"eu-west\"\n[[datacenter]]\nname = \"eu-central\"\n\
         [[site]]\nname = \"shop-de\"\nhosts = [\"shop.de\"]\nlanguage = \"de\"\n\
         health = {{ interval = \"200ms\", timeout = \"150ms\" }}\ncache = {{ enabled = false }}\n\
         [[site.pool]]\ndatacenter = \"eu-west\"\norigins = [\"{w1}\", \"{w2}\"]\n\
         [[site.pool]]\ndatacenter = \"eu-central\"\norigins = [\"{central}\"]\n\
         [[site.route]]\npath_prefix = \"/checkout/\"\n\
         [[site.route.pool]]\ndatacenter = \"eu-west\"\norigins = [\"{checkout}\"]\n\
         [[site.route.pool]]\ndatacenter = \"eu-central\"\norigins = [\"{central}\"]\n"
    );
    let gw = gateway(&text).await;
    let at = http_addr(&gw);
    assert_eq!(get(at, "shop.de", "/checkout/x").await.1["x-datacenter"], "eu-west");
    checkout_shop.faults.set(Fault::Refused);
    let named = eventually(std::time::Duration::from_secs(15), || async {
        // Shoppers meanwhile, on pages and checkout alike.
        let _ = get(at, "shop.de", "/p/1").await;
        let _ = get(at, "shop.de", "/checkout/x").await;
        let (_, _, body) = get(gw.admin_addr.unwrap(), "admin", "/incidents.json").await;
        body.contains("\"origin_failure\"") && body.contains("checkout of shop-de")
    })
    .await;
    let (_, _, body) = get(gw.admin_addr.unwrap(), "admin", "/incidents.json").await;
    assert!(named, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let i = v["incidents"].as_array().unwrap().iter().find(|i| i["kind"] == "origin_failure").unwrap().clone();
    assert_eq!(i["facts"]["routes"], serde_json::json!(["checkout of shop-de"]), "{i}");
    assert!(i["summary"].as_str().unwrap().contains("checkout of shop-de in data center eu-west"), "{i}");
    assert!(!body.contains("datacenter_failure"), "{body}");
    // The checkout went on in its next pool; the pages stayed in eu-west.
    assert_eq!(get(at, "shop.de", "/checkout/x").await.1["x-datacenter"], "eu-central");
    assert_eq!(get(at, "shop.de", "/p/1").await.1["x-datacenter"], "eu-west");
}
