//! Helpers shared by several test crates (`mod common;`); each crate uses
//! part of them.
#![allow(dead_code)]

pub mod json_schema;

/// Runs the sockspec binary with `args`, `$SOCKSPEC_CASES` cleared (so the
/// built-in catalogue is the one beside any `--cases`): its exit code, and
/// stdout then stderr.
pub fn sockspec(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sockspec"))
        .args(args)
        .env_remove("SOCKSPEC_CASES")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}
