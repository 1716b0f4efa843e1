//! The claims table in cases/README.md is generated; it must match the cases
//! and expectation files it is generated from.

use sockspec::Suite;
use sockspec::claims::{splice, table};

/// The repository's case tree (the one the built-in catalogue is built
/// from, and the one a contributor edits).
fn repo_cases() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cases")
}

#[test]
fn the_claims_table_is_current() {
    // The repository's tree, not the unpacked catalogue: a failure names
    // the file to fix, cases/README.md.
    let root = repo_cases();
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
        "cases/README.md ({}): the claims table is out of date: run `cargo run --release -- claims --write` (`sockspec check` says so too)",
        path.display()
    );
}

#[test]
fn every_claim_a_case_names_exists() {
    // Suite::load rejects unknown claim ids; this pins that the catalogue uses the list.
    let suite = Suite::load(&Suite::default_root()).unwrap_or_else(|e| panic!("{e}"));
    assert!(suite.claims.len() > 50);
    let without: Vec<&str> = suite
        .cases
        .iter()
        .filter(|c| c.claims.is_empty())
        .map(|c| c.id.as_str())
        .collect();
    assert!(
        without.is_empty(),
        "every case names the claims it checks; these do not (add `claims = [...]`): {without:?}"
    );
}

/// What the test above requires, the loader (`sockspec check`) requires too,
/// with the file, the line and the fix.
#[test]
fn the_loader_requires_claims_where_the_tree_has_a_claims_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("t")).unwrap();
    std::fs::write(
        dir.path().join("claims.toml"),
        "[[claim]]\nid = \"A1\"\nfrom = \"here\"\nsays = \"something\"\n",
    )
    .unwrap();
    let case = "title = \"x\"\nsource = \"y\"\nsteps = [{ do = \"sleep\", ms = 1 }]\n";
    std::fs::write(dir.path().join("t/c.toml"), case).unwrap();
    let e = Suite::load(dir.path())
        .err()
        .expect("a case without claims must not load")
        .to_string();
    for needle in [
        "t/c.toml:1:1",
        "names no claims",
        "ids in claims.toml: A1",
        "[[claim]]",
    ] {
        assert!(e.contains(needle), "{needle:?} not in {e}");
    }
    std::fs::write(dir.path().join("t/c.toml"), format!("claims = []\n{case}")).unwrap();
    let e = Suite::load(dir.path())
        .err()
        .expect("empty claims")
        .to_string();
    assert!(
        e.contains("t/c.toml:1:10") && e.contains("`claims` is empty"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("t/c.toml"),
        format!("claims = [\"A2\"]\n{case}"),
    )
    .unwrap();
    let e = Suite::load(dir.path())
        .err()
        .expect("unknown claim")
        .to_string();
    assert!(
        e.contains("t/c.toml:1:11") && e.contains("close ids: A1"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("t/c.toml"),
        format!("claims = [\"A1\"]\n{case}"),
    )
    .unwrap();
    Suite::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn splicing_replaces_only_the_table() {
    let t = table(&[], &[], &[], &Default::default());
    let doc = format!("intro\n\n{t}outro\n");
    assert_eq!(splice(&doc, &t), doc);
    let stale = doc.replace("claim | from", "claim | FROM");
    assert_eq!(splice(&stale, &t), doc);
}
