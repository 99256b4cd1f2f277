//! The `QuayRegistry` API (`quay.redhat.com/v1`), schema-compatible with the upstream Go operator's CRD.
//!
//! The CRD YAML checked in under `deploy/` is generated from these types (`quay-operator crd`); a test keeps the
//! two in sync. Extra status fields (`components`, `configBundleSecret`) are additions: they are where this operator
//! reports what upstream used to write back into `spec`.

mod component;
mod external;
pub mod quayecosystem;

pub use component::{ComponentKind, ParseComponentKindError};
pub use external::*;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, SecurityContext};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the QuayRegistry resource.
pub const GROUP: &str = "quay.redhat.com";
/// API version of the QuayRegistry resource.
pub const VERSION: &str = "v1";
/// `apiVersion` string used in owner references.
pub const API_VERSION: &str = "quay.redhat.com/v1";
/// Label put on every object rendered for a registry (also in selectors).
pub const REGISTRY_LABEL: &str = "quay-operator/quayregistry";
/// Finalizer added once a registry reconciled successfully.
pub const FINALIZER: &str = "quay-operator/finalizer";
/// Server-side apply field manager; the same as upstream so a take-over releases no field.
pub const FIELD_MANAGER: &str = "quay-operator";
/// Annotation carrying the hash of an external (`secretRef`) TLS Secret.
pub const TLS_SECRET_HASH_ANNOTATION: &str = "quay.redhat.com/tls-secret-hash";
/// Label the operator puts on external TLS Secrets so a label-scoped watch sees them.
pub const TLS_SECRET_LABEL: &str = "quay.redhat.com/tls-secret";

/// A Red Hat Quay container registry and the components the operator runs for it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "quay.redhat.com",
    version = "v1",
    kind = "QuayRegistry",
    plural = "quayregistries",
    singular = "quayregistry",
    namespaced,
    status = "QuayRegistryStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "QuayRegistry is the Schema for the quayregistries API: one Quay container registry and the components the operator deploys for it.",
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".status.currentVersion"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.registryEndpoint"}"#,
    printcolumn = r#"{"name":"Available","type":"string","jsonPath":".status.conditions[?(@.type==\"Available\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct QuayRegistrySpec {
    /// Name of a Secret in the same namespace holding the Quay config bundle: `config.yaml` plus certificates
    /// (`ssl.cert`, `ssl.key`, `extra_ca_cert_*`) and other files (`clair-config.yaml`, ...). When empty the
    /// operator creates a bundle with base defaults and reports its name in `status.configBundleSecret`;
    /// it never writes into `spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_bundle_secret: Option<String>,
    /// The registry's components and whether the operator manages them. Kinds not listed are defaulted
    /// (see `status.components` for the effective list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<Component>>,
}

/// One component of the registry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.managed || !has(self.overrides)").message("cannot set overrides on unmanaged component"),
    validation = Rule::new("!self.managed || !has(self.secretRef)").message("secretRef cannot be set on a managed component"),
    validation = Rule::new("!has(self.secretRef) || self.secretRef.name.size() != 0").message("secretRef.name must not be empty"),
)]
pub struct Component {
    /// Kind of the component: quay, postgres, clair, clairpostgres, redis, horizontalpodautoscaler,
    /// objectstorage, route, mirror, monitoring or tls.
    pub kind: ComponentKind,
    /// Whether the operator deploys and manages this component. An unmanaged component is configured by
    /// the user in the config bundle.
    pub managed: bool,
    /// Overrides of the rendered workloads of a managed component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overrides: Option<Override>,
    /// For the unmanaged `tls` component only: a `kubernetes.io/tls` Secret in the registry's namespace whose
    /// `tls.crt` and `tls.key` are served by Quay. Mutually exclusive with `ssl.cert`/`ssl.key` in the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretReference>,
}

impl Component {
    /// A component entry with no overrides.
    pub fn new(kind: ComponentKind, managed: bool) -> Self {
        Self {
            kind,
            managed,
            overrides: None,
            secret_ref: None,
        }
    }
}

