//! [`LogReader`]: reads records back, checking every hash, and says how the file ends.
//!
//! The reader hands out records while they check out and then stops with a [`Verdict`]:
//!
//! - **intact**: the seal was read and nothing follows it;
//! - **ended early**: the file stops after a whole record without a seal, or inside a record
//!   whose bytes so far are a plausible beginning of the next record (right index, right
//!   previous hash, a length field that checks). This is what a killed process leaves. So is a
//!   tail of zero bytes from a record's start, or from a 4 KiB boundary, to the end of the file
//!   (at least 32 of them), which is what a power cut leaves on some file systems;
//! - **tampered**: anything a crash cannot produce. A whole record whose hash does not match
//!   its bytes, whose index is not the next one (a record deleted or moved), whose previous
//!   hash is not the hash of the record before it, whose length field is damaged, whose time
//!   goes backwards, a first record that is not the session opening, or bytes after the seal.
//!
//! A crash can only cut the tail, so it leaves a prefix of a valid log; every record ends in a
//! 32-byte SHA-256 hash, so a valid log never ends in 32 zero bytes. Hence one changed byte
//! anywhere in the records is always reported as tampering, at the record that holds it.
//! Cutting whole records off the end is indistinguishable from a crash and reported as ended
//! early: that is what the seal and the relay's checkpoints of the chain hash are for.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

use super::record::{self, max_body, BodyError, Record, KIND_SEAL, KIND_SESSION_OPENED};
use super::{FILE_HEADER_LEN, FORMAT_VERSION, HASH_LEN, MAGIC, RECORD_HEADER_LEN};

/// Power-cut zero tails start on a block boundary of this size (or at a record start).
const BLOCK: u64 = 4096;

/// One record as stored, its hashes checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub index: u64,
    /// Ms since the session opened.
    pub time_ms: u64,
    pub kind: u16,
    pub body: Vec<u8>,
    /// This record's hash (the chain hash up to and including it).
    pub hash: [u8; HASH_LEN],
    /// Byte offset of the record in the file.
    pub offset: u64,
}

impl RawRecord {
    /// The body decoded; unknown kinds give [`Record::Unknown`].
    pub fn decode(&self) -> Result<Record, BodyError> {
        Record::decode(self.kind, &self.body)
    }

    pub fn kind_name(&self) -> &'static str {
        record::kind_name(self.kind)
    }
}

/// How a log ends, as far as the file can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Sealed, every hash checks, nothing after the seal. `records` counts the seal too.
    Intact {
        records: u64,
        /// Time of the seal, ms since the session opened.
        duration_ms: u64,
        /// Hash of the seal record: the value to compare with the relay's checkpoint.
        chain_hash: [u8; HASH_LEN],
    },
    /// The file stops without a seal, as a crash leaves it. Every record up to `after_record`
    /// checks out; `None` if not even record 0 is whole.
    EndedEarly {
        after_record: Option<u64>,
        /// Time of that record.
        at_ms: Option<u64>,
        /// Bytes after it (a record cut short, or zeros).
        torn_bytes: u64,
    },
    /// Something no crash produces, first seen at record `at_record` (the index the record at
    /// that place should have).
    Tampered { at_record: u64, why: String },
}

impl Verdict {
    /// Exit status for `technician log verify`: 0 intact, 1 tampered, 2 ended early.
    pub fn exit_code(&self) -> u8 {
        match self {
            Verdict::Intact { .. } => 0,
            Verdict::Tampered { .. } => 1,
            Verdict::EndedEarly { .. } => 2,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Intact {
                records,
                duration_ms,
                chain_hash,
            } => write!(
                f,
                "intact: {records} records over {}, sealed, chain hash {}",
                format_ms(*duration_ms),
                hex(chain_hash)
            ),
            Verdict::EndedEarly {
                after_record: Some(n),
                at_ms: Some(t),
                torn_bytes,
            } => {
                write!(f, "ended early after record {n} at {}", format_ms(*t))?;
                if *torn_bytes > 0 {
                    write!(f, " ({torn_bytes} bytes of an unfinished record follow)")?;
                }
                f.write_str(": not sealed, as a crash or a kill leaves it")
            }
            Verdict::EndedEarly { .. } => {
                f.write_str("ended early before its first record was complete")
            }
            Verdict::Tampered { at_record, why } => {
                write!(f, "tampered at record {at_record}: {why}")
            }
        }
    }
}

