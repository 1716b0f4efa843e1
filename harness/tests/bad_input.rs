//! Bad input gets a clear error: file, line, column, what is wrong and what to
//! do; a non-zero exit; no panic. One test per kind of mistake.

use std::path::Path;
use std::process::Command;

use sockspec::Suite;

/// A good case to start from (line numbers below refer to it).
const GOOD_CASE: &str = r#"title = "two binds"
source = "semantics.md L1"
steps = [
  { do = "socket", name = "a", type = "{proto}", family = "v4" },
  { do = "bind", sock = "a", addr = "lo4", port = "@p" },
  { do = "socket", name = "b", type = "{proto}", family = "v4" },
  { do = "bind", sock = "b", addr = "lo4", port = "a", check = true },
]

[grid]
proto = ["tcp", "udp"]
"#;

const GOOD_EXPECT: &str = r#"os = "linux"

[[expect]]
case = "t::two"
outcomes = { bind_b = "EADDRINUSE" }
source = "documented"
cite = "semantics.md L1"
why = "the same address twice"
"#;

fn tree(case: &str, expect: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    std::fs::write(dir.path().join("t/two.toml"), case).unwrap();
    if let Some(e) = expect {
        std::fs::create_dir_all(dir.path().join("expected")).unwrap();
        std::fs::write(dir.path().join("expected/linux.toml"), e).unwrap();
    }
    dir
}

/// The error text for a tree, which must not load.
fn error(dir: &Path) -> String {
    match Suite::load(dir) {
        Ok(_) => panic!("the suite loaded, but it should not have"),
        Err(e) => e.to_string(),
    }
}

fn assert_has(text: &str, needles: &[&str]) {
    for n in needles {
        assert!(text.contains(n), "expected {n:?} in:\n{text}");
    }
}

#[test]
fn the_good_tree_loads() {
    let dir = tree(GOOD_CASE, Some(GOOD_EXPECT));
    let suite = Suite::load(dir.path()).unwrap();
    assert_eq!(suite.tests.len(), 2);
}

#[test]
fn malformed_toml() {
    let dir = tree(&GOOD_CASE.replace("\"two binds\"", "\"two binds"), None);
    assert_has(&error(dir.path()), &["t/two.toml:1:", "README.md"]);
}

#[test]
fn unknown_case_field() {
    let dir = tree(&GOOD_CASE.replace("source =", "sauce ="), None);
    assert_has(
        &error(dir.path()),
        &["t/two.toml:2:1", "unknown field `sauce`"],
    );
}

#[test]
fn unknown_step_field() {
    let dir = tree(
        &GOOD_CASE.replace(
            "addr = \"lo4\", port = \"@p\"",
            "adr = \"lo4\", port = \"@p\"",
        ),
        None,
    );
    assert_has(
        &error(dir.path()),
        &[
            "t/two.toml:5:",
            "`bind` steps take no `adr`",
            "did you mean `addr`?",
        ],
    );
}

#[test]
fn field_of_another_step_kind() {
    let dir = tree(
        &GOOD_CASE.replace("port = \"@p\" }", "port = \"@p\", backlog = 5 }"),
        None,
    );
    assert_has(
        &error(dir.path()),
        &[
            "t/two.toml:5:67",
            "`bind` steps take no `backlog`",
            "help: `bind` takes: sock, addr, port",
        ],
    );
}

#[test]
fn unknown_step_kind() {
    let dir = tree(
        &GOOD_CASE.replace("do = \"bind\", sock = \"a\"", "do = \"bnd\", sock = \"a\""),
        None,
    );
    assert_has(
        &error(dir.path()),
        &[
            "t/two.toml:5:10",
            "unknown step kind `bnd`",
            "step kinds are: socket,",
        ],
    );
}

#[test]
fn unknown_option() {
    let case = GOOD_CASE.replace(
        "  { do = \"bind\", sock = \"a\"",
        "  { do = \"setopt\", sock = \"a\", opt = \"reuseaddress\", value = true },\n  { do = \"bind\", sock = \"a\"",
    );
    let dir = tree(&case, None);
    assert_has(
        &error(dir.path()),
        &[
            "t/two.toml:5:",
            "`opt` must be one of: reuseaddr, reuseport,",
            "not \"reuseaddress\" (in all 2 combinations of the grid)",
        ],
    );
    // One error for the mistake, not one per combination.
    assert_eq!(error(dir.path()).matches("reuseaddress").count(), 1);
}

#[test]
fn an_error_in_some_combinations_names_them() {
    let case = GOOD_CASE.replace(
        "  { do = \"bind\", sock = \"a\"",
        "  { do = \"setopt\", sock = \"a\", opt = \"x{proto}\", value = true },\n  { do = \"bind\", sock = \"a\"",
    );
    let dir = tree(&case, None);
    let err = error(dir.path());
    assert_has(
        &err,
        &["not \"xtcp\" (with proto=tcp; 1 of 2 combinations)"],
    );
}

