//! User story: the operator installed for some namespaces only (`--namespace a,b`, OLM's MultiNamespace mode)
//! reconciles the registries there and leaves every other namespace alone. And in all-namespaces mode, two
//! registries with the same name in different namespaces each get their own objects (upstream scoped the
//! bucket-claim lookup to the namespace only late, PROJQUAY-11029).

#[path = "common/sim.rs"]
mod sim;

use std::time::Duration;

use clap::Parser;
use kube::ResourceExt;
use quay_operator::controller::commands::RunArgs;
use serde_json::json;
use sim::{Cluster, Platform};

#[derive(Parser)]
struct Command {
    #[command(flatten)]
    run: RunArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_registries_in_the_watched_namespaces_are_reconciled() {
    let args = Command::parse_from(["quay-operator", "--namespace", "team-a,team-b"]);
    assert_eq!(args.run.namespaces, ["team-a", "team-b"]);

    let cluster = Cluster::start_with(
        Platform::Kubernetes,
        Platform::Kubernetes.options(),
        args.run.namespaces.clone(),
    )
    .await;
    for ns in ["team-a", "team-b", "team-c"] {
        cluster.namespace(ns).await;
        cluster.registry(ns, "registry", json!([])).await;
    }
    cluster.wait_healthy("team-a", "registry").await;
    cluster.wait_healthy("team-b", "registry").await;
    // Both watched registries converged; a third would have been reconciled in the same moment. A short
    // window in which nothing may happen to it:
    tokio::time::sleep(Duration::from_millis(300)).await;
    let other = cluster.api("team-c").get("registry").await.unwrap();
    assert_eq!(
        other.status, None,
        "registry in an unwatched namespace untouched"
    );
    assert!(other.finalizers().is_empty());
    assert!(cluster.workloads("team-c").is_empty());
    let labelled: Vec<_> = cluster
        .sim
        .list("", "secrets", Some("team-c"))
        .into_iter()
        .filter(|s| s["metadata"]["labels"]["quay-operator/quayregistry"].is_string())
        .collect();
    assert!(labelled.is_empty(), "no object made in team-c");
    let bundle = cluster
        .sim
        .get("", "secrets", "team-c", "registry-config")
        .unwrap();
    assert!(
        bundle["metadata"]["labels"]["quay-operator/config-bundle"].is_null(),
        "its bundle not even labelled"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_name_in_two_namespaces_each_get_their_own_bucket_on_openshift() {
    let cluster = Cluster::start(Platform::OpenShift).await;
    for ns in ["east", "west"] {
        cluster.namespace(ns).await;
        cluster.registry(ns, "registry", json!([])).await;
    }
    for ns in ["east", "west"] {
        cluster.wait_healthy(ns, "registry").await;
        let obc = cluster
            .sim
            .get(
                "objectbucket.io",
                "objectbucketclaims",
                ns,
                "registry-quay-datastore",
            )
            .expect("bucket claim in its own namespace");
        assert_eq!(obc["status"]["phase"], "Bound");
        let bucket = cluster
            .sim
            .get("", "configmaps", ns, "registry-quay-datastore")
            .unwrap();
        let config = &cluster.rendered_config_secrets(ns, "registry")[0];
        let config = sim::secret_data(config, "config.yaml").unwrap();
        assert!(
            config.contains(bucket["data"]["BUCKET_NAME"].as_str().unwrap()),
            "{ns} uses its own bucket"
        );
    }
    cluster.stop().await;
}
