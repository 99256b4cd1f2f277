//! Resource request handlers: get, list (pagination, selectors), watch (history replay,
//! bookmarks, 410 as an ERROR event, timeouts), create, update, patch (JSON, merge,
//! strategic, apply), delete and deletecollection, the status and scale subresources.

use crate::errors::{ApiError, ApiResult};
use crate::patch;
use crate::resources::ResourceDef;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::{Req, ResourceRequest, Shared, error_response, json_response};
use crate::ssa;
use crate::store::{
    DeleteOpts, Deleted, Event, EventType, Managed, State, WriteOpts, at_version, schema_for,
};
use crate::util::{name_of, str_at};
use axum::body::{Body, Bytes};
use axum::http::{Method, Response, header};
use base64::Engine;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

pub async fn resource(
    shared: &Arc<Shared>,
    req: &Req,
    rr: &ResourceRequest,
    verb: &str,
) -> Response<Body> {
    // A watch, or a NotOlderThan list, from a resourceVersion the store has not reached yet:
    // like the watch cache, wait up to 3 s for it, then 504 "Too large resource version".
    let wants_fresh = verb == "watch"
        || (verb == "list" && req.q("resourceVersionMatch") == Some("NotOlderThan"));
    if wants_fresh
        && let Some(want) = req.q("resourceVersion").and_then(|r| r.parse::<u64>().ok())
        && let Err(e) = wait_for_rv(shared, want).await
    {
        return error_response(&e);
    }
    if verb == "watch" {
        return match watch(shared, req, rr) {
            Ok(r) => r,
            Err(e) => error_response(&e),
        };
    }
    let mut st = shared.lock();
    let result = dispatch(&mut st, req, rr, verb);
    drop(st);
    match result {
        Ok((code, v)) => json_response(code, &v),
        Err(e) => error_response(&e),
    }
}

async fn wait_for_rv(shared: &Arc<Shared>, want: u64) -> ApiResult<()> {
    let mut rx = {
        let st = shared.lock();
        if st.rv >= want {
            return Ok(());
        }
        st.tx.subscribe()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if ev.rv >= want => return Ok(()),
            Ok(Ok(_)) | Ok(Err(RecvError::Lagged(_))) => {}
            Ok(Err(RecvError::Closed)) | Err(_) => break,
        }
    }
    let current = shared.lock().rv;
    if current >= want {
        return Ok(());
    }
    Err(ApiError::TooLargeResourceVersion {
        requested: want,
        current,
    })
}

fn lookup(st: &State, rr: &ResourceRequest) -> ApiResult<ResourceDef> {
    let rd = st
        .find_served(&rr.group, &rr.version, &rr.plural)
        .ok_or_else(|| ApiError::NotFound {
            resource: String::new(),
            group: String::new(),
            name: String::new(),
        })?;
    // Namespaced kinds need a namespace for single-object paths; cluster kinds must not have one.
    if (!rd.namespaced && rr.namespace.is_some())
        || (rd.namespaced && rr.name.is_some() && rr.namespace.is_none())
    {
        return Err(ApiError::NotFound {
            resource: String::new(),
            group: String::new(),
            name: String::new(),
        });
    }
    if let Some(sub) = &rr.subresource {
        let ok = (sub == "status" && rd.status_subresource)
            || (sub == "scale" && rd.scale_subresource)
            || (sub == "finalize" && rd.plural == "namespaces");
        if !ok {
            return Err(ApiError::NotFound {
                resource: String::new(),
                group: String::new(),
                name: String::new(),
            });
        }
    }
    Ok(rd)
}

fn fix_404(e: ApiError) -> ApiError {
    match e {
        ApiError::NotFound { resource, .. } if resource.is_empty() => ApiError::NotFound {
            resource: String::new(),
            group: String::new(),
            name: String::new(),
        },
        e => e,
    }
}

