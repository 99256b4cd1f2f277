//! Garbage collector and namespace / CRD cleanup (spec §4.1 propagation, §4.2 namespace
//! deletion, §5.1 CRD deletion). Runs as a background task woken by every store event; each
//! pass looks only at what the store's GC index says changed (objects whose owners changed or
//! went away, objects being deleted), so a write costs the same with 50 objects or 50,000, and
//! writes through the normal pipeline with the field manager the real controllers use.

use crate::resources::ResourceDef;
use crate::server::Shared;
use crate::store::{DeleteOpts, Managed, ObjectKey, State, WriteOpts};
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

/// Resource definitions looked up once per pass (a lookup copies the definition, schemas included).
#[derive(Default)]
struct Defs(HashMap<(String, String), Option<ResourceDef>>);

impl Defs {
    fn get(&mut self, st: &State, key: &ObjectKey) -> Option<ResourceDef> {
        self.0
            .entry((key.group.clone(), key.plural.clone()))
            .or_insert_with(|| st.find(&key.group, &key.plural))
            .clone()
    }
}

/// One GC pass over what changed since the last one: objects whose owners changed or went away,
/// and objects being deleted. Returns true if it changed anything (another pass may be needed).
pub fn pass(st: &mut State) -> bool {
    let before = st.rv;
    let mut defs = Defs::default();
    for key in st.gc_take_unchecked() {
        collect_if_orphaned(st, &mut defs, &key);
    }
    for key in st.gc_terminating() {
        finish_deletion(st, &mut defs, &key);
    }
    st.rv != before
}

