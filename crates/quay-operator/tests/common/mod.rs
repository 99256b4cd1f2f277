//! Helpers shared by the integration tests: the examples directory and loading an example as render inputs.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use quay_operator::cli::{InputArgs, Inputs};

/// 2026-01-01T00:00:00Z: renders are checked against a fixed clock.
pub fn fixed_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn examples_dir() -> PathBuf {
    repo_root().join("examples")
}

/// Every example directory (those with a `quayregistry.yaml`), sorted by name.
pub fn example_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("quayregistry.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The CLI's arguments for an example (with its managed keys, and its cluster file when it has one).
pub fn example_args(name: &str) -> (InputArgs, PathBuf) {
    let dir = examples_dir().join(name);
    let cluster = dir.join("cluster.yaml");
    (
        InputArgs {
            registry: dir.join("quayregistry.yaml"),
            cluster: cluster.is_file().then_some(cluster),
            managed_keys: Some(dir.join("managed-keys.yaml")),
        },
        dir.join("config-bundle.yaml"),
    )
}

/// An example loaded as render inputs, with default operator settings (no environment).
pub fn load_example(name: &str) -> Inputs {
    let (args, bundle) = example_args(name);
    Inputs::load(&args, Some(&bundle), |_| None)
        .unwrap_or_else(|e| panic!("example {name} loads: {e}"))
}
