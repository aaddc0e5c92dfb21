//! The console's egui code: it reads the [`Model`] and turns clicks into [`Event`]s; nothing
//! else. The remote screen itself is not drawn here but by the [`Presenter`]'s child window,
//! which this code only places over the viewer area. The support desk's parts (the offer, the
//! presence switch, the dashboard, the help request's steps in a session) are drawn by
//! [`super::desk_ui`].

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use egui::{Align, Color32, Layout, RichText};
use link::report::Reporter;
use protocol::input::InputEvent;
use protocol::peer::ConsentState;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::warn;
use words::{Catalogue, Value};

use super::desk_ui;
use super::grab::KeyboardGrab;
use super::keys;
use super::model::{Command, Event, Model, Notice, Screen, SessionView, SpecialKeys, ViewScale};
use super::net::{Net, Request, SharedPresenter};
use super::present::{Placement, Presenter, Scale};
use super::{now_unix_ms, player, player_ui, tools_ui};
use crate::desk::DeskAction;
use crate::session::{ControlStep, ToolAction};
use crate::viewer::Viewer;

/// What the viewer's reported place depends on: its placement, the console's window and the
/// remote screen's size.
type AreaProbe = (Option<Placement>, Option<egui::Rect>, (u32, u32));

pub struct ConsoleApp {
    pub model: Model,
    w: Catalogue,
    net: Option<Net>,
    viewer: Arc<Mutex<Viewer>>,
    presenter: SharedPresenter,
    /// The presenter could not be made (no X11 window): said once.
    presenter_failed: Option<String>,
    input: Option<mpsc::Sender<InputEvent>>,
    /// Where the steps of the running session's help request go.
    desk: Option<mpsc::Sender<DeskAction>>,
    /// Where the running session's chat and monitor switches go.
    tools: Option<mpsc::Sender<ToolAction>>,
    /// Where hand-overs and take-overs of control in the running session go.
    control: Option<mpsc::Sender<ControlStep>>,
    /// The full-screen state last asked of the window.
    applied_fullscreen: Option<bool>,
    was_focused: bool,
    grab: Option<KeyboardGrab>,
    report: Reporter,
    /// The last viewer area reported with `--json`.
    reported_area: Option<(i32, i32, u32, u32)>,
    /// The placement and window rectangle `reported_area` was found for.
    area_probe: Option<AreaProbe>,
    player: Option<(player::Player, player_ui::PlayerView)>,
    log_path: String,
    snapshot_dir: PathBuf,
    /// Where files fetched from the user go (the technician's Downloads).
    fetch_dir: PathBuf,
    /// Join the code in the home screen's field as soon as logged in (`--connect`).
    pub join_when_logged_in: bool,
}

impl ConsoleApp {
    pub fn new(
        model: Model,
        w: Catalogue,
        net: Option<Net>,
        viewer: Arc<Mutex<Viewer>>,
        presenter: SharedPresenter,
        report: Reporter,
    ) -> Self {
        Self {
            model,
            w,
            net,
            viewer,
            presenter,
            presenter_failed: None,
            input: None,
            desk: None,
            tools: None,
            control: None,
            applied_fullscreen: None,
            was_focused: false,
            grab: None,
            report,
            reported_area: None,
            area_probe: None,
            player: None,
            log_path: String::new(),
            snapshot_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            fetch_dir: link::files::downloads(),
            join_when_logged_in: false,
        }
    }

    /// Applies an event and carries out the commands it gives.
    pub fn dispatch(&mut self, ctx: &egui::Context, event: Event) {
        for cmd in self.model.update(event) {
            self.carry_out(ctx, cmd);
        }
    }

    /// Follows the queue when a login is kept from before (a fresh login starts it itself).
    pub fn watch_queue_if_logged_in(&mut self, ctx: &egui::Context) {
        if self.model.me.is_some() {
            self.carry_out(ctx, Command::WatchQueue);
        }
    }

    /// What a new session needs from the window: the relay it goes through, and the channels
    /// its live input, its tools (chat, monitor switches) and its steps of control arrive on.
    fn session_start(
        &mut self,
    ) -> (
        String,
        mpsc::Receiver<InputEvent>,
        mpsc::Receiver<ToolAction>,
        mpsc::Receiver<ControlStep>,
    ) {
        let (tx, rx) = mpsc::channel(1024);
        self.input = Some(tx);
        let (tools_tx, tools) = mpsc::channel(16);
        self.tools = Some(tools_tx);
        let (control_tx, control_rx) = mpsc::channel(4);
        self.control = Some(control_tx);
        let relay = self
            .model
            .me
            .as_ref()
            .map(|m| m.relay.clone())
            .unwrap_or_else(|| self.model.login.relay.clone());
        (relay, rx, tools, control_rx)
    }

    fn net(&self, r: Request) {
        if let Some(n) = &self.net {
            n.send(r);
        }
    }

