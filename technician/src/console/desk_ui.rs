//! The egui code of the console's support-desk parts: the request routing offers (with the
//! time left to answer), the presence switch, the queue's entries with their marks (overdue,
//! offered, reserved, the note of who passed it on), the leads' dashboard, and the help
//! request's bar in a session with the forms of its steps. Like [`super::ui`] it only reads
//! the model (the forms' fields excepted, which it edits in place) and turns clicks into
//! [`Event`]s.

use egui::{Color32, RichText};
use protocol::control::{Handoff, Presence, QueueEntry};
use protocol::text::printable;
use words::{Catalogue, Value};

use super::desk::{
    Answer, Dashboard, DeskForm, DeskKind, EscalateTo, FormProblem, Offer, SessionRequest, Span,
};
use super::model::Event;

const RED: Color32 = Color32::from_rgb(220, 80, 60);
const GREEN: Color32 = Color32::from_rgb(60, 170, 90);
const AMBER: Color32 = Color32::from_rgb(220, 160, 40);
const OFFER_FILL: Color32 = Color32::from_rgb(40, 60, 90);

/// A length of time in words: `42 s`, `4 min 12 s`, `1 h 05 min`.
pub fn span_words(w: &Catalogue, span: Span) -> String {
    let Span {
        hours,
        minutes,
        seconds,
    } = span;
    match (hours, minutes) {
        (0, 0) => w.fmt("span-seconds", &[("seconds", Value::from(seconds))]),
        (0, _) => w.fmt(
            "span-minutes",
            &[
                ("minutes", Value::from(minutes)),
                ("seconds", Value::from(format!("{seconds:02}"))),
            ],
        ),
        _ => w.fmt(
            "span-hours",
            &[
                ("hours", Value::from(hours)),
                ("minutes", Value::from(format!("{minutes:02}"))),
            ],
        ),
    }
}

/// Who passed a request on, how, and their note.
fn handoff_words(w: &Catalogue, h: &Handoff) -> String {
    let by = Value::from(printable(&h.by).into_owned());
    let key = match (h.held, h.note.trim().is_empty()) {
        (true, true) => "handoff-held",
        (true, false) => "handoff-held-note",
        (false, true) => "handoff-escalated",
        (false, false) => "handoff-escalated-note",
    };
    w.fmt(
        key,
        &[
            ("by", by),
            ("note", Value::from(printable(&h.note).into_owned())),
        ],
    )
}

/// What the user wrote and where: the description, then machine, OS and ticket.
fn filing(ui: &mut egui::Ui, entry: &QueueEntry) {
    let f = &entry.filing;
    ui.label(printable(&f.description));
    ui.label(
        RichText::new(format!(
            "{} · {}{}",
            printable(&f.machine),
            printable(&f.os),
            f.ticket
                .as_deref()
                .map(|t| format!(" · {}", printable(t)))
                .unwrap_or_default()
        ))
        .small(),
    );
}

/// The offer, prominent: the request, the time left, Accept and Decline.
pub fn offer(
    ui: &mut egui::Ui,
    w: &Catalogue,
    offer: &Offer,
    now_ms: u64,
    events: &mut Vec<Event>,
) {
    egui::Frame::group(ui.style())
        .fill(OFFER_FILL)
        .stroke(egui::Stroke::new(2.0, AMBER))
        .inner_margin(12.0)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            let r = &offer.request;
            ui.heading(w.fmt("offer-title", &[("id", Value::from(r.id))]));
            filing(ui, r);
            if let Some(h) = &r.handoff {
                ui.label(RichText::new(handoff_words(w, h)).italics());
            }
            ui.horizontal(|ui| {
                let accept = egui::Button::new(RichText::new(w.text("offer-accept")).heading())
                    .fill(Color32::from_rgb(40, 110, 60));
                if ui.add(accept).clicked() {
                    events.push(Event::AcceptOffer);
                }
                if ui.button(w.text("offer-decline")).clicked() {
                    events.push(Event::DeclineOffer);
                }
                if let Some(secs) = offer.secs_left(now_ms) {
                    ui.label(
                        RichText::new(w.fmt("offer-time-left", &[("seconds", Value::from(secs))]))
                            .strong()
                            .color(AMBER),
                    );
                }
            });
        });
}

