//! User story: `kubectl delete quayregistry` does not lose the registry's data. The database volumes and the
//! managed keys are kept (released from the deleted registry); a registry re-created with the same name adopts
//! them and renders the same DB password and secret keys. The annotation
//! `quay-operator.rs/delete-data-on-deletion: "true"` opts in to deleting them with the registry.

#[path = "common/sim.rs"]
mod sim;

use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use quay_operator::api::QuayRegistry;
use serde_json::{Value, json};
use sim::{Cluster, Platform, secret_data};

const NS: &str = "data-ns";
const NAME: &str = "keep";
const PVCS: [&str; 2] = ["keep-quay-postgres-13", "keep-clair-postgres-15"];
const KEYS: &str = "keep-quay-registry-managed-secret-keys";

fn db_uri(cluster: &Cluster) -> String {
    let secrets = cluster.rendered_config_secrets(NS, NAME);
    assert_eq!(secrets.len(), 1);
    let config: Value =
        serde_saphyr::from_str(&secret_data(&secrets[0], "config.yaml").unwrap()).unwrap();
    config["DB_URI"].as_str().expect("DB_URI").to_owned()
}

async fn delete_registry(cluster: &Cluster) {
    let api = cluster.api(NS);
    api.delete(NAME, &DeleteParams::default()).await.unwrap();
    let gone = await_condition(api, NAME, |r: Option<&QuayRegistry>| r.is_none());
    tokio::time::timeout(sim::WAIT, gone)
        .await
        .expect("registry deleted")
        .unwrap();
}

async fn retention_story(platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;
    cluster.registry(NS, NAME, json!([])).await;
    cluster.wait_healthy(NS, NAME).await;
    let keys = cluster
        .sim
        .get("", "secrets", NS, KEYS)
        .expect("managed keys");
    let uri = db_uri(&cluster);
    let pvc_uids: Vec<Value> = PVCS
        .iter()
        .map(|p| {
            cluster
                .sim
                .get("", "persistentvolumeclaims", NS, p)
                .unwrap()["metadata"]["uid"]
                .clone()
        })
        .collect();

    // Delete: the data stays, released and labelled; the rest is garbage-collected.
    delete_registry(&cluster).await;
    cluster
        .wait_list("apps", "deployments", NS, "Deployments collected", |l| {
            l.is_empty()
        })
        .await;
    for pvc in PVCS {
        let pvc = cluster
            .sim
            .get("", "persistentvolumeclaims", NS, pvc)
            .expect("PVC kept");
        assert!(
            pvc["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(|o| o.is_empty()),
            "{pvc:#}"
        );
        assert_eq!(
            pvc["metadata"]["labels"]["quay-operator.rs/retained-from"],
            NAME
        );
    }
    let kept = cluster
        .sim
        .get("", "secrets", NS, KEYS)
        .expect("managed keys kept");
    assert_eq!(kept["data"], keys["data"]);
    assert!(
        kept["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|o| o.is_empty())
    );

    // Re-create: the same volumes, keys and DB password are adopted.
    let registry = cluster
        .create_registry(cluster.registry_json(NS, NAME, &format!("{NAME}-config"), json!([])))
        .await;
    cluster.wait_healthy(NS, NAME).await;
    assert_eq!(db_uri(&cluster), uri, "same DB password");
    let keys_now = cluster.sim.get("", "secrets", NS, KEYS).unwrap();
    assert_eq!(keys_now["data"], keys["data"], "same secret keys");
    let new_uid = registry.metadata.uid.clone().unwrap();
    for (pvc, uid) in PVCS.iter().zip(&pvc_uids) {
        let pvc = cluster
            .sim
            .get("", "persistentvolumeclaims", NS, pvc)
            .unwrap();
        assert_eq!(&pvc["metadata"]["uid"], uid, "the same volume");
        assert_eq!(
            pvc["metadata"]["ownerReferences"][0]["uid"],
            new_uid.as_str(),
            "adopted"
        );
    }
    assert_eq!(
        keys_now["metadata"]["ownerReferences"][0]["uid"],
        new_uid.as_str(),
        "keys adopted"
    );

    // Opt in to deleting the data, then delete: volumes and keys go with the registry.
    let patch =
        json!({"metadata": {"annotations": {"quay-operator.rs/delete-data-on-deletion": "true"}}});
    cluster
        .api(NS)
        .patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    delete_registry(&cluster).await;
    cluster
        .wait_list("", "persistentvolumeclaims", NS, "PVCs deleted", |l| {
            l.is_empty()
        })
        .await;
    cluster
        .wait_object("", "secrets", NS, KEYS, "managed keys deleted", |s| {
            s.is_none()
        })
        .await;
    // The user's own bundle Secret is never the operator's to delete.
    assert!(
        cluster
            .sim
            .get("", "secrets", NS, &format!("{NAME}-config"))
            .is_some()
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_registry_keeps_its_data_and_a_new_one_adopts_it_on_kubernetes() {
    retention_story(Platform::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_registry_keeps_its_data_and_a_new_one_adopts_it_on_openshift() {
    retention_story(Platform::OpenShift).await;
}
