//! Session codes through a real relay: unknown, expired and used codes each get their own
//! error; the join rate limit triggers and lifts.

use std::time::{Duration, Instant};

use link::LinkError;
use protocol::control::{ErrorCode, SessionCode};
use tests::{data, start_agent, start_technician, Relay, PROMPT};

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
