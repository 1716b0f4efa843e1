//! Per-OS expectation files (`cases/expected/<os>.toml`): what each checked
//! step should do on that OS, and where that knowledge comes from.
//!
//! Resolution, for one test and one check label: among the file's entries for
//! the test's case whose `where` selects the test, whose `kernel` range (if
//! any) holds the running release, and which give an outcome for the label,
//! `observed` entries beat `documented` ones; then the more specific entry
//! wins, the one that selects fewer of the case's tests; then one limited to a
//! kernel range. Equal candidates that disagree are an input error.
//!
//! No outcome is assumed inside a window where observations disagree: for a
//! release between the newest one observed with one outcome and the oldest
//! one observed with another (the releases are the `seen_on` of the observed
//! entries that apply to the test there), observed entries say nothing. Only
//! a documented entry whose `kernel` range holds the release (a cited fixing
//! commit and the releases it reached) gives an outcome there; otherwise the
//! expectation is `unknown`, and [`Applied::window`] names the window.
//!
//! An entry may also hold only under stack settings (`settings = {
//! "net.ipv4.tcp_tw_reuse" = "0" }`): it applies to a run whose results
//! header records those values, and is narrower than any entry without a
//! condition (it beats them whatever their `where`, within the same source).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::{Spanned, Value};

use crate::Map;
use crate::error::{InputError, LineIndex};
use crate::load::{EXPECTED_DIR, selector_labels, toml_error};
use crate::model::{Case, Location, OsFamily, Step, Test};
use crate::outcome::Outcome;
use crate::sources::{Registry, Source};
use crate::version::{VersionRange, cmp_versions, version_numbers};

/// How an expectation is known: a run, or a document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// Blessed from real runs on these releases; `seen_with`: the runtimes
    /// other than sockspec's own whose helpers ran those steps
    /// (`sockspec run --agent`: `node 20.20.2`), empty for sockspec's own.
    Observed {
        /// The releases it was observed on (`6.1.192`).
        seen_on: Vec<String>,
        /// Runtimes other than sockspec's own that showed it.
        seen_with: Vec<String>,
    },
    /// From a document: `cite` names it. With a sources registry (the
    /// tree's `sources.toml`), `keys` are the registry keys cited, `cite` is
    /// them joined by ", ", and `sources` are the sources they name; without
    /// one, `cite` is free text.
    Documented {
        /// The source, as cited (registry keys joined by ", ").
        cite: String,
        /// The keys cited, as written.
        keys: Vec<String>,
        /// The sources of the entry's own tree's registry that `keys` name:
        /// in a suite of several trees, two registries may use one key.
        sources: Vec<Arc<Source>>,
        /// How sure the document is: D, S, E or T (semantics.md's tags).
        confidence: Option<String>,
    },
}

impl Provenance {
    /// `observed` or `documented`, as `source` says it.
    pub fn label(&self) -> &'static str {
        match self {
            Provenance::Observed { .. } => "observed",
            Provenance::Documented { .. } => "documented",
        }
    }

    /// One line for reports: `observed on 6.1.192, 6.12.74` or `documented: key [D]`.
    pub fn summary(&self) -> String {
        match self {
            Provenance::Observed { seen_on, seen_with } if seen_with.is_empty() => {
                format!("observed on {}", seen_on.join(", "))
            }
            Provenance::Observed { seen_on, seen_with } => format!(
                "observed on {} with {}",
                seen_on.join(", "),
                seen_with.join(", ")
            ),
            Provenance::Documented {
                cite, confidence, ..
            } => match confidence {
                Some(c) => format!("documented: {cite} [{c}]"),
                None => format!("documented: {cite}"),
            },
        }
    }
}

/// One `[[expect]]` entry: outcomes of checked steps for the tests it selects.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Where the entry starts in its file.
    pub at: Location,
    /// The case id it is for.
    pub case: String,
    /// Parameter → labels it selects.
    pub select: Vec<(String, Vec<String>)>,
    /// The releases it applies to (`kernel = ">=6.1, <6.2"`); all when absent.
    pub kernel: Option<VersionRange>,
    /// Stack settings (key, value) the run must have for this entry to apply.
    pub settings: Vec<(String, String)>,
    /// Checked step label → expected outcome.
    pub outcomes: Vec<(String, Outcome)>,
    /// Labels of observed outcomes set aside because the tests the entry
    /// selects no longer check that step (the case changed since the run):
    /// only in a load that asks for it ([`crate::Scope::set_aside_stale`]);
    /// empty otherwise.
    pub stale: Vec<String>,
    /// How the outcomes are known.
    pub provenance: Provenance,
    /// Why: the reasoning or the run it came from.
    pub why: Option<String>,
    /// How many of the case's tests `select` picks (its specificity).
    pub selected: usize,
}

impl Entry {
    /// Whether `where` picks this test (of this entry's case).
    pub fn selects(&self, test: &Test) -> bool {
        self.case == test.case.id && self.selects_params(test)
    }

    /// Whether `where` picks this test, for a test known to be of this
    /// entry's case.
    fn selects_params(&self, test: &Test) -> bool {
        self.select
            .iter()
            .all(|(k, labels)| test.param(k).is_some_and(|v| labels.iter().any(|l| l == v)))
    }

    /// The outcome this entry gives the checked step `label`, if any.
    pub fn outcome(&self, label: &str) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|(l, _)| l == label)
            .map(|(_, o)| o)
    }

    /// Higher ranks win: observed over documented, then conditioned on
    /// settings over not, then fewer tests selected, then a kernel range.
    pub fn rank(&self) -> (bool, bool, std::cmp::Reverse<usize>, bool) {
        (
            matches!(self.provenance, Provenance::Observed { .. }),
            !self.settings.is_empty(),
            std::cmp::Reverse(self.selected),
            self.kernel.is_some(),
        )
    }

    /// The settings condition in one line (`net.ipv4.tcp_tw_reuse=0`), if any.
    pub fn condition(&self) -> Option<String> {
        (!self.settings.is_empty()).then(|| {
            self.settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }

    /// Whether a run with these settings meets the entry's condition; with
    /// no settings known (`explain`), only an unconditioned entry applies.
    pub fn holds_under(&self, settings: Option<&BTreeMap<String, String>>) -> bool {
        self.settings.is_empty()
            || settings.is_some_and(|s| crate::sys::settings::meets(s, &self.settings))
    }
}

/// One OS's file.
#[derive(Debug)]
pub struct ExpectFile {
    /// The OS family the file is for (its name).
    pub os: OsFamily,
    /// Where it was read from; in a suite of several trees, the first
    /// tree's file for this OS (each entry's own file is [`Entry::at`]).
    pub path: Arc<PathBuf>,
    /// Its entries, in file order.
    pub entries: Vec<Entry>,
    by_case: Map<String, Vec<usize>>,
}

/// The expectation that applies to one step.
#[derive(Clone, Copy, Debug)]
pub struct Applied<'a> {
    /// The entry that gives it.
    pub entry: &'a Entry,
    /// The outcome it gives.
    pub outcome: &'a Outcome,
    /// The release lies in a window where observations disagree: `entry` is
    /// then the documented entry that covers it, or the observed entry that
    /// would have applied, with `outcome` `unknown`.
    pub window: Option<Window<'a>>,
}

/// Two neighbouring observations of one step that disagree, with nothing
/// observed between them: the range a bisection would start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window<'a> {
    /// The newest release observed with the old outcome (as `seen_on` has it).
    pub last: &'a str,
    /// What was observed on `last`.
    pub last_outcome: &'a Outcome,
    /// The oldest release observed with the new outcome.
    pub first: &'a str,
    /// What was observed on `first`.
    pub first_outcome: &'a Outcome,
}

impl Window<'_> {
    /// `6.1.192 (6.1.0-56-cloud-amd64) (ok) .. 6.12.117 (EADDRINUSE)`.
    pub fn text(&self) -> String {
        format!(
            "{} ({}) .. {} ({})",
            self.last, self.last_outcome, self.first, self.first_outcome
        )
    }

    /// Whether `release` lies strictly between the two observations.
    pub fn holds(&self, release: &str) -> bool {
        let v = version_numbers(release);
        cmp_versions(&version_numbers(self.last), &v).is_lt()
            && cmp_versions(&v, &version_numbers(self.first)).is_lt()
    }
}

/// One test's entries in a file: those of its case that select it, under
/// the run's settings, in file order. Found once per test (a scan of the
/// case's entries), then asked about each checked step.
#[derive(Clone, Debug)]
pub struct TestEntries<'a>(Vec<&'a Entry>);

/// One case's entries that apply without a release or settings, best
/// first, each with the tests its `where` picks
/// ([`ExpectFile::case_entries`]).
pub(crate) struct CaseEntries<'a> {
    entries: Vec<&'a Entry>,
    picks: Vec<Bits>,
}

