//! Stage 1: find and parse case files. Structure is checked here (known
//! fields, known step kinds, required fields); values that may hold parameters
//! are resolved and checked per test in [`crate::expand`].

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Deserialize;
use toml::{Spanned, Value};

use crate::error::{InputError, LineIndex};
use crate::model::{Case, Holds, Location, OsFamily, ParamValue, Recipe};
use crate::outcome::{Outcome, is_ident};
use crate::steps::{COMMON, KINDS, Kind};

/// The directory under the cases root that holds expectation files.
pub const EXPECTED_DIR: &str = "expected";

/// Default deadline of a test; a case overrides it with `deadline_ms`.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// What each `spawn` step adds to the default deadline: starting a process
/// is not what a test measures, and where it is slow the deadline would
/// catch it instead of a hang. Under Wine, with twelve workers starting
/// Windows processes at once, a helper took up to 2.2 s to answer.
pub const SPAWN_ALLOWANCE: Duration = Duration::from_millis(2500);

/// A case file, parsed, with its step templates still holding parameters.
pub struct LoadedCase {
    /// The case, with its grid and checks.
    pub case: Arc<Case>,
    /// Its steps as written, parameters still unbound.
    pub steps: Vec<StepTemplate>,
    /// Combinations of the grid that make no test.
    pub excludes: Vec<Exclude>,
    /// Where `[grid]` is written, for errors about the whole grid.
    pub grid_at: Option<Location>,
}

/// One step as written, before parameters are bound.
pub struct StepTemplate {
    /// Its position among the case's steps (0-based).
    pub index: usize,
    /// Where it is written.
    pub at: Location,
    /// Its `do` (the step kind).
    pub kind: &'static str,
    /// Field name, where it is written, and its raw value.
    pub fields: Vec<(&'static str, Location, Value)>,
}

impl StepTemplate {
    /// A field as written, with where.
    pub fn field(&self, name: &str) -> Option<(&Location, &Value)> {
        self.fields
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, l, v)| (l, v))
    }
}

/// One `[[exclude]]` entry: parameter → the labels it excludes.
pub struct Exclude {
    /// Where the entry is written.
    pub at: Location,
    /// Parameter → the labels it excludes (all must match).
    pub select: Vec<(String, Vec<String>)>,
}

/// A step as written: field name → value, each with its position.
type RawStep = IndexMap<String, Spanned<Value>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    title: Spanned<String>,
    source: Spanned<Value>,
    #[serde(default)]
    claim: Option<String>,
    #[serde(default)]
    deadline_ms: Option<Spanned<u64>>,
    #[serde(default)]
    only: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    requires: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    claims: Option<Spanned<Vec<Spanned<String>>>>,
    steps: Spanned<Vec<Spanned<RawStep>>>,
    #[serde(default)]
    grid: Option<Spanned<IndexMap<String, Spanned<Value>>>>,
    #[serde(default)]
    exclude: Vec<Spanned<IndexMap<String, Spanned<Value>>>>,
    #[serde(default)]
    recipe: Option<Spanned<RawRecipe>>,
    #[serde(default)]
    holds: Vec<Spanned<RawHolds>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHolds {
    #[serde(default, rename = "where")]
    select: IndexMap<String, Spanned<Value>>,
    #[serde(default)]
    os: Vec<Spanned<String>>,
    #[serde(default)]
    claims: Vec<Spanned<String>>,
    outcomes: IndexMap<String, Spanned<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    works: IndexMap<String, Spanned<Value>>,
}

/// The top-level keys of a case file, as the loader reads them.
pub fn case_keys() -> &'static [&'static str] {
    crate::keys::of::<RawCase>()
}

/// The keys of a case's `[[holds]]` entry.
pub fn holds_keys() -> &'static [&'static str] {
    crate::keys::of::<RawHolds>()
}

/// The keys of a case's `[recipe]`.
pub fn recipe_keys() -> &'static [&'static str] {
    crate::keys::of::<RawRecipe>()
}

/// Largest input file sockspec reads: hostile input cannot make `check`
/// use unbounded memory. Parsing costs up to ~180 bytes per byte of TOML
/// (the toml crate lists every event first; nested arrays cost the most),
/// so 1 MiB is ~180 MiB at peak; the largest real file,
/// `expected/linux.toml`, is about 160 KiB.
pub const MAX_INPUT_BYTES: u64 = 1 << 20;

