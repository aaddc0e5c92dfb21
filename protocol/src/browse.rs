//! Browsing the user's folders: what a technician sees of a folder on the user's machine, as
//! pure logic (the agent reads the folder, `link::files` carries the request and the answer).
//!
//! A technician asks for a folder's listing ([`crate::transfer::FileMessage::List`]); the agent
//! answers with a [`Listing`] where the person allows browsing, or refuses as it refuses a
//! fetch. A listing names the folder as the agent resolved it (absolute), and its folders and
//! files, folders first and each kind by name, at most [`MAX_ENTRIES`] of them: how many more
//! there were is said ([`Listing::omitted`]), never dropped silently. The technician picks a
//! folder to list next or a file to fetch by joining its name to the listing's path
//! ([`Listing::child`]).
//!
//! Names are the user's machine's, and what a technician's screen shows: [`Listing::check`]
//! holds a received listing to the limits, and the words shown are tamed where they are shown.

use serde::{Deserialize, Serialize};

/// Most entries one listing carries; a folder with more says how many were left out.
pub const MAX_ENTRIES: usize = 1000;
/// Longest name of an entry, in bytes (file systems allow 255).
pub const MAX_ENTRY_NAME: usize = 1024;

/// One folder or file of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    /// A folder (else a file, or a link to one).
    pub folder: bool,
    /// Its size in bytes (0 for a folder).
    pub size: u64,
}

/// A folder of the user's machine as a technician sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The folder, absolute, as the agent resolved it (`~` expanded, `..` gone).
    pub path: String,
    /// Folders first, then files, each by name; at most [`MAX_ENTRIES`].
    pub entries: Vec<Entry>,
    /// Entries the folder has beyond those listed.
    pub omitted: u64,
}

/// A listing that cannot be: the session ends, as for any broken message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListingError {
    #[error("a listing of {0} entries; at most {MAX_ENTRIES}")]
    TooMany(usize),
    #[error("a listing with an entry named by {0} bytes; at most {MAX_ENTRY_NAME}")]
    NameTooLong(usize),
    #[error("a listing with an entry whose name is a path or empty")]
    BadName,
    #[error("a listing of a path of {0} bytes; at most {max}", max = crate::transfer::MAX_FETCH_PATH)]
    PathTooLong(usize),
}

impl Listing {
    /// A listing of the folder at `path` from all its entries, in any order: sorted, and cut
    /// to [`MAX_ENTRIES`] with the rest counted.
    pub fn new(path: String, mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| b.folder.cmp(&a.folder).then_with(|| a.name.cmp(&b.name)));
        let omitted = entries.len().saturating_sub(MAX_ENTRIES) as u64;
        entries.truncate(MAX_ENTRIES);
        Self {
            path,
            entries,
            omitted,
        }
    }

    /// Holds a listing the other end sent to the limits.
    pub fn check(&self) -> Result<(), ListingError> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(ListingError::TooMany(self.entries.len()));
        }
        if self.path.len() > crate::transfer::MAX_FETCH_PATH {
            return Err(ListingError::PathTooLong(self.path.len()));
        }
        for e in &self.entries {
            if e.name.len() > MAX_ENTRY_NAME {
                return Err(ListingError::NameTooLong(e.name.len()));
            }
            if e.name.is_empty() || e.name == "." || e.name == ".." || e.name.contains('/') {
                return Err(ListingError::BadName);
            }
        }
        Ok(())
    }

    /// The path of entry `name` of this folder on the user's machine.
    pub fn child(&self, name: &str) -> String {
        child_path(&self.path, name)
    }

    /// The folder above this one, if there is one.
    pub fn parent(&self) -> Option<String> {
        parent_path(&self.path)
    }
}

/// `name` under the folder `dir` (paths as the user's machine writes them, `/` between parts).
pub fn child_path(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

/// The folder above `path`; `None` at the root.
pub fn parent_path(path: &str) -> Option<String> {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return None;
    }
    match trimmed.rfind('/') {
        Some(0) => Some("/".to_string()),
        Some(i) => Some(trimmed[..i].to_string()),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, folder: bool) -> Entry {
        Entry {
            name: name.into(),
            folder,
            size: if folder { 0 } else { 3 },
        }
    }

    #[test]
    fn folders_come_first_and_a_long_folder_says_what_it_left_out() {
        let l = Listing::new(
            "/home/u".into(),
            vec![
                entry("b.txt", false),
                entry("Music", true),
                entry("a.txt", false),
            ],
        );
        let names: Vec<&str> = l.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["Music", "a.txt", "b.txt"]);
        assert_eq!(l.omitted, 0);
        let many = (0..MAX_ENTRIES + 5)
            .map(|i| entry(&format!("f{i:05}"), false))
            .collect();
        let l = Listing::new("/big".into(), many);
        assert_eq!(l.entries.len(), MAX_ENTRIES);
        assert_eq!(l.omitted, 5);
        assert!(l.check().is_ok());
    }

    #[test]
    fn a_listing_names_no_path_and_stays_within_its_limits() {
        let bad = |name: &str| Listing::new("/x".into(), vec![entry(name, false)]).check();
        assert_eq!(bad("../etc"), Err(ListingError::BadName));
        assert_eq!(bad(".."), Err(ListingError::BadName));
        assert_eq!(bad(""), Err(ListingError::BadName));
        assert!(matches!(
            bad(&"n".repeat(MAX_ENTRY_NAME + 1)),
            Err(ListingError::NameTooLong(_))
        ));
        let mut l = Listing::new("/x".into(), Vec::new());
        l.entries = vec![entry("a", false); MAX_ENTRIES + 1];
        assert!(matches!(l.check(), Err(ListingError::TooMany(_))));
    }

    #[test]
    fn paths_go_down_and_up() {
        let l = Listing::new("/home/u".into(), Vec::new());
        assert_eq!(l.child("Documents"), "/home/u/Documents");
        assert_eq!(l.parent().as_deref(), Some("/home"));
        assert_eq!(child_path("/", "etc"), "/etc");
        assert_eq!(parent_path("/etc").as_deref(), Some("/"));
        assert_eq!(parent_path("/"), None);
    }
}
