//! A session log on its way to the relay's archive, where the relay still cannot read it.
//!
//! The live session is end-to-end sealed; a stored log must not undo that. So before a log
//! leaves this machine it is encrypted to the organisation's audit key: an X25519 recipient of
//! the `age` format (`age1…`), whose public half the relay hands out and whose private half
//! stays with the auditors. The encrypted copy waits in a local spool until the relay has it
//! whole; a relay that cannot be reached at the end of a session gets it on a later connection.
//! A log the relay refuses (its bytes damaged, over the relay's size limit) goes to the spool's
//! quarantine, so that it does not hold back the logs behind it.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{bail, Context};
use protocol::control::LogOffer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Parses an audit key (an age X25519 recipient, `age1…`).
pub fn parse_recipient(s: &str) -> anyhow::Result<age::x25519::Recipient> {
    age::x25519::Recipient::from_str(s.trim())
        .map_err(|e| anyhow::anyhow!("`{}` is not an age X25519 recipient (age1…): {e}", s.trim()))
}

/// Writes `path` readable by its owner only, whole or not at all (see
/// [`link::userfile::write_private_with`]), buffered.
fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<&mut File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut failure = None;
    let written = link::userfile::write_private_with(path, |f| {
        let mut out = BufWriter::new(f);
        let filled = fill(&mut out).and_then(|()| Ok(out.flush()?));
        filled.map_err(|e| {
            let io = std::io::Error::other(format!("{e:#}"));
            failure = Some(e);
            io
        })
    });
    match (written, failure) {
        (Ok(()), _) => Ok(()),
        (Err(_), Some(e)) => Err(e),
        (Err(e), None) => {
            Err(anyhow::Error::from(e).context(format!("cannot write {}", path.display())))
        }
    }
}

/// Encrypts the file `plain` to `recipient` into `out`. Returns the SHA-256 and size of what
/// was written.
pub fn encrypt_file(
    plain: &Path,
    recipient: &age::x25519::Recipient,
    out: &Path,
) -> anyhow::Result<([u8; 32], u64)> {
    let mut input = BufReader::new(
        File::open(plain).with_context(|| format!("cannot open {}", plain.display()))?,
    );
    write_atomically(out, |w| {
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
                .context("cannot set up the encryption")?;
        let mut writer = encryptor.wrap_output(w)?;
        std::io::copy(&mut input, &mut writer)
            .with_context(|| format!("cannot encrypt {}", plain.display()))?;
        writer.finish()?;
        Ok(())
    })?;
    hash_file(out)
}

/// SHA-256 and size of a file.
pub fn hash_file(path: &Path) -> anyhow::Result<([u8; 32], u64)> {
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finalize().into(), size))
}

/// Decrypts `input` (an encrypted session log) with the identities in `identity_file` (an age
/// key file, as `technician log keygen` writes) into `out`.
pub fn decrypt_file(identity_file: &Path, input: &Path, out: &Path) -> anyhow::Result<()> {
    let identities = age::IdentityFile::from_file(identity_file.display().to_string())
        .with_context(|| format!("cannot read the key file {}", identity_file.display()))?
        .into_identities()
        .with_context(|| format!("{} holds no usable key", identity_file.display()))?;
    if identities.is_empty() {
        bail!("{} holds no key", identity_file.display());
    }
    let file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let decryptor = age::Decryptor::new_buffered(BufReader::new(file))
        .with_context(|| format!("{} is not an encrypted session log", input.display()))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .with_context(|| {
            format!(
                "{} cannot be opened with the key in {}",
                input.display(),
                identity_file.display()
            )
        })?;
    write_atomically(out, |w| {
        std::io::copy(&mut reader, w).with_context(|| format!("{} is damaged", input.display()))?;
        w.flush()?;
        Ok(())
    })
}

/// Makes a new audit key: writes the private half to `path` (readable by its owner only) and
/// returns the public half to give the relay.
pub fn keygen(path: &Path) -> anyhow::Result<String> {
    use age::secrecy::ExposeSecret;
    if path.exists() {
        bail!("{} exists already; not overwriting a key", path.display());
    }
    let identity = age::x25519::Identity::generate();
    let public = identity.to_public().to_string();
    write_atomically(path, |w| {
        writeln!(
            w,
            "# Tandem audit key: opens the session logs stored on the relay."
        )?;
        writeln!(w, "# public key: {public}")?;
        writeln!(w, "{}", identity.to_string().expose_secret())?;
        Ok(())
    })?;
    Ok(public)
}

/// What the spool knows of a log waiting for upload: the relay it goes to (`HOST:PORT`) and
/// the offer it is uploaded with (its `id` names the spool's files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolEntry {
    pub relay: String,
    #[serde(flatten)]
    pub offer: LogOffer,
}

