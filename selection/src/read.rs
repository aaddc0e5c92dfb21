//! Reading a selection another program owns: ask for its targets, pick text (or a PNG image
//! where no text is offered), ask for that, and read the property it is put in, whole or in
//! the pieces of the INCR protocol. One [`Reading`] a selection at a time, moved along by the
//! events the X server sends; each step is checked against the size limits before it is kept.

use std::time::Instant;

use protocol::clipboard::{ClipContent, ClipKind, Selection, PNG_SIGNATURE};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, Property, PropertyNotifyEvent, SelectionNotifyEvent,
};

use crate::{x_err, Copied, SelectionError, State, READ_TIMEOUT};

/// Where a read stands.
enum Step {
    /// Asked for the owner's targets.
    Targets,
    /// Asked for the content as `target`.
    Data { kind: ClipKind, target: Atom },
    /// The owner sends the content in pieces; these have come so far.
    Pieces {
        kind: ClipKind,
        target: Atom,
        got: Vec<u8>,
    },
}

/// A read of one selection in progress.
pub(crate) struct Reading {
    which: Selection,
    step: Step,
    deadline: Instant,
}

impl Reading {
    /// Asks the owner of `which` what it offers.
    pub(crate) fn start(state: &State, which: Selection) -> Result<Option<Self>, SelectionError> {
        let a = &state.atoms;
        state
            .conn
            .convert_selection(
                state.window,
                a.selection(which),
                a.targets,
                a.property(which),
                x11rb::CURRENT_TIME,
            )
            .map_err(x_err)?;
        state.conn.flush().map_err(x_err)?;
        Ok(Some(Self {
            which,
            step: Step::Targets,
            deadline: Instant::now() + READ_TIMEOUT,
        }))
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// The owner answered a request: the targets, or the content (or that it is coming in
    /// pieces). `None` once the read is over.
    pub(crate) fn on_notify(
        self,
        state: &State,
        n: &SelectionNotifyEvent,
    ) -> Result<Option<Self>, SelectionError> {
        // The owner refused (or had nothing to give).
        if n.property == x11rb::NONE {
            return Ok(None);
        }
        let a = &state.atoms;
        let prop = a.property(self.which);
        match self.step {
            Step::Targets => {
                let reply = state
                    .conn
                    .get_property(true, state.window, prop, AtomEnum::ANY, 0, 1024)
                    .map_err(x_err)?
                    .reply()
                    .map_err(x_err)?;
                let offered: Vec<Atom> = reply.value32().map(|v| v.collect()).unwrap_or_default();
                let text = [
                    a.utf8_string,
                    a.text_plain_utf8,
                    a.string,
                    a.text_plain,
                    a.text,
                ];
                let pick = text
                    .iter()
                    .find(|t| offered.contains(t))
                    .map(|t| (ClipKind::Text, *t))
                    .or_else(|| offered.contains(&a.png).then_some((ClipKind::Png, a.png)));
                let Some((kind, target)) = pick else {
                    return Ok(None);
                };
                state
                    .conn
                    .convert_selection(
                        state.window,
                        a.selection(self.which),
                        target,
                        prop,
                        x11rb::CURRENT_TIME,
                    )
                    .map_err(x_err)?;
                state.conn.flush().map_err(x_err)?;
                Ok(Some(Self {
                    step: Step::Data { kind, target },
                    ..self
                }))
            }
            Step::Data { kind, target } => {
                // One more 32-bit unit than the limit allows tells a value over it.
                let units = (kind.limit() / 4 + 1) as u32;
                let reply = state
                    .conn
                    .get_property(true, state.window, prop, AtomEnum::ANY, 0, units)
                    .map_err(x_err)?
                    .reply()
                    .map_err(x_err)?;
                state.conn.flush().map_err(x_err)?;
                if reply.type_ == a.incr {
                    // Deleting the property (done by reading it) asks for the first piece.
                    return Ok(Some(Self {
                        step: Step::Pieces {
                            kind,
                            target,
                            got: Vec::new(),
                        },
                        ..self
                    }));
                }
                let bytes = reply.value.len() + reply.bytes_after as usize;
                if bytes > kind.limit() {
                    state.tell(Copied::TooLarge {
                        selection: self.which,
                        kind,
                        bytes,
                    });
                    return Ok(None);
                }
                deliver(state, self.which, target, reply.value);
                Ok(None)
            }
            // Pieces come as property changes.
            pieces @ Step::Pieces { .. } => Ok(Some(Self {
                step: pieces,
                ..self
            })),
        }
    }

    /// Our property changed: in the INCR protocol, the next piece is there.
    pub(crate) fn on_property(
        self,
        state: &State,
        p: &PropertyNotifyEvent,
    ) -> Result<Option<Self>, SelectionError> {
        let Step::Pieces {
            kind,
            target,
            mut got,
        } = self.step
        else {
            return Ok(Some(self));
        };
        if p.state != Property::NEW_VALUE {
            return Ok(Some(Self {
                step: Step::Pieces { kind, target, got },
                ..self
            }));
        }
        let left = (kind.limit() - got.len()) / 4 + 1;
        let reply = state
            .conn
            .get_property(
                true,
                state.window,
                state.atoms.property(self.which),
                AtomEnum::ANY,
                0,
                left as u32,
            )
            .map_err(x_err)?
            .reply()
            .map_err(x_err)?;
        state.conn.flush().map_err(x_err)?;
        // An empty piece ends the content.
        if reply.value.is_empty() {
            deliver(state, self.which, target, got);
            return Ok(None);
        }
        let bytes = got.len() + reply.value.len() + reply.bytes_after as usize;
        if bytes > kind.limit() {
            state.tell(Copied::TooLarge {
                selection: self.which,
                kind,
                bytes,
            });
            return Ok(None);
        }
        got.extend_from_slice(&reply.value);
        Ok(Some(Self {
            step: Step::Pieces { kind, target, got },
            deadline: Instant::now() + READ_TIMEOUT,
            ..self
        }))
    }
}

/// Hands the content of `which` on, as text or as a PNG image.
fn deliver(state: &State, which: Selection, target: Atom, bytes: Vec<u8>) {
    let a = &state.atoms;
    let content = if target == a.png {
        if !bytes.starts_with(&PNG_SIGNATURE) {
            return;
        }
        ClipContent::Png(bytes)
    } else if target == a.string || target == a.text_plain {
        // Latin-1.
        ClipContent::Text(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        ClipContent::Text(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    };
    if content.is_empty() {
        return;
    }
    state.tell(Copied::Content {
        selection: which,
        content,
    });
}
