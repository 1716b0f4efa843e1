//! Writing a new case without dead ends: `sockspec new` scaffolds it, `run`
//! runs it on this kernel, `bless` records what the kernel did, `check`
//! accepts the tree, and a case that names no claims is refused with the fix.
//! Also: the JSON Schemas shipped under cases/schema are current.

use std::path::Path;
use std::process::Command;

/// Runs `sockspec <cmd> --cases ROOT args...`: exit code, stdout + stderr.
fn run(root: &Path, cmd: &str, args: &[&str]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sockspec"));
    c.env_remove("CI").env_remove("SOCKSPEC_CASES");
    c.arg(cmd).args(args).arg("--cases").arg(root);
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

#[test]
fn scaffold_run_bless_check() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("claims.toml"),
        "[[claim]]\nid = \"A1\"\nfrom = \"a test\"\nsays = \"two binds of one port\"\n",
    )
    .unwrap();

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
    // Never overwrites.
    let (c, out) = run(root, "new", &["demo::first", "--claim", "A1"]);
    assert_eq!(c, 2, "{out}");
    assert!(out.contains("already exists"), "{out}");
    assert_eq!(std::fs::read_to_string(&case).unwrap(), text);

    // It checks and runs as written; with no expectation yet it fails and
    // says how to bless it.
    let (c, out) = run(root, "check", &[]);
    assert_eq!(c, 0, "{out}");
    let (c, out) = run(root, "run", &["--jobs", "1"]);
    assert_eq!(c, 1, "{out}");
    assert!(out.contains("bless"), "{out}");

    // Bless records this kernel's outcomes; then the run passes.
    let (c, out) = run(root, "bless", &["--jobs", "1", "demo::first"]);
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
    let (c, out) = run(root, "check", &[]);
    assert_eq!(c, 0, "{out}");
    let (c, out) = run(root, "run", &["--jobs", "1"]);
    assert_eq!(c, 0, "{out}");

    // Without --claim, the scaffold adds a claim to word, so it still checks.
    let (c, out) = run(root, "new", &["demo::second"]);
    assert_eq!(c, 0, "{out}");
    let claims = std::fs::read_to_string(root.join("claims.toml")).unwrap();
    assert!(claims.contains("id = \"NEW-demo-second\""), "{claims}");
    let (c, out) = run(root, "check", &[]);
    assert_eq!(c, 0, "{out}");

    // The claims requirement: the same tree with a case that names none is
    // bad input, at the file and line, with the ids and how to add one.
    let stripped: String = text
        .lines()
        .filter(|l| !l.starts_with("claims ="))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&case, stripped).unwrap();
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
