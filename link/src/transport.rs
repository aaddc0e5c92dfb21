//! QUIC transport settings shared by every endpoint of the system.
//!
//! Keep-alives run on both ends so that a dead peer is noticed by the idle timeout. The relay's
//! idle timeout is short (see its configuration): QUIC uses the smaller of the two ends' values,
//! so the relay decides how fast a vanished peer is detected. Receive windows hold a whole
//! 1080p update (8,294,400 bytes raw) in flight on one stream.

use std::sync::Arc;
use std::time::Duration;

use quinn::{IdleTimeout, TransportConfig, VarInt};

/// Window for one stream: a raw 1080p update fits with room to spare.
pub const STREAM_WINDOW: u32 = 16 * 1024 * 1024;
/// Window for a whole connection: a few updates in flight.
pub const CONNECTION_WINDOW: u32 = 48 * 1024 * 1024;
/// Streams a peer may open at once: the session stream plus screen updates in flight.
pub const MAX_BIDI_STREAMS: u32 = 4;
pub const MAX_UNI_STREAMS: u32 = 16;

/// Keep-alive interval of the peers. The relay sends none of its own: its acknowledgements of
/// these keep the peers' timers alive, and a keep-alive from the relay to a vanished peer would
/// restart the relay's idle timer and delay noticing that it vanished.
pub const CLIENT_KEEP_ALIVE: Duration = Duration::from_millis(150);
/// Idle timeout clients ask for; the relay's shorter one wins.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Transport settings with the given idle timeout and keep-alive interval (`None`: no
/// keep-alives from this end).
pub fn transport_config(
    idle_timeout: Duration,
    keep_alive: Option<Duration>,
) -> Arc<TransportConfig> {
    Arc::new(settings(idle_timeout, keep_alive))
}

fn settings(idle_timeout: Duration, keep_alive: Option<Duration>) -> TransportConfig {
    let mut t = TransportConfig::default();
    t.max_idle_timeout(Some(
        IdleTimeout::try_from(idle_timeout).unwrap_or(IdleTimeout::from(VarInt::from_u32(10_000))),
    ));
    t.keep_alive_interval(keep_alive);
    t.stream_receive_window(VarInt::from_u32(STREAM_WINDOW));
    t.receive_window(VarInt::from_u32(CONNECTION_WINDOW));
    t.send_window(u64::from(CONNECTION_WINDOW));
    t.max_concurrent_bidi_streams(VarInt::from_u32(MAX_BIDI_STREAMS));
    t.max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS));
    t.datagram_receive_buffer_size(Some(64 * 1024));
    t.datagram_send_buffer_size(64 * 1024);
    t
}

/// The relay's transport settings: as [`transport_config`], but a new connection starts with
/// `unpaired_window` bytes of connection flow control, no unidirectional streams and only the
/// control stream, so that a peer that has proved nothing cannot make the relay hold more than
/// that for it. The relay raises the limits once the peer logs in or is paired.
pub fn relay_transport_config(
    idle_timeout: Duration,
    keep_alive: Option<Duration>,
    unpaired_window: u32,
) -> Arc<TransportConfig> {
    let mut t = settings(idle_timeout, keep_alive);
    // The stream window stays full size (it cannot be raised later): the connection window
    // bounds what all streams together may hold.
    t.receive_window(VarInt::from_u32(unpaired_window));
    t.send_window(u64::from(unpaired_window).max(64 * 1024));
    t.max_concurrent_bidi_streams(VarInt::from_u32(1));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    Arc::new(t)
}

/// Socket buffer size asked of the kernel. A 200 KB update is some 140 datagrams; the default
/// 208 KiB receive buffer overflows when one arrives while the process is busy, and every drop
/// costs a QUIC loss recovery. The kernel caps the request at its `rmem_max`/`wmem_max`.
pub const SOCKET_BUFFER: usize = 8 * 1024 * 1024;

/// A UDP socket bound to `addr` with large send and receive buffers, for a quinn endpoint.
pub fn udp_socket(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Accept IPv4-mapped peers too where the address is the unspecified one.
        let _ = socket.set_only_v6(false);
    }
    // Best effort: a smaller buffer still works, it only drops sooner under load.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    let granted = socket.recv_buffer_size().unwrap_or(0);
    tracing::debug!(%addr, recv_buffer = granted, "UDP socket bound");
    Ok(socket.into())
}

/// A quinn endpoint on [`udp_socket`], as a server when `server` is given.
pub fn endpoint(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    endpoint_with(addr, server, quinn::EndpointConfig::default())
}

/// As [`endpoint`], with stateless resets keyed by `reset_key` instead of a random key of this
/// process. A relay derives it from its stored identity, so that after a restart it still
/// recognises its earlier connections' packets and answers them with a stateless reset the peer
/// accepts: the peer learns at once that its connection is gone, instead of after the idle
/// timeout.
pub fn endpoint_with_reset_key(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
    reset_key: &[u8; 32],
) -> std::io::Result<quinn::Endpoint> {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, reset_key);
    endpoint_with(addr, server, quinn::EndpointConfig::new(Arc::new(key)))
}

fn endpoint_with(
    addr: std::net::SocketAddr,
    server: Option<quinn::ServerConfig>,
    config: quinn::EndpointConfig,
) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::new(
        config,
        server,
        udp_socket(addr)?,
        Arc::new(quinn::TokioRuntime),
    )
}
