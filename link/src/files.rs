//! Files over the peer plane: the async shell around `protocol::transfer`, the same on both ends.
//!
//! [`Files::start`] runs a task beside a session's loop. The loop hands it what the other end
//! said about files ([`Command::Peer`]), the file streams the other end opened
//! ([`Files::stream`], unless the task accepts them itself), and what this end wants (offer
//! files, fetch a path, accept or decline an offer); it takes out what to send on the session
//! stream, news for the person and the logs, and word that the other end broke the protocol
//! ([`Out`]). The loop never waits on the task for long: commands wait in a small queue, and
//! what comes out is a handful of messages per file.
//!
//! Disk work stays off the async threads: hashing the files to offer and looking for partial
//! files run on blocking threads, and each file streamed has one thread that reads it (sender)
//! or hashes and writes it (receiver), handing [`BLOCK`]-sized blocks over a channel of a few.
//! A slow disk therefore slows the stream (and QUIC's flow control the sender), never fills
//! memory.
//!
//! The screen comes first: one file streams at a time in each direction, on a stream of lower
//! priority than the screen updates' ([`FILE_PRIORITY`]: quinn sends what an update has before
//! any byte of a file it holds), and QUIC's flow control lets one stream have at most its window
//! in flight ([`crate::transport::STREAM_WINDOW`], 16 MiB), a third of the connection's, which
//! the updates share. The relay forwards streams in turns, a packet each, so a file there takes
//! at most half of a link the screen needs. Bytes already on the wire wait in the path's queues
//! ahead of any update, so the sender and the relay let a file out only while the path is not
//! queueing ([`crate::pace`]).
//!
//! A file arrives in a hidden partial file beside where it lands
//! ([`protocol::transfer::partial_name`]), named for its content, and keeps what arrived when the
//! session ends however it ends: the next offer of the same file into the same folder, in this
//! session or a later one, resumes at its end. Only a file whose SHA-256 matches the offer's takes
//! its final name, one not taken yet; one that does not match is deleted.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::browse::{Entry, Listing};
use protocol::e2e::{FileKeys, StreamId, StreamKind};
use protocol::framing::FrameReader;
use protocol::transfer::{
    self, AcceptedBy, Expected, FileId, FileMessage, Inbox, IncomingOffer, LocalFile, Meter,
    OfferId, Outbox, SendJob, StreamCheck, Verifier,
};
use quinn::{Connection, RecvStream, SendStream, VarInt};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};
use tracing::debug;

use crate::sealed::{self, PeerPlaneError};

/// Bytes read from or written to disk at once, and handed between the disk thread and the
/// stream.
pub const BLOCK: usize = 1 << 20;
/// Blocks waiting between a disk thread and its stream.
const BLOCKS_WAITING: usize = 4;
/// A file stream's priority: below the screen updates' (quinn's default, 0).
pub const FILE_PRIORITY: i32 = -1;
/// How often the progress of a file is told.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Commands waiting for the task.
const COMMANDS_WAITING: usize = 64;
/// Names tried for a file that lands where its name is taken (`report (1).pdf`, …).
const NAME_TRIES: u32 = 10_000;

/// Something this end's session wants of its file transfers, or passes on to them.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// What the other end said about files.
    Peer(FileMessage),
    /// Offer what lies at these paths (files, and folders with all in them); `tag` names the
    /// offer in the news until it has a number.
    Send { paths: Vec<PathBuf>, tag: u64 },
    /// As [`Command::Send`], leaving out the files named in `done` (their path under what was
    /// offered, `/` between the parts): those that arrived before the link was resumed.
    SendRest {
        paths: Vec<PathBuf>,
        tag: u64,
        done: Vec<String>,
    },
    /// Ask the other end for what lies at `path`; it lands in `dir`, accepted at once.
    Fetch {
        path: String,
        dir: PathBuf,
        tag: u64,
    },
    /// Answer the other end's fetch `request` by offering what lies at `path`.
    Serve { request: u64, path: PathBuf },
    /// Refuse the other end's fetch `request` (or its listing).
    RefuseFetch { request: u64, reason: String },
    /// Ask the other end what the folder at `path` holds (`protocol::browse`).
    List { path: String, tag: u64 },
    /// Answer the other end's listing `request` with what the folder at `path` holds.
    ServeList { request: u64, path: PathBuf },
    /// Accept the other end's offer into `dir`.
    Accept {
        offer: OfferId,
        dir: PathBuf,
        by: AcceptedBy,
    },
    /// Decline the other end's offer.
    Decline { offer: OfferId, reason: String },
    /// Stop an offer, this end's or the other's: what is queued of it, and the file streaming.
    Cancel { offer: OfferId, reason: String },
    /// Stop every offer whose files are streaming now, either way.
    CancelMoving { reason: String },
}

/// Which way a file goes, seen from this end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Sending,
    Receiving,
}

/// One file of an offer, for the news.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    pub offer: OfferId,
    pub id: FileId,
    /// Its path under the offer, `/` between the parts (sanitised, on the receiving end).
    pub name: String,
    pub size: u64,
    pub sha256: [u8; 32],
}

