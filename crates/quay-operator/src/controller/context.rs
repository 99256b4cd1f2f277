//! State shared by every reconcile: the client, the operator's settings, the cluster's capabilities and the
//! watch caches of the objects the operator owns.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Event;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource};
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
    pub stores: HashMap<(String, String), Store<DynamicObject>>,
    /// `ProvisioningFailed` Events (the only Events the operator reads: why a database volume stays Pending).
    pub provisioning_failures: Option<Store<Event>>,
    /// Set once [`Context::caches_synced`] has waited (caches filled, or the wait timed out).
    pub caches_waited: std::sync::atomic::AtomicBool,
    pub metrics: Arc<Metrics>,
    /// Status writes of this process per registry, oldest first: the registry a reconcile receives can predate
    /// our own writes, and must not make us write (and announce) the same change twice.
    pub written_status: std::sync::Mutex<HashMap<(String, String), Vec<WrittenStatus>>>,
}

/// A status write: what was stored before it, and what it stored.
#[derive(Debug, Clone)]
pub struct WrittenStatus {
    pub before: Option<crate::api::QuayRegistryStatus>,
    pub after: crate::api::QuayRegistryStatus,
}

/// How many of a registry's own status writes are remembered.
const WRITTEN_STATUS_HISTORY: usize = 8;

fn registry_key(registry: &crate::api::QuayRegistry) -> (String, String) {
    (
        registry.metadata.namespace.clone().unwrap_or_default(),
        registry.metadata.name.clone().unwrap_or_default(),
    )
}

impl Context {
    /// The registry's current status: what it carries, carried forward through the writes this process made on
    /// top of exactly that status (the watch may not have delivered them yet).
    pub fn current_status(
        &self,
        registry: &crate::api::QuayRegistry,
    ) -> crate::api::QuayRegistryStatus {
        let written = self.written_status.lock().expect("status cache lock");
        let mut current = registry.status.clone();
        if let Some(history) = written.get(&registry_key(registry)) {
            for w in history {
                if w.before == current {
                    current = Some(w.after.clone());
                }
            }
        }
        current.unwrap_or_default()
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
            Some(before)
        };
        history.push(WrittenStatus { before, after });
        if history.len() > WRITTEN_STATUS_HISTORY {
            history.remove(0);
        }
    }
}

impl Context {
    /// The cached object of `ar` named `name` in `namespace`.
    pub fn cached(
        &self,
        ar: &ApiResource,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<DynamicObject>> {
        let store = self.stores.get(&key(ar))?;
        store.get(&ObjectRef::new_with(name, ar.clone()).within(namespace))
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
            .state()
            .iter()
            .filter(|o| o.metadata.namespace.as_deref() == Some(namespace))
            .filter(|o| {
                o.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(crate::api::REGISTRY_LABEL))
                    .map(String::as_str)
                    == Some(registry)
            })
            .filter_map(|o| to_typed(o))
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
        let stores = self
            .stores
            .values()
            .map(|s| futures::future::Either::Left(s.wait_until_ready()))
            .chain(
                self.provisioning_failures
                    .iter()
                    .map(|s| futures::future::Either::Right(s.wait_until_ready())),
            );
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
