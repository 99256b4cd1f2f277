//! Simulated cluster controllers (spec §8): Deployment and Job controllers, the PVC binder
//! and pvc-protection, the OpenShift router, and the lib-bucket-provisioner for
//! ObjectBucketClaims. Each writes through the store pipeline with its real field manager,
//! only via `/status` where the real controller does, and has a per-test mode
//! (`Succeed`, `Hold`, `Fail`) and a delay.

use crate::resources::ResourceDef;
use crate::server::Shared;
use crate::store::{EventType, Managed, State, WriteOpts};
use crate::util::{finalizers, name_of, namespace_of, now_rfc3339, str_at};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a simulated controller does with the objects it manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Progress to the healthy end state (the default).
    #[default]
    Succeed,
    /// Never progress (unschedulable pods, no provisioner, router down...).
    Hold,
    /// Progress to the failed end state where one exists.
    Fail,
}

/// The simulated controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Controller {
    Deployment,
    Job,
    PersistentVolumeClaim,
    Route,
    ObjectBucketClaim,
}

#[derive(Debug, Clone)]
pub struct ControllerSettings {
    pub modes: HashMap<Controller, Mode>,
    /// Time before a controller acts on a change (rollout time, job run time, bind time).
    pub delay: Duration,
    /// Create a ReplicaSet and Pods for each Deployment (owned, so GC removes them).
    pub deployment_pods: bool,
    /// Whether a default StorageClass exists (PVCs stay Pending without one).
    pub default_storage_class: bool,
    /// Emit a `ProvisioningFailed` Event for PVCs (in Hold/Fail mode).
    pub pvc_provisioning_failed_event: bool,
    /// Controllers off entirely (a bare apiserver).
    pub enabled: bool,
    /// Objects (controller, namespace, name) held in `Hold` whatever their controller's mode: one workload that
    /// does not progress while the others behave normally (e.g. a re-created Deployment that is slow to start).
    pub held: HashSet<(Controller, String, String)>,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        ControllerSettings {
            modes: HashMap::new(),
            delay: Duration::from_millis(20),
            deployment_pods: false,
            default_storage_class: true,
            pvc_provisioning_failed_event: true,
            enabled: true,
            held: HashSet::new(),
        }
    }
}

impl ControllerSettings {
    pub fn mode(&self, c: Controller) -> Mode {
        self.modes.get(&c).copied().unwrap_or_default()
    }

    /// The mode for one object: `Hold` when it is in [`ControllerSettings::held`], else its controller's mode.
    pub fn mode_for(&self, c: Controller, namespace: &str, name: &str) -> Mode {
        // Checked for every reconcile: no key built while nothing is held.
        if !self.held.is_empty()
            && self
                .held
                .contains(&(c, namespace.to_owned(), name.to_owned()))
        {
            Mode::Hold
        } else {
            self.mode(c)
        }
    }
}

pub type SharedSettings = Arc<Mutex<ControllerSettings>>;

fn wctx(rd: &ResourceDef, manager: &str, status: bool) -> WriteOpts {
    WriteOpts {
        manager: manager.into(),
        version: rd.storage_version().into(),
        subresource: if status {
            "status".into()
        } else {
            String::new()
        },
        ..Default::default()
    }
}

/// Keep `lastTransitionTime` (and `lastUpdateTime`) when a condition's status did not flip.
fn carry_times(old: Option<&Value>, conds: &mut [Value]) {
    let old = old
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in conds.iter_mut() {
        if let Some(o) = old.iter().find(|o| o.get("type") == c.get("type"))
            && o.get("status") == c.get("status")
        {
            for k in ["lastTransitionTime", "lastProbeTime"] {
                if let Some(t) = o.get(k) {
                    c[k] = t.clone();
                }
            }
            if o.get("reason") == c.get("reason")
                && o.get("message") == c.get("message")
                && let Some(t) = o.get("lastUpdateTime")
            {
                c["lastUpdateTime"] = t.clone();
            }
        }
    }
}

