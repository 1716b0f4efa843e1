//! `sockspec bless`: write what a kernel did into its OS's expectation file.
//!
//! Bless edits the TOML in place (toml_edit), keeping comments, order and
//! every entry it has no reason to touch:
//!
//! - an observed entry that already gives the observed outcome gets the
//!   release added to its `seen_on`;
//! - an observed entry that selects exactly the same tests is edited in place;
//! - otherwise a new observed entry is added after the case's last entry,
//!   selecting as many of the tests that share the new outcomes as one `where`
//!   can, and always fewer tests than the entry it overrides (so it wins);
//! - when the overridden observation was made on another kernel series, the
//!   new entry is limited to the release observed (`kernel = "=6.1.192"`,
//!   not the whole series: nothing was observed on its other releases) and
//!   both stay;
//! - documented entries are never edited: an observation that disagrees gets
//!   its own entry, whose `why` records the disagreement;
//! - observed entries (or outcomes) that no test resolves to any more are removed;
//! - a run whose steps ran in another runtime's helper (`sockspec run
//!   --agent node`) records it in `seen_with` (`"node 20.20.2"`) beside
//!   `seen_on`; an entry without `seen_with` was seen with sockspec's own;
//! - a run whose stack settings differ from the OS's defaults
//!   (`sys::settings::KNOWN`) writes entries conditioned on those settings
//!   (`settings = { "net.ipv4.tcp_tw_reuse" = "0" }`), and only where the
//!   outcome differs from what applies without them (or nothing applies);
//!   it never edits or confirms an entry without that condition.
//!
//! The result is reloaded and validated before bless reports success; on any
//! error the file is restored.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value, value};

use crate::Suite;
use crate::atomic;
use crate::error::Error;
use crate::expect::{Applied, Entry, ExpectFile, Provenance, group_tests};
use crate::load::EXPECTED_DIR;
use crate::model::{OsFamily, ParamValue, Test};
use crate::outcome::Outcome;
use crate::results::{TestRecord, Verdict};
use crate::version::version_numbers;

/// What one test did, for bless.
#[derive(Clone, Debug)]
pub struct Observation {
    /// The test, as the suite defines it.
    pub test: Arc<Test>,
    /// Checked step label → what the kernel did (steps that did not run left out).
    pub outcomes: Vec<(String, Outcome)>,
}

/// What bless did to one file.
#[derive(Debug, Default)]
pub struct Summary {
    /// The expectation file written.
    pub path: PathBuf,
    /// Observed entries whose `seen_on` gained the release.
    pub confirmed: usize,
    /// Observed entries whose outcomes were rewritten in place.
    pub changed: usize,
    /// New entries.
    pub added: usize,
    /// Observed entries removed because no test resolves to them any more.
    pub removed: usize,
    /// Observed outcomes removed because their tests no longer check that
    /// step (the case changed since they were observed).
    pub unchecked: usize,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} outcome(s) confirmed, {} entr(y/ies) changed, {} added, {} removed",
            self.path.display(),
            self.confirmed,
            self.changed,
            self.added,
            self.removed
        )?;
        if self.unchecked > 0 {
            write!(
                f,
                "; {} outcome(s) of steps the cases no longer check removed",
                self.unchecked
            )?;
        }
        Ok(())
    }
}

/// Is this environment a CI? Bless refuses there: CI checks expectations, it
/// never writes them.
pub fn on_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Why a result record is not blessed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The results name a test these cases do not have.
    UnknownTest,
    /// The test did not run there (another OS, a missing option, ...).
    Skipped(String),
    /// The run gave no verdict (a harness error, a hang).
    NoVerdict(String),
    /// Outcomes varied between repeats: never blessed.
    Intermittent,
    /// A setup step or precondition failed, so the outcomes prove nothing.
    Problem {
        /// The kind of problem (`setup`, `precondition`, ...).
        problem: String,
        /// What went wrong, in words.
        reason: String,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownTest => f.write_str("no such test in these cases"),
            Refusal::Skipped(why) => write!(f, "skipped: {why}"),
            Refusal::NoVerdict(why) => write!(f, "no verdict: {why}"),
            Refusal::Intermittent => f.write_str(
                "outcomes varied between runs; an intermittent outcome is never blessed",
            ),
            Refusal::Problem { problem, reason } => write!(f, "{problem}: {reason}"),
        }
    }
}

