//! Session codes through a real relay: unknown, expired and used codes each get their own
//! error; the join rate limit triggers and lifts; one source is held to its registrations per
//! minute and its waiting codes, each refusal with its reason, while another source registers.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use link::{LinkError, RelayConnection};
use protocol::control::{ErrorCode, Role, SessionCode};
use tests::{data, relay_config, start_agent, start_technician, Relay, PROMPT};

fn source() -> String {
    format!("corpus:{}", data("idle-clock.scrn").display())
}

/// The technician's error message for `code`, after checking it exits with failure.
fn join_error(relay: &Relay, code: &str) -> String {
    let mut tech = start_technician(relay, code, &[]);
    let status = tech.wait_exit(PROMPT);
    assert!(
        !status.success(),
        "joining {code} should fail\n{}",
        tech.transcript()
    );
    let err = tech.wait_event("error", PROMPT);
    err["message"].as_str().unwrap().to_string()
}

#[test]
fn unknown_used_and_expired_codes_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--code-ttl-secs", "2"]);

    let msg = join_error(&relay, "000 000 000 - 0000");
    assert!(msg.contains("no session has this code"), "{msg}");

    let src = source();
    let (_agent, code) = start_agent(&relay, &["--source", &src, "--speed", "0.2"]);
    let mut first = start_technician(&relay, &code, &[]);
    first.wait_event("session_start", PROMPT);
    let msg = join_error(&relay, &code);
    assert!(msg.contains("already used"), "{msg}");

    let (mut waiting, stale) = start_agent(&relay, &["--source", &src]);
    // The agent is told when its code expires, and gives up.
    assert!(!waiting.wait_exit(PROMPT).success());
    let err = waiting.wait_event("error", PROMPT);
    assert!(
        err["message"].as_str().unwrap().contains("expired"),
        "{err}"
    );
    let msg = join_error(&relay, &stale);
    assert!(msg.contains("expired"), "{msg}");
}

async fn try_join(relay: &Relay, code: &SessionCode) -> ErrorCode {
    let mut c = relay.technician_connection().await;
    match c.join(code.clone()).await {
        Err(LinkError::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn join_rate_limit_triggers_and_lifts() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(
        dir.path(),
        &["--join-attempts", "3", "--join-window-secs", "3"],
    );
    let code = SessionCode::parse("123456789").unwrap();
    for _ in 0..3 {
        assert_eq!(try_join(&relay, &code).await, ErrorCode::UnknownCode);
    }
    let retry = match try_join(&relay, &code).await {
        ErrorCode::RateLimited { retry_after_secs } => retry_after_secs,
        other => panic!("expected the rate limit, got {other:?}"),
    };
    assert!((1..=3).contains(&retry), "retry after {retry} s");
    // It lifts: one attempt comes back per second.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match try_join(&relay, &code).await {
            ErrorCode::UnknownCode => break,
            ErrorCode::RateLimited { .. } if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            other => panic!("the limit did not lift: {other:?}"),
        }
    }
}

/// An agent connection from 127.0.0.1 asking for a code.
async fn register(relay: &Relay) -> (RelayConnection, Result<SessionCode, LinkError>) {
    let mut c = RelayConnection::connect(&relay.addr, relay.fingerprint(), Role::Agent)
        .await
        .expect("connect to the relay");
    let code = c.register().await.map(|(code, _)| code);
    (c, code)
}

/// An agent connection from 127.0.0.2, another source, asking for a code.
async fn register_elsewhere(relay: &Relay) -> SessionCode {
    let addr: SocketAddr = relay.addr.parse().unwrap();
    let endpoint =
        link::client::client_endpoint_bound("127.0.0.2:0".parse().unwrap(), relay.fingerprint())
            .unwrap();
    let mut c = RelayConnection::connect_with(endpoint, addr, Role::Agent)
        .await
        .expect("connect from 127.0.0.2");
    let (code, _) = c.register().await.expect("another source registers");
    c.close("done");
    code
}

/// The refusal's retry time and words; panics on anything else.
fn rate_limited(result: Result<SessionCode, LinkError>) -> (u32, String) {
    match result {
        Err(LinkError::Refused {
            code: ErrorCode::RateLimited { retry_after_secs },
            message,
        }) => (retry_after_secs, message),
        other => panic!("expected the registration to be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_past_the_rate_are_refused_while_another_source_registers() {
    let dir = tempfile::tempdir().unwrap();
    // One code every 15 seconds after the first four: the test ends long before a refill.
    let cfg = relay_config(dir.path(), "registrations_per_minute = 4\n");
    let relay = Relay::start(dir.path(), &["--config", &cfg]);
    let mut given = 0;
    for _ in 0..10 {
        let (c, code) = register(&relay).await;
        match code {
            Ok(_) => given += 1,
            Err(e) => {
                let (retry, message) = rate_limited(Err(e));
                assert!((1..=15).contains(&retry), "retry after {retry} s");
                assert!(
                    message.contains("too many session codes asked from 127.0.0.1")
                        && message.contains(&format!("try again in {retry} seconds")),
                    "{message}"
                );
            }
        }
        // Closed at once: the rate counts codes given, not codes waiting.
        c.close("done");
    }
    assert_eq!(given, 4, "four codes a minute, all at once");
    let code = register_elsewhere(&relay).await;
    assert_eq!(code.digits().len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_holds_its_cap_of_waiting_codes_until_one_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = relay_config(dir.path(), "max_waiting_codes_per_source = 3\n");
    let relay = Relay::start(dir.path(), &["--config", &cfg]);
    let mut waiting = Vec::new();
    for _ in 0..3 {
        let (c, code) = register(&relay).await;
        code.expect("a code within the cap");
        waiting.push(c);
    }
    for _ in 0..3 {
        let (_c, code) = register(&relay).await;
        let (retry, message) = rate_limited(code);
        assert_eq!(retry, 600, "within the code's lifetime one of them expires");
        assert!(
            message.contains("127.0.0.1 already has 3 session codes waiting"),
            "{message}"
        );
    }
    register_elsewhere(&relay).await;

    // An agent that leaves gives its place back.
    waiting
        .pop()
        .unwrap()
        .close_and_wait("the user cancelled")
        .await;
    let deadline = Instant::now() + PROMPT;
    loop {
        let (c, code) = register(&relay).await;
        match code {
            Ok(_) => {
                waiting.push(c);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                rate_limited(Err(e));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the withdrawn code's place never came back: {e}"),
        }
    }
    let (_c, code) = register(&relay).await;
    rate_limited(code);
}