fn write_status(st: &mut State, rd: &ResourceDef, o: &Value, manager: &str, status: Value) {
    if o.get("status") == Some(&status) {
        return;
    }
    let _ = st.update_with(
        rd,
        &namespace_of(o),
        &name_of(o),
        &wctx(rd, manager, true),
        Managed::Update,
        false,
        |old| {
            let mut n = old.clone();
            n["status"] = status;
            Ok(n)
        },
    );
}

fn short_hash(s: &str) -> String {
    let h = s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    });
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..10)
        .map(|i| ALPHA[((h >> (i * 6)) % ALPHA.len() as u64) as usize] as char)
        .collect()
}

fn owner_ref(o: &Value, api_version: &str, kind: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": name_of(o), "uid": str_at(o, "/metadata/uid"),
           "controller": true, "blockOwnerDeletion": true})
}

// ---- Deployment ----

fn deployment(
    st: &mut State,
    s: &ControllerSettings,
    rd: &ResourceDef,
    o: &Value,
    final_step: bool,
) {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let generation = o
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    // The immediate (first) step only reacts to a new generation; otherwise our own status
    // writes would bounce between the in-progress and final states.
    if !final_step
        && o.pointer("/status/observedGeneration")
            .and_then(Value::as_i64)
            == Some(generation)
    {
        return;
    }
    let replicas = o
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let name = name_of(o);
    let rs_name = format!(
        "{name}-{}",
        short_hash(
            &o.pointer("/spec/template")
                .map(|t| t.to_string())
                .unwrap_or_default()
        )
    );
    let now = now_rfc3339();
    let mode = s.mode_for(Controller::Deployment, &namespace_of(o), &name);
    let old_status = o.get("status");
    let mut status = serde_json::Map::new();
    status.insert("observedGeneration".into(), json!(generation));
    let progressing_done = json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
        "message": format!("ReplicaSet \"{rs_name}\" has successfully progressed."), "lastUpdateTime": now, "lastTransitionTime": now});
    let available = json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
        "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now});
    let unavailable = json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
        "message": "Deployment does not have minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now});
    let mut conds = if replicas == 0 {
        vec![available, progressing_done]
    } else {
        let ready = mode == Mode::Succeed && final_step;
        if replicas > 0 {
            status.insert("replicas".into(), json!(replicas));
            status.insert(
                "updatedReplicas".into(),
                json!(if final_step || mode != Mode::Succeed {
                    replicas
                } else {
                    0
                }),
            );
        }
        if ready {
            status.insert("readyReplicas".into(), json!(replicas));
            status.insert("availableReplicas".into(), json!(replicas));
            vec![available, progressing_done]
        } else {
            status.insert("unavailableReplicas".into(), json!(replicas));
            let was_available = old_status
                .and_then(|s| s.get("availableReplicas"))
                .and_then(Value::as_i64)
                .is_some_and(|a| a > 0);
            if was_available && mode == Mode::Succeed {
                // Mid-rollout: the old ReplicaSet still serves.
                status.remove("unavailableReplicas");
                status.insert("readyReplicas".into(), json!(replicas));
                status.insert("availableReplicas".into(), json!(replicas));
            }
            let progressing = if mode == Mode::Fail {
                json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                    "message": format!("ReplicaSet \"{rs_name}\" has timed out progressing."), "lastUpdateTime": now, "lastTransitionTime": now})
            } else {
                json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                    "message": format!("ReplicaSet \"{rs_name}\" is progressing."), "lastUpdateTime": now, "lastTransitionTime": now})
            };
            vec![
                if was_available && mode == Mode::Succeed {
                    available
                } else {
                    unavailable
                },
                progressing,
            ]
        }
    };
    carry_times(old_status, &mut conds);
    status.insert("conditions".into(), Value::Array(conds));
    write_status(st, rd, o, "kube-controller-manager", Value::Object(status));
    if s.deployment_pods {
        pods_for_deployment(
            st,
            o,
            &rs_name,
            replicas,
            mode == Mode::Succeed && final_step,
        );
    }
}

