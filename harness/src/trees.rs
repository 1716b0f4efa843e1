//! Which case trees a run uses, and how several become one [`Suite`].
//!
//! The rule (README, "Your cases beside the built-in ones"):
//!
//! - The *built-in* catalogue is `./cases` when the current directory holds
//!   sockspec's own tree (a `cases/` with `expected/` and `claims.toml`: a
//!   checkout, where `bless` edits it), else the catalogue compiled into the
//!   binary ([`crate::catalogue`]).
//! - Trees given with `--cases DIR` (repeatable), or else by `cases` in
//!   `sockspec.toml`, are run *beside* the built-in one; `--only-cases` (or
//!   `only_cases = true`) runs them alone.
//! - `$SOCKSPEC_CASES=DIR[:DIR...]` replaces everything: those trees alone
//!   (how the test target and scripts point at a whole other tree).
//!
//! When more than one tree is loaded, the tests of every tree but the
//! built-in one are named `<tree>/<topic>::<case>...`, `<tree>` being the
//! directory's name, so a name says where a test lives and filters can pick
//! a tree (`sockspec run mytree/`). A tree's own files never see the prefix:
//! its expectation files name its cases as `<topic>::<case>`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Suite;
use crate::error::{Error, InputErrors};
use crate::expect::{ExpectFile, Provenance};
use crate::model::Test;
use crate::sources::Source;

/// One case tree (a directory of `<topic>/<case>.toml` and `expected/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The tree's directory, holding `<topic>/<case>.toml`, `expected/` and `claims.toml`.
    pub root: PathBuf,
    /// What its tests' names start with (`name/`); `None` for the built-in
    /// catalogue, and for the only tree of a run.
    pub name: Option<String>,
    /// The catalogue compiled into the binary: nothing may be written there.
    pub embedded: bool,
}

impl Tree {
    /// The prefix of its tests' names: `name/`, or nothing.
    pub fn prefix(&self) -> String {
        self.name
            .as_ref()
            .map_or_else(String::new, |n| format!("{n}/"))
    }

    /// Whether `test_name` is one of this tree's (given every tree of the run).
    pub fn owns(&self, test_name: &str, all: &[Tree]) -> bool {
        match &self.name {
            Some(_) => test_name.starts_with(&self.prefix()),
            None => !all
                .iter()
                .any(|t| t.name.is_some() && test_name.starts_with(&t.prefix())),
        }
    }
}

/// Whether `dir` is sockspec's own case tree rather than some project's.
pub fn is_sockspec_tree(dir: &Path) -> bool {
    dir.join("expected").is_dir() && dir.join("claims.toml").is_file()
}

/// The built-in catalogue (see the module docs).
pub fn builtin() -> Result<Tree, Error> {
    let here = PathBuf::from("cases");
    if is_sockspec_tree(&here) {
        return Ok(Tree {
            root: here,
            name: None,
            embedded: false,
        });
    }
    Ok(Tree {
        root: crate::catalogue::root()?,
        name: None,
        embedded: true,
    })
}

/// The trees to load: `$SOCKSPEC_CASES` if set, else the built-in one
/// (unless `only`) and `extra`.
pub fn resolve(extra: &[PathBuf], only: bool) -> Result<Vec<Tree>, Error> {
    if let Some(list) = std::env::var_os("SOCKSPEC_CASES").filter(|v| !v.is_empty()) {
        let dirs: Vec<PathBuf> = std::env::split_paths(&list).collect();
        return name(Vec::new(), &dirs);
    }
    if only && extra.is_empty() {
        return Err(Error::Usage(
            "--only-cases needs at least one --cases DIR (or `cases` in sockspec.toml)".into(),
        ));
    }
    let base = if only { Vec::new() } else { vec![builtin()?] };
    name(base, extra)
}