/// Parses TOML input. The parser's working memory is up to ~180 times the
/// text, so parses run side by side only while their texts total at most
/// [`SIDE_BY_SIDE_BYTES`]; a larger file is parsed alone. That bounds the
/// memory parses use at once, not what they leave behind: each thread's
/// allocator arena keeps the pages of the largest parse it did, so the
/// loader parses on one thread but for small expectation files, parsed
/// ahead on a thread of their own when every file parsed beside them is
/// small too (`Suite::load_scoped`); what follows a parse (checking
/// entries, expanding grids) runs on every core.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, TomlError> {
    if text.len() as u64 > SIDE_BY_SIDE_BYTES {
        check_tokens(text)?;
    }
    static PARSING: std::sync::Mutex<u64> = std::sync::Mutex::new(0);
    static DONE: std::sync::Condvar = std::sync::Condvar::new();
    let lock = || {
        PARSING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    let n = text.len() as u64;
    let mut parsing = lock();
    while *parsing > 0 && *parsing + n > SIDE_BY_SIDE_BYTES {
        parsing = DONE
            .wait(parsing)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
    }
    *parsing += n;
    drop(parsing);
    // Given back however the parse ends.
    struct Done(u64);
    impl Drop for Done {
        fn drop(&mut self) {
            *PARSING
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) -= self.0;
            DONE.notify_all();
        }
    }
    let _done = Done(n);
    toml::from_str(text).map_err(|e| TomlError {
        message: e.message().trim().to_string(),
        span: e.span(),
    })
}

/// Why a TOML text was refused, and where.
#[derive(Debug)]
pub struct TomlError {
    message: String,
    span: Option<std::ops::Range<usize>>,
}

/// Most units of parser work a file larger than [`SIDE_BY_SIDE_BYTES`]
/// may take, counted with toml's lexer before it is parsed, without
/// keeping the tokens: a key, value or punctuation mark is three units
/// (the parser takes up to ~200 bytes for it), a blank, line end or
/// comment one (~66 bytes). 1 MiB of `[[0]],` took 200 MiB, and beside
/// the largest tree of tests `check` went past 256 MiB; this many take at
/// most ~70 MiB. 1 MiB as dense as the densest shipped file would take
/// 760,000.
pub const MAX_TOKENS: usize = 1_000_000;

/// Refuses a text of more than [`MAX_TOKENS`] units of parser work, at
/// the token that goes past them.
fn check_tokens(text: &str) -> Result<(), TomlError> {
    use toml_parser::lexer::TokenKind;
    let mut units = 0;
    for t in toml_parser::Source::new(text).lex() {
        units += match t.kind() {
            TokenKind::Whitespace | TokenKind::Comment | TokenKind::Newline => 1,
            _ => 3,
        };
        if units > MAX_TOKENS {
            return Err(TomlError {
                message: "too many keys, values, punctuation marks and lines in one file for sockspec to parse: split it, or write fewer, longer values".to_string(),
                span: Some(t.span().start()..t.span().end()),
            });
        }
    }
    Ok(())
}

/// Most bytes of TOML text parsed at once by parses side by side
/// ([`parse_toml`]): ~46 MiB of the parser's working memory. The largest
/// shipped file, `expected/linux.toml`, is about 160 KiB.
pub const SIDE_BY_SIDE_BYTES: u64 = 256 << 10;

/// Longest grid label or parameter name: every test's name and parameters
/// hold them, so with the most tests allowed, 300-character labels took
/// `check` past 256 MiB. The longest shipped label has 20 characters.
pub const MAX_LABEL: usize = 32;

/// Most combinations one case's grid may have (before `exclude`): counted
/// before any test is built, so a huge grid is refused, not allocated.
pub const MAX_GRID_COMBINATIONS: u64 = 10_000;

/// Most steps a whole case tree may expand to (tests times their steps,
/// before `exclude`): about 150 MiB of expanded tests, so `check` stays
/// under 256 MiB on any input.
pub const MAX_STEPS: u64 = 300_000;

/// Most tests a whole case tree may expand to (before `exclude`): each test
/// costs about 1.5 KiB besides its steps, so with [`MAX_STEPS`] this keeps
/// `check` under 256 MiB when the tests are many and short.
pub const MAX_TESTS: u64 = 80_000;

