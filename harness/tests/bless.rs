//! `sockspec bless` edits expectation files in place. These tests feed it
//! observations directly: they test the file editing, not a kernel.

use std::process::Command;

use sockspec::Suite;
use sockspec::bless::{Observation, bless};
use sockspec::model::OsFamily;
use sockspec::outcome::Outcome;

const CASE: &str = r#"title = "x"
source = "y"
steps = [
  { do = "socket", name = "a", type = "{proto}", family = "v4" },
  { do = "bind", sock = "a", addr = "{addr}", port = "@p" },
  { do = "socket", name = "b", type = "{proto}", family = "v4" },
  { do = "bind", sock = "b", addr = "lo4", port = "a", check = true },
]

[grid]
proto = ["tcp", "udp"]
addr = ["any4", "lo4"]
"#;

const FREEBSD: &str = r#"# FreeBSD: hand-written header comment that must survive.
os = "freebsd"

# A documented entry, with its own comment.
[[expect]]
case = "t::c"
outcomes = { bind_b = "EADDRINUSE" }
source = "documented"
cite = "semantics.md F1"
confidence = "S"
why = "wildcard-aware lookup"
"#;

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    std::fs::create_dir_all(dir.path().join("expected")).unwrap();
    std::fs::write(dir.path().join("t/c.toml"), CASE).unwrap();
    std::fs::write(dir.path().join("expected/freebsd.toml"), FREEBSD).unwrap();
    dir
}

fn obs(s: &Suite, f: impl Fn(&str, &str) -> &'static str) -> Vec<Observation> {
    s.tests
        .iter()
        .map(|t| Observation {
            test: t.clone(),
            outcomes: vec![(
                "bind_b".into(),
                f(t.param("proto").unwrap(), t.param("addr").unwrap())
                    .parse::<Outcome>()
                    .unwrap(),
            )],
        })
        .collect()
}

fn read(dir: &tempfile::TempDir) -> String {
    std::fs::read_to_string(dir.path().join("expected/freebsd.toml")).unwrap()
}

#[test]
fn new_observations_are_grouped_and_documents_kept() {
    let dir = tree();
    let s = Suite::load(dir.path()).unwrap();
    // TCP agrees with the document; UDP on 127.0.0.1 disagrees.
    let o = obs(&s, |p, a| {
        if p == "udp" && a == "lo4" {
            "ok"
        } else {
            "EADDRINUSE"
        }
    });
    let sum = bless(&s, OsFamily::Freebsd, "14.1-RELEASE", &o).unwrap();
    let text = read(&dir);
    assert!(text.starts_with("# FreeBSD: hand-written header comment that must survive."));
    assert!(text.contains("# A documented entry, with its own comment.\n[[expect]]"));
    assert!(
        text.contains("cite = \"semantics.md F1\""),
        "documented entries are never edited"
    );
    // Three tests share EADDRINUSE but no single `where` selects exactly
    // them, so bless splits; the disagreeing test gets its own entry.
    assert!(
        text.contains(
            "where = { proto = \"udp\", addr = \"lo4\" }\noutcomes = { bind_b = \"ok\" }"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "the run disagrees with the documented EADDRINUSE (semantics.md F1, freebsd.toml:5)"
        ),
        "{text}"
    );
    assert!(
        text.contains("agrees with the documented EADDRINUSE"),
        "{text}"
    );
    assert_eq!(sum.added, 3, "{text}");
    // And now the file passes its own check, and resolves to the observations.
    let s = Suite::load(dir.path()).unwrap();
    let f = s.expectations.for_os(OsFamily::Freebsd).unwrap();
    let t = s.test("t::c::proto=udp::addr=lo4").unwrap();
    assert_eq!(
        f.resolve(t, "bind_b", Some("14.1"))
            .unwrap()
            .outcome
            .to_string(),
        "ok"
    );
}

