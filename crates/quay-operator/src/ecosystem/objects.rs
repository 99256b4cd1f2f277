//! The objects a migration creates or changes, built from a [`MigrationPlan`]. Pure: the controller applies them.
//!
//! Ownership is chosen so that deleting the QuayEcosystem afterwards (the manual's last step) cannot take the new
//! registry's data with it: the bundle and the new database volume are owned by nobody (the QuayRegistry's own
//! reconcile adopts the volume); only the finished copy Job is owned by the QuayEcosystem.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStrategy};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec, Secret,
    SecretKeySelector, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::mapping::{
    CREDENTIALS_NAME, CREDENTIALS_ROOT_PASSWORD, CREDENTIALS_USERNAME, ManagedDatabase,
    MigrationPlan,
};
use super::{
    ECOSYSTEM_LABEL, MIGRATION_COMPONENT_LABEL, bundle_secret_name, migration_job_name,
    new_database_name, new_database_pvc_name, old_database_name,
};
use crate::api::quayecosystem::MIGRATED_FROM_ANNOTATION;
use crate::api::{QuayRegistry, QuayRegistrySpec};
use crate::controller::reconcile::CONFIG_BUNDLE_LABEL;

/// Where the copy Job's volume is mounted (the PostgreSQL image's data directory).
const DATA_DIR: &str = "/var/lib/pgsql/data";
/// The PostgreSQL image sources `*.sh` files of this directory once its server is up (start hooks).
const START_HOOKS_DIR: &str = "/opt/app-root/src/postgresql-start";
/// Written on the new volume once the copy finished: a Job pod that starts again after that does nothing, and
/// one that finds data without it starts the copy again from an empty directory.
pub const COPY_DONE_MARKER: &str = "quay-ecosystem-migration-complete";
/// Admin password variable the legacy database is restarted with, so the copy can read every database.
pub const ADMIN_PASSWORD_ENV: &str = "POSTGRESQL_ADMIN_PASSWORD";

fn meta(plan: &MigrationPlan, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(plan.namespace.clone()),
        labels: Some(BTreeMap::from([(
            ECOSYSTEM_LABEL.to_owned(),
            plan.name.clone(),
        )])),
        annotations: Some(BTreeMap::from([(
            MIGRATED_FROM_ANNOTATION.to_owned(),
            plan.name.clone(),
        )])),
        ..Default::default()
    }
}

/// The new config bundle, labelled so the QuayRegistry's controller watches it without writing to it.
pub fn bundle_secret(plan: &MigrationPlan) -> Secret {
    let mut metadata = meta(plan, bundle_secret_name(&plan.name));
    metadata
        .labels
        .get_or_insert_default()
        .insert(CONFIG_BUNDLE_LABEL.to_owned(), "true".to_owned());
    Secret {
        metadata,
        type_: Some("Opaque".to_owned()),
        data: Some(
            plan.bundle
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.clone())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// The QuayRegistry of the same name, pointing at the new bundle.
pub fn quay_registry(plan: &MigrationPlan) -> QuayRegistry {
    let mut metadata = meta(plan, plan.name.clone());
    metadata.labels = None;
    QuayRegistry {
        metadata,
        spec: QuayRegistrySpec {
            config_bundle_secret: Some(bundle_secret_name(&plan.name)),
            components: Some(plan.components.clone()),
        },
        status: None,
    }
}

/// The new database volume, with the PVC spec the QuayRegistry's render asks for (so that its apply adopts it).
pub fn database_pvc(plan: &MigrationPlan, db: &ManagedDatabase) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: meta(plan, new_database_pvc_name(&plan.name)),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: db.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(db.volume_size.clone()),
                )])),
                limits: None,
            }),
            ..Default::default()
        }),
        status: None,
    }
}

