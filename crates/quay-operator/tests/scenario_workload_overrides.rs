//! User stories: upstream's e2e `hpa`, `resource_overrides`, `clair_ephemeral_volume` and `custom_storageclass`
//! (facts §10.1): what the admin sets in `overrides` lands in the workloads, what the user changes on orphaned
//! objects stays, and a database volume that cannot be provisioned is explained in status.

#[path = "common/sim.rs"]
mod sim;

use kube_sim::{Controller, Mode};
use serde_json::{Value, json};
use sim::{Cluster, Platform, assert_condition, conditions};

const NS: &str = "overrides-ns";

fn affinity() -> Value {
    json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100,
        "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
            "labelSelector": {"matchLabels": {"quay-component": "quay-app"}}}}]}})
}

fn hpa_components(hpa: bool, mirror: bool) -> Value {
    let o = json!({"affinity": affinity()});
    let mirror = if mirror {
        json!({"kind": "mirror", "managed": true, "overrides": o})
    } else {
        json!({"kind": "mirror", "managed": false})
    };
    json!([
        {"kind": "horizontalpodautoscaler", "managed": hpa},
        {"kind": "quay", "managed": true, "overrides": o},
        {"kind": "clair", "managed": true, "overrides": o},
        mirror,
    ])
}

fn min_replicas(cluster: &Cluster, name: &str) -> Value {
    cluster
        .sim
        .get("autoscaling", "horizontalpodautoscalers", NS, name)
        .unwrap_or_else(|| panic!("HPA {name} exists"))["spec"]["minReplicas"]
        .clone()
}

