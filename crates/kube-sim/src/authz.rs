//! Optional RBAC authorization for requests made as a ServiceAccount.
//!
//! Off by default. A test registers a bearer token for a ServiceAccount
//! (`Simulator::add_service_account_token`); requests carrying that token are then checked against the
//! Roles, ClusterRoles, RoleBindings and ClusterRoleBindings stored in the simulator, as kube-apiserver's RBAC
//! authorizer does, and denied with its 403 message. Requests with any other token (or none) stay unrestricted,
//! so fixtures and assertions keep working. Creating or updating a Role or ClusterRole, and binding one, is also
//! subject to RBAC's escalation prevention: the requester must hold every permission it grants.
//!
//! Not implemented: the `bind` and `escalate` verbs, aggregated ClusterRoles, `nonResourceURLs` (non-resource
//! requests such as discovery are always allowed, as `system:discovery` allows them), and authorization of a
//! list by a `metadata.name` field selector against `resourceNames`.

use crate::errors::ApiError;
use crate::server::ResourceRequest;
use crate::store::State;
use serde_json::Value;
use std::collections::HashMap;

/// The ServiceAccount a token authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccount {
    pub fn user_name(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// Tokens registered for ServiceAccounts.
#[derive(Debug, Clone, Default)]
pub struct Authorization {
    pub tokens: HashMap<String, ServiceAccount>,
}

/// What a request asks to do.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    /// `plural` or `plural/subresource`.
    pub resource: String,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

impl Authorization {
    /// The ServiceAccount of an `Authorization: Bearer <token>` header, if the token is registered.
    pub fn subject(&self, authorization_header: &str) -> Option<&ServiceAccount> {
        let token = authorization_header.strip_prefix("Bearer ")?.trim();
        self.tokens.get(token)
    }
}

/// Checks a resource request made as `sa`; `body` is the request body (for escalation checks).
pub fn check(
    state: &State,
    sa: &ServiceAccount,
    rr: &ResourceRequest,
    verb: &str,
    body: &[u8],
) -> Result<(), ApiError> {
    let resource = match &rr.subresource {
        Some(sub) => format!("{}/{sub}", rr.plural),
        None => rr.plural.clone(),
    };
    let attrs = Attributes {
        verb,
        group: &rr.group,
        resource,
        namespace: rr.namespace.as_deref(),
        name: rr.name.as_deref(),
    };
    if !allowed(state, sa, &attrs) {
        return Err(forbidden(sa, &attrs));
    }
    if matches!(verb, "create" | "update" | "patch") && rr.group == "rbac.authorization.k8s.io" {
        check_escalation(state, sa, rr, body)?;
    }
    Ok(())
}

fn forbidden(sa: &ServiceAccount, a: &Attributes<'_>) -> ApiError {
    let what = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let subject = match a.name {
        Some(n) => format!("{what} \"{n}\""),
        None => what,
    };
    let place = match a.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_owned(),
    };
    ApiError::Forbidden {
        message: format!(
            "{subject} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\"{place}",
            sa.user_name(),
            a.verb,
            a.resource,
            a.group
        ),
        cause: None,
    }
}

