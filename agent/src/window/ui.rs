//! Drawing the agent's window with egui: it reads the [`WindowModel`] and the catalogue, and
//! gives back the [`Action`] a click asked for. Nothing here decides anything.
//!
//! The consent buttons sit in a row at the bottom left of the window, each
//! [`BUTTON_SIZE`]; Allow control is filled with [`ALLOW_CONTROL_FILL`], which nothing else in
//! the window uses, so a test driving the real window from outside (`xdotool`) finds it in the
//! X server's pixels. In the same way Request help, Send request and Send answer (one on each
//! screen) are filled with [`PRIMARY_FILL`], and the survey's five scores with [`SCORE_FILL`]
//! (the chosen one with [`SCORE_CHOSEN_FILL`]).
//!
//! Every string a peer supplied (names, the technician's description and software, reasons) is
//! drawn through [`crate::shown::fit`]: escaped, and clipped to [`NAME_CHARS`], [`CLAIM_CHARS`],
//! [`BAR_NAME_CHARS`] or [`REASON_CHARS`], so that it can neither pass for something else nor
//! push the window's own words and buttons away.

use std::time::Instant;

use egui::{Color32, Id, RichText, Ui, Vec2};
use protocol::control::{Joining, PeerInfo};
use protocol::peer::ConsentState;
use words::Catalogue;

use super::model::{
    minutes_seconds, seconds_left, Action, ChatBox, FilesShown, HelpForm, Screen, WindowModel,
};
use crate::desk::{COMMENT_CHARS, DESCRIPTION_CHARS, TICKET_CHARS};
use crate::files::{TransferShown, TransferState};
use crate::shown::fit;
use crate::status::{EndedWhy, Heard};

/// The fill of the Allow control button, and of nothing else in the window.
pub const ALLOW_CONTROL_FILL: Color32 = Color32::from_rgb(0x1a, 0x7f, 0x37);
/// The fill of End session.
pub const END_FILL: Color32 = Color32::from_rgb(0xb3, 0x26, 0x1e);
/// The fill of the one button on a screen that moves on with the desk: Request help, Send
/// request, Send answer.
pub const PRIMARY_FILL: Color32 = Color32::from_rgb(0x1f, 0x5f, 0xbf);
/// The fill of the survey's scores not chosen.
pub const SCORE_FILL: Color32 = Color32::from_rgb(0xf2, 0xc0, 0x4e);
/// The fill of the chosen score.
pub const SCORE_CHOSEN_FILL: Color32 = Color32::from_rgb(0xa8, 0x5d, 0x00);
/// The size of the consent buttons, and of the buttons that move on with the desk.
pub const BUTTON_SIZE: Vec2 = Vec2::new(170.0, 40.0);
/// The size of each of the survey's scores: five in a row fit the window.
pub const SCORE_SIZE: Vec2 = Vec2::new(106.0, 40.0);
/// The window's size, but while shared.
pub const FULL_SIZE: Vec2 = Vec2::new(620.0, 520.0);
/// The bar's size while the screen is shared.
pub const BAR_SIZE: Vec2 = Vec2::new(680.0, 52.0);
/// The bar's size with the chat open under it.
pub const BAR_CHAT_SIZE: Vec2 = Vec2::new(680.0, 340.0);
/// The chat's width beside the consent question.
pub const CHAT_WIDTH: f32 = 230.0;

/// Most characters of an account's name or organisation on the consent screen.
pub const NAME_CHARS: usize = 40;
/// Most characters of the technician's description or software on the consent screen.
pub const CLAIM_CHARS: usize = 60;
/// Most characters of an account's name, organisation or description in the bar, beside its
/// buttons.
pub const BAR_NAME_CHARS: usize = 16;
/// Most characters of a reason on the screen that says how it ended.
pub const REASON_CHARS: usize = 300;

