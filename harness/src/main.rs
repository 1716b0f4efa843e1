//! The `sockspec` binary: a helper process of a running suite, PID 1 of a
//! guest kernel, or the command line ([`cli`]).

mod cli;

use std::process::ExitCode;

/// The guest build is static musl, whose allocator took twice glibc's CPU
/// to load and run the suite here (and more under TCG): mimalloc instead.
#[cfg(feature = "guest")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // A helper process (an actor) of a running suite.
    if let Some(code) = sockspec::exec::actors::serve_if_agent() {
        return code;
    }
    // PID 1 of a guest booted by ci/kernels.sh.
    if sockspec::guest::is_init() {
        sockspec::guest::run_as_init();
    }
    cli::main()
}
