//! User stories of the managed PostgreSQL major-version upgrades (issue 5 part 2; facts §2.13, §6.7): a registry
//! an older operator left on PostgreSQL 10 (Quay, pre-3.9 volume `<reg>-quay-database`) or 13 (Clair) is upgraded
//! end to end by this operator: the database and its users stop, the old data is served by `<reg>-<db>-old`,
//! the upgrade Job fills the new volume, the database switches over, and the old volume is kept (deleted only on
//! the registry's opt-in). A failed Job loses nothing and can be retried; an operator killed mid-way resumes.
//! In every story the managed keys and the database password are byte-identical before and after.

#[path = "common/sim.rs"]
mod sim;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use kube_sim::{Controller, Mode};
use quay_operator::api::{FIELD_MANAGER, QuayRegistry};
use quay_operator::config::{ConfigBundle, ManagedKeys};
use quay_operator::render::images::{DEFAULT_CLAIRPOSTGRES_IMAGE, DEFAULT_POSTGRES_IMAGE};
use quay_operator::render::{ClusterFacts, OperatorSettings, RenderInput, render};
use serde_json::{Value, json};
use sim::{Cluster, Platform, QUAY_VERSION, assert_condition, conditions};

const NS: &str = "pg-upgrade";
const PG10: &str = "centos/postgresql-10-centos7:latest";
const PG13: &str = "quay.io/sclorg/postgresql-13-c9s:latest";

/// Which database an older operator left on its previous major.
#[derive(Clone, Copy, PartialEq)]
enum OldDatabase {
    /// Quay's database on PostgreSQL 10, volume `<reg>-quay-database` (operators before 3.9).
    Quay,
    /// Clair's database on PostgreSQL 13, volume `<reg>-clair-postgres-13`.
    Clair,
}

impl OldDatabase {
    fn deployment(self, reg: &str) -> String {
        match self {
            OldDatabase::Quay => format!("{reg}-quay-database"),
            OldDatabase::Clair => format!("{reg}-clair-postgres"),
        }
    }
    fn old_claim(self, reg: &str) -> String {
        match self {
            OldDatabase::Quay => format!("{reg}-quay-database"),
            OldDatabase::Clair => format!("{reg}-clair-postgres-13"),
        }
    }
    fn new_claim(self, reg: &str) -> String {
        match self {
            OldDatabase::Quay => format!("{reg}-quay-postgres-13"),
            OldDatabase::Clair => format!("{reg}-clair-postgres-15"),
        }
    }
    fn new_image(self) -> &'static str {
        match self {
            OldDatabase::Quay => DEFAULT_POSTGRES_IMAGE,
            OldDatabase::Clair => DEFAULT_CLAIRPOSTGRES_IMAGE,
        }
    }
    fn old_image(self) -> &'static str {
        match self {
            OldDatabase::Quay => PG10,
            OldDatabase::Clair => PG13,
        }
    }
    fn job(self, reg: &str) -> String {
        match self {
            OldDatabase::Quay => format!("{reg}-quay-postgres-upgrade"),
            OldDatabase::Clair => format!("{reg}-clair-postgres-upgrade"),
        }
    }
    fn old_server(self, reg: &str) -> String {
        match self {
            OldDatabase::Quay => format!("{reg}-quay-database-old"),
            OldDatabase::Clair => format!("{reg}-clair-postgres-old"),
        }
    }
    fn credentials_secret(self, reg: &str) -> String {
        match self {
            OldDatabase::Quay => format!("{reg}-postgres-config-secret"),
            OldDatabase::Clair => format!("{reg}-clairpostgres-config-secret"),
        }
    }
}

/// The secrets that must survive an upgrade byte for byte (managed keys, both databases' credentials).
fn secrets(cluster: &Cluster, reg: &str) -> Value {
    cluster.kept_secrets(NS, reg)
}

