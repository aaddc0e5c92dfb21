//! Sealed screen update streams over a real QUIC connection on loopback: an update larger than
//! one record arrives whole, and a stream cut after its first record, or carrying a number
//! already used, is refused with words that say so.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use link::sealed::{self, PeerPlaneError, UPDATE_RECORD};
use link::tls::{self, Fingerprint};
use protocol::e2e::{Context, Handshake, SessionKeys, UpdateReceiver, UserCode};
use protocol::peer::ScreenUpdate;
use quinn::{Connection, Endpoint};

/// Both ends' keys, from an exchange run in memory.
fn keys() -> (SessionKeys, SessionKeys) {
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

/// A client connection and the server's side of it, on loopback.
async fn connection() -> (Endpoint, Connection, Connection) {
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
    let (agent, technician) = tokio::join!(connecting, accepting);
    (server, agent.unwrap(), technician)
}

fn update(seq: u64, size: usize) -> ScreenUpdate {
    ScreenUpdate {
        seq,
        width: 640,
        height: 480,
        ops: Vec::new(),
        tile_data: (0..size).map(|i| (i * 7 % 253) as u8).collect(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_of_several_records_arrives_whole_and_only_once() {
    let (_server, agent, technician) = connection().await;
    let (agent_keys, tech_keys) = keys();
    let receiver = Mutex::new(tech_keys.update_receiver());
    for (seq, size) in [(1, 3 * UPDATE_RECORD + 17), (2, 10), (3, UPDATE_RECORD)] {
        let sent = update(seq, size);
        sealed::send_update(&agent, sealed::prepare_update(&agent_keys, sent.clone()))
            .await
            .unwrap();
        let stream = technician.accept_uni().await.unwrap();
        assert_eq!(sealed::read_update(stream, &receiver).await.unwrap(), sent);
    }
    // The same number again (as a replayed stream would carry it) is refused.
    sealed::send_update(&agent, sealed::prepare_update(&agent_keys, update(2, 10)))
        .await
        .unwrap();
    let stream = technician.accept_uni().await.unwrap();
    let err = sealed::read_update(stream, &receiver).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("a message was replayed: the relay or network sent it again"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_stream_cut_after_a_record_is_refused() {
    let (_server, agent, technician) = connection().await;
    let (agent_keys, tech_keys) = keys();
    // Only the first of its three records, then the end of the stream.
    let mut sealer = agent_keys.update_sealer(1);
    let message = protocol::wire::encode_frame(&protocol::peer::PeerMessage::ScreenUpdate(update(
        1,
        2 * UPDATE_RECORD + 5,
    )));
    let mut frame = Vec::new();
    sealer
        .seal_frame(&message[4..4 + UPDATE_RECORD], false, &mut frame)
        .unwrap();
    let mut s = agent.open_uni().await.unwrap();
    s.write_all(&frame).await.unwrap();
    s.finish().unwrap();
    let stream = technician.accept_uni().await.unwrap();
    let receiver: Mutex<UpdateReceiver> = Mutex::new(tech_keys.update_receiver());
    match sealed::read_update(stream, &receiver).await {
        Err(e @ PeerPlaneError::Tampered(_)) => assert!(
            e.to_string()
                .starts_with("a stream was cut short or extended: the relay or network altered it"),
            "{e}"
        ),
        other => panic!("expected a cut stream, got {other:?}"),
    }
}
