//! Technician accounts through a real relay: only logged-in technicians with enabled accounts
//! and live logins join, each refusal says why; wrong passwords are refused and then delayed;
//! the agent is told who the technician is.

use std::time::{Duration, Instant};

use link::LinkError;
use protocol::control::{ErrorCode, Role, SessionCode};
use serde_json::Value;
use tests::{
    data, start_agent, start_technician, start_technician_unprepared, Proc, Relay, PROMPT,
    TECHNICIAN, TECHNICIAN_PASSWORD,
};

fn source() -> String {
    format!("corpus:{}", data("idle-clock.scrn").display())
}

/// The error a technician that cannot join reports, after checking it exits with failure.
fn refused(mut tech: Proc) -> String {
    let status = tech.wait_exit(PROMPT);
    assert!(
        !status.success(),
        "the join should fail\n{}",
        tech.transcript()
    );
    let err = tech.wait_event("error", PROMPT);
    err["message"].as_str().unwrap().to_string()
}

/// The last JSON event of a finished command's output.
fn last_event(stdout: &str) -> Value {
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or(Value::Null)
}

/// The token `technician login` stored for `relay`.
fn stored_token(relay: &Relay) -> String {
    let text = std::fs::read_to_string(relay.tokens_file()).expect("the logins file");
    let v: Value = serde_json::from_str(&text).expect("the logins file is JSON");
    v["logins"][relay.addr.as_str()]["token"]
        .as_str()
        .expect("a token for the relay")
        .to_string()
}

#[test]
fn only_logged_in_technicians_with_enabled_accounts_and_live_logins_join() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--organisation", "Example Support", "-v"]);
    let src = source();
    let (mut agent, code) = start_agent(&relay, &["--source", &src, "--speed", "0.2"]);

    // No login at all: the technician says what to do.
    let msg = refused(start_technician_unprepared(&relay, &code, &[]));
    assert!(
        msg.contains(&format!("not logged in to {}", relay.addr))
            && msg.contains("technician login --relay"),
        "{msg}"
    );

    relay.ensure_technician();
    // Disabled: the login no longer works, and a new one is refused, both saying so.
    let r = relay.user(&["disable", TECHNICIAN], "");
    assert!(r.success, "{}", r.text());
    let msg = refused(start_technician(&relay, &code, &[]));
    assert!(msg.contains("disabled"), "{msg}");
    // A new login gets the answer of a wrong password: "disabled" would confirm that the
    // password was right to whoever is guessing it.
    let r = relay.login(TECHNICIAN, TECHNICIAN_PASSWORD);
    assert!(!r.success);
    assert!(r.text().contains("wrong name or password"), "{}", r.text());

    // Enabled again, logged in again, then every login of the account revoked.
    let r = relay.user(&["enable", TECHNICIAN], "");
    assert!(r.success, "{}", r.text());
    let r = relay.login(TECHNICIAN, TECHNICIAN_PASSWORD);
    assert!(r.success, "{}", r.text());
    let r = relay.user(&["revoke", TECHNICIAN], "");
    assert!(
        r.success && r.stdout.contains("Ended 1 login"),
        "{}",
        r.text()
    );
    let msg = refused(start_technician(&relay, &code, &[]));
    assert!(
        msg.contains("not logged in") && msg.contains("login was ended"),
        "{msg}"
    );

    // A logout ends the token at the relay, not just on this machine.
    let r = relay.login(TECHNICIAN, TECHNICIAN_PASSWORD);
    assert!(r.success, "{}", r.text());
    let token = stored_token(&relay);
    let dir_s = relay.tokens_file().display().to_string();
    let mut args = vec!["logout".to_string()];
    args.extend(relay.peer_args());
    args.extend(["--tokens".into(), dir_s]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = tests::run("technician", &refs, "");
    assert!(r.success && r.stdout.contains("Logged out"), "{}", r.text());
    let msg = refused(start_technician(&relay, &code, &[]));
    assert!(msg.contains("not logged in"), "{msg}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c =
            link::RelayConnection::connect(&relay.addr, relay.fingerprint(), Role::Technician)
                .await
                .unwrap();
        match c.resume(&token).await {
            Err(LinkError::Refused {
                code: ErrorCode::TokenRevoked,
                ..
            }) => {}
            other => panic!("a logged-out token must be refused, got {other:?}"),
        }
        // And the relay refuses a join without a login, whatever the client does.
        let mut c =
            link::RelayConnection::connect(&relay.addr, relay.fingerprint(), Role::Technician)
                .await
                .unwrap();
        match c.join(SessionCode::parse(&code).unwrap()).await {
            Err(LinkError::Refused {
                code: ErrorCode::NotLoggedIn,
                message,
            }) => assert!(message.contains("log in first"), "{message}"),
            other => panic!("a join before login must be refused, got {other:?}"),
        }
    });

    // None of that used up the code: a logged-in technician joins, and the agent is told who.
    let r = relay.login(TECHNICIAN, TECHNICIAN_PASSWORD);
    assert!(r.success, "{}", r.text());
    let mut tech = start_technician(&relay, &code, &[]);
    tech.wait_event("session_start", PROMPT);
    let paired = agent.wait_event("paired", PROMPT);
    assert_eq!(paired["technician"], TECHNICIAN, "{paired}");
    assert_eq!(paired["tier"], 2, "{paired}");
    assert_eq!(paired["organisation"], "Example Support", "{paired}");
}