/// A server `api` no runtime knows is a typo, not a skip at run time; the
/// error lists the valid ones. A known one that a runtime lacks still loads
/// (that runtime skips it).
#[test]
fn unknown_server_api() {
    let server = |api: &str| {
        GOOD_CASE.replace(
            "  { do = \"socket\", name = \"b\", type = \"{proto}\", family = \"v4\" },\n  { do = \"bind\", sock = \"b\", addr = \"lo4\", port = \"a\", check = true },",
            &format!("  {{ do = \"server\", name = \"b\", type = \"{{proto}}\", addr = \"lo4\", port = \"a\", api = \"{api}\", check = true }},"),
        )
    };
    let typo = server("asycnio");
    assert!(typo.contains("asycnio"), "{typo}");
    let dir = tree(&typo, None);
    assert_has(
        &error(dir.path()),
        &[
            "t/two.toml:6:",
            "`api` must be one of default, asyncio, not \"asycnio\"",
        ],
    );
    let dir = tree(&server("asyncio"), None);
    Suite::load(dir.path()).unwrap();
}

/// `@p!low` and `@p` in one test would be two different ports, though they
/// read as one: refused where the second spelling appears, with the fix.
#[test]
fn one_lease_written_with_and_without_low() {
    let case = GOOD_CASE.replace(
        "  { do = \"socket\", name = \"b\", type = \"{proto}\", family = \"v4\" },\n  { do = \"bind\", sock = \"b\", addr = \"lo4\", port = \"a\", check = true },",
        "  { do = \"socket\", name = \"b\", type = \"{proto}\", family = \"v4\" },\n  { do = \"bind\", sock = \"b\", addr = \"lo4\", port = \"@p!low\", check = true },",
    );
    assert!(case.contains("@p!low"), "{case}");
    let dir = tree(&case, None);
    assert_has(
        &error(dir.path()),
        &[
            "t/two.toml:7:3",
            "`@p!low` and `@p` are one lease name written two ways",
            "help: write a lease the same way at every use: \"@p!low\" everywhere",
        ],
    );
    // The same spelling at every use is one port, and loads.
    let dir = tree(&case.replace("port = \"@p\"", "port = \"@p!low\""), None);
    Suite::load(dir.path()).unwrap();
}

/// A mistake that depends on no parameter, in a step only some combinations
/// have (`when`), is counted like the others; in every combination, it is
/// not.
#[test]
fn an_error_in_a_when_step_counts_its_combinations() {
    let case = GOOD_CASE.replace(
        "  { do = \"socket\", name = \"b\"",
        "  { do = \"close\", sock = \"z\", when = { proto = \"tcp\" } },\n  { do = \"socket\", name = \"b\"",
    );
    assert!(case.contains("sock = \"z\""), "{case}");
    let err = error(tree(&case, None).path());
    assert_has(
        &err,
        &[
            "t/two.toml:6:3: socket `z` is used before a `socket` step creates it (with proto=tcp; 1 of 2 combinations)",
        ],
    );
    let everywhere = case.replace(", when = { proto = \"tcp\" }", "");
    let err = error(tree(&everywhere, None).path());
    assert_has(&err, &["creates it\n  help:"]);
    assert!(!err.contains("combinations"), "{err}");
}

#[test]
fn undefined_socket() {
    let dir = tree(
        &GOOD_CASE.replace("sock = \"b\", addr", "sock = \"z\", addr"),
        None,
    );
    assert_has(
        &error(dir.path()),
        &[
            "t/two.toml:7:3",
            "socket `z` is used before a `socket` step creates it",
            "help: create it first",
        ],
    );
}

#[test]
fn a_tcp_only_step_on_a_udp_socket() {
    // `acked` counts unacknowledged bytes, which only TCP has.
    let case = GOOD_CASE.replace(
        "check = true },\n]",
        "check = true },\n  { do = \"acked\", sock = \"a\" },\n]",
    );
    assert_has(
        &error(tree(&case, None).path()),
        &["t/two.toml:8:3", "`acked` needs a TCP socket", "proto=udp"],
    );
}

#[test]
fn undefined_port_reference() {
    let dir = tree(&GOOD_CASE.replace("port = \"a\"", "port = \"y\""), None);
    assert_has(
        &error(dir.path()),
        &["t/two.toml:7:3", "port of `y`: no socket `y` exists"],
    );
}

#[test]
fn undefined_parameter() {
    let dir = tree(
        &GOOD_CASE.replace(
            "type = \"{proto}\", family = \"v4\" },\n  { do = \"bind\"",
            "type = \"{prot}\", family = \"v4\" },\n  { do = \"bind\"",
        ),
        None,
    );
    assert_has(
        &error(dir.path()),
        &[
            "t/two.toml:4:",
            "`{prot}` is not a grid parameter (this case has: proto)",
        ],
    );
}

#[test]
fn grid_that_expands_to_nothing() {
    let case = format!("{GOOD_CASE}\n[[exclude]]\nproto = [\"tcp\", \"udp\"]\n");
    let dir = tree(&case, None);
    assert_has(
        &error(dir.path()),
        &[
            "t/two.toml:10:1",
            "the grid expands to nothing",
            "help: loosen",
        ],
    );
}

#[test]
fn exclude_that_matches_nothing() {
    let case = format!("{GOOD_CASE}\n[[exclude]]\nproto = \"sctp\"\n");
    let dir = tree(&case, None);
    assert_has(
        &error(dir.path()),
        &[
            "t/two.toml:14:",
            "`exclude.proto`: \"sctp\" is not one of its values (tcp, udp)",
        ],
    );
}

