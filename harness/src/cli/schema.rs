//! `sockspec schema`: JSON Schemas for case and expectation files, generated
//! from the definitions the loader uses (the step kinds and their fields,
//! the options, the OS families, the outcome names), so editors (Even Better
//! TOML, via `.taplo.toml` or a `#:schema` line) flag mistakes as they are typed.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};
use sockspec::error::Error;
use sockspec::model::{Opt, OsFamily};
use sockspec::outcome::{ErrName, TcpState};
use sockspec::steps::{COMMON, KINDS};
use sockspec::{expect, load};

use super::{Cases, out};

/// The case schema's path under the cases root.
pub const CASE_SCHEMA: &str = "schema/case.schema.json";
/// The expectation schema's path under the cases root.
pub const EXPECTATION_SCHEMA: &str = "schema/expectation.schema.json";

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    cases: Cases,
    /// Write <cases>/schema/case.schema.json and expectation.schema.json.
    #[arg(long, conflicts_with = "check")]
    write: bool,
    /// Exit 1 if the schema files under <cases>/schema are out of date.
    #[arg(long)]
    check: bool,
    /// Print the expectation schema instead of the case schema.
    #[arg(long, conflicts_with_all = ["write", "check"])]
    expectation: bool,
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    let root = a.cases.writable_root()?;
    let files = [
        (CASE_SCHEMA, render(&case_schema())),
        (EXPECTATION_SCHEMA, render(&expectation_schema())),
    ];
    if !a.write && !a.check {
        out::print(&files[usize::from(a.expectation)].1);
        return Ok(ExitCode::SUCCESS);
    }
    let mut stale = Vec::new();
    for (rel, text) in &files {
        let path = root.join(rel);
        let old = std::fs::read_to_string(&path).ok();
        if old.as_deref() == Some(text.as_str()) {
            continue;
        }
        if a.check {
            stale.push(path.display().to_string());
            continue;
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        sockspec::atomic::write(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))?;
        out::line(&format!("{}: written", path.display()));
    }
    if !stale.is_empty() {
        out::line(&format!(
            "out of date: {}; run `cargo run --release -- schema --write`",
            stale.join(", ")
        ));
        return Ok(ExitCode::from(1));
    }
    if a.check {
        out::line("the schema files are current");
    }
    Ok(ExitCode::SUCCESS)
}

fn render(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("a JSON value serialises");
    s.push('\n');
    s
}

/// A grid parameter (`"{proto}"`, `"{addr.v4}"`) may stand for any value.
fn or_param(v: Value) -> Value {
    json!({ "anyOf": [v, { "type": "string", "pattern": "\\{[a-z0-9_.]+\\}" }] })
}

fn names<T>(all: &[T], f: impl Fn(&T) -> String) -> Vec<String> {
    all.iter().map(f).collect()
}

fn os_names() -> Vec<String> {
    names(OsFamily::ALL, |o| o.as_str().to_string())
}

/// The schema of a step field, by its name (fields mean the same in every kind).
fn field(name: &str) -> Value {
    let opt_keys = names(Opt::ALL, |o| o.key().to_string());
    let ident = json!({ "type": "string", "pattern": "^[a-z0-9_]+$" });
    let v = match name {
        "do" => json!({ "enum": names(KINDS, |k| k.name.to_string()) }),
        "check" => {
            json!({ "description": "true (label `<do>_<sock>`) or a label naming the outcome in expectation files",
                          "anyOf": [{ "type": "boolean" }, ident.clone()] })
        }
        "require" => {
            json!({ "type": "string", "description": "an outcome the step must give, else the test fails as a precondition" })
        }
        "when" => {
            json!({ "type": "object", "description": "keep the step only in tests with these parameter values" })
        }
        "os" | "not_os" => {
            json!({ "type": "array", "minItems": 1, "items": { "enum": os_names() } })
        }
        "type" => json!({ "enum": ["tcp", "udp"] }),
        "family" => {
            json!({ "type": "string", "description": "\"v4\", \"v6\" or an address of the family" })
        }
        "opt" => json!({ "enum": opt_keys }),
        "opts" => json!({ "description": "on/off options set at once: a list, \"a+b\" or \"none\"",
                         "anyOf": [{ "type": "array", "items": { "enum": names(Opt::ALL, |o| o.key().to_string()) } }, { "type": "string" }] }),
        "value" => {
            json!({ "description": "true/false; [on, seconds] for linger; a group for join/leave; an interface for multicast_if, bindtodevice, bound_if" })
        }
        "addr" | "to_addr" => {
            json!({ "type": "string", "description": "an IP address or any4, lo4, lo4b, any6, lo6, mapped_any, mapped_lo, mapped_lo4b, group4, group6" })
        }
        "port" | "to_port" => {
            json!({ "description": "0, \"@name\" (a leased port), \"@name!low\" (a leased port below 1024) or a socket name; never a number",
                                      "anyOf": [{ "const": 0 }, { "type": "string", "pattern": "^(@[a-z0-9_]+(!low)?|[a-z0-9_]+)$" }] })
        }
        "how" => json!({ "enum": ["read", "write", "both"] }),
        "observe" => json!({ "enum": ["each", "who", "count"] }),
        "want" => json!({ "enum": names(TcpState::ALL, |s| s.as_str().to_string()) }),
        "user" => json!({ "anyOf": [{ "const": "nobody" }, { "type": "integer", "minimum": 1 }] }),
        "probe" => json!({ "type": "boolean" }),
        "bands" => {
            json!({ "type": "object", "additionalProperties": { "type": "array", "items": { "type": "integer" }, "minItems": 2, "maxItems": 2 } })
        }
        "receivers" | "listeners" => json!({ "type": "array", "items": ident }),
        "backlog" | "bytes" | "count" | "ms" | "wait_ms" => {
            json!({ "type": "integer", "minimum": 0 })
        }
        "sock" | "name" | "actor" | "a" | "b" | "to" | "iface" => json!({ "type": "string" }),
        _ => json!({}),
    };
    if matches!(name, "do" | "when" | "os" | "not_os" | "check" | "require") {
        v
    } else {
        or_param(v)
    }
}

