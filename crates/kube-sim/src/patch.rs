//! JSON patch (RFC 6902, via the `json-patch` crate, with Kubernetes' `test`-null leniency),
//! JSON merge patch (RFC 7386, `json-patch`'s `merge`) and strategic merge patch (spec §3.4).

use crate::errors::ApiError;
use crate::ssa::{BuiltinSchema, ListType};
use serde_json::{Map, Value};

/// Apply an RFC 6902 patch. A `test` op whose path is missing succeeds when the expected value
/// is `null` (kube-runtime's finalizer helper relies on it; the crate would fail it), so ops
/// are applied one at a time and such tests are skipped.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| ApiError::BadRequest("json patch must be an array of operations".into()))?;
    let mut doc = doc.clone();
    for op in ops {
        if op.get("op").and_then(Value::as_str) == Some("test")
            && op.get("value").is_some_and(Value::is_null)
            && let Some(path) = op.get("path").and_then(Value::as_str)
            && doc.pointer(path).is_none()
        {
            continue;
        }
        let p: json_patch::Patch = serde_json::from_value(Value::Array(vec![op.clone()]))
            .map_err(|e| ApiError::BadRequest(format!("invalid json patch: {e}")))?;
        json_patch::patch(&mut doc, &p).map_err(|e| ApiError::Invalid {
            kind: String::new(),
            group: String::new(),
            name: String::new(),
            summary: format!("the server rejected our request due to an error in our request: {e}"),
            causes: vec![],
        })?;
    }
    Ok(doc)
}

/// RFC 7386 merge patch.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut d = doc.clone();
    json_patch::merge(&mut d, patch);
    d
}

/// Strategic merge patch for built-in kinds: lists merge by their patch-merge keys (the same
/// list-map keys SSA uses), `$patch: delete|replace`, `$setElementOrder`/`$retainKeys`
/// directives are accepted (ordering is not reproduced), `null` deletes.
pub fn strategic_merge(doc: &Value, patch: &Value, plural: &str) -> Value {
    let mut names = vec![];
    smp(doc, patch, plural, &mut names)
}

fn smp(doc: &Value, patch: &Value, plural: &str, names: &mut Vec<String>) -> Value {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => {
            if p.get("$patch").and_then(Value::as_str) == Some("replace") {
                let mut r = p.clone();
                r.remove("$patch");
                return Value::Object(r);
            }
            let mut out = d.clone();
            for (k, pv) in p {
                if k.starts_with("$setElementOrder/") || k == "$retainKeys" || k == "$patch" {
                    continue;
                }
                if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
                    if let (Some(Value::Array(cur)), Some(del)) =
                        (out.get_mut(field), pv.as_array())
                    {
                        cur.retain(|x| !del.contains(x));
                    }
                    continue;
                }
                if pv.is_null() {
                    out.remove(k);
                    continue;
                }
                names.push(k.clone());
                let merged = match d.get(k) {
                    Some(dv) => smp(dv, pv, plural, names),
                    None => strip_directives(pv),
                };
                names.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(d), Value::Array(p)) => match BuiltinSchema::list_type_for(plural, names) {
            ListType::Atomic => strip_directives(patch),
            ListType::Set => {
                let mut out = d.clone();
                for it in p {
                    if !out.contains(it) {
                        out.push(it.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Map(keys) => {
                let key = keys[0].clone();
                let mut out = d.clone();
                for it in p {
                    let kv = it.get(&key);
                    let pos = out.iter().position(|x| x.get(&key) == kv && kv.is_some());
                    let directive = it.get("$patch").and_then(Value::as_str);
                    match (pos, directive) {
                        (Some(i), Some("delete")) => {
                            out.remove(i);
                        }
                        (None, Some("delete")) => {}
                        (Some(i), _) => {
                            names.push("[]".into());
                            out[i] = smp(&out[i], it, plural, names);
                            names.pop();
                        }
                        (None, _) => out.push(strip_directives(it)),
                    }
                }
                Value::Array(out)
            }
        },
        _ => strip_directives(patch),
    }
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut o = Map::new();
            for (k, x) in m {
                if k.starts_with('$') {
                    continue;
                }
                o.insert(k.clone(), strip_directives(x));
            }
            Value::Object(o)
        }
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        _ => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn test_null_on_missing_path_passes() {
        let doc = json!({"metadata":{"name":"x"}});
        let p = json!([{"op":"test","path":"/metadata/finalizers","value":null},{"op":"add","path":"/metadata/finalizers","value":["f"]}]);
        let out = json_patch(&doc, &p).unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["f"]));
        assert!(json_patch(&out, &p).is_err());
    }

    #[test]
    fn smp_merges_containers_by_name() {
        let doc = json!({"spec":{"template":{"spec":{"containers":[{"name":"a","image":"1"},{"name":"b","image":"2"}]}}}});
        let p = json!({"spec":{"template":{"spec":{"containers":[{"name":"b","image":"3"},{"name":"a","$patch":"delete"}]}}}});
        let out = strategic_merge(&doc, &p, "deployments");
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name":"b","image":"3"}])
        );
    }
}
