//! The share of checked steps each OS cannot judge: over every expanded test
//! that can run on the OS, the checked steps whose resolved expectation (no
//! kernel range) is `unknown` or missing. Run by ci/unknown-share.sh.

use sockspec::Suite;
use sockspec::model::OsFamily;
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
            for label in t.steps.iter().filter_map(|s| s.check.as_deref()) {
                let c = counts.entry(t.case.id.as_str()).or_default();
                c.0 += 1;
                if file
                    .and_then(|f| f.resolve(t, label, None))
                    .is_none_or(|a| matches!(a.outcome, Outcome::Unknown))
                {
                    c.1 += 1;
                }
            }
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
            for label in t.steps.iter().filter_map(|s| s.check.as_deref()) {
                total += 1;
                match file.and_then(|f| f.resolve(t, label, None)) {
                    Some(a) if !matches!(a.outcome, Outcome::Unknown) => {}
                    _ => unknown += 1,
                }
            }
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
