//! What the link's tests share: both ends' session keys from an exchange run in memory, and a
//! real QUIC connection on loopback between a client endpoint and a server endpoint.

use std::net::SocketAddr;
use std::sync::Arc;

use link::tls::{self, Fingerprint};
use protocol::e2e::{Context, Handshake, SessionKeys, UserCode};
use quinn::{Connection, Endpoint};

/// The agent's and the technician's keys, from a code exchange run in memory.
pub fn keys() -> (SessionKeys, SessionKeys) {
    let code = UserCode::parse("123 456 789 - 4821").unwrap();
    let ctx = Context::new(protocol::PROTOCOL_VERSION, code.rendezvous().digits());
    let mut agent = Handshake::agent_with_code(&ctx, code.secret());
    let mut tech = Handshake::technician_with_code(&ctx, code.secret());
    for _ in 0..3 {
        while let Some(m) = agent.poll_transmit() {
            tech.handle(m).unwrap();
        }
        while let Some(m) = tech.poll_transmit() {
            agent.handle(m).unwrap();
        }
    }
    (agent.take_keys().unwrap(), tech.take_keys().unwrap())
}

/// The server endpoint (kept alive by the caller), the client's connection and the server's side
/// of it, on loopback.
pub async fn connection() -> (Endpoint, Connection, Connection) {
    let id = tls::generate_self_signed(vec!["localhost".into()]).unwrap();
    let pin = Fingerprint::of(&id.cert_der);
    let tls = tls::server_config(id.cert_der, id.key_der).unwrap();
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let server = Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(quic)),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let client = link::client::client_endpoint(addr, pin).unwrap();
    let connecting = client.connect(addr, "localhost").unwrap();
    let accepting = async { server.accept().await.unwrap().await.unwrap() };
    let (client_side, server_side) = tokio::join!(connecting, accepting);
    (server, client_side.unwrap(), server_side)
}
