//! The `sockspec` binary: a helper process of a running suite, PID 1 of a
//! guest kernel, or the command line ([`cli`]).

mod cli;

use std::process::ExitCode;

/// Loading a suite is mostly small allocations: on Linux mimalloc took a
/// fifth off `check` against glibc's malloc, and half against musl's (the
/// guest build). The library leaves the choice to its users.
#[cfg(target_os = "linux")]
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
