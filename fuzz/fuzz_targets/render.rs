//! Fuzz target: the full render from an arbitrary registry, bundle and cluster (see `common::render_stream`).

#![no_main]

#[path = "common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::render_stream(data));
