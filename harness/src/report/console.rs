//! The plain-text summary `sockspec run` prints.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::results::{Results, TestRecord, Verdict};

/// One line per finished test that did not pass (with its reason, indented).
pub fn progress_line(rec: &TestRecord) -> Option<String> {
    if matches!(rec.verdict, Verdict::Pass | Verdict::Skip) {
        return None;
    }
    let mut s = format!("{:<12} {}", rec.verdict.as_str().to_uppercase(), rec.name);
    if let Some(r) = super::wording::why(rec) {
        for line in r.lines() {
            let _ = write!(s, "\n    {line}");
        }
    }
    Some(s)
}

/// Totals per topic, the skip reasons, and the run's totals.
pub fn summary(results: &Results) -> String {
    let mut by_topic: BTreeMap<&str, [usize; 5]> = BTreeMap::new();
    let mut skips: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &results.tests {
        let row = by_topic.entry(&t.topic).or_default();
        let i = match t.verdict {
            Verdict::Pass => 0,
            Verdict::Fail => 1,
            Verdict::Error => 2,
            Verdict::Intermittent => 3,
            Verdict::Skip => 4,
        };
        row[i] += 1;
        if t.verdict == Verdict::Skip {
            *skips
                .entry(t.reason.as_deref().unwrap_or("no reason"))
                .or_default() += 1;
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<14} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "topic", "pass", "fail", "error", "intmt", "skip"
    );
    for (topic, r) in &by_topic {
        let _ = writeln!(
            out,
            "{topic:<14} {:>6} {:>6} {:>6} {:>6} {:>6}",
            r[0], r[1], r[2], r[3], r[4]
        );
    }
    if !skips.is_empty() {
        let _ = writeln!(out, "\nskipped here:");
        for (reason, n) in &skips {
            let _ = writeln!(out, "  {n:>4}  {reason}");
        }
    }
    let s = &results.summary;
    let r = &results.run;
    let _ = writeln!(
        out,
        "\n{} tests on {} {} ({}, {} jobs, isolation {}): {} pass, {} fail, {} error, {} intermittent, {} skipped in {:.2} s",
        s.total,
        r.os,
        r.kernel,
        r.arch,
        r.jobs,
        r.isolation,
        s.pass,
        s.fail,
        s.error,
        s.intermittent,
        s.skip,
        r.duration_ms / 1000.0
    );
    if r.repeat > 1 {
        let _ = writeln!(out, "each test ran {} times", r.repeat);
    }
    if r.interrupted {
        let _ = writeln!(out, "interrupted: the tests not counted here did not run");
    }
    out
}
