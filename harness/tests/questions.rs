//! The README's "Questions": each is answered by one command, which must
//! exit 0 and print a table (one row per parameter combination, a column per
//! OS it names). `ci/readme-questions.py` (run from the repository root after `cargo build`) pastes their output into README.md.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The commands of README.md's "Questions" section (after `cargo run --release --`).
fn commands() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("\n## Questions\n")
        .expect("README has a Questions section");
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3);
    rest[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("$ cargo run --release -- "))
        .map(|c| c.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn every_readme_question_prints_a_table() {
    let cmds = commands();
    assert_eq!(cmds.len(), 6, "six questions: {cmds:?}");
    for args in cmds {
        let out = Command::new(env!("CARGO_BIN_EXE_sockspec"))
            .args(&args)
            .current_dir(repo())
            .env_remove("SOCKSPEC_CASES")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{args:?} exited {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        // The grid: the first block of table lines.
        let table: Vec<&str> = stdout
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .collect();
        assert!(table.len() >= 3, "{args:?} printed no table:\n{stdout}");
        assert!(
            table[1].starts_with("|--"),
            "{args:?}: no header rule:\n{stdout}"
        );
        let header: Vec<&str> = table[0].split('|').map(str::trim).collect();
        if let Some(i) = args.iter().position(|a| a == "--os") {
            for os in args[i + 1].split(',') {
                assert!(
                    header.contains(&os),
                    "{args:?}: no {os} column in {header:?}"
                );
            }
        }
        // Every row has a cell per column, and no cell is empty.
        for row in &table[2..] {
            let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), header.len() - 2, "{args:?}: {row}");
            assert!(cells.iter().all(|c| !c.is_empty()), "{args:?}: {row}");
        }
    }
}