/// How the bar tells the person who the technician is: by the relay's word for their account,
/// or, if they did not log in, by how the relay saw their connection.
pub fn who(peer: &PeerInfo, cat: &Catalogue) -> String {
    let short = |s: &str| fit(s, BAR_NAME_CHARS);
    match &peer.account {
        Some(a) => cat.fmt(
            "who-account",
            &[
                ("name", short(&a.name).into()),
                ("tier", a.tier.into()),
                ("organisation", short(&a.organisation).into()),
            ],
        ),
        None => cat.fmt(
            "who-unverified",
            &[("description", short(&peer.description).into())],
        ),
    }
}

fn white(text: String) -> RichText {
    RichText::new(text).color(Color32::WHITE).strong()
}

/// A button that moves on with the desk, filled with [`PRIMARY_FILL`].
fn primary(text: String) -> egui::Button<'static> {
    egui::Button::new(white(text)).fill(PRIMARY_FILL)
}

/// A screen that only waits: a spinner and what it waits for.
fn busy(ui: &mut Ui, words: String) -> Option<Action> {
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.add_space(40.0);
        ui.vertical_centered(|ui| {
            ui.spinner();
            ui.label(words);
        });
    });
    None
}

/// Draws the window's screen; returns what was clicked.
pub fn draw(ui: &mut Ui, model: &WindowModel, cat: &Catalogue, now: Instant) -> Option<Action> {
    if !matches!(
        model.screen(),
        Screen::Code {
            asking_help: true,
            ..
        }
    ) {
        // The next time the form opens, its description takes the keyboard again.
        ui.data_mut(|d| d.remove::<bool>(Id::unique(FORM_FOCUSED)));
    }
    match model.screen() {
        Screen::Connecting { relay } => busy(
            ui,
            cat.fmt("connecting", &[("relay", relay.as_str().into())]),
        ),
        Screen::Code {
            asking_help: true, ..
        } => help_form(ui, cat, model.draft()),
        Screen::Code {
            shown, expires_at, ..
        } => code(ui, model, cat, shown, *expires_at, now),
        Screen::Filing => busy(ui, cat.text("help-sending")),
        Screen::Queued {
            request,
            position,
            expected_wait_secs,
        } => queued(ui, cat, *request, *position, *expected_wait_secs),
        Screen::Consent {
            peer,
            recorded,
            verification,
            joining,
            deadline,
        } => consent(
            ui,
            cat,
            peer,
            *recorded,
            verification.as_deref(),
            joining.as_ref(),
            *deadline,
            now,
            model.chat(),
        ),
        Screen::Starting => busy(ui, cat.text("consent-answered")),
        Screen::Sharing {
            peer,
            control,
            others,
            ending,
            heard,
        } => {
            let files = model.files();
            let on_files = files.busy().then(|| files_panel(ui, cat, files)).flatten();
            let chatted = if model.chat().open {
                egui::Panel::bottom("chat")
                    .exact_size(BAR_CHAT_SIZE.y - BAR_SIZE.y)
                    .show(ui, |ui| chat(ui, cat, model.chat(), false))
                    .inner
            } else {
                None
            };
            let shared = Shared {
                peer,
                control: *control,
                others,
                ending: *ending,
                heard: *heard,
                clipboard: model.clipboard(),
                browse: model.browse(),
                browsed: files.browsed.as_ref(),
                stopped: files.stopped.as_ref(),
                chat: model.chat(),
            };
            bar(ui, cat, shared).or(chatted).or(on_files)
        }
        Screen::Survey { score, comment, .. } => survey(ui, cat, *score, comment),
        Screen::SendingAnswer => busy(ui, cat.text("survey-sending")),
        Screen::Ended { why } => ended(ui, cat, why),
    }
}