fn step_schema() -> Value {
    let kinds: Vec<Value> = KINDS
        .iter()
        .map(|k| {
            let mut props = serde_json::Map::new();
            for f in COMMON.iter().chain(k.required).chain(k.optional) {
                props.insert((*f).to_string(), field(f));
            }
            let mut required = vec!["do".to_string()];
            required.extend(k.required.iter().map(|s| s.to_string()));
            json!({
                "if": { "properties": { "do": { "const": k.name } } },
                "then": { "properties": props, "required": required, "additionalProperties": false },
            })
        })
        .collect();
    json!({
        "type": "object",
        "required": ["do"],
        "properties": { "do": field("do") },
        "allOf": kinds,
    })
}

/// `{ key: schema }` for exactly the keys the loader reads (`keys`); a key
/// `schema_of` has no schema for is a bug caught by the tests, which
/// generate every schema.
fn properties(what: &str, keys: &[&str], schema_of: impl Fn(&str) -> Option<Value>) -> Value {
    let mut props = serde_json::Map::new();
    for k in keys {
        let s = schema_of(k).unwrap_or_else(|| {
            panic!("the loader reads `{k}` in {what}, and the schema has no entry for it")
        });
        props.insert((*k).to_string(), s);
    }
    Value::Object(props)
}

/// One or several outcomes (`recipe.works`, `holds.outcomes`).
fn outcomes_map() -> Value {
    json!({ "type": "object", "minProperties": 1,
            "additionalProperties": { "anyOf": [outcome(), { "type": "array", "minItems": 1, "items": outcome() }] } })
}

/// The schema of a top-level key of a case file.
fn case_key(key: &str) -> Option<Value> {
    Some(match key {
        "title" => {
            json!({ "type": "string", "minLength": 1, "description": "one line: what the case shows" })
        }
        "source" => {
            json!({ "description": "where the claim comes from", "anyOf": [{ "type": "string" }, { "type": "array", "minItems": 1, "items": { "type": "string" } }] })
        }
        "claims" => {
            json!({ "type": "array", "minItems": 1, "items": { "type": "string" }, "description": "ids of cases/claims.toml the case checks" })
        }
        "claim" => json!({ "type": "string" }),
        "deadline_ms" => json!({ "type": "integer", "minimum": 1, "maximum": 120000 }),
        "only" => json!({ "type": "array", "items": { "enum": os_names() } }),
        "requires" => json!({ "type": "array", "items": { "enum": ["root"] } }),
        "steps" => json!({ "type": "array", "minItems": 1, "items": step_schema() }),
        "grid" => {
            json!({ "type": "object", "additionalProperties": { "anyOf": [{ "type": "array", "minItems": 1 }, { "type": "object", "minProperties": 1 }] } })
        }
        "exclude" => json!({ "type": "array", "items": { "type": "object", "minProperties": 1 } }),
        "recipe" => json!({ "type": "object", "additionalProperties": false, "required": ["works"],
                            "properties": properties("[recipe]", load::recipe_keys(), |k| (k == "works").then(outcomes_map)) }),
        "holds" => json!({ "type": "array", "items": holds_schema(),
                           "description": "what the case's claims predict: per grid selection and OS, the outcome of checked steps" }),
        _ => return None,
    })
}

