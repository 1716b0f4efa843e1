//! `cargo test`: every expanded case is its own libtest-mimic trial, judged
//! against this OS's expectation file, through the same API a downstream
//! project's `tests/sockspec.rs` uses ([`sockspec::testing::Harness`]).
//!
//! Tests that cannot run here (another OS, needs root, an option this OS
//! lacks, a need only the machine can answer such as another user on Windows
//! or 127.0.0.2 on lo0) are ignored trials; their reasons go to stderr. One
//! that turns out unable to run only while running is ignored with its
//! reason. Forced to run (`--ignored`), they fail with the reason: they never
//! pass.
//! SOCKSPEC_CASES=DIR runs another case tree instead; SOCKSPEC_JSON=FILE also
//! writes the results of an in-process run, labelled $SOCKSPEC_LABEL.

use std::process::ExitCode;

fn main() -> ExitCode {
    // This checkout's own tree rather than the copy compiled in: the same
    // files, but failures then point at cases/... here, where bless edits.
    // As the only tree, its tests keep their plain names.
    let tree = concat!(env!("CARGO_MANIFEST_DIR"), "/../cases");
    sockspec::testing::Harness::new()
        .builtin(false)
        .cases(tree)
        .run()
}
