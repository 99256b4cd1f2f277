//! User stories from upstream's envtest cases (facts §10.2): a registry without a bundle gets a stable one; a
//! missing bundle blocks without creating anything; every object is owned once by its registry; the databases
//! come first, the migration Job after them; a failed migration is reported and retried; an operator upgrade
//! migrates once per Quay version.

#[path = "common/sim.rs"]
mod sim;

use kube_sim::{Controller, Mode};
use serde_json::json;
use sim::{Cluster, Platform, QUAY_VERSION, assert_condition, conditions, secret_data};

const NS: &str = "install-ns";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_without_bundle_gets_one_stable_bundle_and_defaults_in_status() {
    let cluster = Cluster::start(Platform::OpenShift).await;
    cluster.namespace(NS).await;
    let created = cluster
        .create_registry(
            json!({"apiVersion": "quay.redhat.com/v1", "kind": "QuayRegistry",
            "metadata": {"name": "nobundle", "namespace": NS}, "spec": {}}),
        )
        .await;
    let r = cluster.wait_healthy(NS, "nobundle").await;
    let status = r.status.clone().unwrap();
    assert_eq!(
        status.config_bundle_secret.as_deref(),
        Some("nobundle-config-bundle")
    );
    assert_eq!(r.spec, created.spec, "spec never written");
    let kinds: Vec<&str> = status
        .components
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.kind.as_str())
        .collect();
    assert_eq!(kinds.len(), 11, "every component reported: {kinds:?}");
    let bundle = cluster
        .sim
        .get("", "secrets", NS, "nobundle-config-bundle")
        .expect("bundle");

    // Another look at the registry creates no second bundle and leaves this one alone.
    cluster.touch(NS, "nobundle").await;
    cluster.wait_healthy(NS, "nobundle").await;
    let bundles: Vec<_> = cluster
        .sim
        .list("", "secrets", Some(NS))
        .into_iter()
        .filter(|s| {
            s["metadata"]["name"]
                .as_str()
                .unwrap()
                .contains("config-bundle")
        })
        .collect();
    assert_eq!(bundles.len(), 1);
    assert_eq!(bundles[0]["metadata"]["uid"], bundle["metadata"]["uid"]);
    assert_eq!(bundles[0]["data"], bundle["data"]);
    cluster.stop().await;
}

