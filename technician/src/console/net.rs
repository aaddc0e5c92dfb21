//! The console's network worker: a tokio runtime on a thread of its own that logs in, follows
//! the desk (the queue, offers from routing, the leads' dashboard; presence and declines go the
//! other way), runs the session through [`crate::join`] (the same code as `technician
//! connect`, the window's steps of the help request included) and tells the window what
//! happened as [`Event`]s. The window never waits on the network.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use link::client::{DeskNews, FirstUse, Trusted};
use link::known::KnownRelays;
use link::report::Reporter;
use link::{Fingerprint, LinkError, RelayConnection};
use protocol::control::{ErrorCode, Role};
use protocol::e2e::UserCode;
use protocol::input::InputEvent;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::warn;

use super::model::{ClipboardNote, Dashboard, Event, Quality};
use super::now_unix_ms;
use super::present::Presenter;
use crate::desk::DeskAction;
use crate::join::{self, JoinEvent, JoinOptions, Joining, Live, RelayTarget};
use crate::session::{ControlStep, SessionEvent, ToolAction};
use crate::viewer::{self, Viewer};

/// The presenter, once the window exists; the session's frame hook draws through it.
pub type SharedPresenter = Arc<Mutex<Option<Presenter>>>;

/// Where the worker finds what it needs.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The fingerprint given with `--fingerprint`, for the relay given with `--relay`.
    pub pinned: Option<(String, Fingerprint)>,
    pub known_relays: PathBuf,
    pub tokens: PathBuf,
    pub log_dir: Option<PathBuf>,
    pub report: Reporter,
}

impl NetConfig {
    pub fn target(&self, relay: &str) -> RelayTarget {
        RelayTarget {
            relay: relay.to_string(),
            fingerprint: self
                .pinned
                .as_ref()
                .filter(|(r, _)| link::known::key(r) == link::known::key(relay))
                .map(|(_, f)| *f),
            known_relays: self.known_relays.clone(),
            tokens: self.tokens.clone(),
        }
    }
}

/// What the window asks of the worker.
pub enum Request {
    Connect {
        relay: String,
        user: String,
        password: String,
        one_time: Option<String>,
    },
    Trust {
        fingerprint: String,
    },
    Refuse,
    Join {
        relay: String,
        code: String,
        input: mpsc::Receiver<InputEvent>,
        tools: mpsc::Receiver<ToolAction>,
        control: mpsc::Receiver<ControlStep>,
    },
    /// Take a help request (`None`: the oldest) and run its session; `desk` brings the
    /// window's steps of the request (escalate, hold, close).
    Take {
        relay: String,
        request: Option<u64>,
        input: mpsc::Receiver<InputEvent>,
        tools: mpsc::Receiver<ToolAction>,
        control: mpsc::Receiver<ControlStep>,
        desk: mpsc::Receiver<DeskAction>,
    },
    /// Watch a live session as a lead and run it like a join.
    Monitor {
        relay: String,
        session: String,
        input: mpsc::Receiver<InputEvent>,
        tools: mpsc::Receiver<ToolAction>,
        control: mpsc::Receiver<ControlStep>,
    },
    /// Follow the queue with the kept login of `relay` (replacing an earlier watch).
    WatchQueue {
        relay: String,
    },
    /// Tell the desk this technician is away or available (kept for the next watch too).
    SetPresence {
        away: bool,
    },
    /// Say no to the request routing offered.
    Decline {
        request: u64,
    },
    End,
    Snapshot(PathBuf),
    LogOut {
        relay: String,
    },
    /// End the session (if any), then close the window (SIGINT, SIGTERM).
    Quit,
}

/// The window's handle on the worker.
pub struct Net {
    requests: mpsc::UnboundedSender<Request>,
    events: std::sync::mpsc::Receiver<Event>,
}