fn code(
    ui: &mut Ui,
    model: &WindowModel,
    cat: &Catalogue,
    shown: &str,
    expires_at: Instant,
    now: Instant,
) -> Option<Action> {
    let mut clicked = None;
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.heading(cat.text("code-heading"));
        ui.add_space(16.0);
        ui.vertical_centered(|ui| {
            ui.label(RichText::new(shown).monospace().size(40.0).strong());
            ui.add_space(8.0);
            if model.copied(now) {
                ui.label(cat.text("code-copied"));
            } else if ui.button(cat.text("code-copy")).clicked() {
                clicked = Some(Action::CopyCode);
            }
        });
        ui.add_space(16.0);
        ui.label(cat.text("code-explain"));
        ui.add_space(8.0);
        let left = seconds_left(expires_at, now);
        if left == 0 {
            ui.colored_label(ui.visuals().warn_fg_color, cat.text("code-expired"));
        } else {
            ui.label(cat.fmt("code-valid", &[("time", minutes_seconds(left).into())]));
            ui.add_space(8.0);
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(cat.text("code-waiting"));
            });
        }
        ui.add_space(16.0);
        ui.separator();
        ui.add_space(8.0);
        ui.label(cat.text("code-or-request"));
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            let request = primary(cat.text("code-request-help")).min_size(BUTTON_SIZE);
            if ui.add(request).clicked() {
                clicked = Some(Action::RequestHelp);
            }
            let cancel = egui::Button::new(cat.text("code-cancel")).min_size(BUTTON_SIZE);
            if ui.add(cancel).clicked() {
                clicked = Some(Action::Cancel);
            }
        });
    });
    clicked
}

/// Where egui keeps whether the open help form has put the keyboard in its description.
const FORM_FOCUSED: &str = "help-form-focused";

/// A row of buttons at the bottom of the window, apart from what scrolls above it.
fn bottom_row(ui: &mut Ui, id: &'static str, add: impl FnOnce(&mut Ui)) {
    egui::Panel::bottom(id)
        .resizable(false)
        .show_separator_line(true)
        .show(ui, |ui| {
            ui.add_space(12.0);
            ui.horizontal(add);
            ui.add_space(12.0);
        });
}

/// The bottom row of a screen that moves on with the desk: its primary button (greyed until
/// `ready`) and, beside it, the way out.
fn moving_on(
    ui: &mut Ui,
    cat: &Catalogue,
    id: &'static str,
    (key, ready, action): (&str, bool, Action),
    (other_key, other): (&str, Action),
) -> Option<Action> {
    let mut clicked = None;
    bottom_row(ui, id, |ui| {
        let button = primary(cat.text(key)).min_size(BUTTON_SIZE);
        if ui.add_enabled(ready, button).clicked() {
            clicked = Some(action);
        }
        let button = egui::Button::new(cat.text(other_key)).min_size(BUTTON_SIZE);
        if ui.add(button).clicked() {
            clicked = Some(other);
        }
    });
    clicked
}

fn help_form(ui: &mut Ui, cat: &Catalogue, form: &HelpForm) -> Option<Action> {
    let ready = form.asked().is_some();
    let mut clicked = moving_on(
        ui,
        cat,
        "help-buttons",
        ("help-send", ready, Action::SendRequest),
        ("help-back", Action::Back),
    );
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.heading(cat.text("help-heading"));
        ui.add_space(8.0);
        ui.label(cat.text("help-explain"));
        ui.add_space(12.0);
        let mut edited = form.clone();
        let label = ui.label(RichText::new(cat.text("help-description")).strong());
        let typed = ui.add(
            egui::TextEdit::multiline(&mut edited.description)
                .id(Id::unique("help-description"))
                .desired_rows(4)
                .desired_width(f32::INFINITY)
                .char_limit(DESCRIPTION_CHARS)
                .hint_text(cat.text("help-description-hint")),
        );
        let typed = typed.labelled_by(label.id);
        if !ui.data(|d| {
            d.get_temp::<bool>(Id::unique(FORM_FOCUSED))
                .unwrap_or(false)
        }) {
            typed.request_focus();
            ui.data_mut(|d| d.insert_temp(Id::unique(FORM_FOCUSED), true));
        }
        let mut changed = typed.changed();
        ui.add_space(12.0);
        let label = ui.label(RichText::new(cat.text("help-ticket")).strong());
        let typed = ui
            .add(
                egui::TextEdit::singleline(&mut edited.ticket)
                    .id(Id::unique("help-ticket"))
                    .char_limit(TICKET_CHARS),
            )
            .labelled_by(label.id);
        changed |= typed.changed();
        if changed {
            clicked = Some(Action::EditForm(edited));
        }
        ui.add_space(12.0);
        ui.label(cat.text("help-code-stops"));
        if !ready {
            ui.add_space(4.0);
            ui.label(RichText::new(cat.text("help-describe-first")).weak());
        }
    });
    clicked
}

