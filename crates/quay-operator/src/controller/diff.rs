//! Deciding whether an object needs applying, so that a converged registry costs the API server no writes.
//!
//! An object is skipped when (1) the live object carries the hash of exactly this desired object in
//! [`APPLIED_HASH_ANNOTATION`] — which catches fields we stopped setting, since those change the hash — and
//! (2) every value we set is still what the live object holds — which catches someone else changing our fields.
//! Server-side defaults the API server adds are fine: they are not in the desired object.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Annotation holding the hash of the desired object last applied.
pub const APPLIED_HASH_ANNOTATION: &str = "quay-operator.rs/applied-hash";

/// A stable hash of a desired object (its JSON with sorted keys), without the hash annotation itself (and without
/// `metadata.annotations` when nothing else is in it).
pub fn desired_hash(desired: &Value) -> String {
    let mut hasher = Sha256::new();
    write_canonical(desired, Level::Object, &mut hasher);
    let digest = hasher.finalize();
    digest.iter().take(10).map(|b| format!("{b:02x}")).collect()
}

/// Where a value sits, for leaving out the hash annotation without copying the object.
#[derive(Clone, Copy, PartialEq)]
enum Level {
    Object,
    Metadata,
    Annotations,
    Inner,
}

/// Writes `v` as compact JSON with sorted keys into the hasher (the bytes serde_json writes for each key and
/// scalar). Reconciles hash every desired object, so nothing is copied or formatted into temporary strings.
fn write_canonical(v: &Value, level: Level, h: &mut Sha256) {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map
                .iter()
                .filter(|(k, v)| match level {
                    Level::Metadata => !(k.as_str() == "annotations" && only_hash_annotation(v)),
                    Level::Annotations => k.as_str() != APPLIED_HASH_ANNOTATION,
                    Level::Object | Level::Inner => true,
                })
                .collect();
            entries.sort_unstable_by_key(|(k, _)| *k);
            h.update(b"{");
            for (k, v) in entries {
                serde_json::to_writer(&mut *h, k).expect("hashing cannot fail");
                h.update(b":");
                let child = match (level, k.as_str()) {
                    (Level::Object, "metadata") => Level::Metadata,
                    (Level::Metadata, "annotations") => Level::Annotations,
                    _ => Level::Inner,
                };
                write_canonical(v, child, h);
                h.update(b",");
            }
            h.update(b"}");
        }
        Value::Array(items) => {
            h.update(b"[");
            for i in items {
                write_canonical(i, Level::Inner, h);
                h.update(b",");
            }
            h.update(b"]");
        }
        other => serde_json::to_writer(&mut *h, other).expect("hashing cannot fail"),
    }
}

/// `metadata.annotations` holding nothing but the hash annotation: hashed as if absent.
fn only_hash_annotation(annotations: &Value) -> bool {
    annotations
        .as_object()
        .is_some_and(|a| a.keys().all(|k| k == APPLIED_HASH_ANNOTATION))
}

/// Adds the hash annotation to a desired object (call before applying it).
pub fn stamp_hash(desired: &mut Value) -> String {
    let hash = desired_hash(desired);
    let meta = desired
        .as_object_mut()
        .expect("objects are JSON objects")
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    let annotations = meta
        .as_object_mut()
        .expect("metadata is an object")
        .entry("annotations")
        .or_insert_with(|| Value::Object(Default::default()));
    annotations
        .as_object_mut()
        .expect("annotations are an object")
        .insert(APPLIED_HASH_ANNOTATION.into(), hash.clone().into());
    hash
}

/// Whether `desired` (already stamped with its hash) must be applied over `live`.
pub fn needs_apply(desired: &Value, live: Option<&Value>) -> bool {
    let Some(live) = live else { return true };
    let desired_hash = desired.pointer(&format!(
        "/metadata/annotations/{}",
        escape(APPLIED_HASH_ANNOTATION)
    ));
    let live_hash = live.pointer(&format!(
        "/metadata/annotations/{}",
        escape(APPLIED_HASH_ANNOTATION)
    ));
    if desired_hash.is_none() || desired_hash != live_hash {
        return true;
    }
    !is_subset(desired, live)
}

