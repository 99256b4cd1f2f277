//! Spec §10 conformance: discovery/OpenAPI (1-8), list/watch (9-17), error bodies (48).
//! Each test pins one request/response behaviour.

mod common;

use common::*;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde_json::{Value, json};
use std::time::Duration;

// ---- Discovery / OpenAPI ----

#[tokio::test]
async fn c01_version_reports_1_32() {
    let s = sim().await;
    let v = get(&s, "/version").await.json();
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "32");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.32."));
    let info = s.client().apiserver_version().await.unwrap();
    assert_eq!(info.minor, "32");
}

#[tokio::test]
async fn c02_api_legacy_even_with_aggregated_accept_content_type() {
    let s = sim().await;
    // Without the aggregated Accept: legacy APIVersions.
    let r = get(&s, "/api").await;
    assert_eq!(r.content_type(), "application/json");
    let v = r.json();
    assert_eq!(v["kind"], "APIVersions");
    assert_eq!(v["versions"], json!(["v1"]));
    // With kubectl's Accept, the aggregated document under its own content type.
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let r = call(&s, "GET", "/api", &[("accept", accept)], None).await;
    assert_eq!(
        r.content_type(),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let v = r.json();
    assert_eq!(v["kind"], "APIGroupDiscoveryList");
    assert_eq!(v["items"][0]["metadata"]["name"], "");
}

#[tokio::test]
async fn c03_apis_lists_groups_and_crd_group_after_established() {
    let s = sim().await;
    let v = get(&s, "/apis").await.json();
    let names: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "batch",
        "apiextensions.k8s.io",
        "autoscaling",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
    ] {
        assert!(names.contains(&g), "{g} missing from {names:?}");
    }
    assert!(!names.contains(&"example.com"));
    let apps = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "apps")
        .unwrap();
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    let r = post(
        &s,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        widget_crd(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = get(&s, "/apis").await.json();
    assert!(
        v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "example.com")
    );
}

#[tokio::test]
async fn c04_apps_v1_resource_list() {
    let s = sim().await;
    let v = get(&s, "/apis/apps/v1").await.json();
    assert_eq!(v["kind"], "APIResourceList");
    assert_eq!(v["groupVersion"], "apps/v1");
    let rs = v["resources"].as_array().unwrap();
    let d = rs.iter().find(|r| r["name"] == "deployments").unwrap();
    assert_eq!(d["namespaced"], true);
    assert_eq!(d["kind"], "Deployment");
    assert_eq!(d["singularName"], "deployment");
    assert!(d["verbs"].as_array().unwrap().contains(&json!("watch")));
    assert!(d["verbs"].as_array().unwrap().contains(&json!("patch")));
    assert_eq!(d["shortNames"], json!(["deploy"]));
    let st = rs
        .iter()
        .find(|r| r["name"] == "deployments/status")
        .unwrap();
    assert_eq!(st["verbs"], json!(["get", "patch", "update"]));
}

#[tokio::test]
async fn c05_unknown_group_version_is_404_status() {
    let s = sim().await;
    let r = get(&s, "/apis/nope.example.com/v1").await;
    assert_eq!(r.status, 404);
    let v = r.json();
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["reason"], "NotFound");
    assert_eq!(v["code"], 404);
}

#[tokio::test]
async fn c06_kube_discovery_finds_crd_with_status_subresource() {
    let s = sim().await;
    s.install_crd(widget_crd()).unwrap();
    let d = kube::Discovery::new(s.client()).run().await.unwrap();
    let (ar, caps) = d
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "Widget")
        .expect("Widget discovered");
    assert_eq!(ar.plural, "widgets");
    assert_eq!(ar.api_version, "example.com/v1");
    assert!(
        caps.subresources
            .iter()
            .any(|(sr, _)| sr.plural == "status"),
        "{:?}",
        caps.subresources
    );
}

