//! Spec §10 conformance: writes/SSA/patches (19-31), lifecycle (32-39), CRDs (40-42).

mod common;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
const WIDGETS: &str = "/apis/example.com/v1/namespaces/default/widgets";

fn deploy(name: &str, replicas: i64, containers: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": containers}}}})
}

fn managers(o: &Value) -> Vec<(String, String)> {
    o["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap().into(),
                        e["operation"].as_str().unwrap().into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn with_widgets() -> kube_sim::Simulator {
    let s = sim().await;
    s.install_crd(widget_crd()).unwrap();
    s
}

// ---- Writes ----

#[tokio::test]
async fn c19_create_sets_system_fields_and_managed_fields() {
    let s = with_widgets().await;
    let r = call(
        &s,
        "POST",
        &format!("{WIDGETS}?fieldManager=tester"),
        &[],
        Some(widget("w1")),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let o = r.json();
    assert!(!o["metadata"]["uid"].as_str().unwrap().is_empty());
    assert!(
        o["metadata"]["creationTimestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(rv_of(&o) > 0);
    assert_eq!(o["metadata"]["generation"], 1);
    assert_eq!(
        managers(&o),
        vec![("tester".to_string(), "Update".to_string())]
    );
    // resourceVersion on create is rejected; a namespace mismatch is a 400.
    let mut bad = widget("w2");
    bad["metadata"]["resourceVersion"] = json!("5");
    assert_eq!(post(&s, WIDGETS, bad).await.status, 500);
    let mut bad = widget("w3");
    bad["metadata"]["namespace"] = json!("other");
    assert_eq!(post(&s, WIDGETS, bad).await.status, 400);
}

#[tokio::test]
async fn c20_create_existing_is_already_exists() {
    let s = sim().await;
    post(&s, CMS, cm("dup", json!({}))).await;
    let r = post(&s, CMS, cm("dup", json!({}))).await;
    assert_eq!(r.status, 409);
    let v = r.json();
    assert_eq!(v["reason"], "AlreadyExists");
    assert_eq!(v["details"], json!({"name": "dup", "kind": "configmaps"}));
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    let c: ConfigMap = serde_json::from_value(cm("dup", json!({}))).unwrap();
    match api.create(&PostParams::default(), &c).await.unwrap_err() {
        kube::Error::Api(st) => assert!(st.is_already_exists()),
        e => panic!("{e}"),
    }
}

#[tokio::test]
async fn c21_get_missing_is_not_found_and_get_opt_none() {
    let s = sim().await;
    let r = get(&s, &format!("{CMS}/nope")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "configmaps \"nope\" not found");
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    assert!(api.get_opt("nope").await.unwrap().is_none());
}

#[tokio::test]
async fn c22_put_stale_rv_conflict_and_cr_put_without_rv_invalid() {
    let s = with_widgets().await;
    let o = post(&s, CMS, cm("u", json!({}))).await.json();
    let mut first = o.clone();
    first["data"]["k"] = json!("1");
    assert_eq!(
        call(&s, "PUT", &format!("{CMS}/u"), &[], Some(first))
            .await
            .status,
        200
    );
    let mut stale = o.clone();
    stale["data"]["k"] = json!("2");
    let r = call(&s, "PUT", &format!("{CMS}/u"), &[], Some(stale)).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["reason"], "Conflict");
    assert_eq!(
        r.json()["message"],
        "Operation cannot be fulfilled on configmaps \"u\": the object has been modified; please apply your changes to the latest version and try again"
    );
    post(&s, WIDGETS, widget("w")).await;
    let r = call(&s, "PUT", &format!("{WIDGETS}/w"), &[], Some(widget("w"))).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["reason"], "Invalid");
}

#[tokio::test]
async fn c23_apply_creates_then_identical_apply_is_a_noop() {
    let s = sim().await;
    let mut w = Watch::open(
        &s,
        &format!("{CMS}?watch=true&resourceVersion={}", s.resource_version()),
    )
    .await;
    let url = format!("{CMS}/a?fieldManager=op&force=true");
    let r = patch(
        &s,
        &url,
        "application/apply-patch+yaml",
        cm("a", json!({"x": "1"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let first = r.json();
    let r2 = patch(
        &s,
        &url,
        "application/apply-patch+yaml",
        cm("a", json!({"x": "1"})),
    )
    .await;
    assert_eq!(r2.status, 200);
    assert_eq!(rv_of(&r2.json()), rv_of(&first));
    assert_eq!(w.next_event().await.unwrap()["type"], "ADDED");
    // No event for the no-op: the next event seen is from a later, real change.
    patch(
        &s,
        &format!("{CMS}/a"),
        "application/merge-patch+json",
        json!({"data": {"k": "2"}}),
    )
    .await;
    let e = w.next_event().await.unwrap();
    assert_eq!(e["type"], "MODIFIED");
    assert_eq!(e["object"]["data"]["k"], "2");
    // The same with a CR: generation stays.
    s.install_crd(widget_crd()).unwrap();
    let wurl = format!("{WIDGETS}/g?fieldManager=op&force=true");
    let a = patch(&s, &wurl, "application/apply-patch+yaml", widget("g"))
        .await
        .json();
    let b = patch(&s, &wurl, "application/apply-patch+yaml", widget("g"))
        .await
        .json();
    assert_eq!(
        (rv_of(&a), a["metadata"]["generation"].clone()),
        (rv_of(&b), b["metadata"]["generation"].clone())
    );
}

#[tokio::test]
async fn c24_apply_removes_fields_it_no_longer_applies_but_not_others() {
    let s = sim().await;
    let url = format!("{CMS}/l?fieldManager=op&force=true");
    patch(
        &s,
        &url,
        "application/apply-patch+yaml",
        cm("l", json!({"a": "1", "b": "1"})),
    )
    .await;
    patch(
        &s,
        &format!("{CMS}/l?fieldManager=other"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"c": "1"}}}),
    )
    .await;
    let o = patch(
        &s,
        &url,
        "application/apply-patch+yaml",
        cm("l", json!({"a": "1"})),
    )
    .await
    .json();
    assert_eq!(o["metadata"]["labels"], json!({"a": "1", "c": "1"}));
    let o = patch(
        &s,
        &url,
        "application/apply-patch+yaml",
        cm("l", json!({"a": "1"})),
    )
    .await
    .json();
    assert_eq!(o["metadata"]["labels"], json!({"a": "1", "c": "1"}));
}

#[tokio::test]
async fn c25_apply_conflict_message_and_force_takes_ownership() {
    let s = sim().await;
    let c = json!([{"name": "a", "image": "i:1"}]);
    post(
        &s,
        &format!("{DEPLOYS}?fieldManager=kubectl-client-side-apply"),
        deploy("d", 2, c.clone()),
    )
    .await;
    let url = format!("{DEPLOYS}/d?fieldManager=op&force=false");
    let r = patch(
        &s,
        &url,
        "application/apply-patch+yaml",
        deploy("d", 3, c.clone()),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let v = r.json();
    assert!(
        v["message"].as_str().unwrap().starts_with("Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using apps/v1: .spec.replicas"),
        "{}",
        v["message"]
    );
    assert_eq!(v["details"]["causes"][0]["reason"], "FieldManagerConflict");
    assert_eq!(v["details"]["causes"][0]["field"], ".spec.replicas");
    let r = patch(
        &s,
        &format!("{DEPLOYS}/d?fieldManager=op&force=true"),
        "application/apply-patch+yaml",
        deploy("d", 3, c),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let o = r.json();
    assert_eq!(o["spec"]["replicas"], 3);
    let other = o["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "kubectl-client-side-apply")
        .unwrap();
    assert!(other["fieldsV1"]["f:spec"].get("f:replicas").is_none());
}

#[tokio::test]
async fn c26_apply_list_map_removes_container_keeps_others_env() {
    let s = sim().await;
    let url = format!("{DEPLOYS}/m?fieldManager=op&force=true");
    let two = json!([{"name": "a", "image": "i:1"}, {"name": "b", "image": "i:1"}]);
    patch(
        &s,
        &url,
        "application/apply-patch+yaml",
        deploy("m", 1, two),
    )
    .await;
    let env = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "m"},
        "spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]}}}});
    let r = patch(
        &s,
        &format!("{DEPLOYS}/m?fieldManager=sidecar&force=true"),
        "application/apply-patch+yaml",
        env,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let o = patch(
        &s,
        &url,
        "application/apply-patch+yaml",
        deploy("m", 1, json!([{"name": "a", "image": "i:1"}])),
    )
    .await
    .json();
    let cs = o["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 1, "{cs:?}");
    assert_eq!(cs[0]["name"], "a");
    assert_eq!(cs[0]["env"], json!([{"name": "X", "value": "1"}]));
}

#[tokio::test]
async fn c27_apply_parameter_validation() {
    let s = sim().await;
    let r = patch(
        &s,
        &format!("{CMS}/v"),
        "application/apply-patch+yaml",
        cm("v", json!({})),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("fieldManager: Required value")
    );
    post(&s, CMS, cm("v", json!({}))).await;
    let r = patch(
        &s,
        &format!("{CMS}/v?force=true"),
        "application/merge-patch+json",
        json!({}),
    )
    .await;
    assert_eq!(r.status, 422);
    let mut body = cm("v", json!({}));
    body["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    let r = patch(
        &s,
        &format!("{CMS}/v?fieldManager=op"),
        "application/apply-patch+yaml",
        body,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "metadata.managedFields must be nil");
}

#[tokio::test]
async fn c29_strategic_merge_patch_415_for_crs_200_for_configmaps() {
    let s = with_widgets().await;
    post(&s, WIDGETS, widget("s")).await;
    let r = patch(
        &s,
        &format!("{WIDGETS}/s"),
        "application/strategic-merge-patch+json",
        json!({"spec": {"color": "blue"}}),
    )
    .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["reason"], "UnsupportedMediaType");
    post(&s, CMS, cm("s", json!({}))).await;
    let r = patch(
        &s,
        &format!("{CMS}/s"),
        "application/strategic-merge-patch+json",
        json!({"data": {"n": "1"}}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"], json!({"k": "v", "n": "1"}));
}

#[tokio::test]
async fn c30_json_patch_test_null_leniency() {
    let s = sim().await;
    post(&s, CMS, cm("j", json!({}))).await;
    let p = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}]);
    let r = patch(
        &s,
        &format!("{CMS}/j"),
        "application/json-patch+json",
        p.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["metadata"]["finalizers"], json!(["f"]));
    let r = patch(&s, &format!("{CMS}/j"), "application/json-patch+json", p).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["reason"], "Invalid");
}

// ---- Lifecycle ----

#[tokio::test]
async fn c32_status_subresource_rules() {
    let s = with_widgets().await;
    post(&s, WIDGETS, widget("st")).await;
    let mut body = widget("st");
    body["metadata"]["labels"] = json!({"sneaky": "1"});
    body["spec"]["color"] = json!("green");
    body["status"] = json!({"ready": true});
    let r = patch(
        &s,
        &format!("{WIDGETS}/st/status"),
        "application/merge-patch+json",
        body.clone(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let o = r.json();
    assert_eq!(o["status"]["ready"], true);
    assert_eq!(o["spec"]["color"], "red");
    assert!(o["metadata"].get("labels").is_none());
    assert_eq!(o["metadata"]["generation"], 1);
    let o = patch(
        &s,
        &format!("{WIDGETS}/st"),
        "application/merge-patch+json",
        json!({"spec": {"color": "blue"}, "status": {"ready": false}}),
    )
    .await
    .json();
    assert_eq!(o["metadata"]["generation"], 2);
    assert_eq!(
        o["status"]["ready"], true,
        "status in a main-resource write is ignored"
    );
}

#[tokio::test]
async fn c33_generation_metadata_only_vs_deployment_annotations() {
    let s = with_widgets().await;
    post(&s, WIDGETS, widget("g")).await;
    let o = patch(
        &s,
        &format!("{WIDGETS}/g"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"a": "b"}, "annotations": {"x": "y"}}}),
    )
    .await
    .json();
    assert_eq!(o["metadata"]["generation"], 1);
    post(
        &s,
        DEPLOYS,
        deploy("g", 1, json!([{"name": "a", "image": "i"}])),
    )
    .await;
    let o = patch(
        &s,
        &format!("{DEPLOYS}/g"),
        "application/merge-patch+json",
        json!({"metadata": {"annotations": {"x": "y"}}}),
    )
    .await
    .json();
    assert_eq!(o["metadata"]["generation"], 2);
    let o = patch(
        &s,
        &format!("{DEPLOYS}/g"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"x": "y"}}}),
    )
    .await
    .json();
    assert_eq!(o["metadata"]["generation"], 2);
}

#[tokio::test]
async fn c34_delete_with_finalizers_then_last_finalizer_removed() {
    let s = sim().await;
    let mut body = cm("f", json!({}));
    body["metadata"]["finalizers"] = json!(["example.com/f"]);
    post(&s, CMS, body).await;
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    let mut w = Watch::open(
        &s,
        &format!("{CMS}?watch=true&resourceVersion={}", s.resource_version()),
    )
    .await;
    let res = api.delete("f", &DeleteParams::default()).await.unwrap();
    let obj = res
        .left()
        .expect("Either::Left while finalizers are pending");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert_eq!(obj.metadata.deletion_grace_period_seconds, Some(0));
    assert_eq!(w.next_event().await.unwrap()["type"], "MODIFIED");
    // Second delete is a no-op returning the object.
    assert!(
        api.delete("f", &DeleteParams::default())
            .await
            .unwrap()
            .is_left()
    );
    // A new finalizer on a terminating object is refused.
    let r = patch(
        &s,
        &format!("{CMS}/f"),
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": ["example.com/f", "x/y"]}}),
    )
    .await;
    assert_eq!(r.status, 422);
    patch(
        &s,
        &format!("{CMS}/f"),
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    let e = w.next_event().await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert!(api.get_opt("f").await.unwrap().is_none());
    // CR: generation+1 on deletion.
    s.install_crd(widget_crd()).unwrap();
    let mut wb = widget("fw");
    wb["metadata"]["finalizers"] = json!(["example.com/f"]);
    post(&s, WIDGETS, wb).await;
    let o = call(&s, "DELETE", &format!("{WIDGETS}/fw"), &[], None)
        .await
        .json();
    assert_eq!(o["metadata"]["generation"], 2);
}

#[tokio::test]
async fn c35_delete_without_finalizers_returns_success_status() {
    let s = sim().await;
    let o = post(&s, CMS, cm("d", json!({}))).await.json();
    let r = call(
        &s,
        "DELETE",
        &format!("{CMS}/d"),
        &[],
        Some(json!({"propagationPolicy": "Background"})),
    )
    .await
    .json();
    assert_eq!(r["kind"], "Status");
    assert_eq!(r["status"], "Success");
    assert_eq!(r["details"]["uid"], o["metadata"]["uid"]);
    post(&s, CMS, cm("d", json!({}))).await;
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    assert!(
        api.delete("d", &DeleteParams::default())
            .await
            .unwrap()
            .is_right()
    );
}

fn owned_cm(name: &str, owners: &[(&Value, bool)]) -> Value {
    let refs: Vec<Value> = owners
        .iter()
        .map(|(o, block)| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o["metadata"]["name"], "uid": o["metadata"]["uid"], "blockOwnerDeletion": block}))
        .collect();
    let mut c = cm(name, json!({}));
    c["metadata"]["ownerReferences"] = json!(refs);
    c
}

