//! The upload spool on a real relay: a log the relay refuses does not hold back the logs
//! behind it. It goes to the spool's `quarantine` directory (readable by its owner only), the
//! technician says which file and what the relay said, and the rest go up.

use std::path::Path;
use std::time::Duration;

use protocol::control::LogOffer;
use technician::archive::{parse_recipient, Spool, SpoolEntry};
use tests::{data, run, start_agent, start_technician, Relay, PROMPT};

const SESSION: Duration = Duration::from_secs(120);

/// Makes an audit key in `dir`; returns its public half.
fn audit_key(dir: &Path) -> String {
    let key = dir.join("audit.key");
    let r = run(
        "technician",
        &["log", "keygen", "-o", key.to_str().unwrap()],
        "",
    );
    assert!(r.success, "{}", r.text());
    r.stdout.trim().to_string()
}

#[test]
fn a_refused_log_goes_to_quarantine_and_the_logs_behind_it_still_upload() {
    let dir = tempfile::tempdir().unwrap();
    let public = audit_key(dir.path());
    let relay = Relay::start(&dir.path().join("relay"), &["--audit-key", &public]);

    // First in the spool (the oldest): a log whose bytes are no longer what its entry says,
    // as a disk error would leave it. The relay refuses it.
    let spool = Spool::new(relay.data_dir.join("technician-logs").join("upload-spool"));
    let plain = dir.path().join("old.tlog");
    std::fs::write(&plain, b"TANDEMLG an old session".repeat(500)).unwrap();
    let entry = SpoolEntry {
        relay: relay.addr.clone(),
        offer: LogOffer {
            id: "0000000000000000000000000000dead".into(),
            agent: "agent at 10.0.0.9".into(),
            started_unix_ms: 1,
            duration_ms: 2,
            records: 3,
            chain_hash: "00".repeat(32),
            sha256: String::new(),
            size: 0,
        },
    };
    let entry = spool
        .add(&plain, &parse_recipient(&public).unwrap(), entry)
        .unwrap();
    let bad = spool.data_path(&entry.offer.id);
    let mut bytes = std::fs::read(&bad).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&bad, &bytes).unwrap();

    // A session: its own log goes into the spool behind the refused one.
    let source = format!("corpus:{}", data("typing.scrn").display());
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--speed", "0"]);
    let mut tech = start_technician(&relay, &code, &[]);
    tech.wait_exit(SESSION);
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());
    let text = tech.transcript();

    let refused = tech.events("upload_refused");
    assert_eq!(refused.len(), 1, "{text}");
    assert_eq!(refused[0]["id"], entry.offer.id.as_str(), "{text}");
    assert!(
        !refused[0]["why"].as_str().unwrap().is_empty(),
        "the relay's reason is reported: {text}"
    );
    let quarantined = Path::new(refused[0]["path"].as_str().unwrap()).to_path_buf();
    assert_eq!(
        quarantined,
        spool.quarantine_dir().join(bad.file_name().unwrap())
    );
    assert_eq!(
        std::fs::read(&quarantined).unwrap(),
        bytes,
        "kept as it was"
    );
    assert!(!bad.exists(), "no longer in the spool");
    assert!(
        spool.entries().is_empty(),
        "nothing waits: {:?}",
        spool.entries()
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&spool.quarantine_dir()), 0o700);
        assert_eq!(mode(&quarantined) & 0o077, 0, "readable by its owner only");
    }

    // The session's own log went up behind it: the relay said it has it whole.
    let uploaded = tech.events("uploaded");
    assert_eq!(uploaded.len(), 1, "{text}");
    assert_ne!(uploaded[0]["id"], entry.offer.id.as_str());
    assert!(tech.events("upload_pending").is_empty(), "{text}");
}
