//! Stage 5: reports. Reporters read [`crate::results`] only; they know nothing
//! about sockets.

pub mod console;
