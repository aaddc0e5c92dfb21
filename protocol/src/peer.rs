//! The peer plane: messages between agent and technician, forwarded by the relay.
//!
//! Streams: the agent opens one bidirectional *session stream* right after pairing. The two ends
//! first run the end-to-end key exchange on it ([`crate::e2e::Handshake`], one frame per
//! handshake message); from then on every frame of the peer plane is a sealed record
//! ([`crate::e2e::Sealer`]) carrying one [`PeerMessage`], and each end closes its direction of the
//! session stream with a sealed empty last record, so that a stream cut short is told apart from
//! one that ended. Both sides use the session stream for consent, input, acks and the end of the
//! session. Each screen update travels alone on a unidirectional stream the agent
//! opens ([`PeerMessage::ScreenUpdate`]), so a lost packet delays only that update. The
//! technician applies updates in sequence order and acknowledges each with
//! [`PeerMessage::UpdateAck`]; the agent keeps only a few unacknowledged.
//!
//! Besides the screen and input, the session stream carries the in-session tools: chat
//! ([`crate::chat`]), the shared clipboard ([`crate::clipboard`]), the list of monitors and a
//! switch between them ([`crate::monitor`]), and the shapes of the user's own pointer
//! ([`crate::cursor`]), whose position travels in sealed datagrams
//! ([`crate::cursor::PeerDatagram`]), where only the latest value matters.
//!
//! Files travel the same way ([`crate::transfer`]): offers, answers and word of each file on
//! the session stream ([`PeerMessage::File`]), each file's bytes alone on a unidirectional
//! stream its sender opens, sealed for that file.

use serde::{Deserialize, Serialize};

use crate::chat::Chat;
use crate::clipboard::ClipboardData;
use crate::cursor::CursorShape;
use crate::input::InputEvent;
use crate::monitor::{MonitorChoice, Monitors};

/// What the person at the agent's screen allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsentState {
    /// The person is being asked; nothing is shared yet.
    Asking,
    /// The technician may see the screen; input is dropped.
    ViewOnly,
    /// The technician may see the screen and use mouse and keyboard.
    Control,
    /// The person said no (or did not answer): nothing is shared.
    Denied,
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// The person at the agent ended it.
    UserEnded,
    /// The technician ended it.
    TechnicianEnded,
    /// The agent's screen source has nothing more to show (a corpus file played to its end).
    SourceFinished,
    /// Consent was refused.
    ConsentDenied,
    /// Something went wrong; words for a person.
    Error(String),
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::UserEnded => f.write_str("the user ended the session"),
            EndReason::TechnicianEnded => f.write_str("the technician ended the session"),
            EndReason::SourceFinished => f.write_str("the screen source finished"),
            EndReason::ConsentDenied => f.write_str("the user denied the session"),
            EndReason::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// Agent <-> technician.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// Agent to technician, first on the session stream.
    SessionStart {
        width: u32,
        height: u32,
        agent_version: String,
    },
    /// Agent to technician, alone on its own unidirectional stream.
    ScreenUpdate(ScreenUpdate),
    /// Technician to agent: the update with this sequence number has been applied.
    UpdateAck { seq: u64 },
    /// Technician to agent.
    Input(InputEvent),
    /// Agent to technician: what the user allows now.
    Consent(ConsentState),
    /// Either way: the session is over.
    EndSession { reason: EndReason },
    /// Technician to agent, first on the session stream: this session is recorded into a
    /// session log, so the user can be told before they consent.
    Recorded,
    /// Agent to technician, whenever it changes: who is in the session and who holds control.
    /// The first entry with `you` is the receiver.
    Participants(Vec<Participant>),
    /// Technician to agent, from the one who holds control: give it to the participant of this
    /// account name. The agent refuses (and says so in the next [`PeerMessage::Participants`])
    /// a hand-over from anyone else, or to someone the user did not allow control.
    HandOver { to: String },
    /// Technician to agent, from a lead who joined to monitor: take control from whoever holds
    /// it, where the user allowed the lead control.
    TakeOver,
    /// Either way, before consent too: a chat message (see [`crate::chat`] for who it is
    /// from).
    Chat(Chat),
    /// Either way, between the user and the technician holding control, while the user allows
    /// it: the clipboard's new content.
    Clipboard(ClipboardData),
    /// Agent to technician, after the session start and whenever it changes: whether the
    /// clipboard is shared with this technician now (it holds control, the user allows control
    /// and has not switched the clipboard off). A technician sends clipboards only while it is.
    ClipboardShared(bool),
    /// Agent to technician, when the screen starts and after each switch: the monitors, and
    /// which one this technician sees.
    Monitors(Monitors),
    /// Technician to agent: show this technician another monitor, or all of them.
    ShowMonitor(MonitorChoice),
    /// Agent to technician: a shape of the user's pointer, once per shape; positions
    /// (datagrams) name it.
    CursorShape(CursorShape),
    /// Either way: file transfer (offers, answers, fetches, word of each file).
    File(crate::transfer::FileMessage),
    /// Agent to technician: the monitor switch asked is refused, and why (only the technician
    /// holding control switches monitors).
    MonitorRefused { reason: String },
}

