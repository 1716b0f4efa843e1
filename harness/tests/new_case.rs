//! Writing a new case without dead ends: `sockspec new` scaffolds it, `run`
//! runs it on this kernel, `bless` records what the kernel did, `check`
//! accepts the tree, and a case that names no claims is refused with the fix.
//! Also: the JSON Schemas shipped under cases/schema are current, every case
//! and expectation file of the repository validates against them, and
//! `.taplo.toml` gives each file its schema.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::json_schema;
use serde_json::Value;

/// Runs `sockspec ARGS...` as given: exit code, stdout + stderr.
fn sockspec<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sockspec"));
    c.env_remove("CI").env_remove("SOCKSPEC_CASES").args(args);
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs `sockspec <cmd> args... --only-cases --cases ROOT`: that tree alone,
/// not the built-in catalogue beside it.
fn run(root: &Path, cmd: &str, args: &[&str]) -> (i32, String) {
    let mut all: Vec<&std::ffi::OsStr> = vec![cmd.as_ref()];
    all.extend(args.iter().map(std::ffi::OsStr::new));
    all.extend([
        "--only-cases".as_ref(),
        "--cases".as_ref(),
        root.as_os_str(),
    ]);
    sockspec(&all)
}

/// Runs a command a hint printed (`cargo run --release -- ARGS`, perhaps
/// with a quoted test name) exactly as printed.
fn run_hint(cmd: &str) -> (i32, String) {
    let args = cmd
        .trim()
        .strip_prefix("cargo run --release -- ")
        .unwrap_or_else(|| panic!("not a sockspec command: {cmd}"));
    let words: Vec<String> = args
        .split_whitespace()
        .map(|w| w.trim_matches('\'').to_string())
        .collect();
    sockspec(&words)
}

/// The commands between backticks in `text`.
fn quoted(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The repository's case tree.
fn repo_cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases")
}

