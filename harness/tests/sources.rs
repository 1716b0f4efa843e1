//! The sources registry (`<cases>/sources.toml`): with one, every cite of a
//! documented expectation must be one of its keys, and every source must say
//! where a reader can open it.

use std::path::Path;
use std::sync::Arc;

use sockspec::Suite;
use sockspec::expect::Provenance;
use sockspec::model::OsFamily;
use sockspec::sources::Source;

mod common;
use common::sockspec;

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

/// A test of the built-in catalogue whose expectation (on some OS) cites a
/// source unlike `SOURCES`' (another key, title and link): its name and
/// that source.
fn a_catalogue_test_citing_a_source() -> (String, Arc<Source>) {
    let unlike = |s: &Source| {
        !SOURCES.contains(&format!("[source.{}]", s.key))
            && !SOURCES.contains(&s.title)
            && !SOURCES.contains(&s.link())
    };
    let builtin = sockspec::trees::builtin().unwrap();
    let suite = Suite::load(&builtin.root).unwrap();
    for t in &suite.tests {
        for os in OsFamily::ALL {
            let Some(file) = suite.expectations.for_os(*os) else {
                continue;
            };
            for label in t.steps.iter().filter_map(|s| s.check.as_deref()) {
                if let Some(a) = file.resolve(t, label, None)
                    && let Provenance::Documented { sources, .. } = &a.entry.provenance
                    && let Some(s) = sources.iter().find(|s| unlike(s))
                {
                    return (t.name.clone(), s.clone());
                }
            }
        }
    }
    panic!("no test of the catalogue cites a source")
}

/// `SOURCES` with its first source under `key` instead.
fn sources_with_key(key: &str) -> String {
    SOURCES.replace("linux-socket7", key)
}

/// In a run of several trees, a test's sources are its own tree's, though
/// the built-in catalogue has a source under the same key: `explain` once
/// listed the first tree's registry for every test.
#[test]
fn explain_lists_the_sources_of_the_tests_own_tree() {
    let (theirs, source) = a_catalogue_test_citing_a_source();
    let key = source.key.as_str();
    let dir = tree(&sources_with_key(key), &expect(&format!("\"{key}\""), "D"));
    let explain = |name: &str| {
        sockspec(&[
            "explain".as_ref(),
            "--cases".as_ref(),
            dir.path().as_os_str(),
            name.as_ref(),
        ])
    };
    let ours = format!(
        "{}/t::two",
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let (code, text) = explain(&ours);
    assert_eq!(code, Some(0), "{text}");
    let registry = dir.path().join("sources.toml");
    assert!(
        text.contains(&format!("sources cited ({}):", registry.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{key} [man-page] (linux)\n      Linux socket(7)\n"
        )),
        "{text}"
    );
    assert!(!text.contains(&source.title), "{text}");
    // A test of the catalogue, in the same run, cites the catalogue's.
    let (code, text) = explain(&theirs);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("sources cited ({}):", source.at.file.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("{key} [{}] (", source.kind.as_str()))
            && text.contains(&source.title),
        "{text}"
    );
}

