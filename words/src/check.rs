//! Whether a translation is complete: the same messages as the reference catalogue (English),
//! each with the same variables.
//!
//! A message's variables are the `{ $name }` it uses, wherever they stand (in a selector, in a
//! variant, in a function's arguments). Attributes count as messages of their own
//! (`key.attribute`), and so do terms (`-brand`). A syntax error is a mismatch too: a broken
//! entry is one a person would never read.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use fluent_syntax::ast;

use crate::{embedded, Lang};

/// Messages by key, each with the names of its variables.
pub type Messages = BTreeMap<String, BTreeSet<String>>;

/// One way in which a translation differs from its reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The translation lacks this message.
    Missing { key: String },
    /// The translation has a message the reference does not.
    Extra { key: String },
    /// Both have the message, with different variables.
    Variables {
        key: String,
        reference: BTreeSet<String>,
        translation: BTreeSet<String>,
    },
    /// A file does not parse.
    Syntax { file: String, errors: String },
    /// There is no such built-in catalogue.
    NoCatalogue { file: String },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing { key } => write!(f, "`{key}` is missing"),
            Mismatch::Extra { key } => write!(f, "`{key}` is not in the reference catalogue"),
            Mismatch::Variables {
                key,
                reference,
                translation,
            } => write!(
                f,
                "`{key}` uses the variables {translation:?}, the reference {reference:?}"
            ),
            Mismatch::Syntax { file, errors } => write!(f, "{file} does not parse: {errors}"),
            Mismatch::NoCatalogue { file } => write!(f, "{file} is not built in"),
        }
    }
}

fn inline_vars(e: &ast::InlineExpression<&str>, out: &mut BTreeSet<String>) {
    use ast::InlineExpression as I;
    match e {
        I::VariableReference { id } => {
            out.insert(id.name.to_string());
        }
        I::FunctionReference { arguments, .. } => call_vars(arguments, out),
        I::TermReference {
            arguments: Some(arguments),
            ..
        } => call_vars(arguments, out),
        I::Placeable { expression } => expression_vars(expression, out),
        I::StringLiteral { .. }
        | I::NumberLiteral { .. }
        | I::MessageReference { .. }
        | I::TermReference { .. } => {}
    }
}

fn call_vars(args: &ast::CallArguments<&str>, out: &mut BTreeSet<String>) {
    for a in &args.positional {
        inline_vars(a, out);
    }
    for a in &args.named {
        inline_vars(&a.value, out);
    }
}

fn expression_vars(e: &ast::Expression<&str>, out: &mut BTreeSet<String>) {
    match e {
        ast::Expression::Inline(i) => inline_vars(i, out),
        ast::Expression::Select { selector, variants } => {
            inline_vars(selector, out);
            for v in variants {
                pattern_vars(&v.value, out);
            }
        }
    }
}

fn pattern_vars(p: &ast::Pattern<&str>, out: &mut BTreeSet<String>) {
    for element in &p.elements {
        if let ast::PatternElement::Placeable { expression } = element {
            expression_vars(expression, out);
        }
    }
}

fn vars_of(p: Option<&ast::Pattern<&str>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(p) = p {
        pattern_vars(p, &mut out);
    }
    out
}

