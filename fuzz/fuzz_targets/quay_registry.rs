//! Fuzz target: a QuayRegistry from arbitrary JSON or YAML (see `common::quay_registry`).

#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::quay_registry(data));
