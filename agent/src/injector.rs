//! The technician's input, injected on a thread of its own and only while the gate is open.
//!
//! The session hands each input event to an [`Injector`]; a worker thread owns the
//! [`InputSink`] and injects the events in order. The session's loop therefore never waits on
//! injection, so the person's commands (Stop control, End session, `v`, `q`, Ctrl+C) are taken
//! at once whatever the technician sends. The queue between them holds at most
//! [`QUEUE_EVENTS`] events; while it is full the session stops reading the technician's stream,
//! so QUIC flow control slows the technician down instead of a queue growing.
//!
//! The [`InputGate`] is open while the person allows control. The session opens it when control
//! is granted; the person's side (window or terminal) closes it the moment they stop control or
//! end the session, without waiting for the session to hear about it. The worker checks it
//! before every event and, through [`InputSink::inject_while`], between the characters of typed
//! text, so injection stops within one character; events queued after that are discarded. When
//! the gate closes, and when the worker ends, every key and button still held is released.
//!
//! A session ends the worker with [`Injector::finish`]. One that ends another way (an error on
//! the way out, the link to the relay gone, a cancelled future) drops the [`Injector`], and the
//! drop is a guard: it closes the gate and waits, briefly, until the worker has released
//! everything, so that nothing stays pressed on the person's machine even when the program
//! exits right after.
//!
//! Text per key event is capped at [`MAX_TEXT_CHARS`] characters ([`cap_text`]); the excess is
//! dropped and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::input::InputEvent;
use tokio::sync::{oneshot, Notify};
use tracing::{debug, warn};

use crate::sink::{InputSink, SinkError};

/// Most characters of text one key event may carry; the rest is dropped (and counted).
pub const MAX_TEXT_CHARS: usize = 4096;

/// Most input events waiting for the worker.
pub const QUEUE_EVENTS: usize = 256;

/// How often an idle worker looks at the gate, to release held keys soon after it closes.
const GATE_POLL: Duration = Duration::from_millis(20);

/// How long dropping an [`Injector`] waits for the worker to release what is held. The worker
/// stops within one character once the gate is closed, so this is only reached when the sink
/// itself hangs (an X server that does not answer).
pub const DROP_RELEASE_WAIT: Duration = Duration::from_secs(1);

/// Whether the technician's input may reach the screen: open while the person allows control.
/// Clones share one gate.
#[derive(Debug, Clone, Default)]
pub struct InputGate(Arc<AtomicBool>);

