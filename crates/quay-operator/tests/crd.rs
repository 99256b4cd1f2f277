//! The checked-in CRD is what the code generates.

mod common;

#[test]
fn deploy_crd_yaml_is_up_to_date() {
    let path = common::repo_root().join("deploy/crd.yaml");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = quay_operator::api::crd_yaml();
    assert!(
        checked_in == generated,
        "deploy/crd.yaml is stale: run `cargo run -p quay-operator -- crd > deploy/crd.yaml`"
    );
}
