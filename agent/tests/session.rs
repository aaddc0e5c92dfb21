//! The agent's session against a technician that misbehaves, over real QUIC on loopback.
//!
//! The agent's relay connection ends at a fake relay that is also the technician: it welcomes
//! the agent, then runs the technician's side of the sealed session on that same connection
//! (what a real relay would splice through to a technician). So the technician can do what no
//! honest client does (repeat acknowledgements, type before the person answered, vanish in the
//! middle of typing) while the test watches what reaches the agent's input sink.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent::consent::{self, ConsentPolicy, FromUser, UserSide};
use agent::injector::{InputGate, MAX_TEXT_CHARS};
use agent::session::{self, Ended, Person, SessionOptions};
use agent::sink::{InputSink, SinkError};
use agent::source::{Capture, Frame, ScreenSource, SourceError, SourceFactory};
use agent::status::StatusTx;
use link::channel::{FramedRecv, FramedSend};
use link::report::Reporter;
use link::sealed::{self, SealedRecv, SealedSend};
use link::tls::{self, Fingerprint};
use link::{LinkError, RelayConnection};
use protocol::control::{FromRelay, PeerInfo, Role, SessionCode, TechnicianAccount, ToRelay};
use protocol::e2e::{CodeSecret, UserCode};
use protocol::input::{InputEvent, Key, Modifiers, MouseButton, NamedKey};
use protocol::peer::{ConsentState, EndReason, PeerMessage};
use quinn::{Connection, Endpoint};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long anything that should happen may take before the test says it did not.
const LIMIT: Duration = Duration::from_secs(10);

/// A screen of 64x64 pixels that is different at every capture, at once: the agent makes an
/// update whenever it has a credit.
struct Changing {
    pixels: Vec<u8>,
    id: u64,
}

impl ScreenSource for Changing {
    fn size(&self) -> (u32, u32) {
        (64, 64)
    }
    fn describe(&self) -> String {
        "a changing test screen".into()
    }
    fn capture(&mut self) -> Result<Capture<'_>, SourceError> {
        self.id += 1;
        let shade = (self.id * 37 % 251) as u8;
        self.pixels.fill(shade);
        Ok(Capture::Frame(Frame {
            width: 64,
            height: 64,
            pixels: &self.pixels,
            changed: None,
            id: self.id,
        }))
    }
}

fn changing() -> SourceFactory {
    Arc::new(|| {
        Ok(Box::new(Changing {
            pixels: vec![0; 64 * 64 * 4],
            id: 0,
        }) as Box<dyn ScreenSource>)
    })
}

/// What reached the input sink, when.
#[derive(Debug, Clone, PartialEq)]
enum Done {
    /// A character of typed text.
    Char(char),
    /// Any other event.
    Event(InputEvent),
    ReleaseAll,
}

/// Records what it is given; `per_char` is how long each character of text takes.
#[derive(Clone, Default)]
struct Recorder {
    log: Arc<Mutex<Vec<(Instant, Done)>>>,
    per_char: Duration,
}

impl Recorder {
    fn slow() -> Self {
        Self {
            per_char: Duration::from_millis(1),
            ..Default::default()
        }
    }

    fn log(&self) -> Vec<(Instant, Done)> {
        self.log.lock().unwrap().clone()
    }

    fn done(&self) -> Vec<Done> {
        let log = self.log.lock().unwrap();
        log.iter().map(|(_, d)| d.clone()).collect()
    }

    fn chars(&self) -> usize {
        self.done()
            .iter()
            .filter(|d| matches!(d, Done::Char(_)))
            .count()
    }

    fn push(&self, d: Done) {
        self.log.lock().unwrap().push((Instant::now(), d));
    }
}

impl InputSink for Recorder {
    fn inject(&mut self, event: &InputEvent) -> Result<(), SinkError> {
        self.inject_while(event, &|| true)
    }

