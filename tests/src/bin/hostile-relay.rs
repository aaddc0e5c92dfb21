//! `hostile-relay`: the real relay (its library, its forwarding code) with a tap on the peer plane
//! that plays a compromised relay. It writes every peer-plane byte it forwards to a file, and with
//! `--tamper MODE` it also meddles once:
//!
//! - `flip-update`: flips one byte in the middle of the first screen update;
//! - `truncate-update`: passes on only the first half of the first screen update's stream;
//! - `drop-update`: never passes on the second screen update's stream;
//! - `replay-input`: sends the technician's first input event to the agent a second time, later;
//! - `drop-input`: withholds the technician's first input event;
//! - `inject-input`: slips a forged input event (a pointer move to 777,777, framed as a peer
//!   message would be) in after the technician's first one.
//!
//! The tap sees whole frames (it buffers a stream until a frame is complete), so it knows where
//! messages begin without being able to read them. On the technician's half of the session
//! stream the first frame is the key exchange's reply; after it, every sealed record whose
//! payload has at least [`INPUT_MIN`] bytes carries an input event (acks, the recording notice
//! and the closing record are shorter).
//!
//! Start-up output is the relay's ("listening on ADDR", "certificate fingerprint (SHA-256): FP"),
//! so the tests start it as they start the relay.
//!
//! Usage: `hostile-relay --listen ADDR --data-dir DIR --record FILE [--tamper MODE]`

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use protocol::control::Role;
use protocol::input::InputEvent;
use protocol::peer::PeerMessage;
use relay::config::Config;
use relay::forward::{StreamInfo, StreamTap, Tap};
use relay::server::Relay;

/// Payload bytes from which a sealed record on the technician's session half is an input event.
const INPUT_MIN: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tamper {
    None,
    FlipUpdate,
    TruncateUpdate,
    DropUpdate,
    ReplayInput,
    DropInput,
    InjectInput,
}

impl Tamper {
    fn parse(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "none" => Tamper::None,
            "flip-update" => Tamper::FlipUpdate,
            "truncate-update" => Tamper::TruncateUpdate,
            "drop-update" => Tamper::DropUpdate,
            "replay-input" => Tamper::ReplayInput,
            "drop-input" => Tamper::DropInput,
            "inject-input" => Tamper::InjectInput,
            other => bail!(
                "unknown tampering `{other}`: none, flip-update, truncate-update, drop-update, \
                 replay-input, drop-input or inject-input"
            ),
        })
    }
}

/// The tap: one [`Frames`] per stream direction, all writing to one recording.
struct Hostile {
    tamper: Tamper,
    record: Arc<Mutex<File>>,
}

impl Tap for Hostile {
    fn stream(&self, info: StreamInfo) -> Option<Box<dyn StreamTap>> {
        Some(Box::new(Frames {
            info,
            tamper: self.tamper,
            record: self.record.clone(),
            pending: BytesMut::new(),
            frames: 0,
            remembered: None,
            done: false,
        }))
    }

    fn datagram(&self, _from: Role, bytes: Bytes) -> Option<Bytes> {
        self.record
            .lock()
            .expect("record lock")
            .write_all(&bytes)
            .expect("write the recording");
        Some(bytes)
    }
}

/// One direction of one stream, cut into frames.
struct Frames {
    info: StreamInfo,
    tamper: Tamper,
    record: Arc<Mutex<File>>,
    /// Bytes of a frame not yet complete.
    pending: BytesMut,
    /// Whole frames seen so far.
    frames: u64,
    /// The input event kept for `replay-input`.
    remembered: Option<Bytes>,
    /// The tampering was done.
    done: bool,
}

impl Frames {
    fn technician_session_half(&self) -> bool {
        self.info.bidirectional && self.info.from == Role::Technician
    }

    /// The stream of screen update `n` (counting from 0), as the agent opened them.
    fn update_stream(&self, n: u64) -> bool {
        !self.info.bidirectional && self.info.from == Role::Agent && self.info.index == n
    }

