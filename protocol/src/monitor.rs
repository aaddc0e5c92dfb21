//! Which of the shared machine's monitors a technician sees.
//!
//! The agent lists its monitors to each technician ([`Monitors`]) when the screen starts and
//! after each switch; a technician asks for another one, or for all of them as one desktop
//! ([`MonitorChoice`]), and the agent switches that technician's view (each technician has its
//! own capture). Its pointer then lands on the monitor it sees.
//!
//! Limits, checked by the receiver: at most [`MAX_MONITORS`] in a list, names of at most
//! [`crate::text::MAX_PEER_STRING`] characters, a shown monitor that is in the list.

use serde::{Deserialize, Serialize};

/// Most monitors an agent lists.
pub const MAX_MONITORS: usize = 16;

/// One monitor of the shared machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Monitor {
    /// Its name (`DP-1`, `HDMI-2`).
    pub name: String,
    /// Its place on the desktop.
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
    pub primary: bool,
}

/// What a technician sees: one monitor (by its place in the list), or all of them as one
/// desktop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MonitorChoice {
    One(u32),
    All,
}

impl MonitorChoice {
    /// As scripts and JSON write it: the monitor's number, or `all`.
    pub fn parse(word: &str) -> Option<Self> {
        if word.eq_ignore_ascii_case("all") {
            return Some(MonitorChoice::All);
        }
        word.parse().ok().map(MonitorChoice::One)
    }
}

impl std::fmt::Display for MonitorChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MonitorChoice::One(n) => write!(f, "{n}"),
            MonitorChoice::All => f.write_str("all"),
        }
    }
}

/// The agent's monitors, and which the receiving technician sees now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Monitors {
    pub list: Vec<Monitor>,
    pub shown: MonitorChoice,
}

/// Why a received list of monitors is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    #[error("the agent listed {0} monitors; there are at most {MAX_MONITORS}")]
    TooMany(usize),
    #[error("the agent shows monitor {0}, which its list does not have")]
    NotListed(u32),
}

impl Monitors {
    /// Checks a received list, and returns it with names made safe to show.
    pub fn checked(self) -> Result<Self, MonitorError> {
        if self.list.len() > MAX_MONITORS {
            return Err(MonitorError::TooMany(self.list.len()));
        }
        if let MonitorChoice::One(n) = self.shown {
            if n as usize >= self.list.len() {
                return Err(MonitorError::NotListed(n));
            }
        }
        let list = self
            .list
            .into_iter()
            .map(|m| Monitor {
                name: crate::text::tame(&m.name, crate::text::MAX_PEER_STRING),
                ..m
            })
            .collect();
        Ok(Self {
            list,
            shown: self.shown,
        })
    }

    /// The shown monitor in words: `1 (HDMI-1, 1280x1024)`, or `all (2560x1024)`.
    pub fn describe_shown(&self) -> String {
        match self.shown {
            MonitorChoice::One(n) => match self.list.get(n as usize) {
                Some(m) => format!("{n} ({}, {}x{})", m.name, m.width, m.height),
                None => n.to_string(),
            },
            MonitorChoice::All => {
                let (w, h) = self.desktop_size();
                format!("all ({w}x{h})")
            }
        }
    }

    /// The size of the desktop all the monitors make together.
    pub fn desktop_size(&self) -> (u32, u32) {
        let right = self
            .list
            .iter()
            .map(|m| i64::from(m.x) + i64::from(m.width))
            .max()
            .unwrap_or(0);
        let bottom = self
            .list
            .iter()
            .map(|m| i64::from(m.y) + i64::from(m.height))
            .max()
            .unwrap_or(0);
        (right.max(0) as u32, bottom.max(0) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Vec<Monitor> {
        vec![
            Monitor {
                name: "left".into(),
                x: 0,
                y: 0,
                width: 640,
                height: 480,
                primary: true,
            },
            Monitor {
                name: "right\x1b[2J".into(),
                x: 640,
                y: 0,
                width: 640,
                height: 480,
                primary: false,
            },
        ]
    }

    #[test]
    fn lists_are_checked_and_their_names_tamed() {
        let ok = Monitors {
            list: two(),
            shown: MonitorChoice::One(1),
        }
        .checked()
        .unwrap();
        assert!(!ok.list[1].name.contains('\x1b'));
        assert_eq!(ok.desktop_size(), (1280, 480));
        assert!(ok.describe_shown().starts_with("1 (right"));
        let missing = Monitors {
            list: two(),
            shown: MonitorChoice::One(2),
        };
        assert_eq!(missing.checked(), Err(MonitorError::NotListed(2)));
        let many = Monitors {
            list: two().into_iter().cycle().take(MAX_MONITORS + 1).collect(),
            shown: MonitorChoice::All,
        };
        assert!(matches!(many.checked(), Err(MonitorError::TooMany(_))));
    }

    #[test]
    fn choices_parse_as_scripts_write_them() {
        assert_eq!(MonitorChoice::parse("1"), Some(MonitorChoice::One(1)));
        assert_eq!(MonitorChoice::parse("ALL"), Some(MonitorChoice::All));
        assert_eq!(MonitorChoice::parse("-1"), None);
        assert_eq!(MonitorChoice::All.to_string(), "all");
    }
}
