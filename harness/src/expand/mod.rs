//! Stage 2: expand each case's parameter grid into tests, resolving every step
//! into a typed [`Action`](crate::steps::Action) and checking that the test
//! makes sense (sockets and actors exist before they are used, labels are
//! unique, ...).

pub mod fields;
mod scope;
mod template;

use std::sync::Arc;

use toml::Value;

use crate::Map;
use crate::error::InputError;
use crate::load::{LoadedCase, StepTemplate, selector_labels};
use crate::model::{Location, Need, ParamValue, Step, Test};
use crate::outcome::Outcome;
use crate::steps::Kind;

pub use fields::{ADDRESS_ALIASES, parse_addr};
use fields::{Fields, step_os};
use scope::{OptScope, Scope, check_semantics};
use template::Ctx;

/// Expand every loaded case. Errors are pushed; tests of erroneous cases are dropped.
pub fn expand_all(
    cases: &[LoadedCase],
    scope: &crate::Scope,
    errors: &mut Vec<InputError>,
) -> Vec<Test> {
    let tests = expand_in(cases, scope, errors);
    let mut seen: Map<&str, &Test> = Map::default();
    let mut dups = Vec::new();
    for t in &tests {
        if let Some(first) = seen.insert(&t.name, t) {
            dups.push(
                InputError::file(
                    &t.case.file,
                    format!(
                        "test name `{}` is also produced by {}",
                        t.name,
                        first.case.file.display()
                    ),
                )
                .help("rename one of the cases or its parameters"),
            );
        }
    }
    errors.extend(dups);
    tests
}

/// One combination of grid values: parameter name → value, borrowed from
/// the case's grid (a value may be a whole table: copying it for every
/// combination was most of building the grid).
type Combo<'a> = Vec<(&'a str, &'a ParamValue)>;

/// Expand one case.
pub fn expand(lc: &LoadedCase, errors: &mut Vec<InputError>) -> Vec<Test> {
    expand_in(std::slice::from_ref(lc), &crate::Scope::default(), errors)
}