/// Available or Away, as the desk knows this technician.
pub fn presence_switch(ui: &mut egui::Ui, w: &Catalogue, away: bool, events: &mut Vec<Event>) {
    ui.horizontal(|ui| {
        ui.label(w.text("presence-label"));
        if ui
            .selectable_label(!away, w.text("presence-available"))
            .on_hover_text(w.text("presence-tip"))
            .clicked()
        {
            events.push(Event::SetAway(false));
        }
        if ui
            .selectable_label(away, w.text("presence-away"))
            .on_hover_text(w.text("presence-tip"))
            .clicked()
        {
            events.push(Event::SetAway(true));
        }
    });
}

/// One waiting request of the queue, with its marks and Take.
pub fn queue_entry(
    ui: &mut egui::Ui,
    w: &Catalogue,
    r: &QueueEntry,
    me: &str,
    now_ms: u64,
    events: &mut Vec<Event>,
) {
    ui.group(|ui| {
        ui.set_width(ui.available_width());
        ui.horizontal_wrapped(|ui| {
            ui.strong(format!("#{}", r.id));
            ui.label(w.fmt(
                "home-queue-waiting",
                &[(
                    "minutes",
                    Value::from(now_ms.saturating_sub(r.filed_unix_ms) / 60_000),
                )],
            ));
            if r.overdue {
                ui.label(RichText::new(w.text("queue-overdue")).strong().color(RED))
                    .on_hover_text(w.text("queue-overdue-tip"));
            }
            let mark = |key_me: &str, key_other: &str, name: &str| {
                if name == me {
                    w.text(key_me)
                } else {
                    w.fmt(
                        key_other,
                        &[("name", Value::from(printable(name).into_owned()))],
                    )
                }
            };
            if let Some(to) = &r.offered_to {
                ui.label(
                    RichText::new(mark("queue-offered-you", "queue-offered", to)).color(AMBER),
                );
            }
            if let Some(to) = &r.reserved_for {
                ui.label(RichText::new(mark("queue-reserved-you", "queue-reserved", to)).strong());
            }
        });
        filing(ui, r);
        if let Some(h) = &r.handoff {
            ui.label(RichText::new(handoff_words(w, h)).italics());
        }
        if r.connected {
            if ui.button(w.text("home-queue-take")).clicked() {
                events.push(Event::TakeSubmitted(Some(r.id)));
            }
        } else {
            ui.label(RichText::new(w.text("home-queue-away")).weak());
        }
    });
}

