//! Scenario harness: a simulated cluster (plain Kubernetes or OpenShift) with the operator running in-process,
//! plus the helpers the user-story tests share (bundles, registries, waiting for conditions, reading objects).
//!
//! Included by the scenario files with `#[path = "common/sim.rs"] mod sim;`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, CustomResourceExt};
use kube_sim::{Options, Simulator};
use quay_operator::api::QuayRegistry;
use quay_operator::controller::{GRAFANA_DASHBOARD_NAMESPACE, RunOptions, run};
use quay_operator::render::OperatorSettings;
use serde_json::{Value, json};

/// The Quay version the operator under test deploys.
pub const QUAY_VERSION: &str = "v3.11.0";
/// Safety net for every wait; scenarios normally finish in well under a second per step.
pub const WAIT: Duration = Duration::from_secs(30);

/// The two simulated set-ups of the upstream e2e suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Routes, ObjectBucketClaims, monitoring, the APIServer config: like values-openshift.yaml.
    OpenShift,
    /// Plain Kubernetes (KinD): objectstorage/route/tls/monitoring unmanaged, certs and S3 in the bundle.
    Kubernetes,
}

impl Platform {
    pub fn options(self) -> Options {
        match self {
            Platform::OpenShift => Options::openshift(),
            Platform::Kubernetes => Options::default(),
        }
    }
}

/// A simulated cluster with the operator running.
pub struct Cluster {
    pub sim: Simulator,
    pub client: Client,
    pub platform: Platform,
    operator: tokio::task::JoinHandle<()>,
    pub started: Instant,
}

pub fn settings() -> OperatorSettings {
    OperatorSettings {
        quay_version: QUAY_VERSION.into(),
        ..OperatorSettings::from_env(|_| None)
    }
}

impl Cluster {
    /// The platform's cluster, the CRD installed, the operator watching all namespaces.
    pub async fn start(platform: Platform) -> Cluster {
        Cluster::start_with(platform, platform.options(), vec![]).await
    }

    pub async fn start_with(
        platform: Platform,
        options: Options,
        namespaces: Vec<String>,
    ) -> Cluster {
        let started = Instant::now();
        let sim = Simulator::start(options).await.expect("simulator starts");
        sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
            .unwrap();
        let client = sim.client();
        if platform == Platform::OpenShift {
            create_namespace(&client, GRAFANA_DASHBOARD_NAMESPACE).await;
        }
        let operator = start_operator(client.clone(), namespaces);
        Cluster {
            sim,
            client,
            platform,
            operator,
            started,
        }
    }

    /// The platform's cluster with `prepare` run on the simulator before the operator starts (optional APIs
    /// it should discover at start-up, such as the Gateway API or cert-manager).
    pub async fn start_prepared(platform: Platform, prepare: impl FnOnce(&Simulator)) -> Cluster {
        let started = Instant::now();
        let sim = Simulator::start(platform.options())
            .await
            .expect("simulator starts");
        sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
            .unwrap();
        prepare(&sim);
        let client = sim.client();
        if platform == Platform::OpenShift {
            create_namespace(&client, GRAFANA_DASHBOARD_NAMESPACE).await;
        }
        let operator = start_operator(client.clone(), vec![]);
        Cluster {
            sim,
            client,
            platform,
            operator,
            started,
        }
    }

    pub fn api(&self, namespace: &str) -> Api<QuayRegistry> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub async fn namespace(&self, name: &str) {
        create_namespace(&self.client, name).await;
    }

