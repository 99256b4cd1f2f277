//! One reconcile of one QuayRegistry: observe → render → diff → apply → report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Event as CoreEvent, ObjectReference, PersistentVolumeClaim, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams,
    PropagationPolicy,
};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::context::Context;
use super::diff::stamp_hash;
use super::status::{
    ConditionState, Observed, StatusInput, TlsObservation, component_conditions, merge_conditions,
};
use crate::api::{
    APIServer, ComponentKind, Condition, FIELD_MANAGER, FINALIZER, ObjectBucketClaim,
    PrometheusRule, QuayRegistry, QuayRegistryStatus, REGISTRY_LABEL, Route, ServiceMonitor,
    TLS_SECRET_LABEL,
};
use crate::config::bundle::{CONFIG_YAML, SSL_CERT, SSL_KEY, secret_files};
use crate::config::managed_keys::MANAGED_KEYS_SUFFIX;
use crate::config::{ConfigBundle, ManagedKeys, RenderError};
use crate::render::context::{ExternalTls, effective_components};
use crate::render::{ClusterFacts, DesiredObject, ObjectBucket, RenderInput, render};

/// Label the operator puts on a user's config bundle Secret so that a label-scoped watch sees its changes.
pub const CONFIG_BUNDLE_LABEL: &str = "quay-operator/config-bundle";
/// Annotation on a QuayRegistry that opts in to deleting its database volumes and managed keys with it.
pub const DELETE_DATA_ANNOTATION: &str = "quay-operator.rs/delete-data-on-deletion";
/// Label put on PVCs and the managed-keys Secret kept after their registry was deleted.
pub const RETAINED_FROM_LABEL: &str = "quay-operator.rs/retained-from";

/// Errors of a reconcile that are the API's fault (retried with backoff), not the registry's input.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {kind} {name}: {source}")]
    Api {
        action: &'static str,
        kind: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Error::Api { .. } => "api",
            Error::Finalizer(_) => "finalizer",
        }
    }
}

