//! How much memory the shield's per-client state costs: one million distinct source
//! addresses (by default; `SHIELD_MEMORY_ADDRESSES` sets another count) each open a
//! connection and send a request. Prints the tables' size and the process's resident memory
//! growth. A measurement, not a test: ignored unless asked for, run by bench/shield.sh
//! (`cargo test --release --lib shield::memory -- --ignored --nocapture`).

use super::{Facts, Shield, ShieldRt, SiteLoad};
use crate::config::shield::Shield as Cfg;
use crate::telemetry::Telemetry;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "a measurement: run by bench/shield.sh"]
async fn one_million_addresses() {
    let n: u32 = std::env::var("SHIELD_MEMORY_ADDRESSES").ok().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let cfg = Cfg::default();
    let rt = ShieldRt::new(&cfg, &[]);
    let before = rss_kib();
    let shield = Shield::new(&cfg);
    let report = Telemetry::new();
    let load = SiteLoad::default();
    let headers = {
        let mut h = http::HeaderMap::new();
        h.insert(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0".parse().unwrap(),
        );
        h.insert("accept", "text/html".parse().unwrap());
        h.insert("accept-language", "de".parse().unwrap());
        h.insert("accept-encoding", "gzip".parse().unwrap());
        h
    };
    let started = std::time::Instant::now();
    for i in 0..n {
        // Three in four IPv4 (spread over the whole space), one in four IPv6.
        let h = i.wrapping_mul(2_654_435_761);
        let ip = if i % 4 == 3 {
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, (h >> 16) as u16, h as u16, 0, 0, 0, i as u16))
        } else {
            IpAddr::V4(Ipv4Addr::from(h | 0x0100_0000))
        };
        let now = tokio::time::Instant::now();
        if let Ok(ticket) = shield.on_accept(&rt, ip, now) {
            let facts = Facts {
                peer: ip,
                version: http::Version::HTTP_11,
                method: &http::Method::GET,
                path_and_query: "/",
                headers: &headers,
                new_connection: true,
                site: "shop",
                site_load: &load,
                ignored_params: &[],
            };
            let _ = shield.check(&rt, &facts, &report, now);
            shield.release(ticket);
        }
    }
    let took = started.elapsed();
    let after = rss_kib();
    let view = shield.view(&cfg, Default::default());
    println!(
        "{n} addresses: tracked {} addresses and {} prefixes (cap {}); tables {:.1} MiB; process RSS grew {:.1} MiB; {:.2} us per connection + request",
        view.tracked_addresses,
        view.tracked_prefixes,
        cfg.max_prefixes,
        view.table_bytes as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / 1024.0,
        took.as_secs_f64() * 1e6 / f64::from(n)
    );
}
