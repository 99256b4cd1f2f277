//! The object store and the write pipeline every write goes through — clients' requests and
//! the simulated controllers alike — so resourceVersion, generation, managedFields, status
//! subresource rules, finalizers and watch events behave the same whoever writes (spec §2-§5).

use crate::crd;
use crate::defaults;
use crate::errors::{ApiError, ApiResult};
use crate::resources::{GenerationPolicy, ResourceDef, builtins};
use crate::ssa::{self, BuiltinSchema, CrdSchema, Schema};
use crate::util::{finalizers, name_of, now_rfc3339, obj_mut, random_suffix, str_at};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::broadcast;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the watch history and fanned out to watchers. The objects are shared with the
/// store (objects are never changed in place, only replaced), so an event costs no copy of them.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub etype: EventType,
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub object: Arc<Value>,
    /// The previous state, so watchers with selectors can turn MODIFIED into ADDED/DELETED.
    pub old: Option<Arc<Value>>,
}

/// How a write records field ownership.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Managed {
    /// Non-apply write: `operation: Update` for the manager.
    Update,
    /// The candidate already carries managedFields computed by server-side apply.
    Applied,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub manager: String,
    pub dry_run: bool,
    /// "" or "status".
    pub subresource: String,
    /// The version the client addressed (apiVersion of managedFields and of the answer).
    pub version: String,
    /// `fieldValidation=Strict`: unknown fields of custom resources are a 400.
    pub strict: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Option<String>,
    pub orphan_dependents: Option<bool>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

/// Outcome of a DELETE: still there (finalizers pending) or gone.
#[derive(Debug, Clone)]
pub enum Deleted {
    Pending(Value),
    Gone(Value),
}

/// Stored objects are shared with the watch history and events (see [`Event`]).
type Bucket = BTreeMap<(String, String), Arc<Value>>;

/// Where an object lives in the store: its resource, namespace ("" when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub plural: String,
    pub namespace: String,
    pub name: String,
}

/// What the garbage collector needs, kept current by every store and removal so that a GC pass
/// looks only at objects a change concerned instead of scanning (and copying) the whole store.
#[derive(Debug, Default)]
struct GcIndex {
    /// uid -> where the object with that uid is.
    by_uid: HashMap<String, ObjectKey>,
    /// owner uid -> objects whose ownerReferences name it.
    dependents: HashMap<String, BTreeSet<ObjectKey>>,
    /// Objects with a deletionTimestamp (their finalizers may be the GC's to handle).
    terminating: BTreeSet<ObjectKey>,
    /// Objects whose owners must be checked: new or changed ownerReferences, or an owner removed.
    unchecked: BTreeSet<ObjectKey>,
}

fn owner_uids(o: &Value) -> Vec<&str> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default()
}

pub struct State {
    pub rv: u64,
    pub resources: Vec<ResourceDef>,
    objects: BTreeMap<(String, String), Bucket>,
    history: VecDeque<Arc<Event>>,
    pub history_limit: usize,
    /// Events with rv <= this are no longer retained; watches from older rvs get 410.
    pub compacted_rv: u64,
    pub tx: broadcast::Sender<Arc<Event>>,
    /// (group, plural) of a resource that stopped being served (its CRD is gone): the
    /// apiserver ends the open watches on it.
    pub gone_tx: broadcast::Sender<(String, String)>,
    ip_seq: u64,
    /// `apps.<domain>` is where simulated Routes get their hosts.
    pub cluster_domain: String,
    gc: GcIndex,
}

pub fn schema_for<'a>(rd: &'a ResourceDef, version: &str) -> Box<dyn Schema + 'a> {
    match rd.schema(version) {
        Some(s) => Box::new(CrdSchema { root: s }),
        None => Box::new(BuiltinSchema {
            plural: rd.plural.clone(),
        }),
    }
}

