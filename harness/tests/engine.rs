//! The executor and judge on real sockets, with behaviour every OS shares
//! (binding one specific address twice without options fails everywhere).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sockspec::exec::ports::PortBook;
use sockspec::report::wording::why;
use sockspec::results::Verdict;
use sockspec::run::run_one;
use sockspec::{Platform, Suite};

fn suite(cases: &[(&str, &str)], expect: &str) -> (tempfile::TempDir, Suite) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in cases {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let os = Platform::current().os;
    std::fs::create_dir_all(dir.path().join("expected")).unwrap();
    std::fs::write(
        dir.path().join(format!("expected/{os}.toml")),
        // An expectation file says at least which OS it is for.
        if expect.is_empty() {
            format!("os = \"{os}\"\n")
        } else {
            expect.to_string()
        },
    )
    .unwrap();
    let s = Suite::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (dir, s)
}

fn run(s: &Suite, name: &str) -> sockspec::results::TestRecord {
    let book = Arc::new(PortBook::new());
    run_one(s, &Platform::current(), s.test(name).unwrap(), &book, 1)
}

const TWICE: &str = r#"title = "the same address twice"
source = "everywhere"
steps = [
  { do = "socket", name = "a", type = "tcp", family = "v4" },
  { do = "bind", sock = "a", addr = "lo4", port = "@p" },
  { do = "socket", name = "b", type = "tcp", family = "v4" },
  { do = "bind", sock = "b", addr = "lo4", port = "a", check = true },
]
"#;

#[test]
fn a_matching_expectation_passes() {
    let (_d, s) = suite(
        &[("t/twice.toml", TWICE)],
        "[[expect]]\ncase = \"t::twice\"\noutcomes = { bind_b = \"EADDRINUSE\" }\nsource = \"documented\"\ncite = \"x\"\nwhy = \"y\"\n",
    );
    let r = run(&s, "t::twice");
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", why(&r));
    let step = r
        .steps
        .iter()
        .find(|s| s.label.as_deref() == Some("bind_b"))
        .unwrap();
    assert_eq!(step.outcome, "EADDRINUSE");
    assert!(step.raw.is_some(), "the OS's own code is kept");
    assert_eq!(step.expectation.as_ref().unwrap().line, 1);
}

#[test]
fn a_mismatch_names_both_outcomes_the_entry_and_the_bless_command() {
    let (_d, s) = suite(
        &[("t/twice.toml", TWICE)],
        "# header\n\n[[expect]]\ncase = \"t::twice\"\noutcomes = { bind_b = \"ok\" }\nsource = \"documented\"\ncite = \"a doc\"\nwhy = \"it says so\"\n",
    );
    let r = run(&s, "t::twice");
    assert_eq!(r.verdict, Verdict::Fail);
    let why = why(&r).unwrap();
    for needle in [
        "step 4 `bind b 127.0.0.1:port(a)` (bind_b): expected ok, got EADDRINUSE",
        ".toml:3 (documented: a doc)",
        "why: it says so",
        "t/twice.toml:",
        "cargo run --release -- bless --exact 't::twice'",
    ] {
        assert!(why.contains(needle), "{needle:?} not in:\n{why}");
    }
}

#[test]
fn a_missing_expectation_fails_and_says_how_to_bless() {
    let (_d, s) = suite(&[("t/twice.toml", TWICE)], "");
    let r = run(&s, "t::twice");
    assert_eq!(r.verdict, Verdict::Fail);
    let why = why(&r).unwrap();
    assert!(why.contains("has no expectation for it"), "{why}");
    assert!(why.contains("bless --exact 't::twice'"), "{why}");
}

#[test]
fn an_unknown_expectation_never_passes() {
    let (_d, s) = suite(
        &[("t/twice.toml", TWICE)],
        "[[expect]]\ncase = \"t::twice\"\noutcomes = { bind_b = \"unknown\" }\nsource = \"documented\"\ncite = \"x\"\nwhy = \"sources disagree\"\n",
    );
    let r = run(&s, "t::twice");
    assert_eq!(r.verdict, Verdict::Fail);
    assert!(why(&r).unwrap().contains("the expectation is `unknown`"));
}