fn parse_body(req: &Req) -> ApiResult<Value> {
    let ct = req.header("content-type");
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {ct})"
        )));
    }
    if req.body.is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(v) => Ok(v),
        Err(je) => {
            let s =
                std::str::from_utf8(&req.body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
            serde_saphyr::from_str::<Value>(s).map_err(|ye| {
                ApiError::BadRequest(format!("error decoding request body: {je}; as YAML: {ye}"))
            })
        }
    }
}

fn manager(req: &Req) -> String {
    if let Some(m) = req.q("fieldManager") {
        return m.to_string();
    }
    // apiserver default: the User-Agent up to the first '/'.
    let ua = req.header("user-agent");
    let m = ua.split('/').next().unwrap_or("");
    if m.is_empty() {
        "unknown".into()
    } else {
        m.to_string()
    }
}

fn write_opts(req: &Req, rr: &ResourceRequest) -> ApiResult<WriteOpts> {
    let dry_run = match req.q("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(x) => {
            return Err(ApiError::invalid_param(
                "dryRun",
                &format!("Unsupported value: \"{x}\": supported values: \"All\""),
                "FieldValueNotSupported",
            ));
        }
    };
    if let Some(fv) = req.q("fieldValidation")
        && !matches!(fv, "" | "Ignore" | "Warn" | "Strict")
    {
        return Err(ApiError::BadRequest(format!(
            "fieldValidation must be one of Ignore, Warn or Strict, got {fv}"
        )));
    }
    Ok(WriteOpts {
        strict: req.q("fieldValidation") == Some("Strict"),
        manager: manager(req),
        dry_run,
        subresource: rr
            .subresource
            .clone()
            .filter(|s| s == "status")
            .unwrap_or_default(),
        version: rr.version.clone(),
    })
}

/// `Accept` asks for PartialObjectMetadata(List) (kube-rs metadata_watcher).
fn wants_metadata(req: &Req) -> bool {
    req.header("accept").contains("as=PartialObjectMetadata")
}

