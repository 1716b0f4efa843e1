//! `sockspec new TOPIC::NAME`: a commented case file with every required
//! key, ready to run and bless.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sockspec::error::Error;
use sockspec::outcome::is_ident;

use super::{Cases, out};

#[derive(clap::Args)]
pub struct Args {
    /// The new case's id, `topic::name` (lower-case letters, digits, `_`):
    /// written to <cases>/<topic>/<name>.toml.
    #[arg(value_name = "TOPIC::NAME")]
    name: String,
    /// An id of <cases>/claims.toml the case checks (repeatable). Without
    /// one, a new claim for the case is added to claims.toml, to be worded.
    #[arg(long, value_name = "ID")]
    claim: Vec<String>,
    #[command(flatten)]
    cases: Cases,
}

pub fn exec(a: Args) -> Result<ExitCode, Error> {
    let root = a.cases.writable_root()?;
    let parts = parse_name(&a.name)?;
    let (dirs, file) = parts.split_at(parts.len() - 1);
    let dir = dirs.iter().fold(root.clone(), |p, d| p.join(d));
    let path = dir.join(format!("{}.toml", file[0]));
    if std::fs::symlink_metadata(&path).is_ok() {
        return Err(Error::Usage(format!(
            "{}: already exists; `sockspec new` never overwrites a case (pick another name, or edit that file)",
            path.display()
        )));
    }
    if dirs.len() == 1 && dirs[0] == sockspec::load::EXPECTED_DIR {
        return Err(Error::Usage(format!(
            "`{}` is where expectation files live, not a topic",
            dirs[0]
        )));
    }
    let claims_path = root.join(sockspec::claims::FILE);
    let known = known_claims(&claims_path)?;
    let claims = match (&known, a.claim.is_empty()) {
        (_, false) => {
            if let Some(known) = &known
                && let Some(bad) = a.claim.iter().find(|c| !known.contains(c))
            {
                return Err(Error::Usage(format!(
                    "claim `{bad}` is not in {}; ids there: {}",
                    claims_path.display(),
                    known.join(", ")
                )));
            }
            a.claim.clone()
        }
        (Some(_), true) => vec![add_claim(&claims_path, &parts)?],
        (None, true) => Vec::new(),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let id = parts.join("::");
    let flags = sockspec::trees::selecting(&root);
    let text = scaffold(&root, &path, &id, &claims, &flags);
    sockspec::atomic::write(&path, text.as_bytes()).map_err(|e| Error::io(&path, e))?;
    out::line(&format!(
        "{}: new case `{}` written",
        path.display(),
        parts.join("::")
    ));
    let table = if sockspec::claims::has_table(&root) {
        format!(
            ", then `{}` (the claims table in README.md)",
            super::claims::write_command(&root)
        )
    } else {
        String::new()
    };
    out::line(&format!(
        "next: edit it, then `cargo run --release -- run {id}{flags}` and `cargo run --release -- bless {id}{flags}`{table}"
    ));
    Ok(ExitCode::SUCCESS)
}

/// `topic::name` (topics may nest: `a::b::name`), each part an identifier.
fn parse_name(name: &str) -> Result<Vec<String>, Error> {
    let parts: Vec<String> = name.split("::").map(str::to_string).collect();
    if parts.len() < 2 {
        return Err(Error::Usage(format!(
            "`{name}`: a case id is `topic::name` (e.g. `bind::privileged`)"
        )));
    }
    if let Some(bad) = parts.iter().find(|p| !is_ident(p)) {
        return Err(Error::Usage(format!(
            "`{name}`: `{bad}` cannot be part of a test name; use lower-case letters, digits and `_`"
        )));
    }
    Ok(parts)
}

/// The ids of claims.toml, if the tree has one (read as `check` reads it).
fn known_claims(path: &Path) -> Result<Option<Vec<String>>, Error> {
    let mut errors = Vec::new();
    let root = path.parent().unwrap_or(Path::new("."));
    let claims = sockspec::claims::load(root, &mut errors);
    if !errors.is_empty() {
        return Err(Error::Input(sockspec::error::InputErrors(errors)));
    }
    Ok(claims.map(|c| c.into_iter().map(|c| c.id).collect()))
}

/// Appends a claim for the new case to claims.toml; its id.
fn add_claim(path: &Path, parts: &[String]) -> Result<String, Error> {
    let id = format!("NEW-{}", parts.join("-"));
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let sep = if text.ends_with('\n') || text.is_empty() {
        ""
    } else {
        "\n"
    };
    let new = format!(
        "{text}{sep}\n[[claim]]\nid = \"{id}\"\nfrom = \"sockspec new: say where the claim is stated (a man page, a seed, semantics.md)\"\nsays = \"{}: the claim in one line\"\n",
        parts.join("::")
    );
    sockspec::atomic::write_text_like(path, &new, Some(&text)).map_err(|e| Error::io(path, e))?;
    out::line(&format!(
        "{}: claim `{id}` added for the new case; word its `from` and `says` (or name an existing id with --claim)",
        path.display()
    ));
    Ok(id)
}

/// The case file: every required key, the optional ones commented out, and
/// steps that run as they are (two binds of one port, the second checked).
fn scaffold(root: &Path, path: &Path, id: &str, claims: &[String], flags: &str) -> String {
    let schema = root.join(super::schema::CASE_SCHEMA);
    let directive = if schema.is_file() {
        let depth = path
            .strip_prefix(root)
            .map(|p| p.components().count() - 1)
            .unwrap_or(1);
        let up: PathBuf = (0..depth).map(|_| "..").collect();
        format!(
            "#:schema {}\n",
            up.join(super::schema::CASE_SCHEMA)
                .display()
                .to_string()
                .replace('\\', "/")
        )
    } else {
        String::new()
    };
    let claims = claims
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"{directive}# Case `{id}`: see "Case files" in README.md for every key and step kind.
# Run it:   cargo run --release -- run {id}{flags}
# Bless it: cargo run --release -- bless {id}{flags}   (writes what this kernel did)

# Required: one line saying what the case shows.
title = "{id}: say in one line what the case shows"
# Required: where the claim comes from (a seed, a semantics.md key, a man page).
source = ["say where the claim comes from"]
# Required: ids of cases/claims.toml the case checks.
claims = [{claims}]
# Optional:
# claim = "The claim under test, in prose."
# only = ["linux", "macos"]     # the OS families where the case means anything
# requires = ["root"]           # e.g. for `spawn` with `user = "nobody"`
# deadline_ms = 5000

# Required: the steps. `check = true` (or a label) makes a step's outcome
# part of the expectations; unchecked steps are setup and must succeed.
# Ports are never numbers: "@p" leases a free port ("@p!low": one below
# 1024), a socket name means that socket's port.
steps = [
  {{ do = "socket", name = "a", type = "{{proto}}", family = "v4" }},
  {{ do = "bind", sock = "a", addr = "lo4", port = "@p" }},
  {{ do = "socket", name = "b", type = "{{proto}}", family = "v4" }},
  {{ do = "bind", sock = "b", addr = "lo4", port = "a", check = true }},
]

# Optional: every combination of the grid is a test (`{id}::proto=tcp`, ...).
[grid]
proto = ["tcp", "udp"]
"#
    )
}

#[cfg(test)]
mod tests {
    use super::parse_name;

    #[test]
    fn names_are_validated() {
        assert!(parse_name("bind::privileged").is_ok());
        assert!(parse_name("a::b::c").is_ok());
        for bad in [
            "bind",
            "Bind::x",
            "bind::",
            "::x",
            "bind::a-b",
            "bind::../x",
        ] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }
}