/// The leads' dashboard: each tier's queue (waiting, oldest wait as it grows, overdue), then
/// the technicians by presence.
pub fn dashboard(
    ui: &mut egui::Ui,
    w: &Catalogue,
    d: &Dashboard,
    now_ms: u64,
    events: &mut Vec<Event>,
) {
    ui.heading(w.text("dash-title"));
    egui::Grid::new("dashboard-tiers")
        .striped(true)
        .spacing([24.0, 6.0])
        .show(ui, |ui| {
            for key in ["dash-tier", "dash-waiting", "dash-oldest", "dash-overdue"] {
                ui.strong(w.text(key));
            }
            ui.end_row();
            for t in &d.tiers {
                ui.label(w.fmt("dash-tier-n", &[("tier", Value::from(t.tier))]));
                ui.label(t.waiting.to_string());
                match t.oldest_queued_unix_ms {
                    Some(since) => ui.label(span_words(w, Span::between(since, now_ms))),
                    None => ui.label(w.text("dash-none")),
                };
                if t.overdue > 0 {
                    ui.label(RichText::new(t.overdue.to_string()).strong().color(RED));
                } else {
                    ui.label("0");
                }
                ui.end_row();
            }
        });
    ui.add_space(8.0);
    ui.strong(w.text("dash-technicians"));
    let groups = d.by_presence();
    if groups.is_empty() {
        ui.label(w.text("dash-no-technicians"));
    }
    for (presence, who) in groups {
        let (key, colour) = match presence {
            Presence::Available => ("presence-available", GREEN),
            Presence::Busy => ("presence-busy", AMBER),
            Presence::Away => ("presence-away", Color32::GRAY),
            Presence::Offline => ("presence-offline", Color32::DARK_GRAY),
        };
        ui.horizontal_wrapped(|ui| {
            ui.label(
                RichText::new(w.fmt(
                    "dash-presence-count",
                    &[
                        ("presence", Value::from(w.text(key))),
                        ("count", Value::from(who.len())),
                    ],
                ))
                .strong()
                .color(colour),
            );
            let names: Vec<String> = who
                .iter()
                .map(|t| {
                    w.fmt(
                        "dash-technician",
                        &[
                            ("name", Value::from(printable(&t.name).into_owned())),
                            ("tier", Value::from(t.tier)),
                            ("sessions", Value::from(t.sessions)),
                        ],
                    )
                })
                .collect();
            ui.label(names.join(", "));
        });
    }
    ui.add_space(8.0);
    ui.strong(w.text("dash-sessions"));
    if d.sessions.is_empty() {
        ui.label(w.text("dash-no-sessions"));
    }
    for s in &d.sessions {
        ui.horizontal_wrapped(|ui| {
            let what = match s.request {
                Some(id) => w.fmt(
                    "dash-session-request",
                    &[
                        ("name", Value::from(printable(&s.technician).into_owned())),
                        ("tier", Value::from(s.tier)),
                        ("id", Value::from(id)),
                    ],
                ),
                None => w.fmt(
                    "dash-session",
                    &[
                        ("name", Value::from(printable(&s.technician).into_owned())),
                        ("tier", Value::from(s.tier)),
                    ],
                ),
            };
            ui.label(what);
            ui.label(
                RichText::new(span_words(w, Span::between(s.started_unix_ms, now_ms))).small(),
            );
            if ui.button(w.text("dash-monitor")).clicked() {
                events.push(Event::MonitorSubmitted(s.session.clone()));
            }
        });
    }
}

/// The technicians of a session with several: who is there, who holds control, and the
/// buttons this technician may use (give control to another the user allowed it, or take it
/// over as a lead monitoring).
pub fn participants(
    ui: &mut egui::Ui,
    w: &Catalogue,
    s: &crate::console::model::SessionView,
    events: &mut Vec<Event>,
) {
    let ended = s.ended.is_some();
    ui.horizontal_wrapped(|ui| {
        ui.strong(w.text("session-technicians"));
        for p in &s.participants {
            let key = match (p.you, p.controls) {
                (true, true) => "session-you-control",
                (true, false) => "session-you-observe",
                (false, true) => "session-other-controls",
                (false, false) => "session-other-observes",
            };
            let words = w.fmt(
                key,
                &[
                    ("name", Value::from(printable(&p.name).into_owned())),
                    ("tier", Value::from(p.tier)),
                ],
            );
            if p.controls {
                ui.label(RichText::new(words).strong().color(GREEN));
            } else {
                ui.label(words);
            }
            if !p.you && p.may_control && !p.controls && s.holds_control() && !ended {
                let label = w.fmt(
                    "session-hand-over",
                    &[("name", Value::from(printable(&p.name).into_owned()))],
                );
                if ui.button(label).clicked() {
                    events.push(Event::HandOver(p.name.clone()));
                }
            }
            ui.add_space(12.0);
        }
        if s.may_take_over() && !ended && ui.button(w.text("session-take-over")).clicked() {
            events.push(Event::TakeOver);
        }
    });
}

