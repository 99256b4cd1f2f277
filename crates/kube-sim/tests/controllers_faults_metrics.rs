//! Spec §10 conformance 43-47 (simulated controllers), fault injection, restarts and metrics.

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{Condition, await_condition};
use kube_sim::{Controller, FaultRule, Mode, Options, Simulator};
use serde_json::{Value, json};
use std::time::Duration;

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}}))
    .unwrap()
}

fn job(name: &str) -> Job {
    serde_json::from_value(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"backoffLimit": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "img:1"}]}}}}))
    .unwrap()
}

fn deploy_available(d: Option<&Deployment>) -> bool {
    let Some(d) = d else { return false };
    let st = d.status.clone().unwrap_or_default();
    st.observed_generation == d.metadata.generation
        && st
            .conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Available" && c.status == "True")
        && st.available_replicas == d.spec.as_ref().and_then(|s| s.replicas)
}

async fn wait<K, C>(api: Api<K>, name: &str, cond: C) -> K
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    C: Condition<K>,
{
    tokio::time::timeout(T, await_condition(api, name, cond))
        .await
        .expect("condition within timeout")
        .unwrap()
        .expect("object exists")
}

/// `await_condition` for dynamic objects (it needs a `Default` dynamic type).
async fn wait_dyn(
    api: Api<DynamicObject>,
    name: &str,
    cond: impl Fn(Option<&DynamicObject>) -> bool,
) -> DynamicObject {
    use futures::StreamExt;
    let stream = kube::runtime::watcher::watch_object(api, name);
    futures::pin_mut!(stream);
    tokio::time::timeout(T, async {
        while let Some(ev) = stream.next().await {
            if let Ok(o) = ev
                && cond(o.as_ref())
            {
                return o.expect("object exists");
            }
        }
        panic!("watch ended")
    })
    .await
    .expect("condition within timeout")
}

#[tokio::test]
async fn c43_deployment_becomes_available_or_holds() {
    let s = sim().await;
    let api: Api<Deployment> = Api::default_namespaced(s.client());
    api.create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    let d = wait(api.clone(), "web", deploy_available).await;
    let st = d.status.unwrap();
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.ready_replicas,
            st.available_replicas
        ),
        (Some(2), Some(2), Some(2), Some(2))
    );
    let conds = st.conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Available"
                && c.reason.as_deref() == Some("MinimumReplicasAvailable"))
    );
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Progressing"
                && c.reason.as_deref() == Some("NewReplicaSetAvailable"))
    );
    // Status was written through /status by the controller's field manager.
    let raw = s.get("apps", "deployments", "default", "web").unwrap();
    assert!(
        raw["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["manager"] == "kube-controller-manager" && e["subresource"] == "status")
    );

    s.set_controller_mode(Controller::Deployment, Mode::Hold);
    api.create(&PostParams::default(), &deployment("held", 1))
        .await
        .unwrap();
    let d = wait(api.clone(), "held", |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .is_some_and(|s| s.observed_generation == Some(1))
    })
    .await;
    let st = d.status.unwrap();
    assert_eq!(st.available_replicas, None);
    assert!(st.conditions.unwrap().iter().any(|c| c.type_ == "Available"
        && c.status == "False"
        && c.reason.as_deref() == Some("MinimumReplicasUnavailable")));
    // Releasing the hold lets it progress.
    s.set_controller_mode(Controller::Deployment, Mode::Succeed);
    wait(api, "held", deploy_available).await;
}

#[tokio::test]
async fn deployment_pods_are_created_and_collected() {
    let mut opts = Options::default();
    opts.controllers.deployment_pods = true;
    let s = Simulator::start(opts).await.unwrap();
    let api: Api<Deployment> = Api::default_namespaced(s.client());
    api.create(&PostParams::default(), &deployment("p", 3))
        .await
        .unwrap();
    wait(api.clone(), "p", deploy_available).await;
    let pods: Api<Pod> = Api::default_namespaced(s.client());
    let running = pods
        .list(&ListParams::default().labels("app=p"))
        .await
        .unwrap();
    assert_eq!(running.items.len(), 3);
    assert!(
        running
            .items
            .iter()
            .all(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    );
    api.delete("p", &Default::default()).await.unwrap();
    eventually(&s, "pods collected", || {
        s.list("", "pods", Some("default")).is_empty()
    })
    .await;
    assert!(s.list("apps", "replicasets", Some("default")).is_empty());
}

#[tokio::test]
async fn c44_job_completes_fails_and_template_is_immutable() {
    let s = sim().await;
    let api: Api<Job> = Api::default_namespaced(s.client());
    api.create(&PostParams::default(), &job("ok"))
        .await
        .unwrap();
    let has = |t: &'static str| {
        move |j: Option<&Job>| {
            j.and_then(|j| j.status.as_ref())
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == t && c.status == "True"))
        }
    };
    let j = wait(api.clone(), "ok", has("Complete")).await;
    let st = j.status.unwrap();
    assert_eq!(st.succeeded, Some(1));
    assert!(st.completion_time.is_some());
    let cs = st.conditions.unwrap();
    assert_eq!(cs[0].type_, "SuccessCriteriaMet");
    assert_eq!(cs[1].reason.as_deref(), Some("CompletionsReached"));
    s.set_controller_mode(Controller::Job, Mode::Fail);
    api.create(&PostParams::default(), &job("bad"))
        .await
        .unwrap();
    let j = wait(api.clone(), "bad", has("Failed")).await;
    let st = j.status.unwrap();
    assert_eq!(st.failed, Some(3));
    assert!(
        st.conditions
            .unwrap()
            .iter()
            .any(|c| c.reason.as_deref() == Some("BackoffLimitExceeded"))
    );
    let r = patch(
        &s,
        "/apis/batch/v1/namespaces/default/jobs/ok",
        "application/merge-patch+json",
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "img:2"}]}}}}),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("spec.template: Invalid value")
    );
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("field is immutable")
    );
}

