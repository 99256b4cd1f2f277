//! User story: bad input never rolls out and never deletes. A malformed bundle, a certificate for the wrong
//! host, or an API server that refuses an object leaves the running registry exactly as it was — same objects,
//! same rendered config Secret — and says why in `RolloutBlocked`. Fixing the input resumes the rollout. No secret
//! (managed keys, DB password, storage keys, TLS key) ever shows in status, Events or logs.

#[path = "common/logs.rs"]
mod logs;
#[path = "common/sim.rs"]
mod sim;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube_sim::FaultRule;
use serde_json::{Value, json};
use sim::{Cluster, Platform, conditions, secret_data};

const NS: &str = "bad-ns";
const NAME: &str = "bad";

/// Every log line of the operator in this test process (JSON, every level down to debug).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    logs::captured(tracing::Level::DEBUG)
}

/// Names and resourceVersions of everything the registry owns: "nothing changed" means this is equal.
fn owned_objects(cluster: &Cluster) -> BTreeMap<String, Value> {
    let mut objects = BTreeMap::new();
    for (group, plural) in [
        ("", "secrets"),
        ("", "configmaps"),
        ("", "services"),
        ("", "persistentvolumeclaims"),
        ("apps", "deployments"),
        ("batch", "jobs"),
        ("autoscaling", "horizontalpodautoscalers"),
    ] {
        for o in cluster.sim.list(group, plural, Some(NS)) {
            if o["metadata"]["labels"]["quay-operator/quayregistry"] == NAME {
                let key = format!("{plural}/{}", o["metadata"]["name"].as_str().unwrap());
                let spec = o
                    .get("spec")
                    .or(o.get("data"))
                    .cloned()
                    .unwrap_or(Value::Null);
                objects.insert(key, spec);
            }
        }
    }
    objects
}

async fn healthy_registry() -> (Cluster, BTreeMap<String, Value>) {
    logs();
    let cluster = Cluster::start(Platform::Kubernetes).await;
    cluster.namespace(NS).await;
    cluster.registry(NS, NAME, json!([])).await;
    cluster.wait_healthy(NS, NAME).await;
    let before = owned_objects(&cluster);
    (cluster, before)
}

/// Waits for RolloutBlocked=True with `reason`, then checks that nothing the registry owns changed.
async fn assert_blocked_and_untouched(
    cluster: &Cluster,
    before: &BTreeMap<String, Value>,
    reason: &str,
) -> String {
    let r = cluster
        .wait_condition(NS, NAME, "RolloutBlocked", "True", reason)
        .await;
    assert_eq!(
        &owned_objects(cluster),
        before,
        "nothing applied or deleted while blocked"
    );
    conditions(&r)["RolloutBlocked"].message.clone()
}

fn bundle_with_config(config: &str) -> Vec<(String, String)> {
    let mut files = sim::kubernetes_bundle();
    files.insert("config.yaml".into(), config.into());
    files.into_iter().collect()
}

