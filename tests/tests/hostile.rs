//! Peers that break the protocol are cut off with a reason, and the relay goes on serving a
//! session beside them.

use std::net::SocketAddr;
use std::time::Duration;

use link::channel::FramedRecv;
use protocol::control::{close_code, ErrorCode, FromRelay, Role, ToRelay};
use quinn::ConnectionError;
use tests::{data, frame_hashes, start_agent, start_technician, Relay, PROMPT};

/// Connects without saying hello, opens the control stream and sends `bytes` on it.
/// Returns what the relay answered and why it closed the connection.
async fn send_raw(relay: &Relay, bytes: &[u8]) -> (Option<FromRelay>, ConnectionError) {
    let addr: SocketAddr = relay.addr.parse().unwrap();
    let endpoint = link::client::client_endpoint(addr, relay.fingerprint()).unwrap();
    let conn = endpoint.connect(addr, "relay").unwrap().await.unwrap();
    let (mut send, recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    let mut rx = FramedRecv::<FromRelay>::control(recv);
    let answer = tokio::time::timeout(PROMPT, rx.recv())
        .await
        .expect("an answer in time")
        .ok()
        .flatten();
    let closed = tokio::time::timeout(PROMPT, conn.closed())
        .await
        .expect("closed in time");
    (answer, closed)
}

fn violation_close(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ApplicationClosed(c) => {
            assert_eq!(
                c.error_code.into_inner(),
                u64::from(close_code::PROTOCOL_VIOLATION)
            );
            String::from_utf8_lossy(&c.reason).into_owned()
        }
        other => panic!("expected an application close, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_and_oversized_frames_are_cut_off_while_a_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let corpus = data("typing.scrn");
    let source = format!("corpus:{}", corpus.display());
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--speed", "1"]);
    let mut tech = start_technician(&relay, &code, &["--report-updates"]);
    tech.wait_event("update", PROMPT);

    // A well-framed payload that is no message.
    let mut garbage = vec![9, 0, 0, 0];
    garbage.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef, 0xff, 0xff, 0xff, 0xff, 0x01]);
    let (answer, closed) = send_raw(&relay, &garbage).await;
    match answer {
        Some(FromRelay::Error {
            code: ErrorCode::MalformedMessage,
            message,
        }) => assert!(message.contains("not a control message"), "{message}"),
        other => panic!("expected a malformed-message error, got {other:?}"),
    }
    assert!(violation_close(&closed).contains("not a control message"));

    // A length prefix far beyond the limit: refused before anything is allocated.
    let (answer, closed) = send_raw(&relay, &[0xff, 0xff, 0xff, 0xff]).await;
    assert!(
        matches!(
            answer,
            Some(FromRelay::Error {
                code: ErrorCode::FrameTooLarge,
                ..
            })
        ),
        "{answer:?}"
    );
    assert!(violation_close(&closed).contains("4294967295"));

    // Out of order: register before hello.
    let (answer, _) = send_raw(&relay, &protocol::wire::encode_frame(&ToRelay::Register)).await;
    assert!(
        matches!(
            answer,
            Some(FromRelay::Error {
                code: ErrorCode::ProtocolViolation,
                ..
            })
        ),
        "{answer:?}"
    );

    // The session beside them is undisturbed: it plays to the end, bit-exact.
    assert!(
        tech.wait_exit(Duration::from_secs(120)).success(),
        "{}",
        tech.transcript()
    );
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    let ended = tech.wait_event("ended", PROMPT);
    assert_eq!(
        ended["sha256"].as_str().unwrap(),
        frame_hashes(&corpus).last().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsupported_version_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let hello = protocol::wire::encode_frame(&ToRelay::Hello {
        version: 99,
        role: Role::Agent,
        software: "agent from the future".into(),
    });
    let (answer, _) = send_raw(&relay, &hello).await;
    match answer {
        Some(FromRelay::Error {
            code: ErrorCode::UnsupportedVersion,
            message,
        }) => {
            let ours = format!("version {}", protocol::PROTOCOL_VERSION);
            assert!(message.contains(&ours), "{message}");
            assert!(message.contains("version 99"), "{message}");
        }
        other => panic!("expected a version error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn datagrams_and_streams_are_forwarded_between_paired_peers() {
    use link::RelayConnection;
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let mut agent = RelayConnection::connect(&relay.addr, relay.fingerprint(), Role::Agent)
        .await
        .unwrap();
    let (code, _) = agent.register().await.unwrap();
    let mut tech = RelayConnection::connect(&relay.addr, relay.fingerprint(), Role::Technician)
        .await
        .unwrap();
    let (joined, paired) = tokio::join!(tech.join(code), agent.wait_paired());
    assert_eq!(joined.unwrap().role, Role::Agent);
    assert_eq!(paired.unwrap().role, Role::Technician);

    // A stream opened by one side arrives at the other with every byte, in order.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut s = agent.connection.open_uni().await.unwrap();
    s.write_all(&payload).await.unwrap();
    s.finish().unwrap();
    let mut r = tech.connection.accept_uni().await.unwrap();
    let got = r.read_to_end(1 << 20).await.unwrap();
    assert_eq!(got, payload);

    // Datagrams go both ways. They may be lost, so send a few until one arrives.
    for (from, to) in [
        (&agent.connection, &tech.connection),
        (&tech.connection, &agent.connection),
    ] {
        let got = tokio::time::timeout(PROMPT, async {
            loop {
                from.send_datagram(bytes_of("cursor 10 20")).unwrap();
                if let Ok(Ok(d)) =
                    tokio::time::timeout(Duration::from_millis(100), to.read_datagram()).await
                {
                    return d;
                }
            }
        })
        .await
        .expect("a datagram arrives");
        assert_eq!(&got[..], b"cursor 10 20");
    }
}

fn bytes_of(s: &str) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(s.as_bytes())
}