fn pvc(name: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}))
    .unwrap()
}

#[tokio::test]
async fn c45_pvc_binds_with_default_class_else_pending() {
    let s = sim().await;
    let api: Api<PersistentVolumeClaim> = Api::default_namespaced(s.client());
    api.create(&PostParams::default(), &pvc("data"))
        .await
        .unwrap();
    let bound = |p: Option<&PersistentVolumeClaim>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Bound")
    };
    let p = wait(api.clone(), "data", bound).await;
    assert!(
        p.spec
            .as_ref()
            .unwrap()
            .volume_name
            .as_ref()
            .unwrap()
            .starts_with("pvc-")
    );
    assert_eq!(
        p.status.as_ref().unwrap().capacity.as_ref().unwrap()["storage"].0,
        "10Gi"
    );
    assert_eq!(
        p.metadata.annotations.as_ref().unwrap()["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    assert_eq!(
        p.metadata.finalizers,
        Some(vec!["kubernetes.io/pvc-protection".to_string()])
    );
    // Shrinking is refused.
    let r = patch(
        &s,
        "/api/v1/namespaces/default/persistentvolumeclaims/data",
        "application/merge-patch+json",
        json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .await;
    assert_eq!(r.status, 422);
    // Without a default StorageClass: Pending, and a ProvisioningFailed event in Fail mode.
    s.configure_controllers(|c| c.default_storage_class = false);
    s.set_controller_mode(Controller::PersistentVolumeClaim, Mode::Fail);
    api.create(&PostParams::default(), &pvc("stuck"))
        .await
        .unwrap();
    eventually(&s, "ProvisioningFailed event", || {
        s.list("", "events", Some("default"))
            .iter()
            .any(|e| e["reason"] == "ProvisioningFailed")
    })
    .await;
    assert_eq!(
        api.get("stuck")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Pending")
    );
    // Deletion completes (pvc-protection is released).
    api.delete("data", &Default::default()).await.unwrap();
    eventually(&s, "pvc deleted", || {
        s.get("", "persistentvolumeclaims", "default", "data")
            .is_none()
    })
    .await;
}

fn route_api(s: &Simulator) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("route.openshift.io", "v1", "Route"));
    Api::namespaced_with(s.client(), "default", &ar)
}

#[tokio::test]
async fn c46_route_host_and_admission_and_openshift_switch() {
    let plain = sim().await;
    let apis = get(&plain, "/apis").await.json();
    assert!(
        !apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "route.openshift.io")
    );
    let s = Simulator::start(Options::openshift()).await.unwrap();
    let api = route_api(&s);
    let r: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "route.openshift.io/v1", "kind": "Route",
        "metadata": {"name": "quay"}, "spec": {"to": {"kind": "Service", "name": "quay"}}}),
    )
    .unwrap();
    api.create(&PostParams::default(), &r).await.unwrap();
    let admitted = |o: Option<&DynamicObject>| {
        o.and_then(|o| o.data.pointer("/status/ingress/0/conditions/0/status"))
            .is_some_and(|s| s == "True")
    };
    let o = wait_dyn(api, "quay", admitted).await;
    assert_eq!(o.data["spec"]["host"], "quay-default.apps.sim.example.com");
    assert_eq!(o.data["spec"]["to"]["weight"], 100);
    let ing = &o.data["status"]["ingress"][0];
    assert_eq!(ing["routerName"], "default");
    assert_eq!(
        ing["routerCanonicalHostname"],
        "router-default.apps.sim.example.com"
    );
    assert_eq!(ing["conditions"][0]["type"], "Admitted");
    // Fail mode.
    s.set_controller_mode(Controller::Route, Mode::Fail);
    let o = s
        .get("route.openshift.io", "routes", "default", "quay")
        .unwrap();
    assert_eq!(
        o["status"]["ingress"][0]["conditions"][0]["reason"],
        "HostAlreadyClaimed"
    );
}