impl<'a> CaseEntries<'a> {
    /// The entries of the test at index `k`, best first.
    pub(crate) fn of_test(&self, k: usize) -> BestFirst<'a> {
        let picked = self.entries.iter().zip(&self.picks);
        BestFirst(picked.filter(|(_, p)| p.has(k)).map(|(e, _)| *e).collect())
    }
}

/// One test's entries that apply without a release or settings, best first
/// ([`CaseEntries::of_test`]).
pub(crate) struct BestFirst<'a>(Vec<&'a Entry>);

impl<'a> BestFirst<'a> {
    /// What [`ExpectFile::resolve`] gives `label` without a release: the
    /// first entry that gives it.
    pub(crate) fn resolve(&self, label: &str) -> Option<Applied<'a>> {
        self.0.iter().find_map(|e| {
            e.outcome(label).map(|outcome| Applied {
                entry: e,
                outcome,
                window: None,
            })
        })
    }
}

impl<'a> TestEntries<'a> {
    /// The expectation for `label`: the best of [`candidates`](Self::candidates)
    /// on `release`; with no release, the best entry without a kernel range.
    pub fn resolve(&self, label: &str, release: Option<&str>) -> Option<Applied<'a>> {
        match release {
            Some(_) => self.candidates(label, release).into_iter().next(),
            None => rank_among(self.0.iter().copied(), label, None)
                .into_iter()
                .next(),
        }
    }

    /// The entries that give `label` where `release` is in their kernel
    /// range, best first, windows aside (the precedence of the module's notes).
    pub fn ranked(&self, label: &str, release: Option<&str>) -> Vec<Applied<'a>> {
        rank_among(self.0.iter().copied(), label, release)
    }

    /// Every entry that gives `label`, best first; inside a [`Window`] only
    /// documented entries whose kernel range holds the release, or else
    /// `unknown` (see the module's notes).
    pub fn candidates(&self, label: &str, release: Option<&str>) -> Vec<Applied<'a>> {
        let out = self.ranked(label, release);
        let Some(rel) = release else { return out };
        let Some(window) = self.window(label, rel) else {
            return out;
        };
        let cited: Vec<Applied<'a>> = out
            .iter()
            .filter(|a| {
                matches!(a.entry.provenance, Provenance::Documented { .. })
                    && a.entry.kernel.is_some()
            })
            .map(|a| Applied {
                window: Some(window),
                ..*a
            })
            .collect();
        if !cited.is_empty() {
            return cited;
        }
        out.first()
            .map(|a| Applied {
                entry: a.entry,
                outcome: &UNKNOWN,
                window: Some(window),
            })
            .into_iter()
            .collect()
    }

    /// The window of disagreeing observations `release` lies in, if any.
    /// The observations are the releases in `seen_on` of the observed
    /// entries, each counted with the outcome of the entry that applies on
    /// that release (an entry another one overrides there did not observe
    /// the test).
    pub fn window(&self, label: &str, release: &str) -> Option<Window<'a>> {
        self.windows(label).into_iter().find(|w| w.holds(release))
    }

    /// Every window where neighbouring observations of `label` disagree,
    /// oldest first.
    pub fn windows(&self, label: &str) -> Vec<Window<'a>> {
        // (version, release text, outcome), each release once per outcome.
        let mut seen: Vec<(Vec<u64>, &'a str, &'a Outcome)> = Vec::new();
        // The test's entries, found once: ranking them again for every
        // release of every entry made judging quadratic in the case's entries.
        let entries = &self.0;
        // A window needs two observed outcomes; most steps have one (judging
        // asked this of every checked step, parsing every release each time).
        let mut observed = entries.iter().filter_map(|e| match e.provenance {
            Provenance::Observed { .. } => e.outcome(label),
            Provenance::Documented { .. } => None,
        });
        let first = observed.next();
        if observed.all(|o| Some(o) == first) {
            return Vec::new();
        }
        for &e in entries {
            let Provenance::Observed { seen_on, .. } = &e.provenance else {
                continue;
            };
            if e.outcome(label).is_none() {
                continue;
            }
            for r in seen_on {
                let v = version_numbers(r);
                // The best observed entry on `r` (the first of the highest
                // rank, as `rank_among` orders them).
                let top = entries
                    .iter()
                    .filter(|x| matches!(x.provenance, Provenance::Observed { .. }))
                    .filter(|x| x.kernel.as_ref().is_none_or(|k| k.contains_numbers(&v)))
                    .filter_map(|x| x.outcome(label).map(|o| (*x, o)))
                    .fold(
                        None,
                        |best: Option<(&'a Entry, &'a Outcome)>, (x, o)| match best {
                            Some((b, _)) if b.rank() >= x.rank() => best,
                            _ => Some((x, o)),
                        },
                    );
                if let Some((entry, outcome)) = top
                    && std::ptr::eq(entry, e)
                    && !seen.iter().any(|(_, t, o)| t == r && *o == outcome)
                {
                    seen.push((v, r.as_str(), outcome));
                }
            }
        }
        seen.sort_by(|a, b| cmp_versions(&a.0, &b.0).then_with(|| a.1.cmp(b.1)));
        let mut out = Vec::new();
        // Releases of one version (two builds of 6.18.44) are one point.
        let mut i = 0;
        while i < seen.len() {
            let j = (i..seen.len())
                .find(|j| cmp_versions(&seen[*j].0, &seen[i].0).is_ne())
                .unwrap_or(seen.len());
            if j < seen.len() {
                let k = (j..seen.len())
                    .find(|k| cmp_versions(&seen[*k].0, &seen[j].0).is_ne())
                    .unwrap_or(seen.len());
                let (last, first) = (&seen[j - 1], &seen[j]);
                let here: Vec<&Outcome> = seen[i..j].iter().map(|s| s.2).collect();
                let next: Vec<&Outcome> = seen[j..k].iter().map(|s| s.2).collect();
                if here.iter().any(|o| !next.contains(o)) || next.iter().any(|o| !here.contains(o))
                {
                    out.push(Window {
                        last: last.1,
                        last_outcome: last.2,
                        first: first.1,
                        first_outcome: first.2,
                    });
                }
            }
            i = j;
        }
        out
    }
}

/// Of `entries` (a test's, in file order), those that give `label` where
/// `release` is in their kernel range, best first.
fn rank_among<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    label: &str,
    release: Option<&str>,
) -> Vec<Applied<'a>> {
    let mut out: Vec<Applied<'a>> = entries
        .filter(|e| match (&e.kernel, release) {
            (None, _) => true,
            (Some(r), Some(rel)) => r.contains(rel),
            (Some(_), None) => false,
        })
        .filter_map(|e| {
            e.outcome(label).map(|outcome| Applied {
                entry: e,
                outcome,
                window: None,
            })
        })
        .collect();
    // Stable sort: among equals, the earlier entry in the file comes first.
    out.sort_by_key(|a| std::cmp::Reverse(a.entry.rank()));
    out
}

/// `unknown`, for a release inside a window that no cited source covers.
static UNKNOWN: Outcome = Outcome::Unknown;

impl ExpectFile {
    /// How many observed outcomes the load set aside because their tests
    /// no longer check that step ([`Entry::stale`]).
    pub fn set_aside(&self) -> usize {
        self.entries.iter().map(|e| e.stale.len()).sum()
    }

