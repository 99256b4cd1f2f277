//! The scale benchmark's correctness half, fast enough for CI: many registries in their own namespaces all become
//! Available under one operator, and once they are the operator writes nothing, not even after its watches are
//! cut and resumed. Timing is the benchmark's job (benches/operator.rs); nothing here asserts on it.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use kube::{Client, CustomResourceExt};
use kube_sim::metrics::RequestRecord;
use kube_sim::{Options, Simulator};
use quay_operator::api::QuayRegistry;
use quay_operator::controller::{RunOptions, run};
use quay_operator::render::OperatorSettings;
use serde_json::Value;

/// Enough registries that work done for every registry on any event would show as writes, as the issue asks
/// (50). Since the simulator's garbage collector is indexed, a debug build ran this test in 56 s with the machine
/// fully loaded by other builds (load average ~10 on 2 cores), inside the 120 s limit below.
const REGISTRIES: usize = 50;
const EXAMPLE: &str = "kubernetes-s3-tls";
/// User-Agent of this test's own requests, so the operator's can be told apart in the audit log.
const TEST_AGENT: &str = "scale-smoke-test";

fn example_file<T: serde::de::DeserializeOwned>(file: &str) -> T {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(EXAMPLE)
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn client_with_agent(sim: &Simulator, agent: &'static str) -> Client {
    let mut config = kube::Config::new(sim.url().parse().unwrap());
    config.default_namespace = "default".into();
    config.headers.push((
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static(agent),
    ));
    Client::try_from(config).unwrap()
}

async fn create_registry(
    client: &Client,
    namespace: &str,
    bundle: &Secret,
    registry: &QuayRegistry,
) {
    let post = PostParams::default();
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&post, &ns)
        .await
        .unwrap();
    let mut bundle = bundle.clone();
    bundle.metadata.namespace = Some(namespace.into());
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&post, &bundle)
        .await
        .unwrap();
    let mut registry = registry.clone();
    registry.metadata.namespace = Some(namespace.into());
    registry.metadata.uid = None;
    Api::<QuayRegistry>::namespaced(client.clone(), namespace)
        .create(&post, &registry)
        .await
        .unwrap();
}

fn available(registry: &Value) -> bool {
    registry
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Available" && c["status"] == "True")
        })
}

fn operator_requests(sim: &Simulator) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| r.user_agent != TEST_AGENT)
        .collect()
}

fn is_write(r: &RequestRecord) -> bool {
    r.method != "GET"
}

/// Waits until the operator sent no request for `quiet`; returns how many it sent in all.
async fn wait_operator_idle(sim: &Simulator, quiet: Duration, limit: Duration) -> usize {
    let start = Instant::now();
    let mut last = operator_requests(sim).len();
    let mut since = Instant::now();
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = operator_requests(sim).len();
        if now != last {
            (last, since) = (now, Instant::now());
        } else if since.elapsed() >= quiet {
            break;
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_registries_become_available_then_the_operator_writes_nothing() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    sim.configure_controllers(|c| c.delay = Duration::ZERO);
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    let client = client_with_agent(&sim, TEST_AGENT);
    let options = RunOptions {
        namespaces: vec![],
        http_addr: "127.0.0.1:0".parse().unwrap(),
        settings: OperatorSettings {
            quay_version: "v3.11.0".into(),
            ..OperatorSettings::from_env(|_| None)
        },
    };
    let operator_client = client_with_agent(&sim, "quay-operator");
    let operator =
        tokio::spawn(async move { run(operator_client, options).await.expect("operator runs") });

    let bundle: Secret = example_file("config-bundle.yaml");
    let registry: QuayRegistry = example_file("quayregistry.yaml");
    for i in 0..REGISTRIES {
        create_registry(&client, &format!("smoke-{i}"), &bundle, &registry).await;
    }

    let deadline = Instant::now() + Duration::from_secs(120);
    let count_available = || {
        sim.list("quay.redhat.com", "quayregistries", None)
            .iter()
            .filter(|r| available(r))
            .count()
    };
    while count_available() < REGISTRIES && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let not_available: Vec<String> = sim
        .list("quay.redhat.com", "quayregistries", None)
        .iter()
        .filter(|r| !available(r))
        .map(|r| format!("{}: {}", r["metadata"]["namespace"], r["status"]))
        .collect();
    assert!(
        not_available.is_empty(),
        "not Available: {not_available:#?}"
    );

    // Converged: whatever the operator still had in flight (the last status writes) lands, then silence.
    wait_operator_idle(&sim, Duration::from_secs(1), Duration::from_secs(60)).await;
    sim.metrics().reset();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Cut every watch: the operator resumes them; a resumed watch must not make it rewrite anything.
    sim.drop_watches();
    wait_operator_idle(&sim, Duration::from_secs(1), Duration::from_secs(30)).await;
    let writes: Vec<String> = operator_requests(&sim)
        .iter()
        .filter(|r| is_write(r))
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    assert!(writes.is_empty(), "writes in the quiet period: {writes:#?}");
    let relists: Vec<String> = operator_requests(&sim)
        .iter()
        .filter(|r| r.method == "GET" && !r.uri.contains("watch="))
        .map(|r| r.uri.clone())
        .collect();
    assert!(
        relists.is_empty(),
        "reads other than watches in the quiet period: {relists:#?}"
    );

    operator.abort();
    sim.stop().await;
}
