//! The `sockspec` binary: a helper process of a running suite, PID 1 of a
//! guest kernel, or the command line ([`cli`]).

mod cli;

use std::process::ExitCode;

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
