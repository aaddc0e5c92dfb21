//! The console's screens driven through egui_kittest, without a display or a network: what the
//! technician clicks changes the model, what the model holds is what the window says, and input
//! reaches the remote machine only while the user allows control. Where the test plays the
//! network worker (`Net::without_worker`), it sends the relay's news as events and checks what
//! the window asks of the network: the desk's offers, presence, dashboard, the steps of a
//! session's help request, and the hand-over, take-over and monitoring of a session with several
//! technicians.

use std::sync::{Arc, Mutex};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use link::report::Reporter;
use protocol::control::{
    EscalationTarget, Handoff, LiveSession, Presence, QueueEntry, RequestFiling,
    TechnicianPresence, TierLoad,
};
use protocol::input::InputEvent;
use protocol::peer::{ConsentState, Participant};
use technician::console::model::{Dashboard, Event, LoggedIn, Model, Screen};
use technician::console::net::{Net, Request, WorkerEnds};
use technician::console::ui::ConsoleApp;
use technician::desk::DeskAction;
use technician::session::ControlStep;
use technician::viewer::Viewer;
use tokio::sync::mpsc;

fn app(model: Model, net: Option<Net>) -> ConsoleApp {
    let words = words::Catalogue::new("console", &words::Lang::english());
    ConsoleApp::new(
        model,
        words,
        net,
        Arc::new(Mutex::new(Viewer::new())),
        Arc::new(Mutex::new(None)),
        Reporter::new(false),
    )
}

fn harness(model: Model) -> Harness<'static, ConsoleApp> {
    build(app(model, None))
}

fn build(app: ConsoleApp) -> Harness<'static, ConsoleApp> {
    Harness::builder()
        .with_size(egui::vec2(1100.0, 700.0))
        .build_ui_state(|ui, app: &mut ConsoleApp| app.show(ui, None), app)
}

/// The console logged in as alice, with the test as its network worker.
fn harness_with_worker() -> (Harness<'static, ConsoleApp>, WorkerEnds) {
    let (net, ends) = Net::without_worker();
    let mut h = build(app(logged_in(), Some(net)));
    h.run_steps(2);
    (h, ends)
}

/// The relay's news, as the worker tells the window, and a few frames to show it.
fn news(h: &mut Harness<'static, ConsoleApp>, ends: &WorkerEnds, events: Vec<Event>) {
    for e in events {
        ends.events.send(e).unwrap();
    }
    h.run_steps(4);
}