/// Turns result records into observations; records that must not be blessed
/// come back with the reason.
pub fn observations(
    suite: &Suite,
    records: &[TestRecord],
) -> (Vec<Observation>, Vec<(String, Refusal)>) {
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for r in records {
        let Some(test) = suite.test(&r.name) else {
            refused.push((r.name.clone(), Refusal::UnknownTest));
            continue;
        };
        let reason = || r.reason.clone().unwrap_or_default();
        let why = match r.verdict {
            Verdict::Skip => Some(Refusal::Skipped(reason())),
            Verdict::Error => Some(Refusal::NoVerdict(reason())),
            Verdict::Intermittent => Some(Refusal::Intermittent),
            _ => r.problem.as_ref().map(|p| Refusal::Problem {
                problem: p.kind().to_string(),
                reason: crate::report::wording::problem(p),
            }),
        };
        if let Some(why) = why {
            refused.push((r.name.clone(), why));
            continue;
        }
        let mut outcomes = Vec::new();
        for s in &r.steps {
            let (Some(label), Ok(o)) = (&s.label, s.outcome.parse::<Outcome>()) else {
                continue;
            };
            if o != Outcome::NotRun {
                outcomes.push((label.clone(), o));
            }
        }
        out.push(Observation {
            test: test.clone(),
            outcomes,
        });
    }
    (out, refused)
}

/// The kernel series a release belongs to, as a range: `=6.1` on Linux and
/// the BSDs, the full build on Windows (every Windows is 10.0).
fn series(os: OsFamily, release: &str) -> String {
    let nums = version_numbers(release);
    let keep = match os {
        OsFamily::Windows | OsFamily::Wine => 3,
        _ => 2,
    };
    let parts: Vec<String> = nums.iter().take(keep).map(u64::to_string).collect();
    format!("={}", parts.join("."))
}

/// The range a new entry limited to one release's series gets: only the
/// release observed (`=6.1.192`), never the whole series, since nothing
/// says its other releases behave alike (see the window rule in
/// [`crate::expect`]).
fn observed_range(release: &str) -> String {
    let parts: Vec<String> = version_numbers(release)
        .iter()
        .map(u64::to_string)
        .collect();
    format!("={}", parts.join("."))
}

fn same_series(os: OsFamily, a: &str, b: &str) -> bool {
    series(os, a) == series(os, b)
}

/// A test whose outcomes need a new observed entry.
struct Pending {
    test: Arc<Test>,
    outcomes: BTreeMap<String, Outcome>,
    /// The new entry may select at most this many tests.
    max_selected: usize,
    notes: BTreeSet<String>,
    /// Per label, the observed entry (same kernel series) this would override.
    replaces: BTreeMap<String, Option<usize>>,
}

/// Writes `obs` (made on `os` `release` with the OS's default settings)
/// into `os`'s expectation file.
pub fn bless(
    suite: &Suite,
    os: OsFamily,
    release: &str,
    obs: &[Observation],
) -> Result<Summary, Error> {
    bless_in(suite, os, release, &BTreeMap::new(), None, obs)
}

/// Writes `obs` (made on `os` `release`, with these stack `settings` and
/// this `implementation`: the results header's) into `os`'s expectation file.
/// If the tree may hold observed outcomes of steps the cases no longer
/// check, load `suite` with [`crate::Scope::setting_aside_stale`]; bless's
/// own reloads set them aside, and it removes those in `os`'s file.
pub fn bless_in(
    suite: &Suite,
    os: OsFamily,
    release: &str,
    settings: &BTreeMap<String, String>,
    implementation: Option<&str>,
    obs: &[Observation],
) -> Result<Summary, Error> {
    let file = suite.expectations.for_os(os);
    let ctx = Ctx {
        suite,
        os,
        release,
        settings,
        implementation,
        runtime: crate::results::other_runtime(implementation),
        cond: crate::sys::settings::conditions(os, release, settings)
            .into_iter()
            .collect(),
        file,
        entries: file.map(|f| f.entries.as_slice()).unwrap_or_default(),
    };
    let path = suite.root.join(EXPECTED_DIR).join(format!("{os}.toml"));
    let original = match std::fs::read_to_string(&path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&path, e)),
    };
    let text = original.clone().unwrap_or_else(|| header(os));
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;

    let mut plan = Plan::default();
    for o in obs {
        for (label, outcome) in &o.outcomes {
            ctx.note_contradictions(&mut plan, o, label, outcome);
            match ctx.decide(o, label, outcome) {
                Decision::Nothing => {}
                Decision::Confirm(i) => {
                    plan.confirm.insert(i);
                }
                Decision::Edit(i) => {
                    plan.edits
                        .entry(i)
                        .or_default()
                        .insert(label.clone(), outcome.clone());
                }
                Decision::New(n) => plan.add_pending(o, label, outcome, n),
            }
        }
    }
    let new_entries = ctx.new_entries(&mut plan);

    let mut summary = Summary {
        path: path.clone(),
        ..Summary::default()
    };
    let array = expect_array(&mut doc)?;
    ctx.apply_edits(array, &plan.edits, &path, &mut summary)?;
    ctx.apply_confirmations(array, &plan, &mut summary);
    summary.added = insert_entries(array, new_entries);
    write_checked(suite, os, &path, &doc.to_string(), original, summary)
}