#[test]
fn reblessing_confirms_and_edits_in_place() {
    let dir = tree();
    let s = Suite::load(dir.path()).unwrap();
    let o = obs(&s, |_, _| "EADDRINUSE");
    bless(&s, OsFamily::Freebsd, "14.1-RELEASE", &o).unwrap();
    let once = read(&dir);
    assert_eq!(
        once.matches("[[expect]]").count(),
        2,
        "one observed entry covers all four: {once}"
    );

    // The same outcome on another release: only seen_on grows.
    let s = Suite::load(dir.path()).unwrap();
    let sum = bless(
        &s,
        OsFamily::Freebsd,
        "14.2-RELEASE",
        &obs(&s, |_, _| "EADDRINUSE"),
    )
    .unwrap();
    assert_eq!((sum.confirmed, sum.added, sum.changed), (1, 0, 0));
    assert!(read(&dir).contains("seen_on = [\"14.1-RELEASE\", \"14.2-RELEASE\"]"));

    // A different outcome on the same series, for every test: edited in place.
    let s = Suite::load(dir.path()).unwrap();
    let sum = bless(&s, OsFamily::Freebsd, "14.2-RELEASE", &obs(&s, |_, _| "ok")).unwrap();
    assert_eq!((sum.changed, sum.added), (1, 0), "{}", read(&dir));
    let text = read(&dir);
    assert_eq!(text.matches("[[expect]]").count(), 2);
    assert!(
        text.contains(
            "outcomes = { bind_b = \"ok\" }\nsource = \"observed\"\nseen_on = [\"14.2-RELEASE\"]"
        ),
        "{text}"
    );
}

#[test]
fn another_kernel_series_gets_a_version_range() {
    let dir = tree();
    let s = Suite::load(dir.path()).unwrap();
    bless(
        &s,
        OsFamily::Freebsd,
        "14.1-RELEASE",
        &obs(&s, |_, _| "EADDRINUSE"),
    )
    .unwrap();
    let s = Suite::load(dir.path()).unwrap();
    let o = obs(&s, |p, _| if p == "udp" { "ok" } else { "EADDRINUSE" });
    bless(&s, OsFamily::Freebsd, "13.2-RELEASE", &o).unwrap();
    let text = read(&dir);
    assert!(
        text.contains("where = { proto = \"udp\" }\nkernel = \"=13.2\""),
        "{text}"
    );
    assert!(
        text.contains("differs from EADDRINUSE observed on 14.1-RELEASE"),
        "{text}"
    );
    // The broad entry holds for TCP on 13.2 but its UDP outcome does not, so
    // it must not claim 13.2 in seen_on — not now, nor on a second bless.
    let s = Suite::load(dir.path()).unwrap();
    bless(&s, OsFamily::Freebsd, "13.2-RELEASE", &o).unwrap();
    let text = read(&dir);
    assert_eq!(
        text.matches("seen_on = [\"14.1-RELEASE\"]").count(),
        1,
        "{text}"
    );
    assert_eq!(
        text.matches("seen_on = [\"13.2-RELEASE\"]").count(),
        1,
        "{text}"
    );
    assert!(
        !text.contains("\"14.1-RELEASE\", \"13.2-RELEASE\""),
        "{text}"
    );
    let s = Suite::load(dir.path()).unwrap();
    let f = s.expectations.for_os(OsFamily::Freebsd).unwrap();
    let t = s.test("t::c::proto=udp::addr=any4").unwrap();
    assert_eq!(
        f.resolve(t, "bind_b", Some("13.2-RELEASE"))
            .unwrap()
            .outcome
            .to_string(),
        "ok"
    );
    assert_eq!(
        f.resolve(t, "bind_b", Some("14.1-RELEASE"))
            .unwrap()
            .outcome
            .to_string(),
        "EADDRINUSE"
    );
}

#[test]
fn bless_refuses_on_ci() {
    let dir = tree();
    let out = Command::new(env!("CARGO_BIN_EXE_sockspec"))
        .args(["bless", "--cases"])
        .arg(dir.path())
        .env("CI", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refuses to run on CI"));
    assert_eq!(read(&dir), FREEBSD);
}

#[test]
fn bless_from_a_results_file_writes_that_os_file_on_any_os() {
    let dir = tree();
    let s = Suite::load(dir.path()).unwrap();
    // A real run here, relabelled as a FreeBSD run (as if downloaded from
    // the matrix): only the results file says which OS it came from.
    let mut results = sockspec::run::run(
        &s,
        &sockspec::Platform::current(),
        &sockspec::run::Options::default(),
        |_| {},
    );
    results.run.os = "freebsd".into();
    results.run.kernel = "14.3-RELEASE".into();
    let path = dir.path().join("results-freebsd.json");
    results.write(&path).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sockspec"))
        .args(["bless", "--cases"])
        .arg(dir.path())
        .arg("--from")
        .arg(&path)
        .env_remove("CI")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = read(&dir);
    assert!(text.starts_with("# FreeBSD: hand-written header comment that must survive."));
    assert!(
        text.contains("source = \"observed\"\nseen_on = [\"14.3-RELEASE\"]"),
        "{text}"
    );
    // Nothing was written for the OS the run really happened on.
    let files: Vec<_> = std::fs::read_dir(dir.path().join("expected"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(files, ["freebsd.toml"]);
}