#[test]
fn a_step_that_never_finishes_times_out_by_the_deadline() {
    let case = r#"title = "accept with nobody connecting"
source = "nowhere"
deadline_ms = 300
steps = [
  { do = "socket", name = "l", type = "tcp", family = "v4" },
  { do = "bind", sock = "l", addr = "lo4", port = "@p" },
  { do = "listen", sock = "l" },
  { do = "accept", sock = "l", name = "s", check = true },
  { do = "recv", sock = "s", check = true },
]
"#;
    let (_d, s) = suite(
        &[("t/stall.toml", case)],
        "[[expect]]\ncase = \"t::stall\"\noutcomes = { accept_l = \"timeout\" }\nsource = \"documented\"\ncite = \"x\"\nwhy = \"nobody connects\"\n",
    );
    let started = Instant::now();
    let r = run(&s, "t::stall");
    // Without the deadline this would block forever; the bound is loose so
    // that a loaded machine does not fail it (speed is the benchmark's job).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", why(&r));
    let recv = r
        .steps
        .iter()
        .find(|s| s.label.as_deref() == Some("recv_s"))
        .unwrap();
    assert_eq!(recv.outcome, "not_run");
}

#[test]
fn an_unmet_precondition_fails_without_judging_later_steps() {
    // A listener is never in TIME_WAIT: the test cannot show its claim.
    let case = r#"title = "a precondition that cannot hold"
source = "nowhere"
steps = [
  { do = "socket", name = "l", type = "tcp", family = "v4" },
  { do = "bind", sock = "l", addr = "lo4", port = "@p" },
  { do = "listen", sock = "l" },
  { do = "tcp_state", sock = "l", want = "TIME_WAIT", require = "TIME_WAIT", wait_ms = 50 },
  { do = "socket", name = "n", type = "tcp", family = "v4" },
  { do = "bind", sock = "n", addr = "lo4", port = "l", check = true },
]
"#;
    let (_d, s) = suite(
        &[("t/pre.toml", case)],
        "[[expect]]\ncase = \"t::pre\"\noutcomes = { bind_n = \"ok\" }\nsource = \"documented\"\ncite = \"x\"\nwhy = \"y\"\n",
    );
    let r = run(&s, "t::pre");
    assert_eq!(r.verdict, Verdict::Fail);
    assert_eq!(r.problem.as_ref().map(|p| p.kind()), Some("precondition"));
    assert!(why(&r).unwrap().contains("must give TIME_WAIT"));
    let bind = r
        .steps
        .iter()
        .find(|s| s.label.as_deref() == Some("bind_n"))
        .unwrap();
    assert_eq!(bind.outcome, "not_run");
}

#[test]
fn tests_for_other_systems_are_skipped_with_the_reason() {
    let other = if cfg!(windows) { "linux" } else { "windows" };
    let case = format!(
        "title = \"x\"\nsource = \"y\"\nonly = [\"{other}\"]\nsteps = [{{ do = \"socket\", name = \"a\", type = \"tcp\", family = \"v4\" }}]\n"
    );
    let (_d, s) = suite(&[("t/other.toml", &case)], "");
    let r = run(&s, "t::other");
    assert_eq!(r.verdict, Verdict::Skip);
    assert_eq!(
        why(&r).as_deref(),
        Some(format!("only meaningful on {other}").as_str())
    );
}

#[test]
fn an_actor_that_blocks_is_bounded_by_the_deadline_and_ends_with_its_worker() {
    sockspec::exec::actors::set_agent_program(env!("CARGO_BIN_EXE_sockspec").into());
    let case = r#"title = "an actor waits for a connection nobody makes"
source = "nowhere"
deadline_ms = 400
steps = [
  { do = "spawn", actor = "a" },
  { do = "socket", name = "l", type = "tcp", family = "v4", actor = "a" },
  { do = "bind", sock = "l", addr = "lo4", port = "@p" },
  { do = "listen", sock = "l" },
  { do = "accept", sock = "l", name = "s", check = true },
]
"#;
    let (_d, s) = suite(
        &[("t/hang.toml", case)],
        "[[expect]]\ncase = \"t::hang\"\noutcomes = { accept_l = \"timeout\" }\nsource = \"documented\"\ncite = \"x\"\nwhy = \"nobody connects\"\n",
    );
    let started = Instant::now();
    // On a thread of its own, as a worker: a helper that clears is kept for
    // the worker's next test, and ends when the worker does.
    let r = std::thread::scope(|sc| sc.spawn(|| run(&s, "t::hang")).join().unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", why(&r));
    #[cfg(target_os = "linux")]
    {
        // The worker's attempt thread ends the helper as it ends itself,
        // just after the worker: a bounded wait, not a race.
        let pid = spawned_pid(&r);
        let ended_by = Instant::now() + Duration::from_secs(5);
        while is_my_child(pid) && Instant::now() < ended_by {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!is_my_child(pid), "the actor outlived its worker");
    }
}

/// The helper's pid, from the detail of the test's first `spawn` step.
fn spawned_pid(r: &sockspec::results::TestRecord) -> u32 {
    let d = r
        .steps
        .iter()
        .find(|s| s.kind == "spawn")
        .and_then(|s| s.detail.as_deref())
        .unwrap_or_else(|| panic!("no spawn detail: {:?}", r.steps));
    d.split(", pid ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no pid in `{d}`"))
}

