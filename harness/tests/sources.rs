//! The sources registry (`<cases>/sources.toml`): with one, every cite of a
//! documented expectation must be one of its keys, and every source must say
//! where a reader can open it.

use std::path::Path;
use std::process::Command;

use sockspec::Suite;

const CASE: &str = r#"title = "two binds"
source = "x"
steps = [
  { do = "socket", name = "a", type = "tcp", family = "v4" },
  { do = "bind", sock = "a", addr = "lo4", port = "@p" },
  { do = "socket", name = "b", type = "tcp", family = "v4" },
  { do = "bind", sock = "b", addr = "lo4", port = "a", check = true },
]
"#;

const SOURCES: &str = r#"[source.linux-socket7]
kind = "man-page"
title = "Linux socket(7)"
url = "https://man7.org/linux/man-pages/man7/socket.7.html"
says = "SO_REUSEADDR does not let two sockets share an address a listener holds"

[source.linux-bind-conflict]
kind = "kernel-source"
title = "inet_bind_conflict"
repo = "torvalds/linux"
path = "net/ipv4/inet_connection_sock.c"
commit = "0123456789abcdef0123456789abcdef01234567"
lines = "120-160"
says = "both sockets need SO_REUSEADDR"
"#;

fn expect(cite: &str, confidence: &str) -> String {
    format!(
        "os = \"linux\"\n\n[[expect]]\ncase = \"t::two\"\noutcomes = {{ bind_b = \"EADDRINUSE\" }}\n\
         source = \"documented\"\ncite = {cite}\nconfidence = \"{confidence}\"\nwhy = \"the same address twice\"\n"
    )
}

fn tree(sources: &str, expect: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    std::fs::create_dir_all(dir.path().join("expected")).unwrap();
    std::fs::write(dir.path().join("t/two.toml"), CASE).unwrap();
    std::fs::write(dir.path().join("sources.toml"), sources).unwrap();
    std::fs::write(dir.path().join("expected/linux.toml"), expect).unwrap();
    dir
}

fn check(dir: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sockspec"))
        .arg("check")
        .arg("--cases")
        .arg(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn cites_of_registry_keys_load_and_link() {
    let dir = tree(
        SOURCES,
        &expect("[\"linux-socket7\", \"linux-bind-conflict\"]", "S"),
    );
    let suite = Suite::load(dir.path()).unwrap();
    let reg = suite.expectations.sources.as_ref().unwrap();
    assert_eq!(
        reg.get("linux-bind-conflict").unwrap().link(),
        "https://github.com/torvalds/linux/blob/0123456789abcdef0123456789abcdef01234567/net/ipv4/inet_connection_sock.c#L120-L160"
    );
    let (code, text) = check(dir.path());
    assert_eq!(code, Some(0), "{text}");
    // One key as a plain string works too.
    let dir = tree(SOURCES, &expect("\"linux-socket7\"", "D"));
    assert_eq!(check(dir.path()).0, Some(0));
}

#[test]
fn a_cite_of_an_unknown_key_fails_check_with_its_location() {
    let dir = tree(SOURCES, &expect("\"linux-socket8\"", "D"));
    let (code, text) = check(dir.path());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("expected/linux.toml:7:8: `linux-socket8` is not a key of"),
        "{text}"
    );
    assert!(text.contains("close keys: linux-socket7"), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn confidence_must_fit_the_kinds_cited() {
    // A man page supports D, not S.
    let dir = tree(SOURCES, &expect("\"linux-socket7\"", "S"));
    let (code, text) = check(dir.path());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("expected/linux.toml:7:8: confidence S needs a cited source of that kind"),
        "{text}"
    );
}

#[test]
fn a_source_needs_a_url_or_a_pinned_file() {
    let bad = SOURCES
        .replace(
            "url = \"https://man7.org/linux/man-pages/man7/socket.7.html\"\n",
            "",
        )
        .replace(
            "commit = \"0123456789abcdef0123456789abcdef01234567\"",
            "commit = \"main\"",
        );
    let dir = tree(&bad, &expect("\"linux-bind-conflict\"", "S"));
    let (code, text) = check(dir.path());
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("sources.toml:1:1: source `linux-socket7` needs `url`"),
        "{text}"
    );
    assert!(
        text.contains("sources.toml:11:10: `main` is not a full commit hash"),
        "{text}"
    );
}