/// What the window asked of the network since the last call.
fn asked(ends: &mut WorkerEnds) -> Vec<Request> {
    std::iter::from_fn(|| ends.requests.try_recv().ok()).collect()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A waiting request of tier 1 whose user is connected.
fn request(id: u64, description: &str) -> QueueEntry {
    QueueEntry {
        id,
        tier: 1,
        filed_unix_ms: now_ms(),
        filing: RequestFiling {
            description: description.into(),
            machine: "pc-17".into(),
            os: "Debian 12".into(),
            ticket: None,
        },
        connected: true,
        queued_unix_ms: now_ms(),
        overdue: false,
        offered_to: None,
        reserved_for: None,
        handoff: None,
    }
}

fn logged_in() -> Model {
    Model::new(
        "relay.example.org:4433".into(),
        "alice".into(),
        Some(LoggedIn {
            relay: "relay.example.org:4433".into(),
            user: "alice".into(),
            account: Some("alice (tier 2) of Example Support".into()),
        }),
    )
}

#[test]
fn a_refused_login_is_shown_in_words_and_the_form_can_be_used_again() {
    let mut h = harness(Model::new(
        "relay.example.org:4433".into(),
        "alice".into(),
        None,
    ));
    h.run_steps(6);
    h.get_by_label("Log in").click();
    h.run_steps(6);
    h.get_by_label_contains("Enter the relay's address, your name and your password");
    h.state_mut().model.login.password = "wrong".into();
    h.get_by_label("Log in").click();
    h.run_steps(6);
    assert!(h.state().model.login.busy, "the login went to the relay");
    assert!(
        h.query_by_label("Log in").is_none(),
        "no second login while one runs"
    );
    h.state_mut().model.update(Event::LoginFailed(
        "The name, the password or the one-time code is wrong.".into(),
    ));
    h.run_steps(6);
    h.get_by_label("The name, the password or the one-time code is wrong.");
    h.get_by_label("Log in");
}

#[test]
fn a_relay_met_for_the_first_time_is_trusted_only_when_accepted() {
    let mut h = harness(Model::new(
        "relay.example.org:4433".into(),
        "alice".into(),
        None,
    ));
    h.state_mut().model.login.password = "pw".into();
    h.run_steps(6);
    h.get_by_label("Log in").click();
    h.run_steps(6);
    h.state_mut().model.update(Event::FirstContact {
        fingerprint: "9bbb514f91131b8".into(),
    });
    h.run_steps(6);
    h.get_by_label("9bbb514f91131b8");
    h.get_by_label("Do not connect").click();
    h.run_steps(6);
    assert_eq!(h.state().model.screen, Screen::Login);
    h.get_by_label_contains("fingerprint was refused");
    assert!(h.query_by_label("9bbb514f91131b8").is_none());
}

#[test]
fn the_code_is_taken_as_typed_and_joined_whole() {
    let mut h = harness(logged_in());
    h.run_steps(6);
    h.state_mut().model.home.code = "469544742-48".into();
    h.get_by_label("Join session").click();
    h.run_steps(6);
    h.get_by_label_contains("11 of the 13 digits");
    assert_eq!(h.state().model.screen, Screen::Home);
    h.state_mut().model.home.code = " 469 544 742 -4821".into();
    h.get_by_label("Join session").click();
    h.run_steps(6);
    let m = &h.state().model;
    assert_eq!(m.screen, Screen::Session);
    assert_eq!(m.session.as_ref().unwrap().code, "469 544 742 - 4821");
    h.get_by_label("469 544 742 - 4821");
}

/// A session whose 200x100 screen arrived; returns the harness and where input goes.
fn in_session(consent: ConsentState) -> (Harness<'static, ConsoleApp>, mpsc::Receiver<InputEvent>) {
    let mut h = harness(logged_in());
    h.state_mut().model.home.code = "4695447424821".into();
    h.run_steps(6);
    h.get_by_label("Join session").click();
    h.run_steps(6);
    let (tx, rx) = mpsc::channel(64);
    h.state_mut().set_input(tx);
    let m = &mut h.state_mut().model;
    m.update(Event::Paired {
        account: "alice (tier 2) of Example Support".into(),
        peer: "agent at 10.0.0.7:5000".into(),
    });
    m.update(Event::ScreenStarted {
        width: 200,
        height: 100,
    });
    m.update(Event::Consent(consent));
    h.run_steps(6);
    (h, rx)
}

fn drain(rx: &mut mpsc::Receiver<InputEvent>) -> Vec<InputEvent> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

/// Keys typed into the console, as the window hands them over before egui sees them.
fn type_into(h: &mut Harness<'static, ConsoleApp>, events: Vec<egui::Event>) {
    let mut events = events;
    let ctx = h.ctx.clone();
    h.state_mut().route_keys(&ctx, &mut events);
    for e in events {
        h.event(e);
    }
    h.run_steps(6);
}

fn click_screen(h: &mut Harness<'static, ConsoleApp>) {
    h.get_by_label("Remote screen").click();
    h.run_steps(6);
}

#[test]
fn the_viewer_follows_the_users_consent() {
    let (mut h, mut rx) = in_session(ConsentState::ViewOnly);
    h.get_by_label("View only");
    // Nothing typed leaves the console while the user allows viewing only.
    click_screen(&mut h);
    type_into(&mut h, vec![egui::Event::Text("ab".into())]);
    assert!(
        drain(&mut rx).is_empty(),
        "view only: no input leaves the console"
    );
    assert!(!h.state().model.session.as_ref().unwrap().grabbed);

    h.state_mut()
        .model
        .update(Event::Consent(ConsentState::Control));
    h.run_steps(6);
    h.get_by_label("Control");
    h.get_by_label("The user gave you control.");
    click_screen(&mut h);
    h.get_by_label("Keyboard captured: Ctrl+Alt+G releases it.");
    type_into(&mut h, vec![egui::Event::Text("é".into())]);
    let sent = drain(&mut rx);
    assert!(
        matches!(&sent[..], [InputEvent::Key { down: true, text: Some(t), .. }, InputEvent::Key { down: false, .. }] if t == "é"),
        "with control typed text goes to the remote machine: {sent:?}"
    );
    // The release shortcut is the console's, not sent; after it keys stay here.
    type_into(
        &mut h,
        vec![egui::Event::Key {
            key: egui::Key::G,
            physical_key: None,
            pressed: true,
            repeat: false,
            modifiers: egui::Modifiers::CTRL | egui::Modifiers::ALT,
        }],
    );
    assert!(drain(&mut rx).is_empty());
    assert!(!h.state().model.session.as_ref().unwrap().grabbed);
    type_into(&mut h, vec![egui::Event::Text("x".into())]);
    assert!(
        drain(&mut rx).is_empty(),
        "released: keys stay in the console"
    );

    click_screen(&mut h);
    h.state_mut()
        .model
        .update(Event::Consent(ConsentState::ViewOnly));
    h.run_steps(6);
    h.get_by_label("The user stopped control: view only now.");
    h.get_by_label("View only");
    type_into(&mut h, vec![egui::Event::Text("y".into())]);
    assert!(
        drain(&mut rx).is_empty(),
        "control withdrawn: input stops at once"
    );
}

#[test]
fn send_keys_sends_the_combination_only_with_control() {
    let (mut h, mut rx) = in_session(ConsentState::Control);
    h.get_by_label("Send keys").click();
    h.run_steps(6);
    h.get_by_label("Ctrl+Alt+Del").click();
    h.run_steps(6);
    let sent = drain(&mut rx);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        matches!(&sent[0], InputEvent::Key { down: true, modifiers, .. } if modifiers.ctrl && modifiers.alt)
    );
}

