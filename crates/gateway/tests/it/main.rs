//! Integration tests of the gateway: real listeners on 127.0.0.1 ephemeral ports, real
//! origins, real clients. One test binary so the suite links once.

// A test's helpers may unwrap and panic: a failed assumption is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod acme;
mod admin;
mod cache;
mod cache_rfc;
mod cancel;
mod common;
mod compression;
mod crowds;
mod examples;
mod failover;
mod fleet;
mod framing;
mod h2_attacks;
mod http1;
mod http3;
mod incidents;
mod keepalive;
mod lifecycle;
mod limits;
mod origin_dns;
mod origin_tls;
mod proxying;
mod redis;
mod routes;
mod shield;
mod slow_readers;
mod strange;
mod tls_h2;
mod tunnels;
mod visitors;
