//! The viewer's keyboard: egui's key events turned into the input events the agent injects, and
//! the key combinations of the "Send keys" menu. (The pointer comes from the viewer's own
//! window: [`super::pointer`].)
//!
//! Text arrives as the characters typed (egui's `Text` events carry what the local layout, dead
//! keys and AltGr made: "é", "€", "ß"), so keys that produce text are not also sent as keys —
//! except with Ctrl, Alt or Super held, when they are shortcuts (Ctrl+C) and go as keys with
//! their modifiers. Named keys (Return, arrows, F1 to F24, …) go as themselves, pressed and
//! released. egui turns Ctrl+C, Ctrl+X and Ctrl+V into copy, cut and paste; they go to the
//! remote machine as those key combinations (the local clipboard is not sent).
//!
//! Two local shortcuts are not sent: Ctrl+Alt+G releases the keyboard, Ctrl+Alt+F switches full
//! screen.

use protocol::input::{InputEvent, Key, Modifiers, NamedKey};

use super::model::SpecialKeys;

/// What the translation of one frame's events asks of the console besides input.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Translated {
    pub input: Vec<InputEvent>,
    /// The release shortcut was pressed.
    pub release_grab: bool,
    /// The full-screen shortcut was pressed.
    pub toggle_fullscreen: bool,
}

/// Whether an event is the keyboard's (what goes to the remote machine while it has the
/// keyboard, and what egui must then not see).
pub fn is_keyboard(e: &egui::Event) -> bool {
    matches!(
        e,
        egui::Event::Key { .. }
            | egui::Event::Text(_)
            | egui::Event::Copy
            | egui::Event::Cut
            | egui::Event::Paste(_)
    )
}

fn modifiers(m: egui::Modifiers) -> Modifiers {
    Modifiers {
        shift: m.shift,
        ctrl: m.ctrl,
        alt: m.alt,
        meta: m.mac_cmd,
    }
}

fn named(key: egui::Key) -> Option<NamedKey> {
    use egui::Key as K;
    Some(match key {
        K::Enter => NamedKey::Return,
        K::Tab => NamedKey::Tab,
        K::Escape => NamedKey::Escape,
        K::Backspace => NamedKey::Backspace,
        K::Delete => NamedKey::Delete,
        K::Insert => NamedKey::Insert,
        K::Home => NamedKey::Home,
        K::End => NamedKey::End,
        K::PageUp => NamedKey::PageUp,
        K::PageDown => NamedKey::PageDown,
        K::ArrowLeft => NamedKey::Left,
        K::ArrowRight => NamedKey::Right,
        K::ArrowUp => NamedKey::Up,
        K::ArrowDown => NamedKey::Down,
        K::F1 => NamedKey::F(1),
        K::F2 => NamedKey::F(2),
        K::F3 => NamedKey::F(3),
        K::F4 => NamedKey::F(4),
        K::F5 => NamedKey::F(5),
        K::F6 => NamedKey::F(6),
        K::F7 => NamedKey::F(7),
        K::F8 => NamedKey::F(8),
        K::F9 => NamedKey::F(9),
        K::F10 => NamedKey::F(10),
        K::F11 => NamedKey::F(11),
        K::F12 => NamedKey::F(12),
        K::F13 => NamedKey::F(13),
        K::F14 => NamedKey::F(14),
        K::F15 => NamedKey::F(15),
        K::F16 => NamedKey::F(16),
        K::F17 => NamedKey::F(17),
        K::F18 => NamedKey::F(18),
        K::F19 => NamedKey::F(19),
        K::F20 => NamedKey::F(20),
        K::F21 => NamedKey::F(21),
        K::F22 => NamedKey::F(22),
        K::F23 => NamedKey::F(23),
        K::F24 => NamedKey::F(24),
        _ => return None,
    })
}

/// The character a text-producing key stands for in a shortcut (Ctrl+C is `c`).
fn shortcut_char(key: egui::Key) -> Option<char> {
    let name = key.symbol_or_name();
    let mut chars = name.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c.to_ascii_lowercase()),
        _ if key == egui::Key::Space => Some(' '),
        _ => None,
    }
}

fn key(down: bool, key: Key, text: Option<String>, modifiers: Modifiers) -> InputEvent {
    InputEvent::Key {
        down,
        key,
        text,
        modifiers,
    }
}

