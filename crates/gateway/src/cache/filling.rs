//! An object on its way into the cache (Varnish's model): the fill writes the origin's body
//! into it at the origin's pace; the client that asked for it reads it at its own.
//!
//! Before, the client's own reading drove the origin's body into the cache: a client that
//! read slowly (an HTTP/2 stream with a zero window, say) made the fill as slow as itself,
//! and every request collapsed behind that fill waited for it. Now the fill never waits for
//! the reader while the body is being stored: the reader is a cursor over what has arrived.
//!
//! Memory: a body being stored is held whole, at most `max_object_bytes` (the fill stops
//! storing past it); a body not stored (too large, or the cache declined it) is passed on
//! with at most [`PASS_WINDOW`] bytes unread, the fill waiting for the reader beyond that,
//! as a plain proxied body does. A body that is not stored and whose reader has gone is not
//! read further: nobody wants it.

use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Bytes a body that is not stored may run ahead of its reader.
pub(crate) const PASS_WINDOW: u64 = 256 * 1024;

/// The body of one response on its way in: written by the fill, read by one client.
#[derive(Debug)]
pub(crate) struct Filling {
    state: Mutex<State>,
    /// Wakes a fill waiting for its reader to take data (a body that is not stored).
    room: tokio::sync::Notify,
    /// Bytes the origin declared (Content-Length), if it did.
    declared: Option<u64>,
}

#[derive(Debug, Default)]
struct State {
    /// What has arrived and is still held: all of it while the body is kept for the
    /// store; else what the reader has not taken yet.
    chunks: VecDeque<Bytes>,
    /// While kept, the index in `chunks` of the next chunk the reader takes.
    next: usize,
    written: u64,
    read: u64,
    /// The body is kept whole (it is being stored).
    keep: bool,
    /// How the body ended: whole, or broken (why).
    end: Option<Result<(), &'static str>>,
    reader: Option<Waker>,
    reader_gone: bool,
}

/// What the fill should do after writing a chunk.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wrote {
    /// Go on reading the origin.
    More,
    /// The body is no longer kept for the store (it grew past `max_object_bytes`).
    TooLarge,
    /// Nobody reads it and it is not stored: stop.
    Unwanted,
}

impl Filling {
    /// A body of `declared` bytes (if known), kept for the store when `keep`.
    pub(crate) fn new(declared: Option<u64>, keep: bool) -> Arc<Filling> {
        Arc::new(Filling {
            state: Mutex::new(State { keep, ..State::default() }),
            room: tokio::sync::Notify::new(),
            declared,
        })
    }

    /// The fill's side: a chunk arrived. `max` bounds what is kept for the store.
    pub(crate) fn write(&self, data: Bytes, max: usize) -> Wrote {
        let Ok(mut s) = self.state.lock() else { return Wrote::Unwanted };
        s.written += data.len() as u64;
        if !data.is_empty() {
            s.chunks.push_back(data);
        }
        let mut wrote = Wrote::More;
        if s.keep && s.written > max as u64 {
            // No longer stored: what the reader took goes now.
            s.keep = false;
            let next = s.next;
            s.chunks.drain(..next);
            s.next = 0;
            wrote = Wrote::TooLarge;
        }
        if !s.keep && s.reader_gone {
            wrote = Wrote::Unwanted;
        }
        if let Some(w) = s.reader.take() {
            w.wake();
        }
        wrote
    }

    /// The fill's side: waits while a body that is not stored is [`PASS_WINDOW`] ahead of
    /// its reader. False when the reader has gone (stop reading the origin).
    pub(crate) async fn room(&self) -> bool {
        loop {
            let notified = self.room.notified();
            {
                let Ok(s) = self.state.lock() else { return false };
                if s.reader_gone {
                    return s.keep;
                }
                if s.keep || s.written - s.read <= PASS_WINDOW {
                    return true;
                }
            }
            notified.await;
        }
    }

    /// The fill's side: the body ended, whole or not. When it was kept whole, returns it
    /// (one buffer, which the reader then goes on reading from).
    pub(crate) fn end(&self, result: Result<(), &'static str>) -> Option<Bytes> {
        let Ok(mut s) = self.state.lock() else { return None };
        s.end = Some(result);
        let mut whole = None;
        if s.keep && result.is_ok() {
            let body = concat(&s.chunks, s.written);
            // The reader goes on from where it is, in the stored buffer.
            let at = (s.read as usize).min(body.len());
            s.chunks = VecDeque::from([body.slice(at..)]);
            s.chunks.retain(|c| !c.is_empty());
            s.next = 0;
            whole = Some(body);
        } else if s.keep {
            // Broken while kept: what the reader took goes; it reads on from where it is.
            let next = s.next;
            s.chunks.drain(..next);
            s.next = 0;
        }
        s.keep = false;
        if let Some(w) = s.reader.take() {
            w.wake();
        }
        whole
    }
}

/// Chunks joined into one buffer (no copy for one chunk).
fn concat(chunks: &VecDeque<Bytes>, len: u64) -> Bytes {
    if chunks.len() == 1 {
        return chunks[0].clone();
    }
    let mut out = bytes::BytesMut::with_capacity(len as usize);
    for c in chunks {
        out.extend_from_slice(c);
    }
    out.freeze()
}

/// The client's side of a [`Filling`]: it reads at its own pace.
#[derive(Debug)]
pub(crate) struct Reader(Arc<Filling>);

impl Reader {
    pub(crate) fn new(filling: Arc<Filling>) -> Reader {
        Reader(filling)
    }