async fn hpa_story(platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;
    cluster
        .registry(NS, "hpa", hpa_components(true, true))
        .await;
    let r = cluster.wait_healthy(NS, "hpa").await;
    assert_condition(
        &r,
        "ComponentHPAReady",
        "True",
        "ComponentReady",
        "Horizontal pod autoscaler found",
    );

    // Unmanage HPA and mirror.
    cluster
        .set_components(NS, "hpa", hpa_components(false, false))
        .await;
    cluster
        .wait(NS, "hpa", "HPA and mirror not managed", |r| {
            let c = conditions(r);
            c["ComponentHPAReady"].reason == "ComponentNotManaged"
                && c["ComponentMirrorReady"].reason == "ComponentNotManaged"
        })
        .await;
    let r = cluster.wait_healthy(NS, "hpa").await;
    assert_condition(
        &r,
        "ComponentHPAReady",
        "True",
        "ComponentNotManaged",
        "Horizontal pod autoscaler not managed by the operator",
    );

    // The user raises minReplicas on the orphaned HPAs.
    for hpa in ["hpa-clair-app", "hpa-quay-app", "hpa-quay-mirror"] {
        cluster
            .merge_patch(
                ("autoscaling", "v2", "HorizontalPodAutoscaler"),
                NS,
                hpa,
                json!({"spec": {"minReplicas": 3}}),
            )
            .await;
    }
    // The operator sees these changes at once and must leave them alone.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for hpa in ["hpa-clair-app", "hpa-quay-app", "hpa-quay-mirror"] {
        assert_eq!(
            min_replicas(&cluster, hpa),
            3,
            "{hpa} kept as the user set it"
        );
    }

    // Re-manage HPA (mirror stays unmanaged): quay and clair HPAs go back to 2, the mirror one stays 3.
    cluster
        .set_components(NS, "hpa", hpa_components(true, false))
        .await;
    for hpa in ["hpa-clair-app", "hpa-quay-app"] {
        cluster
            .wait_object(
                "autoscaling",
                "horizontalpodautoscalers",
                NS,
                hpa,
                "minReplicas 2",
                |h| h.is_some_and(|h| h["spec"]["minReplicas"] == 2),
            )
            .await;
    }
    cluster.wait_healthy(NS, "hpa").await;
    assert_eq!(min_replicas(&cluster, "hpa-quay-mirror"), 3);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_on_openshift() {
    hpa_story(Platform::OpenShift).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_on_kubernetes() {
    hpa_story(Platform::Kubernetes).await;
}

fn resources(limits: (&str, &str), requests: (&str, &str)) -> Value {
    json!({"limits": {"cpu": limits.0, "memory": limits.1}, "requests": {"cpu": requests.0, "memory": requests.1}})
}

async fn resource_overrides_story(platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;
    let quay = resources(("3", "9Gi"), ("2100m", "8100Mi"));
    let clair = resources(("4100m", "17Gi"), ("2100m", "2100Mi"));
    let mirror = resources(("2", "5Gi"), ("500m", "512Mi"));
    let db = resources(("1", "4Gi"), ("500m", "2Gi"));
    cluster
        .registry(
            NS,
            "resources",
            json!([
                {"kind": "horizontalpodautoscaler", "managed": false},
                {"kind": "quay", "managed": true, "overrides": {"resources": quay}},
                {"kind": "clair", "managed": true, "overrides": {"resources": clair}},
                {"kind": "mirror", "managed": true, "overrides": {"resources": mirror}},
                {"kind": "postgres", "managed": true, "overrides": {"resources": db, "volumeSize": "70Gi"}},
                {"kind": "clairpostgres", "managed": true, "overrides": {"resources": db, "volumeSize": "70Gi"}},
            ]),
        )
        .await;
    cluster.wait_healthy(NS, "resources").await;
    for (deployment, expected) in [
        ("quay-app", &quay),
        ("clair-app", &clair),
        ("quay-mirror", &mirror),
        ("quay-database", &db),
        ("clair-postgres", &db),
    ] {
        let d = cluster
            .deployment(NS, &format!("resources-{deployment}"))
            .unwrap();
        assert_eq!(
            &d["spec"]["template"]["spec"]["containers"][0]["resources"], expected,
            "{deployment} resources"
        );
    }
    for pvc in ["resources-quay-postgres-13", "resources-clair-postgres-15"] {
        let pvc = cluster
            .sim
            .get("", "persistentvolumeclaims", NS, pvc)
            .unwrap();
        assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "70Gi");
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_overrides_on_openshift() {
    resource_overrides_story(Platform::OpenShift).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_overrides_on_kubernetes() {
    resource_overrides_story(Platform::Kubernetes).await;
}

async fn clair_ephemeral_volume_story(platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;
    cluster
        .registry(
            NS,
            "ephemeral",
            json!([{"kind": "clair", "managed": true, "overrides": {"volumeSize": "50Gi"}}]),
        )
        .await;
    cluster.wait_healthy(NS, "ephemeral").await;
    let clair = cluster.deployment(NS, "ephemeral-clair-app").unwrap();
    let pod = &clair["spec"]["template"]["spec"];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "indexer-layer-storage")
        .expect("indexer-layer-storage volume");
    assert_eq!(
        volume["ephemeral"]["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"],
        "50Gi"
    );
    let container = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "clair-app")
        .expect("clair-app container");
    assert!(
        container["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "indexer-layer-storage" && m["mountPath"] == "/var/tmp"),
        "{container:#}"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clair_ephemeral_volume_on_openshift() {
    clair_ephemeral_volume_story(Platform::OpenShift).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clair_ephemeral_volume_on_kubernetes() {
    clair_ephemeral_volume_story(Platform::Kubernetes).await;
}

fn storage_class_components(class: &str) -> Value {
    json!([
        {"kind": "postgres", "managed": true, "overrides": {"storageClassName": class}},
        {"kind": "clairpostgres", "managed": true, "overrides": {"storageClassName": class}},
    ])
}

async fn custom_storageclass_story(platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;

    // A valid class: healthy, both PVCs use it, the spec round-trips.
    cluster
        .registry(NS, "valid-sc", storage_class_components("quay-e2e-sc"))
        .await;
    let r = cluster.wait_healthy(NS, "valid-sc").await;
    for pvc in ["valid-sc-quay-postgres-13", "valid-sc-clair-postgres-15"] {
        let pvc = cluster
            .sim
            .get("", "persistentvolumeclaims", NS, pvc)
            .unwrap();
        assert_eq!(pvc["spec"]["storageClassName"], "quay-e2e-sc");
    }
    let spec = serde_json::to_value(&r.spec).unwrap();
    let classes: Vec<&Value> = spec["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["overrides"].get("storageClassName"))
        .collect();
    assert_eq!(
        classes,
        vec!["quay-e2e-sc", "quay-e2e-sc"],
        "spec kept as written"
    );

    // A class that does not exist: the volumes stay Pending (the simulator binds any named class, so its
    // provisioner is held), and status says so.
    cluster
        .sim
        .set_controller_mode(Controller::PersistentVolumeClaim, Mode::Hold);
    cluster
        .registry(
            NS,
            "invalid-sc",
            storage_class_components("invalid-storageclass-does-not-exist"),
        )
        .await;
    let r = cluster
        .wait(NS, "invalid-sc", "both databases pending", |r| {
            let c = conditions(r);
            c.get("ComponentPostgresReady")
                .is_some_and(|c| c.reason == "PVCPending")
                && c.get("ComponentClairPostgresReady")
                    .is_some_and(|c| c.reason == "PVCPending")
        })
        .await;
    assert_condition(
        &r,
        "ComponentPostgresReady",
        "False",
        "PVCPending",
        "Postgres PersistentVolumeClaim invalid-sc-quay-postgres-13 is pending",
    );
    assert_condition(
        &r,
        "ComponentClairPostgresReady",
        "False",
        "PVCPending",
        "ClairPostgres PersistentVolumeClaim invalid-sc-clair-postgres-15 is pending",
    );
    assert_eq!(conditions(&r)["Available"].status, "False");
    for pvc in [
        "invalid-sc-quay-postgres-13",
        "invalid-sc-clair-postgres-15",
    ] {
        let pvc = cluster
            .sim
            .get("", "persistentvolumeclaims", NS, pvc)
            .unwrap();
        assert_eq!(pvc["status"]["phase"], "Pending");
    }

    // The provisioner gives up with a ProvisioningFailed Event: status carries its message.
    cluster
        .sim
        .set_controller_mode(Controller::PersistentVolumeClaim, Mode::Fail);
    let r = cluster
        .wait(NS, "invalid-sc", "provisioning failure reported", |r| {
            let c = conditions(r);
            c.get("ComponentPostgresReady")
                .is_some_and(|c| c.reason == "PVCProvisioningFailed")
                && c.get("ComponentClairPostgresReady")
                    .is_some_and(|c| c.reason == "PVCProvisioningFailed")
        })
        .await;
    let event = cluster
        .sim
        .get(
            "",
            "events",
            NS,
            "invalid-sc-quay-postgres-13.provisioningfailed",
        )
        .expect("the simulator's ProvisioningFailed Event");
    assert_condition(
        &r,
        "ComponentPostgresReady",
        "False",
        "PVCProvisioningFailed",
        &format!(
            "Postgres PVC invalid-sc-quay-postgres-13 provisioning failed: {}",
            event["message"].as_str().unwrap()
        ),
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_storageclass_on_openshift() {
    custom_storageclass_story(Platform::OpenShift).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_storageclass_on_kubernetes() {
    custom_storageclass_story(Platform::Kubernetes).await;
}