fn api_err(action: &'static str, kind: &str, name: &str) -> impl FnOnce(kube::Error) -> Error {
    let (kind, name) = (kind.to_owned(), name.to_owned());
    move |source| Error::Api {
        action,
        kind,
        name,
        source,
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The outcome of the apply phase, for status.
enum Rollout {
    /// Input problem: nothing rendered or applied.
    Blocked(RenderError),
    /// Objects applied; `waiting` names what the workloads still wait for.
    Applied { waiting: Vec<&'static str> },
}

/// Whether observing may write (create the operator's bundle and managed keys, label watched Secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Reconcile,
    /// `quay-operator diff`: read only; what would be created is made up in memory.
    Preview,
}

/// What a registry needs now: observed inputs and the render.
pub struct Plan {
    pub bundle_name: String,
    pub bundle: Option<ConfigBundle>,
    pub cluster: ClusterFacts,
    /// The rendered objects, or the problem that blocks the rollout.
    pub objects: Result<Vec<DesiredObject>, RenderError>,
    pub config_secret: String,
    /// The effective components of the render (empty when it was blocked).
    pub components: Vec<crate::api::ComponentStatus>,
    /// Managed-database major-version upgrades: what each needs now.
    pub postgres_upgrades: Vec<super::postgres_upgrade::DatabaseDecision>,
}

/// Observe and render.
pub async fn plan(registry: &QuayRegistry, ctx: &Context, mode: Mode) -> Result<Plan, Error> {
    let bundle_name = bundle_name(registry);
    let mut plan = Plan {
        bundle_name: bundle_name.clone(),
        bundle: None,
        cluster: ClusterFacts::default(),
        objects: Ok(Vec::new()),
        config_secret: String::new(),
        components: Vec::new(),
        postgres_upgrades: Vec::new(),
    };
    let bundle = match read_bundle(registry, ctx, &bundle_name, mode).await? {
        Ok(bundle) => bundle,
        Err(blocked) => {
            plan.objects = Err(blocked);
            return Ok(plan);
        }
    };
    // Generated in memory; stored only once the render shows the input is good, so bad input writes no Secret.
    let (keys, stored_keys) = load_managed_keys(registry, ctx).await?;
    let mut cluster = cluster_facts(registry, ctx, &bundle, mode).await?;
    plan.postgres_upgrades =
        super::postgres_upgrade::observe_and_decide(registry, ctx, &bundle, &cluster).await?;
    cluster.postgres_upgrades = plan
        .postgres_upgrades
        .iter()
        .filter_map(|d| d.render.clone())
        .collect();
    let input = RenderInput {
        registry,
        bundle: &bundle,
        managed_keys: &keys,
        cluster: &cluster,
        settings: &ctx.settings,
        now: SystemTime::now(),
    };
    match render(&input) {
        Err(e) => plan.objects = Err(e),
        Ok(mut rendered) => {
            if mode == Mode::Reconcile {
                store_managed_keys(registry, ctx, &keys, stored_keys.as_ref()).await?;
            }
            mark_migration_job(&mut rendered.objects, &ctx.settings.quay_version);
            plan.config_secret = rendered.config_secret_name;
            plan.components = rendered.components;
            plan.objects = Ok(rendered.objects);
        }
    }
    plan.bundle = Some(bundle);
    plan.cluster = cluster;
    Ok(plan)
}

pub async fn reconcile(registry: Arc<QuayRegistry>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciles.inc();
    ctx.caches_synced().await;
    let namespace = registry.namespace().unwrap_or_default();
    let name = registry.name_any();
    let api: Api<QuayRegistry> = Api::namespaced(ctx.client.clone(), &namespace);

    if registry.metadata.deletion_timestamp.is_some() {
        return cleanup(&registry, &ctx, &api).await;
    }
    // Observe, render.
    let plan = plan(&registry, &ctx, Mode::Reconcile).await?;
    // The finalizer guards what the operator creates; input that is refused creates nothing and gets none.
    if plan.objects.is_ok() {
        ensure_finalizer(&registry, &api).await?;
    }
    // Diff, apply.
    let mut retry_after = None;
    let rollout = match &plan.objects {
        Err(e) => Rollout::Blocked(e.clone()),
        Ok(objects) => match apply_all(&registry, &ctx, objects, &plan.components, &plan.cluster)
            .await
        {
            Ok(waiting) => {
                remove_old_config_secrets(
                    &registry,
                    &ctx,
                    &plan.config_secret,
                    &plan.bundle_name,
                    objects,
                )
                .await?;
                super::postgres_upgrade::clean_up(&registry, &ctx, &plan.postgres_upgrades).await?;
                retry_after = super::postgres_upgrade::recheck(&plan.postgres_upgrades);
                Rollout::Applied { waiting }
            }
            // The API refused an object: the admin sees which one and why; later objects (the workloads that
            // would use it) were not applied, and the apply is retried.
            Err(e) => {
                retry_after = Some(error_backoff(&e));
                Rollout::Blocked(apply_failure(&e))
            }
        },
    };

    // Report.
    let status = next_status(&registry, &ctx, &plan, &rollout);
    write_status(&registry, &ctx, &api, status).await?;

    if let Rollout::Blocked(e) = &rollout {
        ctx.metrics
            .rollouts_blocked
            .get_or_create(&super::metrics::ReasonLabels {
                reason: e.reason().to_string(),
            })
            .inc();
        warn!(registry = %name, namespace = %namespace, reason = %e.reason(), message = %e.message(), "rollout blocked");
    }
    if let Some(delay) = retry_after {
        return Ok(Action::requeue(delay));
    }
    if plan.bundle.is_none() {
        // A user-named bundle that does not exist yet carries no label the watches could see it by: look again.
        return Ok(Action::requeue(MISSING_BUNDLE_RECHECK));
    }
    // Everything the registry depends on is watched; nothing to poll.
    Ok(Action::await_change())
}

/// How often a registry whose config bundle Secret does not exist looks for it (upstream: 10 s).
const MISSING_BUNDLE_RECHECK: Duration = Duration::from_secs(10);

/// Upstream's `error creating/updating object <Kind> <name>: <err>`, with the API server's own message.
fn apply_failure(error: &Error) -> RenderError {
    let message = match error {
        Error::Api {
            kind, name, source, ..
        } => {
            let cause = match source {
                kube::Error::Api(status) => status.message.clone(),
                other => other.to_string(),
            };
            format!("error creating/updating object {kind} {name}: {cause}")
        }
        other => other.to_string(),
    };
    RenderError::new(
        crate::config::Reason::ComponentCreationFailed,
        "metadata.name",
        message,
    )
}

fn bundle_name(registry: &QuayRegistry) -> String {
    registry
        .spec
        .config_bundle_secret
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| {
            registry
                .status
                .as_ref()
                .and_then(|s| s.config_bundle_secret.clone())
        })
        .unwrap_or_else(|| format!("{}-config-bundle", registry.name_any()))
}

async fn ensure_finalizer(registry: &QuayRegistry, api: &Api<QuayRegistry>) -> Result<(), Error> {
    if registry.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(());
    }
    let mut finalizers = registry.finalizers().to_vec();
    finalizers.push(FINALIZER.to_owned());
    // The resourceVersion makes this a conditional write: a concurrent change retries instead of clobbering.
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": registry.resource_version()}});
    api.patch(
        &registry.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(api_err(
        "add finalizer to",
        "QuayRegistry",
        &registry.name_any(),
    ))?;
    Ok(())
}

/// Reads the config bundle; creates the operator's own one when the spec names none. `Ok(Err(..))` is an input
/// problem for status, `Err(..)` an API error.
async fn read_bundle(
    registry: &QuayRegistry,
    ctx: &Context,
    bundle_name: &str,
    mode: Mode,
) -> Result<Result<ConfigBundle, RenderError>, Error> {
    let namespace = registry.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let user_named = registry
        .spec
        .config_bundle_secret
        .as_deref()
        .is_some_and(|n| !n.is_empty());
    match secrets
        .get_opt(bundle_name)
        .await
        .map_err(api_err("get", "Secret", bundle_name))?
    {
        Some(secret) => {
            if mode == Mode::Reconcile {
                label_for_watch(&secrets, &secret, CONFIG_BUNDLE_LABEL).await?;
            }
            Ok(Ok(ConfigBundle::from_secret(&secret)))
        }
        None if user_named => Ok(Err(RenderError::new(
            crate::config::Reason::ConfigInvalid,
            "spec.configBundleSecret",
            format!("unable to get `configBundleSecret`: secrets \"{bundle_name}\" not found"),
        ))),
        None if mode == Mode::Preview => Ok(Ok(ConfigBundle::from_secret(&base_bundle_secret(
            registry,
            bundle_name,
        )))),
        None => {
            let secret = base_bundle_secret(registry, bundle_name);
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .map_err(api_err("create", "Secret", bundle_name))?;
            info!(registry = %registry.name_any(), bundle = bundle_name, "created config bundle");
            Ok(Ok(ConfigBundle::from_secret(&secret)))
        }
    }
}

/// The operator-created bundle: base defaults, owned by the registry, labelled so its edits are watched.
fn base_bundle_secret(registry: &QuayRegistry, name: &str) -> Secret {
    let mut config = crate::config::QuayConfig::default();
    for (k, v) in crate::config::field_groups::base_defaults(false) {
        config.set(k, v);
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: registry.namespace(),
            labels: Some(BTreeMap::from([
                (REGISTRY_LABEL.to_owned(), registry.name_any()),
                (CONFIG_BUNDLE_LABEL.to_owned(), "true".to_owned()),
            ])),
            owner_references: registry.owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            CONFIG_YAML.to_owned(),
            ByteString(config.to_yaml().into_bytes()),
        )])),
        ..Default::default()
    }
}

