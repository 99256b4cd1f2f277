//! Component health, computed from observed cluster state: the `Component*Ready` conditions and `Available`.
//!
//! Pure: the controller gathers an [`Observed`] snapshot from its watch caches and calls [`component_conditions`];
//! [`merge_conditions`] then decides what actually changed, so status is written only on a change and
//! `lastTransitionTime` moves only when a condition's status flips.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::api::{ComponentKind, Condition, ObjectBucketClaim, QuayRegistry, Route};
use crate::render::context::EffectiveComponent;

/// A condition as computed, before timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionState {
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl ConditionState {
    fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

pub const REASON_READY: &str = "ComponentReady";
pub const REASON_NOT_READY: &str = "ComponentNotReady";
pub const REASON_NOT_MANAGED: &str = "ComponentNotManaged";
pub const REASON_PVC_PENDING: &str = "PVCPending";
pub const REASON_PVC_PROVISIONING_FAILED: &str = "PVCProvisioningFailed";

/// How the registry's TLS looks from outside (bundle keys, external Secret).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TlsObservation {
    /// `spec.configBundleSecret` empty and none created yet.
    #[default]
    BundleNotPopulated,
    BundleMissing,
    /// Bundle present; whether it holds `ssl.cert` / `ssl.key`.
    Bundle {
        has_cert: bool,
        has_key: bool,
    },
    /// tls `secretRef`: `Ok(())` when the Secret is valid, else the validation message.
    External(Result<(), String>),
}

/// What the controller saw of one registry's objects.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub deployments: BTreeMap<String, Deployment>,
    pub jobs: BTreeMap<String, Job>,
    pub pvcs: BTreeMap<String, PersistentVolumeClaim>,
    /// `ProvisioningFailed` Event messages by the PVC's uid.
    pub provisioning_failures: BTreeMap<String, String>,
    pub hpas: BTreeMap<String, HorizontalPodAutoscaler>,
    pub routes: Vec<Route>,
    pub object_bucket_claims: Vec<ObjectBucketClaim>,
    pub service_monitors: BTreeMap<String, ObjectMeta>,
    pub prometheus_rules: BTreeMap<String, ObjectMeta>,
    pub tls: TlsObservation,
    /// No Route API: a managed route is the Ingresses or HTTPRoute below.
    pub plain_exposure: bool,
    pub ingresses: Vec<k8s_openapi::api::networking::v1::Ingress>,
    pub http_routes: Vec<crate::api::HTTPRoute>,
}

/// Everything [`component_conditions`] needs besides the observation.
pub struct StatusInput<'a> {
    pub registry: &'a QuayRegistry,
    pub components: &'a [EffectiveComponent],
    /// The Quay version this operator deploys.
    pub target_version: &'a str,
}

impl StatusInput<'_> {
    fn name(&self) -> &str {
        self.registry.metadata.name.as_deref().unwrap_or_default()
    }

    fn object(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.name())
    }

    fn component(&self, kind: ComponentKind) -> Option<&EffectiveComponent> {
        self.components.iter().find(|c| c.kind == kind)
    }

    fn managed(&self, kind: ComponentKind) -> bool {
        self.component(kind).is_some_and(|c| c.managed)
    }

    /// `overrides.replicas == 0`: the admin scaled the component down (backup).
    fn scaled_to_zero(&self, kind: ComponentKind) -> bool {
        self.component(kind)
            .and_then(|c| c.overrides.as_ref())
            .and_then(|o| o.replicas)
            == Some(0)
    }

    fn owns(&self, meta: &ObjectMeta) -> bool {
        let uid = self.registry.metadata.uid.as_deref();
        meta.owner_references.iter().flatten().any(|o| {
            o.kind == "QuayRegistry"
                && o.api_version == crate::api::API_VERSION
                && o.name == self.name()
                && Some(o.uid.as_str()) == uid
        })
    }
}

fn not_managed(kind: ComponentKind, what: &str) -> ConditionState {
    ConditionState::new(
        kind.condition_type(),
        true,
        REASON_NOT_MANAGED,
        format!("{what} not managed by the operator"),
    )
}