/// A run records the sources a documented entry cites, from the entry's own
/// tree, and reports link those: before, a report looked every key up in
/// the built-in catalogue's registry, which has another source under this
/// key. A results file from before runs recorded them is still linked
/// through the catalogue's registry.
#[test]
fn results_and_reports_link_the_sources_of_the_entrys_own_tree() {
    let (_, source) = a_catalogue_test_citing_a_source();
    let key = source.key.as_str();
    let dir = tree(&sources_with_key(key), "os = \"linux\"\n");
    // The same documented entry for every OS, so that whichever runs this
    // test judges the step by it.
    for os in OsFamily::ALL {
        let entry = expect(&format!("\"{key}\""), "D").replace("\"linux\"", &format!("\"{os}\""));
        std::fs::write(dir.path().join(format!("expected/{os}.toml")), entry).unwrap();
    }
    let json = dir.path().join("results.json");
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
    // The kernel decides the verdicts; what matters here is what the
    // expectations cite.
    assert!(matches!(code, Some(0 | 1)), "{text}");
    let results = sockspec::results::Results::read(&json).unwrap();
    let ours_test = results.tests.iter().find(|t| t.name == name).unwrap();
    let step = ours_test
        .steps
        .iter()
        .find(|s| s.label.as_deref() == Some("bind_b"))
        .unwrap();
    let id = format!(
        "{}/{key}",
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let e = step.expectation.as_ref().unwrap();
    assert_eq!(e.cites, Some(vec![id.clone()]), "{e:?}");
    let ours = "https://man7.org/linux/man-pages/man7/socket.7.html";
    let cited = &results.sources[&id];
    assert_eq!(
        (cited.key.as_str(), cited.kind.as_str(), cited.link.as_str()),
        (key, "man-page", ours)
    );
    assert_eq!(results.sources.len(), 1, "{:?}", results.sources);
    let report = |json: &Path| {
        let html = dir.path().join("report.html");
        let (code, text) = sockspec(&[
            "report".as_ref(),
            json.as_os_str(),
            "--html".as_ref(),
            html.as_os_str(),
        ]);
        assert_eq!(code, Some(0), "{text}");
        std::fs::read_to_string(&html).unwrap()
    };
    let page = report(&json);
    assert!(page.contains(ours), "{page}");
    assert!(!page.contains(&source.link()), "{page}");
    // Written before runs recorded sources: no `cites`, no `sources`; the
    // key is looked up in the catalogue's registry.
    let mut old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    old.as_object_mut().unwrap().remove("sources");
    for s in old["tests"][0]["steps"].as_array_mut().unwrap() {
        if let Some(e) = s["expectation"].as_object_mut() {
            e.remove("cites");
        }
    }
    let older = dir.path().join("older.json");
    std::fs::write(&older, old.to_string()).unwrap();
    let page = report(&older);
    assert!(page.contains(&source.link()), "{page}");
    assert!(!page.contains(ours), "{page}");
}

/// Two trees of one run that cite one key for different sources: each
/// test's step cites its own tree's, under its own id, in one results file.
#[test]
fn one_key_in_two_trees_of_a_run_names_two_sources() {
    let entry =
        |os: OsFamily| expect("\"linux-socket7\"", "D").replace("\"linux\"", &format!("\"{os}\""));
    let other = "https://man.freebsd.org/cgi/man.cgi?query=socket";
    let a = tree(SOURCES, "");
    let b = tree(
        &SOURCES.replace("https://man7.org/linux/man-pages/man7/socket.7.html", other),
        "",
    );
    for dir in [&a, &b] {
        for os in OsFamily::ALL {
            std::fs::write(dir.path().join(format!("expected/{os}.toml")), entry(*os)).unwrap();
        }
    }
    let name = |d: &tempfile::TempDir| d.path().file_name().unwrap().to_string_lossy().into_owned();
    let json = a.path().join("results.json");
    let (code, text) = sockspec(&[
        "run".as_ref(),
        "--only-cases".as_ref(),
        "--cases".as_ref(),
        a.path().as_os_str(),
        "--cases".as_ref(),
        b.path().as_os_str(),
        "--json".as_ref(),
        json.as_os_str(),
    ]);
    assert!(matches!(code, Some(0 | 1)), "{text}");
    let results = sockspec::results::Results::read(&json).unwrap();
    for (dir, link) in [
        (&a, "https://man7.org/linux/man-pages/man7/socket.7.html"),
        (&b, other),
    ] {
        let id = format!("{}/linux-socket7", name(dir));
        let t = results
            .tests
            .iter()
            .find(|t| t.name == format!("{}/t::two", name(dir)))
            .unwrap();
        let e = t.steps.iter().find_map(|s| s.expectation.as_ref()).unwrap();
        assert_eq!(e.cites, Some(vec![id.clone()]), "{e:?}");
        assert_eq!(results.sources[&id].link, link);
    }
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
