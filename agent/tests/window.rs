//! The agent's window driven through egui_kittest, without a display: each consent button
//! grants exactly its scope as the session reads it; Stop control and End session stop the
//! injection worker while a flood of input is arriving; Request help files what the person
//! wrote, and the survey sends the score and comment they chose, or nothing when skipped; files
//! offered while shared are saved in the folder shown or declined; every screen finds all its
//! words in English and in Spanish.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use agent::consent::{self, UserCommand, UserInput};
use agent::desk::{HelpAsked, SurveyAnswer};
use agent::injector::{Injector, InputGate};
use agent::sink::{InputSink, SinkError};
use agent::status::{EndedWhy, Heard, Status};
use agent::window::{ui, AgentWindow};
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use protocol::control::{PeerInfo, Role, TechnicianAccount};
use protocol::input::{InputEvent, Key, Modifiers};
use protocol::peer::ConsentState;
use words::{Catalogue, Lang};

fn alice() -> PeerInfo {
    PeerInfo {
        role: Role::Technician,
        description: "technician at 10.0.0.7:5000".into(),
        software: "technician 0.1.0".into(),
        account: Some(TechnicianAccount {
            name: "alice".into(),
            tier: 2,
            organisation: "Example Support".into(),
        }),
    }
}

/// The screen is shared with alice alone, who controls it.
fn alice_controls() -> Status {
    Status::Sharing {
        others: vec![],
        peer: alice(),
        control: true,
    }
}

fn asking() -> Status {
    Status::Asking {
        joining: None,
        peer: alice(),
        recorded: true,
        verification: None,
        timeout: Duration::from_secs(60),
        deadline: Instant::now() + Duration::from_secs(60),
    }
}