    fn inject_while(
        &mut self,
        event: &InputEvent,
        allowed: &dyn Fn() -> bool,
    ) -> Result<(), SinkError> {
        match event {
            InputEvent::Key {
                down: true,
                text: Some(t),
                ..
            } => {
                for c in t.chars() {
                    if !allowed() {
                        break;
                    }
                    std::thread::sleep(self.per_char);
                    self.push(Done::Char(c));
                }
            }
            other if allowed() => self.push(Done::Event(other.clone())),
            _ => {}
        }
        Ok(())
    }

    fn release_all(&mut self) -> Result<(), SinkError> {
        self.push(Done::ReleaseAll);
        Ok(())
    }
}

fn typed(text: String) -> InputEvent {
    InputEvent::Key {
        down: true,
        key: Key::Char('x'),
        text: Some(text),
        modifiers: Modifiers::NONE,
    }
}

fn held_shift() -> InputEvent {
    InputEvent::Key {
        down: true,
        key: Key::Named(NamedKey::Shift),
        text: None,
        modifiers: Modifiers::NONE,
    }
}

fn technician_info() -> PeerInfo {
    PeerInfo {
        role: Role::Technician,
        description: "technician at 127.0.0.1:5000".into(),
        software: "technician 0.1.0".into(),
        account: Some(TechnicianAccount {
            name: "alice".into(),
            tier: 1,
            organisation: "Example Support".into(),
        }),
    }
}

/// The fake relay's side of the agent's connection, and the technician's sealed session on it.
struct Technician {
    tx: SealedSend,
    rx: SealedRecv,
    keys: protocol::e2e::SessionKeys,
    connection: Connection,
    /// The control stream, kept open: a relay that says nothing more.
    _control: (FramedSend<FromRelay>, FramedRecv<ToRelay>),
    _endpoint: Endpoint,
}

impl Technician {
    async fn send(&mut self, msg: PeerMessage) {
        self.tx.send(&msg).await.expect("the technician sends");
    }

    /// The next message from the agent, passing over its word on whether the clipboard is
    /// shared (sent whenever control is allowed or taken back), which these tests do not follow.
    async fn next(&mut self) -> PeerMessage {
        loop {
            let msg = tokio::time::timeout(LIMIT, self.rx.recv())
                .await
                .expect("the agent said something in time")
                .expect("the session stream works")
                .expect("the session stream is open");
            if !matches!(msg, PeerMessage::ClipboardShared(_)) {
                return msg;
            }
        }
    }

    async fn expect(&mut self, wanted: PeerMessage) {
        let got = self.next().await;
        assert_eq!(got, wanted);
    }

    /// Says it records (so that the agent does not wait for that), and reads what the agent
    /// says until the screen is shared with `scope`.
    async fn until_shared(&mut self, scope: ConsentState) {
        self.send(PeerMessage::Recorded).await;
        self.expect(PeerMessage::Consent(ConsentState::Asking))
            .await;
        self.expect(PeerMessage::Consent(scope)).await;
        match self.next().await {
            PeerMessage::SessionStart { .. } => {}
            other => panic!("expected the session's start, got {other:?}"),
        }
    }

    /// Reads the screen updates the agent sends, and passes on their numbers.
    fn updates(&self) -> mpsc::UnboundedReceiver<u64> {
        let (out, seqs) = mpsc::unbounded_channel();
        let receiver = Mutex::new(self.keys.update_receiver());
        let connection = self.connection.clone();
        tokio::spawn(async move {
            while let Ok(stream) = connection.accept_uni().await {
                match sealed::read_update(stream, &receiver).await {
                    Ok(u) => {
                        if out.send(u.seq).is_err() {
                            return;
                        }
                    }
                    // The session is ending.
                    Err(_) => return,
                }
            }
        });
        seqs
    }
}

/// The agent's session, running.
struct Agent {
    run: JoinHandle<Result<Ended, LinkError>>,
    /// The person's side: what they say in the terminal or the window.
    side: UserSide,
}

