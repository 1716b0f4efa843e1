//! A small JSON Schema validator for the schemas sockspec ships
//! (docs/agent-protocol.schema.json, cases/schema/*.json). It knows the
//! keywords those use: type, enum, const, properties, required,
//! additionalProperties (false or a schema), minProperties, items,
//! prefixItems, minItems, maxItems, minimum, maximum, minLength, pattern,
//! allOf, anyOf, oneOf, if/then/else and local `$ref`s (`#/$defs/NAME`).
//! Any other keyword panics, so a schema never passes by a keyword being
//! ignored.
//!
//! `pattern`: there is no regex engine among the dependencies; the pattern is
//! parsed by `regex-syntax` (the `regex` crate's parser) and matched by a
//! backtracking walk over the parsed expression ([`is_match`]), unanchored as
//! JSON Schema says. It supports what the schemas use (literals, classes,
//! alternation, groups, repetition, `^`/`$`) and panics on anything else.

use regex_syntax::hir::{Class, Hir, HirKind, Look, Repetition};
use serde_json::Value;

/// Keywords that say nothing about validity.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "title",
    "description",
    "$comment",
];

/// Keywords this validator checks.
const CHECKED: &[&str] = &[
    "$ref",
    "type",
    "const",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "pattern",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "allOf",
    "anyOf",
    "oneOf",
    "if",
    "then",
    "else",
];

/// The errors of `v` against `schema`, whose `$ref`s point into `root`
/// (empty: valid). `at` names `v` in the messages.
pub fn errors(root: &Value, schema: &Value, v: &Value, at: &str) -> Vec<String> {
    let mut errs = Vec::new();
    check(root, schema, v, at, &mut errs);
    errs
}

/// Whether `v` is valid against `schema`.
fn valid(root: &Value, schema: &Value, v: &Value) -> bool {
    errors(root, schema, v, "").is_empty()
}

fn check(root: &Value, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    if s == &Value::Bool(true) {
        return;
    }
    let Some(obj) = s.as_object() else {
        panic!("{at}: schema {s} is not an object");
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !ANNOTATIONS.contains(&k.as_str()) && !CHECKED.contains(&k.as_str()))
    {
        panic!("{at}: this validator does not know the keyword `{k}`");
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.strip_prefix("#/$defs/").expect("local references only");
        let def = &root["$defs"][name];
        assert!(!def.is_null(), "no $defs/{name}");
        check(root, def, v, at, errs);
    }
    if !check_type(s, v, at, errs) {
        return;
    }
    check_value(s, v, at, errs);
    check_string(s, v, at, errs);
    if let Some(o) = v.as_object() {
        check_object(root, s, o, at, errs);
    }
    if let Some(a) = v.as_array() {
        check_array(root, s, a, at, errs);
    }
    check_combinators(root, s, v, at, errs);
}

/// `type`; false (and an error) when `v` is of another type.
fn check_type(s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) -> bool {
    let Some(t) = s.get("type") else {
        return true;
    };
    let t = t.as_str().expect("`type` is one type name");
    let ok = match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    };
    if !ok {
        errs.push(format!("{at}: {v} is not {t}"));
    }
    ok
}

/// `const`, `enum`, `minimum`, `maximum`.
fn check_value(s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    if let Some(c) = s.get("const")
        && c != v
    {
        errs.push(format!("{at}: {v} is not {c}"));
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errs.push(format!(
            "{at}: {v} is not one of {}",
            Value::Array(e.clone())
        ));
    }
    if let Some(n) = v.as_f64() {
        if let Some(m) = s.get("minimum").and_then(Value::as_f64)
            && n < m
        {
            errs.push(format!("{at}: {n} < {m}"));
        }
        if let Some(m) = s.get("maximum").and_then(Value::as_f64)
            && n > m
        {
            errs.push(format!("{at}: {n} > {m}"));
        }
    }
}

/// `minLength` (in characters, as JSON Schema counts) and `pattern`.
fn check_string(s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let Some(text) = v.as_str() else {
        return;
    };
    if let Some(m) = s.get("minLength").and_then(Value::as_u64)
        && (text.chars().count() as u64) < m
    {
        errs.push(format!("{at}: {v} is shorter than {m}"));
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && !is_match(p, text)
    {
        errs.push(format!("{at}: {v} does not match {p}"));
    }
}

/// `required`, `properties`, `additionalProperties`, `minProperties`.
fn check_object(
    root: &Value,
    s: &Value,
    o: &serde_json::Map<String, Value>,
    at: &str,
    errs: &mut Vec<String>,
) {
    for r in s
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let r = r.as_str().expect("`required` lists names");
        if !o.contains_key(r) {
            errs.push(format!("{at}: `{r}` is missing"));
        }
    }
    if let Some(m) = s.get("minProperties").and_then(Value::as_u64)
        && (o.len() as u64) < m
    {
        errs.push(format!("{at}: fewer than {m} keys"));
    }
    let props = s.get("properties").and_then(Value::as_object);
    for (k, x) in o {
        let here = format!("{at}.{k}");
        match (props.and_then(|p| p.get(k)), s.get("additionalProperties")) {
            (Some(ps), _) => check(root, ps, x, &here, errs),
            (None, Some(Value::Bool(false))) => errs.push(format!("{at}: unexpected `{k}`")),
            (None, Some(extra)) => check(root, extra, x, &here, errs),
            (None, None) => {}
        }
    }
}

