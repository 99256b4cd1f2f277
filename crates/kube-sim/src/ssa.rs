//! Server-side apply and managedFields bookkeeping (spec §3.3).
//!
//! Written here because no Rust crate implements structured-merge-diff: kube-fake-client's
//! version is tied to kube 4, and k8s-openapi's `DeepMerge` merges but neither removes nor
//! tracks ownership. Field sets are kept flat (a set of paths of FieldsV1 path elements:
//! `f:<field>`, `k:<json keys>`, `v:<json value>`) and rendered to / parsed from the nested
//! FieldsV1 JSON form only at the edges.

use crate::errors::ApiError;
use crate::util::now_rfc3339;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

/// One FieldsV1 path, e.g. `["f:spec", "f:replicas"]`.
pub type FieldPath = Vec<String>;
pub type FieldSet = BTreeSet<FieldPath>;

/// How a list is merged and owned (`x-kubernetes-list-type`).
#[derive(Debug, Clone, PartialEq)]
pub enum ListType {
    Atomic,
    Set,
    Map(Vec<String>),
}

/// Answers "what is the list type at this path" (path = field names, `[]` for list items).
pub trait Schema {
    fn list_type(&self, path: &[String]) -> ListType;
    /// `x-kubernetes-map-type: atomic` (or a struct marked atomic): the map/struct at `path`
    /// is owned and replaced as a whole.
    fn map_atomic(&self, _path: &[String]) -> bool {
        false
    }
}

/// List types of built-in kinds, from the OpenAPI `x-kubernetes-list-*` markers (spec §3.3).
/// Used for built-ins and for `metadata` of every kind.
pub struct BuiltinSchema {
    pub plural: String,
}

impl BuiltinSchema {
    pub fn list_type_for(plural: &str, path: &[String]) -> ListType {
        let Some(last) = path.last() else {
            return ListType::Atomic;
        };
        let in_containers = path
            .iter()
            .any(|p| p == "containers" || p == "initContainers" || p == "ephemeralContainers");
        match last.as_str() {
            "finalizers" if path.len() == 2 && path[0] == "metadata" => ListType::Set,
            "ownerReferences" => ListType::Map(vec!["uid".into()]),
            "containers"
            | "initContainers"
            | "ephemeralContainers"
            | "env"
            | "volumes"
            | "imagePullSecrets" => ListType::Map(vec!["name".into()]),
            "volumeMounts" => ListType::Map(vec!["mountPath".into()]),
            "volumeDevices" => ListType::Map(vec!["devicePath".into()]),
            "ports" if in_containers => {
                ListType::Map(vec!["containerPort".into(), "protocol".into()])
            }
            "ports" if plural == "services" => {
                ListType::Map(vec!["port".into(), "protocol".into()])
            }
            "conditions" => ListType::Map(vec!["type".into()]),
            _ => ListType::Atomic,
        }
    }
}

impl Schema for BuiltinSchema {
    fn list_type(&self, path: &[String]) -> ListType {
        Self::list_type_for(&self.plural, path)
    }

    /// `metav1.LabelSelector` is `+structType=atomic` (Deployment/ReplicaSet/Job `spec.selector`,
    /// affinity `labelSelector`/`namespaceSelector`); `ServiceSpec.selector` is an atomic map.
    fn map_atomic(&self, path: &[String]) -> bool {
        matches!(
            path.last().map(String::as_str),
            Some("selector" | "labelSelector" | "namespaceSelector")
        ) && path.first().map(String::as_str) != Some("metadata")
    }
}

/// List types read from a CRD's structural schema; `metadata` falls back to the built-in rules.
/// Unannotated CRD lists are atomic (spec §3.3).
pub struct CrdSchema<'a> {
    pub root: &'a Value,
}

impl Schema for CrdSchema<'_> {
    fn list_type(&self, path: &[String]) -> ListType {
        if path.first().map(String::as_str) == Some("metadata") {
            return BuiltinSchema::list_type_for("", path);
        }
        crd_node(self.root, path)
            .map(list_type_of)
            .unwrap_or(ListType::Atomic)
    }

    fn map_atomic(&self, path: &[String]) -> bool {
        if path.first().map(String::as_str) == Some("metadata") {
            return false;
        }
        crd_node(self.root, path)
            .and_then(|s| s.get("x-kubernetes-map-type"))
            .and_then(Value::as_str)
            == Some("atomic")
    }
}

