//! The command line's contract: exit codes, refusals before work, closed
//! pipes, interrupted runs.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn sockspec() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sockspec"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    c.env_remove("CI");
    c
}

fn code(c: &mut Command) -> (i32, String) {
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn jobs_zero_is_refused_like_repeat_zero() {
    assert_eq!(code(sockspec().args(["run", "--jobs", "0"])).0, 2);
    assert_eq!(code(sockspec().args(["run", "--repeat", "0"])).0, 2);
}

#[test]
fn bless_with_a_filter_that_matches_nothing_is_bad_input() {
    let (c, err) = code(sockspec().args(["bless", "no-such-test-anywhere"]));
    assert_eq!(c, 2, "{err}");
}

#[test]
fn bless_from_results_that_name_no_test_of_the_suite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r.json");
    std::fs::write(
        &r,
        r#"{"schema":"SCHEMA","run":{"os":"linux","kernel":"6.18.1","os_detail":"","arch":"x86_64","sockspec":"0","started":"","duration_ms":0,"jobs":1,"repeat":1,"isolation":"host","privileged":false},"summary":{"total":0,"pass":0,"fail":0,"error":0,"skip":0,"intermittent":0},"tests":[]}"#
            .replace("SCHEMA", sockspec::results::SCHEMA),
    )
    .unwrap();
    let (c, err) = code(sockspec().arg("bless").arg("--from").arg(&r));
    assert_eq!(c, 3, "{err}");
    assert!(err.contains("nothing was blessed"), "{err}");
}

#[test]
fn an_unwritable_output_is_refused_before_the_run() {
    let started = Instant::now();
    let out = sockspec()
        .args(["run", "--json", "/nonexistent-dir/r.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing ran");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent-dir/r.json"));
    assert!(started.elapsed() < Duration::from_secs(5));
    let dir = tempfile::tempdir().unwrap();
    let (c, err) = code(
        sockspec()
            .args(["report", "--html"])
            .arg(dir.path().join("no/x.html"))
            .arg(dir.path().join("r.json")),
    );
    assert_eq!(c, 2, "{err}");
}

#[test]
fn reports_refuse_what_they_would_silently_not_do() {
    let (c, err) = code(sockspec().args([
        "report",
        "--baseline",
        "a.json",
        "b.json",
        "--html",
        "x.html",
    ]));
    assert_eq!(c, 2, "{err}");
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r.json");
    std::fs::write(&r, "{}").unwrap();
    let (c, err) = code(sockspec().arg("report").arg(&r).arg(&r));
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("given twice"), "{err}");
}

/// A results file of a run of `os` that started at `started`, with no tests.
fn results_file(dir: &std::path::Path, name: &str, os: &str, started: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        r#"{"schema":"SCHEMA","run":{"os":"OS","kernel":"6.18.1","os_detail":"","arch":"x86_64","sockspec":"0","started":"STARTED","duration_ms":1234.5678,"jobs":1,"repeat":1,"isolation":"host","privileged":false},"summary":{"total":0,"pass":0,"fail":0,"error":0,"skip":0,"intermittent":0},"tests":[]}"#
            .replace("SCHEMA", sockspec::results::SCHEMA)
            .replace("OS", os)
            .replace("STARTED", started),
    )
    .unwrap();
    path
}

