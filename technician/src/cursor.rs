//! The user's own pointer as this technician receives it: shapes on the session stream (checked,
//! kept by number, recorded), positions in sealed datagrams (read by a task of their own, so
//! that none waits behind a screen update), handed to a window at once through a
//! [`CursorHook`], and recorded (a few a second).

use std::sync::{Arc, Mutex};

use link::report::Reporter;
use link::sealed::DatagramReceiver;
use protocol::cursor::{CursorPosition, CursorShape, PeerDatagram};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// What a window is told of the user's pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorUpdate {
    /// A shape (checked); positions name it by number.
    Shape(CursorShape),
    /// Where the pointer is now, in the remote screen's pixels.
    At(CursorPosition),
}

/// Called for every shape and position as it arrives; quick, and from any thread.
pub type CursorHook = Arc<dyn Fn(CursorUpdate) + Send + Sync>;

/// Reads the agent's datagrams until the connection goes: each position to `hook` at once and
/// to `positions` (for the log); `Err` with the words of a datagram that did not open.
pub async fn read_datagrams(
    mut rx: DatagramReceiver,
    hook: Option<CursorHook>,
    positions: mpsc::Sender<CursorPosition>,
) -> Result<(), String> {
    loop {
        match rx.recv().await {
            Ok(PeerDatagram::Cursor(at)) => {
                if let Some(h) = &hook {
                    h(CursorUpdate::At(at));
                }
                // Only the latest matters: one the session has not taken yet is replaced.
                let _ = positions.try_send(at);
            }
            Err(e) if e.is_violation() => return Err(e.to_string()),
            Err(_) => return Ok(()),
        }
    }
}

/// Says a new shape (JSON event `cursor_shape`, with the SHA-256 of its pixels, so that a test
/// can compare it with what the user's screen shows).
pub fn report_shape(report: Reporter, shape: &CursorShape) {
    report.event(
        "cursor_shape",
        json!({
            "id": shape.id, "width": shape.width, "height": shape.height,
            "hot_x": shape.hot_x, "hot_y": shape.hot_y,
            "sha256": hex::encode(Sha256::digest(&shape.pixels)),
        }),
        "",
    );
}

/// Says where the pointer is (JSON event `cursor`, with `--report-updates` only: there are many).
pub fn report_position(report: Reporter, at: &CursorPosition) {
    report.event(
        "cursor",
        json!({ "x": at.x, "y": at.y, "shape": at.shape, "visible": at.visible }),
        "",
    );
}

/// The latest shape and position, for a window that draws them.
#[derive(Debug, Default)]
pub struct CursorState {
    pub shapes: protocol::cursor::ShapeCache,
    pub at: Option<CursorPosition>,
    /// The shape drawn: the position's, once it is known; until then the one before.
    shown: Option<u32>,
}

impl CursorState {
    /// Takes in an update; whether what is drawn changes.
    pub fn apply(&mut self, update: CursorUpdate) -> bool {
        match update {
            CursorUpdate::Shape(s) => {
                let id = s.id;
                self.shapes.insert(s);
                let now_shown = self.at.is_some_and(|a| a.shape == id);
                if now_shown {
                    self.shown = Some(id);
                }
                now_shown
            }
            CursorUpdate::At(at) => {
                let changed = self.at != Some(at);
                self.at = Some(at);
                if self.shapes.get(at.shape).is_some() {
                    self.shown = Some(at.shape);
                }
                changed
            }
        }
    }

    /// The shape to draw and where, if the pointer is on the screen seen and a shape is known.
    pub fn drawn(&self) -> Option<(&CursorShape, i32, i32)> {
        let at = self.at.filter(|a| a.visible)?;
        let shape = self.shapes.get(self.shown?)?;
        Some((shape, at.x, at.y))
    }
}

/// A cursor state shared between the session's tasks and a window.
pub type SharedCursor = Arc<Mutex<CursorState>>;

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(id: u32) -> CursorShape {
        CursorShape {
            id,
            width: 1,
            height: 1,
            hot_x: 0,
            hot_y: 0,
            pixels: vec![0, 0, 0, 255],
        }
    }

    #[test]
    fn a_position_before_its_shape_keeps_the_shape_before() {
        let mut c = CursorState::default();
        let at = |shape| CursorPosition {
            x: 3,
            y: 4,
            shape,
            visible: true,
        };
        assert!(c.apply(CursorUpdate::At(at(1))));
        assert!(c.drawn().is_none(), "no shape known yet");
        assert!(c.apply(CursorUpdate::Shape(shape(1))));
        assert_eq!(c.drawn().map(|(s, x, y)| (s.id, x, y)), Some((1, 3, 4)));
        // The pointer changes to shape 2, whose image is still on its way.
        c.apply(CursorUpdate::At(at(2)));
        assert_eq!(c.drawn().map(|(s, ..)| s.id), Some(1));
        c.apply(CursorUpdate::Shape(shape(2)));
        assert_eq!(c.drawn().map(|(s, ..)| s.id), Some(2));
        c.apply(CursorUpdate::At(CursorPosition {
            visible: false,
            ..at(2)
        }));
        assert!(c.drawn().is_none());
    }
}
