//! Input injection on X11: an [`InputSink`] over XTEST.
//!
//! Pointer moves, buttons and the wheel go straight to XTEST on an x11rb connection, flushed and
//! not waited for, so an event costs one write. Keys go through `enigo`, which knows keysyms and
//! layouts: a key that carries text and no command modifier (ctrl, alt, meta) is typed as that
//! text, so "é", "€" or "!" arrive right whatever the local layout (enigo maps a spare keycode
//! when no key of the layout makes the character); other keys are pressed as keys, so
//! combinations work. Before a key, the pointer connection is synced, so events from the two
//! connections reach the server in the order the technician sent them.
//!
//! Pointer positions arrive in framebuffer pixels and are offset by the shared monitor's origin.
//! Every key and button pressed is remembered until released, and [`InputSink::release_all`]
//! lets go of all of them: nothing stays stuck when a session ends or control is withdrawn.

use std::collections::HashSet;

use enigo::{Direction, Enigo, Keyboard, Settings};
use protocol::input::{InputEvent, Key, MouseButton, NamedKey};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::protocol::xtest::ConnectionExt as _;
use x11rb::rust_connection::RustConnection;

use crate::sink::{InputSink, SinkError};

pub struct X11InputSink {
    enigo: Enigo,
    pointer: RustConnection,
    root: xproto::Window,
    /// Pointer requests written but not yet known to be processed.
    unsynced: bool,
    origin: (i32, i32),
    size: (u32, u32),
    held_keys: HashSet<enigo::Key>,
    held_buttons: HashSet<u8>,
}

fn inject_err(e: impl std::fmt::Display) -> SinkError {
    SinkError::Inject(e.to_string())
}

/// The core protocol's button number.
fn button(b: MouseButton) -> u8 {
    match b {
        MouseButton::Left => 1,
        MouseButton::Middle => 2,
        MouseButton::Right => 3,
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
            NamedKey::PrintScreen => E::PrintScr,
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
        let (pointer, screen) = x11rb::connect(None).map_err(|e| {
            SinkError::Inject(format!("cannot connect to the X server for input: {e}"))
        })?;
        let root = pointer.setup().roots[screen].root;
        Ok(Self {
            enigo,
            pointer,
            root,
            unsynced: false,
            origin,
            size,
            held_keys: HashSet::new(),
            held_buttons: HashSet::new(),
        })
    }

    /// One XTEST event on the pointer connection, written without waiting.
    fn fake(&mut self, kind: u8, detail: u8, x: i16, y: i16) -> Result<(), SinkError> {
        self.pointer
            .xtest_fake_input(kind, detail, x11rb::CURRENT_TIME, self.root, x, y, 0)
            .map_err(inject_err)?;
        self.pointer.flush().map_err(inject_err)?;
        self.unsynced = true;
        Ok(())
    }

    fn button(&mut self, detail: u8, down: bool) -> Result<(), SinkError> {
        let kind = if down {
            xproto::BUTTON_PRESS_EVENT
        } else {
            xproto::BUTTON_RELEASE_EVENT
        };
        self.fake(kind, detail, 0, 0)?;
        if down {
            self.held_buttons.insert(detail);
        } else {
            self.held_buttons.remove(&detail);
        }
        Ok(())
    }

    /// Waits until the server has processed the pointer events sent so far, so that a key sent
    /// on enigo's connection cannot overtake them.
    fn sync_pointer(&mut self) -> Result<(), SinkError> {
        if std::mem::take(&mut self.unsynced) {
            self.pointer
                .get_input_focus()
                .map_err(inject_err)?
                .reply()
                .map_err(inject_err)?;
        }
        Ok(())
    }

    fn press(&mut self, k: enigo::Key, down: bool) -> Result<(), SinkError> {
        self.sync_pointer()?;
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
        self.inject_while(event, &|| true)
    }

    /// Typed text goes a character at a time, each after asking `allowed`, so that withdrawn
    /// control stops a long text within a character.
    fn inject_while(
        &mut self,
        event: &InputEvent,
        allowed: &dyn Fn() -> bool,
    ) -> Result<(), SinkError> {
        if !allowed() {
            return Ok(());
        }
        match event {
            InputEvent::PointerMove { x, y } => {
                let x = (*x).min(self.size.0.saturating_sub(1)) as i32 + self.origin.0;
                let y = (*y).min(self.size.1.saturating_sub(1)) as i32 + self.origin.1;
                let clamp = |v: i32| v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16;
                // Detail 0: absolute coordinates on the root window.
                self.fake(xproto::MOTION_NOTIFY_EVENT, 0, clamp(x), clamp(y))
            }
            InputEvent::Button { button: b, down } => self.button(button(*b), *down),
            InputEvent::Wheel { dx, dy } => {
                // Wheel clicks are buttons 4 (up), 5 (down), 6 (left) and 7 (right).
                for (amount, positive, negative) in [(*dy, 5u8, 4u8), (*dx, 7, 6)] {
                    let detail = if amount > 0 { positive } else { negative };
                    for _ in 0..amount.unsigned_abs().min(100) {
                        self.button(detail, true)?;
                        self.button(detail, false)?;
                    }
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
                        self.sync_pointer()?;
                        let mut one = [0u8; 4];
                        for c in t.chars() {
                            if !allowed() {
                                break;
                            }
                            self.enigo
                                .text(c.encode_utf8(&mut one))
                                .map_err(inject_err)?;
                        }
                        Ok(())
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
            if let Err(e) = self.fake(xproto::BUTTON_RELEASE_EVENT, b, 0, 0) {
                first_err.get_or_insert(e);
            }
        }
        if let Err(e) = self.sync_pointer() {
            first_err.get_or_insert(e);
        }
        for k in std::mem::take(&mut self.held_keys) {
            if let Err(e) = self.enigo.key(k, Direction::Release) {
                first_err.get_or_insert(inject_err(e));
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
