//! The operator process: discovery, watch caches, the controller, and the health and metrics endpoints.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::{Event, Namespace, PersistentVolumeClaim, Secret};
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::discovery::Discovery;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, PredicateConfig, WatchStreamExt, predicates, watcher};
use kube::{Client, ResourceExt};
use prometheus_client::registry::Registry;
use tracing::{error, info};

use super::cache::WatchCache;
use super::context::{Capabilities, Context};
use super::kinds::{OwnedKind, key, owned_kinds};
use super::metrics::Metrics;
use super::reconcile::{CONFIG_BUNDLE_LABEL, Error, error_backoff, reconcile};
use crate::api::{QuayRegistry, REGISTRY_LABEL};
use crate::render::OperatorSettings;

/// How the operator runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Namespaces to watch; empty means all namespaces.
    pub namespaces: Vec<String>,
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    pub http_addr: SocketAddr,
    pub settings: OperatorSettings,
}

/// Finds which optional APIs the cluster serves.
pub async fn discover(client: &Client) -> Result<Capabilities, kube::Error> {
    let discovery = Discovery::new(client.clone())
        .filter(&[
            "route.openshift.io",
            "objectbucket.io",
            "monitoring.coreos.com",
            "config.openshift.io",
            "networking.k8s.io",
            "gateway.networking.k8s.io",
            "cert-manager.io",
        ])
        .run()
        .await?;
    let has = |group: &str, kind: &str| {
        discovery.groups().any(|g| {
            g.name() == group
                && g.recommended_resources()
                    .iter()
                    .any(|(ar, _)| ar.kind == kind)
        })
    };
    let monitoring_apis = has("monitoring.coreos.com", "ServiceMonitor")
        && has("monitoring.coreos.com", "PrometheusRule");
    // The Grafana dashboard goes to OpenShift's console namespace; without it monitoring cannot be managed.
    let dashboards_namespace = if monitoring_apis {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        namespaces
            .get_opt(super::GRAFANA_DASHBOARD_NAMESPACE)
            .await?
            .is_some()
    } else {
        false
    };
    let routes = has("route.openshift.io", "Route");
    Ok(Capabilities {
        routes,
        object_bucket_claims: has("objectbucket.io", "ObjectBucketClaim"),
        monitoring: monitoring_apis && dashboards_namespace,
        apiserver_config: has("config.openshift.io", "APIServer"),
        cluster_hostname: None,
        // Where Routes exist they expose Quay; Ingress and HTTPRoute are only watched where they do not.
        ingresses: !routes && has("networking.k8s.io", "Ingress"),
        gateway_api: !routes && has("gateway.networking.k8s.io", "HTTPRoute"),
        cert_manager: has("cert-manager.io", "Certificate"),
    })
}

/// API groups whose presence decides what the operator renders and watches.
pub const CAPABILITY_GROUPS: [&str; 6] = [
    "route.openshift.io",
    "objectbucket.io",
    "monitoring.coreos.com",
    "config.openshift.io",
    "gateway.networking.k8s.io",
    "cert-manager.io",
];

/// Discovery plus, when Routes are served, the router's domain.
async fn discover_all(client: &Client, options: &RunOptions) -> Result<Capabilities, kube::Error> {
    let mut capabilities = discover(client).await?;
    if capabilities.routes {
        capabilities.cluster_hostname =
            super::route_probe::cluster_hostname(client, options).await?;
    }
    info!(?capabilities, "discovered cluster capabilities");
    Ok(capabilities)
}

/// Runs the operator until the process is asked to stop. When a CustomResourceDefinition of a capability group
/// appears or disappears and discovery then tells something new, the controllers restart with the new
/// capabilities (in-process: watches and caches are rebuilt, the HTTP endpoints stay up).
pub async fn run(client: Client, options: RunOptions) -> anyhow_like::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let ready = Arc::new(AtomicBool::new(false));
    let http = serve_http(options.http_addr, Arc::new(registry), ready.clone());
    tokio::pin!(http);

    let scopes: Vec<Option<String>> = if options.namespaces.is_empty() {
        vec![None]
    } else {
        options.namespaces.iter().cloned().map(Some).collect()
    };
    let all_namespaces = options.namespaces.is_empty();
    let mut capabilities = discover_all(&client, &options).await?;
    // QuayEcosystem migrations: a controller of their own, running while the legacy CRD is served.
    let ecosystems = super::ecosystem::run_when_installed(
        client.clone(),
        options.namespaces.clone(),
        options.settings.clone(),
    );
    tokio::pin!(ecosystems);
    loop {
        let controllers = future::join_all(scopes.iter().cloned().map(|scope| {
            run_scope(
                client.clone(),
                scope,
                capabilities.clone(),
                all_namespaces,
                options.settings.clone(),
                metrics.clone(),
            )
        }));
        ready.store(true, Ordering::SeqCst);
        let changed = capabilities_changed(&client, &capabilities, &options);
        tokio::select! {
            _ = controllers => return Ok(()),
            result = &mut http => { result?; return Ok(()); }
            _ = &mut ecosystems => return Ok(()),
            new = changed => {
                capabilities = new;
                info!("cluster capabilities changed: restarting the controllers");
            }
        }
    }
}