/// Puts `label: "true"` on a user's Secret (metadata only, once) so that a label-scoped watch sees it change.
async fn label_for_watch(secrets: &Api<Secret>, secret: &Secret, label: &str) -> Result<(), Error> {
    if secret.labels().get(label).map(String::as_str) == Some("true") {
        return Ok(());
    }
    let patch = json!({"metadata": {"labels": {label: "true"}}});
    let name = secret.name_any();
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api_err("label", "Secret", &name))?;
    Ok(())
}

/// `<reg>-quay-registry-managed-secret-keys` as stored, with any missing key generated in memory (a stored value
/// is never replaced). Also returns the stored Secret, if any, for [`store_managed_keys`].
async fn load_managed_keys(
    registry: &QuayRegistry,
    ctx: &Context,
) -> Result<(ManagedKeys, Option<Secret>), Error> {
    let namespace = registry.namespace().unwrap_or_default();
    let name = format!("{}-{MANAGED_KEYS_SUFFIX}", registry.name_any());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = match ctx.cached_typed::<Secret>(&namespace, &name) {
        Some(s) => Some(s),
        None => secrets
            .get_opt(&name)
            .await
            .map_err(api_err("get", "Secret", &name))?,
    };
    let mut keys = existing
        .as_ref()
        .map(ManagedKeys::from_secret)
        .unwrap_or_default();
    keys.complete(&registry.name_any());
    Ok((keys, existing))
}

/// Writes the keys that the stored Secret lacks (all of them when there is none); a complete Secret costs nothing.
async fn store_managed_keys(
    registry: &QuayRegistry,
    ctx: &Context,
    keys: &ManagedKeys,
    existing: Option<&Secret>,
) -> Result<(), Error> {
    let namespace = registry.namespace().unwrap_or_default();
    let name = format!("{}-{MANAGED_KEYS_SUFFIX}", registry.name_any());
    if existing.is_some_and(|current| ManagedKeys::from_secret(current) == *keys) {
        return Ok(());
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let desired = keys.to_secret(&registry.name_any(), &namespace, registry.owner_ref(&()));
    match existing {
        None => {
            secrets
                .create(&PostParams::default(), &desired)
                .await
                .map_err(api_err("create", "Secret", &name))?;
        }
        Some(current) => {
            // Add only the keys that were missing; the resourceVersion guards against a concurrent writer.
            let have = secret_files(current);
            let missing: BTreeMap<String, ByteString> = desired
                .data
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, v)| have.get(k).is_none_or(|old| old.is_empty()) && !v.0.is_empty())
                .collect();
            let patch = json!({"metadata": {"resourceVersion": current.resource_version()}, "data": missing});
            secrets
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_err("patch", "Secret", &name))?;
        }
    }
    Ok(())
}

