//! The keyboard grab while the viewer has the keyboard: keys the local desktop would take
//! (Alt+Tab, Super, Print Screen) go to the remote machine instead.
//!
//! The grab is made on the window system connection of the console's own window (winit's Xlib
//! display), so that the key events keep arriving where egui reads them; a grab made on another
//! connection would take them away from it. Only on X11; elsewhere the console has no grab and
//! the "Send keys" menu sends such keys. Ctrl+Alt+G releases the grab.

use std::ffi::c_void;
use std::ptr::NonNull;

use x11_dl::xlib::{self, Xlib};

pub struct KeyboardGrab {
    xlib: Xlib,
    display: NonNull<c_void>,
    window: u64,
    grabbed: bool,
}

impl KeyboardGrab {
    /// The grab for `window` on the display of `frame`'s window; fails off X11.
    pub fn new(frame: &eframe::Frame, window: u32) -> Result<Self, String> {
        use raw_window_handle::{HasDisplayHandle, RawDisplayHandle};
        let handle = frame.display_handle().map_err(|e| e.to_string())?;
        let display = match handle.as_raw() {
            RawDisplayHandle::Xlib(h) => h.display.ok_or("no Xlib display")?,
            _ => return Err("not an Xlib display".into()),
        };
        let xlib = Xlib::open().map_err(|e| e.to_string())?;
        Ok(Self {
            xlib,
            display,
            window: u64::from(window),
            grabbed: false,
        })
    }

    /// Grabs or releases the keyboard. Call it from the window's thread (Xlib's display is not
    /// shared across threads).
    pub fn set(&mut self, on: bool) {
        if on == self.grabbed {
            return;
        }
        let dpy = self.display.as_ptr().cast::<xlib::Display>();
        // SAFETY: the display is winit's, alive as long as the window; called on its thread.
        unsafe {
            if on {
                (self.xlib.XSetInputFocus)(
                    dpy,
                    self.window,
                    xlib::RevertToParent,
                    xlib::CurrentTime,
                );
                let status = (self.xlib.XGrabKeyboard)(
                    dpy,
                    self.window,
                    xlib::True,
                    xlib::GrabModeAsync,
                    xlib::GrabModeAsync,
                    xlib::CurrentTime,
                );
                self.grabbed = status == xlib::GrabSuccess;
                if !self.grabbed {
                    tracing::info!(status, "the keyboard could not be grabbed");
                }
            } else {
                (self.xlib.XUngrabKeyboard)(dpy, xlib::CurrentTime);
                self.grabbed = false;
            }
            (self.xlib.XFlush)(dpy);
        }
    }

    /// Gives the window the keyboard focus (what a window manager does on a click; without
    /// one, as on a bare X server, nothing else does).
    pub fn focus(&mut self) {
        let dpy = self.display.as_ptr().cast::<xlib::Display>();
        // SAFETY: as in `set`.
        unsafe {
            (self.xlib.XSetInputFocus)(dpy, self.window, xlib::RevertToParent, xlib::CurrentTime);
            (self.xlib.XFlush)(dpy);
        }
    }

    pub fn is_grabbed(&self) -> bool {
        self.grabbed
    }
}

impl Drop for KeyboardGrab {
    fn drop(&mut self) {
        self.set(false);
    }
}