#[tokio::test]
async fn c07_aggregated_discovery_matches_legacy() {
    let s = sim().await;
    s.install_crd(widget_crd()).unwrap();
    let accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let r = call(&s, "GET", "/apis", &[("accept", accept)], None).await;
    assert_eq!(
        r.content_type(),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(get(&s, "/apis").await.json()["kind"], "APIGroupList");
    let legacy = kube::Discovery::new(s.client()).run().await.unwrap();
    let agg = kube::Discovery::new(s.client())
        .run_aggregated()
        .await
        .unwrap();
    let mut a: Vec<String> = legacy.groups().map(|g| g.name().to_string()).collect();
    let mut b: Vec<String> = agg.groups().map(|g| g.name().to_string()).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert!(b.contains(&"example.com".to_string()));
}

#[tokio::test]
async fn c08_openapi_v3_lists_every_served_gv_with_patch_ops() {
    let s = sim().await;
    s.install_crd(widget_crd()).unwrap();
    let root = get(&s, "/openapi/v3").await.json();
    for k in [
        "api/v1",
        "apis/apps/v1",
        "apis/batch/v1",
        "apis/example.com/v1",
    ] {
        assert!(
            root["paths"][k]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with(&format!("/openapi/v3/{k}?hash="))
        );
    }
    let doc = get(&s, "/openapi/v3/api/v1").await.json();
    let ns = &doc["paths"]["/api/v1/namespaces/{name}"]["patch"];
    assert_eq!(ns["x-kubernetes-group-version-kind"]["kind"], "Namespace");
    assert!(
        ns["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation")
    );
}

// ---- List / watch ----

#[tokio::test]
async fn c09_list_rv_is_latest_and_items_are_typed() {
    let s = sim().await;
    let mut last = 0;
    for i in 0..3 {
        last = rv_of(
            &post(
                &s,
                "/api/v1/namespaces/default/configmaps",
                cm(&format!("c{i}"), json!({})),
            )
            .await
            .json(),
        );
    }
    let l = get(&s, "/api/v1/namespaces/default/configmaps")
        .await
        .json();
    assert_eq!(l["kind"], "ConfigMapList");
    assert_eq!(rv_of(&l), last);
    assert_eq!(
        l["metadata"]["resourceVersion"].as_str().unwrap(),
        s.resource_version().to_string()
    );
    for it in l["items"].as_array().unwrap() {
        assert_eq!(it["apiVersion"], "v1");
        assert_eq!(it["kind"], "ConfigMap");
        assert!(
            !it["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn c10_pagination_with_limit_and_continue() {
    let s = sim().await;
    for i in 0..5 {
        post(
            &s,
            "/api/v1/namespaces/default/configmaps",
            cm(&format!("p{i}"), json!({})),
        )
        .await;
    }
    let p1 = get(&s, "/api/v1/namespaces/default/configmaps?limit=2")
        .await
        .json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    assert_eq!(p1["metadata"]["remainingItemCount"], 3);
    let c = p1["metadata"]["continue"].as_str().unwrap().to_string();
    let mut seen: Vec<String> = p1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().into())
        .collect();
    let p2 = get(
        &s,
        &format!("/api/v1/namespaces/default/configmaps?limit=2&continue={c}"),
    )
    .await
    .json();
    let c2 = p2["metadata"]["continue"].as_str().unwrap().to_string();
    let p3 = get(
        &s,
        &format!("/api/v1/namespaces/default/configmaps?limit=2&continue={c2}"),
    )
    .await
    .json();
    assert!(p3["metadata"].get("continue").is_none());
    for p in [&p2, &p3] {
        seen.extend(
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(seen, vec!["p0", "p1", "p2", "p3", "p4"]);
    // kube-rs follows continue by itself.
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    assert_eq!(
        api.list(&ListParams::default().limit(2))
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn c11_label_selectors_filter_list_and_watch() {
    let s = sim().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let mut w = Watch::open(
        &s,
        &format!(
            "{base}?watch=true&resourceVersion={}&labelSelector=app%3Da,tier!%3Ddb",
            s.resource_version()
        ),
    )
    .await;
    post(&s, base, cm("a-web", json!({"app": "a", "tier": "web"}))).await;
    post(&s, base, cm("a-db", json!({"app": "a", "tier": "db"}))).await;
    post(&s, base, cm("b-web", json!({"app": "b", "env": "x"}))).await;
    post(&s, base, cm("c-web", json!({"app": "c", "env": "y"}))).await;
    let names = |v: Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(
            get(&s, &format!("{base}?labelSelector=app%3Da,tier!%3Ddb"))
                .await
                .json()
        ),
        vec!["a-web"]
    );
    assert_eq!(
        names(
            get(&s, &format!("{base}?labelSelector=env%20in%20(x,y)"))
                .await
                .json()
        ),
        vec!["b-web", "c-web"]
    );
    assert_eq!(
        names(get(&s, &format!("{base}?labelSelector=!env")).await.json()),
        vec!["a-db", "a-web"]
    );
    let e = w.next_event().await.unwrap();
    assert_eq!(e["object"]["metadata"]["name"], "a-web");
    // A label change that stops matching is delivered as DELETED to the filtered watch.
    patch(
        &s,
        &format!("{base}/a-web"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"tier": "db"}}}),
    )
    .await;
    let e = w.next_event().await.unwrap();
    assert_eq!(e["type"], "DELETED");
    assert_eq!(e["object"]["metadata"]["name"], "a-web");
}

#[tokio::test]
async fn c12_field_selectors_and_unsupported_label() {
    let s = sim().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let rv = s.resource_version();
    post(&s, base, cm("foo", json!({}))).await;
    post(&s, base, cm("bar", json!({}))).await;
    let l = get(&s, &format!("{base}?fieldSelector=metadata.name%3Dfoo"))
        .await
        .json();
    assert_eq!(l["items"].as_array().unwrap().len(), 1);
    let mut w = Watch::open(
        &s,
        &format!("{base}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Dfoo"),
    )
    .await;
    let e = w.next_event().await.unwrap();
    assert_eq!(e["object"]["metadata"]["name"], "foo");
    let r = get(&s, &format!("{base}?fieldSelector=spec.bogus%3D1")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["reason"], "BadRequest");
    assert_eq!(r.json()["message"], "field label not supported: spec.bogus");
}

#[tokio::test]
async fn c13_watch_streams_added_modified_deleted_in_rv_order() {
    let s = sim().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let list_rv = rv_of(&get(&s, base).await.json());
    let mut w = Watch::open(&s, &format!("{base}?watch=true&resourceVersion={list_rv}")).await;
    assert_eq!(w.status, 200);
    post(&s, base, cm("w", json!({}))).await;
    patch(
        &s,
        &format!("{base}/w"),
        "application/merge-patch+json",
        json!({"data": {"k": "v2"}}),
    )
    .await;
    call(&s, "DELETE", &format!("{base}/w"), &[], None).await;
    let mut last = list_rv;
    for t in ["ADDED", "MODIFIED", "DELETED"] {
        let e = w.next_event().await.unwrap();
        assert_eq!(e["type"], t);
        let rv = rv_of(&e["object"]);
        assert!(rv > last);
        last = rv;
        if t == "DELETED" {
            assert_eq!(e["object"]["data"]["k"], "v2");
        }
    }
}

#[tokio::test]
async fn c14_bookmark_and_clean_close_at_timeout() {
    let s = sim().await;
    let start = std::time::Instant::now();
    let mut w = Watch::open(&s, "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&timeoutSeconds=2&resourceVersion=1").await;
    let mut bookmark = None;
    while let Some(e) = w.next().await {
        if e["type"] == "BOOKMARK" {
            bookmark = Some(e);
        }
    }
    let b = bookmark.expect("a BOOKMARK before the timeout");
    assert_eq!(b["object"]["kind"], "ConfigMap");
    assert_eq!(b["object"]["apiVersion"], "v1");
    assert!(
        !b["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    let el = start.elapsed();
    assert!(
        el >= Duration::from_millis(1900) && el < Duration::from_secs(6),
        "{el:?}"
    );
}

#[tokio::test]
async fn c15_too_old_rv_gets_410_error_event_and_watcher_relists() {
    let s = sim().await;
    let base = "/api/v1/namespaces/default/configmaps";
    post(&s, base, cm("old", json!({}))).await;
    s.compact_history();
    let mut w = Watch::open(&s, &format!("{base}?watch=true&resourceVersion=1")).await;
    assert_eq!(w.status, 200);
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "ERROR");
    assert_eq!(e["object"]["code"], 410);
    assert_eq!(e["object"]["reason"], "Expired");
    assert!(w.next().await.is_none(), "stream closes after the ERROR");

    // kube-rs watcher: a forced expiry makes it relist (a new Init).
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut inits = 0;
    let mut saw_410 = false;
    while let Some(ev) = tokio::time::timeout(T, stream.next())
        .await
        .expect("watcher event")
    {
        let ev = match ev {
            Ok(ev) => ev,
            // The watcher surfaces the ERROR event, then relists by itself.
            Err(watcher::Error::WatchError(st)) if st.code == 410 => {
                saw_410 = true;
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        if matches!(ev, watcher::Event::InitDone) {
            inits += 1;
            if inits == 1 {
                // A write after the list, then compaction: the list rv is no longer resumable.
                post(&s, base, cm("newer", json!({}))).await;
                s.compact_history();
                s.drop_watches();
            } else {
                break;
            }
        }
    }
    assert!(saw_410);
    let lists = s.metrics().request_count("LIST", "configmaps");
    assert!(lists >= 2, "expected a relist, saw {lists} LIST requests");
}

#[tokio::test]
async fn c16_reflector_converges_after_random_writes_and_expiry() {
    let s = sim().await;
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    let (reader, writer) = reflector::store();
    let stream =
        reflector(writer, watcher(api.clone(), watcher::Config::default())).applied_objects();
    let h = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while stream.next().await.is_some() {}
    });
    reader.wait_until_ready().await.unwrap();
    let mut rng_state = 12345u64;
    let mut next = || {
        rng_state = rng_state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng_state >> 33) as usize
    };
    for i in 0..100 {
        let name = format!("r{}", next() % 15);
        match next() % 3 {
            0 => {
                let _ = api
                    .create(
                        &PostParams::default(),
                        &serde_json::from_value(cm(&name, json!({}))).unwrap(),
                    )
                    .await;
            }
            1 => {
                let _ = api
                    .patch(
                        &name,
                        &kube::api::PatchParams::default(),
                        &kube::api::Patch::Merge(json!({"data": {"i": i.to_string()}})),
                    )
                    .await;
            }
            _ => {
                let _ = api.delete(&name, &Default::default()).await;
            }
        }
        if i == 50 {
            s.compact_history();
            s.drop_watches();
        }
    }
    let want = api.list(&ListParams::default()).await.unwrap();
    let want_rv = want.metadata.resource_version.clone().unwrap();
    let mut names: Vec<String> = want
        .items
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let mut got: Vec<String> = reader
            .state()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        got.sort();
        let same_data = reader.state().iter().all(|c| {
            want.items
                .iter()
                .any(|w| w.metadata.name == c.metadata.name && w.data == c.data)
        });
        if got == names && same_data {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reflector did not converge to {names:?} at rv {want_rv}: {got:?}"
        );
        // kube-runtime's stable reflector Store has no change notification and the
        // simulator is idle by now, so this one check polls.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.abort();
}

#[tokio::test]
async fn c17_streaming_list_initial_events_end_bookmark() {
    let s = sim().await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        cm("s1", json!({})),
    )
    .await;
    let mut w = Watch::open(&s, "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0&allowWatchBookmarks=true").await;
    let e = w.next().await.unwrap();
    assert_eq!(e["type"], "ADDED");
    let b = w.next().await.unwrap();
    assert_eq!(b["type"], "BOOKMARK");
    assert_eq!(
        b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let r = get(
        &s,
        "/api/v1/namespaces/default/configmaps?sendInitialEvents=true",
    )
    .await;
    assert_eq!(r.status, 422);
    // kube-rs streaming lists: Init, one InitApply, InitDone.
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    let mut st = watcher(api, watcher::Config::default().streaming_lists()).boxed();
    let mut applies = 0;
    loop {
        match tokio::time::timeout(T, st.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitApply(_) => applies += 1,
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(applies, 1);
}

// ---- Errors ----

#[tokio::test]
async fn c48_error_bodies_parse_as_status() {
    let s = sim().await;
    let api: Api<ConfigMap> = Api::default_namespaced(s.client());
    let err = api.get("missing").await.unwrap_err();
    match err {
        kube::Error::Api(st) => {
            assert_eq!(st.code, 404);
            assert_eq!(st.reason, "NotFound");
            assert_eq!(st.message, "configmaps \"missing\" not found");
        }
        e => panic!("{e}"),
    }
    let r = get(&s, "/api/v1/namespaces/default/configmaps/missing")
        .await
        .json();
    assert_eq!(
        r["details"],
        json!({"name": "missing", "kind": "configmaps"})
    );
    let r = get(&s, "/apis/apps/v1/namespaces/default/deployments/missing")
        .await
        .json();
    assert_eq!(r["message"], "deployments.apps \"missing\" not found");
    assert_eq!(r["details"]["group"], "apps");
}

#[tokio::test]
async fn event_field_selectors_as_kubectl_describe_uses_them() {
    let s = sim().await;
    let ev = |name: &str, obj: &str| {
        json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
               "involvedObject": {"kind": "Deployment", "name": obj, "namespace": "default"}, "reason": "ScalingReplicaSet", "type": "Normal"})
    };
    post(&s, "/api/v1/namespaces/default/events", ev("e1", "web")).await;
    post(&s, "/api/v1/namespaces/default/events", ev("e2", "db")).await;
    let l = get(&s, "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dweb,involvedObject.kind%3DDeployment,type%3DNormal").await.json();
    let items = l["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["metadata"]["name"], "e1");
    // The same label on another resource is not supported.
    assert_eq!(
        get(
            &s,
            "/api/v1/namespaces/default/configmaps?fieldSelector=involvedObject.name%3Dweb"
        )
        .await
        .status,
        400
    );
}

#[tokio::test]
async fn legacy_single_object_watch() {
    let s = sim().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let rv = s.resource_version();
    let mut w = Watch::open(&s, &format!("{base}/one?watch=true&resourceVersion={rv}")).await;
    post(&s, base, cm("other", json!({}))).await;
    post(&s, base, cm("one", json!({}))).await;
    let e = w.next_event().await.unwrap();
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("one"))
    );
}

#[tokio::test]
async fn aggregated_discovery_v2beta1_for_older_kubectl() {
    let s = sim().await;
    let accept = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let r = call(&s, "GET", "/apis", &[("accept", accept)], None).await;
    assert_eq!(
        r.content_type(),
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
    );
    let v = r.json();
    assert_eq!(v["apiVersion"], "apidiscovery.k8s.io/v2beta1");
    let apps = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let d = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(d["scope"], "Namespaced");
    assert_eq!(d["subresources"][0]["subresource"], "status");
}

#[tokio::test]
async fn watch_from_future_rv_waits_then_times_out() {
    let s = sim().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let want = s.resource_version() + 1;
    // The write that produces `want` may land before or after the watch request: either way
    // the watch is served from `want`.
    let url = format!("{base}?watch=true&resourceVersion={want}");
    let (mut w, _) = tokio::join!(
        Watch::open(&s, &url),
        post(&s, base, cm("first", json!({})))
    );
    assert_eq!(w.status, 200);
    post(&s, base, cm("second", json!({}))).await;
    assert_eq!(
        w.next_event().await.unwrap()["object"]["metadata"]["name"],
        "second"
    );
    // Far ahead of the store: 504 Timeout after the watch cache's 3 s wait.
    let far = s.resource_version() + 1000;
    let r = get(&s, &format!("{base}?watch=true&resourceVersion={far}")).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["reason"], "Timeout");
    assert_eq!(
        r.json()["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );
}
