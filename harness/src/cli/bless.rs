//! `sockspec bless`: write what a kernel did into its OS's expectation file.

use std::path::PathBuf;
use std::process::ExitCode;

use sockspec::bless::{self, Refusal};
use sockspec::error::Error;
use sockspec::model::OsFamily;
use sockspec::results::Results;
use sockspec::run::Options;
use sockspec::{Platform, Scope, Suite};

use super::{Exec, Select, out};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    select: Select,
    #[command(flatten)]
    exec: Exec,
    /// Bless from results files (any OS's) instead of running here.
    #[arg(long, value_name = "RESULTS.json")]
    from: Vec<PathBuf>,
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    if bless::on_ci() {
        return Err(Error::Other(
            "bless refuses to run on CI ($CI is set): CI checks expectations, it does not write them"
                .into(),
        ));
    }
    // A case that stopped checking a step leaves observed outcomes for it;
    // they load set aside, and bless removes them.
    let trees = a.select.cases.trees()?;
    let suite = sockspec::trees::load_scoped(&trees, &Scope::setting_aside_stale())?;
    a.exec.setup(&suite)?;
    let filter = a.select.filter();
    let selected = suite
        .tests
        .iter()
        .filter(|t| filter.matches(&t.name))
        .count();
    if selected == 0 {
        return Err(Error::Usage("no test matches the filter".into()));
    }
    // Each test is blessed into the tree it came from; the built-in
    // catalogue compiled into the binary is no place to write.
    if let Some(t) = trees.iter().find(|t| t.embedded)
        && let Some(test) = suite
            .tests
            .iter()
            .find(|x| filter.matches(&x.name) && t.owns(&x.name, &trees))
    {
        let ours = trees.iter().find_map(|t| t.name.as_ref()).map_or_else(
            || "--only-cases --cases DIR".into(),
            |n| format!("a filter such as `{n}/`"),
        );
        return Err(Error::Other(format!(
            "bless writes expectation files, and `{}` is in the built-in catalogue compiled into sockspec ({}): bless it in a sockspec checkout (its ./cases), or select only your own trees ({ours})",
            test.name,
            t.root.display()
        )));
    }
    let inputs = if a.from.is_empty() {
        vec![run_here(&suite, &a, selected)]
    } else {
        read_inputs(&a.from)?
    };
    let mut blessed_any = false;
    for (os, release, results) in inputs {
        for tree in trees.iter().filter(|t| !t.embedded) {
            let prefix = tree.prefix();
            // This tree's records, under the names its own files use.
            let records: Vec<_> = results
                .tests
                .iter()
                .filter(|t| filter.matches(&t.name) && tree.owns(&t.name, &trees))
                .map(|t| {
                    let mut t = t.clone();
                    t.name = t.name[prefix.len()..].to_string();
                    t
                })
                .collect();
            if records.is_empty() {
                continue;
            }
            // Each bless reloads the tree: later inputs see earlier edits.
            let suite = Suite::load_scoped(&tree.root, &Scope::setting_aside_stale())?;
            let (obs, refused) = bless::observations(&suite, &records);
            let mut skipped = 0;
            for (name, why) in &refused {
                match why {
                    Refusal::Skipped(_) => skipped += 1,
                    _ => {
                        out::line(&format!("not blessed: {prefix}{name}: {why}"));
                    }
                }
            }
            for w in sockspec::claims::contradictions(&suite.tests, os, &records) {
                out::line(&w);
            }
            blessed_any |= records.len() > refused.len()
                || refused.iter().any(|(_, r)| *r != Refusal::UnknownTest);
            let summary = bless::bless_in(
                &suite,
                os,
                &release,
                &results.run.settings,
                results.run.implementation.as_deref(),
                &obs,
            )?;
            out::line(&summary.to_string());
            if skipped > 0 {
                out::line(&format!(
                    "({skipped} test(s) could not run on {os} {release} and were left alone)"
                ));
            }
        }
    }
    if !a.from.is_empty() && !blessed_any {
        return Err(Error::Other(
            "no test in the results files is a test of these cases (after the filter): nothing was blessed"
                .into(),
        ));
    }
    next_steps(&trees)?;
    Ok(ExitCode::SUCCESS)
}

/// What is left for `check` to refuse once bless is done, loaded again as
/// bless left the trees: observed outcomes of steps the cases no longer
/// check in the files of OSes not blessed here (only a run there removes
/// them), and claims tables whose counts the new expectations changed.
fn next_steps(trees: &[sockspec::trees::Tree]) -> Result<(), Error> {
    let each = sockspec::trees::load_each(trees, &Scope::setting_aside_stale())?;
    for suite in &each {
        for (os, file) in &suite.expectations.files {
            let left = file.set_aside();
            if left > 0 {
                out::line(&format!(
                    "next: {}: {left} observed outcome(s) of steps the cases no longer check; \
                     `check` refuses them until bless, on {os} or from a run there (`bless --from RESULTS.json`), covers their cases",
                    file.path.display()
                ));
            }
        }
    }
    if trees.iter().any(|t| sockspec::claims::has_table(&t.root)) {
        for stale in super::check::stale_claims_tables(trees, &each)? {
            out::line(&format!("next: {stale}"));
        }
    }
    Ok(())
}

fn run_here(suite: &Suite, a: &Args, selected: usize) -> (OsFamily, String, Results) {
    let platform = Platform::current();
    let opts = Options {
        filter: a.select.filter(),
        jobs: a.exec.jobs(),
        // An outcome that varies between runs is never blessed.
        repeat: a.exec.repeat.unwrap_or(3),
        label: None,
        stop: None,
    };
    out::line(&format!(
        "running {selected} test(s) on {} {} to bless them...",
        platform.os, platform.release
    ));
    let results = sockspec::run::run(suite, &platform, &opts, |_| {});
    (platform.os, platform.release.clone(), results)
}

fn read_inputs(paths: &[PathBuf]) -> Result<Vec<(OsFamily, String, Results)>, Error> {
    paths
        .iter()
        .map(|path| {
            let r = Results::read(path)?;
            let os = OsFamily::from_name(&r.run.os).ok_or_else(|| Error::Results {
                path: path.clone(),
                msg: format!("unknown OS family `{}`", r.run.os),
            })?;
            Ok((os, r.run.kernel.clone(), r))
        })
        .collect()
}