#[test]
fn an_ended_session_says_why_and_goes_home_into_recent_sessions() {
    let (mut h, _rx) = in_session(ConsentState::Control);
    h.get_by_label("End session").click();
    h.run_steps(6);
    h.state_mut().model.update(Event::SessionEnded {
        message: "you ended the session".into(),
        log: None,
    });
    h.run_steps(6);
    h.get_by_label("Session ended: you ended the session");
    h.get_by_label("Back to home").click();
    h.run_steps(6);
    assert_eq!(h.state().model.screen, Screen::Home);
    h.get_by_label("you ended the session");
}

#[test]
fn an_offer_shows_its_time_left_and_is_declined_or_accepted() {
    let (mut h, mut ends) = harness_with_worker();
    let offered = QueueEntry {
        offered_to: Some("alice".into()),
        ..request(12, "the printer stops after each page")
    };
    news(
        &mut h,
        &ends,
        vec![
            Event::Queue {
                requests: vec![offered.clone()],
                more: 0,
            },
            Event::Offer {
                request: offered.clone(),
                expires_in_secs: 30,
                now_unix_ms: now_ms(),
            },
        ],
    );
    h.get_by_label("Help request #12 is offered to you");
    h.get_by_label_contains("s left to answer");
    h.get_by_label("Offered to you");
    h.get_by_label("Decline").click();
    h.run_steps(4);
    assert!(matches!(
        &asked(&mut ends)[..],
        [Request::Decline { request: 12 }]
    ));
    assert!(h
        .query_by_label("Help request #12 is offered to you")
        .is_none());

    // An offer left unanswered goes when its time is up.
    news(
        &mut h,
        &ends,
        vec![Event::Offer {
            request: offered.clone(),
            expires_in_secs: 1,
            now_unix_ms: now_ms() - 1_000,
        }],
    );
    assert!(h
        .query_by_label("Help request #12 is offered to you")
        .is_none());

    let next = QueueEntry {
        offered_to: Some("alice".into()),
        ..request(13, "no mail since this morning")
    };
    news(
        &mut h,
        &ends,
        vec![Event::Offer {
            request: next,
            expires_in_secs: 30,
            now_unix_ms: now_ms(),
        }],
    );
    h.get_by_label("Accept").click();
    h.run_steps(4);
    assert!(matches!(
        &asked(&mut ends)[..],
        [Request::Take {
            request: Some(13),
            ..
        }]
    ));
    assert_eq!(h.state().model.screen, Screen::Session);
}

