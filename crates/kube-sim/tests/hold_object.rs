//! `Simulator::hold_object`: one Deployment does not progress while its controller's mode is `Succeed` for the
//! others; releasing it lets it become available.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use kube::runtime::wait::await_condition;
use kube_sim::{Controller, Options, Simulator};
use serde_json::json;
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}}))
    .unwrap()
}

fn available(d: Option<&Deployment>) -> bool {
    d.and_then(|d| d.status.as_ref())
        .is_some_and(|s| s.available_replicas == Some(1))
}

async fn wait(api: &Api<Deployment>, name: &str, cond: fn(Option<&Deployment>) -> bool) {
    tokio::time::timeout(T, await_condition(api.clone(), name, cond))
        .await
        .expect("condition within timeout")
        .unwrap();
}

#[tokio::test]
async fn a_held_deployment_stays_unavailable_until_released() {
    let s = Simulator::start(Options::default()).await.unwrap();
    let api: Api<Deployment> = Api::default_namespaced(s.client());
    s.hold_object(Controller::Deployment, "default", "slow");
    for name in ["slow", "fast"] {
        api.create(&PostParams::default(), &deployment(name))
            .await
            .unwrap();
    }
    wait(&api, "fast", available).await;
    wait(&api, "slow", |d| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.observed_generation == Some(1))
    })
    .await;
    // The final (delayed) step, run now for every object: the held one still does not progress.
    s.resync_controllers();
    let slow = s.get("apps", "deployments", "default", "slow").unwrap();
    assert_eq!(slow["status"]["availableReplicas"], json!(null), "{slow:#}");
    assert_eq!(slow["status"]["unavailableReplicas"], 1, "{slow:#}");
    let conditions = slow["status"]["conditions"].as_array().unwrap();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Available" && c["status"] == "False"),
        "{slow:#}"
    );

    s.release_object(Controller::Deployment, "default", "slow");
    wait(&api, "slow", available).await;
    s.stop().await;
}
