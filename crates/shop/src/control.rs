//! A fault control for a set of shops, over HTTP: what `holdfast demo` gives its user to
//! break a data center and watch holdfast fail over and name the incident.
//!
//! - `POST /fail?datacenter=NAME&mode=MODE` (`*` for every data center): `refused`,
//!   `blackhole`, `slow` (3 s later; `&delay_ms=N`), `errors` (half answered 500;
//!   `&share=0.8`);
//! - `POST /recover?datacenter=NAME`;
//! - `GET /`: each data center and its fault.
//!
//! For loopback use: it binds where it is told and has no authentication.

use crate::{Fault, Shop};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Serves the control until the task is dropped; `shops` by data center.
pub async fn serve(listener: TcpListener, shops: Vec<(String, Arc<Shop>)>) {
    let shops = Arc::new(shops);
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        let shops = shops.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let shops = shops.clone();
                async move { Ok::<_, Infallible>(answer(&shops, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}

fn reply(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
}

fn answer<B>(shops: &[(String, Arc<Shop>)], req: &Request<B>) -> Response<Full<Bytes>> {
    let q = req.uri().query().unwrap_or("");
    let dc = param(q, "datacenter").unwrap_or("");
    let of_dc = || shops.iter().filter(|(d, _)| dc == "*" || d == dc).map(|(_, s)| s).collect::<Vec<_>>();
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/") => {
            let mut by_dc: BTreeMap<&str, Vec<String>> = BTreeMap::new();
            for (d, s) in shops {
                by_dc.entry(d).or_default().push(format!("{:?}", s.faults.get()));
            }
            let lines: Vec<String> = by_dc.iter().map(|(d, f)| format!("{d}: {}", f.join(", "))).collect();
            reply(StatusCode::OK, lines.join("\n") + "\n")
        }
        (&Method::POST, "/fail") => {
            let fault = match param(q, "mode") {
                Some("refused") => Fault::Refused,
                Some("blackhole") => Fault::Blackhole,
                Some("slow") => Fault::Slow(Duration::from_millis(
                    param(q, "delay_ms").and_then(|v| v.parse().ok()).unwrap_or(3000).min(60_000),
                )),
                Some("errors") => {
                    Fault::Errors(param(q, "share").and_then(|v| v.parse().ok()).unwrap_or(0.5f64).clamp(0.0, 1.0))
                }
                _ => return reply(StatusCode::BAD_REQUEST, "mode: refused, blackhole, slow or errors\n".into()),
            };
            let list = of_dc();
            if list.is_empty() {
                return reply(StatusCode::NOT_FOUND, format!("no shop in data center {dc:?}\n"));
            }
            for s in &list {
                s.faults.set(fault);
            }
            reply(StatusCode::OK, format!("{} shop(s) in {dc}: {fault:?}\n", list.len()))
        }
        (&Method::POST, "/recover") => {
            let list = of_dc();
            if list.is_empty() {
                return reply(StatusCode::NOT_FOUND, format!("no shop in data center {dc:?}\n"));
            }
            for s in &list {
                s.faults.set(Fault::None);
            }
            reply(StatusCode::OK, format!("{} shop(s) in {dc} recovered\n", list.len()))
        }
        _ => reply(StatusCode::NOT_FOUND, "GET /, POST /fail?datacenter=…&mode=…, POST /recover?datacenter=…\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ShopConfig;

    fn req(method: Method, uri: &str) -> Request<()> {
        Request::builder().method(method).uri(uri).body(()).unwrap()
    }

    #[test]
    fn faults_are_set_and_cleared_by_data_center() {
        let west = Shop::new(ShopConfig::new("shop-de", "de", "eu-west"));
        let central = Shop::new(ShopConfig::new("shop-de", "de", "eu-central"));
        let shops = vec![("eu-west".to_string(), west.clone()), ("eu-central".to_string(), central.clone())];
        let r = answer(&shops, &req(Method::POST, "/fail?datacenter=eu-west&mode=blackhole"));
        assert_eq!(r.status(), 200);
        assert_eq!(west.faults.get(), Fault::Blackhole);
        assert_eq!(central.faults.get(), Fault::None);
        assert_eq!(answer(&shops, &req(Method::POST, "/fail?datacenter=eu-west&mode=melt")).status(), 400);
        assert_eq!(answer(&shops, &req(Method::POST, "/fail?datacenter=mars&mode=refused")).status(), 404);
        answer(&shops, &req(Method::POST, "/fail?datacenter=*&mode=errors&share=2"));
        assert_eq!(central.faults.get(), Fault::Errors(1.0));
        answer(&shops, &req(Method::POST, "/recover?datacenter=*"));
        assert_eq!(west.faults.get(), Fault::None);
    }
}
