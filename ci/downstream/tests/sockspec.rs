//! A downstream project's `cargo test` target (harness = false): its own
//! cases in tests/sockspec, beside a slice of sockspec's built-in catalogue.

fn main() -> std::process::ExitCode {
    sockspec::testing::Harness::new()
        .cases("tests/sockspec") // its tests are named `sockspec/<topic>::...`
        .builtin(true)
        .filter("sockspec/") // ours, all of them
        .filter("bind::rebind_bound") // and a few built-in ones
        .run()
}