/// Reads an input file (case, expectation, claims, sources): a regular file
/// of at most [`MAX_INPUT_BYTES`], in UTF-8. Anything else (a FIFO would
/// block the read, a device would never end) is refused without opening it.
pub fn read_input(path: &Path) -> Result<String, InputError> {
    let meta =
        std::fs::metadata(path).map_err(|e| InputError::file(path, format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(InputError::file(
            path,
            "not a regular file (a directory, FIFO, socket or device): not read",
        )
        .help("input files must be regular files"));
    }
    if meta.len() > MAX_INPUT_BYTES {
        return Err(InputError::file(
            path,
            format!(
                "{} bytes: larger than sockspec reads ({MAX_INPUT_BYTES} bytes)",
                meta.len()
            ),
        ));
    }
    // Sized once (the length is bounded above; one byte more lets the read
    // that finds the end land without growing it): grown by doubling, the
    // buffers were reallocated and copied ~7 times a file.
    let mut bytes = Vec::with_capacity(meta.len() as usize + 1);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(
            std::fs::File::open(path)
                .map_err(|e| InputError::file(path, format!("cannot read: {e}")))?,
            MAX_INPUT_BYTES + 1,
        ),
        &mut bytes,
    )
    .map_err(|e| InputError::file(path, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let good = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let text = std::str::from_utf8(&bytes[..good]).unwrap_or_default();
        let index = LineIndex::new(Arc::new(path.to_path_buf()), text);
        index
            .err(
                good..good,
                format!("invalid UTF-8 (byte 0x{:02x})", bytes[good]),
            )
            .help("case and expectation files are UTF-8 text")
    })
}

/// Every case file under `root`, sorted, skipping the expectation directory.
/// Symbolic links to directories are not followed (a link to `.` would load
/// the tree again, two would loop): they are reported, as is any `*.toml`
/// that is not a regular file.
pub fn case_files(root: &Path, errors: &mut Vec<InputError>) -> Vec<PathBuf> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<InputError>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) => {
                errors.push(
                    InputError::file(dir, format!("cannot read this directory: {e}"))
                        .help("pass the directory that holds the case topics with --cases DIR"),
                );
                return;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    errors.push(InputError::file(
                        dir,
                        format!("cannot read this directory: {e}"),
                    ));
                    continue;
                }
            };
            let path = entry.path();
            let name = entry.file_name();
            let Ok(kind) = entry.file_type() else {
                errors.push(InputError::file(&path, "cannot tell what this is"));
                continue;
            };
            let toml = path.extension().is_some_and(|e| e == "toml");
            if kind.is_symlink() {
                if std::fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
                    errors.push(
                        InputError::file(&path, "a symbolic link to a directory: not followed")
                            .help("case trees hold real directories; replace the link with the directory"),
                    );
                    continue;
                }
                if !toml {
                    continue;
                }
            } else if kind.is_dir() {
                if dir == root && name == EXPECTED_DIR {
                    continue;
                }
                walk(&path, root, out, errors);
                continue;
            }
            if toml && !(dir == root && name == crate::claims::FILE) {
                if dir == root
                    && (name == crate::load::SOURCES_FILE
                        || name == crate::sys::settings::PROFILES_FILE)
                {
                    continue;
                }
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() => out.push(path),
                    _ => errors.push(InputError::file(
                        &path,
                        "named *.toml but not a regular file (a FIFO, socket, device or broken link): not read",
                    )),
                }
            }
        }
    }
    let mut out = Vec::new();
    if !root.is_dir() {
        errors.push(
            InputError::file(root, "no such cases directory")
                .help("pass the directory that holds the case topics with --cases DIR"),
        );
        return out;
    }
    walk(root, root, &mut out, errors);
    out.sort();
    out
}

/// The sources registry's file name under the cases root (not a case).
pub const SOURCES_FILE: &str = "sources.toml";

