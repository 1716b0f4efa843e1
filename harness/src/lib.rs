//! sockspec: what real kernels do with socket address reuse and teardown.
//!
//! The stages, each in its own module:
//! [`load`] case files → [`expand`] parameter grids into tests → [`exec`]ute
//! them on real sockets → [`judge`] against the per-OS [`expect`]ations →
//! [`report`]. OS differences live in [`sys`] only; reporters see only
//! [`results`].

pub mod atomic;
pub mod bless;
pub mod catalogue;
pub mod claims;
pub mod config;
pub mod error;
pub mod exec;
pub mod expand;
pub mod expect;
pub mod explain;
pub mod guest;
pub mod judge;
pub mod keys;
pub mod load;
pub mod model;
pub mod outcome;
pub mod par;
pub mod report;
pub mod results;
pub mod run;
pub mod sources;
pub mod stdio;
pub mod steps;
pub mod sys;
pub mod testing;
pub mod trees;
pub mod version;

/// The hash map of sockspec's own indexes (tests by case, labels, steps):
/// std's, hashed with foldhash (randomly seeded) instead of SipHash, which
/// took `check` 4.9% fewer instructions. Public types keep std's default.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// The hash set beside [`Map`].
pub(crate) type Set<T> = std::collections::HashSet<T, foldhash::fast::RandomState>;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use error::{InputError, InputErrors};
use expect::Expectations;
use model::{Case, Need, OsFamily, Test};

/// The machine we run on.
#[derive(Clone, Debug)]
pub struct Platform {
    /// The OS family sockspec runs on (Wine is told apart from Windows).
    pub os: OsFamily,
    /// The kernel release (`uname -r`, Windows' build number, Wine's version), compared against
    /// expectations' kernel ranges.
    pub release: String,
    /// A longer description of the OS: system name and version string.
    pub detail: String,
    /// The CPU architecture sockspec was built for (`x86_64`, ...).
    pub arch: &'static str,
    /// Whether sockspec runs as root (Administrator on Windows); tests that need it are
    /// skipped otherwise.
    pub privileged: bool,
}

impl Platform {
    /// Finds out the machine sockspec is running on.
    pub fn current() -> Platform {
        Platform {
            os: sys::os_family(),
            release: sys::os_release(),
            detail: sys::os_detail(),
            arch: std::env::consts::ARCH,
            privileged: sys::is_privileged(),
        }
    }
}

/// How much of a case tree a load reads, and whether it sets stale observed
/// outcomes aside. Checking, blessing, listing and reports read all of it
/// (no `tests`, no `os`); a run of named tests
/// needs only their cases and the expectations of the OS it runs on, and
/// reads nothing else: start-up is then one case file and one expectation
/// file, not the whole tree.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Whole test names: only the cases they belong to are loaded, and the
    /// expectation entries of other cases are passed over unread. `None`:
    /// every case.
    pub tests: Option<Vec<String>>,
    /// Only this OS family's expectation file. `None`: every file.
    pub os: Option<OsFamily>,
    /// Observed outcomes of steps their tests no longer check (a case
    /// changed since the run, [`expect::Entry::stale`]) are set aside
    /// instead of refused. Runs set them aside and warn, so that every OS
    /// can still run and be blessed from that run; bless removes them
    /// ([`Scope::setting_aside_stale`]). Otherwise a case that stops checking
    /// a step could only be blessed after its observed entries were edited
    /// by hand. Every other load ([`Suite::load`], `check`, `claims`,
    /// `explain`, `list`) refuses them.
    pub set_aside_stale: bool,
}

impl Scope {
    /// The whole tree, with stale observed outcomes set aside: what bless
    /// and a run of the whole tree load.
    pub fn setting_aside_stale() -> Scope {
        Scope {
            set_aside_stale: true,
            ..Scope::default()
        }
    }