    /// Creates (or replaces) a Secret with string data.
    pub async fn secret(&self, namespace: &str, name: &str, type_: &str, data: &[(&str, &str)]) {
        let string_data: BTreeMap<&str, &str> = data.iter().copied().collect();
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "type": type_,
            "stringData": string_data,
        }))
        .unwrap();
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        api.patch(
            name,
            &PatchParams::apply("scenario-test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap();
    }

    /// The config bundle a registry of this platform needs, with `extra_config` appended to `config.yaml`.
    pub async fn bundle(&self, namespace: &str, name: &str, extra_config: &str) {
        let mut files = self.platform_bundle();
        let config = files.entry("config.yaml".into()).or_default();
        config.push_str(extra_config);
        let data: Vec<(&str, &str)> = files
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.secret(namespace, name, "Opaque", &data).await;
    }

    /// The files of the platform's bundle: on Kubernetes S3 storage and a certificate for quay.example.com
    /// (examples/kubernetes-s3-tls), on OpenShift only Quay settings (everything else is managed).
    pub fn platform_bundle(&self) -> BTreeMap<String, String> {
        match self.platform {
            Platform::Kubernetes => kubernetes_bundle(),
            Platform::OpenShift => BTreeMap::from([(
                "config.yaml".into(),
                "FEATURE_USER_INITIALIZE: true\n".into(),
            )]),
        }
    }

    /// A registry spec for this platform: the given components on top of the platform's unmanaged ones
    /// (Kubernetes: objectstorage, route, tls, monitoring unmanaged, as the KinD e2e values).
    pub fn registry_json(
        &self,
        namespace: &str,
        name: &str,
        bundle: &str,
        components: Value,
    ) -> Value {
        let mut list: Vec<Value> = components.as_array().cloned().unwrap_or_default();
        if self.platform == Platform::Kubernetes {
            for kind in ["objectstorage", "route", "tls", "monitoring"] {
                if !list.iter().any(|c| c["kind"] == kind) {
                    list.push(json!({"kind": kind, "managed": false}));
                }
            }
        }
        let mut spec = json!({"configBundleSecret": bundle});
        if !list.is_empty() {
            spec["components"] = Value::Array(list);
        }
        json!({
            "apiVersion": "quay.redhat.com/v1", "kind": "QuayRegistry",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        })
    }

    /// Creates a registry from JSON.
    pub async fn create_registry(&self, registry: Value) -> QuayRegistry {
        let namespace = registry["metadata"]["namespace"]
            .as_str()
            .unwrap()
            .to_owned();
        let registry: QuayRegistry = serde_json::from_value(registry).unwrap();
        self.api(&namespace)
            .create(&PostParams::default(), &registry)
            .await
            .unwrap()
    }

    /// Namespace, bundle `<name>-config` and registry with `components`, for this platform.
    pub async fn registry(&self, namespace: &str, name: &str, components: Value) -> QuayRegistry {
        let bundle = format!("{name}-config");
        self.bundle(namespace, &bundle, "").await;
        let json = self.registry_json(namespace, name, &bundle, components);
        self.create_registry(json).await
    }

    /// Changes the registry's components (a merge patch of the spec, as `kubectl edit` would).
    pub async fn set_components(&self, namespace: &str, name: &str, components: Value) {
        let json = self.registry_json(namespace, name, "", components);
        let patch = json!({"spec": {"components": json["spec"]["components"]}});
        self.api(namespace)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// Waits until `ready` holds for the registry; on timeout panics with its status and the workloads.
    pub async fn wait(
        &self,
        namespace: &str,
        name: &str,
        what: &str,
        ready: impl Fn(&QuayRegistry) -> bool,
    ) -> QuayRegistry {
        let api = self.api(namespace);
        let cond = await_condition(api.clone(), name, move |r: Option<&QuayRegistry>| {
            r.is_some_and(&ready)
        });
        match tokio::time::timeout(WAIT, cond).await {
            Ok(Ok(Some(r))) => r,
            _ => {
                let r = api.get(name).await.ok();
                panic!(
                    "registry {namespace}/{name}: timed out waiting for {what}\nconditions: {:#?}\nworkloads: {:#?}",
                    r.as_ref().map(conditions),
                    self.workloads(namespace)
                );
            }
        }
    }

    /// The simulator's current resourceVersion: a point to look back to with [`Cluster::wait_seen`].
    pub fn now_rv(&self) -> String {
        self.sim.resource_version().to_string()
    }

    /// Waits until some version of the registry written after `since` satisfied `seen` (a watch replaying the
    /// history from `since`, so a state that lasted only a moment is not missed).
    pub async fn wait_seen(
        &self,
        namespace: &str,
        name: &str,
        since: &str,
        what: &str,
        seen: impl Fn(&QuayRegistry) -> bool,
    ) -> QuayRegistry {
        use futures::StreamExt;
        use kube::api::{WatchEvent, WatchParams};
        let api = self.api(namespace);
        let find = async {
            let mut since = since.to_owned();
            loop {
                let params = WatchParams::default().fields(&format!("metadata.name={name}"));
                let mut stream = api.watch(&params, &since).await.unwrap().boxed();
                while let Some(event) = stream.next().await {
                    match event.unwrap() {
                        WatchEvent::Added(r) | WatchEvent::Modified(r) => {
                            since = r.metadata.resource_version.clone().unwrap_or_default();
                            if seen(&r) {
                                return r;
                            }
                        }
                        WatchEvent::Bookmark(b) => since = b.metadata.resource_version,
                        WatchEvent::Deleted(_) => {}
                        WatchEvent::Error(e) => panic!("watch error: {e:?}"),
                    }
                }
            }
        };
        match tokio::time::timeout(WAIT, find).await {
            Ok(r) => r,
            Err(_) => {
                let r = api.get(name).await.ok();
                panic!(
                    "registry {namespace}/{name}: never saw {what}\nconditions: {:#?}\nworkloads: {:#?}",
                    r.as_ref().map(conditions),
                    self.workloads(namespace)
                );
            }
        }
    }

    /// Waits until condition `type_` was seen with `status` since `since`.
    pub async fn wait_seen_condition(
        &self,
        namespace: &str,
        name: &str,
        since: &str,
        type_: &str,
        status: &str,
    ) -> QuayRegistry {
        self.wait_seen(namespace, name, since, &format!("{type_}={status}"), |r| {
            conditions(r).get(type_).is_some_and(|c| c.status == status)
        })
        .await
    }

    /// Waits until every condition is healthy (upstream's "14 conditions" assertion).
    pub async fn wait_healthy(&self, namespace: &str, name: &str) -> QuayRegistry {
        self.wait(namespace, name, "all conditions healthy", is_healthy)
            .await
    }

    /// Waits until condition `type_` has `status` and `reason`.
    pub async fn wait_condition(
        &self,
        namespace: &str,
        name: &str,
        type_: &str,
        status: &str,
        reason: &str,
    ) -> QuayRegistry {
        let (t, s, r) = (type_.to_owned(), status.to_owned(), reason.to_owned());
        self.wait(
            namespace,
            name,
            &format!("{type_}={status}/{reason}"),
            move |reg| {
                conditions(reg)
                    .get(&t)
                    .is_some_and(|c| c.status == s && c.reason == r)
            },
        )
        .await
    }

    /// Waits (re-checking on every change of the simulator's store; no API request is made) until `ready` holds
    /// for the object.
    pub async fn wait_object(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        name: &str,
        what: &str,
        ready: impl Fn(Option<&Value>) -> bool,
    ) -> Option<Value> {
        let held = self
            .sim
            .wait_until(WAIT, || {
                ready(self.sim.get(group, plural, namespace, name).as_ref())
            })
            .await;
        let obj = self.sim.get(group, plural, namespace, name);
        if !held {
            panic!("{plural} {namespace}/{name}: timed out waiting for {what}; last: {obj:#?}");
        }
        obj
    }

    /// Waits (on store changes, no API request) until `ready` holds for the list of a resource in a namespace.
    pub async fn wait_list(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        what: &str,
        ready: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let held = self
            .sim
            .wait_until(WAIT, || {
                ready(&self.sim.list(group, plural, Some(namespace)))
            })
            .await;
        let list = self.sim.list(group, plural, Some(namespace));
        if !held {
            let names: Vec<&Value> = list.iter().map(|o| &o["metadata"]["name"]).collect();
            panic!("{plural} in {namespace}: timed out waiting for {what}; have {names:?}");
        }
        list
    }

    pub fn deployment(&self, namespace: &str, name: &str) -> Option<Value> {
        self.sim.get("apps", "deployments", namespace, name)
    }

    /// Name, spec.replicas and status of every Deployment in a namespace (for failure messages).
    pub fn workloads(&self, namespace: &str) -> Vec<(Value, Value, Value)> {
        self.sim
            .list("apps", "deployments", Some(namespace))
            .into_iter()
            .map(|d| {
                (
                    d["metadata"]["name"].clone(),
                    d["spec"]["replicas"].clone(),
                    d["status"]["availableReplicas"].clone(),
                )
            })
            .collect()
    }

    /// Deletes an object through the API (as a user would).
    pub async fn delete(
        &self,
        group: &str,
        version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) {
        let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            group, version, kind,
        ));
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &ar);
        api.delete(name, &Default::default()).await.unwrap();
    }

    /// Server-side applies a JSON object as a user (field manager `scenario-user`).
    pub async fn apply_as_user(&self, obj: Value) {
        let api_version = obj["apiVersion"].as_str().unwrap();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let kind = obj["kind"].as_str().unwrap();
        let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            group, version, kind,
        ));
        let namespace = obj["metadata"]["namespace"].as_str().unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap();
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &ar);
        api.patch(
            name,
            &PatchParams::apply("scenario-user").force(),
            &Patch::Apply(&obj),
        )
        .await
        .unwrap();
    }

    /// Merge-patches an object as a user would with `kubectl patch --type merge`.
    pub async fn merge_patch(
        &self,
        (group, version, kind): (&str, &str, &str),
        namespace: &str,
        name: &str,
        patch: Value,
    ) {
        let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            group, version, kind,
        ));
        let api: Api<kube::api::DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &ar);
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// The data of registry `reg`'s managed keys Secret and of both databases' credentials Secrets: what must
    /// survive every upgrade, restart and takeover byte for byte. Panics when one is missing or the Quay database
    /// password is empty (nothing to compare).
    pub fn kept_secrets(&self, namespace: &str, reg: &str) -> Value {
        let data = |suffix: &str| {
            let name = format!("{reg}-{suffix}");
            self.sim
                .get("", "secrets", namespace, &name)
                .unwrap_or_else(|| panic!("Secret {name}"))["data"]
                .clone()
        };
        let kept = json!({
            "managedKeys": data(quay_operator::config::managed_keys::MANAGED_KEYS_SUFFIX),
            "quayDatabase": data("postgres-config-secret"),
            "clairDatabase": data("clairpostgres-config-secret"),
        });
        assert!(
            kept["quayDatabase"]["database-password"]
                .as_str()
                .is_some_and(|p| !p.is_empty()),
            "a database password to compare: {kept:#}"
        );
        kept
    }

    /// The rendered `config.yaml` of the registry's current config Secret (the one quay-app mounts).
    pub fn rendered_config_secrets(&self, namespace: &str, name: &str) -> Vec<Value> {
        let prefix = format!("{name}-quay-config-secret-");
        self.sim
            .list("", "secrets", Some(namespace))
            .into_iter()
            .filter(|s| {
                s["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect()
    }

    /// Starts another operator process (e.g. a newer version after [`Cluster::stop_operator`]).
    pub fn spawn_operator(&self, settings: OperatorSettings) -> tokio::task::JoinHandle<()> {
        start_operator_with(self.client.clone(), vec![], settings)
    }

    /// Adds a label to the registry: any change makes the operator look at it again.
    pub async fn touch(&self, namespace: &str, name: &str) {
        let patch = json!({"metadata": {"labels": {"scenario-touch": self.now_rv()}}});
        self.api(namespace)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    /// Events about a registry, oldest first: (type, reason, message).
    pub fn events(&self, namespace: &str, registry: &str) -> Vec<(String, String, String)> {
        let mut events: Vec<Value> = self
            .sim
            .list("", "events", Some(namespace))
            .into_iter()
            .filter(|e| {
                e["involvedObject"]["kind"] == "QuayRegistry"
                    && e["involvedObject"]["name"] == registry
            })
            .collect();
        events.sort_by_key(|e| {
            e["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
        });
        events
            .iter()
            .map(|e| {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                (text("type"), text("reason"), text("message"))
            })
            .collect()
    }

    /// Waits (on store changes, no API request) until the Events about a registry, oldest first, from index `from`
    /// on (as counted by [`Cluster::events`]), satisfy `ready`; returns those Events.
    pub async fn wait_events(
        &self,
        namespace: &str,
        registry: &str,
        from: usize,
        what: &str,
        ready: impl Fn(&[(String, String, String)]) -> bool,
    ) -> Vec<(String, String, String)> {
        let since =
            |all: Vec<(String, String, String)>| all.get(from..).unwrap_or_default().to_vec();
        let held = self
            .sim
            .wait_until(WAIT, || ready(&since(self.events(namespace, registry))))
            .await;
        let events = since(self.events(namespace, registry));
        if !held {
            panic!(
                "registry {namespace}/{registry}: timed out waiting for Events: {what}; have {events:#?}"
            );
        }
        events
    }

    /// Stops the operator (the simulator keeps running).
    pub fn stop_operator(&self) {
        self.operator.abort();
    }

    pub async fn stop(self) {
        self.operator.abort();
        self.sim.stop().await;
    }
}

fn start_operator(client: Client, namespaces: Vec<String>) -> tokio::task::JoinHandle<()> {
    start_operator_with(client, namespaces, settings())
}

pub fn start_operator_with(
    client: Client,
    namespaces: Vec<String>,
    settings: OperatorSettings,
) -> tokio::task::JoinHandle<()> {
    let options = RunOptions {
        namespaces,
        http_addr: "127.0.0.1:0".parse().unwrap(),
        settings,
    };
    tokio::spawn(async move {
        run(client, options).await.expect("operator runs");
    })
}

pub async fn create_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("create namespace {name}: {e}"),
    }
}

/// The bundle of examples/kubernetes-s3-tls: S3 storage and a certificate for quay.example.com.
pub fn kubernetes_bundle() -> BTreeMap<String, String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/kubernetes-s3-tls/config-bundle.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let secret: Value = serde_saphyr::from_str(&text).unwrap();
    secret["stringData"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// One condition as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cond {
    pub status: String,
    pub reason: String,
    pub message: String,
}

pub fn conditions(registry: &QuayRegistry) -> BTreeMap<String, Cond> {
    registry
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c.type_.clone(),
                Cond {
                    status: c.status.clone(),
                    reason: c.reason.clone().unwrap_or_default(),
                    message: c.message.clone().unwrap_or_default(),
                },
            )
        })
        .collect()
}

