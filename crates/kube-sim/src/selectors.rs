//! Label and field selectors (spec §2.2): `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
//! `k`, `!k`, comma = AND; field selectors on `metadata.name` / `metadata.namespace`.

use crate::errors::ApiError;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Req {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, Clone, Default)]
pub struct LabelSelector(Vec<Req>);

/// Split on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn parse_set(rest: &str) -> Result<Vec<String>, ApiError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unable to parse requirement: found '{rest}', expected: '('"
            ))
        })?;
    Ok(inner
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

impl LabelSelector {
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let mut reqs = vec![];
        for part in split_top(s) {
            if let Some(k) = part.strip_prefix('!') {
                reqs.push(Req::NotExists(k.trim().into()));
            } else if let Some((k, v)) = part.split_once("!=") {
                reqs.push(Req::Ne(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once("==") {
                reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
            } else if let Some((k, v)) = part.split_once('=') {
                reqs.push(Req::Eq(k.trim().into(), v.trim().into()));
            } else if let Some(idx) = part.find(" notin ") {
                reqs.push(Req::NotIn(
                    part[..idx].trim().into(),
                    parse_set(&part[idx + 7..])?,
                ));
            } else if let Some(idx) = part.find(" in ") {
                reqs.push(Req::In(
                    part[..idx].trim().into(),
                    parse_set(&part[idx + 4..])?,
                ));
            } else if part.contains(' ') || part.contains('(') {
                return Err(ApiError::BadRequest(format!(
                    "unable to parse requirement: {part}"
                )));
            } else {
                reqs.push(Req::Exists(part));
            }
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            Req::Eq(k, v) => get(k) == Some(v.as_str()),
            Req::Ne(k, v) => get(k) != Some(v.as_str()),
            Req::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Req::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            Req::Exists(k) => get(k).is_some(),
            Req::NotExists(k) => get(k).is_none(),
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// Field labels a resource supports beyond `metadata.name` / `metadata.namespace` (the
/// apiserver's per-type field label conversion funcs), with the JSON path they read.
fn extra_field(plural: &str, field: &str) -> Option<&'static str> {
    let table: &[(&str, &str, &str)] = &[
        ("events", "involvedObject.kind", "/involvedObject/kind"),
        (
            "events",
            "involvedObject.namespace",
            "/involvedObject/namespace",
        ),
        ("events", "involvedObject.name", "/involvedObject/name"),
        ("events", "involvedObject.uid", "/involvedObject/uid"),
        (
            "events",
            "involvedObject.apiVersion",
            "/involvedObject/apiVersion",
        ),
        (
            "events",
            "involvedObject.resourceVersion",
            "/involvedObject/resourceVersion",
        ),
        (
            "events",
            "involvedObject.fieldPath",
            "/involvedObject/fieldPath",
        ),
        ("events", "reason", "/reason"),
        ("events", "reportingComponent", "/reportingComponent"),
        ("events", "source", "/source/component"),
        ("events", "type", "/type"),
        ("pods", "spec.nodeName", "/spec/nodeName"),
        ("pods", "spec.restartPolicy", "/spec/restartPolicy"),
        ("pods", "spec.schedulerName", "/spec/schedulerName"),
        (
            "pods",
            "spec.serviceAccountName",
            "/spec/serviceAccountName",
        ),
        ("pods", "status.phase", "/status/phase"),
        ("pods", "status.podIP", "/status/podIP"),
        (
            "pods",
            "status.nominatedNodeName",
            "/status/nominatedNodeName",
        ),
        ("secrets", "type", "/type"),
        ("namespaces", "status.phase", "/status/phase"),
        ("jobs", "status.successful", "/status/succeeded"),
        ("replicasets", "status.replicas", "/status/replicas"),
    ];
    table
        .iter()
        .find(|(p, f, _)| *p == plural && *f == field)
        .map(|(_, _, ptr)| *ptr)
}

impl FieldSelector {
    /// `metadata.name` and `metadata.namespace` work for every resource; a few kinds support
    /// more (see `extra_field`); anything else is a 400 like the apiserver's.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Self::parse_for("", s)
    }

    pub fn parse_for(plural: &str, s: &str) -> Result<Self, ApiError> {
        let mut out = vec![];
        for part in split_top(s) {
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::BadRequest(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            let k = k.trim();
            let ptr = match k {
                "metadata.name" => "/metadata/name",
                "metadata.namespace" => "/metadata/namespace",
                _ => extra_field(plural, k).ok_or_else(|| {
                    ApiError::BadRequest(format!("field label not supported: {k}"))
                })?,
            };
            out.push((ptr.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(ptr, eq, v)| {
            let actual = match obj.pointer(ptr) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            (actual == *v) == *eq
        })
    }
}