/// Pairs an agent (sharing a [`Changing`] screen into `sink`, with `consent`) with a
/// [`Technician`].
async fn pair(sink: Recorder, consent: ConsentPolicy) -> (Agent, Technician) {
    let id = tls::generate_self_signed(vec!["localhost".into()]).unwrap();
    let pin = Fingerprint::of(&id.cert_der);
    let tls = tls::server_config(id.cert_der, id.key_der).unwrap();
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let endpoint = Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(quic)),
        SocketAddr::from(([127, 0, 0, 1], 0)),
    )
    .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let relay = async {
        let connection = endpoint.accept().await.unwrap().await.unwrap();
        let (send, recv) = connection.accept_bi().await.unwrap();
        let mut out = FramedSend::<FromRelay>::new(send);
        let mut from = FramedRecv::<ToRelay>::control(recv);
        match from.recv().await.unwrap() {
            Some(ToRelay::Hello { .. }) => {}
            other => panic!("expected a hello, got {other:?}"),
        }
        out.send(&FromRelay::Welcome {
            version: protocol::PROTOCOL_VERSION,
            software: "fake relay".into(),
        })
        .await
        .unwrap();
        (connection, (out, from))
    };
    let relay_addr = addr.to_string();
    let connecting = RelayConnection::connect(&relay_addr, pin, Role::Agent);
    let (conn, (connection, control)) = tokio::join!(connecting, relay);
    let conn = conn.expect("the agent connects to the fake relay");

    let code = UserCode::new(
        SessionCode::from_digits("123456789".into()).unwrap(),
        CodeSecret::generate(),
    );
    let gate = InputGate::new();
    let (side, input) = consent::channel(gate.clone());
    let mut person = Person {
        input,
        gate,
        status: StatusTx::none(),
    };
    let opts = SessionOptions {
        max_in_flight: 2,
        report_updates: false,
        consent,
        lossless: true,
        // The fake relay takes no rejoin: a dropped link ends the session, not resumed.
        resume_limit: Duration::ZERO,
        ..SessionOptions::default()
    };
    let meeting = sealed::Meeting::Code(code.clone());
    let run = tokio::spawn(async move {
        session::run(
            conn,
            meeting,
            technician_info(),
            changing(),
            Box::new(sink),
            &mut person,
            opts,
            Reporter::new(true),
            Box::pin(std::future::pending::<()>()),
        )
        .await
    });
    let session = sealed::technician_session(&connection, &code, LIMIT)
        .await
        .expect("the key exchange works")
        .expect("the agent opens the session stream");
    let technician = Technician {
        tx: session.send,
        rx: session.recv,
        keys: session.keys,
        connection,
        _control: control,
        _endpoint: endpoint,
    };
    (Agent { run, side }, technician)
}

async fn ended(agent: Agent) -> Result<Ended, LinkError> {
    tokio::time::timeout(LIMIT, agent.run)
        .await
        .expect("the session ended in time")
        .expect("the session did not panic")
}

fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

async fn next_update(updates: &mut mpsc::UnboundedReceiver<u64>) -> u64 {
    tokio::time::timeout(LIMIT, updates.recv())
        .await
        .expect("a screen update in time")
        .expect("updates keep coming")
}

