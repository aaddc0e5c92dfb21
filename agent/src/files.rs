//! Files between the person and a technician, on the agent's side (the transfers themselves are
//! `link::files`, the same on both ends).
//!
//! Who may move files: only the technician who holds control, and only while the person allows
//! control. Files are as much an action on this machine as the mouse and the keyboard (a file
//! put in Downloads, a file taken away), so they follow the same rule, and with several
//! technicians in a session it is always clear who moved what: an observer's offer is declined
//! and its fetch refused, with words that say why ([`decide`]).
//!
//! Files offered to the person: each offer is put to them ([`Questions`]) with who sends it, the
//! names and the size, and where it goes (Downloads unless they choose another folder); they
//! accept or decline it in the window or the terminal (`y`, `y FOLDER`, `n`). An unattended
//! machine accepts into the folder given in advance (`--accept-files DIR`). A technician may
//! fetch a file or folder of this machine only where the person allows it (`--allow-files`);
//! each fetch is reported. Browsing this machine's folders (a technician lists a folder to pick
//! what to fetch: `protocol::browse`) is off until the person switches it on in the window or
//! starts the agent with `--allow-browse`; it allows fetching too. Each folder listed is shown
//! to the person and reported.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use link::files::{Command, FileNews};
use protocol::transfer::{bytes_words, AcceptedBy, IncomingOffer};

/// What the person allows of files, set when the agent starts.
#[derive(Debug, Clone, Default)]
pub struct FileOptions {
    /// Accept every offer into this folder without asking (an unattended machine).
    pub accept_dir: Option<PathBuf>,
    /// Let the technician holding control fetch files and folders of this machine.
    pub allow_fetch: bool,
    /// Where offered files go unless the person chooses another folder.
    pub default_dir: PathBuf,
    /// Let the technician holding control list this machine's folders, and fetch from them;
    /// the person switches it during the session (one switch for every viewer).
    pub browse: Arc<AtomicBool>,
}

impl FileOptions {
    /// Whether browsing is allowed now.
    pub fn browsing(&self) -> bool {
        self.browse.load(Ordering::Relaxed)
    }
}

/// Why an observer's files are refused.
pub const NOT_IN_CONTROL: &str =
    "only the technician who holds control may move files, while the user allows control";

/// Why a fetch is refused where the person did not allow fetching.
pub const FETCH_NOT_ALLOWED: &str =
    "the user does not let technicians fetch files from this machine (agent --allow-files)";

/// Why a listing is refused where the person did not allow browsing.
pub const BROWSE_NOT_ALLOWED: &str =
    "the user does not let technicians browse the folders of this machine (agent --allow-browse, or the switch in the agent's window)";

/// What the viewer does with news from its file transfers.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Answer at once.
    Answer(Command),
    /// Put the offer to the person.
    Ask(IncomingOffer),
    /// Nothing to decide.
    Nothing,
}

