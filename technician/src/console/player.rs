//! The session-log player's state: a `.tlog` opened, its verdict, its timeline, and the screen
//! at the play position. Plain data, no egui and no clock: the window ([`super::player_ui`])
//! reads it and turns clicks into calls, and passes the time that went by to
//! [`Player::advance`].
//!
//! Opening reads the whole file once with [`LogReader`], so the verdict (intact, tampered at
//! record N, ended early: what `technician log verify` says) and the timeline are known before
//! anything plays. The screen comes from [`protocol::sessionlog::Player`], the replay behind
//! `technician log frame` ([`crate::logtool::screen_at`]): playing forward feeds it the records
//! up to the new position; going back starts it again from the top of the file, because the
//! codec's decoder (zstd and video state) cannot be copied into a keyframe. Either way the frame
//! at time T is the one `technician log frame FILE --at T` writes.
//!
//! A log that is not intact plays as far as its records check (the reader hands out nothing
//! past the first bad record); a record whose hashes check but whose screen update cannot be
//! applied stops playing there and is reported by [`Player::problem`].

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use protocol::control::Role;
use protocol::input::{InputEvent, Key, Modifiers, NamedKey};
use protocol::peer::ConsentState;
use protocol::sessionlog::{
    self, ChatAuthor, CloseReason, LogReader, OpenError, Record, RecordedInput, SessionOpened,
    Verdict,
};

/// The speeds the window offers.
pub const SPEEDS: [f64; 6] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0];
/// Slowest speed [`Player::set_speed`] takes.
pub const MIN_SPEED: f64 = 0.25;
/// Fastest speed [`Player::set_speed`] takes.
pub const MAX_SPEED: f64 = 8.0;
/// Most timeline events kept; a log with more (a hostile one, or a very long session) keeps the
/// first ones and counts the rest in [`Player::events_omitted`].
pub const MAX_EVENTS: usize = 10_000;
/// Input records closer together than this are summed up as one timeline event.
pub const INPUT_RUN_GAP_MS: u64 = 2_000;
/// Longest text (in characters) kept from a record for a timeline label.
const MAX_TEXT_CHARS: usize = 120;
/// Key names kept per input summary.
const MAX_KEY_NAMES: usize = 4;

/// Generations are unique across players, so a view that is handed another log never mistakes
/// the new screen for the one it shows.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// Why a file cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a session log", path.display())]
    NotALog { path: PathBuf },
    #[error(
        "{} is a session log of format {found}, newer than this program plays; update Tandem",
        path.display()
    )]
    NewerFormat { path: PathBuf, found: u16 },
}

impl PlayerError {
    fn from_open(path: &Path, e: OpenError) -> Self {
        let path = path.to_path_buf();
        match e {
            OpenError::NotALog => PlayerError::NotALog { path },
            OpenError::UnsupportedVersion { found } => PlayerError::NewerFormat { path, found },
            OpenError::Io(source) => PlayerError::Read { path, source },
        }
    }
}

/// Something the log records, for a marker on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEvent {
    /// Ms since the session opened.
    pub time_ms: u64,
    /// Index of the (first) record it comes from.
    pub record: u64,
    pub what: Event,
}

/// What a timeline event is. Texts from the log are cut to a length a label can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    SessionOpened {
        technician: String,
        agent: String,
    },
    Joined {
        role: Role,
        who: String,
    },
    Left {
        role: Role,
        who: String,
        reason: String,
    },
    /// Consent as the agent sent it.
    Consent(ConsentState),
    /// Input records close together, summed up.
    Input(InputSummary),
    /// An error noted during the session.
    Error(String),
    /// A step of the session's help request (taken, escalated, held, closed), in words.
    DeskStep(String),
    /// Control passed to another technician of the session (or to nobody), in words.
    Control(String),
    /// A chat message: who wrote it and what (cut short).
    Chat {
        from: ChatAuthor,
        text: String,
    },
    /// A clipboard passed between the user and the technician, in words.
    Clipboard(String),
    /// The monitor the technician saw changed, in words.
    Monitors(String),
    /// A file sent to the user or fetched from them, in words.
    File(String),
    SessionClosed(CloseReason),
    /// A record whose hashes check but whose body this program cannot read.
    Unreadable,
    /// In a log that is not intact: the last record that checks; playing stops here.
    LastGoodRecord,
}

