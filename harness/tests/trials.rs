//! How the `conformance` target turns tests into libtest trials: a need only
//! the machine can answer ignores the trial with its reason, and a test that
//! turns out unable to run while running is ignored, never failed or passed.

mod trial;

use libtest_mimic::Completion;
use sockspec::model::Need;
use sockspec::results::Verdict;
use sockspec::{Platform, Suite};

const OTHER_USER: &str = r#"title = "an actor as another user"
source = "everywhere"
steps = [
  { do = "spawn", actor = "x", user = "nobody" },
  { do = "socket", name = "a", type = "tcp", family = "v4", actor = "x" },
]
"#;

fn suite() -> (tempfile::TempDir, Suite) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    std::fs::write(dir.path().join("t/other.toml"), OTHER_USER).unwrap();
    std::fs::create_dir_all(dir.path().join("expected")).unwrap();
    let os = Platform::current().os;
    std::fs::write(
        dir.path().join(format!("expected/{os}.toml")),
        format!("os = \"{os}\"\n"),
    )
    .unwrap();
    let s = Suite::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    (dir, s)
}

#[test]
fn a_need_known_only_at_run_time_ignores_the_trial_with_its_reason() {
    let (_d, s) = suite();
    let test = s.test("t::other").unwrap();
    assert!(test.needs.contains(&Need::OtherUser));
    // Privileged, as GitHub's Windows runners are: `Root` is met.
    let mut platform = Platform::current();
    platform.privileged = true;
    let none = |_: &Need| None;
    assert_eq!(trial::ignore_reason(&s, test, &platform, &none), None);
    let no_other_user = |n: &Need| (*n == Need::OtherUser).then(|| "no other user here".into());
    assert_eq!(
        trial::ignore_reason(&s, test, &platform, &no_other_user).as_deref(),
        Some("no other user here")
    );
    // What this backend says: another user is a need it cannot meet exactly
    // where the backend has no way to run an actor as one (Windows).
    assert_eq!(
        sockspec::sys::unmet_need(&Need::OtherUser).is_some(),
        !sockspec::sys::OTHER_USER
    );
}

#[test]
fn unavailable_while_running_is_ignored_never_failed_or_passed() {
    let (_d, s) = suite();
    let test = s.test("t::other").unwrap();
    let rec = sockspec::judge::skipped(test, "127.0.0.2 is not an address of this machine".into());
    assert_eq!(rec.verdict, Verdict::Skip);
    match trial::completion(&rec, false) {
        Ok(Completion::Ignored { reason: Some(r) }) => {
            assert!(r.contains("127.0.0.2 is not an address"), "{r}")
        }
        Ok(Completion::Ignored { reason: None }) => panic!("ignored without a reason"),
        Ok(Completion::Completed) => panic!("a test that could not run passed"),
        Err(e) => panic!("a test that could not run failed: {e:?}"),
    }
    // Forced to run with --ignored: it fails with the reason, never passes.
    let forced = trial::completion(&rec, true);
    assert!(format!("{:?}", forced.err().expect("fails when forced")).contains("127.0.0.2"),);
    let mut pass = rec.clone();
    pass.verdict = Verdict::Pass;
    assert!(matches!(
        trial::completion(&pass, false),
        Ok(Completion::Completed)
    ));
    let mut fail = rec;
    fail.verdict = Verdict::Fail;
    assert!(trial::completion(&fail, false).is_err());
}
