//! Connections that prove nothing cost the relay next to nothing: hundreds of them, each
//! stuffing its streams, leave its memory bounded while a session beside them plays to the end
//! bit-exact; one source is held to its share of connections; a peer that says hello and then
//! nothing is cut off with a reason.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use link::channel::FramedRecv;
use protocol::control::{ErrorCode, FromRelay, Role, ToRelay};
use tests::{data, frame_hashes, relay_config, start_agent, start_technician, Relay, PROMPT};

/// Stalled connections the attacker holds.
const STALLED: usize = 200;
/// Bytes each stalled connection tries to push into each of its streams.
const STUFFING: usize = 2 << 20;
/// How much the relay may grow for all of them: each may make it hold its 16 KiB window plus
/// QUIC's state for it, where unbounded windows let each make it hold 48 MiB.
const BOUND: u64 = 64 << 20;

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// One stalled attacker connection: a hello as an agent, then a frame announced at 60 KiB
/// that never completes on the control stream, and three unidirectional streams pushed as full
/// as the relay lets them be.
async fn stall(endpoint: quinn::Endpoint, relay: SocketAddr) -> Option<quinn::Connection> {
    let conn = endpoint.connect(relay, "relay").ok()?.await.ok()?;
    let c = conn.clone();
    tokio::spawn(async move {
        let junk = vec![0x55u8; 64 * 1024];
        let mut tasks = Vec::new();
        if let Ok((mut send, recv)) = c.open_bi().await {
            tasks.push(tokio::spawn(async move {
                let _recv = recv;
                let hello = protocol::wire::encode_frame(&ToRelay::Hello {
                    version: protocol::PROTOCOL_VERSION,
                    role: Role::Agent,
                    software: "stall".into(),
                });
                let _ = send.write_all(&hello).await;
                let _ = send.write_all(&(60u32 * 1024).to_le_bytes()).await;
                // Half of it, and then nothing.
                let _ = send.write_all(&[0x55u8; 30 * 1024]).await;
                std::future::pending::<()>().await;
            }));
        }
        for _ in 0..3 {
            let (c, junk) = (c.clone(), junk.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(mut uni) = c.open_uni().await else {
                    return;
                };
                let mut sent = 0;
                while sent < STUFFING {
                    if uni.write_all(&junk).await.is_err() {
                        break;
                    }
                    sent += junk.len();
                }
                std::future::pending::<()>().await;
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    Some(conn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_stalled_connections_leave_the_relay_bounded_and_a_session_exact() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = relay_config(dir.path(), "unpaired_timeout_secs = 10\n");
    let relay = Relay::start(dir.path(), &["--config", &cfg]);
    let corpus = data("typing.scrn");
    let source = format!("corpus:{}", corpus.display());
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--speed", "0.5"]);
    let mut tech = start_technician(&relay, &code, &["--report-updates"]);
    tech.wait_event("update", PROMPT);
    let before = rss(relay.proc.pid());

    // The attacker: another loopback address, so the session is another source.
    let addr: SocketAddr = relay.addr.parse().unwrap();
    let endpoint =
        link::client::client_endpoint_bound("127.0.0.2:0".parse().unwrap(), relay.fingerprint())
            .unwrap();
    let mut held = Vec::new();
    for _ in 0..STALLED {
        if let Some(c) = stall(endpoint.clone(), addr).await {
            held.push(c);
        }
    }
    assert_eq!(held.len(), STALLED, "every stalled connection got in");
    // Let them push all they can, watching the relay's memory meanwhile.
    let mut most = before;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        most = most.max(rss(relay.proc.pid()));
        if most - before > BOUND {
            break;
        }
    }
    eprintln!(
        "relay RSS {} MiB before, at most {} MiB with {STALLED} stalled connections",
        before >> 20,
        most >> 20
    );
    assert!(
        most - before < BOUND,
        "the relay grew by {} MiB for {STALLED} stalled connections",
        (most - before) >> 20
    );

    // The session beside them plays to its end, bit-exact.
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
    // The stalled peers time out (they said hello and nothing more) and are closed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while held.iter().any(|c| c.close_reason().is_none()) {
        assert!(
            Instant::now() < deadline,
            "stalled connections never timed out"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_is_held_to_its_share_and_a_silent_peer_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = relay_config(
        dir.path(),
        "max_connections_per_source = 20\nunpaired_timeout_secs = 2\n",
    );
    let relay = Relay::start(dir.path(), &["--config", &cfg]);
    let addr: SocketAddr = relay.addr.parse().unwrap();
    let endpoint =
        link::client::client_endpoint_bound("127.0.0.3:0".parse().unwrap(), relay.fingerprint())
            .unwrap();
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(endpoint.connect(addr, "relay").unwrap().await.unwrap());
    }
    // The 21st from that source is refused before its handshake ends.
    let refused = endpoint.connect(addr, "relay").unwrap().await;
    assert!(
        matches!(refused, Err(quinn::ConnectionError::ConnectionClosed(_))),
        "{refused:?}"
    );
    // Another source is let in, says hello, and then says nothing: cut off with a reason.
    // The relay's clock runs from the connection's arrival, so ours starts before connecting.
    let started = Instant::now();
    let mut c = link::RelayConnection::connect(&relay.addr, relay.fingerprint(), Role::Agent)
        .await
        .expect("another source connects");
    let answer = tokio::time::timeout(PROMPT, c.next())
        .await
        .expect("in time");
    match answer {
        Err(link::LinkError::Refused {
            code: ErrorCode::Timeout,
            message,
        }) => assert!(message.contains("2 seconds"), "{message}"),
        other => panic!("expected a timeout refusal, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_secs(2));
    // Closing the held ones frees the source's places.
    for c in &held {
        c.close(0u32.into(), b"done");
    }
    drop(held);
    let deadline = Instant::now() + PROMPT;
    loop {
        match endpoint.connect(addr, "relay").unwrap().await {
            Ok(c) => {
                // A control stream with a bare frame of hello still works for it.
                let (mut send, recv) = c.open_bi().await.unwrap();
                let hello = protocol::wire::encode_frame(&ToRelay::Hello {
                    version: protocol::PROTOCOL_VERSION,
                    role: Role::Agent,
                    software: "test".into(),
                });
                send.write_all(&hello).await.unwrap();
                let mut rx = FramedRecv::<FromRelay>::control(recv);
                let welcome = tokio::time::timeout(PROMPT, rx.recv()).await.unwrap();
                assert!(
                    matches!(welcome, Ok(Some(FromRelay::Welcome { .. }))),
                    "{welcome:?}"
                );
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("the source's places were not freed: {e}"),
        }
    }
}