/// Finding 6 of issue #11: a repeated acknowledgement refunded a credit every time, so the
/// agent sent (and spawned a task for) one more update per repetition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_acknowledgement_earns_no_update_and_one_never_sent_ends_the_session() {
    let (agent, mut tech) = pair(
        Recorder::default(),
        ConsentPolicy::Preset(ConsentState::ViewOnly),
    )
    .await;
    let mut updates = tech.updates();
    tech.until_shared(ConsentState::ViewOnly).await;
    // Two updates unacknowledged at most. Each goes out from a task of its own, so the two may
    // open their streams, and arrive, in either order.
    let mut first_two = [
        next_update(&mut updates).await,
        next_update(&mut updates).await,
    ];
    first_two.sort_unstable();
    assert_eq!(first_two, [1, 2]);
    tech.send(PeerMessage::UpdateAck { seq: 1 }).await;
    assert_eq!(next_update(&mut updates).await, 3);
    for _ in 0..20 {
        tech.send(PeerMessage::UpdateAck { seq: 1 }).await;
        let more = tokio::time::timeout(Duration::from_millis(50), updates.recv()).await;
        assert!(
            more.is_err(),
            "a repeated acknowledgement of update 1 earned update {:?}",
            more.unwrap()
        );
    }
    // The next one in order still works.
    tech.send(PeerMessage::UpdateAck { seq: 2 }).await;
    assert_eq!(next_update(&mut updates).await, 4);
    // One of an update never sent breaks the protocol.
    tech.send(PeerMessage::UpdateAck { seq: 99 }).await;
    let said = match tech.next().await {
        PeerMessage::EndSession {
            reason: EndReason::Error(e),
        } => e,
        other => panic!("expected the end of the session, got {other:?}"),
    };
    assert!(said.contains("update 99, which was never sent"), "{said}");
    match ended(agent).await {
        Ok(Ended::Reason(EndReason::Error(e))) => assert_eq!(e, said),
        other => panic!("the session ended with {other:?}"),
    }
}

/// Finding 7 of issue #11: when the link dropped, an early `?` left the session without
/// releasing what the technician held down (and the worker typing on). Twenty sessions whose
/// link goes at different points, each in the middle of typing with a key and a button held:
/// by the time the session has returned, everything is released and nothing more is typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_input_is_released_whenever_the_link_drops() {
    for round in 0..20u64 {
        let sink = Recorder::slow();
        let (agent, mut tech) =
            pair(sink.clone(), ConsentPolicy::Preset(ConsentState::Control)).await;
        tech.until_shared(ConsentState::Control).await;
        tech.send(PeerMessage::Input(held_shift())).await;
        tech.send(PeerMessage::Input(InputEvent::Button {
            button: MouseButton::Left,
            down: true,
        }))
        .await;
        for _ in 0..3 {
            tech.send(PeerMessage::Input(typed("x".repeat(MAX_TEXT_CHARS))))
                .await;
        }
        let s = sink.clone();
        tokio::task::spawn_blocking(move || wait_until("typing starts", || s.chars() > 0))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(round * 3)).await;
        let bye = quinn::VarInt::from_u32(0);
        match round % 3 {
            // The relay's connection goes.
            0 => tech.connection.close(bye, b"gone"),
            // The session stream ends, then the connection.
            1 => {
                let _ = tech.tx.finish().await;
                tech.connection.close(bye, b"gone");
            }
            // The session stream is reset, then the connection goes.
            _ => {
                let _ = tech.tx.stream_mut().reset(bye);
                tech.connection.close(bye, b"gone");
            }
        }
        let how = ended(agent).await;
        let at_end = sink.done();
        assert_eq!(
            at_end.last(),
            Some(&Done::ReleaseAll),
            "round {round} ({how:?}): not released when the session returned; {} records, last {:?}",
            at_end.len(),
            at_end.last()
        );
        assert!(
            at_end.contains(&Done::Event(held_shift())),
            "round {round}: shift was never pressed"
        );
        // Nothing after the release: the worker stopped.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            sink.done().len(),
            at_end.len(),
            "round {round}: input was injected after the session ended"
        );
    }
}