/// The answer to what a technician asked of files that needs no person: declined and refused
/// for one not holding control, fetches as the person allowed them, offers of files the person
/// accepted already ([`AcceptedFiles`]: offered again after a resumed link) accepted where they
/// went, offers accepted into the folder given in advance; the rest is put to the person.
pub fn decide(
    news: &FileNews,
    control: bool,
    opts: &FileOptions,
    accepted: &AcceptedFiles,
) -> Decision {
    match news {
        FileNews::Offered { offer, .. } if !control => Decision::Answer(Command::Decline {
            offer: offer.id,
            reason: NOT_IN_CONTROL.into(),
        }),
        FileNews::Offered { offer, .. } => match (accepted.again(offer), &opts.accept_dir) {
            (Some(again), _) => Decision::Answer(again),
            (None, Some(dir)) => Decision::Answer(Command::Accept {
                offer: offer.id,
                dir: dir.clone(),
                by: AcceptedBy::Unattended,
            }),
            (None, None) => Decision::Ask(offer.clone()),
        },
        FileNews::ListAsked { request, .. } if !opts.browsing() => {
            Decision::Answer(Command::RefuseFetch {
                request: *request,
                reason: BROWSE_NOT_ALLOWED.into(),
            })
        }
        FileNews::ListAsked { request, .. } if !control => Decision::Answer(Command::RefuseFetch {
            request: *request,
            reason: NOT_IN_CONTROL.into(),
        }),
        FileNews::ListAsked { request, path } => Decision::Answer(Command::ServeList {
            request: *request,
            path: PathBuf::from(path),
        }),
        FileNews::FetchAsked { request, .. } if !opts.allow_fetch && !opts.browsing() => {
            Decision::Answer(Command::RefuseFetch {
                request: *request,
                reason: FETCH_NOT_ALLOWED.into(),
            })
        }
        FileNews::FetchAsked { request, .. } if !control => {
            Decision::Answer(Command::RefuseFetch {
                request: *request,
                reason: NOT_IN_CONTROL.into(),
            })
        }
        FileNews::FetchAsked { request, path } => Decision::Answer(Command::Serve {
            request: *request,
            path: PathBuf::from(path),
        }),
        _ => Decision::Nothing,
    }
}

/// Offers the person accepted in this session, remembered across a resumed link: the technician
/// offers again what had not arrived, and it goes on into the same folder without asking again.
#[derive(Debug, Clone, Default)]
pub struct AcceptedFiles {
    /// Each accepted file and the folder chosen.
    files: Vec<(SameFile, PathBuf)>,
}

/// What makes a file offered again the one accepted: its path under the offer, size and
/// SHA-256.
type SameFile = (Vec<String>, u64, [u8; 32]);

impl AcceptedFiles {
    /// The person accepted `offer` into `dir`.
    pub fn accepted(&mut self, offer: &IncomingOffer, dir: &Path) {
        for f in &offer.files {
            self.files
                .push(((f.path.clone(), f.size, f.sha256), dir.to_path_buf()));
        }
    }

    /// The answer to `offer` when every file of it is one the person accepted, whole (name,
    /// size and content), into one folder: accepted there again.
    pub fn again(&self, offer: &IncomingOffer) -> Option<Command> {
        let mut dirs = offer.files.iter().map(|f| {
            self.files
                .iter()
                .rfind(|((path, size, sha), _)| {
                    *path == f.path && *size == f.size && *sha == f.sha256
                })
                .map(|(_, dir)| dir)
        });
        let first = dirs.next()??;
        dirs.all(|d| d == Some(first)).then(|| Command::Accept {
            offer: offer.id,
            dir: first.clone(),
            by: AcceptedBy::Person,
        })
    }
}

/// An offer put to the person.
#[derive(Debug, Clone, PartialEq)]
pub struct Question<V> {
    /// Whose viewer it came from.
    pub viewer: V,
    /// Who sends it (the account name), as shown.
    pub who: String,
    pub offer: IncomingOffer,
}

/// The person's answer to an offer: where to save it, or nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAnswer {
    pub viewer: u32,
    pub offer: u64,
    /// The folder to save it in; `None` declines.
    pub save_in: Option<PathBuf>,
}

/// The offers waiting for the person, one asked at a time, in the order they came.
#[derive(Debug)]
pub struct Questions<V> {
    open: Option<Question<V>>,
    queue: VecDeque<Question<V>>,
    default_dir: PathBuf,
}

impl<V: Copy + PartialEq> Questions<V> {
    pub fn new(default_dir: PathBuf) -> Self {
        Self {
            open: None,
            queue: VecDeque::new(),
            default_dir,
        }
    }

    /// Where files go unless the person chooses another folder.
    pub fn default_dir(&self) -> &Path {
        &self.default_dir
    }

    /// The question open now.
    pub fn open(&self) -> Option<&Question<V>> {
        self.open.as_ref()
    }

