//! The peer plane sealed end to end, over QUIC streams: the key exchange on the session stream
//! ([`agent_session`], [`technician_session`]), then sealed message channels ([`SealedSend`],
//! [`SealedRecv`]), sealed screen update streams ([`prepare_update`], [`send_update`],
//! [`read_update`]), and sealed datagrams ([`DatagramSender`], [`DatagramReceiver`]).
//!
//! The cryptography is `protocol::e2e`'s (pure); this module only moves its frames. Every read
//! is bounded by the peer plane's frame limit plus the seal's overhead. Anything the relay or the
//! network could have done to the bytes (altered, replayed, dropped, reordered, cut short,
//! injected) comes back as a [`PeerPlaneError`] whose words say so, and ends that session.

use std::sync::Mutex;
use std::time::Duration;

use protocol::cursor::{PeerDatagram, MAX_DATAGRAM};
use protocol::e2e::handshake::HANDSHAKE_MAX_FRAME;
use protocol::e2e::seal::RECORD_OVERHEAD;
use protocol::e2e::{
    Context, DatagramOpener, DatagramSealer, Handshake, HandshakeError, HandshakeMessage,
    OpenError, Opener, SealError, Sealer, SessionKeys, StreamId, UpdateReceiver, UserCode,
};
use protocol::framing::{FrameError, FrameReader};
use protocol::peer::{EndReason, PeerMessage, ScreenUpdate};
use protocol::wire::{self, PEER_MAX_FRAME};
use quinn::{Connection, RecvStream, SendStream};

/// Largest frame read on the peer plane: a whole peer message, sealed.
pub const SEALED_MAX_FRAME: usize = PEER_MAX_FRAME + RECORD_OVERHEAD;

/// How long the key exchange may take once the session stream is open.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long an end that gave up on the exchange waits for its abort to leave before it closes.
const ABORT_LINGER: Duration = Duration::from_secs(2);

/// Why the sealed peer plane failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerPlaneError {
    /// The key exchange failed; [`HandshakeError::CodeMismatch`] reads "the code did not match".
    #[error("{0}")]
    Handshake(HandshakeError),
    /// A record did not open: someone between the two ends changed the traffic.
    #[error("{}", tampering(.0))]
    Tampered(OpenError),
    /// A frame that cannot be a sealed record of this session (its length prefix says more than
    /// any message can be, or the stream ended inside it).
    #[error("{}", frame_tampering(.0))]
    BadFrame(FrameError),
    /// A record opened, so the other end sealed it, but it is no message of this protocol.
    #[error("the other end sent a malformed message: {0}")]
    Malformed(String),
    #[error("a stream arrived empty: the relay or network cut it short")]
    EmptyUpdateStream,
    #[error("the other end did not complete the key exchange within {} s", HANDSHAKE_TIMEOUT.as_secs())]
    HandshakeTimeout,
    #[error("the session stream ended during the key exchange")]
    EndedDuringHandshake,
    #[error("{0}")]
    Seal(#[from] SealError),
    /// The other end of a resumed leg did not prove it is this session's other end.
    #[error("resuming the session was refused: {0}")]
    Resume(protocol::e2e::ResumeError),
    /// The stream or the connection went away (reset, connection lost).
    #[error("the stream broke: {0}")]
    Broken(String),
}

impl PeerPlaneError {
    /// True when the bytes were interfered with (or the other end broke the protocol), as
    /// opposed to the stream or connection going away.
    pub fn is_violation(&self) -> bool {
        !matches!(
            self,
            PeerPlaneError::Broken(_) | PeerPlaneError::EndedDuringHandshake
        )
    }
}

/// Words for a record that did not open, naming what was done to it.
fn tampering(e: &OpenError) -> String {
    let what = match e {
        OpenError::Replayed { .. } | OpenError::UpdateReplayed { .. } => {
            "a message was replayed: the relay or network sent it again"
        }
        OpenError::Reordered { .. } => {
            "a message is missing: the relay or network dropped or reordered messages"
        }
        OpenError::Truncated(_) | OpenError::AfterLast(_) => {
            "a stream was cut short or extended: the relay or network altered it"
        }
        OpenError::UpdateTooFarAhead { .. } => {
            "a screen update stream has an impossible number: the relay or network altered it"
        }
        OpenError::Decode(_) => "a sealed message does not decode",
        OpenError::TooShort { .. }
        | OpenError::WrongStream { .. }
        | OpenError::Altered { .. }
        | OpenError::Poisoned(_) => {
            "message failed authentication: the relay or network altered it"
        }
    };
    format!("{what} ({e})")
}

