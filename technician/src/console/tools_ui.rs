//! The session view's tools drawn with egui: the Chat button of the toolbar (with the count of
//! messages that came while the panel was closed), the chat panel at the right (who wrote, when,
//! what; a field and Send), the list of the user's monitors, the Files panel (a path here to
//! send, a path on the user's machine to fetch), and a word on the last clipboard that passed. It reads the [`SessionView`] and turns clicks into [`Event`]s. A new message
//! asks for nothing but a repaint: the keyboard stays where it is.

use egui::{Color32, RichText, Ui};
use protocol::clipboard::size_words;
use protocol::monitor::MonitorChoice;
use protocol::sessionlog::{ChatAuthor, ClipDirection};
use words::{Catalogue, Value};

use super::model::{Event, FilesNote, SessionView};

/// The id of the chat's text field (tests find it by its label).
const DRAFT_ID: &str = "chat-draft";

/// The toolbar's Chat button: `Chat`, or `Chat (3)` in colour while messages wait.
pub fn chat_button(ui: &mut Ui, w: &Catalogue, s: &SessionView, events: &mut Vec<Event>) {
    let label = if s.chat.unread > 0 {
        RichText::new(w.fmt("session-chat-unread", &[("n", Value::from(s.chat.unread))]))
            .color(Color32::from_rgb(0x4d, 0xd0, 0xe1))
            .strong()
    } else {
        RichText::new(w.text("session-chat"))
    };
    if ui.selectable_label(s.chat.open, label).clicked() {
        events.push(Event::ToggleChat);
    }
}

/// The toolbar's Files button: opens or closes the Files panel.
pub fn files_button(ui: &mut Ui, w: &Catalogue, s: &SessionView, events: &mut Vec<Event>) {
    let open = s.files_open && s.may_move_files();
    ui.add_enabled_ui(s.may_move_files(), |ui| {
        if ui.selectable_label(open, w.text("session-files")).clicked() {
            events.push(Event::ToggleFiles);
        }
    });
}

/// The Files panel, beside the remote screen (a menu over it would hide it: the screen is a
/// window of its own): send a file or folder of this machine to the user (who is asked), or
/// fetch one of theirs (when they allow it) into `fetch_dir`, typed or picked in their folders.
pub fn files_panel(
    ui: &mut Ui,
    w: &Catalogue,
    s: &SessionView,
    fetch_dir: &std::path::Path,
    events: &mut Vec<Event>,
) {
    let (send, go) = path_field(ui, w, "files-send", &s.files_form.send, None);
    if send != s.files_form.send {
        events.push(Event::FileSendPath(send));
    }
    if go {
        events.push(Event::SendFiles);
    }
    ui.separator();
    let into = w.fmt(
        "files-fetch-into",
        &[("dir", Value::from(fetch_dir.display().to_string()))],
    );
    let (fetch, go) = path_field(ui, w, "files-fetch", &s.files_form.fetch, Some(into));
    if fetch != s.files_form.fetch {
        events.push(Event::FileFetchPath(fetch));
    }
    if go {
        events.push(Event::FetchFiles {
            into: fetch_dir.to_path_buf(),
        });
    }
    if ui
        .button(w.text("files-browse"))
        .on_hover_text(w.text("files-browse-tip"))
        .clicked()
    {
        events.push(Event::ListFolder(s.files_form.fetch.clone()));
    }
    if let Some(listing) = &s.browsing {
        browse_list(ui, w, listing, fetch_dir, events);
    }
}

