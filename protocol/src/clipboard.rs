//! The clipboard shared between the person at the screen and the technician holding control.
//!
//! Either end sends [`ClipboardData`] when its own clipboard changes: UTF-8 text, or a PNG
//! image, for the X selection it came from (CLIPBOARD, what Ctrl+C copies; PRIMARY, what is
//! selected). The agent passes it on only between the person and the technician holding
//! control, and only while the person allows control and has not switched the clipboard off;
//! whatever else arrives is dropped and said.
//!
//! Limits, checked by the receiver ([`ClipboardData::check`]): [`MAX_CLIPBOARD_TEXT`] bytes of
//! text, [`MAX_CLIPBOARD_PNG`] bytes of PNG, which must begin with the PNG signature. A sender
//! does not send more (it says so instead), so more is a broken or hostile peer, and the
//! session ends with a reason.

use serde::{Deserialize, Serialize};

/// Most bytes of clipboard text (UTF-8).
pub const MAX_CLIPBOARD_TEXT: usize = 1 << 20;

/// Most bytes of a clipboard image (PNG).
pub const MAX_CLIPBOARD_PNG: usize = 8 << 20;

/// The eight bytes every PNG file begins with.
pub const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// Which X selection: the clipboard proper, or the text selected with the mouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Selection {
    /// CLIPBOARD: what Copy (Ctrl+C) put there.
    Clipboard,
    /// PRIMARY: what is selected, pasted with the middle button.
    Primary,
}

impl Selection {
    pub const BOTH: [Selection; 2] = [Selection::Clipboard, Selection::Primary];

    /// The name in JSON events and logs.
    pub fn name(self) -> &'static str {
        match self {
            Selection::Clipboard => "clipboard",
            Selection::Primary => "primary",
        }
    }
}

/// What a clipboard holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClipContent {
    Text(String),
    /// A PNG image, as the file's bytes.
    Png(#[serde(with = "serde_bytes")] Vec<u8>),
}

impl std::fmt::Debug for ClipContent {
    /// The kind and size, never the content (a password may be on a clipboard).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {} bytes", self.kind().name(), self.len())
    }
}

/// The kind of [`ClipContent`], for what is said and recorded about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClipKind {
    Text,
    Png,
}

impl ClipKind {
    pub fn name(self) -> &'static str {
        match self {
            ClipKind::Text => "text",
            ClipKind::Png => "png",
        }
    }

    /// Most bytes of this kind.
    pub fn limit(self) -> usize {
        match self {
            ClipKind::Text => MAX_CLIPBOARD_TEXT,
            ClipKind::Png => MAX_CLIPBOARD_PNG,
        }
    }
}

impl ClipContent {
    pub fn kind(&self) -> ClipKind {
        match self {
            ClipContent::Text(_) => ClipKind::Text,
            ClipContent::Png(_) => ClipKind::Png,
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        match self {
            ClipContent::Text(t) => t.len(),
            ClipContent::Png(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A clipboard's new content, from one end to the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipboardData {
    pub selection: Selection,
    pub content: ClipContent,
}

/// Why received clipboard data is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClipboardError {
    #[error("clipboard {kind} of {len} bytes; the limit is {max}")]
    TooLarge {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("a clipboard image that is not a PNG file")]
    NotPng,
}

impl ClipboardData {
    /// Checks received data against the limits.
    pub fn check(&self) -> Result<(), ClipboardError> {
        let kind = self.content.kind();
        if self.content.len() > kind.limit() {
            return Err(ClipboardError::TooLarge {
                kind: kind.name(),
                len: self.content.len(),
                max: kind.limit(),
            });
        }
        if let ClipContent::Png(p) = &self.content {
            if !p.starts_with(&PNG_SIGNATURE) {
                return Err(ClipboardError::NotPng);
            }
        }
        Ok(())
    }
}

/// `bytes` in words for people: `812 bytes`, `3.4 KB`, `1.2 MB`.
pub fn size_words(bytes: usize) -> String {
    match bytes {
        b if b < 1000 => format!("{b} bytes"),
        b if b < 1_000_000 => format!("{:.1} KB", b as f64 / 1e3),
        b => format!("{:.1} MB", b as f64 / 1e6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_the_png_signature_are_checked_and_content_never_printed() {
        let text = ClipboardData {
            selection: Selection::Clipboard,
            content: ClipContent::Text("secret password".into()),
        };
        assert_eq!(text.check(), Ok(()));
        assert!(!format!("{text:?}").contains("secret"));
        let big = ClipboardData {
            selection: Selection::Primary,
            content: ClipContent::Text("x".repeat(MAX_CLIPBOARD_TEXT + 1)),
        };
        assert!(matches!(big.check(), Err(ClipboardError::TooLarge { .. })));
        let fake = ClipboardData {
            selection: Selection::Clipboard,
            content: ClipContent::Png(b"GIF89a".to_vec()),
        };
        assert_eq!(fake.check(), Err(ClipboardError::NotPng));
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend_from_slice(&[0; 16]);
        let image = ClipboardData {
            selection: Selection::Clipboard,
            content: ClipContent::Png(png),
        };
        assert_eq!(image.check(), Ok(()));
        assert_eq!(size_words(812), "812 bytes");
        assert_eq!(size_words(3400), "3.4 KB");
        assert_eq!(size_words(1_200_000), "1.2 MB");
    }
}
