//! The clipboard the person shares with the technician holding control: what either copies
//! (CLIPBOARD and PRIMARY, UTF-8 text or a PNG image) the other can paste.
//!
//! Only while the person allows control, only with that one technician, and only while the
//! switch in the window is on ([`Policy`], pure): a technician who observes gets nothing and
//! gives nothing, and in view-only mode nothing is copied either way. Whatever is not passed
//! on is said (`clipboard_refused`), with its kind and size, never its content. The X side is
//! the `selection` crate: [`SharedClipboard`] owns it and its news.

use link::report::Reporter;
use protocol::clipboard::{size_words, ClipContent, ClipKind, ClipboardData, Selection};
use selection::{Copied, Selections};
use serde_json::json;
use tokio::sync::mpsc;
use tracing::warn;

use crate::shown;

/// Why a clipboard is not passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The person has not allowed control (or stopped it).
    NoControl,
    /// The person switched the shared clipboard off.
    SwitchedOff,
    /// The technician does not hold control.
    NotHolder,
    /// Nobody holds control to give it to.
    NoHolder,
}

impl Refusal {
    fn words(self) -> &'static str {
        match self {
            Refusal::NoControl => "the user does not allow control",
            Refusal::SwitchedOff => "the user switched the shared clipboard off",
            Refusal::NotHolder => "only the technician holding control shares the clipboard",
            Refusal::NoHolder => "no technician holds control",
        }
    }
}

/// Whether a clipboard may pass between the person and a technician.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The switch in the window (on unless the person turned it off).
    pub switched_on: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self { switched_on: true }
    }
}

impl Policy {
    /// May a clipboard pass now, given whether the person allows control and whether the
    /// technician concerned holds it (`None`: nobody holds it)?
    pub fn check(&self, control_allowed: bool, holds: Option<bool>) -> Result<(), Refusal> {
        if !self.switched_on {
            return Err(Refusal::SwitchedOff);
        }
        if !control_allowed {
            return Err(Refusal::NoControl);
        }
        match holds {
            None => Err(Refusal::NoHolder),
            Some(false) => Err(Refusal::NotHolder),
            Some(true) => Ok(()),
        }
    }
}

/// A line typed in the terminal that switches the shared clipboard: `clipboard off` or
/// `clipboard on`.
pub fn parse_switch(line: &str) -> Option<bool> {
    match line.trim().to_ascii_lowercase().as_str() {
        "clipboard on" => Some(true),
        "clipboard off" => Some(false),
        _ => None,
    }
}

/// Which way a clipboard went, as events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToTechnician,
    FromTechnician,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::ToTechnician => "to_technician",
            Direction::FromTechnician => "from_technician",
        }
    }
}

/// Says that a clipboard passed (`refused`: `None`) or why not; never its content.
pub fn report(
    report: Reporter,
    direction: Direction,
    technician: Option<&str>,
    selection: Selection,
    content: &ClipContent,
    refused: Option<Refusal>,
) {
    let kind = content.kind().name();
    let bytes = content.len();
    let who = technician
        .map(|t| shown::name(t).into_owned())
        .unwrap_or_else(|| "the technician".into());
    let what = format!("{} {kind} ({})", selection.name(), size_words(bytes));
    let fields = json!({
        "direction": direction.name(), "technician": technician, "selection": selection.name(),
        "kind": kind, "bytes": bytes,
    });
    match (refused, direction) {
        (None, Direction::ToTechnician) => report.event(
            "clipboard",
            fields,
            format!("Your {what} was copied to {who}."),
        ),
        (None, Direction::FromTechnician) => report.event(
            "clipboard",
            fields,
            format!("{who} copied {what} to your clipboard."),
        ),
        (Some(r), _) => {
            let mut fields = fields;
            fields["message"] = json!(r.words());
            report.event(
                "clipboard_refused",
                fields,
                format!("A {what} was not copied: {}.", r.words()),
            )
        }
    }
}

/// Says that something copied here is over the limit, so it is not shared.
pub fn report_too_large(report: Reporter, selection: Selection, kind: ClipKind, bytes: usize) {
    report.event(
        "clipboard_too_large",
        json!({ "selection": selection.name(), "kind": kind.name(), "bytes": bytes, "limit": kind.limit() }),
        format!(
            "What you copied ({} of {}) is more than the {} the shared clipboard takes; it was not copied.",
            kind.name(),
            size_words(bytes),
            size_words(kind.limit())
        ),
    );
}

/// The X selections of this display, when the clipboard is shared, and what is copied on it.
pub struct SharedClipboard {
    selections: Option<Selections>,
    copied: mpsc::Receiver<Copied>,
    pub policy: Policy,
}

impl SharedClipboard {
    /// Watches this display's selections when `enabled` (and the display allows it; otherwise
    /// says why, and nothing is shared).
    pub fn open(enabled: bool, report: Reporter) -> Self {
        let selection::Watched {
            selections,
            copied,
            failed,
        } = selection::watch(enabled);
        if let Some(e) = failed {
            warn!(error = %e, "the clipboard is not shared");
            report.event(
                "clipboard_unavailable",
                json!({ "message": e.to_string() }),
                format!("The clipboard cannot be shared: {e}."),
            );
        }
        Self {
            selections,
            copied,
            policy: Policy::default(),
        }
    }

    /// What is copied next on this display (never, when the clipboard is not shared).
    pub async fn next(&mut self) -> Copied {
        if self.selections.is_none() {
            return std::future::pending().await;
        }
        match self.copied.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    /// Whether this display's selections are shared at all.
    pub fn is_shared(&self) -> bool {
        self.selections.is_some()
    }

    /// Puts what the technician copied on this display.
    pub fn paste(&self, data: ClipboardData) {
        if let Some(s) = &self.selections {
            s.set(data.selection, data.content);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_holder_while_control_is_allowed_and_the_switch_is_on() {
        let on = Policy::default();
        assert_eq!(on.check(true, Some(true)), Ok(()));
        assert_eq!(on.check(false, Some(true)), Err(Refusal::NoControl));
        assert_eq!(on.check(true, Some(false)), Err(Refusal::NotHolder));
        assert_eq!(on.check(true, None), Err(Refusal::NoHolder));
        let off = Policy { switched_on: false };
        assert_eq!(off.check(true, Some(true)), Err(Refusal::SwitchedOff));
        assert_eq!(parse_switch(" Clipboard OFF\n"), Some(false));
        assert_eq!(parse_switch("clipboard on"), Some(true));
        assert_eq!(parse_switch("clipboard"), None);
    }
}
