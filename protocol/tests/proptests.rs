//! Property tests of the wire format, the framing and the screen codec as it travels.
//!
//! - every control and peer message round-trips through `encode_frame`, `split_frame` (and
//!   `FrameReader`) and the plane's decoder, alone and as a stream of frames;
//! - a length prefix above the maximum is refused by `split_frame` and by `FrameReader` after
//!   reading only the 4 prefix bytes and without allocating the announced length;
//! - sequences of screens (solid areas, noise, small edits, scrolls, resizes), encoded by a
//!   `codec::Encoder` on every k-th screen only and applied by a `codec::Decoder` after a trip over
//!   the wire, give back each encoded screen bit for bit;
//! - truncated or bit-flipped peer messages never make the decoder or `Decoder::apply` panic.
//!
//! Case counts are kept moderate so the whole file runs in a few seconds in the debug profile;
//! `PROPTEST_CASES=10000 cargo test -p protocol --test proptests` runs more.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll};

use proptest::prelude::*;
use proptest::sample::Index;
use protocol::codec::{Decoder as Framebuffer, Encoder, BPP};
use protocol::control::{
    ErrorCode, FromRelay, PeerInfo, PeerLeftReason, Role, SessionCode, TechnicianAccount, ToRelay,
};
use protocol::framing::{split_frame, FrameError, FrameReader};
use protocol::input::{InputEvent, Key, Modifiers, MouseButton, NamedKey};
use protocol::peer::{ConsentState, EndReason, PeerMessage, ScreenUpdate};
use protocol::wire::{self, DecodeError, CONTROL_MAX_FRAME, PEER_MAX_FRAME};
use tokio::io::{AsyncRead, ReadBuf};

// ---------------------------------------------------------------------------------------------
// Allocation tracking: the largest single allocation made on this thread since the last reset.
// It lets the oversized-prefix tests check "refused before allocation" rather than assume it.

struct TrackingAlloc;

thread_local! {
    static LARGEST_ALLOC: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(size: usize) {
    // `try_with`: allocations can happen while thread-locals are being torn down.
    let _ = LARGEST_ALLOC.try_with(|l| l.set(l.get().max(size)));
}

fn reset_largest_alloc() {
    LARGEST_ALLOC.with(|l| l.set(0));
}

fn largest_alloc() -> usize {
    LARGEST_ALLOC.with(Cell::get)
}

unsafe impl GlobalAlloc for TrackingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: TrackingAlloc = TrackingAlloc;

// ---------------------------------------------------------------------------------------------
// Strategies for every message type.

/// Any text, control characters and astral planes included.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..24).prop_map(|cs| cs.into_iter().collect())
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Agent), Just(Role::Technician)]
}

/// Codes the relay issues, and whatever string a peer puts in their place (the type does not
/// check what it deserializes).
fn session_code() -> impl Strategy<Value = SessionCode> {
    prop_oneof![
        "[0-9]{9,32}".prop_map(|d| SessionCode::from_digits(d).expect("digits")),
        text().prop_map(|s| {
            wire::decode_control(&wire::encode_frame(&s)[4..]).expect("a code is a string")
        }),
    ]
}

