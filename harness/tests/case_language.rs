//! The case language helps whoever writes a new case: every enumerated
//! field's error lists the values it takes, and the options and port forms
//! added for new cases load.

use sockspec::Suite;

/// A scratch tree holding one case whose steps are `steps`.
fn tree(steps: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    std::fs::write(
        dir.path().join("t/c.toml"),
        format!("title = \"x\"\nsource = \"y\"\nsteps = [\n{steps}\n]\n"),
    )
    .unwrap();
    dir
}

fn error(steps: &str) -> String {
    match Suite::load(tree(steps).path()) {
        Ok(_) => panic!("loaded, but should not have: {steps}"),
        Err(e) => e.to_string(),
    }
}

const SOCK: &str = r#"{ do = "socket", name = "a", type = "udp", family = "v4" },"#;

#[test]
fn every_enumerated_field_lists_its_values() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"{ do = "socket", name = "a", type = "sctp", family = "v4" },"#,
            &["`type` must be", "\"tcp\" or \"udp\""],
        ),
        (
            r#"{ do = "socket", name = "a", type = "udp", family = "v5" },"#,
            &["`family` must be", "\"v4\", \"v6\""],
        ),
        (
            r#"{ do = "socket", name = "a", type = "udp", family = "v4", opts = ["broadcst"] },"#,
            &[
                "unknown option `broadcst`",
                "broadcast",
                "reuseaddr",
                "bindtodevice",
            ],
        ),
        (
            &format!(r#"{SOCK} {{ do = "setopt", sock = "a", opt = "brodcast", value = true }},"#),
            &[
                "`opt` must be one of:",
                "broadcast",
                "bound_if",
                "multicast_loop",
            ],
        ),
        (
            &format!(r#"{SOCK} {{ do = "getopt", sock = "a", opt = "join" }},"#),
            &["`opt` must be one of:", "broadcast", "linger"],
        ),
        (
            &format!(r#"{SOCK} {{ do = "shutdown", sock = "a", how = "half" }},"#),
            &["`how` must be", "\"read\", \"write\" or \"both\""],
        ),
        (
            &format!(r#"{SOCK} {{ do = "tcp_state", sock = "a", want = "TIMEWAIT" }},"#),
            &["`want` must be", "TIME_WAIT", "ESTABLISHED", "none"],
        ),
        (
            &format!(
                r#"{SOCK} {{ do = "spread", addr = "lo4", port = "a", listeners = ["a"], observe = "each" }},"#
            ),
            &["`observe` must be", "\"count\" or \"who\""],
        ),
        (
            &format!(r#"{SOCK} {{ do = "sleep", ms = 1, os = ["linuks"] }},"#),
            &[
                "`os` must be",
                "linux, macos, windows, freebsd, openbsd, netbsd, illumos, wine",
            ],
        ),
        (
            r#"{ do = "spawn", actor = "x", user = "root" },"#,
            &["`user` must be", "\"nobody\""],
        ),
        (
            &format!(r#"{SOCK} {{ do = "bind", sock = "a", addr = "lo4", port = "@p!high" }},"#),
            &["`port` must be", "\"@name!low\""],
        ),
    ];
    for (steps, needles) in cases {
        let e = error(steps);
        assert!(e.contains("t/c.toml:"), "no location in {e}");
        for n in *needles {
            assert!(e.contains(n), "{n:?} not in the error for {steps}:\n{e}");
        }
    }
}

#[test]
fn new_options_load() {
    let steps = format!(
        r#"{SOCK}
  {{ do = "setopt", sock = "a", opt = "broadcast", value = true }},
  {{ do = "getopt", sock = "a", opt = "broadcast" }},
  {{ do = "setopt", sock = "a", opt = "bindtodevice", value = "lo", os = ["linux"] }},
  {{ do = "setopt", sock = "a", opt = "bound_if", value = "lo0", os = ["macos"] }},
  {{ do = "bind", sock = "a", addr = "lo4", port = "@p!low" }},"#
    );
    let dir = tree(&steps);
    let suite = Suite::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(suite.tests.len(), 1);
    let text: Vec<String> = suite.tests[0].steps.iter().map(|s| s.to_string()).collect();
    assert!(text.iter().any(|s| s.contains("SO_BROADCAST")), "{text:?}");
    assert!(text.iter().any(|s| s.contains("@p!low")), "{text:?}");
}

#[test]
fn options_exist_per_family() {
    use sockspec::model::{Opt, OsFamily};
    assert!(OsFamily::Linux.has_opt(Opt::BindToDevice));
    assert!(!OsFamily::Macos.has_opt(Opt::BindToDevice));
    assert!(OsFamily::Macos.has_opt(Opt::BoundIf));
    assert!(!OsFamily::Linux.has_opt(Opt::BoundIf));
    assert!(!OsFamily::Windows.has_opt(Opt::BoundIf));
    assert!(OsFamily::ALL.iter().all(|o| o.has_opt(Opt::Broadcast)));
    assert!(OsFamily::Linux.has_opt(Opt::MulticastAll));
    assert!(!OsFamily::Freebsd.has_opt(Opt::MulticastAll));
    assert!(!OsFamily::Wine.has_opt(Opt::MulticastAll));
}

#[test]
fn multicast_all_and_sysctl_steps_load() {
    let steps = format!(
        r#"{SOCK}
  {{ do = "setopt", sock = "a", opt = "multicast_all", value = false }},
  {{ do = "getopt", sock = "a", opt = "multicast_all" }},
  {{ do = "sysctl", key = "net.ipv4.ip_local_port_range", value = "61000   61001" }},
  {{ do = "sysctl", key = "net.ipv4.ip_autobind_reuse", value = 1 }},"#
    );
    let dir = tree(&steps);
    let suite = Suite::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let text: Vec<String> = suite.tests[0].steps.iter().map(|s| s.to_string()).collect();
    assert!(
        text.iter().any(|s| s.contains("IP_MULTICAST_ALL")),
        "{text:?}"
    );
    // Values are whitespace-normalised, integers written as the kernel reads them.
    assert!(
        text.contains(&"sysctl net.ipv4.ip_local_port_range = 61000 61001".to_string()),
        "{text:?}"
    );
    assert!(
        text.contains(&"sysctl net.ipv4.ip_autobind_reuse = 1".to_string()),
        "{text:?}"
    );
}

#[test]
fn a_sysctl_step_takes_only_settings_sockspec_records() {
    let e = error(r#"{ do = "sysctl", key = "net.core.somaxconn", value = 4 },"#);
    assert!(e.contains("net.ipv4.ip_autobind_reuse"), "{e}");
    assert!(e.contains("net.ipv4.ip_local_port_range"), "{e}");
    let e = error(r#"{ do = "sysctl", key = "net.ipv4.ip_autobind_reuse", value = true },"#);
    assert!(e.contains("a string or an integer"), "{e}");
}

/// A case's deadline: 5 s, plus an allowance for each helper process it
/// starts (their start-up is not what the test measures); `deadline_ms`
/// replaces both.
#[test]
fn each_spawn_step_adds_its_allowance_to_the_default_deadline() {
    use sockspec::load::{DEFAULT_DEADLINE, SPAWN_ALLOWANCE};
    let spawns = r#"{ do = "spawn", actor = "p" },
{ do = "spawn", actor = "q" },"#;
    let deadline = |dir: tempfile::TempDir| Suite::load(dir.path()).unwrap().cases[0].deadline;
    assert_eq!(deadline(tree(SOCK)), DEFAULT_DEADLINE);
    assert_eq!(
        deadline(tree(spawns)),
        DEFAULT_DEADLINE + 2 * SPAWN_ALLOWANCE
    );
    let dir = tree(spawns);
    let file = dir.path().join("t/c.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("deadline_ms = 3000\n{text}")).unwrap();
    assert_eq!(deadline(dir), std::time::Duration::from_millis(3000));
}
