//! A minimal `/openapi/v3` (spec §1.4): per group-version documents whose paths carry a PATCH
//! operation with `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter —
//! exactly what kubectl's query-param verifier looks for, so `--validate=strict` passes and
//! kubectl sends `fieldValidation=Strict`. CRD versions also carry their schema under
//! `components.schemas` (with descriptions) so `kubectl explain` works for custom resources.

use crate::discovery::served_gvs;
use crate::resources::ResourceDef;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::OnceLock;

/// Root schema name and all definitions of a built-in kind, from k8s-openapi's schemars
/// impls (the same descriptions kube-apiserver publishes), so `kubectl explain` works for
/// built-ins too.
type Generated = (String, Map<String, Value>);

fn gen_for<T: schemars::JsonSchema>() -> Generated {
    let mut g = schemars::generate::SchemaSettings::openapi3().into_generator();
    let _ = g.subschema_for::<T>();
    (T::schema_name().into_owned(), g.take_definitions(true))
}

fn builtin_schemas() -> &'static HashMap<(&'static str, &'static str), Generated> {
    static CACHE: OnceLock<HashMap<(&'static str, &'static str), Generated>> = OnceLock::new();
    CACHE.get_or_init(|| {
        use k8s_openapi::api::{apps, autoscaling, batch, coordination, core, rbac, storage};
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
        let mut m = HashMap::new();
        m.insert(("", "Namespace"), gen_for::<core::v1::Namespace>());
        m.insert(("", "Secret"), gen_for::<core::v1::Secret>());
        m.insert(("", "ConfigMap"), gen_for::<core::v1::ConfigMap>());
        m.insert(("", "Service"), gen_for::<core::v1::Service>());
        m.insert(("", "ServiceAccount"), gen_for::<core::v1::ServiceAccount>());
        m.insert(("", "PersistentVolumeClaim"), gen_for::<core::v1::PersistentVolumeClaim>());
        m.insert(("", "Pod"), gen_for::<core::v1::Pod>());
        m.insert(("", "Event"), gen_for::<core::v1::Event>());
        m.insert(("apps", "Deployment"), gen_for::<apps::v1::Deployment>());
        m.insert(("apps", "ReplicaSet"), gen_for::<apps::v1::ReplicaSet>());
        m.insert(("batch", "Job"), gen_for::<batch::v1::Job>());
        m.insert(("autoscaling", "HorizontalPodAutoscaler"), gen_for::<autoscaling::v2::HorizontalPodAutoscaler>());
        m.insert(("rbac.authorization.k8s.io", "Role"), gen_for::<rbac::v1::Role>());
        m.insert(("rbac.authorization.k8s.io", "RoleBinding"), gen_for::<rbac::v1::RoleBinding>());
        m.insert(("rbac.authorization.k8s.io", "ClusterRole"), gen_for::<rbac::v1::ClusterRole>());
        m.insert(("rbac.authorization.k8s.io", "ClusterRoleBinding"), gen_for::<rbac::v1::ClusterRoleBinding>());
        m.insert(("coordination.k8s.io", "Lease"), gen_for::<coordination::v1::Lease>());
        m.insert(("storage.k8s.io", "StorageClass"), gen_for::<storage::v1::StorageClass>());
        m.insert(("apiextensions.k8s.io", "CustomResourceDefinition"), gen_for::<CustomResourceDefinition>());
        m
    })
}

pub fn gv_hash(resources: &[ResourceDef], key: &str) -> String {
    let doc = gv_document(resources, key)
        .map(|d| d.to_string())
        .unwrap_or_default();
    let h = doc.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    });
    format!("{h:016X}{h:016X}")
}

pub fn root(resources: &[ResourceDef]) -> Value {
    let mut paths = Map::new();
    for key in served_gvs(resources).keys() {
        paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", gv_hash(resources, key))}),
        );
    }
    json!({"paths": paths})
}

fn reversed_group(group: &str) -> String {
    if group.is_empty() {
        "io.k8s.api.core".into()
    } else {
        let mut parts: Vec<&str> = group.split('.').collect();
        parts.reverse();
        parts.join(".")
    }
}