#[tokio::test]
async fn c47_obc_provisions_configmap_and_secret() {
    let s = Simulator::start(Options {
        object_bucket_claims: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "objectbucket.io",
        "v1alpha1",
        "ObjectBucketClaim",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(s.client(), "default", &ar);
    let o: DynamicObject = serde_json::from_value(json!({"apiVersion": "objectbucket.io/v1alpha1", "kind": "ObjectBucketClaim",
        "metadata": {"name": "reg-quay-datastore"}, "spec": {"generateBucketName": "quay", "storageClassName": "openshift-storage.noobaa.io"}})).unwrap();
    api.create(&PostParams::default(), &o).await.unwrap();
    let bound = |o: Option<&DynamicObject>| {
        o.and_then(|o| o.data.pointer("/status/phase"))
            .is_some_and(|p| p == "Bound")
    };
    let obc = wait_dyn(api.clone(), "reg-quay-datastore", bound).await;
    assert_eq!(
        obc.data["spec"]["objectBucketName"],
        "obc-default-reg-quay-datastore"
    );
    assert!(
        obc.data["spec"]["bucketName"]
            .as_str()
            .unwrap()
            .starts_with("quay-")
    );
    let cms: Api<ConfigMap> = Api::default_namespaced(s.client());
    let cm = cms.get("reg-quay-datastore").await.unwrap();
    let data = cm.data.unwrap();
    for k in [
        "BUCKET_NAME",
        "BUCKET_HOST",
        "BUCKET_PORT",
        "BUCKET_REGION",
        "BUCKET_SUBREGION",
    ] {
        assert!(data.contains_key(k), "{k}");
    }
    assert_eq!(
        cm.metadata.owner_references.unwrap()[0].uid,
        obc.metadata.uid.clone().unwrap()
    );
    let secrets: Api<Secret> = Api::default_namespaced(s.client());
    let sec = secrets.get("reg-quay-datastore").await.unwrap();
    let d = sec.data.unwrap();
    assert!(d.contains_key("AWS_ACCESS_KEY_ID") && d.contains_key("AWS_SECRET_ACCESS_KEY"));
    assert!(sec.string_data.is_none());
    // Deleting the claim releases and garbage-collects its ConfigMap and Secret.
    api.delete("reg-quay-datastore", &Default::default())
        .await
        .unwrap();
    eventually(&s, "obc artefacts gone", || {
        s.get("", "configmaps", "default", "reg-quay-datastore")
            .is_none()
            && s.get("", "secrets", "default", "reg-quay-datastore")
                .is_none()
    })
    .await;
}

// ---- Faults, restarts, metrics ----

#[tokio::test]
async fn injected_faults_by_verb_and_resource() {
    let s = sim().await;
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    s.inject_fault(
        FaultRule::new(503)
            .verb("create")
            .resource("configmaps")
            .times(1),
    );
    s.inject_fault(
        FaultRule::new(429)
            .verb("list")
            .resource("configmaps")
            .times(1),
    );
    s.inject_fault(FaultRule::new(409).verb("patch").times(1));
    let c: ConfigMap = serde_json::from_value(cm("f", json!({}))).unwrap();
    let raw: Api<ConfigMap> = Api::default_namespaced(s.client_without_retries());
    match raw.create(&PostParams::default(), &c).await.unwrap_err() {
        kube::Error::Api(st) => {
            assert_eq!((st.code, st.reason.as_str()), (503, "ServiceUnavailable"))
        }
        e => panic!("{e}"),
    }
    // kube-rs' default client retries a 503 by itself: the create goes through on the retry.
    s.inject_fault(
        FaultRule::new(503)
            .verb("create")
            .resource("configmaps")
            .times(1),
    );
    api.create(&PostParams::default(), &c).await.unwrap();
    assert_eq!(s.metrics().request_count("POST", "configmaps"), 3);
    let r = get(&s, "/api/v1/namespaces/default/configmaps").await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers.get("retry-after").unwrap(), "1");
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps")
            .await
            .status,
        200
    );
    match api
        .patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "b"}})),
        )
        .await
        .unwrap_err()
    {
        kube::Error::Api(st) => assert!(st.is_conflict()),
        e => panic!("{e}"),
    }
    s.inject_fault(FaultRule::new(500).resource("configmaps"));
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/f")
            .await
            .status,
        500
    );
    s.clear_faults();
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/f")
            .await
            .status,
        200
    );
    s.set_latency(Duration::from_millis(200));
    let t0 = std::time::Instant::now();
    get(&s, "/version").await;
    assert!(t0.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn unavailable_window_answers_503() {
    let s = sim().await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        cm("keep", json!({})),
    )
    .await;
    let mut w = Watch::open(
        &s,
        &format!(
            "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    s.set_unavailable(true);
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/keep")
            .await
            .status,
        503
    );
    assert!(w.next().await.is_none(), "watch cut");
    s.set_unavailable(false);
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/keep")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn restart_keeps_store_cuts_watches_and_can_compact() {
    let s = sim().await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        cm("keep", json!({})),
    )
    .await;
    let rv = s.resource_version();
    let mut w = Watch::open(
        &s,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
    )
    .await;
    s.restart(Duration::from_millis(50), false).await.unwrap();
    assert!(w.next().await.is_none(), "watch cut by the restart");
    assert_eq!(
        get(&s, "/api/v1/namespaces/default/configmaps/keep")
            .await
            .status,
        200
    );
    // History kept: resuming from the old rv works.
    let mut w = Watch::open(
        &s,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
    )
    .await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        cm("after", json!({})),
    )
    .await;
    assert_eq!(
        w.next_event().await.unwrap()["object"]["metadata"]["name"],
        "after"
    );
    // A restart with compaction: resuming from the old rv is 410 (as an ERROR event).
    s.restart(Duration::from_millis(10), true).await.unwrap();
    let mut w = Watch::open(
        &s,
        &format!("/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"),
    )
    .await;
    assert_eq!(w.next().await.unwrap()["object"]["code"], 410);
}

