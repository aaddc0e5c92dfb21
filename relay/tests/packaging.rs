//! The Debian package's own files (relay/debian/): the default config the relay reads, and the
//! systemd unit that runs it, checked by systemd itself. `scripts/deb` builds the whole package
//! and checks it the same way.

use std::path::{Path, PathBuf};
use std::process::Command;

use relay::config::{Config, FileConfig};

fn debian(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("debian")
        .join(file)
}

#[test]
fn the_default_config_keeps_state_in_var_lib_and_serves_metrics_on_loopback() {
    let file = FileConfig::load(&debian("relay.toml")).unwrap();
    let mut cfg = Config::default();
    file.apply(&mut cfg);
    cfg.validate().unwrap();
    assert_eq!(cfg.data_dir, Path::new("/var/lib/tandem-relay"));
    assert_eq!(cfg.admin_listen, Some("127.0.0.1:9433".parse().unwrap()));
    assert_eq!(cfg.listen.port(), 4433);
    assert_eq!(
        cfg.log_store, None,
        "logs in the state directory unless told"
    );
    assert_eq!(
        cfg.database_url, None,
        "state in SQLite in the state directory unless told"
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = std::fs::read_to_string(debian("tandem-relay.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/tandem-relay --config /etc/tandem/relay.toml"));
    assert!(unit.contains("StateDirectory=tandem-relay"));
    // As installed, but starting the relay this build made (the package is not installed here).
    let dir = tempfile::tempdir().unwrap();
    let checked = dir.path().join("tandem-relay.service");
    std::fs::write(
        &checked,
        unit.replace("/usr/bin/tandem-relay", env!("CARGO_BIN_EXE_relay")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&checked)
        .output()
        .expect("this test needs systemd-analyze (Debian package systemd) to check the unit");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("tandem-relay.service:"),
        "systemd has remarks on the unit: {said}"
    );
}