#[test]
fn two_tests_with_the_same_name() {
    let dir = tree(GOOD_CASE, None);
    let root = dir.path();
    let file = root.join("t/two.toml");
    let mut errors = Vec::new();
    let a = sockspec::load::load_case(root, &file, None, &mut errors).unwrap();
    let b = sockspec::load::load_case(root, &file, None, &mut errors).unwrap();
    sockspec::expand::expand_all(&[a, b], &sockspec::Scope::default(), &mut errors);
    let text = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert_has(
        &text,
        &[
            "test name `t::two::proto=tcp` is also produced by",
            "help: rename",
        ],
    );
}

#[test]
fn unknown_error_name_in_expectation() {
    let dir = tree(
        GOOD_CASE,
        Some(&GOOD_EXPECT.replace("\"EADDRINUSE\"", "\"EADDRINUS\"")),
    );
    assert_has(
        &error(dir.path()),
        &[
            "expected/linux.toml:5:23",
            "`EADDRINUS` is not an outcome",
            "an error name (EADDRINUSE",
        ],
    );
}

#[test]
fn expectation_that_matches_no_test() {
    let e = GOOD_EXPECT.replace(
        "case = \"t::two\"",
        "case = \"t::two\"\nwhere = { proto = \"sctp\" }",
    );
    let dir = tree(GOOD_CASE, Some(&e));
    assert_has(
        &error(dir.path()),
        &[
            "expected/linux.toml:5:19",
            "`where.proto`: \"sctp\" is not one of its values",
        ],
    );
    let e = GOOD_EXPECT.replace("case = \"t::two\"", "case = \"t::three\"");
    let dir = tree(GOOD_CASE, Some(&e));
    assert_has(
        &error(dir.path()),
        &[
            "expected/linux.toml:4:8",
            "no case is named `t::three`",
            "help: cases in `t`: t::two",
        ],
    );
}

#[test]
fn expectation_for_a_step_the_case_lacks() {
    let dir = tree(
        GOOD_CASE,
        Some(&GOOD_EXPECT.replace("bind_b =", "bind_z =")),
    );
    assert_has(
        &error(dir.path()),
        &[
            "expected/linux.toml:5:23",
            "`t::two` has no checked step `bind_z`",
            "help: its checked steps: bind_b",
        ],
    );
}

#[test]
fn outcome_a_step_cannot_have() {
    let dir = tree(
        GOOD_CASE,
        Some(&GOOD_EXPECT.replace("\"EADDRINUSE\"", "\"TIME_WAIT\"")),
    );
    assert_has(
        &error(dir.path()),
        &[
            "expected/linux.toml:5:23",
            "a `bind` step cannot have the outcome `TIME_WAIT`",
        ],
    );
}

