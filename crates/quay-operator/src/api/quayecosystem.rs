//! The legacy `QuayEcosystem` API (`redhatcop.redhat.io/v1alpha1`) of the Quay Operator before 3.4, served again
//! so that existing objects can be migrated to `QuayRegistry` (3.5 manual §5.5, 3.11 manual §12.4).
//!
//! Only the fields the migration reads are typed. Every object of the schema keeps unknown fields
//! (`x-kubernetes-preserve-unknown-fields`), so an existing QuayEcosystem with any of the many other legacy settings
//! (probes, resources, tolerations, config files, ...) is stored and served unchanged, never rejected or pruned.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the legacy resource.
pub const QUAY_ECOSYSTEM_GROUP: &str = "redhatcop.redhat.io";
/// Name of the legacy CRD (what discovery looks for).
pub const QUAY_ECOSYSTEM_CRD_NAME: &str = "quayecosystems.redhatcop.redhat.io";
/// Label a user puts on a QuayEcosystem to ask for its migration.
pub const MIGRATE_LABEL: &str = "quay-operator/migrate";
/// Label the operator puts on a QuayEcosystem once its QuayRegistry exists.
pub const MIGRATION_COMPLETE_LABEL: &str = "quay-operator/migration-complete";
/// Annotation on the QuayRegistry (and the other objects the migration creates) naming its QuayEcosystem.
pub const MIGRATED_FROM_ANNOTATION: &str = "quay-operator/migrated-from";

/// The legacy settings of a QuayEcosystem; only those the migration reads are typed. Read only by this operator:
/// migrated to a QuayRegistry of the same name when labelled `quay-operator/migrate: "true"`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "redhatcop.redhat.io",
    version = "v1alpha1",
    kind = "QuayEcosystem",
    plural = "quayecosystems",
    singular = "quayecosystem",
    namespaced,
    status = "QuayEcosystemStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "QuayEcosystem is the legacy (pre-3.4) Quay Operator resource, served so that existing objects can be migrated to QuayRegistry.",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[serde(rename_all = "camelCase")]
pub struct QuayEcosystemSpec {
    /// The Quay deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quay: Option<Quay>,
    /// The Redis deployment (managed by the legacy operator when `hostname` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<Redis>,
    /// The Clair deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clair: Option<Clair>,
}

/// The Quay part of a QuayEcosystem.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[serde(rename_all = "camelCase")]
pub struct Quay {
    /// Name of the Secret holding Quay's `config.yaml` and certificates (`quay-enterprise-config-secret` when
    /// empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_secret_name: Option<String>,
    /// Quay's database: managed by the legacy operator unless `server` names an external one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<Database>,
    /// Whether the repository mirroring workers run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_repo_mirroring: Option<bool>,
    /// How Quay is reached from outside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_access: Option<ExternalAccess>,
    /// The Quay image of the legacy deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Object storage backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_backends: Option<Vec<RegistryBackend>>,
    /// A persistent volume for local storage (the legacy operator's `local` backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_storage: Option<RegistryStorage>,
}

/// A database deployed by the legacy operator, or an external one (`server`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[serde(rename_all = "camelCase")]
pub struct Database {
    /// Secret with `database-username`, `database-password`, `database-name` and `database-root-password`
    /// (`<name>-quay-postgresql` when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_name: Option<String>,
    /// The database image of the legacy deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Host of an external database; empty when the legacy operator runs the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Size of the database volume; empty means an ephemeral database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<String>,
    /// StorageClass of the database volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
}

/// How Quay is exposed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[serde(rename_all = "camelCase")]
pub struct ExternalAccess {
    /// `Route`, `LoadBalancer`, `NodePort` or `Ingress`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Host name of the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// TLS of the external access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ExternalAccessTls>,
}

/// TLS settings of the external access.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[serde(rename_all = "camelCase")]
pub struct ExternalAccessTls {
    /// `passthrough` (the legacy default), `edge`, `reencrypt` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<String>,
    /// Secret with the certificate and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// One object storage backend; exactly one of the kinds is normally set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[serde(rename_all = "camelCase")]
pub struct RegistryBackend {
    /// Name of the storage location.
    #[serde(default)]
    pub name: String,
    /// Local (volume) storage; present as an object when selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<BackendSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<BackendSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google_cloud: Option<BackendSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<BackendSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rados: Option<BackendSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhocs: Option<BackendSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swift: Option<BackendSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudfront_s3: Option<BackendSource>,
}

impl RegistryBackend {
    /// Whether the backend stores blobs on a local volume.
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }
}

/// Settings of a storage backend. The migration only needs to know which kind is set; the values themselves are
/// already in Quay's `config.yaml`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
pub struct BackendSource {}

/// A volume for local blob storage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[serde(rename_all = "camelCase")]
pub struct RegistryStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_size: Option<String>,
}

/// The legacy Redis part.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[serde(rename_all = "camelCase")]
pub struct Redis {
    /// Host of an external Redis; empty when the legacy operator runs Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// The legacy Clair part.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[serde(rename_all = "camelCase")]
pub struct Clair {
    /// Whether the legacy operator ran Clair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Observed state of a QuayEcosystem: the legacy fields, and the migration's failure conditions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[schemars(extend("x-kubernetes-preserve-unknown-fields" = true))]
#[serde(rename_all = "camelCase")]
pub struct QuayEcosystemStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_complete: Option<bool>,
    /// Conditions; the migration writes `QuayEcosystemConfigMigrationFailure`,
    /// `QuayEcosystemComponentMigrationFailure` and `QuayEcosystemMigrationFailure`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<QuayEcosystemCondition>>,
}

/// A condition in the legacy shape (the legacy operator wrote `null` times, so both are optional).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuayEcosystemCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("nullable" = true))]
    pub last_update_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("nullable" = true))]
    pub last_transition_time: Option<String>,
}

impl QuayEcosystem {
    /// Whether the user asked for the migration.
    pub fn migration_requested(&self) -> bool {
        label_is_true(self, MIGRATE_LABEL)
    }

    /// Whether the migration finished earlier.
    pub fn migration_complete(&self) -> bool {
        label_is_true(self, MIGRATION_COMPLETE_LABEL)
    }
}

fn label_is_true(eco: &QuayEcosystem, label: &str) -> bool {
    eco.metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(label))
        .map(String::as_str)
        == Some("true")
}

/// The QuayEcosystem CustomResourceDefinition, as YAML (`quay-operator crd --quayecosystem`,
/// `deploy/quayecosystem-crd.yaml`).
pub fn quay_ecosystem_crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = QuayEcosystem::crd();
    let mut out =
        String::from("# Generated by `quay-operator crd --quayecosystem`; do not edit by hand.\n");
    out.push_str(&serde_saphyr::to_string(&crd).expect("a CRD always serializes"));
    out
}