/// What the cluster offers this registry right now.
async fn cluster_facts(
    registry: &QuayRegistry,
    ctx: &Context,
    bundle: &ConfigBundle,
    mode: Mode,
) -> Result<ClusterFacts, Error> {
    let namespace = registry.namespace().unwrap_or_default();
    let name = registry.name_any();
    let caps = &ctx.capabilities;
    let mut facts = ClusterFacts {
        routes: caps.routes,
        cluster_hostname: caps.cluster_hostname.clone(),
        object_bucket_claims: caps.object_bucket_claims,
        monitoring: caps.monitoring && ctx.all_namespaces,
        quay_version: None,
        gateway_api: caps.gateway_api,
        cert_manager: caps.cert_manager,
        ..Default::default()
    };
    let components = effective_components(registry, bundle, &facts);
    let managed = |kind| components.iter().any(|c| c.kind == kind && c.managed);

    // The bucket, once the provisioner created its Secret and ConfigMap.
    if managed(ComponentKind::ObjectStorage) && caps.object_bucket_claims {
        let datastore = format!("{name}-quay-datastore");
        let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &namespace);
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        let cm = cms
            .get_opt(&datastore)
            .await
            .map_err(api_err("get", "ConfigMap", &datastore))?;
        let secret = secrets
            .get_opt(&datastore)
            .await
            .map_err(api_err("get", "Secret", &datastore))?;
        if let (Some(cm), Some(secret)) = (cm, secret) {
            let data = cm.data.unwrap_or_default();
            let files = secret_files(&secret);
            let text = |k: &str| {
                files
                    .get(k)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            facts.object_bucket = Some(ObjectBucket {
                host: data.get("BUCKET_HOST").cloned().unwrap_or_default(),
                port: data.get("BUCKET_PORT").and_then(|p| p.parse().ok()),
                bucket_name: data.get("BUCKET_NAME").cloned().unwrap_or_default(),
                access_key: text("AWS_ACCESS_KEY_ID"),
                secret_key: text("AWS_SECRET_ACCESS_KEY"),
            });
        }
    }

    // The external TLS Secret named by the tls component (an empty name is reported by validation).
    if let Some(secret_ref) = components
        .iter()
        .find(|c| c.kind == ComponentKind::Tls)
        .and_then(|c| c.secret_ref.clone())
        .filter(|r| !r.name.is_empty())
    {
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        if let Some(secret) = secrets.get_opt(&secret_ref.name).await.map_err(api_err(
            "get",
            "Secret",
            &secret_ref.name,
        ))? {
            if mode == Mode::Reconcile {
                label_for_watch(&secrets, &secret, TLS_SECRET_LABEL).await?;
            }
            let files = secret_files(&secret);
            let text = |k: &str| {
                files
                    .get(k)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .filter(|s| !s.is_empty())
            };
            facts.external_tls = Some(ExternalTls {
                name: secret_ref.name.clone(),
                type_: secret.type_.clone().unwrap_or_default(),
                cert: text("tls.crt"),
                key: text("tls.key"),
            });
        }
    }

    // OpenShift CA bundles injected into our ConfigMaps.
    let ca = |suffix: &str, key: &str| {
        ctx.cached_typed::<ConfigMap>(&namespace, &format!("{name}-{suffix}"))
            .and_then(|cm| cm.data)
            .and_then(|d| d.get(key).cloned())
            .filter(|v| !v.is_empty())
    };
    facts.cluster_service_ca = ca("cluster-service-ca", "service-ca.crt");
    facts.cluster_trusted_ca = ca("cluster-trusted-ca", "ca-bundle.crt");

    // Live PVC sizes, so an override never asks a volume to shrink.
    for pvc in ctx.cached_for_registry::<PersistentVolumeClaim>(&namespace, &name) {
        let size = pvc
            .status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage").cloned())
            .or_else(|| {
                pvc.spec
                    .as_ref()
                    .and_then(|s| s.resources.as_ref())
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get("storage").cloned())
            });
        if let Some(size) = size {
            facts.pvc_sizes.insert(pvc.name_any(), size);
        }
    }

    // The OpenShift TLS security profile, when tls is unmanaged.
    if caps.apiserver_config && !managed(ComponentKind::Tls) {
        let apiservers: Api<APIServer> = Api::all(ctx.client.clone());
        if let Some(apiserver) =
            apiservers
                .get_opt("cluster")
                .await
                .map_err(api_err("get", "APIServer", "cluster"))?
        {
            // No profile set means OpenShift's default, Intermediate.
            facts.tls_security_profile =
                Some(apiserver.spec.tls_security_profile.unwrap_or_default());
        }
    }
    Ok(facts)
}

/// Names the target version on the migration Job, so its success can be attributed to that version.
fn mark_migration_job(objects: &mut [DesiredObject], version: &str) {
    for object in objects {
        if let DesiredObject::Job(job) = object
            && job.labels().get("quay-component").map(String::as_str) == Some("quay-app-upgrade")
        {
            job.annotations_mut()
                .insert(MIGRATION_VERSION_ANNOTATION.to_owned(), version.to_owned());
        }
    }
}

/// Objects that back the others: applied even while workloads wait.
fn is_backing_workload(object: &DesiredObject, registry: &str) -> bool {
    [
        format!("{registry}-quay-database"),
        format!("{registry}-clair-postgres"),
        format!("{registry}-quay-redis"),
    ]
    .iter()
    .any(|n| n == object.name())
        || super::postgres_upgrade::is_upgrade_workload(object.name(), registry)
}

/// Applies every object whose desired state does not already hold. Workloads that need the databases or the
/// bucket wait for them. Returns what is still awaited.
async fn apply_all(
    registry: &QuayRegistry,
    ctx: &Context,
    objects: &[DesiredObject],
    components: &[crate::api::ComponentStatus],
    cluster: &ClusterFacts,
) -> Result<Vec<&'static str>, Error> {
    let namespace = registry.namespace().unwrap_or_default();
    let name = registry.name_any();
    // The render's own component list (its tls default depends on the bundle, which this must not re-guess).
    let managed = |kind| components.iter().any(|c| c.kind == kind && c.managed);
    let available = |deployment: &str| {
        ctx.cached_typed::<Deployment>(&namespace, &format!("{name}-{deployment}"))
            .and_then(|d| d.status)
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
            > 0
    };
    let mut waiting = Vec::new();
    if managed(ComponentKind::Postgres) && !available("quay-database") {
        waiting.push("Postgres");
    }
    if managed(ComponentKind::ClairPostgres)
        && managed(ComponentKind::Clair)
        && !available("clair-postgres")
    {
        waiting.push("ClairPostgres");
    }
    if managed(ComponentKind::ObjectStorage) && cluster.object_bucket.is_none() {
        waiting.push("ObjectStorage");
    }
    // A cert-manager certificate not issued yet: Quay waits for it (render/certificate.rs).
    if crate::render::certificate::pending(registry, cluster).is_some() {
        waiting.push("Certificate");
    }

    // Quay's config rendered before the bucket is bound has empty storage settings: hold it back with the
    // workloads instead of applying it and replacing it moments later.
    let config_secret_prefix = format!("{name}-quay-config-secret-");
    for object in objects {
        if object.is_workload() && !waiting.is_empty() && !is_backing_workload(object, &name) {
            continue;
        }
        if waiting.contains(&"ObjectStorage") && object.name().starts_with(&config_secret_prefix) {
            continue;
        }
        if waiting.contains(&"Certificate")
            && crate::render::certificate::held_while_pending(object, &name)
        {
            continue;
        }
        if migration_succeeded(registry, ctx, object) {
            continue;
        }
        apply_one(ctx, object).await?;
    }
    Ok(waiting)
}

