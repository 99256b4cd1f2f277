//! User story: a QuayEcosystem of the legacy (pre-3.4) operator is migrated to a QuayRegistry (3.5 manual §5.5,
//! 3.11 manual §12.4): its managed database copied by a Job into the new registry's volume, its config cleaned,
//! the QuayEcosystem labelled `migration-complete` and everything of the legacy deployment left in place. A
//! configuration the migration cannot carry over is refused with a condition and nothing created, and an operator
//! restarted in the middle of the copy resumes it without creating anything twice.

#[path = "common/sim.rs"]
mod sim;

use std::collections::BTreeMap;

use kube::CustomResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube_sim::{Controller, Mode};
use quay_operator::api::quayecosystem::QuayEcosystem;
use serde_json::{Value, json};
use sim::{Cluster, Platform, kubernetes_bundle, secret_data, settings, start_operator_with};

const NS: &str = "quay";
const NAME: &str = "legacy";

/// The legacy `config.yaml`: S3 storage and a certificate for quay.example.com (examples/kubernetes-s3-tls), plus
/// what the legacy operator wrote for its own database, Redis and Clair v2, and the removed signing feature.
fn legacy_config() -> String {
    let mut config = kubernetes_bundle()["config.yaml"].clone();
    config.push_str(&format!(
        "DB_URI: postgresql://quay:legacy-db-password@{NAME}-quay-postgresql:5432/quay\n\
BUILDLOGS_REDIS: {{host: {NAME}-quay-redis, port: 6379}}\n\
USER_EVENTS_REDIS: {{host: {NAME}-quay-redis, port: 6379}}\n\
FEATURE_SECURITY_SCANNER: true\n\
SECURITY_SCANNER_ENDPOINT: http://{NAME}-clair:6060\n\
SECURITY_SCANNER_ISSUER_NAME: security_scanner\n\
FEATURE_SIGNING: false\n\
SIGNING_ENGINE: gpg2\n\
GPG2_PRIVATE_KEY_NAME: EEB32221\n\
FEATURE_USER_INITIALIZE: true\n"
    ));
    config
}

fn ecosystem(spec: Value) -> Value {
    json!({
        "apiVersion": "redhatcop.redhat.io/v1alpha1", "kind": "QuayEcosystem",
        "metadata": {"name": NAME, "namespace": NS, "labels": {"quay-operator/migrate": "true"}},
        "spec": spec,
    })
}

/// The manuals' supported set-up: a database with a volume, S3, a passthrough Route, Redis and Clair run by the
/// legacy operator. The unknown fields are legacy settings the operator does not type.
fn supported_spec() -> Value {
    json!({
        "quay": {
            "imagePullSecretName": "redhat-pull-secret",
            "database": {"volumeSize": "10Gi", "resources": {"requests": {"memory": "1Gi"}}},
            "registryBackends": [{"name": "s3", "s3": {"bucketName": "quay-example-bucket"}}],
            "externalAccess": {"type": "Route", "hostname": "quay.example.com",
                               "tls": {"termination": "passthrough"}},
            "enableRepoMirroring": true,
        },
        "redis": {"hostname": ""},
        "clair": {"enabled": true, "updateInterval": "60m"},
    })
}

/// What the legacy operator left running: its config Secret, the database credentials, the database Deployment
/// and volume.
async fn legacy_deployment(cluster: &Cluster) {
    legacy_deployment_with_config(cluster, &legacy_config()).await;
}

