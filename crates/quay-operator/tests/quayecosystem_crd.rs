//! The checked-in legacy QuayEcosystem CRD is what the code generates, and it accepts existing objects with
//! fields the operator does not type.

mod common;

use quay_operator::api::quayecosystem::{QuayEcosystem, quay_ecosystem_crd_yaml};

#[test]
fn deploy_quayecosystem_crd_yaml_is_up_to_date() {
    let path = common::repo_root().join("deploy/quayecosystem-crd.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == quay_ecosystem_crd_yaml(),
        "deploy/quayecosystem-crd.yaml is stale: run `cargo run -p quay-operator -- crd --quayecosystem > deploy/quayecosystem-crd.yaml`"
    );
}

#[test]
fn crd_serves_the_legacy_group_namespaced_with_a_status_subresource() {
    use kube::CustomResourceExt;
    let crd = QuayEcosystem::crd();
    assert_eq!(crd.spec.group, "redhatcop.redhat.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.plural, "quayecosystems");
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().unwrap().status.is_some());
}

#[test]
fn every_typed_object_of_the_schema_keeps_unknown_fields() {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(QuayEcosystem::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"];
    for pointer in [
        "/spec",
        "/spec/properties/quay",
        "/spec/properties/quay/properties/database",
        "/spec/properties/quay/properties/externalAccess",
        "/spec/properties/quay/properties/registryBackends/items",
        "/spec/properties/redis",
        "/spec/properties/clair",
        "/status",
    ] {
        let object = schema
            .pointer(pointer)
            .unwrap_or_else(|| panic!("{pointer} missing"));
        assert_eq!(
            object["x-kubernetes-preserve-unknown-fields"],
            serde_json::json!(true),
            "{pointer}: {object}"
        );
    }
}

#[test]
fn a_legacy_object_with_untyped_fields_reads() {
    let eco: QuayEcosystem = serde_json::from_value(serde_json::json!({
        "apiVersion": "redhatcop.redhat.io/v1alpha1", "kind": "QuayEcosystem",
        "metadata": {"name": "example", "namespace": "quay"},
        "spec": {"quay": {"imagePullSecretName": "redhat-pull-secret",
                          "database": {"volumeSize": "10Gi", "resources": {"limits": {"memory": "1Gi"}}},
                          "registryBackends": [{"name": "s3", "s3": {"bucketName": "b", "port": 443}}]}},
        "status": {"conditions": [{"type": "QuaySetupSuccess", "status": "True",
                                   "lastTransitionTime": null, "lastUpdateTime": null}],
                   "setupComplete": true}
    }))
    .unwrap();
    let quay = eco.spec.quay.unwrap();
    assert_eq!(quay.database.unwrap().volume_size.as_deref(), Some("10Gi"));
    assert!(quay.registry_backends.unwrap()[0].s3.is_some());
}

#[test]
fn crd_command_prints_the_quayecosystem_crd_with_the_flag_and_the_quayregistry_crd_without() {
    use clap::Parser;
    use quay_operator::cli::{Cli, execute};
    let run = |args: &[&str]| {
        let cli = Cli::try_parse_from(args).unwrap();
        execute(&cli, |_| None, std::time::SystemTime::now())
    };
    let legacy = run(&["quay-operator", "crd", "--quayecosystem"]);
    assert_eq!(legacy.code, 0);
    assert_eq!(legacy.stdout, quay_ecosystem_crd_yaml());
    let current = run(&["quay-operator", "crd"]);
    assert_eq!(current.stdout, quay_operator::api::crd_yaml());
}