/// The 11 component conditions and `Available`, in upstream's evaluation order.
pub fn component_conditions(input: &StatusInput<'_>, observed: &Observed) -> Vec<ConditionState> {
    let mut out = Vec::with_capacity(12);
    out.push(hpa(input, observed));
    out.push(route(input, observed));
    out.push(monitoring(input, observed));

    let dependencies = [
        database(input, observed, ComponentKind::Postgres),
        object_storage(input, observed),
        clair(input, observed),
        database(input, observed, ComponentKind::ClairPostgres),
        tls(input, observed),
        redis(input, observed),
    ];
    let waiting: Vec<&str> = dependencies
        .iter()
        .zip([
            "Postgres",
            "ObjectStorage",
            "Clair",
            "ClairPostgres",
            "TLS",
            "Redis",
        ])
        .filter(|(c, _)| !c.status)
        .map(|(_, name)| name)
        .collect();
    out.extend(dependencies.iter().cloned());

    let quay_type = ComponentKind::Quay.condition_type();
    let mirror_type = ComponentKind::Mirror.condition_type();
    let awaiting_quay = || {
        ConditionState::new(
            mirror_type,
            false,
            REASON_NOT_READY,
            "Awaiting for component quay to become available",
        )
    };
    if !waiting.is_empty() {
        out.push(ConditionState::new(
            quay_type,
            false,
            REASON_NOT_READY,
            format!(
                "Awaiting for component {} to become available",
                waiting.join(",")
            ),
        ));
        out.push(if input.managed(ComponentKind::Mirror) {
            awaiting_quay()
        } else {
            not_managed(ComponentKind::Mirror, "Mirror")
        });
    } else {
        let quay = quay(input, observed);
        let mirror = if !input.managed(ComponentKind::Mirror) {
            not_managed(ComponentKind::Mirror, "Mirror")
        } else if quay.status {
            mirror(input, observed)
        } else {
            awaiting_quay()
        };
        out.push(quay);
        out.push(mirror);
    }

    let all_ready = out.iter().all(|c| c.reason != REASON_NOT_READY && c.status);
    out.push(if all_ready {
        ConditionState::new(
            "Available",
            true,
            "HealthChecksPassing",
            "All components reporting as healthy",
        )
    } else {
        ConditionState::new(
            "Available",
            false,
            REASON_NOT_READY,
            "Some components are not ready",
        )
    });
    out
}

fn hpa(input: &StatusInput<'_>, observed: &Observed) -> ConditionState {
    let kind = ComponentKind::HorizontalPodAutoscaler;
    if !input.managed(kind) {
        return not_managed(kind, "Horizontal pod autoscaler");
    }
    // Only the HPAs the operator renders: clair's and mirror's exist only while those components are managed.
    let mut expected = vec![input.object("quay-app")];
    if input.managed(ComponentKind::Clair) {
        expected.push(input.object("clair-app"));
    }
    if input.managed(ComponentKind::Mirror) {
        expected.push(input.object("quay-mirror"));
    }
    for name in expected {
        match observed.hpas.get(&name) {
            None => {
                return ConditionState::new(
                    kind.condition_type(),
                    false,
                    REASON_NOT_READY,
                    format!("Horizontal pod autoscaler {name} not found"),
                );
            }
            Some(h) if !input.owns(&h.metadata) => {
                return ConditionState::new(
                    kind.condition_type(),
                    false,
                    REASON_NOT_READY,
                    format!("Horizontal pod autoscaler {name} not owned by QuayRegistry"),
                );
            }
            Some(_) => {}
        }
    }
    ConditionState::new(
        kind.condition_type(),
        true,
        REASON_READY,
        "Horizontal pod autoscaler found",
    )
}