/// The help request of a session: what the user asked, the note of who passed it on, the
/// relay's last answer, and (while the session runs and the request is still this
/// technician's) the four steps and the open step's form.
pub fn session_request(
    ui: &mut egui::Ui,
    w: &Catalogue,
    r: &mut SessionRequest,
    ended: bool,
    events: &mut Vec<Event>,
) {
    let e = &r.entry;
    ui.horizontal_wrapped(|ui| {
        ui.strong(w.fmt("desk-request", &[("id", Value::from(e.id))]));
        ui.label(printable(&e.filing.description));
        ui.label(
            RichText::new(format!(
                "{} · {}",
                printable(&e.filing.machine),
                printable(&e.filing.os)
            ))
            .small(),
        );
    });
    if let Some(h) = &e.handoff {
        ui.label(RichText::new(handoff_words(w, h)).italics());
    }
    match (&r.answer, &r.asked) {
        (_, Some(_)) => {
            ui.label(w.text("desk-asking"));
        }
        (Some(Answer::Passed(words)), _) => {
            ui.colored_label(
                GREEN,
                w.fmt("desk-passed", &[("words", Value::from(words.clone()))]),
            );
        }
        (Some(Answer::Refused(why)), _) => {
            ui.colored_label(
                RED,
                w.fmt("desk-refused", &[("why", Value::from(why.clone()))]),
            );
        }
        (None, None) => {}
    }
    if ended || !r.may_ask() && r.form.is_none() {
        return;
    }
    ui.horizontal(|ui| {
        ui.add_enabled_ui(r.may_ask(), |ui| {
            for (kind, key) in [
                (DeskKind::Escalate, "desk-escalate"),
                (DeskKind::Hold, "desk-hold"),
                (DeskKind::Resolved, "desk-resolve"),
                (DeskKind::Unresolved, "desk-unresolve"),
            ] {
                let open = r.form.as_ref().is_some_and(|f| f.kind == kind);
                let button = egui::Button::new(w.text(key)).selected(open);
                if ui.add(button).clicked() && !open {
                    events.push(Event::OpenDeskForm(kind));
                }
            }
        });
    });
    let may_ask = r.may_ask();
    if let Some(form) = &mut r.form {
        ui.add_enabled_ui(may_ask, |ui| desk_form(ui, w, form, events));
    }
}

/// The open step's form: where to (an escalation), the note, and the button that sends it.
fn desk_form(ui: &mut egui::Ui, w: &Catalogue, form: &mut DeskForm, events: &mut Vec<Event>) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        if form.kind == DeskKind::Escalate {
            ui.horizontal(|ui| {
                ui.label(w.text("desk-escalate-to"));
                for t in [2u8, 3] {
                    ui.radio_value(
                        &mut form.to,
                        EscalateTo::Tier(t),
                        w.fmt("dash-tier-n", &[("tier", Value::from(t))]),
                    );
                }
                ui.radio_value(
                    &mut form.to,
                    EscalateTo::Technician,
                    w.text("desk-to-technician"),
                );
                let l = ui.label(w.text("desk-technician-name"));
                ui.add_enabled(
                    form.to == EscalateTo::Technician,
                    egui::TextEdit::singleline(&mut form.name).desired_width(160.0),
                )
                .labelled_by(l.id);
            });
        }
        let note_key = match form.kind {
            DeskKind::Escalate => "desk-note-required",
            _ => "desk-note",
        };
        ui.horizontal(|ui| {
            let l = ui.label(w.text(note_key));
            ui.add(egui::TextEdit::singleline(&mut form.note).desired_width(480.0))
                .labelled_by(l.id);
        });
        if let Some(p) = form.problem {
            let key = match p {
                FormProblem::NoteNeeded => "desk-problem-note",
                FormProblem::NameNeeded => "desk-problem-name",
            };
            ui.colored_label(RED, w.text(key));
        }
        ui.horizontal(|ui| {
            let send = match (form.kind, form.to) {
                (DeskKind::Escalate, EscalateTo::Tier(t)) => {
                    w.fmt("desk-send-escalate-tier", &[("tier", Value::from(t))])
                }
                (DeskKind::Escalate, EscalateTo::Technician) => {
                    let name = form.name.trim();
                    if name.is_empty() {
                        w.text("desk-send-escalate-someone")
                    } else {
                        w.fmt(
                            "desk-send-escalate-name",
                            &[("name", Value::from(name.to_string()))],
                        )
                    }
                }
                (DeskKind::Hold, _) => w.text("desk-send-hold"),
                (DeskKind::Resolved, _) => w.text("desk-send-resolve"),
                (DeskKind::Unresolved, _) => w.text("desk-send-unresolve"),
            };
            if ui.button(RichText::new(send).strong()).clicked() {
                events.push(Event::SubmitDeskForm);
            }
            if ui.button(w.text("desk-cancel")).clicked() {
                events.push(Event::CancelDeskForm);
            }
        });
    });
}