/// The schema node at a path (field names, `[]` for list items).
fn crd_node<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut s = root;
    for p in path {
        s = if p == "[]" {
            s.get("items")?
        } else {
            s.pointer(&format!(
                "/properties/{}",
                p.replace('~', "~0").replace('/', "~1")
            ))
            .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))?
        };
    }
    Some(s)
}

fn list_type_of(s: &Value) -> ListType {
    {
        match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                s.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        }
    }
}

fn key_of(item: &Value, keys: &[String]) -> Value {
    let mut m = Map::new();
    for k in keys {
        let v = match item.get(k) {
            Some(v) => v.clone(),
            // Service/Container ports default protocol to TCP; the key must use the defaulted value.
            None if k == "protocol" => json!("TCP"),
            None => continue,
        };
        m.insert(k.clone(), v);
    }
    Value::Object(m)
}

/// Field set of a value (leaves: scalars, atomic lists, empty maps; list-map/set items own themselves).
pub fn fieldset_of(v: &Value, schema: &dyn Schema) -> FieldSet {
    let mut out = FieldSet::new();
    let mut prefix = vec![];
    let mut names = vec![];
    walk(v, schema, &mut prefix, &mut names, &mut out, true);
    out
}

fn walk(
    v: &Value,
    schema: &dyn Schema,
    prefix: &mut FieldPath,
    names: &mut Vec<String>,
    out: &mut FieldSet,
    top: bool,
) {
    match v {
        Value::Object(_) if !top && schema.map_atomic(names) => {
            out.insert(prefix.clone());
        }
        Value::Object(m) if !m.is_empty() || top => {
            for (k, child) in m {
                prefix.push(format!("f:{k}"));
                names.push(k.clone());
                walk(child, schema, prefix, names, out, false);
                names.pop();
                prefix.pop();
            }
        }
        Value::Array(items) => match schema.list_type(names) {
            ListType::Atomic => {
                out.insert(prefix.clone());
            }
            ListType::Set => {
                for it in items {
                    let mut p = prefix.clone();
                    p.push(format!("v:{}", it));
                    out.insert(p);
                }
                if items.is_empty() {
                    out.insert(prefix.clone());
                }
            }
            ListType::Map(keys) => {
                if items.is_empty() {
                    out.insert(prefix.clone());
                }
                for it in items {
                    prefix.push(format!("k:{}", key_of(it, &keys)));
                    names.push("[]".into());
                    out.insert(prefix.clone());
                    walk(it, schema, prefix, names, out, true);
                    names.pop();
                    prefix.pop();
                }
            }
        },
        _ => {
            out.insert(prefix.clone());
        }
    }
}

/// The value at a field path, if present.
pub fn get_at<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for el in path {
        cur = step(cur, el)?;
    }
    Some(cur)
}

fn step<'a>(cur: &'a Value, el: &str) -> Option<&'a Value> {
    if let Some(f) = el.strip_prefix("f:") {
        cur.get(f)
    } else if let Some(k) = el.strip_prefix("k:") {
        let key: Value = serde_json::from_str(k).ok()?;
        let keys: Vec<String> = key.as_object()?.keys().cloned().collect();
        cur.as_array()?.iter().find(|it| key_of(it, &keys) == key)
    } else if let Some(val) = el.strip_prefix("v:") {
        let val: Value = serde_json::from_str(val).ok()?;
        cur.as_array()?.iter().find(|it| **it == val)
    } else {
        None
    }
}