fn to_relay() -> impl Strategy<Value = ToRelay> {
    prop_oneof![
        (any::<u16>(), role(), text()).prop_map(|(version, role, software)| ToRelay::Hello {
            version,
            role,
            software
        }),
        Just(ToRelay::Register),
        session_code().prop_map(|code| ToRelay::Join { code }),
        (text(), text(), prop::option::of(text())).prop_map(|(name, password, one_time)| {
            ToRelay::Login {
                name,
                password,
                one_time,
            }
        }),
        text().prop_map(|token| ToRelay::Resume { token }),
        text().prop_map(|token| ToRelay::Logout { token }),
        (text(), any::<u64>(), any::<u64>(), any::<[u8; 32]>()).prop_map(
            |(log_id, index, time_ms, chain_hash)| ToRelay::Checkpoint {
                log_id,
                checkpoint: protocol::sessionlog::Checkpoint {
                    index,
                    time_ms,
                    chain_hash
                },
            }
        ),
        (text(), text(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(id, chain_hash, started_unix_ms, size, records)| ToRelay::UploadBegin {
                offer: protocol::control::LogOffer {
                    id,
                    agent: "agent".into(),
                    started_unix_ms,
                    duration_ms: 5,
                    records,
                    chain_hash,
                    size,
                    sha256: "00".repeat(32),
                },
            }
        ),
        (
            text(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(log_id, offset, data)| ToRelay::UploadChunk {
                log_id,
                offset,
                data
            }),
        text().prop_map(|log_id| ToRelay::UploadEnd { log_id }),
        (text(), any::<u64>()).prop_map(|(log_id, offset)| ToRelay::FetchLog { log_id, offset }),
    ]
}

fn technician_account() -> impl Strategy<Value = TechnicianAccount> {
    (text(), any::<u8>(), text()).prop_map(|(name, tier, organisation)| TechnicianAccount {
        name,
        tier,
        organisation,
    })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::UnsupportedVersion),
        Just(ErrorCode::UnknownCode),
        Just(ErrorCode::ExpiredCode),
        Just(ErrorCode::UsedCode),
        any::<u32>().prop_map(|retry_after_secs| ErrorCode::RateLimited { retry_after_secs }),
        Just(ErrorCode::ProtocolViolation),
        Just(ErrorCode::MalformedMessage),
        Just(ErrorCode::FrameTooLarge),
        Just(ErrorCode::ShuttingDown),
        Just(ErrorCode::Internal),
        Just(ErrorCode::NotLoggedIn),
        Just(ErrorCode::BadCredentials),
        Just(ErrorCode::AccountDisabled),
        Just(ErrorCode::TokenExpired),
        Just(ErrorCode::TokenRevoked),
        Just(ErrorCode::NotPermitted),
        Just(ErrorCode::RelayGone),
    ]
}

fn peer_left_reason() -> impl Strategy<Value = PeerLeftReason> {
    prop_oneof![
        text().prop_map(|reason| PeerLeftReason::Closed { reason }),
        Just(PeerLeftReason::ConnectionLost),
        text().prop_map(|reason| PeerLeftReason::Disconnected { reason }),
    ]
}

fn from_relay() -> impl Strategy<Value = FromRelay> {
    prop_oneof![
        (any::<u16>(), text())
            .prop_map(|(version, software)| FromRelay::Welcome { version, software }),
        (session_code(), any::<u32>()).prop_map(|(code, expires_in_secs)| {
            FromRelay::Registered {
                code,
                expires_in_secs,
            }
        }),
        (
            role(),
            text(),
            text(),
            prop::option::of(technician_account())
        )
            .prop_map(|(role, description, software, account)| FromRelay::Paired {
                peer: PeerInfo {
                    role,
                    description: description.clone(),
                    software,
                    account,
                },
                session: description,
                request: None,
            }),
        (
            technician_account(),
            text(),
            any::<u64>(),
            proptest::option::of(text()),
            any::<bool>()
        )
            .prop_map(|(account, token, expires_in_secs, audit_key, optional)| {
                FromRelay::LoggedIn {
                    account,
                    token,
                    expires_in_secs,
                    recording: protocol::control::RecordingPolicy {
                        audit_key,
                        optional,
                        clipboard_content: optional,
                    },
                }
            }),
        (text(), any::<u64>()).prop_map(|(log_id, offset)| FromRelay::UploadAt { log_id, offset }),
        text().prop_map(|log_id| FromRelay::UploadStored { log_id }),
        (text(), text(), any::<u32>()).prop_map(|(id, technician, checkpoints)| {
            FromRelay::LogFound {
                log: protocol::control::LogOffer {
                    id,
                    agent: "agent".into(),
                    started_unix_ms: 1,
                    duration_ms: 2,
                    records: 3,
                    chain_hash: "ab".repeat(32),
                    size: 4,
                    sha256: "00".repeat(32),
                },
                technician,
                checkpoints,
            }
        }),
        prop::collection::vec((any::<u64>(), any::<u64>(), any::<[u8; 32]>()), 0..4).prop_map(
            |v| FromRelay::LogCheckpoints {
                checkpoints: v
                    .into_iter()
                    .map(
                        |(index, time_ms, chain_hash)| protocol::sessionlog::Checkpoint {
                            index,
                            time_ms,
                            chain_hash,
                        }
                    )
                    .collect(),
            }
        ),
        (any::<u64>(), prop::collection::vec(any::<u8>(), 0..64))
            .prop_map(|(offset, data)| FromRelay::LogChunk { offset, data }),
        Just(FromRelay::LoggedOut),
        peer_left_reason().prop_map(|reason| FromRelay::PeerLeft { reason }),
        Just(FromRelay::ShuttingDown),
        (error_code(), text()).prop_map(|(code, message)| FromRelay::Error { code, message }),
        relay_pointer().prop_map(|to| FromRelay::Redirect { to }),
        prop::collection::vec(relay_pointer(), 0..20)
            .prop_map(|relays| FromRelay::ResumeThrough { relays }),
    ]
}