    /// The next chunk; None at the end of a whole body; Err when the body broke.
    pub(crate) fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, &'static str>>> {
        let Ok(mut s) = self.0.state.lock() else { return Poll::Ready(Some(Err("poisoned"))) };
        let chunk = if s.keep {
            let next = s.next;
            let c = s.chunks.get(next).cloned();
            if c.is_some() {
                s.next += 1;
            }
            c
        } else {
            s.chunks.pop_front()
        };
        if let Some(c) = chunk {
            s.read += c.len() as u64;
            let keep = s.keep;
            drop(s);
            if !keep {
                self.0.room.notify_one();
            }
            return Poll::Ready(Some(Ok(c)));
        }
        match s.end {
            Some(Ok(())) => Poll::Ready(None),
            Some(Err(why)) => Poll::Ready(Some(Err(why))),
            None => {
                s.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Everything has been read and the body ended whole.
    pub(crate) fn is_end(&self) -> bool {
        self.0.state.lock().is_ok_and(|s| s.end == Some(Ok(())) && s.read == s.written)
    }

    /// Bytes left to read, when the origin declared its length.
    pub(crate) fn remaining(&self) -> Option<u64> {
        let read = self.0.state.lock().map_or(0, |s| s.read);
        self.0.declared.map(|d| d.saturating_sub(read))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.reader_gone = true;
            // A kept body is still being stored: its chunks are the store's to come.
            if !s.keep {
                s.chunks.clear();
            }
        }
        self.0.room.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    fn poll(r: &mut Reader) -> Poll<Option<Result<Bytes, &'static str>>> {
        let waker = std::task::Waker::noop();
        r.poll_chunk(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_kept_body_is_written_whole_without_its_reader_and_read_after() {
        let f = Filling::new(Some(6), true);
        let mut r = Reader::new(f.clone());
        assert_eq!(f.write(Bytes::from_static(b"abc"), 100), Wrote::More);
        assert_eq!(poll(&mut r), Poll::Ready(Some(Ok(Bytes::from_static(b"abc")))));
        assert_eq!(poll(&mut r), Poll::Pending);
        assert_eq!(f.write(Bytes::from_static(b"def"), 100), Wrote::More);
        let whole = f.end(Ok(())).unwrap();
        assert_eq!(&whole[..], b"abcdef", "the stored body is all of it, the part read included");
        assert_eq!(poll(&mut r), Poll::Ready(Some(Ok(Bytes::from_static(b"def")))));
        assert!(r.is_end());
        assert_eq!(poll(&mut r), Poll::Ready(None));
    }

    #[test]
    fn a_reader_that_leaves_does_not_stop_a_kept_body() {
        let f = Filling::new(None, true);
        drop(Reader::new(f.clone()));
        assert_eq!(f.write(Bytes::from_static(b"abc"), 100), Wrote::More);
        assert_eq!(f.end(Ok(())).as_deref(), Some(&b"abc"[..]));
    }

    #[test]
    fn a_body_past_the_object_limit_is_passed_on_not_kept() {
        let f = Filling::new(None, true);
        let mut r = Reader::new(f.clone());
        assert_eq!(f.write(Bytes::from_static(b"abcd"), 6), Wrote::More);
        assert!(matches!(poll(&mut r), Poll::Ready(Some(Ok(_)))));
        assert_eq!(f.write(Bytes::from_static(b"efgh"), 6), Wrote::TooLarge);
        assert_eq!(f.state.lock().unwrap().chunks.len(), 1, "what was read is let go");
        assert_eq!(poll(&mut r), Poll::Ready(Some(Ok(Bytes::from_static(b"efgh")))));
        assert_eq!(f.end(Ok(())), None, "not stored");
        assert_eq!(poll(&mut r), Poll::Ready(None));
        // Without a reader it is not wanted at all.
        let f = Filling::new(None, false);
        drop(Reader::new(f.clone()));
        assert_eq!(f.write(Bytes::from_static(b"x"), 6), Wrote::Unwanted);
    }

    #[tokio::test]
    async fn a_passed_on_body_waits_for_its_reader_beyond_the_window() {
        let f = Filling::new(None, false);
        let mut r = Reader::new(f.clone());
        let chunk = Bytes::from(vec![0u8; PASS_WINDOW as usize]);
        f.write(chunk.clone(), 0);
        assert!(f.room().await, "up to the window");
        f.write(Bytes::from_static(b"more"), 0);
        let waiting = tokio::spawn({
            let f = f.clone();
            async move { f.room().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "ahead of the reader by more than the window");
        assert!(matches!(poll(&mut r), Poll::Ready(Some(Ok(_)))));
        assert!(waiting.await.unwrap(), "room once the reader took some");
        drop(r);
        assert!(!f.room().await, "a reader that left wants no more");
    }

    #[test]
    fn a_broken_body_is_an_error_for_its_reader() {
        let f = Filling::new(Some(10), true);
        let mut r = Reader::new(f.clone());
        f.write(Bytes::from_static(b"abc"), 100);
        assert_eq!(poll(&mut r), Poll::Ready(Some(Ok(Bytes::from_static(b"abc")))));
        f.write(Bytes::from_static(b"def"), 100);
        assert_eq!(f.end(Err("closed before its end")), None, "never stored");
        assert_eq!(poll(&mut r), Poll::Ready(Some(Ok(Bytes::from_static(b"def")))), "nothing read twice");
        assert_eq!(poll(&mut r), Poll::Ready(Some(Err("closed before its end"))));
        assert_eq!(r.remaining(), Some(4));
    }
}