fn survey(ui: &mut Ui, cat: &Catalogue, score: Option<u8>, comment: &str) -> Option<Action> {
    let mut clicked = moving_on(
        ui,
        cat,
        "survey-buttons",
        ("survey-send", score.is_some(), Action::SendAnswer),
        ("survey-skip", Action::SkipSurvey),
    );
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.heading(cat.text("survey-heading"));
        ui.add_space(12.0);
        ui.label(
            RichText::new(cat.text("survey-question"))
                .size(20.0)
                .strong(),
        );
        ui.add_space(12.0);
        ui.horizontal(|ui| {
            for n in 1..=5u8 {
                let label = cat.text(&format!("survey-score-{n}"));
                let button = if score == Some(n) {
                    egui::Button::new(white(label)).fill(SCORE_CHOSEN_FILL)
                } else {
                    egui::Button::new(RichText::new(label).color(Color32::BLACK).strong())
                        .fill(SCORE_FILL)
                };
                if ui.add(button.min_size(SCORE_SIZE)).clicked() {
                    clicked = Some(Action::Score(n));
                }
            }
        });
        ui.add_space(16.0);
        let label = ui.label(RichText::new(cat.text("survey-comment")).strong());
        let mut text = comment.to_string();
        let typed = ui
            .add(
                egui::TextEdit::multiline(&mut text)
                    .id(Id::unique("survey-comment"))
                    .desired_rows(3)
                    .desired_width(f32::INFINITY)
                    .char_limit(COMMENT_CHARS),
            )
            .labelled_by(label.id);
        if typed.changed() {
            clicked = Some(Action::Comment(text));
        }
        if score.is_none() {
            ui.add_space(8.0);
            ui.label(RichText::new(cat.text("survey-choose-first")).weak());
        }
    });
    clicked
}

fn queued(
    ui: &mut Ui,
    cat: &Catalogue,
    request: u64,
    position: u32,
    expected_wait_secs: Option<u32>,
) -> Option<Action> {
    let mut clicked = None;
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.heading(cat.text("queue-heading"));
        ui.add_space(16.0);
        ui.vertical_centered(|ui| {
            ui.label(
                RichText::new(cat.fmt("queue-position", &[("position", position.into())]))
                    .size(28.0)
                    .strong(),
            );
            ui.label(cat.fmt("queue-request", &[("request", request.into())]));
            if let Some(secs) = expected_wait_secs {
                let minutes = secs.div_ceil(60).max(1);
                ui.label(cat.fmt("queue-expected", &[("minutes", minutes.into())]));
            }
        });
        ui.add_space(16.0);
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(cat.text("queue-waiting"));
        });
        ui.add_space(16.0);
        if ui.button(cat.text("queue-cancel")).clicked() {
            clicked = Some(Action::Cancel);
        }
    });
    clicked
}

