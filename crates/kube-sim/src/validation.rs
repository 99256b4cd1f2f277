//! Basic OpenAPI v3 validation of custom resources against their CRD's structural schema
//! (spec §5.2 SHOULD): `type` (incl. `nullable`, `x-kubernetes-int-or-string`), `enum`,
//! `required`, `minimum`/`maximum` (and exclusive forms), `minLength`/`maxLength`, `pattern`,
//! `minItems`/`maxItems`, `minProperties`/`maxProperties`. Messages and cause reasons follow
//! kube-openapi's validators as surfaced by apiextensions-apiserver. CEL
//! (`x-kubernetes-validations`) and `format` are not checked.

use crate::errors::ApiError;
use serde_json::Value;

/// One failed rule: (cause reason, field path, detail).
pub type Cause = (String, String, String);

/// Validate `obj` (already defaulted and pruned) against `schema`. `metadata` is not validated
/// here (ObjectMeta has its own rules).
pub fn validate(obj: &Value, schema: &Value) -> Vec<Cause> {
    let mut out = vec![];
    if let (Some(props), Some(m)) = (
        schema.get("properties").and_then(Value::as_object),
        obj.as_object(),
    ) {
        for (k, ps) in props {
            if matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                continue;
            }
            if let Some(v) = m.get(k) {
                check(v, ps, k, &mut out);
            }
        }
        if let Some(req) = schema.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !m.contains_key(r) {
                    out.push((
                        "FieldValueRequired".into(),
                        r.into(),
                        "Required value".into(),
                    ));
                }
            }
        }
    }
    out
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn type_ok(v: &Value, t: &str) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => true,
    }
}

fn check(v: &Value, s: &Value, path: &str, out: &mut Vec<Cause>) {
    let invalid = |detail: String| ("FieldValueInvalid".to_string(), path.to_string(), detail);
    if v.is_null() {
        if !s.get("nullable").and_then(Value::as_bool).unwrap_or(false) && s.get("type").is_some() {
            let t = s["type"].as_str().unwrap_or("");
            out.push(invalid(format!(
                "Invalid value: \"null\": {path} in body must be of type {t}: \"null\""
            )));
        }
        return;
    }
    if s.get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        if !(v.is_string() || type_ok(v, "integer")) {
            out.push(invalid(format!(
                "Invalid value: {}: {path} in body must be of type integer,string: {}",
                show(v),
                show(v)
            )));
        }
        return;
    }
    if let Some(t) = s.get("type").and_then(Value::as_str)
        && !type_ok(v, t)
    {
        let actual = match v {
            Value::String(_) => "string",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Null => "null",
        };
        out.push(invalid(format!(
            "Invalid value: \"{actual}\": {path} in body must be of type {t}: \"{actual}\""
        )));
        return;
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        let supported: Vec<String> = e.iter().map(show).collect();
        out.push((
            "FieldValueNotSupported".into(),
            path.into(),
            format!(
                "Unsupported value: {}: supported values: {}",
                show(v),
                supported.join(", ")
            ),
        ));
    }
    if let Some(n) = v.as_f64() {
        let excl_min = s
            .get("exclusiveMinimum")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let excl_max = s
            .get("exclusiveMaximum")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if let Some(min) = s.get("minimum").and_then(Value::as_f64)
            && (n < min || (excl_min && n == min))
        {
            let op = if excl_min {
                "greater than"
            } else {
                "greater than or equal to"
            };
            out.push(invalid(format!(
                "Invalid value: {}: {path} in body should be {op} {}",
                show(v),
                s["minimum"]
            )));
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64)
            && (n > max || (excl_max && n == max))
        {
            let op = if excl_max {
                "less than"
            } else {
                "less than or equal to"
            };
            out.push(invalid(format!(
                "Invalid value: {}: {path} in body should be {op} {}",
                show(v),
                s["maximum"]
            )));
        }
    }
    if let Some(st) = v.as_str() {
        let len = st.chars().count() as u64;
        if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
            && len > max
        {
            out.push((
                "FieldValueTooLong".into(),
                path.into(),
                format!("Too long: may not be more than {max} bytes"),
            ));
        }
        if let Some(min) = s.get("minLength").and_then(Value::as_u64)
            && len < min
        {
            out.push(invalid(format!(
                "Invalid value: {}: {path} in body should be at least {min} chars long",
                show(v)
            )));
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str)
            && crate::util::regex_matches(p, st) == Some(false)
        {
            out.push(invalid(format!(
                "Invalid value: {}: {path} in body should match '{p}'",
                show(v)
            )));
        }
    }
    if let Some(items) = v.as_array() {
        if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
            && items.len() as u64 > max
        {
            out.push((
                "FieldValueTooMany".into(),
                path.into(),
                format!("Too many: {}: must have at most {max} items", items.len()),
            ));
        }
        if let Some(min) = s.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            out.push(invalid(format!(
                "Invalid value: {}: {path} in body should have at least {min} items",
                items.len()
            )));
        }
        if let Some(is) = s.get("items") {
            for (i, it) in items.iter().enumerate() {
                check(it, is, &format!("{path}[{i}]"), out);
            }
        }
    }
    if let Some(m) = v.as_object() {
        if let Some(max) = s.get("maxProperties").and_then(Value::as_u64)
            && m.len() as u64 > max
        {
            out.push((
                "FieldValueTooMany".into(),
                path.into(),
                format!("Too many: {}: must have at most {max} items", m.len()),
            ));
        }
        if let Some(min) = s.get("minProperties").and_then(Value::as_u64)
            && (m.len() as u64) < min
        {
            out.push(invalid(format!(
                "Invalid value: {}: {path} in body should have at least {min} properties",
                m.len()
            )));
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (k, ps) in props {
                if let Some(child) = m.get(k) {
                    check(child, ps, &format!("{path}.{k}"), out);
                }
            }
        } else if let Some(ap) = s.get("additionalProperties").filter(|a| a.is_object()) {
            for (k, child) in m {
                check(child, ap, &format!("{path}[{k}]"), out);
            }
        }
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !m.contains_key(r) {
                    out.push((
                        "FieldValueRequired".into(),
                        format!("{path}.{r}"),
                        "Required value".into(),
                    ));
                }
            }
        }
    }
}