/// The directory of encrypted logs waiting for upload: `ID.tlog.age` and its `ID.json`.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.tlog.age"))
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Encrypts `log` into the spool under `entry.offer.id` and records its entry (the
    /// offer's `sha256` and `size` filled in here).
    pub fn add(
        &self,
        log: &Path,
        recipient: &age::x25519::Recipient,
        mut entry: SpoolEntry,
    ) -> anyhow::Result<SpoolEntry> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create the spool {}", self.dir.display()))?;
        let (sha, size) = encrypt_file(log, recipient, &self.data_path(&entry.offer.id))?;
        entry.offer.sha256 = hex::encode(sha);
        entry.offer.size = size;
        write_atomically(&self.meta_path(&entry.offer.id), |w| {
            serde_json::to_writer_pretty(&mut *w, &entry)?;
            Ok(())
        })?;
        Ok(entry)
    }

    /// The logs waiting, oldest first. A damaged entry is skipped with a warning.
    pub fn entries(&self) -> Vec<SpoolEntry> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<SpoolEntry> = dir
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                match serde_json::from_str::<SpoolEntry>(&text) {
                    Ok(entry) if self.data_path(&entry.offer.id).exists() => Some(entry),
                    _ => {
                        tracing::warn!(path = %e.path().display(), "spool entry unreadable; skipped");
                        None
                    }
                }
            })
            .collect();
        out.sort_by_key(|e| e.offer.started_unix_ms);
        out
    }

    /// The relay has it whole: forget it.
    pub fn remove(&self, id: &str) -> std::io::Result<()> {
        std::fs::remove_file(self.meta_path(id))?;
        std::fs::remove_file(self.data_path(id))
    }

    /// Where logs the relay refused are kept: the spool's [`QUARANTINE`] subdirectory.
    pub fn quarantine_dir(&self) -> PathBuf {
        self.dir.join(QUARANTINE)
    }

    /// Moves log `id` (its data and its entry) out of the way of the logs behind it, into
    /// [`Spool::quarantine_dir`] (made readable by its owner only), with `why` beside it in
    /// `ID.refused.txt`. It is no longer offered; moving its two files back into the spool
    /// offers it again. Returns where its data is now.
    pub fn quarantine(&self, id: &str, why: &str) -> anyhow::Result<PathBuf> {
        let dir = self.quarantine_dir();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            builder.mode(0o700);
            builder
                .create(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            // Made before, perhaps by hand: owner only all the same.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("cannot restrict {}", dir.display()))?;
        }
        #[cfg(not(unix))]
        builder
            .create(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        write_atomically(&dir.join(format!("{id}.refused.txt")), |w| {
            writeln!(w, "{why}")?;
            Ok(())
        })?;
        let data = dir.join(format!("{id}.tlog.age"));
        // The data first: an entry without its data is skipped by `entries`.
        for (from, to) in [
            (self.data_path(id), data.clone()),
            (self.meta_path(id), dir.join(format!("{id}.json"))),
        ] {
            std::fs::rename(&from, &to)
                .with_context(|| format!("cannot move {} to {}", from.display(), to.display()))?;
        }
        Ok(data)
    }
}

/// The spool's subdirectory for logs the relay refused (see [`Spool::quarantine`]).
pub const QUARANTINE: &str = "quarantine";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_encrypted_to_the_audit_key_opens_with_it_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("audit.key");
        let public = keygen(&key).unwrap();
        assert!(public.starts_with("age1"));
        assert!(keygen(&key).is_err(), "an existing key is not overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key file readable by others: {mode:o}");
        }
        let plain = dir.path().join("s.tlog");
        let secret = b"TANDEMLG the user typed hunter2".repeat(100);
        std::fs::write(&plain, &secret).unwrap();
        let spool = Spool::new(dir.path().join("spool"));
        let entry = SpoolEntry {
            relay: "relay:4433".into(),
            offer: LogOffer {
                id: "s1".into(),
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
        let sealed = std::fs::read(spool.data_path("s1")).unwrap();
        assert_eq!(entry.offer.size, sealed.len() as u64);
        assert!(
            !sealed.windows(7).any(|w| w == b"hunter2"),
            "plaintext in the spool"
        );
        assert_eq!(spool.entries(), vec![entry.clone()]);

        let out = dir.path().join("back.tlog");
        decrypt_file(&key, &spool.data_path("s1"), &out).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), secret);

        let other = dir.path().join("other.key");
        keygen(&other).unwrap();
        let err = decrypt_file(&other, &spool.data_path("s1"), &dir.path().join("x")).unwrap_err();
        assert!(format!("{err:#}").contains("cannot be opened"), "{err:#}");

        spool.remove("s1").unwrap();
        assert!(spool.entries().is_empty());
        assert!(parse_recipient("age1nonsense").is_err());
    }
}