fn route(input: &StatusInput<'_>, observed: &Observed) -> ConditionState {
    let kind = ComponentKind::Route;
    if !input.managed(kind) {
        return not_managed(kind, "Route is");
    }
    let t = kind.condition_type();
    if observed.plain_exposure {
        return plain_exposure(input, observed);
    }
    let Some(route) = observed.routes.iter().find(|r| input.owns(&r.metadata)) else {
        return ConditionState::new(t, false, REASON_NOT_READY, "Route not found");
    };
    let ingress = route
        .status
        .as_ref()
        .and_then(|s| s.ingress.clone())
        .unwrap_or_default();
    if ingress.is_empty() {
        return ConditionState::new(t, false, REASON_NOT_READY, "Route found but no ingress");
    }
    let admitted = |i: &serde_json::Value| {
        i["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Admitted" && c["status"] == "True")
        })
    };
    if !ingress.iter().all(admitted) {
        return ConditionState::new(t, false, REASON_NOT_READY, "Route not fully admitted");
    }
    ConditionState::new(t, true, REASON_READY, "Route admitted")
}

/// A managed route where there is no Route API: the HTTPRoute (ready unless its Gateway refused it) or the
/// Ingress (ready once it exists: many ingress controllers never write its status).
fn plain_exposure(input: &StatusInput<'_>, observed: &Observed) -> ConditionState {
    let t = ComponentKind::Route.condition_type();
    let name = input.object("quay");
    if let Some(route) = observed
        .http_routes
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(&name) && input.owns(&r.metadata))
    {
        let refused = route.status.iter().flat_map(|s| &s.parents).find_map(|p| {
            p["conditions"].as_array()?.iter().find_map(|c| {
                (c["type"] == "Accepted" && c["status"] == "False")
                    .then(|| c["message"].as_str().unwrap_or_default().to_owned())
            })
        });
        return match refused {
            Some(message) => ConditionState::new(
                t,
                false,
                REASON_NOT_READY,
                format!("HTTPRoute {name} not accepted by its Gateway: {message}"),
            ),
            None => ConditionState::new(t, true, REASON_READY, format!("HTTPRoute {name} created")),
        };
    }
    if observed
        .ingresses
        .iter()
        .any(|i| i.metadata.name.as_deref() == Some(&name) && input.owns(&i.metadata))
    {
        return ConditionState::new(t, true, REASON_READY, format!("Ingress {name} created"));
    }
    ConditionState::new(
        t,
        false,
        REASON_NOT_READY,
        format!("Ingress or HTTPRoute {name} not found"),
    )
}

fn monitoring(input: &StatusInput<'_>, observed: &Observed) -> ConditionState {
    let kind = ComponentKind::Monitoring;
    if !input.managed(kind) {
        return not_managed(kind, "Monitoring");
    }
    let t = kind.condition_type();
    for (what, name, found) in [
        (
            "PrometheusRule",
            input.object("quay-prometheus-rules"),
            &observed.prometheus_rules,
        ),
        (
            "ServiceMonitor",
            input.object("quay-metrics-monitor"),
            &observed.service_monitors,
        ),
    ] {
        match found.get(&name) {
            None => {
                return ConditionState::new(
                    t,
                    false,
                    REASON_NOT_READY,
                    format!("{what} {name} not found"),
                );
            }
            Some(meta) if !input.owns(meta) => {
                return ConditionState::new(
                    t,
                    false,
                    REASON_NOT_READY,
                    format!("{what} {name} not owned by QuayRegistry"),
                );
            }
            Some(_) => {}
        }
    }
    ConditionState::new(
        t,
        true,
        REASON_READY,
        "ServiceMonitor and PrometheusRules created",
    )
}

/// `deploy.check`: zero available, no Available condition, Available false, else healthy.
fn deployment_check(t: &str, name: &str, deployment: &Deployment) -> ConditionState {
    let status = deployment.status.clone().unwrap_or_default();
    if status.available_replicas.unwrap_or(0) == 0 {
        return ConditionState::new(
            t,
            false,
            REASON_NOT_READY,
            format!("Deployment {name} has zero replicas available"),
        );
    }
    let available = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Available");
    match available {
        None => ConditionState::new(
            t,
            false,
            REASON_NOT_READY,
            format!("Available condition not found for {name}"),
        ),
        Some(c) if c.status != "True" => ConditionState::new(
            t,
            false,
            REASON_NOT_READY,
            format!(
                "Deployment {name}: {}",
                c.message.clone().unwrap_or_default()
            ),
        ),
        Some(_) => ConditionState::new(t, true, REASON_READY, format!("Deployment {name} healthy")),
    }
}

