//! Standard error that a closed pipe ends quietly
//! (`sockspec check 2>&1 | head`).
//!
//! `eprint!` panics when the write fails. Every message the library and the
//! binary write to standard error goes through [`print`] instead: once a
//! write fails (the reader has gone), the rest is dropped.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes `text` to standard error; false once it is closed.
pub fn print(text: &str) -> bool {
    if CLOSED.load(Ordering::Relaxed) {
        return false;
    }
    let mut err = std::io::stderr().lock();
    match err.write_all(text.as_bytes()).and_then(|()| err.flush()) {
        Ok(()) => true,
        Err(_) => {
            CLOSED.store(true, Ordering::Relaxed);
            false
        }
    }
}

/// Writes `text` and a newline to standard error; false once it is closed.
pub fn line(text: &str) -> bool {
    print(&format!("{text}\n"))
}
