//! State shared by every reconcile: the client, the operator's settings, the cluster's capabilities and the
//! watch caches of the objects the operator owns.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::kinds::{Capability, OwnedKind, key};
use super::metrics::Metrics;
use crate::render::OperatorSettings;

/// What the cluster offers, discovered at start-up.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub routes: bool,
    pub object_bucket_claims: bool,
    pub monitoring: bool,
    /// The OpenShift APIServer config API (TLS security profile).
    pub apiserver_config: bool,
    /// The router's ingress domain, discovered with a probe Route.
    pub cluster_hostname: Option<String>,
    /// Ingress is served and there is no Route API: a managed route is exposed with an Ingress.
    pub ingresses: bool,
    /// Gateway API HTTPRoute is served and there is no Route API.
    pub gateway_api: bool,
    /// cert-manager's Certificate API is served.
    pub cert_manager: bool,
}

impl Capabilities {
    pub fn has(&self, capability: Capability) -> bool {
        match capability {
            Capability::Routes => self.routes,
            Capability::ObjectBucketClaims => self.object_bucket_claims,
            Capability::Monitoring => self.monitoring,
            Capability::Ingresses => self.ingresses,
            Capability::GatewayApi => self.gateway_api,
            Capability::CertManager => self.cert_manager,
        }
    }
}

/// Shared by all reconciles of one scope (all namespaces, or one namespace).
pub struct Context {
    pub client: Client,
    pub settings: OperatorSettings,
    pub capabilities: Capabilities,
    /// Whether the operator watches every namespace (monitoring needs it, as upstream).
    pub all_namespaces: bool,
    /// Kinds the cluster serves, with their watch caches.
    pub kinds: Vec<OwnedKind>,
    pub stores: super::cache::Caches,
    /// `ProvisioningFailed` Events (the only Events the operator reads: why a database volume stays Pending).
    pub provisioning_failures: Option<Store<Event>>,
    /// Set once [`Context::caches_synced`] has waited (caches filled, or the wait timed out).
    pub caches_waited: std::sync::atomic::AtomicBool,
    pub metrics: Arc<Metrics>,
    /// Status writes of this process per registry, oldest first: the registry a reconcile receives can predate
    /// our own writes, and must not make us write (and announce) the same change twice.
    pub written_status: std::sync::Mutex<HashMap<(String, String), Vec<WrittenStatus>>>,
    /// Objects others wrote whose full form was read and found to hold every value we set: uid -> the
    /// [`CacheMarkers::content`] checked, so the same content is not read again.
    pub verified_content: std::sync::Mutex<HashMap<String, String>>,
}

/// A status write: what was stored before it (as its fingerprint: only compared), and what it stored.
#[derive(Debug, Clone)]
pub struct WrittenStatus {
    pub before: Option<StatusFingerprint>,
    pub after: crate::api::QuayRegistryStatus,
    pub after_fingerprint: StatusFingerprint,
}

/// SHA-256 of a status' JSON, truncated: equal fingerprints mean equal statuses. A parsed status with a
/// condition per component takes a few KiB; the history keeps the statuses written, not those written over.
pub type StatusFingerprint = [u8; 16];

pub fn status_fingerprint(status: &crate::api::QuayRegistryStatus) -> StatusFingerprint {
    use sha2::Digest;
    let json = serde_json::to_vec(status).expect("a status serializes");
    let digest = sha2::Sha256::digest(&json);
    let mut fingerprint = [0; 16];
    fingerprint.copy_from_slice(&digest[..16]);
    fingerprint
}

/// How many of a registry's own status writes are remembered.
const WRITTEN_STATUS_HISTORY: usize = 8;

/// Namespace and uid: a registry deleted and re-created under the same name is another registry, whose status
/// must not be carried forward through the writes made for the deleted one.
fn registry_key(registry: &crate::api::QuayRegistry) -> (String, String) {
    (
        registry.metadata.namespace.clone().unwrap_or_default(),
        registry.metadata.uid.clone().unwrap_or_default(),
    )
}

