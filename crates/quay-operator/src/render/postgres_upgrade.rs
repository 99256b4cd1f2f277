//! Managed PostgreSQL major-version upgrades: the table of upgrade paths, and the objects an upgrade in progress
//! adds to (or changes in) a render.
//!
//! Which stage an upgrade is at is decided by the controller from what it observes in the cluster
//! (`controller::postgres_upgrade`) and handed to the render in [`ClusterFacts::postgres_upgrades`]; this module
//! only turns a stage into objects:
//!
//! - every stage holds the database Deployment on the image and volume it runs now, at zero replicas, and scales
//!   the workloads that use the database to zero;
//! - from [`UpgradeStage::ServeOldData`] on, a temporary Deployment `<reg>-<db>-old` serves the old volume with
//!   the old image, behind a Service of the same name;
//! - at [`UpgradeStage::Migrate`], the `<reg>-<db>-postgres-upgrade` Job copies the old server's data into the new
//!   volume with the new image.
//!
//! Once the Job succeeded the controller stops passing the upgrade and the normal render switches the database
//! Deployment to the new image and volume.
//!
//! [`ClusterFacts::postgres_upgrades`]: super::context::ClusterFacts::postgres_upgrades

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Volume,
};
use serde::{Deserialize, Serialize};

use super::context::{Images, RenderContext};
use super::meta;
use super::object::DesiredObject;
use super::postgres::DATABASE_ROOT_PASSWORD;
use super::workload::{self, env, env_from_secret, mount, port, service_port};
use crate::api::ComponentKind;

/// Annotation on the upgrade Job naming the volume it migrates from (the old database's PVC), so the clean-up
/// after a restart knows which volume to keep (or delete) once the temporary Deployment is gone.
pub const UPGRADE_FROM_ANNOTATION: &str = "quay-operator.rs/postgres-upgrade-from";
/// How often the upgrade Job's pod is retried before the Job fails (each failed attempt empties the new volume).
pub const UPGRADE_JOB_BACKOFF_LIMIT: i32 = 5;

/// One managed database the operator upgrades from one PostgreSQL major version to the next. The next major
/// upgrade is a change of this table (and of the default images), not new code.
#[derive(Debug)]
pub struct UpgradePath {
    pub component: ComponentKind,
    /// How messages name the database.
    pub display: &'static str,
    /// Suffix of the database Deployment, Service and ServiceAccount.
    pub deployment: &'static str,
    /// `quay-component` of the database's objects.
    pub label: &'static str,
    /// Suffix of the credentials Secret.
    pub credentials_secret: &'static str,
    pub old_major: u32,
    pub new_major: u32,
    /// The volume suffix of the current major is `<pvc_prefix><new_major>`.
    pub pvc_prefix: &'static str,
    /// Suffix of the upgrade Job.
    pub job: &'static str,
    /// Suffix of the temporary Deployment and Service serving the old data during the upgrade.
    pub old_server: &'static str,
    /// Suffixes of the Deployments that use the database (scaled to zero while it is upgraded).
    pub dependents: &'static [&'static str],
    /// The image of the current major.
    pub image: fn(&Images) -> &str,
    /// The image of the previous major (`RELATED_IMAGE_COMPONENT_*_PREVIOUS`).
    pub previous_image: fn(&Images) -> &str,
}

impl UpgradePath {
    /// Suffix of the database's volume at the current major (`quay-postgres-13`, `clair-postgres-15`).
    pub fn pvc(&self) -> String {
        format!("{}{}", self.pvc_prefix, self.new_major)
    }
}

/// Quay's database: PostgreSQL 10 → 13 (the PostgreSQL 10 volume of operators before 3.9 is `<reg>-quay-database`).
pub const QUAY_DATABASE: UpgradePath = UpgradePath {
    component: ComponentKind::Postgres,
    display: "Quay database",
    deployment: "quay-database",
    label: "postgres",
    credentials_secret: "postgres-config-secret",
    old_major: 10,
    new_major: 13,
    pvc_prefix: "quay-postgres-",
    job: "quay-postgres-upgrade",
    old_server: "quay-database-old",
    dependents: &["quay-app", "quay-mirror"],
    image: |i| &i.postgres,
    previous_image: |i| &i.postgres_previous,
};