/// One run counts once: the same file twice, or a copy of it under another
/// name, is refused (a report of two identical runs, or a comparison that
/// finds nothing, would say something untrue); so is a baseline of another OS.
#[test]
fn reports_refuse_one_run_given_twice_and_baselines_of_another_os() {
    let dir = tempfile::tempdir().unwrap();
    let a = results_file(dir.path(), "a.json", "linux", "2026-01-01T00:00:00Z");
    let copy = dir.path().join("a2.json");
    std::fs::copy(&a, &copy).unwrap();
    let later = results_file(dir.path(), "later.json", "linux", "2026-01-02T00:00:00Z");
    let mac = results_file(dir.path(), "mac.json", "macos", "2026-01-02T00:00:00Z");
    let report = |args: &[&std::path::Path]| code(sockspec().arg("report").args(args));
    let baseline = |old: &std::path::Path, new: &std::path::Path| {
        code(sockspec().args(["report", "--baseline"]).arg(old).arg(new))
    };

    let (c, err) = baseline(&a, &a);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("given twice"), "{err}");
    for (c, err) in [report(&[&a, &copy]), baseline(&a, &copy)] {
        assert_eq!(c, 2, "{err}");
        assert!(err.contains("hold the same run"), "{err}");
        assert!(err.contains("a2.json"), "{err}");
    }
    let (c, err) = baseline(&a, &mac);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("same OS") && err.contains("macos"), "{err}");

    // Two runs of one OS, and runs of several OSes side by side, are fine.
    assert_eq!(baseline(&a, &later).0, 0);
    assert_eq!(report(&[&a, &later, &mac]).0, 0);
}

#[test]
fn a_closed_pipe_ends_output_quietly() {
    for args in [&["list"][..], &["explain", "bind"][..], &["claims"][..]] {
        let mut child = sockspec()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        // The reader goes away after one line (as `| head -1` does).
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {err}");
    }
}

#[cfg(target_os = "linux")]
mod interrupt {
    use super::*;

    fn signal(child: &std::process::Child) {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
    }

    /// The `timing` topic blocks on purpose (about a second a test): one
    /// worker cannot finish it before the interrupt.
    fn start(json: &std::path::Path) -> std::process::Child {
        let child = sockspec()
            .args([
                "run",
                "-q",
                "--jobs",
                "1",
                "--repeat",
                "200",
                "--isolation",
                "host",
                "timing::",
                "--json",
            ])
            .arg(json)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait until the run has started its worker (main thread, the
        // signal handler's thread and one worker): loading the suite takes a
        // while in a debug build on a loaded machine. Then let it run a bit.
        let tasks = format!("/proc/{}/task", child.id());
        let started = Instant::now();
        while std::fs::read_dir(&tasks).map_or(0, |d| d.count()) < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the run never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(1000));
        child
    }

    #[test]
    fn an_interrupted_run_keeps_what_it_did() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("r.json");
        let child = start(&json);
        signal(&child);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("interrupted"), "{stdout}");
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(r["run"]["interrupted"], true);
        let ran = r["tests"].as_array().unwrap().len();
        assert!((1..12).contains(&ran), "{ran} tests recorded");
    }

    #[test]
    fn a_second_interrupt_ends_the_run_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let child = start(&dir.path().join("r.json"));
        signal(&child);
        std::thread::sleep(Duration::from_millis(50));
        let t = Instant::now();
        signal(&child);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(130), "{out:?}");
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );
    }
}

/// README.md's tables render whole: a blank line between two rows would end
/// the table there (the rest shows as a paragraph of pipes), as it once did
/// before `--stack-profile`.
#[test]
fn readme_tables_are_not_cut_by_blank_lines() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    for (i, w) in lines.windows(3).enumerate() {
        let cut = w[0].starts_with('|') && w[1].trim().is_empty() && w[2].starts_with("| ");
        // A new table starts with its header and the `|---|` line.
        let new_table = lines.get(i + 3).is_some_and(|l| l.starts_with("|-"));
        assert!(
            !cut || new_table,
            "README.md:{}: a blank line cuts the table before {:?}",
            i + 2,
            w[2]
        );
    }
    let options = readme
        .split("| option | meaning |")
        .nth(1)
        .expect("README has the run options table");
    let table: Vec<&str> = options
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .collect();
    for opt in ["--jobs", "--agent", "--stack-profile"] {
        assert!(
            table.iter().any(|r| r.contains(opt)),
            "{opt} not in the options table: {table:#?}"
        );
    }
}
