//! The `quay-operator` binary run as a user runs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn quay_operator(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_quay-operator"))
        .args(args)
        .current_dir(common::repo_root())
        // Settings from the environment must not make the output depend on who runs the tests.
        .env_remove("QUAY_VERSION")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("NO_PROXY")
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 paths")
}

/// A file in the test's scratch directory.
fn scratch_file(name: &str, contents: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    std::fs::write(&file, contents).unwrap();
    file
}

fn example(name: &str, file: &str) -> String {
    format!("examples/{name}/{file}")
}

fn render_args(name: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "render".into(),
        "--registry".into(),
        example(name, "quayregistry.yaml"),
        "--config-bundle".into(),
        example(name, "config-bundle.yaml"),
        "--managed-keys".into(),
        example(name, "managed-keys.yaml"),
    ];
    if common::examples_dir()
        .join(name)
        .join("cluster.yaml")
        .is_file()
    {
        args.push("--cluster".into());
        args.push(example(name, "cluster.yaml"));
    }
    args
}

#[test]
fn render_prints_every_example_as_yaml_documents() {
    for name in common::example_names() {
        let args = render_args(&name);
        let out = quay_operator(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "{name}: exit {:?}, stderr: {}",
            out.status,
            text(&out.stderr)
        );
        let stdout = text(&out.stdout);
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&stdout).expect("stdout is multi-document YAML");
        assert!(docs.len() >= 5, "{name}: only {} objects", docs.len());
        for doc in &docs {
            assert!(
                doc["apiVersion"].is_string() && doc["kind"].is_string(),
                "{doc}"
            );
            assert!(doc["metadata"]["name"].is_string(), "{doc}");
        }
        let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
        assert!(kinds.contains(&"Secret"), "{name}: {kinds:?}");
    }
}

#[test]
fn render_of_the_readme_command_includes_generated_managed_keys() {
    let out = quay_operator(&[
        "render",
        "--registry",
        "examples/all-managed/quayregistry.yaml",
        "--config-bundle",
        "examples/all-managed/config-bundle.yaml",
        "--cluster",
        "examples/all-managed/cluster.yaml",
    ]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text(&out.stdout)).unwrap();
    let keys = docs
        .iter()
        .find(|d| d["metadata"]["name"] == "example-registry-quay-registry-managed-secret-keys")
        .expect("the managed keys Secret is printed");
    let secret_key = keys["data"]["SECRET_KEY"].as_str().unwrap_or_default();
    assert!(!secret_key.is_empty(), "SECRET_KEY was generated: {keys}");
    // OpenShift: Routes, the bucket claim and monitoring are rendered.
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    for kind in [
        "Route",
        "ObjectBucketClaim",
        "ServiceMonitor",
        "PrometheusRule",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}

#[test]
fn render_of_a_broken_bundle_fails_with_the_status_message_and_prints_nothing() {
    let bundle = scratch_file(
        "broken-bundle.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: b\nstringData:\n  config.yaml: \"SERVER_HOSTNAME: [unclosed\"\n",
    );
    let out = quay_operator(&[
        "render",
        "--registry",
        "examples/all-managed/quayregistry.yaml",
        "--config-bundle",
        path(&bundle),
        "--managed-keys",
        "examples/all-managed/managed-keys.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("ConfigInvalid"), "stderr: {stderr}");
}

#[test]
fn render_of_a_malformed_secret_manifest_names_the_file_but_not_its_content() {
    let bundle = scratch_file(
        "malformed-secret.yaml",
        "apiVersion: v1\nkind: Secret\ndata:\n  config.yaml: [not-base64-SUPERSECRETVALUE\n",
    );
    let out = quay_operator(&[
        "render",
        "--registry",
        "examples/all-managed/quayregistry.yaml",
        "--config-bundle",
        path(&bundle),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("malformed-secret.yaml"), "stderr: {stderr}");
    assert!(!stderr.contains("SUPERSECRETVALUE"), "stderr: {stderr}");
}

#[test]
fn render_of_a_missing_file_fails() {
    let out = quay_operator(&["render", "--registry", "examples/does-not-exist.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("cannot read"));
}

#[test]
fn validate_accepts_the_examples() {
    for name in common::example_names() {
        let mut args = render_args(&name);
        args[0] = "validate".into();
        let out = quay_operator(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "{name}: stdout: {} stderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(text(&out.stdout).contains("valid"));
    }
}

#[test]
fn validate_prints_each_problem_with_its_field_path() {
    let bundle = scratch_file(
        "invalid-config.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: b\nstringData:\n  config.yaml: \"{ not: yaml\"\n",
    );
    let out = quay_operator(&[
        "validate",
        "--registry",
        "examples/all-managed/quayregistry.yaml",
        "--config-bundle",
        path(&bundle),
        "--cluster",
        "examples/all-managed/cluster.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("error: configBundleSecret[config.yaml] (ConfigInvalid)"),
        "stdout: {stdout}"
    );
}

#[test]
fn crd_prints_the_checked_in_crd() {
    let out = quay_operator(&["crd"]);
    assert!(out.status.success());
    let checked_in = std::fs::read_to_string(common::repo_root().join("deploy/crd.yaml")).unwrap();
    assert_eq!(text(&out.stdout), checked_in);
}

#[test]
fn validate_reports_every_problem_not_just_the_first() {
    let registry = scratch_file(
        "two-problems.yaml",
        "apiVersion: quay.redhat.com/v1\nkind: QuayRegistry\nmetadata: {name: test, namespace: quay, uid: u1}\n\
         spec:\n  configBundleSecret: b\n  components:\n    - kind: postgres\n      managed: false\n    \
         - kind: redis\n      managed: false\n",
    );
    let out = quay_operator(&[
        "validate",
        "--registry",
        path(&registry),
        "--config-bundle",
        "examples/all-managed/config-bundle.yaml",
        "--cluster",
        "examples/all-managed/cluster.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("error: spec.components[0]"), "{stdout}");
    assert!(stdout.contains("error: spec.components[1]"), "{stdout}");
    assert!(
        stdout.contains("`postgres`") && stdout.contains("`redis`"),
        "{stdout}"
    );
    assert!(
        text(&out.stderr).contains("2 blocking problem(s)"),
        "{}",
        text(&out.stderr)
    );
}