/// Whether `pid` is a live (unreaped) child of this process.
#[cfg(target_os = "linux")]
fn is_my_child(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        // pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
        st.rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().nth(1))
            .is_some_and(|ppid| ppid == std::process::id().to_string())
    })
}

/// Sockets a process has open, by /proc.
#[cfg(target_os = "linux")]
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("helper {pid} was not kept: {e}"))
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

const HOLDS_A_PORT: &str = r#"title = "a helper holds a UDP port and a TCP listener"
source = "everywhere"
steps = [
  { do = "spawn", actor = "h", runtime = "{runtime}" },
  { do = "socket", name = "u", type = "udp", family = "v4", actor = "h" },
  { do = "bind", sock = "u", addr = "lo4", port = "@p", check = "bind" },
  { do = "server", name = "s", type = "tcp", addr = "lo4", port = "@q", actor = "h" },
]
[grid]
runtime = ["rust", "python", "node"]
"#;

/// A suite of [`HOLDS_A_PORT`], expected to bind, with sockspec as the
/// built-in helper.
fn holds_a_port() -> (tempfile::TempDir, Suite) {
    sockspec::exec::actors::set_agent_program(env!("CARGO_BIN_EXE_sockspec").into());
    suite(
        &[("t/holds.toml", HOLDS_A_PORT)],
        "[[expect]]\ncase = \"t::holds\"\noutcomes = { bind = \"ok\" }\nsource = \"documented\"\ncite = \"x\"\nwhy = \"a free port\"\n",
    )
}

/// The helper runtimes this machine can start, of `rust`, `python`, `node`.
fn runtimes_here() -> Vec<&'static str> {
    let has = |p: &str| Command::new(p).arg("--version").output().is_ok();
    let mut out = vec!["rust"];
    for (r, p) in [("python", "python3"), ("node", "node")] {
        if has(p) {
            out.push(r);
        } else {
            eprintln!("skipped for {r}: no {p} here");
        }
    }
    out
}

/// A helper that clears serves the worker's next test that starts the
/// same one, and keeps nothing of the test before: (Linux) between tests it
/// has one socket open, its descriptor channel, as when it started.
#[test]
fn a_helper_that_clears_serves_the_next_test_and_keeps_nothing_of_it() {
    let (_d, s) = holds_a_port();
    for rt in runtimes_here() {
        let name = format!("t::holds::runtime={rt}");
        // On a thread of its own, as a worker.
        std::thread::scope(|sc| {
            sc.spawn(|| {
                let first = run(&s, &name);
                assert_eq!(first.verdict, Verdict::Pass, "{rt}: {:?}", why(&first));
                let pid = spawned_pid(&first);
                #[cfg(target_os = "linux")]
                assert_eq!(sockets_of(pid), 1, "{rt}: sockets left in the kept helper");
                let second = run(&s, &name);
                assert_eq!(second.verdict, Verdict::Pass, "{rt}: {:?}", why(&second));
                assert_eq!(spawned_pid(&second), pid, "{rt}: a new helper started");
                let detail = second.steps[0].detail.as_deref().unwrap_or_default();
                assert!(detail.contains("kept from 1 earlier test"), "{detail}");
                #[cfg(target_os = "linux")]
                assert_eq!(sockets_of(pid), 1, "{rt}: sockets left in the kept helper");
            });
        });
    }
}

