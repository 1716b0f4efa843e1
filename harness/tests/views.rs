//! Question-first views: `explain CASE`, claim verdicts, `search`, and the
//! console and Markdown summaries (insta snapshots of the text a reader sees).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use sockspec::Suite;
use sockspec::report;
use sockspec::results::Results;

/// Runs sockspec; a `--cases` tree is the only tree (not added to the
/// built-in catalogue).
fn sockspec(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sockspec"));
    cmd.args(args);
    if args.contains(&"--cases") {
        cmd.arg("--only-cases");
    }
    cmd.env_remove("SOCKSPEC_CASES")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn repo_cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases")
}

/// A small case tree: one case with a grid, Linux expectations observed
/// (one of them disputing a document), macOS documented, one unknown.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("demo")).unwrap();
    std::fs::create_dir_all(root.join("expected")).unwrap();
    std::fs::write(
        root.join("demo/rebind.toml"),
        r#"title = "A second bind on a port, with and without SO_REUSEADDR"
source = "a fixture"
claim = "SO_REUSEADDR on both lets the second bind succeed. Without it, it fails."
steps = [
  { do = "socket", name = "a", type = "tcp", family = "v4", opts = "{reuse}" },
  { do = "bind", sock = "a", addr = "lo4", port = "@p" },
  { do = "socket", name = "b", type = "tcp", family = "v4", opts = "{reuse}" },
  { do = "setopt", sock = "b", opt = "exclusiveaddruse", value = true, os = ["windows"] },
  { do = "bind", sock = "b", addr = "{second}", port = "a", check = "bind_b" },
  { do = "listen", sock = "b", check = "listen_b" },
]

[grid]
reuse = { plain = "none", reuseaddr = "reuseaddr" }
second = ["lo4", "any4"]

[[holds]]
where = { reuse = "reuseaddr" }
outcomes = { bind_b = "ok" }

[[holds]]
where = { reuse = "plain" }
outcomes = { bind_b = "EADDRINUSE" }
"#,
    )
    .unwrap();
    std::fs::write(
        root.join("expected/linux.toml"),
        r#"os = "linux"

[[expect]]
case = "demo::rebind"
where = { reuse = "plain" }
outcomes = { bind_b = "EADDRINUSE" }
source = "observed"
seen_on = ["6.18.44"]

[[expect]]
case = "demo::rebind"
where = { reuse = "reuseaddr" }
outcomes = { bind_b = "ok", listen_b = "EADDRINUSE" }
source = "observed"
seen_on = ["6.18.44"]

[[expect]]
case = "demo::rebind"
where = { reuse = "reuseaddr" }
outcomes = { listen_b = "ok" }
source = "documented"
cite = "a manual page"
why = "the manual says so"
"#,
    )
    .unwrap();
    std::fs::write(
        root.join("expected/macos.toml"),
        r#"os = "macos"

[[expect]]
case = "demo::rebind"
outcomes = { bind_b = "EADDRINUSE" }
source = "documented"
cite = "a kernel source"
why = "the kernel says so"

[[expect]]
case = "demo::rebind"
where = { reuse = "reuseaddr", second = "lo4" }
outcomes = { bind_b = "unknown" }
source = "documented"
cite = "nobody says"
why = "no source says"
"#,
    )
    .unwrap();
    dir
}