    fn carry_out(&mut self, ctx: &egui::Context, cmd: Command) {
        match cmd {
            Command::Connect {
                relay,
                user,
                password,
                one_time,
            } => self.net(Request::Connect {
                relay,
                user,
                password,
                one_time,
            }),
            Command::Trust { fingerprint, .. } => self.net(Request::Trust { fingerprint }),
            Command::Refuse => self.net(Request::Refuse),
            Command::Join { code } => {
                let (relay, input, tools, control) = self.session_start();
                self.net(Request::Join {
                    relay,
                    code,
                    input,
                    tools,
                    control,
                });
            }
            Command::Take { request } => {
                let (relay, input, tools, control) = self.session_start();
                let (tx, desk) = mpsc::channel(4);
                self.desk = Some(tx);
                self.net(Request::Take {
                    relay,
                    request,
                    input,
                    tools,
                    control,
                    desk,
                });
            }
            Command::Tool(action) => {
                if let Some(tx) = &self.tools {
                    if tx.try_send(action).is_err() {
                        warn!("the session is not taking chat or monitor switches");
                    }
                }
            }
            Command::Monitor { session } => {
                let (relay, input, tools, control) = self.session_start();
                self.net(Request::Monitor {
                    relay,
                    session,
                    input,
                    tools,
                    control,
                });
            }
            Command::Control(step) => {
                // A person's clicks: a full channel drops one rather than stall the window.
                if let Some(tx) = &self.control {
                    let _ = tx.try_send(step);
                }
            }
            Command::Decline { request } => self.net(Request::Decline { request }),
            Command::SetPresence { away } => self.net(Request::SetPresence { away }),
            Command::Desk(action) => {
                // The model sends one step at a time: there is room.
                if let Some(tx) = &self.desk {
                    if tx.try_send(action).is_err() {
                        self.dispatch(
                            ctx,
                            Event::RequestRefused("the session is not running".into()),
                        );
                    }
                }
            }
            Command::WatchQueue => {
                if let Some(me) = &self.model.me {
                    self.net(Request::WatchQueue {
                        relay: me.relay.clone(),
                    });
                }
            }
            Command::End => self.net(Request::End),
            Command::Snapshot(path) => self.net(Request::Snapshot(path)),
            Command::SendKeys(k) => {
                for ev in keys::special(k) {
                    self.send_input(ev);
                }
            }
            Command::OpenLog(path) => match player::Player::open(&path) {
                Ok(p) => {
                    self.player = Some((p, player_ui::PlayerView::default()));
                    self.model.show_player();
                }
                Err(e) => self.dispatch(ctx, Event::PlayerFailed(e.to_string())),
            },
            Command::LogOut { relay } => self.net(Request::LogOut { relay }),
        }
    }

    /// Where the viewer's input goes (the session's input channel); tests set it directly.
    pub fn set_input(&mut self, tx: mpsc::Sender<InputEvent>) {
        self.input = Some(tx);
    }

    /// Where chat and monitor switches go (the session's tools channel); tests set it directly.
    pub fn set_tools(&mut self, tx: mpsc::Sender<ToolAction>) {
        self.tools = Some(tx);
    }

    fn send_input(&mut self, ev: InputEvent) {
        if let Some(tx) = &self.input {
            // A full queue drops the event rather than stalling the window.
            if tx.try_send(ev).is_err() {
                warn!("input queue full; an input event was dropped");
            }
        }
    }

    fn drain_network(&mut self, ctx: &egui::Context) {
        let events: Vec<Event> = match &self.net {
            Some(n) => n.drain().collect(),
            None => return,
        };
        for e in events {
            if e == Event::Quit {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
            if matches!(e, Event::SessionEnded { .. } | Event::JoinFailed(_)) {
                self.input = None;
                self.desk = None;
                self.tools = None;
                self.control = None;
                self.place_viewer(ctx, None);
            }
            self.dispatch(ctx, e);
        }
    }

    /// Makes the presenter on the first frame that has a window (X11 only).
    fn ensure_presenter(&mut self, ctx: &egui::Context, frame: &eframe::Frame) {
        if self.presenter_failed.is_some() || self.presenter.lock().expect("presenter").is_some() {
            return;
        }
        let Some(parent) = x11_window(frame) else {
            self.presenter_failed =
                Some("the console shows remote screens only on X11 for now".into());
            return;
        };
        match Presenter::new(None, parent) {
            Ok(p) => {
                let ctx = ctx.clone();
                let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || ctx.request_repaint());
                super::pointer::spawn(
                    p.connection(),
                    p.route(),
                    self.viewer.clone(),
                    self.presenter.clone(),
                    wake,
                );
                *self.presenter.lock().expect("presenter") = Some(p);
            }
            Err(e) => self.presenter_failed = Some(e.to_string()),
        }
    }

    /// The keyboard grab (and focus) of the console's window, from its first frame on X11.
    fn ensure_grab(&mut self, ctx: &egui::Context, frame: &eframe::Frame) {
        if self.grab.is_none() {
            if let Some(w) = x11_window(frame) {
                self.grab = KeyboardGrab::new(frame, w).ok();
            }
        }
        // A click in a window that does not have the keyboard gives it the keyboard.
        let unfocused_click =
            ctx.input(|i| i.pointer.any_pressed() && i.viewport().focused != Some(true));
        if let (true, Some(g)) = (unfocused_click, self.grab.as_mut()) {
            g.focus();
        }
    }