    /// The expectation for `label` of `test`. `release` is the OS release the
    /// test ran on; `None` considers only entries without a kernel range.
    pub fn resolve<'a>(
        &'a self,
        test: &Test,
        label: &str,
        release: Option<&str>,
    ) -> Option<Applied<'a>> {
        self.resolve_in(test, label, release, None)
    }

    /// [`resolve`](Self::resolve) for a run with these stack settings (the
    /// results header's): entries conditioned on settings apply when met.
    pub fn resolve_in<'a>(
        &'a self,
        test: &Test,
        label: &str,
        release: Option<&str>,
        settings: Option<&BTreeMap<String, String>>,
    ) -> Option<Applied<'a>> {
        self.entries_for(test, settings).resolve(label, release)
    }

    /// The entries of case `case` without a kernel range or a settings
    /// condition, best first, each with the tests (as `axes` indexes them)
    /// its `where` picks: matched once per entry, as a set, for all of them.
    /// The claims table asks every test's entries on every OS; matched
    /// test by test, entry by entry, that was most of the table's time.
    pub(crate) fn case_entries<'a>(&'a self, case: &str, axes: &Axes) -> CaseEntries<'a> {
        let mut entries: Vec<&Entry> = self
            .by_case
            .get(case)
            .into_iter()
            .flatten()
            .map(|i| &self.entries[*i])
            .filter(|e| e.kernel.is_none() && e.holds_under(None))
            .collect();
        // Stable, as `rank_among`'s: among equal ranks, file order.
        entries.sort_by_key(|e| std::cmp::Reverse(e.rank()));
        let picks = entries.iter().map(|e| axes.select(&e.select)).collect();
        CaseEntries { entries, picks }
    }

    /// Every entry without a settings condition that gives `label` for
    /// `test`, best first.
    pub fn candidates<'a>(
        &'a self,
        test: &Test,
        label: &str,
        release: Option<&str>,
    ) -> Vec<Applied<'a>> {
        self.candidates_in(test, label, release, None)
    }

    /// Every entry that gives `label` for `test` in a run with `settings`,
    /// best first; inside a [`Window`] only documented entries whose kernel
    /// range holds the release, or else `unknown` (see the module's notes).
    pub fn candidates_in<'a>(
        &'a self,
        test: &Test,
        label: &str,
        release: Option<&str>,
        settings: Option<&BTreeMap<String, String>>,
    ) -> Vec<Applied<'a>> {
        self.entries_for(test, settings).candidates(label, release)
    }

    /// The window of disagreeing observations `release` lies in, if any
    /// ([`TestEntries::window`]).
    pub fn window<'a>(
        &'a self,
        test: &Test,
        label: &str,
        release: &str,
        settings: Option<&BTreeMap<String, String>>,
    ) -> Option<Window<'a>> {
        self.entries_for(test, settings).window(label, release)
    }

    /// Every window where neighbouring observations of `label` disagree,
    /// oldest first (for explain and reports; [`TestEntries::windows`]).
    pub fn windows<'a>(
        &'a self,
        test: &Test,
        label: &str,
        settings: Option<&BTreeMap<String, String>>,
    ) -> Vec<Window<'a>> {
        self.entries_for(test, settings).windows(label)
    }

    /// `test`'s entries under `settings`, found once, to be asked about
    /// each of its checked steps.
    pub fn entries_for<'a>(
        &'a self,
        test: &Test,
        settings: Option<&BTreeMap<String, String>>,
    ) -> TestEntries<'a> {
        TestEntries(self.for_test(test, settings).collect())
    }

    /// The file's entries for `test`'s case that select it under `settings`.
    fn for_test<'a>(
        &'a self,
        test: &Test,
        settings: Option<&BTreeMap<String, String>>,
    ) -> impl Iterator<Item = &'a Entry> {
        self.by_case
            .get(&test.case.id)
            .into_iter()
            .flatten()
            .map(|i| &self.entries[*i])
            // Entries of the test's case only: `where` is all left to match.
            .filter(move |e| e.selects_params(test) && e.holds_under(settings))
    }

    /// The entries that give `label` for `test` where `release` is in
    /// their kernel range, best first, windows aside (the precedence of the
    /// module's notes).
    pub fn ranked_in<'a>(
        &'a self,
        test: &Test,
        label: &str,
        release: Option<&str>,
        settings: Option<&BTreeMap<String, String>>,
    ) -> Vec<Applied<'a>> {
        self.entries_for(test, settings).ranked(label, release)
    }

    /// Entries with a kernel range or a settings condition that give
    /// `label` for `test` (for explain).
    pub fn ranged<'a>(&'a self, test: &Test, label: &str) -> Vec<Applied<'a>> {
        self.by_case
            .get(&test.case.id)
            .into_iter()
            .flatten()
            .map(|i| &self.entries[*i])
            .filter(|e| (e.kernel.is_some() || !e.settings.is_empty()) && e.selects(test))
            .filter_map(|e| {
                e.outcome(label).map(|outcome| Applied {
                    entry: e,
                    outcome,
                    window: None,
                })
            })
            .collect()
    }
}

impl ExpectFile {
    /// Adds `other`'s entries (another case tree's file for the same OS),
    /// their case ids prefixed with `prefix` as that tree's tests are, so
    /// that one suite can run several trees (see [`crate::trees`]).
    pub fn absorb(&mut self, other: ExpectFile, prefix: &str) {
        for mut e in other.entries {
            e.case = format!("{prefix}{}", e.case);
            self.by_case
                .entry(e.case.clone())
                .or_default()
                .push(self.entries.len());
            self.entries.push(e);
        }
    }

    /// An empty file for `os` (at `path`), to absorb other trees' entries.
    pub fn empty(os: OsFamily, path: Arc<PathBuf>) -> ExpectFile {
        ExpectFile {
            os,
            path,
            entries: Vec::new(),
            by_case: Map::default(),
        }
    }
}

/// Every OS's expectations.
#[derive(Debug, Default)]
pub struct Expectations {
    /// The file of each OS that has one.
    pub files: BTreeMap<OsFamily, ExpectFile>,
}

impl Expectations {
    /// The file for `os`, if the tree has one.
    pub fn for_os(&self, os: OsFamily) -> Option<&ExpectFile> {
        self.files.get(&os)
    }

    /// A warning for each file whose load set observed outcomes aside
    /// ([`Entry::stale`]): a run goes on without them. Counted by the file
    /// each entry came from: a suite of several trees keeps one
    /// [`ExpectFile`] per OS, named for the first tree's file for that OS.
    pub fn set_aside_warnings(&self) -> Vec<String> {
        let mut by_file: BTreeMap<(OsFamily, &Path), usize> = BTreeMap::new();
        for f in self.files.values() {
            for e in f.entries.iter().filter(|e| !e.stale.is_empty()) {
                *by_file.entry((f.os, e.at.file.as_path())).or_default() += e.stale.len();
            }
        }
        by_file
            .into_iter()
            .map(|((_, path), n)| {
                format!(
                    "warning: {}: {n} observed outcome(s) of steps the cases no longer check are left out \
                     (`sockspec check` refuses them; `sockspec bless` on that OS removes them)",
                    path.display()
                )
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    os: Option<Spanned<String>>,
    #[serde(default)]
    expect: Vec<Spanned<RawEntry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    case: Spanned<String>,
    #[serde(default, rename = "where")]
    select: Option<IndexMap<String, Spanned<Value>>>,
    #[serde(default)]
    kernel: Option<Spanned<String>>,
    #[serde(default)]
    settings: Option<IndexMap<String, Spanned<String>>>,
    outcomes: Spanned<IndexMap<String, Spanned<String>>>,
    source: Spanned<String>,
    #[serde(default)]
    seen_on: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    seen_with: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    cite: Option<Spanned<Cite>>,
    #[serde(default)]
    confidence: Option<Spanned<String>>,
    #[serde(default)]
    why: Option<Spanned<String>>,
}

/// The top-level keys of an expectation file, as the loader reads them.
pub fn file_keys() -> &'static [&'static str] {
    crate::keys::of::<RawFile>()
}

/// The keys of an `[[expect]]` entry, as the loader reads them.
pub fn entry_keys() -> &'static [&'static str] {
    crate::keys::of::<RawEntry>()
}

/// `cite = "key"` or `cite = ["key1", "key2"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Cite {
    One(String),
    Many(Vec<String>),
}

impl Cite {
    fn keys(&self) -> Vec<String> {
        match self {
            Cite::One(k) => vec![k.trim().to_string()],
            Cite::Many(ks) => ks.iter().map(|k| k.trim().to_string()).collect(),
        }
    }
}

/// Checks a cite against the registry (when there is one) and the
/// confidence against the kinds of the sources cited.
fn check_cite(
    index: &LineIndex,
    cite: &Spanned<Cite>,
    confidence: Option<&str>,
    sources: Option<&Registry>,
    errors: &mut Vec<InputError>,
) -> (Vec<String>, Vec<Arc<Source>>) {
    let keys = cite.get_ref().keys();
    if keys.is_empty() || keys.iter().any(|k| k.is_empty()) {
        errors.push(index.err(cite.span(), "`cite` has an empty key"));
    }
    let Some(reg) = sources else {
        return (keys, Vec::new());
    };
    let mut cited: Vec<Arc<Source>> = Vec::new();
    for k in &keys {
        match reg.get(k) {
            Some(s) => cited.push(s.clone()),
            None => {
                let near = reg.near(k);
                let mut e = index.err(
                    cite.span(),
                    format!("`{k}` is not a key of {}", reg.path.display()),
                );
                e = e.help(if near.is_empty() {
                    format!("add it to {} or cite one of its keys", reg.path.display())
                } else {
                    format!("close keys: {}", near.join(", "))
                });
                errors.push(e);
            }
        }
    }
    // T, the weakest claim, goes with any source (e.g. one OS's code cited
    // for another); D, S and E need a cited source of that kind.
    if let Some(c) = confidence
        && c != "T"
        && cited.len() == keys.len()
        && !cited.iter().any(|s| s.kind.confidence() == c)
    {
        let names: Vec<&str> = cited.iter().map(|s| s.kind.as_str()).collect();
        errors.push(
            index
                .err(
                    cite.span(),
                    format!(
                        "confidence {c} needs a cited source of that kind; these are {}",
                        names.join(", ")
                    ),
                )
                .help("D: vendor-doc, man-page, release-notes; S: kernel-source; E: peer-test; T: any"),
        );
    }
    (keys, cited)
}