async fn legacy_deployment_with_config(cluster: &Cluster, config: &str) {
    let mut files = kubernetes_bundle();
    files.insert("config.yaml".into(), config.to_owned());
    let data: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    cluster
        .secret(NS, "quay-enterprise-config-secret", "Opaque", &data)
        .await;
    cluster
        .secret(
            NS,
            &format!("{NAME}-quay-postgresql"),
            "Opaque",
            &[
                ("database-username", "quay"),
                ("database-password", "legacy-db-password"),
                ("database-name", "quay"),
                ("database-root-password", "legacy-root-password"),
            ],
        )
        .await;
    for object in [
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": format!("{NAME}-quay-postgresql"), "namespace": NS},
               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": format!("{NAME}-quay-postgresql"), "namespace": NS},
               "spec": {"replicas": 1,
                        "selector": {"matchLabels": {"app": "quay-postgresql"}},
                        "template": {"metadata": {"labels": {"app": "quay-postgresql"}},
                                     "spec": {"containers": [{"name": "postgresql",
                                                              "image": "centos/postgresql-10-centos7",
                                                              "env": [{"name": "POSTGRESQL_USER", "value": "quay"}]}],
                                              "volumes": [{"name": "data", "persistentVolumeClaim":
                                                  {"claimName": format!("{NAME}-quay-postgresql")}}]}}}}),
    ] {
        cluster.apply_as_user(object).await;
    }
}

async fn start() -> Cluster {
    let cluster = Cluster::start(Platform::OpenShift).await;
    // Installed after the operator started: the migration controller starts when the CRD appears.
    cluster
        .sim
        .install_crd(serde_json::to_value(QuayEcosystem::crd()).unwrap())
        .unwrap();
    cluster.namespace(NS).await;
    cluster
}

/// Creates the QuayEcosystem from its JSON as a user would (`kubectl create`): with the legacy fields the
/// operator's types do not know, and the strict field validation kubectl asks for.
async fn create_ecosystem(cluster: &Cluster, spec: Value) {
    let ar = kube::api::ApiResource::erase::<QuayEcosystem>(&());
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(cluster.client.clone(), NS, &ar);
    let eco: kube::api::DynamicObject = serde_json::from_value(ecosystem(spec)).unwrap();
    let params = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::apply("scenario-user")
    };
    api.patch(NAME, &params, &Patch::Apply(&eco))
        .await
        .expect("create QuayEcosystem");
}

fn get(cluster: &Cluster, group: &str, plural: &str, name: &str) -> Option<Value> {
    cluster.sim.get(group, plural, NS, name)
}

fn labels(obj: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(obj["metadata"]["labels"].clone()).unwrap_or_default()
}

async fn wait_migrated(cluster: &Cluster) -> Value {
    cluster
        .wait_object(
            "redhatcop.redhat.io",
            "quayecosystems",
            NS,
            NAME,
            "the migration-complete label",
            |e| {
                e.is_some_and(|e| {
                    labels(e)
                        .get("quay-operator/migration-complete")
                        .map(String::as_str)
                        == Some("true")
                })
            },
        )
        .await
        .unwrap()
}

fn secret_files(cluster: &Cluster, name: &str) -> Value {
    get(cluster, "", "secrets", name).unwrap()["data"].clone()
}

