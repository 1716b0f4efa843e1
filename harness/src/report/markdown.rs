//! Markdown for a GitHub step summary, and the regression report between two runs.

use std::fmt::Write as _;

use super::matrix::{Row, rows};
use crate::results::{Results, TestRecord, Verdict};

/// Rows beyond this many are counted, not listed.
const MAX_ROWS: usize = 300;

/// GitHub refuses a step summary over 1 MiB (the whole of it, not the
/// excess): <https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands#step-isolation-and-limits>.
/// Every summary here stays under this many bytes, room left for what a job
/// appends around it.
pub const MAX_BYTES: usize = 1024 * 1024 - 64 * 1024;

/// Room kept for the closing note when rows are cut.
const NOTE_ROOM: usize = 1024;

/// A cell's text is cut at this many characters.
const MAX_CELL: usize = 400;

/// Where the rows a summary leaves out are.
pub const FULL_REPORT: &str = "the full report: the workflow run's `sockspec-report` artifact \
     (HTML) and `results-*` artifacts (JSON), which `sockspec report --html FILE RESULTS.json...` \
     renders";

fn esc(s: &str) -> String {
    let s = s.replace('|', "\\|").replace('\n', " ");
    match s.char_indices().nth(MAX_CELL) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// Appends table rows while the text stays under [`MAX_BYTES`]; returns how
/// many were left out.
fn push_rows(out: &mut String, rows: impl ExactSizeIterator<Item = String>) -> usize {
    let total = rows.len();
    let mut written = 0;
    for line in rows.take(MAX_ROWS) {
        if out.len() + line.len() + 1 + NOTE_ROOM > MAX_BYTES {
            break;
        }
        out.push_str(&line);
        out.push('\n');
        written += 1;
    }
    total - written
}

fn left_out_note(out: &mut String, n: usize, what: &str) {
    if n > 0 {
        let _ = writeln!(
            out,
            "\n…and {n} more {what} not listed here (a step summary holds at most 1 MiB, and this \
             one lists {MAX_ROWS} rows at most): see {FULL_REPORT}."
        );
    }
}

/// The checked outcomes, each as code, the ones in `differing` in bold.
fn outcomes(t: &TestRecord, differing: &[&str]) -> String {
    let parts: Vec<String> = t
        .steps
        .iter()
        .filter_map(|s| {
            let l = s.label.as_deref()?;
            let code = format!("`{}`", esc(&format!("{l}={}", s.outcome)));
            Some(if differing.contains(&l) {
                format!("**{code}**")
            } else {
                code
            })
        })
        .collect();
    if parts.is_empty() {
        format!("`{}`", t.verdict.as_str())
    } else {
        parts.join(" ")
    }
}

/// A cell: the verdict, the outcomes (those that differ in bold), and for a
/// mismatch what was expected.
fn cell(t: Option<&TestRecord>, differing: &[&str]) -> String {
    let Some(t) = t else { return "—".into() };
    let mism: Vec<String> = t
        .steps
        .iter()
        .filter(|s| s.label.is_some() && s.outcome != "not_run")
        .filter(|s| s.expected.as_deref() != Some(s.outcome.as_str()))
        .map(|s| match &s.expected {
            Some(e) => format!("{} expected {e}", s.label.as_deref().unwrap_or("")),
            None => format!("{} unexpected", s.label.as_deref().unwrap_or("")),
        })
        .collect();
    let v = match t.verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "**FAIL**",
        Verdict::Error => "**ERROR**",
        Verdict::Intermittent => "**INTERMITTENT**",
        Verdict::Skip => return "skip".into(),
    };
    let mut s = format!("{v} {}", outcomes(t, differing));
    if t.verdict == Verdict::Error || (t.verdict == Verdict::Fail && mism.is_empty()) {
        if let Some(r) = super::wording::why(t) {
            s.push_str(&format!(" — {}", esc(r.lines().next().unwrap_or(""))));
        }
    } else if !mism.is_empty() && t.verdict != Verdict::Pass {
        s.push_str(&format!(" ({})", esc(&mism.join("; "))));
    }
    s
}

/// Totals per run, then only the tests that differ between runs or from
/// their expectations.
pub fn summary(runs: &[Results]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## sockspec: {} run(s)\n", runs.len());
    let _ = writeln!(
        out,
        "| run | os | kernel | arch | isolation | tests | pass | fail | error | intermittent | skip | wall |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in runs {
        let s = &r.summary;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |",
            esc(&r.run.title()),
            r.run.os,
            esc(&r.run.kernel),
            r.run.arch,
            r.run.isolation,
            s.total,
            s.pass,
            s.fail,
            s.error,
            s.intermittent,
            s.skip,
            r.run.duration_ms / 1000.0
        );
    }
    let all = rows(runs);
    let differing: Vec<&Row<'_>> = all.iter().filter(|r| r.differs()).collect();
    let _ = writeln!(
        out,
        "\n### Tests that differ between runs or from their expectations: {} of {}\n",
        differing.len(),
        all.len()
    );
    if !differing.is_empty() {
        let _ = writeln!(
            out,
            "Only these rows are listed; in each cell the step that differs is in **bold**.\n"
        );
    }
    if differing.is_empty() {
        let _ = writeln!(
            out,
            "None: every run did what its expectations say, and the runs agree."
        );
        return out;
    }
    let mut header = String::from("| test |");
    let mut rule = String::from("|---|");
    for r in runs {
        header.push_str(&format!(" {} |", esc(&r.run.title())));
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    let lines = differing.iter().map(|row| {
        let mut line = format!("| `{}` |", esc(row.name));
        let differing = row.differing_labels();
        for c in &row.cells {
            line.push_str(&format!(" {} |", cell(*c, &differing)));
        }
        line
    });
    let left_out = push_rows(&mut out, lines);
    left_out_note(&mut out, left_out, "test(s)");
    out
}