/// A JSON Schema under the repository's cases/schema.
fn schema(name: &str) -> Value {
    let text = std::fs::read_to_string(repo_cases().join("schema").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The errors of the TOML document `text` against `schema` (as an editor
/// would see it: TOML read as JSON).
fn toml_errors(schema: &Value, text: &str, what: &str) -> Vec<String> {
    let doc: toml::Value = toml::from_str(text).unwrap_or_else(|e| panic!("{what}: {e}"));
    let json = serde_json::to_value(doc).unwrap();
    json_schema::errors(schema, schema, &json, what)
}

/// A scratch tree with one claim and a README.md keeping a claims table.
fn scratch_tree(root: &Path) {
    std::fs::write(
        root.join("claims.toml"),
        "[[claim]]\nid = \"A1\"\nfrom = \"a test\"\nsays = \"two binds of one port\"\n",
    )
    .unwrap();
    // The table's markers: the tree keeps a claims table (empty so far).
    std::fs::write(
        root.join("README.md"),
        format!(
            "# Scratch cases\n\n{}\n{}\n",
            sockspec::claims::TABLE_BEGIN,
            sockspec::claims::TABLE_END
        ),
    )
    .unwrap();
}

#[test]
fn scaffold_run_bless_check() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    scratch_tree(root);
    // Bad names and unknown claims are refused before anything is written.
    for bad in ["demo", "Demo::x", "demo::a-b", "expected::x"] {
        let (c, out) = run(root, "new", &[bad]);
        assert_eq!(c, 2, "{bad}: {out}");
    }
    let (c, out) = run(root, "new", &["demo::first", "--claim", "B9"]);
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("A1"), "the error lists the ids: {out}");
    let (c, out) = run(root, "new", &["demo::first", "--claim", "A1"]);
    assert_eq!(c, 0, "{out}");
    let case = root.join("demo/first.toml");
    let text = std::fs::read_to_string(&case).unwrap();
    for key in ["title =", "source =", "claims = [\"A1\"]", "steps = ["] {
        assert!(text.contains(key), "{key} not in the scaffold:\n{text}");
    }
    let errs = toml_errors(&schema("case.schema.json"), &text, "the scaffold");
    assert!(errs.is_empty(), "{errs:?}");
    // Never overwrites.
    let (c, again) = run(root, "new", &["demo::first", "--claim", "A1"]);
    assert_eq!(c, 2, "{again}");
    assert!(again.contains("already exists"), "{again}");
    assert_eq!(std::fs::read_to_string(&case).unwrap(), text);

    run_bless_check(root, &out, &text);
    claims_required(root, &case, &text);
}

/// The scaffold's hints, followed as printed: run (fails: no expectation,
/// and says how to bless), bless, check (the claims table is now stale),
/// the claims step; then what `cargo test` checks of a tree holds.
fn run_bless_check(root: &Path, new_out: &str, text: &str) {
    let hints = quoted(new_out.lines().find(|l| l.starts_with("next:")).unwrap());
    let [run_cmd, bless_cmd, claims_cmd] = hints[..] else {
        panic!("three commands in {new_out}");
    };
    assert!(text.contains(&format!("# Run it:   {run_cmd}\n")), "{text}");
    assert!(
        text.contains(&format!("# Bless it: {bless_cmd} ")),
        "{text}"
    );
    // The case is valid; the claims table does not list it yet.
    let (c, out) = run(root, "check", &[]);
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("claims table is out of date"), "{out}");
    // It runs as written; with no expectation yet it fails and says how to
    // bless one test.
    let (c, out) = run_hint(&format!("{run_cmd} --jobs 1"));
    assert_eq!(c, 1, "{out}");
    let hint = out
        .lines()
        .find_map(|l| l.split_once("bless just this test (after checking it is right): "))
        .unwrap_or_else(|| panic!("no bless hint in {out}"))
        .1;
    let (c, out) = run_hint(&format!("{hint} --jobs 1"));
    assert_eq!(c, 0, "{out}");
    // Bless the whole case as the scaffold says; then the run passes.
    let (c, out) = run_hint(&format!("{bless_cmd} --jobs 1"));
    assert_eq!(c, 0, "{out}");
    let expected = std::fs::read_dir(root.join("expected"))
        .unwrap()
        .next()
        .expect("bless wrote an expectation file")
        .unwrap()
        .path();
    let written = std::fs::read_to_string(&expected).unwrap();
    assert!(written.contains("source = \"observed\""), "{written}");
    assert!(written.contains("case = \"demo::first\""), "{written}");
    let errs = toml_errors(&schema("expectation.schema.json"), &written, "blessed");
    assert!(errs.is_empty(), "{errs:?}");
    // The claims table counts the case and its expectations: bless said so,
    // and `check` refuses the stale table, as `cargo test` does.
    assert!(out.contains("claims table is out of date"), "{out}");
    let (c, out) = run(root, "check", &[]);
    assert_eq!(c, 2, "{out}");
    assert!(
        out.contains("README.md: the claims table is out of date"),
        "{out}"
    );
    let fix = quoted(&out)
        .into_iter()
        .find(|q| q.contains("claims --write"))
        .unwrap_or_else(|| panic!("no fix in {out}"));
    assert_eq!(fix, claims_cmd);
    let (c, out) = run_hint(fix);
    assert_eq!(c, 0, "{out}");
    for (cmd, args) in [
        ("check", &[][..]),
        ("claims", &["--check"][..]),
        ("run", &["--jobs", "1"][..]),
    ] {
        let (c, out) = run(root, cmd, args);
        assert_eq!(c, 0, "{cmd}: {out}");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(readme.contains("`demo::first` (2)"), "{readme}");
}

/// Without --claim the scaffold adds a claim; a case that names none is bad
/// input, at the file and line, with the ids and how to add one.
fn claims_required(root: &Path, case: &Path, text: &str) {
    let (c, out) = run(root, "new", &["demo::second"]);
    assert_eq!(c, 0, "{out}");
    let claims = std::fs::read_to_string(root.join("claims.toml")).unwrap();
    assert!(claims.contains("id = \"NEW-demo-second\""), "{claims}");
    let (c, out) = run(root, "claims", &["--write"]);
    assert_eq!(c, 0, "{out}");
    let (c, out) = run(root, "check", &[]);
    assert_eq!(c, 0, "{out}");
    let stripped: String = text
        .lines()
        .filter(|l| !l.starts_with("claims ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(case, stripped).unwrap();
    let (c, out) = run(root, "check", &[]);
    assert_eq!(c, 2, "{out}");
    for needle in ["demo/first.toml:1:1", "names no claims", "A1", "[[claim]]"] {
        assert!(out.contains(needle), "{needle:?} not in {out}");
    }
}

#[test]
fn the_schema_files_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases");
    let (c, out) = run(&root, "schema", &["--check"]);
    assert_eq!(c, 0, "{out}");
    let text = std::fs::read_to_string(root.join("schema/case.schema.json")).unwrap();
    for k in sockspec::steps::KINDS {
        assert!(text.contains(&format!("\"{}\"", k.name)), "{}", k.name);
    }
    for o in sockspec::model::Opt::ALL {
        assert!(text.contains(&format!("\"{}\"", o.key())), "{}", o.key());
    }
    let e = std::fs::read_to_string(root.join("schema/expectation.schema.json")).unwrap();
    for os in sockspec::model::OsFamily::ALL {
        assert!(e.contains(&format!("\"{}\"", os.as_str())), "{os}");
    }
    // A stale file is reported.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("schema")).unwrap();
    std::fs::write(dir.path().join("schema/case.schema.json"), "{}").unwrap();
    let (c, out) = run(dir.path(), "schema", &["--check"]);
    assert_eq!(c, 1, "{out}");
    let (c, out) = run(dir.path(), "schema", &["--write"]);
    assert_eq!(c, 0, "{out}");
    let (c, out) = run(dir.path(), "schema", &["--check"]);
    assert_eq!(c, 0, "{out}");
}

/// Every case file (as the loader finds them) and every expectation file of
/// the repository, as JSON.
fn repo_documents() -> Vec<(String, bool, Value)> {
    let root = repo_cases();
    let mut errors = Vec::new();
    let mut files: Vec<(PathBuf, bool)> = sockspec::load::case_files(&root, &mut errors)
        .into_iter()
        .map(|p| (p, true))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    for e in std::fs::read_dir(root.join("expected")).unwrap() {
        files.push((e.unwrap().path(), false));
    }
    files
        .into_iter()
        .map(|(p, is_case)| {
            let text = std::fs::read_to_string(&p).unwrap();
            let doc: toml::Value = toml::from_str(&text).unwrap();
            let rel = p.strip_prefix(&root).unwrap().display().to_string();
            (rel, is_case, serde_json::to_value(doc).unwrap())
        })
        .collect()
}

#[test]
fn every_case_and_expectation_file_validates_against_the_schemas() {
    let (case, expectation) = (
        schema("case.schema.json"),
        schema("expectation.schema.json"),
    );
    let docs = repo_documents();
    assert!(docs.iter().filter(|d| d.1).count() > 40, "the case files");
    assert!(
        docs.iter().filter(|d| !d.1).count() >= 7,
        "the expectation files"
    );
    let mut all = Vec::new();
    for (rel, is_case, doc) in &docs {
        let s = if *is_case { &case } else { &expectation };
        all.extend(json_schema::errors(s, s, doc, rel));
    }
    assert!(
        all.is_empty(),
        "{} errors:\n  {}",
        all.len(),
        all.join("\n  ")
    );
}

/// Case and expectation documents each schema must refuse (what, text).
const BROKEN_CASES: &[(&str, &str)] = &[
    ("unknown key", "colour = \"red\"\n"),
    ("title of the wrong type", "title = 3\n"),
    (
        "unknown step field",
        "steps = [{ do = \"sleep\", ms = 1, colour = 1 }]\n",
    ),
    (
        "step missing a required field",
        "steps = [{ do = \"bind\", sock = \"a\" }]\n",
    ),
    ("unknown step kind", "steps = [{ do = \"dance\" }]\n"),
    (
        "port as a number",
        "steps = [{ do = \"bind\", sock = \"a\", addr = \"lo4\", port = 80 }]\n",
    ),
    ("empty title", "title = \"\"\n"),
    (
        "unknown key in holds",
        "[[holds]]\nwhen = 1\noutcomes = { x = \"ok\" }\n",
    ),
    ("holds without outcomes", "[[holds]]\nos = [\"linux\"]\n"),
    ("holds with no outcome", "[[holds]]\noutcomes = {}\n"),
    (
        "holds outcome not an outcome",
        "[[holds]]\noutcomes = { x = \"maybe\" }\n",
    ),
];

const BROKEN_EXPECTATIONS: &[(&str, &str)] = &[
    (
        "unknown key",
        "[[expect]]\ncase = \"a::b\"\noutcomes = { x = \"ok\" }\nsource = \"observed\"\nseen_on = [\"1\"]\ncolour = 1\n",
    ),
    (
        "settings value not a string",
        "[[expect]]\ncase = \"a::b\"\nsettings = { \"net.x\" = 0 }\noutcomes = { x = \"ok\" }\nsource = \"observed\"\nseen_on = [\"1\"]\n",
    ),
    (
        "observed without seen_on",
        "[[expect]]\ncase = \"a::b\"\noutcomes = { x = \"ok\" }\nsource = \"observed\"\n",
    ),
    (
        "documented without cite",
        "[[expect]]\ncase = \"a::b\"\noutcomes = { x = \"ok\" }\nsource = \"documented\"\n",
    ),
    (
        "bad case id",
        "[[expect]]\ncase = \"ab\"\noutcomes = { x = \"ok\" }\nsource = \"observed\"\nseen_on = [\"1\"]\n",
    ),
];

/// A valid case (the scaffold's steps) with `change` in place of or beside
/// its keys.
fn broken_case(change: &str) -> String {
    let base = "title = \"t\"\nsource = \"s\"\nclaims = [\"A1\"]\nsteps = [{ do = \"socket\", name = \"a\", type = \"tcp\", family = \"v4\", check = true }]\n";
    let key = change.split([' ', '\n']).next().unwrap();
    let kept: String = base
        .lines()
        .filter(|l| !l.starts_with(&format!("{key} ")))
        .map(|l| format!("{l}\n"))
        .collect();
    format!("{kept}{change}")
}

/// Every broken document, with the schema it must fail.
fn broken_documents() -> Vec<(String, bool, Value)> {
    let to_json =
        |t: &str| serde_json::to_value(toml::from_str::<toml::Value>(t).unwrap()).unwrap();
    let cases = BROKEN_CASES
        .iter()
        .map(|(w, c)| (format!("case: {w}"), true, to_json(&broken_case(c))));
    let exps = BROKEN_EXPECTATIONS
        .iter()
        .map(|(w, t)| (format!("expectation: {w}"), false, to_json(t)));
    cases.chain(exps).collect()
}

#[test]
fn broken_case_and_expectation_files_are_rejected() {
    let (case, expectation) = (
        schema("case.schema.json"),
        schema("expectation.schema.json"),
    );
    // The base document is valid: each failure below is the change's.
    let base =
        serde_json::to_value(toml::from_str::<toml::Value>(&broken_case("")).unwrap()).unwrap();
    assert_eq!(
        json_schema::errors(&case, &case, &base, "base"),
        Vec::<String>::new()
    );
    for (what, is_case, doc) in broken_documents() {
        let s = if is_case { &case } else { &expectation };
        assert!(
            !json_schema::errors(s, s, &doc, &what).is_empty(),
            "{what} passes: {doc}"
        );
    }
}

/// The same verdicts as python3's `jsonschema` (the reference validator),
/// on every repository file and every broken document; skipped, saying so,
/// where python3 has no `jsonschema`.
#[test]
fn the_validator_agrees_with_python_jsonschema() {
    let probe = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: python3 with the jsonschema module is not installed");
        return;
    }
    let (case, expectation) = (
        schema("case.schema.json"),
        schema("expectation.schema.json"),
    );
    let docs: Vec<_> = repo_documents()
        .into_iter()
        .chain(broken_documents())
        .collect();
    let ours: Vec<bool> = docs
        .iter()
        .map(|(w, c, d)| {
            let s = if *c { &case } else { &expectation };
            json_schema::errors(s, s, d, w).is_empty()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let input = serde_json::json!({
        "schemas": [expectation, case],
        "docs": docs.iter().map(|(_, c, d)| serde_json::json!([c, d])).collect::<Vec<_>>(),
    });
    std::fs::write(dir.path().join("in.json"), input.to_string()).unwrap();
    let script = "import json,sys,jsonschema\nd=json.load(open(sys.argv[1]))\nprint(json.dumps([jsonschema.Draft7Validator(d['schemas'][int(c)]).is_valid(x) for c,x in d['docs']]))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir.path().join("in.json"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<bool> = serde_json::from_slice(&out.stdout).unwrap();
    for ((what, _, _), (a, b)) in docs.iter().zip(ours.iter().zip(&theirs)) {
        assert_eq!(
            a, b,
            "{what}: ours says valid={a}, python jsonschema valid={b}"
        );
    }
}

/// Whether the taplo glob `glob` matches `path` (globset's defaults, which
/// taplo uses: `*` also matches `/`; `**/` is zero or more directories).
fn glob_matches(glob: &str, path: &str) -> bool {
    let mut re = String::from("^");
    let mut rest = glob;
    while let Some(c) = rest.chars().next() {
        let (piece, len) = if rest.starts_with("**/") {
            ("(.*/)?".to_string(), 3)
        } else if rest.starts_with("**") || c == '*' {
            (".*".to_string(), if rest.starts_with("**") { 2 } else { 1 })
        } else if c == '?' {
            (".".to_string(), 1)
        } else {
            (regex_syntax::escape(&c.to_string()), c.len_utf8())
        };
        re.push_str(&piece);
        rest = &rest[len..];
    }
    re.push('$');
    json_schema::is_match(&re, path)
}

#[test]
fn taplo_gives_case_files_the_case_schema_and_expectation_files_theirs() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let taplo: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo.join(".taplo.toml")).unwrap()).unwrap();
    let mut all = Vec::new();
    let mut dirs = vec![repo.join("cases")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                all.push(p.strip_prefix(&repo).unwrap().display().to_string());
            }
        }
    }
    let docs = repo_documents();
    let want = |is_case: bool| -> Vec<String> {
        let mut v: Vec<String> = docs
            .iter()
            .filter(|d| d.1 == is_case)
            .map(|d| format!("cases/{}", d.0))
            .collect();
        v.sort();
        v
    };
    for rule in taplo["rule"].as_array().unwrap() {
        let globs = |k: &str| -> Vec<String> {
            rule.get(k)
                .and_then(|v| v.as_array())
                .into_iter()
                .flatten()
                .map(|g| g.as_str().unwrap().to_string())
                .collect()
        };
        let (inc, exc) = (globs("include"), globs("exclude"));
        let mut got: Vec<String> = all
            .iter()
            .filter(|p| {
                inc.iter().any(|g| glob_matches(g, p)) && !exc.iter().any(|g| glob_matches(g, p))
            })
            .cloned()
            .collect();
        got.sort();
        let path = rule["schema"]["path"].as_str().unwrap();
        assert_eq!(got, want(path.ends_with("case.schema.json")), "{path}");
    }
    assert!(
        glob_matches("cases/*/*.toml", "cases/a/b/c.toml"),
        "globset: `*` crosses `/`"
    );
    assert!(!glob_matches("cases/*/*.toml", "cases/claims.toml"));
}