/// Most entries one expectation file may have: counted before any is
/// checked, so that `check` stays under 256 MiB on any input (each entry is
/// checked against every test it selects). `expected/linux.toml` has ~270.
pub const MAX_ENTRIES: usize = 5_000;
// The clash check keeps entry indices as u32.
const _: () = assert!(MAX_ENTRIES < u32::MAX as usize);

/// Confidence tags, as in semantics.md.
pub const CONFIDENCE: &[(&str, &str)] = &[
    ("D", "documented by the vendor"),
    ("S", "read in kernel source, a selftest or a commit message"),
    ("E", "observed by the author of the source on a real kernel"),
    ("T", "a third party's claim"),
];

/// Most bytes of expectation files parsed before the tests exist
/// ([`Unchecked::parse_ahead`]): two files of
/// [`crate::load::MAX_INPUT_BYTES`], as many as [`check_all`]'s pipeline
/// keeps parsed at once, so parsed files never hold more. (With one file
/// per OS family, each at most [`crate::load::SIDE_BY_SIDE_BYTES`], files
/// parsed ahead come to less today.) Files are parsed ahead only if each
/// is small enough to be parsed beside the cases: they are parsed on a
/// thread of their own, whose allocator arena keeps its largest parse's
/// pages while the tests are built. A tree's files are parsed ahead all
/// together or not at all: parsed files are checked on every core at
/// once, the others one by one as they are parsed, and a mix would leave
/// cores idle.
const PARSE_AHEAD_BYTES: u64 = 2 * crate::load::MAX_INPUT_BYTES;

/// A tree's expectation files before there are tests to check them
/// against: listed ([`list_all`]), maybe parsed ahead
/// ([`Unchecked::parse_ahead`]: all of them, if each is at most
/// [`crate::load::SIDE_BY_SIDE_BYTES`] and they total at most
/// [`PARSE_AHEAD_BYTES`]; else each is still a path), then read
/// ([`Unchecked::read`]: the sources registry and the stack profiles).
/// Parsing needs no test, so it can run while the tests are built.
pub struct Unchecked {
    root: PathBuf,
    /// Whether [`Unchecked::read`] has been done.
    read: bool,
    sources: Option<Registry>,
    /// The files in name order.
    files: Vec<ListedFile>,
    /// Errors of the registry and the profiles.
    errors: Vec<InputError>,
    /// An `expected/` that cannot be read.
    dir_errors: Vec<InputError>,
    /// [`crate::Scope::set_aside_stale`].
    set_aside_stale: bool,
}

/// A parsed file (None: it could not be) and the errors found parsing it.
type ParseResult = (Option<Parsed>, Vec<InputError>);

/// An expectation file's path, size, and its parse if done.
type ListedFile = (PathBuf, u64, Option<ParseResult>);

/// Lists `root`'s expectation files (those `scope` wants), with their sizes.
pub fn list_all(root: &Path, scope: &crate::Scope) -> Unchecked {
    let mut out = Unchecked {
        root: root.to_path_buf(),
        read: false,
        sources: None,
        files: Vec::new(),
        errors: Vec::new(),
        dir_errors: Vec::new(),
        set_aside_stale: scope.set_aside_stale,
    };
    let dir = root.join(EXPECTED_DIR);
    // No `expected/` is a tree without expectations yet; one that cannot be
    // read (or is not a directory) is an error, never an empty set.
    let read = match std::fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.dir_errors.push(InputError::file(
                &dir,
                format!("cannot read this directory: {e}"),
            ));
            return out;
        }
    };
    let mut paths: Vec<PathBuf> = read
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| {
            let stem = p.file_stem().map(|s| s.to_string_lossy());
            // A file named for no OS is reported by the full load only.
            stem.and_then(|s| OsFamily::from_name(&s))
                .map_or(scope.os.is_none(), |os| scope.wants_os(os))
        })
        .collect();
    paths.sort();
    out.files = paths
        .into_iter()
        .map(|p| {
            let size = std::fs::metadata(&p).map_or(0, |m| m.len());
            (p, size, None)
        })
        .collect();
    out
}

impl Unchecked {
    /// Whether the files are small enough to be parsed before the tests
    /// exist, beside the cases ([`PARSE_AHEAD_BYTES`]).
    pub fn fits_ahead(&self) -> bool {
        let sizes = || self.files.iter().map(|(_, size, _)| *size);
        sizes().sum::<u64>() <= PARSE_AHEAD_BYTES
            && sizes().all(|s| s <= crate::load::SIDE_BY_SIDE_BYTES)
    }

    /// Reads the sources registry and the stack profiles, unless done
    /// already: on the thread that parses the case files, since each
    /// thread's allocator arena keeps the pages of its largest parse and
    /// either file may be large, or on the thread that parses ahead when
    /// both are small ([`Unchecked::sides_small`]).
    pub fn read(&mut self) {
        if std::mem::replace(&mut self.read, true) {
            return;
        }
        self.sources = crate::sources::load(&self.root, &mut self.errors);
        // The stack profiles next to the cases: checked with them.
        if let Err(e) = crate::sys::settings::load_profiles(&self.root) {
            self.errors.extend(e);
        }
    }

    /// Parses the files one after another, if they [fit](Self::fits_ahead)
    /// and still do once read; else leaves every one to [`check_all`].
    pub fn parse_ahead(&mut self) {
        if !self.fits_ahead() {
            return;
        }
        for i in 0..self.files.len() {
            let path = &self.files[i].0;
            let mut errors = Vec::new();
            let parsed = match read_file(path, &mut errors) {
                // Grown since it was listed: parsed after the tests are
                // built, with the others (all or none, as `fits_ahead`).
                Some((_, text)) if text.len() as u64 > crate::load::SIDE_BY_SIDE_BYTES => {
                    self.files.iter_mut().for_each(|f| f.2 = None);
                    return;
                }
                Some((os, text)) => parse_text(path, os, &text, &mut errors),
                None => None,
            };
            self.files[i].2 = Some((parsed, errors));
        }
    }

    /// Whether the sources registry and the stack profiles are each at most
    /// [`crate::load::SIDE_BY_SIDE_BYTES`] (or absent): then they may be
    /// read on the thread that parses ahead, else on the loading thread
    /// before the tests are built.
    pub fn sides_small(&self) -> bool {
        let small = |file: &str| {
            std::fs::metadata(self.root.join(file))
                .map_or(true, |m| m.len() <= crate::load::SIDE_BY_SIDE_BYTES)
        };
        small(crate::load::SOURCES_FILE) && small(crate::sys::settings::PROFILES_FILE)
    }
}

/// Checks the files of `unchecked` (listed and [read](Unchecked::read))
/// against `tests`: on every core at once if they were parsed ahead, else
/// each parsed here as its turn comes.
pub fn check_all(
    unchecked: Unchecked,
    cases: &[Arc<Case>],
    tests: &[Arc<Test>],
    grids: Option<&Grids>,
    errors: &mut Vec<InputError>,
) -> Expectations {
    let Unchecked {
        sources,
        files,
        errors: read_errors,
        dir_errors,
        set_aside_stale,
        ..
    } = unchecked;
    errors.extend(read_errors);
    errors.extend(dir_errors);
    let mut out = Expectations::default();
    let groups: Vec<(String, Vec<Arc<Test>>)> = group_tests(tests).into_iter().collect();
    let by_case: Map<String, CaseTests> = groups
        .iter()
        .map(|(id, _)| id.clone())
        .zip(crate::par::map(&groups, 4, |(_, tests)| {
            CaseTests::new(tests.clone())
        }))
        .collect();
    let against = Against {
        cases,
        by_case: &by_case,
        sources: sources.as_ref(),
        grids,
        set_aside_stale,
    };
    let check = |(file, mut errors): ParseResult| {
        let file = file.and_then(|f| {
            let os = f.os;
            check_file(f, &against, &mut errors).map(|f| (os, f))
        });
        (file, errors)
    };
    // Largest first, so that the longest check starts soonest; errors are
    // reported in the files' order all the same.
    let mut order: Vec<(usize, ListedFile)> = files.into_iter().enumerate().collect();
    order.sort_by_key(|(_, (_, size, _))| std::cmp::Reverse(*size));
    let mut checked: Vec<(usize, _)> = if order.iter().all(|(_, (_, _, p))| p.is_some()) {
        // Parsed ahead (and so, all small): checked on every core at once.
        let parsed = order
            .into_iter()
            .map(|(i, (_, _, p))| (i, p.expect("every file was parsed ahead")));
        crate::par::map_owned(parsed.collect(), 1, |(i, p)| (i, check(p)))
    } else {
        // Parsed on this thread, one after another, and each checked here
        // or on another core, whichever is free. The parser's working
        // memory (up to ~180 times the text) thus stays in this thread's
        // allocator arena: parsed on several threads, each thread's arena
        // kept the pages of the largest parse it had done, and 8 files of
        // 1 MiB took `check` past 256 MiB. At most two parsed files are
        // alive at once.
        let results = crate::par::pipeline(
            &order,
            |(_, (path, _, _))| {
                let mut errors = Vec::new();
                (parse_file(path, &mut errors), errors)
            },
            check,
        );
        order.iter().map(|(i, _)| *i).zip(results).collect()
    };
    // Errors in the files' order, whatever order they were checked in.
    checked.sort_by_key(|(i, _)| *i);
    for (_, (file, errs)) in checked {
        errors.extend(errs);
        if let Some((os, f)) = file {
            out.files.insert(os, f);
        }
    }
    out
}

