//! Which language a person reads: taken from the POSIX locale variables.
//!
//! The first of `LC_ALL`, `LC_MESSAGES` and `LANG` that is set and not empty decides, as the C
//! library does for messages. Its language part counts: `es_ES.UTF-8`, `es_MX` and `es` are all
//! Spanish. `C`, `POSIX`, anything unreadable, and any language with no catalogue (built in, or
//! in `$TANDEM_LOCALE_DIR/<lang>/`) are English.

use std::fmt;
use std::path::Path;

use crate::catalogue::{EMBEDDED_LANGS, LOCALE_DIR_VAR};

/// A language, by its primary subtag in lower case (`en`, `es`, `fr`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lang(String);

impl Lang {
    pub fn english() -> Lang {
        Lang("en".into())
    }

    pub fn spanish() -> Lang {
        Lang("es".into())
    }

    /// The language's code (`en`), as in the catalogue's directory name.
    pub fn code(&self) -> &str {
        &self.0
    }

    pub fn is_english(&self) -> bool {
        self.0 == "en"
    }

    /// The language of a locale name (`es_ES.UTF-8`, `pt-BR`, `de_DE@euro`, `fr`); `None` for
    /// `C`, `POSIX`, an empty value or anything that does not start with a language code.
    pub fn from_locale(value: &str) -> Option<Lang> {
        let value = value.trim();
        // language[_territory][.codeset][@modifier]; BCP 47 tags use '-'.
        let language = value
            .split(['.', '@'])
            .next()
            .unwrap_or("")
            .split(['_', '-'])
            .next()
            .unwrap_or("");
        let letters =
            (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_alphabetic());
        if !letters || value == "C" || value == "POSIX" {
            return None;
        }
        Some(Lang(language.to_ascii_lowercase()))
    }

    /// The language from this process's environment (see the module's documentation).
    pub fn from_env() -> Lang {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The language the variables given by `get` choose (`get("LANG")` is `LANG`'s value):
    /// [`Lang::from_env`] on any environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Lang {
        let chosen = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|name| get(name))
            .find(|value| !value.is_empty());
        let Some(lang) = chosen.as_deref().and_then(Lang::from_locale) else {
            return Lang::english();
        };
        let dir = get(LOCALE_DIR_VAR).filter(|d| !d.is_empty());
        if lang.has_catalogue(dir.as_deref().map(Path::new)) {
            lang
        } else {
            tracing::debug!(lang = %lang, "no catalogue for this language; English it is");
            Lang::english()
        }
    }

    /// Whether there is a catalogue in this language: built in, or a directory for it under
    /// `locale_dir`.
    pub fn has_catalogue(&self, locale_dir: Option<&Path>) -> bool {
        EMBEDDED_LANGS.contains(&self.code())
            || locale_dir.is_some_and(|d| d.join(self.code()).is_dir())
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn choose(vars: &[(&str, &str)]) -> Lang {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Lang::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn locale_names_give_their_language() {
        assert_eq!(Lang::from_locale("es_ES.UTF-8"), Some(Lang::spanish()));
        assert_eq!(Lang::from_locale("es_MX"), Some(Lang::spanish()));
        assert_eq!(Lang::from_locale("es"), Some(Lang::spanish()));
        assert_eq!(Lang::from_locale("ES_es.utf8"), Some(Lang::spanish()));
        assert_eq!(Lang::from_locale("en_GB.UTF-8"), Some(Lang::english()));
        assert_eq!(Lang::from_locale("de_DE@euro").unwrap().code(), "de");
        assert_eq!(Lang::from_locale("pt-BR").unwrap().code(), "pt");
        assert_eq!(Lang::from_locale("C"), None);
        assert_eq!(Lang::from_locale("C.UTF-8"), None);
        assert_eq!(Lang::from_locale("POSIX"), None);
        assert_eq!(Lang::from_locale(""), None);
        assert_eq!(Lang::from_locale("12_34"), None);
    }

    #[test]
    fn lc_all_then_lc_messages_then_lang() {
        assert_eq!(choose(&[("LANG", "es_ES.UTF-8")]), Lang::spanish());
        assert_eq!(
            choose(&[("LC_MESSAGES", "es_ES.UTF-8"), ("LANG", "en_US.UTF-8")]),
            Lang::spanish()
        );
        assert_eq!(
            choose(&[
                ("LC_ALL", "en_US.UTF-8"),
                ("LC_MESSAGES", "es_ES.UTF-8"),
                ("LANG", "es_ES.UTF-8")
            ]),
            Lang::english()
        );
        // An empty variable is as good as unset.
        assert_eq!(
            choose(&[("LC_ALL", ""), ("LANG", "es_ES.UTF-8")]),
            Lang::spanish()
        );
        assert_eq!(choose(&[]), Lang::english());
        assert_eq!(choose(&[("LANG", "C.UTF-8")]), Lang::english());
    }

    #[test]
    fn a_language_without_a_catalogue_is_english_unless_the_desk_adds_one() {
        assert_eq!(choose(&[("LANG", "fr_FR.UTF-8")]), Lang::english());
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("fr")).unwrap();
        let d = dir.path().to_str().unwrap();
        assert_eq!(
            choose(&[("LANG", "fr_FR.UTF-8"), (LOCALE_DIR_VAR, d)]).code(),
            "fr"
        );
    }
}
