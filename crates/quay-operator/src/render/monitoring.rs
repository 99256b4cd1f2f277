//! The `monitoring` component: Quay's metrics Service, the ServiceMonitor and alert rule the OpenShift cluster
//! monitoring stack picks up, the Roles that let Prometheus read the namespace, and a Grafana dashboard for the
//! OpenShift console.
//!
//! Unlike upstream, the ServiceMonitor only selects this registry's metrics Service and the alert only looks at
//! this registry's pods, so two registries in one namespace (or cluster) do not see each other's data.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::context::{IpFamilies, RenderContext};
use super::meta;
use super::object::DesiredObject;
use crate::api::{
    ComponentKind, PrometheusAlertRule, PrometheusRule, PrometheusRuleGroup, PrometheusRuleSpec,
    ServiceMonitor, ServiceMonitorEndpoint, ServiceMonitorSpec,
};

/// Port Quay serves Prometheus metrics on.
pub const METRICS_PORT: i32 = 9091;
const METRICS_PORT_NAME: &str = "quay-metrics";
const COMPONENT: &str = "monitoring";

/// Namespace the OpenShift console reads dashboards from.
pub const DASHBOARD_NAMESPACE: &str = "openshift-config-managed";
/// Label that makes the console list a ConfigMap as a dashboard.
const DASHBOARD_LABEL: &str = "console.openshift.io/dashboard";
const DASHBOARD_KEY: &str = "quay.json";
/// Our own dashboard; `$namespace`, `$service` and `$registry` are filled in at render time because the console
/// does not substitute custom template variables.
const DASHBOARD_TEMPLATE: &str = include_str!("assets/quay-dashboard.json");

/// Service accounts of the OpenShift monitoring stack that read the registry's namespace.
const MONITORING_NAMESPACE: &str = "openshift-monitoring";
const PROMETHEUS_SA: &str = "prometheus-k8s";
const PROMETHEUS_OPERATOR_SA: &str = "prometheus-operator";

pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    if !ctx.managed(ComponentKind::Monitoring) || !ctx.input.cluster.monitoring {
        return;
    }
    let metrics_service = ctx.object_name("quay-metrics");
    out.push(DesiredObject::Service(service(ctx)));
    out.push(DesiredObject::ServiceMonitor(service_monitor(ctx)));
    out.push(DesiredObject::PrometheusRule(prometheus_rule(ctx)));

    let metrics_role = metrics_service.clone();
    out.push(DesiredObject::Role(role(ctx, &metrics_role)));
    out.push(DesiredObject::RoleBinding(role_binding(
        ctx,
        &metrics_role,
        &metrics_role,
        PROMETHEUS_SA,
    )));
    let alerts_role = ctx.object_name("quay-alerts-role");
    out.push(DesiredObject::Role(role(ctx, &alerts_role)));
    out.push(DesiredObject::RoleBinding(role_binding(
        ctx,
        &ctx.object_name("quay-alerts-rolebinding"),
        &alerts_role,
        PROMETHEUS_OPERATOR_SA,
    )));

    out.push(DesiredObject::ConfigMap(dashboard(ctx, &metrics_service)));
}

fn named(ctx: &RenderContext<'_>, name: &str) -> ObjectMeta {
    meta::named(ctx, name, COMPONENT)
}