#[test]
fn a_second_loopback_address_is_a_need_probed_at_run_time() {
    let other = TWICE.replace(
        r#"addr = "lo4", port = "a""#,
        r#"addr = "lo4b", port = "a""#,
    );
    let (_d, s) = suite(&[("t/twice.toml", TWICE), ("t/other.toml", &other)], "");
    let needs = |name: &str| s.test(name).unwrap().needs.clone();
    assert!(needs("t::other").contains(&sockspec::model::Need::SecondLoopback));
    assert!(!needs("t::twice").contains(&sockspec::model::Need::SecondLoopback));
    // Linux and Windows answer on all of 127.0.0.0/8.
    if cfg!(any(target_os = "linux", windows)) {
        assert_eq!(sockspec::sys::second_loopback(), Ok(()));
    }
}

/// A connect to a port that is bound but not listening is refused, in time
/// even on Windows, whose refusal takes its SYN retries (about 2 s,
/// https://github.com/libuv/libuv/pull/2896): the connect waits for the
/// test's deadline, not a shorter timeout of its own.
#[test]
fn a_refused_connect_has_the_time_windows_takes() {
    const REFUSED: &str = r#"title = "a connect nobody listens for"
source = "everywhere"
steps = [
  { do = "socket", name = "l", type = "tcp", family = "v4" },
  { do = "bind", sock = "l", addr = "lo4", port = "@p" },
  { do = "socket", name = "c", type = "tcp", family = "v4" },
  { do = "connect", sock = "c", addr = "lo4", port = "l", check = true },
]
"#;
    let (_d, s) = suite(
        &[("t/refused.toml", REFUSED)],
        "[[expect]]\ncase = \"t::refused\"\noutcomes = { connect_c = \"ECONNREFUSED\" }\nsource = \"documented\"\ncite = \"x\"\nwhy = \"y\"\n",
    );
    let r = run(&s, "t::refused");
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", why(&r));
}

#[test]
fn getsockname_reports_the_bound_address() {
    let case = r#"title = "where a bind lands"
source = "getsockname(2)"
steps = [
  { do = "socket", name = "a", type = "udp", family = "v4" },
  { do = "bind", sock = "a", addr = "lo4", port = 0 },
  { do = "getsockname", sock = "a", addr = "lo4", check = "is_lo" },
  { do = "getsockname", sock = "a", addr = "any4", check = "is_any" },
]
"#;
    let (_d, s) = suite(
        &[("t/name.toml", case)],
        "[[expect]]\ncase = \"t::name\"\noutcomes = { is_lo = \"true\", is_any = \"false\" }\nsource = \"documented\"\ncite = \"x\"\nwhy = \"the address bound\"\n",
    );
    let r = run(&s, "t::name");
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", why(&r));
    assert_eq!(r.outcome("is_lo"), Some("true"));
}

/// A `sysctl` step changes the setting for its test only, inside the
/// worker's own network namespace, and the old value is back once the test
/// ends; where tests share the host's stack the test is skipped, never run
/// against the host's settings.
#[test]
fn a_sysctl_step_holds_for_its_test_only_and_never_touches_the_host() {
    const ONE_PORT: &str = r#"title = "a one-port ephemeral range"
source = "ip-sysctl"
only = ["linux"]
steps = [
  { do = "sysctl", key = "net.ipv4.ip_local_port_range", value = "61000 61000" },
  { do = "socket", name = "a", type = "tcp", family = "v4" },
  { do = "bind", sock = "a", addr = "lo4", port = 0 },
  { do = "socket", name = "b", type = "tcp", family = "v4" },
  { do = "bind", sock = "b", addr = "lo4", port = 0, check = true },
]
"#;
    let (_d, s) = suite(
        &[("t/one.toml", ONE_PORT)],
        "[[expect]]\ncase = \"t::one\"\noutcomes = { bind_b = \"EADDRINUSE\" }\nsource = \"documented\"\ncite = \"x\"\nwhy = \"the range's only port is a's\"\n",
    );
    let range = || std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok();
    // A thread started now stays in the host's namespace (threads inherit
    // their creator's, and this one isolates itself when it runs the test).
    let (ask, asked) = std::sync::mpsc::channel::<()>();
    let host = std::thread::spawn(move || {
        let before = range();
        asked.recv().ok();
        (before, range())
    });
    let r = run(&s, "t::one");
    if !cfg!(target_os = "linux") {
        assert_eq!(r.verdict, Verdict::Skip);
        ask.send(()).unwrap();
        return;
    }
    match sockspec::run::probe_worker() {
        Ok((sockspec::sys::Isolation::Netns, settings)) => {
            assert_eq!(r.verdict, Verdict::Pass, "{:?}", why(&r));
            // This thread is the test's worker: its namespace has the
            // range back.
            let now = sockspec::sys::settings::normal(&range().unwrap());
            assert_eq!(Some(&now), settings.get("net.ipv4.ip_local_port_range"));
            assert_ne!(now, "61000 61000");
        }
        _ => {
            assert_eq!(r.verdict, Verdict::Skip, "{:?}", why(&r));
            assert!(
                why(&r).unwrap_or_default().contains("never changes"),
                "{:?}",
                why(&r)
            );
        }
    }
    ask.send(()).unwrap();
    let (before, after) = host.join().unwrap();
    assert_eq!(before, after, "the host's range changed");
}

