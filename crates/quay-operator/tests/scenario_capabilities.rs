//! User story: the cluster gains an API after the operator started (here OpenShift's Route API, as when a
//! cluster add-on is installed). The operator notices the new CustomResourceDefinition, re-runs discovery and
//! restarts its controllers in-process: registries whose route component is defaulted get their Route; when
//! the API goes away again, the route component is reported as not managed.

#[path = "common/sim.rs"]
mod sim;

use serde_json::json;
use sim::{Cluster, Platform, assert_condition, conditions};

const NS: &str = "caps-ns";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_api_installed_after_start_gives_registries_routes() {
    let cluster = Cluster::start(Platform::Kubernetes).await;
    cluster.namespace(NS).await;
    cluster.bundle(NS, "caps-config", "").await;
    // route and tls are left to their defaults (decided by what the cluster serves).
    cluster
        .create_registry(json!({
            "apiVersion": "quay.redhat.com/v1", "kind": "QuayRegistry",
            "metadata": {"name": "caps", "namespace": NS},
            "spec": {"configBundleSecret": "caps-config", "components": [
                {"kind": "objectstorage", "managed": false},
                {"kind": "monitoring", "managed": false},
            ]},
        }))
        .await;
    let r = cluster.wait_healthy(NS, "caps").await;
    assert_condition(
        &r,
        "ComponentRouteReady",
        "True",
        "ComponentNotManaged",
        "Route is not managed by the operator",
    );

    cluster.sim.install_openshift().unwrap();
    let route = cluster
        .wait_object(
            "route.openshift.io",
            "routes",
            NS,
            "caps-quay",
            "the registry's Route",
            |r| r.is_some(),
        )
        .await
        .unwrap();
    // The bundle brings its own certificate: tls stays unmanaged, so the Route passes TLS through.
    assert_eq!(route["spec"]["host"], "quay.example.com");
    assert_eq!(route["spec"]["tls"]["termination"], "passthrough");
    let r = cluster
        .wait(NS, "caps", "Route admitted", |r| {
            conditions(r)
                .get("ComponentRouteReady")
                .is_some_and(|c| c.message == "Route admitted")
        })
        .await;
    assert_condition(
        &r,
        "ComponentRouteReady",
        "True",
        "ComponentReady",
        "Route admitted",
    );
    let status = r.status.unwrap();
    let route_component = status
        .components
        .unwrap()
        .into_iter()
        .find(|c| c.kind.as_str() == "route")
        .unwrap();
    assert!(route_component.managed && route_component.defaulted);
    cluster.wait_healthy(NS, "caps").await;

    // The API goes away: nothing to manage a Route with.
    cluster
        .sim
        .uninstall_crd("routes.route.openshift.io")
        .unwrap();
    cluster
        .wait_condition(
            NS,
            "caps",
            "ComponentRouteReady",
            "True",
            "ComponentNotManaged",
        )
        .await;
    cluster.wait_healthy(NS, "caps").await;
    cluster.stop().await;
}
