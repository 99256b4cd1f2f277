//! A minimal `/openapi/v3` (spec §1.4): per group-version documents whose paths carry a PATCH
//! operation with `x-kubernetes-group-version-kind` and a `fieldValidation` query parameter —
//! exactly what kubectl's query-param verifier looks for, so `--validate=strict` passes and
//! kubectl sends `fieldValidation=Strict`. CRD versions also carry their schema under
//! `components.schemas` (with descriptions) so `kubectl explain` works for custom resources.

use crate::discovery::served_gvs;
use crate::resources::ResourceDef;
use serde_json::{Map, Value, json};

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
