//! Two relay processes of one cluster (`--cluster`) on one PostgreSQL database (a throw-away
//! server, harness::postgres): a technician who gives relay B the code of an agent waiting on
//! relay A is sent to A by B and the session runs there; a help request filed through A and
//! taken through B the same; the code of a relay that stopped is refused as a gone relay's.

use link::RelayConnection;
use protocol::control::Role;
use tests::desk::{request_help, technician};
use tests::{run, start_agent, start_technician_unprepared, Relay, PROMPT, TECHNICIAN};
use tests::{TECHNICIAN_PASSWORD, TECHNICIAN_TIER};

/// Two relays of the cluster "north" on a fresh database with the account [`TECHNICIAN`],
/// logged in on relay B (its logins file), and their data directories.
struct Cluster {
    a: Relay,
    b: Relay,
    _dirs: [tempfile::TempDir; 2],
}

fn cluster() -> Cluster {
    let server = harness::postgres::Server::shared().unwrap_or_else(|e| panic!("{e:#}"));
    let url = server.database().unwrap_or_else(|e| panic!("{e:#}"));
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let tier = TECHNICIAN_TIER.to_string();
    let data = dir_b.path().display().to_string();
    let added = run(
        "relay",
        &[
            "--data-dir",
            &data,
            "--database-url",
            &url,
            "user",
            "add",
            TECHNICIAN,
            "--tier",
            &tier,
        ],
        &format!("{TECHNICIAN_PASSWORD}\n"),
    );
    assert!(added.success, "relay user add: {}", added.text());
    let args = ["--database-url", &url, "--cluster", "north"];
    let a = Relay::start(dir_a.path(), &args);
    let b = Relay::start(dir_b.path(), &args);
    let login = b.login(TECHNICIAN, TECHNICIAN_PASSWORD);
    assert!(login.success, "technician login on B: {}", login.text());
    Cluster {
        a,
        b,
        _dirs: [dir_a, dir_b],
    }
}

#[test]
fn a_code_of_relay_a_joined_through_relay_b_runs_the_session_on_a() {
    let c = cluster();
    let src = format!("corpus:{}", tests::data("typing.scrn").display());
    let (mut agent, code) = start_agent(&c.a, &["--source", &src]);
    let mut tech = start_technician_unprepared(&c.b, &code, &["--report-updates"]);
    let sent = tech.wait_event("redirected", PROMPT);
    assert_eq!(sent["addr"], c.a.addr.as_str(), "{sent}");
    assert_eq!(sent["fingerprint"], c.a.fingerprint.as_str(), "{sent}");
    tech.wait_event("session_start", PROMPT);
    tech.wait_event("update", PROMPT);
    let paired = agent.wait_event("paired", PROMPT);
    assert_eq!(paired["technician"], TECHNICIAN, "{paired}");
}

#[test]
fn a_help_request_filed_through_a_is_taken_through_b_once() {
    let c = cluster();
    let mut agent = request_help(&c.a, "control", &[]);
    let id = agent.wait_event("queued", PROMPT)["request"].to_string();
    let dir = tempfile::tempdir().unwrap();
    let tokens = c.b.tokens_file().display().to_string();
    let mut tech = technician(
        &c.b,
        dir.path(),
        &tokens,
        &["take", &id],
        "wait 300\nend\n",
        &["--report-updates"],
    );
    let sent = tech.wait_event("redirected", PROMPT);
    assert_eq!(sent["addr"], c.a.addr.as_str(), "{sent}");
    agent.wait_event("claimed", PROMPT);
    let theirs = agent.wait_event("verification", PROMPT);
    let ours = tech.wait_event("verification", PROMPT);
    assert_eq!(theirs["code"], ours["code"]);
    tech.wait_event("update", PROMPT);
    assert!(
        tech.wait_exit(PROMPT).success(),
        "technician failed\n{}",
        tech.transcript()
    );
    // Taken once: a second take through B finds it taken (or done), never a second session.
    let mut again = technician(&c.b, dir.path(), &tokens, &["take", &id], "end\n", &[]);
    assert!(!again.wait_exit(PROMPT).success(), "{}", again.transcript());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_of_a_relay_gone_from_the_cluster_is_refused_as_such() {
    let mut c = cluster();
    let mut agent = RelayConnection::connect(&c.a.addr, c.a.fingerprint(), Role::Agent)
        .await
        .expect("an agent connects to relay A");
    let (code, _) = agent.register().await.unwrap();
    c.a.proc.signal(libc::SIGTERM);
    assert!(c.a.proc.wait_exit(PROMPT).success(), "relay A stopped");
    let mut tech = c.b.logged_in(TECHNICIAN, TECHNICIAN_PASSWORD).await;
    match tech.join(code).await {
        Err(link::LinkError::Refused { code, message }) => {
            assert_eq!(code, protocol::control::ErrorCode::RelayGone, "{message}");
            assert!(message.contains("which is gone"), "{message}");
        }
        other => panic!("a code of the stopped relay A: {other:?}"),
    }
}
