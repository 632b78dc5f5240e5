//! The set of listening sockets the gateway serves: which are open (http, https, admin,
//! status), opening them (binding, or taking a socket a new binary was handed or systemd
//! passed), changing them on reload (new ones start, removed ones stop, the rest are left
//! alone), and lending them to the binary upgrade ([`Listeners::sockets`]).
//!
//! Each open listener keeps a duplicate of its socket beside the task that accepts on it,
//! so that the socket outlives the task: a reload that moves an address to another role,
//! and an upgrade that hands the socket to a new process, never close it, and a connection
//! waiting in its accept queue is never refused.

use crate::config::Listen;
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The accept queue's length (as nginx's `backlog` on Linux, bounded by `somaxconn`).
const BACKLOG: i32 = 4096;

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Role {
    Http,
    Https,
    Admin,
    Status,
}

/// Which listener of the config a socket is: its role, its address as configured (a port 0
/// stays 0, whatever port it got), and its place among identical entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct Key {
    pub(crate) role: Role,
    pub(crate) configured: SocketAddr,
    pub(crate) nth: u16,
}

/// Every listener `listen` asks for, in order.
pub(crate) fn wanted(listen: &Listen) -> Vec<Key> {
    let mut keys: Vec<Key> = Vec::new();
    let mut add = |role, configured| {
        let nth = keys.iter().filter(|k| k.role == role && k.configured == configured).count() as u16;
        keys.push(Key { role, configured, nth });
    };
    listen.http.iter().for_each(|a| add(Role::Http, *a.get_ref()));
    listen.https.iter().for_each(|a| add(Role::Https, *a.get_ref()));
    listen.admin.into_iter().for_each(|a| add(Role::Admin, a));
    listen.status.into_iter().for_each(|a| add(Role::Status, a));
    keys
}

/// Starts serving one listener: the role, the socket, and the signal to stop accepting.
pub(crate) type Serve =
    Arc<dyn Fn(Role, tokio::net::TcpListener, watch::Receiver<bool>) -> JoinHandle<()> + Send + Sync>;

/// Sockets to take before binding: those a previous binary handed over (by key) and those
/// systemd passed (by address).
#[derive(Debug, Default)]
pub(crate) struct Inherited {
    pub(crate) handed: Vec<(Key, StdListener)>,
    pub(crate) systemd: Vec<StdListener>,
}

impl Inherited {
    /// The socket for `key`: the one handed over for it, else one (handed over or from
    /// systemd) bound to its address when that names a port.
    fn take(&mut self, key: &Key) -> Option<StdListener> {
        if let Some(i) = self.handed.iter().position(|(k, _)| k == key) {
            return Some(self.handed.remove(i).1);
        }
        if key.configured.port() == 0 {
            return None;
        }
        let at = |l: &StdListener| l.local_addr().ok() == Some(key.configured);
        if let Some(i) = self.handed.iter().position(|(_, l)| at(l)) {
            return Some(self.handed.remove(i).1);
        }
        let i = self.systemd.iter().position(at)?;
        Some(self.systemd.remove(i))
    }

    /// How many sockets no listener took (they are closed when this is dropped).
    pub(crate) fn left(&self) -> usize {
        self.handed.len() + self.systemd.len()
    }
}

struct Entry {
    key: Key,
    local: SocketAddr,
    /// A duplicate of the served socket (the same socket in the kernel).
    socket: StdListener,
    stop: watch::Sender<bool>,
    _task: JoinHandle<()>,
}

/// One listening socket, as /status.json shows it.
#[derive(Debug, Serialize)]
pub(crate) struct Listening {
    pub(crate) role: Role,
    pub(crate) addr: SocketAddr,
}

/// What a new `[listen]` needs: sockets to start serving, and listeners to stop.
pub(crate) struct Plan {
    start: Vec<(Key, StdListener)>,
    stop: Vec<Key>,
}

impl Plan {
    /// Whether the plan changes nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.start.is_empty() && self.stop.is_empty()
    }
}

/// The open listeners.
pub(crate) struct Listeners {
    entries: Mutex<Vec<Entry>>,
    serve: Serve,
}

