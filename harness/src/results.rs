//! The results file: one run of the suite on one machine, as JSON.
//!
//! Schema `sockspec/results/v2` (documented in README.md, "Results JSON").
//! Additive changes keep the version; anything that changes the meaning of
//! an existing field bumps it. Readers reject other schema values.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The `schema` value this sockspec writes and the only one [`Results::parse`] accepts.
pub const SCHEMA: &str = "sockspec/results/v2";

/// A whole results file: the run's header, its totals, and one record per test.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    /// Always [`SCHEMA`]; files with any other value are refused when read.
    pub schema: String,
    /// Where and how the run happened (OS, kernel, options, stack settings).
    pub run: RunInfo,
    /// How many tests ended with each verdict.
    pub summary: Summary,
    /// One record per selected test that was reached (an interrupted run lacks the rest), in the
    /// suite's order.
    pub tests: Vec<TestRecord>,
    /// The sources the steps' expectations cite (`expectation.cites`), by
    /// id: each once per run, not once per step.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sources: BTreeMap<String, CitedSource>,
}

/// Where and how the run happened. Two results files with equal headers
/// hold the same run (`report` refuses them): the start time (to the second)
/// and the duration (to a fraction of a millisecond) never both agree for
/// two runs, and a label is how a copy is named as a run of its own.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// OS family: linux, macos, windows, freebsd, openbsd, netbsd, illumos, wine.
    pub os: String,
    /// Kernel release (`uname -r`; Windows build `10.0.N`; Wine version under Wine).
    pub kernel: String,
    /// Longer OS description.
    pub os_detail: String,
    /// CPU architecture sockspec was built for (`x86_64`, `aarch64`, ...).
    pub arch: String,
    /// sockspec version.
    pub sockspec: String,
    /// RFC 3339 UTC start time.
    pub started: String,
    /// Wall-clock time of the whole run, in milliseconds.
    #[serde(serialize_with = "microseconds")]
    pub duration_ms: f64,
    /// Worker threads the run used: `--jobs`, capped at the number of selected tests.
    pub jobs: usize,
    /// How many times each test was run (`--repeat`); records fold the repeats into one.
    pub repeat: u32,
    /// `netns` (a network namespace per worker) or `host`.
    pub isolation: String,
    /// Whether the run had root / Administrator rights.
    pub privileged: bool,
    /// A free-form name for this run (`--label`), e.g. the CI job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The stack profile applied in each worker's namespace (`--stack-profile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Settings of the network stack that change outcomes (Linux sysctls as
    /// read inside the namespace the tests ran in; FreeBSD and macOS
    /// sysctls; Windows' dynamic port ranges and registry values; under Wine
    /// the host's Linux sysctls), `sys::settings::KNOWN`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub settings: BTreeMap<String, String>,
    /// What ran the steps: the runtime and its version (`python 3.11.7`
    /// with `--agent`; `rust std (sockspec 0.1.0)` by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// The run was interrupted (SIGINT / SIGTERM): tests not listed did not run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

impl RunInfo {
    /// A short name for the run: its label, or OS and kernel.
    pub fn title(&self) -> String {
        let title = match &self.label {
            Some(l) => l.clone(),
            None => format!("{} {}", self.os, self.kernel),
        };
        // Another runtime than sockspec's own is part of the run's name.
        match self.runtime() {
            Some(i) if !title.contains(i) => format!("{title} ({i})"),
            _ => title,
        }
    }

    /// The runtime that ran the steps when it is not sockspec's own
    /// (`node 20.20.2`, from a run with `--agent`).
    pub fn runtime(&self) -> Option<&str> {
        other_runtime(self.implementation.as_deref())
    }
}

/// `implementation` (a results header's), unless it is sockspec's own.
pub fn other_runtime(implementation: Option<&str>) -> Option<&str> {
    implementation.filter(|i| !i.starts_with(BUILTIN))
}

/// How sockspec's own implementation's name begins (`rust std (sockspec 0.1.0)`).
pub const BUILTIN: &str = "rust std";

/// The results' totals: how many tests ended with each [`Verdict`].
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    /// Number of test records.
    pub total: usize,
    /// Tests whose verdict is `pass`.
    pub pass: usize,
    /// Tests whose verdict is `fail`.
    pub fail: usize,
    /// Tests whose verdict is `error`.
    pub error: usize,
    /// Tests whose verdict is `skip`.
    pub skip: usize,
    /// Tests whose verdict is `intermittent`.
    pub intermittent: usize,
}

impl Summary {
    /// Counts the verdicts of `tests`.
    pub fn of(tests: &[TestRecord]) -> Summary {
        let mut s = Summary {
            total: tests.len(),
            ..Summary::default()
        };
        for t in tests {
            match t.verdict {
                Verdict::Pass => s.pass += 1,
                Verdict::Fail => s.fail += 1,
                Verdict::Error => s.error += 1,
                Verdict::Skip => s.skip += 1,
                Verdict::Intermittent => s.intermittent += 1,
            }
        }
        s
    }