fn relay_pointer() -> impl Strategy<Value = protocol::control::RelayPointer> {
    (text(), text(), text()).prop_map(
        |(name, addr, fingerprint)| protocol::control::RelayPointer {
            name,
            addr,
            fingerprint,
        },
    )
}

fn named_key() -> impl Strategy<Value = NamedKey> {
    use NamedKey::*;
    prop_oneof![
        prop::sample::select(vec![
            Return,
            Tab,
            Escape,
            Backspace,
            Delete,
            Insert,
            Home,
            End,
            PageUp,
            PageDown,
            Left,
            Right,
            Up,
            Down,
            Space,
            Shift,
            Control,
            Alt,
            Meta,
            CapsLock,
            PrintScreen,
        ]),
        any::<u8>().prop_map(F),
    ]
}

fn key() -> impl Strategy<Value = Key> {
    prop_oneof![
        any::<char>().prop_map(Key::Char),
        named_key().prop_map(Key::Named)
    ]
}

fn input_event() -> impl Strategy<Value = InputEvent> {
    prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(x, y)| InputEvent::PointerMove { x, y }),
        (
            prop::sample::select(vec![
                MouseButton::Left,
                MouseButton::Middle,
                MouseButton::Right
            ]),
            any::<bool>()
        )
            .prop_map(|(button, down)| InputEvent::Button { button, down }),
        (any::<i32>(), any::<i32>()).prop_map(|(dx, dy)| InputEvent::Wheel { dx, dy }),
        (
            any::<bool>(),
            key(),
            prop::option::of(text()),
            any::<[bool; 4]>()
        )
            .prop_map(
                |(down, key, text, [shift, ctrl, alt, meta])| InputEvent::Key {
                    down,
                    key,
                    text,
                    modifiers: Modifiers {
                        shift,
                        ctrl,
                        alt,
                        meta
                    },
                }
            ),
    ]
}

/// A real screen update, as the codec makes it for a small screen.
fn screen_update() -> impl Strategy<Value = ScreenUpdate> {
    (any::<u64>(), 1u32..=70, 1u32..=40, background()).prop_map(|(seq, w, h, bg)| {
        let screen = Screen::new(w, h, &bg);
        let mut enc = Encoder::lossless(w, h);
        enc.request_full();
        enc.encode(&screen.pixels, w, h, 0, seq)
            .expect("a full update is always sent")
    })
}

fn end_reason() -> impl Strategy<Value = EndReason> {
    prop_oneof![
        Just(EndReason::UserEnded),
        Just(EndReason::TechnicianEnded),
        Just(EndReason::SourceFinished),
        Just(EndReason::ConsentDenied),
        text().prop_map(EndReason::Error),
    ]
}