/// Finding 8 of issue #11: input the technician sent while the person was being asked was
/// queued and injected in one burst once they allowed control. Now it ends the session, and
/// the person's answer afterwards lets nothing through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_sent_before_consent_never_reaches_the_screen() {
    let sink = Recorder::default();
    let (agent, mut tech) = pair(
        sink.clone(),
        ConsentPolicy::Ask {
            timeout: Duration::from_secs(30),
        },
    )
    .await;
    tech.send(PeerMessage::Recorded).await;
    tech.expect(PeerMessage::Consent(ConsentState::Asking))
        .await;
    for event in [
        InputEvent::PointerMove { x: 10, y: 10 },
        InputEvent::Button {
            button: MouseButton::Left,
            down: true,
        },
        typed("rm -rf ~\n".into()),
    ] {
        tech.send(PeerMessage::Input(event)).await;
    }
    // The agent ends the session (or, as before the fix, waits for the person's answer).
    let early = tokio::time::timeout(Duration::from_secs(2), tech.rx.recv()).await;
    // The person allows control: too late.
    agent.side.say(FromUser::Answer(ConsentState::Control));
    let said = match early {
        Ok(Ok(Some(m))) => m,
        _ => tech.next().await,
    };
    let said = match said {
        PeerMessage::EndSession { reason } => reason,
        // Before the fix: control was granted; the technician leaves at once.
        other => {
            tech.send(PeerMessage::EndSession {
                reason: EndReason::TechnicianEnded,
            })
            .await;
            let _ = ended(agent).await;
            panic!(
                "the session went on after input before consent (the agent said {other:?}); the sink got {:?}",
                sink.done()
            );
        }
    };
    let how = ended(agent).await;
    // Nothing typed or clicked reached the screen (a release of what is held may have, if the
    // answer came while the session was ending: it presses nothing).
    assert!(
        sink.done().iter().all(|d| *d == Done::ReleaseAll),
        "the sink got {:?}",
        sink.done()
    );
    let EndReason::Error(e) = &said else {
        panic!("the technician was told {said:?}")
    };
    assert!(e.contains("input before the user allowed control"), "{e}");
    assert!(
        matches!(&how, Ok(Ended::Reason(r)) if *r == said),
        "the session ended with {how:?}"
    );
}

/// Finding 3 of issue #11: one key event carrying megabytes of text was typed character by
/// character in the agent's only loop, so "stop control" waited for all of it. Now the text is
/// cut to [`MAX_TEXT_CHARS`] and typed on the input worker, which looks at the person's consent
/// between characters: `v` in the terminal stops the typing within a second (here, within a
/// few characters) and the technician hears of it at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_control_stops_megabytes_of_text_within_a_second() {
    let sink = Recorder::slow();
    let (agent, mut tech) = pair(sink.clone(), ConsentPolicy::Preset(ConsentState::Control)).await;
    tech.until_shared(ConsentState::Control).await;
    tech.send(PeerMessage::Input(typed("x".repeat(4 << 20))))
        .await;
    let s = sink.clone();
    tokio::task::spawn_blocking(move || wait_until("typing starts", || s.chars() >= 50))
        .await
        .unwrap();
    let said = Instant::now();
    agent.side.say(FromUser::Line("v".into()));
    tech.expect(PeerMessage::Consent(ConsentState::ViewOnly))
        .await;
    assert!(
        said.elapsed() < Duration::from_secs(1),
        "the technician heard of it {:?} later",
        said.elapsed()
    );
    let s = sink.clone();
    tokio::task::spawn_blocking(move || {
        wait_until("held input released", || {
            s.done().last() == Some(&Done::ReleaseAll)
        })
    })
    .await
    .unwrap();
    tech.send(PeerMessage::EndSession {
        reason: EndReason::TechnicianEnded,
    })
    .await;
    let how = ended(agent).await;
    assert!(
        matches!(how, Ok(Ended::Reason(EndReason::TechnicianEnded))),
        "{how:?}"
    );
    let log = sink.log();
    let last_char = log
        .iter()
        .rev()
        .find(|(_, d)| matches!(d, Done::Char(_)))
        .map(|(t, _)| *t)
        .unwrap();
    assert!(
        last_char.saturating_duration_since(said) < Duration::from_secs(1),
        "a character was typed {:?} after stop control",
        last_char - said
    );
    let chars = sink.chars();
    assert!(
        chars < MAX_TEXT_CHARS,
        "{chars} characters typed: the stop did not stop it"
    );
    assert_eq!(
        log.iter()
            .skip_while(|(_, d)| *d != Done::ReleaseAll)
            .filter(|(_, d)| matches!(d, Done::Char(_)))
            .count(),
        0,
        "typed after the release"
    );
}