/// Remove the field at `path` (no-op if absent).
pub fn remove_at(v: &mut Value, path: &[String]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut cur = v;
    for el in parent {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)
        } else {
            let idx = index_of(cur, el);
            match idx {
                Some(i) => cur.as_array_mut().and_then(|a| a.get_mut(i)),
                None => None,
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(i) = index_of(cur, last)
        && let Some(a) = cur.as_array_mut()
    {
        a.remove(i);
    }
}

fn index_of(cur: &Value, el: &str) -> Option<usize> {
    let arr = cur.as_array()?;
    if let Some(k) = el.strip_prefix("k:") {
        let key: Value = serde_json::from_str(k).ok()?;
        let keys: Vec<String> = key.as_object()?.keys().cloned().collect();
        arr.iter().position(|it| key_of(it, &keys) == key)
    } else if let Some(val) = el.strip_prefix("v:") {
        let val: Value = serde_json::from_str(val).ok()?;
        arr.iter().position(|it| *it == val)
    } else {
        None
    }
}

/// Merge an applied configuration into the live object by the schema's list types.
pub fn merge(live: &Value, applied: &Value, schema: &dyn Schema, names: &mut Vec<String>) -> Value {
    match (live, applied) {
        (Value::Object(_), Value::Object(_)) if !names.is_empty() && schema.map_atomic(names) => {
            applied.clone()
        }
        (Value::Object(l), Value::Object(a)) => {
            let mut out = l.clone();
            for (k, av) in a {
                if av.is_null() {
                    out.remove(k);
                    continue;
                }
                names.push(k.clone());
                let merged = match l.get(k) {
                    Some(lv) => merge(lv, av, schema, names),
                    None => av.clone(),
                };
                names.pop();
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(a)) => match schema.list_type(names) {
            ListType::Atomic => applied.clone(),
            // Since structured-merge-diff 4.2 (Kubernetes 1.23) a merged list follows the order of the applied
            // configuration; items only the live object has come after it.
            ListType::Set => {
                let mut out = a.clone();
                for it in l {
                    if !out.contains(it) {
                        out.push(it.clone());
                    }
                }
                Value::Array(out)
            }
            ListType::Map(keys) => {
                let mut out = Vec::with_capacity(a.len().max(l.len()));
                for it in a {
                    let k = key_of(it, &keys);
                    names.push("[]".into());
                    match l.iter().find(|x| key_of(x, &keys) == k) {
                        Some(live_item) => out.push(merge(live_item, it, schema, names)),
                        None => out.push(it.clone()),
                    }
                    names.pop();
                }
                for it in l {
                    let k = key_of(it, &keys);
                    if !a.iter().any(|x| key_of(x, &keys) == k) {
                        out.push(it.clone());
                    }
                }
                Value::Array(out)
            }
        },
        _ => applied.clone(),
    }
}

/// Render a flat set as nested FieldsV1 JSON (`"."` marks an owned node that also has children, after them).
pub fn to_fields_v1(set: &FieldSet) -> Value {
    let paths: Vec<&[String]> = set.iter().map(Vec::as_slice).collect();
    let mut root = fields_v1_node(&paths);
    // The empty path owns the root (not produced for objects, kept for the same output in every case).
    if set.contains(&FieldPath::new()) && !root.is_empty() {
        root.insert(".".into(), json!({}));
    }
    Value::Object(root)
}

/// The node whose descendants are `paths` (relative to it, sorted: each child's paths are contiguous). Built
/// in one pass over the sorted set: walking and re-hashing every path from the root per path was a large share of
/// every write's cost.
fn fields_v1_node(paths: &[&[String]]) -> Map<String, Value> {
    let mut node = Map::new();
    let mut rest = paths;
    while let Some(first) = rest.first() {
        let Some(head) = first.first() else {
            rest = &rest[1..];
            continue;
        };
        let n = rest.iter().take_while(|p| p.first() == Some(head)).count();
        let (group, tail) = rest.split_at(n);
        let owned = group.iter().any(|p| p.len() == 1);
        let below: Vec<&[String]> = group
            .iter()
            .filter(|p| p.len() > 1)
            .map(|p| &p[1..])
            .collect();
        let mut child = fields_v1_node(&below);
        if owned && !child.is_empty() {
            child.insert(".".into(), json!({}));
        }
        node.insert(head.clone(), Value::Object(child));
        rest = tail;
    }
    node
}

pub fn from_fields_v1(v: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    fn rec(v: &Value, prefix: &mut FieldPath, out: &mut FieldSet) {
        let Some(m) = v.as_object() else { return };
        if (m.is_empty() || m.contains_key(".")) && !prefix.is_empty() {
            out.insert(prefix.clone());
        }
        for (k, c) in m {
            if k == "." {
                continue;
            }
            prefix.push(k.clone());
            rec(c, prefix, out);
            prefix.pop();
        }
    }
    rec(v, &mut vec![], &mut out);
    out
}

/// `.spec.template.spec.containers[name="a"].image`, as structured-merge-diff prints paths.
pub fn print_path(p: &FieldPath) -> String {
    let mut s = String::new();
    for el in p {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let key: Value = serde_json::from_str(k).unwrap_or(Value::Null);
            let parts: Vec<String> = key
                .as_object()
                .map(|m| m.iter().map(|(k, v)| format!("{k}={v}")).collect())
                .unwrap_or_default();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        }
    }
    s
}

/// One managedFields entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub set: FieldSet,
}

