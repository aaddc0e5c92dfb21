//! One domain's messages in one language, built in or laid over from a desk's directory.
//!
//! A [`Catalogue`] holds the chosen language's bundle and, for any other language, English
//! beneath it: a message the chosen language lacks is said in English, and one no catalogue has
//! is shown as its key. Either is logged (once per key) and remembered ([`Catalogue::missing`]),
//! so tests can check that a window used no word its catalogue lacks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fluent_bundle::concurrent::FluentBundle;
use fluent_bundle::{FluentArgs, FluentResource, FluentValue};
use unic_langid::LanguageIdentifier;

use crate::Lang;

/// The environment variable naming a directory of extra or replacement catalogues,
/// `<dir>/<lang>/<domain>.ftl`.
pub const LOCALE_DIR_VAR: &str = "TANDEM_LOCALE_DIR";

/// The domains there are catalogues for: one per program window.
pub const DOMAINS: &[&str] = &["agent", "console"];

/// The languages built into the programs.
pub const EMBEDDED_LANGS: &[&str] = &["en", "es"];

/// The built-in catalogue of `domain` in `lang`, if there is one.
pub fn embedded(domain: &str, lang: &Lang) -> Option<&'static str> {
    Some(match (lang.code(), domain) {
        ("en", "agent") => include_str!("../locales/en/agent.ftl"),
        ("es", "agent") => include_str!("../locales/es/agent.ftl"),
        ("en", "console") => include_str!("../locales/en/console.ftl"),
        ("es", "console") => include_str!("../locales/es/console.ftl"),
        _ => return None,
    })
}

type Bundle = FluentBundle<FluentResource>;

/// The words of one domain in one language.
pub struct Catalogue {
    domain: String,
    lang: Lang,
    bundle: Bundle,
    /// English, under any other language.
    english: Option<Bundle>,
    missing: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalogue")
            .field("domain", &self.domain)
            .field("lang", &self.lang)
            .finish_non_exhaustive()
    }
}

fn language_id(lang: &Lang) -> LanguageIdentifier {
    lang.code()
        .parse()
        .unwrap_or_else(|_| LanguageIdentifier::default())
}

/// Adds `source` to `bundle`, messages already there replaced; a syntax error costs only the
/// entries it spoils, and is logged.
fn add(bundle: &mut Bundle, source: String, origin: &str) {
    let resource = match FluentResource::try_new(source) {
        Ok(r) => r,
        Err((r, errors)) => {
            tracing::warn!(file = origin, errors = ?errors, "syntax errors in a catalogue; the entries they spoil are skipped");
            r
        }
    };
    bundle.add_resource_overriding(resource);
}

fn bundle(domain: &str, lang: &Lang, locale_dir: Option<&Path>) -> Bundle {
    let mut b = Bundle::new_concurrent(vec![language_id(lang)]);
    b.set_use_isolating(false);
    if let Some(src) = embedded(domain, lang) {
        add(
            &mut b,
            src.to_string(),
            &format!("built-in {lang}/{domain}.ftl"),
        );
    }
    if let Some(dir) = locale_dir {
        let path: PathBuf = dir.join(lang.code()).join(format!("{domain}.ftl"));
        match std::fs::read_to_string(&path) {
            Ok(src) => add(&mut b, src, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read a catalogue")
            }
        }
    }
    b
}

