//! A peer's connection to the relay: QUIC with the relay's certificate pinned, then the
//! control-plane handshake (hello, and register or join).

use std::net::SocketAddr;
use std::sync::Arc;

use protocol::control::{
    ErrorCode, FromRelay, PeerInfo, PeerLeftReason, Role, SessionCode, ToRelay,
};
use quinn::{ClientConfig, Connection, Endpoint};

use crate::channel::{ChannelError, FramedRecv, FramedSend};
use crate::tls::{self, Fingerprint};
use crate::transport;

/// What can go wrong between a peer and the relay, worded for the person running the peer.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot resolve relay address `{relay}`: {reason}")]
    Resolve { relay: String, reason: String },
    #[error("cannot connect to the relay at {relay}: {reason}")]
    Connect { relay: String, reason: String },
    #[error("the relay refused: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("the other side left: {0}")]
    PeerLeft(PeerLeftReason),
    #[error("the relay is shutting down")]
    RelayShuttingDown,
    #[error("the connection to the relay was lost: {0}")]
    ConnectionLost(String),
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
    #[error("{0}")]
    Channel(#[from] ChannelError),
    #[error("{0}")]
    PeerPlane(#[from] crate::sealed::PeerPlaneError),
}

/// An open connection to the relay with its control stream.
pub struct RelayConnection {
    pub endpoint: Endpoint,
    pub connection: Connection,
    pub control_send: FramedSend<ToRelay>,
    pub control_recv: FramedRecv<FromRelay>,
    pub relay_addr: SocketAddr,
    pub relay_software: String,
}

/// Resolves `HOST:PORT` to the first address it names.
pub async fn resolve(relay: &str) -> Result<SocketAddr, LinkError> {
    let mut addrs = tokio::net::lookup_host(relay)
        .await
        .map_err(|e| LinkError::Resolve {
            relay: relay.to_string(),
            reason: e.to_string(),
        })?;
    addrs.next().ok_or_else(|| LinkError::Resolve {
        relay: relay.to_string(),
        reason: "it names no address".into(),
    })
}

/// A client endpoint that trusts only the certificate with fingerprint `pin`.
pub fn client_endpoint(relay_addr: SocketAddr, pin: Fingerprint) -> std::io::Result<Endpoint> {
    let bind: SocketAddr = if relay_addr.is_ipv6() {
        "[::]:0".parse().expect("literal")
    } else {
        "0.0.0.0:0".parse().expect("literal")
    };
    let mut endpoint = transport::endpoint(bind, None)?;
    let tls = tls::pinned_client_config(pin).map_err(std::io::Error::other)?;
    let quic =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(std::io::Error::other)?;
    let mut cfg = ClientConfig::new(Arc::new(quic));
    cfg.transport_config(transport::transport_config(
        transport::CLIENT_IDLE_TIMEOUT,
        Some(transport::CLIENT_KEEP_ALIVE),
    ));
    endpoint.set_default_client_config(cfg);
    Ok(endpoint)
}

fn refused(code: ErrorCode, message: String) -> LinkError {
    LinkError::Refused { code, message }
}

impl RelayConnection {
    /// Connects to the relay at `relay` (`HOST:PORT`), checks its certificate against `pin`,
    /// and says hello as `role`.
    pub async fn connect(relay: &str, pin: Fingerprint, role: Role) -> Result<Self, LinkError> {
        let relay_addr = resolve(relay).await?;
        let endpoint = client_endpoint(relay_addr, pin).map_err(|e| LinkError::Connect {
            relay: relay.to_string(),
            reason: e.to_string(),
        })?;
        Self::connect_with(endpoint, relay_addr, role).await
    }

    /// Like [`RelayConnection::connect`] on an endpoint made with [`client_endpoint`], so that
    /// many connections can share one socket.
    pub async fn connect_with(
        endpoint: Endpoint,
        relay_addr: SocketAddr,
        role: Role,
    ) -> Result<Self, LinkError> {
        let connect_err = |reason: String| LinkError::Connect {
            relay: relay_addr.to_string(),
            reason,
        };
        let connection = endpoint
            .connect(relay_addr, "relay")
            .map_err(|e| connect_err(e.to_string()))?
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let (send, recv) = connection
            .open_bi()
            .await
            .map_err(|e| LinkError::ConnectionLost(e.to_string()))?;
        let mut this = Self {
            endpoint,
            connection,
            control_send: FramedSend::new(send),
            control_recv: FramedRecv::control(recv),
            relay_addr,
            relay_software: String::new(),
        };
        this.control_send
            .send(&ToRelay::Hello {
                version: protocol::PROTOCOL_VERSION,
                role,
                software: format!("{role} {}", protocol::SOFTWARE_VERSION),
            })
            .await?;
        match this.next().await? {
            FromRelay::Welcome { software, .. } => {
                this.relay_software = software;
                Ok(this)
            }
            other => Err(unexpected(&other, "a welcome")),
        }
    }

    /// Reads the next control message; relay errors, departures and shutdown become errors.
    pub async fn next(&mut self) -> Result<FromRelay, LinkError> {
        let msg = match self.control_recv.recv().await {
            Ok(Some(m)) => m,
            Ok(None) => return Err(self.lost()),
            Err(ChannelError::Frame(protocol::framing::FrameError::Io(_)))
            | Err(ChannelError::Frame(protocol::framing::FrameError::Truncated)) => {
                return Err(self.lost())
            }
            Err(e) => return Err(e.into()),
        };
        match msg {
            FromRelay::Error { code, message } => Err(refused(code, message)),
            FromRelay::PeerLeft { reason } => Err(LinkError::PeerLeft(reason)),
            FromRelay::ShuttingDown => Err(LinkError::RelayShuttingDown),
            other => Ok(other),
        }
    }

    fn lost(&self) -> LinkError {
        match self.connection.close_reason() {
            Some(quinn::ConnectionError::ApplicationClosed(c))
                if c.error_code.into_inner()
                    == u64::from(protocol::control::close_code::SHUTTING_DOWN) =>
            {
                LinkError::RelayShuttingDown
            }
            Some(reason) => LinkError::ConnectionLost(reason.to_string()),
            None => LinkError::ConnectionLost("the relay closed the control stream".into()),
        }
    }

    /// Asks for a session code (agent).
    pub async fn register(&mut self) -> Result<(SessionCode, u32), LinkError> {
        self.control_send.send(&ToRelay::Register).await?;
        match self.next().await? {
            FromRelay::Registered {
                code,
                expires_in_secs,
            } => Ok((code, expires_in_secs)),
            other => Err(unexpected(&other, "a session code")),
        }
    }

    /// Waits until a technician joins (agent, after [`RelayConnection::register`]).
    pub async fn wait_paired(&mut self) -> Result<PeerInfo, LinkError> {
        match self.next().await? {
            FromRelay::Paired { peer } => Ok(peer),
            other => Err(unexpected(&other, "pairing")),
        }
    }

    /// Joins the session with `code` (technician).
    pub async fn join(&mut self, code: SessionCode) -> Result<PeerInfo, LinkError> {
        self.control_send.send(&ToRelay::Join { code }).await?;
        match self.next().await? {
            FromRelay::Paired { peer } => Ok(peer),
            other => Err(unexpected(&other, "pairing")),
        }
    }

    /// After a peer-plane stream ended unexpectedly: waits briefly for the relay's word on why.
    /// `Ok` with the reason the other peer left (or `fallback` when the relay says nothing);
    /// `Err` when the relay itself is going away or the connection to it failed.
    pub async fn explain_departure(&mut self, fallback: String) -> Result<String, LinkError> {
        match tokio::time::timeout(std::time::Duration::from_secs(1), self.next()).await {
            Ok(Err(LinkError::PeerLeft(reason))) => Ok(reason.to_string()),
            Ok(Err(e)) => Err(e),
            _ => Ok(fallback),
        }
    }

    /// After telling the other peer the session is over: waits (at most `limit`) until it has
    /// left, so that everything sent before the goodbye reached it before this side closes (a
    /// closed connection abandons what is still in flight).
    pub async fn await_departure(&mut self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, async { while self.next().await.is_ok() {} }).await;
    }

    /// Closes the connection, telling the relay (and through it the other peer) why.
    pub fn close(&self, reason: &str) {
        self.connection.close(
            quinn::VarInt::from_u32(protocol::control::close_code::DONE),
            reason.as_bytes(),
        );
    }

    /// Closes, then waits (briefly) until the relay has been told.
    pub async fn close_and_wait(&self, reason: &str) {
        self.close(reason);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.endpoint.wait_idle())
            .await;
    }
}

fn unexpected(msg: &FromRelay, wanted: &str) -> LinkError {
    LinkError::Protocol(format!("expected {wanted}, got {msg:?}"))
}
