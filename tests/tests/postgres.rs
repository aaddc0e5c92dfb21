//! Two relay processes keeping their state in one PostgreSQL database (a throw-away server the
//! test starts, harness::postgres): an account made with `relay user add --database-url` logs in
//! on both; a help request filed through one relay is seen in the queue watched on the other and
//! taken exactly once; `relay user list`, `relay logs list` and `relay report` read the same
//! database from a data directory of their own.

use link::client::QueueNews;
use link::{LinkError, RelayConnection};
use protocol::control::{ErrorCode, RequestFiling, Role};
use tests::{run, Relay, PROMPT, TECHNICIAN, TECHNICIAN_PASSWORD};

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PROMPT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took longer than {PROMPT:?}"))
}

/// The ids of the requests in the queue `watcher` is sent next.
async fn next_queue_ids(watcher: &mut RelayConnection) -> Vec<u64> {
    let (queue, _) = within("the queue", watcher.next_queue()).await.unwrap();
    queue.iter().map(|e| e.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_postgresql_database_share_accounts_and_the_queue_and_take_once() {
    let server = harness::postgres::Server::shared().unwrap_or_else(|e| panic!("{e:#}"));
    let url = server.database().unwrap_or_else(|e| panic!("{e:#}"));
    let (dir_a, dir_b, cli) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let cli_dir = cli.path().display().to_string();
    let relay_cmd = |args: &[&str], stdin: &str| {
        let mut all = vec!["--data-dir", &cli_dir, "--database-url", &url];
        all.extend_from_slice(args);
        run("relay", &all, stdin)
    };

    // The account is made once, in the database, from neither relay's data directory.
    let added = relay_cmd(
        &["user", "add", TECHNICIAN, "--tier", "1"],
        &format!("{TECHNICIAN_PASSWORD}\n"),
    );
    assert!(added.success, "relay user add: {}", added.text());
    let relay_a = Relay::start(dir_a.path(), &["--database-url", &url]);
    let relay_b = Relay::start(dir_b.path(), &["--database-url", &url]);
    let listed = relay_cmd(&["user", "list"], "");
    assert!(
        listed.success && listed.stdout.contains(TECHNICIAN),
        "{}",
        listed.text()
    );

    // A technician logged in on relay B watches the queue; a user asks for help through A.
    let mut watcher = relay_b.logged_in(TECHNICIAN, TECHNICIAN_PASSWORD).await;
    watcher.watch_queue().await.unwrap();
    assert!(next_queue_ids(&mut watcher).await.is_empty());
    let mut agent = RelayConnection::connect(&relay_a.addr, relay_a.fingerprint(), Role::Agent)
        .await
        .expect("an agent connects to relay A");
    let queued = agent
        .file_request(RequestFiling {
            description: "the printer stops".into(),
            machine: "pc-17".into(),
            os: "Debian 12".into(),
            ticket: None,
        })
        .await
        .unwrap();
    let id = queued.request;
    // Relay B follows what A stored.
    while next_queue_ids(&mut watcher).await != vec![id] {}

    // Technicians on both relays race for it: taken once, by the one whose relay holds the
    // user's agent; the other is told it went.
    let mut on_a = relay_a.logged_in(TECHNICIAN, TECHNICIAN_PASSWORD).await;
    let mut on_b = relay_b.logged_in(TECHNICIAN, TECHNICIAN_PASSWORD).await;
    let (taken_a, taken_b) = tokio::join!(on_a.take(Some(id)), on_b.take(Some(id)));
    taken_a.expect("the technician on relay A takes the request");
    match taken_b {
        Err(LinkError::Refused { code, .. }) => assert!(
            matches!(code, ErrorCode::RequestTaken | ErrorCode::RequestAway),
            "{code:?}"
        ),
        other => panic!("relay B's technician took it too: {other:?}"),
    }
    match within("the agent's news", agent.next_in_queue()).await {
        Ok(QueueNews::Taken(peer)) => assert_eq!(
            peer.account.as_ref().map(|a| a.name.as_str()),
            Some(TECHNICIAN)
        ),
        other => panic!("the agent heard {other:?}"),
    }
    // Relay B's queue empties, and a late take through it is refused as taken.
    while !next_queue_ids(&mut watcher).await.is_empty() {}
    let mut late = relay_b.logged_in(TECHNICIAN, TECHNICIAN_PASSWORD).await;
    match late.take(Some(id)).await {
        Err(LinkError::Refused { code, message }) => {
            assert_eq!(code, ErrorCode::RequestTaken, "{message}");
            assert!(message.contains("already taken by tess"), "{message}");
        }
        other => panic!("a late take through relay B: {other:?}"),
    }

    // The commands read the same database.
    let report = relay_cmd(&["report", "--json"], "");
    assert!(report.success, "relay report: {}", report.text());
    let report: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(report["tiers"][0]["requests"], 1, "{report}");
    // The session the take paired, once its two ends leave, is in the ledger as relay A's
    // (with no log stored: this relay keeps none).
    drop((on_a, agent));
    let a_name = std::fs::read_to_string(dir_a.path().join("relay-name")).unwrap();
    let deadline = std::time::Instant::now() + PROMPT;
    loop {
        let logs = relay_cmd(&["logs", "list", "--json"], "");
        assert!(logs.success, "relay logs list: {}", logs.text());
        let listed = logs.stdout.lines().any(|l| {
            let s: serde_json::Value = serde_json::from_str(l).unwrap();
            s["technician"] == TECHNICIAN && s["relay"] == a_name.trim()
        });
        if listed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session did not end in the ledger within {PROMPT:?}: {}",
            logs.stdout
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    drop((on_b, late, watcher, relay_a, relay_b));
}