#[tokio::test]
async fn kube_rs_watcher_survives_restart_with_compaction() {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let s = sim().await;
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default()).default_backoff(),
    )
    .applied_objects()
    .boxed();
    let mut stream = stream;
    // Drive the stream ourselves: each applied object is an event we can await.
    let ready = reader.clone();
    let drive = async {
        let c: ConfigMap = serde_json::from_value(cm("before", json!({}))).unwrap();
        api.create(&PostParams::default(), &c).await.unwrap();
        loop {
            let o = stream
                .next()
                .await
                .expect("stream open")
                .expect("no error surfaced");
            if o.metadata.name.as_deref() == Some("before") {
                break;
            }
        }
        s.restart(Duration::from_millis(100), true).await.unwrap();
        let c: ConfigMap = serde_json::from_value(cm("after", json!({}))).unwrap();
        api.create(&PostParams::default(), &c).await.unwrap();
        loop {
            match stream.next().await.expect("stream open") {
                Ok(o) if o.metadata.name.as_deref() == Some("after") => break,
                // Connection refused during the restart / 410 after it: the watcher retries.
                _ => {}
            }
        }
    };
    tokio::time::timeout(T, drive)
        .await
        .expect("watcher recovered in time");
    assert_eq!(ready.state().len(), 2);
}

#[tokio::test]
async fn metrics_count_requests_like_kube_apiserver() {
    let s = sim().await;
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    let c: ConfigMap = serde_json::from_value(cm("m", json!({}))).unwrap();
    api.create(&PostParams::default(), &c).await.unwrap();
    api.get("m").await.unwrap();
    api.list(&ListParams::default()).await.unwrap();
    api.patch("m", &PatchParams::apply("op"), &Patch::Apply(&c))
        .await
        .unwrap();
    api.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "y"}})),
    )
    .await
    .unwrap();
    let _ = api.get("nope").await;
    api.delete("m", &Default::default()).await.unwrap();
    let m = s.metrics();
    assert_eq!(m.request_count("POST", "configmaps"), 1);
    assert_eq!(m.request_count("GET", "configmaps"), 2);
    assert_eq!(m.request_count("LIST", "configmaps"), 1);
    assert_eq!(m.request_count("APPLY", "configmaps"), 1);
    assert_eq!(m.request_count("PATCH", "configmaps"), 1);
    assert_eq!(m.request_count("DELETE", "configmaps"), 1);
    assert_eq!(m.writes("configmaps"), 4);
    call(
        &s,
        "DELETE",
        "/api/v1/namespaces/default/configmaps?labelSelector=x%3Dy",
        &[],
        None,
    )
    .await;
    assert_eq!(m.request_count("DELETECOLLECTION", "configmaps"), 1);
    let text = get(&s, "/metrics").await.body;
    assert!(text.contains("# TYPE apiserver_request_total counter"));
    assert!(text.contains(r#"apiserver_request_total{code="404",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 1"#), "{text}");
    let log: Vec<Value> = s.requests().iter().map(|r| json!(r.uri)).collect();
    assert!(
        log.iter()
            .any(|u| u.as_str().unwrap().contains("fieldManager=op"))
    );
}