/// A folder of the user's machine in the Files panel: its path and the folder above, then its
/// folders (a click shows one) and files (a click fetches one into `fetch_dir`).
fn browse_list(
    ui: &mut Ui,
    w: &Catalogue,
    listing: &protocol::browse::Listing,
    fetch_dir: &std::path::Path,
    events: &mut Vec<Event>,
) {
    use protocol::text::printable;
    ui.separator();
    ui.horizontal(|ui| {
        if let Some(up) = listing.parent() {
            if ui.small_button(w.text("files-browse-up")).clicked() {
                events.push(Event::ListFolder(up));
            }
        }
        ui.strong(printable(&listing.path));
    });
    egui::ScrollArea::vertical()
        .max_height((ui.available_height() - 20.0).max(120.0))
        .show(ui, |ui| {
            if listing.entries.is_empty() {
                ui.label(RichText::new(w.text("files-browse-empty")).italics());
            }
            for e in &listing.entries {
                let name = printable(&e.name);
                if e.folder {
                    if ui.selectable_label(false, format!("{name}/")).clicked() {
                        events.push(Event::ListFolder(listing.child(&e.name)));
                    }
                } else {
                    let label = format!("{name}  ({})", protocol::transfer::bytes_words(e.size));
                    if ui
                        .selectable_label(false, label)
                        .on_hover_text(w.text("files-browse-pick-tip"))
                        .clicked()
                    {
                        events.push(Event::FetchPicked {
                            path: listing.child(&e.name),
                            into: fetch_dir.to_path_buf(),
                        });
                    }
                }
            }
            if listing.omitted > 0 {
                ui.label(
                    RichText::new(w.fmt(
                        "files-browse-omitted",
                        &[
                            ("n", Value::from(listing.omitted)),
                            ("max", Value::from(protocol::browse::MAX_ENTRIES as u64)),
                        ],
                    ))
                    .weak(),
                );
            }
        });
}

/// A labelled path field (words `KEY-label`, `KEY-hint`), an optional remark under it, and its
/// button (`KEY`): the path as it now stands, and whether to go (the button, or Enter).
fn path_field(
    ui: &mut Ui,
    w: &Catalogue,
    key: &str,
    value: &str,
    remark: Option<String>,
) -> (String, bool) {
    let mut path = value.to_string();
    let label = ui.label(w.text(&format!("{key}-label")));
    let field = ui
        .add(
            egui::TextEdit::singleline(&mut path)
                .desired_width(f32::INFINITY)
                .hint_text(w.text(&format!("{key}-hint"))),
        )
        .labelled_by(label.id);
    if let Some(r) = remark {
        ui.label(RichText::new(r).weak());
    }
    let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
    let ready = !path.trim().is_empty();
    let clicked = ui
        .add_enabled(ready, egui::Button::new(w.text(key)))
        .clicked();
    let go = ready && (clicked || enter);
    (path, go)
}

/// Why the last files asked for did not move, if they did not; why the last monitor switch
/// was refused, if it was.
pub fn files_note(ui: &mut Ui, w: &Catalogue, s: &SessionView) {
    if let Some(why) = &s.monitor_refused {
        let words = w.fmt("monitor-refused", &[("why", Value::from(why.clone()))]);
        ui.colored_label(Color32::from_rgb(220, 80, 60), words);
    }
    let Some(note) = &s.files_note else { return };
    let words = match note {
        FilesNote::NotOffered(why) => {
            w.fmt("files-not-offered", &[("why", Value::from(why.clone()))])
        }
        FilesNote::Declined(why) => w.fmt("files-declined", &[("why", Value::from(why.clone()))]),
        FilesNote::FetchRefused { path, why } => w.fmt(
            "files-fetch-refused",
            &[
                ("path", Value::from(path.clone())),
                ("why", Value::from(why.clone())),
            ],
        ),
    };
    ui.colored_label(Color32::from_rgb(220, 80, 60), words);
}

/// The toolbar's monitor list, where the user has more than one.
pub fn monitor_menu(ui: &mut Ui, w: &Catalogue, s: &SessionView, events: &mut Vec<Event>) {
    let Some(m) = &s.monitors else { return };
    if m.list.len() < 2 || s.ended.is_some() {
        return;
    }
    let name = |choice: MonitorChoice| match choice {
        MonitorChoice::All => {
            let (width, height) = m.desktop_size();
            w.fmt(
                "monitor-all",
                &[("w", Value::from(width)), ("h", Value::from(height))],
            )
        }
        MonitorChoice::One(n) => match m.list.get(n as usize) {
            Some(mon) => w.fmt(
                "monitor-one",
                &[
                    ("n", Value::from(n + 1)),
                    ("name", Value::from(mon.name.clone())),
                    ("w", Value::from(mon.width)),
                    ("h", Value::from(mon.height)),
                ],
            ),
            None => n.to_string(),
        },
    };
    let label = w.fmt("session-monitor", &[("shown", Value::from(name(m.shown)))]);
    if !s.may_switch_monitor() {
        // Only the technician in control switches; the others see what it chose.
        ui.add_enabled(false, egui::Button::new(label))
            .on_disabled_hover_text(w.text("monitor-not-in-control"));
        return;
    }
    ui.menu_button(label, |ui| {
        let choices = (0..m.list.len() as u32)
            .map(MonitorChoice::One)
            .chain([MonitorChoice::All]);
        for choice in choices {
            if ui
                .selectable_label(m.shown == choice, name(choice))
                .clicked()
            {
                events.push(Event::ShowMonitor(choice));
                ui.close();
            }
        }
    });
}

