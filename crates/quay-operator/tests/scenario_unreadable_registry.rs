//! A QuayRegistry the API server accepted but whose typed form rejects a value (an int32 field of an embedded
//! Kubernetes type holding 99999999999, which the structural schema lets through) is reported on its own status
//! and in the log, and the other registries are reconciled as usual.

#[path = "common/sim.rs"]
mod sim;

use serde_json::json;
use sim::{Cluster, Platform, conditions};

const NS: &str = "unreadable-ns";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_registry_blocks_only_itself() {
    let cluster = Cluster::start(Platform::Kubernetes).await;
    cluster.namespace(NS).await;
    cluster.bundle(NS, "bad-config", "").await;
    let mut bad = cluster.registry_json(NS, "bad", "bad-config", json!([]));
    bad["spec"]["components"].as_array_mut().unwrap().push(
        json!({"kind": "quay", "managed": true, "overrides": {"affinity": {"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 99999999999_i64,
                "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname"}}]}}}}),
    );
    cluster
        .sim
        .create(bad)
        .expect("the API server accepts the registry");

    // The good registry, created after the bad one, becomes healthy.
    cluster.registry(NS, "good", json!([])).await;
    cluster.wait_healthy(NS, "good").await;

    // The bad one says why it is not reconciled, and owns nothing.
    let blocked_condition = |r: Option<&serde_json::Value>| {
        r?["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "RolloutBlocked" && c["status"] == "True")
            .cloned()
    };
    let bad = cluster
        .wait_object(
            "quay.redhat.com",
            "quayregistries",
            NS,
            "bad",
            "RolloutBlocked=True",
            |r| blocked_condition(r).is_some(),
        )
        .await;
    let blocked = blocked_condition(bad.as_ref()).unwrap();
    assert_eq!(blocked["reason"], "ConfigInvalid", "{blocked}");
    let message = blocked["message"].as_str().unwrap();
    assert!(message.contains("99999999999"), "{message}");
    let owned = cluster
        .sim
        .list("apps", "deployments", Some(NS))
        .into_iter()
        .filter(|d| d["metadata"]["labels"]["quay-operator/quayregistry"] == "bad")
        .count();
    assert_eq!(owned, 0);

    // Fixed, it is reconciled like any other.
    cluster
        .merge_patch(
            ("quay.redhat.com", "v1", "QuayRegistry"),
            NS,
            "bad",
            json!({"spec": {"components": cluster.registry_json(NS, "bad", "bad-config", json!([]))["spec"]["components"]}}),
        )
        .await;
    let fixed = cluster.wait_healthy(NS, "bad").await;
    assert_eq!(conditions(&fixed)["RolloutBlocked"].status, "False");
    cluster.stop().await;
}