    /// Places (or hides) the presenter's window; viewer lock first, then the presenter's.
    /// Where it is on the screen (for `--json`'s `viewer_area`) is asked of the X server only
    /// when the placement, the console's window or the remote screen's size changed, not on
    /// every frame.
    fn place_viewer(&mut self, ctx: &egui::Context, placement: Option<Placement>) {
        let window = ctx.input(|i| i.viewport().inner_rect);
        let v = self.viewer.lock().expect("viewer lock");
        let mut p = self.presenter.lock().expect("presenter");
        let Some(p) = p.as_mut() else { return };
        if let Err(e) = p.place(placement, v.framebuffer()) {
            warn!(error = %e, "the viewer could not be placed");
        }
        // The screen's size too: the first update may come after the viewer was placed.
        let screen = (v.framebuffer().width(), v.framebuffer().height());
        let probe = (p.placement(), window, screen);
        if self.area_probe == Some(probe) {
            return;
        }
        self.area_probe = Some(probe);
        let area = p.placement().and_then(|pl| {
            p.root_position().ok().map(|(x, y)| {
                (
                    x,
                    y,
                    pl.width.min(v.framebuffer().width()),
                    pl.height.min(v.framebuffer().height()),
                )
            })
        });
        drop(v);
        if area != self.reported_area {
            self.reported_area = area;
            if let Some((x, y, width, height)) = area {
                self.report.event(
                    "viewer_area",
                    json!({ "x": x, "y": y, "width": width, "height": height,
                            "one_to_one": matches!(placement.map(|p| p.scale), Some(Scale::OneToOne { .. })) }),
                    "",
                );
            }
        }
    }

