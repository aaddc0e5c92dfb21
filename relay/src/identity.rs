//! The relay's TLS identity: a self-signed certificate and key generated on first start into the
//! data directory and reused after, so that the fingerprint clients pin stays the same; and its
//! name among relays that share a database ([`relay_name`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use link::tls::{self, Fingerprint};

pub const CERT_FILE: &str = "relay-cert.der";
pub const KEY_FILE: &str = "relay-key.der";
pub const NAME_FILE: &str = "relay-name";

/// The certificate and key the relay presents.
pub struct Identity {
    pub cert_der: Vec<u8>,
    pub key_der: Vec<u8>,
    pub fingerprint: Fingerprint,
    /// True when this start generated them.
    pub generated: bool,
    pub cert_path: PathBuf,
}

impl Identity {
    /// The key of the relay's stateless resets: derived from its private key, so the same
    /// across restarts (see `link::transport::endpoint_with_reset_key`) and unknown to anyone
    /// without that key.
    pub fn reset_key(&self) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"tandem relay stateless reset key\0");
        h.update(&self.key_der);
        h.finalize().into()
    }
}

/// Loads the identity from `data_dir`, generating it there first if it does not exist.
pub fn load_or_generate(data_dir: &Path) -> anyhow::Result<Identity> {
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    }
    let cert_path = data_dir.join(CERT_FILE);
    let key_path = data_dir.join(KEY_FILE);
    let generated = match (cert_path.exists(), key_path.exists()) {
        (true, true) => false,
        (false, false) => {
            let id = tls::generate_self_signed(vec!["tandem-relay".into(), "localhost".into()])
                .context("cannot generate a certificate")?;
            write_private(&key_path, &id.key_der)?;
            fs::write(&cert_path, &id.cert_der)
                .with_context(|| format!("cannot write {}", cert_path.display()))?;
            true
        }
        (cert, _) => anyhow::bail!(
            "the data directory {} has a certificate but no key, or a key but no certificate ({} is {}); \
             restore the missing file, or remove the other to generate a new identity (clients will \
             then see a new fingerprint)",
            data_dir.display(),
            if cert { KEY_FILE } else { CERT_FILE },
            "missing"
        ),
    };
    let cert_der =
        fs::read(&cert_path).with_context(|| format!("cannot read {}", cert_path.display()))?;
    let key_der =
        fs::read(&key_path).with_context(|| format!("cannot read {}", key_path.display()))?;
    // Check the pair is usable now rather than at the first connection.
    tls::server_config(cert_der.clone(), key_der.clone()).with_context(|| {
        format!(
            "the certificate or key in {} is not usable",
            data_dir.display()
        )
    })?;
    Ok(Identity {
        fingerprint: Fingerprint::of(&cert_der),
        cert_der,
        key_der,
        generated,
        cert_path,
    })
}

/// The name this relay marks what it holds with in its database (the sessions it paired, the
/// help requests taken through it), so that relays sharing one database each tidy up after
/// their own restart only: kept in `relay-name` in the data directory, made on first start
/// from the host's name and six random hex digits (`desk-host-3fa9c1`).
pub fn relay_name(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(NAME_FILE);
    match fs::read_to_string(&path) {
        Ok(name) if !name.trim().is_empty() => return Ok(name.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    use rand::TryRngCore;
    let mut suffix = [0u8; 3];
    rand::rngs::OsRng
        .try_fill_bytes(&mut suffix)
        .context("the operating system's random source failed")?;
    let host = crate::config::hostname().unwrap_or_else(|| "relay".into());
    let name = format!("{host}-{}", hex::encode(suffix));
    fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    fs::write(&path, format!("{name}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(name)
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_start_reuses_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate(dir.path()).unwrap();
        assert!(a.generated);
        let b = load_or_generate(dir.path()).unwrap();
        assert!(!b.generated);
        assert_eq!(a.fingerprint, b.fingerprint);
        std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
        let err = load_or_generate(dir.path()).err().unwrap().to_string();
        assert!(err.contains("no key"), "{err}");
    }

    #[test]
    fn a_relay_keeps_its_name_and_another_data_directory_gets_another() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let name = relay_name(a.path()).unwrap();
        assert_eq!(relay_name(a.path()).unwrap(), name);
        assert_ne!(relay_name(b.path()).unwrap(), name);
    }
}