#[test]
fn the_consent_prompt_names_the_technician_its_tier_and_organisation() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--organisation", "Example Support"]);
    let src = source();
    let mut args = relay.peer_args();
    args.extend(["--source".into(), src, "--consent".into(), "ask".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = Proc::spawn_env("agent", &refs, &[], true);
    let line = agent.wait_line(PROMPT, "the session code", |l| {
        l.starts_with("Session code: ")
    });
    let code = line.trim_start_matches("Session code: ").to_string();
    let mut tech = start_technician(&relay, &code, &[]);
    let ask = agent.wait_line(PROMPT, "the consent question", |l| {
        l.contains("wants to see this screen")
    });
    assert!(
        ask.starts_with(&format!(
            "{TECHNICIAN} (tier 2) of Example Support (technician at "
        )),
        "{ask}"
    );
    agent.send_line("v");
    tech.wait_event("session_start", PROMPT);
}

#[test]
fn an_expired_login_must_be_renewed() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--token-ttl-secs", "2"]);
    relay.ensure_technician();
    let token = stored_token(&relay);
    std::thread::sleep(Duration::from_secs(3));
    let msg = refused(start_technician(&relay, "123 456 789 - 4821", &[]));
    assert!(
        msg.contains("login expired") && msg.contains(&format!("--user {TECHNICIAN}")),
        "{msg}"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c =
            link::RelayConnection::connect(&relay.addr, relay.fingerprint(), Role::Technician)
                .await
                .unwrap();
        match c.resume(&token).await {
            Err(LinkError::Refused {
                code: ErrorCode::TokenExpired,
                ..
            }) => {}
            other => panic!("an expired token must be refused, got {other:?}"),
        }
    });
}

