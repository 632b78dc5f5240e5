//! holdfast-gateway: the edge gateway. Start with [`gateway::Gateway::start`]; the request
//! path is [`proxy::handle`]. See docs/architecture.md for the module map.

pub mod admin;
pub mod cache;
pub mod clock;
pub mod config;
pub mod events;
pub mod framing;
pub mod gateway;
pub mod listen;
pub mod metrics;
pub mod pages;
pub mod proxy;
pub mod record;
pub mod route;
pub mod shield;
pub mod snapshot;
pub mod upstream;
mod util;

pub use gateway::Gateway;
