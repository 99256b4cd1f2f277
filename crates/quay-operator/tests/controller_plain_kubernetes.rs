//! The operator against the simulated API server, plain Kubernetes: a registry with S3 storage and its own TLS
//! certificate becomes Available, writes nothing once converged, and keeps its data when deleted.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, CustomResourceExt, ResourceExt};
use kube_sim::{Options, Simulator};
use quay_operator::api::QuayRegistry;
use quay_operator::controller::{RunOptions, run};
use quay_operator::render::OperatorSettings;

const EXAMPLE: &str = "kubernetes-s3-tls";

fn example_file<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(EXAMPLE)
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn settings() -> OperatorSettings {
    OperatorSettings {
        quay_version: "v3.11.0".into(),
        ..OperatorSettings::from_env(|_| None)
    }
}

async fn start_operator(client: Client) -> tokio::task::JoinHandle<()> {
    let options = RunOptions {
        namespaces: vec![],
        http_addr: "127.0.0.1:0".parse().unwrap(),
        settings: settings(),
    };
    tokio::spawn(async move {
        run(client, options).await.expect("operator runs");
    })
}

async fn create_registry(client: &Client) -> QuayRegistry {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "quay"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let mut bundle: Secret = example_file("config-bundle.yaml");
    bundle.metadata.namespace = Some("quay".into());
    Api::<Secret>::namespaced(client.clone(), "quay")
        .create(&PostParams::default(), &bundle)
        .await
        .unwrap();
    let mut registry: QuayRegistry = example_file("quayregistry.yaml");
    registry.metadata.uid = None;
    Api::<QuayRegistry>::namespaced(client.clone(), "quay")
        .create(&PostParams::default(), &registry)
        .await
        .unwrap()
}

fn condition_true(r: Option<&QuayRegistry>, type_: &str) -> bool {
    r.and_then(|r| r.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

async fn wait_available(sim: &Simulator, api: &Api<QuayRegistry>, name: &str) -> QuayRegistry {
    let available = await_condition(api.clone(), name, |r: Option<&QuayRegistry>| {
        condition_true(r, "Available")
    });
    match tokio::time::timeout(Duration::from_secs(60), available).await {
        Ok(Ok(Some(r))) => r,
        _ => {
            let r = api.get(name).await.unwrap();
            let jobs = sim.list("batch", "jobs", Some("quay"));
            let deployments: Vec<_> = sim
                .list("apps", "deployments", Some("quay"))
                .into_iter()
                .map(|d| {
                    (
                        d["metadata"]["name"].clone(),
                        d["spec"]["replicas"].clone(),
                        d["status"].clone(),
                    )
                })
                .collect();
            panic!(
                "registry never became Available; status: {:#?}\njobs: {jobs:#?}\ndeployments: {deployments:#?}",
                r.status
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_becomes_available_then_quiet_and_keeps_data_when_deleted() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    let client = sim.client();
    let operator = start_operator(client.clone()).await;
    let registry = create_registry(&client).await;
    let api: Api<QuayRegistry> = Api::namespaced(client.clone(), "quay");
    let name = registry.name_any();

    let available = wait_available(&sim, &api, &name).await;
    let status = available.status.clone().unwrap();
    assert_eq!(
        status.current_version.as_deref(),
        Some("v3.11.0"),
        "migrations ran: {status:#?}"
    );
    assert_eq!(
        status.registry_endpoint.as_deref(),
        Some("https://quay.example.com")
    );
    let conditions = status.conditions.unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "RolloutBlocked" && c.status == "False")
    );
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "ComponentsCreated" && c.status == "True")
    );
    assert_eq!(available.spec, registry.spec, "spec is never written");

    // Converged: a resync of every simulated controller produces no write from the operator. The write that made
    // the registry Available reaches watchers before the simulator logs it: count from once it is logged.
    sim.requests_landed().await;
    let writes_before = sim.metrics().writes("");
    let status_before = api.get(&name).await.unwrap().status;
    let log_before = sim.requests().len();
    sim.resync_controllers();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes_after = sim.metrics().writes("");
    let status_after = api.get(&name).await.unwrap().status;
    let status_before_json = serde_json::to_string_pretty(&status_before).unwrap();
    let status_after_json = serde_json::to_string_pretty(&status_after).unwrap();
    let quiet_writes: Vec<String> = sim.requests()[log_before..]
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    let mut raw_events = sim.list("", "events", Some("quay"));
    raw_events.sort_by_key(|e| {
        e["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|v| v.parse::<u64>().ok())
    });
    let events: Vec<String> = raw_events
        .iter()
        .map(|e| format!("{} {}", e["reason"], e["message"]))
        .collect();
    assert_eq!(
        writes_before, writes_after,
        "no writes once converged: {quiet_writes:#?}\nevents: {events:#?}\nstatus before: {status_before_json}\nstatus after: {status_after_json}"
    );

    // Deleting the registry keeps the database volume and the managed keys.
    let keys_name = format!("{name}-quay-registry-managed-secret-keys");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "quay");
    let keys_before = secrets.get(&keys_name).await.unwrap();
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let gone = await_condition(api.clone(), &name, |r: Option<&QuayRegistry>| r.is_none());
    tokio::time::timeout(Duration::from_secs(30), gone)
        .await
        .unwrap()
        .unwrap();
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "quay");
    let pvc = pvcs
        .get(&format!("{name}-quay-postgres-13"))
        .await
        .expect("database PVC kept");
    assert!(
        pvc.owner_references().is_empty(),
        "released from the deleted registry"
    );
    let keys_after = secrets.get(&keys_name).await.expect("managed keys kept");
    assert_eq!(keys_after.data, keys_before.data);

    operator.abort();
    sim.stop().await;
}