/// `observed` carried forward through the writes in `history` made on top of exactly it; forgets the writes up
/// to the last one whose result `observed` is.
fn carry_forward(
    history: &mut Vec<WrittenStatus>,
    observed: Option<&crate::api::QuayRegistryStatus>,
) -> crate::api::QuayRegistryStatus {
    let observed_fingerprint = observed.map(status_fingerprint);
    if let Some(seen) = history
        .iter()
        .rposition(|w| Some(w.after_fingerprint) == observed_fingerprint)
    {
        history.drain(..=seen);
    }
    let mut current = observed;
    let mut current_fingerprint = observed_fingerprint;
    for w in history.iter() {
        if w.before == current_fingerprint {
            current = Some(&w.after);
            current_fingerprint = Some(w.after_fingerprint);
        }
    }
    current.cloned().unwrap_or_default()
}

impl Context {
    /// The registry's current status: what it carries, carried forward through the writes this process made on
    /// top of exactly that status (the watch may not have delivered them yet).
    ///
    /// Writes up to the last one whose result the registry already carries are forgotten: the watch delivers
    /// a registry's versions in order, so a later reconcile never receives a status older than this one.
    pub fn current_status(
        &self,
        registry: &crate::api::QuayRegistry,
    ) -> crate::api::QuayRegistryStatus {
        let mut written = self.written_status.lock().expect("status cache lock");
        let key = registry_key(registry);
        let Some(history) = written.get_mut(&key) else {
            return registry.status.clone().unwrap_or_default();
        };
        let current = carry_forward(history, registry.status.as_ref());
        if history.is_empty() {
            written.remove(&key);
        }
        current
    }

    /// Remembers a status write made on top of `before`.
    pub fn record_status_write(
        &self,
        registry: &crate::api::QuayRegistry,
        before: crate::api::QuayRegistryStatus,
        after: crate::api::QuayRegistryStatus,
    ) {
        let mut written = self.written_status.lock().expect("status cache lock");
        let history = written.entry(registry_key(registry)).or_default();
        // An empty stored status and a missing one are the same to a reader.
        let before = if before == Default::default() && registry.status.is_none() {
            None
        } else {
            Some(status_fingerprint(&before))
        };
        let after_fingerprint = status_fingerprint(&after);
        history.push(WrittenStatus {
            before,
            after,
            after_fingerprint,
        });
        if history.len() > WRITTEN_STATUS_HISTORY {
            history.remove(0);
        }
    }
}

impl Context {
    /// Whether `desired` (stamped with its hash) must be applied over `live`, the cached object of `ar`. The
    /// cache holds no spec: when the hashes match and nobody else wrote the object since our apply, every value
    /// we set is in place; when someone did, the full object is read (once per content) and compared.
    pub async fn needs_apply(
        &self,
        ar: &ApiResource,
        desired: &serde_json::Value,
        live: Option<&DynamicObject>,
    ) -> Result<bool, kube::Error> {
        let Some(live) = live else { return Ok(true) };
        let Some(markers) = cache_markers(live) else {
            // A whole object (the preview command fills its caches with those).
            let whole = serde_json::to_value(live).unwrap_or_default();
            return Ok(super::diff::needs_apply(desired, Some(&whole)));
        };
        if !super::diff::same_applied_hash(desired, live.metadata.annotations.as_ref()) {
            return Ok(true);
        }
        if !markers.written_by_others {
            return Ok(false);
        }
        let uid = live.metadata.uid.clone().unwrap_or_default();
        let verified = |content: &str| {
            self.verified_content
                .lock()
                .expect("verified content lock")
                .get(&uid)
                .is_some_and(|c| c == content)
        };
        if verified(&markers.content) {
            return Ok(false);
        }
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            live.metadata.namespace.as_deref().unwrap_or_default(),
            ar,
        );
        let Some(whole) = api.get_opt(&live.name_any()).await? else {
            return Ok(true);
        };
        let needed = super::diff::needs_apply(
            desired,
            Some(&serde_json::to_value(&whole).unwrap_or_default()),
        );
        if !needed {
            self.verified_content
                .lock()
                .expect("verified content lock")
                .insert(uid, content_hash(&whole));
        }
        Ok(needed)
    }

    /// The cached object of `ar` named `name` in `namespace`.
    pub fn cached(
        &self,
        ar: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        let store = self.stores.get(&key(ar))?;
        store.get(namespace, name).map(Arc::new)
    }

    /// A cached object as its typed form.
    pub fn cached_typed<K>(&self, namespace: &str, name: &str) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let ar = ApiResource::erase::<K>(&());
        let obj = self.cached(&ar, namespace, name)?;
        to_typed(&obj)
    }

    /// Every cached object of a kind in a namespace carrying the registry's label.
    pub fn cached_for_registry<K>(&self, namespace: &str, registry: &str) -> Vec<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let ar = ApiResource::erase::<K>(&());
        let Some(store) = self.stores.get(&key(&ar)) else {
            return Vec::new();
        };
        store
            .for_registry(namespace, registry)
            .iter()
            .filter_map(to_typed)
            .collect()
    }
}