#[tokio::test]
async fn managed_database_ecosystem_is_migrated_and_the_registry_becomes_available() {
    let cluster = start().await;
    legacy_deployment(&cluster).await;
    let old_credentials = get(&cluster, "", "secrets", &format!("{NAME}-quay-postgresql")).unwrap();
    let old_config = get(&cluster, "", "secrets", "quay-enterprise-config-secret").unwrap();
    create_ecosystem(&cluster, supported_spec()).await;

    let eco = wait_migrated(&cluster).await;
    let registry = cluster.wait_healthy(NS, NAME).await;

    // The QuayRegistry: same name, marked as migrated, the component mapping of the manuals.
    assert_eq!(
        registry.metadata.annotations.as_ref().unwrap()["quay-operator/migrated-from"],
        NAME
    );
    let bundle_name = format!("{NAME}-config-bundle-migrated");
    assert_eq!(
        registry.spec.config_bundle_secret.as_deref(),
        Some(bundle_name.as_str())
    );
    let components: BTreeMap<String, bool> = registry
        .spec
        .components
        .iter()
        .flatten()
        .map(|c| (c.kind.to_string(), c.managed))
        .collect();
    let expected: BTreeMap<String, bool> = [
        ("objectstorage", false),
        ("postgres", true),
        ("route", true),
        ("redis", true),
        ("mirror", true),
        ("clair", true),
        ("clairpostgres", true),
        ("tls", false),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(components, expected);

    // The bundle: the old files, config.yaml without the deprecated keys and the managed components' fields.
    let bundle = get(&cluster, "", "secrets", &bundle_name).unwrap();
    let config = secret_data(&bundle, "config.yaml").unwrap();
    for gone in [
        "DB_URI",
        "BUILDLOGS_REDIS",
        "USER_EVENTS_REDIS",
        "FEATURE_SECURITY_SCANNER",
        "SECURITY_SCANNER_",
        "FEATURE_SIGNING",
        "SIGNING_ENGINE",
        "GPG2_",
        "PREFERRED_URL_SCHEME",
        "EXTERNAL_TLS_TERMINATION",
        "legacy-db-password",
    ] {
        assert!(
            !config.contains(gone),
            "{gone} left in the migrated config.yaml:\n{config}"
        );
    }
    for kept in [
        "SERVER_HOSTNAME: quay.example.com",
        "DISTRIBUTED_STORAGE_CONFIG",
        "FEATURE_USER_INITIALIZE: true",
    ] {
        assert!(
            config.contains(kept),
            "{kept} missing from the migrated config.yaml:\n{config}"
        );
    }
    assert_eq!(
        secret_data(&bundle, "ssl.cert"),
        secret_data(&old_config, "ssl.cert")
    );
    assert!(
        bundle["metadata"]["ownerReferences"].is_null(),
        "the bundle must outlive the QuayEcosystem"
    );

    // The data copy: the legacy database got the admin password, the Job copied into the new volume.
    let old_db = cluster
        .deployment(NS, &format!("{NAME}-quay-postgresql"))
        .unwrap();
    assert_eq!(old_db["spec"]["strategy"]["type"], "Recreate");
    let env = &old_db["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "POSTGRESQL_ADMIN_PASSWORD"
                && e["valueFrom"]["secretKeyRef"]["key"] == "database-root-password"),
        "{env}"
    );
    let job = get(
        &cluster,
        "batch",
        "jobs",
        &format!("{NAME}-quay-postgres-migration"),
    )
    .unwrap();
    assert!(
        job["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Complete" && c["status"] == "True"),
        "{job:#}"
    );
    let job_env = &job["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        job_env
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "POSTGRESQL_MIGRATION_REMOTE_HOST"
                && e["value"] == format!("{NAME}-quay-postgresql"))
    );
    assert_eq!(
        job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        format!("{NAME}-quay-postgres-13")
    );
    // The registry's database runs on the volume the Job filled, with the legacy size.
    let pvc = get(
        &cluster,
        "",
        "persistentvolumeclaims",
        &format!("{NAME}-quay-postgres-13"),
    )
    .unwrap();
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "10Gi");
    let database = cluster
        .deployment(NS, &format!("{NAME}-quay-database"))
        .unwrap();
    let volumes = database["spec"]["template"]["spec"]["volumes"].to_string();
    assert!(
        volumes.contains(&format!("{NAME}-quay-postgres-13")),
        "{volumes}"
    );

    // Nothing of the legacy deployment was deleted or rewritten; legacy fields the schema does not type are kept.
    assert!(eco["metadata"]["deletionTimestamp"].is_null());
    assert_eq!(
        eco["spec"]["quay"]["imagePullSecretName"],
        "redhat-pull-secret"
    );
    assert_eq!(
        eco["spec"]["quay"]["database"]["resources"]["requests"]["memory"],
        "1Gi"
    );
    assert_eq!(eco["spec"]["clair"]["updateInterval"], "60m");
    assert!(
        get(
            &cluster,
            "",
            "persistentvolumeclaims",
            &format!("{NAME}-quay-postgresql")
        )
        .is_some()
    );
    let credentials_now = get(&cluster, "", "secrets", &format!("{NAME}-quay-postgresql")).unwrap();
    assert_eq!(credentials_now["data"], old_credentials["data"]);
    assert_eq!(
        credentials_now["metadata"]["resourceVersion"],
        old_credentials["metadata"]["resourceVersion"]
    );
    let config_now = get(&cluster, "", "secrets", "quay-enterprise-config-secret").unwrap();
    assert_eq!(
        config_now["metadata"]["resourceVersion"],
        old_config["metadata"]["resourceVersion"]
    );
    // No failure conditions on a migrated QuayEcosystem.
    assert!(
        eco["status"]["conditions"]
            .as_array()
            .is_none_or(|c| c.is_empty()),
        "{:#}",
        eco["status"]
    );
    cluster.stop().await;
}

