//! The console's screens driven through egui_kittest, without a display or a network: what the
//! technician clicks changes the model, what the model holds is what the window says, and input
//! reaches the remote machine only while the user allows control.

use std::sync::{Arc, Mutex};

use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use link::report::Reporter;
use protocol::input::InputEvent;
use protocol::peer::ConsentState;
use technician::console::model::{Event, LoggedIn, Model, Screen};
use technician::console::ui::ConsoleApp;
use technician::viewer::Viewer;
use tokio::sync::mpsc;

fn app(model: Model) -> ConsoleApp {
    let words = words::Catalogue::new("console", &words::Lang::english());
    ConsoleApp::new(
        model,
        words,
        None,
        Arc::new(Mutex::new(Viewer::new())),
        Arc::new(Mutex::new(None)),
        Reporter::new(false),
    )
}

fn harness(model: Model) -> Harness<'static, ConsoleApp> {
    Harness::builder()
        .with_size(egui::vec2(1100.0, 700.0))
        .build_ui_state(|ui, app: &mut ConsoleApp| app.show(ui, None), app(model))
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