fn service(ctx: &RenderContext<'_>) -> Service {
    let mut metadata = meta::object_meta(ctx, "quay-metrics", COMPONENT);
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .extend([
            ("prometheus.io/scrape".to_owned(), "true".to_owned()),
            ("prometheus.io/scheme".to_owned(), "http".to_owned()),
            ("prometheus.io/port".to_owned(), METRICS_PORT.to_string()),
        ]);
    let (ip_families, ip_family_policy) = match ctx.ip_families {
        IpFamilies::V4 => (None, None),
        IpFamilies::V6 => (Some(vec!["IPv6".to_owned()]), Some("SingleStack")),
        IpFamilies::DualStack => (
            Some(vec!["IPv4".to_owned(), "IPv6".to_owned()]),
            Some("PreferDualStack"),
        ),
    };
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(meta::selector(ctx, "quay-app")),
            ports: Some(vec![ServicePort {
                name: Some(METRICS_PORT_NAME.to_owned()),
                protocol: Some("TCP".to_owned()),
                port: METRICS_PORT,
                target_port: Some(IntOrString::Int(METRICS_PORT)),
                ..Default::default()
            }]),
            ip_families,
            ip_family_policy: ip_family_policy.map(str::to_owned),
            ..Default::default()
        }),
        status: None,
    }
}

fn service_monitor(ctx: &RenderContext<'_>) -> ServiceMonitor {
    ServiceMonitor {
        metadata: meta::object_meta(ctx, "quay-metrics-monitor", COMPONENT),
        spec: ServiceMonitorSpec {
            endpoints: vec![ServiceMonitorEndpoint {
                port: METRICS_PORT_NAME.to_owned(),
            }],
            // The registry label keeps other registries' metrics Services in the namespace out.
            selector: LabelSelector {
                match_labels: Some(meta::selector(ctx, COMPONENT)),
                match_expressions: None,
            },
            namespace_selector: None,
        },
    }
}

fn prometheus_rule(ctx: &RenderContext<'_>) -> PrometheusRule {
    let mut metadata = meta::object_meta(ctx, "quay-prometheus-rules", COMPONENT);
    metadata.labels.get_or_insert_with(BTreeMap::new).extend([
        ("prometheus".to_owned(), "k8s".to_owned()),
        ("role".to_owned(), "alert-rules".to_owned()),
    ]);
    let expr = format!(
        "increase(kube_pod_container_status_restarts_total{{namespace=\"{ns}\", pod=~\"{app}-.*\"}}[1h]) > 5",
        ns = ctx.namespace,
        app = ctx.object_name("quay-app"),
    );
    PrometheusRule {
        metadata,
        spec: PrometheusRuleSpec {
            groups: vec![PrometheusRuleGroup {
                name: "quay-alerts.rules".to_owned(),
                rules: vec![PrometheusAlertRule {
                    alert: "QuayPodFrequentlyRestarting".to_owned(),
                    expr,
                    for_: Some("10m".to_owned()),
                    labels: BTreeMap::from([("severity".to_owned(), "warning".to_owned())]),
                    annotations: BTreeMap::from([
                        (
                            "description".to_owned(),
                            "Pod {{$labels.namespace}}/{{$labels.pod}} was restarted {{$value}} times within the last hour"
                                .to_owned(),
                        ),
                        (
                            "message".to_owned(),
                            "Quay Pod is restarting frequently".to_owned(),
                        ),
                        ("severity_level".to_owned(), "warning".to_owned()),
                    ]),
                }],
            }],
        },
    }
}

fn role(ctx: &RenderContext<'_>, name: &str) -> Role {
    Role {
        metadata: named(ctx, name),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec![
                "services".to_owned(),
                "endpoints".to_owned(),
                "pods".to_owned(),
            ]),
            verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
            ..Default::default()
        }]),
    }
}

fn role_binding(
    ctx: &RenderContext<'_>,
    name: &str,
    role: &str,
    service_account: &str,
) -> RoleBinding {
    RoleBinding {
        metadata: named(ctx, name),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: role.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: service_account.to_owned(),
            namespace: Some(MONITORING_NAMESPACE.to_owned()),
            api_group: None,
        }]),
    }
}