#[tokio::test]
async fn c36_background_gc() {
    let s = sim().await;
    let owner = post(&s, CMS, cm("owner", json!({}))).await.json();
    let other = post(&s, CMS, cm("other", json!({}))).await.json();
    post(&s, CMS, owned_cm("dep1", &[(&owner, false)])).await;
    post(
        &s,
        CMS,
        owned_cm("dep2", &[(&owner, false), (&other, false)]),
    )
    .await;
    call(&s, "DELETE", &format!("{CMS}/owner"), &[], None).await;
    eventually(&s, "dep1 collected", || {
        s.get("", "configmaps", "default", "dep1").is_none()
    })
    .await;
    eventually(&s, "dep2 loses the ref", || {
        s.get("", "configmaps", "default", "dep2").is_some_and(|d| {
            d["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|a| a.len() == 1)
        })
    })
    .await;
}

#[tokio::test]
async fn c37_foreground_and_orphan() {
    let s = sim().await;
    let owner = post(&s, CMS, cm("fg", json!({}))).await.json();
    let mut dep = owned_cm("fg-dep", &[(&owner, true)]);
    dep["metadata"]["finalizers"] = json!(["example.com/hold"]);
    post(&s, CMS, dep).await;
    let r = call(
        &s,
        "DELETE",
        &format!("{CMS}/fg"),
        &[],
        Some(json!({"propagationPolicy": "Foreground"})),
    )
    .await
    .json();
    assert!(
        r["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .contains(&json!("foregroundDeletion"))
    );
    eventually(&s, "dependent is terminating", || {
        s.get("", "configmaps", "default", "fg-dep")
            .is_some_and(|d| d["metadata"]["deletionTimestamp"].is_string())
    })
    .await;
    assert!(
        s.get("", "configmaps", "default", "fg").is_some(),
        "owner waits for its blocking dependent"
    );
    patch(
        &s,
        &format!("{CMS}/fg-dep"),
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    eventually(&s, "owner gone", || {
        s.get("", "configmaps", "default", "fg").is_none()
    })
    .await;

    let owner = post(&s, CMS, cm("or", json!({}))).await.json();
    post(&s, CMS, owned_cm("or-dep", &[(&owner, true)])).await;
    call(
        &s,
        "DELETE",
        &format!("{CMS}/or"),
        &[],
        Some(json!({"propagationPolicy": "Orphan"})),
    )
    .await;
    eventually(&s, "orphan owner gone", || {
        s.get("", "configmaps", "default", "or").is_none()
    })
    .await;
    let d = s
        .get("", "configmaps", "default", "or-dep")
        .expect("orphaned dependent survives");
    assert!(d["metadata"].get("ownerReferences").is_none());
}

#[tokio::test]
async fn c38_recreate_gets_new_uid() {
    let s = sim().await;
    let a = post(&s, CMS, cm("r", json!({}))).await.json();
    call(&s, "DELETE", &format!("{CMS}/r"), &[], None).await;
    let b = post(&s, CMS, cm("r", json!({}))).await.json();
    assert_ne!(a["metadata"]["uid"], b["metadata"]["uid"]);
}

#[tokio::test]
async fn c39_namespaces_missing_and_terminating() {
    let s = sim().await;
    let r = post(&s, "/api/v1/namespaces/x/configmaps", cm("c", json!({}))).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "namespaces \"x\" not found");
    post(
        &s,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
    )
    .await;
    let mut c = cm("c", json!({}));
    c["metadata"]["finalizers"] = json!(["example.com/slow"]);
    assert_eq!(
        post(&s, "/api/v1/namespaces/x/configmaps", c).await.status,
        201
    );
    let ns = call(&s, "DELETE", "/api/v1/namespaces/x", &[], None)
        .await
        .json();
    assert_eq!(ns["status"]["phase"], "Terminating");
    let r = post(&s, "/api/v1/namespaces/x/configmaps", cm("d", json!({}))).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["reason"], "Forbidden");
    eventually(&s, "configmap terminating", || {
        s.get("", "configmaps", "x", "c")
            .is_some_and(|c| c["metadata"]["deletionTimestamp"].is_string())
    })
    .await;
    assert!(s.get("", "namespaces", "", "x").is_some());
    patch(
        &s,
        "/api/v1/namespaces/x/configmaps/c",
        "application/merge-patch+json",
        json!({"metadata": {"finalizers": null}}),
    )
    .await;
    eventually(&s, "namespace gone", || {
        s.get("", "namespaces", "", "x").is_none()
    })
    .await;
}

// ---- CRDs ----

#[tokio::test]
async fn c40_crd_established_and_served() {
    let s = sim().await;
    let crds: Api<CustomResourceDefinition> = Api::all(s.client());
    let crd: CustomResourceDefinition = serde_json::from_value(widget_crd()).unwrap();
    crds.create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::timeout(
        T,
        await_condition(
            crds.clone(),
            "widgets.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    let got = crds.get("widgets.example.com").await.unwrap();
    let conds = got.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "NamesAccepted" && c.status == "True")
    );
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget"));
    let api: Api<DynamicObject> = Api::namespaced_with(s.client(), "default", &ar);
    let w: DynamicObject = serde_json::from_value(widget("k")).unwrap();
    api.create(&PostParams::default(), &w).await.unwrap();
}

#[tokio::test]
async fn c41_pruning_and_defaults() {
    let s = with_widgets().await;
    let mut w = widget("p");
    w["spec"]["unknown"] = json!(1);
    w["spec"]["extra"] = json!({"anything": {"goes": true}});
    let o = post(&s, WIDGETS, w).await.json();
    assert!(o["spec"].get("unknown").is_none());
    assert_eq!(o["spec"]["extra"], json!({"anything": {"goes": true}}));
    assert_eq!(o["spec"]["size"], 3, "schema default filled in");
    let o = patch(
        &s,
        &format!("{WIDGETS}/p/status"),
        "application/merge-patch+json",
        json!({"status": {"bogus": 1, "ready": true}}),
    )
    .await
    .json();
    assert_eq!(o["status"], json!({"ready": true}));
}

#[tokio::test]
async fn c42_deleting_crd_deletes_crs_and_gv() {
    let s = with_widgets().await;
    post(&s, WIDGETS, widget("gone")).await;
    let mut w = Watch::open(
        &s,
        &format!(
            "{WIDGETS}?watch=true&resourceVersion={}",
            s.resource_version()
        ),
    )
    .await;
    call(
        &s,
        "DELETE",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
        &[],
        None,
    )
    .await;
    eventually(&s, "crd gone", || {
        s.get(
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "",
            "widgets.example.com",
        )
        .is_none()
    })
    .await;
    let apis = get(&s, "/apis").await.json();
    assert!(
        !apis["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "example.com")
    );
    let root = get(&s, "/openapi/v3").await.json();
    assert!(root["paths"].get("apis/example.com/v1").is_none());
    // The open watch saw the CR go, then was ended when the resource stopped being served.
    assert_eq!(w.next_event().await.unwrap()["type"], "DELETED");
    assert!(w.next().await.is_none());
    let crd = s.requests();
    assert!(crd.iter().any(|r| r.method == "DELETE"));
    assert_eq!(
        get(&s, "/apis/example.com/v1/namespaces/default/widgets")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn deployment_typed_apply_through_kube_rs() {
    // Controllers off: the Deployment controller's status writes would bump rv in between.
    let mut opts = kube_sim::Options::default();
    opts.controllers.enabled = false;
    let s = kube_sim::Simulator::start(opts).await.unwrap();
    let api: Api<Deployment> = Api::default_namespaced(s.client());
    let d: Deployment =
        serde_json::from_value(deploy("typed", 1, json!([{"name": "a", "image": "i:1"}]))).unwrap();
    let pp = PatchParams::apply("op").force();
    let a = api.patch("typed", &pp, &Patch::Apply(&d)).await.unwrap();
    let b = api.patch("typed", &pp, &Patch::Apply(&d)).await.unwrap();
    assert_eq!(a.metadata.resource_version, b.metadata.resource_version);
}

#[tokio::test]
async fn c41b_openapi_validation_of_custom_resources() {
    let s = sim().await;
    let mut crd = widget_crd();
    let spec = &mut crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    spec["required"] = json!(["color"]);
    spec["properties"]["color"]["enum"] = json!(["red", "blue"]);
    spec["properties"]["size"]["minimum"] = json!(1);
    s.install_crd(crd).unwrap();
    assert_eq!(post(&s, WIDGETS, widget("ok")).await.status, 201);
    let mut bad = widget("bad");
    bad["spec"] = json!({"color": "pink", "size": "big"});
    let r = post(&s, WIDGETS, bad).await;
    assert_eq!(r.status, 422, "{}", r.body);
    let v = r.json();
    assert_eq!(v["reason"], "Invalid");
    assert_eq!(v["details"]["kind"], "Widget");
    assert_eq!(v["details"]["group"], "example.com");
    let fields: Vec<&str> = v["details"]["causes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["spec.size", "spec.color"]);
    assert!(
        v["message"].as_str().unwrap().starts_with(
            "Widget.example.com \"bad\" is invalid: [spec.size: Invalid value: \"string\""
        ),
        "{}",
        v["message"]
    );
    let r = patch(
        &s,
        &format!("{WIDGETS}/ok"),
        "application/merge-patch+json",
        json!({"spec": {"color": null}}),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["details"]["causes"][0],
        json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.color"})
    );
    let r = patch(
        &s,
        &format!("{WIDGETS}/ok"),
        "application/merge-patch+json",
        json!({"spec": {"size": 0}}),
    )
    .await;
    assert_eq!(r.status, 422);
    // Strict field validation: unknown fields are an error instead of being pruned.
    let mut unknown = widget("strict");
    unknown["spec"]["bogus"] = json!(1);
    let r = call(
        &s,
        "POST",
        &format!("{WIDGETS}?fieldValidation=Strict"),
        &[],
        Some(unknown.clone()),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .ends_with("strict decoding error: unknown field \"spec.bogus\"")
    );
    assert_eq!(post(&s, WIDGETS, unknown).await.status, 201);
}

#[tokio::test]
async fn builtin_validation_names_labels_and_immutable_fields() {
    let s = sim().await;
    let r = post(&s, CMS, cm("Bad_Name", json!({}))).await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"),
        "{}",
        r.body
    );
    let long = "x".repeat(64);
    let r = post(&s, CMS, cm("ok", json!({"app": long}))).await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("must be no more than 63 characters")
    );
    assert_eq!(
        post(&s, CMS, cm("ok", json!({"app.kubernetes.io/name": "quay"})))
            .await
            .status,
        201
    );
    // Deployment selector is immutable in apps/v1.
    post(
        &s,
        DEPLOYS,
        deploy("sel", 1, json!([{"name": "a", "image": "i"}])),
    )
    .await;
    let r = patch(
        &s,
        &format!("{DEPLOYS}/sel"),
        "application/merge-patch+json",
        json!({"spec": {"selector": {"matchLabels": {"app": "other"}}}}),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("spec.selector: Invalid value")
    );
    // Immutable ConfigMaps refuse data changes.
    let mut c = cm("frozen", json!({}));
    c["immutable"] = json!(true);
    post(&s, CMS, c).await;
    let r = patch(
        &s,
        &format!("{CMS}/frozen"),
        "application/merge-patch+json",
        json!({"data": {"k": "changed"}}),
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["details"]["causes"][0]["field"], "data");
}

#[tokio::test]
async fn dry_run_persists_nothing_and_emits_no_event() {
    let s = sim().await;
    let rv = s.resource_version();
    let r = call(
        &s,
        "POST",
        &format!("{CMS}?dryRun=All"),
        &[],
        Some(cm("dry", json!({}))),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["metadata"]["name"], "dry");
    let r = patch(
        &s,
        &format!("{CMS}/dry2?dryRun=All&fieldManager=op"),
        "application/apply-patch+yaml",
        cm("dry2", json!({})),
    )
    .await;
    assert_eq!(r.status, 201);
    assert_eq!(s.resource_version(), rv);
    assert!(s.get("", "configmaps", "default", "dry").is_none());
    post(&s, CMS, cm("real", json!({}))).await;
    let r = call(&s, "DELETE", &format!("{CMS}/real?dryRun=All"), &[], None).await;
    assert_eq!(r.status, 200);
    assert!(s.get("", "configmaps", "default", "real").is_some());
}

#[tokio::test]
async fn deletecollection_with_selector_and_delete_preconditions() {
    let s = sim().await;
    for (n, l) in [("a", "x"), ("b", "x"), ("c", "y")] {
        post(&s, CMS, cm(n, json!({"grp": l}))).await;
    }
    let r = call(
        &s,
        "DELETE",
        &format!("{CMS}?labelSelector=grp%3Dx"),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 2);
    let names: Vec<String> = s
        .list("", "configmaps", Some("default"))
        .iter()
        .map(|c| c["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["c"]);
    let r = call(
        &s,
        "DELETE",
        &format!("{CMS}/c"),
        &[],
        Some(json!({"preconditions": {"uid": "not-the-uid"}})),
    )
    .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["reason"], "Conflict");
    let r = call(
        &s,
        "DELETE",
        &format!("{CMS}/c"),
        &[],
        Some(json!({"propagationPolicy": "Orphan", "orphanDependents": true})),
    )
    .await;
    assert_eq!(r.status, 422);
}

#[tokio::test]
async fn status_put_with_stale_rv_and_apply_status_of_missing() {
    let s = with_widgets().await;
    let o = post(&s, WIDGETS, widget("w")).await.json();
    let mut st = o.clone();
    st["status"] = json!({"ready": true});
    assert_eq!(
        call(
            &s,
            "PUT",
            &format!("{WIDGETS}/w/status"),
            &[],
            Some(st.clone())
        )
        .await
        .status,
        200
    );
    // controller-runtime's Status().Update with a cached (stale) rv.
    let r = call(&s, "PUT", &format!("{WIDGETS}/w/status"), &[], Some(st)).await;
    assert_eq!(r.status, 409);
    let r = patch(
        &s,
        &format!("{WIDGETS}/missing/status?fieldManager=op"),
        "application/apply-patch+yaml",
        widget("missing"),
    )
    .await;
    assert_eq!(r.status, 404);
    // Apply to /status owns status fields only and records the subresource.
    let mut body = widget("w");
    body["status"] = json!({"ready": false});
    let o = patch(
        &s,
        &format!("{WIDGETS}/w/status?fieldManager=ctrl&force=true"),
        "application/apply-patch+yaml",
        body,
    )
    .await
    .json();
    assert_eq!(o["status"]["ready"], false);
    let e = o["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["manager"] == "ctrl")
        .unwrap();
    assert_eq!(e["subresource"], "status");
    assert_eq!(e["operation"], "Apply");
    assert!(e["fieldsV1"].get("f:spec").is_none());
}

#[tokio::test]
async fn generate_name_and_multi_version_crd() {
    let s = sim().await;
    let r = post(
        &s,
        CMS,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}),
    )
    .await;
    assert_eq!(r.status, 201);
    let n = r.json()["metadata"]["name"].as_str().unwrap().to_string();
    assert!(n.starts_with("gen-") && n.len() == 9, "{n}");
    let mut crd = widget_crd();
    let v1 = crd["spec"]["versions"][0].clone();
    let mut beta = v1.clone();
    beta["name"] = json!("v1beta1");
    beta["storage"] = json!(false);
    crd["spec"]["versions"] = json!([beta, v1]);
    s.install_crd(crd).unwrap();
    let mut w = widget("mv");
    w["apiVersion"] = json!("example.com/v1beta1");
    assert_eq!(
        post(
            &s,
            "/apis/example.com/v1beta1/namespaces/default/widgets",
            w
        )
        .await
        .status,
        201
    );
    let got = get(&s, "/apis/example.com/v1/namespaces/default/widgets/mv")
        .await
        .json();
    assert_eq!(got["apiVersion"], "example.com/v1");
    let apis = get(&s, "/apis").await.json();
    let g = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "example.com")
        .unwrap()
        .clone();
    assert_eq!(g["preferredVersion"]["version"], "v1");
    assert_eq!(g["versions"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn body_type_must_match_url_and_crd_name_rule() {
    let s = sim().await;
    let mut c = cm("t", json!({}));
    c["apiVersion"] = json!("apps/v1");
    let r = post(&s, CMS, c).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "the API version in the data (apps/v1) does not match the expected API version (v1)"
    );
    let mut crd = widget_crd();
    crd["metadata"]["name"] = json!("wrong.example.com");
    let r = post(
        &s,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        crd,
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["details"]["causes"][0]["field"], "metadata.name");
}
