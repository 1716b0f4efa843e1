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
    use nix::sys::signal::Signal;
    use std::sync::mpsc;

    fn signal(child: &std::process::Child, sig: Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
    }

    /// A tree whose every test keeps a helper process busy for 5 s
    /// (`drain` in the actor `peer`), so that an interrupt always finds one.
    fn slow_tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("slow")).unwrap();
        std::fs::create_dir_all(dir.path().join("expected")).unwrap();
        std::fs::write(dir.path().join("expected/linux.toml"), "os = \"linux\"\n").unwrap();
        std::fs::write(
            dir.path().join("slow/hold.toml"),
            r#"title = "a helper holds a connection while the peer waits"
source = "sockspec's interrupt tests"
claims = []
deadline_ms = 8000
steps = [
  { do = "spawn", actor = "peer" },
  { do = "socket", name = "l", type = "tcp", family = "v4", actor = "peer" },
  { do = "bind", sock = "l", addr = "lo4", port = "@p" },
  { do = "listen", sock = "l" },
  { do = "socket", name = "c", type = "tcp", family = "v4" },
  { do = "connect", sock = "c", addr = "lo4", port = "l" },
  { do = "accept", sock = "l", name = "s" },
  { do = "drain", sock = "s", wait_ms = 5000, check = "peer_sees" },
]

[grid]
n = [1, 2, 3, 4]
"#,
        )
        .unwrap();
        dir
    }

    /// `/proc/<pid>/stat`: (state, parent pid, start time).
    fn stat(pid: u32) -> Option<(char, u32, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest: Vec<&str> = text[text.rfind(')')? + 2..].split(' ').collect();
        Some((
            rest[0].chars().next()?,
            rest[1].parse().ok()?,
            rest[19].parse().ok()?,
        ))
    }

    /// The processes whose parent is `parent`, with their start times.
    fn children(parent: u32) -> Vec<(u32, u64)> {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| stat(pid).map(|(_, ppid, start)| (pid, ppid, start)))
            .filter(|(_, ppid, _)| *ppid == parent)
            .map(|(pid, _, start)| (pid, start))
            .collect()
    }

    /// Orphans of the runs come to this process instead of init, which
    /// reaps nothing of ours: a helper the run left behind stays visible
    /// (a zombie of ours) until [`left_behind`] reaps it.
    fn adopt_orphans() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: prctl with integer arguments.
        ONCE.call_once(|| unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1), 0);
        });
    }

    /// The helpers in `seen` that still exist (running or zombies) once
    /// their run has ended; reaps the ones left to this process.
    fn left_behind(seen: &[(u32, u64)]) -> Vec<String> {
        let mut left = Vec::new();
        for (pid, start) in seen {
            if let Some((state, ppid, s)) = stat(*pid)
                && s == *start
            {
                left.push(format!("helper {pid} in state {state}, parent {ppid}"));
                if ppid == std::process::id() {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(*pid as i32),
                        Signal::SIGKILL,
                    );
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(*pid as i32), None);
                }
            }
        }
        left
    }

    /// A run of the slow tree, and its stderr's lines as they come.
    struct Run {
        child: std::process::Child,
        stderr: mpsc::Receiver<String>,
        _tree: tempfile::TempDir,
    }

    /// Starts a run and waits (up to a minute: a debug build on a loaded
    /// machine loads slowly) until it has a helper process.
    fn start(json: &std::path::Path) -> (Run, Vec<(u32, u64)>) {
        adopt_orphans();
        let tree = slow_tree();
        let mut child = sockspec()
            .args(["run", "-q", "--only-cases", "--cases"])
            .arg(tree.path())
            .args([
                "--jobs",
                "1",
                "--repeat",
                "200",
                "--isolation",
                "host",
                "--json",
            ])
            .arg(json)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let helpers = wait_for(|| Some(children(child.id())).filter(|h| !h.is_empty()));
        let run = Run {
            child,
            stderr: rx,
            _tree: tree,
        };
        (run, helpers)
    }

    /// Polls `f` until it answers, for at most a minute.
    fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(t) = f() {
                return t;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "waited a minute in vain"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (up to a minute) for the first interrupt's message on stderr.
    fn acknowledged(run: &Run) {
        let started = Instant::now();
        while !run
            .stderr
            .recv_timeout(Duration::from_secs(60).saturating_sub(started.elapsed()))
            .expect("no message after the interrupt")
            .starts_with("interrupted")
        {}
    }

    #[test]
    fn an_interrupted_run_keeps_what_it_did() {
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            let dir = tempfile::tempdir().unwrap();
            let json = dir.path().join("r.json");
            let (run, seen) = start(&json);
            signal(&run.child, sig);
            let out = run.child.wait_with_output().unwrap();
            assert_eq!(out.status.code(), Some(130), "{sig}: {out:?}");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("interrupted"), "{sig}: {stdout}");
            assert!(!stdout.contains("each test ran"), "{sig}: {stdout}");
            assert!(stdout.contains("(of 200 repeats asked)"), "{sig}: {stdout}");
            let r: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
            assert_eq!(r["run"]["interrupted"], true);
            let ran = r["tests"].as_array().unwrap().len();
            assert!((1..4).contains(&ran), "{sig}: {ran} tests recorded");
            let left = left_behind(&seen);
            assert!(left.is_empty(), "{sig}: {left:?}");
        }
    }

    #[test]
    fn a_second_interrupt_ends_the_run_at_once() {
        for sig in [Signal::SIGINT, Signal::SIGTERM] {
            let dir = tempfile::tempdir().unwrap();
            let (run, mut seen) = start(&dir.path().join("r.json"));
            let pid = run.child.id();
            signal(&run.child, sig);
            acknowledged(&run);
            // The running test's helper is busy for 5 s yet.
            seen.extend(children(pid));
            let t = Instant::now();
            signal(&run.child, sig);
            let mut run = run;
            let status = run.child.wait().unwrap();
            let took = t.elapsed();
            assert_eq!(status.code(), Some(130), "{sig}");
            // At once: well before the running test's 5 s end (killing
            // and reaping the helpers takes at most a second).
            assert!(took < Duration::from_secs(3), "{sig}: {took:?}");
            let left = left_behind(&seen);
            assert!(left.is_empty(), "{sig}: helpers left behind: {left:?}");
        }
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