/// [`expand_all`] without the check for duplicate names, resolving only the
/// combinations whose tests `scope` names.
fn expand_in(
    cases: &[LoadedCase],
    scope: &crate::Scope,
    errors: &mut Vec<InputError>,
) -> Vec<Test> {
    // Combinations are resolved on every core, several cases' at a time:
    // most cases have a few, one has hundreds. A batch ends after the case
    // that takes it past BATCH, so memory holds one large case's copies at
    // most, as when cases went one at a time.
    const BATCH: usize = 512;
    let mut tests = Vec::new();
    let mut work: Vec<(usize, Combo<'_>)> = Vec::new();
    for (i, lc) in cases.iter().enumerate() {
        if let Some(mut combos) = combos(lc, errors) {
            if scope.is_partial() {
                combos.retain(|c| scope.wants_test(&test_name(&lc.case.id, c)));
            }
            work.extend(combos.into_iter().map(|c| (i, c)));
        }
        if work.len() >= BATCH || i + 1 == cases.len() {
            // In chunks of one case's combinations, each with its own memo
            // of the steps it has read.
            let chunks: Vec<&[(usize, Combo<'_>)]> = work
                .chunk_by(|a, b| a.0 == b.0)
                .flat_map(|case| case.chunks(CHUNK))
                .collect();
            let plans: Map<usize, Vec<Plan>> = work
                .chunk_by(|a, b| a.0 == b.0)
                .map(|case| (case[0].0, plans(&cases[case[0].0])))
                .collect();
            let results = crate::par::map(&chunks, 1, |chunk| {
                let lc = &cases[chunk[0].0];
                let plans = &plans[&chunk[0].0];
                let mut memo = Memo::default();
                chunk
                    .iter()
                    .map(|(_, combo)| resolve_combo(lc, combo, plans, &mut memo))
                    .collect::<Vec<_>>()
            });
            let mut results = results.into_iter().flatten();
            for group in work.chunk_by(|a, b| a.0 == b.0) {
                let case: Vec<_> = results.by_ref().take(group.len()).collect();
                tests.extend(case_tests(case, group, errors));
            }
            work.clear();
        }
    }
    tests
}

/// One case's tests, or none and its errors if any combination has one.
fn case_tests(
    results: Vec<Result<Test, Vec<InputError>>>,
    combos: &[(usize, Combo<'_>)],
    errors: &mut Vec<InputError>,
) -> Vec<Test> {
    let mut tests = Vec::with_capacity(combos.len());
    let (mut named, mut unnamed) = (Vec::new(), Vec::new());
    for (r, (_, combo)) in results.into_iter().zip(combos) {
        match r {
            Ok(t) => tests.push(t),
            Err(errs) => {
                let combo = Ctx { params: combo }.combo();
                for e in errs {
                    if e.combos.is_empty() {
                        unnamed.push(e.in_combo(combo.clone()));
                    } else {
                        named.push(e);
                    }
                }
            }
        }
    }
    if named.is_empty() && unnamed.is_empty() {
        return tests;
    }
    named.extend(in_some_combinations(unnamed, combos.len()));
    errors.extend(InputError::merge_combos(named, combos.len()));
    Vec::new()
}

/// Errors that do not depend on a parameter's value (an undefined socket,
/// say) but show in only some combinations (a step with `when`) are counted
/// like the others ("in 40 of 80 combinations"); those that show in every
/// combination say nothing of the grid.
fn in_some_combinations(errors: Vec<InputError>, of: usize) -> Vec<InputError> {
    let mut merged = InputError::merge_combos(errors, of);
    for e in &mut merged {
        if e.combos.len() == of {
            e.combos.clear();
        }
    }
    merged
}

/// The grid's combinations minus the excluded ones; `None` (with errors)
/// when an `exclude` matches nothing or nothing is left.
fn combos<'a>(lc: &'a LoadedCase, errors: &mut Vec<InputError>) -> Option<Vec<Combo<'a>>> {
    let case = &lc.case;
    let mut combos: Vec<Combo<'a>> = vec![Vec::new()];
    for (name, values) in &case.grid {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push((name.as_str(), v));
                    c
                })
            })
            .collect();
    }
    let mut used_excludes = vec![false; lc.excludes.len()];
    combos.retain(|combo| {
        let mut keep = true;
        for (i, ex) in lc.excludes.iter().enumerate() {
            let hit = ex.select.iter().all(|(name, labels)| {
                combo
                    .iter()
                    .any(|(n, v)| n == name && labels.contains(&v.label))
            });
            if hit {
                used_excludes[i] = true;
                keep = false;
            }
        }
        keep
    });
    let before = errors.len();
    for (ex, used) in lc.excludes.iter().zip(&used_excludes) {
        if !used {
            errors.push(
                InputError::at(&ex.at, "this `exclude` matches no combination of the grid")
                    .help("check its parameter values, or remove it"),
            );
        }
    }
    if combos.is_empty() {
        let at = lc.grid_at.clone().unwrap_or(Location {
            file: case.file.clone(),
            line: 1,
            col: 1,
        });
        errors.push(
            InputError::at(
                &at,
                "the grid expands to nothing: every combination is excluded",
            )
            .help("loosen the `exclude` entries"),
        );
    }
    (errors.len() == before).then_some(combos)
}

/// The labels of every combination of `lc`'s grid (one per parameter, in
/// grid order), exclusions applied: what an expectation entry's
/// specificity counts when only some tests are expanded. Errors are
/// [`expand`]'s to report.
pub fn all_labels(lc: &LoadedCase) -> Vec<Vec<String>> {
    combos(lc, &mut Vec::new())
        .unwrap_or_default()
        .iter()
        .map(|c| c.iter().map(|(_, v)| v.label.clone()).collect())
        .collect()
}