/// The Grafana dashboard ConfigMap. It lives in the console's namespace, so it carries no owner reference (owners
/// must be in the same namespace); the controller deletes it with the registry.
fn dashboard(ctx: &RenderContext<'_>, metrics_service: &str) -> ConfigMap {
    let mut metadata = meta::object_meta(ctx, "grafana-dashboard-quay", COMPONENT);
    metadata.namespace = Some(DASHBOARD_NAMESPACE.to_owned());
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(DASHBOARD_LABEL.to_owned(), "true".to_owned());
    ConfigMap {
        metadata,
        data: Some(BTreeMap::from([(
            DASHBOARD_KEY.to_owned(),
            dashboard_json(&ctx.namespace, &ctx.name, metrics_service),
        )])),
        ..Default::default()
    }
}

/// The dashboard with the registry's namespace, name and metrics Service written in. Namespaces and object names
/// are DNS labels, so they need no JSON escaping.
pub fn dashboard_json(namespace: &str, registry: &str, metrics_service: &str) -> String {
    let template = dashboard_template();
    let mut out =
        String::with_capacity(template.len + 16 * (namespace.len() + metrics_service.len()));
    for piece in &template.pieces {
        out.push_str(match piece {
            Piece::Text(text) => text,
            Piece::Namespace => namespace,
            Piece::Service => metrics_service,
            Piece::Registry => registry,
        });
    }
    out
}

/// The dashboard template, cut at its placeholders once: every reconcile renders it.
struct DashboardTemplate {
    pieces: Vec<Piece>,
    len: usize,
}

enum Piece {
    Text(&'static str),
    Namespace,
    Service,
    Registry,
}

fn dashboard_template() -> &'static DashboardTemplate {
    static TEMPLATE: std::sync::OnceLock<DashboardTemplate> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let mut rest = DASHBOARD_TEMPLATE;
        let mut pieces = Vec::new();
        loop {
            let next = ["$namespace", "$service", "$registry"]
                .into_iter()
                .filter_map(|marker| rest.find(marker).map(|at| (at, marker)))
                .min_by_key(|(at, _)| *at);
            let Some((at, marker)) = next else {
                pieces.push(Piece::Text(rest));
                break;
            };
            pieces.push(Piece::Text(&rest[..at]));
            pieces.push(match marker {
                "$namespace" => Piece::Namespace,
                "$service" => Piece::Service,
                _ => Piece::Registry,
            });
            rest = &rest[at + marker.len()..];
        }
        DashboardTemplate {
            pieces,
            len: DASHBOARD_TEMPLATE.len(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_is_valid_json_with_every_variable_substituted() {
        let json = dashboard_json("registry-ns", "reg", "reg-quay-metrics");
        let value: serde_json::Value = serde_json::from_str(&json).expect("dashboard is JSON");
        assert_eq!(value["title"], "Quay - registry-ns - reg");
        assert!(!json.contains("$namespace"), "{json}");
        assert!(!json.contains("$service"), "{json}");
        assert!(!json.contains("$registry"), "{json}");
        // The data source stays a variable: the console picks the cluster's Prometheus.
        assert!(json.contains("$datasource"));
    }

    #[test]
    fn dashboard_has_the_panels_the_manual_lists() {
        let json = dashboard_json("ns", "reg", "reg-quay-metrics");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let exprs: Vec<String> = value["panels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["targets"].as_array().unwrap().clone())
            .map(|t| t["expr"].as_str().unwrap().to_owned())
            .collect();
        for metric in [
            "quay_org_rows",
            "quay_repository_rows",
            "quay_user_rows",
            "quay_robot_rows",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "quay_registry_image_pulls_total",
            "quay_registry_image_pushes_total",
            "quay_authentication_attempts_total",
            "quay_request_duration_seconds_count",
            "quay_request_duration_seconds_bucket",
        ] {
            assert!(
                exprs.iter().any(|e| e.contains(metric)),
                "no panel queries {metric}"
            );
        }
        for expr in &exprs {
            assert!(
                expr.contains(r#"namespace="ns", service="reg-quay-metrics""#),
                "panel query not scoped to the registry: {expr}"
            );
        }
    }
}