#[test]
fn the_presence_switch_tells_the_desk() {
    let (mut h, mut ends) = harness_with_worker();
    assert!(
        h.query_by_label("Away").is_none(),
        "no switch before the queue is followed"
    );
    news(
        &mut h,
        &ends,
        vec![Event::Queue {
            requests: vec![],
            more: 0,
        }],
    );
    h.get_by_label("Away").click();
    h.run_steps(4);
    assert!(matches!(
        &asked(&mut ends)[..],
        [Request::SetPresence { away: true }]
    ));
    h.get_by_label("Available").click();
    h.run_steps(4);
    assert!(matches!(
        &asked(&mut ends)[..],
        [Request::SetPresence { away: false }]
    ));
}

#[test]
fn the_queue_marks_overdue_offered_reserved_and_passed_on_requests() {
    let (mut h, ends) = harness_with_worker();
    news(
        &mut h,
        &ends,
        vec![Event::Queue {
            requests: vec![
                QueueEntry {
                    overdue: true,
                    ..request(3, "the printer stops")
                },
                QueueEntry {
                    offered_to: Some("ben".into()),
                    ..request(4, "no mail")
                },
                QueueEntry {
                    reserved_for: Some("alice".into()),
                    handoff: Some(Handoff {
                        by: "bob".into(),
                        note: "the driver needs an administrator".into(),
                        session: "s-1".into(),
                        held: false,
                    }),
                    ..request(5, "the scanner")
                },
                QueueEntry {
                    handoff: Some(Handoff {
                        by: "alice".into(),
                        note: String::new(),
                        session: "s-2".into(),
                        held: true,
                    }),
                    ..request(6, "waiting for a reboot")
                },
            ],
            more: 0,
        }],
    );
    h.get_by_label("Overdue");
    h.get_by_label("Offered to ben");
    h.get_by_label("Reserved for you");
    h.get_by_label("Escalated by bob: the driver needs an administrator");
    h.get_by_label("Held by alice");
}

#[test]
fn leads_see_each_tiers_queue_with_its_oldest_wait_and_technicians_by_presence() {
    let (mut h, ends) = harness_with_worker();
    let tech = |name: &str, tier, presence, sessions| TechnicianPresence {
        name: name.into(),
        tier,
        presence,
        sessions,
    };
    news(
        &mut h,
        &ends,
        vec![Event::Dashboard(Dashboard {
            sessions: vec![],
            tiers: vec![
                TierLoad {
                    tier: 1,
                    waiting: 3,
                    oldest_queued_unix_ms: Some(now_ms() - 250_000),
                    overdue: 2,
                },
                TierLoad {
                    tier: 2,
                    waiting: 0,
                    oldest_queued_unix_ms: None,
                    overdue: 0,
                },
            ],
            technicians: vec![
                tech("ann", 1, Presence::Available, 0),
                tech("ben", 1, Presence::Busy, 1),
                tech("cy", 2, Presence::Away, 0),
            ],
        })],
    );
    h.get_by_label("Desk overview");
    h.get_by_label("Tier 1");
    // 250 s ago, give or take the frame.
    h.get_by_label_contains("4 min 1");
    h.get_by_label("none waiting");
    h.get_by_label("Available (1):");
    h.get_by_label("ann (tier 1, 0 sessions)");
    h.get_by_label("Busy (1):");
    h.get_by_label("ben (tier 1, 1 session)");
    h.get_by_label("Away (1):");
    assert!(h.query_by_label("Offline (0):").is_none());
}

