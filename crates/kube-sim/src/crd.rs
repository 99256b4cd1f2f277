//! CustomResourceDefinitions: turning a CRD into a served resource, CRD status
//! (NamesAccepted/Established), structural pruning and schema defaults (spec §5), and the
//! optional CRD bundles (OpenShift Route/APIServer, ObjectBucketClaim, Prometheus operator).

use crate::resources::{CrdInfo, GenerationPolicy, ResourceDef};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Build the served resource for a CRD object (`None` if it is malformed).
pub fn resource_from_crd(crd: &Value) -> Option<ResourceDef> {
    let spec = crd.get("spec")?;
    let names = spec.get("names")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    let strs = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut versions: Vec<(bool, String)> = vec![];
    let mut schemas = BTreeMap::new();
    let mut status = false;
    let mut scale = false;
    for v in spec.get("versions")?.as_array()? {
        if !v.get("served").and_then(Value::as_bool).unwrap_or(false) {
            continue;
        }
        let name = s(v, "name")?;
        let storage = v.get("storage").and_then(Value::as_bool).unwrap_or(false);
        if let Some(sc) = v.pointer("/schema/openAPIV3Schema") {
            schemas.insert(name.clone(), sc.clone());
        }
        if v.pointer("/subresources/status").is_some() {
            status = true;
        }
        if v.pointer("/subresources/scale").is_some() {
            scale = true;
        }
        versions.push((storage, name));
    }
    if versions.is_empty() {
        return None;
    }
    // Storage version first (it is the preferred version for discovery here).
    versions.sort_by_key(|(storage, _)| !*storage);
    let crd_name = crd.pointer("/metadata/name")?.as_str()?.to_string();
    Some(ResourceDef {
        group,
        versions: versions.into_iter().map(|(_, n)| n).collect(),
        singular: s(names, "singular").unwrap_or_else(|| kind.to_lowercase()),
        list_kind: s(names, "listKind").unwrap_or_else(|| format!("{kind}List")),
        plural,
        kind,
        namespaced: spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
        short_names: strs(names.get("shortNames")),
        categories: strs(names.get("categories")),
        status_subresource: status,
        scale_subresource: scale,
        generation: GenerationPolicy::NonMetadata,
        crd: Some(CrdInfo {
            crd_name,
            schemas: std::sync::Arc::new(schemas),
        }),
        return_deleted_object: false,
    })
}

/// The status the apiextensions controllers write right after a CRD is accepted.
pub fn established_status(crd: &Value, now: &str) -> Value {
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool).unwrap_or(false))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let mut accepted = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    if let Some(m) = accepted.as_object_mut()
        && !m.contains_key("listKind")
        && let Some(k) = m.get("kind").and_then(Value::as_str)
    {
        let lk = format!("{k}List");
        m.insert("listKind".into(), json!(lk));
    }
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now}
        ],
        "acceptedNames": accepted,
        "storedVersions": storage,
    })
}

const OBJECT_META_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Apply schema defaults then prune unknown fields (apiextensions-apiserver order: default,
/// then prune). Root `apiVersion`/`kind`/`metadata` are kept; metadata is cut to ObjectMeta.
pub fn default_and_prune(obj: &mut Value, schema: &Value) {
    apply_defaults(obj, schema);
    prune(obj, schema, true);
    if let Some(md) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        md.retain(|k, _| OBJECT_META_FIELDS.contains(&k.as_str()));
    }
}