#[test]
fn wrong_passwords_are_refused_alike_and_then_delayed() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    relay.add_user(TECHNICIAN, 1, TECHNICIAN_PASSWORD);
    let wrong = |name: &str| {
        let r = relay.login(name, "not the password");
        assert!(!r.success, "{}", r.text());
        last_event(&r.stdout)["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    // Three failures are free, an unknown name is answered the same way.
    for _ in 0..3 {
        assert!(wrong(TECHNICIAN).contains("wrong name or password"));
    }
    assert!(wrong("nobody").contains("wrong name or password"));
    // The fourth locks the account for a while: even the right password waits.
    assert!(wrong(TECHNICIAN).contains("wrong name or password"));
    let r = relay.login(TECHNICIAN, TECHNICIAN_PASSWORD);
    assert!(!r.success);
    assert!(
        r.text()
            .contains("too many failed logins for this account; try again in"),
        "{}",
        r.text()
    );
    // The delay passes; the right password works and clears the count.
    let deadline = Instant::now() + PROMPT;
    loop {
        let r = relay.login(TECHNICIAN, TECHNICIAN_PASSWORD);
        if r.success {
            break;
        }
        assert!(
            Instant::now() < deadline && r.text().contains("too many failed logins"),
            "{}",
            r.text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Failures from one address are limited too, whichever names they try; the delay grows.
    let mut delay = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0.. {
        if Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        let msg = wrong(&format!("guess{i}"));
        if let Some(rest) = msg
            .split("too many failed logins from 127.0.0.1; try again in ")
            .nth(1)
        {
            delay = rest.split_whitespace().next().unwrap().parse().unwrap();
            if delay >= 4 {
                break;
            }
        } else {
            assert!(msg.contains("wrong name or password"), "{msg}");
        }
    }
    assert!(
        delay >= 4,
        "the address was not limited with a growing delay\n{}",
        relay.proc.transcript()
    );
    // Then even the right password waits.
    let r = relay.login(TECHNICIAN, TECHNICIAN_PASSWORD);
    assert!(
        r.text().contains("too many failed logins from 127.0.0.1"),
        "{}",
        r.text()
    );
}

/// The six-digit code of `secret` now, as an authenticator app shows it.
fn code_now(secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "{:06}",
        relay::totp::code_at(secret, relay::totp::step_of(now)).unwrap()
    )
}

#[test]
fn a_second_factor_is_asked_at_login_each_code_taken_once_and_required_where_the_policy_says() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--organisation", "Example Support"]);
    relay.ensure_technician();
    let r = relay.user(&["totp", TECHNICIAN], "");
    assert!(r.success, "{}", r.text());
    assert!(
        r.stdout.contains("otpauth://totp/")
            && r.stdout.contains(&format!(":{TECHNICIAN}?secret=")),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains('▀'), "a QR code is drawn: {}", r.stdout);
    let secret = r
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .expect("the secret is printed")
        .to_string();

    // Enrolling ended the logins: a join needs a new login, and the password alone is not it.
    let tokens = std::fs::read_to_string(relay.tokens_file()).unwrap();
    let r = relay.login(TECHNICIAN, TECHNICIAN_PASSWORD);
    assert!(!r.success, "{}", r.text());
    assert!(r.text().contains("one-time code"), "{}", r.text());
    // The code on the line after the password: logged in.
    let code = code_now(&secret);
    let r = relay.login(TECHNICIAN, &format!("{TECHNICIAN_PASSWORD}\n{code}"));
    assert!(r.success, "{}", r.text());
    assert_ne!(
        std::fs::read_to_string(relay.tokens_file()).unwrap(),
        tokens
    );
    // The same code again is refused (each code once), like a wrong one.
    let r = relay.login(TECHNICIAN, &format!("{TECHNICIAN_PASSWORD}\n{code}"));
    assert!(!r.success);
    assert!(
        r.text().contains("wrong name, password or one-time code"),
        "{}",
        r.text()
    );
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = relay.login(TECHNICIAN, &format!("{TECHNICIAN_PASSWORD}\n{wrong}"));
    assert!(!r.success);
    assert!(
        r.text().contains("wrong name, password or one-time code"),
        "{}",
        r.text()
    );

    // Where the policy requires a second factor, an account without one cannot log in.
    relay.add_user("nina", 1, "a password of nina");
    let mut relay = relay;
    relay.proc.signal(libc::SIGTERM);
    relay.proc.wait_exit(PROMPT);
    let relay = Relay::start_at(&relay.addr, dir.path(), &["--require-totp"]);
    let r = relay.login("nina", "a password of nina");
    assert!(!r.success);
    assert!(r.text().contains("relay user totp nina"), "{}", r.text());
}
