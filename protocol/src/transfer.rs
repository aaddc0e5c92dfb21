//! File transfer between the user and a technician: what the two ends say about files, and the
//! state of each side, as pure logic (no disk, no network, no clock: the shell around it,
//! `link::files`, does those).
//!
//! A transfer goes so:
//!
//! 1. The sender offers one or more files at once ([`Offer`]: several files, or a whole folder),
//!    each with its path under what was chosen, its size and its SHA-256. A technician may ask
//!    for a path on the user's machine ([`FileMessage::Fetch`]); the agent answers with an offer
//!    naming the request, or refuses.
//! 2. The receiver accepts the whole offer into a folder of its choosing, or declines it
//!    ([`FileMessage::Accept`], [`FileMessage::Decline`]). Every name is sanitised where it
//!    lands ([`sanitize_component`]): the sender's words choose no directory and overwrite
//!    nothing. The acceptance says, file by file, how many bytes the receiver already holds:
//!    the length of the partial file an earlier session left ([`partial_name`]), where the
//!    transfer resumes.
//! 3. The sender streams the accepted files one after the other, each alone on a
//!    unidirectional stream sealed for that file (`e2e::StreamKind::File`): a first record of
//!    8 bytes, the offset it starts from, then the file from there in records of at most
//!    [`FILE_RECORD`] bytes ([`StreamCheck`] holds the receiver to it).
//! 4. The receiver hashes the whole file ([`Verifier`]: the part it held before, then what
//!    arrives) and compares with the SHA-256 of the offer; only then does the partial file take
//!    its final name, one not taken yet ([`free_name`]). It tells the sender how it went
//!    ([`FileMessage::Received`]).
//!
//! [`Outbox`] is the sending side's state and [`Inbox`] the receiving side's; both check what
//! the other end says against what was said before, and refuse the impossible with a
//! [`TransferError`] (which ends the session, like any broken message). Numbers only grow:
//! offers, files and fetch requests are numbered by the end that makes them, each above the
//! last, so a receiver remembers no history to refuse a repeated one.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// An offer's number, given by the sending end.
pub type OfferId = u64;
/// A file's number, given by the sending end; it also names the file's stream.
pub type FileId = u64;

/// Most files in one offer: a folder of more is refused.
pub const MAX_FILES: usize = 10_000;
/// Most folders deep a file of an offer may lie.
pub const MAX_DEPTH: usize = 32;
/// Longest name of one path component as offered, in characters; longer ones are clipped.
pub const MAX_OFFERED_NAME: usize = 1024;
/// Longest name a file or folder gets on the receiving side, in bytes: room is left below the
/// file system's 255 for " (N)" and for the partial file's name around it.
pub const MAX_NAME_BYTES: usize = 200;
/// Longest path a fetch may ask for, in bytes.
pub const MAX_FETCH_PATH: usize = 4096;
/// Longest reason a decline, refusal or failure may carry, in characters.
pub const MAX_REASON: usize = crate::text::MAX_REASON;
/// Offers one end may have waiting for an answer from the other at once.
pub const MAX_PENDING_OFFERS: usize = 16;
/// Fetch requests one end may have waiting for an answer at once.
pub const MAX_PENDING_FETCHES: usize = 16;
/// Plaintext bytes of file data per sealed record on a file's stream.
pub const FILE_RECORD: usize = 64 * 1024;
/// Bytes of a file stream's first record: the offset the file starts from.
pub const START_RECORD: usize = 8;
/// What a partial file's name ends with.
pub const PARTIAL_SUFFIX: &str = ".tandem-partial";

/// One file of an offer, as the sender describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferedFile {
    pub id: FileId,
    /// Its path under what was offered: the file's name alone, or the folder's name, the
    /// folders within it and the file's name.
    pub path: Vec<String>,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// Files offered together, accepted or declined as one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    pub id: OfferId,
    pub files: Vec<OfferedFile>,
    /// The fetch request this offer answers, if it answers one.
    pub fetch: Option<u64>,
}

/// Who accepted an offer on the receiving side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcceptedBy {
    /// The person there, when asked.
    Person,
    /// A folder given in advance for an unattended machine (`agent --accept-files DIR`).
    Unattended,
    /// The end that fetched the files: the offer answers its own request.
    Requester,
}

impl AcceptedBy {
    /// A word for scripts and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AcceptedBy::Person => "person",
            AcceptedBy::Unattended => "unattended",
            AcceptedBy::Requester => "requester",
        }
    }
}

/// What the two ends say about files, on the session stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileMessage {
    /// Sender to receiver: these files, to be accepted or declined together.
    Offer(Offer),
    /// Receiver to sender: send them; `resume` says per file (in the offer's order) how many
    /// bytes the receiver holds already, where its stream starts.
    Accept {
        offer: OfferId,
        resume: Vec<u64>,
        by: AcceptedBy,
    },
    /// Receiver to sender: not wanted, and why.
    Decline { offer: OfferId, reason: String },
    /// Receiver to sender: the file's stream arrived and checked out (`Ok`: the name it was
    /// stored under) or not (`Err`: why).
    Received {
        file: FileId,
        result: Result<String, String>,
    },
    /// Either way: stop the rest of this offer (a file being sent stops too; what arrived of
    /// it stays for a later resume).
    Cancel { offer: OfferId, reason: String },
    /// Technician to agent: offer me what lies at this path (a file, or a folder and all in it).
    Fetch { request: u64, path: String },
    /// Agent to technician: that fetch (or listing) is refused, and why.
    FetchRefused { request: u64, reason: String },
    /// Technician to agent: show me what the folder at this path holds (`crate::browse`).
    /// Numbered with the fetches, and refused as they are.
    List { request: u64, path: String },
    /// Agent to technician: the folder asked for.
    Listed {
        request: u64,
        listing: crate::browse::Listing,
    },
}

/// What a request of the technician asks: files, or a folder's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Fetch,
    List,
}

