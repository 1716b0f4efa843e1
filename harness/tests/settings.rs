//! Expectations conditioned on stack settings: parsing, precedence, bless
//! writing the condition, and the profiles file's errors.

use std::collections::BTreeMap;

use sockspec::Suite;
use sockspec::bless::{Observation, bless_in};
use sockspec::model::OsFamily;

mod common;
use common::sockspec;

const CASE: &str = r#"title = "two binds"
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

fn tree(expect: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    std::fs::write(dir.path().join("t/two.toml"), CASE).unwrap();
    std::fs::create_dir_all(dir.path().join("expected")).unwrap();
    std::fs::write(dir.path().join("expected/linux.toml"), expect).unwrap();
    dir
}

const BASE: &str = r#"os = "linux"

[[expect]]
case = "t::two"
where = { proto = "tcp" }
outcomes = { bind_b = "EADDRINUSE" }
source = "observed"
seen_on = ["6.18.1"]

[[expect]]
case = "t::two"
where = { proto = "udp" }
outcomes = { bind_b = "EADDRINUSE" }
source = "observed"
seen_on = ["6.18.1"]
"#;

fn load_error(dir: &std::path::Path) -> String {
    match Suite::load(dir) {
        Ok(_) => panic!("the suite loaded, but it should not have"),
        Err(e) => e.to_string(),
    }
}

fn settings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_condition_applies_only_when_the_run_has_those_settings_and_beats_narrower_entries() {
    let text = format!(
        "{BASE}\n[[expect]]\ncase = \"t::two\"\nsettings = {{ \"net.ipv4.tcp_tw_reuse\" = \"0\" }}\noutcomes = {{ bind_b = \"ok\" }}\nsource = \"observed\"\nseen_on = [\"6.18.1\"]\n"
    );
    let dir = tree(&text);
    let s = Suite::load(dir.path()).unwrap();
    let f = s.expectations.for_os(OsFamily::Linux).unwrap();
    let t = s.test("t::two::proto=tcp").unwrap();
    let off = settings(&[("net.ipv4.tcp_tw_reuse", "0")]);
    let def = settings(&[("net.ipv4.tcp_tw_reuse", "2")]);
    let with = f
        .resolve_in(t, "bind_b", Some("6.18.1"), Some(&off))
        .unwrap();
    assert_eq!(with.outcome.to_string(), "ok");
    assert_eq!(
        with.entry.condition().as_deref(),
        Some("net.ipv4.tcp_tw_reuse=0")
    );
    let without = f
        .resolve_in(t, "bind_b", Some("6.18.1"), Some(&def))
        .unwrap();
    assert_eq!(without.outcome.to_string(), "EADDRINUSE");
    // No settings known (explain): only unconditioned entries.
    assert_eq!(
        f.resolve(t, "bind_b", None).unwrap().outcome.to_string(),
        "EADDRINUSE"
    );
}

#[test]
fn an_unknown_setting_is_an_input_error_with_its_location() {
    let text = format!(
        "{BASE}\n[[expect]]\ncase = \"t::two\"\nsettings = {{ \"net.ipv4.tcp_tw_reuze\" = \"0\" }}\noutcomes = {{ bind_b = \"ok\" }}\nsource = \"observed\"\nseen_on = [\"6.18.1\"]\n"
    );
    let dir = tree(&text);
    let e = load_error(dir.path());
    assert!(e.contains("linux.toml:19:40"), "{e}");
    assert!(
        e.contains("`net.ipv4.tcp_tw_reuze` is not a setting"),
        "{e}"
    );
    assert!(e.contains("net.ipv4.tcp_tw_reuse"), "{e}");
}

#[test]
fn bless_conditions_only_what_differs_under_non_default_settings() {
    let dir = tree(BASE);
    let s = Suite::load(dir.path()).unwrap();
    let obs: Vec<Observation> = ["tcp", "udp"]
        .iter()
        .map(|p| Observation {
            test: s.test(&format!("t::two::proto={p}")).unwrap().clone(),
            outcomes: vec![(
                "bind_b".into(),
                if *p == "tcp" { "ok" } else { "EADDRINUSE" }
                    .parse()
                    .unwrap(),
            )],
        })
        .collect();
    let run = settings(&[
        ("net.ipv4.tcp_tw_reuse", "0"),
        ("net.ipv6.bindv6only", "0"),
        ("net.ipv4.ip_local_port_range", "32768\t60999"),
    ]);
    let sum = bless_in(&s, OsFamily::Linux, "6.18.2", &run, None, &obs).unwrap();
    assert_eq!((sum.added, sum.changed, sum.confirmed), (1, 0, 0), "{sum}");
    let text = std::fs::read_to_string(dir.path().join("expected/linux.toml")).unwrap();
    assert!(
        text.starts_with(BASE),
        "existing entries were rewritten:\n{text}"
    );
    let added = &text[BASE.len()..];
    assert!(
        added.contains("settings = { \"net.ipv4.tcp_tw_reuse\" = \"0\" }"),
        "{added}"
    );
    assert!(added.contains("where = { proto = \"tcp\" }"), "{added}");
    assert!(!added.contains("bindv6only"), "{added}");
    // Blessing the same run again changes nothing but seen_on.
    let s = Suite::load(dir.path()).unwrap();
    let sum = bless_in(&s, OsFamily::Linux, "6.18.2", &run, None, &obs).unwrap();
    assert_eq!((sum.added, sum.changed), (0, 0), "{sum}");
}

