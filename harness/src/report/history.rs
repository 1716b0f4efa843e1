//! How outcomes changed across kernel releases: for runs of one OS on
//! several releases, the tests whose outcomes differ between releases, each
//! with its outcome per release (oldest first) and the window where it
//! changed (the last release with the old outcome .. the first with the new
//! one: where a bisection would start).

use std::fmt::Write as _;

use super::matrix::{Row, rows_of};
use crate::results::{Results, TestRecord, Verdict};
use crate::version::{cmp_versions, version_numbers};

/// The runs of a history, oldest release first, and the rows that changed.
pub struct History<'a> {
    /// The OS family every run of the history is of.
    pub os: &'a str,
    /// The runs in release order.
    pub runs: Vec<&'a Results>,
    /// Every test's row over `runs` (the same order).
    pub rows: Vec<Row<'a>>,
    /// Indexes into `rows` of the tests whose outcomes differ across releases.
    pub changed: Vec<usize>,
}

/// One change of a test between two neighbouring releases that ran it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change<'a> {
    /// Index (in [`History::runs`]) of the last run with the old outcomes.
    pub last: usize,
    /// Index of the first run with the new ones.
    pub first: usize,
    /// `(label, old, new)` per checked step that changed; `(verdict)` when
    /// the test has no checked steps.
    pub steps: Vec<(&'a str, &'a str, &'a str)>,
}

/// Whether the runs make a history: one OS, at least two kernel releases.
pub fn applies(runs: &[Results]) -> bool {
    let Some(first) = runs.first() else {
        return false;
    };
    runs.iter().all(|r| r.run.os == first.run.os)
        && runs.iter().any(|r| r.run.kernel != first.run.kernel)
}

/// `runs` in kernel-release order (numerically: 5.10 before 6.1 before
/// 6.12), ties by release text, then by their order given.
pub fn by_release(runs: &[Results]) -> Vec<&Results> {
    let mut out: Vec<&Results> = runs.iter().collect();
    out.sort_by(|a, b| {
        cmp_versions(
            &version_numbers(&a.run.kernel),
            &version_numbers(&b.run.kernel),
        )
        .then_with(|| a.run.kernel.cmp(&b.run.kernel))
    });
    out
}

/// A cell that says what the kernel did: a verdict from the kernel (pass or
/// fail), not a skip, an error or outcomes that varied.
fn observed(t: &TestRecord) -> bool {
    matches!(t.verdict, Verdict::Pass | Verdict::Fail) && t.problem.is_none()
}

impl<'a> History<'a> {
    /// The history of `runs` (in release order whatever their order), or
    /// `None` when they are not one OS on several releases.
    pub fn of(runs: &'a [Results]) -> Option<History<'a>> {
        if !applies(runs) {
            return None;
        }
        let sorted = by_release(runs);
        let rows = rows_of(&sorted);
        let changed = rows
            .iter()
            .enumerate()
            .filter(|(_, r)| !changes(r).is_empty())
            .map(|(i, _)| i)
            .collect();
        Some(History {
            os: &sorted[0].run.os,
            runs: sorted,
            rows,
            changed,
        })
    }

    /// The windows in which any listed test changed, each with how many.
    pub fn windows(&self) -> Vec<((usize, usize), usize)> {
        let mut out: Vec<((usize, usize), usize)> = Vec::new();
        for &i in &self.changed {
            for c in changes(&self.rows[i]) {
                match out.iter_mut().find(|(w, _)| *w == (c.last, c.first)) {
                    Some((_, n)) => *n += 1,
                    None => out.push(((c.last, c.first), 1)),
                }
            }
        }
        out.sort();
        out
    }

    /// `6.1.192 .. 6.12.117`: a window by the runs' releases.
    pub fn window_text(&self, last: usize, first: usize) -> String {
        format!(
            "{} .. {}",
            self.runs[last].run.kernel, self.runs[first].run.kernel
        )
    }
}

/// The changes of one row between neighbouring runs that observed it.
pub fn changes<'a>(row: &Row<'a>) -> Vec<Change<'a>> {
    let mut out = Vec::new();
    let mut prev: Option<(usize, &'a TestRecord)> = None;
    for (i, c) in row.cells.iter().enumerate() {
        let Some(t) = c.filter(|t| observed(t)) else {
            continue;
        };
        if let Some((p, old)) = prev
            && old.signature() != t.signature()
        {
            out.push(Change {
                last: p,
                first: i,
                steps: changed_steps(old, t),
            });
        }
        prev = Some((i, t));
    }
    out
}

fn changed_steps<'a>(old: &'a TestRecord, new: &'a TestRecord) -> Vec<(&'a str, &'a str, &'a str)> {
    let mut out = Vec::new();
    for s in &new.steps {
        let Some(label) = s.label.as_deref() else {
            continue;
        };
        let before = old.outcome(label).unwrap_or("absent");
        if before != s.outcome {
            out.push((label, before, s.outcome.as_str()));
        }
    }
    if out.is_empty() {
        out.push(("(verdict)", old.verdict.as_str(), new.verdict.as_str()));
    }
    out
}

/// The labels whose outcomes differ across the row's observed cells.
fn changing_labels<'a>(row: &Row<'a>) -> Vec<&'a str> {
    let mut out: Vec<&'a str> = Vec::new();
    for c in changes(row) {
        for (l, _, _) in c.steps {
            if !out.contains(&l) {
                out.push(l);
            }
        }
    }
    out
}

