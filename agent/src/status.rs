//! What the agent tells the person's window as it goes: connecting, the code, who asks, what
//! is shared, how it ended.
//!
//! The session and the code's life run on the network thread and send [`Status`] values
//! through a [`StatusTx`]; the window's model takes them in on its own thread. A terminal-only
//! agent has a `StatusTx` that goes nowhere ([`StatusTx::none`]). There are a handful of these
//! per session, so the channel needs no bound; after each, the window is woken (the waker is
//! set once the window exists).
//!
//! A `StatusTx` also remembers whether the screen was shared at all ([`StatusTx::has_shared`]),
//! in any session of the run: the desk's survey asks how well the person was helped, which
//! only means something once a technician saw the screen.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use protocol::control::{Joining, PeerInfo};

/// Why a session, or the wait for one, ended; the window says it in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndedWhy {
    /// The person ended it.
    UserEnded,
    /// The person said no.
    Denied,
    /// The person did not answer in time.
    TimedOut,
    /// The technician ended it.
    TechnicianEnded,
    /// The technician's side went away, for this reason.
    TechnicianLeft(String),
    /// The shared screen has nothing more to show (a recording played to its end).
    SourceFinished,
    /// The session stopped on an error, in these words.
    Error(String),
    /// The person cancelled before anyone connected.
    Cancelled,
    /// The technician entered another code: nothing was shared.
    CodeMismatch,
    /// The agent could not go on (no relay, no code), in these words.
    Failed(String),
    /// The desk closed the help request; `thanked`: the person answered its survey.
    RequestClosed { thanked: bool },
}

/// One step of the agent's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Reaching the relay.
    Connecting { relay: String },
    /// The code to read out (`123 456 789 - 4821`, and as copied: `123456789-4821`), valid
    /// until `expires_at`.
    Code {
        shown: String,
        copied: String,
        expires_at: Instant,
    },
    /// A help request waits in the relay's queue, at this place (1: next).
    Queued {
        request: u64,
        position: u32,
        /// How long it may wait yet, in seconds (`None`: not known).
        expected_wait_secs: Option<u32>,
    },
    /// A technician asks; the person has until `deadline`.
    Asking {
        peer: PeerInfo,
        recorded: bool,
        /// The six digits to compare with the technician (`042 917`), for a session from the
        /// queue; a code session needs none.
        verification: Option<String>,
        /// Why they join a session already running (`None`: the first technician).
        joining: Option<Joining>,
        timeout: Duration,
        deadline: Instant,
    },
    /// The person answered; the session is starting.
    Answered,
    /// The screen is shared; `peer` holds control (or leads the session, view only), and the
    /// `others` (account names) watch too.
    Sharing {
        peer: PeerInfo,
        control: bool,
        others: Vec<String>,
    },
    /// Control was taken away; view only from now on.
    ControlStopped,
    /// A chat message of the session (the person's own too, wherever they wrote it).
    Chat(crate::chat::ChatLine),
    /// Whether the clipboard can be shared with the technician holding control (this display's
    /// selections are watched); the window offers its switch only then.
    ClipboardShared(bool),
    /// Whether technicians may look through this machine's folders now (the window's switch).
    BrowseAllowed(bool),
    /// What is heard of the session's connections now.
    Heard(Heard),
    /// The desk closed help request `request`: how well was the person helped?
    Survey { request: u64 },
    /// Files offered to the person, and how files move.
    Files(crate::files::FileStatus),
    /// It is over.
    Ended(EndedWhy),
    /// Interrupted from the terminal (Ctrl+C): the window closes too, so that the program
    /// ends as a terminal user expects.
    Interrupted,
}

/// What is heard of the session's connections, for the bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Heard {
    /// Every connection is heard.
    #[default]
    Fine,
    /// A technician's connection fell silent; the session waits for it.
    TechnicianQuiet,
    /// This machine's own connection to the relay was lost; the session is being resumed.
    Reconnecting,
    /// The session was resumed after a lost connection (the window says so until the next
    /// change; the session itself only sends the other three).
    Reconnected,
}

type Waker = Box<dyn Fn() + Send + Sync>;

/// Where the agent sends its [`Status`]. Clones share the channel.
#[derive(Clone)]
pub struct StatusTx {
    tx: Option<mpsc::Sender<Status>>,
    waker: Arc<OnceLock<Waker>>,
    shared: Arc<AtomicBool>,
}

impl std::fmt::Debug for StatusTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusTx")
            .field("window", &self.tx.is_some())
            .finish()
    }
}

impl StatusTx {
    /// Status for nobody: the terminal prints its own.
    pub fn none() -> StatusTx {
        StatusTx {
            tx: None,
            waker: Arc::new(OnceLock::new()),
            shared: Arc::default(),
        }
    }

    /// A channel to a window.
    pub fn channel() -> (StatusTx, mpsc::Receiver<Status>) {
        let (tx, rx) = mpsc::channel();
        let s = StatusTx {
            tx: Some(tx),
            waker: Arc::new(OnceLock::new()),
            shared: Arc::default(),
        };
        (s, rx)
    }

    /// What wakes the window after each status (set once; later calls are ignored).
    pub fn set_waker(&self, wake: impl Fn() + Send + Sync + 'static) {
        if self.waker.set(Box::new(wake)).is_ok() {
            // Something may have been sent before the window existed.
            self.wake();
        }
    }

    fn wake(&self) {
        if let Some(w) = self.waker.get() {
            w();
        }
    }

    /// Tells the window; whether a window took it in (none for the terminal, or once the
    /// window has closed or failed to open).
    pub fn send(&self, status: Status) -> bool {
        if matches!(status, Status::Sharing { .. }) {
            self.shared.store(true, Ordering::SeqCst);
        }
        let Some(tx) = &self.tx else {
            return false;
        };
        // A window that has closed no longer listens; that is fine.
        let listened = tx.send(status).is_ok();
        self.wake();
        listened
    }

    /// Whether the screen has been shared with a technician since this channel was made.
    pub fn has_shared(&self) -> bool {
        self.shared.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_remembers_a_shared_screen_and_says_whether_a_window_listens() {
        let peer = PeerInfo {
            role: protocol::control::Role::Technician,
            description: "technician at 10.0.0.7:5000".into(),
            software: "technician 0.1.0".into(),
            account: None,
        };
        let terminal = StatusTx::none();
        assert!(!terminal.send(Status::Answered));
        assert!(!terminal.has_shared());
        terminal.clone().send(Status::Sharing {
            peer: peer.clone(),
            control: false,
            others: vec![],
        });
        assert!(terminal.has_shared());

        let (window, rx) = StatusTx::channel();
        assert!(window.send(Status::Survey { request: 7 }));
        assert!(!window.has_shared());
        drop(rx);
        assert!(!window.send(Status::Survey { request: 7 }));
    }
}