/// What happened to this end's file transfers.
#[derive(Debug, Clone, PartialEq)]
pub enum FileNews {
    /// The other end offers files. Decide with [`Command::Accept`] or [`Command::Decline`]; an
    /// answer to this end's own fetch (`fetched`: the fetch's tag) is accepted already.
    Offered {
        offer: IncomingOffer,
        fetched: Option<u64>,
    },
    /// The other end asks for `path`: [`Command::Serve`] or [`Command::RefuseFetch`].
    FetchAsked { request: u64, path: String },
    /// This end's files were read and offered (`fetch`: the request the offer answers).
    Offering {
        offer: OfferId,
        tag: Option<u64>,
        fetch: Option<u64>,
        files: Vec<FileInfo>,
        total: u64,
    },
    /// This end's files could not be offered (a path could not be read).
    OfferFailed { tag: u64, reason: String },
    /// An offer was accepted (`ours`: this end's offer, by the other end); `resumed`: bytes the
    /// receiver held already.
    Accepted {
        offer: OfferId,
        by: AcceptedBy,
        resumed: u64,
        ours: bool,
        /// Where the files land, on the receiving end.
        dir: Option<PathBuf>,
    },
    /// An offer was declined (`ours`: this end's, by the other end).
    Declined {
        offer: OfferId,
        reason: String,
        ours: bool,
    },
    /// The other end asks what the folder at `path` holds: [`Command::ServeList`] or
    /// [`Command::RefuseFetch`].
    ListAsked { request: u64, path: String },
    /// This end told the other what a folder holds.
    ListServed { request: u64, listing: Listing },
    /// The other end told this end what a folder holds (`tag`: the listing's, as asked).
    Listed { tag: u64, listing: Listing },
    /// This end's fetch (or listing) was refused.
    FetchRefused {
        tag: u64,
        path: String,
        reason: String,
    },
    /// A file's stream began, from byte `from`.
    Started {
        file: FileInfo,
        direction: Direction,
        from: u64,
    },
    /// How far a file has got.
    Progress {
        file: FileInfo,
        direction: Direction,
        done: u64,
        /// Bytes a second over the last few seconds.
        rate: f64,
        eta_secs: Option<u64>,
    },
    /// A file arrived whole and its SHA-256 matched: stored under `stored_as` (its last
    /// part may differ from the offer's, where the name was taken); `path`: where, on the
    /// receiving end.
    Done {
        file: FileInfo,
        direction: Direction,
        stored_as: String,
        path: Option<PathBuf>,
        from: u64,
        by: AcceptedBy,
    },
    /// A file did not arrive, and why.
    Failed {
        file: FileInfo,
        direction: Direction,
        reason: String,
    },
    /// An offer was stopped (`by_other_end`: the other end stopped it).
    Cancelled {
        offer: OfferId,
        reason: String,
        by_other_end: bool,
    },
}

/// What the file task gives its session.
#[derive(Debug)]
pub enum Out {
    /// Send this on the session stream.
    Peer(FileMessage),
    News(FileNews),
    /// The other end broke the file protocol, or a file's stream was tampered with: the session
    /// ends with these words. The task has stopped.
    Broken(String),
}

