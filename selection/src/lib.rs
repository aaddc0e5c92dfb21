//! The X selections a clipboard is made of: CLIPBOARD (what Copy put there) and PRIMARY (what
//! is selected), watched, read and owned on one X display, for the clipboard a session shares.
//!
//! [`Selections::start`] opens its own X connection on a thread of its own, with a small
//! unmapped window: the XFIXES extension tells it when another program takes a selection; it
//! then asks the owner for its targets and reads the content (UTF-8 text, or a PNG image where
//! no text is offered), also when the owner sends it in pieces (the INCR protocol), and hands
//! it on as [`Copied`]. [`Selections::set`] takes a selection with content from elsewhere (the
//! other end of the session) and serves it to whoever pastes, as text (`UTF8_STRING`,
//! `STRING`, `TEXT`, `text/plain`) or as `image/png`. Its own taking of a selection is not
//! reported back, so nothing bounces between the two ends.
//!
//! Limits: content beyond [`protocol::clipboard::MAX_CLIPBOARD_TEXT`] or
//! [`protocol::clipboard::MAX_CLIPBOARD_PNG`] is not read on (it is reported as
//! [`Copied::TooLarge`], with its kind and the size read so far); a program that does not
//! answer within [`READ_TIMEOUT`] is given up on. Content it serves is sent whole, which the X
//! server's largest request (16 MiB with BIG-REQUESTS) allows for everything within those
//! limits.

mod read;
mod serve;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use protocol::clipboard::{ClipContent, ClipKind, Selection};
use tracing::{debug, warn};
use x11rb::connection::Connection;
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    Atom, ConnectionExt as _, CreateWindowAux, EventMask, Window, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

/// How long a program that owns a selection has to hand over its content.
pub const READ_TIMEOUT: Duration = Duration::from_secs(3);

/// What changed on this display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    /// Another program put this in the selection.
    Content {
        selection: Selection,
        content: ClipContent,
    },
    /// Another program put more than the limit of `kind` there: not read on, not passed on.
    TooLarge {
        selection: Selection,
        kind: ClipKind,
        bytes: usize,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error("cannot connect to the X server (DISPLAY={display}) for the clipboard: {message}")]
    Connect { display: String, message: String },
    #[error("the X server has no XFIXES extension, which watching the clipboard needs")]
    NoXfixes,
    #[error("X request for the clipboard failed: {0}")]
    X(String),
    #[error("cannot start the clipboard thread: {0}")]
    Thread(std::io::Error),
}

fn x_err(e: impl std::fmt::Display) -> SelectionError {
    SelectionError::X(e.to_string())
}

/// What [`watch`] gives: the selections watched (`None` when not asked for, or when they cannot
/// be: then `failed` says why), and what other programs copy.
pub struct Watched {
    pub selections: Option<Selections>,
    pub copied: tokio::sync::mpsc::Receiver<Copied>,
    pub failed: Option<SelectionError>,
}

/// Watches the selections of `$DISPLAY` when `enabled`.
pub fn watch(enabled: bool) -> Watched {
    let (tx, copied) = tokio::sync::mpsc::channel(8);
    let (selections, failed) = if enabled {
        match Selections::start(None, tx) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e)),
        }
    } else {
        (None, None)
    };
    Watched {
        selections,
        copied,
        failed,
    }
}

/// Orders for the selection thread.
enum Order {
    Set {
        selection: Selection,
        content: ClipContent,
    },
    Stop,
}