#[allow(clippy::too_many_arguments)]
fn consent(
    ui: &mut Ui,
    cat: &Catalogue,
    peer: &PeerInfo,
    recorded: bool,
    verification: Option<&str>,
    joining: Option<&Joining>,
    deadline: Instant,
    now: Instant,
    chat_box: &ChatBox,
) -> Option<Action> {
    let mut clicked = None;
    bottom_row(ui, "consent-buttons", |ui| {
        let buttons = [
            (
                "consent-allow-control",
                ConsentState::Control,
                Some(ALLOW_CONTROL_FILL),
            ),
            ("consent-view-only", ConsentState::ViewOnly, None),
            ("consent-deny", ConsentState::Denied, None),
        ];
        for (key, state, fill) in buttons {
            let label = cat.text(key);
            let button = match fill {
                Some(f) => egui::Button::new(white(label)).fill(f),
                None => egui::Button::new(RichText::new(label).strong()),
            };
            if ui.add(button.min_size(BUTTON_SIZE)).clicked() {
                clicked = Some(Action::Answer(state));
            }
        }
    });
    // The chat beside the question, above the answers: the person may ask who is calling
    // first.
    let chatted = egui::Panel::right("chat")
        .exact_size(CHAT_WIDTH)
        .show(ui, |ui| chat(ui, cat, chat_box, true))
        .inner;
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.heading(cat.text(match joining {
            None => "consent-heading",
            Some(_) => "consent-heading-another",
        }));
        match joining {
            Some(Joining::Escalation { by, note }) => {
                ui.label(cat.fmt("consent-escalated", &[("by", fit(by, NAME_CHARS).into())]));
                if !note.is_empty() {
                    ui.label(RichText::new(fit(note, REASON_CHARS)).italics());
                }
                ui.label(cat.fmt(
                    "consent-escalated-control",
                    &[("by", fit(by, NAME_CHARS).into())],
                ));
            }
            Some(Joining::Monitor) => {
                ui.label(cat.text("consent-monitor"));
            }
            None => {}
        }
        ui.add_space(10.0);
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            match &peer.account {
                Some(a) => {
                    ui.label(cat.text("consent-vouched"));
                    ui.label(
                        RichText::new(cat.fmt(
                            "consent-account",
                            &[
                                ("name", fit(&a.name, NAME_CHARS).into()),
                                ("tier", a.tier.into()),
                                ("organisation", fit(&a.organisation, NAME_CHARS).into()),
                            ],
                        ))
                        .size(20.0)
                        .strong(),
                    );
                }
                None => {
                    ui.colored_label(ui.visuals().warn_fg_color, cat.text("consent-no-account"));
                }
            }
        });
        ui.add_space(4.0);
        // What the technician's own program says: apart, small, and marked as unchecked.
        ui.label(
            RichText::new(cat.fmt(
                "consent-claims",
                &[
                    ("description", fit(&peer.description, CLAIM_CHARS).into()),
                    ("software", fit(&peer.software, CLAIM_CHARS).into()),
                ],
            ))
            .small()
            .weak(),
        );
        if let Some(v) = verification {
            ui.add_space(10.0);
            ui.label(cat.text("consent-verification"));
            ui.label(RichText::new(v).monospace().size(32.0).strong());
        }
        ui.add_space(10.0);
        ui.label(RichText::new(cat.text("consent-abilities")).strong());
        ui.label(format!("• {}", cat.text("consent-can-control")));
        ui.label(format!("• {}", cat.text("consent-can-view")));
        ui.add_space(10.0);
        ui.label(cat.text(if recorded {
            "consent-recorded"
        } else {
            "consent-not-recorded"
        }));
        ui.label(cat.text("consent-you-can-stop"));
        ui.add_space(10.0);
        let left = seconds_left(deadline, now);
        ui.label(RichText::new(cat.fmt("consent-countdown", &[("seconds", left.into())])).strong());
    });
    clicked.or(chatted)
}

/// What the bar shows while the screen is shared.
struct Shared<'a> {
    peer: &'a PeerInfo,
    control: bool,
    others: &'a [String],
    ending: bool,
    heard: Heard,
    /// The clipboard's switch, where it can be shared.
    clipboard: Option<bool>,
    /// The switch of browsing this machine's folders.
    browse: bool,
    /// The last folder a technician looked into: who, and which.
    browsed: Option<&'a (String, String)>,
    /// The last file stopped on its way.
    stopped: Option<&'a TransferShown>,
    chat: &'a ChatBox,
}

