//! The session-log player drawn with egui: the verdict at the top, the screen fitted to the
//! space left, and under it Play/Pause, the speed, the time and the timeline with the log's
//! events marked on it. It reads a [`Player`] and turns clicks into calls on it; the only
//! state of its own is [`PlayerView`] (the texture and the clock of the last frame). Opening
//! another log is the caller's business.
//!
//! Every word a person reads is a constant at the top of this file, so that the console's
//! catalogue can take them over.

use std::time::Duration;

use egui::{
    accesskit, pos2, vec2, Align, Color32, ColorImage, Layout, Rect, Sense, Stroke, TextureHandle,
    TextureOptions, Ui, WidgetInfo,
};
use protocol::control::Role;
use protocol::peer::ConsentState;
use protocol::sessionlog::{ChatAuthor, Verdict};

use super::player::{Event, InputSummary, Player, TimelineEvent, SPEEDS};

// Words. `{n}`, `{time}` and the like are filled in by `fill`.
pub const PLAY: &str = "Play";
pub const PAUSE: &str = "Pause";
pub const SPEED: &str = "Speed";
pub const TIMELINE: &str = "Timeline";
pub const SCREEN: &str = "Recorded screen";
pub const VERDICT_INTACT: &str = "Intact: sealed, every record checks";
pub const VERDICT_TAMPERED: &str = "Tampered at record {n}";
pub const VERDICT_ENDED_EARLY: &str = "Ended early after record {n}";
pub const VERDICT_ENDED_BEFORE_ANY: &str = "Ended early, before its first record";
pub const PLAYS_UP_TO: &str =
    "Plays up to record {n} ({time}), the last one that checks; nothing after it is shown.";
pub const ENDED_EARLY_MEANS: &str =
    "Not sealed, as a crash or a kill leaves it. Everything up to then checks and plays.";
pub const NOTHING_TO_PLAY: &str = "No record checks: there is nothing to play.";
pub const NO_SCREEN_YET: &str = "No screen had arrived yet at this moment.";
pub const SCREEN_TOO_LARGE: &str =
    "The recorded screen is {w}×{h} pixels, larger than this window can show.";
pub const CANNOT_SHOW_PAST: &str = "The screen cannot be shown past {time}: {why}";
pub const EVENTS_OMITTED: &str = "{n} more events are not marked on the timeline.";
pub const SPEED_SUFFIX: &str = "×";
pub const ROLE_TECHNICIAN: &str = "Technician";
pub const ROLE_AGENT: &str = "User's computer";
pub const SESSION_OPENED: &str = "Session opened: {technician} with {agent}";
pub const JOINED: &str = "{role} joined: {who}";
pub const LEFT: &str = "{role} left: {who} ({reason})";
pub const CONSENT_ASKING: &str = "The user was asked for consent";
pub const CONSENT_VIEW_ONLY: &str = "The user allowed viewing only";
pub const CONSENT_CONTROL: &str = "The user allowed control";
pub const CONSENT_DENIED: &str = "The user denied the session";
pub const TYPED_ONE: &str = "typed 1 character";
pub const TYPED_MANY: &str = "typed {n} characters";
pub const CLICK_ONE: &str = "1 click";
pub const CLICK_MANY: &str = "{n} clicks";
pub const SCROLL_ONE: &str = "scrolled once";
pub const SCROLL_MANY: &str = "scrolled {n} times";
pub const KEYS_NAMED: &str = "pressed {names}";
pub const KEYS_NAMED_AND_MORE: &str = "pressed {names} and {n} more keys";
pub const KEY_ONE: &str = "pressed 1 key";
pub const KEY_MANY: &str = "pressed {n} keys";
pub const ERROR: &str = "Error: {message}";
pub const SESSION_CLOSED: &str = "Session ended: {reason}";
pub const UNREADABLE: &str = "A record this program cannot read";
pub const LAST_GOOD_RECORD: &str = "The last record that checks: playing stops here";
pub const CHAT_FROM_USER: &str = "The user wrote: {text}";
pub const CHAT_FROM_RECORDER: &str = "The technician wrote: {text}";
pub const CHAT_FROM_OTHER: &str = "{who} wrote: {text}";
pub const MONITOR_SHOWN: &str = "The technician saw monitor {which}";

/// Repaint interval while playing.
const PLAYING_REPAINT: Duration = Duration::from_millis(33);
/// How far (in points) from a marker the pointer may be for its label to show.
const MARKER_HOVER: f32 = 5.0;
/// Step of the timeline's arrow keys and of a screen reader's increment.
const STEP_MS: u64 = 5_000;
const TIMELINE_HEIGHT: f32 = 22.0;