fn partial(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

fn dispatch(
    st: &mut State,
    req: &Req,
    rr: &ResourceRequest,
    verb: &str,
) -> ApiResult<(u16, Value)> {
    let rd = lookup(st, rr).map_err(fix_404)?;
    let ns = rr.namespace.clone().unwrap_or_default();
    let name = rr.name.clone().unwrap_or_default();
    let sub = rr.subresource.clone().unwrap_or_default();
    match (req.method.clone(), verb) {
        (_, "get") => {
            let o = st.get(&rd, &ns, &name, &rr.version)?;
            if sub == "scale" {
                return Ok((200, scale_of(&rd, &o)));
            }
            Ok((200, if wants_metadata(req) { partial(&o) } else { o }))
        }
        (_, "list") => list(st, req, rr, &rd),
        (_, "create") => {
            if rr.name.is_some() {
                return Err(ApiError::MethodNotAllowed(
                    "the server does not allow this method on the requested resource".into(),
                ));
            }
            let body = parse_body(req)?;
            check_type(&body, &rd, &rr.version)?;
            let ctx = write_opts(req, rr)?;
            let o = st.create(&rd, &ns, body, &ctx, Managed::Update)?;
            Ok((201, o))
        }
        (_, "update") => {
            let mut body = parse_body(req)?;
            let ctx = write_opts(req, rr)?;
            if sub == "scale" {
                let replicas = body.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
                let o = st.update_with(&rd, &ns, &name, &ctx, Managed::Update, false, |old| {
                    let mut n = old.clone();
                    n["spec"]["replicas"] = replicas;
                    Ok(n)
                })?;
                return Ok((200, scale_of(&rd, &o)));
            }
            if sub == "finalize" {
                let fin = body
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or(json!([]));
                if fin.as_array().is_some_and(|a| a.is_empty()) {
                    st.finalize_namespace(&name);
                }
                return st.get(&rd, &ns, &name, &rr.version).map(|o| (200, o));
            }
            check_type(&body, &rd, &rr.version)?;
            if let Some(m) = body.pointer_mut("/metadata").and_then(Value::as_object_mut)
                && m.get("name").is_none()
            {
                m.insert("name".into(), json!(name));
            }
            let o = st.update_with(&rd, &ns, &name, &ctx, Managed::Update, true, |_| Ok(body))?;
            Ok((200, o))
        }
        (_, "patch") => patch_req(st, req, rr, &rd, &ns, &name),
        (Method::DELETE, "delete") => {
            let opts = delete_opts(req)?;
            match st.delete(&rd, &ns, &name, &opts)? {
                Deleted::Pending(o) => Ok((200, at_version(&o, &rd, &rr.version))),
                Deleted::Gone(o) => {
                    if rd.return_deleted_object {
                        Ok((200, at_version(&o, &rd, &rr.version)))
                    } else {
                        let mut details = json!({"name": name, "kind": rd.plural, "uid": str_at(&o, "/metadata/uid")});
                        if !rd.group.is_empty() {
                            details["group"] = json!(rd.group);
                        }
                        Ok((
                            200,
                            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
                        ))
                    }
                }
            }
        }
        (Method::DELETE, "deletecollection") => {
            let opts = delete_opts(req)?;
            let ls = LabelSelector::parse(req.q("labelSelector").unwrap_or(""))?;
            let fs = FieldSelector::parse_for(&rd.plural, req.q("fieldSelector").unwrap_or(""))?;
            let targets: Vec<(String, String)> = st
                .list(&rd, rr.namespace.as_deref())
                .into_iter()
                .filter(|o| ls.matches(o) && fs.matches(o))
                .map(|o| (crate::util::namespace_of(o), name_of(o)))
                .collect();
            let mut items = vec![];
            for (n, nm) in targets {
                match st.delete(&rd, &n, &nm, &opts) {
                    Ok(Deleted::Pending(o)) | Ok(Deleted::Gone(o)) => {
                        items.push(at_version(&o, &rd, &rr.version))
                    }
                    Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok((
                200,
                json!({"kind": rd.list_kind, "apiVersion": rd.api_version(&rr.version), "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
            ))
        }
        _ => Err(ApiError::MethodNotAllowed(
            "the server does not allow this method on the requested resource".into(),
        )),
    }
}

/// The body's apiVersion/kind must match the URL (apiserver: "the API version in the data
/// (…) does not match the expected API version (…)"; kind mismatch likewise).
fn check_type(body: &Value, rd: &ResourceDef, version: &str) -> ApiResult<()> {
    let expected = rd.api_version(version);
    if let Some(av) = body.get("apiVersion").and_then(Value::as_str)
        && !av.is_empty()
        && av != expected
    {
        return Err(ApiError::BadRequest(format!(
            "the API version in the data ({av}) does not match the expected API version ({expected})"
        )));
    }
    if let Some(k) = body.get("kind").and_then(Value::as_str)
        && !k.is_empty()
        && k != rd.kind
    {
        return Err(ApiError::BadRequest(format!(
            "the kind in the data ({k}) does not match the expected kind ({})",
            rd.kind
        )));
    }
    Ok(())
}

fn scale_of(_rd: &ResourceDef, o: &Value) -> Value {
    let replicas = o.pointer("/spec/replicas").cloned().unwrap_or(json!(1));
    let selector = o
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {"name": name_of(o), "namespace": str_at(o, "/metadata/namespace"), "uid": str_at(o, "/metadata/uid"),
                     "resourceVersion": str_at(o, "/metadata/resourceVersion"), "creationTimestamp": str_at(o, "/metadata/creationTimestamp")},
        "spec": {"replicas": replicas},
        "status": {"replicas": o.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},

    })
}

fn delete_opts(req: &Req) -> ApiResult<DeleteOpts> {
    let body = if req.body.is_empty() {
        json!({})
    } else {
        parse_body(req)?
    };
    let mut o = DeleteOpts {
        propagation: body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(String::from),
        orphan_dependents: body.get("orphanDependents").and_then(Value::as_bool),
        precondition_uid: str_at(&body, "/preconditions/uid").map(String::from),
        precondition_rv: str_at(&body, "/preconditions/resourceVersion").map(String::from),
        dry_run: body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == "All")),
    };
    if let Some(p) = req.q("propagationPolicy") {
        o.propagation = Some(p.into());
    }
    if let Some(p) = req.q("orphanDependents") {
        o.orphan_dependents = Some(p == "true");
    }
    if req.q("dryRun") == Some("All") {
        o.dry_run = true;
    }
    Ok(o)
}

fn patch_req(
    st: &mut State,
    req: &Req,
    rr: &ResourceRequest,
    rd: &ResourceDef,
    ns: &str,
    name: &str,
) -> ApiResult<(u16, Value)> {
    let ct = req
        .header("content-type")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let is_apply = ct == "application/apply-patch+yaml";
    let ctx = write_opts(req, rr)?;
    let force = req.q("force");
    if force.is_some() && !is_apply {
        return Err(ApiError::invalid_param(
            "force",
            "Forbidden: may not be specified for non-apply patch",
            "FieldValueForbidden",
        ));
    }
    let body = parse_body(req)?;
    let sub = rr.subresource.clone().unwrap_or_default();
    if sub == "scale" {
        let replicas = body.pointer("/spec/replicas").cloned();
        let o = st.update_with(rd, ns, name, &ctx, Managed::Update, false, |old| {
            let mut n = old.clone();
            if let Some(r) = replicas {
                n["spec"]["replicas"] = r;
            }
            Ok(n)
        })?;
        return Ok((200, scale_of(rd, &o)));
    }
    match ct.as_str() {
        "application/apply-patch+yaml" => {
            let Some(mgr) = req.q("fieldManager").filter(|m| !m.is_empty()) else {
                return Err(ApiError::invalid_param(
                    "fieldManager",
                    "Required value: is required for apply patch",
                    "FieldValueRequired",
                ));
            };
            if body.pointer("/metadata/managedFields").is_some() {
                return Err(ApiError::BadRequest(
                    "metadata.managedFields must be nil".into(),
                ));
            }
            check_type(&body, rd, &rr.version)?;
            if let Some(bn) = str_at(&body, "/metadata/name")
                && bn != name
            {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({bn}) does not match the name on the URL ({name})"
                )));
            }
            let force = force == Some("true");
            let api_version = rd.api_version(&rr.version);
            let status_sub = rd.status_subresource;
            let areq = ssa::ApplyRequest {
                manager: mgr,
                force,
                api_version: &api_version,
                subresource: &ctx.subresource,
                status_subresource: status_sub,
            };
            if st.get_raw(rd, ns, name).is_none() {
                if sub == "status" {
                    return Err(ApiError::not_found(&rd.plural, &rd.group, name));
                }
                let schema = schema_for(rd, &rr.version);
                let mut seed = json!({"metadata": {"name": name}});
                if rd.namespaced {
                    seed["metadata"]["namespace"] = json!(ns);
                }
                let merged = ssa::apply(&seed, &body, schema.as_ref(), &areq)?;
                let o = st.create(rd, ns, merged, &ctx, Managed::Applied)?;
                return Ok((201, o));
            }
            let schema = schema_for(rd, &rr.version);
            let o = st.update_with(rd, ns, name, &ctx, Managed::Applied, false, |old| {
                ssa::apply(old, &body, schema.as_ref(), &areq)
            })?;
            Ok((200, o))
        }
        "application/json-patch+json" => {
            let o = st.update_with(rd, ns, name, &ctx, Managed::Update, false, |old| {
                patch::json_patch(old, &body)
            })?;
            Ok((200, o))
        }
        "application/merge-patch+json" => {
            let o = st.update_with(rd, ns, name, &ctx, Managed::Update, false, |old| {
                Ok(patch::merge_patch(old, &body))
            })?;
            Ok((200, o))
        }
        "application/strategic-merge-patch+json" if !rd.is_custom() => {
            let plural = rd.plural.clone();
            let o = st.update_with(rd, ns, name, &ctx, Managed::Update, false, |old| {
                Ok(patch::strategic_merge(old, &body, &plural))
            })?;
            Ok((200, o))
        }
        other => Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{} (got {other})",
            if rd.is_custom() {
                ""
            } else {
                ", application/strategic-merge-patch+json"
            }
        ))),
    }
}