async fn write_bundle(cluster: &Cluster, files: &[(String, String)]) {
    let data: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    cluster
        .secret(NS, &format!("{NAME}-config"), "Opaque", &data)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bundle_blocks_and_keeps_the_running_registry() {
    let (cluster, before) = healthy_registry().await;
    let good = sim::kubernetes_bundle()["config.yaml"].clone();
    write_bundle(
        &cluster,
        &bundle_with_config(&format!("{good}BROKEN: [unclosed\n")),
    )
    .await;
    let message = assert_blocked_and_untouched(&cluster, &before, "ConfigInvalid").await;
    assert!(!message.is_empty());
    let r = cluster.api(NS).get(NAME).await.unwrap();
    assert_eq!(
        conditions(&r)["ComponentQuayReady"].status,
        "True",
        "the running Quay is still healthy"
    );

    write_bundle(&cluster, &bundle_with_config(&good)).await;
    cluster.wait_healthy(NS, NAME).await;
    assert_eq!(
        owned_objects(&cluster),
        before,
        "the same input renders the same objects"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_for_another_host_blocks_and_keeps_the_running_registry() {
    let (cluster, before) = healthy_registry().await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["other.example.org".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut files = sim::kubernetes_bundle();
    files.insert("ssl.cert".into(), cert.pem());
    files.insert("ssl.key".into(), key.serialize_pem());
    write_bundle(&cluster, &files.into_iter().collect::<Vec<_>>()).await;
    let message = assert_blocked_and_untouched(&cluster, &before, "ComponentCreationFailed").await;
    assert!(
        message.starts_with(
            "could not inflate kubernetes objects: provided certificate pair not valid for host 'quay.example.com': "
        ),
        "{message}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_apply_blocks_with_the_api_message_and_is_retried() {
    let (cluster, before) = healthy_registry().await;
    let config_secret = cluster.rendered_config_secrets(NS, NAME)[0]["metadata"]["name"].clone();
    // The API server refuses Secret writes (say an RBAC mistake): the new config Secret cannot be applied.
    cluster
        .sim
        .inject_fault(FaultRule::new(403).verb("patch").resource("secrets"));
    let good = sim::kubernetes_bundle()["config.yaml"].clone();
    let changed = bundle_with_config(&format!("{good}TAGGING_DISABLED: true\n"));
    // The test's own write of the bundle is a PUT (an `update`, which the fault does not cover).
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(cluster.client.clone(), NS);
    let mut bundle = secrets.get(&format!("{NAME}-config")).await.unwrap();
    bundle.data = None;
    bundle.string_data = Some(changed.into_iter().collect());
    secrets
        .replace(&format!("{NAME}-config"), &Default::default(), &bundle)
        .await
        .unwrap();
    let message = assert_blocked_and_untouched(&cluster, &before, "ComponentCreationFailed").await;
    assert!(
        message.starts_with("error creating/updating object Secret bad-quay-config-secret-"),
        "{message}"
    );
    assert!(
        message.ends_with("secrets is forbidden: injected by kube-sim"),
        "{message}"
    );
    assert_eq!(
        cluster.rendered_config_secrets(NS, NAME).len(),
        1,
        "no new config Secret, the old one still in use"
    );
    assert_eq!(
        cluster.rendered_config_secrets(NS, NAME)[0]["metadata"]["name"],
        config_secret
    );

    // The API server accepts writes again: the retry rolls the change out.
    cluster.sim.clear_faults();
    cluster
        .wait(NS, NAME, "rolled out after the retry", |r| {
            sim::is_healthy(r)
        })
        .await;
    cluster
        .wait_list("", "secrets", NS, "new config Secret", |l| {
            l.iter().any(|s| {
                s["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .starts_with("bad-quay-config-secret-")
                    && s["metadata"]["name"] != config_secret
            })
        })
        .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_shows_in_status_events_or_logs() {
    let (cluster, _) = healthy_registry().await;
    // A YAML error on a line holding a password, and a bad certificate: both end up in status and Events.
    let good = sim::kubernetes_bundle()["config.yaml"].clone();
    let db_password = "Sup3rSecretDbPassw0rd";
    write_bundle(
        &cluster,
        &bundle_with_config(&format!(
            "{good}DB_URI: postgresql://quay:{db_password}@db:5432/quay\n  oops: [{db_password}\n"
        )),
    )
    .await;
    cluster
        .wait_condition(NS, NAME, "RolloutBlocked", "True", "ConfigInvalid")
        .await;
    write_bundle(&cluster, &bundle_with_config(&good)).await;
    cluster.wait_healthy(NS, NAME).await;

    let mut secrets: Vec<String> = vec![db_password.to_owned()];
    let keys = cluster
        .sim
        .get(
            "",
            "secrets",
            NS,
            &format!("{NAME}-quay-registry-managed-secret-keys"),
        )
        .unwrap();
    // Generated keys and passwords (user and database names stored beside them are short words).
    for key in keys["data"].as_object().unwrap().keys() {
        let value = secret_data(&keys, key).unwrap();
        if value.len() >= 16 {
            secrets.push(value);
        }
    }
    let bundle = sim::kubernetes_bundle();
    secrets.push("EXAMPLE-ONLY-secret-key".to_owned());
    let tls_key = bundle["ssl.key"].lines().nth(1).unwrap().to_owned();
    secrets.push(tls_key);
    let config = cluster.rendered_config_secrets(NS, NAME);
    let rendered: Value =
        serde_saphyr::from_str(&secret_data(&config[0], "config.yaml").unwrap()).unwrap();
    let db_uri = rendered["DB_URI"].as_str().unwrap();
    let managed_db_password = db_uri
        .split(':')
        .nth(2)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_owned();
    secrets.push(managed_db_password);
    secrets.retain(|s| s.len() >= 8);
    assert!(secrets.len() >= 5, "secrets to look for: {}", secrets.len());

    let status = serde_json::to_string(&cluster.api(NS).get(NAME).await.unwrap().status).unwrap();
    let events = serde_json::to_string(&cluster.sim.list("", "events", Some(NS))).unwrap();
    let logs = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    assert!(logs.contains("rollout blocked"), "the logs were captured");
    assert!(events.contains("ConfigInvalid"), "the Events were written");
    for secret in &secrets {
        let shown = secret.chars().take(4).collect::<String>();
        assert!(
            !status.contains(secret.as_str()),
            "a secret ({shown}…) in status"
        );
        assert!(
            !events.contains(secret.as_str()),
            "a secret ({shown}…) in Events"
        );
        assert!(
            !logs.contains(secret.as_str()),
            "a secret ({shown}…) in logs"
        );
    }
    cluster.stop().await;
}