/// What the other end said about files that cannot be: it ends the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("an offer of no files")]
    EmptyOffer,
    #[error("an offer of {0} files; at most {MAX_FILES} are taken at once")]
    TooManyFiles(usize),
    #[error("offer {got} arrived after offer {last}: offers are numbered upwards")]
    OfferOutOfOrder { got: OfferId, last: OfferId },
    #[error("file {got} arrived after file {last}: files are numbered upwards")]
    FileOutOfOrder { got: FileId, last: FileId },
    #[error("a file offered with an empty path")]
    EmptyPath,
    #[error("a file offered {0} folders deep; at most {MAX_DEPTH}")]
    TooDeep(usize),
    #[error("more than {MAX_PENDING_OFFERS} offers are waiting for an answer")]
    TooManyOffers,
    #[error("an answer about offer {0}, which is not waiting for one")]
    UnknownOffer(OfferId),
    #[error("offer {offer} was accepted with {got} resume points for its {files} files")]
    ResumeCount {
        offer: OfferId,
        files: usize,
        got: usize,
    },
    #[error("file {file} was to resume at byte {at}, past its {size} bytes")]
    ResumePastEnd { file: FileId, at: u64, size: u64 },
    #[error("word about file {0}, which was not sent")]
    UnknownFile(FileId),
    #[error("a stream for file {0}, which was not accepted or already arrived")]
    UnexpectedStream(FileId),
    #[error("file {file}'s stream starts at byte {got}; {expected} was agreed")]
    WrongStart {
        file: FileId,
        got: u64,
        expected: u64,
    },
    #[error("file {file}'s stream carries more than its {size} bytes")]
    TooLong { file: FileId, size: u64 },
    #[error("file {file}'s stream ended after {got} of its {size} bytes")]
    TooShort { file: FileId, got: u64, size: u64 },
    #[error("file {0}'s stream does not begin with its starting offset")]
    NoStart(FileId),
    #[error("a record of {0} bytes on a file stream; at most {FILE_RECORD}")]
    RecordTooLarge(usize),
    #[error("an answer to fetch request {0}, which was not asked")]
    UnknownFetch(u64),
    #[error("more than {MAX_PENDING_FETCHES} fetch requests are waiting for an answer")]
    TooManyFetches,
    #[error("a fetch of a path of {0} bytes; at most {MAX_FETCH_PATH}")]
    FetchPathTooLong(usize),
    #[error("fetch request {got} arrived after request {last}: requests are numbered upwards")]
    FetchOutOfOrder { got: u64, last: u64 },
    #[error("request {0} was answered with what another kind of request asks")]
    WrongAnswer(u64),
    #[error(transparent)]
    Listing(#[from] crate::browse::ListingError),
}

/// A reason the other end gave, made safe to show: clipped and escaped.
pub fn tame_reason(reason: &str) -> String {
    crate::text::tame(reason, MAX_REASON)
}

/// The name a file or folder gets on the receiving side from the name it was offered under:
/// characters that are not text (controls, and those that reorder or hide text) are dropped;
/// path separators split it, and `.`, `..` and empty parts are dropped, the rest joined with
/// `_`; it may not start with a dot (nothing hidden lands unseen) nor end with a dot or a
/// space; it is clipped to [`MAX_NAME_BYTES`] keeping its extension; nothing left is `file`.
///
/// `../../.bashrc` becomes `bashrc`; `a/b.txt` becomes `a_b.txt`.
pub fn sanitize_component(raw: &str) -> String {
    let text: String = raw
        .chars()
        .take(MAX_OFFERED_NAME)
        .filter(|c| !crate::text::is_unsafe(*c))
        .collect();
    let parts: Vec<&str> = text
        .split(['/', '\\'])
        .map(str::trim)
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .collect();
    let joined = parts.join("_");
    let trimmed = joined
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    let clipped = clip_name(trimmed, MAX_NAME_BYTES);
    if clipped.is_empty() {
        "file".to_string()
    } else {
        clipped
    }
}

/// `name` in at most `max` bytes, cut on a character boundary, its extension kept when short.
fn clip_name(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    let ext = if ext.len() <= 16 { ext } else { "" };
    let room = max - ext.len();
    let mut end = room.min(stem.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    let stem = stem[..end].trim_end_matches(['.', ' ']);
    format!("{stem}{ext}")
}

/// `report.pdf` as (`report`, `.pdf`); a name without a dot after its first character has no
/// extension.
fn split_extension(name: &str) -> (&str, &str) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    }
}

/// The `n`th name to try for `name` where it is taken: `name` itself for 0, then
/// `report (1).pdf`, `report (2).pdf`, …
pub fn numbered_name(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    let (stem, ext) = split_extension(name);
    format!("{stem} ({n}){ext}")
}

/// The first of `name`, `name (1)`, `name (2)`… that `taken` says is free, trying at most
/// `tries` names.
pub fn free_name(name: &str, tries: u32, taken: impl Fn(&str) -> bool) -> Option<String> {
    (0..tries)
        .map(|n| numbered_name(name, n))
        .find(|candidate| !taken(candidate))
}

/// The name of the partial file that holds what arrived so far of a file that lands as `name`
/// with this SHA-256: hidden, beside where it lands, and the same in the next session, so that
/// the transfer resumes from it.
pub fn partial_name(name: &str, sha256: &[u8; 32]) -> String {
    let tag: String = sha256[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!(".{name}.{tag}{PARTIAL_SUFFIX}")
}

/// Where a transfer resumes, from the length of the partial file found (`None`: none): from its
/// end when it is no longer than the file, else from the start (it is not a part of this file).
pub fn resume_point(partial_len: Option<u64>, size: u64) -> u64 {
    match partial_len {
        Some(len) if len <= size => len,
        _ => 0,
    }
}

/// One file of an offer as the receiver sees it: its path already sanitised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingFile {
    pub id: FileId,
    /// The sanitised components: folders, then the file's name; unique within its offer.
    pub path: Vec<String>,
    pub size: u64,
    pub sha256: [u8; 32],
}

impl IncomingFile {
    /// The path as words, `/` between the parts.
    pub fn name(&self) -> String {
        self.path.join("/")
    }

    /// The path under the folder the offer is accepted into.
    pub fn relative(&self) -> PathBuf {
        self.path.iter().collect()
    }

    /// The file's own name: the last part of its path.
    pub fn file_name(&self) -> &str {
        self.path.last().map_or("file", String::as_str)
    }
}

/// An offer the other end made, checked and with its names sanitised: what the receiving side
/// decides on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingOffer {
    pub id: OfferId,
    pub fetch: Option<u64>,
    pub files: Vec<IncomingFile>,
    pub total: u64,
}

impl IncomingOffer {
    /// Words for the files: `report.pdf`, or `Photos (12 files)`, or `3 files`.
    pub fn summary(&self) -> String {
        summary(self.files.iter().map(|f| f.path.as_slice()))
    }
}

/// Words for a set of files by their paths: the one file's name, the one folder they share,
/// or how many they are.
pub fn summary<'a>(paths: impl Iterator<Item = &'a [String]>) -> String {
    let paths: Vec<&[String]> = paths.collect();
    match paths.as_slice() {
        [] => "no files".to_string(),
        [one] => one.join("/"),
        many => {
            let first = many[0].first();
            let shared =
                first.filter(|top| many.iter().all(|p| p.len() > 1 && p.first() == Some(*top)));
            match shared {
                Some(folder) => format!("{folder} ({} files)", many.len()),
                None => format!("{} files", many.len()),
            }
        }
    }
}