/// The rules that apply to `sa` in `namespace` (cluster-wide rules included), or at the cluster scope.
fn rules_for(state: &State, sa: &ServiceAccount, namespace: Option<&str>) -> Vec<Value> {
    let list = |plural: &str, ns: Option<&str>| -> Vec<Value> {
        match state.find("rbac.authorization.k8s.io", plural) {
            Some(rd) => state.list(&rd, ns).into_iter().cloned().collect(),
            None => vec![],
        }
    };
    let role_rules = |kind: &str, name: &str, ns: Option<&str>| -> Vec<Value> {
        let (plural, ns) = if kind == "ClusterRole" {
            ("clusterroles", None)
        } else {
            ("roles", ns)
        };
        list(plural, ns)
            .into_iter()
            .find(|r| r.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    };
    let mut rules = Vec::new();
    for binding in list("clusterrolebindings", None) {
        if binds(&binding, sa) {
            let name = binding
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            rules.extend(role_rules("ClusterRole", name, None));
        }
    }
    if let Some(ns) = namespace {
        for binding in list("rolebindings", Some(ns)) {
            if binds(&binding, sa) {
                let kind = binding
                    .pointer("/roleRef/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let name = binding
                    .pointer("/roleRef/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                rules.extend(role_rules(kind, name, Some(ns)));
            }
        }
    }
    rules
}

fn binds(binding: &Value, sa: &ServiceAccount) -> bool {
    let binding_ns = binding
        .pointer("/metadata/namespace")
        .and_then(Value::as_str);
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|s| {
            let field = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("");
            match field("kind") {
                "ServiceAccount" => {
                    // A RoleBinding's ServiceAccount subject without a namespace means the binding's namespace.
                    let ns = Some(field("namespace"))
                        .filter(|n| !n.is_empty())
                        .or(binding_ns);
                    field("name") == sa.name && ns == Some(sa.namespace.as_str())
                }
                "User" => field("name") == sa.user_name(),
                "Group" => {
                    let group = field("name");
                    group == "system:serviceaccounts"
                        || group == format!("system:serviceaccounts:{}", sa.namespace)
                        || group == "system:authenticated"
                }
                _ => false,
            }
        })
}

fn strings(rule: &Value, key: &str) -> Vec<String> {
    rule.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn rule_allows(rule: &Value, a: &Attributes<'_>) -> bool {
    let has = |key: &str, want: &str| strings(rule, key).iter().any(|v| v == "*" || v == want);
    let names = strings(rule, "resourceNames");
    let name_ok = names.is_empty() || a.name.is_some_and(|n| names.iter().any(|x| x == n));
    has("apiGroups", a.group) && has("resources", &a.resource) && has("verbs", a.verb) && name_ok
}

pub fn allowed(state: &State, sa: &ServiceAccount, a: &Attributes<'_>) -> bool {
    rules_for(state, sa, a.namespace)
        .iter()
        .any(|r| rule_allows(r, a))
}

/// RBAC escalation prevention: a Role, ClusterRole or binding may only grant what the requester holds.
fn check_escalation(
    state: &State,
    sa: &ServiceAccount,
    rr: &ResourceRequest,
    body: &[u8],
) -> Result<(), ApiError> {
    // Apply patches from kube-rs are JSON; a body that is not (YAML, a JSON patch) is not checked.
    let Ok(object) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let namespace = rr.namespace.as_deref();
    let granted: Vec<Value> = match rr.plural.as_str() {
        "roles" | "clusterroles" => object
            .get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default(),
        "rolebindings" | "clusterrolebindings" => {
            let kind = object
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = object
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let (plural, ns) = if kind == "ClusterRole" {
                ("clusterroles", None)
            } else {
                ("roles", namespace)
            };
            state
                .find("rbac.authorization.k8s.io", plural)
                .and_then(|rd| state.get_raw(&rd, ns.unwrap_or(""), name).cloned())
                .and_then(|r| r.get("rules").and_then(Value::as_array).cloned())
                .unwrap_or_default()
        }
        _ => return Ok(()),
    };
    for rule in &granted {
        for group in strings(rule, "apiGroups") {
            for resource in strings(rule, "resources") {
                for verb in strings(rule, "verbs") {
                    let names = strings(rule, "resourceNames");
                    let held = |name: Option<&str>| {
                        allowed(
                            state,
                            sa,
                            &Attributes {
                                verb: &verb,
                                group: &group,
                                resource: resource.clone(),
                                namespace,
                                name,
                            },
                        )
                    };
                    let ok = if names.is_empty() {
                        held(None)
                    } else {
                        names.iter().all(|n| held(Some(n)))
                    };
                    if !ok {
                        let what = rr.name.clone().unwrap_or_default();
                        return Err(ApiError::Forbidden {
                            message: format!(
                                "{}.rbac.authorization.k8s.io \"{what}\" is forbidden: user \"{}\" is attempting to \
                                 grant RBAC permissions not currently held: {{APIGroups:[\"{group}\"], \
                                 Resources:[\"{resource}\"], Verbs:[\"{verb}\"]}}",
                                rr.plural,
                                sa.user_name()
                            ),
                            cause: None,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}
