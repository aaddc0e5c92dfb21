//! Every word a person reads in Tandem's windows, from one catalogue per language.
//!
//! The catalogues are [Fluent](https://projectfluent.org) files, one per *domain* (a program's
//! window: `agent`, `console`) and language: `locales/<lang>/<domain>.ftl`. They are built into
//! the programs, and a support desk can add or change a language without touching code by
//! putting its own files in `$TANDEM_LOCALE_DIR/<lang>/<domain>.ftl`: a file there is laid over
//! the built-in one of that language (its messages win; messages it lacks keep the built-in
//! words, or fall back to English).
//!
//! - [`Lang`]: which language, chosen from the locale (`LC_ALL`, then `LC_MESSAGES`, then
//!   `LANG`); a language without a catalogue is English.
//! - [`Catalogue`]: the messages of one domain in one language; [`Catalogue::text`] and
//!   [`Catalogue::fmt`] give the words. A missing message gives its key and a warning, never a
//!   panic.
//! - [`check`]: compares two catalogues message by message (same keys, same variables), which
//!   the tests use to keep every language complete;
//! - [`local_clock`]: the time of day a chat message was written, as both windows show it.

mod catalogue;
pub mod check;
mod clock;
mod lang;

pub use catalogue::{embedded, Catalogue, DOMAINS, EMBEDDED_LANGS, LOCALE_DIR_VAR};
pub use clock::local_clock;
pub use fluent_bundle::FluentValue as Value;
pub use lang::Lang;