fn owned_deployment<'o>(
    input: &StatusInput<'_>,
    observed: &'o Observed,
    t: &str,
    label: &str,
    name: &str,
) -> Result<&'o Deployment, ConditionState> {
    match observed.deployments.get(name) {
        None => Err(ConditionState::new(
            t,
            false,
            REASON_NOT_READY,
            format!("{label} {name} not found"),
        )),
        Some(d) if !input.owns(&d.metadata) => Err(ConditionState::new(
            t,
            false,
            REASON_NOT_READY,
            format!("{label} {name} not owned by QuayRegistry"),
        )),
        Some(d) => Ok(d),
    }
}

fn database(input: &StatusInput<'_>, observed: &Observed, kind: ComponentKind) -> ConditionState {
    let (display, deployment_suffix) = match kind {
        ComponentKind::Postgres => ("Postgres", "quay-database"),
        _ => ("ClairPostgres", "clair-postgres"),
    };
    if !input.managed(kind) {
        return not_managed(kind, display);
    }
    let t = kind.condition_type();
    let name = input.object(deployment_suffix);
    let deployment =
        match owned_deployment(input, observed, t, &format!("{display} deployment"), &name) {
            Ok(d) => d,
            Err(c) => return c,
        };
    let pvc_name = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.volumes.as_ref())
        .and_then(|vs| vs.iter().find_map(|v| v.persistent_volume_claim.as_ref()))
        .map(|p| p.claim_name.clone());
    if let Some(pvc_name) = pvc_name {
        let Some(pvc) = observed.pvcs.get(&pvc_name) else {
            return ConditionState::new(
                t,
                false,
                REASON_NOT_READY,
                format!("PersistentVolumeClaim {pvc_name} not found"),
            );
        };
        let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase == Some("Pending") {
            let uid = pvc.metadata.uid.clone().unwrap_or_default();
            return match observed.provisioning_failures.get(&uid) {
                Some(msg) => ConditionState::new(
                    t,
                    false,
                    REASON_PVC_PROVISIONING_FAILED,
                    format!("{display} PVC {pvc_name} provisioning failed: {msg}"),
                ),
                None => ConditionState::new(
                    t,
                    false,
                    REASON_PVC_PENDING,
                    format!("{display} PersistentVolumeClaim {pvc_name} is pending"),
                ),
            };
        }
    }
    deployment_check(t, &name, deployment)
}

fn object_storage(input: &StatusInput<'_>, observed: &Observed) -> ConditionState {
    let kind = ComponentKind::ObjectStorage;
    if !input.managed(kind) {
        return not_managed(kind, "Object storage");
    }
    let t = kind.condition_type();
    match observed
        .object_bucket_claims
        .iter()
        .find(|o| input.owns(&o.metadata))
    {
        None => ConditionState::new(
            t,
            false,
            REASON_NOT_READY,
            "Unable to locate object bucket claim",
        ),
        Some(obc) if obc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound") => {
            ConditionState::new(t, true, REASON_READY, "Object bucket claim bound")
        }
        Some(_) => ConditionState::new(t, false, REASON_NOT_READY, "Object bucket claim not bound"),
    }
}

fn scaled_workload(
    input: &StatusInput<'_>,
    observed: &Observed,
    kind: ComponentKind,
    label: &str,
    suffix: &str,
    display: &str,
) -> Result<ConditionState, ConditionState> {
    let t = kind.condition_type();
    let name = input.object(suffix);
    let deployment = owned_deployment(input, observed, t, label, &name)?;
    if input.scaled_to_zero(kind) {
        let available = deployment
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        return Ok(if available == 0 {
            ConditionState::new(
                t,
                true,
                REASON_READY,
                format!("{display} manually scaled down"),
            )
        } else {
            ConditionState::new(
                t,
                false,
                REASON_NOT_READY,
                format!("{display} component is being scaled down"),
            )
        });
    }
    Err(deployment_check(t, &name, deployment))
}

