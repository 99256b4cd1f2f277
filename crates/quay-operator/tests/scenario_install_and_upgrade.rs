//! User stories from upstream's envtest cases (facts §10.2) and the 3.11 manual's upgrade chapter (§12.2): a
//! registry without a bundle gets a stable one; a missing bundle blocks without creating anything; every object
//! is owned once by its registry; the databases come first, the migration Job after them; a failed migration is
//! reported and retried; an operator killed during the migration resumes; an operator upgrade migrates once per
//! Quay version; 3.10 → 3.11 and 3.9 → 3.11 are allowed, 3.8 → 3.11 and a downgrade are refused with nothing
//! changed. In every story the managed keys and the database passwords are byte-identical before and after.

#[path = "common/sim.rs"]
mod sim;

use std::collections::BTreeMap;

use kube::ResourceExt;
use kube_sim::{Controller, Mode};
use quay_operator::render::OperatorSettings;
use serde_json::{Value, json};
use sim::{Cluster, Platform, QUAY_VERSION, assert_condition, conditions, secret_data};

const NS: &str = "install-ns";

fn kept_secrets(cluster: &Cluster, reg: &str) -> Value {
    cluster.kept_secrets(NS, reg)
}

fn settings_for(version: &str) -> OperatorSettings {
    OperatorSettings {
        quay_version: version.into(),
        ..sim::settings()
    }
}

/// The resourceVersion of every object in the namespace but the registries and Events: a change shows as a
/// difference.
fn namespace_state(cluster: &Cluster) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
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
            state.insert(
                format!("{plural}/{}", obj["metadata"]["name"].as_str().unwrap()),
                obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    state
}

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
    let kept = kept_secrets(&cluster, "nobundle");

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
    assert_eq!(kept_secrets(&cluster, "nobundle"), kept);
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
    // Once created, another look (and the bundle re-applied as it was) leaves the keys alone.
    let kept = kept_secrets(&cluster, "missing");
    cluster.bundle(NS, "missing-config", "").await;
    cluster.touch(NS, "missing").await;
    cluster.wait_healthy(NS, "missing").await;
    assert_eq!(kept_secrets(&cluster, "missing"), kept);
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
    let kept = kept_secrets(&cluster, "owned");
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
    cluster.touch(NS, "owned").await;
    cluster.wait_healthy(NS, "owned").await;
    assert_eq!(kept_secrets(&cluster, "owned"), kept);
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
    let kept = kept_secrets(&cluster, "mig");

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
    assert_eq!(kept_secrets(&cluster, "mig"), kept);
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
    let kept = kept_secrets(&cluster, "up");

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
    let _ = operator.await;
    // A status write the stopped process had already sent may still be served: let it land before counting.
    cluster.sim.requests_landed().await;
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
    assert_eq!(kept_secrets(&cluster, "up"), kept);
    operator.abort();
    cluster.stop().await;
}