impl Net {
    /// Starts the worker. `wake` asks the window to draw a frame (an event is waiting).
    pub fn start(
        config: NetConfig,
        viewer: Arc<Mutex<Viewer>>,
        presenter: SharedPresenter,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Self> {
        let (req_tx, req_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("console-net")
            .build()?;
        let signals = req_tx.clone();
        std::thread::Builder::new()
            .name("console-net".into())
            .spawn(move || {
                let out = Outbox { tx: ev_tx, wake };
                runtime.block_on(async move {
                    tokio::spawn(async move {
                        use tokio::signal::unix::{signal, SignalKind};
                        let Ok(mut term) = signal(SignalKind::terminate()) else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                        let _ = signals.send(Request::Quit);
                    });
                    worker(config, viewer, presenter, req_rx, out).await
                });
            })?;
        Ok(Self {
            requests: req_tx,
            events: ev_rx,
        })
    }

    /// A handle whose worker is the caller, who receives the window's requests and sends the
    /// network's events through the [`WorkerEnds`] (tests play the network this way).
    pub fn without_worker() -> (Self, WorkerEnds) {
        let (req_tx, req_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = std::sync::mpsc::channel();
        (
            Self {
                requests: req_tx,
                events: ev_rx,
            },
            WorkerEnds {
                requests: req_rx,
                events: ev_tx,
            },
        )
    }

    pub fn send(&self, request: Request) {
        let _ = self.requests.send(request);
    }

    /// The next event, waiting up to `limit` for one.
    pub fn next_event(&self, limit: Duration) -> Option<Event> {
        self.events.recv_timeout(limit).ok()
    }

    /// The events that arrived since the last call.
    pub fn drain(&self) -> impl Iterator<Item = Event> + '_ {
        self.events.try_iter()
    }

    /// Waits up to `limit` for the running session to end (the window is closing).
    pub fn wait_session_end(&self, limit: Duration) {
        let until = std::time::Instant::now() + limit;
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(Event::SessionEnded { .. } | Event::JoinFailed(_)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// The worker's side of a [`Net`] made by [`Net::without_worker`].
pub struct WorkerEnds {
    pub requests: mpsc::UnboundedReceiver<Request>,
    pub events: std::sync::mpsc::Sender<Event>,
}

#[derive(Clone)]
struct Outbox {
    tx: std::sync::mpsc::Sender<Event>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

impl Outbox {
    fn send(&self, e: Event) {
        let _ = self.tx.send(e);
        (self.wake)();
    }
}

/// A login waiting for the person to accept the relay's fingerprint.
struct Pending {
    conn: RelayConnection,
    relay: String,
    user: String,
    password: String,
    one_time: Option<String>,
    fingerprint: Fingerprint,
}

/// Words for a refused login or join.
fn words(e: &anyhow::Error) -> String {
    if let Some(LinkError::Refused { code, message }) = e.downcast_ref::<LinkError>() {
        let said = match code {
            ErrorCode::BadCredentials => {
                "The name, the password or the one-time code is wrong. After a few failures the relay makes you wait before the next try."
            }
            ErrorCode::SecondFactorRequired => {
                "This account logs in with a one-time code too: enter the six digits your authenticator app shows, and log in again."
            }
            ErrorCode::AccountDisabled => {
                "This account is disabled. Ask an administrator of the relay to enable it."
            }
            ErrorCode::RateLimited { .. } => {
                "Too many attempts: the relay asks you to wait before trying again."
            }
            ErrorCode::UnknownCode => {
                "The relay knows no session with this code. Ask the user to read it again."
            }
            ErrorCode::ExpiredCode => {
                "This code has expired. Ask the user to start the agent again for a new one."
            }
            ErrorCode::UsedCode => {
                "This code was used already. Ask the user to start the agent again for a new one."
            }
            _ => "",
        };
        if !said.is_empty() {
            return format!("{said} ({message})");
        }
    }
    join::explain(e)
}

async fn log_in(
    out: &Outbox,
    mut conn: RelayConnection,
    target: &RelayTarget,
    user: &str,
    password: &str,
    one_time: Option<&str>,
) {
    match join::log_in(&mut conn, target, user, password, one_time).await {
        Ok((account, _)) => {
            conn.close_and_wait("logged in").await;
            out.send(Event::LoggedIn {
                account: account.to_string(),
            });
        }
        Err(e) => {
            conn.close("login refused");
            out.send(Event::LoginFailed(words(&e)));
        }
    }
}

async fn worker(
    config: NetConfig,
    viewer: Arc<Mutex<Viewer>>,
    presenter: SharedPresenter,
    mut requests: mpsc::UnboundedReceiver<Request>,
    out: Outbox,
) {
    let mut pending: Option<Pending> = None;
    let mut end: Option<oneshot::Sender<()>> = None;
    let mut watching: Option<tokio::task::JoinHandle<()>> = None;
    // What the watch tells the relay: whether this technician is away, the offers declined.
    let (presence, _) = watch::channel(false);
    let mut declines: Option<mpsc::UnboundedSender<u64>> = None;
    // Set on SIGINT or SIGTERM: the window closes once the session has ended.
    let quitting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(false));
    while let Some(req) = requests.recv().await {
        match req {
            Request::Connect {
                relay,
                user,
                password,
                one_time,
            } => {
                let target = config.target(&relay);
                let connected = RelayConnection::connect_trusting_with(
                    &relay,
                    target.fingerprint,
                    &target.known_relays,
                    Role::Technician,
                    FirstUse::Confirm,
                )
                .await;
                match connected {
                    Ok((conn, Trusted::FirstUse(fingerprint))) => {
                        out.send(Event::FirstContact {
                            fingerprint: fingerprint.to_string(),
                        });
                        pending = Some(Pending {
                            conn,
                            relay,
                            user,
                            password,
                            one_time,
                            fingerprint,
                        });
                    }
                    Ok((conn, _)) => {
                        log_in(&out, conn, &target, &user, &password, one_time.as_deref()).await
                    }
                    Err(e) => out.send(Event::LoginFailed(words(&e.into()))),
                }
            }
            Request::Trust { fingerprint } => {
                let Some(p) = pending.take() else { continue };
                if p.fingerprint.to_string() != fingerprint {
                    out.send(Event::LoginFailed(
                        "The fingerprint accepted is not the one the relay showed.".into(),
                    ));
                    continue;
                }
                let target = config.target(&p.relay);
                let remembered = KnownRelays::load(&target.known_relays)
                    .and_then(|mut k| k.remember(&p.relay, p.fingerprint));
                if let Err(e) = remembered {
                    out.send(Event::LoginFailed(format!(
                        "The relay's fingerprint could not be remembered: {e}"
                    )));
                    continue;
                }
                log_in(
                    &out,
                    p.conn,
                    &target,
                    &p.user,
                    &p.password,
                    p.one_time.as_deref(),
                )
                .await;
            }
            Request::Refuse => {
                if let Some(p) = pending.take() {
                    p.conn.close("the relay's fingerprint was refused");
                }
            }
            Request::WatchQueue { relay } => {
                if let Some(old) = watching.take() {
                    old.abort();
                }
                let target = config.target(&relay);
                let (tx, rx) = mpsc::unbounded_channel();
                declines = Some(tx);
                watching = Some(tokio::spawn(watch_queue(
                    target,
                    out.clone(),
                    presence.subscribe(),
                    rx,
                )));
            }
            Request::SetPresence { away } => {
                presence.send_replace(away);
            }
            Request::Decline { request } => {
                if let Some(tx) = &declines {
                    let _ = tx.send(request);
                }
            }
            req @ (Request::Join { .. } | Request::Take { .. } | Request::Monitor { .. }) => {
                let (relay, joining, input, tools, control, desk) = match req {
                    Request::Join {
                        relay,
                        code,
                        input,
                        tools,
                        control,
                    } => match UserCode::parse(&code) {
                        Ok(c) => (relay, Joining::Code(c), input, tools, control, None),
                        Err(e) => {
                            out.send(Event::JoinFailed(e.to_string()));
                            continue;
                        }
                    },
                    Request::Take {
                        relay,
                        request,
                        input,
                        tools,
                        control,
                        desk,
                    } => (
                        relay,
                        Joining::Request(request),
                        input,
                        tools,
                        control,
                        Some(desk),
                    ),
                    Request::Monitor {
                        relay,
                        session,
                        input,
                        tools,
                        control,
                    } => (
                        relay,
                        Joining::Monitor(session),
                        input,
                        tools,
                        control,
                        None,
                    ),
                    _ => unreachable!("matched above"),
                };
                let (end_tx, end_rx) = oneshot::channel();
                end = Some(end_tx);
                let target = config.target(&relay);
                let opts = JoinOptions {
                    log_dir: config.log_dir.clone(),
                    clipboard: true,
                    ..JoinOptions::default()
                };
                let (out, viewer, presenter, report) = (
                    out.clone(),
                    viewer.clone(),
                    presenter.clone(),
                    config.report,
                );
                let (quitting, running) = (quitting.clone(), running.clone());
                running.store(true, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    run_session(
                        target,
                        joining,
                        opts,
                        SessionChannels {
                            input,
                            tools,
                            control,
                        },
                        desk,
                        viewer,
                        presenter,
                        end_rx,
                        report,
                        out.clone(),
                    )
                    .await;
                    running.store(false, std::sync::atomic::Ordering::SeqCst);
                    if quitting.load(std::sync::atomic::Ordering::SeqCst) {
                        out.send(Event::Quit);
                    }
                });
            }
            Request::End => {
                if let Some(tx) = end.take() {
                    let _ = tx.send(());
                }
            }
            Request::Snapshot(path) => {
                let v = viewer.lock().expect("viewer lock");
                let result = viewer::write_png(v.framebuffer(), &path).map(|()| path);
                out.send(Event::SnapshotDone(result));
            }
            Request::Quit => {
                quitting.store(true, std::sync::atomic::Ordering::SeqCst);
                match end.take() {
                    Some(tx) if running.load(std::sync::atomic::Ordering::SeqCst) => {
                        let _ = tx.send(());
                    }
                    _ => out.send(Event::Quit),
                }
            }
            Request::LogOut { relay } => {
                // A technician who logged out is offered nothing and counts as offline.
                if let Some(w) = watching.take() {
                    w.abort();
                }
                declines = None;
                presence.send_replace(false);
                let target = config.target(&relay);
                let stored = target.tokens().and_then(|mut t| t.remove(&relay));
                if let Ok(Some(login)) = stored {
                    if let Ok((mut conn, _)) = target.connect(Reporter::new(false)).await {
                        let _ = conn.logout(&login.token).await;
                        conn.close_and_wait("logged out").await;
                    }
                }
            }
        }
    }
}

/// Follows the desk with the kept login, telling the window each change of the queue, each
/// offer and each dashboard, and telling the relay this technician's presence (again on each
/// new connection) and the offers they decline; tries again every few seconds when the relay
/// cannot be reached.
async fn watch_queue(
    target: RelayTarget,
    out: Outbox,
    mut away: watch::Receiver<bool>,
    mut declines: mpsc::UnboundedReceiver<u64>,
) {
    loop {
        let watched: Result<(), String> = async {
            let stored = target.stored_login().map_err(|e| e.to_string())?;
            let (mut conn, _) = target
                .connect(Reporter::new(false))
                .await
                .map_err(|e| e.to_string())?;
            conn.resume(&stored.token)
                .await
                .map_err(|e| e.to_string())?;
            conn.watch_queue().await.map_err(|e| e.to_string())?;
            // Declines asked while no connection was up answer offers gone with it.
            while declines.try_recv().is_ok() {}
            // Told on each new connection: the relay may remember the last one's.
            let mut told = None;
            loop {
                let now_away = *away.borrow_and_update();
                if told != Some(now_away) {
                    conn.set_presence(now_away)
                        .await
                        .map_err(|e| e.to_string())?;
                    told = Some(now_away);
                }
                tokio::select! {
                    news = conn.next_desk() => out.send(match news.map_err(|e| e.to_string())? {
                        DeskNews::Queue { requests, more } => Event::Queue { requests, more },
                        DeskNews::Offer { request, expires_in_secs } => Event::Offer {
                            request: *request,
                            expires_in_secs,
                            now_unix_ms: now_unix_ms(),
                        },
                        DeskNews::Dashboard {
                            tiers,
                            technicians,
                            sessions,
                        } => {
                            Event::Dashboard(Dashboard {
                                tiers,
                                technicians,
                                sessions,
                            })
                        }
                    }),
                    changed = away.changed() => {
                        changed.map_err(|_| "the console is closing".to_string())?;
                    }
                    Some(request) = declines.recv() => {
                        conn.decline(request).await.map_err(|e| e.to_string())?;
                    }
                }
            }
        }
        .await;
        if let Err(e) = watched {
            tracing::debug!(error = %e, "the queue could not be followed; trying again");
        }
        if away.has_changed().is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// What a window sends into a running session: its live input, its tools (chat, monitor
/// switches) and its steps of control.
struct SessionChannels {
    input: mpsc::Receiver<InputEvent>,
    tools: mpsc::Receiver<ToolAction>,
    control: mpsc::Receiver<ControlStep>,
}

#[allow(clippy::too_many_arguments)]
async fn run_session(
    target: RelayTarget,
    joining: Joining,
    opts: JoinOptions,
    SessionChannels {
        input,
        tools,
        control,
    }: SessionChannels,
    desk: Option<mpsc::Receiver<DeskAction>>,
    viewer: Arc<Mutex<Viewer>>,
    presenter: SharedPresenter,
    end: oneshot::Receiver<()>,
    report: Reporter,
    out: Outbox,
) {
    *viewer.lock().expect("viewer lock") = Viewer::new();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<JoinEvent>();
    let forward = {
        let out = out.clone();
        tokio::spawn(async move {
            // An idle session's quality, unchanged, wakes the window only once.
            let mut shown: Option<(u32, u64)> = None;
            while let Some(e) = ev_rx.recv().await {
                if let JoinEvent::Session(SessionEvent::Quality {
                    rtt,
                    updates_per_sec,
                    ..
                }) = &e
                {
                    let now = (*updates_per_sec, rtt.as_millis() as u64);
                    let idle_as_shown = shown
                        .is_some_and(|(ups, ms)| ups == 0 && now.0 == 0 && ms.abs_diff(now.1) < 2);
                    if idle_as_shown {
                        continue;
                    }
                    shown = Some(now);
                }
                out.send(match e {
                    JoinEvent::Request(entry) => Event::RequestTaken(*entry),
                    JoinEvent::Session(SessionEvent::RequestPassed(words)) => {
                        Event::RequestPassed(words)
                    }
                    JoinEvent::Session(SessionEvent::RequestRefused(why)) => {
                        Event::RequestRefused(why)
                    }
                    JoinEvent::Session(SessionEvent::Participants(list)) => {
                        Event::Participants(list)
                    }
                    JoinEvent::Session(SessionEvent::Files(news)) => match file_row(&news) {
                        Some(row) => Event::File(row),
                        None => match files_note(&news) {
                            Some(note) => Event::FilesNote(note),
                            None => match news {
                                link::files::FileNews::Listed { listing, .. } => {
                                    Event::Listed(listing)
                                }
                                link::files::FileNews::Cancelled { offer, reason, .. } => {
                                    Event::FilesStopped { offer, why: reason }
                                }
                                _ => continue,
                            },
                        },
                    },
                    JoinEvent::Paired { account, peer } => Event::Paired { account, peer },
                    JoinEvent::Recording(path) => Event::Recording(path),
                    JoinEvent::Redirected { relay } => Event::Redirected(relay),
                    JoinEvent::Session(SessionEvent::Consent(state)) => Event::Consent(state),
                    JoinEvent::Session(SessionEvent::PeerQuiet(quiet)) => Event::PeerQuiet(quiet),
                    JoinEvent::Session(SessionEvent::RelayQuiet(quiet)) => Event::RelayQuiet(quiet),
                    JoinEvent::Session(SessionEvent::Verification(code)) => {
                        Event::Verification(code)
                    }
                    JoinEvent::Session(SessionEvent::Started { width, height }) => {
                        Event::ScreenStarted { width, height }
                    }
                    JoinEvent::Session(SessionEvent::Quality {
                        rtt,
                        updates_per_sec,
                        bits_per_sec,
                    }) => Event::Quality(Quality {
                        rtt,
                        updates_per_sec,
                        mbit_per_sec: bits_per_sec as f64 / 1e6,
                    }),
                    JoinEvent::Session(SessionEvent::Chat(chat)) => Event::ChatReceived {
                        chat,
                        at_unix_ms: now_unix_ms(),
                    },
                    JoinEvent::Session(SessionEvent::Monitors(list)) => Event::Monitors(list),
                    JoinEvent::Session(SessionEvent::MonitorRefused(why)) => {
                        Event::MonitorRefused(why)
                    }
                    JoinEvent::Session(SessionEvent::ClipboardShared(shared)) => {
                        Event::ClipboardShared(shared)
                    }
                    JoinEvent::Session(SessionEvent::Clipboard {
                        direction,
                        kind,
                        bytes,
                    }) => Event::Clipboard(ClipboardNote {
                        direction,
                        kind,
                        bytes,
                    }),
                });
            }
        })
    };
    let hook_presenter = presenter.clone();
    let cursor_presenter = presenter.clone();
    let cursor: crate::cursor::CursorHook = Arc::new(move |update| {
        if let Some(p) = cursor_presenter.lock().expect("presenter lock").as_mut() {
            if let Err(e) = p.cursor(update) {
                warn!(error = %e, "the user's pointer could not be drawn");
            }
        }
    });
    let live = Live {
        input: Some(input),
        viewer: Some(viewer),
        on_frame: Some(Box::new(move |fb, damage| {
            if let Some(p) = hook_presenter.lock().expect("presenter lock").as_mut() {
                if let Err(e) = p.present(fb, damage) {
                    warn!(error = %e, "the viewer could not show an update");
                }
            }
        })),
        events: Some(ev_tx),
        desk,
        tools: Some(tools),
        cursor: Some(cursor),
        files: None,
        control: Some(control),
    };
    let user_end = Box::pin(async {
        let _ = end.await;
    });
    let result = join::join(&target, &joining, opts, live, report, user_end).await;
    // Events of the session first, then its end.
    let _ = tokio::time::timeout(Duration::from_secs(1), forward).await;
    match result {
        Ok(outcome) => out.send(Event::SessionEnded {
            message: outcome.message,
            log: outcome.log,
        }),
        Err(e) => out.send(Event::JoinFailed(words(&e))),
    }
}

/// Why files asked for went nowhere, after `news`; `None` for other news.
fn files_note(news: &link::files::FileNews) -> Option<super::model::FilesNote> {
    use super::model::FilesNote;
    use link::files::FileNews;
    Some(match news {
        FileNews::OfferFailed { reason, .. } => FilesNote::NotOffered(reason.clone()),
        // The user declined this technician's offer.
        FileNews::Declined {
            reason, ours: true, ..
        } => FilesNote::Declined(reason.clone()),
        FileNews::FetchRefused { path, reason, .. } => FilesNote::FetchRefused {
            path: path.clone(),
            why: reason.clone(),
        },
        _ => return None,
    })
}

/// How a file stands after `news`, for the session view; `None` for news of no one file.
fn file_row(news: &link::files::FileNews) -> Option<super::model::FileRow> {
    use link::files::{Direction, FileInfo, FileNews};
    let row = |f: &FileInfo, direction: &Direction, done: u64| super::model::FileRow {
        key: (f.offer, f.id),
        name: protocol::text::printable(&f.name).into_owned(),
        incoming: *direction == Direction::Receiving,
        done,
        size: f.size,
        rate: 0,
        eta_secs: None,
        ended: None,
        stopped: false,
    };
    Some(match news {
        FileNews::Started {
            file,
            direction,
            from,
        } => row(file, direction, *from),
        FileNews::Progress {
            file,
            direction,
            done,
            rate,
            eta_secs,
        } => super::model::FileRow {
            rate: *rate as u64,
            eta_secs: *eta_secs,
            ..row(file, direction, *done)
        },
        FileNews::Done {
            file, direction, ..
        } => super::model::FileRow {
            ended: Some(Ok(())),
            ..row(file, direction, file.size)
        },
        FileNews::Failed {
            file,
            direction,
            reason,
        } => super::model::FileRow {
            ended: Some(Err(reason.clone())),
            ..row(file, direction, 0)
        },
        _ => return None,
    })
}
