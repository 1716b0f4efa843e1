//! The reporters, fed synthetic results (they test formatting, not kernels).

use std::collections::BTreeMap;

use sockspec::report;
use sockspec::results::{
    ExpectationRef, Mismatch, MismatchKind, Problem, Results, RunInfo, SCHEMA, StepRecord, Summary,
    TestRecord, Verdict,
};

fn run(label: &str, tests: usize, flip: usize) -> Results {
    let tests: Vec<TestRecord> = (0..tests)
        .map(|i| {
            let outcome = if flip > 0 && i % flip == 0 {
                "ok"
            } else {
                "EADDRINUSE"
            };
            let verdict = if outcome == "ok" {
                Verdict::Fail
            } else {
                Verdict::Pass
            };
            TestRecord {
                name: format!("topic{}::case{}::p={i}", i % 7, i % 31),
                case: format!("topic{}::case{}", i % 7, i % 31),
                topic: format!("topic{}", i % 7),
                title: "a test".into(),
                file: format!("cases/topic{}/case{}.toml", i % 7, i % 31),
                line: 7,
                params: BTreeMap::from([("p".to_string(), i.to_string())]),
                verdict,
                reason: None,
                problem: None,
                mismatches: if verdict == Verdict::Fail {
                    vec![Mismatch {
                        step: 3,
                        label: "bind_b".into(),
                        kind: MismatchKind::Differs,
                        what: "bind b 127.0.0.1:port(a)".into(),
                    }]
                } else {
                    vec![]
                },
                duration_ms: 0.4,
                attempts: 1,
                retries: vec![],
                steps: vec![StepRecord {
                    index: 3,
                    kind: "bind".into(),
                    sock: Some("b".into()),
                    label: Some("bind_b".into()),
                    outcome: outcome.into(),
                    raw: (outcome != "ok").then_some(98),
                    detail: None,
                    duration_ms: 0.01,
                    expected: Some("EADDRINUSE".into()),
                    expectation: Some(ExpectationRef {
                        file: "cases/expected/linux.toml".into(),
                        line: 10 + (i % 50),
                        source: "observed".into(),
                        provenance: "observed on 6.18.44".into(),
                        kernel: None,
                        settings: None,
                        why: Some("blessed".into()),
                        window: None,
                        cites: None,
                    }),
                }],
                recipe: None,
                variants: vec![],
            }
        })
        .collect();
    Results {
        schema: SCHEMA.into(),
        sources: Default::default(),
        run: RunInfo {
            os: "linux".into(),
            kernel: "6.18.44".into(),
            os_detail: String::new(),
            arch: "x86_64".into(),
            sockspec: "0.1.0".into(),
            started: "2026-11-22T00:00:00Z".into(),
            duration_ms: 1000.0,
            jobs: 2,
            repeat: 1,
            isolation: "netns".into(),
            privileged: true,
            label: Some(label.into()),
            profile: None,
            settings: BTreeMap::new(),
            implementation: None,
            interrupted: false,
        },
        summary: Summary::of(&tests),
        tests,
    }
}

