//! Files between the technician and the user, on the technician's side (the transfers
//! themselves are `link::files`, the same on both ends).
//!
//! The technician sends files and folders to the user (`send FILE` in a script, `technician
//! send`, the console's Send file) and fetches them from the user's machine where the user
//! allows it (`fetch PATH DIR`, `technician fetch`). The agent decides: the user accepts each
//! offer (or an unattended agent takes it into its folder), and only the technician who holds
//! control may move files. A step waits until every file of it has arrived and its SHA-256
//! matched, and fails with the other end's words otherwise. Offers the agent makes unasked, and
//! fetches of the technician's own files, are refused: files come to the technician only when
//! it fetches them.
//!
//! Every file goes into the session log ([`protocol::sessionlog::FileTransfer`]: name, size,
//! SHA-256, direction, who accepted, how it ended), into the report (`--json`: `file_*` and
//! `files_*` events) and to the window ([`crate::session::SessionEvent::Files`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use link::files::{progress_words, summary_of, Command, Direction, FileInfo, FileNews, Files, Out};
use link::report::Reporter;
use protocol::e2e::FileKeys;
use protocol::framing::FrameReader;
use protocol::sessionlog::{FileDirection, FileOutcome, FileTransfer, FolderLook};
use protocol::transfer::{bytes_words, AcceptedBy, FileMessage, OfferId};
use quinn::RecvStream;
use tokio::sync::oneshot;

use crate::record::Recorder;

/// What the technician asks of files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStep {
    /// Send these files and folders to the user.
    Send(Vec<PathBuf>),
    /// Fetch what lies at `path` on the user's machine into `dir` here.
    Fetch { path: String, dir: PathBuf },
    /// List the folder at `path` on the user's machine (where the user allows browsing).
    List { path: String },
    /// Stop the files of an offer (this end's, or the agent's answer to a fetch).
    Cancel { offer: OfferId },
}

/// A step, and who waits for how it ends (a script; a window does not wait).
pub type FileAsk = (FileStep, Option<oneshot::Sender<Result<(), String>>>);

/// A step under way.
struct Wait {
    answer: Option<oneshot::Sender<Result<(), String>>>,
    /// Files of it not yet arrived (`None` before its offer).
    left: Option<usize>,
    /// The step, for a send or a fetch: asked again when the link is resumed.
    again: Option<FileStep>,
    /// The files of it that arrived (their path under the offer).
    done: Vec<String>,
}

/// The session's file transfers as the technician's session loop holds them.
pub struct TechFiles {
    link: Files,
    next_tag: u64,
    waits: BTreeMap<u64, Wait>,
    /// Offers (this end's, and the agent's answers to fetches) and the step they belong to.
    steps: BTreeMap<OfferId, u64>,
    /// This end's offers' files, for the log of a decline.
    offered: BTreeMap<OfferId, Vec<FileInfo>>,
    /// Who accepted each offer.
    accepted: BTreeMap<OfferId, AcceptedBy>,
    /// Steps that list a folder.
    lists: std::collections::BTreeSet<u64>,
}

/// Where what happens to files goes besides the report.
pub struct Sinks<'a> {
    pub recorder: &'a Option<Arc<Mutex<Recorder>>>,
    pub report: Reporter,
    /// A window following the session.
    pub events: Option<&'a tokio::sync::mpsc::UnboundedSender<crate::session::SessionEvent>>,
}

/// Why an offer the agent made unasked is declined.
pub const UNASKED: &str = "a technician takes only the files it fetches";

/// Why a fetch of the technician's files is refused.
pub const NOT_FETCHED: &str = "a technician's files cannot be fetched";

impl TechFiles {
    /// Starts the file transfers of a session (the session's acceptor hands in the file
    /// streams: [`TechFiles::stream`]).
    pub fn start(connection: quinn::Connection, keys: FileKeys) -> Self {
        Self {
            link: Files::start(connection, keys, false),
            next_tag: 0,
            waits: BTreeMap::new(),
            steps: BTreeMap::new(),
            offered: BTreeMap::new(),
            accepted: BTreeMap::new(),
            lists: Default::default(),
        }
    }

    /// Starts a step.
    pub async fn ask(&mut self, (step, answer): FileAsk) {
        self.ask_after(step, answer, Vec::new()).await
    }