/// A cell's text: the outcomes of the labels that change, or the verdict.
pub fn cell_text(t: Option<&TestRecord>, labels: &[&str]) -> String {
    let Some(t) = t else { return "—".into() };
    if !observed(t) {
        return t.verdict.as_str().into();
    }
    let parts: Vec<String> = labels
        .iter()
        .filter(|l| **l != "(verdict)")
        .map(|l| format!("{l}={}", t.outcome(l).unwrap_or("absent")))
        .collect();
    let mut text = if parts.is_empty() {
        t.verdict.as_str().to_string()
    } else {
        parts.join(" ")
    };
    // Outcomes that are not what that kernel's expectations say.
    if t.verdict == Verdict::Fail && !parts.is_empty() {
        text.push_str(" (fail)");
    }
    text
}

fn esc(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The history as Markdown: the releases, the windows, and one row per test
/// whose outcomes differ (at most `max_rows`; the rest counted).
pub fn markdown(h: &History<'_>, max_rows: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## sockspec: outcomes across {} {} kernel releases\n",
        h.runs.len(),
        h.os
    );
    let kernels: Vec<String> = h
        .runs
        .iter()
        .map(|r| format!("`{}`", esc(&r.run.kernel)))
        .collect();
    let _ = writeln!(out, "Oldest first: {}.\n", kernels.join(", "));
    let _ = writeln!(
        out,
        "### Tests whose outcomes differ across kernels: {} of {}\n",
        h.changed.len(),
        h.rows.len()
    );
    if h.changed.is_empty() {
        let _ = writeln!(
            out,
            "None: every test that ran on two or more of these kernels did the same on each."
        );
        return out;
    }
    let _ = writeln!(
        out,
        "Each window is the last release with the old outcome .. the first with the new one \
         (where a bisection would start):\n"
    );
    for ((last, first), n) in h.windows() {
        let _ = writeln!(out, "- `{}`: {n} test(s)", esc(&h.window_text(last, first)));
    }
    let mut header = String::from("\n| test |");
    let mut rule = String::from("|---|");
    for r in &h.runs {
        header.push_str(&format!(" {} |", esc(&r.run.kernel)));
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header} changed in |\n{rule}---|");
    for &i in h.changed.iter().take(max_rows) {
        let row = &h.rows[i];
        let labels = changing_labels(row);
        let mut line = format!("| `{}` |", esc(row.name));
        for c in &row.cells {
            line.push_str(&format!(" `{}` |", esc(&cell_text(*c, &labels))));
        }
        let _ = writeln!(out, "{line} {} |", esc(&change_text(h, row)));
    }
    if h.changed.len() > max_rows {
        let _ = writeln!(
            out,
            "\n…and {} more test(s) whose outcomes differ: see the HTML report.",
            h.changed.len() - max_rows
        );
    }
    out
}

use super::html::esc as html_esc;

/// Where a row's outcomes changed, in words: each window and the steps that
/// changed in it (`6.1.192 .. 6.12.117 (bind_b: ok → EADDRINUSE); ...`).
fn change_text(h: &History<'_>, row: &Row<'_>) -> String {
    changes(row)
        .iter()
        .map(|c| {
            let steps: Vec<String> = c
                .steps
                .iter()
                .map(|(l, a, b)| format!("{l}: {a} → {b}"))
                .collect();
            format!("{} ({})", h.window_text(c.last, c.first), steps.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The history as an HTML section for the top of the page: every test
/// whose outcomes differ, each linking to its row in the matrix below.
pub fn html(h: &History<'_>) -> String {
    let mut s = format!(
        "<section id=\"history\"><h2>Tests whose outcomes differ across {} {} kernel releases: \
         {} of {}</h2><p class=\"legend\">Oldest release first. Each window is the last release \
         with the old outcome .. the first with the new one (where a bisection would start). \
         Every test, these included, is in the matrix below.</p>",
        h.runs.len(),
        html_esc(h.os),
        h.changed.len(),
        h.rows.len()
    );
    if h.changed.is_empty() {
        s.push_str("<p>None: every test that ran on two or more kernels did the same on each.</p></section>");
        return s;
    }
    s.push_str("<ul>");
    for ((last, first), n) in h.windows() {
        s.push_str(&format!(
            "<li><code>{}</code>: {n} test(s)</li>",
            html_esc(&h.window_text(last, first))
        ));
    }
    s.push_str("</ul><table class=\"history\"><thead><tr><th>test</th>");
    for r in &h.runs {
        s.push_str(&format!("<th>{}</th>", html_esc(&r.run.kernel)));
    }
    s.push_str("<th>changed in</th></tr></thead><tbody>");
    for &i in &h.changed {
        let row = &h.rows[i];
        let labels = changing_labels(row);
        s.push_str(&format!(
            "<tr><td class=\"name\"><a href=\"#filter={}\">{}</a></td>",
            html_esc(row.name),
            html_esc(row.name)
        ));
        for c in &row.cells {
            s.push_str(&format!(
                "<td class=\"cell\">{}</td>",
                html_esc(&cell_text(*c, &labels))
            ));
        }
        s.push_str(&format!("<td>{}</td></tr>", html_esc(&change_text(h, row))));
    }
    s.push_str("</tbody></table></section>");
    s
}
