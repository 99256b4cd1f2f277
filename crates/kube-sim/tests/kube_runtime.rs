//! A kube-rs `Controller` with a finalizer, reflectors, `Patch::Apply`, `patch_status` and
//! owner-based GC behaves on the simulator as on a cluster: create → reconcile → delete →
//! finalizer cleanup → GC of owned objects (spec §10 items 31, 36, 40).

mod common;

use common::*;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::wait::{await_condition, conditions};
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.kube-sim.io",
    version = "v1",
    kind = "App",
    namespaced,
    status = "AppStatus"
)]
pub struct AppSpec {
    /// Message copied into the owned ConfigMap.
    pub message: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct AppStatus {
    pub ready: bool,
    pub observed_generation: Option<i64>,
}

struct Ctx {
    client: kube::Client,
    cleanups: AtomicUsize,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<kube::Error>>),
}

const FINALIZER: &str = "apps.test.kube-sim.io/cleanup";

async fn reconcile(app: Arc<App>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = app.namespace().unwrap();
    let apps: Api<App> = Api::namespaced(ctx.client.clone(), &ns);
    finalizer(&apps, FINALIZER, app, |ev| async {
        match ev {
            Finalizer::Apply(app) => {
                let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(format!("{}-config", app.name_any())),
                        owner_references: Some(vec![app.controller_owner_ref(&()).unwrap()]),
                        ..Default::default()
                    },
                    data: Some([("message".to_string(), app.spec.message.clone())].into()),
                    ..Default::default()
                };
                let pp = PatchParams::apply("app-controller").force();
                cms.patch(&cm.name_any(), &pp, &Patch::Apply(&cm)).await?;
                let status = serde_json::json!({
                    "apiVersion": App::api_version(&()), "kind": App::kind(&()),
                    "status": {"ready": true, "observed_generation": app.metadata.generation}
                });
                apps.patch_status(&app.name_any(), &pp, &Patch::Apply(&status))
                    .await?;
                Ok(Action::await_change())
            }
            Finalizer::Cleanup(_) => {
                ctx.cleanups.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(_: Arc<App>, _: &Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

#[tokio::test]
async fn controller_with_finalizer_status_and_gc() {
    let s = sim().await;
    let client = s.client();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &App::crd())
        .await
        .unwrap();
    tokio::time::timeout(
        T,
        await_condition(
            crds,
            "apps.test.kube-sim.io",
            conditions::is_crd_established(),
        ),
    )
    .await
    .unwrap()
    .unwrap();

    let ctx = Arc::new(Ctx {
        client: client.clone(),
        cleanups: AtomicUsize::new(0),
    });
    let apps: Api<App> = Api::default_namespaced(client.clone());
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let controller = Controller::new(apps.clone(), Default::default())
        .owns(cms.clone(), Default::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    let app = App::new(
        "demo",
        AppSpec {
            message: "hello".into(),
        },
    );
    apps.create(&PostParams::default(), &app).await.unwrap();
    let ready = |a: Option<&App>| a.and_then(|a| a.status.as_ref()).is_some_and(|s| s.ready);
    let got = tokio::time::timeout(T, await_condition(apps.clone(), "demo", ready))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.finalizers(), &[FINALIZER.to_string()]);
    assert_eq!(got.status.as_ref().unwrap().observed_generation, Some(1));
    let cm = cms.get("demo-config").await.unwrap();
    assert_eq!(cm.data.unwrap()["message"], "hello");
    assert_eq!(
        cm.metadata.owner_references.unwrap()[0].uid,
        got.uid().unwrap()
    );

    // A spec change bumps generation and is reconciled; the status write does not retrigger
    // generation.
    apps.patch(
        "demo",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"message": "bye"}})),
    )
    .await
    .unwrap();
    let observed = |a: Option<&App>| {
        a.and_then(|a| a.status.as_ref())
            .is_some_and(|s| s.observed_generation == Some(2))
    };
    tokio::time::timeout(T, await_condition(apps.clone(), "demo", observed))
        .await
        .unwrap()
        .unwrap();
    let updated = |c: Option<&ConfigMap>| {
        c.and_then(|c| c.data.as_ref())
            .is_some_and(|d| d["message"] == "bye")
    };
    tokio::time::timeout(T, await_condition(cms.clone(), "demo-config", updated))
        .await
        .unwrap()
        .unwrap();

    // Delete: finalizer cleanup runs, the App disappears, its ConfigMap is garbage-collected.
    let uid = got.uid().unwrap();
    apps.delete("demo", &Default::default()).await.unwrap();
    tokio::time::timeout(
        T,
        await_condition(apps.clone(), "demo", conditions::is_deleted(&uid)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(ctx.cleanups.load(Ordering::SeqCst), 1);
    let cm_uid = s
        .get("", "configmaps", "default", "demo-config")
        .map(|c| c["metadata"]["uid"].as_str().unwrap().to_string());
    if let Some(cm_uid) = cm_uid {
        tokio::time::timeout(
            T,
            await_condition(cms.clone(), "demo-config", conditions::is_deleted(&cm_uid)),
        )
        .await
        .unwrap()
        .unwrap();
    }
    assert!(cms.get_opt("demo-config").await.unwrap().is_none());
    handle.abort();
}

#[tokio::test]
async fn metadata_watcher_gets_partial_object_metadata() {
    use kube::core::PartialObjectMeta;
    use kube::runtime::{WatchStreamExt, watcher};
    let s = sim().await;
    post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        cm("meta", serde_json::json!({"a": "b"})),
    )
    .await;
    // Api<PartialObjectMeta<K>> sends the metadata-only Accept headers.
    let cms: Api<PartialObjectMeta<ConfigMap>> = Api::default_namespaced(s.client());
    let mut st = watcher(cms, watcher::Config::default())
        .applied_objects()
        .boxed();
    let m = tokio::time::timeout(T, st.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(m.metadata.name.as_deref(), Some("meta"));
    let r = call(
        &s,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[(
            "accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )],
        None,
    )
    .await;
    let v = r.json();
    assert_eq!(v["kind"], "PartialObjectMetadataList");
    assert!(v["items"][0].get("data").is_none());
}

#[tokio::test]
async fn event_recorder_publishes_events_k8s_io() {
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};
    let s = sim().await;
    let o = post(
        &s,
        "/api/v1/namespaces/default/configmaps",
        cm("rec", serde_json::json!({})),
    )
    .await
    .json();
    let cm: ConfigMap = serde_json::from_value(o).unwrap();
    let recorder = Recorder::new(
        s.client(),
        Reporter {
            controller: "test-controller".into(),
            instance: None,
        },
    );
    let ev = Event {
        type_: EventType::Normal,
        reason: "Reconciled".into(),
        note: Some("done".into()),
        action: "Reconcile".into(),
        secondary: None,
    };
    recorder.publish(&ev, &cm.object_ref(&())).await.unwrap();
    recorder.publish(&ev, &cm.object_ref(&())).await.unwrap();
    let evs = s.list("events.k8s.io", "events", Some("default"));
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0]["reason"], "Reconciled");
}