/// The name of a combination's test: the case, then each parameter's label.
fn test_name(case: &str, combo: &Combo<'_>) -> String {
    // Pieces pushed into one allocation: a `format!` per parameter was
    // ~4,000 instructions a test.
    let len = combo.iter().map(|(k, v)| 3 + k.len() + v.label.len());
    let mut name = String::with_capacity(case.len() + len.sum::<usize>());
    name.push_str(case);
    for (k, v) in combo {
        for piece in ["::", k, "=", &v.label] {
            name.push_str(piece);
        }
    }
    name
}

/// How many of one case's combinations share a [`Memo`]: enough that most
/// steps are read once per chunk, few enough to spread a large grid over
/// every core.
const CHUNK: usize = 16;

/// The steps a chunk of one case's combinations has read, by template and
/// the labels of the parameters it refers to: a step reads the same in
/// every combination that gives those parameters the same labels (a label
/// stands for one value: a label repeated within a parameter is a load
/// error). Only steps read without error are kept, so each combination
/// reports its own.
type Memo<'a> = Map<(usize, Vec<&'a str>), (Arc<Step>, bool)>;

/// What is worked out once per step template of a case.
struct Plan {
    /// The grid parameters (indices) its fields other than `when` refer
    /// to; `None` when that cannot be told (a malformed reference), and the
    /// step is then read afresh each time.
    deps: Option<Vec<usize>>,
    /// Its `when`, as the labels it selects of each parameter (index), empty
    /// without one; or why it is malformed, reported in every combination.
    when: Result<Vec<(usize, Vec<String>)>, InputError>,
}

fn plans(lc: &LoadedCase) -> Vec<Plan> {
    let grid = &lc.case.grid;
    let names: Vec<&str> = grid.iter().map(|(n, _)| n.as_str()).collect();
    lc.steps
        .iter()
        .map(|t| {
            let mut deps = Vec::new();
            let deps = t
                .fields
                .iter()
                .filter(|(name, _, _)| *name != "when")
                .all(|(_, _, v)| template::refs(v, &names, &mut deps))
                .then_some(deps);
            Plan {
                deps,
                when: when_of(t, grid),
            }
        })
        .collect()
}

/// One combination's test.
fn resolve_combo<'a>(
    lc: &LoadedCase,
    combo: &'a Combo<'a>,
    plans: &[Plan],
    memo: &mut Memo<'a>,
) -> Result<Test, Vec<InputError>> {
    let case = &lc.case;
    let (steps, needs) = resolve_test(lc, combo, plans, memo)?;
    Ok(Test {
        name: test_name(&case.id, combo),
        case: case.clone(),
        params: combo
            .iter()
            .map(|(k, v)| (k.to_string(), v.label.clone()))
            .collect(),
        steps,
        needs,
    })
}

/// A test's steps and what it needs of the machine.
type Resolved = (Vec<Arc<Step>>, Vec<Need>);