/// Input the technician sent within one run of records ([`INPUT_RUN_GAP_MS`] apart at most).
/// Only presses count; releases and modifier keys on their own do not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputSummary {
    /// Characters typed (also those recorded as a count only).
    pub characters: u64,
    /// Mouse button presses.
    pub clicks: u64,
    /// Wheel events.
    pub scrolls: u64,
    /// Named keys (Return, F5) and shortcuts (Ctrl+C) pressed.
    pub keys: u64,
    /// The first few of those keys, as `Return` or `Ctrl+C`.
    pub key_names: Vec<String>,
    pub pointer_moves: u64,
    /// Time of the last input record of the run.
    pub last_ms: u64,
}

impl InputSummary {
    /// Whether anything but pointer moves happened.
    pub fn is_more_than_moves(&self) -> bool {
        self.characters + self.clicks + self.scrolls + self.keys > 0
    }

    fn add_key(&mut self, name: String) {
        self.keys += 1;
        if self.key_names.len() < MAX_KEY_NAMES {
            self.key_names.push(name);
        }
    }

    fn add(&mut self, input: &RecordedInput) {
        let command = |m: &Modifiers| m.ctrl || m.alt || m.meta;
        match input {
            RecordedInput::Event(InputEvent::PointerMove { .. }) => self.pointer_moves += 1,
            RecordedInput::Event(InputEvent::Button { down: true, .. }) => self.clicks += 1,
            RecordedInput::Event(InputEvent::Wheel { .. }) => self.scrolls += 1,
            RecordedInput::Event(InputEvent::Key {
                down: true,
                key,
                text,
                modifiers,
            }) => match key {
                Key::Char(c) if command(modifiers) => {
                    self.add_key(key_name(*modifiers, &c.to_uppercase().to_string()))
                }
                Key::Char(_) => {
                    self.characters += text.as_ref().map_or(1, |t| t.chars().count() as u64)
                }
                Key::Named(NamedKey::Space) if !command(modifiers) => self.characters += 1,
                Key::Named(n) if key.as_modifier().is_some() || *n == NamedKey::CapsLock => {}
                Key::Named(_) => self.add_key(key_name(*modifiers, &key.to_string())),
            },
            RecordedInput::Typed {
                down: true,
                chars,
                modifiers,
            } => {
                if command(modifiers) {
                    // The key itself was not recorded, only that one was pressed.
                    self.keys += 1;
                } else {
                    self.characters += u64::from(*chars);
                }
            }
            RecordedInput::Event(InputEvent::Button { down: false, .. })
            | RecordedInput::Event(InputEvent::Key { down: false, .. })
            | RecordedInput::Typed { down: false, .. } => {}
        }
    }
}

/// `Ctrl+Alt+Delete` from modifiers and a key name.
fn key_name(m: Modifiers, key: &str) -> String {
    let mut s = String::new();
    for (held, name) in [
        (m.ctrl, "Ctrl+"),
        (m.alt, "Alt+"),
        (m.shift, "Shift+"),
        (m.meta, "Super+"),
    ] {
        if held {
            s.push_str(name);
        }
    }
    s.push_str(key);
    s
}

