//! Fuzz target: the config bundle from arbitrary Secret data (see `common::config_bundle`).

#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::config_bundle(data));
