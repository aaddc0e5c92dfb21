//! The pointer over the remote screen, read straight from the viewer's child window.
//!
//! The child window selects pointer motion and buttons itself, so the X server delivers them to
//! the presenter's connection rather than to the console's window: a move over the remote screen
//! goes to the agent at once, without waiting for (or causing) an egui frame. A thread reads that
//! connection: pointer events become input events (while the user allows control), exposures
//! repaint the child from the framebuffer. A click on the remote screen also gives it the
//! keyboard, which the window then grabs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use protocol::input::{InputEvent, MouseButton};
use tokio::sync::mpsc;
use x11rb::connection::Connection;
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use super::present::Scale;
use crate::viewer::Viewer;

/// How child-window pixels map to remote pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChildMap {
    pub scale: Scale,
    /// Size of the child window and of the remote screen.
    pub child: (u32, u32),
    pub remote: (u32, u32),
}

impl ChildMap {
    /// The remote pixel under child pixel (`x`, `y`), clamped to the screen (a button held
    /// keeps reporting when the pointer leaves the window).
    pub fn to_remote(&self, x: i32, y: i32) -> (u32, u32) {
        let (rw, rh) = self.remote;
        let (rx, ry) = match self.scale {
            Scale::OneToOne { offset_x, offset_y } => (
                i64::from(x) + i64::from(offset_x),
                i64::from(y) + i64::from(offset_y),
            ),
            Scale::Fit => {
                let sx = f64::from(rw) / f64::from(self.child.0.max(1));
                let sy = f64::from(rh) / f64::from(self.child.1.max(1));
                (
                    ((f64::from(x) + 0.5) * sx).floor() as i64,
                    ((f64::from(y) + 0.5) * sy).floor() as i64,
                )
            }
        };
        (
            rx.clamp(0, i64::from(rw.saturating_sub(1))) as u32,
            ry.clamp(0, i64::from(rh.saturating_sub(1))) as u32,
        )
    }
}

/// Where the child window's pointer events go.
#[derive(Default)]
pub struct PointerRoute {
    state: Mutex<RouteState>,
    /// The remote screen was clicked: the window gives it the keyboard.
    clicked: AtomicBool,
}

#[derive(Default)]
struct RouteState {
    input: Option<mpsc::Sender<InputEvent>>,
    control: bool,
    map: Option<ChildMap>,
}

impl PointerRoute {
    /// The session's input channel, and whether the user allows control.
    pub fn set_input(&self, input: Option<mpsc::Sender<InputEvent>>, control: bool) {
        let mut s = self.state.lock().expect("route lock");
        s.input = input;
        s.control = control;
    }

    pub fn set_map(&self, map: Option<ChildMap>) {
        self.state.lock().expect("route lock").map = map;
    }

    /// Whether the remote screen was clicked since the last call.
    pub fn take_clicked(&self) -> bool {
        self.clicked.swap(false, Ordering::SeqCst)
    }

    fn send(&self, events: &[InputEvent]) {
        let s = self.state.lock().expect("route lock");
        if !s.control {
            return;
        }
        if let Some(tx) = &s.input {
            for e in events {
                let _ = tx.try_send(e.clone());
            }
        }
    }

    fn map(&self) -> Option<ChildMap> {
        self.state.lock().expect("route lock").map
    }

    /// Turns one X event of the child window into input; returns whether it was an exposure.
    fn handle(&self, ev: &Event) -> bool {
        let at = |x: i16, y: i16| {
            self.map().map(|m| {
                let (x, y) = m.to_remote(i32::from(x), i32::from(y));
                InputEvent::PointerMove { x, y }
            })
        };
        match ev {
            Event::Expose(e) => return e.count == 0,
            Event::MotionNotify(m) => {
                if let Some(mv) = at(m.event_x, m.event_y) {
                    self.send(&[mv]);
                }
            }
            Event::ButtonPress(b) | Event::ButtonRelease(b) => {
                let down = matches!(ev, Event::ButtonPress(_));
                let Some(mv) = at(b.event_x, b.event_y) else {
                    return false;
                };
                if down {
                    self.clicked.store(true, Ordering::SeqCst);
                }
                let button = match b.detail {
                    1 => Some(MouseButton::Left),
                    2 => Some(MouseButton::Middle),
                    3 => Some(MouseButton::Right),
                    _ => None,
                };
                match (button, b.detail) {
                    (Some(button), _) => self.send(&[mv, InputEvent::Button { button, down }]),
                    // Wheel clicks are buttons 4 to 7; only their presses count.
                    (None, 4..=7) if down => {
                        let (dx, dy) = match b.detail {
                            4 => (0, -1),
                            5 => (0, 1),
                            6 => (-1, 0),
                            _ => (1, 0),
                        };
                        self.send(&[mv, InputEvent::Wheel { dx, dy }]);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        false
    }
}

/// Reads the child window's events until the connection closes. `presenter` is locked only
/// after `viewer` (the lock order of [`super::present::Presenter`]).
pub fn spawn(
    conn: Arc<RustConnection>,
    route: Arc<PointerRoute>,
    viewer: Arc<Mutex<Viewer>>,
    presenter: super::net::SharedPresenter,
    wake: Arc<dyn Fn() + Send + Sync>,
) {
    let spawned = std::thread::Builder::new()
        .name("viewer-events".into())
        .spawn(move || {
            while let Ok(ev) = conn.wait_for_event() {
                if route.handle(&ev) {
                    let v = viewer.lock().expect("viewer lock");
                    if let Some(p) = presenter.lock().expect("presenter").as_mut() {
                        if let Err(e) = p.redraw(v.framebuffer()) {
                            tracing::warn!(error = %e, "the viewer could not be repainted");
                        }
                    }
                }
                if matches!(ev, Event::ButtonPress(_)) {
                    wake();
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no thread for the viewer's events");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_pixels_map_to_remote_pixels() {
        let one = ChildMap {
            scale: Scale::OneToOne {
                offset_x: 100,
                offset_y: 50,
            },
            child: (800, 600),
            remote: (1920, 1080),
        };
        assert_eq!(one.to_remote(0, 0), (100, 50));
        assert_eq!(one.to_remote(-20, 5000), (80, 1079));
        let fit = ChildMap {
            scale: Scale::Fit,
            child: (960, 540),
            remote: (1920, 1080),
        };
        assert_eq!(fit.to_remote(0, 0), (1, 1));
        assert_eq!(fit.to_remote(959, 539), (1919, 1079));
    }

    #[test]
    fn pointer_input_goes_only_with_control() {
        let route = PointerRoute::default();
        let (tx, mut rx) = mpsc::channel(8);
        route.set_input(Some(tx.clone()), false);
        route.set_map(Some(ChildMap {
            scale: Scale::Fit,
            child: (100, 100),
            remote: (100, 100),
        }));
        let motion = Event::MotionNotify(x11rb::protocol::xproto::MotionNotifyEvent {
            event_x: 10,
            event_y: 20,
            ..Default::default()
        });
        route.handle(&motion);
        assert!(rx.try_recv().is_err(), "view only");
        route.set_input(Some(tx), true);
        route.handle(&motion);
        assert_eq!(
            rx.try_recv().unwrap(),
            InputEvent::PointerMove { x: 10, y: 20 }
        );
    }
}