/// A window in `lang` with its status channel and the session's end of what the person says.
fn window(
    lang: &Lang,
    gate: InputGate,
) -> (
    Harness<'static, AgentWindow>,
    mpsc::Sender<Status>,
    UserInput,
) {
    let (side, input) = consent::channel(gate);
    let (tx, rx) = mpsc::channel();
    let app = AgentWindow::new(Catalogue::new("agent", lang), rx, side);
    let harness = Harness::builder().with_size(ui::FULL_SIZE).build_ui_state(
        |ui, app: &mut AgentWindow| {
            app.frame(ui);
        },
        app,
    );
    (harness, tx, input)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn each_consent_button_grants_exactly_its_scope() {
    let rt = runtime();
    for lang in [Lang::english(), Lang::spanish()] {
        let cat = Catalogue::new("agent", &lang);
        for (key, scope) in [
            ("consent-allow-control", ConsentState::Control),
            ("consent-view-only", ConsentState::ViewOnly),
            ("consent-deny", ConsentState::Denied),
        ] {
            let (mut harness, status, mut input) = window(&lang, InputGate::new());
            status.send(asking()).unwrap();
            harness.run_steps(2);
            let label = cat.text(key);
            harness.get_by_label(&label).click();
            harness.run_steps(2);
            // The session's own reading of the answer.
            let (got, timed_out) =
                rt.block_on(input.ask(Duration::from_secs(2), |l| panic!("read a line {l}")));
            assert_eq!(
                (got, timed_out),
                (scope, false),
                "{lang}: `{label}` granted {got:?}"
            );
            // Nothing else was said.
            let more = rt.block_on(input.ask(Duration::from_millis(50), |_| {}));
            assert_eq!(
                more,
                (ConsentState::Denied, true),
                "{lang}: `{label}` said more"
            );
            assert!(
                harness.query_by_label(&label).is_none(),
                "{lang}: the question is still shown after `{label}`"
            );
        }
    }
}

/// Takes `per_char` for each character of typed text and records when each arrived.
#[derive(Clone, Default)]
struct SlowRecorder {
    typed: Arc<Mutex<Vec<Instant>>>,
    releases: Arc<AtomicU64>,
    per_char: Duration,
}

impl SlowRecorder {
    fn count(&self) -> usize {
        self.typed.lock().unwrap().len()
    }

    fn last(&self) -> Option<Instant> {
        self.typed.lock().unwrap().last().copied()
    }
}

impl InputSink for SlowRecorder {
    fn inject(&mut self, event: &InputEvent) -> Result<(), SinkError> {
        self.inject_while(event, &|| true)
    }

    fn inject_while(
        &mut self,
        event: &InputEvent,
        allowed: &dyn Fn() -> bool,
    ) -> Result<(), SinkError> {
        if let InputEvent::Key { text: Some(t), .. } = event {
            for _ in t.chars() {
                if !allowed() {
                    break;
                }
                std::thread::sleep(self.per_char);
                self.typed.lock().unwrap().push(Instant::now());
            }
        }
        Ok(())
    }

    fn release_all(&mut self) -> Result<(), SinkError> {
        self.releases.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn text_event(n: usize) -> InputEvent {
    InputEvent::Key {
        down: true,
        key: Key::Char('x'),
        text: Some("x".repeat(n)),
        modifiers: Modifiers::NONE,
    }
}

fn wait_until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Shares with control, floods the injector as the session would (large text events, as fast
/// as the queue takes them), clicks `button` in the bar, and checks that no character arrives
/// later than `limit` after the click, that held input is released, and that the session hears
/// `command`.
fn button_stops_injection(button_key: &str, command: UserCommand) {
    let rt = runtime();
    let lang = Lang::english();
    let cat = Catalogue::new("agent", &lang);
    let gate = InputGate::new();
    let (mut harness, status, mut input) = window(&lang, gate.clone());
    status.send(alice_controls()).unwrap();
    harness.run_steps(2);
    let sink = SlowRecorder {
        per_char: Duration::from_millis(1),
        ..Default::default()
    };
    gate.open();
    let (injector, _failure) = Injector::start(Box::new(sink.clone()), gate.clone()).unwrap();
    let injector = Arc::new(injector);
    let feeding = injector.clone();
    let feeder_gate = gate.clone();
    let feeder = rt.spawn(async move {
        // What the session does with each input event: offer it, and wait for room.
        while feeder_gate.is_open() {
            let mut event = text_event(agent::injector::MAX_TEXT_CHARS);
            loop {
                match feeding.offer(event) {
                    Ok(()) => break,
                    Err(back) => {
                        event = back;
                        tokio::select! {
                            _ = feeding.room() => {}
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        }
                        if !feeder_gate.is_open() {
                            return;
                        }
                    }
                }
            }
        }
    });
    wait_until("typing starts", Duration::from_secs(10), || {
        sink.count() > 50
    });
    let label = cat.text(button_key);
    harness.get_by_label(&label).click();
    let clicked_by = Instant::now();
    harness.run_steps(1);
    let clicked = Instant::now();
    // Well under a second: nothing is typed after the click has been taken in.
    std::thread::sleep(Duration::from_secs(1));
    let typed = sink.count();
    let last = sink.last().unwrap();
    assert!(
        last < clicked + Duration::from_millis(200),
        "`{label}`: a character was typed {:?} after the click",
        last.saturating_duration_since(clicked_by)
    );
    assert!(
        typed < 20 * agent::injector::MAX_TEXT_CHARS,
        "`{label}`: everything sent was typed"
    );
    wait_until("held input released", Duration::from_secs(1), || {
        sink.releases.load(Ordering::SeqCst) > 0
    });
    assert_eq!(rt.block_on(input.next_command()), command, "`{label}`");
    rt.block_on(feeder).unwrap();
}

#[test]
fn stop_control_stops_injection_while_input_is_arriving() {
    button_stops_injection("bar-stop-control", UserCommand::StopControl);
}

#[test]
fn end_session_stops_injection_while_input_is_arriving() {
    button_stops_injection("bar-end", UserCommand::End);
}

#[test]
fn the_bar_names_the_technician_as_the_relay_vouches_for_them() {
    let (mut harness, status, _input) = window(&Lang::english(), InputGate::new());
    status.send(alice_controls()).unwrap();
    harness.run_steps(2);
    harness.get_by_label("alice (tier 2, Example Support) is controlling your screen");
    harness.get_by_label("Stop control").click();
    harness.run_steps(2);
    harness.get_by_label("alice (tier 2, Example Support) is viewing your screen");
    assert!(harness.query_by_label("Stop control").is_none());
    harness.get_by_label("End session");
}

#[test]
fn the_bar_says_the_connection_was_lost_and_that_it_came_back() {
    let (mut harness, status, _input) = window(&Lang::english(), InputGate::new());
    status.send(alice_controls()).unwrap();
    status.send(Status::Heard(Heard::Reconnecting)).unwrap();
    harness.run_steps(2);
    harness.get_by_label(
        "Connection lost, reconnecting… alice (tier 2, Example Support) cannot see your screen \
         meanwhile.",
    );
    status.send(Status::Heard(Heard::Fine)).unwrap();
    harness.run_steps(2);
    harness.get_by_label("alice (tier 2, Example Support) is controlling your screen");
    harness.get_by_label("Reconnected after the connection was lost.");
}

#[test]
fn the_consent_screen_keeps_the_relays_word_apart_from_the_technicians() {
    let (mut harness, status, _input) = window(&Lang::english(), InputGate::new());
    let mut peer = alice();
    peer.software = "Totally Official Support Tool".into();
    status
        .send(Status::Asking {
            joining: None,
            peer,
            recorded: false,
            verification: None,
            timeout: Duration::from_secs(30),
            deadline: Instant::now() + Duration::from_secs(30),
        })
        .unwrap();
    harness.run_steps(2);
    harness.get_by_label("alice, tier 2, Example Support");
    harness.get_by_label(
        "What their program says about itself (not checked): technician at 10.0.0.7:5000, Totally Official Support Tool",
    );
    harness.get_by_label("The technician does not record this session.");
    assert!(
        harness
            .query_by_label_contains("No answer within 30 seconds")
            .or_else(|| harness.query_by_label_contains("No answer within 29 seconds"))
            .is_some(),
        "no countdown from 30 seconds"
    );
}

/// The words a node shows (AccessKit keeps a label's text as its value).
fn words_of(node: &egui_kittest::kittest::AccessKitNode<'_>) -> Option<String> {
    if node.role() == egui::accesskit::Role::Label {
        node.value()
    } else {
        node.label()
    }
}

/// The words of the one node whose words contain `part`.
fn shown_containing(harness: &Harness<'static, AgentWindow>, part: &str) -> String {
    words_of(&harness.get_by_label_contains(part).accesskit_node()).unwrap()
}

/// The words of the window that hold a character that acts in a terminal or reorders text.
fn raw_controls(harness: &Harness<'static, AgentWindow>) -> Vec<String> {
    harness
        .query_all_by(|n| words_of(n).is_some_and(|l| l.chars().any(protocol::text::is_unsafe)))
        .filter_map(|n| words_of(&n.accesskit_node()))
        .collect()
}

/// Finding 9 of issue #11: the technician's own `Hello.software` (up to 64 KiB, with `\r` and
/// ANSI escapes) was shown unchanged beside the name the relay vouches for. Every string a peer
/// supplied is shown escaped and clipped: on the consent screen, in the bar, and in how it ended.
#[test]
fn hostile_strings_from_the_technician_are_shown_escaped_and_clipped() {
    let (mut harness, status, _input) = window(&Lang::english(), InputGate::new());
    let mut peer = alice();
    peer.software = format!(
        "Totally Official\r\x1b[2KExample Support{}",
        "A".repeat(64 * 1024)
    );
    peer.description = "technician at 10.0.0.7:5000\u{202E}".into();
    if let Some(a) = peer.account.as_mut() {
        a.name = "alice\r".into();
        a.organisation = format!("Example Support\x1b[8m{}", "B".repeat(1000));
    }
    status
        .send(Status::Asking {
            joining: None,
            peer: peer.clone(),
            recorded: false,
            verification: None,
            timeout: Duration::from_secs(30),
            deadline: Instant::now() + Duration::from_secs(30),
        })
        .unwrap();
    harness.run_steps(2);
    let claims = shown_containing(&harness, "What their program says about itself (not checked): technician at 10.0.0.7:5000\\u{202e}, Totally Official\\u{d}\\u{1b}[2KExample Support");
    let software = claims.rsplit(", ").next().unwrap();
    assert!(software.chars().count() <= 100, "{software}");
    assert!(software.ends_with('…'), "{software}");
    let account = shown_containing(
        &harness,
        "alice\\u{d}, tier 2, Example Support\\u{1b}[8mBBB",
    );
    assert!(account.ends_with('…'), "{account}");
    assert!(account.chars().count() <= 100, "{account}");
    assert_eq!(raw_controls(&harness), Vec::<String>::new());

    status
        .send(Status::Sharing {
            others: vec![],
            peer,
            control: true,
        })
        .unwrap();
    harness.run_steps(2);
    let bar = shown_containing(&harness, "is controlling your screen");
    // Short, to leave the bar's buttons their room.
    assert_eq!(
        bar,
        "alice\\u{d} (tier 2, Example Support…) is controlling your screen"
    );
    assert_eq!(raw_controls(&harness), Vec::<String>::new());

    status
        .send(Status::Ended(EndedWhy::Error(format!(
            "\x1b[2J\rall is well{}",
            "C".repeat(10_000)
        ))))
        .unwrap();
    harness.run_steps(2);
    let why = shown_containing(
        &harness,
        "The session stopped because of a problem: \\u{1b}[2J\\u{d}all is well",
    );
    assert!(why.chars().count() <= 400, "{}", why.len());
    assert_eq!(raw_controls(&harness), Vec::<String>::new());
}

/// A line of the chat as the session tells the window: from a technician, or the person's own.
fn line(from: Option<&str>, text: &str) -> agent::chat::ChatLine {
    agent::chat::ChatLine {
        from: from.map(str::to_owned),
        at: std::time::SystemTime::now(),
        text: text.into(),
    }
}

#[test]
fn the_person_can_chat_from_the_question_on_and_switch_the_clipboard_off() {
    let rt = runtime();
    let (mut harness, status, mut input) = window(&Lang::english(), InputGate::new());
    status.send(asking()).unwrap();
    harness.run_steps(2);
    // The person asks who is calling before answering.
    type_into(&mut harness, "Your message", "who is calling?");
    click(&mut harness, "Send");
    assert_eq!(
        rt.block_on(input.next()),
        Some(consent::FromUser::Chat("who is calling?".into()))
    );
    // The session says the lines back, the person's own and the technician's answer.
    status
        .send(Status::Chat(line(None, "who is calling?")))
        .unwrap();
    status
        .send(Status::Chat(line(
            Some("alice"),
            "Alice, from the help desk",
        )))
        .unwrap();
    harness.run_steps(2);
    harness.get_by_label("Alice, from the help desk");
    harness.get_by_label("who is calling?");
    // Shared, with the clipboard: a message while the chat is closed is counted on its
    // button, and shown once it is opened.
    status.send(Status::ClipboardShared(true)).unwrap();
    status.send(alice_controls()).unwrap();
    status
        .send(Status::Chat(line(
            Some("alice"),
            "opening the printer settings",
        )))
        .unwrap();
    harness.run_steps(2);
    assert!(harness
        .query_by_label("opening the printer settings")
        .is_none());
    click(&mut harness, "Chat (1)");
    harness.get_by_label("opening the printer settings");
    // The switch: the session is told at once.
    click(&mut harness, "Share clipboard");
    assert_eq!(
        rt.block_on(input.next()),
        Some(consent::FromUser::Clipboard(false))
    );
}

/// Every screen, drawn in `lang`, asks its catalogue for no word it lacks.
fn every_screen_finds_its_words(lang: &Lang) {
    let now = Instant::now();
    let mut unverified = alice();
    unverified.account = None;
    let screens = vec![
        Status::Connecting {
            relay: "relay.example:4433".into(),
        },
        Status::Code {
            shown: "469 544 742 - 4821".into(),
            copied: "469544742-4821".into(),
            expires_at: now + Duration::from_secs(300),
        },
        Status::Code {
            shown: "469 544 742 - 4821".into(),
            copied: "469544742-4821".into(),
            expires_at: now,
        },
        Status::Queued {
            request: 7,
            position: 3,
            expected_wait_secs: Some(300),
        },
        asking(),
        Status::Asking {
            joining: None,
            peer: alice(),
            recorded: true,
            verification: Some("042 917".into()),
            timeout: Duration::from_secs(60),
            deadline: now + Duration::from_secs(60),
        },
        Status::Asking {
            joining: None,
            peer: unverified.clone(),
            recorded: false,
            verification: None,
            timeout: Duration::from_secs(1),
            deadline: now + Duration::from_secs(1),
        },
        Status::Answered,
        Status::Sharing {
            others: vec![],
            peer: alice(),
            control: true,
        },
        Status::Sharing {
            others: vec![],
            peer: unverified,
            control: false,
        },
        Status::Survey { request: 12 },
    ];
    let endings = [
        EndedWhy::UserEnded,
        EndedWhy::Denied,
        EndedWhy::TimedOut,
        EndedWhy::TechnicianEnded,
        EndedWhy::TechnicianLeft("it closed the session".into()),
        EndedWhy::SourceFinished,
        EndedWhy::Error("boom".into()),
        EndedWhy::Cancelled,
        EndedWhy::CodeMismatch,
        EndedWhy::Failed("no relay".into()),
        EndedWhy::RequestClosed { thanked: false },
        EndedWhy::RequestClosed { thanked: true },
    ];
    let all = screens
        .into_iter()
        .chain(endings.into_iter().map(Status::Ended));
    let (mut harness, status, _input) = window(lang, InputGate::new());
    for s in all {
        status.send(s).unwrap();
        harness.run_steps(2);
    }
    // The screens a click opens: the help form (empty, then sending) and the survey's
    // (chosen, then sending).
    let cat = Catalogue::new("agent", lang);
    status.send(code(now)).unwrap();
    harness.run_steps(2);
    click(&mut harness, &cat.text("code-request-help"));
    type_into(&mut harness, &cat.text("help-description"), "x");
    click(&mut harness, &cat.text("help-send"));
    status.send(Status::Survey { request: 12 }).unwrap();
    harness.run_steps(2);
    click(&mut harness, &cat.text("survey-score-3"));
    click(&mut harness, &cat.text("survey-send"));
    // The bar with the clipboard's switch and a message waiting, then the chat open.
    status.send(Status::ClipboardShared(true)).unwrap();
    status.send(alice_controls()).unwrap();
    status
        .send(Status::Chat(line(Some("alice"), "hello")))
        .unwrap();
    harness.run_steps(2);
    click(
        &mut harness,
        &cat.fmt("chat-unread", &[("n", words::Value::from(1))]),
    );
    let missing = harness.state().catalogue().missing();
    assert!(
        missing.is_empty(),
        "{lang}: the window asked for words its catalogue lacks: {missing:?}"
    );
}

#[test]
fn a_waiting_request_shows_its_place_and_can_be_withdrawn_and_its_consent_the_six_digits() {
    let rt = runtime();
    let (mut harness, status, mut input) = window(&Lang::english(), InputGate::new());
    status
        .send(Status::Queued {
            request: 7,
            position: 3,
            expected_wait_secs: Some(300),
        })
        .unwrap();
    harness.run_steps(2);
    harness.get_by_label("You are number 3 in the queue");
    harness.get_by_label("Expected wait: about 5 minutes");
    status
        .send(Status::Queued {
            request: 7,
            position: 1,
            expected_wait_secs: Some(300),
        })
        .unwrap();
    harness.run_steps(2);
    harness.get_by_label("You are number 1 in the queue");
    harness.get_by_label("Withdraw the request").click();
    harness.run_steps(2);
    assert_eq!(rt.block_on(input.next_command()), UserCommand::End);

    let (mut harness, status, _input) = window(&Lang::english(), InputGate::new());
    status
        .send(Status::Asking {
            joining: None,
            peer: alice(),
            recorded: false,
            verification: Some("042 917".into()),
            timeout: Duration::from_secs(30),
            deadline: Instant::now() + Duration::from_secs(30),
        })
        .unwrap();
    harness.run_steps(2);
    harness.get_by_label("042 917");
}

fn code(now: Instant) -> Status {
    Status::Code {
        shown: "469 544 742 - 4821".into(),
        copied: "469544742-4821".into(),
        expires_at: now + Duration::from_secs(300),
    }
}

/// What the window told the desk within a moment (`None`: nothing): the help request filed.
fn help_asked(rt: &tokio::runtime::Runtime, input: &mut UserInput) -> Option<HelpAsked> {
    let wait = async { tokio::time::timeout(Duration::from_millis(200), input.help_asked()).await };
    rt.block_on(wait).ok()
}

/// What the window told the desk within a moment: the survey's answer.
fn survey_answer(rt: &tokio::runtime::Runtime, input: &mut UserInput) -> Option<SurveyAnswer> {
    let wait =
        async { tokio::time::timeout(Duration::from_millis(200), input.survey_answer()).await };
    rt.block_on(wait).ok()
}

/// Clicks the button (or field) named `label`, and lets the window take it in.
fn click(harness: &mut Harness<'static, AgentWindow>, label: &str) {
    harness.get_by_label(label).click();
    harness.run_steps(2);
}

/// Gives the field named `label` the keyboard and types `text` into it.
fn type_into(harness: &mut Harness<'static, AgentWindow>, label: &str, text: &str) {
    harness.get_by_label(label).focus();
    harness.run_steps(2);
    harness.get_by_label(label).type_text(text);
    harness.run_steps(2);
}

/// A window asking the survey of request 12, in `lang`.
fn survey_window(
    lang: &Lang,
) -> (
    tokio::runtime::Runtime,
    Harness<'static, AgentWindow>,
    mpsc::Sender<Status>,
    UserInput,
) {
    let (mut harness, status, input) = window(lang, InputGate::new());
    status.send(Status::Survey { request: 12 }).unwrap();
    harness.run_steps(2);
    (runtime(), harness, status, input)
}

#[test]
fn request_help_beside_the_code_files_what_the_person_wrote_then_shows_the_queue() {
    let rt = runtime();
    let (mut harness, status, mut input) = window(&Lang::english(), InputGate::new());
    status.send(code(Instant::now())).unwrap();
    harness.run_steps(2);
    click(&mut harness, "Request help");
    harness.get_by_label("Ask your support desk for help");
    harness.get_by_label("When you send the request, your session code stops working.");
    // The description has the keyboard as soon as the form opens.
    let describe = "What is wrong? Say it in your own words:";
    assert!(harness.get_by_label(describe).is_focused());
    // Nothing written yet: Send request sends nothing.
    let send = harness.get_by_label("Send request").accesskit_node();
    assert!(send.is_disabled());
    click(&mut harness, "Send request");
    assert_eq!(help_asked(&rt, &mut input), None);
    type_into(&mut harness, describe, "the printer stops after each page");
    // Back shows the code again; the words wait in the form.
    click(&mut harness, "Back");
    harness.get_by_label("469 544 742 - 4821");
    click(&mut harness, "Request help");
    assert_eq!(
        harness.get_by_label(describe).value().as_deref(),
        Some("the printer stops after each page")
    );
    type_into(
        &mut harness,
        "Ticket number from your desk, if you have one:",
        "T-7",
    );
    click(&mut harness, "Send request");
    assert_eq!(
        help_asked(&rt, &mut input),
        Some(HelpAsked {
            description: "the printer stops after each page".into(),
            ticket: Some("T-7".into()),
        })
    );
    harness.get_by_label("Sending your request to the desk…");
    // The run withdrew the code and filed the request: the queue, as for `--request`.
    status
        .send(Status::Queued {
            request: 12,
            position: 2,
            expected_wait_secs: Some(120),
        })
        .unwrap();
    harness.run_steps(2);
    harness.get_by_label("You are number 2 in the queue");
    harness.get_by_label("Withdraw the request");
}

#[test]
fn the_survey_sends_the_chosen_score_with_the_comment_and_thanks() {
    let (rt, mut harness, status, mut input) = survey_window(&Lang::english());
    harness.get_by_label("How well were you helped?");
    let send = harness.get_by_label("Send answer").accesskit_node();
    assert!(send.is_disabled());
    click(&mut harness, "2 Badly");
    click(&mut harness, "4 Well");
    type_into(
        &mut harness,
        "Anything you want to add? (optional)",
        "quick and kind",
    );
    click(&mut harness, "Send answer");
    assert_eq!(
        survey_answer(&rt, &mut input),
        Some(SurveyAnswer::Score {
            score: 4,
            comment: "quick and kind".into(),
        })
    );
    harness.get_by_label("Sending your answer to the desk…");
    status
        .send(Status::Ended(EndedWhy::RequestClosed { thanked: true }))
        .unwrap();
    harness.run_steps(2);
    harness.get_by_label("Your help request is closed");
    harness.get_by_label_contains("Thank you: your answer went to the desk.");
    harness.get_by_label("Close");
}

#[test]
fn skipping_the_survey_sends_no_score() {
    let (rt, mut harness, _status, mut input) = survey_window(&Lang::spanish());
    click(&mut harness, "5 Muy bien");
    click(&mut harness, "Omitir");
    assert_eq!(survey_answer(&rt, &mut input), Some(SurveyAnswer::Skipped));
    assert_eq!(survey_answer(&rt, &mut input), None, "a second answer");
    harness.get_by_label("El servicio ha cerrado su solicitud de ayuda.");
}

#[test]
fn every_screen_has_all_its_words_in_english_and_spanish() {
    every_screen_finds_its_words(&Lang::english());
    every_screen_finds_its_words(&Lang::spanish());
}

#[test]
fn the_spanish_catalogue_is_complete() {
    let problems = words::check::built_in("agent", &Lang::spanish());
    assert!(
        problems.is_empty(),
        "es/agent.ftl: {}",
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    );
}

#[test]
fn the_spanish_window_speaks_spanish() {
    let (mut harness, status, _input) = window(&Lang::spanish(), InputGate::new());
    status.send(asking()).unwrap();
    harness.run_steps(2);
    harness.get_by_label("Permitir el control");
    harness.get_by_label("Solo ver");
    harness.get_by_label("Rechazar");
    harness.get_by_label("alice, nivel 2, Example Support");
}

#[test]
fn files_offered_while_shared_are_saved_where_the_person_says() {
    use agent::consent::FromUser;
    use agent::files::{FileAnswer, FileStatus, OfferShown};
    let rt = runtime();
    let (mut harness, status, mut input) = window(&Lang::english(), InputGate::new());
    status.send(alice_controls()).unwrap();
    let offer = OfferShown {
        viewer: 1,
        offer: 4,
        who: "alice".into(),
        summary: "Drivers".into(),
        count: 12,
        total: 3_500_000,
        default_dir: "/home/u/Downloads".into(),
    };
    status
        .send(Status::Files(FileStatus::Question(Some(offer.clone()))))
        .unwrap();
    harness.run_steps(2);
    harness.get_by_label("alice wants to send you Drivers, 12 files (3.5 MB).");
    harness.get_by_label("Save files").click();
    harness.run_steps(2);
    let said = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), input.next())
            .await
            .unwrap()
    });
    assert_eq!(
        said,
        Some(FromUser::Files(FileAnswer {
            viewer: 1,
            offer: 4,
            save_in: Some("/home/u/Downloads".into()),
        }))
    );
    assert!(harness.query_by_label("Save files").is_none(), "answered");
    // The next offer is declined.
    status
        .send(Status::Files(FileStatus::Question(Some(OfferShown {
            offer: 5,
            ..offer
        }))))
        .unwrap();
    harness.run_steps(2);
    harness.get_by_label("Decline").click();
    harness.run_steps(2);
    let said = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(2), input.next())
            .await
            .unwrap()
    });
    assert!(
        matches!(
            said,
            Some(FromUser::Files(FileAnswer {
                offer: 5,
                save_in: None,
                ..
            }))
        ),
        "{said:?}"
    );
}

