//! Built-in defaulting (spec §8.6), so diff-based reconcilers see the same noise a real
//! cluster adds, plus type-specific validation that real strategies enforce (Job and PVC
//! immutability).

use crate::errors::ApiError;
use crate::util::obj_mut;
use serde_json::{Value, json};

fn set_default(m: &mut serde_json::Map<String, Value>, k: &str, v: Value) {
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.into(), v);
    }
}

fn default_pod_spec(spec: &mut Value) {
    let Some(m) = spec.as_object_mut() else {
        return;
    };
    set_default(m, "restartPolicy", json!("Always"));
    set_default(m, "dnsPolicy", json!("ClusterFirst"));
    set_default(m, "schedulerName", json!("default-scheduler"));
    set_default(m, "terminationGracePeriodSeconds", json!(30));
    set_default(m, "securityContext", json!({}));
    for key in ["containers", "initContainers"] {
        if let Some(cs) = m.get_mut(key).and_then(Value::as_array_mut) {
            for c in cs {
                let Some(cm) = c.as_object_mut() else {
                    continue;
                };
                set_default(cm, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(cm, "terminationMessagePolicy", json!("File"));
                let image = cm
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let tag = image.rsplit('/').next().unwrap_or("");
                let latest = !tag.contains(':') && !image.contains('@') || tag.ends_with(":latest");
                set_default(
                    cm,
                    "imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                if let Some(ports) = cm.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        if let Some(pm) = p.as_object_mut() {
                            set_default(pm, "protocol", json!("TCP"));
                        }
                    }
                }
            }
        }
    }
}

/// Apply the registry's defaults for a built-in kind (create and update).
pub fn default_builtin(plural: &str, obj: &mut Value, cluster_ip_seq: u64) {
    match plural {
        "deployments" => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "replicas", json!(1));
            set_default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            if let Some(ps) = obj.pointer_mut("/spec/template/spec") {
                default_pod_spec(ps);
            }
        }
        "jobs" => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "backoffLimit", json!(6));
            set_default(spec, "completions", json!(1));
            set_default(spec, "parallelism", json!(1));
            set_default(spec, "completionMode", json!("NonIndexed"));
            set_default(spec, "suspend", json!(false));
            if let Some(ps) = obj.pointer_mut("/spec/template/spec") {
                default_pod_spec(ps);
                if let Some(m) = ps.as_object_mut() {
                    m.insert(
                        "restartPolicy".into(),
                        m.get("restartPolicy").cloned().unwrap_or(json!("Never")),
                    );
                }
            }
        }
        "pods" => {
            if let Some(ps) = obj.get_mut("spec") {
                default_pod_spec(ps);
            }
        }
        "services" => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            if spec.get("clusterIP").and_then(Value::as_str) != Some("None")
                && spec.get("clusterIP").is_none()
            {
                let ip = format!(
                    "10.96.{}.{}",
                    (cluster_ip_seq / 250) % 250,
                    cluster_ip_seq % 250 + 2
                );
                spec.insert("clusterIP".into(), json!(ip));
            }
            let ip = spec.get("clusterIP").cloned().unwrap_or(json!("None"));
            set_default(spec, "clusterIPs", json!([ip]));
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    if let Some(pm) = p.as_object_mut() {
                        set_default(pm, "protocol", json!("TCP"));
                        let port = pm.get("port").cloned().unwrap_or(Value::Null);
                        set_default(pm, "targetPort", port);
                    }
                }
            }
        }
        "secrets" => {
            let m = obj.as_object_mut().expect("object");
            set_default(m, "type", json!("Opaque"));
            // stringData is write-only: merged into data (base64) and dropped.
            if let Some(Value::Object(sd)) = m.remove("stringData") {
                use base64::Engine;
                let data = obj_mut(obj, "data");
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or("").to_string();
                    data.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(s)),
                    );
                }
            }
        }
        "persistentvolumeclaims" => {
            let spec = obj_mut(obj, "spec");
            set_default(spec, "volumeMode", json!("Filesystem"));
        }
        _ => {}
    }
}

/// Initial status a registry sets on create (status is reset for types with a status subresource).
pub fn initial_status(plural: &str, obj: &mut Value) {
    match plural {
        "namespaces" => {
            obj["status"] = json!({"phase": "Active"});
            let spec = obj_mut(obj, "spec");
            set_default(spec, "finalizers", json!(["kubernetes"]));
        }
        "persistentvolumeclaims" => obj["status"] = json!({"phase": "Pending"}),
        "pods" => obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
        "services" => obj["status"] = json!({"loadBalancer": {}}),
        "deployments" | "jobs" | "replicasets" | "horizontalpodautoscalers" => {
            obj["status"] = json!({})
        }
        _ => {}
    }
}