    /// Whether the run is clean: nothing failed, errored or varied between repeats (skips are
    /// fine).
    pub fn ok(&self) -> bool {
        self.fail == 0 && self.error == 0 && self.intermittent == 0
    }
}

/// A test's overall result; serialized in lowercase (`pass`, `fail`, ...).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every checked step did what this OS's expectations say.
    Pass,
    /// A checked step did something else, had no expectation, or its
    /// expectation is `unknown`; or a precondition was not met.
    Fail,
    /// The test could not produce a verdict (setup failed, harness error, hung).
    Error,
    /// The test cannot run here; `reason` says why.
    Skip,
    /// Repeated runs (`--repeat`) gave different outcomes.
    Intermittent,
}

impl Verdict {
    /// The verdict as it is written in the JSON (`pass`, `fail`, `error`, `skip`,
    /// `intermittent`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Error => "error",
            Verdict::Skip => "skip",
            Verdict::Intermittent => "intermittent",
        }
    }
}

/// What one test did on this machine and how it was judged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestRecord {
    /// The test's full name: the case id then each parameter
    /// (`bind::pairs::mode=plain::proto=tcp`).
    pub name: String,
    /// Id of the case the test was expanded from (`bind::pairs`).
    pub case: String,
    /// The case's topic: the directory its file is in (`bind`).
    pub topic: String,
    /// The case's title, a one-line description of what it shows.
    pub title: String,
    /// The case file and the line of its first step.
    pub file: String,
    /// Line of the test's first step in `file` (1 when it has no steps).
    pub line: usize,
    /// The parameter values of this test's combination, by parameter name.
    pub params: BTreeMap<String, String>,
    /// The test's result: pass, fail, error, skip or intermittent.
    pub verdict: Verdict,
    /// Why a test was skipped, or what varied between repeats: text.
    /// Failures are data ([`TestRecord::mismatches`], [`TestRecord::problem`]);
    /// reporters word them (`report::wording`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why there is no kernel verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// The checked steps that did not do what this OS's expectations say.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mismatches: Vec<Mismatch>,
    /// Time the test took, in milliseconds: all its attempts, averaged over repeats.
    #[serde(serialize_with = "microseconds")]
    pub duration_ms: f64,
    /// How many attempts the (reported) run took; more than 1 after port trouble, 0 when it
    /// never started.
    pub attempts: u32,
    /// Why earlier attempts were re-run (port trouble), one entry per re-run attempt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<String>,
    /// Every step that ran in the last attempt, checked or not, in order.
    pub steps: Vec<StepRecord>,
    /// For a case that tries a recipe: whether it worked here (`works`,
    /// `fails (...)`, `unknown (...)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipe: Option<String>,
    /// With `--repeat`: each distinct set of outcomes and how often it came up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<Variant>,
}

impl TestRecord {
    /// The outcome of a checked step.
    pub fn outcome(&self, label: &str) -> Option<&str> {
        self.steps
            .iter()
            .find(|s| s.label.as_deref() == Some(label))
            .map(|s| s.outcome.as_str())
    }

    /// `label=outcome` for every checked step: what the test did, in one line.
    pub fn signature(&self) -> String {
        let mut parts: Vec<String> = self
            .steps
            .iter()
            .filter_map(|s| s.label.as_ref().map(|l| format!("{l}={}", s.outcome)))
            .collect();
        if parts.is_empty() {
            parts.push(self.verdict.as_str().to_string());
        }
        parts.join(" ")
    }
}

/// Why a test has no kernel verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Problem {
    /// An unchecked step (setup) failed.
    Setup {
        /// Index of the setup step that failed.
        step: usize,
        /// What the step gave instead of succeeding, as text (outcome and detail).
        msg: String,
        /// Where the step is written, and what it does (filled in by judge).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        /// The step in one line (`bind b 127.0.0.1:port(a)`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        what: Option<String>,
    },
    /// A `require` was not met: the test could not show what it claims.
    Precondition {
        /// Index of the step whose `require` was not met.
        step: usize,
        /// The outcome the step had to give and the one it gave, as text.
        msg: String,
    },
    /// The harness could not do its part (read the kernel's table, ...).
    Harness {
        /// What the harness could not do, as text.
        msg: String,
    },
    /// The attempt did not finish by its deadline and was abandoned.
    Hung,
    /// The machine lacks something the test needs (found out at run time).
    Unavailable {
        /// What is missing (also copied to the record's `reason`).
        msg: String,
    },
}

impl Problem {
    /// The kind as one word: setup, precondition, harness, hung, unavailable.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Setup { .. } => "setup",
            Problem::Precondition { .. } => "precondition",
            Problem::Harness { .. } => "harness",
            Problem::Hung => "hung",
            Problem::Unavailable { .. } => "unavailable",
        }
    }
}