/// The claims section: each claim a case predicts, judged by each run's
/// observed outcomes (`sockspec claims` judges them by the expectations).
pub fn claims_section(claims: &[crate::claims::RunVerdicts], runs: &[Results]) -> String {
    let mut out = String::new();
    if claims.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\n### Claims, judged by what the runs observed\n\nPer run: **holds**, \
         **contradicted**, **mixed** or `unknown` over the claim's tests that ran \
         (counts are tests); — where none ran.\n"
    );
    let mut header = String::from("| claim | says |");
    let mut rule = String::from("|---|---|");
    for r in runs {
        header.push_str(&format!(" {} |", esc(&r.run.title())));
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{header}\n{rule}");
    for c in claims {
        let mut line = format!("| {} | {} |", esc(&c.id), esc(&c.says));
        for v in &c.per_run {
            let cell = match v {
                None => "—".to_string(),
                Some(v) if v.total() == 0 => "—".to_string(),
                Some(v) if v.verdict() == crate::claims::Verdict::Unknown => v.cell(),
                Some(v) => format!("**{}**", v.cell()),
            };
            line.push_str(&format!(" {cell} |"));
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

/// Tests whose outcomes changed from `old` to `new` (skips aside), with
/// both outcomes and the new run's expectation. Returns the report and the
/// number of changed tests.
pub fn regression(old: &Results, new: &Results) -> (String, usize) {
    let runs = [old.clone(), new.clone()];
    let all = rows(&runs);
    let mut changed = Vec::new();
    let mut only_old = 0;
    let mut only_new = 0;
    for row in &all {
        match (row.cells[0], row.cells[1]) {
            (Some(a), Some(b))
                if a.verdict != Verdict::Skip
                    && b.verdict != Verdict::Skip
                    && a.signature() != b.signature() =>
            {
                changed.push((row.name, a, b));
            }
            (Some(_), None) => only_old += 1,
            (None, Some(_)) => only_new += 1,
            _ => {}
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Regression report: {} → {}\n",
        esc(&old.run.title()),
        esc(&new.run.title()),
    );
    let _ = writeln!(
        out,
        "{} test(s) changed outcome; {} only in the old run, {} only in the new one.\n",
        changed.len(),
        only_old,
        only_new
    );
    if !changed.is_empty() {
        let _ = writeln!(
            out,
            "| test | step | old | new | expectation (new run) |\n|---|---|---|---|---|"
        );
        let lines = changed.iter().map(|(name, a, b)| {
            let steps = changed_steps(new, a, b);
            let cells = |f: &dyn Fn(&Change<'_>) -> String| {
                steps.iter().map(f).collect::<Vec<_>>().join("<br>")
            };
            format!(
                "| `{}` | {} | {} | {} | {} |",
                esc(name),
                cells(&|c| format!("`{}`", esc(c.label))),
                cells(&|c| format!("`{}`", esc(c.old))),
                cells(&|c| format!("`{}`", esc(c.new))),
                cells(&|c| esc(&c.expectation)),
            )
        });
        let left_out = push_rows(&mut out, lines);
        left_out_note(&mut out, left_out, "changed test(s)");
    }
    (out, changed.len())
}

/// One checked step whose outcome differs between two runs of a test.
struct Change<'a> {
    label: &'a str,
    old: &'a str,
    new: &'a str,
    /// What the new run expected of it, and from which entry.
    expectation: String,
}

/// The checked steps (matched by label) whose outcomes differ; a test with
/// no checked steps compares its verdicts. `run` holds `new`.
fn changed_steps<'a>(run: &Results, old: &'a TestRecord, new: &'a TestRecord) -> Vec<Change<'a>> {
    let mut out = Vec::new();
    for s in &new.steps {
        let Some(label) = s.label.as_deref() else {
            continue;
        };
        let before = old
            .steps
            .iter()
            .find(|o| o.label.as_deref() == Some(label))
            .map_or("absent", |o| o.outcome.as_str());
        if before == s.outcome {
            continue;
        }
        let expectation = super::matrix::expected_step(run, s).unwrap_or_else(|| "none".into());
        out.push(Change {
            label,
            old: before,
            new: &s.outcome,
            expectation,
        });
    }
    if out.is_empty() {
        out.push(Change {
            label: "(verdict)",
            old: old.verdict.as_str(),
            new: new.verdict.as_str(),
            expectation: super::wording::why(new)
                .as_deref()
                .and_then(|r| r.lines().next())
                .unwrap_or("")
                .to_string(),
        });
    }
    out
}

/// The history of runs of one OS on several kernel releases (see
/// [`super::history`]), as the summary's first section: within its rows
/// and bytes.
pub fn history_section(h: &super::history::History<'_>) -> String {
    let text = super::history::markdown(h, MAX_ROWS);
    if text.len() + NOTE_ROOM <= MAX_BYTES / 2 {
        return text;
    }
    // Half the summary at most: the matrix section follows it.
    let mut cut = text[..MAX_BYTES / 2].rfind('\n').unwrap_or(0);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}\n…the rest of the history is left out here (a step summary holds at most 1 MiB): see {FULL_REPORT}.\n",
        &text[..cut]
    )
}