/// What one bless run knows while deciding: the run's header and the
/// expectation file it writes.
struct Ctx<'a> {
    suite: &'a Suite,
    os: OsFamily,
    release: &'a str,
    settings: &'a BTreeMap<String, String>,
    implementation: Option<&'a str>,
    /// The runtime that ran the steps when it was not sockspec's own.
    runtime: Option<&'a str>,
    /// The settings condition new entries get (empty under the defaults).
    cond: Vec<(String, String)>,
    file: Option<&'a ExpectFile>,
    entries: &'a [Entry],
}

/// What bless will do to the file, by entry index.
#[derive(Default)]
struct Plan {
    /// Observed entries whose `seen_on` gains the release.
    confirm: BTreeSet<usize>,
    /// Observed entries this run contradicts for some label, even where a
    /// narrower entry (a kernel range) took precedence: their `seen_on` must
    /// not gain this release, since it would claim every outcome in them.
    contradicted: BTreeSet<usize>,
    /// Observed entries whose outcomes are rewritten in place.
    edits: BTreeMap<usize, BTreeMap<String, Outcome>>,
    /// (case, kernel range) → test name → outcomes that need a new entry.
    pending: BTreeMap<(String, Option<String>), BTreeMap<String, Pending>>,
}

/// What one observed outcome asks of the file.
enum Decision {
    /// Nothing: it agrees with what applies and no entry records runs there.
    Nothing,
    /// The observed entry at this index gives the outcome: add the release.
    Confirm(usize),
    /// The observed entry at this index selects only this test: rewrite it.
    Edit(usize),
    /// A new entry.
    New(NewOutcome),
}

/// Where a new entry for one observed outcome may go.
struct NewOutcome {
    /// The kernel range it is limited to.
    kernel: Option<String>,
    /// It may select at most this many tests (fewer than what it overrides).
    max_selected: usize,
    /// Why, for the entry's `why`; empty when there is nothing to say.
    note: String,
    /// The observed entry (same kernel series) it would override.
    replaces: Option<usize>,
}

impl Plan {
    fn add_pending(&mut self, o: &Observation, label: &str, outcome: &Outcome, n: NewOutcome) {
        let p = self
            .pending
            .entry((o.test.case.id.clone(), n.kernel))
            .or_default()
            .entry(o.test.name.clone())
            .or_insert_with(|| Pending {
                test: o.test.clone(),
                outcomes: BTreeMap::new(),
                max_selected: usize::MAX,
                notes: BTreeSet::new(),
                replaces: BTreeMap::new(),
            });
        p.outcomes.insert(label.to_string(), outcome.clone());
        p.replaces.insert(label.to_string(), n.replaces);
        p.max_selected = p.max_selected.min(n.max_selected);
        if !n.note.is_empty() {
            p.notes.insert(format!("{label}: {}", n.note));
        }
    }
}