/// `prefixItems`, `items`, `minItems`, `maxItems`.
fn check_array(root: &Value, s: &Value, a: &[Value], at: &str, errs: &mut Vec<String>) {
    let prefix = s.get("prefixItems").and_then(Value::as_array);
    for (i, x) in a.iter().enumerate() {
        if let Some(is) = prefix.and_then(|p| p.get(i)).or(s.get("items")) {
            check(root, is, x, &format!("{at}[{i}]"), errs);
        }
    }
    if let Some(m) = s.get("minItems").and_then(Value::as_u64)
        && (a.len() as u64) < m
    {
        errs.push(format!("{at}: fewer than {m} items"));
    }
    if let Some(m) = s.get("maxItems").and_then(Value::as_u64)
        && (a.len() as u64) > m
    {
        errs.push(format!("{at}: more than {m} items"));
    }
}

/// `allOf`, `anyOf`, `oneOf`, `if`/`then`/`else`.
fn check_combinators(root: &Value, s: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
    let list = |k: &str| s.get(k).map(|l| l.as_array().expect("a list of schemas"));
    for sub in list("allOf").into_iter().flatten() {
        check(root, sub, v, at, errs);
    }
    let matching = |l: &Vec<Value>| l.iter().filter(|b| valid(root, b, v)).count();
    if let Some(l) = list("oneOf") {
        let n = matching(l);
        if n != 1 {
            errs.push(format!("{at}: {v} matches {n} of oneOf"));
        }
    }
    if let Some(l) = list("anyOf")
        && matching(l) == 0
    {
        errs.push(format!("{at}: {v} matches none of anyOf"));
    }
    if let Some(cond) = s.get("if") {
        let branch = if valid(root, cond, v) { "then" } else { "else" };
        if let Some(b) = s.get(branch) {
            check(root, b, v, at, errs);
        }
    }
}

/// Whether the regular expression `re` matches somewhere in `s` (JSON
/// Schema's `pattern` is not anchored; `^` and `$` anchor it).
pub fn is_match(re: &str, s: &str) -> bool {
    let hir = regex_syntax::parse(re).unwrap_or_else(|e| panic!("pattern {re}: {e}"));
    (0..=s.len())
        .filter(|i| s.is_char_boundary(*i))
        .any(|i| walk(&hir, s, i, &mut |_| true))
}

/// Whether `h` matches `s` from byte `i` on such that the rest, `k`, matches
/// from where it ends (backtracking over every way `h` can match).
fn walk(h: &Hir, s: &str, i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match h.kind() {
        HirKind::Empty => k(i),
        HirKind::Literal(l) => s.as_bytes()[i..].starts_with(&l.0) && k(i + l.0.len()),
        HirKind::Class(Class::Unicode(c)) => match s[i..].chars().next() {
            Some(ch) if c.ranges().iter().any(|r| r.start() <= ch && ch <= r.end()) => {
                k(i + ch.len_utf8())
            }
            _ => false,
        },
        HirKind::Look(Look::Start) => i == 0 && k(i),
        HirKind::Look(Look::End) => i == s.len() && k(i),
        HirKind::Capture(c) => walk(&c.sub, s, i, k),
        HirKind::Concat(hs) => concat(hs, s, i, k),
        HirKind::Alternation(hs) => hs.iter().any(|h| walk(h, s, i, k)),
        HirKind::Repetition(r) => repeat(r, 0, s, i, k),
        other => panic!("pattern element {other:?} is not supported by this validator"),
    }
}

fn concat(hs: &[Hir], s: &str, i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    match hs.split_first() {
        None => k(i),
        Some((h, rest)) => walk(h, s, i, &mut |j| concat(rest, s, j, k)),
    }
}

/// `r` matched `n` times so far, up to byte `i`: one more time if allowed
/// (an empty match only while below the minimum, so it ends), else stop.
fn repeat(r: &Repetition, n: u32, s: &str, i: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
    let more = r.max.is_none_or(|m| n < m)
        && walk(&r.sub, s, i, &mut |j| {
            (j > i || n < r.min) && repeat(r, n + 1, s, j, k)
        });
    more || (n >= r.min && k(i))
}
