//! `holdfast demo`: the gateway and a simulated shop for every origin of the embedded
//! config (examples/demo.toml): five sites in three data centers, the public status page,
//! and a fault control (127.0.0.1:8082) to break a data center and watch holdfast fail
//! over and name the incident.

use anyhow::Context;

pub(crate) const CONFIG: &str = include_str!("../../../examples/demo.toml");

/// Where the demo's fault control listens.
const CONTROL: &str = "127.0.0.1:8082";

pub(crate) async fn run() -> anyhow::Result<()> {
    let file = holdfast_gateway::config::parse_str("examples/demo.toml (embedded)", CONFIG)?;
    let mut shops = Vec::new();
    for site in &file.sites {
        for pool in &site.pools {
            for origin in &pool.origins {
                let address = &origin.get_ref().address;
                let addr: std::net::SocketAddr =
                    address.parse().with_context(|| format!("demo origin {address} is not an IP:port"))?;
                let cfg =
                    holdfast_shop::ShopConfig::new(site.name.get_ref(), &site.language, pool.datacenter.get_ref());
                let (_, shop) = holdfast_shop::spawn(cfg, addr)
                    .await
                    .with_context(|| format!("cannot start a demo shop on {addr}"))?;
                shops.push((pool.datacenter.get_ref().clone(), shop));
            }
        }
    }
    let n = shops.len();
    let control = tokio::net::TcpListener::bind(CONTROL)
        .await
        .with_context(|| format!("cannot start the demo's fault control on {CONTROL}"))?;
    tokio::spawn(holdfast_shop::control::serve(control, shops));
    let gw = holdfast_gateway::Gateway::start(file, None).await?;
    let http = gw.http_addrs.first().map(|a| a.to_string()).unwrap_or_default();
    let admin = gw.admin_addr.map(|a| a.to_string()).unwrap_or_default();
    let status = gw.status_addr.map(|a| a.to_string()).unwrap_or_default();
    println!(
        "\nholdfast demo: 5 sites, 3 data centers, {n} shop origins\n\n\
         Try:\n  curl -i http://{http}/ -H 'Host: shop.de'\n  curl -i http://de.shop.localhost:{port}/p/1\n  \
         curl -i http://fr.shop.localhost:{port}/search?q=train\n  \
         curl -i -X POST http://it.shop.localhost:{port}/checkout -H 'Idempotency-Key: demo-1'\n  \
         curl -i http://{http}/ -H 'Host: unknown.example'\n\n\
         The shield (127.0.0.1 itself is exempt; come from another loopback address):\n  \
         curl -i --interface 127.0.0.2 http://{http}/ -H 'Host: shop.de'\n  \
         curl -X POST 'http://{admin}/admin/block?prefix=127.0.0.2/32&for=1m'\n  \
         curl -i --interface 127.0.0.2 http://{http}/ -H 'Host: shop.de'    (closed on accept)\n\n\
         Break a data center, and watch holdfast fail over and name the incident:\n  \
         curl -X POST 'http://{CONTROL}/fail?datacenter=eu-west&mode=blackhole'   (or refused, slow, errors)\n  \
         curl -i http://{http}/p/1 -H 'Host: shop.de'    (served by eu-central)\n  \
         open http://{status}/          the public status page (?lang=de, en, fr, it)\n  \
         curl http://{admin}/incidents.json    the incident, its evidence and impact\n  \
         curl -X POST 'http://{CONTROL}/recover?datacenter=eu-west'\n\n\
         Status page: http://{status}/  (Statuspage API: /api/v2/summary.json; feed: /history.atom)\n  \
         Admin:    http://{admin}/status.json\n  Metrics:  http://{admin}/metrics\n\n\
         Ctrl-C stops everything.\n",
        port = gw.http_addrs.first().map_or(8080, |a| a.port()),
    );
    gw.run_until_signal().await
}