const GREEN: Color32 = Color32::from_rgb(0x2e, 0x7d, 0x32);
const RED: Color32 = Color32::from_rgb(0xc6, 0x28, 0x28);
const AMBER: Color32 = Color32::from_rgb(0xf9, 0xa8, 0x25);

/// `template` with each `{key}` replaced by its value.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut s = template.to_owned();
    for (k, v) in values {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `m:ss`, or `h:mm:ss` from an hour on.
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// `0.25×`, `1×`.
pub fn speed_label(speed: f64) -> String {
    format!("{speed}{SPEED_SUFFIX}")
}

fn role(r: Role) -> &'static str {
    match r {
        Role::Technician => ROLE_TECHNICIAN,
        Role::Agent => ROLE_AGENT,
    }
}

fn count(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        one.to_owned()
    } else {
        fill(many, &[("n", &n.to_string())])
    }
}

fn input_label(s: &InputSummary) -> String {
    let mut parts = Vec::new();
    if s.characters > 0 {
        parts.push(count(s.characters, TYPED_ONE, TYPED_MANY));
    }
    if s.clicks > 0 {
        parts.push(count(s.clicks, CLICK_ONE, CLICK_MANY));
    }
    if s.scrolls > 0 {
        parts.push(count(s.scrolls, SCROLL_ONE, SCROLL_MANY));
    }
    if s.keys > 0 {
        let names = s.key_names.join(", ");
        let rest = s.keys - s.key_names.len() as u64;
        parts.push(match (names.is_empty(), rest) {
            (true, _) => count(s.keys, KEY_ONE, KEY_MANY),
            (false, 0) => fill(KEYS_NAMED, &[("names", &names)]),
            (false, n) => fill(
                KEYS_NAMED_AND_MORE,
                &[("names", &names), ("n", &n.to_string())],
            ),
        });
    }
    capitalised(&parts.join(", "))
}

/// The words for a timeline event.
pub fn event_label(what: &Event) -> String {
    match what {
        Event::SessionOpened { technician, agent } => fill(
            SESSION_OPENED,
            &[("technician", technician), ("agent", agent)],
        ),
        Event::Joined { role: r, who } => fill(JOINED, &[("role", role(*r)), ("who", who)]),
        Event::Left {
            role: r,
            who,
            reason,
        } => fill(
            LEFT,
            &[("role", role(*r)), ("who", who), ("reason", reason)],
        ),
        Event::Consent(ConsentState::Asking) => CONSENT_ASKING.into(),
        Event::Consent(ConsentState::ViewOnly) => CONSENT_VIEW_ONLY.into(),
        Event::Consent(ConsentState::Control) => CONSENT_CONTROL.into(),
        Event::Consent(ConsentState::Denied) => CONSENT_DENIED.into(),
        Event::Input(s) => input_label(s),
        Event::Error(message) => fill(ERROR, &[("message", message)]),
        Event::DeskStep(words) | Event::Control(words) | Event::File(words) => capitalised(words),
        Event::SessionClosed(reason) => fill(SESSION_CLOSED, &[("reason", &reason.to_string())]),
        Event::Unreadable => UNREADABLE.into(),
        Event::LastGoodRecord => LAST_GOOD_RECORD.into(),
        Event::Chat { from, text } => match from {
            ChatAuthor::User => fill(CHAT_FROM_USER, &[("text", text)]),
            ChatAuthor::Recorder => fill(CHAT_FROM_RECORDER, &[("text", text)]),
            ChatAuthor::Technician(who) => fill(CHAT_FROM_OTHER, &[("who", who), ("text", text)]),
        },
        Event::Clipboard(words) => capitalised(words),
        Event::Monitors(which) => fill(MONITOR_SHOWN, &[("which", which)]),
    }
}

fn marker_color(what: &Event) -> Color32 {
    match what {
        Event::SessionOpened { .. } | Event::SessionClosed(_) => Color32::from_gray(220),
        Event::Joined { .. } | Event::Left { .. } => Color32::from_rgb(0x66, 0xbb, 0x6a),
        Event::Consent(_) | Event::Control(_) | Event::File(_) => {
            Color32::from_rgb(0x42, 0xa5, 0xf5)
        }
        Event::Input(_) => Color32::from_rgb(0xba, 0x9b, 0xe0),
        Event::DeskStep(_) => Color32::from_rgb(0xff, 0xb7, 0x4d),
        Event::Chat { .. } => Color32::from_rgb(0x4d, 0xd0, 0xe1),
        Event::Clipboard(_) | Event::Monitors(_) => Color32::from_rgb(0xa1, 0x88, 0x7f),
        Event::Error(_) | Event::Unreadable => RED,
        Event::LastGoodRecord => AMBER,
    }
}