impl PeerMessage {
    /// What kind of message it is, in words for an error that names it (not the message
    /// itself: it may be megabytes).
    pub fn kind(&self) -> &'static str {
        match self {
            PeerMessage::SessionStart { .. } => "a session start",
            PeerMessage::ScreenUpdate(_) => "a screen update",
            PeerMessage::UpdateAck { .. } => "an update acknowledgement",
            PeerMessage::Input(_) => "an input event",
            PeerMessage::Consent(_) => "a consent",
            PeerMessage::EndSession { .. } => "the end of the session",
            PeerMessage::Recorded => "word that it records the session",
            PeerMessage::Participants(_) => "a list of participants",
            PeerMessage::HandOver { .. } => "a hand-over of control",
            PeerMessage::TakeOver => "a take-over of control",
            PeerMessage::Chat(_) => "a chat message",
            PeerMessage::Clipboard(_) => "a clipboard",
            PeerMessage::ClipboardShared(_) => "word on the clipboard",
            PeerMessage::Monitors(_) => "a list of monitors",
            PeerMessage::ShowMonitor(_) => "a monitor switch",
            PeerMessage::MonitorRefused { .. } => "a monitor switch refused",
            PeerMessage::CursorShape(_) => "a pointer shape",
            PeerMessage::File(_) => "word about files",
        }
    }
}

/// One technician of a session with several, as the agent tells each of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The account name, as the relay vouched for it.
    pub name: String,
    pub tier: u8,
    /// This entry is the technician receiving the list.
    pub you: bool,
    /// Holds control of mouse and keyboard now (at most one does).
    pub controls: bool,
    /// The user allowed this one control (only such a one can be handed control).
    pub may_control: bool,
    /// Joined as a lead monitoring the session (may take over control).
    pub monitoring: bool,
}

/// How one tile of a [`ScreenUpdate`] is coded; the payload formats are described in
/// `protocol::codec::tile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TileCoding {
    /// One BGRX pixel fills the tile.
    Solid,
    /// A palette of up to 127 colours and run-coded indices.
    Palette,
    /// As `Palette`, but index 0 keeps the pixel the framebuffer already holds there.
    PaletteDelta,
    /// Planar residuals of a median-edge predictor over colour-decorrelated channels.
    Predicted,
    /// Byte-wise difference against the pixels the framebuffer already holds there.
    Temporal,
    /// Lossy: residuals of a median-edge predictor over B, G, R, quantised so that no channel
    /// is off by more than half the step; for natural images while they move.
    NearLossless,
}

/// A rectangle of the screen coded losslessly; its payload is the next `len` bytes of the
/// update's decompressed tile data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodecTile {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub coding: TileCoding,
    pub len: u32,
}

/// One step of a [`ScreenUpdate`]; steps apply in order, each to the result of the one before.
///
/// On the wire (and in session logs) a video op with no kept tile travels as it did before
/// video ops had a mask, and one with kept tiles as a variant of its own after it, so that
/// updates and logs made before the mask still read ([`CodecOpWire`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecOp {
    /// Copy the `width` x `height` rectangle at (`src_x`, `src_y`) to (`x`, `y`), as if through
    /// a temporary buffer (source and destination may overlap): scrolled or moved content.
    Copy {
        src_x: u32,
        src_y: u32,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
    /// New pixels for a rectangle, coded losslessly.
    Tile(CodecTile),
    /// One H.264 access unit of the lossy video region `stream`, covering the rectangle.
    /// `restart` starts the stream over (a new decoder; `data` begins with an IDR picture).
    /// `keep` says which 64x64 tiles of the rectangle (row by row from its top left corner,
    /// bit `k % 8` of byte `k / 8` for tile `k`) keep the pixels the viewer holds, exact content
    /// such as a window resting over the video; empty when the picture covers every tile.
    Video {
        stream: u32,
        restart: bool,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
        keep: Vec<u8>,
        data: Vec<u8>,
    },
}

