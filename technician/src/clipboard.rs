//! The clipboard shared with the user while this technician holds control: what the user
//! copies arrives here, and what this technician copies goes to the user.
//!
//! With `--clipboard` (and in the console) the technician's own X selections are watched and
//! set (the `selection` crate); without it, a script's `clipboard TEXT` still sends, and what
//! arrives is only said. What is copied is sent only while the agent says the clipboard is
//! shared with this technician (it holds control, the user allows control and has not switched
//! the clipboard off); the agent checks again, and drops anything else. Every clipboard
//! passed is recorded in the session log with its direction, kind and size, and its content
//! only where the relay's policy asks for it (`record_clipboard`).

use std::sync::{Arc, Mutex};

use link::report::Reporter;
use protocol::clipboard::{size_words, ClipboardData};
use protocol::sessionlog::{ClipDirection, ClipboardRecord};
use serde_json::json;

use crate::record::Recorder;

/// Why a clipboard is not sent: the agent has not said it is shared with this technician.
pub const NOT_SHARED: &str =
    "the user does not share the clipboard with you now (you do not hold control, the user allows viewing only, or switched the clipboard off)";

/// Records a clipboard that passed and says it (JSON event `clipboard`); `content`: the relay's
/// policy keeps its content in the log.
pub fn note(
    recorder: &Option<Arc<Mutex<Recorder>>>,
    report: Reporter,
    direction: ClipDirection,
    data: &ClipboardData,
    content: bool,
) {
    let record = ClipboardRecord {
        direction,
        selection: data.selection,
        kind: data.content.kind(),
        bytes: data.content.len() as u64,
        content: content.then(|| data.content.clone()),
    };
    if let Some(r) = recorder {
        r.lock().expect("recorder lock").clipboard(&record);
    }
    let what = format!(
        "{} {} ({})",
        data.selection.name(),
        record.kind.name(),
        size_words(data.content.len())
    );
    report.event(
        "clipboard",
        json!({
            "direction": direction.name(), "selection": data.selection.name(),
            "kind": record.kind.name(), "bytes": record.bytes,
        }),
        match direction {
            ClipDirection::ToUser => format!("Your {what} was copied to the user."),
            ClipDirection::FromUser => format!("The user's {what} was copied to you."),
        },
    );
}

/// Says that something was not sent to the user, and why.
pub fn refused(report: Reporter, data: &ClipboardData, why: &str) {
    report.event(
        "clipboard_refused",
        json!({
            "direction": ClipDirection::ToUser.name(), "selection": data.selection.name(),
            "kind": data.content.kind().name(), "bytes": data.content.len(), "message": why,
        }),
        format!("Not copied to the user: {why}."),
    );
}

/// This display's X selections, when the clipboard is shared (`--clipboard`, the console).
pub struct LocalClipboard {
    selections: Option<selection::Selections>,
    copied: tokio::sync::mpsc::Receiver<selection::Copied>,
    report: Reporter,
}

impl LocalClipboard {
    /// Watches this display's selections when `enabled`; says why not when it cannot.
    pub fn open(enabled: bool, report: Reporter) -> Self {
        let selection::Watched {
            selections,
            copied,
            failed,
        } = selection::watch(enabled);
        if let Some(e) = failed {
            report.event(
                "clipboard_unavailable",
                json!({ "message": e.to_string() }),
                format!("The clipboard cannot be shared: {e}."),
            );
        }
        Self {
            selections,
            copied,
            report,
        }
    }

    /// What this technician copies next: `None` for something not to send (over the limit,
    /// said), never anything when the clipboard is not shared.
    pub async fn next(&mut self) -> Option<ClipboardData> {
        if self.selections.is_none() {
            return std::future::pending().await;
        }
        match self.copied.recv().await {
            Some(selection::Copied::Content { selection, content }) => {
                Some(ClipboardData { selection, content })
            }
            Some(selection::Copied::TooLarge {
                selection,
                kind,
                bytes,
            }) => {
                self.report.event(
                    "clipboard_too_large",
                    json!({ "selection": selection.name(), "kind": kind.name(), "bytes": bytes, "limit": kind.limit() }),
                    format!(
                        "What you copied ({} of {}) is more than the {} the shared clipboard takes; it was not sent.",
                        kind.name(),
                        size_words(bytes),
                        size_words(kind.limit())
                    ),
                );
                None
            }
            None => std::future::pending().await,
        }
    }

    /// Puts what the user copied on this display (only said, when the clipboard is not shared
    /// here).
    pub fn paste(&self, data: ClipboardData) {
        if let Some(s) = &self.selections {
            s.set(data.selection, data.content);
        }
    }
}