fn clair(input: &StatusInput<'_>, observed: &Observed) -> ConditionState {
    let kind = ComponentKind::Clair;
    if !input.managed(kind) {
        return not_managed(kind, "Clair");
    }
    match scaled_workload(input, observed, kind, "Deployment", "clair-app", "Clair") {
        Ok(c) => c,
        Err(c) if c.status => ConditionState::new(
            kind.condition_type(),
            true,
            REASON_READY,
            "Clair component healthy",
        ),
        Err(c) => c,
    }
}

fn redis(input: &StatusInput<'_>, observed: &Observed) -> ConditionState {
    let kind = ComponentKind::Redis;
    if !input.managed(kind) {
        return not_managed(kind, "Redis");
    }
    let t = kind.condition_type();
    let name = input.object("quay-redis");
    match observed.deployments.get(&name) {
        None => ConditionState::new(t, false, REASON_NOT_READY, "Redis deployment not found"),
        Some(d) if !input.owns(&d.metadata) => ConditionState::new(
            t,
            false,
            REASON_NOT_READY,
            "Redis deployment not owned by QuayRegistry",
        ),
        Some(d) => deployment_check(t, &name, d),
    }
}

fn tls(input: &StatusInput<'_>, observed: &Observed) -> ConditionState {
    let kind = ComponentKind::Tls;
    let t = kind.condition_type();
    let managed = input.managed(kind);
    match &observed.tls {
        TlsObservation::BundleNotPopulated => ConditionState::new(
            t,
            false,
            REASON_NOT_READY,
            "Config bundle secret not populated",
        ),
        TlsObservation::BundleMissing => {
            ConditionState::new(t, false, REASON_NOT_READY, "Config bundle does not exist")
        }
        TlsObservation::External(Ok(())) => ConditionState::new(
            t,
            true,
            REASON_READY,
            "Using externally managed TLS certificate",
        ),
        TlsObservation::External(Err(message)) => {
            ConditionState::new(t, false, REASON_NOT_READY, message.clone())
        }
        TlsObservation::Bundle { has_cert, has_key } if managed => {
            if *has_cert || *has_key {
                ConditionState::new(
                    t,
                    false,
                    REASON_NOT_READY,
                    "TLS managed but config bundle contain certs",
                )
            } else {
                ConditionState::new(t, true, REASON_READY, "Using cluster wildcard certs")
            }
        }
        TlsObservation::Bundle { has_cert, has_key } => {
            if *has_cert && *has_key {
                ConditionState::new(t, true, REASON_READY, "Config bundle contains certs")
            } else {
                ConditionState::new(
                    t,
                    false,
                    REASON_NOT_READY,
                    "TLS unmanaged but config bundle does not contain certs",
                )
            }
        }
    }
}

fn quay(input: &StatusInput<'_>, observed: &Observed) -> ConditionState {
    let kind = ComponentKind::Quay;
    let t = kind.condition_type();
    let current = input
        .registry
        .status
        .as_ref()
        .and_then(|s| s.current_version.as_deref())
        .unwrap_or("");
    // Upstream demanded a succeeded migration Job forever, so deleting a finished Job degraded the registry.
    // Here the Job only matters while a migration is due.
    if current != input.target_version {
        let job = input.object("quay-app-upgrade");
        match observed.jobs.get(&job) {
            None => {
                return ConditionState::new(
                    t,
                    false,
                    REASON_NOT_READY,
                    format!("job {job} not found"),
                );
            }
            Some(j) if j.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) == 0 => {
                return ConditionState::new(
                    t,
                    false,
                    REASON_NOT_READY,
                    format!("job {job} not finished"),
                );
            }
            Some(_) => {}
        }
    }
    match scaled_workload(input, observed, kind, "Deployment", "quay-app", "Quay") {
        Ok(c) => {
            // "Quay manually scaled down" is upstream's skip: report it as ready.
            c
        }
        Err(c) if c.status => ConditionState::new(t, true, REASON_READY, "Quay component healthy"),
        Err(c) => c,
    }
}

