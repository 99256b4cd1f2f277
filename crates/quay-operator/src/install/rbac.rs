//! The operator's RBAC, derived from one table of the API calls its code makes.
//!
//! Each row of [`API_CALLS`] is one resource the controller touches, the verbs it uses on it, where, and which code
//! needs it. The Roles and ClusterRoles of every install mode (plain manifests, OLM bundle, Helm chart) are built
//! from this table only, so a new call site means a new row here, and `tests/rbac.rs` checks that every kind the
//! controller watches has one.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::InstallMode;
use crate::api::quayecosystem::QUAY_ECOSYSTEM_GROUP;

/// Where a permission is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// In every namespace the operator watches (its registries' namespaces).
    Watched,
    /// Only in the namespace the operator runs in (leader-election Lease, the router-domain probe Route).
    OperatorNamespace,
    /// Cluster-scoped resources (no namespace).
    Cluster,
}

/// Install modes a permission is needed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needed {
    Always,
    /// Only when the operator watches all namespaces: the monitoring component is rendered only then (it writes
    /// the console dashboard into `openshift-config-managed`).
    AllNamespacesOnly,
}

/// One resource the operator calls, with the verbs and the reason.
#[derive(Debug, Clone, Copy)]
pub struct ApiCall {
    pub group: &'static str,
    /// Plural resource name, `resource/subresource` for a subresource.
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub scope: Scope,
    /// Restricts the rule to these object names (empty: any name).
    pub resource_names: &'static [&'static str],
    pub needed: Needed,
    pub why: &'static str,
}

/// Verbs of a kind the controller renders: label-scoped watch cache (list, watch), server-side apply (patch; an
/// apply that creates is authorized as patch), and a read of the whole object when someone else wrote it since
/// the operator's apply (get: the caches keep no spec, context.rs `needs_apply`).
const OWNED: &[&str] = &["get", "list", "watch", "patch"];

const fn call(
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    scope: Scope,
    why: &'static str,
) -> ApiCall {
    ApiCall {
        group,
        resource,
        verbs,
        scope,
        resource_names: &[],
        needed: Needed::Always,
        why,
    }
}

