//! The sources registry (a tree's `sources.toml`; the catalogue's is
//! `cases/sources.toml`): every document, man page, kernel source line or
//! peer test suite that a documented expectation cites, under a short key,
//! with a link a reader can open.
//!
//! ```toml
//! [source.ms-reuseaddr]
//! kind = "vendor-doc"
//! title = "Using SO_REUSEADDR and SO_EXCLUSIVEADDRUSE (Microsoft Learn)"
//! url = "https://learn.microsoft.com/..."
//! says = "What the source states that the entries rely on."
//! ```
//!
//! A source has either a `url`, or `repo` + `path` + `commit` (40 hex) +
//! `line` or `lines = "120-160"`, which link to that commit on GitHub.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{InputError, LineIndex};
use crate::load::toml_error;
use crate::model::Location;

/// The registry's file name, under the cases directory.
pub use crate::load::SOURCES_FILE;

/// What kind of source an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `vendor-doc`: the OS vendor's own documentation (Microsoft Learn, Apple's developer
    /// docs, ...).
    VendorDoc,
    /// `man-page`: an OS's manual page.
    ManPage,
    /// `kernel-source`: the kernel's source, its selftests or a commit message.
    KernelSource,
    /// `release-notes`: an OS release's notes or changelog.
    ReleaseNotes,
    /// `peer-test`: another project's test suite that asserts the outcome on the OS's CI.
    PeerTest,
    /// `third-party`: someone else's claim (a blog post, an answer, a book).
    ThirdParty,
}

impl Kind {
    /// Every kind, in the order help texts list them.
    pub const ALL: &[Kind] = &[
        Kind::VendorDoc,
        Kind::ManPage,
        Kind::KernelSource,
        Kind::ReleaseNotes,
        Kind::PeerTest,
        Kind::ThirdParty,
    ];

    /// The kind as `kind =` spells it in the registry (`vendor-doc`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VendorDoc => "vendor-doc",
            Kind::ManPage => "man-page",
            Kind::KernelSource => "kernel-source",
            Kind::ReleaseNotes => "release-notes",
            Kind::PeerTest => "peer-test",
            Kind::ThirdParty => "third-party",
        }
    }

    /// The kind `kind =` names, if it is one.
    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == s)
    }

    /// The confidence tag (see `expect::CONFIDENCE`) this kind of source
    /// supports: D for a vendor's documentation, S for kernel source (its
    /// selftests and commits included), E for another project's test suite
    /// that asserts the outcome on the OS's CI, T for a third party's claim.
    pub fn confidence(self) -> &'static str {
        match self {
            Kind::VendorDoc | Kind::ManPage | Kind::ReleaseNotes => "D",
            Kind::KernelSource => "S",
            Kind::PeerTest => "E",
            Kind::ThirdParty => "T",
        }
    }
}

/// Where a source lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// A web address (`url =`).
    Url(String),
    /// A file of a GitHub repository at one commit, and the lines meant.
    Repo {
        /// The repository, `owner/name`.
        repo: String,
        /// The file's path in the repository.
        path: String,
        /// The commit (40 hex digits) the link pins.
        commit: String,
        /// First and last line meant (equal for `line =`).
        lines: (u64, u64),
    },
}

/// One entry of the registry: a citable source under its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// The short key expectations cite it by (`ms-reuseaddr`).
    pub key: String,
    /// What a run calls it: its key, or `tree/key` for a source of a named
    /// tree when a run loads several (as test names are prefixed), since
    /// two trees may use one key.
    pub id: String,
    /// Where the entry is written in the registry file.
    pub at: Location,
    /// What kind of source it is, which decides the confidence it supports.
    pub kind: Kind,
    /// The source's title, as a reader would recognise it.
    pub title: String,
    /// Where the source can be opened.
    pub place: Place,
    /// What the source states that the entries citing it rely on.
    pub says: String,
}

impl Source {
    /// A link a reader can open.
    pub fn link(&self) -> String {
        match &self.place {
            Place::Url(u) => u.clone(),
            Place::Repo {
                repo,
                path,
                commit,
                lines: (a, b),
            } => {
                let anchor = if a == b {
                    format!("L{a}")
                } else {
                    format!("L{a}-L{b}")
                };
                format!("https://github.com/{repo}/blob/{commit}/{path}#{anchor}")
            }
        }
    }
}

/// Every source of `<cases>/sources.toml`, in file order.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// The registry file the sources were read from.
    pub path: Arc<PathBuf>,
    /// The sources by key, in file order.
    pub sources: IndexMap<String, Arc<Source>>,
}

