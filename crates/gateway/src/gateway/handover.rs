//! The binary upgrade's handover, over a Unix socket, as Sōzu and Pingora pass listeners:
//! the old process listens on a socket in a directory of its own (mode 0700) and names it to
//! the new one in `HOLDFAST_UPGRADE`; the new process connects; the old one checks that the
//! peer is the process it started (SO_PEERCRED), then sends an [`Offer`]: every listening
//! socket (SCM_RIGHTS, one message) and, as JSON, their keys and what else crosses
//! ([`Carried`]). The new process answers one [`Reply`] line: ready, or why it failed.
//!
//! Wire format: a 4-byte big-endian length sent with the descriptors attached, then that
//! many bytes of JSON; the reply is one JSON line. Everything goes through rustix's safe
//! `sendmsg`/`recvmsg`, so the descriptors arrive as `OwnedFd` and no `unsafe` is needed.

use crate::listen::set::{Inherited, Key};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Read, Write};
use std::mem::MaybeUninit;
use std::net::TcpListener as StdListener;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;

/// The environment variable that names the handover socket to a new binary.
pub(crate) const ENV: &str = "HOLDFAST_UPGRADE";
/// The most listening sockets one handover carries (the kernel's SCM_MAX_FD is 253).
const MAX_SOCKETS: usize = 250;
/// The most JSON an offer may be (blocks are bounded by the shield's tables).
const MAX_OFFER: usize = 64 << 20;

/// What the old process hands over.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Offer {
    /// The keys of the descriptors sent, in order.
    pub(crate) keys: Vec<Key>,
    pub(crate) carried: Carried,
}

/// What crosses to the new binary besides the sockets.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Carried {
    pub(crate) shield: crate::shield::Carried,
}

/// The new process's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    Ready { pid: u32 },
    Failed { error: String },
}

/// Sends the sockets and `carried` (blocking).
pub(crate) fn send_offer(stream: &UnixStream, sockets: &[(Key, StdListener)], carried: Carried) -> std::io::Result<()> {
    use rustix::net::{sendmsg, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    if sockets.len() > MAX_SOCKETS {
        return Err(std::io::Error::other(format!(
            "{} listeners: at most {MAX_SOCKETS} can be handed over",
            sockets.len()
        )));
    }
    let offer = Offer { keys: sockets.iter().map(|(k, _)| *k).collect(), carried };
    let json = serde_json::to_vec(&offer).map_err(std::io::Error::other)?;
    let len = (json.len() as u32).to_be_bytes();
    let fds: Vec<_> = sockets.iter().map(|(_, l)| l.as_fd()).collect();
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("the descriptors do not fit one message"));
    }
    let sent = sendmsg(stream, &[std::io::IoSlice::new(&len)], &mut control, SendFlags::NOSIGNAL)?;
    if sent != len.len() {
        return Err(std::io::Error::other("short handover header"));
    }
    (&*stream).write_all(&json)?;
    (&*stream).flush()
}

/// Receives what [`send_offer`] sent (blocking).
pub(crate) fn receive_offer(stream: &UnixStream) -> std::io::Result<(Inherited, Carried)> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut len = [0u8; 4];
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_SOCKETS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(stream, &mut [std::io::IoSliceMut::new(&mut len)], &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = msg {
            fds.extend(rights);
        }
    }
    if got.bytes != len.len() {
        (&*stream).read_exact(&mut len[got.bytes..])?;
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_OFFER {
        return Err(std::io::Error::other(format!("a handover of {n} bytes is more than {MAX_OFFER}")));
    }
    let mut json = vec![0u8; n];
    (&*stream).read_exact(&mut json)?;
    let offer: Offer = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
    if offer.keys.len() != fds.len() {
        return Err(std::io::Error::other(format!(
            "the handover names {} listeners and carried {} descriptors",
            offer.keys.len(),
            fds.len()
        )));
    }
    let handed = offer.keys.into_iter().zip(fds).map(|(k, fd)| (k, StdListener::from(fd))).collect();
    Ok((Inherited { handed, systemd: Vec::new() }, offer.carried))
}

/// Writes the new process's answer.
pub(crate) fn send_reply(stream: &UnixStream, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(reply).map_err(std::io::Error::other)?;
    line.push(b'\n');
    (&*stream).write_all(&line)
}

/// Reads the new process's answer (blocking; the stream's read timeout bounds it).
pub(crate) fn read_reply(stream: &UnixStream) -> std::io::Result<Reply> {
    let mut line = String::new();
    std::io::BufReader::new(stream.take(64 * 1024)).read_line(&mut line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "it closed the handover without an answer"));
    }
    serde_json::from_str(&line).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::set::Role;

    #[test]
    fn sockets_and_state_cross_and_the_sockets_still_accept() {
        let (old, new) = UnixStream::pair().unwrap();
        let a = StdListener::bind("127.0.0.1:0").unwrap();
        let b = StdListener::bind("127.0.0.1:0").unwrap();
        let (addr_a, addr_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let key = |role, nth| Key { role, configured: "127.0.0.1:0".parse().unwrap(), nth };
        let mut carried = Carried::default();
        carried.shield.secret = "s3cret".into();
        let sockets = vec![(key(Role::Http, 0), a), (key(Role::Admin, 0), b)];
        // A client waits in the accept queue while the sockets cross.
        let waiting = std::net::TcpStream::connect(addr_a).unwrap();
        send_offer(&old, &sockets, carried).unwrap();
        drop(sockets);
        let (inherited, carried) = receive_offer(&new).unwrap();
        assert_eq!(carried.shield.secret, "s3cret");
        assert_eq!(inherited.handed.len(), 2);
        let (k, l) = &inherited.handed[0];
        assert_eq!((k.role, l.local_addr().unwrap()), (Role::Http, addr_a));
        assert_eq!(inherited.handed[1].1.local_addr().unwrap(), addr_b);
        let (accepted, _) = l.accept().unwrap();
        assert_eq!(accepted.peer_addr().unwrap(), waiting.local_addr().unwrap(), "the queued client is accepted");
        send_reply(&new, &Reply::Ready { pid: 7 }).unwrap();
        assert!(matches!(read_reply(&old).unwrap(), Reply::Ready { pid: 7 }));
        drop(new);
        assert!(read_reply(&old).is_err(), "a closed handover is an error, not an answer");
    }

    #[test]
    fn an_offer_that_does_not_hold_together_is_refused() {
        let (old, new) = UnixStream::pair().unwrap();
        // A length with no JSON behind it, then the end.
        (&old).write_all(&5u32.to_be_bytes()).unwrap();
        (&old).write_all(b"{}").unwrap();
        drop(old);
        assert!(receive_offer(&new).is_err());
        let (old, new) = UnixStream::pair().unwrap();
        (&old).write_all(&u32::MAX.to_be_bytes()).unwrap();
        assert!(receive_offer(&new).unwrap_err().to_string().contains("more than"));
    }
}
