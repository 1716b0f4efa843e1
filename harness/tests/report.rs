//! The reporters, fed synthetic results (they test formatting, not kernels).

use std::collections::BTreeMap;

use sockspec::report;
use sockspec::results::{
    ExpectationRef, Results, RunInfo, SCHEMA, StepRecord, Summary, TestRecord, Verdict,
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
                reason: (verdict == Verdict::Fail)
                    .then(|| "step 4 `bind b`: expected EADDRINUSE, got ok".into()),
                problem: None,
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
                        why: Some("blessed".into()),
                    }),
                }],
                recipe: None,
                variants: vec![],
            }
        })
        .collect();
    Results {
        schema: SCHEMA.into(),
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
            settings: BTreeMap::new(),
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
        md.contains("**FAIL** `bind_b=ok` (bind_b expected EADDRINUSE)"),
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
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("::error file=cases/topic0/case0.toml,line=7,title=sockspec fail on ci%3A topic0%3A%3Acase0%3A%3Ap=0::step 4"), "{}", lines[0]);
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