/// Reference to a Secret in the registry's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct SecretReference {
    /// Name of the Secret.
    pub name: String,
}

/// Overrides of a managed component's rendered objects.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Override {
    /// Size of the component's volume (postgres and clairpostgres PVCs, clair's scratch volume). A PVC can
    /// grow but never shrink below its current size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<Quantity>,
    /// StorageClass of the component's volume (postgres, clairpostgres, clair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Environment variables set (or replaced, by name) in the component's containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<EnvVar>>,
    /// Replica count of the component's Deployment (quay, clair, mirror). `0` scales it down, for example
    /// for a backup. Only `0` is allowed while the horizontalpodautoscaler component is managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    // The maximum is stated because API servers before 1.36 do not enforce `format: int32`: a larger number
    // would be stored, and no client could read the registry back.
    #[schemars(range(min = 0, max = 2147483647), extend("nullable" = true))]
    pub replicas: Option<i32>,
    /// Pod affinity of the component's Deployment; replaces the default anti-affinity (quay, clair, mirror).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Labels added to the component's Deployment and pods (Routes for the route component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations added to the component's Deployment and pods (Routes for the route component).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Compute resources of the component's main container; replaces the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Security context of the component's containers (quay and mirror).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
}

impl Override {
    /// Upstream's notion of "has an override": labels and annotations do not count.
    pub fn has_workload_override(&self) -> bool {
        self.affinity.is_some()
            || self.volume_size.is_some()
            || self.storage_class_name.is_some()
            || self.env.as_ref().is_some_and(|e| !e.is_empty())
            || self.replicas.is_some()
            || self.resources.is_some()
            || self.security_context.is_some()
    }
}

/// Compute resource requests and limits.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct Resources {
    /// Maximum amount of compute resources allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<BTreeMap<String, Quantity>>,
    /// Minimum amount of compute resources required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<BTreeMap<String, Quantity>>,
}

/// Observed state of a QuayRegistry.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuayRegistryStatus {
    /// Quay version whose database migrations completed for this registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// External URL of the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_endpoint: Option<String>,
    /// Time of the last condition change written by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
    /// Conditions: Available, RolloutBlocked, ComponentsCreated and one Component*Ready per component.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
    /// `metadata.generation` of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The effective component list: the spec's components plus the defaulted ones (the operator never
    /// writes defaults into `spec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components: Option<Vec<ComponentStatus>>,
    /// Name of the config bundle Secret in use; the operator-created one when `spec.configBundleSecret` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_bundle_secret: Option<String>,
    /// Deprecated (Quay 3.5 config editor, removed upstream); kept so old clients and manifests still validate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_editor_endpoint: Option<String>,
    /// Deprecated (Quay 3.5 config editor, removed upstream); kept so old clients and manifests still validate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_editor_credentials_secret: Option<String>,
}

/// An effective component: its kind, whether it is managed, and whether the operator chose that (defaulted).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// Kind of the component.
    pub kind: ComponentKind,
    /// Whether the operator manages it.
    pub managed: bool,
    /// True when the kind was absent from `spec.components` and the operator chose `managed`.
    #[serde(default)]
    pub defaulted: bool,
}

/// A status condition, in the upstream operator's shape (with `lastUpdateTime`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition, e.g. `Available` or `ComponentQuayReady`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason for the condition's last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Last time the condition was written with a change of reason or message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// Last time the condition's status changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

impl QuayRegistry {
    /// The component entry the user declared for `kind`, if any (first one wins, as upstream).
    pub fn declared_component(&self, kind: ComponentKind) -> Option<&Component> {
        self.spec
            .components
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|c| c.kind == kind)
    }
}

/// The CustomResourceDefinition of QuayRegistry, as YAML (what `quay-operator crd` prints and `deploy/` holds).
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    let crd = QuayRegistry::crd();
    let mut out = String::from("# Generated by `quay-operator crd`; do not edit by hand.\n");
    out.push_str(&serde_saphyr::to_string(&crd).expect("a CRD always serializes"));
    out
}