/// The messages of a catalogue's source, or its syntax errors.
pub fn messages(source: &str) -> Result<Messages, String> {
    let resource = fluent_syntax::parser::parse(source).map_err(|(_, errors)| {
        errors
            .iter()
            .map(|e| format!("{:?} at bytes {:?}", e.kind, e.pos))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let mut out = Messages::new();
    for entry in &resource.body {
        let (prefix, id, value, attributes) = match entry {
            ast::Entry::Message(m) => ("", m.id.name, m.value.as_ref(), &m.attributes),
            ast::Entry::Term(t) => ("-", t.id.name, Some(&t.value), &t.attributes),
            _ => continue,
        };
        let key = format!("{prefix}{id}");
        if value.is_some() {
            out.insert(key.clone(), vars_of(value));
        }
        for a in attributes {
            out.insert(format!("{key}.{}", a.id.name), vars_of(Some(&a.value)));
        }
    }
    Ok(out)
}

/// How `translation` differs from `reference` (both sources of catalogues); empty when it is
/// complete.
pub fn compare(
    reference_file: &str,
    reference: &str,
    translation_file: &str,
    translation: &str,
) -> Vec<Mismatch> {
    let parse = |file: &str, src: &str| {
        messages(src).map_err(|errors| Mismatch::Syntax {
            file: file.to_string(),
            errors,
        })
    };
    let (r, t) = match (
        parse(reference_file, reference),
        parse(translation_file, translation),
    ) {
        (Ok(r), Ok(t)) => (r, t),
        (r, t) => return [r.err(), t.err()].into_iter().flatten().collect(),
    };
    let mut out = Vec::new();
    for (key, reference) in &r {
        match t.get(key) {
            None => out.push(Mismatch::Missing { key: key.clone() }),
            Some(translation) if translation != reference => out.push(Mismatch::Variables {
                key: key.clone(),
                reference: reference.clone(),
                translation: translation.clone(),
            }),
            Some(_) => {}
        }
    }
    for key in t.keys().filter(|k| !r.contains_key(*k)) {
        out.push(Mismatch::Extra { key: key.clone() });
    }
    out
}

/// How the built-in catalogue of `domain` in `lang` differs from the English one.
pub fn built_in(domain: &str, lang: &Lang) -> Vec<Mismatch> {
    let file = |l: &Lang| format!("locales/{l}/{domain}.ftl");
    let (en, other) = (Lang::english(), embedded(domain, lang));
    match (embedded(domain, &en), other) {
        (Some(r), Some(t)) => compare(&file(&en), r, &file(lang), t),
        (r, t) => [(r, &en), (t, lang)]
            .into_iter()
            .filter(|(src, _)| src.is_none())
            .map(|(_, l)| Mismatch::NoCatalogue { file: file(l) })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EN: &str = r#"
greeting = Hello, { $name }!
count = { $n ->
    [one] one item
   *[other] { $n } items in { NUMBER($total) }
}
button = Allow
    .tooltip = Lets { $who } in
-brand = Tandem
"#;

    #[test]
    fn variables_are_found_wherever_they_stand() {
        let m = messages(EN).unwrap();
        let names = |k: &str| m[k].iter().cloned().collect::<Vec<_>>();
        assert_eq!(names("greeting"), ["name"]);
        assert_eq!(names("count"), ["n", "total"]);
        assert!(m["button"].is_empty());
        assert_eq!(names("button.tooltip"), ["who"]);
        assert!(m.contains_key("-brand"));
    }

    #[test]
    fn a_complete_translation_has_no_mismatch() {
        let es = r#"
greeting = ¡Hola, { $name }!
count = { $n ->
    [one] un elemento
   *[other] { $n } elementos de { NUMBER($total) }
}
button = Permitir
    .tooltip = Deja entrar a { $who }
-brand = Tandem
"#;
        assert_eq!(compare("en", EN, "es", es), vec![]);
    }

    #[test]
    fn missing_extra_and_changed_variables_are_each_found() {
        let es = r#"
greeting = ¡Hola, { $nombre }!
button = Permitir
    .tooltip = Deja entrar a { $who }
-brand = Tandem
surplus = De más
"#;
        let found = compare("en", EN, "es", es);
        assert!(found.contains(&Mismatch::Missing {
            key: "count".into()
        }));
        assert!(found.contains(&Mismatch::Extra {
            key: "surplus".into()
        }));
        assert!(found
            .iter()
            .any(|m| matches!(m, Mismatch::Variables { key, .. } if key == "greeting")));
        assert_eq!(found.len(), 3, "{found:?}");
    }

    #[test]
    fn a_syntax_error_is_a_mismatch() {
        let found = compare("en", EN, "es", "greeting = { $name\n");
        assert!(matches!(found.as_slice(), [Mismatch::Syntax { .. }]));
    }
}
