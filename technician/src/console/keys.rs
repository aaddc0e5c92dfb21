//! The viewer's input: egui's pointer and key events turned into the input events the agent
//! injects, and the key combinations of the "Send keys" menu.
//!
//! Text arrives as the characters typed (egui's `Text` events carry what the local layout, dead
//! keys and AltGr made: "é", "€", "ß"), so keys that produce text are not also sent as keys —
//! except with Ctrl, Alt or Super held, when they are shortcuts (Ctrl+C) and go as keys with
//! their modifiers. Named keys (Return, arrows, F1 to F24, …) go as themselves, pressed and
//! released. egui turns Ctrl+C, Ctrl+X and Ctrl+V into copy, cut and paste; they go to the
//! remote machine as those key combinations (the local clipboard is not sent).
//!
//! The local shortcut Ctrl+Alt+G releases the keyboard (it is not sent).

use protocol::input::{InputEvent, Key, Modifiers, MouseButton, NamedKey};

use super::model::SpecialKeys;

/// Maps a position in the console window (egui points) to a remote screen pixel, if the
/// position is on the remote screen.
pub trait PointerMap {
    fn to_remote(&self, pos: egui::Pos2) -> Option<(u32, u32)>;
}

/// What the translation of one frame's events asks of the console besides input.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Translated {
    pub input: Vec<InputEvent>,
    /// The release shortcut was pressed.
    pub release_grab: bool,
}

/// Fractions of wheel clicks carried to the next frame.
#[derive(Debug, Default)]
pub struct WheelRest {
    x: f32,
    y: f32,
}

/// Points of smooth scrolling that make one wheel click.
const POINTS_PER_CLICK: f32 = 40.0;

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

/// Turns one frame's egui events into input events for the remote machine.
pub fn translate(
    events: &[egui::Event],
    map: &impl PointerMap,
    wheel: &mut WheelRest,
) -> Translated {
    let mut out = Translated::default();
    let shortcut = |c: char, m: egui::Modifiers, out: &mut Translated| {
        let mods = modifiers(m);
        out.input.push(key(true, Key::Char(c), None, mods));
        out.input.push(key(false, Key::Char(c), None, mods));
    };
    for ev in events {
        match ev {
            egui::Event::PointerMoved(pos) => {
                if let Some((x, y)) = map.to_remote(*pos) {
                    out.input.push(InputEvent::PointerMove { x, y });
                }
            }
            egui::Event::PointerButton {
                pos,
                button,
                pressed,
                ..
            } => {
                let button = match button {
                    egui::PointerButton::Primary => MouseButton::Left,
                    egui::PointerButton::Secondary => MouseButton::Right,
                    egui::PointerButton::Middle => MouseButton::Middle,
                    _ => continue,
                };
                match map.to_remote(*pos) {
                    Some((x, y)) => {
                        out.input.push(InputEvent::PointerMove { x, y });
                        out.input.push(InputEvent::Button {
                            button,
                            down: *pressed,
                        });
                    }
                    // A release outside still releases the button held on the remote side.
                    None if !*pressed => out.input.push(InputEvent::Button {
                        button,
                        down: false,
                    }),
                    None => {}
                }
            }
            egui::Event::MouseWheel { unit, delta, .. } => {
                let per_click = match unit {
                    egui::MouseWheelUnit::Line => 1.0,
                    egui::MouseWheelUnit::Page => 0.1,
                    egui::MouseWheelUnit::Point => POINTS_PER_CLICK,
                };
                // egui's positive y scrolls up; the protocol's positive dy scrolls down.
                wheel.x += -delta.x / per_click;
                wheel.y += -delta.y / per_click;
                let (dx, dy) = (wheel.x.trunc(), wheel.y.trunc());
                wheel.x -= dx;
                wheel.y -= dy;
                if dx != 0.0 || dy != 0.0 {
                    out.input.push(InputEvent::Wheel {
                        dx: dx as i32,
                        dy: dy as i32,
                    });
                }
            }
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
                if *pressed && m.ctrl && m.alt && *k == egui::Key::G {
                    out.release_grab = true;
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

    struct Offset;
    impl PointerMap for Offset {
        fn to_remote(&self, pos: egui::Pos2) -> Option<(u32, u32)> {
            (pos.x >= 10.0 && pos.y >= 10.0).then(|| ((pos.x - 10.0) as u32, (pos.y - 10.0) as u32))
        }
    }

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
        let t = translate(&events, &Offset, &mut WheelRest::default());
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
        let t = translate(&events, &Offset, &mut WheelRest::default());
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
        let t = translate(&events, &Offset, &mut WheelRest::default());
        assert!(t.release_grab);
        assert!(t.input.is_empty());
    }

    #[test]
    fn pointer_maps_to_the_remote_screen_and_wheels_add_up() {
        let events = [
            egui::Event::PointerMoved(egui::pos2(15.0, 30.0)),
            egui::Event::PointerMoved(egui::pos2(1.0, 1.0)),
            egui::Event::PointerButton {
                pos: egui::pos2(12.0, 12.0),
                button: egui::PointerButton::Primary,
                pressed: true,
                modifiers: egui::Modifiers::NONE,
            },
        ];
        let t = translate(&events, &Offset, &mut WheelRest::default());
        assert_eq!(
            t.input,
            vec![
                InputEvent::PointerMove { x: 5, y: 20 },
                InputEvent::PointerMove { x: 2, y: 2 },
                InputEvent::Button {
                    button: MouseButton::Left,
                    down: true
                }
            ]
        );
        let mut rest = WheelRest::default();
        let half = egui::Event::MouseWheel {
            unit: egui::MouseWheelUnit::Point,
            delta: egui::vec2(0.0, -20.0),
            modifiers: egui::Modifiers::NONE,
            phase: egui::TouchPhase::Move,
            source: egui::MouseWheelSource::Unknown,
        };
        assert!(translate(std::slice::from_ref(&half), &Offset, &mut rest)
            .input
            .is_empty());
        assert_eq!(
            translate(&[half], &Offset, &mut rest).input,
            vec![InputEvent::Wheel { dx: 0, dy: 1 }]
        );
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