/// `topic::name` for a case file, from its path under the cases root.
/// A case file's topic and case id (`topic::case`), from its path under `root`.
pub fn case_id(root: &Path, file: &Path) -> Result<(String, String), InputError> {
    let rel = file.strip_prefix(root).unwrap_or(file);
    let parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() < 2 {
        return Err(InputError::file(
            file,
            "a case file must live in a topic directory (cases/<topic>/<case>.toml)",
        ));
    }
    if let Some(bad) = parts.iter().find(|p| !is_ident(p)) {
        return Err(
            InputError::file(file, format!("`{bad}` cannot be part of a test name")).help(
                "name topic directories and case files with at most 64 lower-case letters, digits and `_`",
            ),
        );
    }
    let topic = parts[..parts.len() - 1].join("::");
    let id = parts.join("::");
    // Every test's name starts with it.
    if id.len() > MAX_CASE_ID {
        return Err(InputError::file(
            file,
            format!("the case id `{id}` is longer than {MAX_CASE_ID} characters"),
        )
        .help("nest topic directories less deep, or shorten their names"));
    }
    Ok((topic, id))
}

/// Longest case id (`topic::sub::case`): 15 nested directories of 250
/// characters took `check` to 389 MiB.
pub const MAX_CASE_ID: usize = 128;

/// A toml error with its position.
pub fn toml_error(index: &LineIndex, e: &TomlError) -> InputError {
    index.err(e.span.clone().unwrap_or(0..0), e.message.clone())
}

/// Parse one case file. Errors are pushed to `errors`; `None` if it is unusable.
pub fn load_case(
    root: &Path,
    file: &Path,
    known_claims: Option<&HashSet<String>>,
    errors: &mut Vec<InputError>,
) -> Option<LoadedCase> {
    let (topic, id) = match case_id(root, file) {
        Ok(x) => x,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let text = match read_input(file) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            return None;
        }
    };
    let index = LineIndex::new(Arc::new(file.to_path_buf()), &text);
    let raw: RawCase =
        match parse_toml(&text) {
            Ok(r) => r,
            Err(e) => {
                errors.push(toml_error(&index, &e).help(
                    "see \"Case files\" in README.md for the fields a case and its steps take",
                ));
                return None;
            }
        };
    let before = errors.len();

    let title = raw.title.get_ref().trim().to_string();
    if title.is_empty() || title.contains('\n') {
        errors.push(index.err(raw.title.span(), "`title` must be one non-empty line"));
    }
    let source = parse_source(&index, raw.source, errors);
    let raw_deadline = match raw.deadline_ms {
        Some(d) if *d.get_ref() == 0 || *d.get_ref() > 120_000 => {
            errors.push(index.err(d.span(), "`deadline_ms` must be between 1 and 120000"));
            None
        }
        Some(d) => Some(Duration::from_millis(*d.get_ref())),
        None => None,
    };
    let only = raw.only.map(|list| parse_only(&index, list, errors));
    let requires_root = parse_requires(&index, raw.requires.unwrap_or_default(), errors);

    let grid_at = raw.grid.as_ref().map(|g| index.loc(g.span().start));
    let grid_span = raw.grid.as_ref().map(|g| g.span());
    let grid = raw
        .grid
        .map(|g| parse_grid(&index, g.into_inner(), errors))
        .unwrap_or_default();
    if let Err(e) = check_grid_size(&index, &grid, grid_span) {
        errors.push(e);
        return None;
    }
    let excludes = raw
        .exclude
        .into_iter()
        .filter_map(|ex| parse_exclude(&index, ex, &grid, errors))
        .collect();

    let (steps, checks) = parse_steps(&index, raw.steps, errors);

    let claims = check_claims(&index, raw.claims, known_claims, errors);
    let recipe = raw.recipe.map(|r| parse_recipe(&index, r, &checks, errors));
    let holds = raw
        .holds
        .into_iter()
        .map(|h| load_holds(&index, h, &grid, &checks, &claims, errors))
        .collect();
    if errors.len() > before {
        return None;
    }
    // Without `deadline_ms`, every helper the case starts adds its allowance.
    let deadline = match raw_deadline {
        Some(d) => d,
        None => {
            let spawns = steps
                .iter()
                .filter(|t| t.kind == <crate::steps::Spawn as crate::steps::StepKind>::NAME)
                .count() as u32;
            DEFAULT_DEADLINE + SPAWN_ALLOWANCE * spawns
        }
    };
    let case = Case {
        id,
        topic,
        file: index.file().clone(),
        title,
        source,
        claim: raw.claim,
        deadline,
        only,
        requires_root,
        grid,
        checks,
        claims,
        recipe,
        holds,
    };
    Some(LoadedCase {
        case: Arc::new(case),
        steps,
        excludes,
        grid_at,
    })
}

