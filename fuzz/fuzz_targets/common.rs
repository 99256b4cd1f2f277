//! What the fuzz targets check, as plain functions of the input bytes: the targets in this directory call them,
//! and `crates/quay-operator/tests/fuzz_regressions.rs` replays the kept corpora and every crash through them on
//! stable Rust. Fixed inputs: a clock, managed keys, the plain-Kubernetes example's bundle and registry.

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Secret;
use quay_operator::api::QuayRegistry;
use quay_operator::config::{ConfigBundle, ManagedKeys};
use quay_operator::render::{ClusterFacts, OperatorSettings, RenderInput, Rendered, render};
use serde_json::Value;

/// Target `config_bundle`: the bytes as `config.yaml` beside the example's certificate, then (when they parse)
/// as a whole Secret manifest whose files make the bundle. Parsing, validation and render never panic.
pub fn config_bundle(data: &[u8]) {
    let registry = kubernetes_registry();
    let cluster = ClusterFacts::default();
    let mut files = kubernetes_bundle().files().clone();
    files.insert("config.yaml".to_owned(), data.to_vec());
    let bundle = ConfigBundle::new(files);
    if let Ok(config) = bundle.quay_config() {
        // What was parsed writes back out and parses again.
        let yaml = config.to_yaml();
        quay_operator::config::QuayConfig::parse(&yaml).expect("written config.yaml parses");
    }
    render_twice(&registry, &bundle, &cluster);
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(secret) = serde_saphyr::from_str::<Secret>(text)
    {
        let bundle = ConfigBundle::from_secret(&secret);
        let _ = bundle.tls_pair();
        let _ = bundle.extra_ca_certs().count();
        render_twice(&registry, &bundle, &cluster);
    }
}

/// Target `quay_registry`: the bytes as a QuayRegistry in JSON or YAML, validated and rendered with the example's
/// bundle on plain Kubernetes and on an OpenShift-like cluster.
pub fn quay_registry(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = serde_json::from_str::<QuayRegistry>(text)
        .ok()
        .or_else(|| serde_saphyr::from_str::<QuayRegistry>(text).ok());
    let Some(mut registry) = parsed else { return };
    if registry.metadata.namespace.is_none() {
        registry.metadata.namespace = Some("quay".to_owned());
    }
    let bundle = kubernetes_bundle();
    render_twice(&registry, &bundle, &ClusterFacts::default());
    let openshift: ClusterFacts =
        serde_saphyr::from_str(include_str!("../../examples/all-managed/cluster.yaml")).unwrap();
    render_twice(&registry, &bundle, &openshift);
}

/// Target `render`: a YAML stream of up to three documents (QuayRegistry, bundle Secret, cluster facts, as the
/// CLI's files), validated and rendered twice.
pub fn render_stream(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = serde_saphyr::from_multiple::<Value>(text) else {
        return;
    };
    let mut docs = docs.into_iter();
    let Some(Ok(mut registry)) = docs.next().map(serde_json::from_value::<QuayRegistry>) else {
        return;
    };
    if registry.metadata.namespace.is_none() {
        registry.metadata.namespace = Some("quay".to_owned());
    }
    let bundle = match docs.next().map(serde_json::from_value::<Secret>) {
        Some(Ok(secret)) => ConfigBundle::from_secret(&secret),
        Some(Err(_)) => return,
        None => ConfigBundle::default(),
    };
    let cluster = match docs.next().map(serde_json::from_value::<ClusterFacts>) {
        Some(Ok(cluster)) => cluster,
        Some(Err(_)) => return,
        None => ClusterFacts::default(),
    };
    render_twice(&registry, &bundle, &cluster);
}

/// 2026-01-01T00:00:00Z, as the snapshot tests.
pub fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

pub fn managed_keys() -> ManagedKeys {
    let secret: Secret =
        serde_saphyr::from_str(include_str!("../../examples/all-managed/managed-keys.yaml"))
            .unwrap();
    ManagedKeys::from_secret(&secret)
}

pub fn kubernetes_bundle() -> ConfigBundle {
    let secret: Secret = serde_saphyr::from_str(include_str!(
        "../../examples/kubernetes-s3-tls/config-bundle.yaml"
    ))
    .unwrap();
    ConfigBundle::from_secret(&secret)
}

pub fn kubernetes_registry() -> QuayRegistry {
    serde_saphyr::from_str(include_str!(
        "../../examples/kubernetes-s3-tls/quayregistry.yaml"
    ))
    .unwrap()
}

pub fn settings() -> OperatorSettings {
    OperatorSettings::from_env(|_| None)
}

/// Validates and renders; a render that succeeds must succeed again, byte for byte, from a fresh copy of the
/// bundle (no state kept between renders).
pub fn render_twice(
    registry: &QuayRegistry,
    bundle: &ConfigBundle,
    cluster: &ClusterFacts,
) -> Option<Rendered> {
    let keys = managed_keys();
    let settings = settings();
    let input = RenderInput {
        registry,
        bundle,
        managed_keys: &keys,
        cluster,
        settings: &settings,
        now: now(),
    };
    let report = quay_operator::config::validate(&input);
    let first = render(&input);
    // The render blocks exactly when validation finds an error (render may find more, never fewer).
    if first.is_ok() {
        assert!(
            report.is_ok(),
            "rendered despite {:?}",
            report.first_error()
        );
    }
    for problem in &report.problems {
        // Messages go into status: one line of reasonable size.
        assert!(
            problem.message.len() < 64 * 1024,
            "message of {} bytes",
            problem.message.len()
        );
    }
    let fresh = ConfigBundle::new(bundle.files().clone());
    let second = render(&RenderInput {
        bundle: &fresh,
        ..input
    });
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            let yaml = |r: &Rendered| quay_operator::cli::objects_yaml(&r.objects);
            assert_eq!(yaml(a), yaml(b), "two renders of the same input differ");
            assert_eq!(a.config_secret_name, b.config_secret_name);
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "two renders block differently"),
        _ => panic!("one render blocked and the other did not"),
    }
    first.ok()
}