/// A helper of the protocol that creates a real socket for every step it is
/// asked to do, never closes one, and answers Clear with the count it is
/// given on its command line, whatever it holds.
const KEEPS_ITS_SOCKETS: &str = r#"import json, os, socket, sys
held = []
def say(m):
    sys.stdout.write(json.dumps(m) + "\n")
    sys.stdout.flush()
say({"Hello": {"protocol": 1, "pid": os.getpid(), "identity": None,
               "implementation": {"runtime": "keeper", "version": "1"}, "capabilities": ["clear"]}})
for line in sys.stdin:
    msg = json.loads(line)
    if msg == "Clear":
        say({"Cleared": {"sockets": int(sys.argv[1])}})
    else:
        held.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        say({"Done": {"done": {"outcome": "ok", "raw": None, "detail": None, "extra_ports": []},
                      "addrs": []}})
"#;

/// A helper is kept only when it says it holds no socket and, on Linux,
/// the kernel agrees: one that says 1, or says 0 but holds one, is ended,
/// and the next spawn on the thread starts a new helper.
#[test]
fn a_helper_that_holds_a_socket_after_clear_is_not_kept() {
    use sockspec::exec::actors::{Actor, AgentCmd, Pids};
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3 here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keeper = dir.path().join("keeper.py");
    std::fs::write(&keeper, KEEPS_ITS_SOCKETS).unwrap();
    let socket: sockspec::model::Action = serde_json::from_value(serde_json::json!(
        {"Socket": {"name": "u", "proto": "Udp", "family": "V4", "opts": []}}
    ))
    .unwrap();
    // Saying 0 is caught only where the harness counts for itself.
    let says: &[u32] = if cfg!(target_os = "linux") {
        &[1, 0]
    } else {
        &[1]
    };
    for n in says {
        let cmd = AgentCmd::command(vec![
            "python3".into(),
            keeper.display().to_string(),
            n.to_string(),
        ]);
        std::thread::scope(|sc| {
            sc.spawn(|| {
                let (pids, deadline) = (Pids::default(), Instant::now() + Duration::from_secs(10));
                let (mut a, _) = Actor::spawn_cmd("h", &cmd, None, deadline, &pids).unwrap();
                a.exec(&socket, deadline)
                    .map_err(|e| e.to_string())
                    .unwrap();
                let first = a.pid;
                Actor::recycle([a], Instant::now() + Duration::from_secs(5));
                let (b, _) = Actor::spawn_cmd("h", &cmd, None, deadline, &pids).unwrap();
                assert_ne!(
                    b.pid, first,
                    "a helper that says {n} socket(s) after Clear, and holds one, was kept"
                );
                assert_eq!(b.served, 0);
            });
        });
    }
    // The same helper, holding nothing, is kept: the test above can fail.
    let cmd = AgentCmd::command(vec![
        "python3".into(),
        keeper.display().to_string(),
        "0".into(),
    ]);
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let (pids, deadline) = (Pids::default(), Instant::now() + Duration::from_secs(10));
            let (a, _) = Actor::spawn_cmd("h", &cmd, None, deadline, &pids).unwrap();
            let first = a.pid;
            Actor::recycle([a], Instant::now() + Duration::from_secs(5));
            let (b, _) = Actor::spawn_cmd("h", &cmd, None, deadline, &pids).unwrap();
            assert_eq!((b.pid, b.served), (first, 1));
        });
    });
}

