//! A hundred paired sessions at once through one relay process, each carrying screen-update
//! sized streams at about 200 kbit/s for several seconds, beside a crowd of stalled
//! connections: every byte of every session arrives, in order, and no session is lost. (The
//! thousand-session version with its figures is `bench relay`.)

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use link::RelayConnection;
use protocol::control::Role;
use tests::{relay_config, Relay, PROMPT};

const SESSIONS: usize = 100;
/// Streams each agent side opens, one a second, of [`STREAM_BYTES`] (25 KB/s: 200 kbit/s).
const STREAMS: usize = 6;
const STREAM_BYTES: usize = 25_000;
/// Stalled connections beside them (a hello's worth of nothing).
const STALLED: usize = 50;

fn pattern(session: usize, stream: usize) -> Vec<u8> {
    (0..STREAM_BYTES)
        .map(|i| ((i * 31 + session * 7 + stream * 13) % 251) as u8)
        .collect()
}

/// Where the sessions go: the relay's address and fingerprint, and the technician's token.
#[derive(Clone)]
struct Target {
    addr: String,
    fingerprint: link::Fingerprint,
    token: String,
}

async fn one_session(relay: Target, i: usize) -> Result<(), String> {
    let fp = relay.fingerprint;
    let mut agent = RelayConnection::connect(&relay.addr, fp, Role::Agent)
        .await
        .map_err(|e| format!("agent {i}: {e}"))?;
    let (code, _) = agent
        .register()
        .await
        .map_err(|e| format!("register {i}: {e}"))?;
    let mut tech = RelayConnection::connect(&relay.addr, fp, Role::Technician)
        .await
        .map_err(|e| format!("technician {i}: {e}"))?;
    tech.resume(&relay.token)
        .await
        .map_err(|e| format!("resume {i}: {e}"))?;
    tech.join(code)
        .await
        .map_err(|e| format!("join {i}: {e}"))?;
    agent
        .wait_paired()
        .await
        .map_err(|e| format!("paired {i}: {e}"))?;
    let agent_conn = agent.connection.clone();
    let sender = tokio::spawn(async move {
        for s in 0..STREAMS {
            let mut uni = agent_conn.open_uni().await.map_err(|e| e.to_string())?;
            uni.write_all(&pattern(i, s))
                .await
                .map_err(|e| e.to_string())?;
            uni.finish().map_err(|e| e.to_string())?;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok::<_, String>(())
    });
    for s in 0..STREAMS {
        let mut uni = tokio::time::timeout(PROMPT, tech.connection.accept_uni())
            .await
            .map_err(|_| format!("session {i}: stream {s} never came"))?
            .map_err(|e| format!("session {i}: {e}"))?;
        let got = uni
            .read_to_end(STREAM_BYTES + 1)
            .await
            .map_err(|e| format!("session {i} stream {s}: {e}"))?;
        if got != pattern(i, s) {
            return Err(format!("session {i} stream {s}: other bytes arrived"));
        }
    }
    sender.await.map_err(|e| e.to_string())??;
    agent.close("done");
    tech.close("done");
    Ok(())
}

fn relay_token(relay: &Relay) -> String {
    let text = std::fs::read_to_string(relay.tokens_file()).expect("the logins file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    v["logins"][relay.addr.as_str()]["token"]
        .as_str()
        .expect("a token")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_sessions_at_once_lose_nothing_beside_stalled_connections() {
    let dir = tempfile::tempdir().unwrap();
    // Everything here comes from 127.0.0.1: the per-source limits are raised for it.
    let cfg = relay_config(
        dir.path(),
        "join_attempts = 100000\nregistrations_per_minute = 100000\n\
         max_waiting_codes_per_source = 1000\nmax_connections_per_source = 1000\n",
    );
    let relay = Relay::start(
        dir.path(),
        &["--config", &cfg, "--idle-timeout-ms", "10000"],
    );
    relay.ensure_technician();
    let addr: SocketAddr = relay.addr.parse().unwrap();
    let attacker =
        link::client::client_endpoint_bound("127.0.0.4:0".parse().unwrap(), relay.fingerprint())
            .unwrap();
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        stalled.push(attacker.connect(addr, "relay").unwrap().await.unwrap());
    }
    let started = Instant::now();
    let target = Target {
        addr: relay.addr.clone(),
        fingerprint: relay.fingerprint(),
        token: relay_token(&relay),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..SESSIONS {
        tasks.spawn(one_session(target.clone(), i));
    }
    let mut lost = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r.unwrap() {
            lost.push(e);
        }
    }
    assert!(lost.is_empty(), "{} sessions lost: {lost:?}", lost.len());
    assert!(started.elapsed() < Duration::from_secs(120));
    drop(stalled);
}