/// A date and time in UTC from ms since the Unix epoch: `2024-05-01 14:03:12 UTC`.
pub fn format_utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Milliseconds since the Unix epoch of a UTC date, `YYYY-MM-DD`, optionally with a time
/// (`YYYY-MM-DD HH:MM[:SS]`, or `T` between the two, and a `Z` or ` UTC` after); `None` when
/// the text is not such a date.
pub fn parse_utc(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix(" UTC"))
        .unwrap_or(text);
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut d = date.split('-');
    let (year, month, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let secs_of_day = match time {
        None => 0,
        Some(t) => {
            let parts: Vec<i64> = t
                .split(':')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let (h, m, s) = match parts[..] {
                [h, m] => (h, m, 0),
                [h, m, s] => (h, m, s),
                _ => return None,
            };
            if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..61).contains(&s) {
                return None;
            }
            h * 3600 + m * 60 + s
        }
    };
    // Howard Hinnant's days-from-civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + secs_of_day;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// `mm:ss.mmm` (or `h:mm:ss.mmm`) from ms.
pub fn format_ms(ms: u64) -> String {
    let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}.{milli:03}")
    } else {
        format!("{m:02}:{s:02}.{milli:03}")
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Why a file could not be read as a session log at all.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("not a Tandem session log (it does not start with the session-log magic)")]
    NotALog,
    #[error("session-log format version {found} is newer than this program reads ({FORMAT_VERSION}); update it")]
    UnsupportedVersion { found: u16 },
    #[error("cannot read the session log: {0}")]
    Io(#[from] io::Error),
}

/// Reads a session log record by record.
pub struct LogReader<R> {
    inner: R,
    version: u16,
    /// Offset of the next byte to read.
    pos: u64,
    next_index: u64,
    last_time_ms: u64,
    prev: [u8; HASH_LEN],
    verdict: Option<Verdict>,
    header: [u8; RECORD_HEADER_LEN],
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl<R: Read> LogReader<R> {
    /// Reads the file header. A file cut inside its header opens as a log that ended early.
    pub fn new(mut inner: R) -> Result<Self, OpenError> {
        let mut h = [0u8; FILE_HEADER_LEN];
        let n = read_up_to(&mut inner, &mut h)?;
        let magic_seen = n.min(MAGIC.len());
        if h[..magic_seen] != MAGIC[..magic_seen] {
            return Err(OpenError::NotALog);
        }
        let mut reader = Self {
            inner,
            version: FORMAT_VERSION,
            pos: n as u64,
            next_index: 0,
            last_time_ms: 0,
            prev: Sha256::digest(h).into(),
            verdict: None,
            header: [0; RECORD_HEADER_LEN],
        };
        if n < FILE_HEADER_LEN {
            reader.verdict = Some(Verdict::EndedEarly {
                after_record: None,
                at_ms: None,
                torn_bytes: n as u64,
            });
            return Ok(reader);
        }
        let version = u16::from_le_bytes([h[8], h[9]]);
        if version != FORMAT_VERSION {
            return Err(OpenError::UnsupportedVersion { found: version });
        }
        reader.version = version;
        Ok(reader)
    }

    /// Format version of the file.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// How the log ended, once [`LogReader::next_record`] has returned `None`.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.verdict.as_ref()
    }