impl InputGate {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    pub fn open(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn close(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    pub fn is_open(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Cuts the text of a key event to [`MAX_TEXT_CHARS`] characters; returns how many it dropped.
pub fn cap_text(event: &mut InputEvent) -> usize {
    let InputEvent::Key { text: Some(t), .. } = event else {
        return 0;
    };
    match t.char_indices().nth(MAX_TEXT_CHARS) {
        None => 0,
        Some((cut, _)) => {
            let dropped = t[cut..].chars().count();
            t.truncate(cut);
            dropped
        }
    }
}

/// What the worker did, told when it ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectorStats {
    /// Events injected (in whole or, for text cut short by the gate, in part).
    pub injected: u64,
    /// Events that were queued but found the gate closed.
    pub discarded: u64,
}

struct Shared {
    gate: InputGate,
    /// Set by [`Injector::release_held`]; the worker releases what is held and clears it.
    release: AtomicBool,
    /// Signalled each time the worker takes an event off the queue.
    room: Notify,
    injected: AtomicU64,
    discarded: AtomicU64,
}

/// The session's end of the injection worker. Dropped without [`Injector::finish`], it stops
/// the worker and waits until everything held is released (see the module's words).
pub struct Injector {
    queue: Option<SyncSender<InputEvent>>,
    shared: Arc<Shared>,
    done: Option<oneshot::Receiver<()>>,
    /// Told too when the worker has ended, for the wait of a drop (which cannot await). In a
    /// mutex only so that the injector can be shared between tasks.
    ended: Mutex<mpsc::Receiver<()>>,
}

/// Tells the session that the sink failed (the worker then stops).
pub struct InjectFailure(Option<oneshot::Receiver<SinkError>>);

impl InjectFailure {
    /// Resolves if the sink fails; pending otherwise, also once the worker has ended well.
    pub async fn wait(&mut self) -> SinkError {
        if let Some(rx) = self.0.as_mut() {
            let got = rx.await;
            self.0 = None;
            if let Ok(e) = got {
                return e;
            }
        }
        std::future::pending().await
    }
}

impl Injector {
    /// Starts the worker, which owns `sink` from now on.
    pub fn start(
        sink: Box<dyn InputSink>,
        gate: InputGate,
    ) -> std::io::Result<(Self, InjectFailure)> {
        let (queue, events) = mpsc::sync_channel(QUEUE_EVENTS);
        let shared = Arc::new(Shared {
            gate,
            release: AtomicBool::new(false),
            room: Notify::new(),
            injected: AtomicU64::new(0),
            discarded: AtomicU64::new(0),
        });
        let (fail_tx, failure) = oneshot::channel();
        let (done_tx, done) = oneshot::channel();
        let (ended_tx, ended) = mpsc::channel();
        let s = shared.clone();
        std::thread::Builder::new()
            .name("inject".into())
            .spawn(move || {
                worker(sink, events, &s, fail_tx);
                let _ = done_tx.send(());
                let _ = ended_tx.send(());
            })?;
        let injector = Self {
            queue: Some(queue),
            shared,
            done: Some(done),
            ended: Mutex::new(ended),
        };
        Ok((injector, InjectFailure(Some(failure))))
    }

    /// Queues `event`; gives it back when the queue is full (wait with [`Injector::room`] and
    /// offer it again).
    pub fn offer(&self, event: InputEvent) -> Result<(), InputEvent> {
        let Some(q) = &self.queue else {
            return Ok(());
        };
        match q.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(e)) => Err(e),
            // The worker stopped after a failure, which `InjectFailure` reports.
            Err(TrySendError::Disconnected(_)) => Ok(()),
        }
    }

    /// Asks the worker to release every key and button held (within [`GATE_POLL`] when idle):
    /// the technician is not heard from, so nothing may stay pressed meanwhile. Input that
    /// follows is injected as usual.
    pub fn release_held(&self) {
        self.shared.release.store(true, Ordering::Release);
    }

    /// Resolves when the worker has taken an event off the queue since the last call.
    pub async fn room(&self) {
        self.shared.room.notified().await;
    }

    /// Closes the queue and waits (at most `limit`) for the worker to inject what the technician
    /// sent before the end (unless the person closed the gate), release everything held and
    /// end; past `limit` the gate closes, so the rest is dropped and released at once.
    pub async fn finish(mut self, limit: Duration) -> InjectorStats {
        self.queue = None;
        // Taken only once waited for: a `finish` cancelled halfway leaves the drop's guard on.
        if let Some(done) = self.done.as_mut() {
            if tokio::time::timeout(limit, &mut *done).await.is_err() {
                self.shared.gate.close();
                if tokio::time::timeout(limit, done).await.is_err() {
                    warn!("the input worker did not end in time; it ends on its own");
                }
            }
        }
        self.done = None;
        self.shared.gate.close();
        self.stats()
    }

    pub fn stats(&self) -> InjectorStats {
        InjectorStats {
            injected: self.shared.injected.load(Ordering::Relaxed),
            discarded: self.shared.discarded.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Injector {
    /// Without [`Injector::finish`]: the gate closes, so the worker drops what is queued and
    /// releases what is held, and this waits (at most [`DROP_RELEASE_WAIT`], blocking the
    /// thread it runs on) until it has. After `finish` there is nothing left to do.
    fn drop(&mut self) {
        if self.done.take().is_none() {
            return;
        }
        self.shared.gate.close();
        self.queue = None;
        let ended = self.ended.get_mut().unwrap_or_else(|p| p.into_inner());
        match ended.recv_timeout(DROP_RELEASE_WAIT) {
            // Ended, or gone without a word (its sink panicked): nothing more to wait for.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                warn!("the input worker did not release held input in time; it goes on alone")
            }
        }
    }
}

fn release(sink: &mut dyn InputSink, held: &mut bool) {
    if std::mem::take(held) {
        if let Err(e) = sink.release_all() {
            warn!(error = %e, "could not release held input");
        }
    }
}

fn worker(
    mut sink: Box<dyn InputSink>,
    events: mpsc::Receiver<InputEvent>,
    shared: &Shared,
    failed: oneshot::Sender<SinkError>,
) {
    let gate = &shared.gate;
    // Whether anything may be held down since the last release, and whether there was one.
    let mut held = false;
    let mut released_once = false;
    loop {
        let next = events.recv_timeout(GATE_POLL);
        if shared.release.swap(false, Ordering::AcqRel) {
            released_once |= held;
            release(sink.as_mut(), &mut held);
        }
        match next {
            Ok(event) => {
                shared.room.notify_one();
                if !gate.is_open() {
                    shared.discarded.fetch_add(1, Ordering::Relaxed);
                    released_once |= held;
                    release(sink.as_mut(), &mut held);
                    continue;
                }
                held = true;
                let allowed = || gate.is_open();
                if let Err(e) = sink.inject_while(&event, &allowed) {
                    warn!(error = %e, "input could not be injected");
                    release(sink.as_mut(), &mut held);
                    let _ = failed.send(e);
                    return;
                }
                shared.injected.fetch_add(1, Ordering::Relaxed);
                if !gate.is_open() {
                    released_once = true;
                    release(sink.as_mut(), &mut held);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if !gate.is_open() {
                    released_once |= held;
                    release(sink.as_mut(), &mut held);
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Whatever happened, nothing stays pressed: one last release unless the last thing done
    // was a release.
    if held || !released_once {
        held = true;
        release(sink.as_mut(), &mut held);
    }
    debug!("input worker ended");
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::input::{Key, Modifiers};
    use std::time::Instant;

    fn typed(text: &str) -> InputEvent {
        InputEvent::Key {
            down: true,
            key: Key::Char('a'),
            text: Some(text.into()),
            modifiers: Modifiers::NONE,
        }
    }

    #[test]
    fn text_is_cut_at_the_limit_on_a_character_boundary() {
        let mut short = typed("héllo");
        assert_eq!(cap_text(&mut short), 0);
        let long: String = "é".repeat(MAX_TEXT_CHARS + 10);
        let mut e = typed(&long);
        assert_eq!(cap_text(&mut e), 10);
        let InputEvent::Key { text: Some(t), .. } = e else {
            unreachable!()
        };
        assert_eq!(t.chars().count(), MAX_TEXT_CHARS);
        let mut exact = typed(&"x".repeat(MAX_TEXT_CHARS));
        assert_eq!(cap_text(&mut exact), 0);
    }

    /// Records what it was given, taking `per_char` for each character of text.
    #[derive(Clone, Default)]
    struct Slow {
        chars: Arc<Mutex<Vec<(Instant, char)>>>,
        releases: Arc<AtomicU64>,
        per_char: Duration,
    }

    impl InputSink for Slow {
        fn inject(&mut self, event: &InputEvent) -> Result<(), SinkError> {
            self.inject_while(event, &|| true)
        }
        fn inject_while(
            &mut self,
            event: &InputEvent,
            allowed: &dyn Fn() -> bool,
        ) -> Result<(), SinkError> {
            if let InputEvent::Key { text: Some(t), .. } = event {
                for c in t.chars() {
                    if !allowed() {
                        break;
                    }
                    std::thread::sleep(self.per_char);
                    self.chars.lock().unwrap().push((Instant::now(), c));
                }
            }
            Ok(())
        }
        fn release_all(&mut self) -> Result<(), SinkError> {
            self.releases.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[tokio::test]
    async fn closing_the_gate_stops_text_in_the_middle_and_releases() {
        let sink = Slow {
            per_char: Duration::from_millis(2),
            ..Default::default()
        };
        let gate = InputGate::new();
        gate.open();
        let (injector, _) = Injector::start(Box::new(sink.clone()), gate.clone()).unwrap();
        // Ten seconds of typing in one event, and more queued behind it.
        injector.offer(typed(&"x".repeat(MAX_TEXT_CHARS))).unwrap();
        injector.offer(typed("after")).unwrap();
        let wait_for = |n: usize| {
            let deadline = Instant::now() + Duration::from_secs(10);
            while sink.chars.lock().unwrap().len() < n {
                assert!(Instant::now() < deadline, "typing did not start");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        wait_for(20);
        let closed = Instant::now();
        gate.close();
        let deadline = Instant::now() + Duration::from_secs(5);
        while sink.releases.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "held input was not released");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let stats = injector.finish(Duration::from_secs(5)).await;
        let chars = sink.chars.lock().unwrap();
        let last = chars.last().unwrap().0;
        assert!(
            last.saturating_duration_since(closed) < Duration::from_millis(100),
            "a character arrived {:?} after the gate closed",
            last - closed
        );
        assert!(chars.len() < MAX_TEXT_CHARS, "the whole text was typed");
        assert!(
            chars.iter().all(|(_, c)| *c == 'x'),
            "the queued event was typed"
        );
        assert_eq!(stats.discarded, 1);
    }

    #[tokio::test]
    async fn held_input_is_released_on_request_and_input_goes_on_after() {
        let sink = Slow::default();
        let gate = InputGate::new();
        gate.open();
        let (injector, _) = Injector::start(Box::new(sink.clone()), gate.clone()).unwrap();
        injector.offer(typed("a")).unwrap();
        let wait = |what: &str, done: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !done() {
                assert!(Instant::now() < deadline, "{what}");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        wait("the key was not injected", &|| {
            sink.chars.lock().unwrap().len() == 1
        });
        assert_eq!(sink.releases.load(Ordering::SeqCst), 0);
        // Nothing else arrives: the worker releases on its own wake-up.
        let asked = Instant::now();
        injector.release_held();
        wait("held input was not released", &|| {
            sink.releases.load(Ordering::SeqCst) == 1
        });
        assert!(
            asked.elapsed() < GATE_POLL * 4,
            "released after {:?}",
            asked.elapsed()
        );
        // The gate stays open: later input is injected as before.
        injector.offer(typed("b")).unwrap();
        wait("input after the release was not injected", &|| {
            sink.chars.lock().unwrap().len() == 2
        });
        let stats = injector.finish(Duration::from_secs(5)).await;
        assert_eq!(stats.injected, 2);
    }

    #[tokio::test]
    async fn a_full_queue_gives_the_event_back_until_there_is_room() {
        let sink = Slow {
            per_char: Duration::from_millis(1),
            ..Default::default()
        };
        let gate = InputGate::new();
        gate.open();
        let (injector, _) = Injector::start(Box::new(sink.clone()), gate).unwrap();
        let mut given_back = 0;
        let mut sent = 0;
        while sent < QUEUE_EVENTS * 2 {
            match injector.offer(typed("ab")) {
                Ok(()) => sent += 1,
                Err(_) => {
                    given_back += 1;
                    injector.room().await;
                }
            }
        }
        assert!(given_back > 0, "the queue never filled");
        let deadline = Instant::now() + Duration::from_secs(20);
        while sink.chars.lock().unwrap().len() < QUEUE_EVENTS * 4 {
            assert!(Instant::now() < deadline, "not every event was injected");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let stats = injector.finish(Duration::from_secs(10)).await;
        assert_eq!(sink.chars.lock().unwrap().len(), QUEUE_EVENTS * 4);
        assert_eq!(stats.injected, (QUEUE_EVENTS * 2) as u64);
    }
}