/// A ReplicaSet for the current template and `replicas` Pods owned by it (old ones deleted).
fn pods_for_deployment(st: &mut State, d: &Value, rs_name: &str, replicas: i64, ready: bool) {
    let ns = namespace_of(d);
    let (Some(rsd), Some(pod_rd)) = (st.find("apps", "replicasets"), st.find("", "pods")) else {
        return;
    };
    let labels = d
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    let duid = str_at(d, "/metadata/uid").unwrap_or("").to_string();
    // Old ReplicaSets of this Deployment go away.
    let old: Vec<Value> = st
        .list(&rsd, Some(&ns))
        .into_iter()
        .filter(|r| {
            name_of(r) != rs_name
                && r.pointer("/metadata/ownerReferences/0/uid")
                    .and_then(Value::as_str)
                    == Some(duid.as_str())
        })
        .cloned()
        .collect();
    for r in old {
        let _ = st.delete(&rsd, &ns, &name_of(&r), &Default::default());
    }
    let rs = match st.get_raw(&rsd, &ns, rs_name).cloned() {
        Some(r) => r,
        None => {
            let body = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": rs_name, "namespace": ns, "labels": labels,
                             "ownerReferences": [owner_ref(d, "apps/v1", "Deployment")]},
                "spec": {"replicas": replicas, "selector": d.pointer("/spec/selector").cloned().unwrap_or(json!({})),
                         "template": d.pointer("/spec/template").cloned().unwrap_or(json!({}))}});
            match st.create(
                &rsd,
                &ns,
                body,
                &wctx(&rsd, "kube-controller-manager", false),
                Managed::Update,
            ) {
                Ok(r) => r,
                Err(_) => return,
            }
        }
    };
    let rsuid = str_at(&rs, "/metadata/uid").unwrap_or("").to_string();
    let pods: Vec<Value> = st
        .list(&pod_rd, Some(&ns))
        .into_iter()
        .filter(|p| {
            p.pointer("/metadata/ownerReferences/0/uid")
                .and_then(Value::as_str)
                == Some(rsuid.as_str())
        })
        .cloned()
        .collect();
    let phase_status = |ready: bool| {
        let now = now_rfc3339();
        json!({"phase": if ready { "Running" } else { "Pending" }, "qosClass": "BestEffort", "startTime": now,
               "podIP": "10.244.0.10", "hostIP": "192.168.0.10",
               "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now},
                              {"type": "ContainersReady", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now},
                              {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]})
    };
    let mut have = pods.len() as i64;
    for p in pods.iter().skip(replicas.max(0) as usize) {
        let _ = st.delete(&pod_rd, &ns, &name_of(p), &Default::default());
        have -= 1;
    }
    while have < replicas {
        let body = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": format!("{rs_name}-"), "namespace": ns, "labels": labels,
                         "ownerReferences": [owner_ref(&rs, "apps/v1", "ReplicaSet")]},
            "spec": d.pointer("/spec/template/spec").cloned().unwrap_or(json!({}))});
        if st
            .create(
                &pod_rd,
                &ns,
                body,
                &wctx(&pod_rd, "kube-controller-manager", false),
                Managed::Update,
            )
            .is_err()
        {
            return;
        }
        have += 1;
    }
    let pods: Vec<Value> = st
        .list(&pod_rd, Some(&ns))
        .into_iter()
        .filter(|p| {
            p.pointer("/metadata/ownerReferences/0/uid")
                .and_then(Value::as_str)
                == Some(rsuid.as_str())
        })
        .cloned()
        .collect();
    for p in pods {
        let want_phase = if ready { "Running" } else { "Pending" };
        if str_at(&p, "/status/phase") != Some(want_phase) {
            write_status(st, &pod_rd, &p, "kubelet", phase_status(ready));
        }
    }
    let rs_status = json!({"replicas": replicas, "fullyLabeledReplicas": replicas,
        "readyReplicas": if ready { replicas } else { 0 }, "availableReplicas": if ready { replicas } else { 0 },
        "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1))});
    write_status(st, &rsd, &rs, "kube-controller-manager", rs_status);
}

// ---- Job ----

fn job(st: &mut State, s: &ControllerSettings, rd: &ResourceDef, o: &Value, final_step: bool) {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let cur = o.get("status").cloned().unwrap_or(json!({}));
    let done = cur
        .get("conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                (c.get("type") == Some(&json!("Complete"))
                    || c.get("type") == Some(&json!("Failed")))
                    && c.get("status") == Some(&json!("True"))
            })
        });
    if done || (!final_step && cur.get("startTime").is_some()) {
        return;
    }
    let start = cur
        .get("startTime")
        .cloned()
        .unwrap_or_else(|| json!(now_rfc3339()));
    let mode = s.mode_for(Controller::Job, &namespace_of(o), &name_of(o));
    let status = if !final_step || mode == Mode::Hold {
        json!({"startTime": start, "active": 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {}})
    } else if mode == Mode::Succeed {
        let now = now_rfc3339();
        let completions = o
            .pointer("/spec/completions")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let msg = "Reached expected number of succeeded pods";
        json!({"startTime": start, "completionTime": now, "succeeded": completions, "ready": 0, "terminating": 0,
        "uncountedTerminatedPods": {},
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": msg, "lastProbeTime": now, "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": msg, "lastProbeTime": now, "lastTransitionTime": now}
        ]})
    } else {
        let now = now_rfc3339();
        let backoff = o
            .pointer("/spec/backoffLimit")
            .and_then(Value::as_i64)
            .unwrap_or(6);
        let msg = "Job has reached the specified backoff limit";
        json!({"startTime": start, "failed": backoff + 1, "ready": 0, "terminating": 0, "uncountedTerminatedPods": {},
        "conditions": [
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": msg, "lastProbeTime": now, "lastTransitionTime": now},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": msg, "lastProbeTime": now, "lastTransitionTime": now}
        ]})
    };
    write_status(st, rd, o, "kube-controller-manager", status);
}