/// How long a reconcile waits for the watch caches to fill after (re)start before it goes ahead regardless.
const CACHE_SYNC_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Context {
    /// Waits until every watch cache has its first listing. A reconcile that ran on half-filled caches would
    /// report objects as missing (and re-apply them) only to take it back a moment later: on every operator
    /// restart, a status flap and a burst of Events.
    pub async fn caches_synced(&self) {
        use std::sync::atomic::Ordering;
        if self.caches_waited.load(Ordering::Relaxed) {
            return;
        }
        let stores =
            self.stores
                .values()
                .map(|s| futures::future::Either::Left(s.wait_until_ready()))
                .chain(self.provisioning_failures.iter().map(|s| {
                    futures::future::Either::Right(async { _ = s.wait_until_ready().await })
                }));
        let all = futures::future::join_all(stores);
        if tokio::time::timeout(CACHE_SYNC_TIMEOUT, all).await.is_err() {
            tracing::warn!(
                "watch caches not filled after {CACHE_SYNC_TIMEOUT:?}; reconciling anyway"
            );
        }
    }

    /// Messages of the `ProvisioningFailed` Events in a namespace, by the uid of the object they concern.
    pub fn provisioning_failures(
        &self,
        namespace: &str,
    ) -> std::collections::BTreeMap<String, String> {
        let Some(store) = &self.provisioning_failures else {
            return Default::default();
        };
        store
            .state()
            .iter()
            .filter(|e| e.involved_object.namespace.as_deref() == Some(namespace))
            .filter_map(|e| {
                Some((
                    e.involved_object.uid.clone()?,
                    e.message.clone().unwrap_or_default(),
                ))
            })
            .collect()
    }
}

/// Converts a dynamic object into its typed form (`None` if it does not fit, which a watch cache never yields).
pub fn to_typed<K: DeserializeOwned>(obj: &DynamicObject) -> Option<K> {
    serde_json::to_value(obj)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
}

// ---------------------------------------------------------------------------------------------------------------
// What the watch caches keep of an object

/// Field of a cached object (beside `metadata`, `spec`, `status`, ...) with what [`slim_for_cache`] learnt from
/// the object as it arrived. A name with a slash cannot collide with a Kubernetes field.
const CACHE_MARKERS_FIELD: &str = "quay-operator.rs/cache";

/// What the operator needs to know about the parts of an object the cache no longer holds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheMarkers {
    /// Hash of everything but `status` (labels, annotations, owner references, finalizers, spec or data).
    pub content: String,
    /// Someone else wrote the object (not its status) since our last apply, or its content changed without an
    /// apply of ours: the values we set must be checked against the full object before skipping an apply.
    pub written_by_others: bool,
    /// `time` of our own apply entry in managedFields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub our_apply: Option<String>,
}

/// The markers of a cached object (`None` for an object that did not go through [`slim_for_cache`]).
pub fn cache_markers(object: &DynamicObject) -> Option<CacheMarkers> {
    serde_json::from_value(object.data.get(CACHE_MARKERS_FIELD)?.clone()).ok()
}