#[tokio::test]
async fn local_storage_is_refused_with_a_condition_and_nothing_is_created() {
    let cluster = start().await;
    legacy_deployment(&cluster).await;
    let old_db = cluster
        .deployment(NS, &format!("{NAME}-quay-postgresql"))
        .unwrap();
    let mut spec = supported_spec();
    spec["quay"]["registryBackends"] =
        json!([{"name": "local", "local": {"storagePath": "/datastorage/registry"}}]);
    create_ecosystem(&cluster, spec).await;

    let eco = cluster
        .wait_object(
            "redhatcop.redhat.io",
            "quayecosystems",
            NS,
            NAME,
            "a failure condition",
            |e| e.is_some_and(|e| !e["status"]["conditions"].is_null()),
        )
        .await
        .unwrap();
    let conditions = eco["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1, "{conditions:#?}");
    assert_eq!(
        conditions[0]["type"],
        "QuayEcosystemComponentMigrationFailure"
    );
    assert_eq!(conditions[0]["status"], "True");
    assert_eq!(conditions[0]["reason"], "ComponentUnsupported");
    let message = conditions[0]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot migrate local object storage"),
        "{message}"
    );
    assert!(message.contains("`local`"), "{message}");

    assert!(!labels(&eco).contains_key("quay-operator/migration-complete"));
    assert!(get(&cluster, "quay.redhat.com", "quayregistries", NAME).is_none());
    assert!(
        get(
            &cluster,
            "",
            "secrets",
            &format!("{NAME}-config-bundle-migrated")
        )
        .is_none()
    );
    assert!(
        get(
            &cluster,
            "",
            "persistentvolumeclaims",
            &format!("{NAME}-quay-postgres-13")
        )
        .is_none()
    );
    assert!(
        get(
            &cluster,
            "batch",
            "jobs",
            &format!("{NAME}-quay-postgres-migration")
        )
        .is_none()
    );
    let old_db_now = cluster
        .deployment(NS, &format!("{NAME}-quay-postgresql"))
        .unwrap();
    // Its status moves on (the simulated controller); what the migration would change did not.
    assert_eq!(old_db_now["spec"], old_db["spec"]);
    assert_eq!(
        old_db_now["metadata"]["labels"],
        old_db["metadata"]["labels"]
    );
    cluster.stop().await;
}

#[tokio::test]
async fn operator_restarted_during_the_copy_resumes_without_creating_anything_twice() {
    let cluster = start().await;
    legacy_deployment(&cluster).await;
    // The copy Job runs until released.
    cluster.sim.set_controller_mode(Controller::Job, Mode::Hold);
    create_ecosystem(&cluster, supported_spec()).await;
    let job_name = format!("{NAME}-quay-postgres-migration");
    let job = cluster
        .wait_object("batch", "jobs", NS, &job_name, "the copy Job", |j| {
            j.is_some()
        })
        .await
        .unwrap();
    // While the copy runs there is no QuayRegistry, so no database can start on the volume being filled.
    assert!(get(&cluster, "quay.redhat.com", "quayregistries", NAME).is_none());
    assert!(
        cluster
            .deployment(NS, &format!("{NAME}-quay-database"))
            .is_none()
    );

    cluster.stop_operator();
    let bundle = get(
        &cluster,
        "",
        "secrets",
        &format!("{NAME}-config-bundle-migrated"),
    )
    .unwrap();
    let operator = start_operator_with(cluster.client.clone(), vec![], settings());
    // The restarted operator finds the running Job and waits for it; released, the copy completes the migration.
    cluster
        .sim
        .set_controller_mode(Controller::Job, Mode::Succeed);
    cluster.sim.resync_controllers();
    wait_migrated(&cluster).await;
    cluster.wait_healthy(NS, NAME).await;

    let job_now = get(&cluster, "batch", "jobs", &job_name).unwrap();
    assert_eq!(
        job_now["metadata"]["uid"], job["metadata"]["uid"],
        "the Job was created again"
    );
    let bundle_now = get(
        &cluster,
        "",
        "secrets",
        &format!("{NAME}-config-bundle-migrated"),
    )
    .unwrap();
    assert_eq!(bundle_now["metadata"]["uid"], bundle["metadata"]["uid"]);
    assert_eq!(bundle_now["data"], bundle["data"]);
    let jobs = cluster.sim.list("batch", "jobs", Some(NS));
    assert_eq!(
        jobs.iter()
            .filter(|j| labels(j).contains_key("quay-operator/quayecosystem"))
            .count(),
        1
    );
    operator.abort();
    cluster.stop().await;
}

#[tokio::test]
async fn managed_keys_and_database_password_of_the_migrated_registry_survive_an_operator_restart() {
    let cluster = start().await;
    legacy_deployment(&cluster).await;
    let old_credentials = secret_files(&cluster, &format!("{NAME}-quay-postgresql"));
    create_ecosystem(&cluster, supported_spec()).await;
    wait_migrated(&cluster).await;
    cluster.wait_healthy(NS, NAME).await;
    let keys_name = format!("{NAME}-quay-registry-managed-secret-keys");
    let db_secret = format!("{NAME}-postgres-config-secret");
    let keys = secret_files(&cluster, &keys_name);
    let db_password = secret_files(&cluster, &db_secret);
    assert!(!keys.is_null() && !db_password.is_null());

    cluster.stop_operator();
    let operator = start_operator_with(cluster.client.clone(), vec![], settings());
    // A change makes both controllers look again; the migrated QuayEcosystem is left alone.
    let api: Api<QuayEcosystem> = Api::namespaced(cluster.client.clone(), NS);
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"touched": "yes"}}})),
    )
    .await
    .unwrap();
    let since = cluster.now_rv();
    cluster.touch(NS, NAME).await;
    cluster
        .wait_seen(
            NS,
            NAME,
            &since,
            "a reconcile after the restart",
            sim::is_healthy,
        )
        .await;
    cluster.wait_healthy(NS, NAME).await;

    assert_eq!(secret_files(&cluster, &keys_name), keys);
    assert_eq!(secret_files(&cluster, &db_secret), db_password);
    assert_eq!(
        secret_files(&cluster, &format!("{NAME}-quay-postgresql")),
        old_credentials
    );
    // Exactly one QuayRegistry, one bundle, one copy Job.
    assert_eq!(
        cluster
            .sim
            .list("quay.redhat.com", "quayregistries", Some(NS))
            .len(),
        1
    );
    assert_eq!(
        cluster
            .sim
            .list("batch", "jobs", Some(NS))
            .iter()
            .filter(|j| labels(j).contains_key("quay-operator/quayecosystem"))
            .count(),
        1
    );
    operator.abort();
    cluster.stop().await;
}