impl Listeners {
    pub(crate) fn new(serve: Serve) -> Listeners {
        Listeners { entries: Mutex::new(Vec::new()), serve }
    }

    /// Opens what `listen` adds to the listeners open now (taking from `inherited` before
    /// binding), and names those it no longer has. Nothing changes until [`Listeners::commit`];
    /// on an error, every socket opened here is closed again.
    pub(crate) fn plan(&self, listen: &Listen, inherited: &mut Inherited) -> Result<Plan, String> {
        let wanted = wanted(listen);
        let entries = self.entries.lock().map_err(|_| "listeners: lock poisoned".to_string())?;
        let stop: Vec<Key> = entries.iter().filter(|e| !wanted.contains(&e.key)).map(|e| e.key).collect();
        let mut start = Vec::new();
        for key in wanted.iter().filter(|k| !entries.iter().any(|e| e.key == **k)) {
            // An address that moves from a stopping listener to a new one keeps its socket.
            let moving = entries
                .iter()
                .find(|e| key.configured.port() != 0 && e.local == key.configured && stop.contains(&e.key));
            let socket = match moving {
                Some(e) => e.socket.try_clone().map_err(|e| format!("cannot keep {}: {e}", key.configured))?,
                None => match inherited.take(key) {
                    Some(s) => s,
                    None => bind(key.configured)?,
                },
            };
            start.push((*key, socket));
        }
        Ok(Plan { start, stop })
    }

    /// Stops the listeners the plan names and starts the new ones. A stopped listener
    /// accepts no more; its connections go on to their end.
    pub(crate) fn commit(&self, plan: Plan) -> Result<(), String> {
        let Ok(mut entries) = self.entries.lock() else { return Err("listeners: lock poisoned".into()) };
        entries.retain(|e| {
            let keep = !plan.stop.contains(&e.key);
            if !keep {
                let _ = e.stop.send(true);
                tracing::info!(role = ?e.key.role, addr = %e.local, "listener stopped");
            }
            keep
        });
        for (key, socket) in plan.start {
            let local = socket.local_addr().map_err(|e| format!("listener {}: {e}", key.configured))?;
            let served = socket
                .try_clone()
                .and_then(|s| {
                    s.set_nonblocking(true)?;
                    tokio::net::TcpListener::from_std(s)
                })
                .map_err(|e| format!("cannot serve {local}: {e}"))?;
            let (stop, stopping) = watch::channel(false);
            let task = (self.serve)(key.role, served, stopping);
            match key.role {
                Role::Http => tracing::info!(addr = %local, tls = false, "listening"),
                Role::Https => tracing::info!(addr = %local, tls = true, "listening"),
                Role::Admin => tracing::info!(addr = %local, "admin listening"),
                Role::Status => tracing::info!(addr = %local, "status page listening"),
            }
            entries.push(Entry { key, local, socket, stop, _task: task });
        }
        Ok(())
    }

    /// Stops accepting on every listener and closes this process's copies of the sockets
    /// (a new binary that took them goes on accepting).
    pub(crate) fn close_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            for e in entries.drain(..) {
                let _ = e.stop.send(true);
            }
        }
    }

    /// The addresses the listeners of `role` are bound to, in config order.
    pub(crate) fn addrs(&self, role: Role) -> Vec<SocketAddr> {
        let Ok(entries) = self.entries.lock() else { return Vec::new() };
        let mut found: Vec<(Key, SocketAddr)> =
            entries.iter().filter(|e| e.key.role == role).map(|e| (e.key, e.local)).collect();
        found.sort_by_key(|(k, _)| k.nth);
        found.into_iter().map(|(_, a)| a).collect()
    }

    /// What is listening, for /status.json.
    pub(crate) fn listing(&self) -> Vec<Listening> {
        let Ok(entries) = self.entries.lock() else { return Vec::new() };
        entries.iter().map(|e| Listening { role: e.key.role, addr: e.local }).collect()
    }

    /// Duplicates of every listening socket, with their keys (for a new binary).
    pub(crate) fn sockets(&self) -> std::io::Result<Vec<(Key, StdListener)>> {
        let Ok(entries) = self.entries.lock() else { return Err(std::io::Error::other("listeners: lock poisoned")) };
        entries.iter().map(|e| Ok((e.key, e.socket.try_clone()?))).collect()
    }
}