/// A file this end waits to receive on a stream of its own, once accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub offer: OfferId,
    pub file: IncomingFile,
    /// Where its stream starts: the bytes already held.
    pub start: u64,
}

/// The receiving side: offers waiting for an answer, files accepted and not yet streamed, and
/// the fetch requests this end made.
#[derive(Debug, Default)]
pub struct Inbox {
    /// The last offer and file numbers seen (`None`: none yet).
    last_offer: Option<OfferId>,
    last_file: Option<FileId>,
    waiting: BTreeMap<OfferId, IncomingOffer>,
    expected: BTreeMap<FileId, Expected>,
    next_fetch: u64,
    fetches: BTreeMap<u64, (String, Asked)>,
    /// Files of offers stopped after they were accepted: a stream for one may still come,
    /// opened before the sender heard of it.
    stopped: Forgotten,
}

/// Numbers of things stopped, remembered so that word about them still on its way is taken
/// quietly; at most [`FORGOTTEN`] of them, the oldest going first.
#[derive(Debug, Default)]
struct Forgotten(std::collections::BTreeSet<u64>);

/// Most numbers a [`Forgotten`] keeps.
const FORGOTTEN: usize = 4 * MAX_FILES;

impl Forgotten {
    fn insert(&mut self, id: u64) {
        self.0.insert(id);
        while self.0.len() > FORGOTTEN {
            self.0.pop_first();
        }
    }

    fn take(&mut self, id: u64) -> bool {
        self.0.remove(&id)
    }

    fn contains(&self, id: u64) -> bool {
        self.0.contains(&id)
    }
}

impl Inbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in an offer: checks its numbers and sizes, and sanitises its names (two files that
    /// end up with the same path get numbered apart). The offer then waits for
    /// [`Inbox::accept`] or [`Inbox::decline`].
    pub fn offered(&mut self, offer: Offer) -> Result<IncomingOffer, TransferError> {
        if offer.files.is_empty() {
            return Err(TransferError::EmptyOffer);
        }
        if offer.files.len() > MAX_FILES {
            return Err(TransferError::TooManyFiles(offer.files.len()));
        }
        if let Some(last) = self.last_offer.filter(|last| offer.id <= *last) {
            return Err(TransferError::OfferOutOfOrder {
                got: offer.id,
                last,
            });
        }
        if self.waiting.len() >= MAX_PENDING_OFFERS {
            return Err(TransferError::TooManyOffers);
        }
        if let Some(request) = offer.fetch {
            if self
                .fetches
                .remove(&request)
                .is_none_or(|(_, asked)| asked != Asked::Fetch)
            {
                return Err(TransferError::UnknownFetch(request));
            }
        }
        let mut last_file = self.last_file;
        let mut files = Vec::with_capacity(offer.files.len());
        let mut taken = std::collections::BTreeSet::new();
        let mut total = 0u64;
        for f in offer.files {
            if let Some(last) = last_file.filter(|last| f.id <= *last) {
                return Err(TransferError::FileOutOfOrder { got: f.id, last });
            }
            last_file = Some(f.id);
            if f.path.is_empty() {
                return Err(TransferError::EmptyPath);
            }
            if f.path.len() > MAX_DEPTH {
                return Err(TransferError::TooDeep(f.path.len()));
            }
            let mut path: Vec<String> = f.path.iter().map(|p| sanitize_component(p)).collect();
            let name = path.pop().expect("not empty");
            let unique = free_name(&name, u32::MAX, |candidate| {
                let mut whole = path.clone();
                whole.push(candidate.to_string());
                taken.contains(&whole)
            })
            .expect("a name among four billion is free");
            path.push(unique);
            taken.insert(path.clone());
            total = total.saturating_add(f.size);
            files.push(IncomingFile {
                id: f.id,
                path,
                size: f.size,
                sha256: f.sha256,
            });
        }
        self.last_offer = Some(offer.id);
        self.last_file = last_file;
        let incoming = IncomingOffer {
            id: offer.id,
            fetch: offer.fetch,
            files,
            total,
        };
        self.waiting.insert(offer.id, incoming.clone());
        Ok(incoming)
    }

    /// Accepts a waiting offer; `resume` holds, per file in the offer's order, the bytes
    /// already held ([`resume_point`]). Returns the answer for the sender, and the files to
    /// expect streams for.
    pub fn accept(
        &mut self,
        offer: OfferId,
        resume: Vec<u64>,
        by: AcceptedBy,
    ) -> Option<(FileMessage, Vec<Expected>)> {
        let incoming = self.waiting.remove(&offer)?;
        let mut expected = Vec::with_capacity(incoming.files.len());
        for (file, start) in incoming.files.into_iter().zip(resume.iter().copied()) {
            let e = Expected {
                offer,
                start: start.min(file.size),
                file,
            };
            self.expected.insert(e.file.id, e.clone());
            expected.push(e);
        }
        let resume = expected.iter().map(|e| e.start).collect();
        Some((FileMessage::Accept { offer, resume, by }, expected))
    }

    /// Declines a waiting offer; the answer for the sender.
    pub fn decline(&mut self, offer: OfferId, reason: &str) -> Option<FileMessage> {
        self.waiting.remove(&offer)?;
        Some(FileMessage::Decline {
            offer,
            reason: crate::text::clip(reason, MAX_REASON).into_owned(),
        })
    }

    /// A stream for `file` began: the file it was accepted as, or `None` for a file of an
    /// offer stopped meanwhile (its stream is to be stopped too). Each file's stream comes once.
    pub fn stream(&mut self, file: FileId) -> Result<Option<Expected>, TransferError> {
        if let Some(e) = self.expected.remove(&file) {
            return Ok(Some(e));
        }
        if self.stopped.take(file) {
            return Ok(None);
        }
        Err(TransferError::UnexpectedStream(file))
    }

    /// The sender stopped `offer` (or this end did): what was waiting of it is forgotten.
    /// Returns whether anything was.
    pub fn cancelled(&mut self, offer: OfferId) -> bool {
        let waited = self.waiting.remove(&offer).is_some();
        let gone: Vec<FileId> = self
            .expected
            .iter()
            .filter(|(_, e)| e.offer == offer)
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.expected.remove(id);
            self.stopped.insert(*id);
        }
        waited || !gone.is_empty()
    }

    /// Asks the other end for `path`: the request's number and the message. `None` when too
    /// many requests wait already.
    pub fn fetch(&mut self, path: &str) -> Option<(u64, FileMessage)> {
        let request = self.request(path, Asked::Fetch)?;
        let path = path.to_string();
        Some((request, FileMessage::Fetch { request, path }))
    }

    /// Asks the other end what the folder at `path` holds: the request's number and the
    /// message. `None` when too many requests wait already.
    pub fn list(&mut self, path: &str) -> Option<(u64, FileMessage)> {
        let request = self.request(path, Asked::List)?;
        let path = path.to_string();
        Some((request, FileMessage::List { request, path }))
    }

    fn request(&mut self, path: &str, asked: Asked) -> Option<u64> {
        if self.fetches.len() >= MAX_PENDING_FETCHES {
            return None;
        }
        let request = self.next_fetch;
        self.next_fetch += 1;
        self.fetches.insert(request, (path.to_string(), asked));
        Some(request)
    }

    /// The other end refused request `request` (a fetch or a listing): the path that was
    /// asked.
    pub fn fetch_refused(&mut self, request: u64) -> Result<String, TransferError> {
        self.fetches
            .remove(&request)
            .map(|(path, _)| path)
            .ok_or(TransferError::UnknownFetch(request))
    }

    /// The other end answered listing `request`: the path that was asked, once the listing
    /// holds to the limits.
    pub fn listed(
        &mut self,
        request: u64,
        listing: &crate::browse::Listing,
    ) -> Result<String, TransferError> {
        match self.fetches.remove(&request) {
            Some((path, Asked::List)) => {
                listing.check()?;
                Ok(path)
            }
            Some(_) => Err(TransferError::WrongAnswer(request)),
            None => Err(TransferError::UnknownFetch(request)),
        }
    }

    /// Offer `offer`, while it waits for an answer.
    pub fn waiting(&self, offer: OfferId) -> Option<&IncomingOffer> {
        self.waiting.get(&offer)
    }
}

