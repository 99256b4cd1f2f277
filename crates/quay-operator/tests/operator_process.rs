//! The operator process around the reconciler: health, readiness and metrics endpoints, and Lease leader election
//! between two candidates.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube_sim::{Options, Simulator};
use quay_operator::api::QuayRegistry;
use quay_operator::controller::leader::{LEASE_NAME, try_hold};
use quay_operator::controller::{RunOptions, run};
use quay_operator::render::OperatorSettings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.1 GET (the endpoints are plain HTTP on loopback); returns status code and body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Some((code, body))
}

fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_are_served() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    let addr = free_port();
    let settings = OperatorSettings {
        quay_version: "v3.11.0".into(),
        ..OperatorSettings::from_env(|_| None)
    };
    let options = RunOptions {
        namespaces: vec![],
        http_addr: addr,
        settings,
    };
    let operator = tokio::spawn(run(sim.client(), options));

    // Readiness comes once the controllers started; poll the endpoint (there is nothing else to wait on).
    let mut ready = None;
    for _ in 0..100 {
        if let Some((200, body)) = http_get(addr, "/readyz").await {
            ready = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready.as_deref(), Some("ok"), "/readyz answers 200 ok");
    assert_eq!(http_get(addr, "/healthz").await.map(|r| r.0), Some(200));
    let (code, metrics) = http_get(addr, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("quay_operator_reconciles"), "{metrics}");
    assert!(metrics.contains("quay_operator_status_writes"), "{metrics}");
    operator.abort();
    sim.stop().await;
}

#[tokio::test]
async fn only_one_candidate_leads_until_the_lease_expires() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let leases: Api<Lease> = Api::namespaced(sim.client(), "default");
    assert!(
        try_hold(&leases, "replica-a").await.unwrap(),
        "a free Lease is taken"
    );
    assert!(
        !try_hold(&leases, "replica-b").await.unwrap(),
        "a held Lease is not taken"
    );
    assert!(
        try_hold(&leases, "replica-a").await.unwrap(),
        "the holder renews"
    );

    // The holder stops renewing: once renewTime + leaseDuration has passed, the other candidate takes over.
    let stale = MicroTime(Timestamp::from_second(Timestamp::now().as_second() - 60).unwrap());
    let patch = serde_json::json!({"spec": {"renewTime": stale}});
    leases
        .patch(LEASE_NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert!(
        try_hold(&leases, "replica-b").await.unwrap(),
        "an expired Lease is taken over"
    );
    let lease = leases.get(LEASE_NAME).await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(lease.lease_transitions, Some(2));
    assert!(
        !try_hold(&leases, "replica-a").await.unwrap(),
        "the old leader does not take it back"
    );
    sim.stop().await;
}