pub fn read_managed(obj: &Value) -> Vec<Entry> {
    let Some(arr) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return vec![];
    };
    arr.iter()
        .map(|e| Entry {
            manager: e
                .get("manager")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            operation: e
                .get("operation")
                .and_then(Value::as_str)
                .unwrap_or("Update")
                .into(),
            api_version: e
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            time: e.get("time").and_then(Value::as_str).unwrap_or("").into(),
            subresource: e
                .get("subresource")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            set: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
        })
        .collect()
}

pub fn write_managed(obj: &mut Value, entries: &[Entry]) {
    let arr: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
                "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.set),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = json!(e.subresource);
            }
            v
        })
        .collect();
    let m = crate::util::obj_mut(obj, "metadata");
    if arr.is_empty() {
        m.remove("managedFields");
    } else {
        m.insert("managedFields".into(), Value::Array(arr));
    }
}

/// The part of an object whose fields are tracked: drops identity/system metadata, and
/// restricts to (or drops) `status` depending on which endpoint is written.
pub fn trackable(obj: &Value, status_subresource: bool, subresource: &str) -> Value {
    // Built from the kept parts only: copying the whole object (managedFields included) to then drop
    // most of it was a large share of every write's cost. Key order does not matter to the callers.
    let Some(src) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    if subresource == "status" {
        if let Some(st) = src.get("status") {
            out.insert("status".into(), st.clone());
        }
        return Value::Object(out);
    }
    for (k, v) in src {
        match (k.as_str(), v) {
            ("apiVersion" | "kind", _) => {}
            ("status", _) if status_subresource => {}
            ("metadata", Value::Object(md)) => {
                let kept: Map<String, Value> = md
                    .iter()
                    .filter(|(k, _)| !SYSTEM_METADATA.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !kept.is_empty() {
                    out.insert(k.clone(), Value::Object(kept));
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Metadata the system sets, never owned by a field manager.
const SYSTEM_METADATA: [&str; 11] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

fn print_manager(e: &Entry) -> String {
    if e.operation == "Apply" {
        format!("\"{}\"", e.manager)
    } else {
        format!("\"{}\" using {}", e.manager, e.api_version)
    }
}

pub struct ApplyRequest<'a> {
    pub manager: &'a str,
    pub force: bool,
    pub api_version: &'a str,
    pub subresource: &'a str,
    pub status_subresource: bool,
}

/// Apply `applied` onto `live` (an empty object when creating). Returns the merged object with
/// managedFields updated, or a 409 `ApplyConflict`.
pub fn apply(
    live: &Value,
    applied: &Value,
    schema: &dyn Schema,
    req: &ApplyRequest,
) -> Result<Value, ApiError> {
    let tracked_applied = trackable(applied, req.status_subresource, req.subresource);
    let new_set = fieldset_of(&tracked_applied, schema);
    let mut entries = read_managed(live);
    let is_mine = |e: &Entry| {
        e.manager == req.manager && e.operation == "Apply" && e.subresource == req.subresource
    };

    // Conflicts: fields we apply that another manager owns with a different live value.
    let mut conflicts: Vec<(usize, FieldPath)> = vec![];
    for (i, e) in entries.iter().enumerate() {
        if is_mine(e) {
            continue;
        }
        for p in new_set.intersection(&e.set) {
            let lv = get_at(live, p);
            let av = get_at(&tracked_applied, p);
            let differs = match (lv, av) {
                // A list item / map node that both own is compared through its leaves.
                (Some(l), Some(a)) if (l.is_object() && a.is_object()) => false,
                (l, a) => l != a,
            };
            if differs {
                conflicts.push((i, p.clone()));
            }
        }
    }
    if !conflicts.is_empty() {
        if !req.force {
            return Err(conflict_error(&entries, &conflicts));
        }
        for (i, p) in &conflicts {
            entries[*i].set.remove(p);
        }
    }

    let mut merged = merge(live, &strip_for_merge(applied, req), schema, &mut vec![]);

    let prev: FieldSet = entries
        .iter()
        .filter(|e| is_mine(e))
        .flat_map(|e| e.set.iter().cloned())
        .collect();
    let others: FieldSet = entries
        .iter()
        .filter(|e| !is_mine(e))
        .flat_map(|e| e.set.iter().cloned())
        .collect();
    let mut removed: Vec<&FieldPath> = prev
        .iter()
        .filter(|p| {
            !new_set.contains(*p)
                && !others.contains(*p)
                && !others.iter().any(|o| o.starts_with(p))
        })
        .collect();
    // Shallowest first: an item must be found by its key fields before those are removed
    // (removing children of an already-removed item is a no-op).
    removed.sort_by_key(|p| p.len());
    for p in removed {
        remove_at(&mut merged, p);
    }

    // Update the manager's entry in place: entry order is part of the object, and a reordered
    // list would make an identical re-apply look like a change.
    let entry = Entry {
        manager: req.manager.into(),
        operation: "Apply".into(),
        api_version: req.api_version.into(),
        time: now_rfc3339(),
        subresource: req.subresource.into(),
        set: new_set,
    };
    match entries.iter().position(is_mine) {
        Some(i) => entries[i] = entry,
        None => entries.push(entry),
    }
    write_managed(&mut merged, &entries);
    Ok(merged)
}

/// The applied config with the parts that must not reach the live object removed
/// (status on the main resource of a type with a status subresource, everything but status
/// on `/status`; the pipeline restores these anyway).
fn strip_for_merge(applied: &Value, req: &ApplyRequest) -> Value {
    let mut a = applied.clone();
    if let Some(m) = a.as_object_mut() {
        if req.subresource == "status" {
            m.retain(|k, _| k == "status" || k == "apiVersion" || k == "kind");
        } else if req.status_subresource {
            m.remove("status");
        }
        if let Some(md) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            md.remove("managedFields");
        }
    }
    a
}

fn conflict_error(entries: &[Entry], conflicts: &[(usize, FieldPath)]) -> ApiError {
    let causes: Vec<(String, String)> = conflicts
        .iter()
        .map(|(i, p)| {
            (
                format!("conflict with {}", print_manager(&entries[*i])),
                print_path(p),
            )
        })
        .collect();
    let message = if conflicts.len() == 1 {
        format!(
            "Apply failed with 1 conflict: {}: {}",
            causes[0].0, causes[0].1
        )
    } else {
        let mut by_mgr: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (i, p) in conflicts {
            by_mgr
                .entry(print_manager(&entries[*i]))
                .or_default()
                .push(print_path(p));
        }
        let mut lines = vec![];
        for (m, ps) in by_mgr {
            lines.push(format!("conflicts with {m}"));
            for p in ps {
                lines.push(format!("- {p}"));
            }
        }
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    ApiError::ApplyConflict { message, causes }
}

/// Record a non-apply write (`operation: Update`): the manager takes the fields it changed,
/// other managers lose them; fields removed from the object are dropped from every set.
pub fn record_update(
    old: Option<&Value>,
    new: &mut Value,
    schema: &dyn Schema,
    manager: &str,
    api_version: &str,
    subresource: &str,
    status_subresource: bool,
) {
    let old_t = old
        .map(|o| trackable(o, status_subresource, subresource))
        .unwrap_or_else(|| json!({}));
    let new_t = trackable(new, status_subresource, subresource);
    let old_set = fieldset_of(&old_t, schema);
    let new_set = fieldset_of(&new_t, schema);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| {
            let is_item = p
                .last()
                .is_some_and(|l| l.starts_with("k:") || l.starts_with("v:"));
            let (o, n) = (get_at(&old_t, p), get_at(&new_t, p));
            if is_item { o.is_none() } else { o != n }
        })
        .cloned()
        .collect();
    let removed: FieldSet = old_set.difference(&new_set).cloned().collect();
    let mut entries = old.map(read_managed).unwrap_or_default();
    for e in entries.iter_mut() {
        e.set
            .retain(|p| !removed.contains(p) && !removed.iter().any(|r| p.starts_with(r)));
        if !(e.manager == manager && e.operation == "Update" && e.subresource == subresource) {
            e.set.retain(|p| !changed.contains(p));
        }
    }
    if !changed.is_empty() {
        if let Some(e) = entries.iter_mut().find(|e| {
            e.manager == manager && e.operation == "Update" && e.subresource == subresource
        }) {
            e.set.extend(changed);
            e.time = now_rfc3339();
            e.api_version = api_version.into();
        } else {
            entries.push(Entry {
                manager: manager.into(),
                operation: "Update".into(),
                api_version: api_version.into(),
                time: now_rfc3339(),
                subresource: subresource.into(),
                set: changed,
            });
        }
    }
    write_managed(new, &entries);
}

/// Whether a write of `new` over `old` changes nothing: equal apart from managedFields' `time` fields
/// (apiserver `IgnoreManagedFieldsTimestampsTransformer`) and `metadata.resourceVersion` (the write's own).
/// Compared in place: every write asks, and copying both objects to compare them was a visible cost.
pub fn same_but_times(old: &Value, new: &Value) -> bool {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return false;
    };
    same_except(old, new, None, |k, o, n| {
        if k != "metadata" {
            return o == n;
        }
        let (Some(om), Some(nm)) = (o.as_object(), n.as_object()) else {
            return false;
        };
        same_except(om, nm, Some("resourceVersion"), |k, o, n| match (k, o, n) {
            ("managedFields", Value::Array(o), Value::Array(n)) => {
                o.len() == n.len()
                    && o.iter().zip(n).all(|(o, n)| match (o, n) {
                        (Value::Object(o), Value::Object(n)) => {
                            same_except(o, n, Some("time"), |_, o, n| o == n)
                        }
                        (o, n) => o == n,
                    })
            }
            (_, o, n) => o == n,
        })
    })
}

/// Whether two maps hold the same keys, `skip` aside, with values that `same` finds equal (key order does
/// not matter, as for `Map`'s own equality).
fn same_except(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    skip: Option<&str>,
    same: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    let len =
        |m: &Map<String, Value>| m.len() - usize::from(skip.is_some_and(|k| m.contains_key(k)));
    len(a) == len(b)
        && a.iter()
            .filter(|(k, _)| Some(k.as_str()) != skip)
            .all(|(k, v)| b.get(k).is_some_and(|w| same(k, v, w)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_managed_fields_times_and_resource_version_may_differ_in_an_unchanged_write() {
        let obj = |rv: &str, time: &str, replicas: i64| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "a", "resourceVersion": rv, "managedFields": [
                    {"manager": "m", "operation": "Apply", "time": time, "fieldsV1": {"f:spec": {}}}]},
                "spec": {"replicas": replicas}})
        };
        let old = obj("1", "2026-01-01T00:00:00Z", 1);
        assert!(same_but_times(&old, &obj("1", "2026-01-01T00:00:00Z", 1)));
        assert!(same_but_times(&old, &obj("7", "2026-11-24T00:00:00Z", 1)));
        assert!(!same_but_times(&old, &obj("1", "2026-01-01T00:00:00Z", 2)));
        let mut other_manager = obj("1", "2026-01-01T00:00:00Z", 1);
        other_manager["metadata"]["managedFields"][0]["manager"] = json!("n");
        assert!(!same_but_times(&old, &other_manager));
        let mut labelled = obj("1", "2026-01-01T00:00:00Z", 1);
        labelled["metadata"]["labels"] = json!({"x": "y"});
        assert!(!same_but_times(&old, &labelled));
        assert!(!same_but_times(&labelled, &old));
        // Key order is not a change.
        let reordered = json!({"spec": {"replicas": 1}, "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"managedFields": old["metadata"]["managedFields"], "resourceVersion": "1", "name": "a"}});
        assert!(same_but_times(&old, &reordered));
    }

    #[test]
    fn trackable_keeps_owned_parts_only() {
        let obj = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "3", "managedFields": [], "labels": {"k": "v"}},
            "spec": {"x": 1}, "status": {"phase": "Running"}});
        assert_eq!(
            trackable(&obj, true, ""),
            json!({"metadata": {"labels": {"k": "v"}}, "spec": {"x": 1}})
        );
        assert_eq!(
            trackable(&obj, false, ""),
            json!({"metadata": {"labels": {"k": "v"}}, "spec": {"x": 1}, "status": {"phase": "Running"}})
        );
        assert_eq!(
            trackable(&obj, true, "status"),
            json!({"status": {"phase": "Running"}})
        );
        let bare = json!({"metadata": {"name": "a"}, "data": {}});
        assert_eq!(trackable(&bare, false, ""), json!({"data": {}}));
    }

    #[test]
    fn label_selectors_are_atomic() {
        let schema = BuiltinSchema {
            plural: "deployments".into(),
        };
        let v = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}}});
        let s = fieldset_of(&v, &schema);
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            vec![vec!["f:spec".to_string(), "f:selector".to_string()]]
        );
        let live = json!({"spec": {"selector": {"matchLabels": {"app": "a", "old": "x"}}}});
        let merged = merge(&live, &v, &schema, &mut vec![]);
        assert_eq!(
            merged["spec"]["selector"],
            json!({"matchLabels": {"app": "a"}})
        );
    }

    #[test]
    fn merged_list_follows_the_applied_order() {
        let schema = BuiltinSchema {
            plural: "deployments".into(),
        };
        let env = |names: &[&str]| -> Value {
            let items: Vec<Value> = names
                .iter()
                .map(|n| json!({"name": n, "value": "v"}))
                .collect();
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "env": items}]}}}})
        };
        let merged = merge(
            &env(&["A", "C", "OTHER"]),
            &env(&["A", "B", "C"]),
            &schema,
            &mut vec![],
        );
        assert_eq!(merged, env(&["A", "B", "C", "OTHER"]));
    }

    /// The straightforward rendering `to_fields_v1` replaced: the same JSON, keys in the same order.
    fn fields_v1_by_walking(set: &FieldSet) -> Value {
        let mut root = Map::new();
        for p in set {
            let mut cur = &mut root;
            for el in p {
                cur = cur
                    .entry(el.clone())
                    .or_insert_with(|| json!({}))
                    .as_object_mut()
                    .unwrap();
            }
        }
        for p in set {
            let mut cur = &mut root;
            for el in p {
                cur = cur.get_mut(el).and_then(Value::as_object_mut).unwrap();
            }
            if !cur.is_empty() && !cur.contains_key(".") {
                cur.insert(".".into(), json!({}));
            }
        }
        Value::Object(root)
    }

    #[test]
    fn fields_v1_rendering_matches_the_walk_key_for_key() {
        let v = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "a"}},
                "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [
                    {"name": "q", "image": "x", "env": [{"name": "A", "value": "1"}], "ports": [{"containerPort": 80}]},
                    {"name": "r", "image": "y"}]}}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let schema = BuiltinSchema {
            plural: "deployments".into(),
        };
        let set = fieldset_of(&v, &schema);
        let rendered = to_fields_v1(&set);
        assert_eq!(
            serde_json::to_string(&rendered).unwrap(),
            serde_json::to_string(&fields_v1_by_walking(&set)).unwrap()
        );
        assert_eq!(from_fields_v1(&rendered), set);
        assert_eq!(to_fields_v1(&FieldSet::new()), json!({}));
    }

    #[test]
    fn fields_v1_roundtrip() {
        let v = json!({"metadata":{"labels":{"a":"1"}},"spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"q","image":"x","ports":[{"containerPort":80}]}]}}}});
        let s = fieldset_of(
            &v,
            &BuiltinSchema {
                plural: "deployments".into(),
            },
        );
        let f = to_fields_v1(&s);
        assert_eq!(from_fields_v1(&f), s);
        let c = &f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"q\"}"];
        assert!(c.get(".").is_some());
        assert!(
            c["f:ports"]
                .get("k:{\"containerPort\":80,\"protocol\":\"TCP\"}")
                .is_some()
        );
    }
}