/// A file this end offers: where it is read from, and what the offer says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub source: PathBuf,
    /// Its path under what was offered (the name alone, or the folder's name first).
    pub path: Vec<String>,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// One of this end's offered files, numbered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingFile {
    pub id: FileId,
    pub offer: OfferId,
    pub local: LocalFile,
}

impl OutgoingFile {
    /// The path as words, `/` between the parts.
    pub fn name(&self) -> String {
        self.local.path.join("/")
    }
}

/// A file to stream now: from `start` to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendJob {
    pub file: OutgoingFile,
    pub start: u64,
    pub by: AcceptedBy,
}

/// What the other end's answer to an offer of this end means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// Accepted: the files are queued to send, from these points.
    Accepted {
        offer: OfferId,
        by: AcceptedBy,
        resume: Vec<u64>,
    },
    Declined {
        offer: OfferId,
        reason: String,
    },
}

/// The sending side: this end's offers, the files queued to stream, and those streamed and
/// waiting for the receiver's word.
#[derive(Debug, Default)]
pub struct Outbox {
    next_offer: OfferId,
    next_file: FileId,
    /// Offers waiting for an answer.
    waiting: BTreeMap<OfferId, Vec<OutgoingFile>>,
    queue: VecDeque<SendJob>,
    /// Files streamed (or streaming), waiting for [`FileMessage::Received`].
    unconfirmed: BTreeMap<FileId, SendJob>,
    /// Fetch requests the other end made and this end has not answered yet.
    last_fetch: Option<u64>,
    fetches: BTreeMap<u64, String>,
    /// Offers and files stopped: the receiver's answer or word about them may still come.
    stopped_offers: Forgotten,
    stopped_files: Forgotten,
}

impl Outbox {
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers `files` (answering fetch `fetch`, if given): numbers them and returns the message.
    /// `None` when too many offers wait for an answer already.
    pub fn offer(&mut self, files: Vec<LocalFile>, fetch: Option<u64>) -> Option<Offer> {
        if self.waiting.len() >= MAX_PENDING_OFFERS || files.is_empty() {
            return None;
        }
        if let Some(request) = fetch {
            self.fetches.remove(&request);
        }
        let id = self.next_offer;
        self.next_offer += 1;
        let files: Vec<OutgoingFile> = files
            .into_iter()
            .map(|local| {
                let file = self.next_file;
                self.next_file += 1;
                OutgoingFile {
                    id: file,
                    offer: id,
                    local,
                }
            })
            .collect();
        let offer = Offer {
            id,
            files: files
                .iter()
                .map(|f| OfferedFile {
                    id: f.id,
                    path: f.local.path.clone(),
                    size: f.local.size,
                    sha256: f.local.sha256,
                })
                .collect(),
            fetch,
        };
        self.waiting.insert(id, files);
        Some(offer)
    }

    /// The files of a waiting offer.
    pub fn offered(&self, offer: OfferId) -> Option<&[OutgoingFile]> {
        self.waiting.get(&offer).map(Vec::as_slice)
    }

    /// Takes in the other end's answer to an offer (an `Accept` or a `Decline`; anything else
    /// is not an answer, nor is an answer to an offer stopped meanwhile: `Ok(None)`).
    pub fn answered(&mut self, msg: &FileMessage) -> Result<Option<Answered>, TransferError> {
        match msg {
            FileMessage::Accept { offer, .. } | FileMessage::Decline { offer, .. }
                if self.stopped_offers.contains(*offer) =>
            {
                Ok(None)
            }
            FileMessage::Accept { offer, resume, by } => {
                let files = self
                    .waiting
                    .get(offer)
                    .ok_or(TransferError::UnknownOffer(*offer))?;
                if resume.len() != files.len() {
                    return Err(TransferError::ResumeCount {
                        offer: *offer,
                        files: files.len(),
                        got: resume.len(),
                    });
                }
                for (f, at) in files.iter().zip(resume) {
                    if *at > f.local.size {
                        return Err(TransferError::ResumePastEnd {
                            file: f.id,
                            at: *at,
                            size: f.local.size,
                        });
                    }
                }
                let files = self.waiting.remove(offer).expect("checked above");
                for (file, start) in files.into_iter().zip(resume.iter().copied()) {
                    self.queue.push_back(SendJob {
                        file,
                        start,
                        by: *by,
                    });
                }
                Ok(Some(Answered::Accepted {
                    offer: *offer,
                    by: *by,
                    resume: resume.clone(),
                }))
            }
            FileMessage::Decline { offer, reason } => {
                self.waiting
                    .remove(offer)
                    .ok_or(TransferError::UnknownOffer(*offer))?;
                Ok(Some(Answered::Declined {
                    offer: *offer,
                    reason: tame_reason(reason),
                }))
            }
            _ => Ok(None),
        }
    }

    /// The next file to stream, if any is queued; it then waits for the receiver's word.
    pub fn next_job(&mut self) -> Option<SendJob> {
        let job = self.queue.pop_front()?;
        self.unconfirmed.insert(job.file.id, job.clone());
        Some(job)
    }