// ---- PVC ----

fn pvc(st: &mut State, s: &ControllerSettings, rd: &ResourceDef, o: &Value, final_step: bool) {
    let ns = namespace_of(o);
    let name = name_of(o);
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        // pvc-protection: no Pod uses the claim in the simulator, so let it go.
        if finalizers(o)
            .iter()
            .any(|f| f == "kubernetes.io/pvc-protection")
        {
            let _ = st.update_with(
                rd,
                &ns,
                &name,
                &wctx(rd, "kube-controller-manager", false),
                Managed::Update,
                false,
                |old| {
                    let mut n = old.clone();
                    let f: Vec<String> = finalizers(old)
                        .into_iter()
                        .filter(|f| f != "kubernetes.io/pvc-protection")
                        .collect();
                    crate::util::set_finalizers(&mut n, &f);
                    Ok(n)
                },
            );
        }
        return;
    }
    if str_at(o, "/status/phase") == Some("Bound") || !final_step {
        return;
    }
    let explicit_class = str_at(o, "/spec/storageClassName")
        .filter(|c| !c.is_empty())
        .map(String::from);
    let can_bind = s.mode_for(Controller::PersistentVolumeClaim, &ns, &name) == Mode::Succeed
        && (explicit_class.is_some() || s.default_storage_class);
    if !can_bind {
        if s.pvc_provisioning_failed_event
            && s.mode_for(Controller::PersistentVolumeClaim, &ns, &name) == Mode::Fail
        {
            provisioning_failed_event(st, o);
        }
        return;
    }
    let class = explicit_class.unwrap_or_else(|| "standard".into());
    let provisioner = "kube-sim.io/hostpath";
    let uid = str_at(o, "/metadata/uid").unwrap_or("").to_string();
    let r = st.update_with(
        rd,
        &ns,
        &name,
        &wctx(rd, "kube-controller-manager", false),
        Managed::Update,
        false,
        |old| {
            let mut n = old.clone();
            n["spec"]["volumeName"] = json!(format!("pvc-{uid}"));
            n["spec"]["storageClassName"] = json!(class);
            let md = crate::util::obj_mut(&mut n, "metadata");
            let ann = md.entry("annotations").or_insert_with(|| json!({}));
            ann["pv.kubernetes.io/bind-completed"] = json!("yes");
            ann["pv.kubernetes.io/bound-by-controller"] = json!("yes");
            ann["volume.beta.kubernetes.io/storage-provisioner"] = json!(provisioner);
            ann["volume.kubernetes.io/storage-provisioner"] = json!(provisioner);
            Ok(n)
        },
    );
    if let Ok(updated) = r {
        let status = json!({"phase": "Bound", "accessModes": updated.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
            "capacity": {"storage": updated.pointer("/spec/resources/requests/storage").cloned().unwrap_or(json!("1Gi"))}});
        write_status(st, rd, &updated, "kube-controller-manager", status);
    }
}

