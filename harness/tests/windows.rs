//! Version windows: no outcome is assumed for a release between the newest
//! one observed with one outcome and the oldest observed with another. The
//! entries are the real ones of cases/expected/linux.toml (the v4-mapped
//! bind divergence of Debian's 6.1.192).

use std::path::{Path, PathBuf};

use sockspec::Suite;
use sockspec::expect::{Applied, Provenance};
use sockspec::model::OsFamily;
use sockspec::outcome::Outcome;

const MAPPED: &str = "bind::pairs::mode=plain::proto=tcp::first=mapped_any::second=mapped_lo";
const MIRRORED: &str = "bind::pairs::mode=plain::proto=tcp::first=mapped_lo::second=mapped_any";
const V6_1: &str = "6.1.192 (6.1.0-56-cloud-amd64)";
const V5_10: &str = "5.10.262 (5.10.0-46-cloud-amd64)";
const V6_12: &str = "6.12.117+deb12-cloud-amd64";

fn repo_cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases")
}

fn resolve<'a>(suite: &'a Suite, test: &str, release: &str) -> Applied<'a> {
    let t = suite.test(test).expect("test exists");
    suite
        .expectations
        .for_os(OsFamily::Linux)
        .expect("linux.toml")
        .resolve_in(t, "bind_b", Some(release), Some(&Default::default()))
        .expect("an expectation")
}

#[test]
fn expect_observed_releases_keep_their_outcomes() {
    let suite = Suite::load(&repo_cases()).unwrap();
    for (rel, want) in [
        (V5_10, "EADDRINUSE"),
        (V6_1, "ok"),
        (V6_12, "EADDRINUSE"),
        ("7.3-cloud-amd64", "EADDRINUSE"),
        // Newer than every observation: the newest outcome, as before.
        ("7.4.1", "EADDRINUSE"),
    ] {
        let a = resolve(&suite, MAPPED, rel);
        assert_eq!(a.outcome.to_string(), want, "{rel}");
        assert!(a.window.is_none(), "{rel}: {:?}", a.window);
        assert!(matches!(a.entry.provenance, Provenance::Observed { .. }));
    }
}

#[test]
fn expect_unknown_inside_a_window_of_disagreeing_observations() {
    let suite = Suite::load(&repo_cases()).unwrap();
    // 6.6: after 6.1.192 (ok), before 6.12.117 (EADDRINUSE). Before the
    // window rule it got 6.12's EADDRINUSE from the unranged entry.
    let a = resolve(&suite, MAPPED, "6.6.30");
    assert_eq!(*a.outcome, Outcome::Unknown);
    let w = a.window.expect("a window");
    assert_eq!((w.last, w.first), ("6.1.192 (6.1.0-57-cloud-amd64)", V6_12));
    assert_eq!(w.last_outcome.to_string(), "ok");
    assert_eq!(w.first_outcome.to_string(), "EADDRINUSE");
    let r = sockspec::judge::expectation_ref(&a);
    assert_eq!(
        r.window.as_deref(),
        Some("6.1.192 (6.1.0-57-cloud-amd64) (ok) .. 6.12.117+deb12-cloud-amd64 (EADDRINUSE)")
    );
    assert!(r.provenance.starts_with("unknown: "), "{}", r.provenance);
    // 5.15: after 5.10.262 (EADDRINUSE), before 6.1.192 (ok).
    let a = resolve(&suite, MAPPED, "5.15.160");
    assert_eq!(*a.outcome, Outcome::Unknown);
    let w = a.window.expect("a window");
    assert_eq!((w.last, w.first), (V5_10, V6_1));
    // 6.1.100 and 6.1.200: the `=6.1` entry's range reaches them, but only
    // 6.1.192 was observed, and its neighbours disagree with it.
    for rel in ["6.1.100", "6.1.200"] {
        assert_eq!(
            *resolve(&suite, MAPPED, rel).outcome,
            Outcome::Unknown,
            "{rel}"
        );
    }
}

#[test]
fn expect_windows_are_listed_only_where_observations_disagree() {
    let suite = Suite::load(&repo_cases()).unwrap();
    let file = suite.expectations.for_os(OsFamily::Linux).unwrap();
    let t = suite.test(MAPPED).unwrap();
    let ws: Vec<String> = file
        .windows(t, "bind_b", Some(&Default::default()))
        .iter()
        .map(|w| w.text())
        .collect();
    assert_eq!(
        ws,
        [
            "5.10.262 (5.10.0-46-cloud-amd64) (EADDRINUSE) .. 6.1.192 (6.1.0-56-cloud-amd64) (ok)",
            "6.1.192 (6.1.0-57-cloud-amd64) (ok) .. 6.12.117+deb12-cloud-amd64 (EADDRINUSE)",
        ]
    );
    // The mirrored order refuses on every kernel: no window, 6.6 gets it.
    let m = suite.test(MIRRORED).unwrap();
    assert!(file.windows(m, "bind_b", None).is_empty());
    let a = resolve(&suite, MIRRORED, "6.6.30");
    assert_eq!(a.outcome.to_string(), "EADDRINUSE");
    assert!(a.window.is_none());
}

#[test]
fn expect_a_cited_source_with_a_kernel_range_decides_inside_a_window() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(repo_cases())
        .arg(dir.path().join("cases"))
        .status()
        .unwrap();
    assert!(status.success());
    let root = dir.path().join("cases");
    let linux = root.join("expected/linux.toml");
    let mut text = std::fs::read_to_string(&linux).unwrap();
    text.push_str(
        r#"
[[expect]]
case = "bind::pairs"
where = { mode = "plain", proto = "tcp", first = "mapped_any", second = "mapped_lo" }
kernel = ">=6.2, <6.12"
outcomes = { bind_b = "ok" }
source = "documented"
cite = "linux-selftest-bind-wildcard"
confidence = "T"
why = "a fixture: a fix said to reach 6.12 only"
"#,
    );
    std::fs::write(&linux, text).unwrap();
    let suite = Suite::load(&root).unwrap();
    let a = resolve(&suite, MAPPED, "6.6.30");
    assert_eq!(a.outcome.to_string(), "ok");
    assert!(matches!(a.entry.provenance, Provenance::Documented { .. }));
    assert!(a.window.is_some());
    // Outside its range the window still says unknown.
    assert_eq!(
        *resolve(&suite, MAPPED, "5.15.160").outcome,
        Outcome::Unknown
    );
    // An observed release is unaffected.
    assert_eq!(resolve(&suite, MAPPED, V6_1).outcome.to_string(), "ok");
}