/// Every API call of the operator (`quay-operator run`). `diff` and `demo` run with the user's credentials and are
/// not listed.
pub const API_CALLS: &[ApiCall] = &[
    call(
        "quay.redhat.com",
        "quayregistries",
        &["get", "list", "watch", "patch", "create"],
        Scope::Watched,
        "the controller's registry watch (run.rs); finalizer add/remove (reconcile.rs ensure_finalizer, cleanup); \
         the QuayEcosystem migration reads and creates the QuayRegistry it migrates to (ecosystem.rs)",
    ),
    call(
        "quay.redhat.com",
        "quayregistries/status",
        &["patch"],
        Scope::Watched,
        "conditions, currentVersion, registryEndpoint (reconcile.rs write_status)",
    ),
    call(
        QUAY_ECOSYSTEM_GROUP,
        "quayecosystems",
        &["list", "watch", "patch"],
        Scope::Watched,
        "the QuayEcosystem migration controller: watch and mark migrated ecosystems (ecosystem.rs)",
    ),
    call(
        QUAY_ECOSYSTEM_GROUP,
        "quayecosystems/status",
        &["patch"],
        Scope::Watched,
        "the QuayEcosystem migration controller reports progress (ecosystem.rs)",
    ),
    call(
        QUAY_ECOSYSTEM_GROUP,
        "quayecosystems/finalizers",
        &["update"],
        Scope::Watched,
        "the migration's copy Job has the QuayEcosystem as controller owner (blockOwnerDeletion): OpenShift's \
         OwnerReferencesPermissionEnforcement admission requires it",
    ),
    call(
        "",
        "secrets",
        &["get", "list", "watch", "create", "patch", "delete"],
        Scope::Watched,
        "rendered Secrets (apply, watch); config bundle (get, create when none is named, label for the watch); managed \
         keys (get, create, add missing keys, release on deletion); external TLS Secret (get, label, metadata \
         watch); bucket credentials (get); superseded config Secrets (delete)",
    ),
    call(
        "",
        "configmaps",
        &["get", "list", "watch", "patch"],
        Scope::Watched,
        "rendered ConfigMaps (apply, watch; CA bundles read from the cache; the console dashboard in \
         openshift-config-managed, all-namespaces mode only); bucket ConfigMap of the claim (get)",
    ),
    call(
        "",
        "serviceaccounts",
        OWNED,
        Scope::Watched,
        "rendered ServiceAccounts",
    ),
    call(
        "",
        "services",
        &["get", "list", "watch", "patch", "delete"],
        Scope::Watched,
        "rendered Services; the temporary old-database Service of a PostgreSQL major upgrade (deleted after it)",
    ),
    call(
        "",
        "persistentvolumeclaims",
        &["get", "list", "watch", "patch", "create", "delete"],
        Scope::Watched,
        "database volumes (apply, watch; release on deletion: ownerReference removed by patch); the QuayEcosystem \
         migration creates the new database volume (ecosystem.rs); the old volume after a PostgreSQL major upgrade, \
         deleted only on opt-in (postgres_upgrade.rs)",
    ),
    call(
        "",
        "pods",
        &["list"],
        Scope::Watched,
        "PostgreSQL major upgrade: metadata list of the old database's pods, to know they are gone \
         (postgres_upgrade.rs)",
    ),
    call(
        "",
        "events",
        &["create", "list", "watch"],
        Scope::Watched,
        "Events on registries (reconcile.rs record_event); ProvisioningFailed Events of database volumes (run.rs)",
    ),
    call(
        "rbac.authorization.k8s.io",
        "roles",
        OWNED,
        Scope::Watched,
        "the monitoring component's Roles for Prometheus",
    ),
    call(
        "rbac.authorization.k8s.io",
        "rolebindings",
        OWNED,
        Scope::Watched,
        "the monitoring component's RoleBindings for Prometheus",
    ),
    ApiCall {
        group: "",
        resource: "pods",
        verbs: &["get", "watch"],
        scope: Scope::Watched,
        resource_names: &[],
        needed: Needed::AllNamespacesOnly,
        why: "not called: held because the monitoring Roles grant get/list/watch on pods, endpoints and services \
              to Prometheus, and RBAC only lets a subject create a Role granting what it holds (escalation \
              prevention)",
    },
    ApiCall {
        group: "",
        resource: "endpoints",
        verbs: &["get", "list", "watch"],
        scope: Scope::Watched,
        resource_names: &[],
        needed: Needed::AllNamespacesOnly,
        why: "never called: held for the monitoring Roles (escalation prevention), as pods",
    },
    call(
        "apps",
        "deployments",
        &["get", "list", "watch", "patch", "update", "delete"],
        Scope::Watched,
        "Quay, Clair, mirror, database and Redis Deployments; the temporary old-database Deployment of a PostgreSQL \
         major upgrade (deleted after it); the QuayEcosystem migration restarts the legacy database with an admin \
         password (update)",
    ),
    call(
        "batch",
        "jobs",
        &["get", "list", "watch", "patch", "create", "delete"],
        Scope::Watched,
        "the migration Job (apply; a finished one is deleted before a new version's Job is created); PostgreSQL \
         upgrade Jobs (deleted when done); the QuayEcosystem migration's data copy Job (create)",
    ),
    call(
        "autoscaling",
        "horizontalpodautoscalers",
        OWNED,
        Scope::Watched,
        "the horizontalpodautoscaler component",
    ),
    call(
        "route.openshift.io",
        "routes",
        OWNED,
        Scope::Watched,
        "the route component (OpenShift)",
    ),
    call(
        "route.openshift.io",
        "routes/custom-host",
        &["create"],
        Scope::Watched,
        "OpenShift admission requires it to set spec.host on a Route",
    ),
    call(
        "route.openshift.io",
        "routes",
        &["create", "get", "list", "watch", "delete"],
        Scope::OperatorNamespace,
        "the start-up probe Route that reads the router's domain (route_probe.rs)",
    ),
    call(
        "route.openshift.io",
        "routes/custom-host",
        &["create"],
        Scope::OperatorNamespace,
        "the probe Route is created in the operator's namespace",
    ),
    call(
        "objectbucket.io",
        "objectbucketclaims",
        OWNED,
        Scope::Watched,
        "the objectstorage component (ObjectBucketClaim)",
    ),
    call(
        "monitoring.coreos.com",
        "servicemonitors",
        OWNED,
        Scope::Watched,
        "the monitoring component",
    ),
    call(
        "monitoring.coreos.com",
        "prometheusrules",
        OWNED,
        Scope::Watched,
        "the monitoring component",
    ),
    call(
        "networking.k8s.io",
        "ingresses",
        &["get", "list", "watch", "patch", "delete"],
        Scope::Watched,
        "exposure on plain Kubernetes: the managed Ingress (deleted when exposure switches to another kind)",
    ),
    call(
        "gateway.networking.k8s.io",
        "httproutes",
        &["get", "list", "watch", "patch", "delete"],
        Scope::Watched,
        "exposure on plain Kubernetes: the managed Gateway API HTTPRoute",
    ),
    call(
        "cert-manager.io",
        "certificates",
        &["get", "list", "watch", "patch", "delete"],
        Scope::Watched,
        "exposure on plain Kubernetes: the cert-manager Certificate feeding the TLS Secret",
    ),
    call(
        "coordination.k8s.io",
        "leases",
        &["get", "create", "update"],
        Scope::OperatorNamespace,
        "leader election (leader.rs)",
    ),
    call(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &["list", "watch"],
        Scope::Cluster,
        "metadata watch of CRDs: capabilities are re-discovered when an optional API appears or goes (run.rs)",
    ),
    ApiCall {
        group: "config.openshift.io",
        resource: "apiservers",
        verbs: &["get"],
        scope: Scope::Cluster,
        resource_names: &["cluster"],
        needed: Needed::Always,
        why: "the cluster TLS security profile, when tls is unmanaged (reconcile.rs cluster_facts)",
    },
    ApiCall {
        group: "",
        resource: "namespaces",
        verbs: &["get"],
        scope: Scope::Cluster,
        resource_names: &["openshift-config-managed"],
        needed: Needed::Always,
        why: "discovery: monitoring is managed only where the console dashboards namespace exists (run.rs)",
    },
];