    /// Puts an offer to the person; `true` when it is the one asked now (else it waits).
    pub fn ask(&mut self, question: Question<V>) -> bool {
        if self.open.is_some() {
            self.queue.push_back(question);
            false
        } else {
            self.open = Some(question);
            true
        }
    }

    /// The person's answer about `offer` of `viewer`: the viewer and what to tell it; the next
    /// question waiting is open then. An answer to no open question does nothing.
    pub fn answer(
        &mut self,
        viewer: V,
        offer: u64,
        save_in: Option<PathBuf>,
    ) -> Option<(V, Command)> {
        let open = self.open.as_ref()?;
        if open.viewer != viewer || open.offer.id != offer {
            return None;
        }
        let q = self.open.take().expect("checked");
        let command = match save_in {
            Some(dir) => Command::Accept {
                offer,
                dir,
                by: AcceptedBy::Person,
            },
            None => Command::Decline {
                offer,
                reason: "the user declined".into(),
            },
        };
        self.open = self.queue.pop_front();
        Some((q.viewer, command))
    }

    /// A line typed while a question is open: `y` saves in the default folder, `y FOLDER` in
    /// that one, `n` declines. `None` for a line that answers nothing.
    pub fn line(&mut self, line: &str) -> Option<(V, Command)> {
        let open = self.open.as_ref()?;
        let (viewer, offer) = (open.viewer, open.offer.id);
        let line = line.trim();
        let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let save_in = match word.to_ascii_lowercase().as_str() {
            "y" | "yes" if rest.trim().is_empty() => Some(self.default_dir.clone()),
            "y" | "yes" => Some(PathBuf::from(rest.trim())),
            "n" | "no" => None,
            _ => return None,
        };
        self.answer(viewer, offer, save_in)
    }

    /// A viewer left: its questions go. `true` when the open question changed.
    pub fn viewer_left(&mut self, viewer: V) -> bool {
        self.queue.retain(|q| q.viewer != viewer);
        if self.open.as_ref().is_some_and(|q| q.viewer == viewer) {
            self.open = self.queue.pop_front();
            return true;
        }
        false
    }
}

/// Whether a line typed during the session asks to stop the files moving (`s`, `stop`).
pub fn parse_stop(line: &str) -> bool {
    matches!(line.trim().to_ascii_lowercase().as_str(), "s" | "stop")
}

/// The terminal's question about an offer.
pub fn question_words<V>(q: &Question<V>, default_dir: &Path) -> String {
    let count = q.offer.files.len();
    let what = if count == 1 {
        format!(
            "{} ({})",
            shown(&q.offer.summary()),
            bytes_words(q.offer.total)
        )
    } else {
        format!(
            "{} ({count} files, {})",
            shown(&q.offer.summary()),
            bytes_words(q.offer.total)
        )
    };
    format!(
        "{} wants to send you {what}.\nSave it in {}? Type y and Enter to save it there, y FOLDER \
         to save it in another folder, n to decline.",
        crate::shown::name(&q.who),
        default_dir.display()
    )
}

/// A sanitised name as the terminal shows it (it is plain already; this keeps it short).
fn shown(name: &str) -> std::borrow::Cow<'_, str> {
    crate::shown::name(name)
}

/// What the window shows of files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// The offer put to the person now, or none (`None`).
    Question(Option<OfferShown>),
    /// How a file goes.
    Transfer(TransferShown),
    /// A technician looked into a folder of this machine: who, and which folder.
    Browsed { who: String, path: String },
    /// A technician's connection is gone: its files moving stop there (they resume when it
    /// sends or fetches them again).
    Gone { viewer: u32 },
    /// The files of offer `offer` of viewer `viewer` were stopped (`by_person`: from here).
    Cancelled {
        viewer: u32,
        offer: u64,
        by_person: bool,
    },
}

