//! Garbage collector and namespace / CRD cleanup (spec §4.1 propagation, §4.2 namespace
//! deletion, §5.1 CRD deletion). Runs as a background task woken by every store event; each
//! pass scans the whole store (test-sized data) and writes through the normal pipeline with
//! the field manager the real controllers use.

use crate::resources::ResourceDef;
use crate::server::Shared;
use crate::store::{DeleteOpts, Managed, State, WriteOpts};
use crate::util::{finalizers, name_of, namespace_of, str_at};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn ctx(rd: &ResourceDef, manager: &str) -> WriteOpts {
    WriteOpts {
        manager: manager.into(),
        version: rd.storage_version().into(),
        ..Default::default()
    }
}

fn owner_refs(o: &Value) -> Vec<Value> {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn remove_finalizer(st: &mut State, rd: &ResourceDef, o: &Value, fin: &str, manager: &str) {
    let fin = fin.to_string();
    let _ = st.update_with(
        rd,
        &namespace_of(o),
        &name_of(o),
        &ctx(rd, manager),
        Managed::Update,
        false,
        |old| {
            let mut n = old.clone();
            let f: Vec<String> = finalizers(old).into_iter().filter(|x| *x != fin).collect();
            crate::util::set_finalizers(&mut n, &f);
            Ok(n)
        },
    );
}

fn delete(st: &mut State, rd: &ResourceDef, o: &Value, policy: &str) {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let opts = DeleteOpts {
        propagation: Some(policy.into()),
        ..Default::default()
    };
    let _ = st.delete(rd, &namespace_of(o), &name_of(o), &opts);
}

/// One GC pass. Returns true if it changed anything (another pass may be needed).
pub fn pass(st: &mut State) -> bool {
    let before = st.rv;
    let all = st.all_objects();
    let mut by_uid: HashMap<String, (ResourceDef, Value)> = HashMap::new();
    for (rd, o) in &all {
        if let Some(u) = str_at(o, "/metadata/uid") {
            by_uid.insert(u.to_string(), (rd.clone(), o.clone()));
        }
    }
    let mut dependents: HashMap<String, Vec<(ResourceDef, Value)>> = HashMap::new();
    for (rd, o) in &all {
        for r in owner_refs(o) {
            if let Some(u) = r.get("uid").and_then(Value::as_str) {
                dependents
                    .entry(u.to_string())
                    .or_default()
                    .push((rd.clone(), o.clone()));
            }
        }
    }
    // Dependents of owners that are gone.
    for (rd, o) in &all {
        let refs = owner_refs(o);
        if refs.is_empty() {
            continue;
        }
        let ns = namespace_of(o);
        let live = |r: &Value| {
            let Some(u) = r.get("uid").and_then(Value::as_str) else {
                return false;
            };
            match by_uid.get(u) {
                // Ownership is namespace-scoped: a namespaced owner must be in the same namespace.
                Some((ord, owner)) => !ord.namespaced || namespace_of(owner) == ns,
                None => false,
            }
        };
        let alive: Vec<Value> = refs.iter().filter(|r| live(r)).cloned().collect();
        if alive.len() == refs.len() {
            continue;
        }
        if alive.is_empty() {
            delete(st, rd, o, "Background");
        } else {
            let _ = st.update_with(
                rd,
                &ns,
                &name_of(o),
                &ctx(rd, "generic-garbage-collector"),
                Managed::Update,
                false,
                |old| {
                    let mut n = old.clone();
                    n["metadata"]["ownerReferences"] = Value::Array(alive.clone());
                    Ok(n)
                },
            );
        }
    }
    // Owners being deleted in the foreground or with orphaning.
    for (rd, o) in &all {
        if o.pointer("/metadata/deletionTimestamp").is_none() {
            continue;
        }
        let f = finalizers(o);
        let uid = str_at(o, "/metadata/uid").unwrap_or("").to_string();
        let deps = dependents.get(&uid).cloned().unwrap_or_default();
        if f.iter().any(|x| x == "orphan") {
            for (drd, d) in &deps {
                let u = uid.clone();
                let _ = st.update_with(
                    drd,
                    &namespace_of(d),
                    &name_of(d),
                    &ctx(drd, "generic-garbage-collector"),
                    Managed::Update,
                    false,
                    |old| {
                        let mut n = old.clone();
                        let refs: Vec<Value> = owner_refs(old)
                            .into_iter()
                            .filter(|r| r.get("uid").and_then(Value::as_str) != Some(&u))
                            .collect();
                        if refs.is_empty() {
                            if let Some(m) = n["metadata"].as_object_mut() {
                                m.remove("ownerReferences");
                            }
                        } else {
                            n["metadata"]["ownerReferences"] = Value::Array(refs);
                        }
                        Ok(n)
                    },
                );
            }
            remove_finalizer(st, rd, o, "orphan", "generic-garbage-collector");
        } else if f.iter().any(|x| x == "foregroundDeletion") {
            let mut blocking = false;
            for (drd, d) in &deps {
                delete(st, drd, d, "Foreground");
                let still = st.get_raw(drd, &namespace_of(d), &name_of(d)).is_some();
                let blocks = owner_refs(d).iter().any(|r| {
                    r.get("uid").and_then(Value::as_str) == Some(&uid)
                        && r.get("blockOwnerDeletion")
                            .and_then(Value::as_bool)
                            .unwrap_or(false)
                });
                if still && blocks {
                    blocking = true;
                }
            }
            if !blocking {
                remove_finalizer(st, rd, o, "foregroundDeletion", "generic-garbage-collector");
            }
        }
        if rd.plural == "namespaces" {
            let ns = name_of(o);
            let mut remaining = 0;
            for (drd, d) in &all {
                if drd.namespaced && namespace_of(d) == ns {
                    remaining += 1;
                    delete(st, drd, d, "Background");
                }
            }
            if remaining == 0 {
                st.finalize_namespace(&ns);
            }
        }
        if rd.plural == "customresourcedefinitions"
            && f.iter()
                .any(|x| x == "customresourcecleanup.apiextensions.k8s.io")
        {
            let group = str_at(o, "/spec/group").unwrap_or("").to_string();
            let plural = str_at(o, "/spec/names/plural").unwrap_or("").to_string();
            let mut remaining = 0;
            if let Some(crd) = st.find(&group, &plural) {
                let objs: Vec<Value> = st.list(&crd, None).into_iter().cloned().collect();
                for d in objs {
                    remaining += 1;
                    delete(st, &crd, &d, "Background");
                }
            }
            if remaining == 0 {
                remove_finalizer(
                    st,
                    rd,
                    o,
                    "customresourcecleanup.apiextensions.k8s.io",
                    "apiextensions-apiserver",
                );
            }
        }
    }
    st.rv != before
}

/// The GC loop: a pass after every batch of events (and a slow tick as a safety net).
pub async fn run(shared: Arc<Shared>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut rx = shared.lock().tx.subscribe();
    loop {
        // Repeat until a pass changes nothing (its own writes wake it again anyway).
        for _ in 0..50 {
            let changed = pass(&mut shared.lock());
            if !changed {
                break;
            }
        }
        tokio::select! {
            r = rx.recv() => {
                if let Err(tokio::sync::broadcast::error::RecvError::Closed) = r { return; }
                // Drain whatever else is queued: one pass covers them all.
                while rx.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return,
        }
    }
}
