//! Issue 14, "Adopt it in one line": the built-in catalogue compiled into
//! the binary, case trees beside it, sockspec.toml. Every command runs the
//! real binary from a directory outside the repository, with a cache
//! directory of its own, so the source tree's ./cases is never found.

use std::path::Path;
use std::process::{Command, Output};

fn sockspec(cwd: &Path, cache: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sockspec"))
        .args(args)
        .current_dir(cwd)
        .env("XDG_CACHE_HOME", cache)
        .env_remove("SOCKSPEC_CASES")
        .env_remove("CI")
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A project with its own tree `mine/` (one case, two tests).
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("mine");
    std::fs::create_dir_all(tree.join("t")).unwrap();
    std::fs::create_dir_all(tree.join("expected")).unwrap();
    std::fs::write(
        tree.join("t/bind.toml"),
        r#"title = "t"
source = ["here"]
steps = [
  { do = "socket", name = "a", type = "{proto}", family = "v4" },
  { do = "bind", sock = "a", addr = "lo4", port = 0, check = "b" },
]
[grid]
proto = ["tcp", "udp"]
"#,
    )
    .unwrap();
    // An empty .git marks the project's root for the sockspec.toml search.
    std::fs::create_dir(dir.path().join(".git")).unwrap();
    dir
}

#[test]
fn the_built_in_catalogue_runs_from_anywhere_and_version_names_it() {
    let (dir, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let v = sockspec(dir.path(), cache.path(), &["--version"]);
    let v = String::from_utf8_lossy(&v.stdout).into_owned();
    assert!(
        v.contains(&format!("catalogue {}, ", sockspec::catalogue::HASH)),
        "{v}"
    );
    let out = sockspec(dir.path(), cache.path(), &["check"]);
    assert!(out.status.success(), "{}", text(&out));
    let unpacked = cache
        .path()
        .join(format!("sockspec/catalogue-{}", sockspec::catalogue::HASH));
    assert!(unpacked.join("expected/linux.toml").is_file());
    // A tampered copy is never run: it is replaced by the compiled-in files.
    std::fs::write(unpacked.join("bind/pairs.toml"), "garbage").unwrap();
    std::fs::write(unpacked.join("bind/extra.toml"), "garbage").unwrap();
    let out = sockspec(dir.path(), cache.path(), &["check"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!unpacked.join("bind/extra.toml").exists());
}

#[test]
fn cases_adds_a_tree_with_prefixed_names_and_only_cases_runs_it_alone() {
    let (p, cache) = (project(), tempfile::tempdir().unwrap());
    let out = sockspec(p.path(), cache.path(), &["list", "--cases", "mine"]);
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(names.contains("\nmine/t::bind::proto=tcp\n"), "{names}");
    assert!(names.lines().any(|l| l.starts_with("bind::pairs::")));
    let out = sockspec(
        p.path(),
        cache.path(),
        &["list", "--only-cases", "--cases", "mine"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "t::bind::proto=tcp\nt::bind::proto=udp\n"
    );
    // Bless writes into the tree the test came from...
    let out = sockspec(
        p.path(),
        cache.path(),
        &["bless", "--repeat", "1", "--cases", "mine", "mine/"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let os = sockspec::sys::os_family();
    let written = std::fs::read_to_string(p.path().join(format!("mine/expected/{os}.toml")));
    assert!(
        written
            .as_deref()
            .is_ok_and(|t| t.contains("case = \"t::bind\"")),
        "{written:?}"
    );
    // ...and refuses the compiled-in catalogue, which has no file to write.
    let out = sockspec(
        p.path(),
        cache.path(),
        &["bless", "--repeat", "1", "bind::rebind_bound"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("built-in catalogue"), "{}", text(&out));
}

#[test]
fn sockspec_toml_is_found_above_and_its_profile_applies() {
    let (p, cache) = (project(), tempfile::tempdir().unwrap());
    std::fs::write(
        p.path().join("sockspec.toml"),
        "cases = [\"mine\"]\nfilter = [\"mine/\"]\n\n[profile.ci]\nskip = [\"udp\"]\n",
    )
    .unwrap();
    let deep = p.path().join("src/deep");
    std::fs::create_dir_all(&deep).unwrap();
    let out = sockspec(&deep, cache.path(), &["list"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mine/t::bind::proto=tcp\nmine/t::bind::proto=udp\n",
        "{}",
        text(&out)
    );
    let out = sockspec(&deep, cache.path(), &["list", "--profile", "ci"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "mine/t::bind::proto=tcp\n"
    );
    let out = sockspec(&deep, cache.path(), &["list", "--profile", "nightly"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn an_unknown_key_in_sockspec_toml_is_an_error_with_its_location() {
    let (p, cache) = (project(), tempfile::tempdir().unwrap());
    std::fs::write(
        p.path().join("sockspec.toml"),
        "cases = [\"mine\"]\n\n[profile.ci]\njbos = 2\n",
    )
    .unwrap();
    let out = sockspec(p.path(), cache.path(), &["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("sockspec.toml:4:1") && text(&out).contains("jbos"),
        "{}",
        text(&out)
    );
}

#[test]
fn sockspec_toml_names_the_agent_and_the_command_line_wins() {
    let (p, cache) = (project(), tempfile::tempdir().unwrap());
    std::fs::write(
        p.path().join("sockspec.toml"),
        "cases = [\"mine\"]\nonly_cases = true\nagent = \"python\"\n\n[profile.builtin]\nagent = \"rust\"\n",
    )
    .unwrap();
    // What ran the steps, as the results' run header records it.
    let implementation = |args: &[&str]| {
        let json = p.path().join("out.json");
        let mut all = vec!["run", "-q", "--json", json.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = sockspec(p.path(), cache.path(), &all);
        // The tree has no expectations: the tests fail, the run completes.
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        (
            r["run"]["implementation"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            text(&out),
        )
    };
    let (top, said) = implementation(&[]);
    assert!(top.starts_with("python 3."), "{top}");
    assert!(said.contains(&format!("steps run in {top}")), "{said}");
    let (profiled, _) = implementation(&["--profile", "builtin"]);
    assert!(profiled.starts_with("rust std"), "{profiled}");
    let (flag, _) = implementation(&["--agent", "rust"]);
    assert!(flag.starts_with("rust std"), "{flag}");
    // An empty agent is an error with its place in the file.
    std::fs::write(
        p.path().join("sockspec.toml"),
        "cases = [\"mine\"]\n\n[profile.ci]\nagent = \" \"\n",
    )
    .unwrap();
    let out = sockspec(p.path(), cache.path(), &["list", "--profile", "ci"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("sockspec.toml:4:9") && text(&out).contains("agent"),
        "{}",
        text(&out)
    );
}