    fn login_screen(&mut self, root: &mut egui::Ui) {
        let ctx = &root.ctx().clone();
        let mut events = Vec::new();
        egui::CentralPanel::default().show(root, |ui| {
            ui.vertical_centered(|ui| {
                ui.add_space(40.0);
                ui.heading(self.w.text("login-title"));
                ui.add_space(16.0);
                let f = &mut self.model.login;
                // The form's two columns, centred under the heading (about 400 points wide).
                ui.horizontal(|ui| {
                    ui.add_space(((ui.available_width() - 400.0) / 2.0).max(0.0));
                    egui::Grid::new("login")
                        .num_columns(2)
                        .spacing([12.0, 8.0])
                        .show(ui, |ui| {
                            let l = ui.label(self.w.text("login-relay"));
                            ui.add_enabled(
                                !f.busy,
                                egui::TextEdit::singleline(&mut f.relay).desired_width(260.0),
                            )
                            .labelled_by(l.id);
                            ui.end_row();
                            let l = ui.label(self.w.text("login-user"));
                            ui.add_enabled(
                                !f.busy,
                                egui::TextEdit::singleline(&mut f.user).desired_width(260.0),
                            )
                            .labelled_by(l.id);
                            ui.end_row();
                            let l = ui.label(self.w.text("login-password"));
                            let pw = ui
                                .add_enabled(
                                    !f.busy,
                                    egui::TextEdit::singleline(&mut f.password)
                                        .password(true)
                                        .desired_width(260.0),
                                )
                                .labelled_by(l.id);
                            if pw.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                                events.push(Event::LoginSubmitted);
                            }
                            ui.end_row();
                            let l = ui.label(self.w.text("login-code"));
                            let code = ui
                                .add_enabled(
                                    !f.busy,
                                    egui::TextEdit::singleline(&mut f.one_time)
                                        .hint_text(self.w.text("login-code-hint"))
                                        .desired_width(260.0),
                                )
                                .labelled_by(l.id);
                            if code.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                                events.push(Event::LoginSubmitted);
                            }
                            ui.end_row();
                        });
                });
                ui.add_space(12.0);
                if f.busy && f.first_contact.is_none() {
                    ui.spinner();
                    ui.label(self.w.text("login-busy"));
                } else if ui.button(self.w.text("login-submit")).clicked() {
                    events.push(Event::LoginSubmitted);
                }
                if let Some(fp) = &f.first_contact {
                    ui.add_space(16.0);
                    egui::Frame::group(ui.style()).show(ui, |ui| {
                        ui.set_max_width(560.0);
                        ui.strong(self.w.text("first-contact-title"));
                        ui.label(self.w.fmt(
                            "first-contact-body",
                            &[("relay", Value::from(f.relay.clone()))],
                        ));
                        ui.monospace(fp);
                        ui.horizontal(|ui| {
                            if ui.button(self.w.text("first-contact-accept")).clicked() {
                                events.push(Event::AcceptRelay);
                            }
                            if ui.button(self.w.text("first-contact-refuse")).clicked() {
                                events.push(Event::RefuseRelay);
                            }
                        });
                    });
                }
                if let Some(err) = &f.error {
                    ui.add_space(12.0);
                    ui.colored_label(Color32::from_rgb(220, 80, 60), err);
                }
            });
        });
        for e in events {
            self.dispatch(ctx, e);
        }
    }

    fn home_screen(&mut self, root: &mut egui::Ui) {
        let ctx = &root.ctx().clone();
        let mut events = Vec::new();
        egui::Panel::top("home-top").show(root, |ui| {
            ui.horizontal(|ui| {
                if let Some(me) = &self.model.me {
                    let account = me.account.clone().unwrap_or_else(|| me.user.clone());
                    ui.label(self.w.fmt(
                        "home-logged-in",
                        &[
                            ("account", Value::from(account)),
                            ("relay", Value::from(me.relay.clone())),
                        ],
                    ));
                }
                ui.with_layout(Layout::right_to_left(Align::Center), |ui| {
                    if ui.button(self.w.text("home-logout")).clicked() {
                        events.push(Event::LogOut);
                    }
                });
            });
        });
        let now = now_unix_ms();
        let me = self
            .model
            .me
            .as_ref()
            .map(|m| m.user.clone())
            .unwrap_or_default();
        let w = &self.w;
        let home = &mut self.model.home;
        egui::CentralPanel::default().show(root, |ui| {
            egui::ScrollArea::vertical()
                .auto_shrink([false, false])
                .show(ui, |ui| {
                    if let Some(o) = &home.offer {
                        ui.add_space(8.0);
                        desk_ui::offer(ui, w, o, now, &mut events);
                    }
                    ui.add_space(12.0);
                    let heading = ui.heading(w.text("home-code"));
                    ui.horizontal(|ui| {
                        let edit = ui
                            .add(
                                egui::TextEdit::singleline(&mut home.code)
                                    .hint_text(w.text("home-code-hint"))
                                    .font(egui::TextStyle::Heading)
                                    .desired_width(320.0),
                            )
                            .labelled_by(heading.id);
                        if edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
                            events.push(Event::JoinSubmitted);
                        }
                        if ui
                            .button(RichText::new(w.text("home-join")).heading())
                            .clicked()
                        {
                            events.push(Event::JoinSubmitted);
                        }
                    });
                    if let Some(err) = &home.error {
                        ui.colored_label(Color32::from_rgb(220, 80, 60), err);
                    }
                    ui.add_space(20.0);
                    ui.columns(2, |cols| {
                        if let Some(d) = &home.dashboard {
                            desk_ui::dashboard(&mut cols[0], w, d, now, &mut events);
                            cols[0].add_space(20.0);
                        }
                        recent_sessions(&mut cols[0], w, &home.recent, &mut events);
                        cols[1].heading(w.text("home-queue"));
                        match &home.queue {
                            None => {
                                cols[1].label(w.text("home-queue-later"));
                            }
                            Some((requests, more)) => {
                                desk_ui::presence_switch(&mut cols[1], w, home.away, &mut events);
                                if requests.is_empty() {
                                    cols[1].label(w.text("home-queue-empty"));
                                } else if cols[1].button(w.text("home-queue-next")).clicked() {
                                    events.push(Event::TakeSubmitted(None));
                                }
                                for r in requests {
                                    desk_ui::queue_entry(&mut cols[1], w, r, &me, now, &mut events);
                                }
                                if *more > 0 {
                                    cols[1].label(
                                        w.fmt("home-queue-more", &[("count", Value::from(*more))]),
                                    );
                                }
                            }
                        }
                        cols[1].add_space(20.0);
                        let heading = cols[1].heading(w.text("home-open-log"));
                        cols[1].horizontal(|ui| {
                            ui.add(
                                egui::TextEdit::singleline(&mut self.log_path)
                                    .hint_text(w.text("home-log-path"))
                                    .desired_width(260.0),
                            )
                            .labelled_by(heading.id);
                            if ui.button(w.text("home-open")).clicked()
                                && !self.log_path.trim().is_empty()
                            {
                                events.push(Event::OpenLog(PathBuf::from(self.log_path.trim())));
                            }
                        });
                        if let Some(err) = &self.model.player_error {
                            cols[1].colored_label(Color32::from_rgb(220, 80, 60), err);
                        }
                    });
                });
        });
        // The offer's time left and the dashboard's oldest waits move with the clock.
        if self.model.home.offer.is_some() || self.model.home.dashboard.is_some() {
            ctx.request_repaint_after(std::time::Duration::from_secs(1));
        }
        for e in events {
            self.dispatch(ctx, e);
        }
    }

    /// The toolbar's items but the last: the session, who, consent, recording, verification,
    /// quality, the view's scale, full screen, snapshot and keys.
    fn toolbar_left(&self, ui: &mut egui::Ui, s: &SessionView, events: &mut Vec<Event>) {
        ui.strong(&s.code);
        if let Some(a) = &s.account {
            ui.label(a)
                .on_hover_text(s.peer.clone().unwrap_or_default());
        }
        ui.separator();
        match (s.ended.is_some(), s.consent, s.screen) {
            (true, _, _) => {}
            (_, ConsentState::Control, _) => {
                ui.colored_label(
                    Color32::from_rgb(60, 170, 90),
                    self.w.text("session-control"),
                )
                .on_hover_text(self.w.text("session-control-tip"));
            }
            (_, ConsentState::ViewOnly, _) => {
                ui.colored_label(
                    Color32::from_rgb(220, 160, 40),
                    self.w.text("session-view-only"),
                )
                .on_hover_text(self.w.text("session-view-only-tip"));
            }
            (_, ConsentState::Denied, _) => {
                ui.label(self.w.text("session-denied"));
            }
            (_, ConsentState::Asking, _) => {
                ui.label(self.w.text("session-waiting-consent"));
            }
        }
        match s.notice {
            Some(Notice::ControlStopped) => {
                ui.colored_label(
                    Color32::from_rgb(220, 160, 40),
                    self.w.text("notice-control-stopped"),
                );
            }
            Some(Notice::ControlGranted) => {
                ui.label(self.w.text("notice-control-granted"));
            }
            None => {}
        }
        if let Some(relay) = &s.redirected {
            ui.label(self.w.fmt(
                "session-redirected",
                &[("relay", Value::from(relay.clone()))],
            ))
            .on_hover_text(self.w.text("session-redirected-tip"));
        }
        ui.separator();
        match &s.recording {
            Some(Some(path)) => {
                ui.colored_label(
                    Color32::from_rgb(210, 60, 60),
                    self.w.text("session-recording"),
                )
                .on_hover_text(self.w.fmt(
                    "session-recording-tip",
                    &[("path", Value::from(path.display().to_string()))],
                ));
            }
            Some(None) => {
                ui.label(self.w.text("session-not-recording"));
            }
            None => {}
        }
        if let Some(v) = &s.verification {
            ui.separator();
            ui.label(
                RichText::new(
                    self.w
                        .fmt("session-verification", &[("code", Value::from(v.clone()))]),
                )
                .strong(),
            )
            .on_hover_text(self.w.text("session-verification-tip"));
        }
        // The relay's silence hides the agent's: say the one that is nearer.
        let quiet = match (s.relay_quiet, s.quiet) {
            (true, _) => Some(("session-relay-quiet", "session-relay-quiet-tip")),
            (false, true) => Some(("session-quiet", "session-quiet-tip")),
            (false, false) => None,
        };
        if let Some((text, tip)) = quiet {
            ui.separator();
            ui.colored_label(Color32::from_rgb(220, 150, 40), self.w.text(text))
                .on_hover_text(self.w.text(tip));
        }
        if let Some(q) = s.quality {
            ui.separator();
            ui.label(self.w.fmt(
                "session-quality",
                &[
                    (
                        "rtt",
                        Value::from(format!("{:.1}", q.rtt.as_secs_f64() * 1e3)),
                    ),
                    ("ups", Value::from(q.updates_per_sec)),
                    ("mbit", Value::from(format!("{:.2}", q.mbit_per_sec))),
                ],
            ))
            .on_hover_text(self.w.text("session-quality-tip"));
        }
        ui.separator();
        let mut scale = s.scale;
        ui.selectable_value(&mut scale, ViewScale::Fit, self.w.text("session-fit"));
        ui.selectable_value(
            &mut scale,
            ViewScale::OneToOne,
            self.w.text("session-one-to-one"),
        );
        if scale != s.scale {
            events.push(Event::SetScale(scale));
        }
        if ui
            .selectable_label(s.fullscreen, self.w.text("session-fullscreen"))
            .clicked()
        {
            events.push(Event::ToggleFullscreen);
        }
        if ui
            .add_enabled(
                s.screen.is_some(),
                egui::Button::new(self.w.text("session-snapshot")),
            )
            .clicked()
        {
            let name = format!(
                "tandem-{}.png",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            );
            events.push(Event::Snapshot(self.snapshot_dir.join(name)));
        }
        tools_ui::monitor_menu(ui, &self.w, s, events);
        tools_ui::chat_button(ui, &self.w, s, events);
        tools_ui::files_button(ui, &self.w, s, events);
        tools_ui::clipboard_shared(ui, &self.w, s);
        ui.add_enabled_ui(s.may_control(), |ui| {
            ui.menu_button(self.w.text("session-send-keys"), |ui| {
                for k in SpecialKeys::ALL {
                    let key = match k {
                        SpecialKeys::CtrlAltDel => "keys-ctrl-alt-del",
                        SpecialKeys::AltTab => "keys-alt-tab",
                        SpecialKeys::AltF4 => "keys-alt-f4",
                        SpecialKeys::Super => "keys-super",
                        SpecialKeys::PrintScreen => "keys-print-screen",
                    };
                    if ui.button(self.w.text(key)).clicked() {
                        events.push(Event::SendKeys(k));
                        ui.close();
                    }
                }
            });
        });
    }

    fn toolbar(&mut self, ui: &mut egui::Ui, events: &mut Vec<Event>) {
        let Some(s) = &self.model.session else { return };
        // End session (or Back to home) keeps its place at the right; the rest wraps into
        // rows where the window (or a longer language) leaves too little width.
        let mut right = None;
        egui::Sides::new()
            .shrink_left()
            .wrap_mode(egui::TextWrapMode::Extend)
            .show(
                ui,
                |ui| ui.horizontal_wrapped(|ui| self.toolbar_left(ui, s, events)),
                |ui| {
                    if s.ended.is_some() {
                        if ui.button(self.w.text("session-back")).clicked() {
                            right = Some(Event::BackHome);
                        }
                    } else if ui
                        .button(
                            RichText::new(self.w.text("session-end"))
                                .color(Color32::from_rgb(220, 80, 60)),
                        )
                        .clicked()
                    {
                        right = Some(Event::EndSession);
                    }
                },
            );
        events.extend(right);
        if let Some(snap) = &s.snapshot {
            match snap {
                Ok(p) => ui.label(self.w.fmt(
                    "snapshot-saved",
                    &[("path", Value::from(p.display().to_string()))],
                )),
                Err(e) => ui.colored_label(
                    Color32::from_rgb(220, 80, 60),
                    self.w
                        .fmt("snapshot-failed", &[("why", Value::from(e.clone()))]),
                ),
            };
        }
        for f in &s.files {
            ui.horizontal(|ui| {
                ui.label(self.file_words(f));
                if f.ended.is_none() && ui.small_button(self.w.text("files-stop")).clicked() {
                    events.push(Event::StopFiles(f.key.0));
                }
            });
        }
        tools_ui::files_note(ui, &self.w, s);
        if s.grabbed {
            ui.label(self.w.text("session-grab-hint"));
        } else if s.may_control() {
            ui.label(self.w.text("session-click-to-control"));
        }
        tools_ui::clipboard_note(ui, &self.w, s);
    }

    /// How a file sent or fetched stands, in words.
    fn file_words(&self, f: &super::model::FileRow) -> String {
        use protocol::transfer::bytes_words;
        let name = Value::from(f.name.clone());
        match &f.ended {
            None => {
                let key = if f.incoming {
                    "file-fetching"
                } else {
                    "file-sending"
                };
                let mut words = self.w.fmt(
                    key,
                    &[
                        ("name", name),
                        ("done", Value::from(bytes_words(f.done))),
                        ("size", Value::from(bytes_words(f.size))),
                    ],
                );
                if f.rate > 0 {
                    let left = f.eta_secs.map(link::files::time_words).unwrap_or_default();
                    words.push_str(" · ");
                    words.push_str(&self.w.fmt(
                        "file-rate",
                        &[
                            ("rate", Value::from(bytes_words(f.rate))),
                            ("left", Value::from(left)),
                        ],
                    ));
                }
                words
            }
            Some(Ok(())) => self.w.fmt("file-done", &[("name", name)]),
            Some(Err(why)) if f.stopped => self.w.fmt(
                "file-stopped",
                &[("name", name), ("why", Value::from(why.clone()))],
            ),
            Some(Err(why)) => self.w.fmt(
                "file-failed",
                &[("name", name), ("why", Value::from(why.clone()))],
            ),
        }
    }

    fn session_screen(&mut self, root: &mut egui::Ui, frame: Option<&eframe::Frame>) {
        let ctx = &root.ctx().clone();
        if let Some(frame) = frame {
            self.ensure_presenter(ctx, frame);
        }
        let mut events = Vec::new();
        // Full screen is the remote screen alone (Ctrl+Alt+F leaves it).
        if !self
            .model
            .session
            .as_ref()
            .is_some_and(|s| s.fullscreen && s.ended.is_none())
        {
            egui::Panel::top("toolbar").show(root, |ui| self.toolbar(ui, &mut events));
            let w = &self.w;
            if let Some(s) = &mut self.model.session {
                let ended = s.ended.is_some();
                if let Some(r) = &mut s.request {
                    egui::Panel::top("help-request").show(root, |ui| {
                        desk_ui::session_request(ui, w, r, ended, &mut events)
                    });
                }
                if !s.participants.is_empty() {
                    let view = &*s;
                    egui::Panel::top("participants")
                        .show(root, |ui| desk_ui::participants(ui, w, view, &mut events));
                }
            }
        }
        // The chat at the right, beside the remote screen (not over it: the screen is a window
        // of its own), while it is open; in full screen too.
        if let Some(s) = self.model.session.as_ref().filter(|s| s.chat.open) {
            let now = now_unix_ms();
            egui::Panel::right("chat")
                .resizable(true)
                .default_size(280.0)
                .min_size(200.0)
                .show(root, |ui| {
                    tools_ui::chat_panel(ui, &self.w, s, now, &mut events)
                });
        }
        // Files at the left, beside the remote screen as the chat is.
        if let Some(s) = self
            .model
            .session
            .as_ref()
            .filter(|s| s.files_open && s.may_move_files())
        {
            egui::Panel::left("files")
                .resizable(true)
                .default_size(340.0)
                .min_size(240.0)
                .show(root, |ui| {
                    tools_ui::files_panel(ui, &self.w, s, &self.fetch_dir, &mut events)
                });
        }
        let ppp = ctx.pixels_per_point();
        let session = self.model.session.clone();
        let mut placement = None;
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE.fill(Color32::from_gray(24)))
            .show(root, |ui| {
                let Some(s) = &session else { return };
                if let Some(why) = &s.ended {
                    ui.centered_and_justified(|ui| {
                        ui.heading(
                            self.w
                                .fmt("session-ended", &[("why", Value::from(why.clone()))]),
                        );
                    });
                    return;
                }
                // Words, not a spinner: a spinner repaints the whole window continuously, which
                // costs a core without a GPU for as long as the user takes to answer.
                let Some((rw, rh)) = s.screen else {
                    ui.centered_and_justified(|ui| {
                        ui.label(self.w.text("session-connecting"));
                    });
                    return;
                };
                if let Some(why) = &self.presenter_failed {
                    ui.colored_label(Color32::from_rgb(220, 80, 60), why);
                }
                let viewer_id = egui::Id::unique("remote-screen");
                match s.scale {
                    ViewScale::Fit => {
                        let area = ui.available_rect_before_wrap();
                        let resp = ui.interact(area, viewer_id, egui::Sense::click_and_drag());
                        handle_focus(&resp, &mut events);
                        placement = Some(Placement {
                            x: (area.min.x * ppp).round() as i32,
                            y: (area.min.y * ppp).round() as i32,
                            width: (area.width() * ppp).round() as u32,
                            height: (area.height() * ppp).round() as u32,
                            scale: Scale::Fit,
                        });
                    }
                    ViewScale::OneToOne => {
                        ui.style_mut().spacing.scroll = egui::style::ScrollStyle::solid();
                        egui::ScrollArea::both()
                            .auto_shrink([false, false])
                            .scroll_bar_visibility(
                                egui::scroll_area::ScrollBarVisibility::VisibleWhenNeeded,
                            )
                            .show_viewport(ui, |ui, viewport| {
                                let content = egui::vec2(rw as f32 / ppp, rh as f32 / ppp);
                                ui.set_min_size(content);
                                let full = egui::Rect::from_min_size(ui.min_rect().min, content);
                                let visible = full.intersect(ui.clip_rect());
                                let resp =
                                    ui.interact(visible, viewer_id, egui::Sense::click_and_drag());
                                handle_focus(&resp, &mut events);
                                let offset_x = (viewport.min.x * ppp).round().max(0.0) as u32;
                                let offset_y = (viewport.min.y * ppp).round().max(0.0) as u32;
                                placement = Some(Placement {
                                    x: (visible.min.x * ppp).round() as i32,
                                    y: (visible.min.y * ppp).round() as i32,
                                    width: (visible.width() * ppp).round() as u32,
                                    height: (visible.height() * ppp).round() as u32,
                                    scale: Scale::OneToOne { offset_x, offset_y },
                                });
                            });
                    }
                }
            });
        // A menu open over the viewer must not be hidden under the child window.
        let menu_open = egui::Popup::is_any_open(ctx);
        self.place_viewer(ctx, if menu_open { None } else { placement });
        // A click the window sees (not on the remote screen) takes the keyboard back.
        let clicked_elsewhere =
            ctx.input(|i| i.pointer.any_pressed()) && !events.contains(&Event::SetGrab(true));
        if clicked_elsewhere && self.model.session.as_ref().is_some_and(|s| s.grabbed) {
            events.push(Event::SetGrab(false));
        }
        let route = self
            .presenter
            .lock()
            .expect("presenter")
            .as_ref()
            .map(|p| p.route());
        if let Some(route) = route {
            let control = self.model.session.as_ref().is_some_and(|s| s.may_control());
            route.set_input(self.input.clone(), control);
            if route.take_clicked() {
                events.push(Event::SetGrab(true));
            }
        }
        for e in events {
            self.dispatch(ctx, e);
        }
        self.sync_window(ctx);
    }

    /// While the remote screen has the keyboard (and the user allows control), the frame's key
    /// events go to the remote machine and are taken out of egui's input, so that no button of
    /// the console reacts to them. Called before egui sees the frame's input.
    pub fn route_keys(&mut self, ctx: &egui::Context, events: &mut Vec<egui::Event>) {
        let Some(s) = &self.model.session else { return };
        if !(s.grabbed && s.may_control()) || self.model.screen != Screen::Session {
            return;
        }
        let (keyboard, rest): (Vec<egui::Event>, Vec<egui::Event>) =
            events.drain(..).partition(keys::is_keyboard);
        *events = rest;
        let t = keys::translate(&keyboard);
        for ev in t.input {
            self.send_input(ev);
        }
        if t.release_grab {
            self.dispatch(ctx, Event::SetGrab(false));
        }
        if t.toggle_fullscreen {
            self.dispatch(ctx, Event::ToggleFullscreen);
        }
    }

    /// Full screen and the keyboard grab follow the model.
    fn sync_window(&mut self, ctx: &egui::Context) {
        let (fullscreen, grabbed) = self
            .model
            .session
            .as_ref()
            .map_or((false, false), |s| (s.fullscreen, s.grabbed));
        if self.applied_fullscreen != Some(fullscreen) {
            self.applied_fullscreen = Some(fullscreen);
            ctx.send_viewport_cmd(egui::ViewportCommand::Fullscreen(fullscreen));
            // Without a window manager (a bare X server) the request alone does nothing: the
            // window also takes the whole monitor, undecorated, itself.
            ctx.send_viewport_cmd(egui::ViewportCommand::Decorations(!fullscreen));
            if fullscreen {
                if let Some(size) = ctx.input(|i| i.viewport().monitor_size) {
                    ctx.send_viewport_cmd(egui::ViewportCommand::OuterPosition(egui::pos2(
                        0.0, 0.0,
                    )));
                    ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(size));
                }
            } else if self.applied_fullscreen.is_some() {
                ctx.send_viewport_cmd(egui::ViewportCommand::InnerSize(egui::vec2(1280.0, 860.0)));
            }
        }
        // The grab ends when the window loses the keyboard to another window (after having had
        // it); taking it gives the window the focus first.
        let focused = ctx.input(|i| i.viewport().focused);
        let lost = self.was_focused && focused == Some(false);
        self.was_focused = focused == Some(true);
        if lost && grabbed && self.grab.as_ref().is_some_and(|g| g.is_grabbed()) {
            self.dispatch(ctx, Event::SetGrab(false));
        }
        let grabbed = self.model.session.as_ref().is_some_and(|s| s.grabbed);
        if let Some(g) = &mut self.grab {
            g.set(grabbed);
        }
    }

    fn player_screen(&mut self, root: &mut egui::Ui) {
        let ctx = &root.ctx().clone();
        let mut back = false;
        egui::Panel::top("player-top").show(root, |ui| {
            if ui.button(self.w.text("player-back")).clicked() {
                back = true;
            }
        });
        egui::CentralPanel::default().show(root, |ui| {
            if let Some((p, view)) = &mut self.player {
                player_ui::show(ui, p, view);
            }
        });
        if let Some((p, _)) = &self.player {
            if p.is_playing() {
                ctx.request_repaint();
            }
        }
        if back {
            self.player = None;
            self.dispatch(ctx, Event::BackHome);
        }
    }
}

