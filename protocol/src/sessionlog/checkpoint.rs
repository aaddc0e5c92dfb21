//! Checkpoints: the running chain hash of a log, held by someone other than its writer.
//!
//! During a session the technician tells the relay, every few seconds, how far its log has got
//! (record index, time, chain hash up to that record), and the final chain hash when it seals
//! it. A log is a hash chain that anyone can recompute, so a log cut short (or cut and sealed
//! again) after the session verifies on its own; against the checkpoints it does not: the
//! relay holds a hash of a record the log no longer has, or a different one.

use std::fmt;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use super::{LogReader, Verdict, HASH_LEN};

/// How far a log had got at some moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Index of the last record written.
    pub index: u64,
    /// Its time, ms since the session opened.
    pub time_ms: u64,
    /// Its hash: the chain hash up to and including it (hex in JSON).
    #[serde(with = "hex_hash")]
    pub chain_hash: [u8; HASH_LEN],
}

/// The checkpoints the relay holds for one stored log, as `relay logs get` writes them beside
/// it and `technician log verify --checkpoints` reads them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFile {
    pub log_id: String,
    pub checkpoints: Vec<Checkpoint>,
}

/// A hash as 64 lowercase hex digits.
mod hex_hash {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use super::HASH_LEN;

    pub fn serialize<S: Serializer>(h: &[u8; HASH_LEN], s: S) -> Result<S::Ok, S::Error> {
        let text: String = h.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; HASH_LEN], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = text.as_bytes();
        if bytes.len() != 2 * HASH_LEN || !text.is_ascii() {
            return Err(D::Error::custom("a chain hash is 64 hex digits"));
        }
        let mut out = [0u8; HASH_LEN];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| D::Error::custom("a chain hash is 64 hex digits"))?;
        }
        Ok(out)
    }
}

/// What a log says against a set of checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Every checkpoint names a record of the log with the same hash.
    Consistent { checked: usize },
    /// The log has the record, with another hash: rewritten after the checkpoint was taken.
    Differs { checkpoint: Checkpoint },
    /// The log stops before the checkpoint's record: cut short after it was taken.
    Missing {
        checkpoint: Checkpoint,
        /// The log's last whole record.
        log_ends_after: Option<u64>,
    },
}

impl Finding {
    pub fn is_consistent(&self) -> bool {
        matches!(self, Finding::Consistent { .. })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::Consistent { checked: 1 } => {
                f.write_str("consistent with the relay's checkpoint")
            }
            Finding::Consistent { checked } => {
                write!(f, "consistent with the relay's {checked} checkpoints")
            }
            Finding::Differs { checkpoint } => write!(
                f,
                "record {} differs from the relay's checkpoint at {}: the log was rewritten",
                checkpoint.index,
                super::format_ms(checkpoint.time_ms)
            ),
            Finding::Missing {
                checkpoint,
                log_ends_after,
            } => {
                let ends = match log_ends_after {
                    Some(n) => format!("ends after record {n}"),
                    None => "has no whole record".to_string(),
                };
                write!(
                    f,
                    "the log {ends}, but the relay holds a checkpoint of record {} at {}: it \
                     was cut short after the session",
                    checkpoint.index,
                    super::format_ms(checkpoint.time_ms)
                )
            }
        }
    }
}

/// Reads the whole log and compares it with `checkpoints` (any order). Returns the log's own
/// verdict too.
pub fn check<R: Read>(
    reader: &mut LogReader<R>,
    checkpoints: &[Checkpoint],
) -> io::Result<(Verdict, Finding)> {
    let mut sorted = checkpoints.to_vec();
    sorted.sort_by_key(|c| c.index);
    let mut next = 0;
    let mut last = None;
    let mut finding = None;
    while let Some(rec) = reader.next_record()? {
        last = Some(rec.index);
        while next < sorted.len() && sorted[next].index <= rec.index {
            let c = sorted[next];
            if finding.is_none() && (c.index < rec.index || c.chain_hash != rec.hash) {
                // A checkpoint index the log skipped cannot happen with a chain: treat it
                // as a difference at that index.
                finding = Some(Finding::Differs { checkpoint: c });
            }
            next += 1;
        }
    }
    let verdict = reader
        .verdict()
        .cloned()
        .expect("a reader that returned None has a verdict");
    let finding = finding.unwrap_or_else(|| match sorted.get(next) {
        Some(c) => Finding::Missing {
            checkpoint: *c,
            log_ends_after: last,
        },
        None => Finding::Consistent {
            checked: sorted.len(),
        },
    });
    Ok((verdict, finding))
}
