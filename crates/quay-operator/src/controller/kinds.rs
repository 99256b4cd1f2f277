//! The kinds of object the operator renders, as dynamic API resources, with the cluster capability each needs.

use kube::Resource;
use kube::api::ApiResource;

use crate::api::{
    Certificate, HTTPRoute, ObjectBucketClaim, PrometheusRule, Route, ServiceMonitor,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};

/// An API group that is only there on some clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    Routes,
    ObjectBucketClaims,
    Monitoring,
    /// `networking.k8s.io/v1` Ingress where there is no Route API (plain Kubernetes exposure).
    Ingresses,
    /// Gateway API HTTPRoute where there is no Route API.
    GatewayApi,
    /// cert-manager Certificate.
    CertManager,
}

/// One kind of owned object.
#[derive(Debug, Clone)]
pub struct OwnedKind {
    pub resource: ApiResource,
    pub requires: Option<Capability>,
}

fn kind<K: Resource<DynamicType = ()>>(requires: Option<Capability>) -> OwnedKind {
    OwnedKind {
        resource: ApiResource::erase::<K>(&()),
        requires,
    }
}

/// Every kind the render produces, in the order they are watched.
pub fn owned_kinds() -> Vec<OwnedKind> {
    vec![
        kind::<Secret>(None),
        kind::<ConfigMap>(None),
        kind::<ServiceAccount>(None),
        kind::<Service>(None),
        kind::<PersistentVolumeClaim>(None),
        kind::<Role>(None),
        kind::<RoleBinding>(None),
        kind::<Deployment>(None),
        kind::<Job>(None),
        kind::<HorizontalPodAutoscaler>(None),
        kind::<Route>(Some(Capability::Routes)),
        kind::<ObjectBucketClaim>(Some(Capability::ObjectBucketClaims)),
        kind::<ServiceMonitor>(Some(Capability::Monitoring)),
        kind::<PrometheusRule>(Some(Capability::Monitoring)),
        kind::<Ingress>(Some(Capability::Ingresses)),
        kind::<HTTPRoute>(Some(Capability::GatewayApi)),
        kind::<Certificate>(Some(Capability::CertManager)),
    ]
}

/// `(group, kind)` key of an API resource.
pub fn key(ar: &ApiResource) -> (String, String) {
    (ar.group.clone(), ar.kind.clone())
}
