//! Packs the built-in catalogue (the case tree: cases, expectations, claims,
//! sources, its README) into the binary, so that an installed `sockspec` runs
//! it from any directory without the source tree.
//!
//! Where the tree comes from: in the repository (a checkout, `cargo install
//! --path harness`, `cargo install --git`), `../cases` beside this crate; in
//! a published package (which cannot reach outside its own directory),
//! `catalogue/`, the copy `ci/package.sh` puts there before `cargo package`.
//! The repository is recognised by `../Cargo.toml` and `../cases/expected`,
//! so an unrelated `cases` directory next to an unpacked crate is never
//! taken for it.
//!
//! The output is a Rust file in OUT_DIR listing every file with
//! `include_bytes!`, plus a content hash and the number of cases, which
//! `sockspec --version` prints.

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let repo = manifest.join("..");
    let root = if repo.join("Cargo.toml").is_file() && repo.join("cases/expected").is_dir() {
        repo.join("cases")
    } else if manifest.join("catalogue/expected").is_dir() {
        manifest.join("catalogue")
    } else {
        panic!(
            "sockspec's catalogue is missing: neither {} nor {} holds a case tree",
            repo.join("cases").display(),
            manifest.join("catalogue").display()
        );
    };
    println!("cargo::rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    files.sort();
    // FNV-1a over every path and content: a stable name for this catalogue,
    // not a security measure (the files are compiled in).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let mut cases = 0;
    let mut out = String::from(
        "/// Every file of the catalogue: path under the tree ('/'-separated), bytes.\npub static FILES: &[(&str, &[u8])] = &[\n",
    );
    for (rel, path) in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eat(rel.as_bytes());
        eat(&[0]);
        eat(&(bytes.len() as u64).to_le_bytes());
        eat(&bytes);
        // A case file is <topic>/<case>.toml; expected/ holds expectations.
        if rel.matches('/').count() == 1 && rel.ends_with(".toml") && !rel.starts_with("expected/")
        {
            cases += 1;
        }
        out.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            path.display().to_string()
        ));
    }
    out.push_str("];\n");
    let version = format!("{:012x}", hash >> 16);
    out.push_str(&format!(
        "/// A hash of the catalogue's paths and contents.\npub const HASH: &str = {version:?};\n"
    ));
    out.push_str(&format!(
        "/// How many case files it holds.\npub const CASES: usize = {cases};\n"
    ));
    let dest =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("catalogue.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
    println!("cargo::rustc-env=SOCKSPEC_CATALOGUE=catalogue {version}, {cases} cases");
}

/// Files under `dir`, as (path relative to `root` with '/', full path).
/// Hidden files and leftovers of interrupted writes (`.sockspec-*`) are not
/// part of the catalogue.
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let read = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in read {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        println!("cargo::rerun-if-changed={}", path.display());
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push((rel.join("/"), path));
        }
    }
}
