//! Checks of `spec.components`: the CRD's CEL rules, duplicate kinds, what the cluster can offer, and the
//! overrides (upstream `ValidateOverrides`).

use super::Facts;
use crate::api::{ComponentKind, Override};
use crate::config::{Problem, Reason, ValidationReport};

/// The three CEL rules of the CRD, evaluated here so a registry stored before the rules existed (or applied
/// through a path that skipped them) is still reported; and duplicate kinds, which the API server accepts and
/// upstream silently resolves by using the first entry: we report them, since the second entry's settings are
/// otherwise ignored without a word.
pub(super) fn check_component_rules(facts: &Facts<'_>, report: &mut ValidationReport) {
    let declared = facts.declared();
    for (i, c) in declared.iter().enumerate() {
        let path = format!("spec.components[{i}]");
        let cel = |rule: &str| format!("{path}: Invalid value: \"object\": {rule}");
        // An unmanaged component with workload overrides gets upstream's own message (check_overrides);
        // labels/annotations alone only break the CEL rule.
        if !c.managed
            && c.overrides
                .as_ref()
                .is_some_and(|o| !o.has_workload_override())
        {
            report.push(Problem::error(
                Reason::ComponentOverrideInvalid,
                format!("{path}.overrides"),
                cel("cannot set overrides on unmanaged component"),
            ));
        }
        if let Some(secret_ref) = &c.secret_ref {
            if c.managed {
                report.push(Problem::error(
                    Reason::ConfigInvalid,
                    format!("{path}.secretRef"),
                    cel("secretRef cannot be set on a managed component"),
                ));
            }
            if secret_ref.name.is_empty() {
                report.push(Problem::error(
                    Reason::ConfigInvalid,
                    format!("{path}.secretRef.name"),
                    cel("secretRef.name must not be empty"),
                ));
            }
            if c.kind != ComponentKind::Tls {
                report.push(Problem::warning(
                    Reason::ConfigInvalid,
                    format!("{path}.secretRef"),
                    format!(
                        "secretRef is only used by the tls component; it is ignored on component {}",
                        c.kind
                    ),
                ));
            }
        }
        if let Some(first) = declared[..i].iter().position(|d| d.kind == c.kind) {
            report.push(Problem::error(
                Reason::ConfigInvalid,
                path.clone(),
                format!(
                    "duplicate component kind {kind}: {path} repeats spec.components[{first}]; \
                     declare each kind once (only the first entry would take effect)",
                    kind = c.kind
                ),
            ));
        }
    }
}

/// Longest name suffix of the Services rendered for a registry (`<name>-clair-postgres`).
const LONGEST_SERVICE_SUFFIX: &str = "-clair-postgres";
/// Service names are DNS-1035 labels.
const MAX_SERVICE_NAME: usize = 63;

/// The registry's name must leave room for the names derived from it: a Service named `<name>-clair-postgres`
/// longer than 63 characters is refused by the API server, after the objects applied before it.
pub(super) fn check_registry_name(facts: &Facts<'_>, report: &mut ValidationReport) {
    let limit = MAX_SERVICE_NAME - LONGEST_SERVICE_SUFFIX.len();
    let length = facts.name.chars().count();
    if length > limit {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            "metadata.name",
            format!(
                "the registry name is {length} characters long: the Services named after it \
                 (<name>{LONGEST_SERVICE_SUFFIX}) would exceed the {MAX_SERVICE_NAME}-character limit of Service \
                 names; use a name of at most {limit} characters"
            ),
        ));
    }
}

/// Managed objectstorage needs the ObjectBucketClaim API (upstream: `ObjectStorageComponentDependencyError`).
pub(super) fn check_object_storage_support(facts: &Facts<'_>, report: &mut ValidationReport) {
    if facts.managed(ComponentKind::ObjectStorage) && !facts.input.cluster.object_bucket_claims {
        report.push(Problem::error(
            Reason::ObjectStorageComponentDependencyError,
            facts.component_path(ComponentKind::ObjectStorage),
            "error checking for object storage support: unable to list object bucket claims: \
             the ObjectBucketClaim API (objectbucket.io/v1alpha1) is not available in this cluster; \
             install NooBaa / OpenShift Data Foundation or set objectstorage to managed: false \
             and configure DISTRIBUTED_STORAGE_CONFIG",
        ));
    }
}

