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

#[test]
fn a_closed_stderr_ends_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    // A tree with many errors (each its own line on stderr).
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    for i in 0..200 {
        std::fs::write(dir.path().join(format!("t/c{i}.toml")), "title = 1\n").unwrap();
    }
    let tree = dir.path().to_str().unwrap();
    for args in [
        &["explain", "nosuchthing"][..],
        &["check", "--only-cases", "--cases", tree][..],
        &["run", "--only-cases", "--cases", tree][..],
    ] {
        // Standard error is a pipe whose reader has gone before the first
        // write (`2>&1 | true`); standard output is read.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = sockspec()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(writer)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("panicked"), "{args:?}: {stdout}");
        assert_ne!(out.status.code(), Some(101), "{args:?}: {stdout}");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}");
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