fn resolve_test<'a>(
    lc: &LoadedCase,
    combo: &'a [(&'a str, &'a ParamValue)],
    plans: &[Plan],
    memo: &mut Memo<'a>,
) -> Result<Resolved, Vec<InputError>> {
    let ctx = Ctx { params: combo };
    let mut errors = Vec::new();
    let mut scope = Scope::default();
    let mut steps = Vec::with_capacity(lc.steps.len());
    // Pushed as found (each setopt's again), then sorted and deduplicated
    // once: what a set gave, for fewer instructions.
    let mut needs = Vec::new();
    if let Some(only) = &lc.case.only {
        needs.push(Need::Os(only.clone()));
    }
    if lc.case.requires_root {
        needs.push(Need::Root);
    }
    for (t, plan) in lc.steps.iter().zip(plans) {
        let applies = match &plan.when {
            Ok(when) => when.iter().all(|(i, labels)| {
                combo
                    .get(*i)
                    .is_some_and(|(_, p)| labels.contains(&p.label))
            }),
            Err(e) => {
                errors.push(e.clone());
                false
            }
        };
        if !applies {
            continue;
        }
        let Some((step, probe)) = read_step_memo(t, &ctx, plan.deps.as_deref(), memo, &mut errors)
        else {
            continue;
        };
        if let Some(o) = &step.require
            && !step.action.accepts(o)
        {
            errors.push(InputError::at(
                &t.at,
                format!("a `{}` step cannot have the outcome `{o}`", t.kind),
            ));
        }
        if let Some(label) = &step.check
            && !scope.labels.insert(label.clone())
        {
            errors.push(
                InputError::at(
                    &t.at,
                    format!("check label `{label}` is used twice in one test"),
                )
                .in_combo(ctx.combo())
                .help("give one of the steps its own label: `check = \"name\"`"),
            );
        }
        let opt_scope = OptScope {
            os: step.os.clone(),
            probe,
        };
        check_semantics(
            &step.action,
            step.actor.as_deref(),
            &t.at,
            &opt_scope,
            &mut scope,
            &mut needs,
            &mut errors,
        );
        steps.push(step);
    }
    if errors.is_empty() {
        needs.sort_unstable();
        needs.dedup();
        Ok((steps, needs))
    } else {
        Err(errors)
    }
}

/// [`read_step`], or the step it read before in a combination that gives
/// the parameters in `deps` the same labels: shared, not copied, since most
/// of a grid's tests repeat most of their steps (copies were a sixth of
/// `check`'s CPU, with their allocations and page faults).
fn read_step_memo<'a>(
    t: &StepTemplate,
    ctx: &Ctx<'a>,
    deps: Option<&[usize]>,
    memo: &mut Memo<'a>,
    errors: &mut Vec<InputError>,
) -> Option<(Arc<Step>, bool)> {
    let labels = deps.and_then(|deps| {
        deps.iter()
            .map(|&i| ctx.params.get(i).map(|(_, v)| v.label.as_str()))
            .collect::<Option<Vec<_>>>()
    });
    let Some(labels) = labels else {
        return read_step(t, ctx, errors).map(|(s, p)| (Arc::new(s), p));
    };
    let key = (t.index, labels);
    if let Some(read) = memo.get(&key) {
        return Some(read.clone());
    }
    let before = errors.len();
    let read = read_step(t, ctx, errors).map(|(s, p)| (Arc::new(s), p))?;
    if errors.len() == before {
        memo.insert(key, read.clone());
    }
    Some(read)
}

/// Reads one step template for a combination: its action and the fields
/// every step may carry. Returns the step and whether it is a probe.
fn read_step(
    t: &StepTemplate,
    ctx: &Ctx<'_>,
    errors: &mut Vec<InputError>,
) -> Option<(Step, bool)> {
    let mut f = Fields {
        t,
        ctx,
        errors: Vec::new(),
    };
    let kind = Kind::named(t.kind).expect("load accepted only known step kinds");
    let action = (kind.read)(&mut f);
    let check = match t.field("check") {
        Some((_, Value::Boolean(true))) => action.as_ref().map(|a| a.label()),
        Some((_, Value::String(s))) => Some(s.clone()),
        _ => None,
    };
    let actor = if t.kind == "socket" || t.kind == "server" {
        f.raw("actor").and_then(|_| f.ident("actor"))
    } else {
        None
    };
    let require = f.raw("require").and_then(|(at, v)| match v.as_str() {
        Some(s) => match s.parse::<Outcome>() {
            Ok(o) => Some(o),
            Err(e) => {
                f.err(&at, format!("`require`: {e}"));
                None
            }
        },
        None => {
            f.err(&at, "`require` must be an outcome string".into());
            None
        }
    });
    let os = step_os(&mut f);
    let probe = match f.t.field("probe") {
        Some(_) => f
            .parse("probe", "true or false", Value::as_bool)
            .unwrap_or(false),
        None => false,
    };
    if probe && t.field("check").is_none() {
        f.err_at_step("a `probe` step asks whether an option exists: give it a `check`");
    }
    errors.append(&mut f.errors);
    let step = Step {
        index: t.index,
        at: t.at.clone(),
        actor,
        action: action?,
        check,
        os,
        require,
    };
    Some((step, probe))
}