/// Dependents of owners that are gone: deleted when no owner is left, else the dead references dropped.
fn collect_if_orphaned(st: &mut State, defs: &mut Defs, key: &ObjectKey) {
    // Shared, not copied: most objects checked keep their owners and are not written.
    let Some(o) = st.get_shared_by_key(key).cloned() else {
        return;
    };
    let Some(rd) = defs.get(st, key) else {
        return;
    };
    let refs = owner_refs(&o);
    if refs.is_empty() {
        return;
    }
    let live = |r: &Value| {
        let Some(u) = r.get("uid").and_then(Value::as_str) else {
            return false;
        };
        match st.gc_owner(u) {
            // Ownership is namespace-scoped: a namespaced owner must be in the same namespace.
            Some(owner) => owner.namespace.is_empty() || owner.namespace == key.namespace,
            None => false,
        }
    };
    let alive: Vec<Value> = refs.iter().filter(|r| live(r)).cloned().collect();
    if alive.len() == refs.len() {
        return;
    }
    if alive.is_empty() {
        delete(st, &rd, &o, "Background");
    } else {
        let _ = st.update_with(
            &rd,
            &key.namespace,
            &key.name,
            &ctx(&rd, "generic-garbage-collector"),
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

/// An owner being deleted in the foreground or with orphaning, a terminating namespace, or a CRD
/// whose custom resources must go first.
fn finish_deletion(st: &mut State, defs: &mut Defs, key: &ObjectKey) {
    let Some(o) = st.get_by_key(key).cloned() else {
        return;
    };
    let Some(rd) = defs.get(st, key) else {
        return;
    };
    let f = finalizers(&o);
    let uid = str_at(&o, "/metadata/uid").unwrap_or("").to_string();
    let deps: Vec<(ResourceDef, Value)> = st
        .gc_dependents(&uid)
        .iter()
        .filter_map(|k| Some((defs.get(st, k)?, st.get_by_key(k)?.clone())))
        .collect();
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
        remove_finalizer(st, &rd, &o, "orphan", "generic-garbage-collector");
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
            remove_finalizer(
                st,
                &rd,
                &o,
                "foregroundDeletion",
                "generic-garbage-collector",
            );
        }
    }
    if rd.plural == "namespaces" {
        let ns = name_of(&o);
        let mut remaining = 0;
        for k in st.keys_in_namespace(&ns) {
            let (Some(drd), Some(d)) = (defs.get(st, &k), st.get_by_key(&k).cloned()) else {
                continue;
            };
            remaining += 1;
            delete(st, &drd, &d, "Background");
        }
        if remaining == 0 {
            st.finalize_namespace(&ns);
        }
    }
    if rd.plural == "customresourcedefinitions"
        && f.iter()
            .any(|x| x == "customresourcecleanup.apiextensions.k8s.io")
    {
        let group = str_at(&o, "/spec/group").unwrap_or("").to_string();
        let plural = str_at(&o, "/spec/names/plural").unwrap_or("").to_string();
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
                &rd,
                &o,
                "customresourcecleanup.apiextensions.k8s.io",
                "apiextensions-apiserver",
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts() -> WriteOpts {
        WriteOpts {
            manager: "test".into(),
            version: "v1".into(),
            ..Default::default()
        }
    }

    fn configmap(st: &mut State, ns: &str, name: &str, owner: Option<&Value>) -> Value {
        let rd = st.find("", "configmaps").unwrap();
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        if let Some(o) = owner {
            cm["metadata"]["ownerReferences"] = json!([{"apiVersion": "v1", "kind": "ConfigMap",
                "name": name_of(o), "uid": str_at(o, "/metadata/uid")}]);
        }
        st.create(&rd, ns, cm, &opts(), Managed::Update).unwrap()
    }

    fn namespace(st: &mut State, name: &str) {
        let rd = st.find("", "namespaces").unwrap();
        st.create(
            &rd,
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            &opts(),
            Managed::Update,
        )
        .unwrap();
    }

    #[test]
    fn a_pass_visits_only_dependents_of_removed_owners() {
        let mut st = State::new(1000);
        namespace(&mut st, "a");
        namespace(&mut st, "b");
        let owner_a = configmap(&mut st, "a", "owner", None);
        let owner_b = configmap(&mut st, "b", "owner", None);
        for i in 0..50 {
            configmap(&mut st, "a", &format!("dep-{i}"), Some(&owner_a));
        }
        configmap(&mut st, "b", "dep", Some(&owner_b));
        // New dependents are checked once (their owners exist): nothing changes.
        assert!(!pass(&mut st));
        assert!(
            st.gc_take_unchecked().is_empty(),
            "checked objects stay checked"
        );

        let rd = st.find("", "configmaps").unwrap();
        st.delete(&rd, "b", "owner", &DeleteOpts::default())
            .unwrap();
        assert_eq!(
            st.gc_dependents(str_at(&owner_b, "/metadata/uid").unwrap())
                .len(),
            1
        );
        assert!(pass(&mut st), "the orphan is collected");
        assert!(st.get_raw(&rd, "b", "dep").is_none());
        assert_eq!(st.list(&rd, Some("a")).len(), 51, "namespace a untouched");
        assert!(!pass(&mut st));
    }

    #[test]
    fn owner_in_another_namespace_does_not_count() {
        let mut st = State::new(1000);
        namespace(&mut st, "a");
        namespace(&mut st, "b");
        let owner = configmap(&mut st, "a", "owner", None);
        configmap(&mut st, "b", "dep", Some(&owner));
        assert!(pass(&mut st));
        let rd = st.find("", "configmaps").unwrap();
        assert!(st.get_raw(&rd, "b", "dep").is_none());
        assert!(st.get_raw(&rd, "a", "owner").is_some());
    }

    #[test]
    fn terminating_namespace_empties_then_goes() {
        let mut st = State::new(1000);
        namespace(&mut st, "a");
        namespace(&mut st, "ab");
        configmap(&mut st, "a", "one", None);
        configmap(&mut st, "ab", "other", None);
        let ns = st.find("", "namespaces").unwrap();
        st.delete(&ns, "", "a", &DeleteOpts::default()).unwrap();
        for _ in 0..5 {
            if !pass(&mut st) {
                break;
            }
        }
        let cm = st.find("", "configmaps").unwrap();
        assert!(st.list(&cm, Some("a")).is_empty());
        assert!(st.get_raw(&ns, "", "a").is_none(), "namespace finalized");
        assert_eq!(
            st.list(&cm, Some("ab")).len(),
            1,
            "a prefix is not the namespace"
        );
        assert!(st.gc_terminating().is_empty());
    }
}