/// Hash of an object's content as [`CacheMarkers::content`] defines it.
pub fn content_hash(object: &DynamicObject) -> String {
    let meta = &object.metadata;
    let mut content = serde_json::Map::new();
    content.insert("labels".into(), serde_json::json!(meta.labels));
    content.insert("annotations".into(), serde_json::json!(meta.annotations));
    content.insert(
        "ownerReferences".into(),
        serde_json::json!(meta.owner_references),
    );
    content.insert("finalizers".into(), serde_json::json!(meta.finalizers));
    if let serde_json::Value::Object(data) = &object.data {
        for (k, v) in data {
            if k != "status" && k != CACHE_MARKERS_FIELD {
                content.insert(k.clone(), v.clone());
            }
        }
    }
    super::diff::desired_hash(&serde_json::Value::Object(content))
}

/// Turns a whole object, as a watch delivers it, into what the cache keeps: metadata without `managedFields`,
/// `status`, the few spec and data values the controller reads, and [`CacheMarkers`] for the rest. `previous`
/// is the cached version it replaces.
/// `kind` comes from the watch: list items carry no `kind` of their own.
pub fn slim_for_cache(object: &mut DynamicObject, kind: &str, previous: Option<&DynamicObject>) {
    let markers = arrival_markers(object, previous);
    object.metadata.managed_fields = None;
    let name = object.metadata.name.as_deref().unwrap_or("");
    if let serde_json::Value::Object(data) = &mut object.data {
        project(kind, name, data);
        data.insert(
            CACHE_MARKERS_FIELD.into(),
            serde_json::to_value(markers).expect("markers serialize"),
        );
    }
}

fn arrival_markers(object: &DynamicObject, previous: Option<&DynamicObject>) -> CacheMarkers {
    use crate::api::FIELD_MANAGER;
    let entries = object
        .metadata
        .managed_fields
        .as_deref()
        .unwrap_or_default();
    let is_ours = |e: &&k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
        e.manager.as_deref() == Some(FIELD_MANAGER) && e.operation.as_deref() == Some("Apply")
    };
    let time = |e: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
        e.time.as_ref().map(|t| t.0)
    };
    let our_time = entries
        .iter()
        .filter(|e| is_ours(e) && e.subresource.as_deref().unwrap_or("").is_empty())
        .filter_map(time)
        .max();
    // Times have a resolution of one second: a write in the same second as ours may have come after it.
    let others_since_ours = entries
        .iter()
        .filter(|e| !is_ours(e) && e.subresource.as_deref() != Some("status"))
        .any(|e| match (our_time, time(e)) {
            (Some(ours), Some(theirs)) => theirs >= ours,
            _ => true,
        });
    let content = content_hash(object);
    let our_apply = our_time.map(|t| t.to_string());
    let applied_hash = |o: &DynamicObject| {
        o.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(super::diff::APPLIED_HASH_ANNOTATION))
            .cloned()
    };
    let written_by_others = match previous.and_then(|p| Some((p, cache_markers(p)?))) {
        None => others_since_ours,
        Some((prev_object, prev)) => {
            // Two applies of ours within a second share a time; a new applied hash tells them apart.
            let same_apply =
                prev.our_apply == our_apply && applied_hash(prev_object) == applied_hash(object);
            // A writer that owns no field afterwards leaves no managedFields entry; a content change without
            // an apply of ours still shows it.
            others_since_ours || (same_apply && (prev.written_by_others || prev.content != content))
        }
    };
    CacheMarkers {
        content,
        written_by_others,
        our_apply,
    }
}

