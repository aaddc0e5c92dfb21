//! Serving a selection we own: a program that pastes asks for a target, we put the content in
//! the property it names on its window and tell it so. Text is offered as `UTF8_STRING`,
//! `text/plain;charset=utf-8`, `STRING` and `text/plain` (Latin-1, characters beyond it as
//! `?`) and `TEXT`; an image as `image/png`. Anything else, or content the X server cannot take
//! in one request, is refused (the property `None`), as ICCCM says.

use protocol::clipboard::ClipContent;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ConnectionExt as _, EventMask, PropMode, SelectionNotifyEvent,
    SelectionRequestEvent, SELECTION_NOTIFY_EVENT,
};
use x11rb::wrapper::ConnectionExt as _;

use crate::{index, x_err, SelectionError, State};

/// Answers a program's request for the content of a selection we own.
pub(crate) fn answer(state: &State, req: &SelectionRequestEvent) -> Result<(), SelectionError> {
    let a = &state.atoms;
    // Obsolete clients name no property: the target is the property then.
    let property = if req.property == x11rb::NONE {
        req.target
    } else {
        req.property
    };
    let content = a
        .which(req.selection)
        .and_then(|w| state.owned[index(w)].as_ref());
    let put = match content {
        Some(content) => put(state, req, property, content),
        None => false,
    };
    let notify = SelectionNotifyEvent {
        response_type: SELECTION_NOTIFY_EVENT,
        sequence: 0,
        time: req.time,
        requestor: req.requestor,
        selection: req.selection,
        target: req.target,
        property: if put { property } else { x11rb::NONE },
    };
    state
        .conn
        .send_event(false, req.requestor, EventMask::NO_EVENT, notify)
        .map_err(x_err)?;
    state.conn.flush().map_err(x_err)
}

/// Puts `content` as the requested target into `property`; whether it could.
fn put(state: &State, req: &SelectionRequestEvent, property: Atom, content: &ClipContent) -> bool {
    let a = &state.atoms;
    let text_targets = [
        a.utf8_string,
        a.text_plain_utf8,
        a.string,
        a.text_plain,
        a.text,
    ];
    let written = if req.target == a.targets {
        let mut offered = vec![a.targets];
        match content {
            ClipContent::Text(_) => offered.extend_from_slice(&text_targets),
            ClipContent::Png(_) => offered.push(a.png),
        }
        state
            .conn
            .change_property32(
                PropMode::REPLACE,
                req.requestor,
                property,
                AtomEnum::ATOM,
                &offered,
            )
            .map(|_| ())
    } else {
        let (kind, bytes): (Atom, std::borrow::Cow<'_, [u8]>) = match content {
            ClipContent::Text(t) if req.target == a.string || req.target == a.text_plain => {
                let latin1 = t
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                    .collect::<Vec<u8>>();
                (req.target, latin1.into())
            }
            ClipContent::Text(t) if text_targets.contains(&req.target) => {
                let kind = if req.target == a.text {
                    a.utf8_string
                } else {
                    req.target
                };
                (kind, t.as_bytes().into())
            }
            ClipContent::Png(p) if req.target == a.png => (a.png, p.as_slice().into()),
            _ => return false,
        };
        state
            .conn
            .change_property8(PropMode::REPLACE, req.requestor, property, kind, &bytes)
            .map(|_| ())
    };
    match written {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot hand over the clipboard");
            false
        }
    }
}
