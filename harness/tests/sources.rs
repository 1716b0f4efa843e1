//! The sources registry (`<cases>/sources.toml`): with one, every cite of a
//! documented expectation must be one of its keys, and every source must say
//! where a reader can open it.

use std::path::Path;
use std::process::Command;

use sockspec::Suite;
use sockspec::expect::Provenance;
use sockspec::model::OsFamily;

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
    sockspec(&["check".as_ref(), "--cases".as_ref(), dir.as_os_str()])
}

/// Runs the binary with `args`: its exit code, and stdout then stderr.
fn sockspec(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sockspec"))
        .args(args)
        .env_remove("SOCKSPEC_CASES")
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
    let entry = &suite.expectations.for_os(OsFamily::Linux).unwrap().entries[0];
    let Provenance::Documented { sources, .. } = &entry.provenance else {
        panic!("{entry:?}")
    };
    let keys: Vec<&str> = sources.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["linux-socket7", "linux-bind-conflict"]);
    assert_eq!(
        sources[1].link(),
        "https://github.com/torvalds/linux/blob/0123456789abcdef0123456789abcdef01234567/net/ipv4/inet_connection_sock.c#L120-L160"
    );
    assert_eq!(*sources[1].at.file, dir.path().join("sources.toml"));
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

/// In a run of several trees, a test's sources are its own tree's, though
/// the built-in catalogue has a source under the same key: `explain` once
/// listed the first tree's registry for every test.
#[test]
fn explain_lists_the_sources_of_the_tests_own_tree() {
    let ours = SOURCES.replace("linux-socket7", "ms-reuseaddr");
    let dir = tree(&ours, &expect("\"ms-reuseaddr\"", "D"));
    let builtin = sockspec::trees::builtin().unwrap();
    let theirs = sockspec::sources::load(&builtin.root, &mut Vec::new()).unwrap();
    assert!(
        theirs.get("ms-reuseaddr").is_some(),
        "the built-in catalogue no longer has this key: pick another"
    );
    let name = format!(
        "{}/t::two",
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let (code, text) = sockspec(&[
        "explain".as_ref(),
        "--cases".as_ref(),
        dir.path().as_os_str(),
        name.as_ref(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    let registry = dir.path().join("sources.toml");
    assert!(
        text.contains(&format!("sources cited ({}):", registry.display())),
        "{text}"
    );
    assert!(
        text.contains("ms-reuseaddr [man-page] (linux)\n      Linux socket(7)\n"),
        "{text}"
    );
    assert!(!text.contains("Microsoft Learn"), "{text}");
    // And a test of the catalogue, in the same run, cites the catalogue's.
    let (code, text) = sockspec(&[
        "explain".as_ref(),
        "--cases".as_ref(),
        dir.path().as_os_str(),
        "bind::bsd_table::proto=tcp::listen=false::first=lo4::second=lo4b::reuse_a=false::reuse_b=false"
            .as_ref(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("sources cited ({}):", theirs.path.display())),
        "{text}"
    );
    assert!(
        text.contains("ms-reuseaddr [vendor-doc] (windows)\n      Using SO_REUSEADDR"),
        "{text}"
    );
}

/// A run records the sources a documented entry cites, from the entry's own
/// tree, and the reports link those: before, a report looked every key up
/// in the built-in catalogue's registry, which has another source under
/// this key.
#[test]
fn results_and_reports_link_the_sources_of_the_entrys_own_tree() {
    let ours = SOURCES.replace("linux-socket7", "ms-reuseaddr");
    let dir = tree(&ours, &expect("\"ms-reuseaddr\"", "D"));
    let json = dir.path().join("results.json");
    let html = dir.path().join("report.html");
    let name = format!(
        "{}/t::two",
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let (code, text) = sockspec(&[
        "run".as_ref(),
        "--cases".as_ref(),
        dir.path().as_os_str(),
        "--exact".as_ref(),
        name.as_ref(),
        "--json".as_ref(),
        json.as_os_str(),
    ]);
    // The kernel decides the verdict; what matters here is what the
    // expectation cites.
    assert!(matches!(code, Some(0 | 1)), "{text}");
    let results = sockspec::results::Results::read(&json).unwrap();
    let e = results.tests[0].steps[3].expectation.as_ref().unwrap();
    let ours_link = "https://man7.org/linux/man-pages/man7/socket.7.html";
    assert_eq!(e.cites.len(), 1, "{e:?}");
    assert_eq!(
        (
            e.cites[0].key.as_str(),
            e.cites[0].kind.as_str(),
            e.cites[0].link.as_str()
        ),
        ("ms-reuseaddr", "man-page", ours_link)
    );
    let (code, text) = sockspec(&[
        "report".as_ref(),
        json.as_os_str(),
        "--html".as_ref(),
        html.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(ours_link), "{page}");
    assert!(!page.contains("learn.microsoft.com"), "{page}");
}

/// `check` counts every tree's expectation files: a suite of several trees
/// keeps one file per OS once merged, and two trees' linux.toml once read
/// as one file.
#[test]
fn check_counts_the_files_of_every_tree() {
    let a = tree(SOURCES, &expect("\"linux-socket7\"", "D"));
    let b = tree(SOURCES, &expect("\"linux-socket7\"", "D"));
    let (code, text) = sockspec(&[
        "check".as_ref(),
        "--only-cases".as_ref(),
        "--cases".as_ref(),
        a.path().as_os_str(),
        "--cases".as_ref(),
        b.path().as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("2 cases, 2 tests, 2 expectation entries in 2 files: all valid"),
        "{text}"
    );
}
