//! `sockspec bless` edits expectation files in place. Most of these tests
//! feed it observations directly: they test the file editing, not a
//! kernel. Those that go through the command line run a small case here.

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

/// `sockspec ARGS --only-cases --cases DIR`, outside CI.
fn on_tree(dir: &tempfile::TempDir, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sockspec"))
        .args(args)
        .args(["--only-cases", "--cases"])
        .arg(dir.path())
        .env_remove("CI")
        .output()
        .unwrap()
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
    // The whole file, as a reviewer would read it in a diff.
    insta::assert_snapshot!("blessed_freebsd_toml", text);
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

    // A different outcome on 14.2 for every test: the entry also speaks for
    // 14.1, so it stays as it is and 14.2 gets an entry of its own.
    let s = Suite::load(dir.path()).unwrap();
    let sum = bless(&s, OsFamily::Freebsd, "14.2-RELEASE", &obs(&s, |_, _| "ok")).unwrap();
    assert_eq!((sum.changed, sum.added), (0, 1), "{}", read(&dir));
    let text = read(&dir);
    assert!(
        text.contains("seen_on = [\"14.1-RELEASE\", \"14.2-RELEASE\"]"),
        "{text}"
    );
    assert!(
        text.contains(
            "kernel = \"=14.2\"\noutcomes = { bind_b = \"ok\" }\nsource = \"observed\"\nseen_on = [\"14.2-RELEASE\"]"
        ),
        "{text}"
    );

    // Once an entry speaks only for this series, a new outcome edits it in place.
    let s = Suite::load(dir.path()).unwrap();
    let sum = bless(
        &s,
        OsFamily::Freebsd,
        "14.2-RELEASE",
        &obs(&s, |_, _| "EACCES"),
    )
    .unwrap();
    assert_eq!((sum.changed, sum.added), (1, 0), "{}", read(&dir));
    let text = read(&dir);
    assert_eq!(text.matches("[[expect]]").count(), 3, "{text}");
    assert!(
        text.contains("outcomes = { bind_b = \"EACCES\" }"),
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
        .args(["bless", "--only-cases", "--cases"])
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
    let out = on_tree(&dir, &["bless", "--from", path.to_str().unwrap()]);
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

/// Copies the repository's real case tree into a temporary directory.
fn real_tree() -> tempfile::TempDir {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), target).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases"),
        dir.path(),
    );
    dir
}

#[test]
fn a_run_on_one_series_never_rewrites_what_other_series_showed() {
    use sockspec::expect::Provenance;
    use sockspec::version::version_numbers;
    let dir = real_tree();
    let s = Suite::load(dir.path()).unwrap();
    let linux = s.expectations.for_os(OsFamily::Linux).unwrap();
    // An unranged observed entry seen on several kernel series, and a test
    // whose checked bind step it answers.
    let series = |r: &str| version_numbers(r).into_iter().take(2).collect::<Vec<_>>();
    let (entry, test, label, old) = linux
        .entries
        .iter()
        .filter(|e| e.kernel.is_none())
        .filter(|e| match &e.provenance {
            Provenance::Observed { seen_on, .. } => {
                seen_on
                    .iter()
                    .map(|r| series(r))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
                    > 1
            }
            _ => false,
        })
        .find_map(|e| {
            let (label, old) = e.outcomes.iter().find(|(l, o)| {
                l.starts_with("bind") && matches!(o, Outcome::Ok | Outcome::Error(_))
            })?;
            let t = s.tests.iter().find(|t| {
                linux
                    .resolve(t, label, Some("6.18.99"))
                    .is_some_and(|a| std::ptr::eq(a.entry, e))
            })?;
            Some((e, t.clone(), label.clone(), old.clone()))
        })
        .expect("linux.toml has an observed entry seen on several kernel series");
    let Provenance::Observed {
        seen_on: before, ..
    } = &entry.provenance
    else {
        unreachable!()
    };
    let new: Outcome = if old == Outcome::Ok {
        "EADDRINUSE"
    } else {
        "ok"
    }
    .parse()
    .unwrap();
    let o = vec![Observation {
        test: test.clone(),
        outcomes: vec![(label.clone(), new.clone())],
    }];
    bless(&s, OsFamily::Linux, "6.18.99", &o).unwrap();

    let s = Suite::load(dir.path()).unwrap();
    let linux = s.expectations.for_os(OsFamily::Linux).unwrap();
    let t = s.test(&test.name).unwrap();
    // The new outcome holds for 6.18.99 only, from an entry limited to the
    // release observed (not the whole series) ...
    let now = linux.resolve(t, &label, Some("6.18.99")).unwrap();
    assert_eq!(*now.outcome, new);
    assert_eq!(
        now.entry.kernel.as_ref().map(|k| k.text.as_str()),
        Some("=6.18.99")
    );
    // ... and every other release the old entry listed still gets the old one,
    // with its provenance intact.
    for r in before.iter().filter(|r| series(r) != series("6.18.99")) {
        let a = linux.resolve(t, &label, Some(r)).unwrap();
        assert_eq!(*a.outcome, old, "{r}");
        match &a.entry.provenance {
            Provenance::Observed { seen_on, .. } => assert_eq!(seen_on, before),
            p => panic!("{p:?}"),
        }
    }
}