/// A taken request's session, its request named by the relay; returns where its steps go.
fn in_request_session(
    h: &mut Harness<'static, ConsoleApp>,
    ends: &mut WorkerEnds,
) -> mpsc::Receiver<DeskAction> {
    in_request_session_with_control(h, ends).0
}

/// As [`in_request_session`], with where its steps of control go too.
fn in_request_session_with_control(
    h: &mut Harness<'static, ConsoleApp>,
    ends: &mut WorkerEnds,
) -> (mpsc::Receiver<DeskAction>, mpsc::Receiver<ControlStep>) {
    news(
        h,
        ends,
        vec![Event::Queue {
            requests: vec![request(12, "the printer stops after each page")],
            more: 0,
        }],
    );
    h.get_by_label("Take the next request").click();
    h.run_steps(4);
    let (desk, control) = match asked(ends).pop() {
        Some(Request::Take {
            request: None,
            desk,
            control,
            ..
        }) => (desk, control),
        _ => panic!("the window did not ask to take the next request"),
    };
    assert!(
        h.query_by_label("Escalate…").is_none(),
        "no steps before the relay says which request"
    );
    let taken = QueueEntry {
        handoff: Some(Handoff {
            by: "bob".into(),
            note: "tried a new cable".into(),
            session: "s-1".into(),
            held: false,
        }),
        ..request(12, "the printer stops after each page")
    };
    news(
        h,
        ends,
        vec![
            Event::RequestTaken(taken),
            Event::Paired {
                account: "alice (tier 2) of Example Support".into(),
                peer: "agent at 10.0.0.7:5000".into(),
            },
            Event::ScreenStarted {
                width: 200,
                height: 100,
            },
            Event::Consent(ConsentState::Control),
        ],
    );
    (desk, control)
}

#[test]
fn a_session_from_a_request_is_escalated_with_its_note_and_goes_on() {
    let (mut h, mut ends) = harness_with_worker();
    let mut desk = in_request_session(&mut h, &mut ends);
    h.get_by_label("Help request #12");
    h.get_by_label("Escalated by bob: tried a new cable");
    h.get_by_label("Escalate…").click();
    h.run_steps(4);
    h.get_by_label("Escalate to tier 2").click();
    h.run_steps(4);
    h.get_by_label_contains("Write a note for whoever takes the request next");
    assert!(desk.try_recv().is_err(), "no escalation without a note");
    h.get_by_label("Tier 3").click();
    h.run_steps(4);
    let note = "Note for whoever takes it next (required)";
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, note)
        .focus();
    h.run_steps(2);
    h.get_by_role_and_label(egui::accesskit::Role::TextInput, note)
        .type_text("the driver needs an administrator");
    h.run_steps(4);
    h.get_by_label("Escalate to tier 3").click();
    h.run_steps(4);
    assert_eq!(
        desk.try_recv().ok(),
        Some(DeskAction::Escalate {
            to: EscalationTarget::Tier(3),
            note: "the driver needs an administrator".into()
        })
    );
    h.get_by_label("Asking the relay…");
    news(
        &mut h,
        &ends,
        vec![Event::RequestPassed("escalated to tier 3".into())],
    );
    h.get_by_label("Done: escalated to tier 3.");
    assert!(
        h.query_by_label("Hold…").is_none(),
        "the request is no longer this technician's"
    );
    // The session goes on until it ends, as any session.
    h.get_by_label("End session");
    news(
        &mut h,
        &ends,
        vec![Event::SessionEnded {
            message: "you ended the session".into(),
            log: None,
        }],
    );
    h.get_by_label("Back to home").click();
    h.run_steps(4);
    h.get_by_label("Help request 12: escalated to tier 3");
}