/// Whether `live_annotations` carry the hash `desired` is stamped with.
pub fn same_applied_hash(
    desired: &Value,
    live_annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> bool {
    let desired_hash = desired
        .pointer(&format!(
            "/metadata/annotations/{}",
            escape(APPLIED_HASH_ANNOTATION)
        ))
        .and_then(Value::as_str);
    desired_hash.is_some()
        && desired_hash
            == live_annotations
                .and_then(|a| a.get(APPLIED_HASH_ANNOTATION))
                .map(String::as_str)
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Every value in `want` is present and equal in `have` (maps recursively; lists element by element).
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            w.iter().all(|(k, wv)| match h.get(k) {
                Some(hv) => is_subset(wv, hv),
                // An empty map or list we set may be dropped by the server's serialization.
                None => is_empty(wv),
            })
        }
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b))
        }
        (Value::String(w), Value::String(h)) => w == h || same_quantity(w, h),
        (Value::Number(w), Value::String(h)) | (Value::String(h), Value::Number(w)) => {
            &w.to_string() == h
        }
        (w, h) => w == h,
    }
}

/// JSON paths of the values in `want` that `have` does not hold (what an apply would change), at most `limit`.
pub fn changed_paths(want: &Value, have: &Value, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    collect_changes(want, have, String::new(), &mut out, limit);
    out
}

fn collect_changes(want: &Value, have: &Value, path: String, out: &mut Vec<String>, limit: usize) {
    if out.len() >= limit {
        return;
    }
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            for (k, wv) in w {
                let child = format!("{path}.{k}");
                match h.get(k) {
                    Some(hv) => collect_changes(wv, hv, child, out, limit),
                    None if is_empty(wv) => {}
                    None => out.push(child),
                }
            }
        }
        (Value::Array(w), Value::Array(h)) if w.len() == h.len() => {
            for (i, (a, b)) in w.iter().zip(h).enumerate() {
                collect_changes(a, b, format!("{path}[{i}]"), out, limit);
            }
        }
        _ if is_subset(want, have) => {}
        _ => out.push(if path.is_empty() {
            ".".to_owned()
        } else {
            path
        }),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