/// Clair's database: PostgreSQL 13 (`<reg>-clair-postgres-13`) → 15.
pub const CLAIR_DATABASE: UpgradePath = UpgradePath {
    component: ComponentKind::ClairPostgres,
    display: "Clair database",
    deployment: "clair-postgres",
    label: "clair-postgres",
    credentials_secret: "clairpostgres-config-secret",
    old_major: 13,
    new_major: 15,
    pvc_prefix: "clair-postgres-",
    job: "clair-postgres-upgrade",
    old_server: "clair-postgres-old",
    dependents: &["clair-app"],
    image: |i| &i.clairpostgres,
    previous_image: |i| &i.clairpostgres_previous,
};

/// Every managed database's upgrade path.
pub const UPGRADE_PATHS: [&UpgradePath; 2] = [&QUAY_DATABASE, &CLAIR_DATABASE];

/// The upgrade path of a database component.
pub fn upgrade_path(component: ComponentKind) -> Option<&'static UpgradePath> {
    UPGRADE_PATHS.into_iter().find(|p| p.component == component)
}

/// A database upgrade in progress, as the controller observed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostgresUpgrade {
    pub component: ComponentKind,
    /// The image the database Deployment runs (the old major): the temporary server runs the very same one.
    pub old_image: String,
    /// The PVC the database Deployment mounts (the old data).
    pub old_claim: String,
    pub stage: UpgradeStage,
}

/// How far an upgrade got; each stage's objects include the previous stage's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum UpgradeStage {
    /// The database cannot be upgraded (the admin is told why): it keeps its image and volume, nothing else
    /// changes.
    Pin,
    /// The database and its users are scaled to zero; waiting for the database pods to be gone.
    StopDatabase,
    /// The old data is served by the temporary Deployment; waiting for it to be available.
    ServeOldData,
    /// The upgrade Job copies the data into the new volume (also while it failed: it is kept for inspection).
    Migrate,
    /// The Job succeeded: the database is rendered on the new image and volume as usual, its users stay at zero
    /// until it is available.
    SwitchOver,
}

/// The PostgreSQL major version an image is built for, from its repository's last path segment
/// (`postgresql-13-c9s`, `postgresql-10-centos7`, `rhel9/postgresql-15`); `None` when the name does not say.
pub fn image_major_version(image: &str) -> Option<u32> {
    let name = super::images::repository_basename(image);
    let rest = name.strip_prefix("postgresql-")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Changes a render for the upgrades in progress: the databases are held on their old image and volume at zero
/// replicas, their users are scaled to zero, and the temporary server and the upgrade Job are added.
pub fn render(ctx: &RenderContext<'_>, objects: &mut Vec<DesiredObject>) {
    for upgrade in &ctx.input.cluster.postgres_upgrades {
        let Some(path) = upgrade_path(upgrade.component) else {
            continue;
        };
        if !ctx.managed(path.component) {
            continue;
        }
        let database = ctx.object_name(path.deployment);
        let dependents: Vec<String> = path.dependents.iter().map(|d| ctx.object_name(d)).collect();
        let mut old_server = None;
        for object in objects.iter_mut() {
            let DesiredObject::Deployment(d) = object else {
                continue;
            };
            let name = d.metadata.name.clone().unwrap_or_default();
            if name == database {
                if upgrade.stage != UpgradeStage::SwitchOver {
                    hold_on_old_data(d, upgrade);
                }
                if matches!(
                    upgrade.stage,
                    UpgradeStage::ServeOldData | UpgradeStage::Migrate
                ) {
                    old_server = Some(old_server_deployment(ctx, path, upgrade, (**d).clone()));
                }
            } else if dependents.contains(&name)
                && upgrade.stage != UpgradeStage::Pin
                && let Some(spec) = d.spec.as_mut()
            {
                spec.replicas = Some(0);
            }
        }
        if path.component == ComponentKind::Postgres && upgrade.stage != UpgradeStage::Pin {
            // Quay's schema migration runs on the upgraded database, not on the one being copied.
            let migration = ctx.object_name("quay-app-upgrade");
            objects.retain(|o| !(matches!(o, DesiredObject::Job(_)) && o.name() == migration));
        }
        let Some(old_server) = old_server else {
            continue;
        };
        objects.push(DesiredObject::Service(workload::cluster_ip_service(
            meta::object_meta(ctx, path.old_server, path.old_server),
            meta::selector(ctx, path.old_server),
            vec![service_port(Some("postgres"), 5432, 5432)],
        )));
        objects.push(DesiredObject::Deployment(Box::new(old_server)));
        if upgrade.stage == UpgradeStage::Migrate {
            objects.push(DesiredObject::Job(Box::new(upgrade_job(
                ctx, path, upgrade,
            ))));
        }
    }
}

/// The database Deployment keeps the image and volume it has (so that whatever happens, nothing starts the new
/// major on an empty volume or the old one twice) and runs no pod.
fn hold_on_old_data(d: &mut k8s_openapi::api::apps::v1::Deployment, upgrade: &PostgresUpgrade) {
    let Some(spec) = d.spec.as_mut() else {
        return;
    };
    if upgrade.stage != UpgradeStage::Pin {
        spec.replicas = Some(0);
    }
    let Some(pod) = spec.template.spec.as_mut() else {
        return;
    };
    for c in &mut pod.containers {
        c.image = Some(upgrade.old_image.clone());
    }
    for v in pod.volumes.iter_mut().flatten() {
        if let Some(claim) = v.persistent_volume_claim.as_mut() {
            claim.claim_name = upgrade.old_claim.clone();
        }
    }
}

/// `<reg>-<db>-old`: the database Deployment as held (old image, old volume, same credentials), one replica,
/// under its own component label so that neither the database's Deployment nor its Service selects its pod.
fn old_server_deployment(
    ctx: &RenderContext<'_>,
    path: &UpgradePath,
    upgrade: &PostgresUpgrade,
    mut held: k8s_openapi::api::apps::v1::Deployment,
) -> k8s_openapi::api::apps::v1::Deployment {
    let selector = meta::selector(ctx, path.old_server);
    let mut metadata = meta::object_meta(ctx, path.old_server, path.old_server);
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            UPGRADE_FROM_ANNOTATION.to_owned(),
            upgrade.old_claim.clone(),
        );
    held.metadata = metadata;
    held.status = None;
    if let Some(spec) = held.spec.as_mut() {
        spec.replicas = Some(1);
        spec.selector.match_labels = Some(selector.clone());
        spec.template.metadata = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            labels: Some(selector),
            ..Default::default()
        });
    }
    held
}