#[test]
fn hold_and_close_are_sent_and_a_refusal_is_shown() {
    let (mut h, mut ends) = harness_with_worker();
    let mut desk = in_request_session(&mut h, &mut ends);
    h.get_by_label("Close as not resolved…").click();
    h.run_steps(4);
    h.get_by_label("Close as not resolved").click();
    h.run_steps(4);
    assert_eq!(
        desk.try_recv().ok(),
        Some(DeskAction::Close {
            resolved: false,
            note: String::new()
        })
    );
    news(
        &mut h,
        &ends,
        vec![Event::RequestRefused(
            "the relay refused: help request 12 is closed".into(),
        )],
    );
    h.get_by_label("Not done: the relay refused: help request 12 is closed");
    h.get_by_label("Hold…").click();
    h.run_steps(4);
    h.get_by_label("Hold in my queue").click();
    h.run_steps(4);
    assert_eq!(
        desk.try_recv().ok(),
        Some(DeskAction::Hold {
            note: String::new()
        })
    );
}

#[test]
fn a_session_by_code_has_no_help_request_steps() {
    let (h, _rx) = in_session(ConsentState::Control);
    assert!(h.query_by_label("Escalate…").is_none());
    assert!(h.query_by_label("Hold…").is_none());
}

/// The chat's field.
const MESSAGE: &str = "Your message";

#[test]
fn chat_counts_new_messages_without_taking_the_keyboard_and_sends_what_is_typed() {
    let (mut h, _rx) = in_session(ConsentState::Control);
    let (tx, mut tools) = mpsc::channel(8);
    h.state_mut().set_tools(tx);
    // The remote screen has the keyboard; a message arrives.
    click_screen(&mut h);
    let from_user = |text: &str| Event::ChatReceived {
        chat: protocol::sessionlog::ChatRecord {
            from: protocol::sessionlog::ChatAuthor::User,
            text: text.into(),
        },
        at_unix_ms: now_ms(),
    };
    h.state_mut().model.update(from_user("is anyone there?"));
    h.state_mut().model.update(from_user("hello?"));
    h.run_steps(6);
    // Counted on the button; the panel stays closed and the keyboard stays with the screen.
    h.get_by_label("Chat (2)");
    assert!(h.query_by_label("is anyone there?").is_none());
    assert!(h.state().model.session.as_ref().unwrap().grabbed);
    h.get_by_label("Chat (2)").click();
    h.run_steps(6);
    h.get_by_label("is anyone there?");
    h.get_by_label("hello?");
    h.get_by_role_and_label(egui::accesskit::Role::MultilineTextInput, MESSAGE)
        .focus();
    h.run_steps(2);
    h.get_by_role_and_label(egui::accesskit::Role::MultilineTextInput, MESSAGE)
        .type_text("Yes, this is Alice from the desk.");
    h.run_steps(4);
    h.get_by_label("Send").click();
    h.run_steps(4);
    assert_eq!(
        tools.try_recv().ok(),
        Some(technician::session::ToolAction::Chat(
            "Yes, this is Alice from the desk.".into()
        ))
    );
    h.get_by_label("Yes, this is Alice from the desk.");
    h.get_by_label("You");
    // Read while open: nothing is counted.
    h.state_mut().model.update(from_user("thanks"));
    h.run_steps(4);
    h.get_by_label("thanks");
    assert!(h.query_by_label("Chat (1)").is_none());
}