    /// Whether the case `id` is loaded: some test name is `id` or under it.
    pub fn wants_case(&self, id: &str) -> bool {
        self.tests.as_ref().is_none_or(|names| {
            names.iter().any(|n| {
                n.strip_prefix(id)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
        })
    }

    /// Whether the test `name` is expanded.
    pub fn wants_test(&self, name: &str) -> bool {
        self.tests
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }

    /// Whether the expectation file of `os` is loaded.
    pub fn wants_os(&self, os: OsFamily) -> bool {
        self.os.is_none_or(|o| o == os)
    }

    /// Whether only some cases are loaded (entries of the others are passed over).
    pub fn is_partial(&self) -> bool {
        self.tests.is_some()
    }
}

/// All cases, their tests, and every OS's expectations.
pub struct Suite {
    /// The case tree's directory (the first tree's, when [`trees::load`] merged several).
    pub root: PathBuf,
    /// The claims of cases/claims.toml (empty when the tree has none).
    pub claims: Vec<claims::Claim>,
    /// Every case, in the order their files were found.
    pub cases: Vec<Arc<Case>>,
    /// Every test expanded from the cases, in case order.
    pub tests: Vec<Arc<Test>>,
    /// Every OS family's expectations, the tests of all trees' in one file per family.
    pub expectations: Expectations,
    /// The case trees it was loaded from ([`trees`]): one, unless
    /// [`trees::load`] merged several.
    pub trees: Vec<trees::Tree>,
}

/// Whether a load may parse small expectation files ahead, on a thread of
/// their own: not in a process that loads several trees ([`trees::load`]
/// and kin turn it off first). That thread's allocator arena stays in the
/// process, and a large tree loaded after a small one then peaked up to
/// 70 MiB higher, past `check`'s 256 MiB.
static PARSE_AHEAD: AtomicBool = AtomicBool::new(true);

/// Makes every later load of this process parse on one thread
/// ([`PARSE_AHEAD`]).
pub(crate) fn parse_on_one_thread() {
    PARSE_AHEAD.store(false, Ordering::Relaxed);
}

/// Most distinct labels of checked steps in one case. A label may name
/// grid parameters (`check = "b_{p}"`), and expectations index each
/// label's tests: 4,000 tests of as many labels took `check` to 1 GiB.
pub const MAX_CHECKED_LABELS: usize = 256;

/// An error per case whose tests check more than [`MAX_CHECKED_LABELS`]
/// distinct labels.
fn checked_labels_bounded(tests: &[Arc<Test>], errors: &mut Vec<InputError>) {
    let mut labels: Map<&str, Set<&str>> = Map::default();
    let mut over: Vec<&Arc<Case>> = Vec::new();
    for t in tests {
        let seen = labels.entry(t.case.id.as_str()).or_default();
        if seen.len() > MAX_CHECKED_LABELS {
            continue;
        }
        seen.extend(t.steps.iter().filter_map(|s| s.check.as_deref()));
        if seen.len() > MAX_CHECKED_LABELS {
            over.push(&t.case);
        }
    }
    for case in over {
        errors.push(
            InputError::file(
                &case.file,
                format!(
                    "the tests of this case check more than {MAX_CHECKED_LABELS} differently labelled steps"
                ),
            )
            .help("a checked step's label names the step, not the combination: leave grid parameters out of `check`"),
        );
    }
}

/// What a process holds of trees loaded so far: the bounds on tests and
/// steps ([`load::MAX_TESTS`], [`load::MAX_STEPS`]) are on everything one
/// process holds, not on each tree (four of the largest trees took `check`
/// to 437 MiB).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Loaded {
    /// Tests built.
    pub tests: u64,
    /// Their steps.
    pub steps: u64,
}

impl Loaded {
    /// `self` and `suite`'s tests.
    pub(crate) fn with(self, suite: &Suite) -> Loaded {
        Loaded {
            tests: self.tests + suite.tests.len() as u64,
            steps: self.steps
                + suite
                    .tests
                    .iter()
                    .map(|t| t.steps.len() as u64)
                    .sum::<u64>(),
        }
    }
}

impl Suite {
    /// The built-in case tree's directory: the first of `$SOCKSPEC_CASES`,
    /// else `./cases` when it is sockspec's own tree, else the catalogue
    /// compiled into the binary, unpacked ([`catalogue::root`]). Never the
    /// build machine's source tree: an installed binary runs anywhere.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("SOCKSPEC_CASES")
            .and_then(|v| std::env::split_paths(&v).next())
            .filter(|d| !d.as_os_str().is_empty())
        {
            return dir;
        }
        match trees::builtin() {
            Ok(t) => t.root,
            // Loading from here then reports the directory as missing.
            Err(e) => {
                crate::stdio::eline(&format!("warning: {e}"));
                PathBuf::from("cases")
            }
        }
    }

    /// Loads, expands and checks everything under `root`; every problem found
    /// is reported, not just the first.
    pub fn load(root: &Path) -> Result<Suite, InputErrors> {
        Suite::load_scoped(root, &Scope::default())
    }

    /// [`Suite::load`], of only what `scope` names.
    pub fn load_scoped(root: &Path, scope: &Scope) -> Result<Suite, InputErrors> {
        Suite::load_beside(root, scope, Loaded::default())
    }