/// `source`: a string or a non-empty list of strings.
fn parse_source(
    index: &LineIndex,
    raw: Spanned<Value>,
    errors: &mut Vec<InputError>,
) -> Vec<String> {
    match raw.get_ref() {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) if a.iter().all(Value::is_str) && !a.is_empty() => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => {
            errors.push(
                index
                    .err(
                        raw.span(),
                        "`source` must be a string or a non-empty list of strings",
                    )
                    .help("cite a seed (seeds/001_....txt), a key of semantics.md, a man page or a selftest"),
            );
            Vec::new()
        }
    }
}

/// `only`: OS family names.
fn parse_only(
    index: &LineIndex,
    list: Vec<Spanned<String>>,
    errors: &mut Vec<InputError>,
) -> Vec<OsFamily> {
    list.iter()
        .filter_map(|s| match OsFamily::from_name(s.get_ref()) {
            Some(f) => Some(f),
            None => {
                errors.push(
                    index
                        .err(s.span(), format!("unknown OS family `{}`", s.get_ref()))
                        .help(format!("OS families: {}", OsFamily::names())),
                );
                None
            }
        })
        .collect()
}

/// `requires`: whether the case needs root (the only requirement a case
/// states itself).
fn parse_requires(
    index: &LineIndex,
    list: Vec<Spanned<String>>,
    errors: &mut Vec<InputError>,
) -> bool {
    let mut requires_root = false;
    for r in &list {
        match r.get_ref().as_str() {
            "root" => requires_root = true,
            other => errors.push(
                index
                    .err(r.span(), format!("unknown requirement `{other}`"))
                    .help("the only requirement a case states itself is `root`; others follow from its steps"),
            ),
        }
    }
    requires_root
}

/// Refuses a grid with more combinations than a case may have, before any
/// is built. (Case::combinations counts the same once the case exists.)
fn check_grid_size(
    index: &LineIndex,
    grid: &[(String, Vec<ParamValue>)],
    span: Option<std::ops::Range<usize>>,
) -> Result<(), InputError> {
    let combinations = grid
        .iter()
        .fold(1u64, |n, (_, values)| n.saturating_mul(values.len() as u64));
    if combinations <= MAX_GRID_COMBINATIONS {
        return Ok(());
    }
    let count = if combinations == u64::MAX {
        "more than 10^19".to_string()
    } else {
        combinations.to_string()
    };
    Err(index
        .err(
            span.unwrap_or(0..0),
            format!(
                "the grid has {count} combinations; a case may have at most {MAX_GRID_COMBINATIONS}"
            ),
        )
        .help("split the case, or move axes that do not interact into cases of their own"))
}

