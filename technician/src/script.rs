//! Input scripts: one action a line, for automation by support desks and for tests.
//!
//! ```text
//! # comments and blank lines are ignored
//! move X Y              pointer to framebuffer pixel X,Y
//! click left|right|middle
//! down BUTTON|KEY       press and hold a mouse button or a key (e.g. `down shift`)
//! up BUTTON|KEY         release it
//! wheel DX DY           wheel clicks; positive DY scrolls down, positive DX right
//! type TEXT             the rest of the line, as typed text (\n Return, \t Tab, \\ backslash)
//! key COMBO             a key with modifiers: ctrl+alt+t, Return, shift+Tab, F5
//! wait MS               pause
//! wait-change MS        pause until the screen changes, or MS pass
//! snapshot FILE.png     write the screen as the technician sees it
//! end                   end the session
//!
//! # in a session taken from the desk's queue
//! escalate TIER|NAME NOTE  pass the request up to tier 2 or 3, or to one technician, with a
//!                       note; the session goes on until whoever takes it joins (and you `end`)
//! hold [NOTE]           park the request in your own queue, to take it again later (ends the
//!                       session)
//! resolve [NOTE]        close the request as solved (ends the session)
//! unresolved [NOTE]     close it as not solved (ends the session)
//!
//! # with several technicians in one session
//! handover NAME         give control to another technician the user allowed control
//! takeover              take control (a lead who joined with `technician monitor`)
//! wait-control WHO MS   wait until WHO holds control (a name, `me`, or `other`: anyone but
//!                       you), or fail after MS
//!
//! # the session's tools
//! chat TEXT             a chat message to the user (and the session's other technicians)
//! clipboard TEXT        put TEXT on the user's clipboard (CLIPBOARD), while you hold control
//! monitor N|all         see the user's monitor N (from 0), or all of them as one desktop;
//!                       waits (up to 5 s) until the agent shows it
//!
//! # files (only the technician holding control may move them)
//! send PATH             send a file or a folder to the user; waits until every file arrived
//!                       and its SHA-256 matched (fails if the user declines)
//! fetch PATH DIR        fetch a file or folder of the user's machine into DIR here (where
//!                       the user allows it: `agent --allow-files`); DIR is the last word
//! ls PATH               list a folder of the user's machine: its folders and files with their
//!                       sizes (where the user allows browsing: `agent --allow-browse`)
//! ```
//!
//! The whole script is checked before the session starts; an error names its line. It plays
//! once the remote screen has arrived, except the `chat` lines it begins with: those go as
//! soon as the session is sealed, while the user is still being asked.

use std::path::{Path, PathBuf};

use protocol::input::{self, InputEvent, Key, Modifiers, MouseButton, NamedKey};
use protocol::monitor::MonitorChoice;

use crate::desk::{self, DeskAction};

/// One action of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Move {
        x: u32,
        y: u32,
    },
    Click(MouseButton),
    ButtonDown(MouseButton),
    ButtonUp(MouseButton),
    KeyDown(Key),
    KeyUp(Key),
    Wheel {
        dx: i32,
        dy: i32,
    },
    Type(String),
    Key {
        modifiers: Modifiers,
        key: Key,
    },
    Wait {
        ms: u64,
    },
    WaitChange {
        ms: u64,
    },
    Snapshot(PathBuf),
    End,
    /// Escalate, hold or close the session's help request.
    Desk(DeskAction),
    /// Give control to the participant of this account name.
    HandOver(String),
    /// Take control (a lead monitoring the session).
    TakeOver,
    /// Wait until `who` holds control, failing after `ms`.
    WaitControl {
        who: Holder,
        ms: u64,
    },
    /// A chat message.
    Chat(String),
    /// Text for the user's clipboard.
    Clipboard(String),
    /// See another monitor of the user's, or all of them.
    Monitor(MonitorChoice),
    /// Send files or folders to the user (one offer), and wait until they arrived.
    Send(Vec<PathBuf>),
    /// Fetch a file or folder of the user's machine into a folder here, and wait until it
    /// arrived.
    Fetch {
        path: String,
        dir: PathBuf,
    },
    /// List a folder of the user's machine (where the user allows browsing), and wait for it.
    List(String),
}

/// Whom a script waits for to hold control.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// This technician.
    Me,
    /// Anyone but this technician.
    Other,
    /// The technician of this account name.
    Named(String),
}

/// An action and the line it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub line: usize,
    pub action: Action,
}