#[tokio::test]
async fn config_the_registry_would_refuse_is_reported_first_and_migrated_once_fixed() {
    let cluster = start().await;
    // The legacy config lost its storage settings: the QuayRegistry could not roll out with it.
    let broken: String = legacy_config()
        .lines()
        .take_while(|l| !l.starts_with("DISTRIBUTED_STORAGE_CONFIG"))
        .chain(std::iter::once("FEATURE_USER_INITIALIZE: true"))
        .map(|l| format!("{l}\n"))
        .collect();
    legacy_deployment_with_config(&cluster, &broken).await;
    create_ecosystem(&cluster, supported_spec()).await;

    let eco = cluster
        .wait_object(
            "redhatcop.redhat.io",
            "quayecosystems",
            NS,
            NAME,
            "a failure condition",
            |e| e.is_some_and(|e| !e["status"]["conditions"].is_null()),
        )
        .await
        .unwrap();
    let condition = &eco["status"]["conditions"][0];
    assert_eq!(condition["type"], "QuayEcosystemConfigMigrationFailure");
    assert_eq!(condition["reason"], "ConfigBundleSecretInvalid");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("the QuayRegistry would not roll out"),
        "{message}"
    );
    // Nothing was written: not even the legacy database was restarted.
    assert!(
        get(
            &cluster,
            "",
            "secrets",
            &format!("{NAME}-config-bundle-migrated")
        )
        .is_none()
    );
    assert!(
        get(
            &cluster,
            "batch",
            "jobs",
            &format!("{NAME}-quay-postgres-migration")
        )
        .is_none()
    );
    let old_db = cluster
        .deployment(NS, &format!("{NAME}-quay-postgresql"))
        .unwrap();
    assert!(
        old_db["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["name"] != "POSTGRESQL_ADMIN_PASSWORD")
    );

    // Fixed, and the QuayEcosystem touched (otherwise it is looked at again within a minute).
    legacy_deployment(&cluster).await;
    let api: Api<QuayEcosystem> = Api::namespaced(cluster.client.clone(), NS);
    api.patch(
        NAME,
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {"fixed": "yes"}}})),
    )
    .await
    .unwrap();
    wait_migrated(&cluster).await;
    cluster.wait_healthy(NS, NAME).await;
    // The failure condition goes once the migration is done.
    cluster
        .wait_object(
            "redhatcop.redhat.io",
            "quayecosystems",
            NS,
            NAME,
            "conditions cleared",
            |e| {
                e.is_some_and(|e| {
                    e["status"]["conditions"]
                        .as_array()
                        .is_none_or(|c| c.is_empty())
                })
            },
        )
        .await;
    cluster.stop().await;
}

