//! The platform components (route, objectstorage, monitoring) as a user on OpenShift or Kubernetes sees them.

mod common;

use std::collections::BTreeMap;

use quay_operator::api::{Component, ComponentKind, Override, Route};
use quay_operator::cli::Inputs;
use quay_operator::render::{DesiredObject, render};

fn render_objects(inputs: &Inputs) -> Vec<DesiredObject> {
    render(&inputs.render_input(common::fixed_now()))
        .unwrap_or_else(|e| panic!("renders: {e}"))
        .objects
}

fn find<'a>(objects: &'a [DesiredObject], kind: &str, name: &str) -> Option<&'a DesiredObject> {
    objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
}

fn route<'a>(objects: &'a [DesiredObject], name: &str) -> &'a Route {
    match find(objects, "Route", name) {
        Some(DesiredObject::Route(r)) => r,
        _ => panic!("no Route {name}"),
    }
}

#[test]
fn managed_tls_routes_terminate_at_the_edge_and_target_http() {
    let objects = render_objects(&common::load_example("all-managed"));
    let quay = route(&objects, "example-registry-quay");
    assert_eq!(
        quay.spec.host.as_deref(),
        Some("example-registry-quay-quay-enterprise.apps.example.com")
    );
    assert_eq!(quay.spec.port.as_ref().unwrap().target_port, "http");
    let tls = quay.spec.tls.as_ref().unwrap();
    assert_eq!(tls.termination, "edge");
    assert_eq!(
        tls.insecure_edge_termination_policy.as_deref(),
        Some("Redirect")
    );
    assert_eq!(quay.spec.to.name, "example-registry-quay-app");
    let annotations = quay.metadata.annotations.as_ref().unwrap();
    assert_eq!(annotations["haproxy.router.openshift.io/timeout"], "30m");
    assert_eq!(
        quay.metadata.labels.as_ref().unwrap()["quay-component"],
        "quay-app-route"
    );

    let builder = route(&objects, "example-registry-quay-builder");
    assert_eq!(
        builder.spec.host, None,
        "no BUILDMAN_HOSTNAME: the router picks a host"
    );
    assert_eq!(builder.spec.port.as_ref().unwrap().target_port, "grpc");
}

#[test]
fn quay_serving_its_own_certificate_gets_passthrough_routes_to_https() {
    let objects = render_objects(&common::load_example("geo-replication"));
    let quay = route(&objects, "example-registry-quay");
    assert_eq!(quay.spec.host.as_deref(), Some("georep.example.com"));
    assert_eq!(quay.spec.port.as_ref().unwrap().target_port, "https");
    assert_eq!(quay.spec.tls.as_ref().unwrap().termination, "passthrough");
    let builder = route(&objects, "example-registry-quay-builder");
    assert_eq!(builder.spec.port.as_ref().unwrap().target_port, "grpc");
    assert_eq!(
        builder.spec.tls.as_ref().unwrap().termination,
        "passthrough"
    );
}

#[test]
fn plain_kubernetes_gets_no_route_bucket_claim_or_monitoring() {
    let objects = render_objects(&common::load_example("kubernetes-s3-tls"));
    for kind in [
        "Route",
        "ObjectBucketClaim",
        "ServiceMonitor",
        "PrometheusRule",
        "Role",
        "RoleBinding",
    ] {
        assert!(
            objects.iter().all(|o| o.kind() != kind),
            "{kind} rendered on plain Kubernetes"
        );
    }
}

#[test]
fn route_overrides_add_labels_and_annotations_but_never_protected_labels() {
    let mut inputs = common::load_example("all-managed");
    let mut route_component = Component::new(ComponentKind::Route, true);
    route_component.overrides = Some(Override {
        labels: Some(BTreeMap::from([
            ("team".to_owned(), "registry".to_owned()),
            ("quay-component".to_owned(), "hijacked".to_owned()),
            ("quay-operator/quayregistry".to_owned(), "other".to_owned()),
        ])),
        annotations: Some(BTreeMap::from([(
            "router.example.com/shard".to_owned(),
            "internal".to_owned(),
        )])),
        ..Default::default()
    });
    inputs.registry.spec.components = Some(vec![route_component]);
    let objects = render_objects(&inputs);
    for name in ["example-registry-quay", "example-registry-quay-builder"] {
        let r = route(&objects, name);
        let labels = r.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["team"], "registry", "{name}");
        assert_ne!(labels["quay-component"], "hijacked", "{name}");
        assert_eq!(
            labels["quay-operator/quayregistry"], "example-registry",
            "{name}"
        );
        assert_eq!(
            r.metadata.annotations.as_ref().unwrap()["router.example.com/shard"],
            "internal"
        );
    }
}