/// An offer as the window asks about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferShown {
    pub viewer: u32,
    pub offer: u64,
    /// Who sends it (the account name, made printable).
    pub who: String,
    /// The file's name, the folder's, or how many files.
    pub summary: String,
    pub count: usize,
    pub total: u64,
    /// Where it goes unless the person chooses another folder.
    pub default_dir: PathBuf,
}

/// A file moving, as the window shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferShown {
    /// Whose viewer and which file: the same row as it goes.
    pub key: (u32, u64),
    /// The offer the file belongs to: what a cancel stops.
    pub offer: u64,
    pub name: String,
    /// To this machine (`true`) or from it.
    pub incoming: bool,
    /// The technician on the other end.
    pub who: String,
    pub done: u64,
    pub size: u64,
    /// Bytes a second.
    pub rate: u64,
    pub eta_secs: Option<u64>,
    pub state: TransferState,
}

/// Where a file stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferState {
    Going,
    /// Arrived and checked; where it is (or the name it got at the other end).
    Done(String),
    Failed(String),
    /// Stopped before it arrived: by this machine's person (`true`) or the technician; what
    /// arrived is kept, and it continues from there when the same file comes again.
    Cancelled {
        by_person: bool,
    },
    /// The technician's connection was lost; it continues from there next time.
    Interrupted,
}

impl OfferShown {
    pub fn new(viewer: u32, who: &str, offer: &IncomingOffer, default_dir: &Path) -> Self {
        Self {
            viewer,
            offer: offer.id,
            who: crate::shown::fit(who, 64),
            summary: crate::shown::fit(&offer.summary(), 80),
            count: offer.files.len(),
            total: offer.total,
            default_dir: default_dir.to_path_buf(),
        }
    }
}