/// The selections of one X display, watched and owned by a thread of their own until this is
/// dropped.
pub struct Selections {
    orders: mpsc::Sender<Order>,
    /// Written to wake the thread when an order is waiting.
    wake: UnixStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Selections {
    /// Watches the selections of `display` (`None`: `$DISPLAY`); what other programs copy is
    /// sent to `copied` (dropped while it is full: a person copies a few times a minute).
    pub fn start(
        display: Option<&str>,
        copied: tokio::sync::mpsc::Sender<Copied>,
    ) -> Result<Self, SelectionError> {
        let (conn, screen) = x11rb::connect(display).map_err(|e| SelectionError::Connect {
            display: display
                .map(str::to_owned)
                .or_else(|| std::env::var("DISPLAY").ok())
                .unwrap_or_else(|| "unset".into()),
            message: e.to_string(),
        })?;
        let state = State::new(conn, screen, copied)?;
        let (orders, orders_rx) = mpsc::channel();
        let (wake, woken) = UnixStream::pair().map_err(SelectionError::Thread)?;
        woken
            .set_nonblocking(true)
            .map_err(SelectionError::Thread)?;
        let thread = std::thread::Builder::new()
            .name("selections".into())
            .spawn(move || state.run(orders_rx, woken))
            .map_err(SelectionError::Thread)?;
        Ok(Self {
            orders,
            wake,
            thread: Some(thread),
        })
    }

    /// Takes `selection` with `content`: programs on this display paste it from now on, until
    /// another one takes the selection.
    pub fn set(&self, selection: Selection, content: ClipContent) {
        self.order(Order::Set { selection, content });
    }

    fn order(&self, order: Order) {
        if self.orders.send(order).is_ok() {
            use std::io::Write;
            let _ = (&self.wake).write(&[1]);
        }
    }
}

impl Drop for Selections {
    fn drop(&mut self) {
        self.order(Order::Stop);
        if let Some(t) = self.thread.take() {
            // The thread answers within one pass of its loop.
            let _ = t.join();
        }
    }
}

/// The atoms the thread speaks.
pub(crate) struct Atoms {
    pub clipboard: Atom,
    pub primary: Atom,
    pub targets: Atom,
    pub utf8_string: Atom,
    pub string: Atom,
    pub text: Atom,
    pub text_plain: Atom,
    pub text_plain_utf8: Atom,
    pub png: Atom,
    pub incr: Atom,
    /// Where each selection is read into, on our window.
    pub into_clipboard: Atom,
    pub into_primary: Atom,
}

impl Atoms {
    fn intern(conn: &RustConnection) -> Result<Self, SelectionError> {
        let names: [&[u8]; 12] = [
            b"CLIPBOARD",
            b"PRIMARY",
            b"TARGETS",
            b"UTF8_STRING",
            b"STRING",
            b"TEXT",
            b"text/plain",
            b"text/plain;charset=utf-8",
            b"image/png",
            b"INCR",
            b"TANDEM_CLIPBOARD",
            b"TANDEM_PRIMARY",
        ];
        let cookies = names
            .iter()
            .map(|n| conn.intern_atom(false, n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(x_err)?;
        let mut atoms = Vec::with_capacity(names.len());
        for c in cookies {
            atoms.push(c.reply().map_err(x_err)?.atom);
        }
        Ok(Self {
            clipboard: atoms[0],
            primary: atoms[1],
            targets: atoms[2],
            utf8_string: atoms[3],
            string: atoms[4],
            text: atoms[5],
            text_plain: atoms[6],
            text_plain_utf8: atoms[7],
            png: atoms[8],
            incr: atoms[9],
            into_clipboard: atoms[10],
            into_primary: atoms[11],
        })
    }

    pub fn selection(&self, which: Selection) -> Atom {
        match which {
            Selection::Clipboard => self.clipboard,
            Selection::Primary => self.primary,
        }
    }

    pub fn which(&self, atom: Atom) -> Option<Selection> {
        Selection::BOTH
            .into_iter()
            .find(|s| self.selection(*s) == atom)
    }

    /// The property of our window a selection is read into.
    pub fn property(&self, which: Selection) -> Atom {
        match which {
            Selection::Clipboard => self.into_clipboard,
            Selection::Primary => self.into_primary,
        }
    }
}

fn index(which: Selection) -> usize {
    match which {
        Selection::Clipboard => 0,
        Selection::Primary => 1,
    }
}

/// The thread's state: the connection, our window, what we own, what we are reading.
pub(crate) struct State {
    conn: RustConnection,
    window: Window,
    atoms: Atoms,
    /// What we serve, for each selection we own.
    owned: [Option<ClipContent>; 2],
    reads: [Option<read::Reading>; 2],
    copied: tokio::sync::mpsc::Sender<Copied>,
}

impl State {
    fn new(
        conn: RustConnection,
        screen: usize,
        copied: tokio::sync::mpsc::Sender<Copied>,
    ) -> Result<Self, SelectionError> {
        conn.xfixes_query_version(5, 0)
            .map_err(x_err)?
            .reply()
            .map_err(|_| SelectionError::NoXfixes)?;
        let root = conn.setup().roots[screen].root;
        let window = conn.generate_id().map_err(x_err)?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            1,
            1,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
        )
        .map_err(x_err)?;
        let atoms = Atoms::intern(&conn)?;
        for which in Selection::BOTH {
            conn.xfixes_select_selection_input(
                window,
                atoms.selection(which),
                xfixes::SelectionEventMask::SET_SELECTION_OWNER,
            )
            .map_err(x_err)?;
        }
        conn.flush().map_err(x_err)?;
        Ok(Self {
            conn,
            window,
            atoms,
            owned: [None, None],
            reads: [None, None],
            copied,
        })
    }

    fn run(mut self, orders: mpsc::Receiver<Order>, woken: UnixStream) {
        loop {
            let mut stop = false;
            while let Ok(order) = orders.try_recv() {
                match order {
                    Order::Set { selection, content } => self.own(selection, content),
                    Order::Stop => stop = true,
                }
            }
            if stop {
                return;
            }
            if let Err(e) = self.drain() {
                warn!(error = %e, "the clipboard's X connection failed; the clipboard is no longer shared");
                return;
            }
            self.expire();
            // Wait for the X server, an order, or the next read's deadline.
            let deadline = self
                .reads
                .iter()
                .flatten()
                .map(|r| r.deadline())
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(3600));
            wait_either(&self.conn, &woken, deadline);
        }
    }