/// What the verdict banner says: headline, the sentence `technician log verify` prints, what it
/// means for playing, and its colour.
pub fn verdict_words(player: &Player) -> (String, String, String, Color32) {
    let verdict = player.verdict();
    let said = capitalised(&verdict.to_string());
    let plays_to = |n: u64| {
        fill(
            PLAYS_UP_TO,
            &[
                ("n", &n.to_string()),
                ("time", &clock(player.duration_ms())),
            ],
        )
    };
    match verdict {
        Verdict::Intact { .. } => (VERDICT_INTACT.into(), said, String::new(), GREEN),
        Verdict::Tampered { at_record, .. } => (
            fill(VERDICT_TAMPERED, &[("n", &at_record.to_string())]),
            said,
            player
                .last_good_record()
                .map_or_else(|| NOTHING_TO_PLAY.into(), plays_to),
            RED,
        ),
        Verdict::EndedEarly {
            after_record: Some(n),
            ..
        } => (
            fill(VERDICT_ENDED_EARLY, &[("n", &n.to_string())]),
            said,
            ENDED_EARLY_MEANS.into(),
            AMBER,
        ),
        Verdict::EndedEarly { .. } => (
            VERDICT_ENDED_BEFORE_ANY.into(),
            said,
            NOTHING_TO_PLAY.into(),
            AMBER,
        ),
    }
}

/// The player window's own state: the uploaded screen and the clock.
#[derive(Default)]
pub struct PlayerView {
    texture: Option<TextureHandle>,
    /// Generation of the player's frame that `texture` holds.
    uploaded: Option<u64>,
    /// `egui` time of the last frame drawn while playing.
    clock: Option<f64>,
}

impl PlayerView {
    pub fn new() -> Self {
        Self::default()
    }

    /// The generation of the frame the texture shows (`None`: none uploaded yet).
    pub fn uploaded_generation(&self) -> Option<u64> {
        self.uploaded
    }

    /// Size in pixels of the texture shown.
    pub fn texture_size(&self) -> Option<[usize; 2]> {
        self.texture.as_ref().map(|t| t.size())
    }

    /// Uploads the player's frame if it changed since the last upload. The one copy per new
    /// frame is the BGRX to RGBA conversion egui needs.
    fn upload(&mut self, ui: &Ui, player: &Player) -> Result<(), String> {
        if self.uploaded == Some(player.generation()) {
            return Ok(());
        }
        self.uploaded = Some(player.generation());
        let Some(frame) = player.frame() else {
            self.texture = None;
            return Ok(());
        };
        let max = ui.input(|i| i.max_texture_side);
        let (w, h) = (frame.width as usize, frame.height as usize);
        if w > max || h > max {
            self.texture = None;
            return Err(fill(
                SCREEN_TOO_LARGE,
                &[("w", &w.to_string()), ("h", &h.to_string())],
            ));
        }
        let pixels = frame
            .pixels
            .chunks_exact(4)
            .map(|p| Color32::from_rgb(p[2], p[1], p[0]))
            .collect();
        let image = ColorImage::new([w, h], pixels);
        match &mut self.texture {
            Some(t) => t.set(image, TextureOptions::LINEAR),
            None => {
                self.texture = Some(ui.ctx().load_texture(
                    "session-log-player",
                    image,
                    TextureOptions::LINEAR,
                ))
            }
        }
        Ok(())
    }
}

/// Draws the player into `ui` (taking all the space it has) and acts on what the user does.
/// While playing, it moves the player on by the time since the last frame and asks for the
/// next repaint.
pub fn show(ui: &mut Ui, player: &mut Player, view: &mut PlayerView) {
    let now = ui.input(|i| i.time);
    if player.is_playing() {
        if let Some(before) = view.clock {
            player.advance(Duration::from_secs_f64((now - before).max(0.0)));
        }
    }
    verdict_banner(ui, player);
    ui.with_layout(Layout::bottom_up(Align::Min), |ui| {
        timeline(ui, player);
        controls(ui, player);
        if let Some(why) = player.problem() {
            ui.colored_label(
                RED,
                fill(
                    CANNOT_SHOW_PAST,
                    &[("time", &clock(player.end_ms())), ("why", why)],
                ),
            );
        }
        if player.events_omitted() > 0 {
            ui.label(fill(
                EVENTS_OMITTED,
                &[("n", &player.events_omitted().to_string())],
            ));
        }
        ui.with_layout(Layout::top_down(Align::Min), |ui| screen(ui, player, view));
    });
    if player.is_playing() {
        view.clock = Some(now);
        ui.ctx().request_repaint_after(PLAYING_REPAINT);
    } else {
        view.clock = None;
    }
}