/// The chat's button: `Chat`, or `Chat (2)` in colour while messages wait.
fn chat_button(ui: &mut Ui, cat: &Catalogue, chat: &ChatBox) -> bool {
    let label = if chat.unread > 0 {
        RichText::new(cat.fmt("chat-unread", &[("n", chat.unread.into())]))
            .color(PRIMARY_FILL)
            .strong()
    } else {
        RichText::new(cat.text("chat-button"))
    };
    ui.selectable_label(chat.open, label).clicked()
}

/// The chat: the messages (newest at the bottom), a field and Send. `beside`: next to the
/// consent question, where it starts with a word on what it is for.
fn chat(ui: &mut Ui, cat: &Catalogue, chat: &ChatBox, beside: bool) -> Option<Action> {
    let mut clicked = None;
    ui.add_space(6.0);
    ui.strong(cat.text("chat-heading"));
    if beside {
        ui.label(RichText::new(cat.text("chat-ask-first")).small());
    }
    let field_height = 70.0;
    egui::ScrollArea::vertical()
        .stick_to_bottom(true)
        .auto_shrink([false, false])
        .max_height((ui.available_height() - field_height).max(30.0))
        .show(ui, |ui| {
            for line in &chat.lines {
                let who = match &line.from {
                    Some(name) => fit(name, BAR_NAME_CHARS),
                    None => cat.text("chat-you"),
                };
                let at = line
                    .at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                let time = words::local_clock(at);
                ui.label(RichText::new(format!("{time} {who}")).small().strong());
                ui.label(fit(&line.text, protocol::chat::MAX_CHAT_BYTES));
            }
        });
    let mut draft = chat.draft.clone();
    let label = ui.label(cat.text("chat-message"));
    let field = ui.add(
        egui::TextEdit::singleline(&mut draft)
            .desired_width(f32::INFINITY)
            .hint_text(cat.text("chat-placeholder")),
    );
    let field = field.labelled_by(label.id);
    if draft != chat.draft {
        clicked = Some(Action::ChatDraft(draft.clone()));
    }
    let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    let send = ui
        .add_enabled(
            !draft.trim().is_empty(),
            egui::Button::new(cat.text("chat-send")),
        )
        .clicked();
    if (send || enter) && !chat.draft.trim().is_empty() {
        clicked = Some(Action::SendChat);
    }
    clicked
}