#[test]
fn ten_runs_of_a_thousand_tests_make_a_page_under_two_megabytes() {
    let runs: Vec<Results> = (0..10).map(|i| run(&format!("run {i}"), 1000, 0)).collect();
    let page = report::html::page(&runs);
    assert!(page.len() < 2 << 20, "the page is {} bytes", page.len());
    assert!(page.contains("<script id=\"data\" type=\"application/json\">"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no external assets"
    );
}

#[test]
fn the_summary_lists_only_tests_that_differ() {
    let runs = [run("a", 100, 0), run("b", 100, 10)];
    let md = report::markdown::summary(&runs);
    assert!(md.contains("| a | linux | 6.18.44 |"), "{md}");
    assert!(
        md.contains("Tests that differ between runs or from their expectations: 10 of 100"),
        "{md}"
    );
    assert!(
        md.contains("**FAIL** **`bind_b=ok`** (bind_b expected EADDRINUSE)"),
        "{md}"
    );
    let same = report::markdown::summary(&[run("a", 100, 0), run("b", 100, 0)]);
    assert!(
        same.contains("None: every run did what its expectations say"),
        "{same}"
    );
}

#[test]
fn the_regression_report_names_what_changed() {
    let (mut old, mut new) = (run("old", 50, 0), run("new", 50, 25));
    // A second checked step that did the same in both runs stays out of the row.
    for r in [&mut old, &mut new] {
        let mut same = r.tests[0].steps[0].clone();
        same.label = Some("probe".into());
        r.tests[0].steps.push(same);
    }
    new.tests[0].steps[1].outcome = "EADDRINUSE".into();
    let (md, changed) = report::markdown::regression(&old, &new);
    assert_eq!(changed, 2);
    assert!(md.contains("| `topic0::case0::p=0` | `bind_b` | `EADDRINUSE` | `ok` | EADDRINUSE (observed on 6.18.44, linux.toml:10) |"), "{md}");
    assert!(!md.contains("`probe`"), "{md}");
    let (_, none) = report::markdown::regression(&run("old", 50, 0), &run("new", 50, 0));
    assert_eq!(none, 0);
}

#[test]
fn annotations_point_at_the_case_file() {
    let lines = report::annotations::lines(&run("ci", 20, 10));
    // Tests 0 and 10 fail, in two case files: one annotation each.
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(
        lines[0].starts_with(
            "::error file=cases/topic0/case0.toml,line=7,title=sockspec%3A 1 failing in cases/topic0/case0.toml::1 test result(s) did not pass"
        ),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains(
            "First: topic0::case0::p=0 fail on ci: step 4 `bind b 127.0.0.1:port(a)` (bind_b): expected EADDRINUSE, got ok"
        ),
        "{}",
        lines[0]
    );
}

#[test]
fn annotations_are_one_per_case_file_and_at_most_ten_per_step() {
    // Every test fails: 1000 tests in 217 case files (topic i%7, case i%31),
    // in two runs reported by one step.
    let runs = [run("a", 1000, 1), run("b", 1000, 1)];
    let lines = report::annotations::for_runs(&runs);
    assert_eq!(lines.len(), report::annotations::MAX_PER_STEP, "{lines:#?}");
    assert!(lines.iter().all(|l| l.starts_with("::error ")));
    // topic0/case0 holds tests 0, 217, 434, 651 and 868: 5 in each run.
    assert!(
        lines[0].contains("title=sockspec%3A 10 failing in cases/topic0/case0.toml::10 test result(s) did not pass in cases/topic0/case0.toml (a, b)"),
        "{}",
        lines[0]
    );
    assert!(lines[0].contains("%0AAlso: "), "{}", lines[0]);
    // The last one counts what was left out and says where to look.
    let last = lines.last().unwrap();
    assert!(!last.contains("file="), "{last}");
    assert!(
        last.contains("in 208 more case file(s) did not pass"),
        "{last}"
    );
    assert!(last.contains("results artifacts"), "{last}");
    // Few enough files: no overflow line.
    assert_eq!(report::annotations::for_runs(&[run("a", 9, 1)]).len(), 9);
}

#[test]
fn annotation_paths_are_repository_relative_from_cargo_test_and_sockspec_run() {
    let root = std::path::Path::new("/home/runner/work/sockspec/sockspec");
    // `sockspec run` from the repository root writes relative paths;
    // `cargo test` writes the crate's absolute `harness/../cases` path.
    let relative = run("run", 1, 1);
    let mut absolute = run("cargo test", 1, 1);
    absolute.tests[0].file = format!("{}/harness/../cases/topic0/case0.toml", root.display());
    for r in [relative, absolute] {
        let lines = report::annotations::for_runs_in(std::slice::from_ref(&r), root);
        assert!(
            lines[0].starts_with("::error file=cases/topic0/case0.toml,line=7,"),
            "{}",
            lines[0]
        );
    }
}

#[test]
fn summaries_stay_under_the_step_summary_limit_and_point_at_the_full_report() {
    // Ten runs of a thousand tests that all error, with long reasons and
    // labels: far more than 1 MiB if every row were listed.
    let runs: Vec<Results> = (0..10)
        .map(|i| {
            let mut r = run(&format!("run {i} {}", "x".repeat(300)), 1000, 1);
            for t in &mut r.tests {
                t.verdict = Verdict::Error;
                t.problem = Some(Problem::Setup {
                    step: 1,
                    msg: "y".repeat(4000),
                    at: None,
                    what: None,
                });
            }
            r
        })
        .collect();
    let md = report::markdown::summary(&runs);
    assert!(
        md.len() < report::markdown::MAX_BYTES,
        "the summary is {} bytes",
        md.len()
    );
    assert!(
        md.contains(report::markdown::FULL_REPORT),
        "no pointer to the full report"
    );
    assert!(md.contains("more test(s) not listed here"));

    let (old, mut new) = (run("old", 1000, 0), run("new", 1000, 1));
    for t in &mut new.tests {
        t.steps[0].label = Some("l".repeat(5000));
        t.steps[0].outcome = "z".repeat(5000);
    }
    let (md, changed) = report::markdown::regression(&old, &new);
    assert_eq!(changed, 1000);
    assert!(md.len() < report::markdown::MAX_BYTES, "{} bytes", md.len());
    assert!(md.contains(report::markdown::FULL_REPORT));
}

#[test]
fn junit_has_a_suite_per_topic_and_the_failures() {
    let xml = report::junit::report(&run("ci", 20, 10)).unwrap();
    assert!(xml.contains("<testsuite name=\"topic0\""), "{xml}");
    assert_eq!(xml.matches("<failure").count(), 2, "{xml}");
}

#[test]
fn results_round_trip_and_other_schemas_are_refused() {
    let r = run("x", 3, 0);
    let text = serde_json::to_string(&r).unwrap();
    let back = Results::parse(&text).unwrap();
    assert_eq!(back.tests.len(), 3);
    let other = text.replace(SCHEMA, "sockspec/results/v9");
    assert!(
        Results::parse(&other)
            .unwrap_err()
            .contains("schema `sockspec/results/v9`")
    );
}

#[test]
fn junit_words_failures_from_the_typed_results() {
    let xml = report::junit::report(&run("ci", 3, 2)).unwrap();
    insta::assert_snapshot!("junit_three_tests", xml);
}

/// Three kernels of one OS, oldest last on the command line: one test
/// changes on the middle one and back, one only on the newest.
fn kernel_run(kernel: &str, outcomes: [&str; 3]) -> Results {
    let mut r = run(kernel, 3, 0);
    r.run.label = None;
    r.run.kernel = kernel.into();
    for (t, o) in r.tests.iter_mut().zip(outcomes) {
        t.steps[0].outcome = o.into();
    }
    r
}

#[test]
fn history_lists_tests_that_changed_across_kernels_in_release_order() {
    let runs = [
        kernel_run("6.12.117", ["EADDRINUSE", "EADDRINUSE", "ok"]),
        kernel_run("5.10.262", ["EADDRINUSE", "EADDRINUSE", "EADDRINUSE"]),
        kernel_run("6.1.192", ["ok", "EADDRINUSE", "EADDRINUSE"]),
    ];
    assert!(report::history::applies(&runs));
    let h = report::history::History::of(&runs).unwrap();
    let kernels: Vec<&str> = h.runs.iter().map(|r| r.run.kernel.as_str()).collect();
    assert_eq!(kernels, ["5.10.262", "6.1.192", "6.12.117"]);
    let md = report::markdown::history_section(&h);
    insta::assert_snapshot!("history_three_kernels", md);
    let html = report::html::page(&runs);
    assert!(html.contains("<section id=\"history\">"), "{html}");
    assert!(html.find("id=\"history\"") < html.find("id=\"matrix\""));
    // One kernel, or two OSes: no history.
    assert!(!report::history::applies(&runs[..1]));
    let mut other = runs[1].clone();
    other.run.os = "freebsd".into();
    assert!(!report::history::applies(&[runs[0].clone(), other]));
}

/// Issue 16: runs of one kernel in several runtimes (`--agent`) are columns
/// side by side, each naming what ran its steps.
#[test]
fn runs_in_other_runtimes_are_columns_that_name_the_runtime() {
    let mut own = run("ci", 10, 0);
    own.run.implementation = Some("rust std (sockspec 0.1.0)".into());
    let mut node = run("ci", 10, 0);
    node.run.implementation = Some("node 20.20.2".into());
    assert_eq!(own.run.title(), "ci");
    assert_eq!(node.run.title(), "ci (node 20.20.2)");
    let page = report::html::page(&[own, node]);
    assert!(page.contains("\"title\":\"ci (node 20.20.2)\""), "{page}");
    assert!(page.contains("\"implementation\":\"node 20.20.2\""));
    assert!(page.contains("\"implementation\":\"rust std (sockspec 0.1.0)\""));
    assert!(page.contains("' · steps in ' + r.implementation"));
    let md = report::markdown::summary(&[run("ci", 3, 0), {
        let mut n = run("ci", 3, 0);
        n.run.implementation = Some("python 3.11.7".into());
        n
    }]);
    assert!(md.contains("ci (python 3.11.7)"), "{md}");
}

/// README's results JSON example is what sockspec writes: it reads as
/// results, and writing it back gives every key it shows.
#[test]
fn the_readme_results_example_is_results_json() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("```json\n{\n  \"schema\": \"sockspec/results/v2\"")
        .expect("README has the results example")
        + "```json\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let shown: serde_json::Value = serde_json::from_str(&readme[start..end]).unwrap();
    let read: sockspec::results::Results =
        serde_json::from_value(shown.clone()).unwrap_or_else(|e| panic!("{e}"));
    let written = serde_json::to_value(&read).unwrap();
    for part in ["run", "summary"] {
        for key in shown[part].as_object().unwrap().keys() {
            assert!(
                written[part].get(key).is_some(),
                "README's `{part}.{key}` is not a field sockspec writes"
            );
        }
    }
}