#[cfg(target_os = "linux")]
mod interrupted_writes {
    //! A bless that dies or fails half-way through writing leaves the old file.
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    /// Runs `sockspec bless --from` with a file-size limit that stops its
    /// write half-way; `ignore_xfsz` makes the write fail with EFBIG instead
    /// of killing the process (SIGXFSZ).
    fn bless_limited(
        dir: &std::path::Path,
        results: &std::path::Path,
        ignore_xfsz: bool,
    ) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sockspec"));
        cmd.args(["bless", "--only-cases", "--cases"])
            .arg(dir)
            .arg("--from")
            .arg(results)
            .env_remove("CI");
        unsafe {
            cmd.pre_exec(move || {
                // Larger than the results file read, smaller than linux.toml.
                let lim = libc::rlimit {
                    rlim_cur: 4096,
                    rlim_max: 4096,
                };
                libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
                if ignore_xfsz {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                }
                Ok(())
            });
        }
        cmd.output().unwrap()
    }

    #[test]
    fn a_write_cut_short_leaves_the_old_bytes() {
        let dir = super::real_tree();
        let path = dir.path().join("expected/linux.toml");
        let before = std::fs::read(&path).unwrap();
        assert!(before.len() > 4096);
        // A real run of one test, its outcome then changed so that bless
        // must rewrite the file.
        let results = dir.path().join("r.json");
        let name = "bind::pairs::mode=plain::proto=tcp::first=any4::second=any4";
        let run = Command::new(env!("CARGO_BIN_EXE_sockspec"))
            .args(["run", "-q", "--exact", name, "--json"])
            .arg(&results)
            .args(["--only-cases", "--cases"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(run.status.success(), "{run:?}");
        let mut r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
        r["run"]["kernel"] = "6.18.99".into();
        for s in r["tests"][0]["steps"].as_array_mut().unwrap() {
            if s["label"] == "bind_b" {
                s["outcome"] = "EACCES".into();
            }
        }
        std::fs::write(&results, serde_json::to_vec(&r).unwrap()).unwrap();
        for ignore in [false, true] {
            let out = bless_limited(dir.path(), &results, ignore);
            assert!(!out.status.success(), "{out:?}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                before,
                "ignore SIGXFSZ: {ignore}"
            );
        }
        // The failed write (EFBIG) cleaned up after itself.
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("expected"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(sockspec::atomic::TEMP_PREFIX)
            })
            .collect();
        assert!(leftovers.len() <= 1, "{leftovers:?}");
    }

    #[test]
    fn crlf_files_stay_crlf() {
        let dir = super::real_tree();
        let path = dir.path().join("expected/linux.toml");
        let crlf = std::fs::read_to_string(&path)
            .unwrap()
            .replace('\n', "\r\n");
        std::fs::write(&path, &crlf).unwrap();
        let s = sockspec::Suite::load(dir.path()).unwrap();
        let t = s
            .tests
            .iter()
            .find(|t| t.name.starts_with("bind::pairs::"))
            .unwrap()
            .clone();
        let o = vec![sockspec::bless::Observation {
            test: t,
            outcomes: vec![("bind_b".into(), "EACCES".parse().unwrap())],
        }];
        sockspec::bless::bless(&s, sockspec::model::OsFamily::Linux, "6.18.99", &o).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert_ne!(after, crlf);
        assert!(after.ends_with("\r\n"));
        assert_eq!(after.matches('\n').count(), after.matches("\r\n").count());
    }
}