    /// [`Suite::load_scoped`] in a process that holds `before` already
    /// (other trees' tests): the tree is refused if, with them, it would
    /// pass the bounds on tests and steps.
    pub(crate) fn load_beside(
        root: &Path,
        scope: &Scope,
        before: Loaded,
    ) -> Result<Suite, InputErrors> {
        let mut errors = Vec::new();
        let mut files = load::case_files(root, &mut errors);
        if files.is_empty() && errors.is_empty() {
            return Err(InputErrors(vec![
                InputError::file(root, "no case files found")
                    .help("case files live in <cases>/<topic>/<case>.toml"),
            ]));
        }
        if scope.is_partial() {
            files.retain(|f| load::case_id(root, f).is_ok_and(|(_, id)| scope.wants_case(&id)));
        }
        let mut unchecked = expect::list_all(root, scope);
        // Each thread's allocator arena keeps the pages of the largest
        // parse it did (up to ~180 times the text): two threads parse only
        // when every file either parses is small (a missing claims.toml is).
        // Sizes are as listed: a case file that grows before it is read
        // is still parsed alone (`load::parse_toml`), only not on the
        // only thread that parses.
        let small =
            |f: &Path| std::fs::metadata(f).map_or(true, |m| m.len() <= load::SIDE_BY_SIDE_BYTES);
        let claims_file = root.join(claims::FILE);
        let beside = || files.iter().chain([&claims_file]).all(|f| small(f));
        let ahead = PARSE_AHEAD.load(Ordering::Relaxed) && unchecked.fits_ahead() && beside();
        // The registry and the profiles, before anything is built unless
        // both are small enough to be parsed ahead: their parses' working
        // memory (up to ~70 MiB each) is then given back before the tests
        // take theirs, not added to it (1 MiB of either beside the largest
        // tree took `check` to 282 MiB).
        let sides_ahead = ahead && unchecked.sides_small();
        if !sides_ahead {
            unchecked.read();
        }
        if ahead {
            // The expectation files are parsed on a thread of their own
            // from the start, while this one parses the cases and builds
            // the tests: they need no test until they are checked.
            std::thread::scope(|s| {
                let parsing = crate::par::spawn(s, move || {
                    // The tests are built beside it on the cores left.
                    let _busy = crate::par::busy();
                    unchecked.parse_ahead();
                    // This thread ends before the tests are built, and the
                    // one building them would read the two after.
                    if sides_ahead {
                        unchecked.read();
                    }
                    unchecked
                });
                Suite::load_with(root, scope, before, files, errors, || {
                    parsing
                        .join()
                        .unwrap_or_else(|p| std::panic::resume_unwind(p))
                })
            })
        } else {
            // The expectation files are parsed after the tests are built,
            // on this thread (by `expect::check_all`): the large files'
            // parses then reuse the memory building freed. Freed on another
            // thread, it stays in that thread's allocator arena, and with
            // the largest inputs `check` went past 256 MiB.
            Suite::load_with(root, scope, before, files, errors, move || unchecked)
        }
    }

    /// [`Suite::load_scoped`] of the case `files`, with the expectation
    /// files taken from `expected` once the tests are built (parsed
    /// meanwhile, or to be parsed).
    fn load_with(
        root: &Path,
        scope: &Scope,
        before: Loaded,
        files: Vec<PathBuf>,
        mut errors: Vec<InputError>,
        expected: impl FnOnce() -> expect::Unchecked,
    ) -> Result<Suite, InputErrors> {
        let claims = claims::load(root, &mut errors);
        let known: Option<std::collections::HashSet<String>> = claims
            .as_ref()
            .map(|c| c.iter().map(|c| c.id.clone()).collect());
        // Parsed on this thread, one after another: parses on several
        // threads would each leave their largest parse's pages in that
        // thread's allocator arena (see `expect::check_all`). Only small
        // expectation files, parsed ahead, are parsed beside small ones.
        let loaded: Vec<_> = files
            .iter()
            .filter_map(|f| load::load_case(root, f, known.as_ref(), &mut errors))
            .collect();
        // Bounded before anything is built: each case's grid is bounded by
        // the loader, the whole tree here.
        let steps: u64 = loaded
            .iter()
            .map(|l| l.case.combinations().saturating_mul(l.steps.len() as u64))
            .sum();
        let count: u64 = loaded.iter().map(|l| l.case.combinations()).sum();
        for (n, held, max, what) in [
            (count, before.tests, load::MAX_TESTS, "tests"),
            (steps, before.steps, load::MAX_STEPS, "steps"),
        ] {
            if n.saturating_add(held) > max {
                let beside = if held > 0 {
                    format!(
                        ", and with the {held} of the trees loaded before them, to {}",
                        n.saturating_add(held)
                    )
                } else {
                    String::new()
                };
                errors.push(InputError::file(
                    root,
                    format!("these cases would expand to {n} {what}{beside} in all; sockspec takes at most {max}"),
                ).help(if held > 0 {
                    "each test and its steps are kept in memory: load fewer trees at once (`--only-cases` leaves the built-in catalogue out), split the tree, or shrink the grids"
                } else {
                    "each test and its steps are kept in memory: split the tree, or shrink the grids"
                }));
                return Err(InputErrors(errors));
            }
        }
        let tests: Vec<Arc<Test>> = expand::expand_all(&loaded, scope, &mut errors)
            .into_iter()
            .map(Arc::new)
            .collect();
        checked_labels_bounded(&tests, &mut errors);
        let mut unchecked = expected();
        unchecked.read();
        let cases: Vec<Arc<Case>> = loaded.iter().map(|l| l.case.clone()).collect();
        // A partial load still ranks entries by how many of the whole grid's
        // tests they select.
        let grids: Option<expect::Grids> = scope.is_partial().then(|| {
            loaded
                .iter()
                .map(|l| (l.case.id.clone(), expand::all_labels(l)))
                .collect()
        });
        let expectations =
            expect::check_all(unchecked, &cases, &tests, grids.as_ref(), &mut errors);
        InputErrors::finish(errors)?;
        Ok(Suite {
            root: root.to_path_buf(),
            claims: claims.unwrap_or_default(),
            cases,
            tests,
            expectations,
            trees: vec![trees::Tree {
                root: root.to_path_buf(),
                name: None,
                embedded: catalogue::is_embedded(root),
            }],
        })
    }