#[test]
fn explain_case_prints_the_grid_as_a_table() {
    let dir = fixture();
    let cases = dir.path().to_str().unwrap();
    let o = sockspec(&[
        "explain",
        "demo::rebind",
        "--os",
        "linux,macos,windows",
        "--cases",
        cases,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    insta::assert_snapshot!("explain_case", stdout(&o));

    let o = sockspec(&[
        "explain",
        "demo::rebind",
        "--os",
        "linux",
        "--where",
        "reuse=reuseaddr",
        "--check",
        "listen_b",
        "--cases",
        cases,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    insta::assert_snapshot!("explain_case_filtered", stdout(&o));
}

#[test]
fn explain_test_marks_steps_of_some_oses_and_not_run() {
    let dir = fixture();
    let o = sockspec(&[
        "explain",
        "demo::rebind::reuse=plain::second=lo4",
        "--cases",
        dir.path().to_str().unwrap(),
    ]);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(
        text.contains("setopt b SO_EXCLUSIVEADDRUSE = 1") && text.contains("[only on windows]"),
        "{text}"
    );
    // listen_b comes after a bind expected to fail.
    let listen = text.split("expectations for `listen_b`").nth(1).unwrap();
    assert!(listen.contains("linux    not_run"), "{listen}");
    let dir2 = fixture();
    let o = sockspec(&[
        "explain",
        "demo::rebind::reuse=reuseaddr::second=lo4",
        "--cases",
        dir2.path().to_str().unwrap(),
    ]);
    let text = stdout(&o);
    let listen = text.split("expectations for `listen_b`").nth(1).unwrap();
    assert!(listen.contains("[!] disputed"), "{listen}");
}

/// A case without a grid has one test, named as the case: `explain CASE`
/// shows that test (its steps, expectations and whys), and a grid flag the
/// table of one row.
#[test]
fn explain_shows_a_case_without_a_grid_as_its_test() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("demo")).unwrap();
    std::fs::write(
        dir.path().join("demo/once.toml"),
        r#"title = "A second bind on a bound port"
source = "a fixture"
claims = ["c-linux", "c-windows"]
only = ["linux", "macos"]
steps = [
  { do = "socket", name = "a", type = "tcp", family = "v4" },
  { do = "bind", sock = "a", addr = "lo4", port = "@p" },
  { do = "socket", name = "b", type = "tcp", family = "v4" },
  { do = "bind", sock = "b", addr = "lo4", port = "a", check = "bind_b" },
]

[[holds]]
claims = ["c-linux"]
outcomes = { bind_b = "EADDRINUSE" }

[[holds]]
claims = ["c-windows"]
os = ["windows"]
outcomes = { bind_b = "ok" }
"#,
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("expected")).unwrap();
    std::fs::write(
        dir.path().join("expected/linux.toml"),
        "os = \"linux\"\n\n[[expect]]\ncase = \"demo::once\"\noutcomes = { bind_b = \"EADDRINUSE\" }\n\
         source = \"documented\"\ncite = \"a fixture\"\nwhy = \"the port is taken\"\n",
    )
    .unwrap();
    let cases = dir.path().to_str().unwrap();
    let o = sockspec(&["explain", "demo::once", "--cases", cases]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    assert!(text.contains("expectations for `bind_b`"), "{text}");
    assert!(text.contains("bind b 127.0.0.1:"), "{text}");
    assert!(text.contains("why: the port is taken"), "{text}");
    // Its claim's verdict, as the table would give it.
    assert!(text.contains("over this test"), "{text}");
    let verdict = text
        .lines()
        .find(|l| l.starts_with("| c-linux"))
        .unwrap_or_else(|| panic!("{text}"));
    let cells: Vec<&str> = verdict.split('|').map(str::trim).collect();
    assert_eq!(cells[1..4], ["c-linux", "holds", "unknown"], "{text}");
    // No OS has a verdict for the Windows claim (the test cannot run
    // there): the test's view leaves its row out, the grid keeps it.
    assert!(!text.contains("| c-windows"), "{text}");
    let o = sockspec(&["explain", "demo::once", "--os", "linux", "--cases", cases]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = stdout(&o);
    assert!(text.contains("| linux "), "{text}");
    assert!(!text.contains("expectations for"), "{text}");
    assert!(text.contains("| c-windows "), "{text}");
}

#[test]
fn explain_refuses_bad_filters_with_exit_2() {
    let dir = fixture();
    let cases = dir.path().to_str().unwrap();
    for args in [
        vec!["explain", "demo::rebind", "--os", "plan9"],
        vec!["explain", "demo::rebind", "--where", "proto=tcp"],
        vec!["explain", "demo::rebind", "--where", "reuse=maybe"],
        vec!["explain", "demo::rebind", "--where", "reuse"],
        vec!["explain", "demo::rebind", "--check", "nothing"],
        vec![
            "explain",
            "demo::rebind::reuse=plain::second=lo4",
            "--os",
            "linux",
        ],
        vec!["explain", "no::such"],
    ] {
        let mut a = args.clone();
        a.extend(["--cases", cases]);
        let o = sockspec(&a);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
    }
    // An unknown name lists the near ones, saying how many there are.
    let o = sockspec(&["explain", "demo::", "--cases", cases]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("1 case(s) containing it") && err.contains("4 test(s) containing it"),
        "{err}"
    );
}

#[test]
fn claim_verdicts_show_the_multicast_contradiction_on_linux() {
    let o = sockspec(&["claims", "--cases", repo_cases().to_str().unwrap()]);
    assert!(o.status.success());
    let text = stdout(&o);
    let row = text
        .lines()
        .find(|l| l.starts_with("| CAT-multicast-membership |"))
        .expect("the membership claim has a row");
    let cells: Vec<&str> = row.split(" | ").collect();
    // claim, from, says, tests, then linux.
    assert!(
        cells[4].contains("contradicted"),
        "Linux delivers to sockets that never joined (IP_MULTICAST_ALL): {row}"
    );
}

#[test]
fn verdicts_count_holds_contradictions_and_unknowns() {
    let dir = fixture();
    let suite = Suite::load(dir.path()).unwrap();
    let tests: Vec<&sockspec::model::Test> = suite.tests.iter().map(|t| &**t).collect();
    let none = sockspec::claims::Observations::new();
    let v = |os| sockspec::claims::verdicts(&suite.expectations, &none, &tests, os, None);
    use sockspec::claims::Verdict;
    use sockspec::model::OsFamily;
    let linux = v(OsFamily::Linux);
    assert_eq!((linux.holds, linux.contradicted, linux.unknown), (4, 0, 0));
    assert_eq!(linux.verdict(), Verdict::Holds);
    let macos = v(OsFamily::Macos);
    // plain: EADDRINUSE holds twice; reuseaddr: lo4 unknown, any4 contradicts.
    assert_eq!((macos.holds, macos.contradicted, macos.unknown), (2, 1, 1));
    assert_eq!(macos.verdict(), Verdict::Mixed);
    assert_eq!(macos.cell(), "mixed (holds 2, contradicted 1, unknown 1)");
    assert_eq!(v(OsFamily::Windows).verdict(), Verdict::Unknown);

    // Observations take the place of expectations, and bless warns.
    let run: Results = serde_json::from_value(run_json(
        "linux",
        1,
        &[(
            "demo::rebind::reuse=reuseaddr::second=lo4",
            "bind_b",
            "EADDRINUSE",
            "ok",
        )],
    ))
    .unwrap();
    let obs = sockspec::claims::observations(std::slice::from_ref(&run));
    let linux =
        sockspec::claims::verdicts(&suite.expectations, &obs, &tests, OsFamily::Linux, None);
    assert_eq!(linux.verdict(), Verdict::Mixed);
    let warnings = sockspec::claims::contradictions(&suite.tests, OsFamily::Linux, &run.tests);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("predicts bind_b=ok (got EADDRINUSE)"),
        "{warnings:?}"
    );
}

#[test]
fn search_finds_cases_by_title_options_and_errno() {
    let cases = repo_cases();
    let cases = cases.to_str().unwrap();
    let o = sockspec(&["search", "linger", "reset", "--cases", cases]);
    assert!(o.status.success());
    let text = stdout(&o);
    let first = text.lines().nth(2).unwrap_or_default();
    assert!(first.starts_with("| linger::abort "), "{text}");
    // Option names and errno names (a WSA prefix matches too).
    let o = sockspec(&[
        "search",
        "SO_EXCLUSIVEADDRUSE",
        "WSAEACCES",
        "--cases",
        cases,
    ]);
    let text = stdout(&o);
    assert!(text.contains("| windows::exclusive "), "{text}");
    let o = sockspec(&["search", "no-such-word-anywhere", "--cases", cases]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("no case matches"));
    assert_eq!(sockspec(&["search"]).status.code(), Some(2));
}

/// A results file: `tests` are (name, label, outcome, expected).
fn run_json(label: &str, repeat: u32, tests: &[(&str, &str, &str, &str)]) -> serde_json::Value {
    let tests: Vec<serde_json::Value> = tests
        .iter()
        .map(|(name, l, outcome, expected)| {
            let case = name.split("::").take(2).collect::<Vec<_>>().join("::");
            let topic = name.split("::").next().unwrap();
            let pass = outcome == expected;
            let mut t = json!({
                "name": name, "case": case, "topic": topic, "title": "a test",
                "file": format!("cases/{}.toml", case.replace("::", "/")), "line": 3,
                "params": {}, "verdict": if pass { "pass" } else { "fail" },
                "duration_ms": 0.5, "attempts": 1,
                "steps": [{
                    "index": 4, "kind": "bind", "sock": "b", "label": l,
                    "outcome": outcome, "duration_ms": 0.1, "expected": expected,
                    "expectation": {"file": "cases/expected/linux.toml", "line": 9,
                        "source": "observed", "provenance": "observed on 6.18.44"}
                }],
            });
            if !pass {
                t["mismatches"] = json!([{"step": 4, "label": l, "kind": "differs", "what": "bind b 127.0.0.1:port(a)"}]);
            }
            if repeat > 1 {
                t["variants"] = json!([{"signature": format!("{l}={outcome} [pass]"), "count": repeat}]);
            }
            t
        })
        .collect();
    let pass = tests.iter().filter(|t| t["verdict"] == "pass").count();
    json!({
        "schema": sockspec::results::SCHEMA,
        "run": {
            "os": "linux", "kernel": "6.18.44", "os_detail": "", "arch": "x86_64",
            "sockspec": "0.1.0", "started": "2026-12-01T00:00:00Z", "duration_ms": 1234.0,
            "jobs": 2, "repeat": repeat, "isolation": "netns", "privileged": true,
            "label": label, "settings": {}, "interrupted": false
        },
        "summary": {"total": tests.len(), "pass": pass, "fail": tests.len() - pass,
            "error": 0, "skip": 0, "intermittent": 0},
        "tests": tests,
    })
}

fn sample(label: &str, repeat: u32, flip: bool) -> Results {
    let second = if flip { "ok" } else { "EADDRINUSE" };
    serde_json::from_value(run_json(
        label,
        repeat,
        &[
            ("bind::demo::a=1", "bind_b", "EADDRINUSE", "EADDRINUSE"),
            ("bind::demo::a=2", "bind_b", second, "EADDRINUSE"),
            (
                "linger::abort::linger=abort",
                "peer_sees",
                "ECONNRESET",
                "ECONNRESET",
            ),
        ],
    ))
    .unwrap()
}

#[test]
fn console_summary_snapshot() {
    let r = sample("full", 3, true);
    insta::assert_snapshot!("console_summary", report::console::summary(&r));
    // In colour, a failure count is red; without colour there is no escape.
    let c = report::console::summary_in(&r, report::console::Colour(true));
    assert!(c.contains("\x1b[1;31m1\x1b[0m"), "{c:?}");
    assert!(!report::console::summary(&r).contains('\x1b'));
    use report::console::Colour;
    assert_eq!(Colour::choose("auto", true, None), Colour(true));
    assert_eq!(Colour::choose("auto", true, Some("1")), Colour(false));
    assert_eq!(Colour::choose("auto", true, Some("")), Colour(true));
    assert_eq!(Colour::choose("auto", false, None), Colour(false));
    assert_eq!(Colour::choose("always", false, Some("1")), Colour(true));
    assert_eq!(Colour::choose("never", true, None), Colour(false));
}

#[test]
fn an_interrupted_repeat_run_does_not_claim_every_repeat() {
    let mut r = sample("cut", 50, false);
    // Stopped after 7 repeats of each test.
    for t in &mut r.tests {
        t.variants[0].count = 7;
    }
    r.run.interrupted = true;
    let text = report::console::summary(&r);
    assert!(!text.contains("each test ran"), "{text}");
    assert!(
        text.contains("repeats: interrupted: 21 runs of 3 tests (of 50 repeats asked)"),
        "{text}"
    );
    let text = report::console::summary(&sample("whole", 50, false));
    assert!(
        text.contains("repeats: each test ran 50 times: 150 runs of 3 tests"),
        "{text}"
    );
}

#[test]
fn markdown_summary_snapshot() {
    let runs = [sample("a", 1, false), sample("b", 1, true)];
    insta::assert_snapshot!("markdown_summary", report::markdown::summary(&runs));
}

#[test]
fn run_color_never_prints_no_escapes_and_bad_color_is_exit_2() {
    assert_eq!(
        sockspec(&["run", "--color", "sometimes", "options::"])
            .status
            .code(),
        Some(2)
    );
}