fn frame_tampering(e: &FrameError) -> String {
    match e {
        FrameError::Truncated => {
            format!("a stream was cut short or extended: the relay or network altered it ({e})")
        }
        other => {
            format!("message failed authentication: the relay or network altered it ({other})")
        }
    }
}

impl From<FrameError> for PeerPlaneError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::Io(io) => PeerPlaneError::Broken(io.to_string()),
            other => PeerPlaneError::BadFrame(other),
        }
    }
}

impl From<OpenError> for PeerPlaneError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Decode(d) => PeerPlaneError::Malformed(d),
            other => PeerPlaneError::Tampered(other),
        }
    }
}

impl From<quinn::WriteError> for PeerPlaneError {
    fn from(e: quinn::WriteError) -> Self {
        PeerPlaneError::Broken(e.to_string())
    }
}

impl From<quinn::ClosedStream> for PeerPlaneError {
    fn from(e: quinn::ClosedStream) -> Self {
        PeerPlaneError::Broken(e.to_string())
    }
}

/// The session stream once the exchange is complete, and the session's keys.
pub struct SealedSession {
    pub send: SealedSend,
    pub recv: SealedRecv,
    pub keys: SessionKeys,
}

/// What the key exchange binds besides the secret: the protocol version and the rendezvous
/// digits both ends used at the relay.
pub fn context(code: &UserCode) -> Context {
    Context::new(protocol::PROTOCOL_VERSION, code.rendezvous().digits())
}

/// How the agent and the technician found each other, which decides their key exchange: a
/// code the user read out (SPAKE2 on its secret part), or a help request taken from the queue
/// (X25519, both ends shown a 6-digit verification code to compare).
#[derive(Debug, Clone)]
pub enum Meeting {
    Code(UserCode),
    /// Paired from the queue: the relay's identifier of the session, which both ends were told.
    Queue(String),
}

impl Meeting {
    fn context(&self) -> Context {
        match self {
            Meeting::Code(code) => context(code),
            Meeting::Queue(session) => {
                Context::new(protocol::PROTOCOL_VERSION, format!("queue {session}"))
            }
        }
    }

    fn handshake(&self, role: protocol::control::Role) -> Handshake {
        use protocol::control::Role;
        let ctx = self.context();
        match (self, role) {
            (Meeting::Code(code), Role::Agent) => Handshake::agent_with_code(&ctx, code.secret()),
            (Meeting::Code(code), Role::Technician) => {
                Handshake::technician_with_code(&ctx, code.secret())
            }
            (Meeting::Queue(_), Role::Agent) => Handshake::agent_with_exchange(&ctx, None),
            (Meeting::Queue(_), Role::Technician) => Handshake::technician_with_exchange(&ctx),
        }
    }
}

/// The agent's side: opens the session stream and runs the exchange keyed by `code`.
pub async fn agent_session(
    connection: &Connection,
    code: &UserCode,
) -> Result<SealedSession, PeerPlaneError> {
    agent_session_met(connection, &Meeting::Code(code.clone())).await
}

/// As [`agent_session`], for either way of meeting.
pub async fn agent_session_met(
    connection: &Connection,
    meeting: &Meeting,
) -> Result<SealedSession, PeerPlaneError> {
    let (send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| PeerPlaneError::Broken(e.to_string()))?;
    let hs = meeting.handshake(protocol::control::Role::Agent);
    exchange(hs, send, recv).await
}

/// The technician's side: accepts the session stream the agent opens (within `start_timeout`)
/// and runs the exchange keyed by `code`. `Ok(None)` if the agent opened none in time.
pub async fn technician_session(
    connection: &Connection,
    code: &UserCode,
    start_timeout: Duration,
) -> Result<Option<SealedSession>, PeerPlaneError> {
    technician_session_met(connection, &Meeting::Code(code.clone()), start_timeout).await
}