/// The 11 component conditions.
pub const COMPONENT_CONDITIONS: [&str; 11] = [
    "ComponentHPAReady",
    "ComponentRouteReady",
    "ComponentMonitoringReady",
    "ComponentPostgresReady",
    "ComponentObjectStorageReady",
    "ComponentClairReady",
    "ComponentClairPostgresReady",
    "ComponentTLSReady",
    "ComponentRedisReady",
    "ComponentQuayReady",
    "ComponentMirrorReady",
];

/// Upstream's "14 conditions": every component condition and Available True, ComponentsCreated True,
/// RolloutBlocked False.
pub fn is_healthy(registry: &QuayRegistry) -> bool {
    let c = conditions(registry);
    let is = |t: &str, s: &str| c.get(t).is_some_and(|c| c.status == s);
    COMPONENT_CONDITIONS.iter().all(|t| is(t, "True"))
        && is("Available", "True")
        && is("ComponentsCreated", "True")
        && is("RolloutBlocked", "False")
}

/// Asserts one condition exactly.
#[track_caller]
pub fn assert_condition(
    registry: &QuayRegistry,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    let c = conditions(registry);
    let expected = Cond {
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
    };
    assert_eq!(
        c.get(type_),
        Some(&expected),
        "{type_}; all conditions: {c:#?}"
    );
}

/// Pod template of a Deployment (JSON).
pub fn template(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]
}

pub fn annotation<'v>(obj: &'v Value, key: &str) -> Option<&'v str> {
    obj["metadata"]["annotations"][key].as_str()
}

/// Decoded `data` of a Secret from the store.
pub fn secret_data(secret: &Value, key: &str) -> Option<String> {
    use base64::Engine;
    let b64 = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}
