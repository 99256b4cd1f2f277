//! The fuzz targets' checks on stable Rust, in CI: every input the fuzzer kept (`fuzz/corpus/<target>/`, minimized)
//! and every input that once crashed a target (`fuzz/regressions/<target>/`, one file per finding, listed in
//! fuzz/README.md) goes through the same function the target runs: parsing, validation and the render never
//! panic, a render that succeeds succeeds again byte for byte, and no problem message is huge.

#[path = "../../../fuzz/fuzz_targets/common.rs"]
mod fuzz;

use std::path::PathBuf;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// Corpus inputs replayed per target in a normal run (evenly spaced by name; a debug render costs milliseconds).
/// `FUZZ_REPLAY_ALL=1` replays every one.
const CORPUS_SAMPLE: usize = 150;

/// Runs `check` on the files of `fuzz/<kind>/<target>/` (corpora sampled, regressions all); returns how many.
fn replay(kind: &str, target: &str, check: fn(&[u8])) -> usize {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    files.sort();
    if kind == "corpus"
        && std::env::var_os("FUZZ_REPLAY_ALL").is_none()
        && files.len() > CORPUS_SAMPLE
    {
        let step = files.len().div_ceil(CORPUS_SAMPLE);
        files = files.into_iter().step_by(step).collect();
    }
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} panics", file.display());
    }
    files.len()
}

fn replay_target(target: &str, check: fn(&[u8])) {
    let corpus = replay("corpus", target, check);
    let regressions = replay("regressions", target, check);
    println!("{target}: {corpus} corpus inputs and {regressions} regressions replayed");
    assert!(
        corpus >= 20,
        "the {target} corpus is kept in fuzz/corpus/{target}"
    );
}

#[test]
fn config_bundle_inputs_never_panic() {
    replay_target("config_bundle", fuzz::config_bundle);
}

#[test]
fn quay_registry_inputs_never_panic() {
    replay_target("quay_registry", fuzz::quay_registry);
}

#[test]
fn render_inputs_never_panic_and_render_identically_twice() {
    replay_target("render", fuzz::render_stream);
}

#[test]
fn the_example_renders_through_the_fuzz_checks() {
    // The replays above only mean something if inputs get as far as a render: the example does.
    let example =
        std::fs::read_to_string(fuzz_dir().join("../examples/kubernetes-s3-tls/quayregistry.yaml"))
            .unwrap();
    let registry: quay_operator::api::QuayRegistry = serde_saphyr::from_str(&example).unwrap();
    let rendered = fuzz::render_twice(
        &registry,
        &fuzz::kubernetes_bundle(),
        &quay_operator::render::ClusterFacts::default(),
    );
    assert!(
        rendered.is_some(),
        "the example renders through the fuzz checks"
    );
}