/// `text` cut to [`MAX_TEXT_CHARS`] characters.
fn short(text: &str) -> String {
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Builds the timeline while the log is read once.
#[derive(Default)]
struct TimelineBuilder {
    events: Vec<TimelineEvent>,
    omitted: u64,
    /// The input run being summed up: its first record, time and the sum so far.
    run: Option<(u64, u64, InputSummary)>,
}

impl TimelineBuilder {
    fn push(&mut self, time_ms: u64, record: u64, what: Event) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(TimelineEvent {
                time_ms,
                record,
                what,
            });
        } else {
            self.omitted += 1;
        }
    }

    fn end_run(&mut self) {
        if let Some((record, time_ms, summary)) = self.run.take() {
            if summary.is_more_than_moves() {
                self.push(time_ms, record, Event::Input(summary));
            }
        }
    }

    fn record(&mut self, rec: &sessionlog::RawRecord) {
        if rec.kind == sessionlog::record::KIND_SCREEN_UPDATE {
            // Screen updates do not end an input run, and are not decoded here (the replay does).
            return;
        }
        let decoded = match rec.decode() {
            Ok(d) => d,
            Err(_) => {
                self.end_run();
                self.push(rec.time_ms, rec.index, Event::Unreadable);
                return;
            }
        };
        if let Record::Input(input) = &decoded {
            let continues = self
                .run
                .as_ref()
                .is_some_and(|(_, _, s)| rec.time_ms.saturating_sub(s.last_ms) <= INPUT_RUN_GAP_MS);
            if !continues {
                self.end_run();
                self.run = Some((rec.index, rec.time_ms, InputSummary::default()));
            }
            if let Some((_, _, s)) = self.run.as_mut() {
                s.add(input);
                s.last_ms = rec.time_ms;
            }
            return;
        }
        self.end_run();
        let what = match decoded {
            Record::SessionOpened(o) => Event::SessionOpened {
                technician: short(&o.technician.description),
                agent: short(&o.agent.description),
            },
            Record::ParticipantJoined(p) => Event::Joined {
                role: p.participant.role,
                who: short(&p.participant.description),
            },
            Record::ParticipantLeft(p) => Event::Left {
                role: p.participant.role,
                who: short(&p.participant.description),
                reason: short(&p.reason),
            },
            Record::Consent(c) => Event::Consent(c),
            Record::Error(e) => Event::Error(short(&e.message)),
            Record::DeskStep(d) => Event::DeskStep(short(&d.to_string())),
            Record::Control(c) => Event::Control(short(&c.to_string())),
            Record::Chat(c) => Event::Chat {
                from: match c.from {
                    ChatAuthor::Technician(name) => ChatAuthor::Technician(short(&name)),
                    other => other,
                },
                text: short(&c.text),
            },
            Record::Clipboard(c) => Event::Clipboard(short(&c.to_string())),
            Record::Monitors(m) => Event::Monitors(short(&m.describe_shown())),
            Record::FileTransfer(f) => Event::File(short(&f.to_string())),
            Record::Folder(l) => Event::File(short(&l.to_string())),
            Record::Link(l) => Event::Error(short(&l.to_string())),
            Record::SessionClosed(c) => Event::SessionClosed(match c.reason {
                CloseReason::Failed(why) => CloseReason::Failed(short(&why)),
                CloseReason::ByAgent(protocol::peer::EndReason::Error(why)) => {
                    CloseReason::ByAgent(protocol::peer::EndReason::Error(short(&why)))
                }
                other => other,
            }),
            Record::Input(_)
            | Record::ScreenUpdate(_)
            | Record::CursorShape(_)
            | Record::Cursor(_)
            | Record::Seal
            | Record::Unknown { .. } => return,
        };
        self.push(rec.time_ms, rec.index, what);
    }
}

/// The opened file, read at any offset without a shared cursor, so that each replay reads the
/// file that was verified from its own position (even if the path is replaced meanwhile).
struct FileAt {
    file: Arc<File>,
    pos: u64,
}

impl Read for FileAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

type Replay = sessionlog::Player<BufReader<FileAt>>;

fn reader(file: &Arc<File>) -> Result<LogReader<BufReader<FileAt>>, OpenError> {
    LogReader::new(BufReader::with_capacity(
        1 << 20,
        FileAt {
            file: Arc::clone(file),
            pos: 0,
        },
    ))
}

/// The screen at the play position: BGRX pixels, rows top to bottom without padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub width: u32,
    pub height: u32,
    pub pixels: &'a [u8],
}

/// A session log opened for playing. See the module documentation.
pub struct Player {
    path: PathBuf,
    file: Arc<File>,
    verdict: Verdict,
    opened: Option<SessionOpened>,
    /// Records that check.
    records: u64,
    /// Time of the last record that checks.
    duration_ms: u64,
    events: Vec<TimelineEvent>,
    events_omitted: u64,
    replay: Replay,
    /// Every record up to this time has been given to `replay`, none after (`None`: none yet).
    applied_ms: Option<u64>,
    /// Play position in µs since the session opened (µs so that slow speeds do not round away).
    position_us: u64,
    playing: bool,
    speed: f64,
    generation: u64,
    /// Why the screen cannot be shown past `limit_ms`.
    problem: Option<String>,
    limit_ms: Option<u64>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("path", &self.path)
            .field("verdict", &self.verdict)
            .field("duration_ms", &self.duration_ms)
            .field("position_ms", &self.position_ms())
            .field("playing", &self.playing)
            .field("speed", &self.speed)
            .finish_non_exhaustive()
    }
}