/// The tests by case id, in suite order.
pub fn group_tests(tests: &[Arc<Test>]) -> HashMap<String, Vec<Arc<Test>>> {
    let mut by_case: HashMap<String, Vec<Arc<Test>>> = HashMap::new();
    for t in tests {
        by_case
            .entry(t.case.id.clone())
            .or_default()
            .push(t.clone());
    }
    by_case
}

/// One case's tests, with an index from each grid parameter's label to the
/// tests that have it: an entry's `where` is then resolved once, as a set,
/// instead of once per test and checked step (that was most of `check`'s time).
pub struct CaseTests {
    tests: Vec<Arc<Test>>,
    axes: Axes,
    /// Per OS family (in [`OsFamily::ALL`]'s order), the tests that can run there.
    runs: Vec<Bits>,
    /// Checked step label → each test's class of equal actions (an index)
    /// and one test of each class: what a step may report is then asked once
    /// per distinct step, not once per test.
    classes: Map<String, Classes>,
}

/// The tests of one checked label, by class of equal actions.
struct Classes {
    /// Each test's class (`u32::MAX`: the test does not check the label).
    of: Vec<u32>,
    /// One step of each class: (test, index of the step in its steps).
    reps: Vec<(usize, usize)>,
    /// Each class's tests as a set, when the classes are few (at most
    /// [`SET_CLASSES`]): a selection is then matched a word at a time.
    sets: Option<Vec<Bits>>,
}

impl Classes {
    /// The classes of the steps at `at` (per test, the index of its step
    /// with the label). Few classes are found by comparing actions; past
    /// [`SET_CLASSES`], by their derived `Debug` text in a map, so a case
    /// whose every test differs costs one pass, not pairs.
    fn of(tests: &[Arc<Test>], at: &[Option<usize>]) -> Classes {
        let mut of = vec![u32::MAX; at.len()];
        let mut reps: Vec<(usize, usize)> = Vec::new();
        let mut by_text: Option<Map<String, u32>> = None;
        let text = |(t, si): (usize, usize)| format!("{:?}", tests[t].steps[si].action);
        for (i, si) in at.iter().enumerate() {
            let Some(si) = *si else { continue };
            let action = &tests[i].steps[si].action;
            // With the map, the text is computed once and kept for the insert.
            let key = by_text.as_ref().map(|_| text((i, si)));
            let found = match (&by_text, &key) {
                (Some(map), Some(k)) => map.get(k).copied(),
                _ => reps
                    .iter()
                    .position(|&(t, rs)| tests[t].steps[rs].action == *action)
                    .map(|c| c as u32),
            };
            of[i] = match found {
                Some(c) => c,
                None => {
                    reps.push((i, si));
                    let c = (reps.len() - 1) as u32;
                    match (&mut by_text, key) {
                        (Some(map), Some(k)) => {
                            map.insert(k, c);
                        }
                        _ if reps.len() > SET_CLASSES => {
                            let all = reps.iter().enumerate();
                            by_text = Some(all.map(|(c, &r)| (text(r), c as u32)).collect());
                        }
                        _ => {}
                    }
                    c
                }
            };
        }
        let sets = (reps.len() <= SET_CLASSES).then(|| {
            let mut sets = vec![Bits::new(at.len()); reps.len()];
            for (i, c) in of.iter().enumerate() {
                if let Some(b) = sets.get_mut(*c as usize) {
                    b.set(i);
                }
            }
            sets
        });
        Classes { of, reps, sets }
    }
}

/// Most classes for which [`Classes::sets`] is kept: 64 sets of a
/// 10,000-test case are 80 KB.
const SET_CLASSES: usize = 64;

impl CaseTests {
    /// Indexes one case's tests (in suite order).
    pub fn new(tests: Vec<Arc<Test>>) -> CaseTests {
        let n = tests.len();
        let mut checks: Map<&str, Vec<Option<usize>>> = Map::default();
        for (i, t) in tests.iter().enumerate() {
            for (si, s) in t.steps.iter().enumerate() {
                if let Some(label) = &s.check {
                    checks.entry(label).or_insert_with(|| vec![None; n])[i] = Some(si);
                }
            }
        }
        let axes = Axes::new(tests.iter().map(|t| &**t));
        let runs = OsFamily::ALL
            .iter()
            .map(|os| {
                let mut b = Bits::new(n);
                for (i, t) in tests.iter().enumerate() {
                    if t.runs_on(*os) {
                        b.set(i);
                    }
                }
                b
            })
            .collect();
        let classes = checks
            .iter()
            .map(|(label, at)| (label.to_string(), Classes::of(&tests, at)))
            .collect();
        CaseTests {
            tests,
            axes,
            runs,
            classes,
        }
    }

    /// The tests that can run on `os`.
    fn runs(&self, os: OsFamily) -> &Bits {
        let i = OsFamily::ALL.iter().position(|o| *o == os).unwrap_or(0);
        &self.runs[i]
    }

    /// The distinct steps checked as `label` among `tests`.
    fn checked(&self, label: &str, tests: &Bits) -> Vec<&Step> {
        let Some(c) = self.classes.get(label) else {
            return Vec::new();
        };
        let hit: Vec<bool> = match &c.sets {
            Some(sets) => sets.iter().map(|b| b.intersects(tests)).collect(),
            None => {
                let mut hit = vec![false; c.reps.len()];
                for t in tests.iter() {
                    if let Some(h) = hit.get_mut(c.of[t] as usize) {
                        *h = true;
                    }
                }
                hit
            }
        };
        c.reps
            .iter()
            .zip(hit)
            .filter(|(_, h)| *h)
            .map(|(&(t, si), _)| &*self.tests[t].steps[si])
            .collect()
    }
}

/// Some tests of one case by grid label: each parameter's labels and each
/// test's label among them (an index), a few bytes per test and parameter
/// however many values it has. A `where` is then matched once, as a set,
/// instead of once per test and label.
pub(crate) struct Axes {
    /// How many tests.
    n: usize,
    /// Grid parameter → its labels and tests.
    by_name: Map<String, Axis>,
}

/// One grid parameter's labels among some tests.
struct Axis {
    labels: Vec<String>,
    /// Each test's label (an index into `labels`; `u32::MAX` for a test
    /// without the parameter).
    of: Vec<u32>,
    /// Each label's tests as a set, when the labels are few (at most
    /// [`SET_CLASSES`]): a `where` is then matched a word at a time.
    sets: Option<Vec<Bits>>,
}

impl Axes {
    /// Indexes `tests` (of one case), in their order.
    pub(crate) fn new<'t>(tests: impl ExactSizeIterator<Item = &'t Test>) -> Axes {
        let n = tests.len();
        let mut by_name: Map<String, Axis> = Map::default();
        for (i, t) in tests.enumerate() {
            for (k, v) in &t.params {
                let axis = by_name.entry(k.clone()).or_insert_with(|| Axis {
                    labels: Vec::new(),
                    of: vec![u32::MAX; n],
                    sets: None,
                });
                let at = axis.labels.iter().position(|l| l == v).unwrap_or_else(|| {
                    axis.labels.push(v.clone());
                    axis.labels.len() - 1
                });
                axis.of[i] = at as u32;
            }
        }
        for axis in by_name.values_mut() {
            axis.sets = (axis.labels.len() <= SET_CLASSES).then(|| {
                let mut sets = vec![Bits::new(n); axis.labels.len()];
                for (i, l) in axis.of.iter().enumerate() {
                    if let Some(b) = sets.get_mut(*l as usize) {
                        b.set(i);
                    }
                }
                sets
            });
        }
        Axes { n, by_name }
    }

    /// The tests `select` picks: for every parameter, one of its labels
    /// (as [`Entry::selects`] and [`crate::model::Holds::applies`] match one test).
    pub(crate) fn select(&self, select: &[(String, Vec<String>)]) -> Bits {
        let mut picked = Bits::full(self.n);
        for (k, wanted) in select {
            let Some(axis) = self.by_name.get(k) else {
                return Bits::new(self.n);
            };
            let want = axis.labels.iter().map(|l| wanted.contains(l));
            match &axis.sets {
                Some(sets) => {
                    let mut any = Bits::new(self.n);
                    for (set, _) in sets.iter().zip(want).filter(|(_, w)| *w) {
                        any.or(set);
                    }
                    picked.and(&any);
                }
                None => {
                    let want: Vec<bool> = want.collect();
                    for (i, v) in axis.of.iter().enumerate() {
                        if !want.get(*v as usize).copied().unwrap_or(false) {
                            picked.clear(i);
                        }
                    }
                }
            }
        }
        picked
    }
}

