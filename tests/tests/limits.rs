//! Brute force: a thousand join attempts from one address are stopped by the relay's limit,
//! each refused with its reason, while a session beside them plays on undisturbed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use link::{LinkError, RelayConnection};
use protocol::control::{ErrorCode, Role, SessionCode};
use tests::{data, frame_hashes, start_agent, start_technician, Relay, PROMPT};
use tokio::sync::Semaphore;

const ATTEMPTS: usize = 1000;
/// Attempts in flight at once.
const PARALLEL: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_join_attempts_are_stopped_while_a_session_plays_on() {
    let dir = tempfile::tempdir().unwrap();
    // Defaults: 10 join attempts a minute per address. -v: the relay logs every refusal.
    let relay = Relay::start(dir.path(), &["-v"]);
    let corpus = data("typing.scrn");
    let source = format!("corpus:{}", corpus.display());
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--speed", "0.5"]);
    let mut tech = start_technician(&relay, &code, &["--report-updates"]);
    tech.wait_event("update", PROMPT);

    // The attacker is a logged-in technician, guessing codes from the same address.
    let token = stored_token(&relay);
    let addr: SocketAddr = relay.addr.parse().unwrap();
    let endpoint = link::client::client_endpoint(addr, relay.fingerprint()).unwrap();
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..ATTEMPTS {
        let (endpoint, token, gate) = (endpoint.clone(), token.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let mut c = RelayConnection::connect_with(endpoint, addr, Role::Technician)
                .await
                .expect("connect");
            c.resume(&token).await.expect("the attacker's login holds");
            let guess = SessionCode::parse(&format!("{:09}", 100_000_000 + i)).unwrap();
            let result = c.join(guess).await;
            c.close("guessed");
            match result {
                Err(LinkError::Refused { code, .. }) => code,
                other => panic!("expected a refusal, got {other:?}"),
            }
        });
    }
    let (mut unknown, mut limited) = (0usize, 0usize);
    while let Some(code) = tasks.join_next().await {
        match code.unwrap() {
            ErrorCode::UnknownCode => unknown += 1,
            ErrorCode::RateLimited { retry_after_secs } => {
                assert!(retry_after_secs >= 1);
                limited += 1
            }
            other => panic!("unexpected refusal {other:?}"),
        }
    }
    // 10 at once, then one every 6 seconds.
    let refills = (started.elapsed().as_secs() / 6) as usize + 1;
    assert!(
        unknown <= 10 + refills && limited >= ATTEMPTS - 10 - refills,
        "{unknown} guesses were looked up, {limited} stopped by the limit"
    );
    assert_eq!(unknown + limited, ATTEMPTS);

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

    // Every refusal was logged with its reason.
    let mut relay = relay;
    relay.proc.signal(libc::SIGTERM);
    relay.proc.wait_exit(PROMPT);
    let logged = relay
        .proc
        .stderr()
        .iter()
        .filter(|l| l.contains("refused") && l.contains("too many join attempts"))
        .count();
    assert_eq!(logged, limited, "refusals logged");
}

fn stored_token(relay: &Relay) -> String {
    let text = std::fs::read_to_string(relay.tokens_file()).expect("the logins file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    v["logins"][relay.addr.as_str()]["token"]
        .as_str()
        .expect("a token")
        .to_string()
}