#[test]
fn schema_patterns_match_as_regexes_do() {
    let cases = [
        ("^[a-z0-9_]+$", "abc_1", true),
        ("^[a-z0-9_]+$", "abc-1", false),
        ("^[a-z0-9_]+$", "", false),
        ("\\{[a-z0-9_.]+\\}", "x{addr.v4}y", true),
        ("\\{[a-z0-9_.]+\\}", "{}", false),
        ("^(@[a-z0-9_]+(!low)?|[a-z0-9_]+)$", "@p!low", true),
        ("^(@[a-z0-9_]+(!low)?|[a-z0-9_]+)$", "@p!lo", false),
        ("^[a-z0-9_]+(::[a-z0-9_]+)+$", "bind::x::y", true),
        ("^[a-z0-9_]+(::[a-z0-9_]+)+$", "bind", false),
        ("^(ok|ERRNO_-?[0-9]+)(@[a-z]+)?$", "ERRNO_-12@a", true),
        ("^(ok|ERRNO_-?[0-9]+)(@[a-z]+)?$", "ERRNO_@a", false),
        ("^a{2,3}$", "aaaa", false),
        ("^a{2,3}$", "aaa", true),
        ("(a*)*b", "aaab", true),
        ("^é+$", "éé", true),
    ];
    for (re, s, want) in cases {
        assert_eq!(json_schema::is_match(re, s), want, "{re} on {s:?}");
    }
}