    /// The next record whose hashes check out, or `None` when the log stops (see
    /// [`LogReader::verdict`] for why). Errors are only those of the underlying reader.
    pub fn next_record(&mut self) -> io::Result<Option<RawRecord>> {
        if self.verdict.is_some() {
            return Ok(None);
        }
        match self.read_one() {
            Ok(r) => Ok(Some(r)),
            Err(Stop::Verdict(v)) => {
                self.verdict = Some(v);
                Ok(None)
            }
            Err(Stop::Io(e)) => Err(e),
        }
    }

    fn ended_early(&self, torn_bytes: u64) -> Verdict {
        Verdict::EndedEarly {
            after_record: self.next_index.checked_sub(1),
            at_ms: self.next_index.checked_sub(1).map(|_| self.last_time_ms),
            torn_bytes,
        }
    }

    fn tampered(&self, why: impl Into<String>) -> Verdict {
        Verdict::Tampered {
            at_record: self.next_index,
            why: why.into(),
        }
    }

    /// A record starting at `start` is damaged; `seen` are its bytes read so far. Reads the
    /// rest of the file to tell a power cut's zero tail from tampering.
    fn damaged(&mut self, start: u64, seen_nonzero_end: Option<u64>, why: String) -> Stop {
        let mut end = self.pos;
        let mut last_nonzero = seen_nonzero_end;
        let mut chunk = [0u8; 8192];
        loop {
            match read_up_to(&mut self.inner, &mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(i) = chunk[..n].iter().rposition(|b| *b != 0) {
                        last_nonzero = Some(end + i as u64 + 1);
                    }
                    end += n as u64;
                }
                Err(e) => return Stop::Io(e),
            }
        }
        self.pos = end;
        let zero_tail = match last_nonzero {
            None => true,
            Some(z) => z.div_ceil(BLOCK) * BLOCK + HASH_LEN as u64 <= end,
        };
        Stop::Verdict(if zero_tail {
            self.ended_early(end - start)
        } else {
            self.tampered(why)
        })
    }

    fn read_one(&mut self) -> Result<RawRecord, Stop> {
        let start = self.pos;
        let mut header = self.header;
        let n = read_up_to(&mut self.inner, &mut header).map_err(Stop::Io)?;
        self.pos += n as u64;
        let nonzero_end = |bytes: &[u8]| {
            bytes
                .iter()
                .rposition(|b| *b != 0)
                .map(|i| start + i as u64 + 1)
        };
        if n == 0 {
            return Err(Stop::Verdict(self.ended_early(0)));
        }
        // Check what is there of the header against what the next record must say.
        let h = &header[..n];
        let want_index = self.next_index.to_le_bytes();
        let mut problem: Option<String> = None;
        let mut len = None;
        if n >= 8 {
            let l = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let check = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            if check != !l {
                problem = Some("its length field is damaged".into());
            } else if l as usize > record::MAX_SCREEN_BODY {
                problem = Some(format!(
                    "it claims a body of {l} bytes, more than any record"
                ));
            } else {
                len = Some(l as usize);
            }
        }
        if problem.is_none() && n > 8 {
            let got = &h[8..n.min(16)];
            if got != &want_index[..got.len()] {
                problem = Some(if n >= 16 {
                    let found = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
                    format!(
                        "record {} is missing or out of place: record {found} stands there",
                        self.next_index
                    )
                } else {
                    "its index is not the next one".into()
                });
            }
        }
        if problem.is_none() && n > 26 {
            let got = &h[26..n];
            if got != &self.prev[..got.len()] {
                problem = Some(if self.next_index == 0 {
                    "it does not follow the file header (the header was changed)".into()
                } else {
                    format!(
                        "it does not follow record {}: its previous-record hash differs",
                        self.next_index - 1
                    )
                });
            }
        }
        if let Some(why) = problem {
            return Err(self.damaged(start, nonzero_end(h), why));
        }
        if n < RECORD_HEADER_LEN {
            // A plausible beginning of a record, cut short.
            return Err(Stop::Verdict(self.ended_early(n as u64)));
        }
        let len = len.expect("a whole header has a checked length");
        let time_ms = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
        let kind = u16::from_le_bytes([header[24], header[25]]);
        if len > max_body(kind) {
            let why = format!(
                "a {} record of {len} bytes exceeds its limit",
                record::kind_name(kind)
            );
            return Err(self.damaged(start, nonzero_end(&header), why));
        }
        let mut body = Vec::new();
        let got = (&mut self.inner)
            .take(len as u64)
            .read_to_end(&mut body)
            .map_err(Stop::Io)?;
        self.pos += got as u64;
        let mut hash = [0u8; HASH_LEN];
        let hgot = if got == len {
            read_up_to(&mut self.inner, &mut hash).map_err(Stop::Io)?
        } else {
            0
        };
        self.pos += hgot as u64;
        if got < len || hgot < HASH_LEN {
            // Cut short: a crash, unless the part that is there is zeros from a block boundary
            // (also a crash). Either way the file ends here.
            return Err(Stop::Verdict(
                self.ended_early((RECORD_HEADER_LEN + got + hgot) as u64),
            ));
        }
        let mut hasher = Sha256::new();
        hasher.update(header);
        hasher.update(&body);
        let computed: [u8; HASH_LEN] = hasher.finalize().into();
        let whole_nonzero_end = {
            let tail = hash
                .iter()
                .rposition(|b| *b != 0)
                .map(|i| self.pos - (HASH_LEN - i - 1) as u64);
            tail.or_else(|| {
                body.iter()
                    .rposition(|b| *b != 0)
                    .map(|i| start + (RECORD_HEADER_LEN + i + 1) as u64)
            })
            .or_else(|| nonzero_end(&header))
        };
        if computed != hash {
            let why = "its contents do not match its hash".to_string();
            return Err(self.damaged(start, whole_nonzero_end, why));
        }
        if time_ms < self.last_time_ms {
            return Err(Stop::Verdict(self.tampered(format!(
                "its time {} is before the previous record's {}",
                format_ms(time_ms),
                format_ms(self.last_time_ms)
            ))));
        }
        if self.next_index == 0 && kind != KIND_SESSION_OPENED {
            return Err(Stop::Verdict(self.tampered(format!(
                "the first record is a {} record, not the session opening",
                record::kind_name(kind)
            ))));
        }
        let rec = RawRecord {
            index: self.next_index,
            time_ms,
            kind,
            body,
            hash,
            offset: start,
        };
        self.prev = hash;
        self.next_index += 1;
        self.last_time_ms = time_ms;
        if kind == KIND_SEAL {
            let mut probe = [0u8; 1];
            let more = read_up_to(&mut self.inner, &mut probe).map_err(Stop::Io)?;
            self.verdict = Some(if more > 0 {
                self.tampered("bytes follow the seal")
            } else {
                Verdict::Intact {
                    records: self.next_index,
                    duration_ms: time_ms,
                    chain_hash: hash,
                }
            });
        }
        Ok(rec)
    }
}

enum Stop {
    Verdict(Verdict),
    Io(io::Error),
}

impl<R: Read> Iterator for LogReader<R> {
    type Item = io::Result<RawRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

#[cfg(test)]
mod date_tests {
    use super::*;

    #[test]
    fn dates_read_back_as_they_are_written() {
        for ms in [0, 951_782_400_000, 1_796_169_600_000, 4_102_444_799_000] {
            let text = format_utc(ms);
            assert_eq!(parse_utc(&text), Some(ms), "{text}");
        }
        assert_eq!(parse_utc("2026-12-02"), Some(1_796_169_600_000));
        assert_eq!(parse_utc("2026-12-02T01:02:03Z"), Some(1_796_173_323_000));
        assert_eq!(parse_utc("2026-12-02 01:02"), Some(1_796_173_320_000));
        for bad in ["", "2026-13-01", "yesterday", "2026-12-02T25:00", "2026-12"] {
            assert_eq!(parse_utc(bad), None, "{bad}");
        }
    }
}