// ---- list ----

#[derive(serde::Serialize, serde::Deserialize)]
struct Continue {
    rv: u64,
    start: String,
}

fn list(st: &State, req: &Req, rr: &ResourceRequest, rd: &ResourceDef) -> ApiResult<(u16, Value)> {
    if req.q_bool("sendInitialEvents") {
        return Err(ApiError::invalid_param(
            "sendInitialEvents",
            "Forbidden: sendInitialEvents is forbidden for list",
            "FieldValueForbidden",
        ));
    }
    let rv = req.q("resourceVersion").filter(|s| !s.is_empty());
    let rvm = req.q("resourceVersionMatch").filter(|s| !s.is_empty());
    let cont = req.q("continue").filter(|s| !s.is_empty());
    if rvm.is_some() && rv.is_none() {
        return Err(ApiError::invalid_param(
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            "FieldValueForbidden",
        ));
    }
    if rvm.is_some() && cont.is_some() {
        return Err(ApiError::invalid_param(
            "resourceVersionMatch",
            "Forbidden: resourceVersionMatch is forbidden when continue is provided",
            "FieldValueForbidden",
        ));
    }
    if let (Some(rv), Some("Exact")) = (rv, rvm) {
        if rv == "0" {
            return Err(ApiError::invalid_param(
                "resourceVersionMatch",
                "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                "FieldValueForbidden",
            ));
        }
        if rv.parse::<u64>().ok() != Some(st.rv) {
            return Err(ApiError::Expired(format!(
                "too old resource version: {rv} ({})",
                st.rv
            )));
        }
    }
    let ls = LabelSelector::parse(req.q("labelSelector").unwrap_or(""))?;
    let fs = FieldSelector::parse_for(&rd.plural, req.q("fieldSelector").unwrap_or(""))?;
    let limit: usize = req.q("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
    let (list_rv, start) = match cont {
        Some(c) => {
            let tok: Continue = base64::engine::general_purpose::STANDARD
                .decode(c)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| {
                    ApiError::BadRequest("continue key is not valid: illegal base64 data".into())
                })?;
            if tok.rv < st.compacted_rv {
                return Err(ApiError::Expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.".into()));
            }
            (tok.rv, Some(tok.start))
        }
        None => (st.rv, None),
    };
    let key = |o: &Value| format!("{}/{}", crate::util::namespace_of(o), name_of(o));
    let matching: Vec<&Value> = st
        .list(rd, rr.namespace.as_deref())
        .into_iter()
        .filter(|o| start.as_ref().is_none_or(|s| key(o) > *s))
        .filter(|o| ls.matches(o) && fs.matches(o))
        .collect();
    let meta_only = wants_metadata(req);
    let total = matching.len();
    let take = if limit > 0 { limit.min(total) } else { total };
    let items: Vec<Value> = matching[..take]
        .iter()
        .map(|o| {
            let o = at_version(o, rd, &rr.version);
            if meta_only { partial(&o) } else { o }
        })
        .collect();
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if take < total {
        let tok = Continue {
            rv: list_rv,
            start: key(matching[take - 1]),
        };
        metadata["continue"] = json!(
            base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&tok).expect("json"))
        );
        metadata["remainingItemCount"] = json!(total - take);
    }
    let (kind, api_version) = if meta_only {
        (
            "PartialObjectMetadataList".to_string(),
            "meta.k8s.io/v1".to_string(),
        )
    } else {
        (rd.list_kind.clone(), rd.api_version(&rr.version))
    };
    Ok((
        200,
        json!({"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": items}),
    ))
}