impl State {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(65536);
        let mut s = State {
            rv: 0,
            resources: builtins(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit,
            compacted_rv: 0,
            tx,
            gone_tx: broadcast::channel(64).0,
            ip_seq: 0,
            cluster_domain: "sim.example.com".into(),
            gc: GcIndex::default(),
        };
        let ctx = WriteOpts {
            manager: "kube-apiserver".into(),
            version: "v1".into(),
            ..Default::default()
        };
        let ns = s.find("", "namespaces").expect("namespaces");
        for n in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let _ = s.create(
                &ns,
                "",
                json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name": n}}),
                &ctx,
                Managed::Update,
            );
        }
        s
    }

    /// Resource by group and plural (any served version).
    pub fn find(&self, group: &str, plural: &str) -> Option<ResourceDef> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .cloned()
    }

    /// Resource by group, version and plural — only if that version is served.
    pub fn find_served(&self, group: &str, version: &str, plural: &str) -> Option<ResourceDef> {
        self.resources
            .iter()
            .find(|r| {
                r.group == group && r.plural == plural && r.versions.iter().any(|v| v == version)
            })
            .cloned()
    }

    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<ResourceDef> {
        let (g, _v) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        self.resources
            .iter()
            .find(|r| r.group == g && r.kind == kind)
            .cloned()
    }

    fn bucket(&self, rd: &ResourceDef) -> Option<&Bucket> {
        self.objects.get(&(rd.group.clone(), rd.plural.clone()))
    }

    pub fn get_raw(&self, rd: &ResourceDef, ns: &str, name: &str) -> Option<&Value> {
        self.get_shared(rd, ns, name).map(Arc::as_ref)
    }

    /// The stored object itself, to keep without a copy (as an event's previous state).
    pub(crate) fn get_shared(&self, rd: &ResourceDef, ns: &str, name: &str) -> Option<&Arc<Value>> {
        let ns = if rd.namespaced { ns } else { "" };
        self.bucket(rd)
            .and_then(|b| b.get(&(ns.to_string(), name.to_string())))
    }

    /// The stored object as seen at `version` (conversion strategy None: apiVersion rewritten).
    pub fn get(&self, rd: &ResourceDef, ns: &str, name: &str, version: &str) -> ApiResult<Value> {
        self.get_raw(rd, ns, name)
            .map(|o| at_version(o, rd, version))
            .ok_or_else(|| ApiError::not_found(&rd.plural, &rd.group, name))
    }

    /// All objects of a resource (optionally in one namespace), sorted by namespace/name.
    pub fn list(&self, rd: &ResourceDef, ns: Option<&str>) -> Vec<&Value> {
        match (self.bucket(rd), ns) {
            (None, _) => vec![],
            (Some(b), None) => b.values().map(Arc::as_ref).collect(),
            // Keys sort by namespace first: one namespace is one contiguous range.
            (Some(b), Some(ns)) => b
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.as_ref())
                .collect(),
        }
    }

    /// The stored object at `key`.
    pub fn get_by_key(&self, key: &ObjectKey) -> Option<&Value> {
        self.get_shared_by_key(key).map(Arc::as_ref)
    }

    /// The stored object at `key` itself, to keep while writing to the store (no copy).
    pub(crate) fn get_shared_by_key(&self, key: &ObjectKey) -> Option<&Arc<Value>> {
        self.objects
            .get(&(key.group.clone(), key.plural.clone()))?
            .get(&(key.namespace.clone(), key.name.clone()))
    }

    /// Every namespaced object in namespace `ns`, whatever its resource.
    pub fn keys_in_namespace(&self, ns: &str) -> Vec<ObjectKey> {
        let mut out = vec![];
        for ((group, plural), b) in &self.objects {
            for ((n, name), _) in b
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
            {
                out.push(ObjectKey {
                    group: group.clone(),
                    plural: plural.clone(),
                    namespace: n.clone(),
                    name: name.clone(),
                });
            }
        }
        out
    }

    // ---- garbage collector index ----

    /// Objects whose owners changed or went away since the last call.
    pub fn gc_take_unchecked(&mut self) -> Vec<ObjectKey> {
        std::mem::take(&mut self.gc.unchecked).into_iter().collect()
    }

    /// Objects being deleted (deletionTimestamp set).
    pub fn gc_terminating(&self) -> Vec<ObjectKey> {
        self.gc.terminating.iter().cloned().collect()
    }

    /// Objects naming `owner_uid` in their ownerReferences.
    pub fn gc_dependents(&self, owner_uid: &str) -> Vec<ObjectKey> {
        self.gc
            .dependents
            .get(owner_uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Where the object with this uid is, if it exists.
    pub fn gc_owner(&self, uid: &str) -> Option<&ObjectKey> {
        self.gc.by_uid.get(uid)
    }

    /// A copy of every object (for rare whole-store sweeps; the GC uses its index instead).
    pub fn all_objects(&self) -> Vec<(ResourceDef, Value)> {
        let mut out = vec![];
        for ((g, p), b) in &self.objects {
            if let Some(rd) = self.find(g, p) {
                for o in b.values() {
                    out.push((rd.clone(), o.as_ref().clone()));
                }
            }
        }
        out
    }

    // ---- watch history ----

    /// Events after `rv` (for a watch), or `Err(oldest)` when history no longer covers it.
    pub fn events_since(&self, rv: u64) -> Result<Vec<Arc<Event>>, u64> {
        if rv < self.compacted_rv {
            return Err(self.compacted_rv);
        }
        // History is in resourceVersion order.
        let first = self.history.partition_point(|e| e.rv <= rv);
        Ok(self.history.range(first..).cloned().collect())
    }

    /// Drop all retained history (a restarted apiserver with a compacted etcd): every watch
    /// from an older rv now gets 410 Expired.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_rv = self.rv;
    }

    pub fn set_history_limit(&mut self, n: usize) {
        self.history_limit = n;
        self.trim_history();
    }

    fn trim_history(&mut self) {
        while self.history.len() > self.history_limit {
            if let Some(e) = self.history.pop_front() {
                self.compacted_rv = e.rv;
            }
        }
    }

    fn emit(
        &mut self,
        etype: EventType,
        rd: &ResourceDef,
        object: Arc<Value>,
        old: Option<Arc<Value>>,
    ) {
        let ev = Arc::new(Event {
            rv: self.rv,
            etype,
            group: rd.group.clone(),
            plural: rd.plural.clone(),
            namespace: crate::util::namespace_of(&object),
            object,
            old,
        });
        self.history.push_back(ev.clone());
        self.trim_history();
        let _ = self.tx.send(ev);
    }

    fn store(&mut self, rd: &ResourceDef, obj: Arc<Value>) {
        let key = ObjectKey {
            group: rd.group.clone(),
            plural: rd.plural.clone(),
            namespace: if rd.namespaced {
                crate::util::namespace_of(&obj)
            } else {
                String::new()
            },
            name: name_of(&obj),
        };
        let bucket = self
            .objects
            .entry((rd.group.clone(), rd.plural.clone()))
            .or_default();
        let old = bucket.insert((key.namespace.clone(), key.name.clone()), obj);
        if let Some(old) = &old {
            self.gc.forget(&key, old);
        }
        // The stored object and the index are borrowed separately: no copy of the object.
        let new = &self.objects[&(key.group.clone(), key.plural.clone())]
            [&(key.namespace.clone(), key.name.clone())];
        self.gc.record(&key, new, old.as_deref());
    }

    fn remove(&mut self, rd: &ResourceDef, ns: &str, name: &str) -> Option<Arc<Value>> {
        let key = ObjectKey {
            group: rd.group.clone(),
            plural: rd.plural.clone(),
            namespace: if rd.namespaced { ns } else { "" }.to_string(),
            name: name.to_string(),
        };
        let old = self
            .objects
            .get_mut(&(rd.group.clone(), rd.plural.clone()))?
            .remove(&(key.namespace.clone(), key.name.clone()))?;
        self.gc.removed(&key, &old);
        Some(old)
    }

    fn bump(&mut self, obj: &mut Value) {
        self.rv += 1;
        obj_mut(obj, "metadata").insert("resourceVersion".into(), json!(self.rv.to_string()));
    }

    // ---- writes ----

    fn check_namespace(&self, rd: &ResourceDef, ns: &str) -> ApiResult<()> {
        if !rd.namespaced {
            return Ok(());
        }
        let nsd = self.find("", "namespaces").expect("namespaces");
        match self.get_raw(&nsd, "", ns) {
            None => Err(ApiError::not_found("namespaces", "", ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError::Forbidden {
                    message: format!(
                        "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                        rd.group_resource(),
                        "",
                        ns
                    ),
                    cause: Some("NamespaceTerminating".into()),
                })
            }
            Some(_) => Ok(()),
        }
    }

    /// Admission-time defaulting and (for CRs) pruning.
    fn admit(
        &mut self,
        rd: &ResourceDef,
        obj: &mut Value,
        version: &str,
        strict: bool,
    ) -> ApiResult<()> {
        if let Some(schema) = rd.schema(version) {
            let before = if strict { Some(obj.clone()) } else { None };
            crd::default_and_prune(obj, schema);
            // Strict decoding fails before validation: the apiserver decodes first.
            if let Some(before) = before {
                let mut unknown = vec![];
                crd::unknown_fields(&before, obj, "", &mut unknown);
                if !unknown.is_empty() {
                    let list: Vec<String> = unknown
                        .iter()
                        .map(|f| format!("unknown field \"{f}\""))
                        .collect();
                    return Err(ApiError::BadRequest(format!(
                        "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                        list.join(", "),
                        kind = rd.kind
                    )));
                }
            }
            let causes = crate::validation::validate(obj, schema);
            if !causes.is_empty() {
                return Err(crate::validation::to_error(
                    &rd.kind,
                    &rd.group,
                    &name_of(obj),
                    causes,
                ));
            }
        } else {
            if strict
                && let Some(unknown) =
                    crate::openapi::unknown_builtin_fields(&rd.group, &rd.kind, obj)
                && !unknown.is_empty()
            {
                let list: Vec<String> = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect();
                return Err(ApiError::BadRequest(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                    list.join(", "),
                    kind = rd.kind
                )));
            }
            crate::openapi::prune_builtin(&rd.group, &rd.kind, obj);
            if rd.plural == "services" && obj.pointer("/spec/clusterIP").is_none() {
                self.ip_seq += 1;
            }
            defaults::default_builtin(&rd.plural, obj, self.ip_seq);
        }
        Ok(())
    }

    /// Create (POST, or apply to a missing object when `managed == Applied`).
    pub fn create(
        &mut self,
        rd: &ResourceDef,
        ns: &str,
        mut obj: Value,
        ctx: &WriteOpts,
        managed: Managed,
    ) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object".into(),
            ));
        }
        let version = if ctx.version.is_empty() {
            rd.storage_version().to_string()
        } else {
            ctx.version.clone()
        };
        if str_at(&obj, "/metadata/resourceVersion").is_some_and(|s| !s.is_empty()) {
            return Err(ApiError::Internal(
                "resourceVersion should not be set on objects to be created".into(),
            ));
        }
        let mut name = str_at(&obj, "/metadata/name").unwrap_or("").to_string();
        if name.is_empty() {
            match str_at(&obj, "/metadata/generateName") {
                Some(g) if !g.is_empty() => name = format!("{g}{}", random_suffix(5)),
                _ => {
                    return Err(ApiError::invalid(
                        &rd.kind,
                        &rd.group,
                        "",
                        "FieldValueRequired",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ));
                }
            }
        }
        if rd.namespaced {
            if let Some(bns) = str_at(&obj, "/metadata/namespace")
                && !bns.is_empty()
                && bns != ns
            {
                return Err(ApiError::BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request".into(),
                ));
            }
            self.check_namespace(rd, ns)?;
        }
        if self.get_raw(rd, ns, &name).is_some() {
            return Err(ApiError::already_exists(&rd.plural, &rd.group, &name));
        }
        {
            let m = obj_mut(&mut obj, "metadata");
            m.insert("name".into(), json!(name));
            if rd.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            m.insert("uid".into(), json!(crate::util::new_uid()));
            m.insert("creationTimestamp".into(), json!(now_rfc3339()));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            if rd.generation != GenerationPolicy::None {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
            if managed == Managed::Update {
                m.remove("managedFields");
            }
        }
        obj["apiVersion"] = json!(rd.api_version(rd.storage_version()));
        obj["kind"] = json!(rd.kind);
        if rd.status_subresource
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        defaults::initial_status(&rd.plural, &mut obj);
        self.admit(rd, &mut obj, &version, ctx.strict)?;
        self.create_time_admission(rd, &mut obj, ns, &name);
        defaults::validate_meta(&rd.plural, &rd.kind, &rd.group, &obj)?;
        if rd.plural == "customresourcedefinitions" {
            let want = format!(
                "{}.{}",
                str_at(&obj, "/spec/names/plural").unwrap_or(""),
                str_at(&obj, "/spec/group").unwrap_or("")
            );
            if name != want {
                return Err(ApiError::invalid(
                    &rd.kind,
                    &rd.group,
                    &name,
                    "FieldValueInvalid",
                    "metadata.name",
                    &format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
                ));
            }
            if crd::resource_from_crd(&obj).is_none() {
                return Err(ApiError::invalid(
                    &rd.kind,
                    &rd.group,
                    &name,
                    "FieldValueRequired",
                    "spec",
                    "Required value: group, names, versions",
                ));
            }
            obj["status"] = crd::established_status(&obj, &now_rfc3339());
            let mut f = finalizers(&obj);
            f.push("customresourcecleanup.apiextensions.k8s.io".into());
            crate::util::set_finalizers(&mut obj, &f);
        }
        if managed == Managed::Update {
            let schema = schema_for(rd, &version);
            ssa::record_update(
                None,
                &mut obj,
                schema.as_ref(),
                &ctx.manager,
                &rd.api_version(&version),
                &ctx.subresource,
                rd.status_subresource,
            );
        }
        if ctx.dry_run {
            return Ok(at_version(&obj, rd, &version));
        }
        self.bump(&mut obj);
        if rd.plural == "customresourcedefinitions"
            && let Some(def) = crd::resource_from_crd(&obj)
        {
            self.register(def);
        }
        let obj = Arc::new(obj);
        self.store(rd, obj.clone());
        self.emit(EventType::Added, rd, obj.clone(), None);
        Ok(at_version(&obj, rd, &version))
    }

    /// Mutating admission that only happens on create: the PVC protection finalizer and the
    /// openshift-apiserver's Route host defaulting (spec §8.3, §8.4).
    fn create_time_admission(&mut self, rd: &ResourceDef, obj: &mut Value, ns: &str, name: &str) {
        if rd.group.is_empty() && rd.plural == "persistentvolumeclaims" {
            let mut f = finalizers(obj);
            if !f.iter().any(|x| x == "kubernetes.io/pvc-protection") {
                f.push("kubernetes.io/pvc-protection".into());
            }
            crate::util::set_finalizers(obj, &f);
        }
        if rd.group == "route.openshift.io" && rd.plural == "routes" {
            let domain = self.cluster_domain.clone();
            let needs_host = obj
                .pointer("/spec/host")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            if needs_host {
                obj_mut(obj, "spec")
                    .insert("host".into(), json!(format!("{name}-{ns}.apps.{domain}")));
                let md = obj_mut(obj, "metadata");
                let ann = md.entry("annotations").or_insert_with(|| json!({}));
                ann["openshift.io/host.generated"] = json!("true");
            }
            let spec = obj_mut(obj, "spec");
            if spec.get("wildcardPolicy").is_none() {
                spec.insert("wildcardPolicy".into(), json!("None"));
            }
            if let Some(to) = spec.get_mut("to").and_then(Value::as_object_mut)
                && to.get("weight").is_none()
            {
                to.insert("weight".into(), json!(100));
            }
        }
    }

    fn register(&mut self, def: ResourceDef) {
        self.resources
            .retain(|r| !(r.group == def.group && r.plural == def.plural));
        self.resources.push(def);
    }

    /// Update an existing object: `f` turns the stored object into the client's intended
    /// object (PUT body, patched document or apply result); the pipeline then enforces
    /// preconditions, subresource rules, defaults, generation and finalizer semantics.
    #[allow(clippy::too_many_arguments)]
    pub fn update_with(
        &mut self,
        rd: &ResourceDef,
        ns: &str,
        name: &str,
        ctx: &WriteOpts,
        managed: Managed,
        require_rv: bool,
        f: impl FnOnce(&Value) -> ApiResult<Value>,
    ) -> ApiResult<Value> {
        let version = if ctx.version.is_empty() {
            rd.storage_version().to_string()
        } else {
            ctx.version.clone()
        };
        let old = self
            .get_shared(rd, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rd.plural, &rd.group, name))?;
        let old_v = at_version_cow(&old, rd, &version);
        let candidate = f(&old_v)?;
        if !candidate.is_object() {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object".into(),
            ));
        }
        // Optimistic concurrency (PUT and rv-carrying patches).
        match str_at(&candidate, "/metadata/resourceVersion") {
            Some(rv) if !rv.is_empty() && Some(rv) != str_at(&old, "/metadata/resourceVersion") => {
                return Err(ApiError::conflict_modified(&rd.plural, &rd.group, name));
            }
            None | Some("") if require_rv && rd.is_custom() => {
                return Err(ApiError::invalid(
                    &rd.kind,
                    &rd.group,
                    name,
                    "FieldValueInvalid",
                    "metadata.resourceVersion",
                    "Invalid value: 0x0: must be specified for an update",
                ));
            }
            _ => {}
        }
        if let Some(cn) = str_at(&candidate, "/metadata/name")
            && cn != name
        {
            return Err(ApiError::BadRequest(format!(
                "the name of the object ({cn}) does not match the name on the URL ({name})"
            )));
        }
        let mut new = if ctx.subresource == "status" {
            // Status strategy: old object + new status (+ managedFields).
            let mut n = old.as_ref().clone();
            match candidate.get("status") {
                Some(s) => n["status"] = s.clone(),
                None => {
                    if let Some(m) = n.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            if managed == Managed::Applied {
                let mf = candidate.pointer("/metadata/managedFields").cloned();
                let m = obj_mut(&mut n, "metadata");
                match mf {
                    Some(mf) => m.insert("managedFields".into(), mf),
                    None => m.remove("managedFields"),
                };
            }
            n
        } else {
            let mut n = candidate;
            if rd.status_subresource {
                match old.get("status") {
                    Some(s) => n["status"] = s.clone(),
                    None => {
                        if let Some(m) = n.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            if managed == Managed::Update {
                // A non-apply write does not set managedFields itself (clients echo them back).
                let mf = old.pointer("/metadata/managedFields").cloned();
                let m = obj_mut(&mut n, "metadata");
                match mf {
                    Some(mf) => m.insert("managedFields".into(), mf),
                    None => m.remove("managedFields"),
                };
            }
            // System-owned metadata cannot be changed by clients.
            let om = old.get("metadata").cloned().unwrap_or(json!({}));
            let m = obj_mut(&mut n, "metadata");
            for k in [
                "uid",
                "creationTimestamp",
                "name",
                "namespace",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
            ] {
                match om.get(k) {
                    Some(v) => m.insert(k.into(), v.clone()),
                    None => m.remove(k),
                };
            }
            m.remove("generateName");
            if let Some(g) = om.get("generateName") {
                m.insert("generateName".into(), g.clone());
            }
            n
        };
        new["apiVersion"] = json!(rd.api_version(rd.storage_version()));
        new["kind"] = json!(rd.kind);
        if rd.plural == "namespaces" && ctx.subresource != "status" {
            // spec.finalizers is only changed through /finalize.
            if let Some(s) = old.get("spec") {
                new["spec"] = s.clone();
            }
        }
        // No new finalizers on a terminating object.
        if old.pointer("/metadata/deletionTimestamp").is_some() {
            let of = finalizers(&old);
            if finalizers(&new).iter().any(|f| !of.contains(f)) {
                return Err(ApiError::invalid(
                    &rd.kind,
                    &rd.group,
                    name,
                    "FieldValueForbidden",
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        self.admit(rd, &mut new, &version, ctx.strict)?;
        defaults::validate_update(&rd.plural, &rd.kind, &rd.group, &old, &new)?;
        defaults::validate_meta(&rd.plural, &rd.kind, &rd.group, &new)?;
        if managed == Managed::Update {
            let schema = schema_for(rd, &version);
            ssa::record_update(
                Some(&old),
                &mut new,
                schema.as_ref(),
                &ctx.manager,
                &rd.api_version(&version),
                &ctx.subresource,
                rd.status_subresource,
            );
        }
        // Generation.
        if rd.generation != GenerationPolicy::None
            && ctx.subresource != "status"
            && generation_changed(rd, &old, &new)
        {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            obj_mut(&mut new, "metadata").insert("generation".into(), json!(g + 1));
        }
        if rd.plural == "customresourcedefinitions" {
            if let Some(s) = old.get("status") {
                new["status"] = s.clone();
            }
            if crd::resource_from_crd(&new).is_none() {
                return Err(ApiError::invalid(
                    &rd.kind,
                    &rd.group,
                    name,
                    "FieldValueRequired",
                    "spec",
                    "Required value",
                ));
            }
            let est = crd::established_status(&new, &now_rfc3339());
            if old.pointer("/status/acceptedNames") != est.get("acceptedNames") {
                new["status"] = est;
            }
        }
        // Unchanged (ignoring managedFields timestamps): no write, no rv bump, no event.
        if ssa::same_but_times(&old, &new) {
            return Ok(old_v.into_owned());
        }
        if ctx.dry_run {
            return Ok(at_version(&new, rd, &version));
        }
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        if deleting && finalizers(&new).is_empty() && rd.plural != "namespaces" {
            self.finish_delete(rd, ns, name, new.clone());
            return Ok(at_version(&new, rd, &version));
        }
        self.bump(&mut new);
        if rd.plural == "customresourcedefinitions"
            && let Some(def) = crd::resource_from_crd(&new)
        {
            self.register(def);
        }
        let new = Arc::new(new);
        self.store(rd, new.clone());
        self.emit(EventType::Modified, rd, new.clone(), Some(old));
        Ok(at_version(&new, rd, &version))
    }

    /// Remove for good: new rv, DELETED event carrying the last state.
    fn finish_delete(&mut self, rd: &ResourceDef, ns: &str, name: &str, mut last: Value) {
        let old = self.remove(rd, ns, name);
        self.bump(&mut last);
        if rd.plural == "customresourcedefinitions"
            && let Some(def) = crd::resource_from_crd(&last)
        {
            self.resources
                .retain(|r| !(r.group == def.group && r.plural == def.plural));
            let dropped = self
                .objects
                .remove(&(def.group.clone(), def.plural.clone()))
                .unwrap_or_default();
            for ((namespace, name), o) in dropped {
                let key = ObjectKey {
                    group: def.group.clone(),
                    plural: def.plural.clone(),
                    namespace,
                    name,
                };
                self.gc.removed(&key, &o);
            }
            let _ = self.gone_tx.send((def.group.clone(), def.plural.clone()));
        }
        self.emit(EventType::Deleted, rd, Arc::new(last), old);
    }

    /// DELETE semantics of spec §4.1 (finalizers, propagation, preconditions).
    pub fn delete(
        &mut self,
        rd: &ResourceDef,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> ApiResult<Deleted> {
        let old = self
            .get_shared(rd, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rd.plural, &rd.group, name))?;
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != str_at(&old, "/metadata/uid")
        {
            return Err(ApiError::Conflict {
                resource: rd.group_resource(),
                group: String::new(),
                name: name.into(),
                msg: format!(
                    "Precondition failed: UID in precondition: {}, UID in object meta: {}",
                    uid,
                    str_at(&old, "/metadata/uid").unwrap_or("")
                ),
            });
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != str_at(&old, "/metadata/resourceVersion")
        {
            return Err(ApiError::Conflict {
                resource: rd.group_resource(),
                group: String::new(),
                name: name.into(),
                msg: format!(
                    "Precondition failed: ResourceVersion in precondition: {}, ResourceVersion in object meta: {}",
                    rv,
                    str_at(&old, "/metadata/resourceVersion").unwrap_or("")
                ),
            });
        }
        if opts.propagation.is_some() && opts.orphan_dependents.is_some() {
            return Err(ApiError::invalid_param(
                "propagationPolicy",
                "Invalid value: \"...\": orphanDependents and deletionPropagation cannot be both set",
                "FieldValueInvalid",
            ));
        }
        let policy = match (&opts.propagation, opts.orphan_dependents) {
            (Some(p), _) => p.clone(),
            (None, Some(true)) => "Orphan".into(),
            _ => "Background".into(),
        };
        if !matches!(policy.as_str(), "Background" | "Foreground" | "Orphan") {
            return Err(ApiError::invalid_param(
                "propagationPolicy",
                &format!(
                    "Unsupported value: \"{policy}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
                ),
                "FieldValueNotSupported",
            ));
        }
        let mut obj = old.as_ref().clone();
        let mut f = finalizers(&obj);
        let already = obj.pointer("/metadata/deletionTimestamp").is_some();
        if !already {
            let extra = match policy.as_str() {
                "Foreground" => Some("foregroundDeletion"),
                "Orphan" => Some("orphan"),
                _ => None,
            };
            if let Some(x) = extra
                && !f.iter().any(|y| y == x)
            {
                f.push(x.into());
            }
        }
        let terminating_ns = rd.plural == "namespaces";
        if f.is_empty() && !terminating_ns {
            if opts.dry_run {
                return Ok(Deleted::Gone(Arc::unwrap_or_clone(old)));
            }
            self.finish_delete(rd, ns, name, obj.clone());
            let gone = self.last_event_object();
            return Ok(Deleted::Gone(gone.unwrap_or(obj)));
        }
        if already {
            return Ok(Deleted::Pending(obj));
        }
        crate::util::set_finalizers(&mut obj, &f);
        {
            let m = obj_mut(&mut obj, "metadata");
            m.insert("deletionTimestamp".into(), json!(now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            if let Some(g) = m.get("generation").and_then(Value::as_i64)
                && g > 0
            {
                m.insert("generation".into(), json!(g + 1));
            }
        }
        if terminating_ns {
            obj["status"] = json!({"phase": "Terminating"});
        }
        if rd.plural == "customresourcedefinitions"
            && let Some(conds) = obj
                .pointer_mut("/status/conditions")
                .and_then(Value::as_array_mut)
        {
            // The finalizer controller's condition while custom resources are removed.
            conds.push(json!({"type": "Terminating", "status": "True", "reason": "InstanceDeletionInProgress",
                "message": "CustomResource deletion is in progress", "lastTransitionTime": now_rfc3339()}));
        }
        if opts.dry_run {
            return Ok(Deleted::Pending(obj));
        }
        self.bump(&mut obj);
        let obj = Arc::new(obj);
        self.store(rd, obj.clone());
        self.emit(EventType::Modified, rd, obj.clone(), Some(old));
        Ok(Deleted::Pending(obj.as_ref().clone()))
    }

    fn last_event_object(&self) -> Option<Value> {
        self.history.back().map(|e| e.object.as_ref().clone())
    }

    /// Final removal of a terminating namespace (namespace controller's last step).
    pub fn finalize_namespace(&mut self, name: &str) {
        let rd = self.find("", "namespaces").expect("namespaces");
        if let Some(mut o) = self.get_raw(&rd, "", name).cloned() {
            let old_spec_finalizers = o.pointer("/spec/finalizers").cloned();
            if let Some(spec) = o.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("finalizers".into(), json!([]));
            }
            if finalizers(&o).is_empty() {
                self.finish_delete(&rd, "", name, o);
            } else {
                // metadata finalizers still pending: keep it terminating.
                if o.pointer("/spec/finalizers") != old_spec_finalizers.as_ref() {
                    let old = self.get_shared(&rd, "", name).cloned();
                    self.bump(&mut o);
                    let o = Arc::new(o);
                    self.store(&rd, o.clone());
                    self.emit(EventType::Modified, &rd, o, old);
                }
            }
        }
    }
}

impl GcIndex {
    /// `o` (stored at `key`) is being replaced or removed: forget what it said.
    fn forget(&mut self, key: &ObjectKey, o: &Value) {
        if let Some(uid) = str_at(o, "/metadata/uid")
            && self.by_uid.get(uid) == Some(key)
        {
            self.by_uid.remove(uid);
        }
        for owner in owner_uids(o) {
            if let Some(deps) = self.dependents.get_mut(owner) {
                deps.remove(key);
                if deps.is_empty() {
                    self.dependents.remove(owner);
                }
            }
        }
        self.terminating.remove(key);
    }

    /// `o` is now stored at `key`, replacing `old`.
    fn record(&mut self, key: &ObjectKey, o: &Value, old: Option<&Value>) {
        if let Some(uid) = str_at(o, "/metadata/uid") {
            self.by_uid.insert(uid.to_string(), key.clone());
        }
        let owners = owner_uids(o);
        for owner in &owners {
            self.dependents
                .entry(owner.to_string())
                .or_default()
                .insert(key.clone());
        }
        if !owners.is_empty() && old.is_none_or(|old| owner_uids(old) != owners) {
            self.unchecked.insert(key.clone());
        }
        if o.pointer("/metadata/deletionTimestamp").is_some() {
            self.terminating.insert(key.clone());
        }
    }

    /// `o` left the store: its dependents may now be orphans.
    fn removed(&mut self, key: &ObjectKey, o: &Value) {
        self.forget(key, o);
        self.unchecked.remove(key);
        if let Some(uid) = str_at(o, "/metadata/uid")
            && let Some(deps) = self.dependents.get(uid)
        {
            self.unchecked.extend(deps.iter().cloned());
        }
    }
}

/// [`at_version`] without a copy when the object already is at that version (the common case: clients
/// mostly ask for the storage version).
pub fn at_version_cow<'a>(
    obj: &'a Value,
    rd: &ResourceDef,
    version: &str,
) -> std::borrow::Cow<'a, Value> {
    if version.is_empty()
        || obj.get("apiVersion").and_then(Value::as_str) == Some(rd.api_version(version).as_str())
    {
        std::borrow::Cow::Borrowed(obj)
    } else {
        std::borrow::Cow::Owned(at_version(obj, rd, version))
    }
}

/// The stored object rendered at the requested version (apiVersion rewritten only).
pub fn at_version(obj: &Value, rd: &ResourceDef, version: &str) -> Value {
    let mut o = obj.clone();
    if !version.is_empty() {
        o["apiVersion"] = json!(rd.api_version(version));
    }
    o
}

fn generation_changed(rd: &ResourceDef, old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut c = v.clone();
        if let Some(m) = c.as_object_mut() {
            m.remove("metadata");
            m.remove("apiVersion");
            m.remove("kind");
            if rd.status_subresource {
                m.remove("status");
            }
        }
        c
    };
    match rd.generation {
        GenerationPolicy::None => false,
        GenerationPolicy::Spec => old.get("spec") != new.get("spec"),
        GenerationPolicy::SpecAndAnnotations => {
            old.get("spec") != new.get("spec")
                || old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations")
        }
        GenerationPolicy::NonMetadata => strip(old) != strip(new),
    }
}