/// Fields present in `before` but pruned from `after` (for `fieldValidation=Strict`),
/// as dotted paths like `spec.unknown` or `spec.items[0].x`. `metadata` is not checked.
pub fn unknown_fields(before: &Value, after: &Value, prefix: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (k, bv) in b {
                if prefix.is_empty() && k == "metadata" {
                    continue;
                }
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                match a.get(k) {
                    Some(av) => unknown_fields(bv, av, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) => {
            for (i, (bv, av)) in b.iter().zip(a.iter()).enumerate() {
                unknown_fields(bv, av, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn apply_defaults(v: &mut Value, schema: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    if let Some(d) = ps.get("default")
                        && m.get(k).is_none_or(|x| {
                            x.is_null()
                                && !ps.get("nullable").and_then(Value::as_bool).unwrap_or(false)
                        })
                    {
                        m.insert(k.clone(), d.clone());
                    }
                    if let Some(child) = m.get_mut(k) {
                        apply_defaults(child, ps);
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for child in m.values_mut() {
                    apply_defaults(child, ap);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for it in items {
                    apply_defaults(it, is);
                }
            }
        }
        _ => {}
    }
}

fn prune(v: &mut Value, schema: &Value, root: bool) {
    // `additionalProperties: true` keeps every key too (not structural, but seen in the wild).
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || schema.get("additionalProperties") == Some(&Value::Bool(true));
    let embedded = schema
        .get("x-kubernetes-embedded-resource")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let addl = schema.get("additionalProperties").filter(|a| a.is_object());
            if let Some(ap) = addl {
                for child in m.values_mut() {
                    prune(child, ap, false);
                }
                return;
            }
            let keep_meta = root || embedded;
            let empty = Map::new();
            let props = props.unwrap_or(&empty);
            if !preserve {
                m.retain(|k, _| {
                    props.contains_key(k)
                        || (keep_meta && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
                });
            }
            for (k, ps) in props {
                // metadata of the object (and of embedded resources) is ObjectMeta, not
                // schema-pruned; apiVersion/kind are kept as they are.
                if keep_meta && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(child) = m.get_mut(k) {
                    prune(child, ps, false);
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for it in items {
                    prune(it, is, false);
                }
            }
        }
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn crd(
    group: &str,
    plural: &str,
    kind: &str,
    scope: &str,
    short: &[&str],
    version: &str,
    schema: Value,
    status: bool,
) -> Value {
    let mut v = json!({
        "name": version, "served": true, "storage": true,
        "schema": {"openAPIV3Schema": schema},
    });
    if status {
        v["subresources"] = json!({"status": {}});
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List"), "shortNames": short},
            "scope": scope,
            "versions": [v],
        }
    })
}

fn obj(desc: &str, props: Value) -> Value {
    json!({"type": "object", "description": desc, "properties": props})
}

fn open(desc: &str) -> Value {
    json!({"type": "object", "description": desc, "x-kubernetes-preserve-unknown-fields": true})
}

fn string(desc: &str) -> Value {
    json!({"type": "string", "description": desc})
}

fn conditions() -> Value {
    json!({"type": "array", "description": "Conditions of this object.", "items": {"type": "object", "properties": {
        "type": {"type": "string"}, "status": {"type": "string"}, "reason": {"type": "string"},
        "message": {"type": "string"}, "lastTransitionTime": {"type": "string", "format": "date-time"}
    }}})
}

/// OpenShift `route.openshift.io/v1` Route (shape of openshift/api's routes CRD, trimmed).
pub fn route_crd() -> Value {
    let schema = obj(
        "A route allows developers to expose services through an HTTP(S) aware load balancing and proxy layer via a public DNS entry.",
        json!({
            "apiVersion": string("APIVersion defines the versioned schema of this representation of an object."),
            "kind": string("Kind is a string value representing the REST resource this object represents."),
            "metadata": {"type": "object"},
            "spec": obj("spec is the desired state of the route", json!({
                "host": string("host is an alias/DNS that points to the service. Optional. If not specified a route name will typically be automatically chosen."),
                "subdomain": string("subdomain is a DNS subdomain that is requested within the ingress controller's domain."),
                "path": string("path that the router watches for, to route traffic for to the service. Optional"),
                "to": obj("to is an object the route should use as the primary backend.", json!({
                    "kind": string("The kind of target that the route is referring to. Currently, only 'Service' is allowed"),
                    "name": string("name of the service/target that is being referred to. e.g. name of the service"),
                    "weight": {"type": "integer", "format": "int32", "description": "weight as an integer between 0 and 256, default 100"}
                })),
                "port": obj("If specified, the port to be used by the router.", json!({
                    "targetPort": {"x-kubernetes-int-or-string": true, "description": "The target port on pods selected by the service this route points to."}
                })),
                "tls": obj("The tls field provides the ability to configure certificates and termination for the route.", json!({
                    "termination": string("termination indicates termination type: edge, passthrough or reencrypt."),
                    "insecureEdgeTerminationPolicy": string("insecureEdgeTerminationPolicy indicates the desired behavior for insecure connections to a route."),
                    "certificate": string("certificate provides certificate contents."),
                    "key": string("key provides key file contents"),
                    "caCertificate": string("caCertificate provides the cert authority certificate contents"),
                    "destinationCACertificate": string("destinationCACertificate provides the contents of the ca certificate of the final destination.")
                })),
                "wildcardPolicy": string("Wildcard policy if any for the route. Currently only 'Subdomain' or 'None' is allowed.")
            })),
            "status": obj("status is the current state of the route", json!({
                "ingress": {"type": "array", "description": "ingress describes the places where the route may be exposed.", "items": obj("RouteIngress holds information about the places where a route is exposed.", json!({
                    "host": string("Host is the host string under which the route is exposed; this value is required"),
                    "routerName": string("Name is a name chosen by the router to identify itself; this value is required"),
                    "routerCanonicalHostname": string("CanonicalHostname is the external host name for the router that can be used as a CNAME for the host requested for this route."),
                    "wildcardPolicy": string("Wildcard policy is the wildcard policy that was allowed where this route is exposed."),
                    "conditions": conditions()
                }))}
            }))
        }),
    );
    crd(
        "route.openshift.io",
        "routes",
        "Route",
        "Namespaced",
        &[],
        "v1",
        schema,
        true,
    )
}

/// `config.openshift.io/v1` APIServer (cluster-scoped; the operator reads TLS profile from it).
pub fn apiserver_config_crd() -> Value {
    let schema = obj(
        "APIServer holds configuration (like serving certificates, client CA and CORS domains) shared by all API servers in the system.",
        json!({"apiVersion": string("APIVersion"), "kind": string("Kind"), "metadata": {"type": "object"},
               "spec": open("spec holds user settable values for configuration"),
               "status": open("status holds observed values from the cluster.")}),
    );
    crd(
        "config.openshift.io",
        "apiservers",
        "APIServer",
        "Cluster",
        &[],
        "v1",
        schema,
        true,
    )
}

/// `objectbucket.io/v1alpha1` ObjectBucketClaim and ObjectBucket (lib-bucket-provisioner).
pub fn obc_crds() -> Vec<Value> {
    let claim = obj(
        "ObjectBucketClaim is the Schema for the objectbucketclaims API",
        json!({"apiVersion": string("APIVersion"), "kind": string("Kind"), "metadata": {"type": "object"},
        "spec": obj("ObjectBucketClaimSpec defines the desired state of ObjectBucketClaim", json!({
            "storageClassName": string("StorageClass names the StorageClass object representing the desired provisioner and parameters"),
            "bucketName": string("BucketName (not recommended) the name of the bucket."),
            "generateBucketName": string("GenerateBucketName (recommended) a prefix for a bucket name to be followed by a hyphen and 5 random characters."),
            "objectBucketName": string("ObjectBucketName is the name of the object bucket resource. This is the authoritative determination for binding."),
            "additionalConfig": {"type": "object", "description": "AdditionalConfig gives providers a location to set proprietary config values", "x-kubernetes-preserve-unknown-fields": true}
        })),
        "status": obj("ObjectBucketClaimStatus defines the observed state of ObjectBucketClaim", json!({
            "phase": string("ObjectBucketClaimStatusPhase is set by the controller to save the state of the provisioning process")
        }))}),
    );
    let bucket = obj(
        "ObjectBucket is the Schema for the objectbuckets API",
        json!({"apiVersion": string("APIVersion"), "kind": string("Kind"), "metadata": {"type": "object"},
            "spec": open("ObjectBucketSpec defines the desired state of ObjectBucket."),
            "status": open("ObjectBucketStatus defines the observed state of ObjectBucket")}),
    );
    vec![
        crd(
            "objectbucket.io",
            "objectbucketclaims",
            "ObjectBucketClaim",
            "Namespaced",
            &["obc", "obcs"],
            "v1alpha1",
            claim,
            true,
        ),
        crd(
            "objectbucket.io",
            "objectbuckets",
            "ObjectBucket",
            "Cluster",
            &["ob", "obs"],
            "v1alpha1",
            bucket,
            true,
        ),
    ]
}

/// `monitoring.coreos.com/v1` ServiceMonitor and PrometheusRule (Prometheus operator).
pub fn monitoring_crds() -> Vec<Value> {
    let sm = obj(
        "ServiceMonitor defines monitoring for a set of services.",
        json!({"apiVersion": string("APIVersion"), "kind": string("Kind"), "metadata": {"type": "object"},
               "spec": open("Specification of desired Service selection for target discovery by Prometheus.")}),
    );
    let pr = obj(
        "PrometheusRule defines recording and alerting rules for a Prometheus instance",
        json!({"apiVersion": string("APIVersion"), "kind": string("Kind"), "metadata": {"type": "object"},
               "spec": open("Specification of desired alerting rule definitions for Prometheus.")}),
    );
    vec![
        crd(
            "monitoring.coreos.com",
            "servicemonitors",
            "ServiceMonitor",
            "Namespaced",
            &["smon"],
            "v1",
            sm,
            false,
        ),
        crd(
            "monitoring.coreos.com",
            "prometheusrules",
            "PrometheusRule",
            "Namespaced",
            &["promrule"],
            "v1",
            pr,
            false,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_and_default() {
        let schema = json!({"type":"object","properties":{
            "spec":{"type":"object","properties":{"a":{"type":"integer","default":5},"free":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}},
            "status":{"type":"object","properties":{"ok":{"type":"boolean"}}}}});
        let mut o = json!({"apiVersion":"x/v1","kind":"X","metadata":{"name":"n","junk":1},
            "spec":{"unknown":1,"free":{"anything":{"x":1}}},"status":{"bogus":1}});
        default_and_prune(&mut o, &schema);
        assert_eq!(o["spec"], json!({"free":{"anything":{"x":1}},"a":5}));
        assert_eq!(o["status"], json!({}));
        assert!(o["metadata"].get("junk").is_none());
    }
}