/// A run inside a window of disagreeing observations (the v4-mapped bind of
/// linux.toml: 6.1.192 ok, 6.12.117 EADDRINUSE) is a new observation there:
/// agreeing with the unranged entry, that entry gains the release and the
/// window shrinks; disagreeing, a new entry holds the release observed only.
#[test]
fn a_run_inside_a_window_narrows_it() {
    const MAPPED: &str = "bind::pairs::mode=plain::proto=tcp::first=mapped_any::second=mapped_lo";
    let text = |w: Option<sockspec::expect::Window<'_>>| w.map(|w| w.text());
    for (got, window_left) in [
        (
            "EADDRINUSE",
            "6.1.192 (6.1.0-57-cloud-amd64) (ok) .. 6.6.30 (EADDRINUSE)",
        ),
        (
            "ok",
            "6.6.30 (ok) .. 6.12.117+deb12-cloud-amd64 (EADDRINUSE)",
        ),
    ] {
        let dir = real_tree();
        let s = Suite::load(dir.path()).unwrap();
        let t = s.test(MAPPED).unwrap().clone();
        let o = vec![Observation {
            test: t.clone(),
            outcomes: vec![("bind_b".into(), got.parse().unwrap())],
        }];
        bless(&s, OsFamily::Linux, "6.6.30", &o).unwrap();
        let s = Suite::load(dir.path()).unwrap();
        let linux = s.expectations.for_os(OsFamily::Linux).unwrap();
        let t = s.test(MAPPED).unwrap();
        let now = linux.resolve(t, "bind_b", Some("6.6.30")).unwrap();
        assert_eq!(now.outcome.to_string(), got);
        assert!(now.window.is_none());
        if got == "ok" {
            assert_eq!(
                now.entry.kernel.as_ref().map(|k| k.text.as_str()),
                Some("=6.6.30")
            );
        } else {
            assert!(now.entry.kernel.is_none());
        }
        // Between 6.1.192 and 6.6.30, or 6.6.30 and 6.12.117: still unknown.
        let probe = if got == "ok" { "6.9.1" } else { "6.3.1" };
        let a = linux.resolve(t, "bind_b", Some(probe)).unwrap();
        assert_eq!(*a.outcome, Outcome::Unknown, "{probe}");
        assert_eq!(text(a.window).as_deref(), Some(window_left), "{probe}");
    }
}