/// How a checked step disagreed with this OS's expectations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// The OS has no expectation for the step.
    NoExpectation,
    /// The expectation is `unknown`: never a pass.
    Unknown,
    /// The step gave another outcome than expected.
    Differs,
}

/// A checked step that did not do what was expected; its outcome and
/// expectation are in the test's [`StepRecord`] with the same `step` index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    /// Index of the step (its [`StepRecord::index`]).
    pub step: usize,
    /// The step's check label, as the expectation files name it.
    pub label: String,
    /// Whether there was no expectation, an `unknown` one, or a different outcome.
    pub kind: MismatchKind,
    /// The step in one line (`bind b 127.0.0.1:port(a)`).
    pub what: String,
}

/// One step as it ran: its outcome and, for checked steps, what was expected.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    /// The step's index in the test (the `step` of a [`Mismatch`] or [`Problem`] refers to it).
    pub index: usize,
    /// The step's action (`socket`, `bind`, `listen`, `connect`, ...).
    pub kind: String,
    /// Name of the socket the step acts on, when it acts on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sock: Option<String>,
    /// The check label; steps without one are setup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Portable outcome (`ok`, `EADDRINUSE`, `TIME_WAIT`, ...).
    pub outcome: String,
    /// The OS's own error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<i32>,
    /// More about the outcome, as text (the OS's error message, bytes sent, what was already
    /// there, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Time the step took, in milliseconds.
    #[serde(serialize_with = "microseconds")]
    pub duration_ms: f64,
    /// The expected outcome, for checked steps that have an expectation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Which expectation entry gave `expected`, and where it is written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expectation: Option<ExpectationRef>,
}

/// Which expectation entry applied.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExpectationRef {
    /// The expectation file the entry is in (`cases/expected/linux.toml`).
    pub file: String,
    /// Line of the entry in `file`.
    pub line: usize,
    /// `observed` or `documented`.
    pub source: String,
    /// `observed on 6.18.44` / `documented: semantics.md F2 [S]`.
    pub provenance: String,
    /// The kernel releases the entry is limited to, as written in it (a range such as `>=6.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// The stack settings the entry is conditioned on (`net.ipv4.tcp_tw_reuse=0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
    /// The entry's explanation of the outcome, when it gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The run's release lay in a window where observations disagree
    /// (`6.1.192 (ok) .. 6.12.117 (EADDRINUSE)`): no observed outcome
    /// applied, and the expectation is a cited source's or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// A documented entry's cited sources, by their ids in the results'
    /// `sources` (empty when its tree has no registry); absent for other
    /// entries, and in files written before runs recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cites: Option<Vec<String>>,
}

/// A source a documented entry cites, as its tree's registry gives it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CitedSource {
    /// The registry key (`ms-reuseaddr`).
    pub key: String,
    /// Its kind (`vendor-doc`).
    pub kind: String,
    /// A link a reader can open.
    pub link: String,
}

impl CitedSource {
    /// How a results file records the registry's source `s`.
    pub fn of(s: &crate::sources::Source) -> CitedSource {
        CitedSource {
            key: s.key.clone(),
            kind: s.kind.as_str().to_string(),
            link: s.link(),
        }
    }
}

/// One distinct set of outcomes seen over a test's repeats (`--repeat`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Variant {
    /// The checked steps' outcomes (`label=outcome ...`) followed by the verdict in brackets.
    pub signature: String,
    /// How many of the repeats gave exactly this signature.
    pub count: u32,
}

impl Results {
    /// Reads and parses the results file at `path`.
    pub fn read(path: &Path) -> Result<Results, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Results::parse(&text).map_err(|msg| Error::Results {
            path: path.to_path_buf(),
            msg,
        })
    }

    /// Parses results JSON, refusing any schema but [`SCHEMA`] before reading the rest.
    pub fn parse(text: &str) -> Result<Results, String> {
        // The schema first (skipping the rest is cheap), then straight into
        // the types: no intermediate `Value` tree for megabytes of results.
        #[derive(Deserialize)]
        struct Peek {
            schema: Option<String>,
        }
        let peek: Peek = serde_json::from_str(text).map_err(|e| e.to_string())?;
        match peek.schema.as_deref() {
            Some(SCHEMA) => {}
            Some(other) => return Err(format!("schema `{other}`, this sockspec reads `{SCHEMA}`")),
            None => return Err("no `schema` field".into()),
        }
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    /// Writes the results as pretty-printed JSON to `path`, replacing it atomically.
    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        crate::atomic::write(path, (text + "\n").as_bytes()).map_err(|e| Error::io(path, e))
    }
}

/// A duration in milliseconds, written to the microsecond: finer digits are
/// clock noise, and they were most of a compressed results file (a guest
/// prints its results on a serial console).
fn microseconds<S: serde::Serializer>(ms: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((ms * 1000.0).round() / 1000.0)
}