/// A session's file transfers, as its loop holds them. Dropping it stops them (what arrived
/// of a file stays for a later resume).
pub struct Files {
    commands: mpsc::Sender<Command>,
    streams: mpsc::Sender<FrameReader<RecvStream>>,
    out: mpsc::UnboundedReceiver<Out>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Files {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Files {
    /// Starts the file transfers of a session on `connection`, with the session's file keys.
    /// With `accept_streams`, the task takes every unidirectional stream the other end opens
    /// (an agent: a technician opens no other); otherwise the loop passes file streams in
    /// ([`Files::stream`]).
    pub fn start(connection: Connection, keys: FileKeys, accept_streams: bool) -> Self {
        let (commands, rx) = mpsc::channel(COMMANDS_WAITING);
        let (streams, streams_rx) = mpsc::channel(COMMANDS_WAITING);
        let (out_tx, out) = mpsc::unbounded_channel();
        let engine = Engine {
            conn: connection,
            keys: Arc::new(keys),
            outbox: Outbox::new(),
            inbox: Inbox::new(),
            out: out_tx,
            work: JoinSet::new(),
            sending: None,
            receiving: BTreeMap::new(),
            targets: BTreeMap::new(),
            fetches: BTreeMap::new(),
            lists: BTreeMap::new(),
            send_failures: BTreeMap::new(),
            started: Instant::now(),
        };
        let task = tokio::spawn(engine.run(rx, streams_rx, accept_streams));
        Self {
            commands,
            streams,
            out,
            task,
        }
    }

    /// Passes a command on; waits while the task's queue is full (briefly: it only ever waits
    /// for the task, which never waits for the loop).
    pub async fn command(&self, command: Command) {
        if self.commands.send(command).await.is_err() {
            debug!("the file task has stopped; a command was dropped");
        }
    }

    /// Passes on a file stream the other end opened, its first record read
    /// ([`sealed::first_record`]).
    pub async fn stream(&self, reader: FrameReader<RecvStream>) {
        if self.streams.send(reader).await.is_err() {
            debug!("the file task has stopped; a stream was dropped");
        }
    }

    /// What the task has to say next. Never resolves once the task has stopped and said all.
    pub async fn next(&mut self) -> Out {
        match self.out.recv().await {
            Some(out) => out,
            None => std::future::pending().await,
        }
    }
}

/// A file streaming, and how far it has got.
struct Active {
    file: transfer::OutgoingFile,
    info: FileInfo,
    done: Arc<AtomicU64>,
    meter: Meter,
    abort: AbortHandle,
}

/// Where an accepted file lands.
struct Target {
    /// The folder it lands in (the offer's folder, and the file's own folders under it).
    dir: PathBuf,
    by: AcceptedBy,
}

/// A file being received.
struct Receiving {
    info: FileInfo,
    done: Arc<AtomicU64>,
    meter: Meter,
    abort: AbortHandle,
    from: u64,
    by: AcceptedBy,
}

/// Work finished off the task's loop.
enum Work {
    /// This end's files were read and hashed, for an offer (answering `fetch`, if given).
    Hashed {
        tag: Option<u64>,
        fetch: Option<u64>,
        result: Result<Vec<LocalFile>, String>,
    },
    /// The folders of an accepted offer are ready and its partial files measured.
    Placed {
        offer: OfferId,
        dir: PathBuf,
        by: AcceptedBy,
        result: Result<Vec<(PathBuf, u64)>, String>,
    },
    /// A file's stream was sent (or not).
    Sent {
        file: FileId,
        result: Result<(), String>,
    },
    /// A file's stream was received.
    Received {
        file: FileId,
        result: Result<(String, PathBuf), ReceiveError>,
    },
    /// A folder was read for the other end's listing `request`.
    Listed {
        request: u64,
        result: Result<Listing, String>,
    },
    /// A stream the other end opened, its first record read.
    Opened(Result<(FrameReader<RecvStream>, StreamId), PeerPlaneError>),
}

/// Why a file did not arrive.
#[derive(Debug)]
enum ReceiveError {
    /// The stream broke the protocol or was tampered with: the session ends.
    Violation(String),
    /// The file did not arrive (the sender stopped, the disk failed, it did not match): the
    /// session goes on.
    Failed(String),
}

struct Engine {
    conn: Connection,
    keys: Arc<FileKeys>,
    outbox: Outbox,
    inbox: Inbox,
    out: mpsc::UnboundedSender<Out>,
    work: JoinSet<Work>,
    sending: Option<Active>,
    receiving: BTreeMap<FileId, Receiving>,
    targets: BTreeMap<FileId, Target>,
    /// This end's fetch requests: their tags, folders and paths.
    fetches: BTreeMap<u64, (u64, PathBuf, String)>,
    /// This end's listing requests: their tags.
    lists: BTreeMap<u64, u64>,
    /// Files whose stream this end could not send, and why; said when the receiver's word
    /// about them arrives.
    send_failures: BTreeMap<FileId, String>,
    started: Instant,
}

impl Engine {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut streams: mpsc::Receiver<FrameReader<RecvStream>>,
        accept_streams: bool,
    ) {
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut accepting = accept_streams;
        loop {
            if self.sending.is_none() {
                if let Some(job) = self.outbox.next_job() {
                    self.start_sending(job);
                }
            }
            let result = tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => self.command(c),
                    None => return,
                },
                Some(reader) = streams.recv() => self.stream_opened(reader),
                uni = self.conn.accept_uni(), if accepting => {
                    match uni {
                        Ok(stream) => {
                            self.work.spawn(async move { Work::Opened(sealed::first_record(stream).await) });
                        }
                        // The connection is over; the session's loop sees it too.
                        Err(_) => accepting = false,
                    }
                    Ok(())
                }
                Some(done) = self.work.join_next(), if !self.work.is_empty() => match done {
                    Ok(work) => self.work_done(work),
                    Err(e) if e.is_cancelled() => Ok(()),
                    Err(e) => Err(format!("a file transfer task failed: {e}")),
                },
                _ = tick.tick() => {
                    self.progress();
                    Ok(())
                }
            };
            if let Err(why) = result {
                let _ = self.out.send(Out::Broken(why));
                return;
            }
        }
    }

    fn peer(&self, msg: FileMessage) {
        let _ = self.out.send(Out::Peer(msg));
    }

    fn news(&self, news: FileNews) {
        let _ = self.out.send(Out::News(news));
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn command(&mut self, command: Command) -> Result<(), String> {
        match command {
            Command::Peer(msg) => self.peer_said(msg).map_err(|e| e.to_string()),
            Command::Send { paths, tag } => {
                self.work.spawn_blocking(move || Work::Hashed {
                    tag: Some(tag),
                    fetch: None,
                    result: local_files(&paths),
                });
                Ok(())
            }
            Command::SendRest { paths, tag, done } => {
                self.work.spawn_blocking(move || Work::Hashed {
                    tag: Some(tag),
                    fetch: None,
                    result: local_files_but(&paths, &done),
                });
                Ok(())
            }
            Command::Serve { request, path } => {
                self.work.spawn_blocking(move || Work::Hashed {
                    tag: None,
                    fetch: Some(request),
                    result: local_files(&[path]),
                });
                Ok(())
            }
            Command::RefuseFetch { request, reason } => {
                if let Some(msg) = self.outbox.refuse_fetch(request, &reason) {
                    self.peer(msg);
                }
                Ok(())
            }
            Command::List { path, tag } => {
                match self.inbox.list(&path) {
                    Some((request, msg)) => {
                        self.lists.insert(request, tag);
                        self.peer(msg);
                    }
                    None => self.news(FileNews::FetchRefused {
                        tag,
                        path,
                        reason: format!(
                            "{} requests wait for an answer already",
                            transfer::MAX_PENDING_FETCHES
                        ),
                    }),
                }
                Ok(())
            }
            Command::ServeList { request, path } => {
                self.work.spawn_blocking(move || Work::Listed {
                    request,
                    result: list_folder(&path),
                });
                Ok(())
            }
            Command::Fetch { path, dir, tag } => {
                match self.inbox.fetch(&path) {
                    Some((request, msg)) => {
                        self.fetches.insert(request, (tag, dir, path));
                        self.peer(msg);
                    }
                    None => self.news(FileNews::FetchRefused {
                        tag,
                        path,
                        reason: format!(
                            "{} fetches wait for an answer already",
                            transfer::MAX_PENDING_FETCHES
                        ),
                    }),
                }
                Ok(())
            }
            Command::Accept { offer, dir, by } => {
                self.accept(offer, dir, by);
                Ok(())
            }
            Command::Decline { offer, reason } => {
                if let Some(msg) = self.inbox.decline(offer, &reason) {
                    self.peer(msg);
                    self.news(FileNews::Declined {
                        offer,
                        reason,
                        ours: false,
                    });
                }
                Ok(())
            }
            Command::CancelMoving { reason } => {
                let mut offers: Vec<OfferId> =
                    self.receiving.values().map(|r| r.info.offer).collect();
                offers.extend(self.sending.as_ref().map(|a| a.info.offer));
                offers.sort_unstable();
                offers.dedup();
                for offer in offers {
                    self.command(Command::Cancel {
                        offer,
                        reason: reason.clone(),
                    })?;
                }
                Ok(())
            }
            Command::Cancel { offer, reason } => {
                if self.stop_offer(offer) {
                    self.peer(FileMessage::Cancel {
                        offer,
                        reason: protocol::text::clip(&reason, transfer::MAX_REASON).into_owned(),
                    });
                    self.news(FileNews::Cancelled {
                        offer,
                        reason,
                        by_other_end: false,
                    });
                }
                Ok(())
            }
        }
    }

    /// Places the files of a waiting offer (folders made, partial files measured) off the
    /// loop; the answer goes out once that is done.
    fn accept(&mut self, offer: OfferId, dir: PathBuf, by: AcceptedBy) {
        let Some(incoming) = self.inbox.waiting(offer).cloned() else {
            return;
        };
        self.work.spawn_blocking(move || Work::Placed {
            offer,
            result: place(&dir, &incoming),
            dir,
            by,
        });
    }

    /// Stops what is left of `offer` here: queued files, the file streaming, files arriving.
    fn stop_offer(&mut self, offer: OfferId) -> bool {
        let mut any = self.outbox.cancel(offer) | self.inbox.cancelled(offer);
        if self.sending.as_ref().is_some_and(|a| a.info.offer == offer) {
            let active = self.sending.take().expect("checked");
            active.abort.abort();
            any = true;
        }
        let arriving: Vec<FileId> = self
            .receiving
            .iter()
            .filter(|(_, r)| r.info.offer == offer)
            .map(|(id, _)| *id)
            .collect();
        for id in arriving {
            if let Some(r) = self.receiving.remove(&id) {
                r.abort.abort();
                any = true;
            }
        }
        any
    }

    fn peer_said(&mut self, msg: FileMessage) -> Result<(), transfer::TransferError> {
        match msg {
            FileMessage::Offer(offer) => {
                let fetch = offer.fetch;
                let incoming = self.inbox.offered(offer)?;
                let fetched = fetch.and_then(|request| self.fetches.remove(&request));
                let tag = fetched.as_ref().map(|(tag, _, _)| *tag);
                let id = incoming.id;
                self.news(FileNews::Offered {
                    offer: incoming,
                    fetched: tag,
                });
                if let Some((_, dir, _)) = fetched {
                    self.accept(id, dir, AcceptedBy::Requester);
                }
            }
            FileMessage::Accept { .. } | FileMessage::Decline { .. } => {
                match self.outbox.answered(&msg)? {
                    Some(transfer::Answered::Accepted { offer, by, resume }) => {
                        self.news(FileNews::Accepted {
                            offer,
                            by,
                            resumed: resume.iter().sum(),
                            ours: true,
                            dir: None,
                        })
                    }
                    Some(transfer::Answered::Declined { offer, reason }) => {
                        self.news(FileNews::Declined {
                            offer,
                            reason,
                            ours: true,
                        })
                    }
                    None => {}
                }
            }
            FileMessage::Received { file, result } => {
                let local = self.send_failures.remove(&file);
                let Some((job, result)) = self.outbox.received(file, &result)? else {
                    return Ok(());
                };
                let info = info_of(&job.file);
                match (result, local) {
                    (Ok(stored_as), None) => self.news(FileNews::Done {
                        file: info,
                        direction: Direction::Sending,
                        stored_as,
                        path: None,
                        from: job.start,
                        by: job.by,
                    }),
                    (Err(reason), None) | (Ok(_), Some(reason)) => self.news(FileNews::Failed {
                        file: info,
                        direction: Direction::Sending,
                        reason,
                    }),
                    (Err(remote), Some(local)) => self.news(FileNews::Failed {
                        file: info,
                        direction: Direction::Sending,
                        reason: format!("{local}; the receiver says: {remote}"),
                    }),
                }
            }
            FileMessage::Cancel { offer, reason } => {
                if self.stop_offer(offer) {
                    self.news(FileNews::Cancelled {
                        offer,
                        reason: transfer::tame_reason(&reason),
                        by_other_end: true,
                    });
                }
            }
            FileMessage::Fetch { request, path } => {
                let path = self.outbox.fetch_asked(request, &path)?;
                self.news(FileNews::FetchAsked { request, path });
            }
            FileMessage::List { request, path } => {
                let path = self.outbox.fetch_asked(request, &path)?;
                self.news(FileNews::ListAsked { request, path });
            }
            FileMessage::Listed { request, listing } => {
                self.inbox.listed(request, &listing)?;
                let tag = self.lists.remove(&request).unwrap_or(request);
                self.news(FileNews::Listed { tag, listing });
            }
            FileMessage::FetchRefused { request, reason } => {
                let path = self.inbox.fetch_refused(request)?;
                let tag = self
                    .fetches
                    .remove(&request)
                    .map(|(tag, _, _)| tag)
                    .or_else(|| self.lists.remove(&request))
                    .unwrap_or(request);
                self.news(FileNews::FetchRefused {
                    tag,
                    path,
                    reason: transfer::tame_reason(&reason),
                });
            }
        }
        Ok(())
    }

    fn start_sending(&mut self, job: SendJob) {
        let info = info_of(&job.file);
        let done = Arc::new(AtomicU64::new(job.start));
        let sealer = self.keys.sealer(job.file.id);
        let conn = self.conn.clone();
        let (file, start) = (job.file.clone(), job.start);
        let counter = done.clone();
        let abort = self.work.spawn(async move {
            let id = file.id;
            let result = send_file(conn, sealer, &file, start, counter).await;
            Work::Sent { file: id, result }
        });
        self.news(FileNews::Started {
            file: info.clone(),
            direction: Direction::Sending,
            from: job.start,
        });
        self.sending = Some(Active {
            meter: Meter::new(job.file.local.size, job.start, self.now_ms()),
            file: job.file,
            info,
            done,
            abort,
        });
    }

    /// A stream the other end opened: the file it claims to carry must be one accepted and
    /// not yet arrived.
    fn stream_opened(&mut self, mut reader: FrameReader<RecvStream>) -> Result<(), String> {
        let record = reader.frame_mut();
        let id = match StreamId::of_record(record) {
            Some(StreamId {
                kind: StreamKind::File,
                id,
            }) => id,
            Some(other) => {
                return Err(format!(
                    "the other end opened {other} where only files' streams may come"
                ))
            }
            None => return Err("a stream began with a record too short to name it".into()),
        };
        let Some(expected) = self.inbox.stream(id).map_err(|e| e.to_string())? else {
            // A file of an offer stopped meanwhile: dropping the reader stops its stream.
            self.targets.remove(&id);
            return Ok(());
        };
        let target = self
            .targets
            .remove(&id)
            .ok_or_else(|| format!("file {id} has nowhere to land"))?;
        let info = FileInfo {
            offer: expected.offer,
            id,
            name: expected.file.name(),
            size: expected.file.size,
            sha256: expected.file.sha256,
        };
        let done = Arc::new(AtomicU64::new(expected.start));
        let opener = self.keys.opener(id);
        let counter = done.clone();
        let from = expected.start;
        let abort = self.work.spawn(async move {
            let result = receive_file(reader, opener, expected, target.dir, counter).await;
            Work::Received { file: id, result }
        });
        self.news(FileNews::Started {
            file: info.clone(),
            direction: Direction::Receiving,
            from,
        });
        self.receiving.insert(
            id,
            Receiving {
                meter: Meter::new(info.size, from, self.now_ms()),
                info,
                done,
                abort,
                from,
                by: target.by,
            },
        );
        Ok(())
    }

    fn work_done(&mut self, work: Work) -> Result<(), String> {
        match work {
            Work::Hashed { tag, fetch, result } => match result {
                Ok(files) => {
                    let total = files.iter().map(|f| f.size).sum();
                    match self.outbox.offer(files, fetch) {
                        Some(offer) => {
                            let files = self
                                .outbox
                                .offered(offer.id)
                                .unwrap_or_default()
                                .iter()
                                .map(info_of)
                                .collect();
                            let id = offer.id;
                            self.peer(FileMessage::Offer(offer));
                            self.news(FileNews::Offering {
                                offer: id,
                                tag,
                                fetch,
                                files,
                                total,
                            });
                        }
                        None => self.offer_failed(
                            tag,
                            fetch,
                            format!(
                                "{} offers wait for an answer already",
                                transfer::MAX_PENDING_OFFERS
                            ),
                        ),
                    }
                }
                Err(reason) => self.offer_failed(tag, fetch, reason),
            },
            Work::Placed {
                offer,
                dir,
                by,
                result,
            } => match result {
                Ok(places) => {
                    let resume: Vec<u64> = places.iter().map(|(_, r)| *r).collect();
                    if let Some((msg, expected)) = self.inbox.accept(offer, resume, by) {
                        let mut resumed = 0;
                        for (e, (folder, _)) in expected.iter().zip(places) {
                            resumed += e.start;
                            self.targets.insert(e.file.id, Target { dir: folder, by });
                        }
                        self.peer(msg);
                        self.news(FileNews::Accepted {
                            offer,
                            by,
                            resumed,
                            ours: false,
                            dir: Some(dir),
                        });
                    }
                }
                Err(reason) => {
                    if let Some(msg) = self.inbox.decline(offer, &reason) {
                        self.peer(msg);
                        self.news(FileNews::Declined {
                            offer,
                            reason,
                            ours: false,
                        });
                    }
                }
            },
            Work::Sent { file, result } => {
                if self.sending.as_ref().is_some_and(|a| a.file.id == file) {
                    self.sending = None;
                }
                if let Err(reason) = result {
                    debug!(file, %reason, "a file's stream could not be sent");
                    self.send_failures.insert(file, reason);
                }
            }
            Work::Received { file, result } => {
                let Some(r) = self.receiving.remove(&file) else {
                    return Ok(());
                };
                match result {
                    Ok((stored_as, path)) => {
                        self.peer(FileMessage::Received {
                            file,
                            result: Ok(stored_as.clone()),
                        });
                        self.news(FileNews::Done {
                            file: r.info,
                            direction: Direction::Receiving,
                            stored_as,
                            path: Some(path),
                            from: r.from,
                            by: r.by,
                        });
                    }
                    Err(ReceiveError::Failed(reason)) => {
                        self.peer(FileMessage::Received {
                            file,
                            result: Err(reason.clone()),
                        });
                        self.news(FileNews::Failed {
                            file: r.info,
                            direction: Direction::Receiving,
                            reason,
                        });
                    }
                    Err(ReceiveError::Violation(why)) => return Err(why),
                }
            }
            Work::Listed { request, result } => match result {
                Ok(listing) => {
                    if let Some(msg) = self.outbox.answer_list(request, listing.clone()) {
                        self.peer(msg);
                        self.news(FileNews::ListServed { request, listing });
                    }
                }
                Err(reason) => {
                    if let Some(msg) = self.outbox.refuse_fetch(request, &reason) {
                        self.peer(msg);
                    }
                }
            },
            Work::Opened(result) => match result {
                Ok((reader, _)) => return self.stream_opened(reader),
                Err(e) if e.is_violation() => return Err(e.to_string()),
                Err(e) => debug!(error = %e, "a stream broke before its first record"),
            },
        }
        Ok(())
    }

    fn offer_failed(&mut self, tag: Option<u64>, fetch: Option<u64>, reason: String) {
        if let Some(request) = fetch {
            if let Some(msg) = self.outbox.refuse_fetch(request, &reason) {
                self.peer(msg);
            }
        }
        self.news(FileNews::OfferFailed {
            tag: tag.or(fetch).unwrap_or_default(),
            reason,
        });
    }

    /// Tells how far each file streaming has got.
    fn progress(&mut self) {
        let now = self.now_ms();
        let mut news = Vec::new();
        if let Some(a) = self.sending.as_mut() {
            a.meter.sample(now, a.done.load(Ordering::Relaxed));
            news.push(progress_news(&a.info, Direction::Sending, &a.meter));
        }
        for r in self.receiving.values_mut() {
            r.meter.sample(now, r.done.load(Ordering::Relaxed));
            news.push(progress_news(&r.info, Direction::Receiving, &r.meter));
        }
        for n in news {
            self.news(n);
        }
    }
}