fn provisioning_failed_event(st: &mut State, o: &Value) {
    let Some(ev_rd) = st.find("", "events") else {
        return;
    };
    let ns = namespace_of(o);
    let name = format!("{}.{}", name_of(o), "provisioningfailed");
    if st.get_raw(&ev_rd, &ns, &name).is_some() {
        return;
    }
    let now = now_rfc3339();
    let body = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": ns},
        "involvedObject": {"kind": "PersistentVolumeClaim", "namespace": ns, "name": name_of(o), "uid": str_at(o, "/metadata/uid"),
                           "apiVersion": "v1", "resourceVersion": str_at(o, "/metadata/resourceVersion")},
        "reason": "ProvisioningFailed", "type": "Warning", "count": 1,
        "message": "storageclass.storage.k8s.io \"standard\" not found",
        "source": {"component": "persistentvolume-controller"},
        "firstTimestamp": now, "lastTimestamp": now, "reportingComponent": "persistentvolume-controller"});
    let _ = st.create(
        &ev_rd,
        &ns,
        body,
        &wctx(&ev_rd, "kube-controller-manager", false),
        Managed::Update,
    );
}

// ---- Route ----

fn route(st: &mut State, s: &ControllerSettings, rd: &ResourceDef, o: &Value) {
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let mode = s.mode_for(Controller::Route, &namespace_of(o), &name_of(o));
    if mode == Mode::Hold {
        return;
    }
    let host = str_at(o, "/spec/host").unwrap_or("").to_string();
    let domain = st.cluster_domain.clone();
    let now = now_rfc3339();
    let cond = if mode == Mode::Succeed {
        json!({"type": "Admitted", "status": "True", "lastTransitionTime": now})
    } else {
        json!({"type": "Admitted", "status": "False", "reason": "HostAlreadyClaimed",
               "message": "route has a host that is claimed by another route", "lastTransitionTime": now})
    };
    let mut conds = vec![cond];
    let old_ing = o.pointer("/status/ingress/0").cloned();
    carry_times(old_ing.as_ref(), &mut conds);
    let status = json!({"ingress": [{"host": host, "routerName": "default",
        "routerCanonicalHostname": format!("router-default.apps.{domain}"), "wildcardPolicy": "None", "conditions": conds}]});
    write_status(st, rd, o, "openshift-router", status);
}

// ---- ObjectBucketClaim ----

const OBC_FINALIZER: &str = "objectbucket.io/finalizer";