    /// The receiver's word about a file streamed: the job it was, and how it went (`None`: a
    /// file of an offer stopped meanwhile).
    #[allow(clippy::type_complexity)]
    pub fn received(
        &mut self,
        file: FileId,
        result: &Result<String, String>,
    ) -> Result<Option<(SendJob, Result<String, String>)>, TransferError> {
        let Some(job) = self.unconfirmed.remove(&file) else {
            if self.stopped_files.take(file) {
                return Ok(None);
            }
            return Err(TransferError::UnknownFile(file));
        };
        let result = match result {
            Ok(stored) => Ok(crate::text::tame(stored, MAX_OFFERED_NAME)),
            Err(why) => Err(tame_reason(why)),
        };
        Ok(Some((job, result)))
    }

    /// Stops `offer`: forgets it if it waits for an answer, and drops its files still queued.
    /// Returns whether anything of it was left.
    pub fn cancel(&mut self, offer: OfferId) -> bool {
        let waited = self.waiting.remove(&offer).is_some();
        if waited {
            self.stopped_offers.insert(offer);
        }
        let mut gone = Vec::new();
        self.queue.retain(|j| {
            let keep = j.file.offer != offer;
            if !keep {
                gone.push(j.file.id);
            }
            keep
        });
        self.unconfirmed.retain(|id, j| {
            let keep = j.file.offer != offer;
            if !keep {
                gone.push(*id);
            }
            keep
        });
        for id in &gone {
            self.stopped_files.insert(*id);
        }
        waited || !gone.is_empty()
    }

    /// Takes in a fetch request from the other end; the path asked, to be answered with an
    /// offer naming the request or a refusal.
    pub fn fetch_asked(&mut self, request: u64, path: &str) -> Result<String, TransferError> {
        if let Some(last) = self.last_fetch.filter(|last| request <= *last) {
            return Err(TransferError::FetchOutOfOrder { got: request, last });
        }
        if path.len() > MAX_FETCH_PATH {
            return Err(TransferError::FetchPathTooLong(path.len()));
        }
        if self.fetches.len() >= MAX_PENDING_FETCHES {
            return Err(TransferError::TooManyFetches);
        }
        self.last_fetch = Some(request);
        self.fetches.insert(request, path.to_string());
        Ok(path.to_string())
    }

    /// Answers listing `request`: the message, if the request waits for an answer.
    pub fn answer_list(
        &mut self,
        request: u64,
        listing: crate::browse::Listing,
    ) -> Option<FileMessage> {
        self.fetches.remove(&request)?;
        Some(FileMessage::Listed { request, listing })
    }

    /// Refuses fetch `request`: the message, if the request waits for an answer.
    pub fn refuse_fetch(&mut self, request: u64, reason: &str) -> Option<FileMessage> {
        self.fetches.remove(&request)?;
        Some(FileMessage::FetchRefused {
            request,
            reason: crate::text::clip(reason, MAX_REASON).into_owned(),
        })
    }

    /// Whether a file is queued or waits for the receiver's word.
    pub fn is_busy(&self) -> bool {
        !self.queue.is_empty() || !self.unconfirmed.is_empty()
    }
}

/// What the receiver holds a file's stream to: the agreed start first, then no more and no
/// fewer bytes than the file has from there.
#[derive(Debug, Clone)]
pub struct StreamCheck {
    file: FileId,
    start: u64,
    size: u64,
    /// Bytes of the file that arrived, from `start`; `None` before the first record.
    got: Option<u64>,
}

impl StreamCheck {
    pub fn new(expected: &Expected) -> Self {
        Self {
            file: expected.file.id,
            start: expected.start,
            size: expected.file.size,
            got: None,
        }
    }

    /// Takes one record's plaintext; returns the file bytes it carries (none for the first
    /// record, which says where the stream starts).
    pub fn record<'a>(&mut self, plaintext: &'a [u8]) -> Result<&'a [u8], TransferError> {
        let Some(got) = self.got else {
            let start: [u8; START_RECORD] = plaintext
                .try_into()
                .map_err(|_| TransferError::NoStart(self.file))?;
            let start = u64::from_le_bytes(start);
            if start != self.start {
                return Err(TransferError::WrongStart {
                    file: self.file,
                    got: start,
                    expected: self.start,
                });
            }
            self.got = Some(0);
            return Ok(&[]);
        };
        if plaintext.len() > FILE_RECORD {
            return Err(TransferError::RecordTooLarge(plaintext.len()));
        }
        let now = got + plaintext.len() as u64;
        if self.start + now > self.size {
            return Err(TransferError::TooLong {
                file: self.file,
                size: self.size,
            });
        }
        self.got = Some(now);
        Ok(plaintext)
    }

    /// The stream's last record was taken: every byte must have come.
    pub fn end(&self) -> Result<(), TransferError> {
        let got = self.got.ok_or(TransferError::NoStart(self.file))?;
        if self.start + got != self.size {
            return Err(TransferError::TooShort {
                file: self.file,
                got: self.start + got,
                size: self.size,
            });
        }
        Ok(())
    }

    /// Bytes of the file held now: the start plus what arrived.
    pub fn held(&self) -> u64 {
        self.start + self.got.unwrap_or(0)
    }
}

/// The SHA-256 of a file as it is put together: the part held before, then what arrives.
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    hasher: Sha256,
    len: u64,
}

impl Verifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether what was hashed is the file the offer described.
    pub fn matches(self, size: u64, sha256: &[u8; 32]) -> bool {
        self.len == size && self.hasher.finalize().as_slice() == sha256
    }

    /// The SHA-256 of what was hashed.
    pub fn finish(self) -> [u8; 32] {
        self.hasher.finalize().into()
    }
}

/// Progress of one transfer: bytes, rate and time left, from samples the caller takes (with
/// its own clock, in milliseconds).
#[derive(Debug, Clone)]
pub struct Meter {
    size: u64,
    done: u64,
    /// (ms, bytes done then), the last few seconds of them.
    samples: VecDeque<(u64, u64)>,
}

/// How far back the rate looks, in milliseconds.
const RATE_WINDOW_MS: u64 = 3000;

impl Meter {
    /// A transfer of `size` bytes of which `done` were there at `now_ms` (a resume).
    pub fn new(size: u64, done: u64, now_ms: u64) -> Self {
        let mut samples = VecDeque::new();
        samples.push_back((now_ms, done));
        Self {
            size,
            done,
            samples,
        }
    }

    /// `done` bytes are there at `now_ms`.
    pub fn sample(&mut self, now_ms: u64, done: u64) {
        self.done = done.min(self.size);
        self.samples.push_back((now_ms, self.done));
        while self.samples.len() > 2 && now_ms.saturating_sub(self.samples[1].0) >= RATE_WINDOW_MS {
            self.samples.pop_front();
        }
    }

