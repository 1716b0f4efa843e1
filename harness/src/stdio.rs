//! Standard output and error that a closed pipe ends quietly
//! (`sockspec list | head`, `sockspec check 2>&1 | head`).
//!
//! `print!` and `eprint!` panic when the reader has gone. SIGPIPE stays
//! ignored (Rust's default), since the tests write to sockets whose peers
//! close on purpose; so a failed write is noticed here and the rest of that
//! stream's output dropped. Every message the library and the binary write
//! goes through [`STDOUT`] or [`STDERR`] ([`eprint()`] and [`eline`] are
//! standard error's).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// One standard stream, written whole or, once its reader has gone, not at all.
pub struct Quiet {
    closed: AtomicBool,
    open: fn() -> Box<dyn Write>,
}

/// Standard output.
pub static STDOUT: Quiet = Quiet::new(|| Box::new(std::io::stdout().lock()));
/// Standard error.
pub static STDERR: Quiet = Quiet::new(|| Box::new(std::io::stderr().lock()));

impl Quiet {
    const fn new(open: fn() -> Box<dyn Write>) -> Quiet {
        Quiet {
            closed: AtomicBool::new(false),
            open,
        }
    }

    /// Writes `text`; false once the stream is closed.
    pub fn print(&self, text: &str) -> bool {
        if self.closed.load(Ordering::Relaxed) {
            return false;
        }
        let mut w = (self.open)();
        match w.write_all(text.as_bytes()).and_then(|()| w.flush()) {
            Ok(()) => true,
            Err(_) => {
                self.closed.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// Writes `text` and a newline; false once the stream is closed.
    pub fn line(&self, text: &str) -> bool {
        self.print(&format!("{text}\n"))
    }
}

/// Writes `text` to standard error; false once it is closed.
pub fn eprint(text: &str) -> bool {
    STDERR.print(text)
}

/// Writes `text` and a newline to standard error; false once it is closed.
pub fn eline(text: &str) -> bool {
    STDERR.line(text)
}
