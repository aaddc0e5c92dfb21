//! Input injection on X11: an [`InputSink`] over `enigo` (XTEST).
//!
//! Pointer positions arrive in framebuffer pixels and are offset by the shared monitor's origin.
//! A key that carries text and no command modifier (ctrl, alt, meta) is typed as that text, so
//! "é", "€" or "!" arrive right whatever the local layout (enigo maps a spare keycode when no key
//! of the layout makes the character); other keys are pressed as keys, so combinations work.
//! Every key and button pressed is remembered until released, and [`InputSink::release_all`]
//! lets go of all of them: nothing stays stuck when a session ends or control is withdrawn.

use std::collections::HashSet;

use enigo::{Axis, Coordinate, Direction, Enigo, Keyboard, Mouse, Settings};
use protocol::input::{InputEvent, Key, MouseButton, NamedKey};

use crate::sink::{InputSink, SinkError};

pub struct X11InputSink {
    enigo: Enigo,
    origin: (i32, i32),
    size: (u32, u32),
    held_keys: HashSet<enigo::Key>,
    held_buttons: HashSet<enigo::Button>,
}

fn inject_err(e: impl std::fmt::Display) -> SinkError {
    SinkError::Inject(e.to_string())
}

fn button(b: MouseButton) -> enigo::Button {
    match b {
        MouseButton::Left => enigo::Button::Left,
        MouseButton::Middle => enigo::Button::Middle,
        MouseButton::Right => enigo::Button::Right,
    }
}

fn key(k: Key) -> enigo::Key {
    use enigo::Key as E;
    match k {
        Key::Char(c) => E::Unicode(c),
        Key::Named(n) => match n {
            NamedKey::Return => E::Return,
            NamedKey::Tab => E::Tab,
            NamedKey::Escape => E::Escape,
            NamedKey::Backspace => E::Backspace,
            NamedKey::Delete => E::Delete,
            NamedKey::Insert => E::Insert,
            NamedKey::Home => E::Home,
            NamedKey::End => E::End,
            NamedKey::PageUp => E::PageUp,
            NamedKey::PageDown => E::PageDown,
            NamedKey::Left => E::LeftArrow,
            NamedKey::Right => E::RightArrow,
            NamedKey::Up => E::UpArrow,
            NamedKey::Down => E::DownArrow,
            NamedKey::Space => E::Space,
            NamedKey::Shift => E::Shift,
            NamedKey::Control => E::Control,
            NamedKey::Alt => E::Alt,
            NamedKey::Meta => E::Meta,
            NamedKey::CapsLock => E::CapsLock,
            NamedKey::F(n) => match n {
                1 => E::F1,
                2 => E::F2,
                3 => E::F3,
                4 => E::F4,
                5 => E::F5,
                6 => E::F6,
                7 => E::F7,
                8 => E::F8,
                9 => E::F9,
                10 => E::F10,
                11 => E::F11,
                12 => E::F12,
                13 => E::F13,
                14 => E::F14,
                15 => E::F15,
                16 => E::F16,
                17 => E::F17,
                18 => E::F18,
                19 => E::F19,
                20 => E::F20,
                21 => E::F21,
                22 => E::F22,
                23 => E::F23,
                _ => E::F24,
            },
        },
    }
}

impl X11InputSink {
    /// Connects to the X server of `DISPLAY`. `origin` and `size` are the shared monitor's
    /// position and size on the X screen.
    pub fn open(origin: (i32, i32), size: (u32, u32)) -> Result<Self, SinkError> {
        let enigo = Enigo::new(&Settings::default()).map_err(|e| {
            SinkError::Inject(format!(
                "cannot connect to the X server for input (XTEST): {e}"
            ))
        })?;
        Ok(Self {
            enigo,
            origin,
            size,
            held_keys: HashSet::new(),
            held_buttons: HashSet::new(),
        })
    }

    fn press(&mut self, k: enigo::Key, down: bool) -> Result<(), SinkError> {
        if down {
            self.enigo.key(k, Direction::Press).map_err(inject_err)?;
            self.held_keys.insert(k);
        } else {
            self.enigo.key(k, Direction::Release).map_err(inject_err)?;
            self.held_keys.remove(&k);
        }
        Ok(())
    }
}

impl InputSink for X11InputSink {
    fn inject(&mut self, event: &InputEvent) -> Result<(), SinkError> {
        match event {
            InputEvent::PointerMove { x, y } => {
                let x = (*x).min(self.size.0.saturating_sub(1)) as i32 + self.origin.0;
                let y = (*y).min(self.size.1.saturating_sub(1)) as i32 + self.origin.1;
                self.enigo
                    .move_mouse(x, y, Coordinate::Abs)
                    .map_err(inject_err)
            }
            InputEvent::Button { button: b, down } => {
                let b = button(*b);
                if *down {
                    self.enigo.button(b, Direction::Press).map_err(inject_err)?;
                    self.held_buttons.insert(b);
                } else {
                    self.enigo
                        .button(b, Direction::Release)
                        .map_err(inject_err)?;
                    self.held_buttons.remove(&b);
                }
                Ok(())
            }
            InputEvent::Wheel { dx, dy } => {
                if *dy != 0 {
                    self.enigo.scroll(*dy, Axis::Vertical).map_err(inject_err)?;
                }
                if *dx != 0 {
                    self.enigo
                        .scroll(*dx, Axis::Horizontal)
                        .map_err(inject_err)?;
                }
                Ok(())
            }
            InputEvent::Key {
                down,
                key: k,
                text,
                modifiers,
            } => {
                let command = modifiers.ctrl || modifiers.alt || modifiers.meta;
                match (k, text) {
                    // Typed text: a click of the character, whatever the layout. Its release
                    // is already part of it.
                    (Key::Char(_), Some(t)) if *down && !command && !t.is_empty() => {
                        self.enigo.text(t).map_err(inject_err)
                    }
                    (Key::Char(c), None)
                        if !*down
                            && !command
                            && !self.held_keys.contains(&enigo::Key::Unicode(*c)) =>
                    {
                        Ok(())
                    }
                    _ => self.press(key(*k), *down),
                }
            }
        }
    }

    fn release_all(&mut self) -> Result<(), SinkError> {
        let mut first_err = None;
        for b in std::mem::take(&mut self.held_buttons) {
            if let Err(e) = self.enigo.button(b, Direction::Release) {
                first_err.get_or_insert(inject_err(e));
            }
        }
        for k in std::mem::take(&mut self.held_keys) {
            if let Err(e) = self.enigo.key(k, Direction::Release) {
                first_err.get_or_insert(inject_err(e));
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
