//! User story: a converged registry costs nothing. An hour of quiet — the cluster's controllers resyncing every
//! "minute", watches cut and resumed, bookmarks, an API server restart — makes the operator send no write and no
//! polling read; only watches are re-opened. After a restart that lost the watch history the operator re-lists
//! (LIST + WATCH) and nothing else: unchanged objects trigger no reconcile, so no GET and no write.

#[path = "common/sim.rs"]
mod sim;

use std::time::{Duration, Instant};

use kube_sim::metrics::RequestRecord;
use serde_json::json;
use sim::{Cluster, Platform};

const NS: &str = "quiet-ns";

fn is_watch(r: &RequestRecord) -> bool {
    r.method == "GET" && r.uri.contains("watch=true")
}

fn describe(requests: &[RequestRecord]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {} -> {}", r.method, r.uri, r.code))
        .collect()
}

/// Waits until the simulator has seen no request for `calm` (at most 10 s): the operator has settled.
async fn settle(cluster: &Cluster, calm: Duration) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = cluster.sim.requests().len();
    loop {
        tokio::time::sleep(calm).await;
        let now = cluster.sim.requests().len();
        if now == seen || Instant::now() > deadline {
            return;
        }
        seen = now;
    }
}

async fn quiet_story(platform: Platform) {
    let mut options = platform.options();
    // A real API server sends a bookmark about once a minute; here every 20 ms, so the hour has many.
    options.bookmark_interval = Duration::from_millis(20);
    let cluster = Cluster::start_with(platform, options, vec![]).await;
    cluster.namespace(NS).await;
    cluster.registry(NS, "quiet", json!([])).await;
    let converged = cluster.wait_healthy(NS, "quiet").await;
    // Watch events of the last writes are still arriving; nothing may come of them.
    settle(&cluster, Duration::from_millis(300)).await;

    let start = cluster.sim.requests().len();
    for minute in 0..60 {
        cluster.sim.resync_controllers();
        if minute % 15 == 14 {
            cluster.sim.drop_watches();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster
        .sim
        .restart(Duration::from_millis(100), false)
        .await
        .unwrap();
    settle(&cluster, Duration::from_millis(500)).await;
    let quiet = &cluster.sim.requests()[start..];
    let not_watches: Vec<RequestRecord> = quiet.iter().filter(|r| !is_watch(r)).cloned().collect();
    assert!(
        not_watches.is_empty(),
        "only watches in an hour of quiet, got: {:#?}",
        describe(&not_watches)
    );
    assert!(
        quiet.iter().any(is_watch),
        "watches were re-opened after being cut"
    );
    let r = cluster.api(NS).get("quiet").await.unwrap();
    assert_eq!(r.status, converged.status, "status untouched");

    // The API server restarts and its watch history is gone: the operator re-lists, and writes nothing.
    let start = cluster.sim.requests().len();
    let gets_before = cluster.sim.metrics().request_count("GET", "");
    // Someone else's write moves the resourceVersion past what the operator's watches saw, so resuming them
    // from there after the history is lost is 410 Expired.
    cluster
        .sim
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "unrelated", "namespace": "default"}}))
        .unwrap();
    cluster
        .sim
        .restart(Duration::from_millis(100), true)
        .await
        .unwrap();
    // The watchers come back after their backoff; wait for their re-lists, then for the operator to settle.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.sim.requests()[start..]
        .iter()
        .any(|r| r.method == "GET" && !is_watch(r))
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle(&cluster, Duration::from_millis(500)).await;
    let after = &cluster.sim.requests()[start..];
    let writes: Vec<RequestRecord> = after
        .iter()
        .filter(|r| r.method != "GET")
        .cloned()
        .collect();
    assert!(
        writes.is_empty(),
        "no writes after a re-list: {:#?}",
        describe(&writes)
    );
    // Re-listed objects that did not change trigger no reconcile, so not even a single-object read.
    assert_eq!(
        cluster.sim.metrics().request_count("GET", ""),
        gets_before,
        "only LIST and WATCH after a re-list: {:#?}",
        describe(after)
    );
    assert!(
        after.iter().any(|r| r.method == "GET" && !is_watch(r)),
        "the expired watches were re-listed: {:#?}",
        describe(after)
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_quiet_costs_no_request_on_kubernetes() {
    quiet_story(Platform::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_of_quiet_costs_no_request_on_openshift() {
    quiet_story(Platform::OpenShift).await;
}