/// Keeps of `data` (every field but `metadata`) only what reconcile and status read; kinds not listed keep all.
fn project(kind: &str, name: &str, data: &mut serde_json::Map<String, serde_json::Value>) {
    use serde_json::json;
    match kind {
        // Read: the managed keys (never regenerated) and the CA bundles OpenShift injects.
        "Secret" if !name.ends_with(crate::config::managed_keys::MANAGED_KEYS_SUFFIX) => {
            data.remove("data");
            data.remove("stringData");
        }
        "ConfigMap"
            if !name.ends_with("-cluster-service-ca") && !name.ends_with("-cluster-trusted-ca") =>
        {
            data.remove("data");
            data.remove("binaryData");
        }
        // Read: replicas, the volumes (database PVC, config Secret in use), status. `selector`, `template` and
        // `containers` are required by the typed form.
        "Deployment" => {
            if let Some(spec) = data.get("spec") {
                let volumes = spec.pointer("/template/spec/volumes").cloned();
                // Container names and images: a database's image tells its PostgreSQL major version.
                let containers: Vec<serde_json::Value> = spec
                    .pointer("/template/spec/containers")
                    .and_then(serde_json::Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|c| json!({"name": c.get("name"), "image": c.get("image")}))
                    .collect();
                let mut slim = json!({
                    "selector": spec.get("selector").cloned().unwrap_or(json!({})),
                    "template": {"spec": {"containers": containers}},
                });
                if let Some(r) = spec.get("replicas") {
                    slim["replicas"] = r.clone();
                }
                if let Some(v) = volumes {
                    slim["template"]["spec"]["volumes"] = v;
                }
                data.insert("spec".into(), slim);
            }
        }
        "Job" => {
            data.insert(
                "spec".into(),
                json!({"template": {"spec": {"containers": []}}}),
            );
        }
        // Never read beyond their metadata.
        "Service" | "Role" | "RoleBinding" | "ServiceAccount" => {
            data.retain(|k, _| k == "status");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    fn entry(
        manager: &str,
        operation: &str,
        time: &str,
        subresource: Option<&str>,
    ) -> serde_json::Value {
        let mut e = json!({"manager": manager, "operation": operation, "apiVersion": "apps/v1",
            "time": time, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}});
        if let Some(s) = subresource {
            e["subresource"] = json!(s);
        }
        e
    }

    fn deployment(entries: Vec<serde_json::Value>, replicas: i64) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "reg-quay-app", "namespace": "ns", "uid": "u1",
                "annotations": {"quay-operator.rs/applied-hash": "h1"}, "managedFields": entries},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {
                    "containers": [{"name": "quay-app", "image": "quay", "env": [{"name": "A", "value": "1"}]}],
                    "volumes": [{"name": "config", "secret": {"secretName": "reg-quay-config-secret-abc"}}]}}},
            "status": {"availableReplicas": 1},
        }))
        .unwrap()
    }

    const T0: &str = "2026-11-24T10:00:00Z";
    const T1: &str = "2026-11-24T10:00:05Z";

    fn status(version: &str) -> crate::api::QuayRegistryStatus {
        crate::api::QuayRegistryStatus {
            current_version: Some(version.into()),
            ..Default::default()
        }
    }

    fn write(before: Option<&str>, after: &str) -> WrittenStatus {
        WrittenStatus {
            before: before.map(|b| status_fingerprint(&status(b))),
            after: status(after),
            after_fingerprint: status_fingerprint(&status(after)),
        }
    }

    #[test]
    fn status_writes_carry_forward_until_the_registry_shows_them() {
        let mut history = vec![write(None, "a"), write(Some("a"), "b")];
        // The watch has delivered neither write.
        assert_eq!(carry_forward(&mut history, None), status("b"));
        assert_eq!(history.len(), 2);
        // It delivered the first: that one is forgotten, the second still carries forward.
        assert_eq!(carry_forward(&mut history, Some(&status("a"))), status("b"));
        assert_eq!(history.len(), 1);
        // A status written by someone else, on top of which we wrote nothing, stays.
        assert_eq!(carry_forward(&mut history, Some(&status("x"))), status("x"));
        // Both delivered: nothing left to remember.
        assert_eq!(carry_forward(&mut history, Some(&status("b"))), status("b"));
        assert!(history.is_empty());
    }

    #[test]
    fn status_writes_by_others_leave_our_values_trusted() {
        let mut d = deployment(
            vec![
                entry(crate::api::FIELD_MANAGER, "Apply", T1, None),
                entry("kube-controller-manager", "Update", T1, Some("status")),
            ],
            2,
        );
        slim_for_cache(&mut d, "Deployment", None);
        let markers = cache_markers(&d).unwrap();
        assert!(!markers.written_by_others, "{markers:?}");
        assert!(d.metadata.managed_fields.is_none());
    }

    #[test]
    fn another_writer_since_our_apply_is_marked() {
        let mut d = deployment(
            vec![
                entry(crate::api::FIELD_MANAGER, "Apply", T0, None),
                entry("kubectl-edit", "Update", T1, None),
            ],
            2,
        );
        slim_for_cache(&mut d, "Deployment", None);
        assert!(cache_markers(&d).unwrap().written_by_others);
        // Our apply entry alone, but missing: nothing tells who wrote last.
        let mut d = deployment(vec![entry("kubectl", "Update", T0, None)], 2);
        slim_for_cache(&mut d, "Deployment", None);
        assert!(cache_markers(&d).unwrap().written_by_others);
    }

    #[test]
    fn a_content_change_without_our_apply_is_marked() {
        let ours = vec![entry(crate::api::FIELD_MANAGER, "Apply", T0, None)];
        let mut before = deployment(ours.clone(), 2);
        slim_for_cache(&mut before, "Deployment", None);
        assert!(!cache_markers(&before).unwrap().written_by_others);
        // Same apply entry, different replicas (a writer that kept no managedFields entry).
        let mut after = deployment(ours.clone(), 3);
        slim_for_cache(&mut after, "Deployment", Some(&before));
        assert!(cache_markers(&after).unwrap().written_by_others);
        // Marked until our next apply.
        let mut again = deployment(ours, 3);
        slim_for_cache(&mut again, "Deployment", Some(&after));
        assert!(cache_markers(&again).unwrap().written_by_others);
        // Our next apply within the same second: the applied hash changed.
        let mut same_second =
            deployment(vec![entry(crate::api::FIELD_MANAGER, "Apply", T0, None)], 4);
        same_second.annotations_mut().insert(
            super::super::diff::APPLIED_HASH_ANNOTATION.into(),
            "h2".into(),
        );
        slim_for_cache(&mut same_second, "Deployment", Some(&again));
        assert!(!cache_markers(&same_second).unwrap().written_by_others);
        let mut reapplied =
            deployment(vec![entry(crate::api::FIELD_MANAGER, "Apply", T1, None)], 2);
        slim_for_cache(&mut reapplied, "Deployment", Some(&again));
        assert!(!cache_markers(&reapplied).unwrap().written_by_others);
    }

    #[test]
    fn slim_deployment_keeps_what_is_read_and_stays_typed() {
        let mut d = deployment(vec![], 2);
        let whole = content_hash(&d);
        slim_for_cache(&mut d, "Deployment", None);
        assert_eq!(cache_markers(&d).unwrap().content, whole);
        let typed: Deployment = to_typed(&d).expect("a slim Deployment is still a Deployment");
        let spec = typed.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some("quay"));
        assert!(
            pod.containers[0].env.is_none(),
            "only names and images are cached"
        );
        assert_eq!(
            pod.volumes.unwrap()[0]
                .secret
                .as_ref()
                .unwrap()
                .secret_name
                .as_deref(),
            Some("reg-quay-config-secret-abc")
        );
        assert_eq!(typed.status.unwrap().available_replicas, Some(1));
    }

    #[test]
    fn secrets_keep_data_only_for_the_managed_keys() {
        let secret = |name: &str| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "ns"}, "data": {"k": "dg=="}}))
            .unwrap()
        };
        let mut config = secret("reg-quay-config-secret-abc");
        slim_for_cache(&mut config, "Secret", None);
        assert!(config.data.get("data").is_none());
        let mut keys = secret("reg-quay-registry-managed-secret-keys");
        slim_for_cache(&mut keys, "Secret", None);
        assert_eq!(keys.data["data"]["k"], "dg==");
    }
}