/// Binds a listening socket as the gateway wants it: SO_REUSEADDR (a restart binds again
/// at once, while old connections sit in TIME_WAIT) and a long accept queue.
fn bind(addr: SocketAddr) -> Result<StdListener, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let open = || -> std::io::Result<StdListener> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG)?;
        Ok(socket.into())
    };
    open().map_err(|e| format!("cannot listen on {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(http: &[&str], admin: Option<&str>) -> Listen {
        let list = http.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ");
        let mut l: Listen = toml::from_str(&format!("http = [{list}]\n")).unwrap();
        l.admin = admin.map(|a| a.parse().unwrap());
        l
    }

    fn counting() -> (Serve, Arc<std::sync::atomic::AtomicUsize>) {
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let s = served.clone();
        let serve: Serve = Arc::new(move |_, l, mut stop| {
            s.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tokio::spawn(async move {
                let _l = l;
                let _ = stop.changed().await;
            })
        });
        (serve, served)
    }

    #[tokio::test]
    async fn a_reload_starts_new_listeners_stops_removed_ones_and_leaves_the_rest() {
        let (serve, served) = counting();
        let set = Listeners::new(serve);
        let first = listen(&["127.0.0.1:0", "127.0.0.1:0"], Some("127.0.0.1:0"));
        let plan = set.plan(&first, &mut Inherited::default()).unwrap();
        set.commit(plan).unwrap();
        let http = set.addrs(Role::Http);
        assert_eq!(http.len(), 2, "two identical entries are two listeners");
        assert_ne!(http[0], http[1]);
        // The same config again: nothing to do.
        assert!(set.plan(&first, &mut Inherited::default()).unwrap().is_empty());
        // One http listener fewer, the admin gone, a fixed port added.
        let fixed = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let second = listen(&["127.0.0.1:0", &fixed.to_string()], None);
        let plan = set.plan(&second, &mut Inherited::default()).unwrap();
        set.commit(plan).unwrap();
        assert_eq!(set.addrs(Role::Http), vec![http[0], fixed]);
        assert!(set.addrs(Role::Admin).is_empty());
        assert_eq!(served.load(std::sync::atomic::Ordering::Relaxed), 4);
        // The stopped second listener's port refuses once its task has let go of it.
        let refused = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while std::net::TcpStream::connect(http[1]).is_ok() {
                tokio::task::yield_now().await;
            }
        });
        assert!(refused.await.is_ok(), "a removed listener closes");
        // An address that cannot be bound fails the plan and changes nothing.
        let taken = StdListener::bind("127.0.0.1:0").unwrap();
        let third = listen(&[&taken.local_addr().unwrap().to_string()], None);
        let err = set.plan(&third, &mut Inherited::default()).err().unwrap_or_default();
        assert!(err.contains("cannot listen on"), "{err}");
        assert_eq!(set.addrs(Role::Http), vec![http[0], fixed]);
    }

    #[tokio::test]
    async fn an_inherited_socket_is_taken_by_key_or_by_address_before_binding() {
        let (serve, _) = counting();
        let set = Listeners::new(serve);
        let handed = StdListener::bind("127.0.0.1:0").unwrap();
        let by_addr = StdListener::bind("127.0.0.1:0").unwrap();
        let (a, b) = (handed.local_addr().unwrap(), by_addr.local_addr().unwrap());
        let key = Key { role: Role::Http, configured: "127.0.0.1:0".parse().unwrap(), nth: 0 };
        let mut inherited = Inherited { handed: vec![(key, handed)], systemd: vec![by_addr] };
        let cfg = listen(&["127.0.0.1:0"], Some(&b.to_string()));
        let plan = set.plan(&cfg, &mut inherited).unwrap();
        set.commit(plan).unwrap();
        assert_eq!(set.addrs(Role::Http), vec![a]);
        assert_eq!(set.addrs(Role::Admin), vec![b]);
        assert_eq!(inherited.left(), 0);
    }
}
