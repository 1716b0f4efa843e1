//! JUnit XML for one run (quick-junit): a test suite per topic.

use std::collections::BTreeMap;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::results::{Results, Verdict};

/// One run's results as JUnit XML, a test suite per topic (`sockspec report --junit`).
pub fn report(results: &Results) -> Result<String, String> {
    let mut report = Report::new(format!("sockspec on {}", results.run.title()));
    let mut suites: BTreeMap<&str, TestSuite> = BTreeMap::new();
    for t in &results.tests {
        let status = match t.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::Skip => {
                let mut s = TestCaseStatus::skipped();
                if let Some(r) = &t.reason {
                    s.set_message(r.clone());
                }
                s
            }
            v => {
                let kind = if v == Verdict::Error {
                    NonSuccessKind::Error
                } else {
                    NonSuccessKind::Failure
                };
                let mut s = TestCaseStatus::non_success(kind);
                let why = super::wording::why(t).unwrap_or_default();
                // The first line is the message; the whole text the body.
                s.set_message(why.lines().next().unwrap_or(v.as_str()).to_string());
                s.set_description(why);
                s.set_type(v.as_str());
                s
            }
        };
        let mut case = TestCase::new(t.name.clone(), status);
        case.set_classname(t.case.clone());
        case.set_time(Duration::from_secs_f64(t.duration_ms.max(0.0) / 1000.0));
        suites
            .entry(t.topic.as_str())
            .or_insert_with(|| TestSuite::new(t.topic.clone()))
            .add_test_case(case);
    }
    report.add_test_suites(suites.into_values());
    report.to_string().map_err(|e| e.to_string())
}