/// Turns one frame's keyboard events into input events for the remote machine.
pub fn translate(events: &[egui::Event]) -> Translated {
    let mut out = Translated::default();
    let shortcut = |c: char, m: egui::Modifiers, out: &mut Translated| {
        let mods = modifiers(m);
        out.input.push(key(true, Key::Char(c), None, mods));
        out.input.push(key(false, Key::Char(c), None, mods));
    };
    for ev in events {
        match ev {
            egui::Event::Text(text) => {
                for c in text.chars().filter(|c| !c.is_control()) {
                    let s = Some(c.to_string());
                    out.input
                        .push(key(true, Key::Char(c), s.clone(), Modifiers::NONE));
                    out.input.push(key(false, Key::Char(c), s, Modifiers::NONE));
                }
            }
            egui::Event::Copy => shortcut('c', egui::Modifiers::CTRL, &mut out),
            egui::Event::Cut => shortcut('x', egui::Modifiers::CTRL, &mut out),
            egui::Event::Paste(_) => shortcut('v', egui::Modifiers::CTRL, &mut out),
            egui::Event::Key {
                key: k,
                pressed,
                modifiers: m,
                ..
            } => {
                if m.ctrl && m.alt && matches!(k, egui::Key::G | egui::Key::F) {
                    if *pressed {
                        out.release_grab |= *k == egui::Key::G;
                        out.toggle_fullscreen |= *k == egui::Key::F;
                    }
                    continue;
                }
                if let Some(n) = named(*k) {
                    out.input
                        .push(key(*pressed, Key::Named(n), None, modifiers(*m)));
                } else if m.ctrl || m.alt || m.mac_cmd {
                    // A shortcut: the key with its modifiers (its text, if any, is not sent).
                    if let Some(c) = shortcut_char(*k) {
                        out.input
                            .push(key(*pressed, Key::Char(c), None, modifiers(*m)));
                    }
                }
                // Other keys produce text, which arrives as a Text event.
            }
            _ => {}
        }
    }
    out
}

/// The key events of a "Send keys" entry: the combination pressed, then released in reverse.
pub fn special(keys: SpecialKeys) -> Vec<InputEvent> {
    let (mods, main): (Modifiers, Key) = match keys {
        SpecialKeys::CtrlAltDel => (
            Modifiers {
                ctrl: true,
                alt: true,
                ..Modifiers::NONE
            },
            Key::Named(NamedKey::Delete),
        ),
        SpecialKeys::AltTab => (
            Modifiers {
                alt: true,
                ..Modifiers::NONE
            },
            Key::Named(NamedKey::Tab),
        ),
        SpecialKeys::AltF4 => (
            Modifiers {
                alt: true,
                ..Modifiers::NONE
            },
            Key::Named(NamedKey::F(4)),
        ),
        SpecialKeys::Super => (Modifiers::NONE, Key::Named(NamedKey::Meta)),
        SpecialKeys::PrintScreen => (Modifiers::NONE, Key::Named(NamedKey::PrintScreen)),
    };
    vec![key(true, main, None, mods), key(false, main, None, mods)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(k: egui::Key, m: egui::Modifiers) -> egui::Event {
        egui::Event::Key {
            key: k,
            physical_key: None,
            pressed: true,
            repeat: false,
            modifiers: m,
        }
    }

    #[test]
    fn typed_text_goes_as_characters_not_keys() {
        let events = [
            press(egui::Key::E, egui::Modifiers::NONE),
            egui::Event::Text("é€ß".into()),
        ];
        let t = translate(&events);
        let typed: String = t
            .input
            .iter()
            .filter_map(|e| match e {
                InputEvent::Key {
                    down: true, text, ..
                } => text.clone(),
                _ => None,
            })
            .collect();
        assert_eq!(typed, "é€ß");
        assert_eq!(
            t.input.len(),
            6,
            "each character pressed and released, the key not sent"
        );
    }

    #[test]
    fn shortcuts_and_named_keys_go_as_keys() {
        let events = [
            egui::Event::Copy,
            press(egui::Key::T, egui::Modifiers::CTRL | egui::Modifiers::ALT),
            press(egui::Key::F5, egui::Modifiers::NONE),
            press(egui::Key::Enter, egui::Modifiers::SHIFT),
        ];
        let t = translate(&events);
        let ctrl = Modifiers {
            ctrl: true,
            ..Modifiers::NONE
        };
        assert_eq!(t.input[0], key(true, Key::Char('c'), None, ctrl));
        assert_eq!(t.input[1], key(false, Key::Char('c'), None, ctrl));
        assert!(matches!(
            &t.input[2],
            InputEvent::Key { key: Key::Char('t'), modifiers, .. } if modifiers.ctrl && modifiers.alt
        ));
        assert!(matches!(
            t.input[3],
            InputEvent::Key {
                key: Key::Named(NamedKey::F(5)),
                down: true,
                ..
            }
        ));
        assert!(matches!(
            &t.input[4],
            InputEvent::Key { key: Key::Named(NamedKey::Return), modifiers, .. } if modifiers.shift
        ));
    }

    #[test]
    fn the_release_shortcut_is_not_sent() {
        let events = [press(
            egui::Key::G,
            egui::Modifiers::CTRL | egui::Modifiers::ALT,
        )];
        let t = translate(&events);
        assert!(t.release_grab);
        assert!(t.input.is_empty());
    }

    #[test]
    fn send_keys_press_and_release() {
        let ev = special(SpecialKeys::CtrlAltDel);
        assert_eq!(ev.len(), 2);
        assert!(matches!(
            &ev[0],
            InputEvent::Key { down: true, key: Key::Named(NamedKey::Delete), modifiers, .. }
                if modifiers.ctrl && modifiers.alt
        ));
    }
}