/// The 422 for a list of causes, in apiserver's shape (one cause: `field: detail`;
/// several: `[field: detail, field: detail]`).
pub fn to_error(kind: &str, group: &str, name: &str, causes: Vec<Cause>) -> ApiError {
    let parts: Vec<String> = causes.iter().map(|(_, f, d)| format!("{f}: {d}")).collect();
    let summary = if parts.len() == 1 {
        parts[0].clone()
    } else {
        format!("[{}]", parts.join(", "))
    };
    ApiError::Invalid {
        kind: kind.into(),
        group: group.into(),
        name: name.into(),
        summary,
        causes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validates_common_keywords() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["color"], "properties": {
            "size": {"type": "integer", "minimum": 1},
            "color": {"type": "string", "enum": ["red", "blue"]},
            "name": {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$"}
        }}}});
        let ok = json!({"spec": {"size": 2, "color": "red", "name": "ab"}});
        assert!(validate(&ok, &schema).is_empty());
        let bad = json!({"spec": {"size": "x", "color": "pink", "name": "ABCD"}});
        let c = validate(&bad, &schema);
        let fields: Vec<&str> = c.iter().map(|c| c.1.as_str()).collect();
        assert_eq!(
            fields,
            vec!["spec.size", "spec.color", "spec.name", "spec.name"]
        );
        assert_eq!(
            c[0].2,
            "Invalid value: \"string\": spec.size in body must be of type integer: \"string\""
        );
        assert_eq!(c[1].0, "FieldValueNotSupported");
        let missing = json!({"spec": {}});
        assert_eq!(
            validate(&missing, &schema)[0],
            (
                "FieldValueRequired".into(),
                "spec.color".into(),
                "Required value".into()
            )
        );
    }
}