/// As [`technician_session`], for either way of meeting.
pub async fn technician_session_met(
    connection: &Connection,
    meeting: &Meeting,
    start_timeout: Duration,
) -> Result<Option<SealedSession>, PeerPlaneError> {
    let (send, recv) = match tokio::time::timeout(start_timeout, connection.accept_bi()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(PeerPlaneError::Broken(e.to_string())),
        Err(_) => return Ok(None),
    };
    let hs = meeting.handshake(protocol::control::Role::Technician);
    exchange(hs, send, recv).await.map(Some)
}

/// Runs `hs` on the session stream; on success the stream carries sealed records from then on.
async fn exchange(
    mut hs: Handshake,
    mut send: SendStream,
    recv: RecvStream,
) -> Result<SealedSession, PeerPlaneError> {
    // A handshake frame is refused on its length, before its body is read.
    let mut reader = FrameReader::new(recv, HANDSHAKE_MAX_FRAME);
    let mut out = Vec::new();
    let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        loop {
            out.clear();
            while let Some(m) = hs.poll_transmit() {
                wire::encode_frame_into(&m, &mut out);
            }
            if !out.is_empty() {
                send.write_all(&out).await?;
            }
            if let Some(keys) = hs.take_keys() {
                return Ok(keys);
            }
            let frame = match reader.next_frame().await {
                Ok(Some(frame)) => frame,
                Ok(None) => return Err(PeerPlaneError::EndedDuringHandshake),
                Err(FrameError::TooLarge { len, max }) => {
                    return Err(PeerPlaneError::Handshake(HandshakeError::Malformed(
                        format!("a handshake frame of {len} bytes; the limit is {max}"),
                    )))
                }
                Err(e) => return Err(e.into()),
            };
            let msg = HandshakeMessage::decode(frame)
                .map_err(|e| HandshakeError::Malformed(e.to_string()));
            if let Err(e) = msg.and_then(|m| hs.handle(m)) {
                return Err(PeerPlaneError::Handshake(e));
            }
        }
    })
    .await
    .unwrap_or(Err(PeerPlaneError::HandshakeTimeout));
    reader.set_max(SEALED_MAX_FRAME);
    match result {
        Ok(keys) => Ok(SealedSession {
            send: SealedSend::new(send, keys.session_sealer()),
            recv: SealedRecv::new(reader, keys.session_opener()),
            keys,
        }),
        Err(e) => {
            // Tell the other end why (an abort, if the exchange queued one), and give it time to
            // leave before this end closes the connection.
            out.clear();
            while let Some(m) = hs.poll_transmit() {
                wire::encode_frame_into(&m, &mut out);
            }
            if !out.is_empty() {
                let _ = tokio::time::timeout(ABORT_LINGER, async {
                    send.write_all(&out).await.ok()?;
                    send.finish().ok()?;
                    send.stopped().await.ok()
                })
                .await;
            }
            Err(e)
        }
    }
}

/// Sends sealed peer messages on this end's direction of the session stream.
pub struct SealedSend {
    stream: SendStream,
    sealer: Sealer,
    buf: Vec<u8>,
}

impl SealedSend {
    pub fn new(stream: SendStream, sealer: Sealer) -> Self {
        Self {
            stream,
            sealer,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, msg: &PeerMessage) -> Result<(), PeerPlaneError> {
        self.buf.clear();
        self.sealer.seal_message(msg, false, &mut self.buf)?;
        self.stream.write_all(&self.buf).await?;
        Ok(())
    }

    /// Ends this direction: a sealed empty last record, then the end of the stream. The other
    /// end can so tell a finished stream from one the relay cut short.
    pub async fn finish(&mut self) -> Result<(), PeerPlaneError> {
        self.buf.clear();
        self.sealer.seal_frame(&[], true, &mut self.buf)?;
        self.stream.write_all(&self.buf).await?;
        self.stream.finish()?;
        Ok(())
    }

    pub fn stream_mut(&mut self) -> &mut SendStream {
        &mut self.stream
    }
}

/// Receives sealed peer messages from the other end's direction of the session stream.
pub struct SealedRecv {
    reader: FrameReader<RecvStream>,
    opener: Opener,
}

impl SealedRecv {
    pub fn new(reader: FrameReader<RecvStream>, opener: Opener) -> Self {
        Self { reader, opener }
    }