impl Catalogue {
    /// The catalogue of `domain` in `lang`, with any files in `$TANDEM_LOCALE_DIR` laid over.
    pub fn new(domain: &str, lang: &Lang) -> Catalogue {
        let dir = std::env::var_os(LOCALE_DIR_VAR)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from);
        Self::with_locale_dir(domain, lang, dir.as_deref())
    }

    /// The catalogue of `domain` in `lang`, with the files in `locale_dir` (if any) laid over.
    pub fn with_locale_dir(domain: &str, lang: &Lang, locale_dir: Option<&Path>) -> Catalogue {
        let english = (!lang.is_english()).then(|| bundle(domain, &Lang::english(), locale_dir));
        Catalogue {
            domain: domain.to_string(),
            lang: lang.clone(),
            bundle: bundle(domain, lang, locale_dir),
            english,
            missing: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn lang(&self) -> &Lang {
        &self.lang
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The words of message `key`.
    pub fn text(&self, key: &str) -> String {
        self.format(key, None)
    }

    /// The words of message `key` with its variables: `cat.fmt("code-expires", &[("minutes",
    /// 5.into())])`.
    pub fn fmt(&self, key: &str, args: &[(&str, FluentValue<'_>)]) -> String {
        let mut fa = FluentArgs::with_capacity(args.len());
        for (name, value) in args {
            fa.set(*name, value.clone());
        }
        self.format(key, Some(&fa))
    }

    /// Whether this language (not English beneath it) has message `key`.
    pub fn has(&self, key: &str) -> bool {
        self.bundle.has_message(key)
    }

    /// Every key asked for that this language lacked, so far.
    pub fn missing(&self) -> Vec<String> {
        self.missing
            .lock()
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn note_missing(&self, key: &str, said: &str) {
        let Ok(mut missing) = self.missing.lock() else {
            return;
        };
        if missing.insert(key.to_string()) {
            tracing::warn!(domain = %self.domain, lang = %self.lang, key, said, "a message is missing from the catalogue");
        }
    }

    fn format(&self, key: &str, args: Option<&FluentArgs<'_>>) -> String {
        let found = [Some(&self.bundle), self.english.as_ref()]
            .into_iter()
            .flatten()
            .enumerate()
            .find_map(|(depth, b)| Some((depth, b, b.get_message(key)?.value()?)));
        let Some((depth, bundle, pattern)) = found else {
            self.note_missing(key, "its key");
            return key.to_string();
        };
        if depth > 0 {
            self.note_missing(key, "in English");
        }
        let mut errors = Vec::new();
        let words = bundle.format_pattern(pattern, args, &mut errors);
        if !errors.is_empty() {
            tracing::warn!(domain = %self.domain, lang = %self.lang, key, errors = ?errors, "a message could not be filled in whole");
        }
        words.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, lang: &str, domain: &str, text: &str) {
        std::fs::create_dir_all(dir.join(lang)).unwrap();
        std::fs::write(dir.join(lang).join(format!("{domain}.ftl")), text).unwrap();
    }

    #[test]
    fn words_with_their_variables_and_no_isolation_marks() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "en",
            "test",
            "hello = Hello, { $name }!\nplain = Plain\n",
        );
        let cat = Catalogue::with_locale_dir("test", &Lang::english(), Some(dir.path()));
        assert_eq!(
            cat.fmt("hello", &[("name", "alice".into())]),
            "Hello, alice!"
        );
        assert_eq!(cat.text("plain"), "Plain");
        assert!(cat.missing().is_empty());
    }

    #[test]
    fn a_missing_message_is_its_key_or_english_and_is_remembered() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "en", "test", "only-english = In English\n");
        write(dir.path(), "es", "test", "both = Los dos\n");
        let cat = Catalogue::with_locale_dir("test", &Lang::spanish(), Some(dir.path()));
        assert_eq!(cat.text("both"), "Los dos");
        assert_eq!(cat.text("only-english"), "In English");
        assert_eq!(cat.text("nowhere"), "nowhere");
        assert_eq!(cat.missing(), vec!["nowhere", "only-english"]);
    }

    #[test]
    fn a_desk_file_is_laid_over_the_built_in_one() {
        let builtin = Catalogue::new("console", &Lang::spanish());
        assert_eq!(builtin.text("console-title"), "Consola de Tandem");
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "es",
            "console",
            "console-title = Consola de la mesa\nbroken = {\n",
        );
        let cat = Catalogue::with_locale_dir("console", &Lang::spanish(), Some(dir.path()));
        assert_eq!(cat.text("console-title"), "Consola de la mesa");
        // A new language, from the directory alone.
        write(
            dir.path(),
            "fr",
            "console",
            "console-title = Console Tandem\n",
        );
        let fr = Lang::from_locale("fr_FR.UTF-8").unwrap();
        let cat = Catalogue::with_locale_dir("console", &fr, Some(dir.path()));
        assert_eq!(cat.text("console-title"), "Console Tandem");
    }

    #[test]
    fn every_domain_is_built_in_in_every_language() {
        for domain in DOMAINS {
            for lang in EMBEDDED_LANGS {
                let lang = Lang::from_locale(lang).unwrap();
                assert!(
                    embedded(domain, &lang).is_some(),
                    "{lang}/{domain}.ftl is not built in"
                );
            }
        }
    }
}