/// How a [`CodecOp`] is laid out in bincode: variants are numbered in this order, and a number
/// once given keeps its layout. `Video` is a video op whose mask is empty (the only kind before
/// masks); `VideoKeep` one with kept tiles.
#[derive(Serialize, Deserialize)]
#[serde(rename = "CodecOp")]
enum CodecOpWire<T, B> {
    Copy {
        src_x: u32,
        src_y: u32,
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
    Tile(T),
    Video {
        head: VideoHead,
        data: B,
    },
    VideoKeep {
        head: VideoHead,
        keep: B,
        data: B,
    },
}

/// The fields every video op has, in their order on the wire (a struct's fields are laid out
/// as if they stood in the variant itself).
#[derive(Serialize, Deserialize)]
struct VideoHead {
    stream: u32,
    restart: bool,
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

impl VideoHead {
    fn op(self, keep: Vec<u8>, data: Vec<u8>) -> CodecOp {
        let VideoHead {
            stream,
            restart,
            x,
            y,
            width,
            height,
        } = self;
        CodecOp::Video {
            stream,
            restart,
            x,
            y,
            width,
            height,
            keep,
            data,
        }
    }
}

impl Serialize for CodecOp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde_bytes::Bytes;
        let wire: CodecOpWire<&CodecTile, &Bytes> = match self {
            &CodecOp::Copy {
                src_x,
                src_y,
                x,
                y,
                width,
                height,
            } => CodecOpWire::Copy {
                src_x,
                src_y,
                x,
                y,
                width,
                height,
            },
            CodecOp::Tile(t) => CodecOpWire::Tile(t),
            CodecOp::Video {
                stream,
                restart,
                x,
                y,
                width,
                height,
                keep,
                data,
            } => {
                let head = VideoHead {
                    stream: *stream,
                    restart: *restart,
                    x: *x,
                    y: *y,
                    width: *width,
                    height: *height,
                };
                let data = Bytes::new(data);
                if keep.is_empty() {
                    CodecOpWire::Video { head, data }
                } else {
                    let keep = Bytes::new(keep);
                    CodecOpWire::VideoKeep { head, keep, data }
                }
            }
        };
        wire.serialize(s)
    }
}

impl<'de> Deserialize<'de> for CodecOp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = CodecOpWire::<CodecTile, serde_bytes::ByteBuf>::deserialize(d)?;
        Ok(match wire {
            CodecOpWire::Copy {
                src_x,
                src_y,
                x,
                y,
                width,
                height,
            } => CodecOp::Copy {
                src_x,
                src_y,
                x,
                y,
                width,
                height,
            },
            CodecOpWire::Tile(t) => CodecOp::Tile(t),
            CodecOpWire::Video { head, data } => head.op(Vec::new(), data.into_vec()),
            CodecOpWire::VideoKeep { head, keep, data } => {
                head.op(keep.into_vec(), data.into_vec())
            }
        })
    }
}

/// One screen update, made by the screen codec (`protocol::codec`): the steps that bring the
/// viewer's image from the previous update in `seq` order to this one. Each travels alone on
/// its own unidirectional stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenUpdate {
    pub seq: u64,
    /// Screen size this update is for; a different size from the viewer's clears it first.
    pub width: u32,
    pub height: u32,
    pub ops: Vec<CodecOp>,
    /// zstd of the payloads of every [`CodecOp::Tile`], concatenated in op order.
    #[serde(with = "serde_bytes")]
    pub tile_data: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A video op as bincode laid it out before video ops had a mask.
    #[derive(Serialize)]
    enum BeforeMasks {
        #[allow(dead_code)]
        Copy,
        #[allow(dead_code)]
        Tile,
        Video {
            stream: u32,
            restart: bool,
            x: u32,
            y: u32,
            width: u32,
            height: u32,
            #[serde(with = "serde_bytes")]
            data: Vec<u8>,
        },
    }

    fn bytes<T: Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
    }

    fn video(keep: Vec<u8>) -> CodecOp {
        CodecOp::Video {
            stream: 3,
            restart: true,
            x: 64,
            y: 128,
            width: 640,
            height: 360,
            keep,
            data: vec![0, 0, 0, 1, 0x65, 9, 9],
        }
    }

    #[test]
    fn video_ops_of_logs_made_before_masks_still_read_and_masked_ones_round_trip() {
        let old = bytes(&BeforeMasks::Video {
            stream: 3,
            restart: true,
            x: 64,
            y: 128,
            width: 640,
            height: 360,
            data: vec![0, 0, 0, 1, 0x65, 9, 9],
        });
        // Read as a video op that keeps no tile; and one that keeps none is written the same.
        let read: CodecOp = crate::wire::decode::<_, { 1 << 20 }>(&old).unwrap();
        assert_eq!(read, video(Vec::new()));
        assert_eq!(bytes(&video(Vec::new())), old);
        // A mask travels, and reads back.
        let masked = video(vec![0b1010_0000, 1]);
        let back: CodecOp = crate::wire::decode::<_, { 1 << 20 }>(&bytes(&masked)).unwrap();
        assert_eq!(back, masked);
        // The other ops are as they were.
        let copy = CodecOp::Copy {
            src_x: 0,
            src_y: 10,
            x: 0,
            y: 0,
            width: 100,
            height: 90,
        };
        let back: CodecOp = crate::wire::decode::<_, { 1 << 20 }>(&bytes(&copy)).unwrap();
        assert_eq!(back, copy);
    }
}