/// How many of a grid's combinations (`rows` of labels, in grid order)
/// `select` picks, as [`CaseTests::select`] counts among expanded tests.
fn count_selected(case: &Case, rows: &[Vec<String>], select: &[(String, Vec<String>)]) -> usize {
    let mut wanted = Vec::new();
    for (k, labels) in select {
        match case.grid.iter().position(|(name, _)| name == k) {
            Some(i) => wanted.push((i, labels)),
            None => return 0,
        }
    }
    rows.iter()
        .filter(|row| {
            wanted
                .iter()
                .all(|(i, labels)| row.get(*i).is_some_and(|l| labels.contains(l)))
        })
        .count()
}

/// A set of test indices within one case.
#[derive(Clone, Debug)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn full(n: usize) -> Bits {
        let mut b = Bits(vec![u64::MAX; n.div_ceil(64)]);
        if !n.is_multiple_of(64)
            && let Some(last) = b.0.last_mut()
        {
            *last = (1u64 << (n % 64)) - 1;
        }
        b
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn and(&mut self, other: &Bits) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a &= b);
    }
    fn or(&mut self, other: &Bits) {
        self.0.iter_mut().zip(&other.0).for_each(|(a, b)| *a |= b);
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// Whether test `i` is in the set.
    pub(crate) fn has(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    fn intersects(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }
    fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        // Set bits only, lowest first: a sparse word costs its bits, not 64 tests.
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            let mut rest = bits;
            std::iter::from_fn(move || {
                (rest != 0).then(|| {
                    let b = rest.trailing_zeros() as usize;
                    rest &= rest - 1;
                    w * 64 + b
                })
            })
        })
    }
}

/// Every combination's labels, per case id ([`crate::expand::all_labels`]),
/// for a load of only some tests.
pub type Grids = HashMap<String, Vec<Vec<String>>>;

/// One expectation file, read and parsed but not yet checked.
struct Parsed {
    os: OsFamily,
    index: LineIndex,
    raw: RawFile,
}

/// Reads and parses the expectation file at `path` (named for its OS).
fn parse_file(path: &Path, errors: &mut Vec<InputError>) -> Option<Parsed> {
    let (os, text) = read_file(path, errors)?;
    parse_text(path, os, &text, errors)
}

/// An expectation file's OS family (from its name) and text.
fn read_file(path: &Path, errors: &mut Vec<InputError>) -> Option<(OsFamily, String)> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(os) = OsFamily::from_name(&stem) else {
        errors.push(
            InputError::file(path, format!("`{stem}` is not an OS family")).help(format!(
                "name expectation files <os>.toml, one of: {}",
                OsFamily::names()
            )),
        );
        return None;
    };
    match crate::load::read_input(path) {
        Ok(t) => Some((os, t)),
        Err(e) => {
            errors.push(e);
            None
        }
    }
}

/// Parses the text of the expectation file at `path`, for `os`.
fn parse_text(
    path: &Path,
    os: OsFamily,
    text: &str,
    errors: &mut Vec<InputError>,
) -> Option<Parsed> {
    let index = LineIndex::new(Arc::new(path.to_path_buf()), text);
    match crate::load::parse_toml(text) {
        Ok(raw) => Some(Parsed { os, index, raw }),
        Err(e) => {
            errors.push(
                toml_error(&index, &e)
                    .help("see \"Expectation files\" in README.md for the fields an entry takes"),
            );
            None
        }
    }
}

/// What expectation files are checked against: the loaded cases and their
/// tests, the sources registry, and, when only some tests are loaded, every
/// combination's labels per case.
struct Against<'a> {
    cases: &'a [Arc<Case>],
    by_case: &'a Map<String, CaseTests>,
    sources: Option<&'a Registry>,
    grids: Option<&'a Grids>,
    /// [`crate::Scope::set_aside_stale`].
    set_aside_stale: bool,
}

/// Checks one parsed expectation file. With `grids`, only some tests
/// are loaded: entries for others are passed over, and an entry's
/// specificity is counted on its case's whole grid.
fn check_file(
    parsed: Parsed,
    against: &Against,
    errors: &mut Vec<InputError>,
) -> Option<ExpectFile> {
    let Parsed { os, index, raw } = parsed;
    let by_case = against.by_case;
    let partial = against.grids.is_some();
    let before = errors.len();
    if raw.os.is_none() && raw.expect.is_empty() {
        // An emptied file would otherwise say nothing and pass.
        errors.push(
            index
                .err(0..0, "an empty expectation file: no `os` and no `[[expect]]` entries")
                .help(format!(
                    "restore it (git checkout), or write `os = \"{os}\"` to say nothing is known yet"
                )),
        );
    }
    if let Some(declared) = &raw.os
        && declared.get_ref() != os.as_str()
    {
        errors.push(index.err(
            declared.span(),
            format!(
                "this file is for `{os}` (its name) but says os = \"{}\"",
                declared.get_ref()
            ),
        ));
    }
    if raw.expect.len() > MAX_ENTRIES {
        errors.push(
            InputError::at(
                &index.loc(0),
                format!(
                    "{} entries: more than an expectation file may have ({MAX_ENTRIES})",
                    raw.expect.len()
                ),
            )
            .help("merge entries with `where` lists, or split the cases"),
        );
        return None;
    }
    let mut entries = Vec::new();
    for raw in raw.expect {
        if partial && !by_case.contains_key(raw.get_ref().case.get_ref()) {
            continue;
        }
        let at = index.loc(raw.span().start);
        if let Some(e) = parse_entry(&index, at, raw.into_inner(), os, against, errors) {
            entries.push(e);
        }
    }
    if errors.len() > before {
        return None;
    }
    let mut file_by_case: Map<String, Vec<usize>> = Map::default();
    for (i, e) in entries.iter().enumerate() {
        file_by_case.entry(e.case.clone()).or_default().push(i);
    }
    let file = ExpectFile {
        os,
        path: index.file().clone(),
        entries,
        by_case: file_by_case,
    };
    check_ambiguity(&file, by_case, errors);
    (errors.len() == before).then_some(file)
}

fn parse_entry(
    index: &LineIndex,
    at: Location,
    raw: RawEntry,
    os: OsFamily,
    against: &Against,
    errors: &mut Vec<InputError>,
) -> Option<Entry> {
    let before = errors.len();
    let (cases, grids) = (against.cases, against.grids);
    let partial = grids.is_some();
    let case_id = raw.case.get_ref().clone();
    let Some(case) = cases.iter().find(|c| c.id == case_id) else {
        let topic = case_id.split("::").next().unwrap_or("");
        let near: Vec<&str> = cases
            .iter()
            .filter(|c| c.topic == topic)
            .map(|c| c.id.as_str())
            .collect();
        let mut e = index.err(raw.case.span(), format!("no case is named `{case_id}`"));
        if !near.is_empty() {
            e = e.help(format!("cases in `{topic}`: {}", near.join(", ")));
        }
        errors.push(e);
        return None;
    };
    let select = parse_select(index, case, raw.select.unwrap_or_default(), errors);
    let kernel = raw
        .kernel
        .and_then(|k| match VersionRange::parse(k.get_ref()) {
            Ok(r) => Some(r),
            Err(msg) => {
                errors.push(
                    index
                        .err(k.span(), format!("`kernel`: {msg}"))
                        .help("e.g. kernel = \">=6.1, <6.2\""),
                );
                None
            }
        });
    let settings = parse_settings(index, os, raw.settings.unwrap_or_default(), errors);
    let why = raw.why.map(Spanned::into_inner);
    let prov = RawProvenance {
        seen_on: raw.seen_on,
        seen_with: raw.seen_with,
        cite: raw.cite,
        confidence: raw.confidence,
    };
    let provenance = parse_provenance(index, &at, raw.source, prov, against.sources, errors)?;
    if matches!(provenance, Provenance::Documented { .. })
        && why.as_deref().is_none_or(|w| w.trim().is_empty())
    {
        errors.push(InputError::at(
            &at,
            "a documented entry needs a short `why`",
        ));
    }

    // Only a case without tests needs the empty index: built per entry, it
    // cost ~2M instructions a check.
    let empty;
    let ct = match against.by_case.get(&case_id) {
        Some(ct) => ct,
        None => {
            empty = CaseTests::new(Vec::new());
            &empty
        }
    };
    let picked = ct.axes.select(&select);
    let selected = match grids.and_then(|g| g.get(&case_id)) {
        Some(rows) => count_selected(case, rows, &select),
        None => picked.count(),
    };
    let mut runnable = picked.clone();
    runnable.and(ct.runs(os));
    // With only some of the case's tests loaded, an entry for the others
    // is passed over; what it selects is the full load's (`check`) to judge.
    if partial && picked.is_empty() {
        return None;
    }
    if errors.len() == before && !partial {
        errors.extend(selects_nothing(
            &at, &case_id, ct, &picked, selected, &runnable, os,
        ));
    }
    let observed = matches!(provenance, Provenance::Observed { .. });
    let mut stale = Vec::new();
    let outcomes = parse_outcomes(
        index,
        case,
        raw.outcomes.into_inner(),
        (ct, &runnable, partial),
        observed,
        (observed && against.set_aside_stale).then_some(&mut stale),
        errors,
    );
    if outcomes.is_empty() && stale.is_empty() && errors.len() == before {
        errors.push(InputError::at(&at, "this entry gives no outcomes"));
    }
    (errors.len() == before).then_some(Entry {
        at,
        case: case_id,
        select,
        kernel,
        settings,
        outcomes,
        stale,
        provenance,
        why,
        selected,
    })
}