/// One `[[holds]]` entry of a case file.
fn holds_schema() -> Value {
    let key = |k: &str| {
        Some(match k {
            "where" => {
                json!({ "type": "object", "description": "grid parameter = value or list of values" })
            }
            "os" => json!({ "type": "array", "minItems": 1, "items": { "enum": os_names() } }),
            "claims" => {
                json!({ "type": "array", "items": { "type": "string" }, "description": "ids among the case's `claims`" })
            }
            "outcomes" => outcomes_map(),
            _ => return None,
        })
    };
    json!({ "type": "object", "additionalProperties": false, "required": ["outcomes"],
            "properties": properties("[[holds]]", load::holds_keys(), key) })
}

/// The schema of case files (`cases/<topic>/<case>.toml`): its keys are
/// those of the loader's `RawCase`.
pub fn case_schema() -> Value {
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://sockspec.invalid/schema/case.schema.json",
        "title": "sockspec case file",
        "description": "One case: cases/<topic>/<case>.toml. Generated by `sockspec schema --write` from the loader's definitions; see \"Case files\" in README.md.",
        "type": "object",
        "additionalProperties": false,
        "required": ["title", "source", "claims", "steps"],
        "properties": properties("a case file", load::case_keys(), case_key),
    })
}

/// An outcome as expectation files write it.
fn outcome() -> Value {
    let mut fixed: Vec<String> = [
        "ok",
        "data",
        "eof",
        "timeout",
        "unsupported",
        "unknown",
        "true",
        "false",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    fixed.extend(names(TcpState::ALL, |s| s.as_str().to_string()));
    fixed.extend(names(ErrName::ALL, |e| e.as_str().into_owned()));
    let alternatives = format!(
        "^({}|ERRNO_-?[0-9]+|-?[0-9]+|each=(one|all|none|mixed)|who=(none|[a-z0-9_]+(\\+[a-z0-9_]+)*))(@[a-z0-9_]+)?$",
        fixed.join("|")
    );
    json!({ "type": "string", "pattern": alternatives })
}

/// The schema of a key of an `[[expect]]` entry.
fn entry_key(key: &str) -> Option<Value> {
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    Some(match key {
        "case" => json!({ "type": "string", "pattern": "^[a-z0-9_]+(::[a-z0-9_]+)+$" }),
        "where" => json!({ "type": "object" }),
        "kernel" => json!({ "type": "string" }),
        "settings" => json!({ "type": "object", "additionalProperties": { "type": "string" },
                              "description": "stack settings (sysctl = value) the run must have for the entry to apply" }),
        "outcomes" => {
            json!({ "type": "object", "minProperties": 1, "additionalProperties": outcome() })
        }
        "source" => json!({ "enum": ["observed", "documented"] }),
        "seen_on" => strings,
        "seen_with" => {
            json!({ "type": "array", "items": { "type": "string" }, "description": "runtimes other than sockspec's own that showed it (sockspec run --agent), e.g. \"node 20.20.2\"" })
        }
        "cite" => {
            json!({ "anyOf": [{ "type": "string" }, { "type": "array", "items": { "type": "string" } }], "description": "keys of the tree's sources.toml" })
        }
        "confidence" => json!({ "enum": ["D", "S", "E", "T"] }),
        "why" => json!({ "type": "string" }),
        _ => return None,
    })
}

/// The schema of expectation files (`cases/expected/<os>.toml`): its keys
/// are those of the loader's `RawFile` and `RawEntry`.
pub fn expectation_schema() -> Value {
    let entry = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["case", "outcomes", "source"],
        "properties": properties("an [[expect]] entry", expect::entry_keys(), entry_key),
        "if": { "properties": { "source": { "const": "documented" } } },
        "then": { "required": ["cite"] },
        "else": { "required": ["seen_on"] },
    });
    let file_key = |k: &str| {
        Some(match k {
            "os" => json!({ "enum": os_names() }),
            "expect" => json!({ "type": "array", "items": entry }),
            _ => return None,
        })
    };
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": "https://sockspec.invalid/schema/expectation.schema.json",
        "title": "sockspec expectation file",
        "description": "What each checked step does on one OS: cases/expected/<os>.toml. Generated by `sockspec schema --write`; see \"Expectation files\" in README.md. Observed entries come from `sockspec bless` only.",
        "type": "object",
        "additionalProperties": false,
        "properties": properties("an expectation file", expect::file_keys(), file_key),
    })
}