fn progress_news(info: &FileInfo, direction: Direction, meter: &Meter) -> FileNews {
    FileNews::Progress {
        file: info.clone(),
        direction,
        done: meter.done(),
        rate: meter.rate(),
        eta_secs: meter.eta_secs(),
    }
}

fn info_of(file: &transfer::OutgoingFile) -> FileInfo {
    FileInfo {
        offer: file.offer,
        id: file.id,
        name: file.name(),
        size: file.local.size,
        sha256: file.local.sha256,
    }
}

/// The files at `paths`: each file, and every file in each folder (its name first in their
/// paths), with their sizes and SHA-256. Links are not followed into folders (they could loop
/// or lead anywhere); a link to a file is read as the file.
pub fn local_files(paths: &[PathBuf]) -> Result<Vec<LocalFile>, String> {
    local_files_but(paths, &[])
}

/// As [`local_files`], leaving out (before hashing) the files whose path under what is offered
/// is in `done`.
pub fn local_files_but(paths: &[PathBuf], done: &[String]) -> Result<Vec<LocalFile>, String> {
    let mut found = Vec::new();
    for path in paths {
        let path = expand_home(path);
        let meta =
            std::fs::metadata(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "files".to_string());
        if meta.is_dir() {
            walk(&path, &mut vec![name], &mut found)?;
        } else {
            found.push((path.clone(), vec![name]));
        }
        if found.len() > transfer::MAX_FILES {
            return Err(format!(
                "more than {} files: send fewer at once",
                transfer::MAX_FILES
            ));
        }
    }
    if found.is_empty() {
        return Err("there are no files to send there".to_string());
    }
    found.retain(|(_, path)| !done.contains(&path.join("/")));
    if found.is_empty() {
        return Err("every file there has arrived already".to_string());
    }
    found
        .into_iter()
        .map(|(source, path)| {
            let (sha256, size) =
                hash_file(&source).map_err(|e| format!("cannot read {}: {e}", source.display()))?;
            Ok(LocalFile {
                source,
                path,
                size,
                sha256,
            })
        })
        .collect()
}

