//! `sockspec search WORDS`: the cases a question is about, found by their
//! title, claim, claim ids and what the claims say, the options their steps
//! set, and the errno names their expectations give.

use std::collections::BTreeSet;
use std::process::ExitCode;

use sockspec::Suite;
use sockspec::error::Error;
use sockspec::model::{Case, Opt};

use super::{Cases, out};

#[derive(clap::Args)]
pub struct Args {
    /// Words that must all occur (case-insensitive): `linger reset`,
    /// `SO_REUSEPORT udp`, `WSAEACCES` (WSA prefixes match the errno name).
    #[arg(required = true)]
    words: Vec<String>,
    #[command(flatten)]
    cases: Cases,
}

/// What of a case a word can match, by field.
struct Haystack {
    fields: Vec<(&'static str, String)>,
}

fn haystack(suite: &Suite, case: &Case) -> Haystack {
    let mut fields = vec![
        ("id", case.id.clone()),
        ("title", case.title.clone()),
        ("claim", case.claim.clone().unwrap_or_default()),
    ];
    let mut claims = Vec::new();
    for id in &case.claims {
        claims.push(id.clone());
        if let Some(c) = suite.claims.iter().find(|c| &c.id == id) {
            claims.push(c.says.clone());
        }
    }
    fields.push(("claims", claims.join(" ")));
    let mut opts = BTreeSet::new();
    let mut steps = BTreeSet::new();
    for t in suite.tests_of(&case.id) {
        for s in &t.steps {
            let line = s.to_string();
            for o in Opt::ALL {
                if line.contains(o.c_name()) {
                    opts.insert(format!("{} {}", o.c_name(), o.key()));
                }
            }
            steps.insert(line.split_whitespace().next().unwrap_or("").to_string());
        }
    }
    fields.push(("options", opts.into_iter().collect::<Vec<_>>().join(" ")));
    fields.push(("steps", steps.into_iter().collect::<Vec<_>>().join(" ")));
    let mut errnos = BTreeSet::new();
    for f in suite.expectations.files.values() {
        for e in f.entries.iter().filter(|e| e.case == case.id) {
            for (_, o) in &e.outcomes {
                if let sockspec::outcome::Outcome::Error(n) = o.base() {
                    errnos.insert(n.as_str().to_string());
                }
            }
        }
    }
    fields.push(("errors", errnos.into_iter().collect::<Vec<_>>().join(" ")));
    Haystack { fields }
}

/// The fields of `h` each word occurs in; None unless every word occurs.
fn matches(h: &Haystack, words: &[String]) -> Option<Vec<&'static str>> {
    let mut hit = Vec::new();
    for w in words {
        let w = w.to_lowercase();
        let bare = w.strip_prefix("wsa").unwrap_or(&w).to_string();
        let mut any = false;
        for (name, text) in &h.fields {
            let t = text.to_lowercase();
            let found = t.contains(&w) || (*name == "errors" && t.contains(&bare));
            if found {
                any = true;
                if !hit.contains(name) {
                    hit.push(*name);
                }
            }
        }
        if !any {
            return None;
        }
    }
    Some(hit)
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    if a.words.iter().all(|w| w.trim().is_empty()) {
        return Err(Error::Usage("search: give at least one word".into()));
    }
    let suite = a.cases.load()?;
    let words: Vec<String> = a
        .words
        .iter()
        .flat_map(|w| w.split_whitespace())
        .map(str::to_string)
        .collect();
    let mut found: Vec<(usize, &Case, Vec<&'static str>)> = suite
        .cases
        .iter()
        .filter_map(|c| {
            let h = haystack(&suite, c);
            matches(&h, &words).map(|hit| {
                // Title and claim hits rank first.
                let score = hit
                    .iter()
                    .map(|f| match *f {
                        "id" | "title" => 4,
                        "claim" | "claims" => 2,
                        _ => 1,
                    })
                    .sum();
                (score, c.as_ref(), hit)
            })
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    if found.is_empty() {
        out::line(&format!("no case matches `{}`", words.join(" ")));
        return Ok(ExitCode::SUCCESS);
    }
    let header: Vec<String> = ["case", "tests", "title", "matched in"]
        .map(String::from)
        .to_vec();
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|(_, c, hit)| {
            let n = suite.tests_of(&c.id).count();
            vec![
                c.id.clone(),
                n.to_string(),
                c.title.replace('|', "/"),
                hit.join(", "),
            ]
        })
        .collect();
    out::print(&sockspec::explain::text_table(&header, &rows));
    out::line(&format!(
        "\n{} case(s); `sockspec explain CASE` prints one's grid (or its test, if it has no grid)",
        found.len()
    ));
    Ok(ExitCode::SUCCESS)
}
