//! The fill of the cache, apart from the client that asked: an origin's body read in a
//! task of its own at the origin's pace into a [`Filling`], stored when it has come in
//! whole, its connection then back in the origin's pool. The client's response body reads
//! the `Filling` ([`Reader`]) at the client's pace, so a client that reads slowly (or not at
//! all: an HTTP/2 stream with a zero window) slows only itself; the requests collapsed
//! behind the fill wait for the origin, not for it. The client going away does not stop a
//! fill being stored.
//!
//! Bounded: a body is kept for the store up to the cache's `max_object_bytes`, and all the
//! bodies a site's cache is filling together up to the cache's size; past either it is not
//! stored but passed on to its reader (at most [`PASS_WINDOW`] ahead of it), and not read
//! further once nobody reads it.
//!
//! [`PASS_WINDOW`]: crate::cache::filling::PASS_WINDOW

use crate::cache::filling::{Filling, Reader, Wrote};
use crate::cache::{SiteCache, Tee};
use crate::compress::Encoder;
use crate::upstream::http1::{OriginBody, OriginBodyError};
use crate::upstream::InFlight;
use http_body_util::BodyExt;
use std::sync::Arc;

/// Starts filling the cache from `body` (its response stored through `tee`), compressed by
/// `encoder` if it has one (the cache keeps the compressed form); the reader is for the
/// client that asked, if one still wants the body.
pub(crate) fn start(body: OriginBody, tee: Box<Tee>, at_origin: InFlight, encoder: Option<Encoder>) -> Reader {
    let encoder = encoder.map(Box::new);
    let declared = if encoder.is_some() { None } else { http_body::Body::size_hint(&body).exact() };
    let filling = Filling::new(declared, true);
    let reader = Reader::new(filling.clone());
    tokio::spawn(run(body, tee, filling, at_origin, encoder));
    reader
}

/// Bytes of a body held against the cache's filling bound; given back when dropped.
struct Held {
    cache: Arc<SiteCache>,
    bytes: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.cache.give_filling(self.bytes);
    }
}

async fn run(
    mut body: OriginBody,
    tee: Box<Tee>,
    filling: Arc<Filling>,
    at_origin: InFlight,
    mut encoder: Option<Box<Encoder>>,
) {
    let coded = encoder.is_some();
    let cache = tee.cache.clone();
    let max = cache.max_object;
    let mut tee = Some(tee);
    let mut held = Held { cache: cache.clone(), bytes: 0 };
    let ended = loop {
        if !filling.room().await {
            return; // not stored, and nobody reads it: dropping the body closes its connection
        }
        let next = if coded {
            // Stored in its coded form (`compress::poll_coded`, as a streamed response is).
            std::future::poll_fn(|cx| crate::compress::poll_coded(&mut body, &mut encoder, cx)).await.map(|r| {
                r.map_err(|e| e.downcast_ref::<OriginBodyError>().map_or("compression failed", |e| e.reason()))
            })
        } else {
            body.frame().await.map(|r| r.map_err(|e| e.reason()))
        };
        let data = match next {
            None => break Ok(()),
            Some(Err(reason)) => break Err(reason),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => data,
                Err(_) => continue, // trailers: not stored, not passed on
            },
        };
        let n = data.len() as u64;
        // Kept only while this body, and all those being filled, stay within bounds (a
        // bound of 0 ends the keeping).
        let room = tee.is_some() && cache.take_filling(n);
        if room {
            held.bytes += n;
        }
        match filling.write(data, if room { max } else { 0 }) {
            Wrote::More => {}
            Wrote::TooLarge => {
                // Not stored: the requests waiting for it go to the origin by themselves.
                tee = None;
                cache.give_filling(std::mem::take(&mut held.bytes));
            }
            Wrote::Unwanted => return,
        }
    };
    let whole = filling.end(ended);
    if let (Some(body), Some(tee)) = (whole, tee) {
        tee.finish(body);
    }
    drop(held);
    if let Some(conn) = body.take_reusable() {
        at_origin.origin().conns.checkin(conn, tokio::time::Instant::now());
    }
    drop(at_origin);
}