/// `2000m` and `2`, `1Gi` and `1073741824`: the API server canonicalizes resource quantities.
fn same_quantity(a: &str, b: &str) -> bool {
    match (parse_quantity(a), parse_quantity(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= f64::EPSILON * x.abs().max(1.0),
        _ => false,
    }
}

/// A Kubernetes quantity as a number (binary and decimal suffixes, milli), `None` if it is not one.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    if number.is_empty() {
        return None;
    }
    let n: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => {
            // Exponent form: 1e3, 1E3.
            let (mantissa, exp) = suffix.split_once(['e', 'E']).map(|(_, e)| (n, e))?;
            return Some(mantissa * 10f64.powi(exp.parse().ok()?));
        }
    };
    Some(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stamped(v: Value) -> Value {
        let mut v = v;
        stamp_hash(&mut v);
        v
    }

    #[test]
    fn unchanged_object_with_server_defaults_is_skipped() {
        let desired = stamped(
            json!({"metadata": {"name": "a"}, "spec": {"replicas": 2, "template": {"cpu": "2000m"}}}),
        );
        let mut live = desired.clone();
        live["metadata"]["resourceVersion"] = json!("12");
        live["spec"]["revisionHistoryLimit"] = json!(10);
        live["spec"]["template"]["cpu"] = json!("2");
        live["status"] = json!({"replicas": 2});
        assert!(!needs_apply(&desired, Some(&live)));
    }

    #[test]
    fn drift_of_an_owned_field_is_applied() {
        let desired = stamped(json!({"metadata": {"name": "a"}, "spec": {"replicas": 2}}));
        let mut live = desired.clone();
        live["spec"]["replicas"] = json!(5);
        assert!(needs_apply(&desired, Some(&live)));
    }

    #[test]
    fn a_field_we_stopped_setting_changes_the_hash() {
        let before = json!({"metadata": {"name": "a"}, "spec": {"replicas": 2, "paused": false}});
        let after = json!({"metadata": {"name": "a"}, "spec": {"paused": false}});
        assert!(
            is_subset(&after, &before),
            "a subset check alone would miss it"
        );
        let (before, after) = (stamped(before), stamped(after));
        assert!(
            needs_apply(&after, Some(&before)),
            "replicas released: must apply"
        );
    }

    #[test]
    fn missing_live_object_is_applied() {
        assert!(needs_apply(
            &stamped(json!({"metadata": {"name": "a"}})),
            None
        ));
    }

    #[test]
    fn hash_ignores_key_order_and_its_own_annotation() {
        let a = json!({"metadata": {"name": "x"}, "a": 1, "b": {"c": 2, "d": [1, 2]}});
        let b = json!({"b": {"d": [1, 2], "c": 2}, "a": 1, "metadata": {"name": "x"}});
        assert_eq!(desired_hash(&a), desired_hash(&b));
        let s = stamped(a.clone());
        assert_eq!(desired_hash(&s), desired_hash(&a));
    }

    /// The hash as first written (copy, strip, hash): live objects carry it, so it must never change.
    fn reference_hash(desired: &Value) -> String {
        fn write(v: &Value, h: &mut Sha256) {
            match v {
                Value::Object(map) => {
                    let mut keys: Vec<&String> = map.keys().collect();
                    keys.sort();
                    h.update(b"{");
                    for k in keys {
                        h.update(serde_json::to_string(k).unwrap().as_bytes());
                        h.update(b":");
                        write(&map[k], h);
                        h.update(b",");
                    }
                    h.update(b"}");
                }
                Value::Array(items) => {
                    h.update(b"[");
                    for i in items {
                        write(i, h);
                        h.update(b",");
                    }
                    h.update(b"]");
                }
                other => h.update(other.to_string().as_bytes()),
            }
        }
        let mut canonical = desired.clone();
        if let Some(meta) = canonical.get_mut("metadata").and_then(Value::as_object_mut)
            && let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut)
        {
            a.remove(APPLIED_HASH_ANNOTATION);
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
        let mut hasher = Sha256::new();
        write(&canonical, &mut hasher);
        let digest = hasher.finalize();
        digest.iter().take(10).map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hash_is_the_one_live_objects_carry() {
        let hash = APPLIED_HASH_ANNOTATION;
        for v in [
            json!({"metadata": {"name": "a", "annotations": {"x": "1", hash: "old"}}, "spec": {"r": [1, "two", null, 2.5, {"k\"q": true}]}}),
            json!({"metadata": {"name": "a", "annotations": {hash: "old"}}}),
            json!({"metadata": {"name": "a", "annotations": {}}, "data": {"é": "\u{1}"}}),
            json!({"metadata": {"annotations": "not a map"}}),
            json!({"metadata": [1], "spec": {"metadata": {"annotations": {hash: "kept: not top level"}}}}),
            json!({"kind": "X"}),
        ] {
            assert_eq!(desired_hash(&v), reference_hash(&v), "{v}");
        }
    }

    #[test]
    fn changed_paths_name_what_an_apply_would_change() {
        let want = json!({"spec": {"replicas": 2, "template": {"env": [{"name": "A", "value": "1"}]}, "same": 1}});
        let have = json!({"spec": {"replicas": 3, "template": {"env": [{"name": "A", "value": "2"}]}, "same": 1}});
        assert_eq!(
            changed_paths(&want, &have, 10),
            vec![".spec.replicas", ".spec.template.env[0].value"]
        );
        assert_eq!(changed_paths(&want, &want, 10), Vec::<String>::new());
    }

    #[test]
    fn quantities_compare_by_value() {
        assert!(same_quantity("1Gi", "1073741824"));
        assert!(same_quantity("500m", "0.5"));
        assert!(!same_quantity("1Gi", "1G"));
        assert_eq!(parse_quantity("50Gi"), Some(50.0 * 1024f64.powi(3)));
        assert_eq!(parse_quantity("abc"), None);
    }
}