/// A namespaced Role's or a ClusterRole's rules, with the object names used for them in every install method.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleRules {
    /// `ClusterRole` or `Role`.
    pub kind: &'static str,
    pub name: String,
    /// Namespace of a Role.
    pub namespace: Option<String>,
    pub rules: Vec<PolicyRule>,
}

/// Role names, the same in manifests, bundle and chart.
pub const REGISTRIES_ROLE: &str = "quay-operator-rs-registries";
pub const SELF_ROLE: &str = "quay-operator-rs-self";
pub const CLUSTER_ROLE: &str = "quay-operator-rs-cluster";

/// The calls of `scope` needed in `mode`.
pub fn calls(scope: Scope, all_namespaces: bool) -> impl Iterator<Item = &'static ApiCall> {
    API_CALLS
        .iter()
        .filter(move |c| c.scope == scope && (all_namespaces || c.needed == Needed::Always))
}

/// Rules for calls: one rule per (group, verbs, names), with its resources in table order.
pub fn rules<'a>(calls: impl Iterator<Item = &'a ApiCall>) -> Vec<PolicyRule> {
    let mut merged: BTreeMap<(String, Vec<String>, Vec<String>), Vec<String>> = BTreeMap::new();
    let mut order: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    for c in calls {
        let mut verbs: Vec<String> = c.verbs.iter().map(|v| v.to_string()).collect();
        verbs.sort();
        let names: Vec<String> = c.resource_names.iter().map(|n| n.to_string()).collect();
        let key = (c.group.to_owned(), verbs, names);
        let resources = merged.entry(key.clone()).or_insert_with(|| {
            order.push(key.clone());
            Vec::new()
        });
        if !resources.iter().any(|r| r == c.resource) {
            resources.push(c.resource.to_owned());
        }
    }
    order
        .into_iter()
        .map(|key| {
            let resources = merged.remove(&key).unwrap_or_default();
            let (group, verbs, names) = key;
            PolicyRule {
                api_groups: Some(vec![group]),
                resources: Some(resources),
                verbs,
                resource_names: (!names.is_empty()).then_some(names),
                ..Default::default()
            }
        })
        .collect()
}