fn mirror(input: &StatusInput<'_>, observed: &Observed) -> ConditionState {
    let kind = ComponentKind::Mirror;
    match scaled_workload(
        input,
        observed,
        kind,
        "Mirror deployment",
        "quay-mirror",
        "Mirror",
    ) {
        Ok(c) | Err(c) => c,
    }
}

/// Merges computed conditions into the stored ones: a condition whose status, reason and message are unchanged
/// keeps its timestamps (so an unchanged status is byte-identical and needs no write); `lastTransitionTime` moves
/// only when the status flips. Conditions of other types (RolloutBlocked, ComponentsCreated) are kept.
pub fn merge_conditions(
    stored: &[Condition],
    computed: &[ConditionState],
    now: &Time,
) -> Vec<Condition> {
    let computed_types: BTreeSet<&str> = computed.iter().map(|c| c.type_.as_str()).collect();
    let mut out: Vec<Condition> = stored
        .iter()
        .filter(|c| !computed_types.contains(c.type_.as_str()))
        .cloned()
        .collect();
    for c in computed {
        let status = if c.status { "True" } else { "False" };
        let previous = stored.iter().find(|s| s.type_ == c.type_);
        let unchanged = previous.is_some_and(|p| {
            p.status == status
                && p.reason.as_deref() == Some(c.reason.as_str())
                && p.message.as_deref() == Some(c.message.as_str())
        });
        if let (true, Some(p)) = (unchanged, previous) {
            out.push(p.clone());
            continue;
        }
        let last_transition_time = match previous {
            Some(p) if p.status == status => {
                p.last_transition_time.clone().or_else(|| Some(now.clone()))
            }
            _ => Some(now.clone()),
        };
        out.push(Condition {
            type_: c.type_.clone(),
            status: status.to_owned(),
            reason: Some(c.reason.clone()),
            message: Some(c.message.clone()),
            last_update_time: Some(now.clone()),
            last_transition_time,
        });
    }
    out.sort_by(|a, b| {
        condition_rank(&a.type_)
            .cmp(&condition_rank(&b.type_))
            .then(a.type_.cmp(&b.type_))
    });
    out
}

