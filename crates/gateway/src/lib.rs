//! holdfast-gateway: the edge gateway. Start one with [`Gateway::start`] on a [`config::File`]
//! loaded by [`config::load_file`] or [`config::parse_str`]. Everything else is the crate's
//! own; docs/architecture.md is the map of its modules and of the direction they depend in.

mod acme;
mod admin;
mod body;
mod cache;
mod clock;
mod codec;
mod compress;
pub mod config;
mod fleet;
mod gateway;
mod incident;
mod listen;
mod pages;
mod proxy;
mod reload;
mod route;
mod shield;
mod snapshot;
mod status;
mod telemetry;
mod tls;
mod upstream;
mod util;

pub use gateway::{run, upgrade, Gateway};

/// Checks what [`Gateway::start`] would refuse in a loaded config beyond what the loader
/// checks, without binding anything: every site's certificate and key load, and every
/// pool's TLS to its origins (CA file, client certificate and key).
pub fn check(file: &config::File) -> Result<(), config::ConfigError> {
    tls::site_keys(file)?;
    for site in &file.sites {
        let pools = site.pools.iter().chain(site.routes.iter().flat_map(|r| &r.pools));
        for tls in pools.filter_map(|p| p.tls.as_ref()) {
            upstream::tls::build(file, site.name.get_ref(), tls)?;
        }
    }
    Ok(())
}

/// The proof-of-work challenge as a client solves it (the drill's shoppers do, as a browser
/// would run the page's script).
pub mod challenge {
    pub use crate::shield::challenge::{solve, VERIFY_PATH};
}