/// Update validation of built-in strategies: immutable Job template, PVC spec (except growth).
pub fn validate_update(
    plural: &str,
    kind: &str,
    group: &str,
    old: &Value,
    new: &Value,
) -> Result<(), ApiError> {
    let name = crate::util::name_of(new);
    // Fields the apps/v1, core and batch strategies make immutable.
    let immutable: &[(&str, &str, &str)] = &[
        ("deployments", "/spec/selector", "spec.selector"),
        ("replicasets", "/spec/selector", "spec.selector"),
        ("jobs", "/spec/selector", "spec.selector"),
        ("jobs", "/spec/completionMode", "spec.completionMode"),
        ("services", "/spec/clusterIP", "spec.clusterIP"),
    ];
    for (p, ptr, field) in immutable {
        if *p == plural && old.pointer(ptr).is_some() && old.pointer(ptr) != new.pointer(ptr) {
            let v = new.pointer(ptr).cloned().unwrap_or(Value::Null);
            return Err(ApiError::invalid(
                kind,
                group,
                &name,
                "FieldValueInvalid",
                field,
                &format!("Invalid value: {v}: field is immutable"),
            ));
        }
    }
    // ConfigMaps and Secrets marked immutable.
    if matches!(plural, "configmaps" | "secrets") && old.get("immutable") == Some(&json!(true)) {
        for f in ["data", "binaryData", "immutable"] {
            if old.get(f) != new.get(f) {
                return Err(ApiError::invalid(
                    kind,
                    group,
                    &name,
                    "FieldValueForbidden",
                    f,
                    "Forbidden: field is immutable when `immutable` is set",
                ));
            }
        }
    }
    match plural {
        "jobs" if old.pointer("/spec/template") != new.pointer("/spec/template") => {
            let v = new
                .pointer("/spec/template")
                .cloned()
                .unwrap_or(Value::Null);
            return Err(ApiError::invalid(
                kind,
                group,
                &name,
                "FieldValueInvalid",
                "spec.template",
                &format!("Invalid value: {}: field is immutable", v),
            ));
        }
        "persistentvolumeclaims" => {
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(json!({}));
                if let Some(m) = s.as_object_mut() {
                    m.remove("resources");
                    // Bound by the simulated binder; not a user change.
                    m.remove("volumeName");
                    m.remove("storageClassName");
                }
                s
            };
            if strip(old) != strip(new) {
                return Err(ApiError::invalid(
                    kind,
                    group,
                    &name,
                    "FieldValueForbidden",
                    "spec",
                    "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                ));
            }
            let q = |v: &Value| {
                v.pointer("/spec/resources/requests/storage")
                    .and_then(Value::as_str)
                    .map(parse_quantity)
            };
            if let (Some(o), Some(n)) = (q(old), q(new))
                && n < o
            {
                return Err(ApiError::invalid(
                    kind,
                    group,
                    &name,
                    "FieldValueForbidden",
                    "spec.resources.requests.storage",
                    "Forbidden: field can not be less than previous value",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Parse a Kubernetes quantity into bytes (enough for storage requests).
pub fn parse_quantity(s: &str) -> f64 {
    let s = s.trim();
    let units: [(&str, f64); 12] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
    ];
    for (u, m) in units {
        if let Some(n) = s.strip_suffix(u) {
            return n.parse::<f64>().unwrap_or(0.0) * m;
        }
    }
    s.parse().unwrap_or(0.0)
}

const DNS1123_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const DNS1123_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const LABEL_VALUE: &str = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
const QUALIFIED_NAME: &str = r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$";

fn matches(re: &str, s: &str) -> bool {
    crate::util::regex_matches(re, s).unwrap_or(true)
}

/// ObjectMeta validation every registry runs (apimachinery `ValidateObjectMeta`): names must
/// be DNS-1123 subdomains (labels for namespaces and services), label keys qualified names
/// with an optional DNS prefix, label values ≤ 63 valid characters.
pub fn validate_meta(plural: &str, kind: &str, group: &str, obj: &Value) -> Result<(), ApiError> {
    let name = crate::util::name_of(obj);
    let label_names = matches!(plural, "namespaces" | "services");
    let (re, max, what) = if label_names {
        (
            DNS1123_LABEL,
            63,
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )
    } else {
        (
            DNS1123_SUBDOMAIN,
            253,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    };
    // Events and a few others accept any path-segment name; keep the check to the common rule.
    if plural != "events" {
        if name.len() > max {
            return Err(ApiError::invalid(
                kind,
                group,
                &name,
                "FieldValueInvalid",
                "metadata.name",
                &format!("Invalid value: {name:?}: must be no more than {max} characters"),
            ));
        }
        if !matches(re, &name) {
            return Err(ApiError::invalid(
                kind,
                group,
                &name,
                "FieldValueInvalid",
                "metadata.name",
                &format!("Invalid value: {name:?}: {what}"),
            ));
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let (prefix, key) = match k.rsplit_once('/') {
                Some((p, n)) => (Some(p), n),
                None => (None, k.as_str()),
            };
            let key_ok = key.len() <= 63
                && matches(QUALIFIED_NAME, key)
                && prefix.is_none_or(|p| p.len() <= 253 && matches(DNS1123_SUBDOMAIN, p));
            if !key_ok {
                return Err(ApiError::invalid(
                    kind,
                    group,
                    &name,
                    "FieldValueInvalid",
                    "metadata.labels",
                    &format!(
                        "Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                    ),
                ));
            }
            let val = v.as_str().unwrap_or("");
            if val.len() > 63 {
                return Err(ApiError::invalid(
                    kind,
                    group,
                    &name,
                    "FieldValueInvalid",
                    "metadata.labels",
                    &format!("Invalid value: {val:?}: must be no more than 63 characters"),
                ));
            }
            if !matches(LABEL_VALUE, val) {
                return Err(ApiError::invalid(
                    kind,
                    group,
                    &name,
                    "FieldValueInvalid",
                    "metadata.labels",
                    &format!(
                        "Invalid value: {val:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                    ),
                ));
            }
        }
    }
    Ok(())
}