/// The sessions of this run, newest first: how each ended, what the relay did with its help
/// request, and its log to play.
fn recent_sessions(
    ui: &mut egui::Ui,
    w: &Catalogue,
    recent: &[super::model::RecentSession],
    events: &mut Vec<Event>,
) {
    ui.heading(w.text("home-recent"));
    if recent.is_empty() {
        ui.label(w.text("home-no-recent"));
    }
    for r in recent {
        ui.group(|ui| {
            ui.strong(&r.code);
            if !r.peer.is_empty() {
                ui.label(&r.peer);
            }
            ui.label(&r.outcome);
            if let Some((id, words)) = &r.passed {
                ui.label(w.fmt(
                    "recent-passed",
                    &[
                        ("id", Value::from(*id)),
                        ("words", Value::from(words.clone())),
                    ],
                ));
            }
            if let Some(log) = &r.log {
                if ui.button(w.text("home-play")).clicked() {
                    events.push(Event::OpenLog(log.clone()));
                }
            }
        });
    }
}

/// The X11 window id of the console's window, if it is an X11 window.
fn x11_window(frame: &eframe::Frame) -> Option<u32> {
    use raw_window_handle::{HasWindowHandle, RawWindowHandle};
    match frame.window_handle().map(|h| h.as_raw()) {
        Ok(RawWindowHandle::Xlib(h)) => Some(h.window as u32),
        Ok(RawWindowHandle::Xcb(h)) => Some(h.window.get()),
        _ => None,
    }
}