/// A step template's `when`: for each grid parameter it names (by index),
/// the labels it selects; empty without one.
fn when_of(
    t: &StepTemplate,
    grid: &[(String, Vec<ParamValue>)],
) -> Result<Vec<(usize, Vec<String>)>, InputError> {
    let Some((at, when)) = t.field("when") else {
        return Ok(Vec::new());
    };
    let Value::Table(sel) = when else {
        return Err(
            InputError::at(at, "`when` must be a table of grid parameters and values")
                .help("e.g. `when = { listen = true }` or `when = { proto = [\"tcp\"] }`"),
        );
    };
    sel.iter()
        .map(|(name, v)| {
            let Some(i) = grid.iter().position(|(n, _)| n == name) else {
                return Err(InputError::at(
                    at,
                    format!("`when` names `{name}`, which is not a grid parameter"),
                ));
            };
            selector_labels(v, &grid[i].1)
                .map(|labels| (i, labels))
                .map_err(|msg| InputError::at(at, format!("`when.{name}`: {msg}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_parse() {
        for (name, addr) in ADDRESS_ALIASES {
            assert_eq!(parse_addr(name), Some(addr.parse().unwrap()));
        }
        assert_eq!(parse_addr("10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(parse_addr("loopback"), None);
    }

    /// The tests one case file expands to (no expectations needed).
    fn expand_case(text: &str) -> Result<Vec<std::sync::Arc<Test>>, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/c.toml"), text).unwrap();
        crate::Suite::load(dir.path())
            .map(|s| s.tests)
            .map_err(|e| e.to_string())
    }

    fn case(grid: &str, steps: &str) -> String {
        format!("title = \"t\"\nsource = \"s\"\nsteps = [\n{steps}\n]\n{grid}")
    }

    const SOCK: &str = r#"  { do = "socket", name = "a", type = "tcp", family = "v4" },"#;

    #[test]
    fn test_names_list_every_parameter_in_grid_order() {
        let t = expand_case(&case(
            "[grid]\nproto = [\"tcp\", \"udp\"]\nreuse = [false, true]\n",
            r#"  { do = "socket", name = "a", type = "{proto}", family = "v4" },"#,
        ))
        .unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "t::c::proto=tcp::reuse=false",
                "t::c::proto=tcp::reuse=true",
                "t::c::proto=udp::reuse=false",
                "t::c::proto=udp::reuse=true",
            ]
        );
    }

    #[test]
    fn when_keeps_a_step_only_in_the_combinations_it_names() {
        let t = expand_case(&case(
            "[grid]\nlisten = [false, true]\n",
            &format!(
                "{SOCK}\n  {{ do = \"bind\", sock = \"a\", addr = \"lo4\", port = 0 }},\n  {{ do = \"listen\", sock = \"a\", when = {{ listen = true }} }},"
            ),
        ))
        .unwrap();
        assert_eq!(t[0].steps.len(), 2, "{}", t[0].name);
        assert_eq!(t[1].steps.len(), 3, "{}", t[1].name);
        assert_eq!(t[1].steps[2].action.kind(), "listen");
    }

    #[test]
    fn excludes_drop_the_combinations_they_select() {
        let t = expand_case(&case(
            "[grid]\na = [1, 2]\nb = [\"x\", \"y\"]\n\n[[exclude]]\na = 2\nb = \"y\"\n",
            SOCK,
        ))
        .unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["t::c::a=1::b=x", "t::c::a=1::b=y", "t::c::a=2::b=x"]
        );
    }

    #[test]
    fn fields_of_table_values_and_interpolation() {
        let t = expand_case(&case(
            "[grid]\nside = { v4 = { fam = \"v4\", addr = \"lo4\" }, v6 = { fam = \"v6\", addr = \"lo6\" } }\n",
            r#"  { do = "socket", name = "s_{side.fam}", type = "tcp", family = "{side.fam}" },
  { do = "bind", sock = "s_{side.fam}", addr = "{side.addr}", port = 0, check = "bound" },"#,
        ))
        .unwrap();
        assert_eq!(t[1].steps[1].to_string(), "bind s_v6 [::1]:0");
        assert_eq!(t[0].steps[1].to_string(), "bind s_v4 127.0.0.1:0");
        // A field the value lacks is an error naming it.
        let e = expand_case(&case(
            "[grid]\nside = { v4 = { fam = \"v4\" } }\n",
            r#"  { do = "socket", name = "a", type = "tcp", family = "{side.nope}" },"#,
        ))
        .unwrap_err();
        assert!(e.contains("has no field `nope`"), "{e}");
    }

    #[test]
    fn booleans_stay_booleans() {
        // `{on}` alone is the grid's boolean, not the string "true".
        let t = expand_case(&case(
            "[grid]\non = [true, false]\n",
            &format!("{SOCK}\n  {{ do = \"setopt\", sock = \"a\", opt = \"reuseaddr\", value = \"{{on}}\" }},"),
        ))
        .unwrap();
        let value = |t: &Test| match &t.steps[1].action {
            crate::model::Action::SetOpt(s) => s.value.clone(),
            a => panic!("{a:?}"),
        };
        assert_eq!(value(&t[0]), crate::model::OptValue::Bool(true));
        assert_eq!(value(&t[1]), crate::model::OptValue::Bool(false));
    }

    #[test]
    fn os_and_not_os_name_the_families_a_step_runs_on() {
        let t = expand_case(&case(
            "",
            &format!(
                "{SOCK}\n  {{ do = \"setopt\", sock = \"a\", opt = \"reuseaddr\", value = true, os = [\"windows\"] }},\n  {{ do = \"setopt\", sock = \"a\", opt = \"reuseport\", value = true, not_os = [\"windows\", \"wine\", \"illumos\"] }},"
            ),
        ))
        .unwrap();
        use crate::model::OsFamily::*;
        assert_eq!(t[0].steps[1].os, Some(vec![Windows]));
        let not = t[0].steps[2].os.clone().unwrap();
        assert!(not.contains(&Linux) && !not.contains(&Windows) && !not.contains(&Illumos));
        // SO_REUSEPORT is a need only where the step runs: not on Windows.
        assert_eq!(t[0].not_applicable(Windows), None);
        let both = expand_case(&case(
            "",
            &format!("{SOCK}\n  {{ do = \"setopt\", sock = \"a\", opt = \"reuseaddr\", value = true, os = [\"linux\"], not_os = [\"wine\"] }},"),
        ))
        .unwrap_err();
        assert!(both.contains("give `os` or `not_os`, not both"), "{both}");
    }

    #[test]
    fn a_probe_asks_whether_an_option_exists_instead_of_needing_it() {
        let steps = |probe: &str| {
            format!(
                "{SOCK}\n  {{ do = \"setopt\", sock = \"a\", opt = \"exclbind\", value = true{probe}, check = true }},"
            )
        };
        let plain = expand_case(&case("", &steps(""))).unwrap();
        let probe = expand_case(&case("", &steps(", probe = true"))).unwrap();
        use crate::model::OsFamily::Linux;
        assert!(plain[0].not_applicable(Linux).is_some());
        assert_eq!(probe[0].not_applicable(Linux), None);
    }
}