// ---- watch ----

struct WatchFilter {
    group: String,
    plural: String,
    namespace: Option<String>,
    /// Set for the legacy single-object watch (`…/<plural>/<name>?watch=true`).
    name: Option<String>,
    ls: LabelSelector,
    fs: FieldSelector,
}

impl WatchFilter {
    fn matches(&self, o: &Value) -> bool {
        self.namespace
            .as_ref()
            .is_none_or(|n| crate::util::namespace_of(o) == *n)
            && self.name.as_ref().is_none_or(|n| name_of(o) == *n)
            && self.ls.matches(o)
            && self.fs.matches(o)
    }
    /// Map a store event to what this watch sees (selector transitions become ADDED/DELETED).
    fn classify<'a>(&self, ev: &'a Event) -> Option<(&'static str, &'a Value)> {
        if ev.group != self.group || ev.plural != self.plural {
            return None;
        }
        let new_m = self.matches(&ev.object);
        let old_m = ev.old.as_ref().is_some_and(|o| self.matches(o));
        match ev.etype {
            EventType::Added => new_m.then_some(("ADDED", &ev.object)),
            EventType::Deleted => (new_m || old_m).then_some(("DELETED", &ev.object)),
            EventType::Modified => match (old_m, new_m) {
                (true, true) => Some(("MODIFIED", &ev.object)),
                (false, true) => Some(("ADDED", &ev.object)),
                (true, false) => Some(("DELETED", &ev.object)),
                (false, false) => None,
            },
        }
    }
}