/// Resolves with the new capabilities once discovery differs from `current` after a capability group's CRD was
/// added or removed. Watches CRD metadata only (their schemas are large and of no interest here). A failed
/// discovery is logged and tried again on the next CRD event: it must not stop the running controllers.
async fn capabilities_changed(
    client: &Client,
    current: &Capabilities,
    options: &RunOptions,
) -> Capabilities {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<PartialObjectMeta<CustomResourceDefinition>> = Api::all(client.clone());
    let relevant = |name: &str| {
        CAPABILITY_GROUPS
            .iter()
            .any(|g| name.ends_with(&format!(".{g}")))
    };
    let mut events = watcher(crds, watcher::Config::default())
        .default_backoff()
        .boxed();
    // The capability CRDs present, so that a re-list (after 410 Expired) that shows nothing new costs nothing.
    let mut known: Option<std::collections::BTreeSet<String>> = None;
    let mut listing = std::collections::BTreeSet::new();
    while let Some(event) = events.next().await {
        let check = match event {
            Ok(watcher::Event::Init) => {
                listing.clear();
                false
            }
            Ok(watcher::Event::InitApply(crd)) => {
                if relevant(&crd.name_any()) {
                    listing.insert(crd.name_any());
                }
                false
            }
            // The first listing always counts: anything installed between start-up discovery and this watch.
            Ok(watcher::Event::InitDone) => {
                let listed = std::mem::take(&mut listing);
                let changed = known.as_ref() != Some(&listed);
                known = Some(listed);
                changed
            }
            Ok(watcher::Event::Apply(crd)) if relevant(&crd.name_any()) => {
                known.get_or_insert_default().insert(crd.name_any());
                true
            }
            Ok(watcher::Event::Delete(crd)) if relevant(&crd.name_any()) => {
                known.get_or_insert_default().remove(&crd.name_any());
                true
            }
            Ok(_) => false,
            Err(e) => {
                tracing::debug!(error = %e, "CRD watch interrupted");
                false
            }
        };
        if !check {
            continue;
        }
        match discover(client).await {
            Ok(now)
                if now.routes != current.routes
                    || now.object_bucket_claims != current.object_bucket_claims
                    || now.monitoring != current.monitoring
                    || now.apiserver_config != current.apiserver_config
                    || now.ingresses != current.ingresses
                    || now.gateway_api != current.gateway_api
                    || now.cert_manager != current.cert_manager =>
            {
                match discover_all(client, options).await {
                    Ok(capabilities) => return capabilities,
                    Err(e) => {
                        tracing::warn!(error = %e, "discovery failed; keeping the current capabilities")
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "discovery failed; keeping the current capabilities")
            }
        }
    }
    // The watch never ends on its own; keep the controllers running if it does.
    future::pending().await
}

fn api_for<K>(client: &Client, scope: &Option<String>) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn dynamic_api_for(
    client: &Client,
    scope: &Option<String>,
    ar: &kube::api::ApiResource,
) -> Api<DynamicObject> {
    match scope {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// One controller with its own watch caches, for all namespaces or one.
async fn run_scope(
    client: Client,
    scope: Option<String>,
    capabilities: Capabilities,
    all_namespaces: bool,
    settings: OperatorSettings,
    metrics: Arc<Metrics>,
) {
    let kinds: Vec<OwnedKind> = owned_kinds()
        .into_iter()
        .filter(|k| k.requires.is_none_or(|c| capabilities.has(c)))
        .collect();
    // Registries are watched untyped and read one by one: a registry holding a value its typed form rejects
    // (the API server's schema lets an out-of-range int32 through) must not fail the listing of all the others.
    let registry_resource = kube::api::ApiResource::erase::<QuayRegistry>(&());
    let registries = dynamic_api_for(&client, &scope, &registry_resource);
    let reports = client.clone();
    // Every trigger passes only objects whose resourceVersion this process has not seen: after a watch had to
    // re-list (410 Expired, API server restart), unchanged objects cause no reconcile and so no request.
    let (registry_reader, registry_writer) = reflector::store();
    let registry_stream = reflector::reflector(
        registry_writer,
        watcher(registries, watcher::Config::default())
            .default_backoff()
            .filter_map(move |event| {
                future::ready(match event {
                    Ok(event) => typed_registry_event(event, &registry_resource, &reports).map(Ok),
                    Err(e) => Some(Err(e)),
                })
            })
            .modify(drop_managed_fields),
    )
    .touched_objects()
    .predicate_filter(predicates::resource_version, unseen_versions());
    // Reconciles in flight at once: each holds a render and its requests, so this bounds the operator's peak
    // memory when many registries change together; more would not go faster (the work is CPU and API-bound).
    let mut controller = Controller::for_stream(registry_stream, registry_reader)
        .with_config(
            kube::runtime::controller::Config::default().concurrency(RECONCILE_CONCURRENCY),
        )
        .trigger_backoff(NoSharedBackoff);
    let mut stores = HashMap::new();
    let owned_config = watcher::Config::default().labels(REGISTRY_LABEL);
    for kind in &kinds {
        let api = dynamic_api_for(&client, &scope, &kind.resource);
        // Watch only objects carrying the registry label: memory follows what the operator owns. The cache
        // keeps a slim form of each (context::slim_for_cache), made from the previous one and the new object,
        // and tells which registries an event changed: an object whose resourceVersion is the cached one
        // (after a re-list) triggers nothing.
        let cache = Arc::new(WatchCache::new(&kind.resource.kind));
        stores.insert(key(&kind.resource), cache.clone());
        let kind_name = kind.resource.kind.clone();
        let triggers = watcher(api, owned_config.clone())
            .default_backoff()
            .flat_map(move |event| {
                let touched = match event {
                    Ok(event) => cache.apply(event),
                    Err(e) => {
                        tracing::debug!(kind = %kind_name, error = %e, "watch interrupted");
                        Vec::new()
                    }
                };
                futures::stream::iter(touched)
            });
        controller = controller.reconcile_on(triggers);
    }
    // User Secrets the registries read: config bundles (labelled by the operator) and external TLS Secrets. A
    // TLS Secret is watched by its type, metadata only, so that one deleted and re-created (without the label
    // the operator put on the old one) is seen.
    let registry_store = controller.store();
    let secrets_of_registries = move |namespace: Option<String>, name: String| {
        registry_store
            .state()
            .into_iter()
            .filter(|r| r.namespace() == namespace && references_secret(r, &name))
            .map(|r| ObjectRef::from_obj(r.as_ref()))
            .collect::<Vec<_>>()
    };
    let bundles: Api<Secret> = api_for(&client, &scope);
    let stream = watcher(
        bundles,
        watcher::Config::default().labels(&format!("{CONFIG_BUNDLE_LABEL}=true")),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(predicates::resource_version, unseen_versions());
    let map = secrets_of_registries.clone();
    controller = controller.watches_stream(stream, move |secret: Secret| {
        map(secret.namespace(), secret.name_any())
    });
    let tls_secrets: Api<PartialObjectMeta<Secret>> = api_for(&client, &scope);
    let stream = watcher(
        tls_secrets,
        watcher::Config::default().fields("type=kubernetes.io/tls"),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(predicates::resource_version, unseen_versions());
    controller = controller.watches_stream(stream, move |secret: PartialObjectMeta<Secret>| {
        secrets_of_registries(secret.namespace(), secret.name_any())
    });
    // Why a database volume stays Pending: the ProvisioningFailed Events, mapped to the PVC's registry.
    let events: Api<Event> = api_for(&client, &scope);
    let events_writer = reflector::store::Writer::default();
    let provisioning_failures = events_writer.as_reader();
    let pvc_resource = kube::api::ApiResource::erase::<PersistentVolumeClaim>(&());
    let pvcs = stores.get(&key(&pvc_resource)).cloned();
    let stream = reflector::reflector(
        events_writer,
        watcher(
            events,
            watcher::Config::default().fields("reason=ProvisioningFailed"),
        )
        .default_backoff(),
    )
    .touched_objects()
    .predicate_filter(predicates::resource_version, unseen_versions());
    controller = controller.watches_stream(stream, move |event: Event| {
        let involved = &event.involved_object;
        if involved.kind.as_deref() != Some("PersistentVolumeClaim") {
            return None;
        }
        let namespace = involved.namespace.as_deref()?;
        let registry = pvcs
            .as_ref()?
            .registry_of(namespace, involved.name.as_deref()?)?;
        Some(ObjectRef::new(&registry).within(namespace))
    });
    let ctx = Arc::new(Context {
        client,
        settings,
        capabilities,
        all_namespaces,
        kinds,
        stores,
        provisioning_failures: Some(provisioning_failures),
        caches_waited: Default::default(),
        metrics,
        written_status: Default::default(),
        verified_content: Default::default(),
    });
    controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                // Object not found after deletion and similar races are routine.
                tracing::debug!(error = %e, "reconcile ended with an error");
            }
            future::ready(())
        })
        .await;
}

/// A registry watch event in typed form. A registry that does not read as a `QuayRegistry` is reported (log and
/// its status) and leaves the cache, so that nothing is reconciled from a spec the operator cannot read.
fn typed_registry_event(
    event: watcher::Event<DynamicObject>,
    resource: &kube::api::ApiResource,
    client: &Client,
) -> Option<watcher::Event<QuayRegistry>> {
    let typed = |mut object: DynamicObject| {
        // List items carry no kind of their own.
        object.types.get_or_insert_with(|| kube::api::TypeMeta {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
        });
        serde_json::to_value(&object)
            .and_then(serde_json::from_value::<QuayRegistry>)
            .map_err(|e| Box::new((object, e)))
    };
    // What the cache needs to drop a registry: its name and namespace.
    let stub = |object: &DynamicObject| QuayRegistry {
        metadata: object.metadata.clone(),
        spec: Default::default(),
        status: None,
    };
    match event {
        watcher::Event::Init => Some(watcher::Event::Init),
        watcher::Event::InitDone => Some(watcher::Event::InitDone),
        watcher::Event::InitApply(object) => match typed(object) {
            Ok(registry) => Some(watcher::Event::InitApply(registry)),
            Err(unreadable) => {
                let (object, e) = *unreadable;
                report_unreadable(client, object, e);
                None
            }
        },
        watcher::Event::Apply(object) => match typed(object) {
            Ok(registry) => Some(watcher::Event::Apply(registry)),
            Err(unreadable) => {
                let (object, e) = *unreadable;
                let gone = stub(&object);
                report_unreadable(client, object, e);
                Some(watcher::Event::Delete(gone))
            }
        },
        watcher::Event::Delete(object) => Some(watcher::Event::Delete(
            typed(object).unwrap_or_else(|unreadable| stub(&unreadable.0)),
        )),
    }
}

/// Logs that a registry does not read, and says so in its `RolloutBlocked` condition (once: the status write
/// brings the registry back through the watch, where the merged conditions equal the stored ones and nothing is
/// written). The error names the value's type and the expected one; a registry's spec holds no secret.
fn report_unreadable(client: &Client, object: DynamicObject, error: serde_json::Error) {
    let namespace = object.metadata.namespace.clone().unwrap_or_default();
    let name = object.metadata.name.clone().unwrap_or_default();
    let message = format!("the QuayRegistry cannot be read: {error}");
    error!(%namespace, %name, error = %error, "QuayRegistry cannot be read; not reconciled");
    let stored: Vec<crate::api::Condition> = object
        .data
        .pointer("/status/conditions")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default();
    let now =
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now());
    let Some(conditions) = unreadable_conditions(&stored, message, &now) else {
        return;
    };
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &namespace,
        &kube::api::ApiResource::erase::<QuayRegistry>(&()),
    );
    tokio::spawn(async move {
        let patch = serde_json::json!({"status": {"conditions": conditions}});
        let params = kube::api::PatchParams::default();
        if let Err(e) = api
            .patch_status(&name, &params, &kube::api::Patch::Merge(&patch))
            .await
        {
            tracing::warn!(%namespace, %name, error = %e, "could not report an unreadable QuayRegistry");
        }
    });
}