async fn apply_one(ctx: &Context, object: &DesiredObject) -> Result<(), Error> {
    let (api_version, kind) = object.api_version_kind();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), api_version.clone()),
    };
    let Some(owned) = ctx
        .kinds
        .iter()
        .find(|k| k.resource.group == group && k.resource.kind == kind)
    else {
        // The cluster does not serve this kind (e.g. no Route API): nothing to apply.
        return Ok(());
    };
    let ar = ApiResource {
        version,
        api_version: api_version.clone(),
        ..owned.resource.clone()
    };
    let namespace = object.namespace().unwrap_or_default().to_owned();
    let name = object.name().to_owned();
    let mut desired = object.to_json();
    stamp_hash(&mut desired);
    let live = ctx.cached(&ar, &namespace, &name);
    let labels = super::metrics::KindLabels { kind: kind.clone() };
    let needed = ctx
        .needs_apply(&ar, &desired, live.as_deref())
        .await
        .map_err(api_err("get", &kind, &name))?;
    if !needed {
        ctx.metrics.applies_skipped.get_or_create(&labels).inc();
        return Ok(());
    }
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &namespace, &ar);

    if let (DesiredObject::Job(_), Some(live)) = (object, &live) {
        // A Job's template is immutable: replace a finished or failed one, never a running one.
        let active = live
            .data
            .pointer("/status/active")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if active > 0 || live.metadata.deletion_timestamp.is_some() {
            return Ok(());
        }
        let dp = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Foreground),
            ..Default::default()
        };
        match api.delete(&name, &dp).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(api_err("delete", &kind, &name)(e)),
        }
        // Its deletion event brings us back to create the new one.
        return Ok(());
    }

    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&desired))
        .await
        .map_err(api_err("apply", &kind, &name))?;
    ctx.metrics.applies.get_or_create(&labels).inc();
    Ok(())
}