/// `[[steps]]`, with the labels of the checked steps in order (and the kind
/// of the step each first labels).
fn parse_steps(
    index: &LineIndex,
    raw: Spanned<Vec<Spanned<RawStep>>>,
    errors: &mut Vec<InputError>,
) -> (Vec<StepTemplate>, Vec<(String, &'static str)>) {
    let steps_span = raw.span();
    let raw_steps = raw.into_inner();
    if raw_steps.is_empty() {
        errors.push(index.err(steps_span, "a case needs at least one step"));
    }
    let mut steps = Vec::new();
    let mut checks: Vec<(String, &'static str)> = Vec::new();
    for (i, step) in raw_steps.into_iter().enumerate() {
        let at = index.loc(step.span().start);
        if let Some(t) = parse_step(index, i, at, step.into_inner(), errors) {
            if let Some(label) = template_label(&t)
                && !checks.iter().any(|(l, _)| *l == label)
            {
                checks.push((label, t.kind));
            }
            steps.push(t);
        }
    }
    (steps, checks)
}

/// `[recipe]`: the outcomes of checked steps under which a recipe works.
fn parse_recipe(
    index: &LineIndex,
    r: Spanned<RawRecipe>,
    checks: &[(String, &'static str)],
    errors: &mut Vec<InputError>,
) -> Recipe {
    let span = r.span();
    let mut works = Vec::new();
    for (label, v) in r.into_inner().works {
        if let Some(allowed) = allowed_outcomes(index, "recipe.works", checks, &label, &v, errors) {
            works.push((label, allowed));
        }
    }
    if works.is_empty() {
        errors.push(index.err(span, "`recipe.works` must name at least one checked step"));
    }
    Recipe { works }
}

/// The claims a case names. Where the tree has a `claims.toml`, every case
/// must name at least one of its ids (the claims table maps each claim to
/// its tests), and only those.
fn check_claims(
    index: &LineIndex,
    raw: Option<Spanned<Vec<Spanned<String>>>>,
    known: Option<&HashSet<String>>,
    errors: &mut Vec<InputError>,
) -> Vec<String> {
    let add_one = "or add one to <cases>/claims.toml: [[claim]] id = \"...\", from = \"where it is stated\", says = \"the claim in one line\"";
    let ids = |known: &HashSet<String>| {
        let mut ids: Vec<&str> = known.iter().map(String::as_str).collect();
        ids.sort();
        ids.join(", ")
    };
    let Some(raw) = raw else {
        if let Some(known) = known {
            errors.push(
                index
                    .err(0..0, "the case names no claims: add `claims = [\"ID\", ...]`, the ids of cases/claims.toml it checks")
                    .help(format!("ids in claims.toml: {}; {add_one}", ids(known))),
            );
        }
        return Vec::new();
    };
    let span = raw.span();
    let list = raw.into_inner();
    if list.is_empty()
        && let Some(known) = known
    {
        errors.push(
            index
                .err(
                    span,
                    "`claims` is empty: name the ids of cases/claims.toml the case checks",
                )
                .help(format!("ids in claims.toml: {}; {add_one}", ids(known))),
        );
    }
    list.iter()
        .filter_map(|c| {
            if let Some(known) = known
                && !known.contains(c.get_ref())
            {
                let near: Vec<&str> = known
                    .iter()
                    .filter(|k| strsim::damerau_levenshtein(k, c.get_ref()) <= 2)
                    .map(String::as_str)
                    .collect();
                let near = if near.is_empty() {
                    String::new()
                } else {
                    format!("close ids: {}; ", near.join(", "))
                };
                errors.push(
                    index
                        .err(
                            c.span(),
                            format!("claim `{}` is not in claims.toml", c.get_ref()),
                        )
                        .help(format!(
                            "{near}ids in claims.toml: {}; {add_one}",
                            ids(known)
                        )),
                );
                None
            } else {
                Some(c.get_ref().clone())
            }
        })
        .collect()
}

/// The check label a template declares, when it is not parameterised.
fn template_label(t: &StepTemplate) -> Option<String> {
    match t.field("check")? {
        (_, Value::Boolean(true)) => {
            let sock = t
                .field("sock")
                .or(t.field("name"))
                .or(t.field("actor"))
                .or(t.field("a"));
            match sock {
                Some((_, Value::String(s))) => Some(format!("{}_{s}", t.kind)),
                _ => Some(t.kind.to_string()),
            }
        }
        (_, Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn parse_step(
    index: &LineIndex,
    i: usize,
    at: Location,
    raw: RawStep,
    errors: &mut Vec<InputError>,
) -> Option<StepTemplate> {
    let Some(action) = raw.get("do") else {
        errors.push(
            InputError::at(&at, format!("step {} has no `do`", i + 1))
                .help("every step starts with `do = \"<kind>\"`, e.g. `do = \"bind\"`"),
        );
        return None;
    };
    let Some(Value::String(kind_name)) = Some(action.get_ref()) else {
        errors.push(index.err(action.span(), "`do` must be a string naming the step kind"));
        return None;
    };
    let Some(kind) = Kind::named(kind_name) else {
        let names: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        errors.push(
            index
                .err(action.span(), format!("unknown step kind `{kind_name}`"))
                .help(format!("step kinds are: {}", names.join(", "))),
        );
        return None;
    };
    let name = kind.name;
    let before = errors.len();
    // The field names as the kind declares them (static, for the templates).
    let known = |field: &str| {
        COMMON
            .iter()
            .chain(kind.required)
            .chain(kind.optional)
            .copied()
            .find(|f| *f == field)
    };
    let mut fields = Vec::new();
    for (field, v) in raw {
        match known(&field) {
            Some("do") => {}
            Some(f) => fields.push((f, index.loc(v.span().start), v.into_inner())),
            None => {
                let allowed: Vec<&str> = kind
                    .required
                    .iter()
                    .chain(kind.optional)
                    .chain(&COMMON[1..])
                    .copied()
                    .collect();
                let near = allowed
                    .iter()
                    .find(|a| strsim::damerau_levenshtein(a, &field) <= 2)
                    .map(|a| format!("did you mean `{a}`? "))
                    .unwrap_or_default();
                errors.push(
                    index
                        .err(v.span(), format!("`{name}` steps take no `{field}`"))
                        .help(format!("{near}`{name}` takes: {}", allowed.join(", "))),
                );
            }
        }
    }
    for req in kind.required {
        if !fields.iter().any(|(n, _, _)| n == req) {
            errors.push(
                InputError::at(&at, format!("this `{name}` step needs `{req}`"))
                    .help(format!("`{name}` requires: {}", kind.required.join(", "))),
            );
        }
    }
    if let Some((_, at, c)) = fields.iter().find(|(n, _, _)| *n == "check") {
        let ok = match c {
            Value::Boolean(_) => true,
            Value::String(s) => is_ident(s),
            _ => false,
        };
        if !ok {
            errors.push(
                InputError::at(
                    at,
                    "`check` must be true or a label (lower-case letters, digits, `_`)",
                )
                .help("the label names this step's outcome in expectation files"),
            );
        }
    }
    if errors.len() > before {
        return None;
    }
    Some(StepTemplate {
        index: i,
        at,
        kind: name,
        fields,
    })
}

/// Characters a parameter label may use in a test name.
pub fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_LABEL
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '+'))
}

fn scalar_label(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if is_label(s) => Some(s.clone()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

fn parse_grid(
    index: &LineIndex,
    grid: IndexMap<String, Spanned<Value>>,
    errors: &mut Vec<InputError>,
) -> Vec<(String, Vec<ParamValue>)> {
    let mut axes = Vec::new();
    for (name, values) in grid {
        let span = values.span();
        if !is_ident(&name) || name.len() > MAX_LABEL {
            errors.push(index.err(
                span.clone(),
                format!(
                    "grid parameter `{name}` must be at most {MAX_LABEL} lower-case letters, digits and `_`"
                ),
            ));
            continue;
        }
        let mut out = Vec::new();
        match values.into_inner() {
            Value::Array(items) => {
                for v in items {
                    match scalar_label(&v) {
                        Some(label) => out.push(ParamValue { label, value: v }),
                        None => errors.push(
                            index
                                .err(span.clone(), format!("grid value {v} of `{name}` cannot appear in a test name"))
                                .help("use strings of letters, digits, `_ . - +` (at most 32), booleans or integers, or give labels: `name = { label = value, ... }`"),
                        ),
                    }
                }
            }
            Value::Table(t) => {
                for (label, value) in t {
                    if !is_label(&label) {
                        errors.push(index.err(
                            span.clone(),
                            format!(
                                "grid label `{label}` of `{name}` cannot appear in a test name"
                            ),
                        ).help(format!("a label is at most {MAX_LABEL} letters, digits and `_ . - +`")));
                    }
                    out.push(ParamValue { label, value });
                }
            }
            _ => {
                errors.push(
                    index
                        .err(span.clone(), format!("grid parameter `{name}` must be a list of values or a table of labelled values"))
                        .help("e.g. `proto = [\"tcp\", \"udp\"]` or `addr = { any6 = \"::\", lo6 = \"::1\" }`"),
                );
                continue;
            }
        }
        if out.is_empty() {
            errors.push(index.err(
                span,
                format!("grid parameter `{name}` has no values: the grid would expand to nothing"),
            ));
            continue;
        }
        let mut seen = BTreeSet::new();
        for v in &out {
            if !seen.insert(v.label.clone()) {
                errors.push(index.err(
                    span.clone(),
                    format!("grid parameter `{name}` lists `{}` twice", v.label),
                ));
            }
        }
        axes.push((name, out));
    }
    axes
}

fn parse_exclude(
    index: &LineIndex,
    ex: Spanned<IndexMap<String, Spanned<Value>>>,
    grid: &[(String, Vec<ParamValue>)],
    errors: &mut Vec<InputError>,
) -> Option<Exclude> {
    let at = index.loc(ex.span().start);
    let mut select = Vec::new();
    let before = errors.len();
    for (name, v) in ex.into_inner() {
        let Some((_, axis)) = grid.iter().find(|(n, _)| *n == name) else {
            errors.push(
                index
                    .err(
                        v.span(),
                        format!("`exclude` names `{name}`, which is not a grid parameter"),
                    )
                    .help(format!(
                        "grid parameters: {}",
                        grid.iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
            );
            continue;
        };
        let labels = match selector_labels(v.get_ref(), axis) {
            Ok(l) => l,
            Err(msg) => {
                errors.push(index.err(v.span(), format!("`exclude.{name}`: {msg}")));
                continue;
            }
        };
        select.push((name, labels));
    }
    if select.is_empty() && errors.len() == before {
        errors.push(InputError::at(
            &at,
            "an empty `exclude` would exclude every test",
        ));
    }
    (errors.len() == before).then_some(Exclude { at, select })
}

/// The labels a selector value picks out of an axis: a value or label, or a list of them.
pub fn selector_labels(v: &Value, axis: &[ParamValue]) -> Result<Vec<String>, String> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut out = Vec::new();
    for item in items {
        let found = axis
            .iter()
            .find(|p| &p.value == item || item.as_str() == Some(p.label.as_str()));
        match found {
            Some(p) => out.push(p.label.clone()),
            None => {
                let known: Vec<&str> = axis.iter().map(|p| p.label.as_str()).collect();
                return Err(format!(
                    "{item} is not one of its values ({})",
                    known.join(", ")
                ));
            }
        }
    }
    Ok(out)
}

/// One `[[holds]]` entry: `where` over the grid, `os`, and per checked step
/// the outcome (or outcomes) the case's claim predicts.
fn load_holds(
    index: &LineIndex,
    raw: Spanned<RawHolds>,
    grid: &[(String, Vec<ParamValue>)],
    checks: &[(String, &'static str)],
    case_claims: &[String],
    errors: &mut Vec<InputError>,
) -> Holds {
    let span = raw.span();
    let raw = raw.into_inner();
    let mut select = Vec::new();
    for (k, v) in raw.select {
        let Some((_, axis)) = grid.iter().find(|(n, _)| *n == k) else {
            errors.push(index.err(
                v.span(),
                format!("`holds.where` names `{k}`, which is not a grid parameter"),
            ));
            continue;
        };
        match selector_labels(v.get_ref(), axis) {
            Ok(labels) => select.push((k, labels)),
            Err(e) => errors.push(index.err(v.span(), format!("`holds.where.{k}`: {e}"))),
        }
    }
    let os = (!raw.os.is_empty()).then(|| {
        raw.os
            .iter()
            .filter_map(|s| {
                let f = OsFamily::from_name(s.get_ref());
                if f.is_none() {
                    errors
                        .push(index.err(s.span(), format!("unknown OS family `{}`", s.get_ref())));
                }
                f
            })
            .collect()
    });
    let mut claims = Vec::new();
    for c in raw.claims {
        if case_claims.contains(c.get_ref()) {
            claims.push(c.into_inner());
        } else {
            errors.push(index.err(
                c.span(),
                format!(
                    "`holds.claims` names `{}`, which is not in the case's `claims`",
                    c.get_ref()
                ),
            ));
        }
    }
    let mut outcomes = Vec::new();
    for (label, v) in raw.outcomes {
        if let Some(allowed) = allowed_outcomes(index, "holds.outcomes", checks, &label, &v, errors)
        {
            outcomes.push((label, allowed));
        }
    }
    if outcomes.is_empty() {
        errors.push(index.err(
            span,
            "`holds` must name at least one checked step in `outcomes`",
        ));
    }
    Holds {
        select,
        os,
        claims,
        outcomes,
    }
}

/// The outcomes a `recipe.works` or `holds.outcomes` entry allows for one
/// checked step: one outcome string or a list; `None` when the label is not a
/// checked step.
fn allowed_outcomes(
    index: &LineIndex,
    what: &str,
    checks: &[(String, &'static str)],
    label: &str,
    v: &Spanned<Value>,
    errors: &mut Vec<InputError>,
) -> Option<Vec<Outcome>> {
    if !checks.iter().any(|(l, _)| l == label) {
        errors.push(index.err(
            v.span(),
            format!("`{what}` names `{label}`, which is not a checked step"),
        ));
        return None;
    }
    let items: Vec<&Value> = match v.get_ref() {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut allowed = Vec::new();
    for item in items {
        match item.as_str().map(str::parse::<Outcome>) {
            Some(Ok(o)) => allowed.push(o),
            Some(Err(e)) => errors.push(index.err(v.span(), e.to_string())),
            None => errors.push(index.err(v.span(), format!("`{what}` takes outcome strings"))),
        }
    }
    Some(allowed)
}
