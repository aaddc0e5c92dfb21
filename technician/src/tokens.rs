//! The technician's logins: the token each relay handed out at `technician login`, kept per
//! relay address in a per-user file (`~/.config/tandem/technician/tokens.json`, owner-only)
//! until `technician logout` or its expiry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use link::userfile;
use serde::{Deserialize, Serialize};

/// `~/.config/tandem/technician/tokens.json`.
pub fn default_path() -> PathBuf {
    userfile::config_dir()
        .join("technician")
        .join("tokens.json")
}

/// One relay's login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLogin {
    pub user: String,
    pub token: String,
    /// When the relay said the token expires, as seconds since 1970.
    pub expires_at_unix: u64,
}

impl StoredLogin {
    pub fn new(user: String, token: String, expires_in: Duration, now: SystemTime) -> Self {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self {
            user,
            token,
            expires_at_unix: now.saturating_add(expires_in).as_secs(),
        }
    }

    pub fn expired(&self, now: SystemTime) -> bool {
        now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() >= self.expires_at_unix
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileShape {
    logins: BTreeMap<String, StoredLogin>,
}

/// The tokens file, loaded.
#[derive(Debug)]
pub struct Tokens {
    path: PathBuf,
    logins: BTreeMap<String, StoredLogin>,
}

impl Tokens {
    /// Loads `path`; a missing file holds no logins.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let logins = match userfile::read_if_exists(path)
            .map_err(|e| anyhow::anyhow!("cannot read the logins file {}: {e}", path.display()))?
        {
            None => BTreeMap::new(),
            Some(text) => {
                serde_json::from_str::<FileShape>(&text)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "the logins file {} is damaged ({e}); delete it and log in again",
                            path.display()
                        )
                    })?
                    .logins
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            logins,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The login for `relay`, expired or not.
    pub fn get(&self, relay: &str) -> Option<&StoredLogin> {
        self.logins.get(&link::known::key(relay))
    }

    /// Every stored login, by relay address (as normalised for the file), expired or not.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &StoredLogin)> {
        self.logins.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Stores the login for `relay` and saves the file.
    pub fn put(&mut self, relay: &str, login: StoredLogin) -> anyhow::Result<()> {
        self.logins.insert(link::known::key(relay), login);
        self.save()
    }

    /// Forgets the login for `relay`; saves the file if there was one.
    pub fn remove(&mut self, relay: &str) -> anyhow::Result<Option<StoredLogin>> {
        let old = self.logins.remove(&link::known::key(relay));
        if old.is_some() {
            self.save()?;
        }
        Ok(old)
    }

    fn save(&self) -> anyhow::Result<()> {
        let shape = FileShape {
            logins: self.logins.clone(),
        };
        let mut text = serde_json::to_string_pretty(&shape)?;
        text.push('\n');
        userfile::write_private(&self.path, text.as_bytes()).map_err(|e| {
            anyhow::anyhow!("cannot write the logins file {}: {e}", self.path.display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn logins_persist_per_relay_owner_only_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t/tokens.json");
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        {
            let mut t = Tokens::load(&path).unwrap();
            assert!(t.get("relay:1").is_none());
            let login = StoredLogin::new(
                "alice".into(),
                "ab".repeat(32),
                Duration::from_secs(60),
                now,
            );
            t.put("Relay:1", login).unwrap();
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut t = Tokens::load(&path).unwrap();
        let l = t.get("relay:1").unwrap().clone();
        assert_eq!(l.user, "alice");
        assert!(!l.expired(now + Duration::from_secs(59)));
        assert!(l.expired(now + Duration::from_secs(60)));
        assert!(t.get("relay:2").is_none());
        assert_eq!(t.remove("relay:1").unwrap(), Some(l));
        assert!(Tokens::load(&path).unwrap().get("relay:1").is_none());
    }
}
