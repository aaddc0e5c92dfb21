//! Input events a technician sends to the agent, and the names of keys.
//!
//! Pointer positions are in framebuffer pixels (the agent maps them to its screen). A key event
//! carries both the key and the text it produces, so that the agent can inject "é" or "€" as text
//! even where no key of the local layout makes it, and modifiers as a set.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MouseButton {
    Left,
    Middle,
    Right,
}

impl MouseButton {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "left" | "1" => Some(Self::Left),
            "middle" | "2" => Some(Self::Middle),
            "right" | "3" => Some(Self::Right),
            _ => None,
        }
    }
}

/// Modifier keys held while a key event happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Modifiers {
    pub shift: bool,
    pub ctrl: bool,
    pub alt: bool,
    pub meta: bool,
}

impl Modifiers {
    pub const NONE: Modifiers = Modifiers {
        shift: false,
        ctrl: false,
        alt: false,
        meta: false,
    };

    pub fn is_empty(&self) -> bool {
        *self == Self::NONE
    }
}

/// Keys that have a name rather than a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NamedKey {
    Return,
    Tab,
    Escape,
    Backspace,
    Delete,
    Insert,
    Home,
    End,
    PageUp,
    PageDown,
    Left,
    Right,
    Up,
    Down,
    Space,
    Shift,
    Control,
    Alt,
    Meta,
    CapsLock,
    /// Function keys F1 to F24.
    F(u8),
    /// Print Screen (SysRq).
    PrintScreen,
}

const NAMED: &[(&str, NamedKey)] = &[
    ("return", NamedKey::Return),
    ("enter", NamedKey::Return),
    ("tab", NamedKey::Tab),
    ("escape", NamedKey::Escape),
    ("esc", NamedKey::Escape),
    ("backspace", NamedKey::Backspace),
    ("delete", NamedKey::Delete),
    ("del", NamedKey::Delete),
    ("insert", NamedKey::Insert),
    ("home", NamedKey::Home),
    ("end", NamedKey::End),
    ("pageup", NamedKey::PageUp),
    ("page_up", NamedKey::PageUp),
    ("prior", NamedKey::PageUp),
    ("pagedown", NamedKey::PageDown),
    ("page_down", NamedKey::PageDown),
    ("next", NamedKey::PageDown),
    ("left", NamedKey::Left),
    ("right", NamedKey::Right),
    ("up", NamedKey::Up),
    ("down", NamedKey::Down),
    ("space", NamedKey::Space),
    ("shift", NamedKey::Shift),
    ("ctrl", NamedKey::Control),
    ("control", NamedKey::Control),
    ("alt", NamedKey::Alt),
    ("meta", NamedKey::Meta),
    ("super", NamedKey::Meta),
    ("win", NamedKey::Meta),
    ("capslock", NamedKey::CapsLock),
    ("caps_lock", NamedKey::CapsLock),
    ("print", NamedKey::PrintScreen),
    ("printscreen", NamedKey::PrintScreen),
    ("print_screen", NamedKey::PrintScreen),
];

/// A key: one that produces a character, or a named one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Key {
    Char(char),
    Named(NamedKey),
}

impl Key {
    /// Parses a key name as written in scripts: a single character (`a`, `/`, `é`) or a name
    /// (`Return`, `Tab`, `F5`, `ctrl`), case-insensitive for names.
    pub fn parse(name: &str) -> Option<Key> {
        let mut chars = name.chars();
        if let (Some(c), None) = (chars.next(), chars.clone().next()) {
            return Some(Key::Char(c));
        }
        let lower = name.to_ascii_lowercase();
        if let Some((_, k)) = NAMED.iter().find(|(n, _)| *n == lower) {
            return Some(Key::Named(*k));
        }
        if let Some(n) = lower.strip_prefix('f').and_then(|n| n.parse::<u8>().ok()) {
            if (1..=24).contains(&n) {
                return Some(Key::Named(NamedKey::F(n)));
            }
        }
        None
    }

    /// The text this key produces on its own, if any.
    pub fn text(&self) -> Option<String> {
        match self {
            Key::Char(c) => Some(c.to_string()),
            Key::Named(NamedKey::Space) => Some(" ".into()),
            Key::Named(NamedKey::Return) => Some("\r".into()),
            Key::Named(NamedKey::Tab) => Some("\t".into()),
            Key::Named(_) => None,
        }
    }

    /// Which modifier this key is, if it is one.
    pub fn as_modifier(&self) -> Option<fn(&mut Modifiers) -> &mut bool> {
        match self {
            Key::Named(NamedKey::Shift) => Some(|m| &mut m.shift),
            Key::Named(NamedKey::Control) => Some(|m| &mut m.ctrl),
            Key::Named(NamedKey::Alt) => Some(|m| &mut m.alt),
            Key::Named(NamedKey::Meta) => Some(|m| &mut m.meta),
            _ => None,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Char(c) => write!(f, "{c}"),
            Key::Named(NamedKey::F(n)) => write!(f, "F{n}"),
            Key::Named(k) => write!(f, "{k:?}"),
        }
    }
}

/// One input event from the technician.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InputEvent {
    /// Move the pointer to this framebuffer position.
    PointerMove {
        x: u32,
        y: u32,
    },
    Button {
        button: MouseButton,
        down: bool,
    },
    /// Wheel clicks: positive `dy` scrolls down, positive `dx` right.
    Wheel {
        dx: i32,
        dy: i32,
    },
    Key {
        down: bool,
        key: Key,
        /// The text the key produces with these modifiers (e.g. "€"), if any.
        text: Option<String>,
        modifiers: Modifiers,
    },
}

/// Parses a key combination such as `ctrl+alt+t`, `Return` or `shift+Tab` into its modifiers
/// and main key. A `+` key itself is written `plus`.
pub fn parse_combo(combo: &str) -> Result<(Modifiers, Key), String> {
    let parts: Vec<&str> = combo.split('+').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "`{combo}` has an empty part; write a plus key as `plus`"
        ));
    }
    let mut mods = Modifiers::NONE;
    let (last, first) = parts.split_last().expect("split yields at least one part");
    for m in first {
        let key = Key::parse(m).ok_or_else(|| format!("unknown key `{m}` in `{combo}`"))?;
        let flag = key.as_modifier().ok_or_else(|| {
            format!("`{m}` in `{combo}` is not a modifier (shift, ctrl, alt, meta)")
        })?;
        *flag(&mut mods) = true;
    }
    let key = if last.eq_ignore_ascii_case("plus") {
        Key::Char('+')
    } else {
        Key::parse(last).ok_or_else(|| format!("unknown key `{last}` in `{combo}`"))?
    };
    Ok((mods, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combos_parse() {
        let (m, k) = parse_combo("ctrl+alt+t").unwrap();
        assert!(m.ctrl && m.alt && !m.shift);
        assert_eq!(k, Key::Char('t'));
        let (m, k) = parse_combo("shift+Tab").unwrap();
        assert!(m.shift);
        assert_eq!(k, Key::Named(NamedKey::Tab));
        assert_eq!(
            parse_combo("Return").unwrap().1,
            Key::Named(NamedKey::Return)
        );
        assert_eq!(parse_combo("F12").unwrap().1, Key::Named(NamedKey::F(12)));
        assert_eq!(parse_combo("ctrl+plus").unwrap().1, Key::Char('+'));
        assert!(parse_combo("ctrl+").is_err());
        assert!(parse_combo("x+a").is_err());
        assert!(parse_combo("hyperdrive").is_err());
    }
}