    pub fn done(&self) -> u64 {
        self.done
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes a second over the last few seconds (0 before two samples apart in time).
    pub fn rate(&self) -> f64 {
        let (Some(first), Some(last)) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        let ms = last.0.saturating_sub(first.0);
        if ms == 0 {
            return 0.0;
        }
        (last.1 - first.1) as f64 * 1000.0 / ms as f64
    }

    /// Seconds left at the current rate (`None` while there is no rate yet).
    pub fn eta_secs(&self) -> Option<u64> {
        let rate = self.rate();
        (rate > 0.0).then(|| ((self.size - self.done) as f64 / rate).ceil() as u64)
    }
}

/// A number of bytes for a person: `512 B`, `3.4 KB`, `1.0 GB` (powers of 1000).
pub fn bytes_words(n: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for u in UNITS {
        value /= 1000.0;
        unit = u;
        if value < 1000.0 {
            break;
        }
    }
    format!("{value:.1} {unit}")
}

/// SHA-256 as lowercase hex.
pub fn sha256_hex(sha256: &[u8; 32]) -> String {
    sha256.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(name: &str, size: u64) -> LocalFile {
        LocalFile {
            source: PathBuf::from(name),
            path: name.split('/').map(String::from).collect(),
            size,
            sha256: Sha256::digest(name.as_bytes()).into(),
        }
    }

    #[test]
    fn hostile_names_land_as_plain_names() {
        assert_eq!(sanitize_component("../../.bashrc"), "bashrc");
        assert_eq!(sanitize_component("report.pdf"), "report.pdf");
        assert_eq!(sanitize_component("a/b.txt"), "a_b.txt");
        assert_eq!(
            sanitize_component("..\\..\\windows\\win.ini"),
            "windows_win.ini"
        );
        assert_eq!(sanitize_component(".."), "file");
        assert_eq!(sanitize_component("..."), "file");
        assert_eq!(sanitize_component(""), "file");
        assert_eq!(sanitize_component("/etc/passwd"), "etc_passwd");
        assert_eq!(sanitize_component("bad\nname\r.txt"), "badname.txt");
        assert_eq!(sanitize_component("ESC\u{1b}[2Jx"), "ESC[2Jx");
        // A name that reads backwards (right-to-left override) is made plain.
        assert_eq!(
            sanitize_component("invoice\u{202e}fdp.exe"),
            "invoicefdp.exe"
        );
        assert_eq!(sanitize_component("trailing. . "), "trailing");
        let long = format!("{}.tar", "é".repeat(300));
        let clipped = sanitize_component(&long);
        assert!(clipped.len() <= MAX_NAME_BYTES, "{}", clipped.len());
        assert!(clipped.ends_with(".tar"));
        for hostile in ["../../.bashrc", "..", "a/../../b", "\0", "/"] {
            let s = sanitize_component(hostile);
            assert!(
                !s.contains('/') && !s.contains('\\') && !s.starts_with('.'),
                "{s}"
            );
            assert!(s != ".." && s != "." && !s.is_empty());
        }
    }

    #[test]
    fn taken_names_are_numbered_and_nothing_is_overwritten() {
        let taken = ["report.pdf", "report (1).pdf", "notes"];
        let is_taken = |n: &str| taken.contains(&n);
        assert_eq!(
            free_name("report.pdf", 100, is_taken).as_deref(),
            Some("report (2).pdf")
        );
        assert_eq!(
            free_name("notes", 100, is_taken).as_deref(),
            Some("notes (1)")
        );
        assert_eq!(
            free_name("new.txt", 100, is_taken).as_deref(),
            Some("new.txt")
        );
        assert_eq!(free_name("report.pdf", 2, is_taken), None);
    }

    #[test]
    fn a_partial_file_is_hidden_and_names_its_content() {
        let sha = [0xab; 32];
        let p = partial_name("report.pdf", &sha);
        assert!(p.starts_with(".report.pdf.abababab"));
        assert!(p.ends_with(PARTIAL_SUFFIX));
        assert_ne!(p, partial_name("report.pdf", &[0xcd; 32]));
        assert_eq!(resume_point(None, 10), 0);
        assert_eq!(resume_point(Some(4), 10), 4);
        assert_eq!(resume_point(Some(10), 10), 10);
        assert_eq!(resume_point(Some(11), 10), 0);
    }

    /// An offer goes from sender to receiver and back as it would through the two shells.
    fn offer_between(outbox: &mut Outbox, inbox: &mut Inbox, files: Vec<LocalFile>) -> Offer {
        let offer = outbox.offer(files, None).unwrap();
        let incoming = inbox.offered(offer.clone()).unwrap();
        assert_eq!(incoming.files.len(), offer.files.len());
        offer
    }

    #[test]
    fn an_accepted_offer_streams_each_file_once_from_its_resume_point() {
        let (mut outbox, mut inbox) = (Outbox::new(), Inbox::new());
        let offer = offer_between(
            &mut outbox,
            &mut inbox,
            vec![local("Photos/a.jpg", 100), local("Photos/b.jpg", 50)],
        );
        let (answer, expected) = inbox
            .accept(offer.id, vec![40, 0], AcceptedBy::Person)
            .unwrap();
        assert_eq!(expected[0].start, 40);
        assert_eq!(
            outbox.answered(&answer).unwrap(),
            Some(Answered::Accepted {
                offer: offer.id,
                by: AcceptedBy::Person,
                resume: vec![40, 0]
            })
        );
        let first = outbox.next_job().unwrap();
        assert_eq!(
            (first.file.name(), first.start),
            ("Photos/a.jpg".into(), 40)
        );
        let second = outbox.next_job().unwrap();
        assert_eq!(second.start, 0);
        assert!(outbox.next_job().is_none());

        // The receiver takes each file's stream once.
        let e = inbox.stream(first.file.id).unwrap().unwrap();
        assert_eq!(
            inbox.stream(first.file.id),
            Err(TransferError::UnexpectedStream(first.file.id))
        );
        let mut check = StreamCheck::new(&e);
        assert_eq!(check.record(&40u64.to_le_bytes()).unwrap(), b"");
        assert_eq!(check.record(&[7; 60]).unwrap().len(), 60);
        check.end().unwrap();
        assert_eq!(check.held(), 100);

        let (job, result) = outbox
            .received(first.file.id, &Ok("a.jpg".into()))
            .unwrap()
            .unwrap();
        assert_eq!(job.file.id, first.file.id);
        assert_eq!(result, Ok("a.jpg".into()));
        assert!(outbox.is_busy(), "the second file is not confirmed yet");
        assert_eq!(
            outbox
                .received(first.file.id, &Ok("a.jpg".into()))
                .unwrap_err(),
            TransferError::UnknownFile(first.file.id)
        );
    }

    #[test]
    fn a_declined_offer_sends_nothing() {
        let (mut outbox, mut inbox) = (Outbox::new(), Inbox::new());
        let offer = offer_between(&mut outbox, &mut inbox, vec![local("x.bin", 5)]);
        let answer = inbox.decline(offer.id, "not now").unwrap();
        assert!(inbox.decline(offer.id, "twice").is_none());
        assert_eq!(
            outbox.answered(&answer).unwrap(),
            Some(Answered::Declined {
                offer: offer.id,
                reason: "not now".into()
            })
        );
        assert!(outbox.next_job().is_none());
        assert!(!outbox.is_busy());
        // A second answer to the same offer is not one.
        assert_eq!(
            outbox.answered(&answer),
            Err(TransferError::UnknownOffer(offer.id))
        );
        assert!(inbox.stream(offer.files[0].id).is_err());
    }

    #[test]
    fn impossible_offers_and_answers_are_refused() {
        let mut inbox = Inbox::new();
        let file = |id, path: &[&str]| OfferedFile {
            id,
            path: path.iter().map(|s| s.to_string()).collect(),
            size: 1,
            sha256: [0; 32],
        };
        let offer = |id, files| Offer {
            id,
            files,
            fetch: None,
        };
        assert_eq!(
            inbox.offered(offer(0, vec![])),
            Err(TransferError::EmptyOffer)
        );
        assert_eq!(
            inbox.offered(offer(0, vec![file(0, &[])])),
            Err(TransferError::EmptyPath)
        );
        let deep = vec!["d"; MAX_DEPTH + 1];
        assert_eq!(
            inbox.offered(offer(0, vec![file(0, &deep)])),
            Err(TransferError::TooDeep(MAX_DEPTH + 1))
        );
        assert_eq!(
            inbox.offered(offer(0, vec![file(3, &["a"]), file(3, &["b"])])),
            Err(TransferError::FileOutOfOrder { got: 3, last: 3 })
        );
        inbox.offered(offer(5, vec![file(9, &["a"])])).unwrap();
        assert_eq!(
            inbox.offered(offer(5, vec![file(10, &["a"])])),
            Err(TransferError::OfferOutOfOrder { got: 5, last: 5 })
        );
        assert_eq!(
            inbox.offered(offer(6, vec![file(9, &["a"])])),
            Err(TransferError::FileOutOfOrder { got: 9, last: 9 })
        );
        let many: Vec<OfferedFile> = (100..100 + MAX_FILES as u64 + 1)
            .map(|i| file(i, &["f"]))
            .collect();
        assert_eq!(
            inbox.offered(offer(7, many)),
            Err(TransferError::TooManyFiles(MAX_FILES + 1))
        );
        // An offer answering a fetch nobody asked is refused.
        assert_eq!(
            inbox.offered(Offer {
                id: 8,
                files: vec![file(20_000, &["x"])],
                fetch: Some(3)
            }),
            Err(TransferError::UnknownFetch(3))
        );
        // Offers waiting are bounded.
        for i in 0..MAX_PENDING_OFFERS as u64 - 1 {
            inbox
                .offered(offer(10 + i, vec![file(30_000 + i, &["f"])]))
                .unwrap();
        }
        assert_eq!(
            inbox.offered(offer(100, vec![file(40_000, &["f"])])),
            Err(TransferError::TooManyOffers)
        );

        let mut outbox = Outbox::new();
        let o = outbox.offer(vec![local("a", 10)], None).unwrap();
        for (resume, err) in [
            (
                vec![],
                TransferError::ResumeCount {
                    offer: o.id,
                    files: 1,
                    got: 0,
                },
            ),
            (
                vec![11],
                TransferError::ResumePastEnd {
                    file: o.files[0].id,
                    at: 11,
                    size: 10,
                },
            ),
        ] {
            let msg = FileMessage::Accept {
                offer: o.id,
                resume,
                by: AcceptedBy::Person,
            };
            assert_eq!(outbox.answered(&msg), Err(err));
        }
    }

    #[test]
    fn two_names_that_sanitise_alike_are_numbered_apart() {
        let mut inbox = Inbox::new();
        let offered = inbox
            .offered(Offer {
                id: 0,
                fetch: None,
                files: vec![
                    OfferedFile {
                        id: 0,
                        path: vec!["a/b".into()],
                        size: 1,
                        sha256: [1; 32],
                    },
                    OfferedFile {
                        id: 1,
                        path: vec!["a_b".into()],
                        size: 1,
                        sha256: [1; 32],
                    },
                    OfferedFile {
                        id: 2,
                        path: vec!["..".into(), "..".into(), ".ssh".into(), "keys".into()],
                        size: 1,
                        sha256: [2; 32],
                    },
                ],
            })
            .unwrap();
        let names: Vec<String> = offered.files.iter().map(IncomingFile::name).collect();
        assert_eq!(names, ["a_b", "a_b (1)", "file/file/ssh/keys"]);
        assert_eq!(offered.total, 3);
    }

    #[test]
    fn a_stream_holds_to_the_agreed_start_and_length() {
        let e = Expected {
            offer: 0,
            start: 2,
            file: IncomingFile {
                id: 4,
                path: vec!["f".into()],
                size: 5,
                sha256: [0; 32],
            },
        };
        let mut c = StreamCheck::new(&e);
        assert_eq!(c.record(&[1, 2, 3]).unwrap_err(), TransferError::NoStart(4));
        let mut c = StreamCheck::new(&e);
        assert_eq!(
            c.record(&0u64.to_le_bytes()).unwrap_err(),
            TransferError::WrongStart {
                file: 4,
                got: 0,
                expected: 2
            }
        );
        let mut c = StreamCheck::new(&e);
        c.record(&2u64.to_le_bytes()).unwrap();
        c.record(&[0; 2]).unwrap();
        assert_eq!(
            c.end().unwrap_err(),
            TransferError::TooShort {
                file: 4,
                got: 4,
                size: 5
            }
        );
        assert_eq!(
            c.record(&[0; 2]).unwrap_err(),
            TransferError::TooLong { file: 4, size: 5 }
        );
        assert_eq!(
            c.record(&vec![0; FILE_RECORD + 1]).unwrap_err(),
            TransferError::RecordTooLarge(FILE_RECORD + 1)
        );
    }

    #[test]
    fn the_verifier_wants_the_whole_file_exactly() {
        let data = b"the whole file";
        let sha: [u8; 32] = Sha256::digest(data).into();
        let mut v = Verifier::new();
        v.update(&data[..4]);
        v.update(&data[4..]);
        assert!(v.clone().matches(data.len() as u64, &sha));
        assert!(!v.clone().matches(data.len() as u64 + 1, &sha));
        v.update(b"!");
        assert!(!v.matches(data.len() as u64 + 1, &sha));
    }

    #[test]
    fn fetches_are_answered_once_by_an_offer_or_a_refusal() {
        let (mut outbox, mut inbox) = (Outbox::new(), Inbox::new());
        let (request, msg) = inbox.fetch("/var/log/syslog").unwrap();
        let FileMessage::Fetch { path, .. } = &msg else {
            panic!("{msg:?}")
        };
        assert_eq!(
            outbox.fetch_asked(request, path).unwrap(),
            "/var/log/syslog"
        );
        assert_eq!(
            outbox.fetch_asked(request, path),
            Err(TransferError::FetchOutOfOrder {
                got: request,
                last: request
            })
        );
        let offer = outbox
            .offer(vec![local("syslog", 3)], Some(request))
            .unwrap();
        assert_eq!(inbox.offered(offer.clone()).unwrap().fetch, Some(request));
        // The request was answered: a refusal of it now is not one.
        assert!(outbox.refuse_fetch(request, "late").is_none());
        assert_eq!(
            inbox.fetch_refused(request),
            Err(TransferError::UnknownFetch(request))
        );

        let (second, _) = inbox.fetch("/root").unwrap();
        outbox.fetch_asked(second, "/root").unwrap();
        let refusal = outbox.refuse_fetch(second, "not allowed").unwrap();
        assert!(matches!(refusal, FileMessage::FetchRefused { .. }));
        assert_eq!(inbox.fetch_refused(second).unwrap(), "/root");
        assert_eq!(
            outbox.fetch_asked(second + 1, &"x".repeat(MAX_FETCH_PATH + 1)),
            Err(TransferError::FetchPathTooLong(MAX_FETCH_PATH + 1))
        );
    }

    #[test]
    fn a_cancelled_offer_leaves_nothing_queued() {
        let (mut outbox, mut inbox) = (Outbox::new(), Inbox::new());
        let offer = offer_between(&mut outbox, &mut inbox, vec![local("a", 1), local("b", 1)]);
        let (answer, _) = inbox
            .accept(offer.id, vec![0, 0], AcceptedBy::Unattended)
            .unwrap();
        outbox.answered(&answer).unwrap();
        let streaming = outbox.next_job().unwrap();
        assert!(outbox.cancel(offer.id));
        assert!(!outbox.is_busy());
        assert!(outbox.next_job().is_none());
        // Word about the stopped files still on its way is taken quietly, once.
        assert_eq!(
            outbox.received(streaming.file.id, &Ok("a".into())),
            Ok(None)
        );
        assert!(outbox.received(streaming.file.id, &Ok("a".into())).is_err());
        assert!(inbox.cancelled(offer.id));
        assert_eq!(inbox.stream(offer.files[1].id), Ok(None));
        assert!(inbox.stream(offer.files[1].id).is_err());
        assert!(!inbox.cancelled(offer.id));
        // An answer to an offer stopped while it waited is no answer.
        let waiting = outbox.offer(vec![local("c", 1)], None).unwrap();
        inbox.offered(waiting.clone()).unwrap();
        assert!(outbox.cancel(waiting.id));
        let (late, _) = inbox
            .accept(waiting.id, vec![0], AcceptedBy::Person)
            .unwrap();
        assert_eq!(outbox.answered(&late), Ok(None));
    }

    #[test]
    fn the_meter_gives_rate_and_time_left() {
        let mut m = Meter::new(10_000, 1000, 0);
        assert_eq!(m.eta_secs(), None);
        m.sample(1000, 3000);
        assert_eq!(m.rate(), 2000.0);
        assert_eq!(m.eta_secs(), Some(4));
        // Old samples fall out of the window: the rate follows the last seconds.
        m.sample(5000, 3000);
        m.sample(6000, 3000);
        assert_eq!(m.rate(), 0.0);
        assert_eq!(m.done(), 3000);
    }

    #[test]
    fn summaries_and_sizes_read_as_a_person_says_them() {
        let p = |s: &str| s.split('/').map(String::from).collect::<Vec<_>>();
        let one = [p("report.pdf")];
        assert_eq!(summary(one.iter().map(Vec::as_slice)), "report.pdf");
        let folder = [p("Photos/a.jpg"), p("Photos/b/c.jpg")];
        assert_eq!(
            summary(folder.iter().map(Vec::as_slice)),
            "Photos (2 files)"
        );
        let loose = [p("a"), p("b"), p("c")];
        assert_eq!(summary(loose.iter().map(Vec::as_slice)), "3 files");
        assert_eq!(bytes_words(999), "999 B");
        assert_eq!(bytes_words(1_500), "1.5 KB");
        assert_eq!(bytes_words(1_000_000_000), "1.0 GB");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a sender calls a file, the name it lands under is one plain name: no
            /// separator, not hidden, not `.` or `..`, not empty, not too long.
            #[test]
            fn any_name_sanitises_to_one_plain_component(raw in any::<String>()) {
                let s = sanitize_component(&raw);
                prop_assert!(!s.is_empty());
                prop_assert!(!s.contains('/') && !s.contains('\\'));
                prop_assert!(!s.starts_with('.'));
                prop_assert!(s != "..");
                prop_assert!(s.len() <= MAX_NAME_BYTES);
                prop_assert!(!s.chars().any(crate::text::is_unsafe));
                // Sanitising is stable.
                prop_assert_eq!(sanitize_component(&s), s.clone());
            }

            /// A stream check takes exactly the agreed bytes, however they are cut into records.
            #[test]
            fn any_cut_of_the_right_bytes_passes(size in 0u64..5000, start_frac in 0.0f64..=1.0, cuts in proptest::collection::vec(1usize..700, 0..40)) {
                let start = (size as f64 * start_frac) as u64;
                let e = Expected { offer: 0, start, file: IncomingFile { id: 1, path: vec!["f".into()], size, sha256: [0; 32] } };
                let mut c = StreamCheck::new(&e);
                c.record(&start.to_le_bytes()).unwrap();
                let mut left = size - start;
                for cut in cuts {
                    let n = (cut as u64).min(left);
                    c.record(&vec![0; n as usize]).unwrap();
                    left -= n;
                }
                if left > 0 {
                    prop_assert!(c.end().is_err());
                    c.record(&vec![0; left as usize]).unwrap();
                }
                prop_assert!(c.end().is_ok());
                prop_assert!(c.record(&[0]).is_err());
            }
        }
    }
}