/// Starts a plain-Kubernetes cluster with the operator stopped and creates registry `reg` as an older operator
/// left it: every object applied by field manager `quay-operator`, `status.currentVersion` = `version`, and the
/// `old` database on its previous major and volume. Returns the cluster, the registry and its secrets.
async fn left_by_older_operator(
    reg: &str,
    old: OldDatabase,
    version: &str,
    annotations: Value,
) -> (Cluster, QuayRegistry, Value) {
    let cluster = Cluster::start(Platform::Kubernetes).await;
    cluster.stop_operator();
    cluster.namespace(NS).await;
    let bundle_name = format!("{reg}-config");
    cluster.bundle(NS, &bundle_name, "").await;
    let mut json = cluster.registry_json(NS, reg, &bundle_name, json!([]));
    json["metadata"]["annotations"] = annotations;
    cluster.create_registry(json).await;
    let api: Api<QuayRegistry> = cluster.api(NS);
    let status = json!({"status": {"currentVersion": version}});
    let registry = api
        .patch_status(reg, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    // The older operator's render: its database images, its volume names.
    let bundle_secret = cluster
        .sim
        .get("", "secrets", NS, &bundle_name)
        .expect("bundle");
    let bundle = ConfigBundle::from_secret(&serde_json::from_value(bundle_secret).unwrap());
    let mut keys = ManagedKeys::default();
    assert!(keys.complete(reg));
    let keys_secret = keys.to_secret(reg, NS, registry.owner_ref(&()));
    apply(
        &cluster,
        serde_json::to_value(&keys_secret).unwrap(),
        "v1",
        "Secret",
    )
    .await;
    let mut settings = sim::settings();
    settings.quay_version = version.to_owned();
    match old {
        OldDatabase::Quay => settings.images.postgres = Some(PG10.to_owned()),
        OldDatabase::Clair => settings.images.clairpostgres = Some(PG13.to_owned()),
    }
    let rendered = older_render(&registry, &bundle, &keys, &settings);
    let (new_claim, old_claim) = (old.new_claim(reg), old.old_claim(reg));
    for object in rendered {
        let (api_version, kind) = object.api_version_kind();
        let mut value = object.to_json();
        if kind == "PersistentVolumeClaim" && value["metadata"]["name"] == new_claim.as_str() {
            value["metadata"]["name"] = json!(old_claim);
        }
        if kind == "Deployment" && value["metadata"]["name"] == old.deployment(reg).as_str() {
            for volume in value["spec"]["template"]["spec"]["volumes"]
                .as_array_mut()
                .unwrap()
            {
                if volume["persistentVolumeClaim"].is_object() {
                    volume["persistentVolumeClaim"]["claimName"] = json!(old_claim);
                }
            }
        }
        apply(&cluster, value, &api_version, &kind).await;
    }
    // Running: the database available on its old image and volume.
    cluster
        .wait_object(
            "apps",
            "deployments",
            NS,
            &old.deployment(reg),
            "the old database available",
            |d| d.is_some_and(|d| d["status"]["availableReplicas"] == 1),
        )
        .await;
    let database = cluster.deployment(NS, &old.deployment(reg)).unwrap();
    assert_eq!(image(&database), old.old_image());
    assert_eq!(claims(&database), [old_claim]);
    let before = secrets(&cluster, reg);
    (cluster, registry, before)
}

fn older_render(
    registry: &QuayRegistry,
    bundle: &ConfigBundle,
    keys: &ManagedKeys,
    settings: &OperatorSettings,
) -> Vec<quay_operator::render::DesiredObject> {
    let cluster = ClusterFacts::default();
    let input = RenderInput {
        registry,
        bundle,
        managed_keys: keys,
        cluster: &cluster,
        settings,
        now: std::time::SystemTime::now(),
    };
    match render(&input) {
        Ok(r) => r.objects,
        Err(e) => panic!("older render: {}", e.message()),
    }
}

/// Server-side apply as the older operator (upstream uses the same field manager).
async fn apply(cluster: &Cluster, obj: Value, api_version: &str, kind: &str) {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar =
        kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(group, version, kind));
    let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
    let api: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), NS, &ar);
    let mut obj = obj;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
}