#[test]
fn the_files_menu_sends_a_path_and_fetches_one_and_says_why_nothing_moved() {
    let (mut h, _rx) = in_session(ConsentState::ViewOnly);
    let (tx, mut tools) = mpsc::channel(8);
    h.state_mut().set_tools(tx);
    h.get_by_label("Files").click();
    h.run_steps(4);
    // Clicked into, as a person does: the menu stays open.
    let field = |h: &Harness<'static, ConsoleApp>, label: &str| {
        h.get_by_role_and_label(egui::accesskit::Role::TextInput, label)
            .click();
    };
    field(&h, "Send to the user (a file or folder here)");
    h.run_steps(2);
    h.get_by_role_and_label(
        egui::accesskit::Role::TextInput,
        "Send to the user (a file or folder here)",
    )
    .type_text("/srv/tools/fix printer.sh");
    h.run_steps(4);
    h.get_by_label("Send to the user").click();
    h.run_steps(4);
    assert_eq!(
        tools.try_recv().ok(),
        Some(technician::session::ToolAction::Files(
            technician::files::FileStep::Send(vec!["/srv/tools/fix printer.sh".into()])
        ))
    );
    // The field is empty again; a fetch goes into the folder the menu names.
    h.get_by_label("Files").click();
    h.run_steps(4);
    field(&h, "Fetch from the user's machine (a path there)");
    h.run_steps(2);
    h.get_by_role_and_label(
        egui::accesskit::Role::TextInput,
        "Fetch from the user's machine (a path there)",
    )
    .type_text("/home/user/report.pdf");
    h.run_steps(4);
    h.get_by_label("Fetch").click();
    h.run_steps(4);
    match tools.try_recv().ok() {
        Some(technician::session::ToolAction::Files(technician::files::FileStep::Fetch {
            path,
            dir,
        })) => {
            assert_eq!(path, "/home/user/report.pdf");
            assert_eq!(dir, link::files::downloads());
        }
        other => panic!("the fetch asked {other:?}"),
    }
    assert_eq!(
        h.state().model.session.as_ref().unwrap().files_form,
        Default::default()
    );
    // What went nowhere is said under the screen.
    h.state_mut().model.update(Event::FilesNote(
        technician::console::model::FilesNote::Declined("the user said no".into()),
    ));
    h.run_steps(4);
    h.get_by_label("The user declined the files: the user said no");
}

#[test]
fn a_folder_of_the_user_is_clicked_through_and_a_file_in_it_fetched_or_stopped() {
    use protocol::browse::{Entry, Listing};
    use technician::files::FileStep;
    use technician::session::ToolAction;
    let (mut h, _rx) = in_session(ConsentState::Control);
    let (tx, mut tools) = mpsc::channel(8);
    h.state_mut().set_tools(tx);
    h.get_by_label("Files").click();
    h.run_steps(4);
    h.get_by_label("Show the user's folder").click();
    h.run_steps(4);
    let asked = tools.try_recv().ok();
    assert_eq!(
        asked,
        Some(ToolAction::Files(FileStep::List { path: "~".into() }))
    );
    let entry = |name: &str, folder| Entry {
        name: name.into(),
        folder,
        size: if folder { 0 } else { 2048 },
    };
    let listing = Listing::new(
        "/home/user".into(),
        vec![entry("report.pdf", false), entry("Documents", true)],
    );
    h.state_mut().model.update(Event::Listed(listing));
    h.run_steps(4);
    h.get_by_label("Documents/").click();
    h.run_steps(4);
    assert_eq!(
        tools.try_recv().ok(),
        Some(ToolAction::Files(FileStep::List {
            path: "/home/user/Documents".into()
        }))
    );
    h.get_by_label("report.pdf  (2.0 KB)").click();
    h.run_steps(4);
    assert_eq!(
        tools.try_recv().ok(),
        Some(ToolAction::Files(FileStep::Fetch {
            path: "/home/user/report.pdf".into(),
            dir: link::files::downloads(),
        }))
    );
    // Its row under the screen has Stop, with the panel still open beside the screen.
    assert!(h.state().model.session.as_ref().unwrap().files_open);
    h.state_mut()
        .model
        .update(Event::File(technician::console::model::FileRow {
            key: (3, 1),
            name: "report.pdf".into(),
            incoming: true,
            done: 1024,
            size: 2048,
            rate: 512,
            eta_secs: Some(2),
            ended: None,
            stopped: false,
        }));
    h.run_steps(4);
    h.get_by_label("Stop").click();
    h.run_steps(4);
    assert_eq!(
        tools.try_recv().ok(),
        Some(ToolAction::Files(FileStep::Cancel { offer: 3 }))
    );
}

