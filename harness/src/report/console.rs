//! The plain-text summary `sockspec run` prints, in colour when asked
//! ([`Colour`]), and the progress line of a long run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::results::{Results, TestRecord, Verdict};

/// Whether console text carries ANSI colours.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Colour(pub bool);

impl Colour {
    /// `auto`: colour when `is_terminal` and `NO_COLOR` is unset or empty
    /// (<https://no-color.org>); `always` / `never` decide by themselves.
    pub fn choose(choice: &str, is_terminal: bool, no_color: Option<&str>) -> Colour {
        match choice {
            "always" => Colour(true),
            "never" => Colour(false),
            _ => Colour(is_terminal && no_color.is_none_or(str::is_empty)),
        }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// A verdict's word, coloured by what it means.
    pub fn verdict(self, v: Verdict, text: &str) -> String {
        let code = match v {
            Verdict::Pass => "32",
            Verdict::Fail => "1;31",
            Verdict::Error => "1;35",
            Verdict::Intermittent => "1;33",
            Verdict::Skip => "2",
        };
        self.paint(code, text)
    }

    /// A count that is bad when not zero.
    fn count(self, v: Verdict, n: usize, width: usize) -> String {
        let text = format!("{n:>width$}");
        if n == 0 || v == Verdict::Skip {
            text
        } else {
            self.verdict(v, &text)
        }
    }
}

/// One line per finished test that did not pass (with its reason, indented).
pub fn progress_line(rec: &TestRecord) -> Option<String> {
    progress_line_in(rec, Colour(false))
}

/// [`progress_line`] with colour.
pub fn progress_line_in(rec: &TestRecord, c: Colour) -> Option<String> {
    if matches!(rec.verdict, Verdict::Pass | Verdict::Skip) {
        return None;
    }
    let word = format!("{:<12}", rec.verdict.as_str().to_uppercase());
    let mut s = format!("{} {}", c.verdict(rec.verdict, &word), rec.name);
    if let Some(r) = super::wording::why(rec) {
        for line in r.lines() {
            let _ = write!(s, "\n    {line}");
        }
    }
    Some(s)
}

/// The line a long run keeps rewriting (on a terminal): how far it is.
pub fn running_line(done: usize, total: usize, repeat: u32, not_passed: usize) -> String {
    let mut s = format!("running: {done}/{total} tests");
    if repeat > 1 {
        let _ = write!(s, ", each {repeat} times");
    }
    if not_passed > 0 {
        let _ = write!(s, ", {not_passed} not passed");
    }
    s
}

/// How many times the tests that ran actually ran (repeats included; an
/// interrupted run may have fewer than tests x repeat).
pub fn runs_made(results: &Results) -> u64 {
    results
        .tests
        .iter()
        .filter(|t| t.verdict != Verdict::Skip)
        .map(|t| {
            if t.variants.is_empty() {
                1
            } else {
                t.variants.iter().map(|v| u64::from(v.count)).sum()
            }
        })
        .sum()
}

/// Totals per topic, the skip reasons, and the run's totals.
pub fn summary(results: &Results) -> String {
    summary_in(results, Colour(false))
}

/// [`summary`] with colour.
pub fn summary_in(results: &Results, c: Colour) -> String {
    const COLS: [Verdict; 5] = [
        Verdict::Pass,
        Verdict::Fail,
        Verdict::Error,
        Verdict::Intermittent,
        Verdict::Skip,
    ];
    let mut by_topic: BTreeMap<&str, [usize; 5]> = BTreeMap::new();
    let mut skips: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &results.tests {
        let row = by_topic.entry(&t.topic).or_default();
        let i = COLS.iter().position(|v| *v == t.verdict).unwrap_or(4);
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
        let cells: Vec<String> = COLS
            .iter()
            .zip(r)
            .map(|(v, n)| {
                if *v == Verdict::Pass {
                    format!("{n:>6}")
                } else {
                    c.count(*v, *n, 6)
                }
            })
            .collect();
        let _ = writeln!(out, "{topic:<14} {}", cells.join(" "));
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
        c.count(Verdict::Fail, s.fail, 0),
        c.count(Verdict::Error, s.error, 0),
        c.count(Verdict::Intermittent, s.intermittent, 0),
        s.skip,
        r.duration_ms / 1000.0
    );
    if r.repeat > 1 {
        let ran = s.total - s.skip;
        let runs = runs_made(results);
        // An interrupted run did not repeat each test as often as asked.
        let _ = if r.interrupted {
            writeln!(
                out,
                "repeats: interrupted: {runs} runs of {ran} tests (of {} repeats asked)",
                r.repeat
            )
        } else {
            writeln!(
                out,
                "repeats: each test ran {} times: {runs} runs of {ran} tests",
                r.repeat
            )
        };
    }
    if r.interrupted {
        let _ = writeln!(out, "interrupted: the tests not counted here did not run");
    }
    out
}
