//! Origins by DNS name, resolved in the background from a DNS server the test controls:
//! every address becomes an origin, a changed answer is followed at its TTL (kept within
//! `[dns] min_ttl`), and a failed lookup keeps the last good addresses and is an event.

use crate::common::*;
use bytes::Bytes;
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A DNS server answering every A and AAAA question with `answers` (TTL 1 s), or SERVFAIL
/// while it is None.
struct FakeDns {
    addr: SocketAddr,
    answers: Arc<Mutex<Option<Vec<IpAddr>>>>,
    queries: Arc<AtomicUsize>,
}

async fn fake_dns(first: Vec<IpAddr>) -> FakeDns {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns = FakeDns {
        addr: sock.local_addr().unwrap(),
        answers: Arc::new(Mutex::new(Some(first))),
        queries: Default::default(),
    };
    let (answers, queries) = (dns.answers.clone(), dns.queries.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else { continue };
            let Ok(q) = Message::from_vec(&buf[..n]) else { continue };
            queries.fetch_add(1, Ordering::SeqCst);
            let mut r = Message::new();
            r.set_id(q.id()).set_message_type(MessageType::Response).set_op_code(q.op_code());
            r.set_recursion_desired(q.recursion_desired()).set_recursion_available(true).set_authoritative(true);
            r.add_queries(q.queries().to_vec());
            match answers.lock().unwrap().clone() {
                None => {
                    r.set_response_code(ResponseCode::ServFail);
                }
                Some(ips) => {
                    for question in q.queries() {
                        for ip in ips.iter().copied() {
                            let rdata = match (question.query_type(), ip) {
                                (RecordType::A, IpAddr::V4(v4)) => RData::A(A(v4)),
                                (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA(v6)),
                                _ => continue,
                            };
                            r.add_answer(Record::from_rdata(question.name().clone(), 1, rdata));
                        }
                    }
                }
            }
            let _ = sock.send_to(&r.to_bytes().unwrap(), from).await;
        }
    });
    dns
}

/// An origin on `ip:port` answering with its own address; counts requests.
async fn origin_at(addr: SocketAddr) -> Arc<AtomicUsize> {
    let l = tokio::net::TcpListener::bind(addr).await.unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else { continue };
            let h = h.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: http::Request<hyper::body::Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from(
                            addr.ip().to_string(),
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
            });
        }
    });
    hits
}

fn origins(status: &serde_json::Value) -> Vec<(String, String)> {
    let list = status["sites"][0]["pools"][0]["origins"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|o| (o["address"].as_str().unwrap_or("").to_string(), o["name"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[tokio::test]
async fn origins_by_name_follow_their_dns_answers_in_the_background() {
    // Two origins on one port, at 127.0.0.1 and 127.0.0.2.
    let first = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = first.local_addr().unwrap().port();
    drop(first);
    let one: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let two: SocketAddr = format!("127.0.0.2:{port}").parse().unwrap();
    let (hits_one, hits_two) = (origin_at(one).await, origin_at(two).await);
    let dns = fake_dns(vec![one.ip()]).await;
    let name = format!("origin.shop.test:{port}");
    let extra = format!("[dns]\nservers = [\"{}\"]\nmin_ttl = \"100ms\"\nmax_ttl = \"1s\"\n", dns.addr);
    let text = config(&[("s", &["shop.de"], one)], &extra).replace(&format!("\"{one}\""), &format!("\"{name}\""));
    let gw = gateway(&text).await;
    let addr = http_addr(&gw);

    // Resolved before the first request: the name's one address is the pool's origin.
    let (status, _, body) = get(addr, "shop.de", "/").await;
    assert_eq!((status, body.as_str()), (200, "127.0.0.1"));
    assert_eq!(origins(&status_json(&gw).await), vec![(one.to_string(), name.clone())]);

    // The answer grows: each address becomes an origin, the first one kept (its counters).
    *dns.answers.lock().unwrap() = Some(vec![one.ip(), two.ip()]);
    assert!(eventually(Duration::from_secs(10), || async { origins(&status_json(&gw).await).len() == 2 }).await);
    let s = status_json(&gw).await;
    assert_eq!(s["sites"][0]["pools"][0]["origins"][0]["requests"], 1, "the origin kept across the change: {s}");
    assert_eq!(s["sites"][0]["pools"][0]["origins"][0]["weight"], 0.5, "the weight is split: {s}");
    assert!(s["events"].as_array().unwrap().iter().any(|e| e["kind"] == "dns_changed"), "{s}");
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(addr, "shop.de", "/").await.0 == 200 && hits_two.load(Ordering::SeqCst) > 0
        })
        .await,
        "the new address gets traffic"
    );

    // The DNS server fails: the last good addresses stay, the failure is an event, and
    // requests never wait for DNS.
    *dns.answers.lock().unwrap() = None;
    let asked = dns.queries.load(Ordering::SeqCst);
    let failed = || async {
        let s = status_json(&gw).await;
        s["events"].as_array().unwrap().iter().any(|e| e["kind"] == "dns_failed")
    };
    assert!(eventually(Duration::from_secs(10), failed).await);
    assert!(dns.queries.load(Ordering::SeqCst) > asked);
    for _ in 0..20 {
        assert_eq!(get(addr, "shop.de", "/").await.0, 200);
    }
    assert_eq!(origins(&status_json(&gw).await).len(), 2, "kept");
    assert!(hits_one.load(Ordering::SeqCst) > 0);

    // It answers again with one address: the other origin leaves.
    *dns.answers.lock().unwrap() = Some(vec![two.ip()]);
    assert!(
        eventually(Duration::from_secs(10), || async {
            origins(&status_json(&gw).await) == vec![(two.to_string(), name.clone())]
        })
        .await
    );
}