fn obc(st: &mut State, s: &ControllerSettings, rd: &ResourceDef, o: &Value) {
    let ns = namespace_of(o);
    let name = name_of(o);
    let provisioner = "kube-sim.io/bucket";
    let label = provisioner.replace('/', "-");
    let mgr = "lib-bucket-provisioner";
    let (Some(cm_rd), Some(sec_rd)) = (st.find("", "configmaps"), st.find("", "secrets")) else {
        return;
    };
    let ob_name = format!("obc-{ns}-{name}");
    if o.pointer("/metadata/deletionTimestamp").is_some() {
        if let Some(ob_rd) = st.find("objectbucket.io", "objectbuckets") {
            let _ = st.delete(&ob_rd, "", &ob_name, &Default::default());
        }
        for r in [&cm_rd, &sec_rd] {
            if let Some(x) = st.get_raw(r, &ns, &name).cloned() {
                strip_finalizer(st, r, &x, OBC_FINALIZER, mgr);
            }
        }
        strip_finalizer(st, rd, o, OBC_FINALIZER, mgr);
        return;
    }
    if s.mode_for(Controller::ObjectBucketClaim, &ns, &name) == Mode::Hold {
        return;
    }
    if str_at(o, "/status/phase") == Some("Bound") {
        return;
    }
    // 1. Pending + finalizer + label; 2. bucket name.
    let bucket = match str_at(o, "/spec/bucketName").filter(|b| !b.is_empty()) {
        Some(b) => b.to_string(),
        None => {
            let prefix: String = str_at(o, "/spec/generateBucketName")
                .unwrap_or(&name)
                .chars()
                .take(26)
                .collect();
            format!("{prefix}-{}", crate::util::new_uid())
        }
    };
    let fail = s.mode_for(Controller::ObjectBucketClaim, &ns, &name) == Mode::Fail;
    let l2 = label.clone();
    let b2 = bucket.clone();
    let ob2 = ob_name.clone();
    let Ok(o) = st.update_with(
        rd,
        &ns,
        &name,
        &wctx(rd, mgr, false),
        Managed::Update,
        false,
        |old| {
            let mut n = old.clone();
            let mut f = finalizers(old);
            if !f.iter().any(|x| x == OBC_FINALIZER) {
                f.push(OBC_FINALIZER.into());
            }
            crate::util::set_finalizers(&mut n, &f);
            let md = crate::util::obj_mut(&mut n, "metadata");
            let labels = md.entry("labels").or_insert_with(|| json!({}));
            labels["bucket-provisioner"] = json!(l2);
            n["spec"]["bucketName"] = json!(b2);
            if !fail {
                n["spec"]["objectBucketName"] = json!(ob2);
            }
            Ok(n)
        },
    ) else {
        return;
    };
    if fail {
        write_status(st, rd, &o, mgr, json!({"phase": "Failed"}));
        return;
    }
    let host = format!("s3.{}", st.cluster_domain);
    let port = 443;
    // 3. ObjectBucket.
    if let Some(ob_rd) = st.find("objectbucket.io", "objectbuckets")
        && st.get_raw(&ob_rd, "", &ob_name).is_none()
    {
        let body = json!({"apiVersion": "objectbucket.io/v1alpha1", "kind": "ObjectBucket",
            "metadata": {"name": ob_name, "labels": {"bucket-provisioner": label}, "finalizers": [OBC_FINALIZER]},
            "spec": {"storageClassName": str_at(&o, "/spec/storageClassName"), "reclaimPolicy": "Delete",
                     "claimRef": {"apiVersion": "objectbucket.io/v1alpha1", "kind": "ObjectBucketClaim", "namespace": ns, "name": name, "uid": str_at(&o, "/metadata/uid")},
                     "endpoint": {"bucketHost": host, "bucketPort": port, "bucketName": bucket, "region": "us-east-1", "subRegion": "", "additionalConfig": {}}}});
        if let Ok(ob) = st.create(&ob_rd, "", body, &wctx(&ob_rd, mgr, false), Managed::Update) {
            write_status(st, &ob_rd, &ob, mgr, json!({"phase": "Bound"}));
        }
    }
    let meta = |n: &str| {
        json!({"name": n, "namespace": ns, "labels": {"bucket-provisioner": label},
        "finalizers": [OBC_FINALIZER], "ownerReferences": [owner_ref(&o, "objectbucket.io/v1alpha1", "ObjectBucketClaim")]})
    };
    // 4. ConfigMap.
    if st.get_raw(&cm_rd, &ns, &name).is_none() {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(&name),
            "data": {"BUCKET_NAME": bucket, "BUCKET_HOST": host, "BUCKET_PORT": port.to_string(), "BUCKET_REGION": "us-east-1", "BUCKET_SUBREGION": ""}});
        let _ = st.create(
            &cm_rd,
            &ns,
            body,
            &wctx(&cm_rd, mgr, false),
            Managed::Update,
        );
    }
    // 5. Secret (the library writes stringData; the apiserver turns it into data).
    if st.get_raw(&sec_rd, &ns, &name).is_none() {
        let key: String = crate::util::new_uid()
            .replace('-', "")
            .chars()
            .take(20)
            .collect::<String>()
            .to_uppercase();
        let secret = crate::util::new_uid().replace('-', "");
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta(&name), "type": "Opaque",
            "stringData": {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}});
        let _ = st.create(
            &sec_rd,
            &ns,
            body,
            &wctx(&sec_rd, mgr, false),
            Managed::Update,
        );
    }
    // 6. Bound.
    write_status(st, rd, &o, mgr, json!({"phase": "Bound"}));
}