/// `<reg>-<db>-postgres-upgrade`: the new major's image initialises the new volume by copying the old server's
/// data (the SCL images' `POSTGRESQL_MIGRATION_*` mode). A failed attempt empties the new volume so that the
/// next one starts clean; the old volume is only read.
fn upgrade_job(ctx: &RenderContext<'_>, path: &UpgradePath, upgrade: &PostgresUpgrade) -> Job {
    let credentials = ctx.object_name(path.credentials_secret);
    let mut metadata = meta::object_meta(ctx, path.job, path.job);
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(
            UPGRADE_FROM_ANNOTATION.to_owned(),
            upgrade.old_claim.clone(),
        );
    let script = "run-postgresql --version || { \
        echo 'PostgreSQL data migration failed; emptying the new volume for the next attempt'; \
        rm -rf /var/lib/pgsql/data/*; exit 1; }";
    let container = Container {
        command: Some(vec![
            "/bin/sh".to_owned(),
            "-c".to_owned(),
            script.to_owned(),
        ]),
        env: Some(vec![
            env(
                "POSTGRESQL_MIGRATION_REMOTE_HOST",
                &ctx.object_name(path.old_server),
            ),
            env_from_secret(
                "POSTGRESQL_MIGRATION_ADMIN_PASSWORD",
                &credentials,
                DATABASE_ROOT_PASSWORD,
            ),
        ]),
        ports: Some(vec![port(5432)]),
        resources: Some(workload::resources(("500m", "2Gi"), None)),
        volume_mounts: Some(vec![mount("postgres-data", "/var/lib/pgsql/data", None)]),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        ..workload::container(path.job, (path.image)(&ctx.images))
    };
    let mut pod = PodSpec {
        restart_policy: Some("OnFailure".to_owned()),
        service_account_name: Some(ctx.object_name(path.deployment)),
        containers: vec![container],
        volumes: Some(vec![Volume {
            name: "postgres-data".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: ctx.object_name(&path.pvc()),
                read_only: None,
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    if ctx.input.settings.skip_resource_requests {
        for c in &mut pod.containers {
            c.resources = None;
        }
    }
    workload::restrict_pod(&mut pod);
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(UPGRADE_JOB_BACKOFF_LIMIT),
            template: PodTemplateSpec {
                metadata: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                    labels: Some(meta::labels(ctx, &[(meta::QUAY_COMPONENT, path.job)])),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::{Fixture, deployment, object};

    fn upgrading(component: ComponentKind, stage: UpgradeStage) -> Fixture {
        let mut fixture = Fixture::new();
        let (image, claim) = match component {
            ComponentKind::Postgres => ("centos/postgresql-10-centos7:latest", "reg-quay-database"),
            _ => (
                "quay.io/sclorg/postgresql-13-c9s:latest",
                "reg-clair-postgres-13",
            ),
        };
        fixture.cluster.postgres_upgrades = vec![PostgresUpgrade {
            component,
            old_image: image.to_owned(),
            old_claim: claim.to_owned(),
            stage,
        }];
        fixture
    }

    fn replicas(rendered: &crate::render::Rendered, name: &str) -> Option<i32> {
        deployment(rendered, name).spec.unwrap().replicas
    }

    fn pod(rendered: &crate::render::Rendered, name: &str) -> PodSpec {
        deployment(rendered, name)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
    }

    fn job_pod(rendered: &crate::render::Rendered, name: &str) -> PodSpec {
        crate::render::testing::job(rendered, name)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
    }

    fn claims(pod: &PodSpec) -> Vec<String> {
        pod.volumes
            .iter()
            .flatten()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.clone())
            .collect()
    }

    #[test]
    fn major_version_is_read_from_the_repository_name() {
        assert_eq!(
            image_major_version("centos/postgresql-10-centos7:latest"),
            Some(10)
        );
        assert_eq!(
            image_major_version("registry.local:5000/sclorg/postgresql-13-c9s@sha256:abc"),
            Some(13)
        );
        assert_eq!(
            image_major_version("registry.redhat.io/rhel9/postgresql-15"),
            Some(15)
        );
        assert_eq!(image_major_version("docker.io/library/postgres:15"), None);
    }

    #[test]
    fn stopping_holds_the_database_on_its_old_image_and_volume_and_stops_its_users() {
        let rendered = upgrading(ComponentKind::Postgres, UpgradeStage::StopDatabase).render();
        let db = pod(&rendered, "reg-quay-database");
        assert_eq!(
            db.containers[0].image.as_deref(),
            Some("centos/postgresql-10-centos7:latest")
        );
        assert_eq!(claims(&db), ["reg-quay-database"]);
        assert_eq!(replicas(&rendered, "reg-quay-database"), Some(0));
        assert_eq!(replicas(&rendered, "reg-quay-app"), Some(0));
        assert_eq!(replicas(&rendered, "reg-quay-mirror"), Some(0));
        // Nothing serves the old volume while the database pod may still be on it.
        assert!(
            !rendered
                .objects
                .iter()
                .any(|o| o.name().starts_with("reg-quay-database-old")
                    || o.name() == "reg-quay-postgres-upgrade")
        );
        // The new volume is there for the Job; the Clair database is untouched.
        assert!(
            crate::render::testing::pvc(&rendered, "reg-quay-postgres-13")
                .spec
                .is_some()
        );
        assert_eq!(replicas(&rendered, "reg-clair-postgres"), Some(1));
        assert_ne!(replicas(&rendered, "reg-clair-app"), Some(0));
    }

    #[test]
    fn old_data_is_served_by_a_temporary_server_with_the_same_credentials() {
        let rendered = upgrading(ComponentKind::Postgres, UpgradeStage::ServeOldData).render();
        let old = deployment(&rendered, "reg-quay-database-old");
        let spec = old.spec.clone().unwrap();
        assert_eq!(spec.replicas, Some(1));
        let selector = spec.selector.match_labels.unwrap();
        assert_eq!(selector["quay-component"], "quay-database-old");
        let db_pod = pod(&rendered, "reg-quay-database");
        let old_pod = spec.template.spec.unwrap();
        assert_eq!(claims(&old_pod), ["reg-quay-database"]);
        assert_eq!(old_pod.containers[0].env, db_pod.containers[0].env);
        assert_eq!(old_pod.termination_grace_period_seconds, Some(600));
        let DesiredObject::Service(service) = object(&rendered, "Service", "reg-quay-database-old")
        else {
            unreachable!()
        };
        assert_eq!(
            service.spec.unwrap().selector.unwrap()["quay-component"],
            "quay-database-old"
        );
        assert!(
            !rendered
                .objects
                .iter()
                .any(|o| o.name() == "reg-quay-postgres-upgrade")
        );
    }

    #[test]
    fn upgrade_job_writes_the_new_volume_from_the_old_server() {
        let rendered = upgrading(ComponentKind::Postgres, UpgradeStage::Migrate).render();
        let job = job_pod(&rendered, "reg-quay-postgres-upgrade");
        let c = &job.containers[0];
        assert_eq!(
            c.image.as_deref(),
            Some(crate::render::images::DEFAULT_POSTGRES_IMAGE)
        );
        assert_eq!(claims(&job), ["reg-quay-postgres-13"]);
        let envs = c.env.clone().unwrap();
        let host = envs
            .iter()
            .find(|e| e.name == "POSTGRESQL_MIGRATION_REMOTE_HOST")
            .unwrap();
        assert_eq!(host.value.as_deref(), Some("reg-quay-database-old"));
        let password = envs
            .iter()
            .find(|e| e.name == "POSTGRESQL_MIGRATION_ADMIN_PASSWORD")
            .unwrap();
        // From the Secret, never inline.
        assert!(password.value.is_none());
        let key = password
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(key.name, "reg-postgres-config-secret");
        assert_eq!(key.key, DATABASE_ROOT_PASSWORD);
    }

    #[test]
    fn switch_over_renders_the_new_database_and_keeps_its_users_and_the_migration_waiting() {
        let mut fixture =
            upgrading(ComponentKind::Postgres, UpgradeStage::SwitchOver).migration_due();
        fixture.cluster.postgres_upgrades[0].stage = UpgradeStage::SwitchOver;
        let rendered = fixture.render();
        let db = pod(&rendered, "reg-quay-database");
        assert_eq!(
            db.containers[0].image.as_deref(),
            Some(crate::render::images::DEFAULT_POSTGRES_IMAGE)
        );
        assert_eq!(claims(&db), ["reg-quay-postgres-13"]);
        assert_eq!(replicas(&rendered, "reg-quay-database"), Some(1));
        assert_eq!(replicas(&rendered, "reg-quay-mirror"), Some(0));
        assert!(
            !rendered
                .objects
                .iter()
                .any(|o| o.name() == "reg-quay-app-upgrade"
                    || o.name().starts_with("reg-quay-database-old"))
        );
        // Without an upgrade the same registry renders its migration Job.
        let mut plain = fixture.clone();
        plain.cluster.postgres_upgrades.clear();
        assert!(
            plain
                .render()
                .objects
                .iter()
                .any(|o| o.name() == "reg-quay-app-upgrade")
        );
    }

    #[test]
    fn clair_upgrade_stops_clair_only() {
        let rendered = upgrading(ComponentKind::ClairPostgres, UpgradeStage::Migrate).render();
        assert_eq!(replicas(&rendered, "reg-clair-postgres"), Some(0));
        assert_eq!(replicas(&rendered, "reg-clair-app"), Some(0));
        assert_ne!(replicas(&rendered, "reg-quay-app"), Some(0));
        assert_eq!(
            claims(&pod(&rendered, "reg-clair-postgres-old")),
            ["reg-clair-postgres-13"]
        );
        let job = job_pod(&rendered, "reg-clair-postgres-upgrade");
        assert_eq!(claims(&job), ["reg-clair-postgres-15"]);
        assert_eq!(
            job.containers[0].image.as_deref(),
            Some(crate::render::images::DEFAULT_CLAIRPOSTGRES_IMAGE)
        );
    }

    #[test]
    fn upgrade_paths_name_the_volumes_the_databases_render() {
        assert_eq!(QUAY_DATABASE.pvc(), "quay-postgres-13");
        assert_eq!(CLAIR_DATABASE.pvc(), "clair-postgres-15");
        let images = crate::render::images::resolve(&Default::default());
        for path in UPGRADE_PATHS {
            assert_eq!(
                image_major_version((path.image)(&images)),
                Some(path.new_major)
            );
            assert_eq!(
                image_major_version((path.previous_image)(&images)),
                Some(path.old_major)
            );
        }
    }
}