#[test]
fn managed_object_storage_claims_a_noobaa_bucket() {
    let objects = render_objects(&common::load_example("all-managed"));
    let Some(DesiredObject::ObjectBucketClaim(obc)) = find(
        &objects,
        "ObjectBucketClaim",
        "example-registry-quay-datastore",
    ) else {
        panic!("no ObjectBucketClaim");
    };
    assert_eq!(
        obc.spec.generate_bucket_name.as_deref(),
        Some("quay-datastore")
    );
    assert_eq!(
        obc.spec.storage_class_name.as_deref(),
        Some("openshift-storage.noobaa.io")
    );
    assert_eq!(
        obc.spec.additional_config.as_ref().unwrap()["bucketclass"],
        "noobaa-default-bucket-class"
    );
    // Unmanaged object storage: the user's bucket, no claim.
    let objects = render_objects(&common::load_example("aws-sts"));
    assert!(
        find(
            &objects,
            "ObjectBucketClaim",
            "example-registry-quay-datastore"
        )
        .is_none()
    );
}

#[test]
fn monitoring_only_sees_this_registry() {
    let objects = render_objects(&common::load_example("all-managed"));
    let Some(DesiredObject::ServiceMonitor(monitor)) = find(
        &objects,
        "ServiceMonitor",
        "example-registry-quay-metrics-monitor",
    ) else {
        panic!("no ServiceMonitor");
    };
    let selector = monitor.spec.selector.match_labels.as_ref().unwrap();
    assert_eq!(selector["quay-component"], "monitoring");
    assert_eq!(selector["quay-operator/quayregistry"], "example-registry");

    let Some(DesiredObject::Service(metrics)) =
        find(&objects, "Service", "example-registry-quay-metrics")
    else {
        panic!("no metrics Service");
    };
    let spec = metrics.spec.as_ref().unwrap();
    assert_eq!(spec.ports.as_ref().unwrap()[0].port, 9091);
    let selector = spec.selector.as_ref().unwrap();
    assert_eq!(selector["quay-component"], "quay-app");
    assert_eq!(selector["quay-operator/quayregistry"], "example-registry");
    // The ServiceMonitor's selector matches the metrics Service's labels.
    let labels = metrics.metadata.labels.as_ref().unwrap();
    for (k, v) in monitor.spec.selector.match_labels.as_ref().unwrap() {
        assert_eq!(labels.get(k), Some(v), "metrics Service label {k}");
    }

    let Some(DesiredObject::PrometheusRule(rule)) = find(
        &objects,
        "PrometheusRule",
        "example-registry-quay-prometheus-rules",
    ) else {
        panic!("no PrometheusRule");
    };
    let alert = &rule.spec.groups[0].rules[0];
    assert_eq!(alert.alert, "QuayPodFrequentlyRestarting");
    assert!(
        alert
            .expr
            .contains(r#"namespace="quay-enterprise", pod=~"example-registry-quay-app-.*""#),
        "{}",
        alert.expr
    );
}

#[test]
fn grafana_dashboard_lives_in_the_console_namespace_without_owner() {
    let objects = render_objects(&common::load_example("all-managed"));
    let Some(DesiredObject::ConfigMap(dashboard)) = find(
        &objects,
        "ConfigMap",
        "example-registry-grafana-dashboard-quay",
    ) else {
        panic!("no dashboard ConfigMap");
    };
    assert_eq!(
        dashboard.metadata.namespace.as_deref(),
        Some("openshift-config-managed")
    );
    assert!(dashboard.metadata.owner_references.is_none());
    assert_eq!(
        dashboard.metadata.labels.as_ref().unwrap()["console.openshift.io/dashboard"],
        "true"
    );
    let json: serde_json::Value =
        serde_json::from_str(&dashboard.data.as_ref().unwrap()["quay.json"]).unwrap();
    assert_eq!(json["title"], "Quay - quay-enterprise - example-registry");
    // Everything else in the registry's namespace is owned by the registry.
    for o in &objects {
        if o.namespace() == Some("quay-enterprise") {
            assert!(o.metadata().owner_references.is_some(), "{}", o.name());
        }
    }
}

#[test]
fn metrics_service_follows_ipv6() {
    let objects = render_objects(&common::load_example("ipv6"));
    let Some(DesiredObject::Service(metrics)) =
        find(&objects, "Service", "example-registry-quay-metrics")
    else {
        panic!("no metrics Service");
    };
    let spec = metrics.spec.as_ref().unwrap();
    assert_eq!(spec.ip_families.as_deref(), Some(&["IPv6".to_owned()][..]));
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
}