/// The Roles and ClusterRoles of an install mode, all bound to the operator's ServiceAccount.
///
/// All namespaces: one ClusterRole for the registries' resources everywhere plus the cluster-scoped reads.
/// Own / single / multi namespace: a Role per watched namespace, and a ClusterRole with only the cluster-scoped
/// reads (no Secret, nothing namespaced). Both: a Role in the operator's namespace for the Lease and probe Route.
pub fn roles(mode: &InstallMode, operator_namespace: &str) -> Vec<RoleRules> {
    let all = matches!(mode, InstallMode::AllNamespaces);
    let mut out = Vec::new();
    let cluster_rules = rules(calls(Scope::Cluster, all));
    match mode {
        InstallMode::AllNamespaces => {
            let mut everything = rules(calls(Scope::Watched, true));
            everything.extend(cluster_rules);
            out.push(RoleRules {
                kind: "ClusterRole",
                name: REGISTRIES_ROLE.to_owned(),
                namespace: None,
                rules: everything,
            });
        }
        InstallMode::OwnNamespace | InstallMode::MultiNamespace(_) => {
            out.push(RoleRules {
                kind: "ClusterRole",
                name: CLUSTER_ROLE.to_owned(),
                namespace: None,
                rules: cluster_rules,
            });
            for namespace in mode.watched_namespaces(operator_namespace) {
                out.push(RoleRules {
                    kind: "Role",
                    name: REGISTRIES_ROLE.to_owned(),
                    namespace: Some(namespace),
                    rules: rules(calls(Scope::Watched, false)),
                });
            }
        }
    }
    out.push(RoleRules {
        kind: "Role",
        name: SELF_ROLE.to_owned(),
        namespace: Some(operator_namespace.to_owned()),
        rules: rules(calls(Scope::OperatorNamespace, all)),
    });
    out
}

/// Number of rules over all Roles and ClusterRoles of a mode.
pub fn rule_count(roles: &[RoleRules]) -> usize {
    roles.iter().map(|r| r.rules.len()).sum()
}

/// The table as text, for `quay-operator rbac`.
pub fn table_text() -> String {
    let mut out = String::from("GROUP\tRESOURCE\tVERBS\tSCOPE\tNAMES\tWHY\n");
    for c in API_CALLS {
        let scope = match (c.scope, c.needed) {
            (Scope::Watched, Needed::Always) => "watched namespaces",
            (Scope::Watched, Needed::AllNamespacesOnly) => "all-namespaces mode only",
            (Scope::OperatorNamespace, _) => "operator namespace",
            (Scope::Cluster, _) => "cluster",
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\n",
            if c.group.is_empty() { "core" } else { c.group },
            c.resource,
            c.verbs.join(","),
            scope,
            if c.resource_names.is_empty() {
                "*".to_owned()
            } else {
                c.resource_names.join(",")
            },
            c.why
        ));
    }
    out
}