/// Tells the terminal (or scripts) and the window what happened to files of `who`'s viewer.
pub fn tell(
    report: link::report::Reporter,
    status: &crate::status::StatusTx,
    viewer: u32,
    who: &str,
    news: &FileNews,
) {
    use link::files::{progress_words, Direction};
    use serde_json::json;
    let (event, mut fields) = news.event();
    fields["technician"] = json!(who);
    let who_shown = crate::shown::name(who);
    let row =
        |file: &link::files::FileInfo, direction: Direction, state: TransferState| TransferShown {
            key: (viewer, file.id),
            offer: file.offer,
            name: crate::shown::fit(&file.name, 80),
            incoming: direction == Direction::Receiving,
            who: crate::shown::fit(who, 64),
            done: file.size,
            size: file.size,
            rate: 0,
            eta_secs: None,
            state,
        };
    let words = match news {
        // Put to the person when its turn comes ([`question_words`]).
        FileNews::Offered { .. } => String::new(),
        FileNews::FetchAsked { path, .. } => {
            format!(
                "{who_shown} asks for {} from this machine.",
                crate::shown::reason(path)
            )
        }
        FileNews::Offering { files, total, .. } => format!(
            "Sending {} ({}) to {who_shown}, as they asked.",
            crate::shown::reason(&link::files::summary_of(files)),
            bytes_words(*total)
        ),
        FileNews::OfferFailed { reason, .. } => {
            format!("Files could not be sent to {who_shown}: {reason}.")
        }
        FileNews::Accepted {
            resumed,
            dir,
            ours: false,
            ..
        } => {
            let dir = dir
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_default();
            if *resumed > 0 {
                format!(
                    "Saving the files from {who_shown} in {dir} ({} arrived before; the rest follows).",
                    bytes_words(*resumed)
                )
            } else {
                format!("Saving the files from {who_shown} in {dir}.")
            }
        }
        FileNews::Accepted { .. } => String::new(),
        FileNews::Declined {
            reason,
            ours: false,
            ..
        } => format!("Declined the files from {who_shown}: {reason}."),
        FileNews::Declined { reason, .. } => {
            format!("{who_shown} declined the files: {reason}.")
        }
        FileNews::FetchRefused { reason, .. } => format!("A fetch was refused: {reason}."),
        FileNews::ListAsked { .. } | FileNews::Listed { .. } => String::new(),
        FileNews::ListServed { listing, .. } => {
            status.send(crate::status::Status::Files(FileStatus::Browsed {
                who: crate::shown::fit(who, 64),
                path: crate::shown::fit(&listing.path, 200),
            }));
            format!(
                "{who_shown} looks into your folder {} ({} entries shown).",
                crate::shown::reason(&listing.path),
                listing.entries.len()
            )
        }
        FileNews::Started {
            file,
            direction,
            from,
        } => {
            let mut r = row(file, *direction, TransferState::Going);
            r.done = *from;
            status.send(crate::status::Status::Files(FileStatus::Transfer(r)));
            String::new()
        }
        FileNews::Progress {
            file,
            direction,
            done,
            rate,
            eta_secs,
        } => {
            let mut r = row(file, *direction, TransferState::Going);
            r.done = *done;
            r.rate = *rate as u64;
            r.eta_secs = *eta_secs;
            status.send(crate::status::Status::Files(FileStatus::Transfer(r)));
            progress_words(
                &crate::shown::reason(&file.name),
                *done,
                file.size,
                *rate,
                *eta_secs,
            )
        }
        FileNews::Done {
            file,
            direction,
            stored_as,
            path,
            ..
        } => {
            let place = path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| stored_as.clone());
            status.send(crate::status::Status::Files(FileStatus::Transfer(row(
                file,
                *direction,
                TransferState::Done(place.clone()),
            ))));
            match direction {
                Direction::Receiving => format!(
                    "Received {} from {who_shown} ({}, SHA-256 checked): {place}",
                    crate::shown::reason(&file.name),
                    bytes_words(file.size)
                ),
                Direction::Sending => format!(
                    "{who_shown} received {} ({}, SHA-256 checked).",
                    crate::shown::reason(&file.name),
                    bytes_words(file.size)
                ),
            }
        }
        FileNews::Failed {
            file,
            direction,
            reason,
        } => {
            status.send(crate::status::Status::Files(FileStatus::Transfer(row(
                file,
                *direction,
                TransferState::Failed(crate::shown::fit(reason, 120)),
            ))));
            format!(
                "{} did not arrive: {}.",
                crate::shown::reason(&file.name),
                crate::shown::reason(reason)
            )
        }
        FileNews::Cancelled {
            offer,
            reason,
            by_other_end,
        } => {
            status.send(crate::status::Status::Files(FileStatus::Cancelled {
                viewer,
                offer: *offer,
                by_person: !by_other_end,
            }));
            format!(
                "Files were stopped: {}. What arrived is kept; it continues from there when they \
                 are sent again.",
                crate::shown::reason(reason)
            )
        }
    };
    report.event(event, fields, words);
}

/// Tells the terminal and the window that `q` is asked now (or, with `None`, that no offer is).
pub fn put(
    report: link::report::Reporter,
    status: &crate::status::StatusTx,
    q: Option<&Question<u32>>,
    default_dir: &Path,
) {
    let shown = q.map(|q| OfferShown::new(q.viewer, &q.who, &q.offer, default_dir));
    status.send(crate::status::Status::Files(FileStatus::Question(shown)));
    if let Some(q) = q {
        report.event(
            "files_question",
            serde_json::json!({ "offer": q.offer.id, "technician": q.who,
                                "dir": default_dir.display().to_string() }),
            question_words(q, default_dir),
        );
    }
}