    /// The next message, or `None` once the other end finished its direction (its sealed last
    /// record arrived). A stream that ends without that record was cut short: an error.
    ///
    /// Cancel-safe: a frame read halfway is kept, and a record is opened only once whole.
    pub async fn recv(&mut self) -> Result<Option<PeerMessage>, PeerPlaneError> {
        let Some(record) = self.reader.next_frame_mut().await? else {
            self.opener.finish()?;
            return Ok(None);
        };
        let plaintext = self.opener.open_in_place(record)?;
        if plaintext.is_empty() && self.opener.is_finished() {
            return Ok(None);
        }
        wire::decode_peer(plaintext)
            .map(Some)
            .map_err(|e| PeerPlaneError::Malformed(e.to_string()))
    }
}

/// After the relay said the other peer left: that peer's own reason, if it is still in flight
/// on the session stream (the relay's word and the peer's travel on different streams and may
/// arrive in either order). Waits at most 300 ms for it.
pub async fn last_word(rx: &mut SealedRecv) -> Option<EndReason> {
    loop {
        let next = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await;
        match next {
            Ok(Ok(Some(PeerMessage::EndSession { reason }))) => return Some(reason),
            Ok(Ok(Some(_))) => continue,
            _ => return None,
        }
    }
}

/// Plaintext bytes per record on a screen update stream. An update is cut into records of this
/// size, sealed one after the other as they are sent and opened one by one as they arrive, so the
/// cryptography overlaps the transfer instead of adding to it, and a receiver holds at most one
/// record it has not authenticated.
pub const UPDATE_RECORD: usize = 64 * 1024;

/// A screen update encoded for its own stream, with the stream's sealer (its number names the
/// stream, so the relay can neither move it to another number nor replay it).
pub struct OutgoingUpdate {
    sealer: Sealer,
    /// One frame of the plain message: the length prefix, then the encoded update.
    frame: Vec<u8>,
}

/// Encodes `update` and takes its stream's sealer; [`send_update`] seals and sends it.
pub fn prepare_update(keys: &SessionKeys, update: ScreenUpdate) -> OutgoingUpdate {
    let sealer = keys.update_sealer(update.seq);
    OutgoingUpdate {
        sealer,
        frame: wire::encode_frame(&PeerMessage::ScreenUpdate(update)),
    }
}

/// Sends an update on a new unidirectional stream, [`UPDATE_RECORD`] bytes a record, each sealed
/// just before it is written; the last record is marked as such.
pub async fn send_update(
    connection: &Connection,
    update: OutgoingUpdate,
) -> Result<(), PeerPlaneError> {
    let OutgoingUpdate { mut sealer, frame } = update;
    let mut s = connection
        .open_uni()
        .await
        .map_err(|e| PeerPlaneError::Broken(e.to_string()))?;
    let message = &frame[4..];
    let mut buf = Vec::with_capacity(UPDATE_RECORD.min(message.len()) + RECORD_OVERHEAD + 4);
    let count = message.len().div_ceil(UPDATE_RECORD).max(1);
    for (i, chunk) in message
        .chunks(UPDATE_RECORD)
        .chain(message.is_empty().then_some(&[][..]))
        .enumerate()
    {
        buf.clear();
        sealer.seal_frame(chunk, i + 1 == count, &mut buf)?;
        s.write_all(&buf).await?;
    }
    s.finish()?;
    Ok(())
}

/// Largest record on a unidirectional stream: a screen update's or a file's.
pub const UNI_MAX_FRAME: usize =
    max_usize(UPDATE_RECORD, protocol::transfer::FILE_RECORD) + RECORD_OVERHEAD;

const fn max_usize(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// Reads the first record of a unidirectional stream the other end opened and says which
/// stream it claims to be (from its header, not yet authenticated: whoever reads the stream
/// opens the record with the key of that stream, which fails for a lie). The record stays in
/// the reader ([`FrameReader::frame_mut`]).
pub async fn first_record(
    stream: RecvStream,
) -> Result<(FrameReader<RecvStream>, StreamId), PeerPlaneError> {
    let mut reader = FrameReader::new(stream, UNI_MAX_FRAME);
    let Some(record) = reader.next_frame_mut().await? else {
        return Err(PeerPlaneError::EmptyUpdateStream);
    };
    let Some(id) = StreamId::of_record(record) else {
        return Err(PeerPlaneError::Tampered(OpenError::TooShort {
            len: record.len(),
        }));
    };
    Ok((reader, id))
}

/// Reads the one screen update an update stream carries: its records in order, the last one
/// marked, then the end of the stream. `receiver` refuses a stream number seen before.
pub async fn read_update(
    stream: RecvStream,
    receiver: &Mutex<UpdateReceiver>,
) -> Result<ScreenUpdate, PeerPlaneError> {
    let (reader, _) = first_record(stream).await?;
    read_update_from(reader, receiver).await
}

/// As [`read_update`], from a reader whose first record [`first_record`] read.
pub async fn read_update_from(
    mut reader: FrameReader<RecvStream>,
    receiver: &Mutex<UpdateReceiver>,
) -> Result<ScreenUpdate, PeerPlaneError> {
    let record = reader.frame_mut();
    // The update's number counts as received only once this record authenticates.
    let (mut opener, first) = receiver
        .lock()
        .expect("update receiver lock")
        .open_first(record)?;
    let mut message = first.to_vec();
    while !opener.is_finished() {
        let Some(record) = reader.next_frame_mut().await? else {
            opener.finish()?;
            break;
        };
        let plaintext = opener.open_in_place(record)?;
        if message.len() + plaintext.len() > PEER_MAX_FRAME {
            return Err(PeerPlaneError::Malformed(format!(
                "a screen update of more than {PEER_MAX_FRAME} bytes"
            )));
        }
        message.extend_from_slice(plaintext);
    }
    // Nothing may follow the last record.
    if let Some(extra) = reader.next_frame_mut().await? {
        opener.open_in_place(extra)?;
    }
    let update = match wire::decode_peer::<PeerMessage>(&message) {
        Ok(PeerMessage::ScreenUpdate(u)) => u,
        Ok(_) => {
            return Err(PeerPlaneError::Malformed(
                "an update stream carried something other than a screen update".into(),
            ))
        }
        Err(e) => return Err(PeerPlaneError::Malformed(e.to_string())),
    };
    if update.seq != opener.stream().id {
        return Err(PeerPlaneError::Malformed(format!(
            "screen update {} arrived sealed as update {}",
            update.seq,
            opener.stream().id
        )));
    }
    Ok(update)
}

/// Sends sealed datagrams to the other end (the user's pointer position). Only the latest value
/// of what they carry matters, so one that finds no room is dropped rather than waited for.
pub struct DatagramSender {
    connection: Connection,
    sealer: DatagramSealer,
    buf: Vec<u8>,
}

impl DatagramSender {
    pub fn new(connection: Connection, keys: &SessionKeys) -> Self {
        Self {
            connection,
            sealer: keys.datagram_sealer(),
            buf: Vec::new(),
        }
    }

    /// Seals and sends `msg` as one datagram. `Err` only once the connection is gone.
    pub fn send(&mut self, msg: &PeerDatagram) -> Result<(), PeerPlaneError> {
        self.sealer.seal_message(msg, &mut self.buf)?;
        match self
            .connection
            .send_datagram(bytes::Bytes::copy_from_slice(&self.buf))
        {
            Ok(()) => Ok(()),
            Err(quinn::SendDatagramError::ConnectionLost(e)) => {
                Err(PeerPlaneError::Broken(e.to_string()))
            }
            // Not supported by the other end, too large, or disabled: dropped, as a lost one.
            Err(e) => {
                tracing::debug!(error = %e, "a datagram was not sent");
                Ok(())
            }
        }
    }
}

/// Receives the other end's sealed datagrams, dropping those older than one already received.
pub struct DatagramReceiver {
    connection: Connection,
    opener: DatagramOpener,
}

impl DatagramReceiver {
    pub fn new(connection: Connection, keys: &SessionKeys) -> Self {
        Self {
            connection,
            opener: keys.datagram_opener(),
        }
    }

    /// The next datagram newer than the last. A datagram that does not open is tampering (an
    /// error that ends the session); so is one that opens and does not decode.
    pub async fn recv(&mut self) -> Result<PeerDatagram, PeerPlaneError> {
        loop {
            let bytes = self
                .connection
                .read_datagram()
                .await
                .map_err(|e| PeerPlaneError::Broken(e.to_string()))?;
            let mut record = bytes.to_vec();
            let Some(plaintext) = self.opener.open_in_place(&mut record)? else {
                continue;
            };
            return protocol::wire::decode::<PeerDatagram, MAX_DATAGRAM>(plaintext)
                .map_err(|e| PeerPlaneError::Malformed(e.to_string()));
        }
    }
}