impl Ctx<'_> {
    fn index_of(&self, e: &Entry) -> usize {
        self.entries
            .iter()
            .position(|x| std::ptr::eq(x, e))
            .expect("entry of this file")
    }

    /// Records the observed entries this outcome contradicts. Windows aside:
    /// an observation inside one contradicts only the entries that really
    /// give another outcome.
    fn note_contradictions(
        &self,
        plan: &mut Plan,
        o: &Observation,
        label: &str,
        outcome: &Outcome,
    ) {
        let Some(f) = self.file else { return };
        for c in f.ranked_in(&o.test, label, Some(self.release), Some(self.settings)) {
            if c.outcome != outcome && matches!(c.entry.provenance, Provenance::Observed { .. }) {
                plan.contradicted.insert(self.index_of(c.entry));
            }
        }
    }

    fn decide(&self, o: &Observation, label: &str, outcome: &Outcome) -> Decision {
        let top = self
            .file
            .and_then(|f| f.resolve_in(&o.test, label, Some(self.release), Some(self.settings)));
        let Some(a) = top else {
            return Decision::New(NewOutcome {
                kernel: None,
                max_selected: usize::MAX,
                note: String::new(),
                replaces: None,
            });
        };
        // Under non-default settings, an entry without this exact condition
        // is never confirmed or edited: agreeing with it needs nothing,
        // differing needs a conditioned entry.
        if a.entry.settings != self.cond {
            if a.outcome == outcome {
                return Decision::Nothing;
            }
            let what = match &a.entry.provenance {
                Provenance::Documented { cite, .. } => format!("documented ({cite})"),
                p => p.summary(),
            };
            return Decision::New(NewOutcome {
                kernel: None,
                max_selected: usize::MAX,
                note: format!(
                    "{} applies without these settings ({what}, {})",
                    a.outcome,
                    short_place(a.entry)
                ),
                replaces: None,
            });
        }
        if a.window.is_some() && *a.outcome == Outcome::Unknown {
            return self.decide_in_window(o, label, outcome, &a);
        }
        match &a.entry.provenance {
            Provenance::Observed { seen_on, .. } => self.decide_observed(outcome, &a, seen_on),
            Provenance::Documented { cite, .. } => {
                let note = if a.outcome == outcome {
                    format!("agrees with the documented {} ({cite})", a.outcome)
                } else {
                    format!(
                        "the run disagrees with the documented {} ({cite}, {})",
                        a.outcome,
                        short_place(a.entry)
                    )
                };
                Decision::New(NewOutcome {
                    kernel: None,
                    max_selected: usize::MAX,
                    note,
                    replaces: None,
                })
            }
        }
    }

    /// Inside a window of disagreeing observations (the expectation is
    /// `unknown`) the run is a new observation there. An unranged observed
    /// entry that gives the same outcome gains the release (the window
    /// shrinks); otherwise an entry limited to the release observed.
    fn decide_in_window(
        &self,
        o: &Observation,
        label: &str,
        outcome: &Outcome,
        a: &Applied<'_>,
    ) -> Decision {
        let w = a.window.map(|w| w.text()).unwrap_or_default();
        let same = self
            .file
            .map(|f| f.ranked_in(&o.test, label, Some(self.release), Some(self.settings)))
            .unwrap_or_default()
            .into_iter()
            .find(|c| matches!(c.entry.provenance, Provenance::Observed { .. }))
            .filter(|c| {
                c.outcome == outcome && c.entry.kernel.is_none() && c.entry.settings == self.cond
            });
        if let Some(c) = same {
            return Decision::Confirm(self.index_of(c.entry));
        }
        Decision::New(NewOutcome {
            kernel: Some(observed_range(self.release)),
            max_selected: narrower_than(a.entry),
            note: format!("observed in the window {w}, where no outcome was known"),
            replaces: None,
        })
    }

    /// Against an observed entry: confirm it, or edit (or replace) it only
    /// when every release it lists is of this series. An entry that also
    /// speaks for other kernels stays true for them, and the new outcome
    /// gets an entry limited to the release observed.
    fn decide_observed(&self, outcome: &Outcome, a: &Applied<'_>, seen_on: &[String]) -> Decision {
        let i = self.index_of(a.entry);
        if a.outcome == outcome {
            return Decision::Confirm(i);
        }
        let os = self.os;
        if !seen_on.is_empty() && seen_on.iter().all(|r| same_series(os, r, self.release)) {
            if a.entry.selected == 1 {
                return Decision::Edit(i);
            }
            return Decision::New(NewOutcome {
                kernel: a.entry.kernel.as_ref().map(|k| k.text.clone()),
                max_selected: a.entry.selected - 1,
                note: format!("was {} (observed on {})", a.outcome, seen_on.join(", ")),
                replaces: Some(i),
            });
        }
        Decision::New(NewOutcome {
            kernel: Some(observed_range(self.release)),
            max_selected: narrower_than(a.entry),
            note: format!(
                "differs from {} observed on {}",
                a.outcome,
                seen_on.join(", ")
            ),
            replaces: None,
        })
    }

    /// Groups pending tests by identical outcomes and finds selectors for
    /// them: an observed entry that selects exactly a group is edited (into
    /// `plan.edits`), the rest become new entries (case id, table).
    fn new_entries(&self, plan: &mut Plan) -> Vec<(String, Table)> {
        let by_case = group_tests(&self.suite.tests);
        let mut out = Vec::new();
        for ((case_id, kernel), tests) in std::mem::take(&mut plan.pending) {
            let all = by_case.get(&case_id).cloned().unwrap_or_default();
            let mut groups: BTreeMap<Vec<(String, String)>, Vec<&Pending>> = BTreeMap::new();
            for p in tests.values() {
                let key = p
                    .outcomes
                    .iter()
                    .map(|(l, o)| (l.clone(), o.to_string()))
                    .collect();
                groups.entry(key).or_default().push(p);
            }
            for group in groups.values() {
                let outcomes = &group[0].outcomes;
                let members: Vec<&Arc<Test>> = group.iter().map(|p| &p.test).collect();
                // Every test of one observed entry changed the same way: edit it.
                let replaced: BTreeSet<Option<usize>> = group
                    .iter()
                    .flat_map(|p| p.replaces.values().copied())
                    .collect();
                if let [Some(i)] = replaced.iter().copied().collect::<Vec<_>>()[..] {
                    let names: BTreeSet<&str> = members.iter().map(|t| t.name.as_str()).collect();
                    if names == self.selected_by(&self.entries[i], &all) {
                        plan.edits.entry(i).or_default().extend(outcomes.clone());
                        continue;
                    }
                }
                let max = group.iter().map(|p| p.max_selected).min();
                let notes: BTreeSet<&String> = group.iter().flat_map(|p| &p.notes).collect();
                for select in cover(&members, &all, max.unwrap_or(usize::MAX)) {
                    let set: BTreeSet<&str> = all
                        .iter()
                        .filter(|t| selects(&select, t))
                        .map(|t| t.name.as_str())
                        .collect();
                    // An observed entry with the same selection and range: edit it.
                    let same = self.entries.iter().position(|e| {
                        matches!(e.provenance, Provenance::Observed { .. })
                            && e.case == case_id
                            && e.kernel.as_ref().map(|k| &k.text) == kernel.as_ref()
                            && e.settings == self.cond
                            && self.selected_by(e, &all) == set
                    });
                    if let Some(i) = same {
                        plan.edits.entry(i).or_default().extend(outcomes.clone());
                        continue;
                    }
                    let table = new_entry(
                        &members[0].case,
                        &select,
                        kernel.as_deref(),
                        &self.cond,
                        outcomes,
                        &self.run_text(),
                        self.release,
                        self.runtime,
                        &notes,
                    );
                    out.push((case_id.clone(), table));
                }
            }
        }
        out
    }

    /// The names of the tests of `all` that `e` selects.
    fn selected_by<'t>(&self, e: &Entry, all: &'t [Arc<Test>]) -> BTreeSet<&'t str> {
        all.iter()
            .filter(|t| e.selects(t))
            .map(|t| t.name.as_str())
            .collect()
    }

    /// The run, as a new entry's `why` names it: `linux 6.1.192 with
    /// net.ipv4.tcp_tw_reuse=0 (steps in node 20.20.2)`.
    fn run_text(&self) -> String {
        let mut run = format!("{} {}", self.os, self.release);
        if !self.cond.is_empty() {
            let c: Vec<String> = self.cond.iter().map(|(k, v)| format!("{k}={v}")).collect();
            run.push_str(&format!(" with {}", c.join(", ")));
        }
        if let Some(r) = self.runtime {
            run.push_str(&format!(" (steps in {r})"));
        }
        run
    }

    fn apply_edits(
        &self,
        array: &mut toml_edit::ArrayOfTables,
        edits: &BTreeMap<usize, BTreeMap<String, Outcome>>,
        path: &std::path::Path,
        summary: &mut Summary,
    ) -> Result<(), Error> {
        for (i, outcomes) in edits {
            let t = array
                .get_mut(*i)
                .ok_or_else(|| Error::Other("expectation index out of range".into()))?;
            let outs = t
                .entry("outcomes")
                .or_insert(Item::Value(Value::InlineTable(InlineTable::new())))
                .as_inline_table_mut()
                .ok_or_else(|| {
                    Error::Other(format!(
                        "{}: `outcomes` is not an inline table",
                        path.display()
                    ))
                })?;
            for (l, o) in outcomes {
                outs.insert(l, o.to_string().into());
            }
            outs.fmt();
            t["seen_on"] = value(Array::from_iter([self.release]));
            set_seen_with(t, self.runtime.into_iter().collect());
            summary.changed += 1;
        }
        Ok(())
    }

    /// Adds the release to the `seen_on` of every confirmed entry that was
    /// neither edited nor contradicted, and the runtime to its `seen_with`.
    fn apply_confirmations(
        &self,
        array: &mut toml_edit::ArrayOfTables,
        plan: &Plan,
        summary: &mut Summary,
    ) {
        let edited: BTreeSet<usize> = plan.edits.keys().copied().collect();
        for i in plan
            .confirm
            .difference(&edited)
            .filter(|i| !plan.contradicted.contains(i))
        {
            let Some(t) = array.get_mut(*i) else { continue };
            let Some(seen) = t.get_mut("seen_on").and_then(Item::as_array_mut) else {
                continue;
            };
            if !seen.iter().any(|v| v.as_str() == Some(self.release)) {
                seen.push(self.release);
            }
            let Provenance::Observed { seen_with, .. } = &self.entries[*i].provenance else {
                unreachable!("only observed entries are confirmed")
            };
            let with = self.seen_with_after(seen_with);
            if with != *seen_with {
                set_seen_with(t, with.iter().map(String::as_str).collect());
            }
            summary.confirmed += 1;
        }
    }

    /// A confirmed entry's `seen_with` once this run is counted. No
    /// `seen_with` means sockspec's own: it stays so until another runtime
    /// shows the same, and then both are named.
    fn seen_with_after(&self, seen_with: &[String]) -> Vec<String> {
        let builtin = crate::results::BUILTIN;
        let mine = self.runtime.or(self.implementation).unwrap_or(builtin);
        let mut with = seen_with.to_vec();
        if with.is_empty() && self.runtime.is_some() {
            with.push(builtin.to_string());
        }
        let known = |w: &String| w == mine || (self.runtime.is_none() && w.starts_with(builtin));
        if !with.is_empty() && !with.iter().any(known) {
            with.push(mine.to_string());
        }
        with
    }
}