/// A kept helper that died between tests is passed over: the next test
/// starts a new one, and passes.
#[cfg(target_os = "linux")]
#[test]
fn a_kept_helper_that_died_is_not_handed_out() {
    let (_d, s) = holds_a_port();
    std::thread::scope(|sc| {
        sc.spawn(|| {
            let name = "t::holds::runtime=rust";
            let first = run(&s, name);
            assert_eq!(first.verdict, Verdict::Pass, "{:?}", why(&first));
            let pid = spawned_pid(&first);
            assert!(is_my_child(pid), "helper {pid} was not kept");
            let killed = Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status()
                .unwrap();
            assert!(killed.success());
            // Dead, not dying: a zombie, waiting to be reaped.
            let dead_by = Instant::now() + Duration::from_secs(5);
            let zombie = || {
                std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                    st.rsplit(')')
                        .next()
                        .is_some_and(|r| r.trim_start().starts_with('Z'))
                })
            };
            while !zombie() && Instant::now() < dead_by {
                std::thread::sleep(Duration::from_millis(2));
            }
            assert!(zombie(), "helper {pid} did not die");
            let second = run(&s, name);
            assert_eq!(second.verdict, Verdict::Pass, "{:?}", why(&second));
            assert_ne!(spawned_pid(&second), pid, "a dead helper was handed out");
        });
    });
}

/// Clearing is bounded: helpers whose close lingers (SO_LINGER 5 s over
/// unsent data the peer, in the same helper, never reads) are asked at
/// once and ended a second after the deadline at the latest, so a test that
/// used its whole deadline still passes instead of counting as hung (2 s of
/// grace; asked one after another, three would take 3 s).
#[test]
fn helpers_that_linger_in_clear_are_ended_in_time_and_the_test_passes() {
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3 here");
        return;
    }
    // Each helper holds both ends, so nothing else ends the connection.
    let mut steps = String::new();
    for a in ["h1", "h2", "h3"] {
        steps += &format!(
            "  {{ do = \"spawn\", actor = \"{a}\", runtime = \"python\" }},\n  {{ do = \"socket\", name = \"l{a}\", type = \"tcp\", family = \"v4\", actor = \"{a}\" }},\n  {{ do = \"bind\", sock = \"l{a}\", addr = \"lo4\", port = \"@p{a}\" }},\n  {{ do = \"listen\", sock = \"l{a}\" }},\n  {{ do = \"socket\", name = \"c{a}\", type = \"tcp\", family = \"v4\", actor = \"{a}\" }},\n  {{ do = \"connect\", sock = \"c{a}\", addr = \"lo4\", port = \"l{a}\" }},\n  {{ do = \"accept\", sock = \"l{a}\", name = \"s{a}\" }},\n  {{ do = \"setopt\", sock = \"c{a}\", opt = \"linger\", value = [1, 5], check = \"linger_{a}\" }},\n  {{ do = \"fill\", sock = \"c{a}\" }},\n"
        );
    }
    // The whole deadline goes by in the test itself.
    steps += "  { do = \"sleep\", ms = 3000 },\n";
    let case =
        format!("title = \"t\"\nsource = \"here\"\ndeadline_ms = 3000\nsteps = [\n{steps}]\n");
    let (_d, s) = suite(
        &[("t/linger.toml", &case)],
        "[[expect]]\ncase = \"t::linger\"\noutcomes = { linger_h1 = \"ok\", linger_h2 = \"ok\", linger_h3 = \"ok\" }\nsource = \"documented\"\ncite = \"x\"\nwhy = \"setsockopt works\"\n",
    );
    let started = Instant::now();
    let r = std::thread::scope(|sc| sc.spawn(|| run(&s, "t::linger")).join().unwrap());
    assert_ne!(
        r.problem,
        Some(sockspec::results::Problem::Hung),
        "after {:?}",
        started.elapsed()
    );
    assert!(r.mismatches.is_empty(), "{:?}", why(&r));
    // The closes did linger: the clear waited its second past the deadline
    // (3 s, which the sleep fills) before it ended them.
    #[cfg(target_os = "linux")]
    assert!(
        started.elapsed() >= Duration::from_millis(3900),
        "no close lingered: {:?}",
        started.elapsed()
    );
}

/// Two connected TCP sockets, `c` and the accepted `s`.
const PAIR: &str = r#"
  { do = "socket", name = "l", type = "tcp", family = "v4" },
  { do = "bind", sock = "l", addr = "lo4", port = "@p" },
  { do = "listen", sock = "l" },
  { do = "socket", name = "c", type = "tcp", family = "v4" },
  { do = "connect", sock = "c", addr = "lo4", port = "l" },
  { do = "accept", sock = "l", name = "s" },"#;