#[test]
fn the_users_monitors_are_offered_and_a_choice_asks_the_session() {
    let (mut h, _rx) = in_session(ConsentState::Control);
    let (tx, mut tools) = mpsc::channel(8);
    h.state_mut().set_tools(tx);
    let monitor = |name: &str, x: i32| protocol::monitor::Monitor {
        name: name.into(),
        x,
        y: 0,
        width: 1280,
        height: 1024,
        primary: x == 0,
    };
    h.state_mut()
        .model
        .update(Event::Monitors(protocol::monitor::Monitors {
            list: vec![monitor("DP-1", 0), monitor("HDMI-1", 1280)],
            shown: protocol::monitor::MonitorChoice::One(0),
        }));
    h.run_steps(6);
    h.get_by_label("Monitor: 1: DP-1 (1280×1024)").click();
    h.run_steps(4);
    h.get_by_label("All monitors (2560×1024)");
    h.get_by_label("2: HDMI-1 (1280×1024)").click();
    h.run_steps(4);
    assert_eq!(
        tools.try_recv().ok(),
        Some(technician::session::ToolAction::ShowMonitor(
            protocol::monitor::MonitorChoice::One(1)
        ))
    );
}

fn participant(name: &str, you: bool, controls: bool, monitoring: bool) -> Participant {
    Participant {
        name: name.into(),
        tier: if monitoring { 2 } else { 1 },
        you,
        controls,
        may_control: true,
        monitoring,
    }
}

#[test]
fn the_technician_in_control_gives_it_to_another_who_is_shown_in_control() {
    let (mut h, mut ends) = harness_with_worker();
    let (_desk, mut control) = in_request_session_with_control(&mut h, &mut ends);
    assert!(
        h.query_by_label("Technicians:").is_none(),
        "alone, no list of technicians"
    );
    news(
        &mut h,
        &ends,
        vec![Event::Participants(vec![
            participant("alice", true, true, false),
            participant("ana", false, false, false),
        ])],
    );
    h.get_by_label("you (in control)");
    h.get_by_label("ana (tier 1, observing)");
    h.get_by_label("Give control to ana").click();
    h.run_steps(4);
    assert_eq!(
        control.try_recv().ok(),
        Some(ControlStep::HandOver("ana".into()))
    );
    news(
        &mut h,
        &ends,
        vec![
            Event::Consent(ConsentState::ViewOnly),
            Event::Participants(vec![
                participant("alice", true, false, false),
                participant("ana", false, true, false),
            ]),
        ],
    );
    h.get_by_label("you (observing)");
    h.get_by_label("ana (tier 1, in control)");
    assert!(h.query_by_label("Give control to ana").is_none());
    assert!(h.query_by_label("Take over control").is_none());
}

#[test]
fn a_lead_monitors_a_live_session_from_the_dashboard_and_takes_over() {
    let (mut h, mut ends) = harness_with_worker();
    news(
        &mut h,
        &ends,
        vec![Event::Dashboard(Dashboard {
            tiers: vec![],
            technicians: vec![],
            sessions: vec![LiveSession {
                session: "s-42".into(),
                technician: "tom".into(),
                tier: 1,
                request: Some(7),
                started_unix_ms: now_ms() - 65_000,
            }],
        })],
    );
    h.get_by_label("tom (tier 1), help request 7");
    h.get_by_label("Monitor").click();
    h.run_steps(4);
    let mut control = match asked(&mut ends).pop() {
        Some(Request::Monitor {
            session, control, ..
        }) => {
            assert_eq!(session, "s-42");
            control
        }
        _ => panic!("the window did not ask to monitor the session"),
    };
    news(
        &mut h,
        &ends,
        vec![
            Event::ScreenStarted {
                width: 200,
                height: 100,
            },
            Event::Consent(ConsentState::ViewOnly),
            Event::Participants(vec![
                participant("tom", false, true, false),
                participant("alice", true, false, true),
            ]),
        ],
    );
    h.get_by_label("tom (tier 1, in control)");
    h.get_by_label("Take over control").click();
    h.run_steps(4);
    assert_eq!(control.try_recv().ok(), Some(ControlStep::TakeOver));
}