fn verdict_banner(ui: &mut Ui, player: &Player) {
    let (headline, said, means, color) = verdict_words(player);
    let text = if color == AMBER {
        Color32::BLACK
    } else {
        Color32::WHITE
    };
    egui::Frame::new()
        .fill(color)
        .inner_margin(8)
        .corner_radius(4)
        .show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.label(
                egui::RichText::new(headline)
                    .strong()
                    .size(18.0)
                    .color(text),
            );
            if !means.is_empty() {
                ui.label(egui::RichText::new(means).color(text));
            }
            ui.label(egui::RichText::new(said).small().color(text));
        });
}

fn screen(ui: &mut Ui, player: &Player, view: &mut PlayerView) {
    let upload = view.upload(ui, player);
    let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::hover());
    response.widget_info(|| WidgetInfo::labeled(egui::Role::Image, true, SCREEN));
    ui.painter().rect_filled(rect, 0.0, Color32::BLACK);
    let message = match (&upload, &view.texture) {
        (Err(why), _) => Some(why.clone()),
        (Ok(()), None) => Some(NO_SCREEN_YET.to_owned()),
        (Ok(()), Some(_)) => None,
    };
    if let Some(message) = message {
        ui.painter().text(
            rect.center(),
            egui::Align2::CENTER_CENTER,
            message,
            egui::FontId::proportional(14.0),
            Color32::GRAY,
        );
        return;
    }
    let Some(texture) = &view.texture else { return };
    let size = texture.size_vec2();
    let scale = (rect.width() / size.x).min(rect.height() / size.y);
    if !(scale.is_finite() && scale > 0.0) {
        return;
    }
    let fitted = Rect::from_center_size(rect.center(), size * scale);
    ui.painter().image(
        texture.id(),
        fitted,
        Rect::from_min_max(pos2(0.0, 0.0), pos2(1.0, 1.0)),
        Color32::WHITE,
    );
}

fn controls(ui: &mut Ui, player: &mut Player) {
    ui.with_layout(Layout::left_to_right(Align::Center), |ui| {
        let label = if player.is_playing() { PAUSE } else { PLAY };
        let can_play = player.end_ms() > 0;
        if ui.add_enabled(can_play, egui::Button::new(label)).clicked() {
            player.toggle_play();
        }
        egui::ComboBox::from_label(SPEED)
            .selected_text(speed_label(player.speed()))
            .show_ui(ui, |ui| {
                for s in SPEEDS {
                    if ui
                        .selectable_label(player.speed() == s, speed_label(s))
                        .clicked()
                    {
                        player.set_speed(s);
                    }
                }
            });
        ui.label(format!(
            "{} / {}",
            clock(player.position_ms()),
            clock(player.duration_ms())
        ));
    });
}

/// The events whose markers are within reach of `x` (nearest first), on a timeline of `rect`.
fn events_near(player: &Player, rect: Rect, x: f32) -> Vec<&TimelineEvent> {
    let mut near: Vec<(f32, &TimelineEvent)> = player
        .events()
        .iter()
        .map(|e| ((time_to_x(player, rect, e.time_ms) - x).abs(), e))
        .filter(|(d, _)| *d <= MARKER_HOVER)
        .collect();
    near.sort_by(|a, b| a.0.total_cmp(&b.0));
    near.into_iter().map(|(_, e)| e).collect()
}

fn time_to_x(player: &Player, rect: Rect, t_ms: u64) -> f32 {
    let d = player.duration_ms().max(1) as f32;
    rect.left() + rect.width() * (t_ms as f32 / d).min(1.0)
}

fn x_to_time(player: &Player, rect: Rect, x: f32) -> u64 {
    let f = ((x - rect.left()) / rect.width()).clamp(0.0, 1.0);
    (f64::from(f) * player.duration_ms() as f64).round() as u64
}

