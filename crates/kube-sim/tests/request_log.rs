//! The request log and counters against what clients see: a change reaches watchers before its request is
//! logged, and `requests_landed` is the point from which a client may count.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube_sim::{Options, Simulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_seen_by_a_watcher_is_logged_once_requests_landed() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(sim.client(), "default");
    let mut watch = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();

    for i in 0..20 {
        let name = format!("seen-{i}");
        let created: ConfigMap =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        let client_api = api.clone();
        let create = tokio::spawn(async move {
            client_api
                .create(&PostParams::default(), &created)
                .await
                .unwrap()
        });
        // The watcher sees the object while its POST may still be unlogged (the client has no answer yet).
        loop {
            match watch.next().await.expect("watch open").unwrap() {
                WatchEvent::Added(cm) if cm.metadata.name.as_deref() == Some(name.as_str()) => {
                    break;
                }
                _ => {}
            }
        }
        // The open watch is a request too, but one that never ends: it must not hold the wait.
        tokio::time::timeout(Duration::from_secs(10), sim.requests_landed())
            .await
            .expect("requests landed while a watch is open");
        let logged = sim
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.uri.contains("/configmaps") && r.code == 201)
            .count();
        assert_eq!(
            logged,
            i + 1,
            "a create seen by the watcher is logged: {:#?}",
            sim.requests()
        );
        assert_eq!(
            sim.metrics().writes("configmaps"),
            i as u64 + 1,
            "a create seen by the watcher is counted"
        );
        create.await.unwrap();
    }
    assert_eq!(sim.metrics().requests_in_flight(), 0);
    sim.stop().await;
}