#[test]
fn a_bad_profile_is_an_input_error_with_its_location() {
    let dir = tree(BASE);
    std::fs::write(
        dir.path().join("profiles.toml"),
        "[profile.x]\ntitle = \"x\"\nsysctls = { \"net.ipv4.tcp_tw_reuse\" = \"0\", \"kernel.panic\" = \"1\" }\n",
    )
    .unwrap();
    let e = load_error(dir.path());
    assert!(e.contains("profiles.toml:3:"), "{e}");
    assert!(
        e.contains("`kernel.panic` is not a setting sockspec records"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("profiles.toml"),
        "[profile.x]\ntitle = \"x\"\nsysctls = { \"net.ipv4.tcp_tw_reuse\" = \"0\" }\n",
    )
    .unwrap();
    Suite::load(dir.path()).unwrap();
    let p = sockspec::sys::settings::load_profiles(dir.path()).unwrap();
    assert_eq!(p["x"].sysctls["net.ipv4.tcp_tw_reuse"], "0");
}

/// `--stack-profile` finds a profile in any tree of the run, not only the
/// first (the built-in catalogue); one name with two meanings is refused,
/// naming both files.
#[test]
fn a_stack_profile_is_found_in_any_tree_of_the_run() {
    let dir = tree(BASE);
    let ours = dir.path().join("profiles.toml");
    let test = format!(
        "{}/t::two::proto=tcp",
        dir.path().file_name().unwrap().to_string_lossy()
    );
    let json = dir.path().join("results.json");
    let run = |profile: &str| {
        sockspec(&[
            "run".as_ref(),
            "--json".as_ref(),
            json.as_os_str(),
            "--cases".as_ref(),
            dir.path().as_os_str(),
            "--stack-profile".as_ref(),
            profile.as_ref(),
            "--exact".as_ref(),
            test.as_ref(),
        ])
    };
    std::fs::write(
        &ours,
        "[profile.mine]\ntitle = \"x\"\nsysctls = { \"net.ipv4.tcp_tw_reuse\" = \"0\" }\n",
    )
    .unwrap();
    let (code, text) = run("mine");
    match code {
        Some(0) => {
            assert!(text.contains("1 pass, 0 fail"), "{text}");
            let results = std::fs::read_to_string(&json).unwrap();
            let results: serde_json::Value = serde_json::from_str(&results).unwrap();
            assert_eq!(results["run"]["profile"], "mine", "{results}");
            let reuse = &results["run"]["settings"]["net.ipv4.tcp_tw_reuse"];
            assert_eq!(reuse, "0", "{results}");
        }
        // No namespace of its own here (not Linux, or not root): the
        // profile was found, and only then refused.
        Some(3) => assert!(text.contains("cannot run with profile `mine`"), "{text}"),
        _ => panic!("{code:?}: {text}"),
    }

    let (code, text) = run("nosuch");
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains(&ours.display().to_string()), "{text}");
    let listed: Vec<&str> = text
        .lines()
        .find_map(|l| l.split_once("profiles: "))
        .unwrap_or_else(|| panic!("{text}"))
        .1
        .split(", ")
        .collect();
    // Ours, and the catalogue's too.
    let builtin = sockspec::trees::builtin().unwrap();
    let theirs = sockspec::sys::settings::load_profiles(&builtin.root).unwrap();
    let (name, profile) = theirs.iter().next().expect("the catalogue has profiles");
    for p in ["mine", name.as_str()] {
        assert!(listed.contains(&p), "{p} not in {listed:?}");
    }

    // One of the catalogue's names, with other sysctls.
    let (key, value) = profile.sysctls.iter().next().unwrap();
    std::fs::write(
        &ours,
        format!("[profile.{name}]\ntitle = \"x\"\nsysctls = {{ \"{key}\" = \"{value}0\" }}\n"),
    )
    .unwrap();
    let (code, text) = run(name);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains(&format!("profile `{name}` sets different sysctls in"))
            && text.contains(&format!("and in {}: rename one (yours", ours.display())),
        "{text}"
    );

    // No tree of the run has profiles.
    std::fs::remove_file(&ours).unwrap();
    let (code, text) = sockspec(&[
        "run".as_ref(),
        "--only-cases".as_ref(),
        "--cases".as_ref(),
        dir.path().as_os_str(),
        "--stack-profile".as_ref(),
        "mine".as_ref(),
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("no profile `mine`: no case tree of this run has a profiles.toml"),
        "{text}"
    );
}