#[test]
fn provenance_is_required() {
    let dir = tree(
        GOOD_CASE,
        Some(&GOOD_EXPECT.replace("cite = \"semantics.md L1\"\n", "")),
    );
    assert_has(
        &error(dir.path()),
        &["expected/linux.toml:3:1", "a documented entry needs `cite`"],
    );
    let observed = GOOD_EXPECT
        .replace("source = \"documented\"", "source = \"observed\"")
        .replace("cite = \"semantics.md L1\"\n", "");
    let dir = tree(GOOD_CASE, Some(&observed));
    assert_has(
        &error(dir.path()),
        &[
            "an observed entry needs `seen_on`",
            "written by `sockspec bless`",
        ],
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let case = GOOD_CASE
        .replace("do = \"bind\", sock = \"a\"", "do = \"bnd\", sock = \"a\"")
        .replace("source =", "source = 3\nx =");
    let dir = tree(&case, Some(&GOOD_EXPECT.replace("bind_b =", "bind_z =")));
    let text = error(dir.path());
    // The case file fails to parse at its first problem; the expectation file
    // is still checked (against no tests) and reported too.
    assert!(text.matches("error:").count() >= 2, "{text}");
}

#[test]
fn the_cli_exits_2_with_the_location_and_never_panics() {
    let dir = tree(
        GOOD_CASE,
        Some(&GOOD_EXPECT.replace("bind_b =", "bind_z =")),
    );
    for args in [
        &["check"][..],
        &["run"],
        &["list"],
        &["explain", "t::two::proto=tcp"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sockspec"))
            .args(args)
            .arg("--cases")
            .arg(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("expected/linux.toml:5:23"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

// --- hostile trees (issue: nothing lost, nothing hangs) ---------------------

/// `sockspec check` on a tree: exit code and stderr, under a time bound.
fn check_cli(dir: &Path) -> (Option<i32>, String) {
    // This tree alone, not beside the built-in one.
    check_args(&["--only-cases".as_ref(), "--cases".as_ref(), dir.as_os_str()])
}

/// `sockspec check ARGS`: exit code and stderr, under a time bound.
fn check_args(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockspec"))
        .arg("check")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        // Only a hang detector: the largest accepted tree takes ~20 s in a
        // debug build on a loaded machine.
        if started.elapsed() > std::time::Duration::from_secs(120) {
            let _ = child.kill();
            panic!("`sockspec check` hung on {args:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn an_empty_expectation_file_is_refused() {
    let dir = tree(GOOD_CASE, Some(""));
    let (code, err) = check_cli(dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert_has(&err, &["expected/linux.toml:1:1", "empty"]);
}

#[test]
fn invalid_utf8_names_the_first_bad_byte() {
    let dir = tree(GOOD_CASE, None);
    let mut bytes = GOOD_CASE.as_bytes().to_vec();
    // Line 2, column 11: inside the `source` string.
    let at = GOOD_CASE.find("semantics").unwrap();
    bytes[at] = 0xff;
    std::fs::write(dir.path().join("t/two.toml"), bytes).unwrap();
    assert_has(
        &error(dir.path()),
        &["t/two.toml:2:11", "invalid UTF-8", "0xff"],
    );
}

#[test]
fn a_kernel_range_that_matches_nothing() {
    let dir = tree(
        GOOD_CASE,
        Some(&GOOD_EXPECT.replace("outcomes =", "kernel = \">=7, <6\"\noutcomes =")),
    );
    assert_has(
        &error(dir.path()),
        &["expected/linux.toml:5:", "matches no version"],
    );
}

#[test]
fn a_socket_port_used_before_the_socket_is_bound() {
    let dir = tree(
        &GOOD_CASE.replace(
            "{ do = \"bind\", sock = \"a\", addr = \"lo4\", port = \"@p\" }",
            "{ do = \"bind\", sock = \"a\", addr = \"lo4\", port = \"a\" }",
        ),
        None,
    );
    assert_has(
        &error(dir.path()),
        &["t/two.toml:5:", "`a` has no port yet"],
    );
}

#[test]
fn a_huge_grid_is_refused_before_it_is_built() {
    let axes: String = (0..12)
        .map(|i| format!("p{i} = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"))
        .collect();
    let dir = tree(&format!("{GOOD_CASE}{axes}"), None);
    let (code, err) = check_cli(dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert_has(&err, &["t/two.toml:10:1", "combinations", "at most 10000"]);
}

#[cfg(unix)]
#[test]
fn directory_links_are_reported_not_followed() {
    let dir = tree(GOOD_CASE, None);
    std::os::unix::fs::symlink(".", dir.path().join("t/again")).unwrap();
    std::os::unix::fs::symlink("..", dir.path().join("t/up")).unwrap();
    let (code, err) = check_cli(dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert_has(&err, &["t/again", "t/up", "not followed"]);
}

#[cfg(unix)]
#[test]
fn a_fifo_named_toml_is_reported_never_opened() {
    let dir = tree(GOOD_CASE, Some(GOOD_EXPECT));
    for p in ["t/fifo.toml", "expected/macos.toml"] {
        nix::unistd::mkfifo(&dir.path().join(p), nix::sys::stat::Mode::S_IRWXU).unwrap();
    }
    let (code, err) = check_cli(dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert_has(
        &err,
        &["t/fifo.toml", "expected/macos.toml", "not a regular file"],
    );
}

#[cfg(target_os = "linux")]
#[test]
fn an_unreadable_topic_directory_is_named() {
    if !nix::unistd::geteuid().is_root() {
        let dir = tree(GOOD_CASE, None);
        std::fs::create_dir(dir.path().join("locked")).unwrap();
        std::fs::write(dir.path().join("locked/x.toml"), GOOD_CASE).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            dir.path().join("locked"),
            std::fs::Permissions::from_mode(0o0),
        )
        .unwrap();
        assert_has(&error(dir.path()), &["locked: cannot read this directory"]);
        return;
    }
    // Root reads every directory: drop to nobody in a child to see the error.
    let dir = tree(GOOD_CASE, None);
    std::fs::create_dir(dir.path().join("locked")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    for p in [dir.path(), &dir.path().join("t")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(
        dir.path().join("t/two.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.path().join("locked"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sockspec"));
    cmd.arg("check").arg("--cases").arg(dir.path());
    use std::os::unix::process::CommandExt;
    cmd.uid(65534).gid(65534);
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("Permission denied") && !err.contains("locked") {
        // The temporary directory itself is not reachable for nobody here.
        return;
    }
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_has(&err, &["locked: cannot read this directory"]);
}

/// An `expected` that cannot be read as a directory is an error, never an
/// empty set of expectations (which would fail every test at run time).
#[test]
fn an_expected_dir_that_cannot_be_read_is_named() {
    let dir = tree(GOOD_CASE, None);
    std::fs::write(dir.path().join("expected"), "not a directory").unwrap();
    assert_has(
        &error(dir.path()),
        &["expected: cannot read this directory"],
    );
    #[cfg(unix)]
    {
        let dir = tree(GOOD_CASE, None);
        nix::unistd::mkfifo(
            &dir.path().join("expected"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert_has(
            &error(dir.path()),
            &["expected: cannot read this directory"],
        );
    }
    // No `expected` at all is a tree with no expectations yet.
    let dir = tree(GOOD_CASE, None);
    assert!(Suite::load(dir.path()).is_ok());
}

/// The largest peak memory of this process's children so far, in KiB.
#[cfg(target_os = "linux")]
fn children_peak_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .unwrap()
        .max_rss()
}

/// `check` refuses `dir` with exit 2 and these errors, having used less
/// than 256 MiB (as has every child so far).
#[cfg(target_os = "linux")]
fn refused_in_256_mib(dir: &Path, errors: &[&str]) {
    let (code, err) = check_cli(dir);
    assert_eq!(code, Some(2), "{err}");
    assert_has(&err, errors);
    let peak = children_peak_kib();
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
}

/// Text of just under the largest input sockspec reads, `head` and then
/// as many doubly nested arrays as a file may have tokens (which cost the
/// TOML parser the most memory per token, ~200 bytes), the rest a comment.
#[cfg(target_os = "linux")]
fn largest_input(head: &str) -> String {
    // `[[0]],` is six tokens of three units each; `head` and the closing
    // bracket take a few.
    let arrays = (sockspec::load::MAX_TOKENS - 100) / 18;
    let text = format!("{head}[{}]\n#", "[[0]],".repeat(arrays));
    let room = sockspec::load::MAX_INPUT_BYTES as usize - text.len() - 16;
    format!("{text}{}\n", "x".repeat(room))
}

/// A file of more tokens than [`sockspec::load::MAX_TOKENS`] is refused
/// where it goes past them, before it is parsed.
#[test]
fn a_file_of_too_many_tokens_is_refused_where_they_run_over() {
    let head = "os = \"linux\"\nx = [";
    // Larger than may be parsed beside another file: only those are counted.
    let pad = "x".repeat(sockspec::load::SIDE_BY_SIDE_BYTES as usize);
    let text = format!(
        "{head}{}]\n# {pad}\n",
        "[0],".repeat(sockspec::load::MAX_TOKENS / 12 + 1)
    );
    // Up to the `[` at column 5 of line 2: six keys, values and marks
    // (three units each) and five blanks and line ends (one each), 23
    // units; then three units a column.
    let col = 5 + (sockspec::load::MAX_TOKENS - 23) / 3 + 1;
    let err = error(tree(GOOD_CASE, Some(&text)).path());
    assert_has(
        &err,
        &[
            &format!("linux.toml:2:{col}:"),
            "too many keys, values, punctuation marks and lines in one file",
        ],
    );
    // One unit fewer is parsed (and refused for its unknown field).
    let fits = format!("{head}{}]\n# {pad}\n", "[0],".repeat((col - 6) / 4 - 2));
    assert_has(
        &error(tree(GOOD_CASE, Some(&fits)).path()),
        &["unknown field `x`"],
    );
}

/// An expectation file of the largest size for every OS family, each
/// refused once parsed (`unknown field \`x\``).
#[cfg(target_os = "linux")]
fn largest_expectations(root: &Path) {
    std::fs::create_dir_all(root.join("expected")).unwrap();
    for os in sockspec::model::OsFamily::ALL {
        std::fs::write(
            root.join(format!("expected/{os}.toml")),
            largest_input(&format!("os = \"{os}\"\nx = ")),
        )
        .unwrap();
    }
}

/// Several files of the largest size, parsed one after another: the
/// parser's working memory (~180 times the text) must not add up across
/// files. It did when files were parsed on several threads, each
/// thread's allocator arena keeping its largest parse's pages.
#[cfg(target_os = "linux")]
#[test]
fn check_stays_under_256_mib_on_many_files_of_the_largest_size() {
    // Eight case files.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    let case = largest_input("title = \"t\"\nsteps = [{ do = \"sleep\", ms = 1 }]\nsource = ");
    for n in 0..8 {
        std::fs::write(dir.path().join(format!("t/c{n}.toml")), &case).unwrap();
    }
    refused_in_256_mib(dir.path(), &["c7.toml", "`source` must be"]);
    // One expectation file per OS family.
    let dir = tree(GOOD_CASE, None);
    largest_expectations(dir.path());
    refused_in_256_mib(dir.path(), &["wine.toml", "unknown field `x`"]);
}

/// Eight case files of the largest size.
#[cfg(target_os = "linux")]
fn largest_cases() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    let case = largest_input("title = \"t\"\nsteps = [{ do = \"sleep\", ms = 1 }]\nsource = ");
    for n in 0..8 {
        std::fs::write(dir.path().join(format!("t/c{n}.toml")), &case).unwrap();
    }
    dir
}

/// Expectation files for every OS family, each as large as may be parsed
/// beside another file.
#[cfg(target_os = "linux")]
fn side_by_side_expectations(root: &Path) {
    std::fs::create_dir_all(root.join("expected")).unwrap();
    for os in sockspec::model::OsFamily::ALL {
        let head = format!("os = \"{os}\"\nx = ");
        let room = sockspec::load::SIDE_BY_SIDE_BYTES as usize - head.len() - 16;
        let text = format!("{head}[{}]\n", "[[0]],".repeat(room / 6));
        std::fs::write(root.join(format!("expected/{os}.toml")), text).unwrap();
    }
}

/// Small expectation files are parsed on a thread of their own while the
/// case files are parsed, and that thread's arena keeps its largest
/// parse's pages: large case files, and a sources registry or stack
/// profiles over 256 KiB, stay off it. With those two parsed there,
/// the first tree here took `check` to 299 MiB.
#[cfg(target_os = "linux")]
#[test]
fn check_stays_under_256_mib_when_small_files_are_parsed_beside_large_ones() {
    // The largest registry and profiles, and no expectation file.
    let dir = largest_cases();
    for file in [sockspec::load::SOURCES_FILE, "profiles.toml"] {
        std::fs::write(dir.path().join(file), largest_input("x = ")).unwrap();
    }
    refused_in_256_mib(dir.path(), &["c7.toml", "`source` must be"]);
    let dir = largest_cases();
    side_by_side_expectations(dir.path());
    refused_in_256_mib(dir.path(), &["c7.toml", "`source` must be"]);
}

/// Beside the built-in tree, which is small enough to be parsed on two
/// threads: a process that loads several trees parses them on one, since a
/// thread that parsed ahead leaves its allocator arena behind, and the
/// large trees loaded after the built-in one peaked up to 268 MiB.
#[cfg(target_os = "linux")]
#[test]
fn check_stays_under_256_mib_beside_the_built_in_tree() {
    let large = largest_cases();
    // Files each small enough to be parsed side by side, but for the
    // largest registry and profiles.
    let small = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(small.path().join("t")).unwrap();
    let head = "title = \"t\"\nsteps = [{ do = \"sleep\", ms = 1 }]\nsource = ";
    let room = sockspec::load::SIDE_BY_SIDE_BYTES as usize - head.len() - 16;
    let case = format!("{head}[{}]\n", "[[0]],".repeat(room / 6));
    for n in 0..8 {
        std::fs::write(small.path().join(format!("t/c{n}.toml")), &case).unwrap();
    }
    side_by_side_expectations(small.path());
    for file in [sockspec::load::SOURCES_FILE, "profiles.toml"] {
        std::fs::write(small.path().join(file), largest_input("x = ")).unwrap();
    }
    let cases = "--cases".as_ref();
    let (code, err) = check_args(&[
        cases,
        large.path().as_os_str(),
        cases,
        small.path().as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert_has(&err, &["c7.toml", "`source` must be"]);
    let peak = children_peak_kib();
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
}

/// `n` cases of 8,000 tests each (2 (proto) x 10 x 10 x 10 x 4
/// combinations, under the per-case limit), named `t::c0` onwards.
#[cfg(target_os = "linux")]
fn large_cases(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    let mut axes: String = (0..3)
        .map(|i| format!("p{i} = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]\n"))
        .collect();
    axes.push_str("p3 = [0, 1, 2, 3]\n");
    for n in 0..n {
        std::fs::write(
            dir.path().join(format!("t/c{n}.toml")),
            format!("{GOOD_CASE}{axes}"),
        )
        .unwrap();
    }
    dir
}

#[cfg(target_os = "linux")]
#[test]
fn check_stays_under_256_mib_on_the_largest_trees_it_accepts_or_refuses() {
    // Thirty cases at the per-case limit: more tests than a tree may have.
    let dir = large_cases(30);
    let (code, err) = check_cli(dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert_has(&err, &["would expand to 240000 tests", "at most 80000"]);
    // Ten: within the tests' limit, beyond the steps'.
    for n in 10..30 {
        std::fs::remove_file(dir.path().join(format!("t/c{n}.toml"))).unwrap();
    }
    let (code, err) = check_cli(dir.path());
    assert_eq!(code, Some(2), "{err}");
    assert_has(&err, &["would expand to 320000 steps", "at most 300000"]);
    // The largest tree it accepts: 9 such cases, 288000 steps.
    for n in 9..10 {
        std::fs::remove_file(dir.path().join(format!("t/c{n}.toml"))).unwrap();
    }
    // With every OS's expectation file at the entry limit, each entry
    // selecting a whole 8000-test case.
    std::fs::create_dir_all(dir.path().join("expected")).unwrap();
    for os in sockspec::model::OsFamily::ALL {
        let mut text = format!("os = \"{os}\"\n");
        for n in 0..sockspec::expect::MAX_ENTRIES {
            text.push_str(&format!(
                "[[expect]]\ncase = \"t::c{}\"\noutcomes = {{ bind_b = \"EADDRINUSE\" }}\nsource = \"documented\"\ncite = \"semantics.md L1\"\nwhy = \"y\"\n",
                n % 9
            ));
        }
        std::fs::write(dir.path().join(format!("expected/{os}.toml")), text).unwrap();
    }
    let (code, err) = check_cli(dir.path());
    assert_eq!(code, Some(0), "{err}");
    // Peak memory of the children so far (this `check` is the largest).
    let peak = children_peak_kib();
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
}

/// The largest tree of tests, then an expectation file of the largest size
/// for every OS, each refused once parsed: the tests are built before the
/// files are parsed, and stay while each parse's working memory (~180
/// times the text) comes and goes. With glibc's allocator this peaked at
/// 260 MiB.
#[cfg(target_os = "linux")]
#[test]
fn check_stays_under_256_mib_on_the_largest_tree_and_expectation_files() {
    let dir = large_cases(9);
    largest_expectations(dir.path());
    refused_in_256_mib(dir.path(), &["wine.toml", "unknown field `x`"]);
}

/// A tree of more tests than the limit is refused before any is built, even
/// when their steps are few.
#[test]
fn too_many_tests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    let values: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    let case = format!(
        "title = \"many\"\nsource = \"x\"\nsteps = [{{ do = \"sleep\", ms = \"{{x}}\", check = \"s\" }}]\n[grid]\nx = [{}]\n",
        values.join(", ")
    );
    for n in 0..9 {
        std::fs::write(dir.path().join(format!("t/c{n}.toml")), &case).unwrap();
    }
    assert_has(
        &error(dir.path()),
        &["these cases would expand to 90000 tests in all; sockspec takes at most 80000"],
    );
}

/// An expectation file with more entries than the limit is refused before
/// any entry is checked.
#[test]
fn too_many_entries_are_refused() {
    let mut text = GOOD_EXPECT.to_string();
    for _ in 0..sockspec::expect::MAX_ENTRIES {
        text.push_str("[[expect]]\ncase = \"t::two\"\noutcomes = { bind_b = \"EADDRINUSE\" }\nsource = \"documented\"\ncite = \"semantics.md L1\"\nwhy = \"y\"\n");
    }
    let text = error(tree(GOOD_CASE, Some(&text)).path());
    assert_has(
        &text,
        &[
            "linux.toml:1:1",
            "5001 entries: more than an expectation file may have (5000)",
        ],
    );
}

/// Two entries of equal precedence that overlap on a test and disagree are
/// an error at the later one; overlapping entries that agree, or that have
/// different precedence (a narrower `where`), are not.
#[test]
fn entries_that_clash() {
    let second = |where_: &str, outcome: &str| {
        format!(
            "{GOOD_EXPECT}\n[[expect]]\ncase = \"t::two\"\n{where_}outcomes = {{ bind_b = \"{outcome}\" }}\nsource = \"documented\"\ncite = \"semantics.md L1\"\nwhy = \"again\"\n"
        )
    };
    let text = error(tree(GOOD_CASE, Some(&second("", "ok"))).path());
    assert_has(
        &text,
        &[
            "linux.toml:10:1",
            "this entry and the one at line 3 both give `bind_b` for t::two::proto=tcp with equal precedence, but disagree",
        ],
    );
    for fine in [
        second("", "EADDRINUSE"),
        second("where = { proto = \"udp\" }\n", "ok"),
    ] {
        let dir = tree(GOOD_CASE, Some(&fine));
        assert!(Suite::load(dir.path()).is_ok(), "{fine}");
    }
}

/// Labels and parameter names longer than [`sockspec::load::MAX_LABEL`]
/// are refused: every test's name and parameters hold them.
#[test]
fn long_grid_labels_and_names_are_refused() {
    let long = "l".repeat(sockspec::load::MAX_LABEL + 1);
    let fits = "l".repeat(sockspec::load::MAX_LABEL);
    let case = |name: &str, label: &str| {
        GOOD_CASE.replace(
            "proto = [\"tcp\", \"udp\"]",
            &format!("proto = [\"tcp\", \"udp\"]\n{name} = [\"{label}\"]"),
        )
    };
    assert!(Suite::load(tree(&case("p", &fits), None).path()).is_ok());
    assert!(Suite::load(tree(&case(&fits, "x"), None).path()).is_ok());
    assert_has(
        &error(tree(&case("p", &long), None).path()),
        &[
            "t/two.toml:",
            "cannot appear in a test name",
            "(at most 32)",
        ],
    );
    assert_has(
        &error(tree(&case(&long, "x"), None).path()),
        &[
            "t/two.toml:",
            &format!("grid parameter `{long}` must be at most 32"),
        ],
    );
}

/// A template that joins grid values into a text longer than
/// [`sockspec::expand::template::MAX_TEXT`] is refused once, not built
/// for every combination (800 KB of values joined four at a time took
/// 800 MiB).
#[test]
fn a_template_that_makes_a_long_text_is_refused() {
    let value = "y".repeat(1500);
    let mut case = String::from(
        "title = \"t\"\nsource = \"semantics.md L1\"\nsteps = [\n  { do = \"spawn\", actor = \"rt\", runtime = \"{a.s}{b.s}{c.s}\" },\n  { do = \"sleep\", ms = 1, check = \"s\" },\n]\n",
    );
    for p in ["a", "b", "c"] {
        case.push_str(&format!(
            "[grid.{p}]\nv0 = {{ s = \"{value}\" }}\nv1 = {{ s = \"{value}\" }}\n"
        ));
    }
    let err = error(tree(&case, None).path());
    assert_has(
        &err,
        &[
            "t/two.toml:4:",
            "\"{a.s}{b.s}{c.s}\" makes a text of more than 4096 bytes",
            "in all 8 combinations of the grid",
        ],
    );
    // Once, with the combinations it shows in.
    assert_eq!(err.matches("makes a text").count(), 1, "{err}");
}

/// The bounds on tests and steps are on everything one process holds:
/// two trees that each fit are refused together, naming both counts.
#[cfg(target_os = "linux")]
#[test]
fn trees_that_fit_alone_are_refused_together_past_the_bounds() {
    let a = large_cases(9);
    let b = large_cases(2);
    let (code, err) = check_cli(a.path());
    assert_eq!(code, Some(0), "{err}");
    let cases = "--cases".as_ref();
    let (code, err) = check_args(&[
        "--only-cases".as_ref(),
        cases,
        a.path().as_os_str(),
        cases,
        b.path().as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert_has(
        &err,
        &[
            "would expand to 16000 tests, and with the 72000 of the trees loaded before them, to 88000 in all; sockspec takes at most 80000",
        ],
    );
}

/// The largest tree of tests with the longest labels and parameter names,
/// beside every file it reads at the largest size: the worst case we know
/// (about 160 MiB with mimalloc).
#[cfg(target_os = "linux")]
#[test]
fn check_stays_under_256_mib_on_the_longest_labels_beside_the_largest_files() {
    let max = sockspec::load::MAX_LABEL;
    let label = |i: usize| format!("{}{i:05}", "l".repeat(max - 5));
    let name = |i: usize| format!("{}{i}", "p".repeat(max - 1));
    let axis = |i: usize, n: usize| {
        let labels: Vec<String> = (0..n).map(|j| format!("\"{}\"", label(j))).collect();
        format!("{} = [{}]\n", name(i), labels.join(", "))
    };
    // 2 x 10 x 10 x 10 x 5 = 10,000 tests each: 80,000, with 300,000 steps.
    let axes: String = (0..3).map(|i| axis(i, 10)).collect::<String>() + &axis(3, 5);
    let three = GOOD_CASE.replace(
        "  { do = \"socket\", name = \"b\", type = \"{proto}\", family = \"v4\" },\n  { do = \"bind\", sock = \"b\", addr = \"lo4\", port = \"a\", check = true },\n",
        "  { do = \"close\", sock = \"a\" },\n",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    for n in 0..8 {
        let case = if n < 6 { GOOD_CASE } else { &three };
        std::fs::write(
            dir.path().join(format!("t/c{n}.toml")),
            format!("{case}{axes}"),
        )
        .unwrap();
    }
    let (code, err) = check_cli(dir.path());
    assert_eq!(code, Some(0), "{err}");
    for file in [sockspec::load::SOURCES_FILE, "profiles.toml"] {
        std::fs::write(dir.path().join(file), largest_input("x = ")).unwrap();
    }
    largest_expectations(dir.path());
    refused_in_256_mib(dir.path(), &["wine.toml", "unknown field `x`"]);
}

/// Names longer than [`sockspec::outcome::MAX_IDENT`], and case ids longer
/// than [`sockspec::load::MAX_CASE_ID`], are refused: each test holds them.
#[test]
fn long_names_and_case_ids_are_refused() {
    let named = |name: &str| {
        GOOD_CASE
            .replace("name = \"a\"", &format!("name = \"{name}\""))
            .replace("sock = \"a\"", &format!("sock = \"{name}\""))
            .replace("port = \"a\"", &format!("port = \"{name}\""))
    };
    let long = "s".repeat(sockspec::outcome::MAX_IDENT + 1);
    assert!(error(tree(&named(&long), None).path()).contains("t/two.toml:"));
    let fits = "s".repeat(sockspec::outcome::MAX_IDENT);
    assert!(Suite::load(tree(&named(&fits), None).path()).is_ok());
    // Three directories of 60 characters: a case id of 186.
    let dir = tempfile::tempdir().unwrap();
    let deep = ["a", "b", "c"].map(|c| c.repeat(60)).join("/");
    std::fs::create_dir_all(dir.path().join(&deep)).unwrap();
    std::fs::write(dir.path().join(&deep).join("two.toml"), GOOD_CASE).unwrap();
    assert_has(
        &error(dir.path()),
        &["two.toml", "is longer than 128 characters"],
    );
}

/// An error about a long template quotes its start, not all of it: it is
/// made in every combination before equal ones are merged.
#[test]
fn an_error_quotes_the_start_of_a_long_template() {
    let tail = "z".repeat(10_000);
    let case = GOOD_CASE.replace(
        "addr = \"lo4\", port = \"@p\"",
        &format!("addr = \"{{proto{tail}\", port = \"@p\""),
    );
    let err = error(tree(&case, None).path());
    assert_has(&err, &["unclosed `{`", "…", "in all 2 combinations"]);
    assert!(err.len() < 2_000, "{} bytes of errors", err.len());
}

/// A case whose checked steps' labels change with the grid, past
/// [`sockspec::MAX_CHECKED_LABELS`] of them, is refused.
#[test]
fn checked_labels_that_change_with_the_grid_are_bounded() {
    let values: Vec<String> = (0..300).map(|i| i.to_string()).collect();
    let case = format!(
        "title = \"t\"\nsource = \"semantics.md L1\"\nsteps = [{{ do = \"socket\", name = \"s{{x}}\", type = \"udp\", family = \"v4\", check = true }}]\n[grid]\nx = [{}]\n",
        values.join(", ")
    );
    assert_has(
        &error(tree(&case, None).path()),
        &[
            "t/two.toml",
            "check more than 256 differently labelled steps",
        ],
    );
}

/// The scope check follows each socket and actor through the steps: what
/// is created twice, used after it is closed or its actor has ended, or
/// passed to an actor that is not running is reported at its step; a
/// socket created again is the new one from then on.
#[test]
fn sockets_and_actors_are_checked_step_by_step() {
    let case = r#"title = "scope"
source = "semantics.md L1"
steps = [
  { do = "socket", name = "a", type = "udp", family = "v4" },
  { do = "socket", name = "a", type = "tcp", family = "v4" },
  { do = "close", sock = "a" },
  { do = "listen", sock = "a" },
  { do = "spawn", actor = "x" },
  { do = "spawn", actor = "x" },
  { do = "socket", name = "c", type = "tcp", family = "v4", actor = "x" },
  { do = "socket", name = "d", type = "tcp", family = "v4" },
  { do = "connect", sock = "c", addr = "lo4", port = "d" },
  { do = "exit", actor = "x" },
  { do = "socket", name = "e", type = "tcp", family = "v4", actor = "x" },
  { do = "pass", sock = "d", to = "y" },
  { do = "close", sock = "c" },
]
"#;
    let err = error(tree(case, None).path());
    assert_has(
        &err,
        &[
            "t/two.toml:5:3: socket `a` is created twice",
            "t/two.toml:7:3: socket `a` is used after it was closed",
            "t/two.toml:9:3: actor `x` is spawned twice",
            "t/two.toml:12:3: port of `d`: `d` has no port yet",
            "t/two.toml:14:3: actor `x` is used after it ended",
            "t/two.toml:15:3: `pass` to `y`: no running actor has that name",
            // An actor's sockets end with it.
            "t/two.toml:16:3: socket `c` is used after it was closed",
        ],
    );
    // The second `a` (TCP) replaced the first (UDP): `listen` takes it.
    assert!(!err.contains("needs a TCP socket"), "{err}");
}