fn bar(ui: &mut Ui, cat: &Catalogue, shared: Shared<'_>) -> Option<Action> {
    let Shared {
        peer,
        control,
        others,
        ending,
        heard,
        clipboard,
        browse,
        browsed,
        stopped,
        chat,
    } = shared;
    let key = match (heard, control) {
        (Heard::Reconnecting, _) => "bar-reconnecting",
        (Heard::TechnicianQuiet, _) => "bar-quiet",
        (Heard::Fine | Heard::Reconnected, true) => "bar-controlling",
        (Heard::Fine | Heard::Reconnected, false) => "bar-viewing",
    };
    let status = cat.fmt(key, &[("who", who(peer, cat).into())]);
    // Everything else the bar has to say shares one line, newest last, so the bar keeps its
    // height however much there is; the whole of each is shown on hovering it.
    let mut notes = Vec::new();
    if !others.is_empty() {
        let names: Vec<String> = others.iter().map(|n| fit(n, NAME_CHARS)).collect();
        notes.push(cat.fmt("bar-also", &[("names", names.join(", ").into())]));
    }
    if heard == Heard::Reconnected {
        notes.push(cat.text("bar-reconnected"));
    }
    if let Some((who, path)) = browsed {
        notes.push(cat.fmt(
            "bar-browsed",
            &[
                ("who", fit(who, NAME_CHARS).into()),
                ("path", fit(path, CLAIM_CHARS).into()),
            ],
        ));
    }
    if let Some(t) = stopped {
        notes.push(transfer_words(t, cat));
    }
    let mut clicked = None;
    egui::CentralPanel::default_margins().show(ui, |ui| {
        // The buttons first, from the right; what is said takes the width they leave.
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let end = egui::Button::new(white(cat.text("bar-end"))).fill(END_FILL);
            if ui.add_enabled(!ending, end).clicked() {
                clicked = Some(Action::EndSession);
            }
            if control && ui.button(cat.text("bar-stop-control")).clicked() {
                clicked = Some(Action::StopControl);
            }
            if chat_button(ui, cat, chat) {
                clicked = Some(Action::ToggleChat);
            }
            if let (true, Some(on)) = (control, clipboard) {
                let mut share = on;
                if ui
                    .checkbox(&mut share, cat.text("bar-clipboard"))
                    .on_hover_text(cat.text("bar-clipboard-tip"))
                    .changed()
                {
                    clicked = Some(Action::ShareClipboard(share));
                }
            }
            if control {
                let mut allow = browse;
                if ui
                    .checkbox(&mut allow, cat.text("bar-browse"))
                    .on_hover_text(cat.text("bar-browse-tip"))
                    .changed()
                {
                    clicked = Some(Action::AllowBrowse(allow));
                }
            }
            ui.with_layout(egui::Layout::top_down(egui::Align::Min), |ui| {
                ui.add(egui::Label::new(RichText::new(&status).strong()).truncate())
                    .on_hover_text(&status);
                if !notes.is_empty() {
                    let line = notes.join(" · ");
                    ui.add(egui::Label::new(RichText::new(line).small()).truncate())
                        .on_hover_text(notes.join("\n"));
                }
            });
        });
    });
    clicked
}

/// Files offered and moving, above the bar: the offer asked now (who, what, how big, the folder
/// to save it in, Save files and Decline), and a row for each file with how far it has got.
fn files_panel(ui: &mut Ui, cat: &Catalogue, files: &FilesShown) -> Option<Action> {
    use protocol::transfer::bytes_words;
    let mut clicked = None;
    egui::Panel::top("files").show(ui, |ui| {
        if let Some(q) = &files.question {
            ui.label(
                RichText::new(cat.fmt(
                    "files-offer",
                    &[
                        ("who", fit(&q.who, NAME_CHARS).into()),
                        ("what", fit(&q.summary, CLAIM_CHARS).into()),
                        ("count", (q.count as u64).into()),
                        ("size", bytes_words(q.total).into()),
                    ],
                ))
                .strong(),
            );
            ui.horizontal(|ui| {
                ui.label(cat.text("files-save-in"));
                let mut folder = files.folder.clone();
                if ui.text_edit_singleline(&mut folder).changed() {
                    clicked = Some(Action::EditFolder(folder));
                }
            });
            ui.horizontal(|ui| {
                if ui.add(primary(cat.text("files-save"))).clicked() {
                    clicked = Some(Action::SaveFiles(files.folder.clone().into()));
                }
                if ui.button(cat.text("files-decline")).clicked() {
                    clicked = Some(Action::DeclineFiles);
                }
            });
            ui.separator();
        }
        for t in &files.transfers {
            ui.label(transfer_words(t, cat));
            if t.state == TransferState::Going {
                ui.horizontal(|ui| {
                    if ui.button(cat.text("files-stop")).clicked() {
                        clicked = Some(Action::CancelTransfer(t.key));
                    }
                    if t.size > 0 {
                        let done = t.done as f32 / t.size as f32;
                        ui.add(egui::ProgressBar::new(done).show_percentage());
                    }
                });
            }
        }
    });
    clicked
}