    /// What to pass on for one whole frame (length prefix included).
    fn frame(&mut self, mut frame: BytesMut, out: &mut BytesMut) {
        let index = self.frames;
        self.frames += 1;
        let payload_len = frame.len() - 4;
        let is_input = self.technician_session_half() && index > 0 && payload_len >= INPUT_MIN;
        match self.tamper {
            Tamper::FlipUpdate
                if !self.done
                    && !self.info.bidirectional
                    && self.info.from == Role::Agent
                    && index == 0 =>
            {
                let middle = 4 + payload_len / 2;
                frame[middle] ^= 0x01;
                self.done = true;
            }
            Tamper::TruncateUpdate if self.update_stream(0) && index == 0 => {
                out.extend_from_slice(&frame[..frame.len() / 2]);
                return;
            }
            Tamper::ReplayInput if !self.done => {
                if let Some(old) = self.remembered.take() {
                    out.extend_from_slice(&old);
                    self.done = true;
                } else if is_input {
                    self.remembered = Some(Bytes::copy_from_slice(&frame));
                }
            }
            Tamper::DropInput if !self.done && is_input => {
                self.done = true;
                return;
            }
            Tamper::InjectInput if !self.done && is_input => {
                out.extend_from_slice(&frame);
                let forged =
                    protocol::wire::encode_frame(&PeerMessage::Input(InputEvent::PointerMove {
                        x: 777,
                        y: 777,
                    }));
                out.extend_from_slice(&forged);
                self.done = true;
                return;
            }
            _ => {}
        }
        out.extend_from_slice(&frame);
    }
}

impl StreamTap for Frames {
    fn chunk(&mut self, bytes: Bytes) -> Bytes {
        self.pending.extend_from_slice(&bytes);
        let mut out = BytesMut::new();
        loop {
            if self.pending.len() < 4 {
                break;
            }
            let len = u32::from_le_bytes(self.pending[..4].try_into().expect("4 bytes")) as usize;
            if self.pending.len() < 4 + len {
                break;
            }
            let frame = self.pending.split_to(4 + len);
            self.frame(frame, &mut out);
        }
        let out = out.freeze();
        self.record
            .lock()
            .expect("record lock")
            .write_all(&out)
            .expect("write the recording");
        out
    }

    fn forward_stream(&self) -> bool {
        !(self.tamper == Tamper::DropUpdate && self.update_stream(1))
    }

    fn finish(&mut self) -> Bytes {
        // A partial frame at the end is passed on as it is.
        let rest = self.pending.split().freeze();
        self.record
            .lock()
            .expect("record lock")
            .write_all(&rest)
            .expect("write the recording");
        rest
    }
}

struct Args {
    listen: std::net::SocketAddr,
    data_dir: PathBuf,
    record: PathBuf,
    tamper: Tamper,
}

fn args() -> anyhow::Result<Args> {
    let mut listen = None;
    let mut data_dir = None;
    let mut record = None;
    let mut tamper = Tamper::None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => listen = Some(value()?.parse().context("--listen takes ADDR:PORT")?),
            "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
            "--record" => record = Some(PathBuf::from(value()?)),
            "--tamper" => tamper = Tamper::parse(&value()?)?,
            other => bail!("unknown argument `{other}`"),
        }
    }
    Ok(Args {
        listen: listen.context("--listen is required")?,
        data_dir: data_dir.context("--data-dir is required")?,
        record: record.context("--record is required")?,
        tamper,
    })
}

async fn run() -> anyhow::Result<()> {
    let args = args()?;
    let cfg = Config {
        listen: args.listen,
        data_dir: args.data_dir.clone(),
        ..Config::default()
    };
    let id = relay::identity::load_or_generate(&cfg.data_dir)?;
    let record = File::create(&args.record)
        .with_context(|| format!("cannot create {}", args.record.display()))?;
    let tap = Hostile {
        tamper: args.tamper,
        record: Arc::new(Mutex::new(record)),
    };
    let relay = Relay::bind_with_tap(cfg, &id, Some(Arc::new(tap))).await?;
    let addr = relay.local_addr()?;
    println!("Hostile relay (tampering: {:?})", args.tamper);
    println!("  listening on {addr} (QUIC over UDP)");
    println!("  certificate fingerprint (SHA-256): {}", id.fingerprint);
    relay
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}

fn main() -> ExitCode {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hostile-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}