impl Player {
    /// Opens `path`, checks the whole log (every hash) and builds its timeline; the position is
    /// the start, paused, at 1×.
    pub fn open(path: impl AsRef<Path>) -> Result<Player, PlayerError> {
        let path = path.as_ref();
        let read_error = |source| PlayerError::Read {
            path: path.to_path_buf(),
            source,
        };
        let file = Arc::new(File::open(path).map_err(read_error)?);
        let mut survey = reader(&file).map_err(|e| PlayerError::from_open(path, e))?;
        let mut timeline = TimelineBuilder::default();
        let (mut records, mut duration_ms, mut opened) = (0, 0, None);
        while let Some(rec) = survey.next_record().map_err(read_error)? {
            if rec.index == 0 {
                if let Ok(Record::SessionOpened(o)) = rec.decode() {
                    opened = Some(o);
                }
            }
            timeline.record(&rec);
            records = rec.index + 1;
            duration_ms = rec.time_ms;
        }
        timeline.end_run();
        let verdict = survey
            .verdict()
            .cloned()
            .expect("a reader that returned None has a verdict");
        if !matches!(verdict, Verdict::Intact { .. }) && records > 0 {
            timeline.push(duration_ms, records - 1, Event::LastGoodRecord);
        }
        let replay = Self::fresh_replay(path, &file)?;
        let mut player = Player {
            path: path.to_path_buf(),
            file,
            verdict,
            opened,
            records,
            duration_ms,
            events: timeline.events,
            events_omitted: timeline.omitted,
            replay,
            applied_ms: None,
            position_us: 0,
            playing: false,
            speed: 1.0,
            generation: next_generation(),
            problem: None,
            limit_ms: None,
        };
        player.sync();
        Ok(player)
    }