/// The conditions of a registry that does not read: `stored` with `RolloutBlocked=True/ConfigInvalid` and the
/// message, or `None` when that is already what is stored.
fn unreadable_conditions(
    stored: &[crate::api::Condition],
    message: String,
    now: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
) -> Option<Vec<crate::api::Condition>> {
    let blocked = super::status::ConditionState {
        type_: "RolloutBlocked".to_owned(),
        status: true,
        reason: crate::config::Reason::ConfigInvalid.as_str().to_owned(),
        message,
    };
    let conditions = super::status::merge_conditions(stored, &[blocked], now);
    (conditions != stored).then_some(conditions)
}

/// How many registries are reconciled at the same time.
const RECONCILE_CONCURRENCY: u16 = 8;

/// The controller's backoff over all its trigger streams together: none. kube's default pauses every trigger
/// (and so every watch cache) for 0.8 s, 1.6 s, ... up to 30 s after each error of any one of them; after a watch
/// outage with compacted history each of the ~17 watches reports its 410 in turn, and the operator then neither
/// updated its caches nor reconciled for minutes (fault-schedule seeds 48, 77, 87). Each trigger stream backs off
/// on its own errors (`default_backoff` on every watcher).
struct NoSharedBackoff;

impl Iterator for NoSharedBackoff {
    type Item = std::time::Duration;

