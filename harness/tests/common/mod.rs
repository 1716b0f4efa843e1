//! Helpers shared by several test crates (`mod common;`); each crate uses
//! part of them.
#![allow(dead_code)]

pub mod json_schema;