/// Reading after shutdown(SHUT_RD), which makes the socket readable at
/// once: only `acked` can wait for the data.
const SHUT: &str = r#"
  { do = "shutdown", sock = "c", how = "read" },
  { do = "send", sock = "s", bytes = 100 },
  { do = "acked", sock = "s", require = "ok", when = { wait = "acked" } },
  { do = "recv", sock = "c", check = "got" },
]

[grid]
wait = ["no", "acked"]
"#;
/// Closing with unread data resets only if the data is there to be
/// unread: `readable` waits for it.
const UNREAD: &str = r#"
  { do = "send", sock = "s", bytes = 100 },
  { do = "readable", sock = "c", require = "ok", when = { wait = "readable" } },
  { do = "close", sock = "c" },
  { do = "drain", sock = "s", check = "got" },
]

[grid]
wait = ["no", "readable"]
"#;
/// Runs test `name` on this thread, in a network namespace of its own where
/// the first transmission of each TCP segment with data is dropped: the
/// outcome of its step `got`, and nft's ruleset after the test.
fn losing_first_transmissions(s: &Suite, name: &str) -> Result<(String, String), String> {
    // ci/late-delivery.sh's rule; a packaged crate has no ci/.
    let rule = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/late-delivery.nft");
    let rule = rule
        .to_str()
        .filter(|_| rule.exists())
        .ok_or("no ci/late-delivery.nft here")?;
    match sockspec::sys::isolate_thread() {
        Ok(sockspec::sys::Isolation::Netns) => {}
        other => return Err(format!("no network namespace of its own ({other:?})")),
    }
    let loaded = Command::new("nft")
        .args(["-f", rule])
        .status()
        .map_err(|e| format!("no nft here ({e})"))?;
    if !loaded.success() {
        return Err("nft refused the rule (no nf_tables?)".into());
    }
    let r = run(s, name);
    let listed = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&listed.stdout).into_owned();
    Ok((r.outcome("got").unwrap_or("none").to_string(), rules))
}

/// After shutdown(SHUT_RD) a read returns at once (end of stream on Linux),
/// so a read right after the peer's send races the data's delivery: CI saw
/// `eof` instead of `data` once, on 6.1 under QEMU. Here the race is made
/// certain: in a namespace of the test's own, nftables drops the first
/// transmission of the data, so it arrives only when TCP sends it again. Read
/// at once, the data is not there yet; after `acked` (or `readable`, on a
/// socket not shut for reading), it is. Linux as root with `nft` only:
/// elsewhere the test says why it is skipped, and in CI as root a missing or
/// refused `nft` fails it.
#[test]
fn acked_and_readable_wait_for_a_dropped_segment_to_be_resent() {
    if !cfg!(target_os = "linux") {
        eprintln!("skipped: nftables is Linux's");
        return;
    }
    let case = |title: &str, rest: &str| {
        format!("title = \"{title}\"\nsource = \"tcp(7)\"\nsteps = [{PAIR}{rest}")
    };
    let shut = case("data sent after the reader shut down reading", SHUT);
    let unread = case("closing before or after the data arrived", UNREAD);
    let (_d, s) = suite(&[("t/shut.toml", &shut), ("t/unread.toml", &unread)], "");
    let s = Arc::new(s);
    let one = |name: &'static str| {
        let s = Arc::clone(&s);
        // A thread of its own: its own namespace, and its own drop rule.
        std::thread::spawn(move || losing_first_transmissions(&s, name))
    };
    let runs = [
        "t::shut::wait=no",
        "t::shut::wait=acked",
        "t::unread::wait=no",
        "t::unread::wait=readable",
    ]
    .map(one);
    let mut got = Vec::new();
    for r in runs {
        match r.join().unwrap() {
            Ok(x) => got.push(x),
            // In CI as root, nft is installed (.ci/run): no excuse there.
            Err(why) if std::env::var_os("CI").is_some() && sockspec::sys::is_privileged() => {
                panic!("{why}")
            }
            Err(why) => {
                eprintln!("skipped: {why}");
                return;
            }
        }
    }
    // The rule did drop the data once in each namespace...
    for (_, rules) in &got {
        assert!(rules.contains("counter packets 1 "), "{rules}");
    }
    // ...so the read at once finds nothing, the one after `acked` the data;
    // the close at once leaves nothing unread (the peer sees end of stream),
    // the one after `readable` resets.
    let outcomes: Vec<&str> = got.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["eof", "data", "eof", "ECONNRESET"],
        "{}",
        got[0].1
    );
}
