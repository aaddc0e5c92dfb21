//! Known relays: trust on first use for relays whose fingerprint was not given.
//!
//! When a peer connects without `--fingerprint`, the fingerprint of the certificate the relay
//! presents the first time is remembered in a per-user file (`~/.config/tandem/known-relays.json`,
//! by relay address as typed, `HOST:PORT`), and every later connection to that address must
//! present the same certificate. A changed certificate is refused, saying both fingerprints and
//! how to accept the new one. A fingerprint given explicitly is checked instead, and once the
//! connection succeeds it replaces what was remembered.
//!
//! [`plan`] decides what to check; the file is [`KnownRelays`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::tls::{Fingerprint, ServerTrust};
use crate::userfile;

/// The file name in the per-user configuration directory.
pub const FILE_NAME: &str = "known-relays.json";

/// `~/.config/tandem/known-relays.json`.
pub fn default_path() -> PathBuf {
    userfile::config_dir().join(FILE_NAME)
}

/// How a relay address is written in the file: trimmed, lower case.
pub fn key(relay: &str) -> String {
    relay.trim().to_ascii_lowercase()
}

/// What to check a relay's certificate against, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The fingerprint given on the command line.
    Explicit(Fingerprint),
    /// The fingerprint remembered from an earlier connection.
    Remembered(Fingerprint),
    /// Nothing known: accept what the relay presents, and remember it.
    FirstUse,
}

impl Plan {
    pub fn server_trust(self) -> ServerTrust {
        match self {
            Plan::Explicit(f) | Plan::Remembered(f) => ServerTrust::Pinned(f),
            Plan::FirstUse => ServerTrust::FirstUse,
        }
    }
}

/// An explicit fingerprint wins; else the remembered one; else first use.
pub fn plan(explicit: Option<Fingerprint>, remembered: Option<Fingerprint>) -> Plan {
    match (explicit, remembered) {
        (Some(f), _) => Plan::Explicit(f),
        (None, Some(f)) => Plan::Remembered(f),
        (None, None) => Plan::FirstUse,
    }
}

/// Why the known-relays file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KnownRelaysError {
    #[error("cannot read the known relays file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write the known relays file {path}: {reason}")]
    Write { path: PathBuf, reason: String },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileShape {
    /// Relay address -> fingerprint (64 hex digits).
    relays: BTreeMap<String, String>,
}

/// The known-relays file, loaded.
#[derive(Debug)]
pub struct KnownRelays {
    path: PathBuf,
    relays: BTreeMap<String, String>,
}

impl KnownRelays {
    /// Loads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, KnownRelaysError> {
        let read_err = |reason: String| KnownRelaysError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let relays = match userfile::read_if_exists(path).map_err(|e| read_err(e.to_string()))? {
            None => BTreeMap::new(),
            Some(text) => {
                serde_json::from_str::<FileShape>(&text)
                    .map_err(|e| {
                        read_err(format!(
                            "{e}; fix or delete it (it is rebuilt as you connect)"
                        ))
                    })?
                    .relays
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            relays,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fingerprint remembered for `relay`.
    pub fn get(&self, relay: &str) -> Option<Fingerprint> {
        self.relays.get(&key(relay)).and_then(|f| f.parse().ok())
    }

    /// Remembers `fingerprint` for `relay` and saves the file.
    pub fn remember(
        &mut self,
        relay: &str,
        fingerprint: Fingerprint,
    ) -> Result<(), KnownRelaysError> {
        self.relays.insert(key(relay), fingerprint.to_string());
        self.save()
    }

    /// Forgets `relay`; true if it was known. Saves the file.
    pub fn forget(&mut self, relay: &str) -> Result<bool, KnownRelaysError> {
        let known = self.relays.remove(&key(relay)).is_some();
        if known {
            self.save()?;
        }
        Ok(known)
    }

    fn save(&self) -> Result<(), KnownRelaysError> {
        let shape = FileShape {
            relays: self.relays.clone(),
        };
        let mut text = serde_json::to_string_pretty(&shape).expect("a map of strings serialises");
        text.push('\n');
        userfile::write_private(&self.path, text.as_bytes()).map_err(|e| KnownRelaysError::Write {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_prefers_explicit_then_remembered() {
        let a = Fingerprint::of(b"a");
        let b = Fingerprint::of(b"b");
        assert_eq!(plan(Some(a), Some(b)), Plan::Explicit(a));
        assert_eq!(plan(None, Some(b)), Plan::Remembered(b));
        assert_eq!(plan(None, None), Plan::FirstUse);
        assert_eq!(plan(None, None).server_trust(), ServerTrust::FirstUse);
        assert_eq!(plan(None, Some(b)).server_trust(), ServerTrust::Pinned(b));
    }

    #[test]
    fn remembered_relays_persist_by_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("known-relays.json");
        let f = Fingerprint::of(b"cert");
        {
            let mut k = KnownRelays::load(&path).unwrap();
            assert_eq!(k.get("relay.example.org:4433"), None);
            k.remember("Relay.Example.org:4433 ", f).unwrap();
        }
        let mut k = KnownRelays::load(&path).unwrap();
        assert_eq!(k.get("relay.example.org:4433"), Some(f));
        assert_eq!(k.get("relay.example.org:4434"), None);
        assert!(k.forget("relay.example.org:4433").unwrap());
        assert!(!k.forget("relay.example.org:4433").unwrap());
        assert_eq!(
            KnownRelays::load(&path)
                .unwrap()
                .get("relay.example.org:4433"),
            None
        );

        std::fs::write(&path, "not json").unwrap();
        let err = KnownRelays::load(&path).unwrap_err().to_string();
        assert!(err.contains("fix or delete it"), "{err}");
    }
}
