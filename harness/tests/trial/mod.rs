//! How a test becomes a libtest trial: now part of the library
//! ([`sockspec::testing`]), re-exported for the `trials` test, which checks it.

pub use sockspec::testing::{completion, ignore_reason};