/// Issue 16: a run whose steps ran in another runtime's helper (`--agent`)
/// is named in what it blesses, and `explain` shows it. A real run of the
/// Python helper on this kernel, then one of sockspec's own.
#[test]
fn a_bless_from_an_agent_run_records_the_runtime_and_its_version() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    std::fs::write(
        dir.path().join("t/pair.toml"),
        r#"title = "x"
source = "y"
steps = [
  { do = "socket", name = "a", type = "{proto}", family = "v4" },
  { do = "bind", sock = "a", addr = "lo4", port = "@p" },
  { do = "socket", name = "b", type = "{proto}", family = "v4" },
  { do = "bind", sock = "b", addr = "lo4", port = "a", check = true },
]

[grid]
proto = ["udp"]
"#,
    )
    .unwrap();
    let sockspec = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_sockspec"))
            .args(args)
            .args(["--only-cases", "--cases"])
            .arg(dir.path())
            .env_remove("CI")
            .env_remove("SOCKSPEC_LABEL")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let file = dir
        .path()
        .join("expected")
        .join(format!("{}.toml", sockspec::sys::os_family()));
    let python = dir.path().join("python.json");
    let (_, said) = sockspec(&[
        "run",
        "-q",
        "--agent",
        "python",
        "--json",
        python.to_str().unwrap(),
    ]);
    let r = sockspec::results::Results::read(&python).unwrap();
    let runtime = r
        .run
        .runtime()
        .unwrap_or_else(|| panic!("{said}"))
        .to_string();
    assert!(runtime.starts_with("python 3."), "{runtime}");
    let (code, said) = sockspec(&["bless", "--from", python.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{said}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!(
            "seen_with = [\"{runtime}\"]\nwhy = \"blessed from a run on "
        )),
        "{text}"
    );
    assert!(text.contains(&format!("(steps in {runtime})")), "{text}");
    let (_, shown) = sockspec(&["explain", "t::pair::proto=udp"]);
    assert!(shown.contains(&format!("with {runtime}")), "{shown}");
    // sockspec's own run agrees: both implementations are named.
    let own = dir.path().join("own.json");
    sockspec(&["run", "-q", "--json", own.to_str().unwrap()]);
    let (code, said) = sockspec(&["bless", "--from", own.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{said}");
    let text = std::fs::read_to_string(&file).unwrap();
    let builtin = concat!("rust std (sockspec ", env!("CARGO_PKG_VERSION"), ")");
    assert!(
        text.contains(&format!("seen_with = [\"{runtime}\", \"{builtin}\"]")),
        "{text}"
    );
    let s = Suite::load(dir.path()).unwrap();
    let e = &s
        .expectations
        .for_os(sockspec::sys::os_family())
        .unwrap()
        .entries[0];
    assert_eq!(
        e.provenance,
        sockspec::expect::Provenance::Observed {
            seen_on: vec![r.run.kernel.clone()],
            seen_with: vec![runtime.clone(), builtin.to_string()],
        }
    );
}

/// `os`'s expectation file with one observed entry: `bind_b` is `ok` over
/// UDP.
fn observed_udp_bind_b(os: OsFamily) -> String {
    format!(
        "os = \"{os}\"\n\n[[expect]]\ncase = \"t::c\"\nwhere = {{ proto = \"udp\" }}\n\
         outcomes = {{ bind_b = \"ok\" }}\nsource = \"observed\"\nseen_on = [\"1.0\"]\n\
         why = \"blessed from a run on {os} 1.0\"\n"
    )
}

/// `case` changed to check the second bind only over TCP, which leaves an
/// observed UDP outcome for it stale.
fn bind_b_only_over_tcp(case: &str) -> String {
    let changed = case.replace(
        r#"port = "a", check = true },"#,
        r#"port = "a", check = true, when = { proto = "tcp" } },"#,
    );
    assert_ne!(changed, case);
    changed
}

/// A tree whose file for `os` (returned) holds an observed UDP outcome for
/// `bind_b`, stale since its case checks that step only over TCP.
fn stale_tree(os: OsFamily) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tree();
    let file = dir.path().join(format!("expected/{os}.toml"));
    std::fs::write(&file, observed_udp_bind_b(os)).unwrap();
    std::fs::write(dir.path().join("t/c.toml"), bind_b_only_over_tcp(CASE)).unwrap();
    (dir, file)
}

