//! Strings a peer supplies (software names, descriptions, end reasons, account names) are shown
//! to people: in a terminal, in a window, in the relay's admin output. A hostile peer could put
//! a carriage return or an ANSI escape in them to overwrite what the terminal showed before
//! ("Example Support" over the name the relay vouches for), or megabytes to push it off screen.
//!
//! [`clip`] bounds a string where it enters (the relay caps what it forwards), [`printable`]
//! makes it safe where it leaves: every control character, and the Unicode ones that reorder or
//! hide text, is written as a visible `\u{..}` escape, so nothing is lost and nothing acts.

use std::borrow::Cow;

/// The longest peer-supplied name or software string the relay forwards, in characters.
pub const MAX_PEER_STRING: usize = 128;

/// The longest end reason or error message a peer may send, in characters.
pub const MAX_REASON: usize = 512;

/// `text` cut to at most `max` characters (on a character boundary), with `…` marking a cut.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some(_) => {
            let keep = max.saturating_sub(1);
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            Cow::Owned(format!("{}…", &text[..end]))
        }
    }
}

/// Whether `c` must not reach a terminal or a label as itself: C0 and C1 controls (including
/// ESC, CR, backspace) and the bidirectional overrides and invisible marks that make text read
/// other than it is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'   // zero-width space/joiners, LRM/RLM
            | '\u{2028}'..='\u{202E}' // line/paragraph separators, bidi embeddings and overrides
            | '\u{2060}'..='\u{206F}' // word joiner, invisible operators, bidi isolates
            | '\u{FEFF}'              // zero-width no-break space
        )
}

/// `text` with every [unsafe](is_unsafe) character written as a visible escape (`\r` as
/// `\u{d}`). Borrowed when there is nothing to escape.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&c.escape_unicode().to_string());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// What the relay forwards of a peer-supplied string: clipped to `max` characters and made
/// printable, so a later reader that forgets to escape still shows nothing that acts.
pub fn tame(text: &str, max: usize) -> String {
    printable(&clip(text, max)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_escapes_are_made_visible() {
        let hostile = "Totally Official\r\x1b[2KExample Support\u{202E}gnp.exe";
        let shown = printable(hostile);
        assert!(!shown.chars().any(is_unsafe), "{shown}");
        assert!(shown.contains("\\u{d}"), "{shown}");
        assert!(shown.contains("\\u{1b}[2K"), "{shown}");
        assert!(shown.contains("\\u{202e}"), "{shown}");
        assert!(matches!(
            printable("technician 0.1.0 — ñ"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn clip_cuts_on_a_character_boundary_and_marks_the_cut() {
        assert_eq!(clip("short", 10), "short");
        let long = "é".repeat(200);
        let cut = clip(&long, 128);
        assert_eq!(cut.chars().count(), 128);
        assert!(cut.ends_with('…'));
        assert_eq!(clip("abcdef", 6), "abcdef");
        assert_eq!(clip("abcdefg", 6), "abcde…");
    }

    #[test]
    fn tame_bounds_the_escaped_length() {
        let huge = "\x1b".repeat(64 * 1024);
        let tamed = tame(&huge, MAX_PEER_STRING);
        // Each escape is at most 10 characters: the output stays bounded by the cap.
        assert!(tamed.len() <= MAX_PEER_STRING * 10 + 3, "{}", tamed.len());
    }
}