/// alice's big.iso, a quarter of the way to this machine.
fn big_iso_on_its_way() -> agent::files::TransferShown {
    agent::files::TransferShown {
        key: (1, 2),
        offer: 6,
        name: "big.iso".into(),
        incoming: true,
        who: "alice".into(),
        done: 2_000_000,
        size: 8_000_000,
        rate: 1_000_000,
        eta_secs: Some(6),
        state: agent::files::TransferState::Going,
    }
}

/// The person stopped big.iso from its row.
fn stopped_here() -> Status {
    Status::Files(agent::files::FileStatus::Cancelled {
        viewer: 1,
        offer: 6,
        by_person: true,
    })
}

#[test]
fn a_file_on_its_way_is_stopped_from_its_row_and_folders_are_shown_only_when_switched_on() {
    use agent::consent::FromUser;
    use agent::files::FileStatus;
    let rt = runtime();
    let (mut harness, status, mut input) = window(&Lang::english(), InputGate::new());
    let next = |input: &mut UserInput| {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), input.next())
                .await
                .unwrap()
        })
    };
    status.send(alice_controls()).unwrap();
    status.send(Status::BrowseAllowed(false)).unwrap();
    harness.run_steps(2);
    click(&mut harness, "Show my folders");
    assert_eq!(next(&mut input), Some(FromUser::Browse(true)));
    status
        .send(Status::Files(FileStatus::Browsed {
            who: "alice".into(),
            path: "/home/u/Documents".into(),
        }))
        .unwrap();
    let row = big_iso_on_its_way();
    status
        .send(Status::Files(FileStatus::Transfer(row)))
        .unwrap();
    harness.run_steps(2);
    harness.get_by_label("alice looked into your folder /home/u/Documents");
    // Bytes, rate and time left on the row.
    shown_containing(&harness, "2.0 MB of 8.0 MB · 1.0 MB/s, 6 s left");
    click(&mut harness, "Stop");
    assert_eq!(
        next(&mut input),
        Some(FromUser::CancelFiles {
            viewer: 1,
            offer: 6
        })
    );
    status.send(stopped_here()).unwrap();
    harness.run_steps(2);
    shown_containing(&harness, "You stopped big.iso. What arrived is kept");
}

