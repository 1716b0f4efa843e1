//! The share of checked steps each OS cannot judge: over every expanded test
//! that can run on the OS, the checked steps whose resolved expectation (no
//! kernel range) is `unknown` or missing; steps the engine will not run
//! there are left out (see `count`). Run by ci/unknown-share.sh.

use sockspec::Suite;
use sockspec::expect::ExpectFile;
use sockspec::model::{OsFamily, Test};
use sockspec::outcome::Outcome;

fn main() {
    // ci/unknown-share.sh [CASES] [--by-case OS]: with --by-case, the cases
    // that hold the OS's unknown steps, most first.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let by_case = args
        .iter()
        .position(|a| a == "--by-case")
        .and_then(|i| args.get(i + 1))
        .and_then(|o| OsFamily::from_name(o));
    let root = args
        .first()
        .filter(|a| !a.starts_with("--"))
        .map(Into::into)
        .unwrap_or_else(Suite::default_root);
    let suite = match Suite::load(&root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Some(os) = by_case {
        let file = suite.expectations.for_os(os);
        let mut counts: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        for t in suite
            .tests
            .iter()
            .filter(|t| t.not_applicable(os).is_none())
        {
            let (total, unknown) = count(t, file, os);
            let c = counts.entry(t.case.id.as_str()).or_default();
            c.0 += total;
            c.1 += unknown;
        }
        let mut rows: Vec<_> = counts.into_iter().collect();
        rows.sort_by_key(|(_, (_, u))| std::cmp::Reverse(*u));
        for (case, (total, unknown)) in rows {
            println!("{case:<36} {unknown:>6} of {total:>6}");
        }
        return;
    }
    println!(
        "{:<8} {:>8} {:>8} {:>7}",
        "os", "checked", "unknown", "share"
    );
    for os in OsFamily::ALL {
        let (mut total, mut unknown) = (0usize, 0usize);
        let file = suite.expectations.for_os(*os);
        for t in suite
            .tests
            .iter()
            .filter(|t| t.not_applicable(*os).is_none())
        {
            let (t_total, t_unknown) = count(t, file, *os);
            total += t_total;
            unknown += t_unknown;
        }
        if total > 0 {
            println!(
                "{:<8} {total:>8} {unknown:>8} {:>6.1}%",
                os.as_str(),
                100.0 * unknown as f64 / total as f64
            );
        }
    }
}

/// A test's checked steps on `os` and how many of them have no known
/// outcome. A step the engine will not run is not counted: one on a socket
/// whose setting-up step (bind, listen, ...) is expected to fail, since the
/// engine runs nothing more on such a socket (see `Action::establishes`);
/// and one not meant for `os`.
fn count(t: &Test, file: Option<&ExpectFile>, os: OsFamily) -> (usize, usize) {
    let (mut total, mut unknown) = (0, 0);
    let mut failed: Vec<&str> = Vec::new();
    for step in &t.steps {
        if step.os.as_ref().is_some_and(|on| !on.contains(&os))
            || step.action.socks().iter().any(|s| failed.contains(s))
        {
            continue;
        }
        let Some(label) = step.check.as_deref() else {
            continue;
        };
        total += 1;
        match file.and_then(|f| f.resolve(t, label, None)) {
            Some(a) if !matches!(a.outcome, Outcome::Unknown) => {
                let ok = match &step.require {
                    Some(req) => a.outcome == req,
                    None => a.outcome.is_ok(),
                };
                if !ok && step.action.establishes() {
                    failed.extend(step.action.socks());
                }
            }
            _ => unknown += 1,
        }
    }
    (total, unknown)
}