/// How many tests a new entry may select to override `e`: as many where `e`
/// is unranged (a range wins over no range), one fewer otherwise.
fn narrower_than(e: &Entry) -> usize {
    if e.kernel.is_none() {
        e.selected
    } else {
        e.selected - 1
    }
}

/// Inserts each new entry after the last entry of its case (or at the end),
/// keeping the new entries' order; returns how many.
fn insert_entries(array: &mut toml_edit::ArrayOfTables, new: Vec<(String, Table)>) -> usize {
    let mut inserts: Vec<(usize, usize, Table)> = Vec::new();
    for (n, (case_id, table)) in new.into_iter().enumerate() {
        let after = (0..array.len()).rev().find(|i| {
            array
                .get(*i)
                .and_then(|t| t.get("case"))
                .and_then(Item::as_str)
                == Some(case_id.as_str())
        });
        inserts.push((after.map_or(array.len(), |i| i + 1), n, table));
    }
    let added = inserts.len();
    inserts.sort_by_key(|(at, n, _)| std::cmp::Reverse((*at, *n)));
    for (at, _, table) in inserts {
        array.insert(at, table);
    }
    added
}

/// Writes the edited file whole, reloads the suite to validate it and drops
/// observed entries nothing resolves to any more; on any error restores the
/// original (or removes a file bless created).
fn write_checked(
    suite: &Suite,
    os: OsFamily,
    path: &std::path::Path,
    written: &str,
    original: Option<String>,
    mut summary: Summary,
) -> Result<Summary, Error> {
    std::fs::create_dir_all(suite.root.join(EXPECTED_DIR)).map_err(|e| Error::io(path, e))?;
    atomic::write_text_like(path, written, original.as_deref()).map_err(|e| Error::io(path, e))?;
    let result = Suite::load_scoped(&suite.root, &crate::Scope::setting_aside_stale())
        .map_err(Error::from)
        .and_then(|reloaded| prune(&reloaded, os, path, &mut summary));
    if let Err(e) = result {
        match &original {
            Some(t) => atomic::write(path, t.as_bytes()).map_err(|e| Error::io(path, e))?,
            None => std::fs::remove_file(path).map_err(|e| Error::io(path, e))?,
        }
        return Err(Error::Other(format!(
            "bless would leave {} invalid, so it was left as it was:\n{e}",
            path.display()
        )));
    }
    Ok(summary)
}

