//! The results file: one run of the suite on one machine, as JSON.
//!
//! Schema `sockspec/results/v2` (documented in README.md, "Results JSON").
//! Additive changes keep the version; anything that changes the meaning of
//! an existing field bumps it. Readers reject other schema values.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;

pub const SCHEMA: &str = "sockspec/results/v2";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub schema: String,
    pub run: RunInfo,
    pub summary: Summary,
    pub tests: Vec<TestRecord>,
}

/// Where and how the run happened.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunInfo {
    /// OS family: linux, macos, windows, freebsd, openbsd, netbsd, illumos, wine.
    pub os: String,
    /// Kernel release (`uname -r`; Windows build `10.0.N`; Wine version under Wine).
    pub kernel: String,
    /// Longer OS description.
    pub os_detail: String,
    pub arch: String,
    /// sockspec version.
    pub sockspec: String,
    /// RFC 3339 UTC start time.
    pub started: String,
    pub duration_ms: f64,
    pub jobs: usize,
    pub repeat: u32,
    /// `netns` (a network namespace per worker) or `host`.
    pub isolation: String,
    /// Whether the run had root / Administrator rights.
    pub privileged: bool,
    /// A free-form name for this run (`--label`), e.g. the CI job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The stack profile applied in each worker's namespace (`--profile`).
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

impl RunInfo {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub total: usize,
    pub pass: usize,
    pub fail: usize,
    pub error: usize,
    pub skip: usize,
    pub intermittent: usize,
}

impl Summary {
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

    pub fn ok(&self) -> bool {
        self.fail == 0 && self.error == 0 && self.intermittent == 0
    }
}

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

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TestRecord {
    pub name: String,
    pub case: String,
    pub topic: String,
    pub title: String,
    /// The case file and the line of its first step.
    pub file: String,
    pub line: usize,
    pub params: BTreeMap<String, String>,
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
    pub duration_ms: f64,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retries: Vec<String>,
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
        step: usize,
        msg: String,
        /// Where the step is written, and what it does (filled in by judge).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        what: Option<String>,
    },
    /// A `require` was not met: the test could not show what it claims.
    Precondition { step: usize, msg: String },
    /// The harness could not do its part (read the kernel's table, ...).
    Harness { msg: String },
    /// The attempt did not finish by its deadline and was abandoned.
    Hung,
    /// The machine lacks something the test needs (found out at run time).
    Unavailable { msg: String },
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
    pub step: usize,
    pub label: String,
    pub kind: MismatchKind,
    /// The step in one line (`bind b 127.0.0.1:port(a)`).
    pub what: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepRecord {
    pub index: usize,
    pub kind: String,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub duration_ms: f64,
    /// The expected outcome, for checked steps that have an expectation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expectation: Option<ExpectationRef>,
}

/// Which expectation entry applied.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExpectationRef {
    pub file: String,
    pub line: usize,
    /// `observed` or `documented`.
    pub source: String,
    /// `observed on 6.18.44` / `documented: semantics.md F2 [S]`.
    pub provenance: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// The stack settings the entry is conditioned on (`net.ipv4.tcp_tw_reuse=0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// The run's release lay in a window where observations disagree
    /// (`6.1.192 (ok) .. 6.12.117 (EADDRINUSE)`): no observed outcome
    /// applied, and the expectation is a cited source's or `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Variant {
    pub signature: String,
    pub count: u32,
}

impl Results {
    pub fn read(path: &Path) -> Result<Results, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Results::parse(&text).map_err(|msg| Error::Results {
            path: path.to_path_buf(),
            msg,
        })
    }

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

    pub fn write(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Other(e.to_string()))?;
        crate::atomic::write(path, (text + "\n").as_bytes()).map_err(|e| Error::io(path, e))
    }
}