fn peer_message() -> impl Strategy<Value = PeerMessage> {
    prop_oneof![
        (any::<u32>(), any::<u32>(), text()).prop_map(|(width, height, agent_version)| {
            PeerMessage::SessionStart {
                width,
                height,
                agent_version,
            }
        }),
        screen_update().prop_map(PeerMessage::ScreenUpdate),
        any::<u64>().prop_map(|seq| PeerMessage::UpdateAck { seq }),
        input_event().prop_map(PeerMessage::Input),
        prop::sample::select(vec![
            ConsentState::ViewOnly,
            ConsentState::Control,
            ConsentState::Denied
        ])
        .prop_map(PeerMessage::Consent),
        end_reason().prop_map(|reason| PeerMessage::EndSession { reason }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Round trips.

/// Runs a future whose reader is in memory, so it never waits.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Encodes `msgs` one frame each, and checks that each frame alone and the concatenated stream
/// split (with `split_frame` and with `FrameReader`) and decode back to `msgs`.
fn check_round_trip<T>(
    msgs: &[T],
    max: usize,
    decode: fn(&[u8]) -> Result<T, DecodeError>,
) -> Result<(), TestCaseError>
where
    T: serde::Serialize + PartialEq + std::fmt::Debug,
{
    let mut stream = Vec::new();
    for m in msgs {
        let frame = wire::encode_frame(m);
        let (payload, used) = split_frame(&frame, max)?.expect("a whole frame");
        prop_assert_eq!(used, frame.len());
        prop_assert_eq!(&decode(payload)?, m);
        // Any shorter prefix is not a frame yet.
        prop_assert!(split_frame(&frame[..frame.len() - 1], max)?.is_none());
        let start = stream.len();
        wire::encode_frame_into(m, &mut stream);
        prop_assert_eq!(&stream[start..], &frame[..]);
    }

    let mut rest = &stream[..];
    for m in msgs {
        let (payload, used) = split_frame(rest, max)?.expect("a whole frame");
        prop_assert_eq!(&decode(payload)?, m);
        rest = &rest[used..];
    }
    prop_assert!(rest.is_empty());

    block_on(async {
        let mut reader = FrameReader::new(&stream[..], max);
        for m in msgs {
            let payload = reader.next_frame().await?.expect("a frame");
            prop_assert_eq!(&decode(payload)?, m);
        }
        prop_assert!(reader.next_frame().await?.is_none());
        Ok::<(), TestCaseError>(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn to_relay_round_trips(msgs in prop::collection::vec(to_relay(), 1..5)) {
        check_round_trip(&msgs, CONTROL_MAX_FRAME, wire::decode_control)?;
    }

    #[test]
    fn from_relay_round_trips(msgs in prop::collection::vec(from_relay(), 1..5)) {
        check_round_trip(&msgs, CONTROL_MAX_FRAME, wire::decode_control)?;
    }

    #[test]
    fn peer_message_round_trips(msgs in prop::collection::vec(peer_message(), 1..5)) {
        check_round_trip(&msgs, PEER_MAX_FRAME, wire::decode_peer)?;
    }

    /// The relay's version check works on every hello, whatever follows the version.
    #[test]
    fn hello_version_is_peeked(version in any::<u16>(), role in role(), software in text()) {
        let frame = wire::encode_frame(&ToRelay::Hello { version, role, software });
        prop_assert_eq!(protocol::control::peek_hello_version(&frame[4..]), Some(version));
    }
}

// ---------------------------------------------------------------------------------------------
// Oversized prefixes.

/// A stream that announces `len` and then has an endless body, delivered `chunk` bytes at a
/// time; it counts what was taken from it.
struct Announcing {
    header: [u8; 4],
    chunk: usize,
    delivered: usize,
}

impl AsyncRead for Announcing {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(buf.remaining());
        for _ in 0..n {
            let b = self.header.get(self.delivered).copied().unwrap_or(0xab);
            buf.put_slice(&[b]);
            self.delivered += 1;
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads one frame from a stream announcing `len`; returns the result, the bytes taken from
/// the stream and the largest allocation made meanwhile.
async fn read_announced(
    len: u32,
    max: usize,
    chunk: usize,
) -> (Result<usize, FrameError>, usize, usize) {
    let mut reader = FrameReader::new(
        Announcing {
            header: len.to_le_bytes(),
            chunk,
            delivered: 0,
        },
        max,
    );
    reset_largest_alloc();
    let result = reader.next_frame().await.map(|f| f.expect("a frame").len());
    let largest = largest_alloc();
    (result, reader.get_mut().delivered, largest)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn oversized_prefix_is_refused_before_allocation(
        max in prop_oneof![0usize..=64, Just(CONTROL_MAX_FRAME), Just(PEER_MAX_FRAME)],
        excess in prop_oneof![1u64..=16, any::<u32>().prop_map(u64::from)],
        tail in prop::collection::vec(any::<u8>(), 0..64),
        chunk in 1usize..=8,
    ) {
        let len = (max as u64 + excess).min(u32::MAX as u64) as u32;
        prop_assume!(len as usize > max);

        let mut bytes = len.to_le_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        reset_largest_alloc();
        let split = split_frame(&bytes, max);
        prop_assert!(largest_alloc() < len as usize);
        prop_assert!(
            matches!(split, Err(FrameError::TooLarge { len: l, max: m }) if l == len as usize && m == max),
            "split_frame gave {:?}", split.map(|f| f.map(|(p, u)| (p.len(), u)))
        );

        let (result, delivered, largest) = block_on(read_announced(len, max, chunk));
        prop_assert!(
            matches!(result, Err(FrameError::TooLarge { len: l, max: m }) if l == len as usize && m == max),
            "FrameReader gave {:?}", result
        );
        prop_assert_eq!(delivered, 4, "the reader went past the prefix");
        prop_assert!(largest < len as usize, "an allocation of {} bytes for a refused frame", largest);
    }
}

#[tokio::test]
async fn prefix_at_the_limit_is_read_and_one_above_is_not() {
    for max in [0, 1, 100, CONTROL_MAX_FRAME] {
        let (result, delivered, _) = read_announced(max as u32, max, 3).await;
        assert_eq!(result.unwrap(), max);
        assert_eq!(delivered, 4 + max);

        let (result, delivered, largest) = read_announced(max as u32 + 1, max, 3).await;
        assert!(matches!(result, Err(FrameError::TooLarge { len, .. }) if len == max + 1));
        assert_eq!(delivered, 4);
        assert!(largest <= max);
    }
    let (result, delivered, largest) = read_announced(u32::MAX, PEER_MAX_FRAME, 4).await;
    assert!(matches!(result, Err(FrameError::TooLarge { len, .. }) if len == u32::MAX as usize));
    assert_eq!(delivered, 4);
    assert!(
        largest < 1 << 20,
        "{largest} bytes allocated for a refused frame"
    );
}

// ---------------------------------------------------------------------------------------------
// The tile codec on sequences of screens.

/// splitmix64: pseudo-random bytes from a seed, so that a screen's content shrinks as one number.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

#[derive(Debug, Clone)]
enum Background {
    Solid([u8; 4]),
    Noise(u64),
    /// Horizontal bands of solid colour, `height` rows each: solid tiles and compressible ones.
    Bands {
        height: u8,
        seed: u64,
    },
}

#[derive(Debug, Clone)]
enum Op {
    /// Nothing changes (the encoder must say so).
    Same,
    Fill {
        x: u16,
        y: u16,
        w: u8,
        h: u8,
        px: [u8; 4],
    },
    Noise {
        x: u16,
        y: u16,
        w: u8,
        h: u8,
        seed: u64,
    },
    Pixel {
        x: u16,
        y: u16,
        px: [u8; 4],
    },
    /// The content moves up by `dy` rows, the bottom rows come back at the top.
    Scroll {
        dy: u8,
    },
    /// The screen changes size, keeping its top-left corner or repainted.
    Resize {
        width: u32,
        height: u32,
        keep: bool,
        background: Background,
    },
    /// The viewer asks for a whole screen (takes effect at the next encoded screen).
    RequestFull,
}

fn pixel() -> impl Strategy<Value = [u8; 4]> {
    // Few colours, so that edits often repaint what is already there.
    prop_oneof![
        prop::sample::select(vec![
            [0, 0, 0, 0],
            [255, 255, 255, 0],
            [0x20, 0x40, 0x80, 0]
        ]),
        any::<[u8; 4]>(),
    ]
}

fn background() -> impl Strategy<Value = Background> {
    prop_oneof![
        pixel().prop_map(Background::Solid),
        any::<u64>().prop_map(Background::Noise),
        (1u8..=80, any::<u64>()).prop_map(|(height, seed)| Background::Bands { height, seed }),
    ]
}

const MAX_W: u32 = 150;
const MAX_H: u32 = 100;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => Just(Op::Same),
        4 => (any::<u16>(), any::<u16>(), 1u8..=80, 1u8..=80, pixel())
            .prop_map(|(x, y, w, h, px)| Op::Fill { x, y, w, h, px }),
        2 => (any::<u16>(), any::<u16>(), 1u8..=40, 1u8..=40, any::<u64>())
            .prop_map(|(x, y, w, h, seed)| Op::Noise { x, y, w, h, seed }),
        3 => (any::<u16>(), any::<u16>(), pixel()).prop_map(|(x, y, px)| Op::Pixel { x, y, px }),
        1 => any::<u8>().prop_map(|dy| Op::Scroll { dy }),
        1 => (1..=MAX_W, 1..=MAX_H, any::<bool>(), background()).prop_map(
            |(width, height, keep, background)| Op::Resize { width, height, keep, background }
        ),
        1 => Just(Op::RequestFull),
    ]
}

struct Screen {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Screen {
    fn new(width: u32, height: u32, bg: &Background) -> Self {
        let (width, height) = (width as usize, height as usize);
        let len = width * height * BPP;
        let pixels = match bg {
            Background::Solid(px) => px.repeat(width * height),
            Background::Noise(seed) => noise(*seed, len),
            Background::Bands { height: band, seed } => {
                let colours = noise(*seed, height.div_ceil(*band as usize) * BPP);
                (0..height)
                    .flat_map(|y| {
                        let c = &colours[y / *band as usize * BPP..][..BPP];
                        c.repeat(width)
                    })
                    .collect()
            }
        };
        Screen {
            width,
            height,
            pixels,
        }
    }

    /// Clips a rectangle whose corner is anywhere (taken modulo the size) to the screen.
    fn clip(&self, x: u16, y: u16, w: u8, h: u8) -> (usize, usize, usize, usize) {
        let x = x as usize % self.width;
        let y = y as usize % self.height;
        (
            x,
            y,
            (w as usize).min(self.width - x),
            (h as usize).min(self.height - y),
        )
    }

    fn paint(&mut self, (x, y, w, h): (usize, usize, usize, usize), src: &[u8]) {
        let mut src = src.chunks_exact(w * BPP);
        for row in y..y + h {
            let o = (row * self.width + x) * BPP;
            self.pixels[o..o + w * BPP].copy_from_slice(src.next().expect("enough pixels"));
        }
    }

    /// Applies an edit; returns true when the encoder should be asked for a whole screen.
    fn apply(&mut self, op: &Op) -> bool {
        match op {
            Op::Same => {}
            Op::Fill { x, y, w, h, px } => {
                let r = self.clip(*x, *y, *w, *h);
                self.paint(r, &px.repeat(r.2 * r.3));
            }
            Op::Noise { x, y, w, h, seed } => {
                let r = self.clip(*x, *y, *w, *h);
                self.paint(r, &noise(*seed, r.2 * r.3 * BPP));
            }
            Op::Pixel { x, y, px } => {
                let r = self.clip(*x, *y, 1, 1);
                self.paint(r, px);
            }
            Op::Scroll { dy } => {
                let stride = self.width * BPP;
                self.pixels.rotate_left(*dy as usize % self.height * stride);
            }
            Op::Resize {
                width,
                height,
                keep,
                background,
            } => {
                let mut next = Screen::new(*width, *height, background);
                if *keep {
                    let (w, h) = (self.width.min(next.width), self.height.min(next.height));
                    for row in 0..h {
                        let o = row * self.width * BPP;
                        next.paint((0, row, w, 1), &self.pixels[o..o + w * BPP]);
                    }
                }
                *self = next;
            }
            Op::RequestFull => return true,
        }
        false
    }
}

/// Where two images first differ, for a readable failure.
fn first_difference(a: &[u8], b: &[u8], width: usize) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} bytes against {}", a.len(), b.len()));
    }
    let i = a.iter().zip(b).position(|(x, y)| x != y)?;
    let p = i / BPP;
    Some(format!(
        "pixel ({}, {}) is {:?}, expected {:?}",
        p % width,
        p / width,
        &a[p * BPP..][..BPP],
        &b[p * BPP..][..BPP]
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encoded_sequences_reproduce_every_screen(
        width in 1..=MAX_W,
        height in 1..=MAX_H,
        first in background(),
        ops in prop::collection::vec(op(), 1..20),
        every in 1usize..=4,
    ) {
        let mut screen = Screen::new(width, height, &first);
        let mut enc = Encoder::lossless(width, height);
        let mut fb = Framebuffer::new();
        let mut seq = 0u64;
        let mut full_pending = false;
        // What the viewer held after the last encoded screen.
        let mut last: Option<(usize, usize, Vec<u8>)> = None;

        for i in 0..=ops.len() {
            if i > 0 {
                full_pending |= screen.apply(&ops[i - 1]);
            }
            // The encoder sees the first screen, every `every`-th after it, and the last one;
            // the screens in between merge into the next update.
            if !(i % every == 0 || i == ops.len()) {
                continue;
            }
            if full_pending {
                enc.request_full();
            }
            seq += 1;
            let (w, h) = (screen.width as u32, screen.height as u32);
            let unchanged = !full_pending
                && last.as_ref().is_some_and(|(lw, lh, px)| {
                    (*lw, *lh) == (screen.width, screen.height) && *px == screen.pixels
                });
            match enc.encode(&screen.pixels, w, h, i as u64 * 50, seq) {
                Some(update) => {
                    prop_assert!(!unchanged, "an update for an unchanged screen");
                    prop_assert_eq!((update.seq, update.width, update.height), (seq, w, h));
                    // Over the wire, as the technician receives it.
                    let frame = wire::encode_frame(&PeerMessage::ScreenUpdate(update));
                    let (payload, _) = split_frame(&frame, PEER_MAX_FRAME)?.expect("a frame");
                    let PeerMessage::ScreenUpdate(update) = wire::decode_peer(payload)? else {
                        panic!("not a screen update");
                    };
                    fb.apply(&update).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
                None => prop_assert!(unchanged, "no update for a changed screen"),
            }
            full_pending = false;
            prop_assert_eq!((fb.width(), fb.height()), (w, h));
            if let Some(diff) = first_difference(fb.pixels(), &screen.pixels, screen.width) {
                return Err(TestCaseError::fail(format!("after screen {i}: {diff}")));
            }
            last = Some((screen.width, screen.height, screen.pixels.clone()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Damaged peer messages.

/// A screen update as the encoder makes it , for a small screen.
fn real_update() -> impl Strategy<Value = PeerMessage> {
    (
        1u32..=70,
        1u32..=40,
        background(),
        prop::collection::vec(op(), 0..4),
    )
        .prop_map(|(w, h, bg, ops)| {
            let mut screen = Screen::new(w, h, &bg);
            for op in &ops {
                if !matches!(op, Op::Resize { .. }) {
                    screen.apply(op);
                }
            }
            let update = Encoder::lossless(w, h)
                .encode(&screen.pixels, w, h, 0, 1)
                .expect("a first screen is always sent");
            PeerMessage::ScreenUpdate(update)
        })
}

/// Decodes a payload, and applies it if it is a screen update, both to an empty framebuffer
/// and to one holding a screen already. Only a panic fails.
fn decode_and_apply(payload: &[u8], held: &Framebuffer) {
    match wire::decode_peer::<PeerMessage>(payload) {
        Ok(PeerMessage::ScreenUpdate(update)) => {
            let _ = Framebuffer::new().apply(&update);
            let mut fb = Framebuffer::new();
            if held.width() > 0 {
                let (w, h) = (held.width(), held.height());
                let whole = Encoder::lossless(w, h)
                    .encode(held.pixels(), w, h, 0, 0)
                    .expect("a first screen is always sent");
                let _ = fb.apply(&whole);
            }
            let _ = fb.apply(&update);
        }
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Every truncation of the frame, and a flip of every byte of it, is refused or decoded and
    /// applied without a panic.
    #[test]
    fn damaged_peer_messages_never_panic(
        msg in prop_oneof![peer_message(), real_update()],
        mask in 1u8..=255,
        also_truncate in any::<Index>(),
    ) {
        let frame = wire::encode_frame(&msg);
        let mut held = Framebuffer::new();
        if let PeerMessage::ScreenUpdate(u) = &msg {
            let _ = held.apply(u);
        }
        for cut in 0..frame.len() {
            prop_assert!(split_frame(&frame[..cut], PEER_MAX_FRAME)?.is_none());
            if cut >= 4 {
                decode_and_apply(&frame[4..cut], &held);
            }
        }
        let mut damaged = frame.clone();
        for i in 0..frame.len() {
            damaged[i] ^= mask;
            if let Ok(Some((payload, _))) = split_frame(&damaged, PEER_MAX_FRAME) {
                decode_and_apply(payload, &held);
            }
            decode_and_apply(&damaged[4..], &held);
            let cut = 4 + also_truncate.index(frame.len() - 3);
            decode_and_apply(&damaged[4..cut], &held);
            damaged[i] ^= mask;
        }
    }
}
