//! Tests x runs: the shape every cross-run report shares.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;

use crate::Suite;
use crate::results::{CitedSource, ExpectationRef, Results, StepRecord, TestRecord, Verdict};
use crate::sources::Registry;

/// One test's row across runs.
pub struct Row<'a> {
    /// The test's full name.
    pub name: &'a str,
    /// The test's topic, which groups rows.
    pub topic: &'a str,
    /// The case's title, one line on what the test shows.
    pub title: &'a str,
    /// One cell per run; `None` when the run did not have the test.
    pub cells: Vec<Option<&'a TestRecord>>,
}

impl Row<'_> {
    /// Whether the row deserves attention: a run did not pass it (skips
    /// aside), or runs that ran it disagree about its outcomes.
    pub fn differs(&self) -> bool {
        let ran: Vec<&TestRecord> = self
            .cells
            .iter()
            .flatten()
            .copied()
            .filter(|r| r.verdict != Verdict::Skip)
            .collect();
        ran.iter().any(|r| r.verdict != Verdict::Pass)
            || ran.windows(2).any(|w| w[0].signature() != w[1].signature())
    }
}

impl<'a> Row<'a> {
    /// The checked steps that make the row differ: a run's outcome is not
    /// what its expectation says, or runs that ran the step disagree.
    pub fn differing_labels(&self) -> Vec<&'a str> {
        let ran: Vec<&'a TestRecord> = self
            .cells
            .iter()
            .flatten()
            .copied()
            .filter(|r| r.verdict != Verdict::Skip)
            .collect();
        let mut out: Vec<&'a str> = Vec::new();
        for r in &ran {
            for s in &r.steps {
                let Some(label) = s.label.as_deref() else {
                    continue;
                };
                if out.contains(&label) {
                    continue;
                }
                let mismatch =
                    s.outcome != "not_run" && s.expected.as_deref().is_some_and(|e| e != s.outcome);
                let disagree = ran
                    .iter()
                    .any(|o| o.outcome(label).is_some_and(|x| x != s.outcome));
                if mismatch || disagree {
                    out.push(label);
                }
            }
        }
        out
    }
}

/// Rows of every test any run has, grouped by topic, in name order.
pub fn rows(runs: &[Results]) -> Vec<Row<'_>> {
    rows_of(&runs.iter().collect::<Vec<_>>())
}

/// [`rows`] over borrowed runs (in the order given).
pub fn rows_of<'a>(runs: &[&'a Results]) -> Vec<Row<'a>> {
    let mut by_name: BTreeMap<(&str, &str), Row<'a>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        for t in &r.tests {
            let row = by_name
                .entry((t.topic.as_str(), t.name.as_str()))
                .or_insert_with(|| Row {
                    name: &t.name,
                    topic: &t.topic,
                    title: &t.title,
                    cells: vec![None; runs.len()],
                });
            row.cells[i] = Some(t);
        }
    }
    by_name.into_values().collect()
}

/// A short text for a cell: the checked outcomes, or the verdict when no
/// step produced one.
pub fn cell_text(t: &TestRecord) -> String {
    match t.verdict {
        Verdict::Skip => "skipped".into(),
        _ => t.signature(),
    }
}

/// A step's expected outcome and the entry it came from:
/// `EADDRINUSE (observed on 6.18.44, linux.toml:12)`; a documented entry's
/// cited keys become Markdown links to the sources
/// (`documented: [ms-reuseaddr](https://...) vendor-doc [D]`). `run` is the
/// results the step is in, which hold the sources.
pub fn expected_step(run: &Results, s: &StepRecord) -> Option<String> {
    let (exp, e) = (s.expected.as_ref()?, s.expectation.as_ref()?);
    Some(format!(
        "{exp} ({}{}, {}:{})",
        linked_provenance(run, e),
        condition(e),
        e.file.rsplit(['/', '\\']).next().unwrap_or(&e.file),
        e.line
    ))
}

/// `, with net.ipv4.tcp_tw_reuse=0` for an entry conditioned on settings.
fn condition(e: &crate::results::ExpectationRef) -> String {
    e.settings
        .as_ref()
        .map(|c| format!(", with {c}"))
        .unwrap_or_default()
}

/// The sources the entry `e` (of the results `run`) cites: as the run
/// recorded them, or, in a file written before runs recorded them, looked
/// up by key in the registry of the cases tree this binary reads
/// ([`Suite::default_root`]).
pub fn cited_sources<'a>(run: &'a Results, e: &ExpectationRef) -> Vec<Cow<'a, CitedSource>> {
    if let Some(ids) = &e.cites {
        return ids
            .iter()
            .filter_map(|id| run.sources.get(id))
            .map(Cow::Borrowed)
            .collect();
    }
    let Some(rest) = e.provenance.strip_prefix("documented: ") else {
        return Vec::new();
    };
    let keys = rest.rsplit_once(" [").map_or(rest, |(k, _)| k);
    let Some(reg) = registry() else {
        return Vec::new();
    };
    keys.split(", ")
        .filter_map(|k| reg.get(k.trim()))
        .map(|s| Cow::Owned(CitedSource::of(s)))
        .collect()
}

/// The registry [`cited_sources`] falls back on, loaded once.
fn registry() -> Option<&'static Registry> {
    static REGISTRY: OnceLock<Option<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| crate::sources::load(&Suite::default_root(), &mut Vec::new()))
        .as_ref()
}

/// `e`'s provenance with each cited key as a Markdown link and its kind.
fn linked_provenance(run: &Results, e: &ExpectationRef) -> String {
    let sources = cited_sources(run, e);
    if sources.is_empty() {
        return e.provenance.clone();
    }
    let links: Vec<String> = sources
        .iter()
        .map(|s| format!("[{}]({}) {}", s.key, s.link, s.kind))
        .collect();
    let confidence = e
        .provenance
        .rsplit_once(" [")
        .map(|(_, c)| format!(" [{c}"))
        .unwrap_or_default();
    format!("documented: {}{confidence}", links.join(", "))
}

/// Each checked step's expectation, for a tooltip or a detail line (`t` is
/// a test of the results `run`).
pub fn expectation_text(run: &Results, t: &TestRecord) -> String {
    let mut out = Vec::new();
    for s in &t.steps {
        let Some(label) = &s.label else { continue };
        match (&s.expected, &s.expectation) {
            (Some(exp), Some(e)) => {
                out.push(format!(
                    "{label}: expected {exp} ({}{}, {}:{})",
                    e.provenance,
                    condition(e),
                    e.file.rsplit(['/', '\\']).next().unwrap_or(&e.file),
                    e.line
                ));
                for src in cited_sources(run, e) {
                    out.push(format!("    {} [{}]: {}", src.key, src.kind, src.link));
                }
            }
            _ if s.outcome != "not_run" => out.push(format!("{label}: no expectation")),
            _ => {}
        }
    }
    if let Some(r) = super::wording::why(t) {
        out.push(r.lines().next().unwrap_or_default().to_string());
    }
    out.join("\n")
}