/// An entry's fields that say how its outcomes are known.
struct RawProvenance {
    seen_on: Option<Spanned<Vec<String>>>,
    seen_with: Option<Spanned<Vec<String>>>,
    cite: Option<Spanned<Cite>>,
    confidence: Option<Spanned<String>>,
}

/// `where`: for each parameter of the case's grid, the labels selected.
fn parse_select(
    index: &LineIndex,
    case: &Case,
    raw: IndexMap<String, Spanned<Value>>,
    errors: &mut Vec<InputError>,
) -> Vec<(String, Vec<String>)> {
    let case_id = &case.id;
    let mut select = Vec::new();
    for (name, v) in raw {
        let Some((_, axis)) = case.grid.iter().find(|(n, _)| *n == name) else {
            let params: Vec<&str> = case.grid.iter().map(|(n, _)| n.as_str()).collect();
            errors.push(
                index
                    .err(
                        v.span(),
                        format!("`{name}` is not a parameter of `{case_id}`"),
                    )
                    .help(if params.is_empty() {
                        "this case has no grid: leave `where` out".to_string()
                    } else {
                        format!("its parameters: {}", params.join(", "))
                    }),
            );
            continue;
        };
        match selector_labels(v.get_ref(), axis) {
            Ok(labels) => select.push((name, labels)),
            Err(msg) => errors.push(index.err(v.span(), format!("`where.{name}`: {msg}"))),
        }
    }
    select
}

/// `settings`: stack settings sockspec records on `os`, normalised.
fn parse_settings(
    index: &LineIndex,
    os: OsFamily,
    raw: IndexMap<String, Spanned<String>>,
    errors: &mut Vec<InputError>,
) -> Vec<(String, String)> {
    let mut settings = Vec::new();
    for (key, v) in raw {
        match crate::sys::settings::known(os, &key) {
            Some(k) if k.default.is_some() => {
                settings.push((key, crate::sys::settings::normal(v.get_ref())));
            }
            _ => {
                let keys: Vec<&str> = crate::sys::settings::KNOWN
                    .iter()
                    .filter(|k| k.os == os && k.default.is_some())
                    .map(|k| k.key)
                    .collect();
                let msg = format!("`settings`: `{key}` is not a setting sockspec records on {os}");
                errors.push(index.err(v.span(), msg).help(if keys.is_empty() {
                    format!("no settings condition an expectation on {os}")
                } else {
                    format!("settings on {os}: {}", keys.join(", "))
                }));
            }
        }
    }
    settings
}

/// `source` with the fields that go with it: `seen_on` (and `seen_with`)
/// for an observed entry, `cite` (and `confidence`) for a documented one.
fn parse_provenance(
    index: &LineIndex,
    at: &Location,
    source: Spanned<String>,
    raw: RawProvenance,
    sources: Option<&Registry>,
    errors: &mut Vec<InputError>,
) -> Option<Provenance> {
    Some(match source.get_ref().as_str() {
        "observed" => {
            if raw.cite.is_some() || raw.confidence.is_some() {
                errors.push(InputError::at(
                    at,
                    "an observed entry takes `seen_on`, not `cite`/`confidence`",
                ));
            }
            let seen_with = raw.seen_with.map(Spanned::into_inner).unwrap_or_default();
            let seen_on = match raw.seen_on {
                Some(s) if !s.get_ref().is_empty() => s.into_inner(),
                _ => {
                    errors.push(
                        InputError::at(
                            at,
                            "an observed entry needs `seen_on`: the releases it was observed on",
                        )
                        .help("observed entries are written by `sockspec bless`, not by hand"),
                    );
                    Vec::new()
                }
            };
            Provenance::Observed { seen_on, seen_with }
        }
        "documented" => {
            if raw.seen_on.is_some() || raw.seen_with.is_some() {
                errors.push(InputError::at(
                    at,
                    "a documented entry takes `cite`, not `seen_on`/`seen_with`",
                ));
            }
            let confidence = raw.confidence.and_then(|c| {
                if CONFIDENCE.iter().any(|(k, _)| k == c.get_ref()) {
                    Some(c.into_inner())
                } else {
                    errors.push(index.err(
                        c.span(),
                        "`confidence` is one of D, S, E, T (as in semantics.md)",
                    ));
                    None
                }
            });
            let (keys, sources) = match raw.cite {
                Some(c) => check_cite(index, &c, confidence.as_deref(), sources, errors),
                None => {
                    errors.push(
                        InputError::at(at, "a documented entry needs `cite`")
                            .help("cite keys of the tree's sources.toml: cite = \"key\" or cite = [\"key1\", \"key2\"]"),
                    );
                    (Vec::new(), Vec::new())
                }
            };
            Provenance::Documented {
                cite: keys.join(", "),
                keys,
                sources,
                confidence,
            }
        }
        other => {
            errors.push(index.err(
                source.span(),
                format!("`source` is \"observed\" or \"documented\", not \"{other}\""),
            ));
            return None;
        }
    })
}

/// Why an entry of the case `case_id` that picks the tests `picked` (of
/// `ct`; `selected` of the whole grid), `runnable` of them on `os`, is
/// refused for what it selects, if it is.
fn selects_nothing(
    at: &Location,
    case_id: &str,
    ct: &CaseTests,
    picked: &Bits,
    selected: usize,
    runnable: &Bits,
    os: OsFamily,
) -> Option<InputError> {
    if selected == 0 {
        Some(
            InputError::at(at, format!("this entry selects no test of `{case_id}`"))
                .help("check `where`: the values must be combinations the grid produces"),
        )
    } else if runnable.is_empty() {
        let first = picked.iter().next().map(|i| &ct.tests[i]);
        let why = first.and_then(|t| t.not_applicable(os)).unwrap_or_default();
        Some(InputError::at(
            at,
            format!("this entry selects only tests that cannot run on {os} ({why})"),
        ))
    } else {
        None
    }
}

/// `outcomes`: per checked step, an outcome that step can have, for steps
/// that occur in the `runnable` tests the entry selects (of the case's
/// tests `ct`; with `partial`, only some are loaded). An outcome of an
/// `observed` entry for a step those tests no longer check goes to
/// `stale`, when given, instead of being refused.
fn parse_outcomes(
    index: &LineIndex,
    case: &Case,
    raw: IndexMap<String, Spanned<String>>,
    (ct, runnable, partial): (&CaseTests, &Bits, bool),
    observed: bool,
    mut stale: Option<&mut Vec<String>>,
    errors: &mut Vec<InputError>,
) -> Vec<(String, Outcome)> {
    let case_id = &case.id;
    let mut outcomes = Vec::new();
    // Observed outcomes are written by bless, which also removes those of
    // steps a changed case no longer checks.
    let rebless = |e: InputError| {
        if observed {
            e.help(
                "if the case changed since this was observed, `sockspec bless` on this OS removes it",
            )
        } else {
            e
        }
    };
    for (label, value) in raw {
        if !case.checks.iter().any(|(l, _)| *l == label) {
            if let Some(stale) = stale.as_deref_mut() {
                stale.push(label);
                continue;
            }
            let checks: Vec<&str> = case.checks.iter().map(|(l, _)| l.as_str()).collect();
            errors.push(rebless(
                index
                    .err(
                        value.span(),
                        format!("`{case_id}` has no checked step `{label}`"),
                    )
                    .help(format!("its checked steps: {}", checks.join(", "))),
            ));
            continue;
        }
        let outcome: Outcome = match value.get_ref().parse() {
            Ok(o) => o,
            Err(e) => {
                errors.push(index.err(value.span(), e.to_string()));
                continue;
            }
        };
        if matches!(outcome, Outcome::NotRun) {
            errors.push(index.err(
                value.span(),
                "`not_run` is observed, never expected: leave the step out",
            ));
            continue;
        }
        let steps = ct.checked(&label, runnable);
        // (Partial: the step may be in tests not loaded.)
        if steps.is_empty() && !runnable.is_empty() && !partial {
            if let Some(stale) = stale.as_deref_mut() {
                stale.push(label);
                continue;
            }
            errors.push(rebless(index.err(
                value.span(),
                format!("step `{label}` does not occur in the tests this entry selects"),
            )));
            continue;
        }
        if let Some(s) = steps.iter().find(|s| !s.action.accepts(&outcome)) {
            errors.push(index.err(
                value.span(),
                format!(
                    "a `{}` step cannot have the outcome `{outcome}`",
                    s.action.kind()
                ),
            ));
            continue;
        }
        outcomes.push((label, outcome));
    }
    outcomes
}

