//! What a technician does with the help request of a session: escalate it (to a tier or a named
//! technician, with a note), hold it (park it in their own queue) or close it (resolved or not).
//! The script language and the console's session view both say it as a [`DeskAction`]; the
//! session passes it to the relay and ends once the relay has done it.

use protocol::control::{EscalationTarget, ToRelay};

/// One step of the session's help request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeskAction {
    Escalate { to: EscalationTarget, note: String },
    Hold { note: String },
    Close { resolved: bool, note: String },
}

impl DeskAction {
    /// The control message that asks the relay for it.
    pub fn message(&self) -> ToRelay {
        match self.clone() {
            DeskAction::Escalate { to, note } => ToRelay::Escalate { to, note },
            DeskAction::Hold { note } => ToRelay::Hold { note },
            DeskAction::Close { resolved, note } => ToRelay::Resolve { resolved, note },
        }
    }

    /// Its name in the session log and in JSON events: `escalated`, `held`, `resolved`,
    /// `unresolved`.
    pub fn name(&self) -> &'static str {
        match self {
            DeskAction::Escalate { .. } => "escalated",
            DeskAction::Hold { .. } => "held",
            DeskAction::Close { resolved: true, .. } => "resolved",
            DeskAction::Close { .. } => "unresolved",
        }
    }

    /// The step as a verb: `escalate`, `hold`, `close`.
    pub fn verb(&self) -> &'static str {
        match self {
            DeskAction::Escalate { .. } => "escalate",
            DeskAction::Hold { .. } => "hold",
            DeskAction::Close { .. } => "close",
        }
    }

    /// Where an escalation sends the request, in words: `tier 2`, or the technician's name.
    pub fn to(&self) -> Option<String> {
        match self {
            DeskAction::Escalate {
                to: EscalationTarget::Tier(t),
                ..
            } => Some(format!("tier {t}")),
            DeskAction::Escalate {
                to: EscalationTarget::Technician(name),
                ..
            } => Some(name.clone()),
            _ => None,
        }
    }

    pub fn note(&self) -> &str {
        match self {
            DeskAction::Escalate { note, .. }
            | DeskAction::Hold { note }
            | DeskAction::Close { note, .. } => note,
        }
    }

    /// The record of it for the session log, with the relay's `words` for what it did.
    pub fn step(&self, request: u64, words: &str) -> protocol::sessionlog::DeskStep {
        protocol::sessionlog::DeskStep {
            request,
            action: self.name().to_string(),
            to: self.to(),
            note: self.note().to_string(),
            words: words.to_string(),
        }
    }
}

/// An escalation's target as a person writes it: `2` or `tier2` for a tier, otherwise a
/// technician's account name.
pub fn parse_target(word: &str) -> Result<EscalationTarget, String> {
    let digits = word.strip_prefix("tier").unwrap_or(word);
    match digits.parse::<u8>() {
        Ok(t @ 1..=3) => Ok(EscalationTarget::Tier(t)),
        Ok(t) => Err(format!("there is no tier {t}; tiers are 1, 2 and 3")),
        Err(_) if word.is_empty() => {
            Err("escalate to a tier (1 to 3) or a technician's name".into())
        }
        Err(_) => Ok(EscalationTarget::Technician(word.to_string())),
    }
}