impl Registry {
    /// The source under `key`, if the registry has one.
    pub fn get(&self, key: &str) -> Option<&Arc<Source>> {
        self.sources.get(key)
    }

    /// Keys close to `key`: sharing its first word, or within a small edit
    /// distance; at most eight.
    pub fn near(&self, key: &str) -> Vec<&str> {
        let head = key.split(['-', '_']).next().unwrap_or(key);
        let mut scored: Vec<(usize, &str)> = self
            .sources
            .keys()
            .map(|k| {
                let d = edit_distance(key, k);
                let same_head = k.split(['-', '_']).next() == Some(head);
                (if same_head { d.min(3) } else { d }, k.as_str())
            })
            .filter(|(d, _)| *d <= 2.max(key.len() / 3))
            .collect();
        scored.sort();
        scored.into_iter().take(8).map(|(_, k)| k).collect()
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    source: IndexMap<String, Spanned<RawSource>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    kind: Spanned<String>,
    title: Spanned<String>,
    #[serde(default)]
    url: Option<Spanned<String>>,
    #[serde(default)]
    repo: Option<Spanned<String>>,
    #[serde(default)]
    path: Option<Spanned<String>>,
    #[serde(default)]
    commit: Option<Spanned<String>>,
    #[serde(default)]
    line: Option<Spanned<u64>>,
    #[serde(default)]
    lines: Option<Spanned<String>>,
    says: Spanned<String>,
}

const HELP: &str = "see \"Expectation files\" in README.md for the fields of a source";

/// Loads `<root>/sources.toml`; `None` when the tree has none (then cites are
/// free text) or it cannot be parsed (the error is in `errors`).
pub fn load(root: &Path, errors: &mut Vec<InputError>) -> Option<Registry> {
    let path = root.join(SOURCES_FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        return None;
    }
    let text = match crate::load::read_input(&path) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let index = LineIndex::new(Arc::new(path), &text);
    let raw: RawFile = match crate::load::parse_toml(&text) {
        Ok(r) => r,
        Err(e) => {
            errors.push(toml_error(&index, &e).help(HELP));
            return None;
        }
    };
    let mut reg = Registry {
        path: index.file().clone(),
        sources: IndexMap::new(),
    };
    for (key, raw) in raw.source {
        let at = index.loc(raw.span().start);
        if let Some(s) = parse_source(&index, at, key, raw.into_inner(), errors) {
            reg.sources.insert(s.key.clone(), Arc::new(s));
        }
    }
    Some(reg)
}

fn parse_source(
    index: &LineIndex,
    at: Location,
    key: String,
    raw: RawSource,
    errors: &mut Vec<InputError>,
) -> Option<Source> {
    let before = errors.len();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        errors.push(InputError::at(
            &at,
            format!("`{key}` is not a source key: use lower-case letters, digits, '-' and '_'"),
        ));
    }
    let kind = Kind::from_name(raw.kind.get_ref());
    if kind.is_none() {
        let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        errors.push(
            index
                .err(
                    raw.kind.span(),
                    format!("`{}` is not a kind of source", raw.kind.get_ref()),
                )
                .help(format!("one of: {}", kinds.join(", "))),
        );
    }
    for (name, v) in [("title", &raw.title), ("says", &raw.says)] {
        if v.get_ref().trim().is_empty() {
            errors.push(index.err(v.span(), format!("`{name}` is empty")));
        }
    }
    let place = match (&raw.url, &raw.repo) {
        (Some(_), Some(r)) => {
            errors.push(
                index
                    .err(r.span(), "a source has either `url` or `repo`, not both")
                    .help(HELP),
            );
            None
        }
        (Some(u), None) => {
            for (name, f) in [("path", &raw.path), ("commit", &raw.commit)] {
                if let Some(f) = f {
                    errors
                        .push(index.err(f.span(), format!("`{name}` goes with `repo`, not `url`")));
                }
            }
            if raw.line.is_some() || raw.lines.is_some() {
                errors.push(InputError::at(
                    &at,
                    "`line`/`lines` go with `repo`, not `url`",
                ));
            }
            let ok = u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://");
            if !ok {
                errors.push(index.err(u.span(), "`url` must start with https:// or http://"));
            }
            ok.then(|| Place::Url(u.get_ref().clone()))
        }
        (None, Some(repo)) => parse_repo(index, &at, repo, &raw, errors),
        (None, None) => {
            errors.push(
                InputError::at(
                    &at,
                    format!(
                        "source `{key}` needs `url`, or `repo` + `path` + `commit` + `line`/`lines`"
                    ),
                )
                .help(HELP),
            );
            None
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(Source {
        id: key.clone(),
        key,
        at,
        kind: kind?,
        title: raw.title.into_inner(),
        place: place?,
        says: raw.says.into_inner(),
    })
}

fn parse_repo(
    index: &LineIndex,
    at: &Location,
    repo: &Spanned<String>,
    raw: &RawSource,
    errors: &mut Vec<InputError>,
) -> Option<Place> {
    let before = errors.len();
    let r = repo.get_ref();
    if r.split('/').count() != 2 || r.split('/').any(|p| p.trim().is_empty()) {
        errors.push(index.err(repo.span(), format!("`{r}` is not a GitHub OWNER/NAME")));
    }
    let Some(path) = &raw.path else {
        errors.push(InputError::at(at, "a `repo` source needs `path`").help(HELP));
        return None;
    };
    let Some(commit) = &raw.commit else {
        errors
            .push(InputError::at(at, "a `repo` source needs `commit` (40 hex digits)").help(HELP));
        return None;
    };
    let c = commit.get_ref();
    if c.len() != 40 || !c.chars().all(|ch| ch.is_ascii_hexdigit()) {
        errors.push(index.err(
            commit.span(),
            format!("`{c}` is not a full commit hash (40 hex digits)"),
        ));
    }
    let lines = match (&raw.line, &raw.lines) {
        (Some(l), None) if *l.get_ref() > 0 => Some((*l.get_ref(), *l.get_ref())),
        (None, Some(ls)) => {
            let parsed = ls
                .get_ref()
                .split_once('-')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
                .filter(|(a, b): &(u64, u64)| *a > 0 && a <= b);
            if parsed.is_none() {
                errors.push(index.err(
                    ls.span(),
                    format!(
                        "`lines = \"{}\"` is not a range like \"120-160\"",
                        ls.get_ref()
                    ),
                ));
            }
            parsed
        }
        (Some(l), None) => {
            errors.push(index.err(l.span(), "`line` counts from 1"));
            None
        }
        (Some(l), Some(_)) => {
            errors.push(index.err(l.span(), "give `line` or `lines`, not both"));
            None
        }
        (None, None) => {
            errors.push(
                InputError::at(
                    at,
                    "a `repo` source needs `line` or `lines`: the lines it means",
                )
                .help(HELP),
            );
            None
        }
    };
    if errors.len() > before {
        return None;
    }
    Some(Place::Repo {
        repo: r.clone(),
        path: path.get_ref().clone(),
        commit: c.to_ascii_lowercase(),
        lines: lines?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> (Option<Registry>, Vec<InputError>) {
        let dir = std::env::temp_dir().join(format!(
            "sockspec-sources-{}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(SOURCES_FILE), text).unwrap();
        let mut errors = Vec::new();
        let r = load(&dir, &mut errors);
        let _ = std::fs::remove_dir_all(&dir);
        (r, errors)
    }

    #[test]
    fn links() {
        let (r, errors) = load_text(
            "[source.a]\nkind = \"kernel-source\"\ntitle = \"t\"\nrepo = \"o/n\"\npath = \"x/y.c\"\n\
             commit = \"0123456789abcdef0123456789abcdef01234567\"\nlines = \"10-12\"\nsays = \"s\"\n\n\
             [source.b-2]\nkind = \"man-page\"\ntitle = \"t\"\nurl = \"https://example.org/b\"\nsays = \"s\"\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let r = r.unwrap();
        assert_eq!(
            r.get("a").unwrap().link(),
            "https://github.com/o/n/blob/0123456789abcdef0123456789abcdef01234567/x/y.c#L10-L12"
        );
        assert_eq!(r.get("b-2").unwrap().link(), "https://example.org/b");
        assert_eq!(r.near("b-3"), vec!["b-2"]);
    }

    #[test]
    fn a_source_needs_a_place() {
        let (_, errors) = load_text(
            "[source.a]\nkind = \"kernel-source\"\ntitle = \"t\"\nrepo = \"o/n\"\npath = \"p\"\n\
             commit = \"abc\"\nline = 3\nsays = \"s\"\n\n[source.b]\nkind = \"blog\"\ntitle = \"t\"\nsays = \"s\"\n",
        );
        let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let all = text.join("\n");
        assert!(
            all.contains(":6:10: `abc` is not a full commit hash"),
            "{all}"
        );
        assert!(
            all.contains(":11:8: `blog` is not a kind of source"),
            "{all}"
        );
        assert!(all.contains("needs `url`, or `repo`"), "{all}");
    }
}