/// Deletes rendered config Secrets of earlier renders, once quay-app has rolled out with the current one.
async fn remove_old_config_secrets(
    registry: &QuayRegistry,
    ctx: &Context,
    current: &str,
    bundle_name: &str,
    desired: &[DesiredObject],
) -> Result<(), Error> {
    let namespace = registry.namespace().unwrap_or_default();
    let name = registry.name_any();
    let prefix = format!("{name}-quay-config-secret-");
    // Earlier renders' TLS Secrets (each rotation makes one, holding the old private key) go as well, once no
    // workload's pod template mounts them any more.
    let tls_prefix = format!("{name}-quay-config-tls-");
    let templates: Vec<String> = ctx
        .cached_for_registry::<Deployment>(&namespace, &name)
        .into_iter()
        .filter_map(|d| {
            d.spec
                .map(|s| serde_json::to_string(&s.template).unwrap_or_default())
        })
        .chain(
            ctx.cached_for_registry::<Job>(&namespace, &name)
                .into_iter()
                .filter_map(|j| {
                    j.spec
                        .map(|s| serde_json::to_string(&s.template).unwrap_or_default())
                }),
        )
        .collect();
    let old_tls = |n: &str| {
        n.starts_with(&tls_prefix)
            && !desired.iter().any(|o| o.name() == n)
            && !templates.iter().any(|t| t.contains(n))
    };
    let old: Vec<String> = ctx
        .cached_for_registry::<Secret>(&namespace, &name)
        .into_iter()
        .map(|s| s.name_any())
        .filter(|n| (n.starts_with(&prefix) && n != current && n != bundle_name) || old_tls(n))
        .collect();
    if old.is_empty() {
        return Ok(());
    }
    let rolled_out = match ctx.cached_typed::<Deployment>(&namespace, &format!("{name}-quay-app")) {
        None => false,
        Some(d) => {
            let generation = d.metadata.generation.unwrap_or(0);
            let spec_replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = d.status.unwrap_or_default();
            let uses_current = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .map(|p| {
                    serde_json::to_string(p)
                        .unwrap_or_default()
                        .contains(current)
                })
                .unwrap_or(false);
            uses_current
                && status.observed_generation.unwrap_or(0) >= generation
                && status.updated_replicas.unwrap_or(0) == spec_replicas
                && status.available_replicas.unwrap_or(0) == spec_replicas
        }
    };
    if !rolled_out {
        return Ok(());
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    for secret in old {
        match secrets.delete(&secret, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(api_err("delete", "Secret", &secret)(e)),
        }
    }
    Ok(())
}

fn observed(
    registry: &QuayRegistry,
    ctx: &Context,
    bundle: Option<&ConfigBundle>,
    cluster: &ClusterFacts,
) -> Observed {
    let namespace = registry.namespace().unwrap_or_default();
    let name = registry.name_any();
    let tls_secret_ref = registry
        .declared_component(ComponentKind::Tls)
        .filter(|c| !c.managed)
        .and_then(|c| c.secret_ref.clone());
    let tls = match (bundle, tls_secret_ref) {
        (None, _)
            if registry
                .spec
                .config_bundle_secret
                .as_deref()
                .is_none_or(str::is_empty) =>
        {
            TlsObservation::BundleNotPopulated
        }
        (None, _) => TlsObservation::BundleMissing,
        (Some(_), Some(secret_ref)) => {
            TlsObservation::External(external_tls_state(cluster, &secret_ref.name).map_err(|e| {
                let live = ctx.cached_typed::<crate::api::Certificate>(
                    &namespace,
                    &format!("{name}-{}", crate::render::certificate::CERTIFICATE_SUFFIX),
                );
                crate::render::certificate::pending_message(registry, cluster, live.as_ref())
                    .unwrap_or(e)
            }))
        }
        (Some(b), None) => TlsObservation::Bundle {
            has_cert: b.contains(SSL_CERT),
            has_key: b.contains(SSL_KEY),
        },
    };
    Observed {
        deployments: by_name(ctx.cached_for_registry::<Deployment>(&namespace, &name)),
        jobs: by_name(ctx.cached_for_registry::<Job>(&namespace, &name)),
        pvcs: by_name(ctx.cached_for_registry::<PersistentVolumeClaim>(&namespace, &name)),
        provisioning_failures: ctx.provisioning_failures(&namespace),
        hpas: by_name(ctx.cached_for_registry::<HorizontalPodAutoscaler>(&namespace, &name)),
        routes: ctx.cached_for_registry::<Route>(&namespace, &name),
        object_bucket_claims: ctx.cached_for_registry::<ObjectBucketClaim>(&namespace, &name),
        service_monitors: ctx
            .cached_for_registry::<ServiceMonitor>(&namespace, &name)
            .into_iter()
            .map(|s| (s.name_any(), s.metadata))
            .collect(),
        prometheus_rules: ctx
            .cached_for_registry::<PrometheusRule>(&namespace, &name)
            .into_iter()
            .map(|s| (s.name_any(), s.metadata))
            .collect(),
        tls,
        plain_exposure: !ctx.capabilities.routes,
        ingresses: ctx.cached_for_registry(&namespace, &name),
        http_routes: ctx.cached_for_registry(&namespace, &name),
    }
}

/// The external TLS Secret as status reports it: valid, missing, or what is wrong with it.
fn external_tls_state(cluster: &ClusterFacts, name: &str) -> Result<(), String> {
    let Some(secret) = cluster.external_tls.as_ref().filter(|e| e.name == name) else {
        return Err("External TLS secret not found".to_owned());
    };
    if secret.type_ != "kubernetes.io/tls" {
        return Err(format!(
            "TLS secret {name:?} must be type \"kubernetes.io/tls\", got {:?}",
            secret.type_
        ));
    }
    for (field, value) in [("tls.crt", &secret.cert), ("tls.key", &secret.key)] {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return Err(format!("TLS secret {name:?} missing or empty {field}"));
        }
    }
    Ok(())
}

fn by_name<K: ResourceExt>(items: Vec<K>) -> BTreeMap<String, K> {
    items.into_iter().map(|o| (o.name_any(), o)).collect()
}

fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
) -> ConditionState {
    ConditionState {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.into(),
    }
}