/// Adds `dirs` to `trees`, named after their directories; a tree given twice
/// (or the built-in tree itself) counts once.
fn name(mut trees: Vec<Tree>, dirs: &[PathBuf]) -> Result<Vec<Tree>, Error> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    for dir in dirs {
        if trees.iter().any(|t| same(&t.root, dir)) {
            continue;
        }
        let label = dir
            .canonicalize()
            .unwrap_or_else(|_| dir.clone())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cases".into());
        if let Some(other) = trees.iter().find(|t| t.name.as_deref() == Some(&label)) {
            return Err(Error::Usage(format!(
                "two case trees are both named `{label}` ({} and {}): test names could not tell them apart; rename one directory",
                other.root.display(),
                dir.display()
            )));
        }
        trees.push(Tree {
            root: dir.clone(),
            name: Some(label),
            embedded: false,
        });
    }
    // A lone tree keeps plain names: nothing to tell apart.
    if let [only] = trees.as_mut_slice() {
        only.name = None;
    }
    Ok(trees)
}

/// Loads every tree (reporting the problems of all of them) and merges them
/// into one suite: tests, cases and claims of named trees get the tree's
/// prefix; expectations stay each tree's own.
pub fn load(trees: &[Tree]) -> Result<Suite, InputErrors> {
    load_scoped(trees, &crate::Scope::default())
}

/// A process that loads several trees parses on one thread from here on
/// (see `PARSE_AHEAD` in lib.rs): a load that parsed ahead leaves a thread's
/// allocator arena behind, and a large tree loaded after it peaked higher.
fn several(trees: &[Tree]) {
    if trees.len() > 1 {
        crate::parse_on_one_thread();
    }
}

/// [`load`], of only what `scope` names.
pub fn load_scoped(trees: &[Tree], scope: &crate::Scope) -> Result<Suite, InputErrors> {
    merge(trees, load_each(trees, scope)?)
}

/// Loads every tree alone, of what `scope` names (each tree gets the test
/// names it owns, without its prefix), reporting the problems of all of
/// them.
pub fn load_each(trees: &[Tree], scope: &crate::Scope) -> Result<Vec<Suite>, InputErrors> {
    several(trees);
    let mut errors = Vec::new();
    let mut loaded = Vec::new();
    let mut held = crate::Loaded::default();
    for t in trees {
        let own = crate::Scope {
            tests: scope.tests.as_ref().map(|names| {
                names
                    .iter()
                    .filter(|n| t.owns(n, trees))
                    .map(|n| n[t.prefix().len()..].to_string())
                    .collect()
            }),
            os: scope.os,
            set_aside_stale: scope.set_aside_stale,
        };
        match Suite::load_beside(&t.root, &own, held) {
            Ok(s) => {
                held = held.with(&s);
                loaded.push(s);
            }
            Err(InputErrors(e)) => errors.extend(e),
        }
    }
    InputErrors::finish(errors)?;
    Ok(loaded)
}

/// Merges the suites [`load_each`] loaded from `trees` into one.
pub fn merge(trees: &[Tree], loaded: Vec<Suite>) -> Result<Suite, InputErrors> {
    let mut it = trees.iter().zip(loaded);
    let Some((first, mut suite)) = it.next() else {
        return Err(InputErrors(Vec::new()));
    };
    if first.name.is_some() {
        suite = prefixed(suite, &first.prefix());
    }
    for (t, s) in it {
        let s = prefixed(s, &t.prefix());
        suite.claims.extend(s.claims);
        suite.cases.extend(s.cases);
        suite.tests.extend(s.tests);
        for (os, file) in s.expectations.files {
            let path = file.path.clone();
            suite
                .expectations
                .files
                .entry(os)
                .or_insert_with(|| ExpectFile::empty(os, path))
                .absorb(file, "");
        }
    }
    suite.trees = trees.to_vec();
    Ok(suite)
}