    fn next(&mut self) -> Option<std::time::Duration> {
        Some(std::time::Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for NoSharedBackoff {
    fn reset(&mut self) {}
}

/// Remembers the resourceVersions seen per object for a day (kube's default, an hour, would let a re-list after
/// an hour of quiet reconcile everything again). Bounded by the number of objects the operator watches.
fn unseen_versions() -> PredicateConfig {
    PredicateConfig::default().ttl(std::time::Duration::from_secs(24 * 3600))
}

/// The caches keep what the operator compares and reads; `managedFields` is neither and is often the largest
/// part of an object.
fn drop_managed_fields<K: kube::Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

fn references_secret(registry: &QuayRegistry, secret: &str) -> bool {
    let spec_bundle = registry.spec.config_bundle_secret.as_deref() == Some(secret);
    let status_bundle = registry
        .status
        .as_ref()
        .and_then(|s| s.config_bundle_secret.as_deref())
        == Some(secret);
    let tls = registry
        .spec
        .components
        .iter()
        .flatten()
        .any(|c| c.secret_ref.as_ref().is_some_and(|r| r.name == secret));
    spec_bundle || status_bundle || tls
}

fn error_policy(
    _registry: Arc<QuayRegistry>,
    error: &Error,
    ctx: Arc<Context>,
) -> kube::runtime::controller::Action {
    error!(error = %error, "reconcile failed");
    ctx.metrics
        .reconcile_errors
        .get_or_create(&super::metrics::ReasonLabels {
            reason: error.metric_reason().to_owned(),
        })
        .inc();
    kube::runtime::controller::Action::requeue(error_backoff(error))
}

/// `/healthz` (alive), `/readyz` (controllers started), `/metrics` (Prometheus text).
async fn serve_http(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: Arc<AtomicBool>,
) -> anyhow_like::Result<()> {
    use axum::routing::get;
    use axum::{Router, http::StatusCode};
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.load(Ordering::SeqCst) {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut body = String::new();
                    match prometheus_client::encoding::text::encode(&mut body, &registry) {
                        Ok(()) => (StatusCode::OK, body),
                        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    info!(addr = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, app).await?;
    Ok(())
}

/// A boxed error for the process level, where only the message matters.
pub mod anyhow_like {
    pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).unwrap())
    }

    #[test]
    fn an_unreadable_registry_is_reported_once_and_again_only_when_the_message_changes() {
        let available = crate::api::Condition {
            type_: "Available".into(),
            status: "True".into(),
            reason: Some("HealthChecksPassing".into()),
            message: Some("ok".into()),
            last_update_time: Some(at(1)),
            last_transition_time: Some(at(1)),
        };
        let first = unreadable_conditions(
            std::slice::from_ref(&available),
            "bad weight".into(),
            &at(2),
        )
        .expect("a first report is written");
        let blocked = first.iter().find(|c| c.type_ == "RolloutBlocked").unwrap();
        assert_eq!(
            (blocked.status.as_str(), blocked.reason.as_deref()),
            ("True", Some("ConfigInvalid"))
        );
        assert!(first.contains(&available), "other conditions are kept");
        // The write comes back through the watch: nothing more to write, however later.
        assert_eq!(
            unreadable_conditions(&first, "bad weight".into(), &at(3)),
            None
        );
        // A different problem is reported.
        assert!(unreadable_conditions(&first, "bad replicas".into(), &at(3)).is_some());
    }
}