/// How a watch shows a stored object: at the version it asked for, or only its metadata.
struct Render {
    rd: ResourceDef,
    version: String,
    api_version: String,
    meta_only: bool,
}

impl Render {
    fn object<'a>(&self, o: &'a Value) -> std::borrow::Cow<'a, Value> {
        if self.meta_only {
            // Only metadata is sent: the version rewrite would not show.
            std::borrow::Cow::Owned(partial(o))
        } else if self.version.is_empty()
            || o.get("apiVersion").and_then(Value::as_str) == Some(&self.api_version)
        {
            // Most watches ask for the stored version: the object is sent as stored, without a copy.
            std::borrow::Cow::Borrowed(o)
        } else {
            std::borrow::Cow::Owned(at_version(o, &self.rd, &self.version))
        }
    }
}

/// One line of a watch stream, serialized from borrowed parts: building a `{"type", "object"}` value first
/// would copy the whole object once more per event and watcher.
fn line(etype: &str, obj: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        #[serde(rename = "type")]
        etype: &'a str,
        object: &'a Value,
    }
    let mut out =
        serde_json::to_vec(&Line { etype, object: obj }).expect("a JSON value serializes");
    out.push(b'\n');
    Bytes::from(out)
}

fn watch(shared: &Arc<Shared>, req: &Req, rr: &ResourceRequest) -> ApiResult<Response<Body>> {
    let st = shared.lock();
    let rd = lookup(&st, rr).map_err(fix_404)?;
    let filter = WatchFilter {
        group: rd.group.clone(),
        plural: rd.plural.clone(),
        namespace: rr.namespace.clone(),
        name: rr.name.clone(),
        ls: LabelSelector::parse(req.q("labelSelector").unwrap_or(""))?,
        fs: FieldSelector::parse_for(&rd.plural, req.q("fieldSelector").unwrap_or(""))?,
    };
    let bookmarks = req.q_bool("allowWatchBookmarks");
    let send_initial = req.q_bool("sendInitialEvents");
    let rv = req.q("resourceVersion").filter(|s| !s.is_empty());
    if send_initial && (req.q("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks) {
        return Err(ApiError::invalid_param(
            "sendInitialEvents",
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan and allowWatchBookmarks",
            "FieldValueForbidden",
        ));
    }
    let timeout = req
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(1800);
    let meta_only = wants_metadata(req);
    let version = rr.version.clone();
    let render = Render {
        api_version: rd.api_version(&version),
        rd: rd.clone(),
        version: version.clone(),
        meta_only,
    };
    let mut initial: Vec<Bytes> = vec![];
    let mut expired: Option<Bytes> = None;
    let start_rv = st.rv;
    let synthetic = send_initial || rv.is_none() || rv == Some("0");
    if synthetic {
        for o in st.list(&rd, rr.namespace.as_deref()) {
            if filter.matches(o) {
                initial.push(line("ADDED", &render.object(o)));
            }
        }
        if send_initial {
            let bm = json!({"kind": rd.kind, "apiVersion": rd.api_version(&version),
                "metadata": {"resourceVersion": start_rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}});
            initial.push(line("BOOKMARK", &bm));
        }
    } else {
        let from: u64 = rv.and_then(|r| r.parse().ok()).ok_or_else(|| {
            ApiError::BadRequest(format!("invalid resource version: {}", rv.unwrap_or("")))
        })?;
        match st.events_since(from) {
            Ok(evs) => {
                for ev in evs {
                    if let Some((t, o)) = filter.classify(&ev) {
                        initial.push(line(t, &render.object(o)));
                    }
                }
            }
            Err(oldest) => {
                let status =
                    ApiError::Expired(format!("too old resource version: {from} ({oldest})"))
                        .to_status();
                expired = Some(line("ERROR", &status));
            }
        }
    }
    let mut rx = st.tx.subscribe();
    let mut gone_rx = st.gone_tx.subscribe();
    drop(st);
    let (tx, out_rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1024);
    let mut drop_rx = shared.drop_watches.subscribe();
    let bookmark_every = shared.bookmark_interval;
    let kind = rd.kind.clone();
    let api_version = rd.api_version(&version);
    tokio::spawn(async move {
        if let Some(e) = expired {
            let _ = tx.send(Ok(e)).await;
            return;
        }
        for b in initial {
            if tx.send(Ok(b)).await.is_err() {
                return;
            }
        }
        let mut last_rv = start_rv;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut next_bm = tokio::time::Instant::now() + bookmark_every;
        let bookmark = |rv: u64| {
            line(
                "BOOKMARK",
                &json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": rv.to_string()}}),
            )
        };
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= last_rv { continue; }
                        last_rv = ev.rv;
                        if let Some((t, o)) = filter.classify(&ev)
                            && tx.send(Ok(line(t, &render.object(o)))).await.is_err() { return; }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let status = ApiError::Expired(format!("too old resource version: {last_rv} ({last_rv})")).to_status();
                        let _ = tx.send(Ok(line("ERROR", &status))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = tokio::time::sleep_until(next_bm), if bookmarks => {
                    next_bm += bookmark_every;
                    if tx.send(Ok(bookmark(last_rv))).await.is_err() { return; }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    // A bookmark right before the timeout, then a clean end of stream.
                    if bookmarks { let _ = tx.send(Ok(bookmark(last_rv))).await; }
                    return;
                }
                gone = gone_rx.recv() => {
                    // The resource stopped being served (CRD deleted): end the stream; the
                    // client's next request gets a 404.
                    if let Ok((g, p)) = gone
                        && g == filter.group && p == filter.plural {
                        // Deliver what was committed before the removal (the DELETED events
                        // of its objects), then end.
                        while let Ok(ev) = rx.try_recv() {
                            if ev.rv > last_rv
                                && let Some((t, o)) = filter.classify(&ev)
                                && tx.send(Ok(line(t, &render.object(o)))).await.is_err() { return; }
                        }
                        return;
                    }
                }
                _ = drop_rx.changed() => {
                    // Simulated connection loss: abort the response without the final chunk.
                    let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "kube-sim dropped the watch"))).await;
                    return;
                }
                _ = tx.closed() => return,
            }
        }
    });
    let stream =
        futures::stream::unfold(
            out_rx,
            |mut rx| async move { rx.recv().await.map(|b| (b, rx)) },
        );
    Ok(Response::builder()
        .status(200)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .expect("response"))
}