/// Whether the user shares the clipboard with this technician now (in the toolbar).
pub fn clipboard_shared(ui: &mut Ui, w: &Catalogue, s: &SessionView) {
    if s.clipboard_shared && s.ended.is_none() {
        ui.label(w.text("session-clipboard-shared"))
            .on_hover_text(w.text("session-clipboard-shared-tip"));
    }
}

/// A word on the last clipboard that passed.
pub fn clipboard_note(ui: &mut Ui, w: &Catalogue, s: &SessionView) {
    let Some(c) = s.clipboard else { return };
    let args = [
        ("kind", Value::from(c.kind.name())),
        ("size", Value::from(size_words(c.bytes as usize))),
    ];
    let key = match c.direction {
        ClipDirection::FromUser => "clipboard-from-user",
        ClipDirection::ToUser => "clipboard-to-user",
    };
    ui.label(w.fmt(key, &args));
}

/// The chat panel: the messages, newest at the bottom, then the field and Send.
pub fn chat_panel(
    ui: &mut Ui,
    w: &Catalogue,
    s: &SessionView,
    now_unix_ms: u64,
    events: &mut Vec<Event>,
) {
    ui.heading(w.text("session-chat"));
    let running = s.ended.is_none();
    // Room under the messages for the label, two rows of the field and Send.
    let bottom = 120.0;
    egui::ScrollArea::vertical()
        .stick_to_bottom(true)
        .auto_shrink([false, false])
        .max_height((ui.available_height() - bottom).max(40.0))
        .show(ui, |ui| {
            if s.chat.lines.is_empty() {
                ui.label(RichText::new(w.text("chat-empty")).italics());
            }
            for line in &s.chat.lines {
                let who = match &line.from {
                    ChatAuthor::User => w.text("chat-from-user"),
                    ChatAuthor::Recorder => w.text("chat-from-me"),
                    ChatAuthor::Technician(name) => name.clone(),
                };
                ui.horizontal_wrapped(|ui| {
                    ui.label(RichText::new(words::local_clock(line.at_unix_ms)).weak());
                    ui.label(RichText::new(who).strong());
                });
                ui.label(&line.text);
                ui.add_space(4.0);
            }
        });
    ui.separator();
    let mut draft = s.chat.draft.clone();
    let label = ui.label(w.text("chat-message"));
    let field = ui.add_enabled(
        running,
        egui::TextEdit::multiline(&mut draft)
            .id_salt(DRAFT_ID)
            .desired_rows(2)
            .desired_width(f32::INFINITY)
            .hint_text(w.text("chat-placeholder")),
    );
    let field = field.labelled_by(label.id);
    if draft != s.chat.draft {
        events.push(Event::ChatDraft(draft.clone()));
    }
    // Enter sends; Shift+Enter makes a new line.
    let enter =
        field.has_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter) && !i.modifiers.shift);
    let send = ui
        .add_enabled(
            running && !draft.trim().is_empty(),
            egui::Button::new(w.text("chat-send")),
        )
        .clicked();
    if send || (enter && !draft.trim().is_empty()) {
        if enter {
            // The Enter itself went into the field as a new line.
            events.push(Event::ChatDraft(draft.trim_end_matches('\n').to_string()));
        }
        events.push(Event::SendChat {
            at_unix_ms: now_unix_ms,
        });
    }
}
