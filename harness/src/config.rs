//! `sockspec.toml`: a project's settings for `sockspec`, found as nextest
//! finds its configuration: in the current directory or the nearest one
//! above it, up to the repository's root (the first directory holding
//! `.git`). Paths in it are relative to the file's directory.
//!
//! ```toml
//! cases = ["tests/sockspec"]   # case trees run beside the built-in catalogue
//! only_cases = false           # true: only those trees
//! filter = ["bind::"]          # default FILTERs (the command line's win)
//! skip = ["multicast"]         # default --skip patterns (added to the command line's)
//! label = "my project"
//! jobs = 2
//! json = "target/sockspec/results.json"      # report outputs of `sockspec run`
//! markdown = "target/sockspec/summary.md"
//! junit = "target/sockspec/junit.xml"
//! agent = "python"             # run every socket step in this helper (`--agent` wins;
//!                              # a command is run as written, from the current directory)
//!
//! [profile.ci]                 # chosen by --profile ci, or when $CI is set
//! jobs = 1
//!
//! [profile.node]               # --profile node: the same tests, steps run in Node
//! agent = "node"
//! ```
//!
//! A profile's keys replace the top-level ones. Unknown keys are errors
//! with their file, line and column.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, InputError, InputErrors, LineIndex};

/// The file's name.
pub const FILE: &str = "sockspec.toml";

/// The settings in effect (the top level, then the chosen profile over it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Where the settings came from (`None`: no file).
    pub file: Option<PathBuf>,
    /// The profile applied, if any.
    pub profile: Option<String>,
    /// Case trees (`cases`) to run beside the built-in catalogue, resolved against the file's
    /// directory.
    pub cases: Vec<PathBuf>,
    /// Whether to run only those trees, without the built-in catalogue (`only_cases`).
    pub only_cases: bool,
    /// Default test-name filters (`filter`); filters on the command line replace them.
    pub filter: Vec<String>,
    /// Default `--skip` patterns (`skip`), added to the command line's.
    pub skip: Vec<String>,
    /// Default run label (`label`), as `--label` gives it.
    pub label: Option<String>,
    /// Default number of worker threads (`jobs`, 1 to 1024).
    pub jobs: Option<u32>,
    /// Where `sockspec run` writes results JSON (`json`), resolved against the file's
    /// directory.
    pub json: Option<PathBuf>,
    /// Where `sockspec run` writes a Markdown summary (`markdown`).
    pub markdown: Option<PathBuf>,
    /// Where `sockspec run` writes JUnit XML (`junit`).
    pub junit: Option<PathBuf>,
    /// The helper that runs every socket step (`sockspec run --agent`): a
    /// runtime name or a command line, as the flag takes it.
    pub agent: Option<String>,
}

#[derive(Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    cases: Option<Vec<String>>,
    only_cases: Option<bool>,
    filter: Option<Vec<String>>,
    skip: Option<Vec<String>>,
    label: Option<String>,
    jobs: Option<Spanned<u32>>,
    json: Option<String>,
    markdown: Option<String>,
    junit: Option<String>,
    agent: Option<Spanned<String>>,
    /// Only at the top level (one struct for both keeps serde's locations,
    /// which `flatten` would lose).
    profile: Option<Spanned<BTreeMap<String, RawSettings>>>,
}

/// The nearest `sockspec.toml` from `start` up to the repository's root.
pub fn find(start: &Path) -> Option<PathBuf> {
    let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
    for dir in start.ancestors() {
        let f = dir.join(FILE);
        if f.is_file() {
            return Some(f);
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    None
}

/// Reads `file` (or the one [`find`] finds from the current directory) and
/// applies `profile`, else `ci` when `$CI` is set and the file has one.
pub fn load(file: Option<&Path>, profile: Option<&str>) -> Result<Settings, Error> {
    let found = match file {
        Some(f) => Some(f.to_path_buf()),
        None => std::env::current_dir().ok().and_then(|d| find(&d)),
    };
    let Some(path) = found else {
        return match profile {
            Some(p) => Err(Error::Usage(format!(
                "--profile {p}: there is no {FILE} here or above (up to the repository's root)"
            ))),
            None => Ok(Settings::default()),
        };
    };
    let text = crate::load::read_input(&path).map_err(|e| InputErrors(vec![e]))?;
    let index = LineIndex::new(Arc::new(path.clone()), &text);
    let raw: RawSettings = crate::load::parse_toml(&text)
        .map_err(|e| InputErrors(vec![crate::load::toml_error(&index, &e)]))?;
    let on_ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let profiles = raw
        .profile
        .as_ref()
        .map(|p| p.get_ref().clone())
        .unwrap_or_default();
    let mut errors = Vec::new();
    for p in raw.profile.iter().flat_map(|p| p.get_ref().values()) {
        if let Some(inner) = &p.profile {
            errors.push(index.err(inner.span(), "a profile cannot hold profiles"));
        }
    }
    let chosen = match profile {
        Some(p) if p != "default" => {
            if !profiles.contains_key(p) {
                let known: Vec<&str> = profiles.keys().map(String::as_str).collect();
                return Err(Error::Usage(format!(
                    "--profile {p}: {} has no [profile.{p}] (it has: {})",
                    path.display(),
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            Some(p.to_string())
        }
        Some(_) => None,
        None => (on_ci && profiles.contains_key("ci")).then(|| "ci".to_string()),
    };
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut s = Settings {
        file: Some(path.clone()),
        profile: chosen.clone(),
        ..Settings::default()
    };
    apply(&mut s, &raw, &dir, &index, &mut errors);
    if let Some(p) = chosen.and_then(|p| profiles.get(&p)) {
        apply(&mut s, p, &dir, &index, &mut errors);
    }
    InputErrors::finish(errors)?;
    Ok(s)
}

fn apply(
    s: &mut Settings,
    r: &RawSettings,
    dir: &Path,
    index: &LineIndex,
    errors: &mut Vec<InputError>,
) {
    let path = |p: &String| dir.join(p);
    if let Some(c) = &r.cases {
        s.cases = c.iter().map(path).collect();
    }
    if let Some(v) = r.only_cases {
        s.only_cases = v;
    }
    if let Some(v) = &r.filter {
        s.filter = v.clone();
    }
    if let Some(v) = &r.skip {
        s.skip = v.clone();
    }
    if let Some(v) = &r.label {
        s.label = Some(v.clone());
    }
    if let Some(j) = &r.jobs {
        if (1..=1024).contains(j.get_ref()) {
            s.jobs = Some(*j.get_ref());
        } else {
            errors.push(index.err(j.span(), "jobs must be between 1 and 1024"));
        }
    }
    s.json = r.json.as_ref().map(path).or(s.json.take());
    s.markdown = r.markdown.as_ref().map(path).or(s.markdown.take());
    s.junit = r.junit.as_ref().map(path).or(s.junit.take());
    if let Some(a) = &r.agent {
        if a.get_ref().trim().is_empty() {
            errors.push(index.err(
                a.span(),
                "agent names a runtime (`rust`, `python`, `node`) or a command: it cannot be empty",
            ));
        } else {
            s.agent = Some(a.get_ref().clone());
        }
    }
}