/// Most entries of one folder read for a listing; the rest are counted, not kept.
const LIST_READ: usize = 20 * protocol::browse::MAX_ENTRIES;

/// What the folder at `path` holds, for the other end's listing (`~` is the home folder).
/// Links are followed to say what they lead to; an entry that cannot be read is left out.
pub fn list_folder(path: &Path) -> Result<Listing, String> {
    let path = expand_home(path);
    let dir = std::fs::canonicalize(&path)
        .map_err(|e| format!("cannot read the folder {}: {e}", path.display()))?;
    let read = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot read the folder {}: {e}", dir.display()))?;
    let mut entries = Vec::new();
    let mut beyond = 0u64;
    for entry in read.filter_map(Result::ok) {
        if entries.len() >= LIST_READ {
            beyond += 1;
            continue;
        }
        let Ok(meta) = std::fs::metadata(entry.path()) else {
            continue;
        };
        entries.push(Entry {
            name: entry.file_name().to_string_lossy().into_owned(),
            folder: meta.is_dir(),
            size: if meta.is_dir() { 0 } else { meta.len() },
        });
    }
    let mut listing = Listing::new(dir.to_string_lossy().into_owned(), entries);
    listing.omitted += beyond;
    Ok(listing)
}

/// `~/x` as the home folder's `x`; anything else as it is.
fn expand_home(path: &Path) -> PathBuf {
    match path.strip_prefix("~") {
        Ok(rest) => directories::UserDirs::new()
            .map(|d| d.home_dir().join(rest))
            .unwrap_or_else(|| path.to_path_buf()),
        Err(_) => path.to_path_buf(),
    }
}