/// The status this reconcile observed: conditions, version, endpoint, effective components.
fn next_status(
    registry: &QuayRegistry,
    ctx: &Context,
    plan: &Plan,
    rollout: &Rollout,
) -> QuayRegistryStatus {
    let bundle = plan.bundle.as_ref();
    let bundle_name = plan.bundle_name.as_str();
    let namespace = registry.namespace().unwrap_or_default();
    let name = registry.name_any();
    let old = ctx.current_status(registry);
    let target = ctx.settings.quay_version.as_str();
    let empty = ConfigBundle::default();
    let facts = ClusterFacts {
        routes: ctx.capabilities.routes,
        object_bucket_claims: ctx.capabilities.object_bucket_claims,
        monitoring: ctx.capabilities.monitoring && ctx.all_namespaces,
        ..Default::default()
    };
    let components = effective_components(registry, bundle.unwrap_or(&empty), &facts);
    let mut current_version = old.current_version.clone();
    let mut computed = Vec::new();

    match rollout {
        Rollout::Blocked(e) => {
            computed.push(condition(
                "RolloutBlocked",
                true,
                e.reason().as_str(),
                e.message(),
            ));
        }
        Rollout::Applied { waiting, .. } => {
            computed.push(condition(
                "RolloutBlocked",
                false,
                "ComponentsCreationSuccess",
                "All objects created/updated successfully",
            ));
            let migration_due = current_version.as_deref() != Some(target);
            let postgres_upgrade = super::postgres_upgrade::report(&plan.postgres_upgrades);
            let created = if let Some((reason, message)) = postgres_upgrade {
                condition("ComponentsCreated", false, reason, message)
            } else if !waiting.is_empty() {
                condition(
                    "ComponentsCreated",
                    false,
                    "ComponentNotReady",
                    format!(
                        "Awaiting for component {} to become available",
                        waiting.join(",")
                    ),
                )
            } else if migration_due {
                let job_name = format!("{name}-quay-app-upgrade");
                match ctx.cached_typed::<Job>(&namespace, &job_name) {
                    Some(job)
                        if job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) > 0
                            && job_runs(&job, target, registry) =>
                    {
                        current_version = Some(target.to_owned());
                        condition(
                            "ComponentsCreated",
                            true,
                            "ComponentsCreationSuccess",
                            "All registry components created",
                        )
                    }
                    Some(job) if job_runs(&job, target, registry) && job_failed(&job).is_some() => {
                        condition(
                            "ComponentsCreated",
                            false,
                            "MigrationsFailed",
                            job_failed(&job).unwrap_or_default(),
                        )
                    }
                    _ => condition(
                        "ComponentsCreated",
                        false,
                        "MigrationsInProgress",
                        "running database migrations",
                    ),
                }
            } else {
                condition(
                    "ComponentsCreated",
                    true,
                    "ComponentsCreationSuccess",
                    "All registry components created",
                )
            };
            computed.push(created);
        }
    }

    let mut with_version = registry.clone();
    with_version
        .status
        .get_or_insert_with(Default::default)
        .current_version = current_version.clone();
    let observed = observed(registry, ctx, bundle, &plan.cluster);
    let input = StatusInput {
        registry: &with_version,
        components: &components,
        target_version: target,
    };
    computed.extend(component_conditions(&input, &observed));

    let now = now_seconds();
    let stored = old.conditions.clone().unwrap_or_default();
    let conditions = merge_conditions(&stored, &computed, &now);
    let changed_conditions = conditions != stored;

    let registry_endpoint = bundle
        .and_then(|b| b.quay_config().ok())
        .and_then(|c| {
            c.get_str("SERVER_HOSTNAME")
                .filter(|h| !h.is_empty())
                .map(str::to_owned)
        })
        .or_else(|| {
            let managed_route = components
                .iter()
                .any(|c| c.kind == ComponentKind::Route && c.managed);
            ctx.capabilities
                .cluster_hostname
                .as_ref()
                .filter(|_| managed_route)
                .map(|domain| format!("{name}-quay-{namespace}.{domain}"))
        })
        .map(|h| format!("https://{h}"))
        .or(old.registry_endpoint.clone());

    QuayRegistryStatus {
        current_version,
        registry_endpoint,
        last_updated: if changed_conditions {
            Some(now.0.to_string())
        } else {
            old.last_updated.clone()
        },
        conditions: Some(conditions),
        observed_generation: registry.metadata.generation,
        components: Some(
            components
                .iter()
                .map(|c| crate::api::ComponentStatus {
                    kind: c.kind,
                    managed: c.managed,
                    defaulted: c.spec_index.is_none(),
                })
                .collect(),
        ),
        config_bundle_secret: Some(bundle_name.to_owned()),
        config_editor_endpoint: old.config_editor_endpoint,
        config_editor_credentials_secret: old.config_editor_credentials_secret,
    }
}

/// Annotation on the migration Job naming the Quay version it migrates to.
pub const MIGRATION_VERSION_ANNOTATION: &str = "quay-operator.rs/quay-version";

/// Now, at the API server's resolution (seconds), so a status read back equals the status written.
fn now_seconds() -> Time {
    Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// Whether a migration Job is this registry's one for `version`. A Job left by an earlier registry of the same
/// name (deleted, its Job not yet collected) proves nothing about this one.
fn job_runs(job: &Job, version: &str, registry: &QuayRegistry) -> bool {
    let owned = registry
        .uid()
        .is_some_and(|uid| job.owner_references().iter().any(|o| o.uid == uid));
    owned
        && job
            .annotations()
            .get(MIGRATION_VERSION_ANNOTATION)
            .map(String::as_str)
            == Some(version)
}

/// Whether `object` is the migration Job and this registry's Job for the same version already succeeded. The
/// migration is then done, though the render changed since the Job started (the admin edited quay's overrides
/// while it ran): replacing it would delete the record of the migration, or run it a second time.
fn migration_succeeded(registry: &QuayRegistry, ctx: &Context, object: &DesiredObject) -> bool {
    let DesiredObject::Job(desired) = object else {
        return false;
    };
    let Some(version) = desired.annotations().get(MIGRATION_VERSION_ANNOTATION) else {
        return false;
    };
    let namespace = registry.namespace().unwrap_or_default();
    ctx.cached_typed::<Job>(&namespace, object.name())
        .is_some_and(|live| {
            job_runs(&live, version, registry)
                && live.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0) > 0
        })
}

fn job_failed(job: &Job) -> Option<String> {
    let status = job.status.as_ref()?;
    let failed = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    failed.map(|c| {
        c.message
            .clone()
            .unwrap_or_else(|| "failed to run migrations".to_owned())
    })
}