fn expect_array(doc: &mut DocumentMut) -> Result<&mut toml_edit::ArrayOfTables, Error> {
    doc.entry("expect")
        .or_insert(Item::ArrayOfTables(toml_edit::ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| Error::Other("`expect` must be an array of tables ([[expect]])".into()))
}

/// Removes unranged observed outcomes that no test resolves to (they are all
/// overridden), observed outcomes of steps their tests no longer check
/// (set aside by the load, [`crate::Scope::set_aside_stale`]), and
/// entries left with none.
fn prune(
    suite: &Suite,
    os: OsFamily,
    path: &std::path::Path,
    summary: &mut Summary,
) -> Result<(), Error> {
    let Some(file) = suite.expectations.for_os(os) else {
        return Ok(());
    };
    let by_case = group_tests(&suite.tests);
    let mut dead: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for (i, e) in file.entries.iter().enumerate() {
        if !e.stale.is_empty() {
            dead.entry(i).or_default().extend(e.stale.iter().cloned());
        }
        if e.kernel.is_some()
            || !e.settings.is_empty()
            || !matches!(e.provenance, Provenance::Observed { .. })
        {
            continue;
        }
        let tests = by_case.get(&e.case).map(Vec::as_slice).unwrap_or_default();
        for (label, _) in &e.outcomes {
            let used = tests.iter().any(|t| {
                e.selects(t)
                    && file
                        .resolve(t, label, None)
                        .is_some_and(|a| std::ptr::eq(a.entry, e))
            });
            if !used {
                dead.entry(i).or_default().push(label.clone());
            }
        }
    }
    if dead.is_empty() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let array = expect_array(&mut doc)?;
    let mut remove = Vec::new();
    for (i, labels) in &dead {
        let e = &file.entries[*i];
        let all_dead = labels.len() == e.outcomes.len() + e.stale.len();
        if all_dead {
            remove.push(*i);
            // An entry left with none of its steps is the case's change,
            // not an observation overridden.
            if labels.len() > e.stale.len() {
                summary.removed += 1;
            }
            summary.unchecked += e.stale.len();
        } else if let Some(outs) = array
            .get_mut(*i)
            .and_then(|t| t.get_mut("outcomes"))
            .and_then(Item::as_inline_table_mut)
        {
            for l in labels {
                if outs.remove(l).is_some() && e.stale.contains(l) {
                    summary.unchecked += 1;
                }
            }
            outs.fmt();
        }
    }
    for i in remove.iter().rev() {
        array.remove(*i);
    }
    atomic::write_text_like(path, &doc.to_string(), Some(&text)).map_err(|e| Error::io(path, e))?;
    let reloaded = Suite::load_scoped(&suite.root, &crate::Scope::setting_aside_stale())?;
    // What the load still set aside in this file, bless could not remove
    // (an `outcomes` written as a table of its own): `check` would refuse it.
    if let Some(e) = reloaded
        .expectations
        .for_os(os)
        .and_then(|f| f.entries.iter().find(|e| !e.stale.is_empty()))
    {
        return Err(Error::Other(format!(
            "{}: the entry there still gives `{}`, a step its tests no longer check",
            e.at,
            e.stale.join("`, `")
        )));
    }
    Ok(())
}

fn header(os: OsFamily) -> String {
    format!(
        "# Expectations for {os}: what each checked step does there, and how we know.\n\
         # Observed entries are written by `sockspec bless` from real runs; documented\n\
         # entries cite their source. Format: README.md, \"Expectation files\".\n\
         os = \"{os}\"\n"
    )
}

type Selector = Vec<(String, Vec<String>)>;

fn selects(sel: &Selector, t: &Test) -> bool {
    sel.iter()
        .all(|(k, labels)| t.param(k).is_some_and(|v| labels.iter().any(|l| l == v)))
}

/// Selectors that together pick exactly `members` out of `all`, each picking
/// at most `max` tests. Constrains only parameters that vary outside the
/// group, and splits the group when one selector cannot fit it.
fn cover(members: &[&Arc<Test>], all: &[Arc<Test>], max: usize) -> Vec<Selector> {
    let Some(first) = members.first() else {
        return Vec::new();
    };
    let axes = &first.case.grid;
    let mut sel: Selector = Vec::new();
    for (name, values) in axes {
        let used: BTreeSet<&str> = members.iter().filter_map(|t| t.param(name)).collect();
        if used.len() < values.len() {
            // Keep the axis's order.
            let labels = values
                .iter()
                .filter(|v| used.contains(v.label.as_str()))
                .map(|v| v.label.clone())
                .collect();
            sel.push((name.clone(), labels));
        }
    }
    let picked = all.iter().filter(|t| selects(&sel, t)).count();
    if picked == members.len() && picked <= max {
        return vec![sel];
    }
    if members.len() == 1 {
        // The exact test: every parameter.
        return vec![
            first
                .params
                .iter()
                .map(|(k, v)| (k.clone(), vec![v.clone()]))
                .collect(),
        ];
    }
    // Split on the axis with the most distinct values among the members.
    let split = axes
        .iter()
        .map(|(name, _)| {
            let n = members
                .iter()
                .filter_map(|t| t.param(name))
                .collect::<BTreeSet<_>>()
                .len();
            (n, name)
        })
        .filter(|(n, _)| *n > 1)
        .max_by_key(|(n, _)| *n)
        .map(|(_, name)| name.clone())
        .expect("two different tests differ in some parameter");
    let mut parts: BTreeMap<String, Vec<&Arc<Test>>> = BTreeMap::new();
    for t in members {
        parts
            .entry(t.param(&split).unwrap_or_default().to_string())
            .or_default()
            .push(t);
    }
    // Follow the axis order for stable output.
    let order: Vec<&ParamValue> = axes
        .iter()
        .find(|(n, _)| *n == split)
        .map(|(_, v)| v.iter().collect())
        .unwrap_or_default();
    let mut out = Vec::new();
    for v in order {
        if let Some(part) = parts.get(&v.label) {
            out.extend(cover(part, all, max));
        }
    }
    out
}

/// The TOML value that names a label in `where`: the grid's own scalar when
/// it reads the same, else the label.
fn label_value(axis: &[ParamValue], label: &str) -> Value {
    let scalar = axis
        .iter()
        .find(|p| p.label == label)
        .and_then(|p| match &p.value {
            toml::Value::Boolean(b) if b.to_string() == label => Some(Value::from(*b)),
            toml::Value::Integer(i) if i.to_string() == label => Some(Value::from(*i)),
            _ => None,
        });
    scalar.unwrap_or_else(|| Value::from(label))
}

#[allow(clippy::too_many_arguments)]
fn new_entry(
    case: &crate::model::Case,
    select: &Selector,
    kernel: Option<&str>,
    cond: &[(String, String)],
    outcomes: &BTreeMap<String, Outcome>,
    run: &str,
    release: &str,
    runtime: Option<&str>,
    notes: &BTreeSet<&String>,
) -> Table {
    let mut t = Table::new();
    t.decor_mut().set_prefix("\n");
    let grid = &case.grid;
    t["case"] = value(&case.id);
    if !select.is_empty() {
        let mut w = InlineTable::new();
        for (k, labels) in select {
            let axis = grid
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_slice())
                .unwrap_or_default();
            let v = if labels.len() == 1 {
                label_value(axis, &labels[0])
            } else {
                Value::Array(labels.iter().map(|l| label_value(axis, l)).collect())
            };
            w.insert(k, v);
        }
        t["where"] = Item::Value(Value::InlineTable(w));
    }
    if let Some(k) = kernel {
        t["kernel"] = value(k);
    }
    if !cond.is_empty() {
        let mut c = InlineTable::new();
        for (k, v) in cond {
            c.insert(k, v.as_str().into());
        }
        t["settings"] = Item::Value(Value::InlineTable(c));
    }
    let mut o = InlineTable::new();
    // In the order the case checks them.
    for (l, _) in &case.checks {
        if let Some(v) = outcomes.get(l) {
            o.insert(l, v.to_string().into());
        }
    }
    t["outcomes"] = Item::Value(Value::InlineTable(o));
    t["source"] = value("observed");
    t["seen_on"] = value(Array::from_iter([release]));
    if let Some(r) = runtime {
        t["seen_with"] = value(Array::from_iter([r]));
    }
    let why = if notes.is_empty() {
        format!("blessed from a run on {run}")
    } else {
        format!(
            "blessed from a run on {run}; {}",
            notes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    t["why"] = value(why);
    t
}

/// Sets an entry's `seen_with` (after `seen_on`, `why` kept last), or
/// removes it when `with` is empty (sockspec's own).
fn set_seen_with(t: &mut Table, with: Vec<&str>) {
    t.remove("seen_with");
    if with.is_empty() {
        return;
    }
    let why = t.remove("why");
    t["seen_with"] = value(Array::from_iter(with));
    if let Some(w) = why {
        t.insert("why", w);
    }
}

/// `linux.toml:12`: an entry's file name and line, for notes in `why`.
fn short_place(e: &Entry) -> String {
    let file =
        e.at.file
            .file_name()
            .map(|f| f.to_string_lossy())
            .unwrap_or_default();
    format!("{file}:{}", e.at.line)
}