fn strip_finalizer(st: &mut State, rd: &ResourceDef, o: &Value, fin: &str, mgr: &str) {
    if !finalizers(o).iter().any(|f| f == fin) {
        return;
    }
    let _ = st.update_with(
        rd,
        &namespace_of(o),
        &name_of(o),
        &wctx(rd, mgr, false),
        Managed::Update,
        false,
        |old| {
            let mut n = old.clone();
            let f: Vec<String> = finalizers(old).into_iter().filter(|f| f != fin).collect();
            crate::util::set_finalizers(&mut n, &f);
            Ok(n)
        },
    );
}

/// Which controller (if any) handles objects of this resource.
fn controller_for(group: &str, plural: &str) -> Option<Controller> {
    match (group, plural) {
        ("apps", "deployments") => Some(Controller::Deployment),
        ("batch", "jobs") => Some(Controller::Job),
        ("", "persistentvolumeclaims") => Some(Controller::PersistentVolumeClaim),
        ("route.openshift.io", "routes") => Some(Controller::Route),
        ("objectbucket.io", "objectbucketclaims") => Some(Controller::ObjectBucketClaim),
        _ => None,
    }
}

/// Reconcile one object (re-read from the store: it may have changed since the event).
pub fn reconcile(
    st: &mut State,
    s: &ControllerSettings,
    group: &str,
    plural: &str,
    ns: &str,
    name: &str,
    final_step: bool,
) {
    let Some(rd) = st.find(group, plural) else {
        return;
    };
    // Shared, not copied: the controllers only read it (their writes replace the stored object).
    let Some(o) = st.get_shared(&rd, ns, name).cloned() else {
        return;
    };
    match controller_for(group, plural) {
        Some(Controller::Deployment) => deployment(st, s, &rd, &o, final_step),
        Some(Controller::Job) => job(st, s, &rd, &o, final_step),
        Some(Controller::PersistentVolumeClaim) => pvc(st, s, &rd, &o, final_step),
        Some(Controller::Route) => route(st, s, &rd, &o),
        Some(Controller::ObjectBucketClaim) => obc(st, s, &rd, &o),
        None => {}
    }
}

/// Reconcile every object every controller manages (after a mode change).
pub fn resync(shared: &Arc<Shared>, settings: &SharedSettings) {
    let s = settings.lock().expect("settings").clone();
    if !s.enabled {
        return;
    }
    let mut st = shared.lock();
    let targets: Vec<(String, String, String, String)> = st
        .all_objects()
        .into_iter()
        .filter(|(rd, _)| controller_for(&rd.group, &rd.plural).is_some())
        .map(|(rd, o)| {
            (
                rd.group.clone(),
                rd.plural.clone(),
                namespace_of(&o),
                name_of(&o),
            )
        })
        .collect();
    for (g, p, ns, n) in targets {
        reconcile(&mut st, &s, &g, &p, &ns, &n, true);
    }
}

/// The controller loop: each relevant event gets an immediate reconcile (first step, e.g.
/// Job active / rollout in progress) and, after the delay, the final one.
pub async fn run(
    shared: Arc<Shared>,
    settings: SharedSettings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut rx = shared.lock().tx.subscribe();
    loop {
        let ev = tokio::select! {
            r = rx.recv() => match r {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => { resync(&shared, &settings); continue; }
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        if ev.etype == EventType::Deleted || controller_for(&ev.group, &ev.plural).is_none() {
            continue;
        }
        let s = settings.lock().expect("settings").clone();
        if !s.enabled {
            continue;
        }
        let (g, p, ns, n) = (
            ev.group.clone(),
            ev.plural.clone(),
            ev.namespace.clone(),
            name_of(&ev.object),
        );
        if s.delay.is_zero() {
            reconcile(&mut shared.lock(), &s, &g, &p, &ns, &n, true);
            continue;
        }
        reconcile(&mut shared.lock(), &s, &g, &p, &ns, &n, false);
        let shared2 = shared.clone();
        let settings2 = settings.clone();
        tokio::spawn(async move {
            tokio::time::sleep(s.delay).await;
            let s = settings2.lock().expect("settings").clone();
            if s.enabled {
                reconcile(&mut shared2.lock(), &s, &g, &p, &ns, &n, true);
            }
        });
    }
}
