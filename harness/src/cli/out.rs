//! Standard output that a closed pipe ends quietly (`sockspec list | head`).
//!
//! `print!` panics when the reader has gone. SIGPIPE stays ignored (Rust's
//! default), since the tests write to sockets whose peers close on purpose;
//! so the broken pipe is noticed here and the rest of the output dropped.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text`; false once standard output is closed.
pub fn print(text: &str) -> bool {
    if CLOSED.load(Ordering::Relaxed) {
        return false;
    }
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => true,
        Err(_) => {
            CLOSED.store(true, Ordering::Relaxed);
            false
        }
    }
}

/// Writes `text` and a newline; false once standard output is closed.
pub fn line(text: &str) -> bool {
    print(&format!("{text}\n"))
}