    /// Starts a step of which the files named in `done` arrived already.
    async fn ask_after(
        &mut self,
        step: FileStep,
        answer: Option<oneshot::Sender<Result<(), String>>>,
        done: Vec<String>,
    ) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let again =
            matches!(step, FileStep::Send(_) | FileStep::Fetch { .. }).then(|| step.clone());
        let wait = Wait {
            answer,
            left: None,
            again,
            done: done.clone(),
        };
        self.waits.insert(tag, wait);
        let command = match step {
            FileStep::Send(paths) if !done.is_empty() => Command::SendRest { paths, tag, done },
            FileStep::Send(paths) => Command::Send { paths, tag },
            FileStep::Fetch { path, dir } => Command::Fetch { path, dir, tag },
            FileStep::List { path } => {
                self.lists.insert(tag);
                Command::List { path, tag }
            }
            FileStep::Cancel { offer } => {
                self.finish(tag, Ok(()));
                Command::Cancel {
                    offer,
                    reason: "the technician stopped them".into(),
                }
            }
        };
        self.link.command(command).await;
    }

    /// The session's link was resumed on `connection`: transfers start again there, and each
    /// send or fetch that had not finished is asked again, going on from what had arrived (the
    /// receiving end keeps its partial files; a send leaves out the files that arrived). A
    /// fetch of which some files arrived, and a listing, end with words that say why. Returns
    /// how many steps go on.
    pub async fn resumed(&mut self, connection: quinn::Connection, keys: FileKeys) -> usize {
        let waits = std::mem::take(&mut self.waits);
        let next_tag = self.next_tag;
        *self = Self::start(connection, keys);
        self.next_tag = next_tag;
        let mut going = 0;
        for (_, w) in waits {
            let why = match w.again {
                Some(step @ FileStep::Send(_)) => {
                    self.ask_after(step, w.answer, w.done).await;
                    going += 1;
                    continue;
                }
                Some(step @ FileStep::Fetch { .. }) if w.done.is_empty() => {
                    self.ask_after(step, w.answer, Vec::new()).await;
                    going += 1;
                    continue;
                }
                Some(_) => format!(
                    "the connection was lost after {} files of the fetch arrived; fetch the rest \
                     again",
                    w.done.len()
                ),
                None => "the connection was lost before the answer came; ask again".into(),
            };
            tell(w.answer, Err(why));
        }
        going
    }

    /// What the agent said about files.
    pub async fn peer(&self, msg: FileMessage) {
        self.link.command(Command::Peer(msg)).await;
    }

    /// A file stream the agent opened.
    pub async fn stream(&self, reader: FrameReader<RecvStream>) {
        self.link.stream(reader).await;
    }

    /// What the transfers have to say next.
    pub async fn next(&mut self) -> Out {
        self.link.next().await
    }

    /// Ends step `tag` with `result`.
    fn finish(&mut self, tag: u64, result: Result<(), String>) {
        if let Some(w) = self.waits.remove(&tag) {
            tell(w.answer, result);
        }
    }

    /// The step an offer belongs to.
    fn step_of(&self, offer: OfferId) -> Option<u64> {
        self.steps.get(&offer).copied()
    }

    /// Takes in what the transfers said: a message for the agent (`Some(Ok)`), the end of the
    /// session (`Some(Err)`: the agent broke the file protocol), or nothing more to do.
    pub async fn handle(
        &mut self,
        out: Out,
        sinks: &Sinks<'_>,
    ) -> Option<Result<FileMessage, String>> {
        let news = match out {
            Out::Peer(msg) => return Some(Ok(msg)),
            Out::Broken(why) => return Some(Err(why)),
            Out::News(news) => news,
        };
        // Recorded first: following a news forgets which steps were listings.
        self.record(&news, sinks.recorder);
        self.follow(&news).await;
        report(sinks.report, &news);
        if let Some(tx) = sinks.events {
            let _ = tx.send(crate::session::SessionEvent::Files(news));
        }
        None
    }

    /// Moves the steps on, and answers what the technician refuses.
    async fn follow(&mut self, news: &FileNews) {
        match news {
            FileNews::Offering {
                offer,
                tag: Some(tag),
                files,
                ..
            } => {
                self.steps.insert(*offer, *tag);
                self.offered.insert(*offer, files.clone());
                if let Some(w) = self.waits.get_mut(tag) {
                    w.left = Some(files.len());
                }
            }
            FileNews::OfferFailed { tag, reason } => self.finish(*tag, Err(reason.clone())),
            FileNews::Offered {
                offer,
                fetched: Some(tag),
            } => {
                self.steps.insert(offer.id, *tag);
                if let Some(w) = self.waits.get_mut(tag) {
                    w.left = Some(offer.files.len());
                }
            }
            FileNews::Offered {
                offer,
                fetched: None,
            } => {
                self.link
                    .command(Command::Decline {
                        offer: offer.id,
                        reason: UNASKED.into(),
                    })
                    .await
            }
            FileNews::FetchAsked { request, .. } | FileNews::ListAsked { request, .. } => {
                self.link
                    .command(Command::RefuseFetch {
                        request: *request,
                        reason: NOT_FETCHED.into(),
                    })
                    .await
            }
            FileNews::Accepted { offer, by, .. } => {
                self.accepted.insert(*offer, *by);
            }
            FileNews::Declined {
                offer,
                reason,
                ours,
            } => {
                if let Some(tag) = self.step_of(*offer) {
                    let why = if *ours {
                        format!("the user's agent declined the files: {reason}")
                    } else {
                        reason.clone()
                    };
                    self.finish(tag, Err(why));
                }
            }
            FileNews::FetchRefused {
                tag, path, reason, ..
            } => {
                let what = if self.lists.remove(tag) {
                    "listing"
                } else {
                    "fetch"
                };
                self.finish(
                    *tag,
                    Err(format!("the {what} of {path} was refused: {reason}")),
                )
            }
            FileNews::Listed { tag, .. } => {
                self.lists.remove(tag);
                self.finish(*tag, Ok(()))
            }
            FileNews::Done { file, .. } => {
                if let Some(tag) = self.step_of(file.offer) {
                    let finished = self.waits.get_mut(&tag).is_some_and(|w| {
                        w.done.push(file.name.clone());
                        w.left = w.left.map(|n| n.saturating_sub(1));
                        w.left == Some(0)
                    });
                    if finished {
                        self.finish(tag, Ok(()));
                    }
                }
            }
            FileNews::Failed { file, reason, .. } => {
                if let Some(tag) = self.step_of(file.offer) {
                    self.finish(tag, Err(format!("{} did not arrive: {reason}", file.name)));
                }
            }
            FileNews::Cancelled { offer, reason, .. } => {
                if let Some(tag) = self.step_of(*offer) {
                    self.finish(tag, Err(format!("the files were stopped: {reason}")));
                }
            }
            FileNews::Offering { tag: None, .. }
            | FileNews::ListServed { .. }
            | FileNews::Started { .. }
            | FileNews::Progress { .. } => {}
        }
    }

    /// Writes what ended for a file into the session log.
    fn record(&mut self, news: &FileNews, recorder: &Option<Arc<Mutex<Recorder>>>) {
        let Some(recorder) = recorder else { return };
        let folder = match news {
            FileNews::Listed { listing, .. } => Some(FolderLook::listed(listing)),
            FileNews::FetchRefused {
                tag, path, reason, ..
            } if self.lists.contains(tag) => Some(FolderLook::refused(path, reason)),
            _ => None,
        };
        if let Some(look) = folder {
            recorder.lock().expect("recorder lock").folder(&look);
            return;
        }
        let entry = |file: &FileInfo, direction: Direction, by, outcome| FileTransfer {
            direction: match direction {
                Direction::Sending => FileDirection::ToUser,
                Direction::Receiving => FileDirection::FromUser,
            },
            name: file.name.clone(),
            size: file.size,
            sha256: file.sha256,
            accepted_by: by,
            outcome,
        };
        let entries = match news {
            FileNews::Done {
                file,
                direction,
                stored_as,
                from,
                by,
                ..
            } => vec![entry(
                file,
                *direction,
                Some(*by),
                FileOutcome::Delivered {
                    stored_as: stored_as.clone(),
                    resumed_from: *from,
                },
            )],
            FileNews::Failed {
                file,
                direction,
                reason,
            } => vec![entry(
                file,
                *direction,
                self.accepted.get(&file.offer).copied(),
                FileOutcome::Failed {
                    reason: reason.clone(),
                },
            )],
            FileNews::Declined {
                offer,
                reason,
                ours: true,
            } => self
                .offered
                .remove(offer)
                .unwrap_or_default()
                .iter()
                .map(|f| {
                    entry(
                        f,
                        Direction::Sending,
                        None,
                        FileOutcome::Declined {
                            reason: reason.clone(),
                        },
                    )
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut r = recorder.lock().expect("recorder lock");
        for e in &entries {
            r.file_transfer(e);
        }
    }
}

/// Tells whoever waits for a step (if anyone does) how it ended.
fn tell(answer: Option<oneshot::Sender<Result<(), String>>>, result: Result<(), String>) {
    if let Some(answer) = answer {
        let _ = answer.send(result);
    }
}

/// A folder of the user's machine as the terminal shows it: its path, then a line for each
/// folder (ending in `/`) and file (with its size), and how many were left out.
pub fn listing_words(listing: &protocol::browse::Listing) -> String {
    let mut words = format!(
        "{} ({} entries):",
        protocol::text::printable(&listing.path),
        listing.entries.len() as u64 + listing.omitted
    );
    for e in &listing.entries {
        let name = protocol::text::printable(&e.name);
        if e.folder {
            words.push_str(&format!("\n  {name}/"));
        } else {
            words.push_str(&format!("\n  {name}  {}", bytes_words(e.size)));
        }
    }
    if listing.omitted > 0 {
        words.push_str(&format!(
            "\n  … and {} more not listed (at most {} are)",
            listing.omitted,
            protocol::browse::MAX_ENTRIES
        ));
    }
    words
}

/// Tells the terminal (or scripts) what happened to files.
pub fn report(report: Reporter, news: &FileNews) {
    let (event, fields) = news.event();
    let words = match news {
        FileNews::Offering {
            files,
            total,
            fetch: None,
            ..
        } => format!(
            "Offering {} ({}) to the user…",
            summary_of(files),
            bytes_words(*total)
        ),
        FileNews::Offering { .. } | FileNews::Started { .. } => String::new(),
        FileNews::OfferFailed { reason, .. } => format!("The files cannot be offered: {reason}."),
        FileNews::Offered { offer, fetched } => match fetched {
            Some(_) => format!(
                "The user's machine sends {} ({}), as asked.",
                protocol::text::printable(&offer.summary()),
                bytes_words(offer.total)
            ),
            None => format!(
                "The user's agent offered {} unasked; it is declined ({UNASKED}).",
                protocol::text::printable(&offer.summary())
            ),
        },
        FileNews::FetchAsked { .. } | FileNews::ListAsked { .. } => {
            format!("The user's agent asked for files; refused ({NOT_FETCHED}).")
        }
        FileNews::ListServed { .. } => String::new(),
        FileNews::Listed { listing, .. } => listing_words(listing),
        FileNews::Accepted {
            ours: true,
            by,
            resumed,
            ..
        } => {
            let who = match by {
                AcceptedBy::Unattended => "The user's agent accepted the files (unattended)",
                _ => "The user accepted the files",
            };
            if *resumed > 0 {
                format!(
                    "{who}; {} arrived in an earlier session, the rest follows.",
                    bytes_words(*resumed)
                )
            } else {
                format!("{who}; sending.")
            }
        }
        FileNews::Accepted { dir, .. } => format!(
            "Saving in {}.",
            dir.as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default()
        ),
        FileNews::Declined {
            reason, ours: true, ..
        } => format!("The user's agent declined the files: {reason}."),
        FileNews::Declined { reason, .. } => format!("The files were not taken: {reason}."),
        FileNews::FetchRefused { path, reason, .. } => {
            format!("{} was refused: {reason}.", protocol::text::printable(path))
        }
        FileNews::Progress {
            file,
            done,
            rate,
            eta_secs,
            ..
        } => progress_words(
            &protocol::text::printable(&file.name),
            *done,
            file.size,
            *rate,
            *eta_secs,
        ),
        FileNews::Done {
            file,
            direction: Direction::Sending,
            stored_as,
            ..
        } => format!(
            "Delivered {} ({}); the user's agent checked its SHA-256 and stored it as {}.",
            protocol::text::printable(&file.name),
            bytes_words(file.size),
            protocol::text::printable(stored_as)
        ),
        FileNews::Done { file, path, .. } => format!(
            "Received {} ({}, SHA-256 checked): {}",
            protocol::text::printable(&file.name),
            bytes_words(file.size),
            path.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        FileNews::Failed { file, reason, .. } => format!(
            "{} did not arrive: {reason}.",
            protocol::text::printable(&file.name)
        ),
        FileNews::Cancelled { reason, .. } => format!("The files were stopped: {reason}."),
    };
    report.event(event, fields, words);
}