/// Managed monitoring needs the Prometheus operator APIs (upstream: `MonitoringComponentDependencyError`).
pub(super) fn check_monitoring_support(facts: &Facts<'_>, report: &mut ValidationReport) {
    if facts.managed(ComponentKind::Monitoring) && !facts.input.cluster.monitoring {
        report.push(Problem::error(
            Reason::MonitoringComponentDependencyError,
            facts.component_path(ComponentKind::Monitoring),
            "could not check for monitoring support: monitoring needs the Prometheus operator APIs \
             (ServiceMonitor, PrometheusRule), the openshift-config-managed namespace and an operator \
             watching all namespaces; set monitoring to managed: false",
        ));
    }
}

/// Managed tls needs the OpenShift Route API (the router's wildcard certificate). Upstream only logged this (and
/// retried forever); it is reported here so the registry's status says why nothing rolls out. A managed route
/// without the Route API is exposed with an Ingress or HTTPRoute instead (checked in `exposure.rs`).
pub(super) fn check_route_support(facts: &Facts<'_>, report: &mut ValidationReport) {
    if facts.input.cluster.routes {
        return;
    }
    for kind in [ComponentKind::Tls] {
        if facts.managed(kind) {
            report.push(Problem::error(
                Reason::RouteComponentDependencyError,
                facts.component_path(kind),
                format!(
                    "error validating component {kind}: Route API not available \
                     (route.openshift.io/v1 is only served on OpenShift); set {kind} to managed: false"
                ),
            ));
        }
    }
}

/// The overrides each kind supports (upstream's support matrix), in upstream's check order.
fn unsupported_overrides(kind: ComponentKind, o: &Override) -> Vec<&'static str> {
    use ComponentKind::*;
    let supports = |name: &str| match name {
        "affinity" => matches!(kind, Quay | Clair | Mirror),
        "volumeSize" | "storageClassName" => matches!(kind, Postgres | Clair | ClairPostgres),
        "env" => matches!(
            kind,
            Quay | Postgres | Clair | ClairPostgres | Redis | Mirror
        ),
        "replicas" => matches!(kind, Quay | Clair | Mirror),
        "resources" => matches!(
            kind,
            Quay | Postgres | Clair | ClairPostgres | Redis | Mirror
        ),
        "securityContext" => matches!(kind, Quay | Mirror),
        _ => false,
    };
    [
        ("affinity", o.affinity.is_some()),
        ("volumeSize", o.volume_size.is_some()),
        ("storageClassName", o.storage_class_name.is_some()),
        ("env", o.env.as_ref().is_some_and(|e| !e.is_empty())),
        ("replicas", o.replicas.is_some()),
        ("resources", o.resources.is_some()),
        ("securityContext", o.security_context.is_some()),
    ]
    .into_iter()
    .filter(|(name, present)| *present && !supports(name))
    .map(|(name, _)| name)
    .collect()
}

/// Upstream `ValidateOverrides`, in spec order, reporting every violation (upstream stops at the first).
pub(super) fn check_overrides(facts: &Facts<'_>, report: &mut ValidationReport) {
    let hpa_managed = facts.managed(ComponentKind::HorizontalPodAutoscaler);
    for (i, c) in facts.declared().iter().enumerate() {
        let Some(o) = &c.overrides else { continue };
        let path = format!("spec.components[{i}].overrides");
        let invalid = |field: &str, msg: String| {
            Problem::error(
                Reason::ComponentOverrideInvalid,
                if field.is_empty() {
                    path.clone()
                } else {
                    format!("{path}.{field}")
                },
                format!("invalid overrides: {msg}"),
            )
        };
        let managed = c.managed || c.kind == ComponentKind::Quay;
        if !managed {
            if o.has_workload_override() {
                report.push(invalid(
                    "",
                    format!("cannot set overrides on unmanaged {}", c.kind),
                ));
            }
            continue;
        }
        if o.replicas.is_some_and(|r| r != 0) && hpa_managed {
            report.push(invalid(
                "replicas",
                "cannot override replicas with managed HPA".to_owned(),
            ));
        }
        for name in unsupported_overrides(c.kind, o) {
            report.push(invalid(
                name,
                format!("component {} does not support {name} overrides", c.kind),
            ));
        }
    }
}