/// How one file stands, in words.
pub fn transfer_words(t: &TransferShown, cat: &Catalogue) -> String {
    use protocol::transfer::bytes_words;
    let name = fit(&t.name, CLAIM_CHARS);
    let who = fit(&t.who, NAME_CHARS);
    match &t.state {
        TransferState::Going => {
            let key = if t.incoming {
                "files-receiving"
            } else {
                "files-sending"
            };
            let mut words = cat.fmt(
                key,
                &[
                    ("name", name.into()),
                    ("who", who.into()),
                    ("done", bytes_words(t.done).into()),
                    ("size", bytes_words(t.size).into()),
                ],
            );
            if t.rate > 0 {
                let left = t.eta_secs.map(link::files::time_words).unwrap_or_default();
                words.push_str(" · ");
                words.push_str(&cat.fmt(
                    "files-rate",
                    &[("rate", bytes_words(t.rate).into()), ("left", left.into())],
                ));
            }
            words
        }
        TransferState::Done(place) if t.incoming => cat.fmt(
            "files-received",
            &[
                ("name", name.into()),
                ("place", fit(place, REASON_CHARS).into()),
            ],
        ),
        TransferState::Done(_) => {
            cat.fmt("files-sent", &[("name", name.into()), ("who", who.into())])
        }
        TransferState::Failed(why) => cat.fmt(
            "files-failed",
            &[
                ("name", name.into()),
                ("why", fit(why, REASON_CHARS).into()),
            ],
        ),
        TransferState::Cancelled { by_person } => {
            let key = match (by_person, t.incoming) {
                (true, true) => "files-stopped-by-you-in",
                (true, false) => "files-stopped-by-you-out",
                (false, true) => "files-stopped-by-them-in",
                (false, false) => "files-stopped-by-them-out",
            };
            cat.fmt(key, &[("name", name.into()), ("who", who.into())])
        }
        TransferState::Interrupted => {
            let key = if t.incoming {
                "files-interrupted-in"
            } else {
                "files-interrupted-out"
            };
            cat.fmt(key, &[("name", name.into()), ("who", who.into())])
        }
    }
}

/// The words for why it ended; the technician's and the relay's own words escaped and clipped.
pub fn ended_words(why: &EndedWhy, cat: &Catalogue) -> String {
    let with = |key: &str, why: &str| cat.fmt(key, &[("why", fit(why, REASON_CHARS).into())]);
    // The agent's own words, which may quote the relay's: longer, still bounded.
    let failed = |why: &str| {
        cat.fmt(
            "ended-failed",
            &[("why", fit(why, 4 * REASON_CHARS).into())],
        )
    };
    match why {
        EndedWhy::UserEnded => cat.text("ended-you"),
        EndedWhy::Denied => cat.text("ended-denied"),
        EndedWhy::TimedOut => cat.text("ended-timeout"),
        EndedWhy::TechnicianEnded => cat.text("ended-technician"),
        EndedWhy::TechnicianLeft(w) => with("ended-technician-left", w),
        EndedWhy::SourceFinished => cat.text("ended-source-finished"),
        EndedWhy::Error(w) => with("ended-error", w),
        EndedWhy::Cancelled => cat.text("ended-cancelled"),
        EndedWhy::CodeMismatch => cat.text("ended-code-mismatch"),
        EndedWhy::Failed(w) => failed(w),
        EndedWhy::RequestClosed { thanked: false } => cat.text("ended-request-closed"),
        EndedWhy::RequestClosed { thanked: true } => cat.text("ended-request-thanks"),
    }
}

fn ended(ui: &mut Ui, cat: &Catalogue, why: &EndedWhy) -> Option<Action> {
    let mut clicked = None;
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.heading(cat.text(match why {
            EndedWhy::RequestClosed { .. } => "ended-request-heading",
            _ => "ended-heading",
        }));
        ui.add_space(12.0);
        ui.label(ended_words(why, cat));
        ui.add_space(20.0);
        if ui
            .add(egui::Button::new(cat.text("ended-close")).min_size(BUTTON_SIZE))
            .clicked()
        {
            clicked = Some(Action::Close);
        }
    });
    clicked
}