#[tokio::test]
async fn failed_copy_is_reported_creates_no_registry_and_runs_again_once_the_job_is_deleted() {
    let cluster = start().await;
    legacy_deployment(&cluster).await;
    cluster.sim.set_controller_mode(Controller::Job, Mode::Fail);
    create_ecosystem(&cluster, supported_spec()).await;

    let eco = cluster
        .wait_object(
            "redhatcop.redhat.io",
            "quayecosystems",
            NS,
            NAME,
            "a failure condition",
            |e| e.is_some_and(|e| !e["status"]["conditions"].is_null()),
        )
        .await
        .unwrap();
    let condition = &eco["status"]["conditions"][0];
    assert_eq!(condition["type"], "QuayEcosystemComponentMigrationFailure");
    assert_eq!(condition["reason"], "ComponentUnsupported");
    let message = condition["message"].as_str().unwrap();
    assert!(
        message.contains("database migration failed")
            && message.contains("Job has reached the specified backoff limit"),
        "{message}"
    );
    assert!(get(&cluster, "quay.redhat.com", "quayregistries", NAME).is_none());
    assert!(
        cluster
            .deployment(NS, &format!("{NAME}-quay-database"))
            .is_none()
    );
    // The failed Job is kept for its logs.
    let job_name = format!("{NAME}-quay-postgres-migration");
    assert!(get(&cluster, "batch", "jobs", &job_name).is_some());

    // The admin fixed the cause and deletes the Job: the copy runs again and the migration completes.
    cluster
        .sim
        .set_controller_mode(Controller::Job, Mode::Succeed);
    cluster.delete("batch", "v1", "Job", NS, &job_name).await;
    wait_migrated(&cluster).await;
    cluster.wait_healthy(NS, NAME).await;
    cluster
        .wait_object(
            "redhatcop.redhat.io",
            "quayecosystems",
            NS,
            NAME,
            "conditions cleared",
            |e| {
                e.is_some_and(|e| {
                    e["status"]["conditions"]
                        .as_array()
                        .is_none_or(|c| c.is_empty())
                })
            },
        )
        .await;
    cluster.stop().await;
}