fn walk(
    dir: &Path,
    prefix: &mut Vec<String>,
    found: &mut Vec<(PathBuf, Vec<String>)>,
) -> Result<(), String> {
    if prefix.len() > transfer::MAX_DEPTH {
        return Err(format!(
            "{} lies more than {} folders deep",
            dir.display(),
            transfer::MAX_DEPTH
        ));
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the folder {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if kind.is_dir() {
            prefix.push(name);
            walk(&path, prefix, found)?;
            prefix.pop();
        } else if kind.is_file() || (kind.is_symlink() && path.is_file()) {
            let mut p = prefix.clone();
            p.push(name);
            found.push((path, p));
            if found.len() > transfer::MAX_FILES {
                return Err(format!(
                    "more than {} files: send fewer at once",
                    transfer::MAX_FILES
                ));
            }
        }
    }
    Ok(())
}

/// SHA-256 and length of a file, read in blocks.
pub fn hash_file(path: &Path) -> std::io::Result<([u8; 32], u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hasher.finalize().into(), len))
}

/// Makes the folders an accepted offer's files land in, under `dir`, and measures the partial
/// files found there: per file, its folder and the bytes already held. A folder on the way
/// that is a link is refused: the files land under `dir` and nowhere else.
fn place(dir: &Path, offer: &IncomingOffer) -> Result<Vec<(PathBuf, u64)>, String> {
    real_dir(dir, true)?;
    offer
        .files
        .iter()
        .map(|f| {
            let mut folder = dir.to_path_buf();
            for part in &f.path[..f.path.len() - 1] {
                folder.push(part);
                real_dir(&folder, false)?;
            }
            let partial = folder.join(transfer::partial_name(f.file_name(), &f.sha256));
            let held = std::fs::symlink_metadata(&partial)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len());
            Ok((folder, transfer::resume_point(held, f.size)))
        })
        .collect()
}

/// Makes `dir` if it is not there; an error if it is there and not a folder, or (unless
/// `may_link`: the folder the person chose) a link.
fn real_dir(dir: &Path, may_link: bool) -> Result<(), String> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(m) if m.file_type().is_symlink() && may_link && dir.is_dir() => Ok(()),
        Ok(_) => Err(format!(
            "{} is in the way: it is not a folder",
            dir.display()
        )),
        Err(_) => {
            let made = if may_link {
                std::fs::create_dir_all(dir)
            } else {
                std::fs::create_dir(dir)
            };
            made.map_err(|e| format!("cannot make the folder {}: {e}", dir.display()))
        }
    }
}

/// Resets the stream when dropped unfinished: a file stopped halfway must not read as ended
/// (quinn finishes a dropped stream).
struct ResetOnDrop(Option<SendStream>);

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if let Some(s) = self.0.as_mut() {
            let _ = s.reset(VarInt::from_u32(0));
        }
    }
}

/// Streams `file` from `start`: the start record, then the file's bytes, [`FILE_RECORD`]
/// bytes a record sealed just before they go out, read from disk by a thread of its own.
/// `done` counts the bytes handed to QUIC.
///
/// [`FILE_RECORD`]: transfer::FILE_RECORD
async fn send_file(
    conn: Connection,
    mut sealer: protocol::e2e::Sealer,
    file: &transfer::OutgoingFile,
    start: u64,
    done: Arc<AtomicU64>,
) -> Result<(), String> {
    let stream = conn
        .open_uni()
        .await
        .map_err(|e| format!("cannot open the file's stream: {e}"))?;
    let mut guard = ResetOnDrop(Some(stream));
    let stream = guard.0.as_mut().expect("just set");
    let _ = stream.set_priority(FILE_PRIORITY);
    let size = file.local.size;
    let sealing = |e: protocol::e2e::SealError| e.to_string();
    let written = |e: quinn::WriteError| format!("the file's stream broke: {e}");
    let mut out = Vec::with_capacity(BLOCK + BLOCK / transfer::FILE_RECORD * 64 + 64);
    sealer
        .seal_frame(&start.to_le_bytes(), start == size, &mut out)
        .map_err(sealing)?;
    stream.write_all(&out).await.map_err(written)?;
    let (tx, mut blocks) = mpsc::channel::<Result<Vec<u8>, String>>(BLOCKS_WAITING);
    let source = file.local.source.clone();
    std::thread::Builder::new()
        .name("file-read".into())
        .spawn(move || read_blocks(&source, start, size, tx))
        .map_err(|e| format!("cannot start reading the file: {e}"))?;
    let mut left = size - start;
    // The file goes out only as fast as the path takes it without a queue (crate::pace).
    let mut pace = crate::pace::Yield::new(conn.clone());
    while left > 0 {
        let block = blocks
            .recv()
            .await
            .ok_or("the file could not be read to its end")??;
        for chunk in block.chunks(transfer::FILE_RECORD) {
            left -= chunk.len() as u64;
            out.clear();
            sealer
                .seal_frame(chunk, left == 0, &mut out)
                .map_err(sealing)?;
            pace.wait(out.len() as u64).await;
            stream.write_all(&out).await.map_err(written)?;
        }
        done.fetch_add(block.len() as u64, Ordering::Relaxed);
    }
    stream
        .finish()
        .map_err(|e| format!("the file's stream broke: {e}"))?;
    guard.0 = None;
    Ok(())
}