/// The copy, run by the PostgreSQL image's own migration mode: a fresh data directory on the new volume is filled
/// with `pg_dumpall` of the legacy database, then a start hook renames the legacy role and database to the names
/// the QuayRegistry's database uses, stops the server cleanly and marks the volume done.
///
/// A Job rather than upstream's Deployment: it ends, its success or failure is a condition the operator waits
/// for by watching, and a failed pod is retried by Kubernetes with a bounded backoff.
pub fn migration_job(
    plan: &MigrationPlan,
    db: &ManagedDatabase,
    image: &str,
    owner: OwnerReference,
) -> Job {
    let mut metadata = meta(plan, migration_job_name(&plan.name));
    metadata
        .labels
        .get_or_insert_default()
        .insert(MIGRATION_COMPONENT_LABEL.to_owned(), "postgres".to_owned());
    metadata.owner_references = Some(vec![owner]);
    let from_credentials = |name: &str, key: &str| EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: db.credentials_secret.clone(),
                key: key.to_owned(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
    };
    let value = |name: &str, value: String| EnvVar {
        name: name.to_owned(),
        value: Some(value),
        value_from: None,
    };
    let container = Container {
        name: "postgres-migration".to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: Some("IfNotPresent".to_owned()),
        command: Some(vec!["/bin/bash".to_owned(), "-c".to_owned(), copy_script()]),
        env: Some(vec![
            value(
                "POSTGRESQL_MIGRATION_REMOTE_HOST",
                old_database_name(&plan.name),
            ),
            from_credentials(
                "POSTGRESQL_MIGRATION_ADMIN_PASSWORD",
                CREDENTIALS_ROOT_PASSWORD,
            ),
            from_credentials("OLD_DATABASE_USER", CREDENTIALS_USERNAME),
            from_credentials("OLD_DATABASE_NAME", CREDENTIALS_NAME),
            value("NEW_DATABASE_NAME", new_database_name(&plan.name)),
        ]),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".to_owned(),
                mount_path: DATA_DIR.to_owned(),
                ..Default::default()
            },
            VolumeMount {
                name: "start-hooks".to_owned(),
                mount_path: START_HOOKS_DIR.to_owned(),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let labels = metadata.labels.clone();
    Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(3),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels,
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_owned()),
                    containers: vec![container],
                    volumes: Some(vec![
                        Volume {
                            name: "data".to_owned(),
                            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                claim_name: new_database_pvc_name(&plan.name),
                                read_only: None,
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "start-hooks".to_owned(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The Job's shell script. Only the new volume is ever cleared, and only while it holds no finished copy.
fn copy_script() -> String {
    format!(
        r#"set -euo pipefail
if [ -e "{DATA_DIR}/{COPY_DONE_MARKER}" ]; then
  echo "the data was copied by an earlier run"; exit 0
fi
# A run interrupted earlier left a partial copy on this new volume: start again from an empty directory.
rm -rf "{DATA_DIR}/userdata"
cat > "{START_HOOKS_DIR}/zz-quay-ecosystem-migration.sh" <<'HOOK'
rename() {{
  if [ "$1" != "$NEW_DATABASE_NAME" ]; then
    psql -v ON_ERROR_STOP=1 -d postgres -c "ALTER $2 \"$1\" RENAME TO \"$NEW_DATABASE_NAME\""
  fi
}}
rename "$OLD_DATABASE_NAME" DATABASE
rename "$OLD_DATABASE_USER" ROLE
pg_ctl stop -m fast -w
touch "{DATA_DIR}/{COPY_DONE_MARKER}"
exit 0
HOOK
exec run-postgresql
"#
    )
}

/// The legacy database Deployment with the admin password the copy logs in with (from the legacy credentials
/// Secret, by reference) and the Recreate strategy its single volume needs. `None` when it already has both (and
/// our label, which lets the migration watch its rollout).
pub fn old_database_with_admin_password(
    deployment: &Deployment,
    db: &ManagedDatabase,
    ecosystem: &str,
) -> Option<Deployment> {
    let mut updated = deployment.clone();
    let labels = updated.metadata.labels.get_or_insert_default();
    if labels.get(ECOSYSTEM_LABEL).map(String::as_str) != Some(ecosystem) {
        labels.insert(ECOSYSTEM_LABEL.to_owned(), ecosystem.to_owned());
    }
    let spec = updated.spec.get_or_insert_default();
    if spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) != Some("Recreate") {
        spec.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".to_owned()),
            rolling_update: None,
        });
    }
    if let Some(container) = spec
        .template
        .spec
        .as_mut()
        .and_then(|p| p.containers.first_mut())
    {
        let env = container.env.get_or_insert_default();
        if !env.iter().any(|e| e.name == ADMIN_PASSWORD_ENV) {
            env.push(EnvVar {
                name: ADMIN_PASSWORD_ENV.to_owned(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: db.credentials_secret.clone(),
                        key: CREDENTIALS_ROOT_PASSWORD.to_owned(),
                        optional: None,
                    }),
                    ..Default::default()
                }),
            });
        }
    }
    (updated != *deployment).then_some(updated)
}

/// Whether a Deployment finished rolling out its current spec with every replica available.
pub fn rolled_out(deployment: &Deployment) -> bool {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let Some(status) = &deployment.status else {
        return false;
    };
    status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) >= wanted
        && status.available_replicas.unwrap_or(0) >= wanted
}

/// How a Job ended, from its conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    Running,
    Succeeded,
    /// Failed, with the Job's message.
    Failed(String),
}

pub fn job_outcome(job: &Job) -> JobOutcome {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let holds = |type_: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == type_ && c.status == "True")
    };
    if holds("Complete").is_some() {
        JobOutcome::Succeeded
    } else if let Some(failed) = holds("Failed") {
        JobOutcome::Failed(
            failed
                .message
                .clone()
                .or_else(|| failed.reason.clone())
                .unwrap_or_else(|| "failed".to_owned()),
        )
    } else {
        JobOutcome::Running
    }
}