    /// The tests of the case `id`, in suite order.
    pub fn tests_of<'s>(&'s self, id: &'s str) -> impl Iterator<Item = &'s Arc<Test>> + 's {
        self.tests.iter().filter(move |t| t.case.id == id)
    }

    /// The test named exactly `name`, if the suite has one.
    pub fn test(&self, name: &str) -> Option<&Arc<Test>> {
        self.tests.iter().find(|t| t.name == name)
    }

    /// Why `test` cannot run on this machine, if it cannot.
    pub fn skip_reason(&self, test: &Test, platform: &Platform) -> Option<String> {
        if let Some(why) = test.not_applicable(platform.os) {
            return Some(why);
        }
        for need in &test.needs {
            match need {
                Need::Root if !platform.privileged => {
                    return Some(format!(
                        "needs {} (another user, or a network namespace of its own)",
                        if platform.os == OsFamily::Windows {
                            "Administrator"
                        } else {
                            "root"
                        }
                    ));
                }
                Need::Actors if !sys::ACTORS => {
                    return Some(format!("actors are not supported on {}", platform.os));
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of named tests (`--exact`, nextest) loads only their cases and
    /// one OS's file, yet every expectation resolves to the same entry as
    /// in the whole tree: entries of other tests are passed over, and an
    /// entry's specificity is still counted on its case's whole grid.
    #[test]
    fn a_partial_load_resolves_every_expectation_as_the_whole_tree() {
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../cases"));
        let full = Suite::load(root).unwrap();
        // The first, middle and last test of every case.
        let mut names = Vec::new();
        for case in &full.cases {
            let of: Vec<&Arc<Test>> = full.tests_of(&case.id).collect();
            for i in [0, of.len() / 2, of.len().saturating_sub(1)] {
                if let Some(t) = of.get(i) {
                    names.push(t.name.clone());
                }
            }
        }
        names.dedup();
        let releases = [
            None,
            Some("5.10.262"),
            Some("6.1.192"),
            Some("6.12.117"),
            Some("7.3"),
        ];
        let (mut compared, mut entries) = (0, 0);
        for (&os, file) in &full.expectations.files {
            let scope = Scope {
                tests: Some(names.clone()),
                os: Some(os),
                ..Scope::default()
            };
            let part = Suite::load_scoped(root, &scope).unwrap();
            assert_eq!(part.tests.len(), names.len());
            assert_eq!(part.expectations.files.len(), 1, "only {os}'s file is read");
            let pfile = part.expectations.for_os(os).unwrap();
            for t in &part.tests {
                let whole = full.test(&t.name).unwrap();
                for (label, _) in &t.case.checks {
                    for r in releases {
                        let a = file.resolve(whole, label, r);
                        let b = pfile.resolve(t, label, r);
                        let key = |x: Option<expect::Applied>| {
                            x.map(|x| (x.entry.at.clone(), x.outcome.clone(), x.window.is_some()))
                        };
                        let (a, b) = (key(a), key(b));
                        entries += usize::from(a.is_some());
                        assert_eq!(a, b, "{} `{label}` on {os} {r:?}", t.name);
                        compared += 1;
                    }
                }
            }
        }
        assert!(
            compared > 1000 && entries > 500,
            "{compared} compared, {entries} with an entry"
        );
    }
}