/// Reads `size - start` bytes of `path` from `start` in blocks, for [`send_file`]; an error if
/// the file is shorter now than when it was offered.
fn read_blocks(path: &Path, start: u64, size: u64, tx: mpsc::Sender<Result<Vec<u8>, String>>) {
    let result = (|| -> Result<(), String> {
        let mut f = std::fs::File::open(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        f.seek(SeekFrom::Start(start))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut left = size - start;
        while left > 0 {
            let mut block = vec![0u8; (left as usize).min(BLOCK)];
            f.read_exact(&mut block).map_err(|e| {
                format!(
                    "{} changed since it was offered (it is shorter now): {e}",
                    path.display()
                )
            })?;
            left -= block.len() as u64;
            if tx.blocking_send(Ok(block)).is_err() {
                return Ok(());
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = tx.blocking_send(Err(e));
    }
}

/// What the receiving stream hands its disk thread.
enum Block {
    Data(Vec<u8>),
    /// Every byte came: check the file and give it its name.
    End,
}

/// Receives a file's stream into its partial file in `dir`, checks it and names it: the name
/// it was stored under and its path.
async fn receive_file(
    mut reader: FrameReader<RecvStream>,
    mut opener: protocol::e2e::Opener,
    expected: Expected,
    dir: PathBuf,
    done: Arc<AtomicU64>,
) -> Result<(String, PathBuf), ReceiveError> {
    let violation = |e: PeerPlaneError| ReceiveError::Violation(e.to_string());
    let mut check = StreamCheck::new(&expected);
    let first = opener
        .open_in_place(reader.frame_mut())
        .map_err(|e| violation(e.into()))?;
    check
        .record(first)
        .map_err(|e| ReceiveError::Violation(e.to_string()))?;
    let (tx, blocks) = mpsc::channel::<Block>(BLOCKS_WAITING);
    let (result_tx, result) = oneshot::channel();
    let disk = expected.clone();
    std::thread::Builder::new()
        .name("file-write".into())
        .spawn(move || {
            let _ = result_tx.send(write_blocks(&dir, &disk, blocks));
        })
        .map_err(|e| ReceiveError::Failed(format!("cannot start writing the file: {e}")))?;
    let mut batch = Vec::with_capacity(BLOCK);
    let stopped = |e: PeerPlaneError| match e {
        PeerPlaneError::Broken(why) => {
            ReceiveError::Failed(format!("the file's stream was cut off: {why}"))
        }
        other => ReceiveError::Violation(other.to_string()),
    };
    while !opener.is_finished() {
        let Some(record) = reader
            .next_frame_mut()
            .await
            .map_err(|e| stopped(e.into()))?
        else {
            opener.finish().map_err(|e| violation(e.into()))?;
            break;
        };
        let plaintext = opener
            .open_in_place(record)
            .map_err(|e| violation(e.into()))?;
        let data = check
            .record(plaintext)
            .map_err(|e| ReceiveError::Violation(e.to_string()))?;
        batch.extend_from_slice(data);
        if batch.len() >= BLOCK {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BLOCK));
            let n = full.len() as u64;
            if tx.send(Block::Data(full)).await.is_err() {
                // The disk thread stopped: it says why.
                drop(tx);
                return Err(ReceiveError::Failed(match result.await {
                    Ok(Err(why)) => why,
                    _ => "the file could not be written".into(),
                }));
            }
            done.fetch_add(n, Ordering::Relaxed);
        }
    }
    check
        .end()
        .map_err(|e| ReceiveError::Violation(e.to_string()))?;
    // Nothing may follow the last record.
    if let Some(extra) = reader
        .next_frame_mut()
        .await
        .map_err(|e| stopped(e.into()))?
    {
        opener
            .open_in_place(extra)
            .map_err(|e| violation(e.into()))?;
    }
    let n = batch.len() as u64;
    let _ = tx.send(Block::Data(batch)).await;
    let _ = tx.send(Block::End).await;
    drop(tx);
    let stored = result
        .await
        .map_err(|_| ReceiveError::Failed("the file could not be written".into()))?
        .map_err(ReceiveError::Failed)?;
    done.fetch_add(n, Ordering::Relaxed);
    Ok(stored)
}

/// The receiving disk thread: opens the partial file (hashing what it held), appends each
/// block and hashes it; at the end checks the SHA-256 and gives the file a name not taken.
/// Without [`Block::End`] (the stream stopped) the partial file stays for a later resume.
fn write_blocks(
    dir: &Path,
    expected: &Expected,
    mut blocks: mpsc::Receiver<Block>,
) -> Result<(String, PathBuf), String> {
    let name = expected.file.file_name().to_string();
    let partial = dir.join(transfer::partial_name(&name, &expected.file.sha256));
    let cannot =
        |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", partial.display());
    let mut verifier = Verifier::new();
    let mut file = if expected.start == 0 {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)
            .map_err(|e| cannot("write", e))?
    } else {
        let mut held = std::fs::File::open(&partial).map_err(|e| cannot("read", e))?;
        let mut buf = vec![0u8; BLOCK];
        let mut left = expected.start;
        while left > 0 {
            let n = (left as usize).min(BLOCK);
            held.read_exact(&mut buf[..n])
                .map_err(|e| cannot("read what arrived before of", e))?;
            verifier.update(&buf[..n]);
            left -= n as u64;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&partial)
            .map_err(|e| cannot("write", e))?;
        f.set_len(expected.start).map_err(|e| cannot("write", e))?;
        f.seek(SeekFrom::Start(expected.start))
            .map_err(|e| cannot("write", e))?;
        f
    };
    loop {
        match blocks.blocking_recv() {
            Some(Block::Data(data)) => {
                verifier.update(&data);
                file.write_all(&data).map_err(|e| cannot("write", e))?;
            }
            Some(Block::End) => break,
            None => return Err("the file's stream stopped; what arrived is kept".into()),
        }
    }
    drop(file);
    if !verifier.matches(expected.file.size, &expected.file.sha256) {
        let _ = std::fs::remove_file(&partial);
        return Err(format!(
            "{} arrived whole but its SHA-256 differs from the one offered (it changed while \
             it was sent, or was damaged on disk); it was deleted",
            expected.file.name()
        ));
    }
    // A name not taken: linking fails where the name exists, so nothing is overwritten even
    // by a file that appeared meanwhile.
    for n in 0..NAME_TRIES {
        let candidate = transfer::numbered_name(&name, n);
        let path = dir.join(&candidate);
        match std::fs::hard_link(&partial, &path) {
            Ok(()) => {
                let _ = std::fs::remove_file(&partial);
                return Ok((candidate, path));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot name the file {}: {e}; it is kept as {}",
                    path.display(),
                    partial.display()
                ))
            }
        }
    }
    Err(format!(
        "every name like {name} is taken in {}; the file is kept as {}",
        dir.display(),
        partial.display()
    ))
}

