//! Every built-in catalogue is complete: each language has every message English has, with the
//! same variables, and none English lacks.

use words::{check, Lang, DOMAINS, EMBEDDED_LANGS};

#[test]
fn every_language_has_every_message_of_every_domain() {
    let mut problems = Vec::new();
    for domain in DOMAINS {
        for code in EMBEDDED_LANGS.iter().filter(|c| **c != "en") {
            let lang = Lang::from_locale(code).expect("a built-in language code");
            for m in check::built_in(domain, &lang) {
                problems.push(format!("{code}/{domain}.ftl: {m}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "incomplete catalogues:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_built_in_catalogue_parses_and_is_not_empty() {
    for domain in DOMAINS {
        for code in EMBEDDED_LANGS {
            let lang = Lang::from_locale(code).expect("a built-in language code");
            let src = words::embedded(domain, &lang).expect("built in");
            let messages = check::messages(src)
                .unwrap_or_else(|e| panic!("{code}/{domain}.ftl does not parse: {e}"));
            assert!(!messages.is_empty(), "{code}/{domain}.ftl has no message");
        }
    }
}