fn image(deployment: &Value) -> &str {
    deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
}

fn claims(workload: &Value) -> Vec<String> {
    workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .map(str::to_owned)
        .collect()
}

/// Index of the first request whose method and path match, in the simulator's request log.
fn first_request(cluster: &Cluster, method: &str, path: &str) -> Option<usize> {
    cluster
        .sim
        .requests()
        .iter()
        .position(|r| r.method == method && r.uri.split('?').next() == Some(path))
}

fn object_path(group_version: &str, plural: &str, name: &str) -> String {
    let prefix = if group_version == "v1" {
        "/api/v1".to_owned()
    } else {
        format!("/apis/{group_version}")
    };
    format!("{prefix}/namespaces/{NS}/{plural}/{name}")
}

/// The upgrade finished: the database on the new image and volume, the temporary objects gone, the old volume
/// `kept` (released and labelled) or deleted.
async fn assert_upgraded(cluster: &Cluster, reg: &str, old: OldDatabase, kept: bool) {
    let database = cluster.deployment(NS, &old.deployment(reg)).unwrap();
    assert_eq!(image(&database), old.new_image());
    assert_eq!(claims(&database), [old.new_claim(reg)]);
    assert_eq!(database["spec"]["replicas"], 1);
    for (group, plural, name) in [
        ("apps", "deployments", old.old_server(reg)),
        ("", "services", old.old_server(reg)),
        ("batch", "jobs", old.job(reg)),
    ] {
        cluster
            .wait_object(group, plural, NS, &name, "removed after the upgrade", |o| {
                o.is_none()
            })
            .await;
    }
    let old_claim = old.old_claim(reg);
    if kept {
        let pvc = cluster
            .sim
            .get("", "persistentvolumeclaims", NS, &old_claim)
            .expect("old volume kept");
        assert_eq!(
            pvc["metadata"]["labels"]["quay-operator.rs/retained-from"],
            reg
        );
        assert!(
            pvc["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(|o| o.is_empty()),
            "released from the registry: {:?}",
            pvc["metadata"]["ownerReferences"]
        );
    } else {
        cluster
            .wait_object(
                "",
                "persistentvolumeclaims",
                NS,
                &old_claim,
                "deleted on opt-in",
                |o| o.is_none(),
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quay_database_postgres_10_on_the_pre_3_9_volume_is_upgraded_to_13_and_the_old_volume_kept()
{
    let reg = "pg10";
    let old = OldDatabase::Quay;
    let (cluster, _, before) = left_by_older_operator(reg, old, "v3.10.3", json!({})).await;
    // Pods are simulated, so the operator must see the database's pods gone before anything mounts its volume.
    cluster
        .sim
        .configure_controllers(|c| c.deployment_pods = true);
    cluster.sim.resync_controllers();
    let since = cluster.now_rv();
    let operator = cluster.spawn_operator(sim::settings());

    cluster
        .wait_seen(NS, reg, &since, "PostgresUpgradeInProgress", |r| {
            conditions(r).get("ComponentsCreated").is_some_and(|c| {
                c.reason == "PostgresUpgradeInProgress"
                    && c.message.starts_with(
                        "upgrading the Quay database from PostgreSQL 10 to 13: Job pg10-quay-postgres-upgrade is copying pg10-quay-database to pg10-quay-postgres-13",
                    )
            })
        })
        .await;
    // Then the Quay migration 3.10 → 3.11 on the upgraded database, and everything healthy.
    let r = cluster
        .wait(NS, reg, "healthy on v3.11.0", |r| {
            sim::is_healthy(r)
                && r.status.as_ref().unwrap().current_version.as_deref() == Some(QUAY_VERSION)
        })
        .await;
    assert_condition(
        &r,
        "ComponentsCreated",
        "True",
        "ComponentsCreationSuccess",
        "All registry components created",
    );
    assert_upgraded(&cluster, reg, old, true).await;

    // The order the cluster saw: database held at zero, the old server, the Job, then the switch-over; the
    // Quay migration only after the database was upgraded.
    let hold = first_request(
        &cluster,
        "PATCH",
        &object_path("apps/v1", "deployments", "pg10-quay-database"),
    )
    .expect("database held");
    let old_server = first_request(
        &cluster,
        "PATCH",
        &object_path("apps/v1", "deployments", "pg10-quay-database-old"),
    )
    .expect("old server applied");
    let job = first_request(
        &cluster,
        "PATCH",
        &object_path("batch/v1", "jobs", "pg10-quay-postgres-upgrade"),
    )
    .expect("upgrade Job applied");
    let migration = first_request(
        &cluster,
        "PATCH",
        &object_path("batch/v1", "jobs", "pg10-quay-app-upgrade"),
    )
    .expect("Quay migration Job applied");
    assert!(
        hold < old_server && old_server < job && job < migration,
        "{hold} {old_server} {job} {migration}"
    );
    // No database pod is left from the old template, and the new one mounts the new volume.
    let pods: Vec<Value> = cluster
        .sim
        .list("", "pods", Some(NS))
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["quay-component"] == "postgres")
        .collect();
    assert_eq!(pods.len(), 1, "one database pod");
    assert_eq!(
        pods[0]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
            .collect::<Vec<_>>(),
        ["pg10-quay-postgres-13"]
    );

    assert_eq!(
        secrets(&cluster, reg),
        before,
        "keys and passwords unchanged"
    );
    operator.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clair_database_postgres_13_is_upgraded_to_15_and_the_old_volume_kept() {
    let reg = "clair13";
    let old = OldDatabase::Clair;
    let (cluster, _, before) = left_by_older_operator(reg, old, QUAY_VERSION, json!({})).await;
    let since = cluster.now_rv();
    let operator = cluster.spawn_operator(sim::settings());
    let seen = cluster
        .wait_seen(NS, reg, &since, "PostgresUpgradeInProgress", |r| {
            conditions(r)
                .get("ComponentsCreated")
                .is_some_and(|c| c.reason == "PostgresUpgradeInProgress")
        })
        .await;
    assert!(
        conditions(&seen)["ComponentsCreated"]
            .message
            .starts_with("upgrading the Clair database from PostgreSQL 13 to 15"),
        "{:?}",
        conditions(&seen)["ComponentsCreated"]
    );
    cluster.wait_healthy(NS, reg).await;
    assert_upgraded(&cluster, reg, old, true).await;
    // The Quay database was never touched.
    assert!(
        first_request(
            &cluster,
            "PATCH",
            &object_path("apps/v1", "deployments", "clair13-quay-database-old")
        )
        .is_none()
    );
    let quay_db = cluster.deployment(NS, "clair13-quay-database").unwrap();
    assert_eq!(claims(&quay_db), ["clair13-quay-postgres-13"]);
    assert_eq!(
        secrets(&cluster, reg),
        before,
        "keys and passwords unchanged"
    );
    operator.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_volume_is_deleted_only_on_the_registry_opt_in() {
    let reg = "optin";
    let old = OldDatabase::Quay;
    let (cluster, _, before) = left_by_older_operator(
        reg,
        old,
        QUAY_VERSION,
        json!({"quay-operator.rs/delete-old-postgres-volume": "true"}),
    )
    .await;
    let operator = cluster.spawn_operator(sim::settings());
    cluster.wait_healthy(NS, reg).await;
    assert_upgraded(&cluster, reg, old, false).await;
    assert!(
        cluster
            .sim
            .get("", "persistentvolumeclaims", NS, &old.new_claim(reg))
            .is_some(),
        "the new volume stays"
    );
    assert_eq!(
        secrets(&cluster, reg),
        before,
        "keys and passwords unchanged"
    );
    operator.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_upgrade_job_is_reported_loses_nothing_and_is_retried_when_deleted() {
    let reg = "pgfail";
    let old = OldDatabase::Quay;
    let (cluster, registry, before) =
        left_by_older_operator(reg, old, QUAY_VERSION, json!({})).await;
    cluster.sim.set_controller_mode(Controller::Job, Mode::Fail);
    let operator = cluster.spawn_operator(sim::settings());
    let r = cluster
        .wait_condition(
            NS,
            reg,
            "ComponentsCreated",
            "False",
            "PostgresUpgradeFailed",
        )
        .await;
    assert_condition(
        &r,
        "ComponentsCreated",
        "False",
        "PostgresUpgradeFailed",
        "upgrading the Quay database from PostgreSQL 10 to 13: Job pgfail-quay-postgres-upgrade failed: Job has reached the specified backoff limit; the old volume pgfail-quay-database is unchanged (delete the Job to try again)",
    );
    // Nothing lost: the database still on PostgreSQL 10 and its volume, which the registry still owns; its
    // users stopped; no secret in the message.
    let database = cluster.deployment(NS, &old.deployment(reg)).unwrap();
    assert_eq!(image(&database), PG10);
    assert_eq!(claims(&database), [old.old_claim(reg)]);
    assert_eq!(database["spec"]["replicas"], 0);
    let pvc = cluster
        .sim
        .get("", "persistentvolumeclaims", NS, &old.old_claim(reg))
        .expect("old volume");
    assert_eq!(
        pvc["metadata"]["ownerReferences"][0]["uid"],
        registry.uid().unwrap().as_str()
    );
    assert_eq!(
        cluster.deployment(NS, "pgfail-quay-app").unwrap()["spec"]["replicas"],
        0
    );
    let message = &conditions(&r)["ComponentsCreated"].message;
    let password = sim::secret_data(
        &cluster
            .sim
            .get("", "secrets", NS, &old.credentials_secret(reg))
            .unwrap(),
        "database-root-password",
    )
    .unwrap();
    assert!(!message.contains(&password));
    // The failed Job stays for inspection: it is not re-run on every pass.
    let failed = cluster.sim.get("batch", "jobs", NS, &old.job(reg)).unwrap();

    // The admin fixed the cause and deletes the Job: it runs again and the upgrade completes.
    cluster
        .sim
        .set_controller_mode(Controller::Job, Mode::Succeed);
    cluster.touch(NS, reg).await;
    let again = cluster.sim.get("batch", "jobs", NS, &old.job(reg)).unwrap();
    assert_eq!(again["metadata"]["uid"], failed["metadata"]["uid"]);
    cluster
        .delete("batch", "v1", "Job", NS, &old.job(reg))
        .await;
    cluster.wait_healthy(NS, reg).await;
    assert_upgraded(&cluster, reg, old, true).await;
    assert_eq!(
        secrets(&cluster, reg),
        before,
        "keys and passwords unchanged"
    );
    operator.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_during_the_upgrade_resumes_to_completion() {
    let reg = "pgkill";
    let old = OldDatabase::Quay;
    let (cluster, _, before) = left_by_older_operator(reg, old, QUAY_VERSION, json!({})).await;
    cluster.sim.set_controller_mode(Controller::Job, Mode::Hold);
    let operator = cluster.spawn_operator(sim::settings());
    cluster
        .wait_object("batch", "jobs", NS, &old.job(reg), "the upgrade Job", |j| {
            j.is_some_and(|j| j["status"]["active"] == 1)
        })
        .await;
    operator.abort();

    // While no operator runs, the Job finishes.
    cluster
        .sim
        .set_controller_mode(Controller::Job, Mode::Succeed);
    cluster.sim.resync_controllers();
    cluster
        .wait_object(
            "batch",
            "jobs",
            NS,
            &old.job(reg),
            "the Job succeeded",
            |j| j.is_some_and(|j| j["status"]["succeeded"] == 1),
        )
        .await;
    let database = cluster.deployment(NS, &old.deployment(reg)).unwrap();
    assert_eq!(image(&database), PG10, "not switched by anyone yet");

    // A new operator process picks up from what the cluster shows.
    let operator = cluster.spawn_operator(sim::settings());
    cluster.wait_healthy(NS, reg).await;
    assert_upgraded(&cluster, reg, old, true).await;
    assert_eq!(
        secrets(&cluster, reg),
        before,
        "keys and passwords unchanged"
    );
    operator.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_killed_while_the_old_data_server_starts_resumes_to_completion() {
    let reg = "pgstop";
    let old = OldDatabase::Quay;
    let (cluster, _, before) = left_by_older_operator(reg, old, QUAY_VERSION, json!({})).await;
    // Deployments do not progress: the database stops, but the old data's server never becomes available.
    cluster
        .sim
        .set_controller_mode(Controller::Deployment, Mode::Hold);
    let since = cluster.now_rv();
    let operator = cluster.spawn_operator(sim::settings());
    cluster
        .wait_seen(NS, reg, &since, "stopping", |r| {
            conditions(r).get("ComponentsCreated").is_some_and(|c| {
                c.message
                    == "upgrading the Quay database from PostgreSQL 10 to 13: stopping pgstop-quay-database and the workloads that use it"
            })
        })
        .await;
    cluster
        .wait_seen(NS, reg, &since, "starting the old data server", |r| {
            conditions(r).get("ComponentsCreated").is_some_and(|c| {
                c.message
                    == "upgrading the Quay database from PostgreSQL 10 to 13: starting pgstop-quay-database-old on the old volume pgstop-quay-database"
            })
        })
        .await;
    operator.abort();
    assert!(
        cluster
            .sim
            .get("batch", "jobs", NS, &old.job(reg))
            .is_none(),
        "no Job before the old data is served"
    );
    cluster
        .sim
        .set_controller_mode(Controller::Deployment, Mode::Succeed);
    cluster.sim.resync_controllers();
    let operator = cluster.spawn_operator(sim::settings());
    cluster.wait_healthy(NS, reg).await;
    assert_upgraded(&cluster, reg, old, true).await;
    assert_eq!(
        secrets(&cluster, reg),
        before,
        "keys and passwords unchanged"
    );
    operator.abort();
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_deleted_during_the_upgrade_comes_back_on_the_old_data() {
    let reg = "pgdel";
    let old = OldDatabase::Quay;
    let (cluster, _, before) = left_by_older_operator(reg, old, QUAY_VERSION, json!({})).await;
    cluster.sim.set_controller_mode(Controller::Job, Mode::Hold);
    let operator = cluster.spawn_operator(sim::settings());
    cluster
        .wait_object("batch", "jobs", NS, &old.job(reg), "the upgrade Job", |j| {
            j.is_some_and(|j| j["status"]["active"] == 1)
        })
        .await;
    let uid = cluster.deployment(NS, &old.deployment(reg)).unwrap()["metadata"]["uid"].clone();

    // Someone deletes the database Deployment while the Job copies the data: it comes back held on the old
    // image and volume, never as the new version on the half-filled new volume.
    cluster
        .delete("apps", "v1", "Deployment", NS, &old.deployment(reg))
        .await;
    let back = cluster
        .wait_object(
            "apps",
            "deployments",
            NS,
            &old.deployment(reg),
            "the database re-created",
            |d| d.is_some_and(|d| d["metadata"]["uid"] != uid),
        )
        .await
        .unwrap();
    assert_eq!(image(&back), PG10);
    assert_eq!(claims(&back), [old.old_claim(reg)]);
    assert_eq!(back["spec"]["replicas"], 0);

    cluster
        .sim
        .set_controller_mode(Controller::Job, Mode::Succeed);
    cluster.sim.resync_controllers();
    cluster.wait_healthy(NS, reg).await;
    assert_upgraded(&cluster, reg, old, true).await;
    assert_eq!(
        secrets(&cluster, reg),
        before,
        "keys and passwords unchanged"
    );
    operator.abort();
    cluster.stop().await;
}
