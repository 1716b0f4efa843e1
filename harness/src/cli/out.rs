//! Standard output that a closed pipe ends quietly (`sockspec list | head`):
//! [`sockspec::stdio::STDOUT`], which says why.

/// Writes `text`; false once standard output is closed.
pub fn print(text: &str) -> bool {
    sockspec::stdio::STDOUT.print(text)
}

/// Writes `text` and a newline; false once standard output is closed.
pub fn line(text: &str) -> bool {
    sockspec::stdio::STDOUT.line(text)
}