/// A case that stops checking a step leaves observed outcomes for it, which
/// every command refuses; bless (and nothing by hand) removes them.
#[test]
fn bless_removes_observed_outcomes_of_steps_the_case_no_longer_checks() {
    let os = sockspec::Platform::current().os;
    // Another OS, whose file only a run there (here: this run, relabelled)
    // can bless.
    let other = if os == OsFamily::Openbsd {
        OsFamily::Netbsd
    } else {
        OsFamily::Openbsd
    };
    let dir = tree();
    let file_of = |os: OsFamily| dir.path().join(format!("expected/{os}.toml"));
    for os in [os, other] {
        std::fs::write(file_of(os), observed_udp_bind_b(os)).unwrap();
    }
    let file = file_of(os);
    let cli = |args: &[&str]| on_tree(&dir, args);
    assert!(cli(&["check"]).status.success());
    // The case now checks the second bind only over TCP.
    std::fs::write(dir.path().join("t/c.toml"), bind_b_only_over_tcp(CASE)).unwrap();
    let out = cli(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("step `bind_b` does not occur in the tests this entry selects")
            && err.contains("`sockspec bless` on this OS removes it"),
        "{err}"
    );
    let out = cli(&["bless"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("1 outcome(s) of steps the cases no longer check removed"),
        "{said}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains("proto = \"udp\""), "{text}");
    // The other OS's file keeps its outcome, and bless says what is left.
    assert!(
        said.contains(&format!(
            "{other}.toml: 1 observed outcome(s) of steps the cases no longer check"
        )),
        "{said}"
    );
    let out = cli(&["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{other}.toml")), "{err}");
    // A run still runs (and says what it leaves out); blessed as a run on
    // the other OS, it clears that file too.
    let results = dir.path().join("results.json");
    let out = cli(&["run", "--json", results.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("observed outcome(s) of steps the cases no longer check are left out"),
        "{err}"
    );
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
    json["run"]["os"] = other.to_string().into();
    json["run"]["kernel"] = "2.0".into();
    std::fs::write(&results, json.to_string()).unwrap();
    let out = cli(&["bless", "--from", results.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a load sets stale observed outcomes aside is the load's own
/// choice (`Scope::set_aside_stale`), not the process's: a load that sets
/// them aside (as bless's do) leaves a later plain load (as check's)
/// refusing them.
#[test]
fn a_load_that_sets_stale_outcomes_aside_leaves_later_loads_refusing() {
    let os = sockspec::Platform::current().os;
    let (dir, _) = stale_tree(os);
    let aside = Suite::load_scoped(dir.path(), &sockspec::Scope::setting_aside_stale()).unwrap();
    let file = aside.expectations.for_os(os).unwrap();
    assert_eq!(file.set_aside(), 1);
    let refused = Suite::load(dir.path())
        .err()
        .expect("a plain load refuses it");
    assert!(
        refused
            .to_string()
            .contains("step `bind_b` does not occur in the tests this entry selects"),
        "{refused}"
    );
}

/// A run's warning names the file the stale outcome is in, also when the
/// suite is several trees (whose entries share one file per OS, named for
/// the first tree's).
#[test]
fn the_set_aside_warning_names_the_tree_the_outcome_is_in() {
    let os = sockspec::Platform::current().os;
    let first = tree();
    std::fs::write(
        first.path().join(format!("expected/{os}.toml")),
        format!("os = \"{os}\"\n"),
    )
    .unwrap();
    let (second, stale) = stale_tree(os);
    // Built here, not by trees::resolve, which $SOCKSPEC_CASES overrides.
    let tree_at = |dir: &tempfile::TempDir, name: &str| sockspec::trees::Tree {
        root: dir.path().to_path_buf(),
        name: Some(name.into()),
        embedded: false,
    };
    let trees = [tree_at(&first, "first"), tree_at(&second, "second")];
    let suite =
        sockspec::trees::load_scoped(&trees, &sockspec::Scope::setting_aside_stale()).unwrap();
    let warnings = suite.expectations.set_aside_warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&format!("{}: 1 observed outcome(s)", stale.display())),
        "{warnings:?}"
    );
}

/// An outcome bless cannot take out (its entry's `outcomes` is a table of
/// its own, not inline) fails the bless, and the file is left as it was.
#[test]
fn a_stale_outcome_bless_cannot_remove_fails_it_and_the_file_stays() {
    let os = sockspec::Platform::current().os;
    let dir = tree();
    let file = dir.path().join(format!("expected/{os}.toml"));
    let text = format!(
        "os = \"{os}\"\n\n[[expect]]\ncase = \"t::c\"\nwhere = {{ proto = \"udp\" }}\n\
         source = \"observed\"\nseen_on = [\"1.0\"]\nwhy = \"blessed from a run on {os} 1.0\"\n\n\
         [expect.outcomes]\nbind_a = \"ok\"\nbind_b = \"ok\"\n"
    );
    // The first bind is checked too, so the entry keeps an outcome and
    // only `bind_b` would have to go from it.
    let both = CASE.replace(r#"port = "@p" },"#, r#"port = "@p", check = true },"#);
    std::fs::write(dir.path().join("t/c.toml"), &both).unwrap();
    std::fs::write(&file, &text).unwrap();
    let check = on_tree(&dir, &["check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    std::fs::write(dir.path().join("t/c.toml"), bind_b_only_over_tcp(&both)).unwrap();
    let out = on_tree(&dir, &["bless"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("still gives `bind_b`, a step its tests no longer check"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}
