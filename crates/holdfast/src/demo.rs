//! `holdfast demo`: the gateway and a simulated shop for every origin of the embedded
//! config (examples/demo.toml): five sites in three data centers.

use anyhow::Context;

pub(crate) const CONFIG: &str = include_str!("../../../examples/demo.toml");

pub(crate) async fn run() -> anyhow::Result<()> {
    let file = holdfast_gateway::config::parse_str("examples/demo.toml (embedded)", CONFIG)?;
    let mut shops = 0;
    for site in &file.sites {
        for pool in &site.pools {
            for origin in &pool.origins {
                let address = &origin.get_ref().address;
                let addr: std::net::SocketAddr =
                    address.parse().with_context(|| format!("demo origin {address} is not an IP:port"))?;
                let cfg =
                    holdfast_shop::ShopConfig::new(site.name.get_ref(), &site.language, pool.datacenter.get_ref());
                holdfast_shop::spawn(cfg, addr).await.with_context(|| format!("cannot start a demo shop on {addr}"))?;
                shops += 1;
            }
        }
    }
    let gw = holdfast_gateway::Gateway::start(file, None).await?;
    let http = gw.http_addrs.first().map(|a| a.to_string()).unwrap_or_default();
    let admin = gw.admin_addr.map(|a| a.to_string()).unwrap_or_default();
    println!(
        "\nholdfast demo: 5 sites, 3 data centers, {shops} shop origins\n\n\
         Try:\n  curl -i http://{http}/ -H 'Host: shop.de'\n  curl -i http://de.shop.localhost:{port}/p/1\n  \
         curl -i http://fr.shop.localhost:{port}/search?q=train\n  \
         curl -i -X POST http://it.shop.localhost:{port}/checkout -H 'Idempotency-Key: demo-1'\n  \
         curl -i http://{http}/ -H 'Host: unknown.example'\n\n\
         The shield (127.0.0.1 itself is exempt; come from another loopback address):\n  \
         curl -i --interface 127.0.0.2 http://{http}/ -H 'Host: shop.de'\n  \
         curl -X POST 'http://{admin}/admin/block?prefix=127.0.0.2/32&for=1m'\n  \
         curl -i --interface 127.0.0.2 http://{http}/ -H 'Host: shop.de'    (closed on accept)\n\n\
         Status:   http://{admin}/status.json\n  Metrics:  http://{admin}/metrics\n\n\
         Ctrl-C stops everything.\n",
        port = gw.http_addrs.first().map_or(8080, |a| a.port()),
    );
    gw.run_until_signal().await
}