fn timeline(ui: &mut Ui, player: &mut Player) {
    let (rect, response) = ui.allocate_exact_size(
        vec2(ui.available_width(), TIMELINE_HEIGHT),
        Sense::click_and_drag(),
    );
    let id = response.id;
    // A screen reader (and a test) sets the position in seconds.
    let requests = ui.input(|i| {
        let set = i
            .accesskit_action_requests(id, accesskit::Action::SetValue)
            .filter_map(|r| match r.data {
                Some(accesskit::ActionData::NumericValue(v)) => Some(v),
                _ => None,
            })
            .last();
        let up = i.num_accesskit_action_requests(id, accesskit::Action::Increment);
        let down = i.num_accesskit_action_requests(id, accesskit::Action::Decrement);
        (set, up, down)
    });
    if let (Some(seconds), _, _) = requests {
        if seconds.is_finite() {
            player.seek((seconds.max(0.0) * 1000.0).round() as u64);
        }
    }
    let mut steps = requests.1 as i64 - requests.2 as i64;
    if response.has_focus() {
        ui.input(|i| {
            steps += i.num_presses(egui::Key::ArrowRight) as i64;
            steps -= i.num_presses(egui::Key::ArrowLeft) as i64;
        });
    }
    if steps != 0 {
        let delta = STEP_MS.saturating_mul(steps.unsigned_abs());
        let p = player.position_ms();
        player.seek(if steps > 0 {
            p.saturating_add(delta)
        } else {
            p.saturating_sub(delta)
        });
    }
    if response.is_pointer_button_down_on() || response.clicked() {
        if let Some(pos) = response.interact_pointer_pos() {
            player.seek(x_to_time(player, rect, pos.x));
        }
    }
    let position_s = player.position_ms() as f64 / 1000.0;
    response.widget_info(|| WidgetInfo::slider(true, position_s, TIMELINE));
    ui.ctx().accesskit_node_builder(id, |node| {
        node.set_min_numeric_value(0.0);
        node.set_max_numeric_value(player.duration_ms() as f64 / 1000.0);
        node.add_action(accesskit::Action::SetValue);
        node.add_action(accesskit::Action::Increment);
        node.add_action(accesskit::Action::Decrement);
    });

    // Drawing: the rail, the part played, the markers, the play head.
    let painter = ui.painter_at(rect.expand(2.0));
    let visuals = ui.style().interact(&response);
    let rail = Rect::from_center_size(rect.center(), vec2(rect.width(), 6.0));
    painter.rect_filled(rail, 3.0, ui.visuals().extreme_bg_color);
    let head_x = time_to_x(player, rect, player.position_ms());
    painter.rect_filled(
        Rect::from_min_max(rail.min, pos2(head_x, rail.max.y)),
        3.0,
        ui.visuals().selection.bg_fill,
    );
    for e in player.events() {
        let x = time_to_x(player, rect, e.time_ms);
        painter.line_segment(
            [pos2(x, rect.top() + 2.0), pos2(x, rect.bottom() - 2.0)],
            Stroke::new(2.0, marker_color(&e.what)),
        );
    }
    painter.circle_filled(pos2(head_x, rect.center().y), 6.0, visuals.fg_stroke.color);

    if let Some(pointer) = response.hover_pos() {
        let near = events_near(player, rect, pointer.x);
        let at = clock(x_to_time(player, rect, pointer.x));
        response.on_hover_ui_at_pointer(|ui| {
            if near.is_empty() {
                ui.label(at);
            }
            for e in near.iter().take(3) {
                ui.label(format!("{}  {}", clock(e.time_ms), event_label(&e.what)));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_minutes_and_seconds() {
        assert_eq!(clock(0), "0:00");
        assert_eq!(clock(61_999), "1:01");
        assert_eq!(clock(3_725_000), "1:02:05");
        assert_eq!(speed_label(0.25), "0.25×");
        assert_eq!(speed_label(1.0), "1×");
    }

    #[test]
    fn input_summaries_read_as_words() {
        let s = InputSummary {
            characters: 12,
            clicks: 3,
            ..Default::default()
        };
        assert_eq!(input_label(&s), "Typed 12 characters, 3 clicks");
        let s = InputSummary {
            clicks: 1,
            keys: 6,
            key_names: vec!["Return".into(), "Ctrl+C".into()],
            ..Default::default()
        };
        assert_eq!(
            input_label(&s),
            "1 click, pressed Return, Ctrl+C and 4 more keys"
        );
        let s = InputSummary {
            keys: 1,
            ..Default::default()
        };
        assert_eq!(input_label(&s), "Pressed 1 key");
    }
}