/// The document for `key` ("api/v1" or "apis/<g>/<v>").
pub fn gv_document(resources: &[ResourceDef], key: &str) -> Option<Value> {
    let (group, version) = served_gvs(resources).get(key)?.clone();
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for r in resources
        .iter()
        .filter(|r| r.group == group && r.versions.contains(&version))
    {
        let gvk = json!({"group": group, "version": version, "kind": r.kind});
        let op = |action: &str| {
            json!({
                "operationId": format!("patch{}", r.kind),
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                    {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}
                ],
                "responses": {"200": {"description": "OK"}}
            })
        };
        let item = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        paths.insert(
            item,
            json!({"patch": op("patch"), "put": op("put"), "get": op("get")}),
        );
        if r.crd.is_none()
            && let Some((root, defs)) = builtin_schemas().get(&(r.group.as_str(), r.kind.as_str()))
        {
            for (k, v) in defs {
                schemas.insert(k.clone(), v.clone());
            }
            if let Some(s) = schemas.get_mut(root) {
                s["x-kubernetes-group-version-kind"] = json!([gvk]);
            }
            continue;
        }
        let schema_name = format!("{}.{}.{}", reversed_group(&r.group), version, r.kind);
        let mut schema = r.schema(&version).cloned().unwrap_or_else(|| {
            json!({"type": "object", "description": format!("{} is a built-in kind served by kube-sim (schema not published).", r.kind),
                   "x-kubernetes-preserve-unknown-fields": true})
        });
        schema["x-kubernetes-group-version-kind"] = json!([gvk]);
        schemas.insert(schema_name, schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": schemas}
    }))
}

/// Fields of a built-in object that its published schema does not declare (for
/// `fieldValidation=Strict`), as dotted paths. `None` when the kind has no schema here.
pub fn unknown_builtin_fields(group: &str, kind: &str, obj: &Value) -> Option<Vec<String>> {
    let (root, defs) = builtin_schemas().get(&(group, kind))?;
    let mut out = vec![];
    let schema = defs.get(root)?;
    walk_unknown(obj, schema, defs, "", &mut out, 0);
    Some(out)
}

/// Drop fields the built-in kind's schema does not declare: the apiserver decodes built-ins
/// into typed structs, so unknown fields are lost (silently, unless Strict). Returns false
/// when the kind has no schema here.
pub fn prune_builtin(group: &str, kind: &str, obj: &mut Value) -> bool {
    let Some((root, defs)) = builtin_schemas().get(&(group, kind)) else {
        return false;
    };
    let Some(schema) = defs.get(root) else {
        return false;
    };
    prune_walk(obj, schema, defs, 0);
    true
}

fn prune_walk(v: &mut Value, s: &Value, defs: &Map<String, Value>, depth: usize) {
    if depth > 64 {
        return;
    }
    let s = resolve(s, defs);
    match v {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                m.retain(|k, _| props.contains_key(k));
                for (k, child) in m.iter_mut() {
                    prune_walk(child, &props[k], defs, depth + 1);
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for child in m.values_mut() {
                    prune_walk(child, ap, defs, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for it in items.iter_mut() {
                    prune_walk(it, is, defs, depth + 1);
                }
            }
        }
        _ => {}
    }
}

fn resolve<'a>(mut s: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    for _ in 0..16 {
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            match r.rsplit('/').next().and_then(|n| defs.get(n)) {
                Some(t) => s = t,
                None => return s,
            }
        } else if let Some(one) = s
            .get("allOf")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 1)
        {
            s = &one[0];
        } else {
            return s;
        }
    }
    s
}

fn walk_unknown(
    v: &Value,
    s: &Value,
    defs: &Map<String, Value>,
    path: &str,
    out: &mut Vec<String>,
    depth: usize,
) {
    if depth > 64 {
        return;
    }
    let s = resolve(s, defs);
    match v {
        Value::Object(m) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, child) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match props.get(k) {
                        Some(ps) => walk_unknown(child, ps, defs, &p, out, depth + 1),
                        None => out.push(p),
                    }
                }
            } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk_unknown(child, ap, defs, &p, out, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = s.get("items") {
                for (i, it) in items.iter().enumerate() {
                    walk_unknown(it, is, defs, &format!("{path}[{i}]"), out, depth + 1);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_unknown_fields() {
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {"replica": 1, "selector": {"matchLabels": {"a": "b"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolicy": "Always", "bogus": 1}]}}}});
        let u = unknown_builtin_fields("apps", "Deployment", &d).unwrap();
        assert_eq!(
            u,
            vec!["spec.replica", "spec.template.spec.containers[0].bogus"]
        );
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "dg=="}, "stringData": {"x": "y"}, "type": "Opaque"});
        assert_eq!(
            unknown_builtin_fields("", "Secret", &s).unwrap(),
            Vec::<String>::new()
        );
    }
}