/// A registry installed by an operator deploying `from`, then this operator (3.11): the manual's supported
/// single-step upgrade runs the migration once and ends healthy on 3.11.
async fn supported_upgrade_story(from: &str, platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.stop_operator();
    cluster.namespace(NS).await;
    let older = cluster.spawn_operator(settings_for(from));
    cluster.registry(NS, "path", json!([])).await;
    let r = cluster
        .wait(NS, "path", &format!("installed at {from}"), |r| {
            sim::is_healthy(r)
                && r.status.as_ref().unwrap().current_version.as_deref() == Some(from)
        })
        .await;
    assert_eq!(r.status.unwrap().current_version.as_deref(), Some(from));
    let kept = kept_secrets(&cluster, "path");
    older.abort();

    let since = cluster.now_rv();
    let operator = cluster.spawn_operator(sim::settings());
    cluster
        .wait_seen(NS, "path", &since, "MigrationsInProgress", |r| {
            conditions(r)
                .get("ComponentsCreated")
                .is_some_and(|c| c.reason == "MigrationsInProgress")
        })
        .await;
    let r = cluster
        .wait(NS, "path", "upgraded to 3.11", |r| {
            sim::is_healthy(r)
                && r.status.as_ref().unwrap().current_version.as_deref() == Some(QUAY_VERSION)
        })
        .await;
    assert_condition(
        &r,
        "RolloutBlocked",
        "False",
        "ComponentsCreationSuccess",
        "All objects created/updated successfully",
    );
    let job = cluster
        .sim
        .get("batch", "jobs", NS, "path-quay-app-upgrade")
        .expect("migration Job");
    assert_eq!(
        job["metadata"]["annotations"]["quay-operator.rs/quay-version"],
        QUAY_VERSION
    );
    assert_eq!(kept_secrets(&cluster, "path"), kept);
    operator.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_3_10_to_3_11_is_allowed() {
    supported_upgrade_story("v3.10.4", Platform::OpenShift).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_3_9_to_3_11_is_allowed() {
    supported_upgrade_story("v3.9.7", Platform::Kubernetes).await;
}

/// A registry installed at `from`, then an operator deploying `to` that must refuse: `RolloutBlocked` with the
/// message, `currentVersion` kept, and not one object of the namespace written.
async fn refused_upgrade_story(from: &str, to: &str, message: &str) {
    let cluster = Cluster::start(Platform::Kubernetes).await;
    cluster.stop_operator();
    cluster.namespace(NS).await;
    let older = cluster.spawn_operator(settings_for(from));
    cluster.registry(NS, "refused", json!([])).await;
    cluster
        .wait(NS, "refused", &format!("installed at {from}"), |r| {
            sim::is_healthy(r)
                && r.status.as_ref().unwrap().current_version.as_deref() == Some(from)
        })
        .await;
    older.abort();
    let kept = kept_secrets(&cluster, "refused");
    let before = namespace_state(&cluster);

    let operator = cluster.spawn_operator(settings_for(to));
    let r = cluster
        .wait_condition(
            NS,
            "refused",
            "RolloutBlocked",
            "True",
            "UpgradeUnsupported",
        )
        .await;
    assert_condition(&r, "RolloutBlocked", "True", "UpgradeUnsupported", message);
    assert_eq!(
        r.status.as_ref().unwrap().current_version.as_deref(),
        Some(from)
    );
    // Another look changes nothing either.
    cluster.touch(NS, "refused").await;
    cluster
        .wait(NS, "refused", "the touch seen", |r| {
            r.labels().contains_key("scenario-touch")
                && r.status.as_ref().unwrap().observed_generation.is_some()
        })
        .await;
    assert_eq!(namespace_state(&cluster), before, "nothing written");
    assert_eq!(kept_secrets(&cluster, "refused"), kept);
    operator.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_from_3_8_to_3_11_is_refused_and_changes_nothing() {
    refused_upgrade_story(
        "v3.8.15",
        QUAY_VERSION,
        "cannot upgrade Quay from v3.8.15 to v3.11.0: Quay 3.11 supports upgrades from 3.9.z, 3.10.z, 3.11.z only; upgrade to 3.9 first",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downgrade_is_refused_and_changes_nothing() {
    refused_upgrade_story(
        QUAY_VERSION,
        "v3.10.4",
        "cannot upgrade Quay from v3.11.0 to v3.10.4: downgrades are not supported; run an operator that deploys 3.11 (or later) again",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_during_the_migration_resumes_without_running_it_twice() {
    let cluster = Cluster::start(Platform::Kubernetes).await;
    cluster.namespace(NS).await;
    cluster.sim.set_controller_mode(Controller::Job, Mode::Hold);
    cluster.registry(NS, "killed", json!([])).await;
    let job = cluster
        .wait_object(
            "batch",
            "jobs",
            NS,
            "killed-quay-app-upgrade",
            "the migration running",
            |j| j.is_some_and(|j| j["status"]["active"] == 1),
        )
        .await
        .unwrap();
    let kept = kept_secrets(&cluster, "killed");
    cluster.stop_operator();

    // The migration finishes while no operator runs; the next one takes it as done.
    cluster
        .sim
        .set_controller_mode(Controller::Job, Mode::Succeed);
    cluster.sim.resync_controllers();
    cluster
        .wait_object(
            "batch",
            "jobs",
            NS,
            "killed-quay-app-upgrade",
            "the migration done",
            |j| j.is_some_and(|j| j["status"]["succeeded"] == 1),
        )
        .await;
    let operator = cluster.spawn_operator(sim::settings());
    let r = cluster.wait_healthy(NS, "killed").await;
    assert_eq!(
        r.status.as_ref().unwrap().current_version.as_deref(),
        Some(QUAY_VERSION)
    );
    let after = cluster
        .sim
        .get("batch", "jobs", NS, "killed-quay-app-upgrade")
        .unwrap();
    assert_eq!(
        after["metadata"]["uid"], job["metadata"]["uid"],
        "the finished migration is not run again"
    );
    assert_ne!(
        cluster.deployment(NS, "killed-quay-app").unwrap()["spec"]["replicas"],
        0
    );
    assert_eq!(kept_secrets(&cluster, "killed"), kept);
    operator.abort();
    cluster.stop().await;
}