/// Two entries clash when they have equal precedence and the same kernel
/// range and settings, select a common test, and give different outcomes for
/// a step that test checks. Within each such group, one sweep per label in
/// file order: each test remembers the first entry that gave the label an
/// outcome, and a later entry that gives another is reported, once. Time and
/// memory grow with the tests entries select, never with pairs of entries.
fn check_ambiguity(
    file: &ExpectFile,
    by_case: &Map<String, CaseTests>,
    errors: &mut Vec<InputError>,
) {
    let mut found = Vec::new();
    for (case_id, idxs) in &file.by_case {
        let Some(ct) = by_case.get(case_id) else {
            continue;
        };
        type Key<'a> = (
            (bool, bool, std::cmp::Reverse<usize>, bool),
            Option<&'a str>,
            &'a [(String, String)],
        );
        let mut groups: BTreeMap<Key, Vec<usize>> = BTreeMap::new();
        for &i in idxs {
            let e = &file.entries[i];
            let key = (
                e.rank(),
                e.kernel.as_ref().map(|k| k.text.as_str()),
                e.settings.as_slice(),
            );
            groups.entry(key).or_default().push(i);
        }
        for group in groups.values().filter(|g| g.len() > 1) {
            clashes_in(file, ct, group, &mut found);
        }
    }
    found.sort_by_key(|e| e.pos);
    errors.extend(found);
}

/// The clashes among one group of equal-precedence entries of one case.
fn clashes_in(file: &ExpectFile, ct: &CaseTests, group: &[usize], found: &mut Vec<InputError>) {
    let mut labels: Vec<&str> = group
        .iter()
        .flat_map(|&i| file.entries[i].outcomes.iter().map(|(l, _)| l.as_str()))
        .collect();
    labels.sort_unstable();
    labels.dedup();
    let mut reported: std::collections::BTreeSet<usize> = Default::default();
    // Each entry's tests, found once for all the labels it gives.
    let picks: Vec<Bits> = group
        .iter()
        .map(|&i| ct.axes.select(&file.entries[i].select))
        .collect();
    // Test → the first entry of the group that gives the label for it
    // (`u32::MAX`: none yet), one buffer for every label: a fresh vector of
    // `Option<usize>` per label was zeroed at 16 bytes a test.
    let mut first: Vec<u32> = Vec::new();
    for label in labels {
        let Some(checked) = ct.classes.get(label).map(|c| &c.of) else {
            continue;
        };
        first.clear();
        first.resize(ct.tests.len(), u32::MAX);
        for (&i, picked) in group.iter().zip(&picks) {
            let b = &file.entries[i];
            let Some(ob) = b.outcome(label) else { continue };
            if reported.contains(&i) {
                continue;
            }
            // The last entry found not to disagree: the tests an entry
            // picks mostly come first to the same one, and comparing it
            // again for each (5,000 entries over an 8,000-test case) was
            // most of `check`'s time.
            let mut agrees = None;
            for t in picked.iter() {
                if checked[t] == u32::MAX {
                    continue;
                }
                let j = first[t];
                if j == u32::MAX {
                    first[t] = i as u32;
                    continue;
                }
                let j = j as usize;
                if agrees == Some(j) {
                    continue;
                }
                agrees = Some(j);
                let a = &file.entries[j];
                if a.outcome(label).is_some_and(|oa| oa != ob) {
                    reported.insert(i);
                    found.push(
                        InputError::at(
                            &b.at,
                            format!(
                                "this entry and the one at line {} both give `{label}` for {} with equal precedence, but disagree",
                                a.at.line, ct.tests[t].name
                            ),
                        )
                        .help("make one of them more specific (`where`, `kernel`), or merge them"),
                    );
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Axes, Bits, SET_CLASSES};
    use crate::model::Test;

    /// A set lists its tests in order, each once, across words and up to a
    /// partial last word.
    #[test]
    fn a_set_of_tests_lists_exactly_its_members() {
        for n in [0, 1, 63, 64, 65, 130] {
            assert_eq!(
                Bits::full(n).iter().collect::<Vec<_>>(),
                (0..n).collect::<Vec<_>>()
            );
            let mut b = Bits::new(n);
            let members: Vec<usize> = (0..n).filter(|i| i % 7 == 0 || i % 64 == 63).collect();
            members.iter().for_each(|&i| b.set(i));
            assert_eq!(b.iter().collect::<Vec<_>>(), members, "n = {n}");
            assert_eq!(b.count(), members.len());
        }
    }

    /// A `where` picks the tests that have one of its labels for every
    /// parameter it names, whether the parameter's labels are few (matched
    /// as sets) or many (matched test by test).
    #[test]
    fn a_where_picks_the_tests_it_names_with_few_labels_or_many() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t")).unwrap();
        let many: Vec<String> = (0..=SET_CLASSES).map(|i| format!("\"m{i}\"")).collect();
        let case = format!(
            "title = \"grid\"\nsource = \"x\"\nsteps = [{{ do = \"sleep\", ms = 1, check = \"s\" }}]\n[grid]\nmany = [{}]\nfew = [\"a\", \"b\", \"c\"]\n",
            many.join(", ")
        );
        std::fs::write(dir.path().join("t/g.toml"), case).unwrap();
        let suite = crate::Suite::load(dir.path()).unwrap();
        let tests: Vec<&Test> = suite.tests.iter().map(|t| &**t).collect();
        let axes = Axes::new(tests.iter().copied());
        assert!(axes.by_name["few"].sets.is_some() && axes.by_name["many"].sets.is_none());
        let last = format!("m{SET_CLASSES}");
        let wheres: Vec<Vec<(&str, Vec<&str>)>> = vec![
            vec![],
            vec![("few", vec!["b"])],
            vec![("few", vec!["a", "c", "zz"])],
            vec![("many", vec!["m0", &last])],
            vec![("many", vec!["m3"]), ("few", vec!["c"])],
            vec![("few", vec!["a"]), ("many", vec!["zz"])],
            vec![("none", vec!["a"])],
        ];
        for w in wheres {
            let select: Vec<(String, Vec<String>)> = w
                .iter()
                .map(|(k, ls)| (k.to_string(), ls.iter().map(|l| l.to_string()).collect()))
                .collect();
            let picked = axes.select(&select);
            let mut count = 0;
            for (i, t) in tests.iter().enumerate() {
                let wanted = w.iter().all(|(k, ls)| {
                    t.params
                        .iter()
                        .any(|(p, l)| p == k && ls.contains(&l.as_str()))
                });
                assert_eq!(picked.has(i), wanted, "{w:?} and {}", t.name);
                count += usize::from(wanted);
            }
            assert_eq!(picked.count(), count, "{w:?}");
        }
    }

    /// `case_entries` (the claims table's way: each `where` matched once,
    /// as a set) gives every test of the shipped cases, for every label and
    /// OS, what `resolve` gives it test by test: the same entry, not only
    /// the same outcome.
    #[test]
    fn resolving_a_whole_case_agrees_with_resolving_each_test() {
        let suite = crate::Suite::load(&crate::Suite::default_root()).unwrap();
        let mut compared = 0;
        for file in suite.expectations.files.values() {
            for case in &suite.cases {
                let tests: Vec<&Test> = suite.tests_of(&case.id).map(|t| &**t).collect();
                let entries = file.case_entries(&case.id, &Axes::new(tests.iter().copied()));
                for (k, t) in tests.iter().enumerate() {
                    let mine = entries.of_test(k);
                    for (label, _) in &case.checks {
                        let got = mine.resolve(label);
                        let want = file.resolve(t, label, None);
                        assert_eq!(
                            got.map(|a| std::ptr::from_ref(a.entry)),
                            want.map(|a| std::ptr::from_ref(a.entry)),
                            "{}: {} `{label}`",
                            file.os,
                            t.name
                        );
                        compared += usize::from(want.is_some());
                    }
                }
            }
        }
        assert!(compared > 1000, "only {compared} expectations compared");
    }
}
