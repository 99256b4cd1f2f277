//! A desired object: one typed Kubernetes object the render produced, ready to be applied.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Serialize;

use crate::api::{
    Certificate, HTTPRoute, ObjectBucketClaim, PrometheusRule, Route, ServiceMonitor,
};

/// One object of a render. Typed, so an object kind that is rendered but cannot be applied does not compile.
/// `Debug` shows only kind, namespace and name: Secrets hold passwords and keys.
///
/// Workloads are boxed: a Deployment or Job is about 2.5 KB against at most 1 KB for every other kind, and an
/// unboxed list of ~50 objects is a 120 KB allocation whose every push, move and free (glibc consolidates its
/// free lists when a chunk that large is released) showed in the render's profile.
#[derive(Clone, PartialEq)]
pub enum DesiredObject {
    Secret(Secret),
    ConfigMap(ConfigMap),
    ServiceAccount(ServiceAccount),
    Service(Service),
    PersistentVolumeClaim(PersistentVolumeClaim),
    Role(Role),
    RoleBinding(RoleBinding),
    Route(Route),
    Ingress(Ingress),
    HTTPRoute(HTTPRoute),
    Certificate(Certificate),
    ObjectBucketClaim(ObjectBucketClaim),
    ServiceMonitor(ServiceMonitor),
    PrometheusRule(PrometheusRule),
    Deployment(Box<Deployment>),
    Job(Box<Job>),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
}

macro_rules! each_variant {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            DesiredObject::Secret($o) => $body,
            DesiredObject::ConfigMap($o) => $body,
            DesiredObject::ServiceAccount($o) => $body,
            DesiredObject::Service($o) => $body,
            DesiredObject::PersistentVolumeClaim($o) => $body,
            DesiredObject::Role($o) => $body,
            DesiredObject::RoleBinding($o) => $body,
            DesiredObject::Route($o) => $body,
            DesiredObject::Ingress($o) => $body,
            DesiredObject::HTTPRoute($o) => $body,
            DesiredObject::Certificate($o) => $body,
            DesiredObject::ObjectBucketClaim($o) => $body,
            DesiredObject::ServiceMonitor($o) => $body,
            DesiredObject::PrometheusRule($o) => $body,
            DesiredObject::Deployment($o) => $body,
            DesiredObject::Job($o) => $body,
            DesiredObject::HorizontalPodAutoscaler($o) => $body,
        }
    };
}

fn api_version_kind<K: Resource<DynamicType = ()>>() -> (String, String) {
    (K::api_version(&()).into_owned(), K::kind(&()).into_owned())
}

impl DesiredObject {
    pub fn metadata(&self) -> &ObjectMeta {
        each_variant!(self, o => o.meta())
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        each_variant!(self, o => o.meta_mut())
    }

    /// `(apiVersion, kind)`.
    pub fn api_version_kind(&self) -> (String, String) {
        match self {
            DesiredObject::Secret(_) => api_version_kind::<Secret>(),
            DesiredObject::ConfigMap(_) => api_version_kind::<ConfigMap>(),
            DesiredObject::ServiceAccount(_) => api_version_kind::<ServiceAccount>(),
            DesiredObject::Service(_) => api_version_kind::<Service>(),
            DesiredObject::PersistentVolumeClaim(_) => api_version_kind::<PersistentVolumeClaim>(),
            DesiredObject::Role(_) => api_version_kind::<Role>(),
            DesiredObject::RoleBinding(_) => api_version_kind::<RoleBinding>(),
            DesiredObject::Route(_) => api_version_kind::<Route>(),
            DesiredObject::Ingress(_) => api_version_kind::<Ingress>(),
            DesiredObject::HTTPRoute(_) => api_version_kind::<HTTPRoute>(),
            DesiredObject::Certificate(_) => api_version_kind::<Certificate>(),
            DesiredObject::ObjectBucketClaim(_) => api_version_kind::<ObjectBucketClaim>(),
            DesiredObject::ServiceMonitor(_) => api_version_kind::<ServiceMonitor>(),
            DesiredObject::PrometheusRule(_) => api_version_kind::<PrometheusRule>(),
            DesiredObject::Deployment(_) => api_version_kind::<Deployment>(),
            DesiredObject::Job(_) => api_version_kind::<Job>(),
            DesiredObject::HorizontalPodAutoscaler(_) => {
                api_version_kind::<HorizontalPodAutoscaler>()
            }
        }
    }

    pub fn kind(&self) -> String {
        self.api_version_kind().1
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// Workloads (Deployments and Jobs) are applied after everything they mount.
    pub fn is_workload(&self) -> bool {
        matches!(self, DesiredObject::Deployment(_) | DesiredObject::Job(_))
    }

    /// The full object as JSON, with `apiVersion` and `kind` (what server-side apply sends).
    pub fn to_json(&self) -> serde_json::Value {
        let (api_version, kind) = self.api_version_kind();
        let mut value = each_variant!(self, o => to_value(o));
        if let Some(map) = value.as_object_mut() {
            // Keep apiVersion/kind first for readable YAML.
            let rest = std::mem::take(map);
            map.insert("apiVersion".into(), api_version.into());
            map.insert("kind".into(), kind.into());
            for (k, v) in rest {
                if k != "apiVersion" && k != "kind" {
                    map.insert(k, v);
                }
            }
        }
        value
    }
}

impl std::fmt::Debug for DesiredObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}/{}",
            self.kind(),
            self.namespace().unwrap_or_default(),
            self.name()
        )
    }
}

fn to_value<T: Serialize>(o: &T) -> serde_json::Value {
    serde_json::to_value(o).expect("Kubernetes objects always serialize")
}
