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
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, SeccompProfile, Secret, SecretKeySelector, SecurityContext, Volume,
    VolumeMount, VolumeResourceRequirements,
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
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                add: None,
            }),
            ..Default::default()
        }),
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
                    // The "restricted" Pod Security profile, like every workload the operator renders.
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".to_owned(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::quayecosystem::QuayEcosystem;
    use crate::config::{ConfigBundle, ManagedKeys};
    use crate::ecosystem::plan_migration;
    use crate::render::{ClusterFacts, DesiredObject, OperatorSettings, RenderInput};
    use k8s_openapi::api::apps::v1::DeploymentStatus;
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};
    use rand::SeedableRng;
    use serde_json::json;

    const CONFIG: &str = "SERVER_HOSTNAME: quay.example.com\n\
DISTRIBUTED_STORAGE_CONFIG:\n  s3: [S3Storage, {s3_bucket: b, storage_path: /r, host: s3.example.com, s3_access_key: a, s3_secret_key: s}]\n\
DISTRIBUTED_STORAGE_PREFERENCE: [s3]\n";

    fn plan() -> MigrationPlan {
        use base64::Engine;
        let eco: QuayEcosystem = serde_json::from_value(json!({
            "metadata": {"name": "eco", "namespace": "quay", "uid": "u-1"},
            "spec": {"quay": {"database": {"volumeSize": "12Gi", "storageClass": "fast"},
                              "registryBackends": [{"name": "s3", "s3": {}}],
                              "externalAccess": {"type": "Route"}},
                     "redis": {}, "clair": {"enabled": false}},
        }))
        .unwrap();
        let secret: Secret = serde_json::from_value(json!({
            "data": {"config.yaml": base64::engine::general_purpose::STANDARD.encode(CONFIG)},
        }))
        .unwrap();
        plan_migration(&eco, Some(&secret)).unwrap()
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "redhatcop.redhat.io/v1alpha1".to_owned(),
            kind: "QuayEcosystem".to_owned(),
            name: "eco".to_owned(),
            uid: "u-1".to_owned(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// The copy fills the very volume the QuayRegistry's managed database mounts, with the spec the render asks
    /// for (so the registry's apply adopts it instead of being refused an immutable change).
    #[test]
    fn the_copied_volume_is_the_one_the_registry_renders() {
        let plan = plan();
        let db = plan.database.clone().unwrap();
        let registry = quay_registry(&plan);
        let bundle = ConfigBundle::new(plan.bundle.clone());
        let mut keys = ManagedKeys::default();
        keys.complete_with("eco", &mut rand::rngs::StdRng::seed_from_u64(0));
        let cluster = ClusterFacts {
            routes: true,
            cluster_hostname: Some("apps.example.com".to_owned()),
            ..Default::default()
        };
        let settings = OperatorSettings::from_env(|_| None);
        let rendered = crate::render::render(&RenderInput {
            registry: &registry,
            bundle: &bundle,
            managed_keys: &keys,
            cluster: &cluster,
            settings: &settings,
            now: std::time::SystemTime::now(),
        })
        .unwrap();
        let pvc_name = new_database_pvc_name("eco");
        let rendered_pvc = rendered
            .objects
            .iter()
            .find_map(|o| match o {
                DesiredObject::PersistentVolumeClaim(p)
                    if p.metadata.name.as_deref() == Some(pvc_name.as_str()) =>
                {
                    Some(p.clone())
                }
                _ => None,
            })
            .expect("the registry renders the migrated volume");
        let ours = database_pvc(&plan, &db);
        let spec = |p: &PersistentVolumeClaim| {
            let s = p.spec.clone().unwrap();
            (s.access_modes, s.storage_class_name, s.resources)
        };
        assert_eq!(spec(&rendered_pvc), spec(&ours));
        // And the registry's database Deployment mounts it.
        let database = rendered
            .objects
            .iter()
            .find(|o| o.name() == "eco-quay-database" && matches!(o, DesiredObject::Deployment(_)))
            .expect("managed database");
        assert!(database.to_json().to_string().contains(&pvc_name));
    }

    #[test]
    fn the_copy_job_reads_the_legacy_credentials_by_reference_and_runs_restricted() {
        let plan = plan();
        let db = plan.database.clone().unwrap();
        let job = migration_job(
            &plan,
            &db,
            "quay.io/sclorg/postgresql-13-c9s:latest",
            owner(),
        );
        let json = serde_json::to_value(&job).unwrap();
        let pod = &json["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let container = &pod["containers"][0];
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        let env = container["env"].as_array().unwrap();
        let by_name = |n: &str| env.iter().find(|e| e["name"] == n).unwrap().clone();
        assert_eq!(
            by_name("POSTGRESQL_MIGRATION_REMOTE_HOST")["value"],
            "eco-quay-postgresql"
        );
        assert_eq!(
            by_name("POSTGRESQL_MIGRATION_ADMIN_PASSWORD")["valueFrom"]["secretKeyRef"],
            json!({"name": "eco-quay-postgresql", "key": "database-root-password", "optional": false})
        );
        assert_eq!(by_name("NEW_DATABASE_NAME")["value"], "eco-quay-database");
        assert_eq!(
            json["metadata"]["ownerReferences"][0]["kind"],
            "QuayEcosystem"
        );
        assert_eq!(
            json["metadata"]["labels"]["quay-operator/quayecosystem"],
            "eco"
        );
        // The script restarts an interrupted copy from scratch and never touches a finished one.
        let script = container["command"][2].as_str().unwrap();
        let done = script.find(COPY_DONE_MARKER).unwrap();
        let wipe = script.find("rm -rf").unwrap();
        assert!(done < wipe, "{script}");
        assert!(script.ends_with("exec run-postgresql\n"), "{script}");
    }

    #[test]
    fn the_legacy_database_is_changed_once() {
        let plan = plan();
        let db = plan.database.clone().unwrap();
        let legacy: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "eco-quay-postgresql", "labels": {"app": "quay-postgresql"}},
            "spec": {"selector": {}, "strategy": {"type": "RollingUpdate"},
                     "template": {"spec": {"containers": [{"name": "postgresql",
                         "env": [{"name": "POSTGRESQL_USER", "value": "quay"}]}]}}},
        }))
        .unwrap();
        let updated = old_database_with_admin_password(&legacy, &db, "eco").expect("a change");
        let json = serde_json::to_value(&updated).unwrap();
        assert_eq!(json["spec"]["strategy"], json!({"type": "Recreate"}));
        let env = &json["spec"]["template"]["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["name"], "POSTGRESQL_USER");
        assert_eq!(
            env[1]["valueFrom"]["secretKeyRef"]["key"],
            "database-root-password"
        );
        assert_eq!(json["metadata"]["labels"]["app"], "quay-postgresql");
        assert_eq!(old_database_with_admin_password(&updated, &db, "eco"), None);
    }

    #[test]
    fn job_outcome_and_rollout_are_read_from_status() {
        let mut job = Job::default();
        assert_eq!(job_outcome(&job), JobOutcome::Running);
        let condition = |type_: &str, message: &str| JobCondition {
            type_: type_.to_owned(),
            status: "True".to_owned(),
            message: Some(message.to_owned()),
            ..Default::default()
        };
        job.status = Some(JobStatus {
            conditions: Some(vec![condition("Failed", "BackoffLimitExceeded")]),
            ..Default::default()
        });
        assert_eq!(
            job_outcome(&job),
            JobOutcome::Failed("BackoffLimitExceeded".to_owned())
        );
        job.status = Some(JobStatus {
            conditions: Some(vec![condition("Complete", "done")]),
            ..Default::default()
        });
        assert_eq!(job_outcome(&job), JobOutcome::Succeeded);

        let mut deployment = Deployment::default();
        deployment.metadata.generation = Some(2);
        assert!(!rolled_out(&deployment));
        deployment.status = Some(DeploymentStatus {
            observed_generation: Some(1),
            updated_replicas: Some(1),
            available_replicas: Some(1),
            ..Default::default()
        });
        assert!(
            !rolled_out(&deployment),
            "status of the previous generation"
        );
        deployment.status.as_mut().unwrap().observed_generation = Some(2);
        assert!(rolled_out(&deployment));
    }

    #[test]
    fn bundle_and_registry_are_not_owned_by_the_quayecosystem() {
        let plan = plan();
        let bundle = bundle_secret(&plan);
        assert!(bundle.metadata.owner_references.is_none());
        assert_eq!(
            bundle.metadata.labels.as_ref().unwrap()[CONFIG_BUNDLE_LABEL],
            "true"
        );
        let registry = quay_registry(&plan);
        assert!(registry.metadata.owner_references.is_none());
        assert_eq!(
            registry.metadata.annotations.as_ref().unwrap()[MIGRATED_FROM_ANNOTATION],
            "eco"
        );
        assert_eq!(
            registry.spec.config_bundle_secret.as_deref(),
            Some("eco-config-bundle-migrated")
        );
    }
}