/// Tells the terminal what the viewer answered of itself (an observer's offer declined, a fetch
/// refused or served).
pub fn tell_decision(report: link::report::Reporter, who: &str, decision: &Decision) {
    let who = crate::shown::name(who);
    match decision {
        Decision::Answer(Command::RefuseFetch { request, reason }) => report.event(
            "fetch_refused",
            serde_json::json!({ "request": request, "technician": who, "message": reason }),
            format!("Refused: {reason}."),
        ),
        Decision::Answer(Command::Serve { path, .. }) => report.event(
            "fetch_allowed",
            serde_json::json!({ "path": path.display().to_string(), "technician": who }),
            format!("{who} fetches {} (you allow it).", path.display()),
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::transfer::IncomingFile;

    fn offer(id: u64) -> IncomingOffer {
        IncomingOffer {
            id,
            fetch: None,
            total: 5,
            files: vec![IncomingFile {
                id,
                path: vec!["report.pdf".into()],
                size: 5,
                sha256: [0; 32],
            }],
        }
    }

    fn opts(accept: Option<&str>, allow_fetch: bool) -> FileOptions {
        FileOptions {
            accept_dir: accept.map(PathBuf::from),
            allow_fetch,
            default_dir: PathBuf::from("/home/u/Downloads"),
            browse: Arc::default(),
        }
    }

    #[test]
    fn folders_are_listed_only_while_the_person_allows_browsing_and_for_the_one_in_control() {
        let list = FileNews::ListAsked {
            request: 4,
            path: "~/Documents".into(),
        };
        let fetch = FileNews::FetchAsked {
            request: 5,
            path: "~/Documents/a.txt".into(),
        };
        let o = opts(None, false);
        let refused = |reason: &str| {
            Decision::Answer(Command::RefuseFetch {
                request: 4,
                reason: reason.into(),
            })
        };
        assert_eq!(
            decide(&list, true, &o, &AcceptedFiles::default()),
            refused(BROWSE_NOT_ALLOWED)
        );
        o.browse.store(true, Ordering::Relaxed);
        assert_eq!(
            decide(&list, false, &o, &AcceptedFiles::default()),
            refused(NOT_IN_CONTROL)
        );
        assert_eq!(
            decide(&list, true, &o, &AcceptedFiles::default()),
            Decision::Answer(Command::ServeList {
                request: 4,
                path: PathBuf::from("~/Documents")
            })
        );
        // Browsing allows fetching what was found.
        assert!(matches!(
            decide(&fetch, true, &o, &AcceptedFiles::default()),
            Decision::Answer(Command::Serve { request: 5, .. })
        ));
        o.browse.store(false, Ordering::Relaxed);
        assert!(matches!(
            decide(&fetch, true, &o, &AcceptedFiles::default()),
            Decision::Answer(Command::RefuseFetch { request: 5, .. })
        ));
    }

    #[test]
    fn only_the_technician_in_control_moves_files() {
        let offered = FileNews::Offered {
            offer: offer(1),
            fetched: None,
        };
        let fetch = FileNews::FetchAsked {
            request: 3,
            path: "/var/log/syslog".into(),
        };
        assert_eq!(
            decide(
                &offered,
                false,
                &opts(Some("/srv/in"), true),
                &AcceptedFiles::default()
            ),
            Decision::Answer(Command::Decline {
                offer: 1,
                reason: NOT_IN_CONTROL.into()
            })
        );
        assert_eq!(
            decide(&fetch, false, &opts(None, true), &AcceptedFiles::default()),
            Decision::Answer(Command::RefuseFetch {
                request: 3,
                reason: NOT_IN_CONTROL.into()
            })
        );
        // In control: asked, or accepted into the folder given in advance.
        assert_eq!(
            decide(
                &offered,
                true,
                &opts(None, false),
                &AcceptedFiles::default()
            ),
            Decision::Ask(offer(1))
        );
        assert_eq!(
            decide(
                &offered,
                true,
                &opts(Some("/srv/in"), false),
                &AcceptedFiles::default()
            ),
            Decision::Answer(Command::Accept {
                offer: 1,
                dir: PathBuf::from("/srv/in"),
                by: AcceptedBy::Unattended
            })
        );
        // Fetches only where the person allows them.
        assert_eq!(
            decide(&fetch, true, &opts(None, false), &AcceptedFiles::default()),
            Decision::Answer(Command::RefuseFetch {
                request: 3,
                reason: FETCH_NOT_ALLOWED.into()
            })
        );
        assert_eq!(
            decide(&fetch, true, &opts(None, true), &AcceptedFiles::default()),
            Decision::Answer(Command::Serve {
                request: 3,
                path: PathBuf::from("/var/log/syslog")
            })
        );
    }

    fn question(viewer: u32, id: u64) -> Question<u32> {
        Question {
            viewer,
            who: "alice".into(),
            offer: offer(id),
        }
    }

    #[test]
    fn offers_are_asked_one_at_a_time_and_answered_by_line() {
        let mut q = Questions::new(PathBuf::from("/home/u/Downloads"));
        assert!(q.ask(question(0, 1)));
        assert!(!q.ask(question(1, 7)), "waits behind the first");
        assert!(q.line("maybe").is_none());
        let (viewer, command) = q.line("y").unwrap();
        assert_eq!(viewer, 0);
        assert_eq!(
            command,
            Command::Accept {
                offer: 1,
                dir: PathBuf::from("/home/u/Downloads"),
                by: AcceptedBy::Person
            }
        );
        assert_eq!(q.open().map(|n| n.offer.id), Some(7));
        let (_, command) = q.line("y /tmp/elsewhere").unwrap();
        assert_eq!(
            command,
            Command::Accept {
                offer: 7,
                dir: PathBuf::from("/tmp/elsewhere"),
                by: AcceptedBy::Person
            }
        );
        assert!(q.open().is_none());
        assert!(q.line("n").is_none(), "nothing is open");
        q.ask(question(2, 9));
        let (_, command) = q.line("N").unwrap();
        assert!(matches!(command, Command::Decline { offer: 9, .. }));
    }

    #[test]
    fn a_window_answer_must_name_the_open_offer_and_a_leaving_technician_takes_theirs() {
        let mut q = Questions::new(PathBuf::from("/d"));
        q.ask(question(0, 1));
        q.ask(question(1, 2));
        q.ask(question(0, 3));
        assert!(q.answer(1, 2, None).is_none(), "not the open one");
        assert!(q.viewer_left(0));
        assert_eq!(q.open().map(|n| n.offer.id), Some(2));
        let (viewer, command) = q.answer(1, 2, None).unwrap();
        assert_eq!(viewer, 1);
        assert!(matches!(command, Command::Decline { offer: 2, .. }));
        assert!(q.open().is_none(), "viewer 0's other offer went with it");
    }

    #[test]
    fn the_question_says_who_what_and_where() {
        let words = question_words(&question(0, 1), Path::new("/home/u/Downloads"));
        assert!(
            words.starts_with("alice wants to send you report.pdf (5 B)."),
            "{words}"
        );
        assert!(words.contains("Save it in /home/u/Downloads?"), "{words}");
    }

    #[test]
    fn an_offer_of_files_the_person_accepted_goes_on_into_the_same_folder_unasked() {
        let mut accepted = AcceptedFiles::default();
        assert_eq!(accepted.again(&offer(1)), None, "nothing accepted yet");
        accepted.accepted(&offer(1), Path::new("/home/u/Desktop"));
        // The same file offered again (after a resumed link) is accepted where it went.
        assert_eq!(
            accepted.again(&offer(2)),
            Some(Command::Accept {
                offer: 2,
                dir: PathBuf::from("/home/u/Desktop"),
                by: AcceptedBy::Person,
            })
        );
        // Another content under the same name, or one more file, is asked about.
        let mut changed = offer(3);
        changed.files[0].sha256 = [1; 32];
        assert_eq!(accepted.again(&changed), None);
        let mut more = offer(4);
        more.files.push(IncomingFile {
            id: 9,
            path: vec!["notes.txt".into()],
            size: 5,
            sha256: [0; 32],
        });
        assert_eq!(accepted.again(&more), None);
    }
}