/// `suite` with `prefix` on its case ids, test names and claim ids.
fn prefixed(mut suite: Suite, prefix: &str) -> Suite {
    if prefix.is_empty() {
        return suite;
    }
    let mut renamed = std::collections::HashMap::new();
    suite.cases = suite
        .cases
        .iter()
        .map(|c| {
            let mut n = (**c).clone();
            n.id = format!("{prefix}{}", c.id);
            n.claims = n.claims.iter().map(|id| format!("{prefix}{id}")).collect();
            let n = Arc::new(n);
            renamed.insert(c.id.clone(), n.clone());
            n
        })
        .collect();
    suite.tests = suite
        .tests
        .iter()
        .map(|t| {
            let mut n: Test = (**t).clone();
            n.name = format!("{prefix}{}", t.name);
            if let Some(c) = renamed.get(&t.case.id) {
                n.case = c.clone();
            }
            Arc::new(n)
        })
        .collect();
    for c in &mut suite.claims {
        c.id = format!("{prefix}{}", c.id);
    }
    let files = std::mem::take(&mut suite.expectations.files);
    // Each source once, shared by the entries that cite it as before.
    let mut sources: std::collections::HashMap<*const Source, Arc<Source>> = Default::default();
    for (os, mut file) in files {
        for e in &mut file.entries {
            if let Provenance::Documented { sources: cited, .. } = &mut e.provenance {
                for s in cited.iter_mut() {
                    let renamed = sources.entry(Arc::as_ptr(s)).or_insert_with(|| {
                        let mut n = (**s).clone();
                        n.id = format!("{prefix}{}", s.key);
                        Arc::new(n)
                    });
                    *s = renamed.clone();
                }
            }
        }
        let mut f = ExpectFile::empty(os, file.path.clone());
        f.absorb(file, prefix);
        suite.expectations.files.insert(os, f);
    }
    suite
}

/// The flags that select the tree at `root` alone, for commands printed as
/// hints: nothing for the built-in catalogue (`./cases` of a checkout, or
/// the unpacked one), else ` --only-cases --cases ROOT`, so the tree's test
/// names are plain and the command works as printed.
pub fn selecting(root: &Path) -> String {
    if root == Path::new("cases") || crate::catalogue::is_embedded(root) {
        return String::new();
    }
    format!(
        " --only-cases --cases {}",
        shell_word(&root.display().to_string())
    )
}

/// The root of the tree holding the case `case` (an id, perhaps with its
/// tree's `name/` prefix) read from `file` (`<root>/<topic>/<name>.toml`).
pub fn root_of(file: &Path, case: &str) -> Option<PathBuf> {
    let bare = case.split_once('/').map_or(case, |(_, c)| c);
    file.ancestors()
        .nth(bare.split("::").count())
        .map(Path::to_path_buf)
}

/// `s` as one shell word: as it is when it is plain, else single-quoted.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod hint_tests {
    use super::*;

    #[test]
    fn hints_select_the_tree_of_a_case() {
        assert_eq!(selecting(Path::new("cases")), "");
        assert_eq!(
            selecting(Path::new("/tmp/my tree")),
            " --only-cases --cases '/tmp/my tree'"
        );
        assert_eq!(
            root_of(Path::new("/x/t/a/b.toml"), "t::a::b"),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(
            root_of(Path::new("/x/t/b.toml"), "x/t::b"),
            Some(PathBuf::from("/x"))
        );
        assert_eq!(shell_word("it's"), "'it'\\''s'");
    }

    /// A load of several trees leaves later loads on one parsing thread:
    /// see `PARSE_AHEAD` (a large tree after a small one went past
    /// `check`'s 256 MiB in some runs, which a memory test alone catches
    /// only sometimes).
    #[test]
    fn a_process_that_loads_several_trees_parses_on_one_thread() {
        let tree = |name: Option<&str>| Tree {
            root: Suite::default_root(),
            name: name.map(str::to_string),
            embedded: false,
        };
        load_each(&[tree(None)], &crate::Scope::default()).unwrap();
        load_each(&[tree(None), tree(Some("again"))], &crate::Scope::default()).unwrap();
        assert!(!crate::PARSE_AHEAD.load(std::sync::atomic::Ordering::Relaxed));
    }
}