    fn fresh_replay(path: &Path, file: &Arc<File>) -> Result<Replay, PlayerError> {
        Ok(sessionlog::Player::new(
            reader(file).map_err(|e| PlayerError::from_open(path, e))?,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How the log ends, as `technician log verify` says it.
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    pub fn is_intact(&self) -> bool {
        matches!(self.verdict, Verdict::Intact { .. })
    }

    /// Record 0, if it could be read.
    pub fn opened(&self) -> Option<&SessionOpened> {
        self.opened.as_ref()
    }

    /// Records that check (the seal included); nothing after them plays.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Index of the last record that checks, if any does.
    pub fn last_good_record(&self) -> Option<u64> {
        self.records.checked_sub(1)
    }

    /// Time of the last record that checks: the end of the timeline.
    pub fn duration_ms(&self) -> u64 {
        self.duration_ms
    }

    /// The timeline's events, in time order.
    pub fn events(&self) -> &[TimelineEvent] {
        &self.events
    }

    /// Events left off the timeline beyond [`MAX_EVENTS`].
    pub fn events_omitted(&self) -> u64 {
        self.events_omitted
    }

    /// The play position, ms since the session opened.
    pub fn position_ms(&self) -> u64 {
        self.position_us / 1000
    }

    /// As far as playing can go: the end of the log, or the record whose screen cannot be
    /// shown (see [`Player::problem`]).
    pub fn end_ms(&self) -> u64 {
        self.limit_ms
            .map_or(self.duration_ms, |l| l.min(self.duration_ms))
    }

    pub fn is_playing(&self) -> bool {
        self.playing
    }

    pub fn at_end(&self) -> bool {
        self.position_ms() >= self.end_ms()
    }

    /// Plays from the position; at the end, from the start again.
    pub fn play(&mut self) {
        if self.end_ms() == 0 {
            return;
        }
        if self.at_end() {
            self.seek(0);
        }
        self.playing = true;
    }

    pub fn pause(&mut self) {
        self.playing = false;
    }

    pub fn toggle_play(&mut self) {
        if self.playing {
            self.pause()
        } else {
            self.play()
        }
    }

    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Sets the speed, held within [`MIN_SPEED`]..=[`MAX_SPEED`] (a speed that is not a number
    /// is ignored).
    pub fn set_speed(&mut self, speed: f64) {
        if speed.is_finite() {
            self.speed = speed.clamp(MIN_SPEED, MAX_SPEED);
        }
    }

    /// Moves the play position to `t_ms` (held within the log), playing or not.
    pub fn seek(&mut self, t_ms: u64) {
        self.position_us = t_ms.min(self.end_ms()).saturating_mul(1000);
        self.sync();
    }

    /// Moves the play position on by `elapsed` times the speed, if playing; stops at the end.
    pub fn advance(&mut self, elapsed: Duration) {
        if !self.playing {
            return;
        }
        // `as` saturates: a huge `elapsed` just reaches the end.
        let delta_us = (elapsed.as_secs_f64() * self.speed * 1e6).round() as u64;
        let end_us = self.end_ms().saturating_mul(1000);
        self.position_us = self.position_us.saturating_add(delta_us).min(end_us);
        if self.position_us >= end_us {
            self.playing = false;
        }
        self.sync();
    }

    /// The screen at the play position, `None` before the first screen update.
    pub fn frame(&self) -> Option<Frame<'_>> {
        let fb = self.replay.framebuffer();
        (fb.width() > 0).then(|| Frame {
            width: fb.width(),
            height: fb.height(),
            pixels: fb.pixels(),
        })
    }

    /// Changes whenever [`Player::frame`] may have changed; never the same for two players.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Screen updates applied to reach the current frame.
    pub fn updates_applied(&self) -> u64 {
        self.replay.replayer().updates_applied()
    }

    /// Why the screen cannot be shown past [`Player::end_ms`], when a record that checks
    /// cannot be replayed (a damaged screen update written with valid hashes).
    pub fn problem(&self) -> Option<&str> {
        self.problem.as_deref()
    }

    /// Brings the replay to the play position.
    fn sync(&mut self) {
        let t = self.position_ms();
        if let Some(applied) = self.applied_ms {
            if t >= applied {
                if t == applied {
                    return;
                }
            } else if self.replay.last_time_ms() <= t {
                // Nothing applied lies after `t`: the screen is already the one at `t`.
                self.applied_ms = Some(t);
                return;
            } else {
                match Self::fresh_replay(&self.path, &self.file) {
                    Ok(r) => {
                        self.replay = r;
                        self.applied_ms = None;
                        self.generation = next_generation();
                    }
                    Err(e) => {
                        self.stop_at(applied, e.to_string());
                        return;
                    }
                }
            }
        }
        let before = self.replay.replayer().updates_applied();
        match self.replay.advance_to(t) {
            Ok(()) => self.applied_ms = Some(t),
            Err(e) => {
                let at = self.replay.last_time_ms();
                self.applied_ms = Some(at);
                self.position_us = self.position_us.min(at.saturating_mul(1000));
                self.stop_at(at, e.to_string());
                self.generation = next_generation();
            }
        }
        if self.replay.replayer().updates_applied() != before {
            self.generation = next_generation();
        }
    }

    fn stop_at(&mut self, at_ms: u64, why: String) {
        tracing::warn!(log = %self.path.display(), at_ms, %why, "session log cannot be replayed further");
        self.limit_ms = Some(self.limit_ms.map_or(at_ms, |l| l.min(at_ms)));
        self.problem = Some(why);
        self.playing = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::codec::Encoder;
    use protocol::input::MouseButton;
    use protocol::peer::EndReason;
    use protocol::sessionlog::{code_sha256, LogWriter, Participant, TypedText};

    const W: u32 = 48;
    const H: u32 = 32;

    fn opened() -> SessionOpened {
        SessionOpened {
            started_unix_ms: 1_714_572_192_000,
            relay_address: "127.0.0.1:4433".into(),
            relay_fingerprint: "00".repeat(32),
            relay_software: "relay test".into(),
            technician: Participant {
                role: Role::Technician,
                description: "alice".into(),
                software: "technician test".into(),
            },
            agent: Participant {
                role: Role::Agent,
                description: "bob's laptop".into(),
                software: "agent test".into(),
            },
            protocol_version: protocol::PROTOCOL_VERSION,
            code_sha256: code_sha256("123456789"),
            typed_text: TypedText::Full,
        }
    }

    /// Frame `i`: a grey screen with a bright square that moves one step per frame.
    fn frame(i: u32) -> Vec<u8> {
        let mut px = vec![0x30; (W * H * 4) as usize];
        for y in 0..8 {
            for x in 0..8 {
                let (x, y) = ((x + i * 3) % W, y + (i % 3) * 8);
                let o = ((y * W + x) * 4) as usize;
                px[o..o + 4].copy_from_slice(&[0x20, (i * 40) as u8, 0xe0, 0]);
            }
        }
        px
    }

    fn key(c: char) -> InputEvent {
        InputEvent::Key {
            down: true,
            key: Key::Char(c),
            text: Some(c.to_string()),
            modifiers: Modifiers::NONE,
        }
    }

    /// A sealed log: a frame every 100 ms from 0 to 2000, "hello world!" typed at 500..,
    /// view only from 1000, three clicks at 1200, a close at 2100.
    fn write_log(path: &Path) {
        let mut log = LogWriter::create(File::create(path).unwrap(), &opened()).unwrap();
        let mut enc = Encoder::new(W, H);
        log.consent(0, ConsentState::Control).unwrap();
        for i in 0..=20u32 {
            let t = u64::from(i) * 100;
            if let Some(u) = enc.encode(&frame(i), W, H, t, u64::from(i) + 1) {
                log.screen_update(t, &u).unwrap();
            }
            if i == 5 {
                for (k, c) in "hello world!".chars().enumerate() {
                    log.input(t + k as u64, &key(c)).unwrap();
                }
            }
            if i == 10 {
                log.consent(t, ConsentState::ViewOnly).unwrap();
            }
            if i == 12 {
                for _ in 0..3 {
                    for down in [true, false] {
                        let b = InputEvent::Button {
                            button: MouseButton::Left,
                            down,
                        };
                        log.input(t, &b).unwrap();
                    }
                }
            }
        }
        log.finish(2100, &CloseReason::ByAgent(EndReason::UserEnded))
            .unwrap();
    }

    fn log() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.tlog");
        write_log(&path);
        (dir, path)
    }

    fn pixels(p: &Player) -> Vec<u8> {
        p.frame().expect("a screen").pixels.to_vec()
    }

    #[test]
    fn the_timeline_holds_the_sessions_events() {
        let (_d, path) = log();
        let p = Player::open(&path).unwrap();
        assert!(p.is_intact(), "{}", p.verdict());
        assert_eq!(p.duration_ms(), 2100);
        let whats: Vec<&Event> = p.events().iter().map(|e| &e.what).collect();
        assert!(
            matches!(whats[0], Event::SessionOpened { technician, .. } if technician == "alice")
        );
        assert_eq!(whats[1], &Event::Consent(ConsentState::Control));
        let Event::Input(typed) = whats[2] else {
            panic!("typing is summed up: {whats:?}");
        };
        assert_eq!((typed.characters, typed.clicks), (12, 0));
        assert_eq!(p.events()[2].time_ms, 500);
        assert_eq!(whats[3], &Event::Consent(ConsentState::ViewOnly));
        let Event::Input(clicks) = whats[4] else {
            panic!("clicks are summed up: {whats:?}");
        };
        assert_eq!((clicks.characters, clicks.clicks), (0, 3));
        assert_eq!(
            whats[5],
            &Event::SessionClosed(CloseReason::ByAgent(EndReason::UserEnded))
        );
        assert_eq!(whats.len(), 6);
    }

    #[test]
    fn playing_at_twice_the_speed_goes_twice_as_far_and_pause_stops() {
        let (_d, path) = log();
        let mut p = Player::open(&path).unwrap();
        p.advance(Duration::from_millis(300));
        assert_eq!(p.position_ms(), 0, "paused: nothing moves");
        p.play();
        p.advance(Duration::from_millis(300));
        assert_eq!(p.position_ms(), 300);
        p.set_speed(2.0);
        p.advance(Duration::from_millis(300));
        assert_eq!(p.position_ms(), 900);
        p.set_speed(0.25);
        for _ in 0..4 {
            p.advance(Duration::from_millis(1));
        }
        assert_eq!(p.position_ms(), 901, "slow speeds add up");
        p.pause();
        p.advance(Duration::from_secs(5));
        assert_eq!(p.position_ms(), 901);
        p.set_speed(100.0);
        assert_eq!(p.speed(), MAX_SPEED);
        p.set_speed(f64::NAN);
        assert_eq!(p.speed(), MAX_SPEED);
        p.play();
        p.advance(Duration::from_secs(60));
        assert_eq!(p.position_ms(), 2100);
        assert!(!p.is_playing(), "stops at the end");
        p.play();
        assert_eq!(p.position_ms(), 0, "play at the end starts again");
    }

    #[test]
    fn seeking_back_gives_the_frame_playing_forward_gives() {
        let (_d, path) = log();
        let mut forward = Player::open(&path).unwrap();
        forward.play();
        forward.advance(Duration::from_millis(750));
        assert_eq!(forward.position_ms(), 750);
        let at_750 = pixels(&forward);
        let generation = forward.generation();
        forward.advance(Duration::from_millis(800));
        assert_ne!(forward.generation(), generation);
        assert!(pixels(&forward) != at_750, "the screen moved on");
        forward.seek(750);
        assert!(
            pixels(&forward) == at_750,
            "seeking back gives another screen"
        );
        assert_eq!(forward.updates_applied(), 8);
        // Back within the same frame: no new screen, no new generation.
        let generation = forward.generation();
        forward.seek(720);
        assert_eq!(forward.generation(), generation);
        assert!(pixels(&forward) == at_750);
        // The frame is the one of the 700 ms update.
        let mut dec = protocol::codec::Decoder::new();
        let mut enc = Encoder::new(W, H);
        for i in 0..=7u32 {
            if let Some(u) = enc.encode(&frame(i), W, H, u64::from(i) * 100, u64::from(i) + 1) {
                dec.apply(&u).unwrap();
            }
        }
        assert!(
            dec.pixels() == &at_750[..],
            "not the screen of the 700 ms update"
        );
        assert!(dec.pixels() == &frame(7)[..], "not frame 7 as captured");
    }

    /// The console may open a long log on a worker thread and hand it to the window.
    #[test]
    fn a_player_can_move_between_threads() {
        fn send<T: Send>() {}
        send::<Player>();
    }

    #[test]
    fn files_that_are_not_logs_are_refused_in_words() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.tlog");
        let e = Player::open(&missing).unwrap_err();
        assert!(matches!(e, PlayerError::Read { .. }), "{e:?}");
        assert!(e.to_string().starts_with("cannot read "), "{e}");
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "shopping list").unwrap();
        let e = Player::open(&other).unwrap_err();
        assert!(e.to_string().ends_with("is not a session log"), "{e}");
        let newer = dir.path().join("newer.tlog");
        std::fs::write(&newer, b"TANDEMLG\x09\x00\x00\x00").unwrap();
        let e = Player::open(&newer).unwrap_err();
        assert!(
            matches!(e, PlayerError::NewerFormat { found: 9, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn a_log_cut_inside_its_header_opens_with_nothing_to_play() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.tlog");
        std::fs::write(&path, b"TANDEM").unwrap();
        let mut p = Player::open(&path).unwrap();
        assert!(matches!(
            p.verdict(),
            Verdict::EndedEarly {
                after_record: None,
                ..
            }
        ));
        assert_eq!((p.duration_ms(), p.records()), (0, 0));
        assert!(p.frame().is_none());
        p.play();
        assert!(!p.is_playing());
    }

    #[test]
    fn a_screen_update_that_cannot_be_applied_stops_playing_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostile.tlog");
        let mut log = LogWriter::create(File::create(&path).unwrap(), &opened()).unwrap();
        let mut enc = Encoder::new(W, H);
        let u = enc.encode(&frame(0), W, H, 0, 1).unwrap();
        log.screen_update(100, &u).unwrap();
        // Valid hashes around a body that is no screen update.
        log.append_raw(500, sessionlog::record::KIND_SCREEN_UPDATE, &[0xff; 40])
            .unwrap();
        log.consent(900, ConsentState::ViewOnly).unwrap();
        log.finish(1000, &CloseReason::ByTechnician).unwrap();
        let mut p = Player::open(&path).unwrap();
        assert!(p.is_intact());
        p.play();
        p.advance(Duration::from_secs(2));
        assert_eq!(p.position_ms(), 500);
        assert!(!p.is_playing());
        assert!(
            p.problem().is_some_and(|w| w.contains("record 2")),
            "{:?}",
            p.problem()
        );
        assert!(pixels(&p) == frame(0));
        // Back and forth again: the same stop, no panic.
        p.seek(0);
        p.seek(2000);
        assert_eq!(p.position_ms(), 500);
        assert!(pixels(&p) == frame(0));
    }
}