/// Writes status only when it differs from what is stored; emits an Event for each condition that changed.
async fn write_status(
    registry: &QuayRegistry,
    ctx: &Context,
    api: &Api<QuayRegistry>,
    status: QuayRegistryStatus,
) -> Result<(), Error> {
    let old = ctx.current_status(registry);
    if old == status {
        return Ok(());
    }
    let name = registry.name_any();
    // Events first: once a watcher sees the new status, everything this reconcile writes is written.
    let before: BTreeMap<&str, &Condition> = old
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.as_str(), c))
        .collect();
    for c in status.conditions.iter().flatten() {
        let previous = before.get(c.type_.as_str());
        let changed = previous.is_none_or(|b| b.status != c.status || b.reason != c.reason);
        if changed && worth_an_event(c, previous.copied(), &old) {
            publish_event(registry, ctx, c).await;
        }
    }
    let patch = json!({"status": status});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api_err("update status of", "QuayRegistry", &name))?;
    ctx.metrics.status_writes.inc();
    ctx.record_status_write(registry, old, status);
    Ok(())
}

/// Which condition changes a person wants to see: a blocked or unblocked rollout, migrations starting, failing
/// and succeeding, the registry becoming (un)available, and, once the registry was installed (its first migration
/// done), each component degrading or recovering. The components coming up one by one during the first install
/// are not announced one by one (that was 20 Events per new registry).
fn worth_an_event(c: &Condition, previous: Option<&Condition>, old: &QuayRegistryStatus) -> bool {
    match c.type_.as_str() {
        "RolloutBlocked" => c.status == "True" || previous.is_some_and(|p| p.status == "True"),
        "ComponentsCreated" => {
            matches!(
                c.reason.as_deref(),
                Some(
                    "MigrationsInProgress"
                        | "MigrationsFailed"
                        | "MigrationsJobMissing"
                        | "PostgresUpgradeInProgress"
                        | "PostgresUpgradeFailed"
                )
            ) || (c.status == "True" && previous.is_some())
        }
        "Available" => c.status == "True" || previous.is_some(),
        _ => old.current_version.is_some(),
    }
}

/// A `core/v1` Event on the registry for a condition change. Best effort: an Event that cannot be written must
/// not fail the reconcile.
async fn publish_event(registry: &QuayRegistry, ctx: &Context, c: &Condition) {
    let namespace = registry.namespace().unwrap_or_default();
    let warning = (c.type_ == "RolloutBlocked" && c.status == "True")
        || (c.type_ != "RolloutBlocked"
            && c.status == "False"
            && !matches!(
                c.reason.as_deref(),
                Some("MigrationsInProgress" | "PostgresUpgradeInProgress")
            ));
    let now = Time(Timestamp::now());
    let event = CoreEvent {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", registry.name_any())),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(QuayRegistry::api_version(&()).into_owned()),
            kind: Some("QuayRegistry".to_owned()),
            name: registry.metadata.name.clone(),
            namespace: Some(namespace.clone()),
            uid: registry.metadata.uid.clone(),
            resource_version: registry.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: c.reason.clone(),
        message: Some(format!(
            "{}={}: {}",
            c.type_,
            c.status,
            c.message.clone().unwrap_or_default()
        )),
        type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("quay-operator".to_owned()),
            host: None,
        }),
        reporting_component: Some("quay-operator".to_owned()),
        ..Default::default()
    };
    let events: Api<CoreEvent> = Api::namespaced(ctx.client.clone(), &namespace);
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        warn!(error = %e, "could not record event");
    }
}

/// Deletion: keep the data (database PVCs and managed keys, released from the registry so garbage collection
/// spares them) unless the registry opted in to deleting it; then let the finalizer go.
async fn cleanup(
    registry: &QuayRegistry,
    ctx: &Context,
    api: &Api<QuayRegistry>,
) -> Result<Action, Error> {
    if !registry.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let namespace = registry.namespace().unwrap_or_default();
    let name = registry.name_any();
    let delete_data = registry
        .annotations()
        .get(DELETE_DATA_ANNOTATION)
        .map(String::as_str)
        == Some("true");
    if !delete_data {
        let uid = registry.uid().unwrap_or_default();
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
        for pvc in ctx.cached_for_registry::<PersistentVolumeClaim>(&namespace, &name) {
            release(&pvcs, &pvc.metadata, &uid, &name).await?;
        }
        let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
        let keys = format!("{name}-{MANAGED_KEYS_SUFFIX}");
        if let Some(secret) = secrets
            .get_opt(&keys)
            .await
            .map_err(api_err("get", "Secret", &keys))?
        {
            release(&secrets, &secret.metadata, &uid, &name).await?;
        }
    }
    let finalizers: Vec<String> = registry
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": registry.resource_version()}});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(api_err("remove finalizer from", "QuayRegistry", &name)(e)),
    }
    info!(registry = %name, namespace = %namespace, kept_data = !delete_data, "registry deleted");
    Ok(Action::await_change())
}

/// Removes the registry's ownerReference from an object and labels it as retained (a JSON patch that tests the
/// exact list it replaces, so a concurrent change is not lost).
async fn release<K>(api: &Api<K>, meta: &ObjectMeta, uid: &str, registry: &str) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let owners = meta.owner_references.clone().unwrap_or_default();
    let kept: Vec<_> = owners.iter().filter(|o| o.uid != uid).cloned().collect();
    let name = meta.name.clone().unwrap_or_default();
    let patch = json!({
        "metadata": {
            "ownerReferences": kept,
            "labels": {RETAINED_FROM_LABEL: registry},
            "resourceVersion": meta.resource_version,
        }
    });
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(api_err("release", "object", &name)(e)),
    }
}

/// How long to wait before retrying after an API error.
pub fn error_backoff(_error: &Error) -> Duration {
    Duration::from_secs(5)
}