    /// Handles every event the X server has for us.
    fn drain(&mut self) -> Result<(), SelectionError> {
        while let Some(ev) = self.conn.poll_for_event().map_err(x_err)? {
            match ev {
                Event::XfixesSelectionNotify(n) => {
                    let Some(which) = self.atoms.which(n.selection) else {
                        continue;
                    };
                    // Our own taking of it, or a selection given up: nothing to read.
                    if n.owner == self.window || n.owner == x11rb::NONE {
                        continue;
                    }
                    self.owned[index(which)] = None;
                    self.reads[index(which)] = read::Reading::start(self, which)?;
                }
                Event::SelectionNotify(n) => {
                    let Some(which) = self.atoms.which(n.selection) else {
                        continue;
                    };
                    if let Some(r) = self.reads[index(which)].take() {
                        self.reads[index(which)] = r.on_notify(self, &n)?;
                    }
                }
                Event::PropertyNotify(p) if p.window == self.window => {
                    for which in Selection::BOTH {
                        if p.atom == self.atoms.property(which) {
                            if let Some(r) = self.reads[index(which)].take() {
                                self.reads[index(which)] = r.on_property(self, &p)?;
                            }
                        }
                    }
                }
                Event::SelectionRequest(req) => serve::answer(self, &req)?,
                Event::SelectionClear(c) => {
                    if let Some(which) = self.atoms.which(c.selection) {
                        self.owned[index(which)] = None;
                    }
                }
                _ => {}
            }
        }
        self.conn.flush().map_err(x_err)
    }

    /// Gives up reads whose owner did not answer in time.
    fn expire(&mut self) {
        let now = Instant::now();
        for r in &mut self.reads {
            if r.as_ref().is_some_and(|r| r.deadline() <= now) {
                debug!("a program did not hand over its selection in time");
                *r = None;
            }
        }
    }

    fn own(&mut self, which: Selection, content: ClipContent) {
        self.owned[index(which)] = Some(content);
        // A read of what another program had there is moot now.
        self.reads[index(which)] = None;
        let taken = self
            .conn
            .set_selection_owner(
                self.window,
                self.atoms.selection(which),
                x11rb::CURRENT_TIME,
            )
            .and_then(|_| self.conn.flush());
        if let Err(e) = taken {
            warn!(error = %e, "cannot take the selection");
        }
    }

    /// Hands what another program copied on.
    pub(crate) fn tell(&self, copied: Copied) {
        if self.copied.try_send(copied).is_err() {
            debug!("what was copied is not being read; dropped");
        }
    }
}

/// Waits until the X connection or `woken` has something to read, or `limit` passes; empties
/// `woken`.
fn wait_either(conn: &RustConnection, woken: &UnixStream, limit: Duration) {
    let mut fds = [
        libc::pollfd {
            fd: conn.stream().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: woken.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = limit.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: two valid pollfds for the duration of the call.
    unsafe {
        libc::poll(fds.as_mut_ptr(), 2, ms);
    }
    let mut buf = [0u8; 64];
    use std::io::Read;
    while matches!((&*woken).read(&mut buf), Ok(n) if n > 0) {}
}
