//! Delay in user space (this kernel has no netem): a UDP forwarder that holds every datagram
//! for a fixed time each way. It listens on one address; each client address that writes to
//! it gets its own socket towards the upstream server, so the server sees one peer per client
//! and its answers find their way back.
//!
//! It runs on a thread of its own inside a namespace ([`Netns::spawn_thread`]), with a
//! single-threaded tokio runtime: a datagram read is stamped with the time it is due and put in
//! a bounded queue; a sender per direction waits until that time and sends it. The delay is the
//! same for every datagram of a direction, so the queues stay in order. A full queue drops
//! what arrives, as a router's would, and counts it. Tokio's timer ticks in milliseconds: each
//! datagram is held up to a millisecond longer than asked.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::netns::Netns;

/// Datagrams held at once in each direction, at most.
const QUEUE: usize = 8192;
/// Clients (source addresses) served at once, at most; more are dropped.
const MAX_CLIENTS: usize = 256;
/// Largest datagram forwarded.
const MAX_DATAGRAM: usize = 65_535;
/// Socket buffers asked of the kernel (as root, beyond `rmem_max`): a burst of a fast
/// sender must not overflow them while the forwarder thread waits for a core.
const SOCKET_BUFFER: libc::c_int = 8 * 1024 * 1024;

/// What went through a forwarder so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Client to upstream: datagrams and bytes sent on.
    pub up_datagrams: u64,
    pub up_bytes: u64,
    /// Upstream to client.
    pub down_datagrams: u64,
    pub down_bytes: u64,
    /// Dropped because a queue was full or there were too many clients.
    pub dropped: u64,
}

#[derive(Default)]
struct Shared {
    /// One-way delay, in microseconds.
    delay_us: AtomicU64,
    up_datagrams: AtomicU64,
    up_bytes: AtomicU64,
    down_datagrams: AtomicU64,
    down_bytes: AtomicU64,
    dropped: AtomicU64,
}

/// A running forwarder; dropping it stops it.
pub struct Forwarder {
    pub listen: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Forwarder {
    /// Starts a forwarder in `ns` listening on `listen`, sending what clients write to
    /// `upstream`, holding each datagram `one_way` in each direction.
    pub fn start(
        ns: &Netns,
        listen: SocketAddr,
        upstream: SocketAddr,
        one_way: Duration,
    ) -> anyhow::Result<Forwarder> {
        let shared = Arc::new(Shared::default());
        shared
            .delay_us
            .store(one_way.as_micros() as u64, Ordering::Relaxed);
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_shared = shared.clone();
        let thread = ns.spawn_thread("delay-forwarder", move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the forwarder's runtime")?;
            rt.block_on(async move {
                let socket = match bind(listen) {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        Arc::new(s)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Ok(());
                    }
                };
                tokio::select! {
                    _ = stop_rx => {}
                    () = run(socket, upstream, thread_shared) => {}
                }
                Ok(())
            })
        })?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e.context(format!("the delay forwarder cannot listen on {listen}")));
            }
            Err(_) => {
                let why = match thread.join() {
                    Ok(Err(e)) => format!("{e:#}"),
                    _ => "its thread ended".into(),
                };
                anyhow::bail!("the delay forwarder on {listen} did not start: {why}");
            }
        }
        Ok(Forwarder {
            listen,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// Changes the one-way delay of datagrams read from now on.
    pub fn set_delay(&self, one_way: Duration) {
        self.shared
            .delay_us
            .store(one_way.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        Counts {
            up_datagrams: s.up_datagrams.load(Ordering::Relaxed),
            up_bytes: s.up_bytes.load(Ordering::Relaxed),
            down_datagrams: s.down_datagrams.load(Ordering::Relaxed),
            down_bytes: s.down_bytes.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A non-blocking UDP socket on `addr` with large buffers, registered with the runtime.
fn bind(addr: SocketAddr) -> anyhow::Result<UdpSocket> {
    use std::os::fd::AsRawFd;
    let socket = std::net::UdpSocket::bind(addr).with_context(|| format!("cannot bind {addr}"))?;
    for (force, plain) in [
        (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
        (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
    ] {
        let size = SOCKET_BUFFER;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let ptr = (&size as *const libc::c_int).cast();
        // SAFETY: setsockopt(2) with a pointer to a live c_int and its size; best effort.
        unsafe {
            if libc::setsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, force, ptr, len) != 0 {
                libc::setsockopt(socket.as_raw_fd(), libc::SOL_SOCKET, plain, ptr, len);
            }
        }
    }
    socket.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(socket)?)
}

/// Where a held datagram goes.
enum To {
    /// Up, on the client's own socket towards the server.
    Upstream(Arc<UdpSocket>),
    /// Down, from the listening socket to this client.
    Client(SocketAddr),
}

struct Held {
    due: Instant,
    to: To,
    data: Vec<u8>,
}

impl Shared {
    fn due(&self) -> Instant {
        Instant::now() + Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }

    fn hold(&self, queue: &mpsc::Sender<Held>, to: To, data: &[u8]) {
        let held = Held {
            due: self.due(),
            to,
            data: data.to_vec(),
        };
        if queue.try_send(held).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn run(listen: Arc<UdpSocket>, upstream: SocketAddr, shared: Arc<Shared>) {
    let (up_tx, up_rx) = mpsc::channel::<Held>(QUEUE);
    let (down_tx, down_rx) = mpsc::channel::<Held>(QUEUE);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(send_held(up_rx, listen.clone(), shared.clone()));
    tasks.spawn(send_held(down_rx, listen.clone(), shared.clone()));
    let local = if upstream.ip().is_loopback() {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    let mut clients: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let Ok((n, from)) = listen.recv_from(&mut buf).await else {
            continue;
        };
        let socket = match clients.get(&from) {
            Some(s) => s.clone(),
            None => {
                if clients.len() >= MAX_CLIENTS {
                    shared.dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let Ok(socket) = bind(SocketAddr::from((local, 0))) else {
                    continue;
                };
                if socket.connect(upstream).await.is_err() {
                    continue;
                }
                let socket = Arc::new(socket);
                tasks.spawn(read_upstream(
                    socket.clone(),
                    from,
                    down_tx.clone(),
                    shared.clone(),
                ));
                clients.insert(from, socket.clone());
                socket
            }
        };
        shared.hold(&up_tx, To::Upstream(socket), &buf[..n]);
    }
}

/// Reads what the server sends to one client and holds it for the way down.
async fn read_upstream(
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    down: mpsc::Sender<Held>,
    shared: Arc<Shared>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        // An error is the server's port closed (ICMP): keep listening, as a network would.
        if let Ok(n) = socket.recv(&mut buf).await {
            shared.hold(&down, To::Client(client), &buf[..n]);
        }
    }
}

/// Sends each held datagram once it is due.
async fn send_held(mut queue: mpsc::Receiver<Held>, listen: Arc<UdpSocket>, shared: Arc<Shared>) {
    while let Some(held) = queue.recv().await {
        tokio::time::sleep_until(held.due).await;
        let n = held.data.len() as u64;
        // A failed send is a lost datagram, as on a network.
        match held.to {
            To::Upstream(socket) => {
                if socket.send(&held.data).await.is_ok() {
                    shared.up_datagrams.fetch_add(1, Ordering::Relaxed);
                    shared.up_bytes.fetch_add(n, Ordering::Relaxed);
                }
            }
            To::Client(addr) => {
                if listen.send_to(&held.data, addr).await.is_ok() {
                    shared.down_datagrams.fetch_add(1, Ordering::Relaxed);
                    shared.down_bytes.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
    }
}
