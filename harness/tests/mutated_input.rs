//! Mutated case and expectation files never panic, hang or blow up: the
//! loader either accepts them or says where they are wrong, in bounded time
//! and (on Linux) in at most 256 MiB of address space.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use sockspec::Suite;

const CASE: &str = r#"title = "two binds"
source = "a seed"
claims = []
steps = [
  { do = "socket", name = "a", type = "{proto}", family = "v4", opts = ["reuseaddr"] },
  { do = "bind", sock = "a", addr = "lo4", port = "@p", check = true },
  { do = "listen", sock = "a", when = { proto = "tcp" } },
  { do = "socket", name = "b", type = "{proto}", family = "{fam.f}" },
  { do = "bind", sock = "b", addr = "{fam.addr}", port = "a", check = true },
  { do = "close", sock = "b", bands = { quick = [0, 300] } },
]

[grid]
proto = ["tcp", "udp"]
fam = { v4 = { f = "v4", addr = "lo4" }, v6 = { f = "v6", addr = "lo6" } }

[[exclude]]
proto = "udp"
fam = "v6"
"#;

const EXPECT: &str = r#"os = "linux"

[[expect]]
case = "t::two"
outcomes = { bind_a = "ok", bind_b = "EADDRINUSE" }
source = "observed"
seen_on = ["6.18.44"]

[[expect]]
case = "t::two"
where = { proto = "udp" }
kernel = ">=6.1, <7"
outcomes = { bind_b = "ok" }
source = "documented"
cite = "somewhere"
confidence = "S"
why = "a reason"
"#;

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    DuplicateLine(usize),
    Insert(usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (
            any::<usize>(),
            prop_oneof![
                Just("99999999999999999999999999".to_string()),
                Just("-9223372036854775808".to_string()),
                Just("1e400".to_string()),
                (1usize..3000).prop_map(|n| "[".repeat(n)),
                (1usize..3000).prop_map(|n| "{a=".repeat(n)),
                Just("\"{x.y.z}\"".to_string()),
                Just("\n[[exclude]]\n".to_string()),
                Just("\u{0}".to_string()),
                "[a-z_=\\[\\]{}\", 0-9\n]{0,40}",
            ]
        )
            .prop_map(|(i, s)| Mutation::Insert(i, s)),
    ]
}

/// The address space `sockspec check` may use on any input (README: peak
/// memory under 256 MiB).
#[cfg(target_os = "linux")]
const MEMORY: u64 = 256 << 20;

/// `sockspec check` on `dir` in a child process whose address space is
/// limited to [`MEMORY`] (RLIMIT_AS): an allocation beyond it fails, and
/// the process aborts instead of answering 0 (valid) or 2 (an input error).
#[cfg(target_os = "linux")]
fn check_in_bounded_memory(dir: &std::path::Path) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sockspec"));
    cmd.args(["check", "--only-cases", "--cases"])
        .arg(dir)
        .env_remove("CI");
    // SAFETY: setrlimit is a system call, safe between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_AS, MEMORY, MEMORY)
                .map_err(std::io::Error::from)
        });
    }
    cmd.output().unwrap()
}

fn apply(text: &str, m: &Mutation) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    if b.is_empty() {
        return b;
    }
    match m {
        Mutation::Flip(i, x) => {
            let i = i % b.len();
            b[i] ^= x | 1;
        }
        Mutation::Truncate(i) => b.truncate(i % b.len()),
        Mutation::DuplicateLine(i) => {
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            let i = i % lines.len();
            let mut out = lines.clone();
            out.insert(i, lines[i]);
            b = out.concat().into_bytes();
        }
        Mutation::Insert(i, s) => {
            let i = i % (b.len() + 1);
            b.splice(i..i, s.bytes());
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_mutated_tree_loads_or_says_where_it_is_wrong(
        in_case in any::<bool>(),
        ms in proptest::collection::vec(mutation(), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::fs::create_dir_all(dir.path().join("expected")).unwrap();
        let (mut case, mut expect) = (CASE.as_bytes().to_vec(), EXPECT.as_bytes().to_vec());
        for m in &ms {
            let target = if in_case { &mut case } else { &mut expect };
            let text = String::from_utf8_lossy(target).into_owned();
            *target = apply(&text, m);
        }
        std::fs::write(dir.path().join("t/two.toml"), &case).unwrap();
        std::fs::write(dir.path().join("expected/linux.toml"), &expect).unwrap();
        let started = Instant::now();
        let loaded = Suite::load(dir.path());
        prop_assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
        if let Err(errors) = loaded {
            prop_assert!(!errors.0.is_empty());
            for e in &errors.0 {
                prop_assert!(
                    e.pos.is_some(),
                    "an error without a line and column: {e}"
                );
                prop_assert!(e.file.starts_with(dir.path()), "{e}");
            }
        }
        #[cfg(target_os = "linux")]
        {
            let out = check_in_bounded_memory(dir.path());
            let err = String::from_utf8_lossy(&out.stderr);
            prop_assert!(
                matches!(out.status.code(), Some(0 | 2)),
                "`sockspec check` in {} MiB: {:?}: {err}",
                MEMORY >> 20,
                out.status
            );
        }
    }
}