async fn missing_bundle_story(platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;
    cluster
        .create_registry(cluster.registry_json(NS, "missing", "missing-config", json!([])))
        .await;
    let r = cluster
        .wait_condition(NS, "missing", "RolloutBlocked", "True", "ConfigInvalid")
        .await;
    assert_condition(
        &r,
        "RolloutBlocked",
        "True",
        "ConfigInvalid",
        "unable to get `configBundleSecret`: secrets \"missing-config\" not found",
    );
    assert_condition(
        &r,
        "ComponentTLSReady",
        "False",
        "ComponentNotReady",
        "Config bundle does not exist",
    );
    assert_eq!(r.status.as_ref().unwrap().current_version, None);
    for plural in ["services", "persistentvolumeclaims"] {
        assert!(
            cluster.sim.list("", plural, Some(NS)).is_empty(),
            "no {plural}"
        );
    }
    assert!(cluster.workloads(NS).is_empty(), "no Deployments");

    // The bundle appears (the registry re-checks every 10 s; a change to the registry makes it look at once).
    cluster.bundle(NS, "missing-config", "").await;
    cluster.touch(NS, "missing").await;
    cluster.wait_healthy(NS, "missing").await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bundle_blocks_and_creates_nothing_on_kubernetes() {
    missing_bundle_story(Platform::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bundle_blocks_and_creates_nothing_on_openshift() {
    missing_bundle_story(Platform::OpenShift).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_owned_once_and_tls_secret_copies_the_bundle_certificate() {
    let cluster = Cluster::start(Platform::Kubernetes).await;
    cluster.namespace(NS).await;
    let registry = cluster.registry(NS, "owned", json!([])).await;
    let r = cluster.wait_healthy(NS, "owned").await;
    assert_eq!(
        r.status.as_ref().unwrap().current_version.as_deref(),
        Some(QUAY_VERSION)
    );
    let uid = registry.metadata.uid.unwrap();
    let mut checked = 0;
    for (group, plural) in [
        ("", "secrets"),
        ("", "configmaps"),
        ("", "services"),
        ("", "serviceaccounts"),
        ("", "persistentvolumeclaims"),
        ("apps", "deployments"),
        ("batch", "jobs"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
    ] {
        for obj in cluster.sim.list(group, plural, Some(NS)) {
            if obj["metadata"]["labels"]["quay-operator/quayregistry"] != "owned" {
                continue;
            }
            let owners = obj["metadata"]["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert_eq!(owners.len(), 1, "{plural} {}", obj["metadata"]["name"]);
            assert_eq!(owners[0]["kind"], "QuayRegistry");
            assert_eq!(owners[0]["uid"], uid.as_str());
            checked += 1;
        }
    }
    assert!(checked > 10, "checked {checked} objects");
    let bundle = sim::kubernetes_bundle();
    let tls = cluster
        .sim
        .list("", "secrets", Some(NS))
        .into_iter()
        .find(|s| {
            s["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("owned-quay-config-tls-")
        })
        .expect("quay-config-tls Secret");
    assert_eq!(
        secret_data(&tls, "ssl.cert").as_deref(),
        Some(bundle["ssl.cert"].as_str())
    );
    assert_eq!(
        secret_data(&tls, "ssl.key").as_deref(),
        Some(bundle["ssl.key"].as_str())
    );
    cluster.stop().await;
}

async fn failed_migration_story(platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;
    // Databases never become available: only they are deployed.
    cluster
        .sim
        .set_controller_mode(Controller::Deployment, Mode::Hold);
    cluster.sim.set_controller_mode(Controller::Job, Mode::Fail);
    cluster.registry(NS, "mig", json!([])).await;
    let waiting = "Awaiting for component Postgres,ClairPostgres to become available";
    let r = cluster
        .wait(NS, "mig", "waiting for the databases", |r| {
            conditions(r)
                .get("ComponentsCreated")
                .is_some_and(|c| c.message == waiting)
        })
        .await;
    assert_condition(
        &r,
        "ComponentsCreated",
        "False",
        "ComponentNotReady",
        waiting,
    );
    let mut names: Vec<String> = cluster
        .workloads(NS)
        .iter()
        .map(|w| w.0.as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["mig-clair-postgres", "mig-quay-database", "mig-quay-redis"]
    );
    assert!(
        cluster.sim.list("batch", "jobs", Some(NS)).is_empty(),
        "no migration Job yet"
    );

    // Databases up; the migration Job fails: reported with the Job's message.
    cluster
        .sim
        .set_controller_mode(Controller::Deployment, Mode::Succeed);
    let r = cluster
        .wait_condition(NS, "mig", "ComponentsCreated", "False", "MigrationsFailed")
        .await;
    assert_condition(
        &r,
        "ComponentsCreated",
        "False",
        "MigrationsFailed",
        "Job has reached the specified backoff limit",
    );
    assert_eq!(r.status.as_ref().unwrap().current_version, None);
    let app = cluster.deployment(NS, "mig-quay-app").expect("quay-app");
    assert_eq!(
        app["spec"]["replicas"], 0,
        "quay-app stays down while migrations are due"
    );

    // The admin fixed the cause and deletes the failed Job: the operator runs it again.
    cluster
        .sim
        .set_controller_mode(Controller::Job, Mode::Succeed);
    cluster
        .delete("batch", "v1", "Job", NS, "mig-quay-app-upgrade")
        .await;
    let r = cluster.wait_healthy(NS, "mig").await;
    assert_eq!(
        r.status.as_ref().unwrap().current_version.as_deref(),
        Some(QUAY_VERSION)
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_wait_for_databases_and_a_failed_migration_is_retried_on_kubernetes() {
    failed_migration_story(Platform::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_wait_for_databases_and_a_failed_migration_is_retried_on_openshift() {
    failed_migration_story(Platform::OpenShift).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_upgrade_migrates_once_per_quay_version_on_kubernetes() {
    upgrade_story(Platform::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_upgrade_migrates_once_per_quay_version_on_openshift() {
    upgrade_story(Platform::OpenShift).await;
}

async fn upgrade_story(platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;
    cluster.registry(NS, "up", json!([])).await;
    cluster.wait_healthy(NS, "up").await;
    let job = cluster
        .sim
        .get("batch", "jobs", NS, "up-quay-app-upgrade")
        .expect("migration Job");

    // A newer operator: the Job is replaced by one for the new version, quay-app waits, then all is healthy.
    cluster.stop_operator();
    let newer = sim::settings();
    let newer = quay_operator::render::OperatorSettings {
        quay_version: "v3.12.0".into(),
        ..newer
    };
    let since = cluster.now_rv();
    let operator = cluster.spawn_operator(newer.clone());
    cluster
        .wait_seen(NS, "up", &since, "MigrationsInProgress", |r| {
            conditions(r)
                .get("ComponentsCreated")
                .is_some_and(|c| c.reason == "MigrationsInProgress")
        })
        .await;
    let r = cluster
        .wait(NS, "up", "v3.12.0 installed", |r| {
            sim::is_healthy(r)
                && r.status.as_ref().unwrap().current_version.as_deref() == Some("v3.12.0")
        })
        .await;
    assert_condition(
        &r,
        "ComponentsCreated",
        "True",
        "ComponentsCreationSuccess",
        "All registry components created",
    );
    let new_job = cluster
        .sim
        .get("batch", "jobs", NS, "up-quay-app-upgrade")
        .expect("new Job");
    assert_ne!(
        new_job["metadata"]["uid"], job["metadata"]["uid"],
        "Job recreated for the new version"
    );
    assert_eq!(
        new_job["metadata"]["annotations"]["quay-operator.rs/quay-version"],
        "v3.12.0"
    );

    // The same version again (operator restart): nothing is migrated twice, nothing is written in the
    // registry's namespace (on OpenShift the start-up domain probe Route lives in the operator's namespace).
    operator.abort();
    let start = cluster.sim.requests().len();
    let operator = cluster.spawn_operator(newer);
    cluster.wait_healthy(NS, "up").await;
    // Time for the restarted operator to act if it were going to.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let again = cluster
        .sim
        .get("batch", "jobs", NS, "up-quay-app-upgrade")
        .unwrap();
    assert_eq!(again["metadata"]["uid"], new_job["metadata"]["uid"]);
    let writes: Vec<String> = cluster.sim.requests()[start..]
        .iter()
        .filter(|r| r.method != "GET" && r.uri.contains(&format!("/namespaces/{NS}/")))
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect();
    assert!(
        writes.is_empty(),
        "a restarted operator writes nothing: {writes:#?}"
    );
    operator.abort();
    cluster.stop().await;
}