/// A stable order for conditions so that the same set always serializes the same way.
fn condition_rank(type_: &str) -> usize {
    const ORDER: [&str; 3] = ["Available", "ComponentsCreated", "RolloutBlocked"];
    ORDER
        .iter()
        .position(|t| *t == type_)
        .unwrap_or(ORDER.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Component, QuayRegistrySpec, QuayRegistryStatus};
    use crate::config::ConfigBundle;
    use crate::render::context::{ClusterFacts, effective_components};
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::batch::v1::JobStatus;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec,
        Volume,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use k8s_openapi::jiff::Timestamp;

    const VERSION: &str = "v3.11.0";

    fn registry(components: Vec<Component>, current_version: Option<&str>) -> QuayRegistry {
        let mut r = QuayRegistry::new(
            "reg",
            QuayRegistrySpec {
                config_bundle_secret: None,
                components: Some(components),
            },
        );
        r.metadata.namespace = Some("ns".into());
        r.metadata.uid = Some("uid-1".into());
        r.status = Some(QuayRegistryStatus {
            current_version: current_version.map(Into::into),
            ..Default::default()
        });
        r
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "quay.redhat.com/v1".into(),
            kind: "QuayRegistry".into(),
            name: "reg".into(),
            uid: "uid-1".into(),
            ..Default::default()
        }
    }

    fn deployment(name: &str, available: i32, pvc: Option<&str>) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some(name.into()),
                owner_references: Some(vec![owner()]),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                template: PodTemplateSpec {
                    spec: Some(PodSpec {
                        volumes: pvc.map(|p| {
                            vec![Volume {
                                name: "data".into(),
                                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                                    claim_name: p.into(),
                                    read_only: None,
                                }),
                                ..Default::default()
                            }]
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                available_replicas: Some(available),
                conditions: Some(vec![DeploymentCondition {
                    type_: "Available".into(),
                    status: if available > 0 { "True" } else { "False" }.into(),
                    message: Some("Deployment does not have minimum availability.".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn pvc(name: &str, phase: &str) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("{name}-uid")),
                ..Default::default()
            },
            status: Some(PersistentVolumeClaimStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Plain Kubernetes: route/objectstorage/monitoring/tls unmanaged, the rest managed, everything healthy.
    fn healthy() -> (QuayRegistry, Observed) {
        let r = registry(
            vec![
                Component::new(ComponentKind::Route, false),
                Component::new(ComponentKind::ObjectStorage, false),
                Component::new(ComponentKind::Monitoring, false),
                Component::new(ComponentKind::Tls, false),
                Component::new(ComponentKind::HorizontalPodAutoscaler, false),
            ],
            Some(VERSION),
        );
        let mut o = Observed::default();
        for (n, p) in [
            ("reg-quay-app", None),
            ("reg-quay-database", Some("reg-quay-postgres-13")),
            ("reg-clair-app", None),
            ("reg-clair-postgres", Some("reg-clair-postgres-15")),
            ("reg-quay-redis", None),
            ("reg-quay-mirror", None),
        ] {
            o.deployments.insert(n.into(), deployment(n, 1, p));
        }
        o.pvcs.insert(
            "reg-quay-postgres-13".into(),
            pvc("reg-quay-postgres-13", "Bound"),
        );
        o.pvcs.insert(
            "reg-clair-postgres-15".into(),
            pvc("reg-clair-postgres-15", "Bound"),
        );
        o.tls = TlsObservation::Bundle {
            has_cert: true,
            has_key: true,
        };
        (r, o)
    }

    fn conditions(r: &QuayRegistry, o: &Observed) -> BTreeMap<String, ConditionState> {
        let components =
            effective_components(r, &ConfigBundle::default(), &ClusterFacts::default());
        let input = StatusInput {
            registry: r,
            components: &components,
            target_version: VERSION,
        };
        component_conditions(&input, o)
            .into_iter()
            .map(|c| (c.type_.clone(), c))
            .collect()
    }

    #[test]
    fn healthy_registry_is_available_with_twelve_conditions() {
        let (r, o) = healthy();
        let c = conditions(&r, &o);
        assert_eq!(c.len(), 12);
        assert!(c["Available"].status, "{:?}", c["Available"]);
        assert_eq!(c["Available"].reason, "HealthChecksPassing");
        assert_eq!(
            c["ComponentRouteReady"].message,
            "Route is not managed by the operator"
        );
        assert_eq!(c["ComponentQuayReady"].message, "Quay component healthy");
        assert_eq!(
            c["ComponentMirrorReady"].message,
            "Deployment reg-quay-mirror healthy"
        );
        assert_eq!(
            c["ComponentTLSReady"].message,
            "Config bundle contains certs"
        );
    }

    #[test]
    fn unavailable_database_makes_quay_and_mirror_wait() {
        let (r, mut o) = healthy();
        o.deployments.insert(
            "reg-quay-database".into(),
            deployment("reg-quay-database", 0, Some("reg-quay-postgres-13")),
        );
        let c = conditions(&r, &o);
        assert_eq!(
            c["ComponentPostgresReady"].message,
            "Deployment reg-quay-database has zero replicas available"
        );
        assert_eq!(
            c["ComponentQuayReady"].message,
            "Awaiting for component Postgres to become available"
        );
        assert_eq!(
            c["ComponentMirrorReady"].message,
            "Awaiting for component quay to become available"
        );
        assert!(!c["Available"].status);
    }

    #[test]
    fn pending_pvc_reports_provisioning_failure_event() {
        let (r, mut o) = healthy();
        o.pvcs.insert(
            "reg-quay-postgres-13".into(),
            pvc("reg-quay-postgres-13", "Pending"),
        );
        assert_eq!(
            conditions(&r, &o)["ComponentPostgresReady"].reason,
            REASON_PVC_PENDING
        );
        o.provisioning_failures.insert(
            "reg-quay-postgres-13-uid".into(),
            "storageclass \"fast\" not found".into(),
        );
        let c = conditions(&r, &o);
        assert_eq!(
            c["ComponentPostgresReady"].reason,
            REASON_PVC_PROVISIONING_FAILED
        );
        assert_eq!(
            c["ComponentPostgresReady"].message,
            "Postgres PVC reg-quay-postgres-13 provisioning failed: storageclass \"fast\" not found"
        );
    }

    #[test]
    fn deployment_not_owned_is_reported() {
        let (r, mut o) = healthy();
        o.deployments
            .get_mut("reg-quay-redis")
            .unwrap()
            .metadata
            .owner_references = None;
        assert_eq!(
            conditions(&r, &o)["ComponentRedisReady"].message,
            "Redis deployment not owned by QuayRegistry"
        );
    }

    #[test]
    fn migration_job_matters_only_while_a_migration_is_due() {
        let (mut r, mut o) = healthy();
        // Finished migration and deleted Job: still healthy (upstream degraded here).
        assert!(conditions(&r, &o)["ComponentQuayReady"].status);
        r.status.as_mut().unwrap().current_version = Some("v3.10.0".into());
        assert_eq!(
            conditions(&r, &o)["ComponentQuayReady"].message,
            "job reg-quay-app-upgrade not found"
        );
        let job = Job {
            status: Some(JobStatus {
                active: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        };
        o.jobs.insert("reg-quay-app-upgrade".into(), job);
        assert_eq!(
            conditions(&r, &o)["ComponentQuayReady"].message,
            "job reg-quay-app-upgrade not finished"
        );
    }

    #[test]
    fn scaled_down_quay_reports_progress_then_done() {
        let (mut r, mut o) = healthy();
        r.spec.components.as_mut().unwrap().push(Component {
            overrides: Some(crate::api::Override {
                replicas: Some(0),
                ..Default::default()
            }),
            ..Component::new(ComponentKind::Quay, true)
        });
        assert_eq!(
            conditions(&r, &o)["ComponentQuayReady"].message,
            "Quay component is being scaled down"
        );
        o.deployments
            .insert("reg-quay-app".into(), deployment("reg-quay-app", 0, None));
        let c = conditions(&r, &o);
        assert_eq!(c["ComponentQuayReady"].message, "Quay manually scaled down");
        assert!(c["Available"].status);
    }

    #[test]
    fn merge_keeps_timestamps_of_unchanged_conditions_and_moves_transition_only_on_flip() {
        let t0 = Time(Timestamp::from_second(1_000).unwrap());
        let t1 = Time(Timestamp::from_second(2_000).unwrap());
        let first = merge_conditions(
            &[],
            &[ConditionState::new(
                "Available",
                false,
                "ComponentNotReady",
                "a",
            )],
            &t0,
        );
        let same = merge_conditions(
            &first,
            &[ConditionState::new(
                "Available",
                false,
                "ComponentNotReady",
                "a",
            )],
            &t1,
        );
        assert_eq!(
            first, same,
            "no change means no new timestamps, so no status write"
        );
        let msg = merge_conditions(
            &first,
            &[ConditionState::new(
                "Available",
                false,
                "ComponentNotReady",
                "b",
            )],
            &t1,
        );
        assert_eq!(msg[0].last_transition_time, Some(t0.clone()));
        assert_eq!(msg[0].last_update_time, Some(t1.clone()));
        let flip = merge_conditions(
            &msg,
            &[ConditionState::new(
                "Available",
                true,
                "HealthChecksPassing",
                "c",
            )],
            &t1,
        );
        assert_eq!(flip[0].last_transition_time, Some(t1));
    }
}