/// A script error, naming its line.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{file}, line {line}: {message}")]
pub struct ScriptError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Reads and checks a script file.
pub fn load(path: &Path) -> Result<Vec<Step>, ScriptError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScriptError {
        file: path.display().to_string(),
        line: 0,
        message: format!("cannot read the script: {e}"),
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses a script's text. `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Step>, ScriptError> {
    let mut steps = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let action = parse_line(trimmed).map_err(|message| ScriptError {
            file: file.to_string(),
            line,
            message,
        })?;
        steps.push(Step { line, action });
    }
    Ok(steps)
}

fn number<T: std::str::FromStr>(word: Option<&str>, what: &str) -> Result<T, String> {
    let w = word.ok_or_else(|| format!("{what} is missing"))?;
    w.parse()
        .map_err(|_| format!("`{w}` is not a valid {what}"))
}

fn no_more<'a>(mut words: impl Iterator<Item = &'a str>, verb: &str) -> Result<(), String> {
    match words.next() {
        None => Ok(()),
        Some(extra) => Err(format!(
            "`{verb}` takes no more arguments; `{extra}` is extra"
        )),
    }
}

fn button_or_key(word: Option<&str>, verb: &str) -> Result<Result<MouseButton, Key>, String> {
    let w = word
        .ok_or_else(|| format!("`{verb}` needs a mouse button (left, middle, right) or a key"))?;
    if let Some(b) = MouseButton::parse(w) {
        return Ok(Ok(b));
    }
    Key::parse(w).map(Err).ok_or_else(|| {
        format!("`{w}` is neither a mouse button (left, middle, right) nor a key name")
    })
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(o) => return Err(format!("unknown escape `\\{o}`; use \\n, \\t or \\\\")),
            None => return Err("a lone `\\` ends the text; write `\\\\` for a backslash".into()),
        }
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Action, String> {
    let (verb, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let mut words = rest.split_whitespace();
    let action = match verb {
        "move" => Action::Move {
            x: number(words.next(), "x coordinate")?,
            y: number(words.next(), "y coordinate")?,
        },
        "click" => {
            let w = words.next().ok_or("`click` needs a button: left, middle or right")?;
            Action::Click(MouseButton::parse(w).ok_or_else(|| format!("`{w}` is not a mouse button (left, middle, right)"))?)
        }
        "down" => match button_or_key(words.next(), verb)? {
            Ok(b) => Action::ButtonDown(b),
            Err(k) => Action::KeyDown(k),
        },
        "up" => match button_or_key(words.next(), verb)? {
            Ok(b) => Action::ButtonUp(b),
            Err(k) => Action::KeyUp(k),
        },
        "wheel" => Action::Wheel {
            dx: number(words.next(), "wheel dx")?,
            dy: number(words.next(), "wheel dy")?,
        },
        "type" => {
            // The rest of the line, exactly: one separating space is not part of the text.
            let text = unescape(rest)?;
            if text.is_empty() {
                return Err("`type` needs text".into());
            }
            return Ok(Action::Type(text));
        }
        "key" => {
            let combo = words.next().ok_or("`key` needs a key or combination, e.g. ctrl+alt+t")?;
            let (modifiers, key) = input::parse_combo(combo)?;
            Action::Key { modifiers, key }
        }
        "wait" => Action::Wait {
            ms: number(words.next(), "duration in ms")?,
        },
        "wait-change" => Action::WaitChange {
            ms: number(words.next(), "duration in ms")?,
        },
        "snapshot" => {
            let path = rest.trim();
            if path.is_empty() {
                return Err("`snapshot` needs a file name".into());
            }
            return Ok(Action::Snapshot(PathBuf::from(path)));
        }
        "end" => Action::End,
        "escalate" => {
            let rest = rest.trim_start();
            let (to, note) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let to = desk::parse_target(to)?;
            let note = unescape(note.trim())?;
            if note.is_empty() {
                return Err("`escalate` needs a note for whoever takes the request next, e.g. `escalate 2 the driver needs an administrator`".into());
            }
            return Ok(Action::Desk(DeskAction::Escalate { to, note }));
        }
        "handover" => {
            let name = words
                .next()
                .ok_or("`handover` needs the account name of the technician to give control to")?;
            Action::HandOver(name.to_string())
        }
        "takeover" => Action::TakeOver,
        "wait-control" => {
            let who = words.next().ok_or(
                "`wait-control` needs who (a technician's name, `me` or `other`) and a time in ms",
            )?;
            let who = match who {
                "me" => Holder::Me,
                "other" => Holder::Other,
                name => Holder::Named(name.to_string()),
            };
            Action::WaitControl {
                who,
                ms: number(words.next(), "duration in ms")?,
            }
        }
        "send" => {
            let path = rest.trim();
            if path.is_empty() {
                return Err("`send` needs the file or folder to send".into());
            }
            return Ok(Action::Send(vec![PathBuf::from(path)]));
        }
        "fetch" => {
            let rest = rest.trim();
            let Some((path, dir)) = rest.rsplit_once(char::is_whitespace) else {
                return Err("`fetch` needs the path on the user's machine and a folder here to put it in, e.g. `fetch /var/log/Xorg.0.log logs`".into());
            };
            return Ok(Action::Fetch {
                path: path.trim().to_string(),
                dir: PathBuf::from(dir),
            });
        }
        "ls" => {
            let path = rest.trim();
            if path.is_empty() {
                return Err("`ls` needs the folder on the user's machine, e.g. `ls ~/Documents`".into());
            }
            return Ok(Action::List(path.to_string()));
        }
        "hold" => {
            let note = unescape(rest.trim())?;
            return Ok(Action::Desk(DeskAction::Hold { note }));
        }
        "chat" => {
            let text = unescape(rest.trim())?;
            if text.len() > protocol::chat::MAX_CHAT_BYTES {
                return Err(format!(
                    "a chat message has at most {} bytes",
                    protocol::chat::MAX_CHAT_BYTES
                ));
            }
            return protocol::chat::outgoing(&text)
                .map(Action::Chat)
                .ok_or_else(|| "`chat` needs a message".into());
        }
        "clipboard" => {
            // The rest of the line, exactly, as for `type`.
            let text = unescape(rest)?;
            if text.is_empty() {
                return Err("`clipboard` needs text".into());
            }
            if text.len() > protocol::clipboard::MAX_CLIPBOARD_TEXT {
                return Err(format!(
                    "clipboard text has at most {} bytes",
                    protocol::clipboard::MAX_CLIPBOARD_TEXT
                ));
            }
            return Ok(Action::Clipboard(text));
        }
        "monitor" => {
            let w = words
                .next()
                .ok_or("`monitor` needs a monitor's number (from 0) or `all`")?;
            Action::Monitor(
                MonitorChoice::parse(w)
                    .ok_or_else(|| format!("`{w}` is neither a monitor's number nor `all`"))?,
            )
        }
        "resolve" | "unresolved" => {
            let note = unescape(rest.trim())?;
            let resolved = verb == "resolve";
            return Ok(Action::Desk(DeskAction::Close { resolved, note }));
        }
        other => {
            return Err(format!(
                "unknown action `{other}`; actions are move, click, down, up, wheel, type, key, wait, wait-change, snapshot, end, escalate, hold, resolve, unresolved, handover, takeover, wait-control, chat, clipboard, monitor, send, fetch, ls"
            ))
        }
    };
    no_more(words, verb)?;
    Ok(action)
}

fn key_event(down: bool, key: Key, text: Option<String>, modifiers: Modifiers) -> InputEvent {
    InputEvent::Key {
        down,
        key,
        text,
        modifiers,
    }
}

/// The input events an action sends (empty for waits, snapshots and end).
pub fn events(action: &Action) -> Vec<InputEvent> {
    match action {
        Action::Move { x, y } => vec![InputEvent::PointerMove { x: *x, y: *y }],
        Action::Click(b) => vec![
            InputEvent::Button {
                button: *b,
                down: true,
            },
            InputEvent::Button {
                button: *b,
                down: false,
            },
        ],
        Action::ButtonDown(b) => vec![InputEvent::Button {
            button: *b,
            down: true,
        }],
        Action::ButtonUp(b) => vec![InputEvent::Button {
            button: *b,
            down: false,
        }],
        Action::KeyDown(k) => vec![key_event(true, *k, k.text(), Modifiers::NONE)],
        Action::KeyUp(k) => vec![key_event(false, *k, None, Modifiers::NONE)],
        Action::Wheel { dx, dy } => vec![InputEvent::Wheel { dx: *dx, dy: *dy }],
        Action::Type(text) => text
            .chars()
            .flat_map(|c| {
                let key = match c {
                    '\n' => Key::Named(NamedKey::Return),
                    '\t' => Key::Named(NamedKey::Tab),
                    ' ' => Key::Named(NamedKey::Space),
                    c => Key::Char(c),
                };
                [
                    key_event(true, key, Some(c.to_string()), Modifiers::NONE),
                    key_event(false, key, None, Modifiers::NONE),
                ]
            })
            .collect(),
        Action::Key { modifiers, key } => {
            let held: Vec<Key> = [
                (modifiers.ctrl, NamedKey::Control),
                (modifiers.alt, NamedKey::Alt),
                (modifiers.shift, NamedKey::Shift),
                (modifiers.meta, NamedKey::Meta),
            ]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, k)| Key::Named(k))
            .collect();
            let mut out = Vec::new();
            let mut now = Modifiers::NONE;
            for k in &held {
                if let Some(flag) = k.as_modifier() {
                    *flag(&mut now) = true;
                }
                out.push(key_event(true, *k, None, now));
            }
            // The text the combination types, if it types any: none with ctrl, alt or meta.
            let text = if modifiers.ctrl || modifiers.alt || modifiers.meta {
                None
            } else if modifiers.shift {
                key.text().map(|t| t.to_uppercase())
            } else {
                key.text()
            };
            out.push(key_event(true, *key, text, *modifiers));
            out.push(key_event(false, *key, None, *modifiers));
            for k in held.iter().rev() {
                if let Some(flag) = k.as_modifier() {
                    *flag(&mut now) = false;
                }
                out.push(key_event(false, *k, None, now));
            }
            out
        }
        Action::Wait { .. }
        | Action::WaitChange { .. }
        | Action::Snapshot(_)
        | Action::End
        | Action::Desk(_)
        | Action::HandOver(_)
        | Action::TakeOver
        | Action::WaitControl { .. }
        | Action::Chat(_)
        | Action::Clipboard(_)
        | Action::Monitor(_)
        | Action::Send(_)
        | Action::Fetch { .. }
        | Action::List(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_action() {
        let text = "# a comment\n\nmove 10 20\nclick left\ndown shift\nup right\nwheel 0 -3\ntype Hello, World! é€\nkey ctrl+alt+t\nwait 50\nwait-change 500\nsnapshot out dir/a b.png\nend\n";
        let steps = parse(text, "s").unwrap();
        let actions: Vec<Action> = steps.iter().map(|s| s.action.clone()).collect();
        assert_eq!(steps[0].line, 3);
        assert_eq!(actions[0], Action::Move { x: 10, y: 20 });
        assert_eq!(actions[2], Action::KeyDown(Key::Named(NamedKey::Shift)));
        assert_eq!(actions[3], Action::ButtonUp(MouseButton::Right));
        assert_eq!(actions[4], Action::Wheel { dx: 0, dy: -3 });
        assert_eq!(actions[5], Action::Type("Hello, World! é€".into()));
        assert_eq!(actions[8], Action::WaitChange { ms: 500 });
        assert_eq!(actions[9], Action::Snapshot("out dir/a b.png".into()));
        assert_eq!(actions[10], Action::End);
    }

    #[test]
    fn the_tools_parse_and_their_limits_are_checked_before_the_session() {
        let steps = parse(
            "chat  who is calling? \\n\\tsee\n\nclipboard  two spaces kept\nmonitor 1\nmonitor all\n",
            "s",
        )
        .unwrap();
        let actions: Vec<Action> = steps.into_iter().map(|s| s.action).collect();
        assert_eq!(
            actions,
            vec![
                Action::Chat("who is calling? \n\tsee".into()),
                Action::Clipboard(" two spaces kept".into()),
                Action::Monitor(MonitorChoice::One(1)),
                Action::Monitor(MonitorChoice::All),
            ]
        );
        let long = format!("chat {}\n", "x".repeat(protocol::chat::MAX_CHAT_BYTES + 1));
        assert!(parse(&long, "s").unwrap_err().message.contains("at most"));
        assert!(parse("chat   \n", "s").is_err());
        assert!(parse("monitor left\n", "s").is_err());
        assert!(parse("clipboard\n", "s").is_err());
    }

    #[test]
    fn file_steps_take_a_path_and_fetch_a_folder_last() {
        let steps = parse(
            "send reports/march 2024.pdf\nfetch /var/log/Xorg 0.log logs\n",
            "s",
        )
        .unwrap();
        let actions: Vec<Action> = steps.into_iter().map(|s| s.action).collect();
        assert_eq!(
            actions,
            vec![
                Action::Send(vec!["reports/march 2024.pdf".into()]),
                Action::Fetch {
                    path: "/var/log/Xorg 0.log".into(),
                    dir: "logs".into()
                },
            ]
        );
        assert!(parse("send\n", "f").unwrap_err().message.contains("needs"));
        assert!(parse("fetch /etc/hosts\n", "f")
            .unwrap_err()
            .message
            .contains("a folder here"));
    }

    #[test]
    fn desk_steps_name_a_tier_or_a_technician_and_escalations_need_a_note() {
        use protocol::control::EscalationTarget;
        let steps = parse(
            "escalate 2 the driver needs an administrator\nescalate tier3 see the note\nescalate ana over to you\nhold\nresolve fixed the spooler\nunresolved the user left\n",
            "s",
        )
        .unwrap();
        let actions: Vec<Action> = steps.into_iter().map(|s| s.action).collect();
        assert_eq!(
            actions,
            vec![
                Action::Desk(DeskAction::Escalate {
                    to: EscalationTarget::Tier(2),
                    note: "the driver needs an administrator".into()
                }),
                Action::Desk(DeskAction::Escalate {
                    to: EscalationTarget::Tier(3),
                    note: "see the note".into()
                }),
                Action::Desk(DeskAction::Escalate {
                    to: EscalationTarget::Technician("ana".into()),
                    note: "over to you".into()
                }),
                Action::Desk(DeskAction::Hold { note: "".into() }),
                Action::Desk(DeskAction::Close {
                    resolved: true,
                    note: "fixed the spooler".into()
                }),
                Action::Desk(DeskAction::Close {
                    resolved: false,
                    note: "the user left".into()
                }),
            ]
        );
        assert!(parse("escalate 2\n", "f")
            .unwrap_err()
            .message
            .contains("needs a note"));
        assert!(parse("escalate 4 up\n", "f")
            .unwrap_err()
            .message
            .contains("no tier 4"));
    }

    #[test]
    fn control_steps_name_a_technician() {
        let steps = parse(
            "handover ana\ntakeover\nwait-control ana 5000\nwait-control me 100\nwait-control other 9\n",
            "s",
        )
        .unwrap();
        let actions: Vec<Action> = steps.into_iter().map(|s| s.action).collect();
        assert_eq!(
            actions,
            vec![
                Action::HandOver("ana".into()),
                Action::TakeOver,
                Action::WaitControl {
                    who: Holder::Named("ana".into()),
                    ms: 5000
                },
                Action::WaitControl {
                    who: Holder::Me,
                    ms: 100
                },
                Action::WaitControl {
                    who: Holder::Other,
                    ms: 9
                },
            ]
        );
        assert!(parse("handover\n", "f").is_err());
        assert!(parse("takeover now\n", "f").is_err());
        assert!(parse("wait-control ana\n", "f")
            .unwrap_err()
            .message
            .contains("duration"));
    }

    #[test]
    fn errors_name_their_line() {
        let e = parse("move 1 2\nclick sideways\n", "x.script").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("x.script, line 2: "), "{e}");
        assert_eq!(parse("move 1\n", "f").unwrap_err().line, 1);
        assert_eq!(parse("\n\njump\n", "f").unwrap_err().line, 3);
        assert!(parse("wait 5 6\n", "f").is_err());
        assert!(parse("type a\\q\n", "f").is_err());
    }

    #[test]
    fn typed_text_carries_its_characters_and_combos_nest_modifiers() {
        let ev = events(&Action::Type("é\n".into()));
        assert_eq!(ev.len(), 4);
        assert_eq!(
            ev[0],
            InputEvent::Key {
                down: true,
                key: Key::Char('é'),
                text: Some("é".into()),
                modifiers: Modifiers::NONE
            }
        );
        let ev = events(&Action::Key {
            modifiers: Modifiers {
                ctrl: true,
                shift: true,
                ..Modifiers::NONE
            },
            key: Key::Char('t'),
        });
        // ctrl down, shift down, t down, t up, shift up, ctrl up
        assert_eq!(ev.len(), 6);
        match &ev[2] {
            InputEvent::Key {
                key,
                modifiers,
                text,
                down,
            } => {
                assert!(*down && modifiers.ctrl && modifiers.shift);
                assert_eq!(*key, Key::Char('t'));
                assert_eq!(*text, None);
            }
            other => panic!("{other:?}"),
        }
        match &ev[5] {
            InputEvent::Key {
                key,
                down,
                modifiers,
                ..
            } => {
                assert!(!*down && modifiers.is_empty());
                assert_eq!(*key, Key::Named(NamedKey::Control));
            }
            other => panic!("{other:?}"),
        }
    }
}
