//! The operator against the simulated API server set up as OpenShift (Routes, ObjectBucketClaims, monitoring):
//! the all-managed registry of the manuals becomes Available behind an admitted Route with the cluster domain.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, CustomResourceExt, ResourceExt};
use kube_sim::{Options, Simulator};
use quay_operator::api::{ObjectBucketClaim, QuayRegistry, Route};
use quay_operator::controller::{GRAFANA_DASHBOARD_NAMESPACE, RunOptions, run};
use quay_operator::render::OperatorSettings;

const NAMESPACE: &str = "quay-enterprise";

fn example_file<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/all-managed")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_managed_registry_becomes_available_on_openshift() {
    let sim = Simulator::start(Options::openshift()).await.unwrap();
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    let client = sim.client();
    create_namespace(&client, NAMESPACE).await;
    create_namespace(&client, GRAFANA_DASHBOARD_NAMESPACE).await;

    let settings = OperatorSettings {
        quay_version: "v3.11.0".into(),
        ..OperatorSettings::from_env(|_| None)
    };
    let options = RunOptions {
        namespaces: vec![],
        http_addr: "127.0.0.1:0".parse().unwrap(),
        settings,
    };
    let operator_client = client.clone();
    let operator =
        tokio::spawn(async move { run(operator_client, options).await.expect("operator runs") });

    let mut bundle: Secret = example_file("config-bundle.yaml");
    bundle.metadata.namespace = Some(NAMESPACE.into());
    Api::<Secret>::namespaced(client.clone(), NAMESPACE)
        .create(&PostParams::default(), &bundle)
        .await
        .unwrap();
    let mut registry: QuayRegistry = example_file("quayregistry.yaml");
    registry.metadata.uid = None;
    let api: Api<QuayRegistry> = Api::namespaced(client.clone(), NAMESPACE);
    let registry = api.create(&PostParams::default(), &registry).await.unwrap();
    let name = registry.name_any();

    let available = await_condition(api.clone(), &name, |r: Option<&QuayRegistry>| {
        r.and_then(|r| r.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Available" && c.status == "True")
            })
    });
    let registry = match tokio::time::timeout(Duration::from_secs(60), available).await {
        Ok(Ok(Some(r))) => r,
        _ => panic!(
            "never Available: {:#?}",
            api.get(&name).await.unwrap().status
        ),
    };
    let status = registry.status.unwrap();
    let domain = "sim.example.com";
    assert_eq!(
        status.registry_endpoint.as_deref(),
        Some(format!("https://{name}-quay-{NAMESPACE}.apps.{domain}").as_str()),
        "endpoint from the router's domain"
    );
    let components = status.components.unwrap();
    for kind in ["route", "objectstorage", "monitoring", "tls"] {
        assert!(
            components
                .iter()
                .any(|c| c.kind.as_str() == kind && c.managed && c.defaulted),
            "{kind} defaulted to managed on OpenShift: {components:?}"
        );
    }
    assert_eq!(
        registry.spec.components, None,
        "defaults are reported in status, not written to spec"
    );

    let routes: Api<Route> = Api::namespaced(client.clone(), NAMESPACE);
    let route = routes
        .get(&format!("{name}-quay"))
        .await
        .expect("registry Route");
    assert_eq!(
        route.spec.host.as_deref(),
        Some(format!("{name}-quay-{NAMESPACE}.apps.{domain}").as_str())
    );
    assert_eq!(
        route.spec.tls.as_ref().map(|t| t.termination.as_str()),
        Some("edge")
    );
    let obcs: Api<ObjectBucketClaim> = Api::namespaced(client.clone(), NAMESPACE);
    let obc = obcs
        .get(&format!("{name}-quay-datastore"))
        .await
        .expect("bucket claim");
    assert_eq!(obc.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    let dashboards: Api<ConfigMap> = Api::namespaced(client.clone(), GRAFANA_DASHBOARD_NAMESPACE);
    let dashboard = dashboards
        .get(&format!("{name}-grafana-dashboard-quay"))
        .await
        .expect("dashboard");
    assert!(
        dashboard.owner_references().is_empty(),
        "no cross-namespace owner"
    );

    operator.abort();
    sim.stop().await;
}