/// Several technicians, a reconnection and a stopped file: the bar says them all on one line
/// (each in whole on hovering it) and keeps its size.
#[test]
fn the_bar_keeps_every_note_inside_its_height() {
    use agent::files::FileStatus;
    let (side, _input) = consent::channel(InputGate::new());
    let (status, rx) = mpsc::channel();
    let app = AgentWindow::new(Catalogue::new("agent", &Lang::english()), rx, side);
    let mut harness = Harness::builder().with_size(ui::BAR_SIZE).build_ui_state(
        |ui, app: &mut AgentWindow| {
            app.frame(ui);
        },
        app,
    );
    status
        .send(Status::Sharing {
            others: vec!["bob".into(), "carol".into()],
            peer: alice(),
            control: true,
        })
        .unwrap();
    status.send(Status::BrowseAllowed(true)).unwrap();
    status.send(Status::Heard(Heard::Reconnecting)).unwrap();
    status.send(Status::Heard(Heard::Fine)).unwrap();
    let row = big_iso_on_its_way();
    status
        .send(Status::Files(FileStatus::Transfer(row)))
        .unwrap();
    status.send(stopped_here()).unwrap();
    harness.run_steps(3);
    // Everything said is there (its whole words, however much of it fits)...
    let status = harness
        .get_by_label("alice (tier 2, Example Support) is controlling your screen")
        .rect();
    let notes = shown_containing(&harness, "Also watching: bob, carol");
    assert!(
        notes.contains("Reconnected after") && notes.contains("You stopped big.iso"),
        "{notes}"
    );
    let notes = harness.get_by_label(&notes).rect();
    // ...inside the bar's height, and clear of the buttons.
    let buttons = ["End session", "Stop control", "Chat", "Show my folders"]
        .map(|b| harness.get_by_label(b).rect());
    let leftmost = buttons.iter().map(|r| r.left()).fold(f32::MAX, f32::min);
    for r in buttons.iter().chain([&status, &notes]) {
        assert!(r.bottom() <= ui::BAR_SIZE.y, "{r:?} below the bar");
    }
    for r in [status, notes] {
        assert!(r.right() <= leftmost, "{r:?} under a button at {leftmost}");
    }
}