/// Clicking the remote screen gives it the keyboard (and grabs it). Over the child window the
/// X server gives the click to [`super::pointer`]; egui sees clicks there only where there is no
/// child window (around a fitted picture, or without X11).
fn handle_focus(resp: &egui::Response, events: &mut Vec<Event>) {
    resp.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "Remote screen"));
    if resp.clicked() || resp.drag_started() {
        events.push(Event::SetGrab(true));
    }
}

impl eframe::App for ConsoleApp {
    fn ui(&mut self, root: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.show(root, Some(frame));
    }

    fn raw_input_hook(&mut self, ctx: &egui::Context, raw_input: &mut egui::RawInput) {
        self.route_keys(ctx, &mut raw_input.events);
    }

    /// Closing the window ends a running session first, so that the agent is told and the
    /// session log is sealed.
    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        let running = self
            .model
            .session
            .as_ref()
            .is_some_and(|s| s.ended.is_none());
        if let (true, Some(net)) = (running, &self.net) {
            net.send(Request::End);
            net.wait_session_end(std::time::Duration::from_secs(8));
        }
        self.grab = None;
        *self.presenter.lock().expect("presenter") = None;
    }
}

impl ConsoleApp {
    /// One frame of the console; `frame` is `None` in tests without a window.
    pub fn show(&mut self, root: &mut egui::Ui, frame: Option<&eframe::Frame>) {
        let ctx = &root.ctx().clone();
        if let Some(frame) = frame {
            self.ensure_grab(ctx, frame);
        }
        self.drain_network(ctx);
        if self.model.home.offer.is_some() {
            self.dispatch(
                ctx,
                Event::Tick {
                    now_unix_ms: now_unix_ms(),
                },
            );
        }
        if self.join_when_logged_in && self.model.screen == Screen::Home {
            self.join_when_logged_in = false;
            self.dispatch(ctx, Event::JoinSubmitted);
        }
        if self.model.screen != Screen::Session {
            self.place_viewer(ctx, None);
            if let Some(g) = &mut self.grab {
                g.set(false);
            }
        }
        match self.model.screen {
            Screen::Login => self.login_screen(root),
            Screen::Home => self.home_screen(root),
            Screen::Session => self.session_screen(root, frame),
            Screen::Player => self.player_screen(root),
        }
    }
}
