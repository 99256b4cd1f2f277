//! The resource registry: which group/version/plural the simulator serves, with the facts
//! discovery, the handlers and the write pipeline need (scope, kind, subresources, generation
//! policy, CRD schema). Built-ins are listed here; CRD-backed kinds are added by `crd.rs`.

use serde_json::Value;
use std::collections::BTreeMap;

/// When `metadata.generation` bumps on update (spec §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenerationPolicy {
    /// The type does not use generation (ConfigMap, Secret, ...).
    None,
    /// Bump when `spec` changes (Job, PVC...).
    Spec,
    /// Bump when `spec` or `metadata.annotations` change (Deployment).
    SpecAndAnnotations,
    /// Custom resources: everything outside `metadata` (and `status` when it is a subresource).
    NonMetadata,
}

#[derive(Debug, Clone)]
pub struct ResourceDef {
    pub group: String,
    /// Served versions, storage/preferred first.
    pub versions: Vec<String>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status_subresource: bool,
    pub scale_subresource: bool,
    pub generation: GenerationPolicy,
    /// Set for custom resources: the CRD's name and, per version, its openAPIV3Schema.
    pub crd: Option<CrdInfo>,
    /// Registry returns the deleted object instead of a Status (Pods, Services) — apiserver `ReturnDeletedObject`.
    pub return_deleted_object: bool,
}

#[derive(Debug, Clone)]
pub struct CrdInfo {
    pub crd_name: String,
    /// Shared: resource definitions are copied on every lookup, and a schema can be large.
    pub schemas: std::sync::Arc<BTreeMap<String, Value>>,
}

impl ResourceDef {
    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }
    pub fn storage_version(&self) -> &str {
        &self.versions[0]
    }
    /// The schema for a version (custom resources only).
    pub fn schema(&self, version: &str) -> Option<&Value> {
        self.crd
            .as_ref()
            .and_then(|c| c.schemas.get(version).or_else(|| c.schemas.values().next()))
    }
    /// `<plural>[.<group>]`, how errors name the resource.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
    pub fn verbs(&self) -> Vec<&'static str> {
        vec![
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ]
    }
}

#[allow(clippy::too_many_arguments)]
fn def(
    group: &str,
    version: &str,
    plural: &str,
    singular: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    status: bool,
    generation: GenerationPolicy,
) -> ResourceDef {
    ResourceDef {
        group: group.into(),
        versions: vec![version.into()],
        plural: plural.into(),
        singular: singular.into(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: vec![],
        status_subresource: status,
        scale_subresource: false,
        generation,
        crd: None,
        return_deleted_object: false,
    }
}

/// Built-in kinds the simulator serves (spec task list).
pub fn builtins() -> Vec<ResourceDef> {
    use GenerationPolicy::*;
    let mut v = vec![
        def(
            "",
            "v1",
            "namespaces",
            "namespace",
            "Namespace",
            false,
            &["ns"],
            true,
            None,
        ),
        def(
            "",
            "v1",
            "secrets",
            "secret",
            "Secret",
            true,
            &[],
            false,
            None,
        ),
        def(
            "",
            "v1",
            "configmaps",
            "configmap",
            "ConfigMap",
            true,
            &["cm"],
            false,
            None,
        ),
        def(
            "",
            "v1",
            "services",
            "service",
            "Service",
            true,
            &["svc"],
            true,
            None,
        ),
        def(
            "",
            "v1",
            "serviceaccounts",
            "serviceaccount",
            "ServiceAccount",
            true,
            &["sa"],
            false,
            None,
        ),
        def(
            "",
            "v1",
            "persistentvolumeclaims",
            "persistentvolumeclaim",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            true,
            None,
        ),
        def("", "v1", "pods", "pod", "Pod", true, &["po"], true, None),
        def(
            "",
            "v1",
            "events",
            "event",
            "Event",
            true,
            &["ev"],
            false,
            None,
        ),
        // kube-runtime's event Recorder writes events.k8s.io/v1 (a separate bucket here; a
        // real apiserver stores both APIs in one).
        def(
            "events.k8s.io",
            "v1",
            "events",
            "event",
            "Event",
            true,
            &["ev"],
            false,
            None,
        ),
        def(
            "apps",
            "v1",
            "deployments",
            "deployment",
            "Deployment",
            true,
            &["deploy"],
            true,
            SpecAndAnnotations,
        ),
        def(
            "apps",
            "v1",
            "replicasets",
            "replicaset",
            "ReplicaSet",
            true,
            &["rs"],
            true,
            Spec,
        ),
        def("batch", "v1", "jobs", "job", "Job", true, &[], true, Spec),
        def(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "horizontalpodautoscaler",
            "HorizontalPodAutoscaler",
            true,
            &["hpa"],
            true,
            None,
        ),
        def(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "role",
            "Role",
            true,
            &[],
            false,
            None,
        ),
        def(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "rolebinding",
            "RoleBinding",
            true,
            &[],
            false,
            None,
        ),
        def(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "clusterrole",
            "ClusterRole",
            false,
            &[],
            false,
            None,
        ),
        def(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "clusterrolebinding",
            "ClusterRoleBinding",
            false,
            &[],
            false,
            None,
        ),
        def(
            "coordination.k8s.io",
            "v1",
            "leases",
            "lease",
            "Lease",
            true,
            &[],
            false,
            None,
        ),
        def(
            "networking.k8s.io",
            "v1",
            "ingresses",
            "ingress",
            "Ingress",
            true,
            &["ing"],
            true,
            Spec,
        ),
        def(
            "storage.k8s.io",
            "v1",
            "storageclasses",
            "storageclass",
            "StorageClass",
            false,
            &["sc"],
            false,
            None,
        ),
        def(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "customresourcedefinition",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            true,
            None,
        ),
    ];
    for d in v.iter_mut() {
        if d.plural == "pods" || d.plural == "services" {
            d.return_deleted_object = true;
        }
        if d.plural == "deployments" || d.plural == "replicasets" {
            d.scale_subresource = true;
        }
        if d.plural == "deployments"
            || d.plural == "pods"
            || d.plural == "services"
            || d.plural == "jobs"
        {
            d.categories = vec!["all".into()];
        }
    }
    v
}
