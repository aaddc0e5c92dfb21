//! Running a relay for an organisation: session logs kept in S3-compatible object storage (a
//! real SeaweedFS server, started here) and the figures of its admin listener, scraped as a
//! Prometheus server does.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use tests::{data, run, start_agent, start_technician, Relay, PROMPT};

const SESSION: Duration = Duration::from_secs(120);

/// A free TCP port on loopback for the admin listener.
fn free_admin_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET path` from the admin listener: status line and body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The samples of a Prometheus text exposition, `name{labels}` to value; every sample's
/// metric has its TYPE line first.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') {
            let (key, value) = line.rsplit_once(' ').expect("name and value");
            let name = key.split('{').next().unwrap();
            assert!(typed.contains(name), "{name} has no TYPE line: {line}");
            out.insert(key.to_string(), value.parse().expect("a number"));
        }
    }
    out
}

fn relay_cmd(relay: &Relay, config: &Path, args: &[&str]) -> tests::Ran {
    let mut all = vec![
        "--data-dir",
        relay.data_dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    run("relay", &all, "")
}

#[test]
fn a_log_stored_in_s3_is_fetched_back_and_the_metrics_count_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = harness::s3::SeaweedFs::start(&dir.path().join("seaweedfs"), "tandem-logs")
        .expect("this test needs SeaweedFS, a real S3 server");
    let key = dir.path().join("audit.key");
    let r = run(
        "technician",
        &["log", "keygen", "-o", key.to_str().unwrap()],
        "",
    );
    assert!(r.success, "{}", r.text());
    let public = r.stdout.trim().to_string();
    let admin = free_admin_addr();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "audit_key = \"{public}\"\nlog_store = \"s3://{}/site-a\"\ns3_endpoint = \"{}\"\n\
             s3_access_key_id = \"{}\"\ns3_secret_access_key = \"{}\"\nadmin_listen = \"{admin}\"\n",
            s3.bucket, s3.endpoint, s3.access_key_id, s3.secret_access_key
        ),
    )
    .unwrap();
    let relay_dir = dir.path().join("relay");
    let relay = Relay::start(&relay_dir, &["--config", config.to_str().unwrap()]);

    let (status, body) = get(admin, "/health");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    let (status, _) = get(admin, "/secrets");
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    // A session whose log goes up to the bucket at its end.
    let source = format!("corpus:{}", data("typing.scrn").display());
    let (mut agent, code) = start_agent(&relay, &["--source", &source, "--speed", "2"]);
    let mut tech = start_technician(&relay, &code, &[]);
    let local = tech.wait_event("recorded", PROMPT)["path"]
        .as_str()
        .unwrap()
        .to_string();
    let uploaded = tech.wait_event("uploaded", PROMPT);
    let id = uploaded["id"].as_str().unwrap().to_string();
    tech.wait_exit(SESSION);
    assert!(agent.wait_exit(PROMPT).success(), "{}", agent.transcript());

    // The relay's disk holds no log: the bucket does.
    let logs_dir = relay_dir.join(relay::objects::LOGS_DIR);
    assert!(
        !logs_dir.exists() || std::fs::read_dir(&logs_dir).unwrap().next().is_none(),
        "nothing under {}",
        logs_dir.display()
    );
    let r = relay_cmd(&relay, &config, &["logs", "list", "--json"]);
    assert!(r.success, "{}", r.text());
    let listed: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["id"] == id.as_str())
        .collect();
    assert_eq!(listed.len(), 1, "{}", r.stdout);
    assert_eq!(listed[0]["complete"], true, "{}", r.stdout);

    // Fetched back, through the relay's command and over the network, it opens with the
    // audit key into the technician's own log, byte for byte.
    let out = dir.path().join("fetched");
    let r = relay_cmd(
        &relay,
        &config,
        &["logs", "get", &id, "-o", out.to_str().unwrap()],
    );
    assert!(r.success, "{}", r.text());
    let sealed = out.join(format!("{id}.tlog.age"));
    let opened = dir.path().join("opened.tlog");
    let r = run(
        "technician",
        &[
            "log",
            "decrypt",
            sealed.to_str().unwrap(),
            "--identity",
            key.to_str().unwrap(),
            "-o",
            opened.to_str().unwrap(),
        ],
        "",
    );
    assert!(r.success, "{}", r.text());
    assert_eq!(
        std::fs::read(&opened).unwrap(),
        std::fs::read(&local).unwrap()
    );
    let remote = dir.path().join("remote");
    let mut args = vec![
        "fetch-log".to_string(),
        id.clone(),
        "-o".into(),
        remote.display().to_string(),
        "--tokens".into(),
        relay.tokens_file().display().to_string(),
    ];
    args.extend(relay.peer_args());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run("technician", &refs, "");
    assert!(r.success, "{}", r.text());
    assert_eq!(
        std::fs::read(remote.join(format!("{id}.tlog.age"))).unwrap(),
        std::fs::read(&sealed).unwrap()
    );

    // What the relay did, as its operators' Prometheus sees it.
    let (status, body) = get(admin, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    let m = samples(&body);
    let size = std::fs::metadata(&sealed).unwrap().len() as f64;
    assert_eq!(m["tandem_relay_sessions_paired_total"], 1.0, "{body}");
    assert_eq!(m["tandem_relay_logs_stored_total"], 1.0, "{body}");
    assert_eq!(m["tandem_relay_log_upload_bytes_total"], size, "{body}");
    assert!(
        m["tandem_relay_forwarded_bytes_total"] > 10_000.0,
        "the screen went through: {body}"
    );
    assert_eq!(
        m["tandem_relay_sessions"], 0.0,
        "the session is over: {body}"
    );
    assert_eq!(m["tandem_relay_waiting_codes"], 0.0, "{body}");
    assert_eq!(m["tandem_relay_queue_length{tier=\"1\"}"], 0.0, "{body}");
    assert_eq!(m["tandem_relay_storage_errors_total"], 0.0, "{body}");
    assert_eq!(m["tandem_relay_database_errors_total"], 0.0, "{body}");

    // A join with a code nobody issued is refused, and counted by its reason.
    let mut stray = start_technician(&relay, "000 000 000 - 0000", &[]);
    assert!(!stray.wait_exit(PROMPT).success());
    let m = samples(&get(admin, "/metrics").1);
    assert_eq!(
        m.get("tandem_relay_refusals_total{reason=\"unknown_code\"}"),
        Some(&1.0),
        "{m:?}"
    );
}
