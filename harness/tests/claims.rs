//! The claims table in cases/README.md is generated; it must match the cases
//! and expectation files it is generated from.

use sockspec::Suite;
use sockspec::claims::{splice, table};

#[test]
fn the_claims_table_is_current() {
    let root = Suite::default_root();
    let suite = Suite::load(&root).unwrap_or_else(|e| panic!("{e}"));
    let path = root.join("README.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let fresh = splice(
        &text,
        &table(
            &suite.claims,
            &suite.cases,
            &suite.tests,
            &suite.expectations,
        ),
    );
    assert!(
        fresh == text,
        "{} is out of date: run `cargo run --release -- claims --write`",
        path.display()
    );
}

#[test]
fn every_claim_a_case_names_exists() {
    // Suite::load rejects unknown claim ids; this pins that the catalogue uses the list.
    let suite = Suite::load(&Suite::default_root()).unwrap_or_else(|e| panic!("{e}"));
    assert!(suite.claims.len() > 50);
    assert!(
        suite.cases.iter().all(|c| !c.claims.is_empty()),
        "every case names the claims it checks"
    );
}

#[test]
fn splicing_replaces_only_the_table() {
    let t = table(&[], &[], &[], &Default::default());
    let doc = format!("intro\n\n{t}outro\n");
    assert_eq!(splice(&doc, &t), doc);
    let stale = doc.replace("claim | from", "claim | FROM");
    assert_eq!(splice(&stale, &t), doc);
}