impl Direction {
    /// A word for scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Sending => "sending",
            Direction::Receiving => "receiving",
        }
    }
}

impl FileNews {
    /// The news as a JSON event for scripts, the same on both ends: its name and fields (the
    /// program adds who the other end is).
    pub fn event(&self) -> (&'static str, serde_json::Value) {
        use serde_json::json;
        let file = |f: &FileInfo| {
            json!({ "offer": f.offer, "file": f.id, "name": f.name, "size": f.size,
                    "sha256": transfer::sha256_hex(&f.sha256) })
        };
        let merge = |mut base: serde_json::Value, more: serde_json::Value| {
            if let (Some(b), serde_json::Value::Object(m)) = (base.as_object_mut(), more) {
                b.extend(m);
            }
            base
        };
        match self {
            FileNews::Offered { offer, fetched } => (
                "files_offered",
                json!({
                    "offer": offer.id, "total": offer.total, "fetched": fetched.is_some(),
                    "files": offer.files.iter().map(|f| json!({
                        "file": f.id, "name": f.name(), "size": f.size,
                        "sha256": transfer::sha256_hex(&f.sha256),
                    })).collect::<Vec<_>>(),
                }),
            ),
            FileNews::FetchAsked { request, path } => {
                ("fetch_asked", json!({ "request": request, "path": path }))
            }
            FileNews::Offering {
                offer,
                tag: _,
                fetch,
                files,
                total,
            } => (
                "files_offering",
                json!({ "offer": offer, "total": total, "fetch": fetch,
                        "files": files.iter().map(file).collect::<Vec<_>>() }),
            ),
            FileNews::OfferFailed { reason, .. } => {
                ("files_not_offered", json!({ "message": reason }))
            }
            FileNews::Accepted {
                offer,
                by,
                resumed,
                ours,
                dir,
            } => (
                "files_accepted",
                json!({ "offer": offer, "by": by.as_str(), "resumed": resumed, "ours": ours,
                        "dir": dir.as_ref().map(|d| d.display().to_string()) }),
            ),
            FileNews::Declined {
                offer,
                reason,
                ours,
            } => (
                "files_declined",
                json!({ "offer": offer, "message": reason, "ours": ours }),
            ),
            FileNews::ListAsked { request, path } => {
                ("list_asked", json!({ "request": request, "path": path }))
            }
            FileNews::ListServed { listing, .. } | FileNews::Listed { listing, .. } => (
                if matches!(self, FileNews::Listed { .. }) {
                    "listing"
                } else {
                    "listing_served"
                },
                json!({ "path": listing.path, "omitted": listing.omitted,
                        "entries": listing.entries.iter().map(|e| json!({
                            "name": e.name, "folder": e.folder, "size": e.size,
                        })).collect::<Vec<_>>() }),
            ),
            FileNews::FetchRefused { path, reason, .. } => {
                ("fetch_refused", json!({ "path": path, "message": reason }))
            }
            FileNews::Started {
                file: f,
                direction,
                from,
            } => (
                "file_started",
                merge(
                    file(f),
                    json!({ "direction": direction.as_str(), "from": from }),
                ),
            ),
            FileNews::Progress {
                file: f,
                direction,
                done,
                rate,
                eta_secs,
            } => (
                "file_progress",
                merge(
                    file(f),
                    json!({ "direction": direction.as_str(), "bytes": done,
                            "rate_bytes_per_sec": rate.round() as u64, "eta_secs": eta_secs }),
                ),
            ),
            FileNews::Done {
                file: f,
                direction,
                stored_as,
                path,
                from,
                by,
            } => (
                "file_done",
                merge(
                    file(f),
                    json!({ "direction": direction.as_str(), "stored_as": stored_as,
                            "path": path.as_ref().map(|p| p.display().to_string()),
                            "resumed_from": from, "by": by.as_str() }),
                ),
            ),
            FileNews::Failed {
                file: f,
                direction,
                reason,
            } => (
                "file_failed",
                merge(
                    file(f),
                    json!({ "direction": direction.as_str(), "message": reason }),
                ),
            ),
            FileNews::Cancelled {
                offer,
                reason,
                by_other_end,
            } => (
                "files_cancelled",
                json!({ "offer": offer, "message": reason, "by_other_end": by_other_end }),
            ),
        }
    }
}

/// The person's Downloads folder (`~/Downloads` where the desktop names none): where files
/// go unless the person chooses another folder.
pub fn downloads() -> PathBuf {
    directories::UserDirs::new()
        .map(|d| {
            d.download_dir()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| d.home_dir().join("Downloads"))
        })
        .unwrap_or_else(|| PathBuf::from("Downloads"))
}

/// Words for files by their names: the one file's name, the one folder they share, or how many
/// they are ([`transfer::summary`]).
pub fn summary_of(files: &[FileInfo]) -> String {
    let paths: Vec<Vec<String>> = files
        .iter()
        .map(|f| f.name.split('/').map(String::from).collect())
        .collect();
    transfer::summary(paths.iter().map(Vec::as_slice))
}

/// How far a file has got, in words: `report.pdf: 512.0 MB of 1.0 GB (51 %), 98.2 MB/s, 6 s left`.
pub fn progress_words(
    name: &str,
    done: u64,
    size: u64,
    rate: f64,
    eta_secs: Option<u64>,
) -> String {
    let percent = (done * 100).checked_div(size).unwrap_or(100);
    let mut words = format!(
        "{name}: {} of {} ({percent} %)",
        transfer::bytes_words(done),
        transfer::bytes_words(size)
    );
    if rate > 0.0 {
        words.push_str(&format!(", {}/s", transfer::bytes_words(rate as u64)));
    }
    if let Some(eta) = eta_secs {
        words.push_str(&format!(", {} left", time_words(eta)));
    }
    words
}

/// Seconds as a person says them: `45 s`, `3 min 20 s`, `1 h 5 min`.
pub fn time_words(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}
