//! The test-facing handle: start/stop, a ready `kube::Client`, kubeconfig output, CRD bundles,
//! controller and fault control, restarts, and request metrics.

use crate::controllers::{self, Controller, ControllerSettings, Mode, SharedSettings};
use crate::crd;
use crate::errors::{ApiError, SimError};
use crate::faults::{FaultRule, Faults};
use crate::gc;
use crate::metrics::{Metrics, RequestRecord};
use crate::server::{self, Shared};
use crate::store::{DeleteOpts, Managed, State, WriteOpts};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Start-up options. `Options::default()` is a plain Kubernetes cluster with all simulated
/// controllers on and no optional CRD bundles.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Install the OpenShift CRDs (Route, config.openshift.io APIServer) at start.
    pub openshift: bool,
    /// Install the ObjectBucketClaim / ObjectBucket CRDs at start.
    pub object_bucket_claims: bool,
    /// Install the ServiceMonitor / PrometheusRule CRDs at start.
    pub monitoring: bool,
    /// Watch history kept for resuming watches (events); older rvs get 410 Expired.
    pub history_limit: usize,
    /// Interval between BOOKMARK events on watches that allow them (a real apiserver: ~1 min).
    pub bookmark_interval: Duration,
    /// Simulated controller settings (modes, delay, pods, default StorageClass).
    pub controllers: ControllerSettings,
    /// Cluster domain for Route hosts (`<name>-<ns>.apps.<domain>`).
    pub cluster_domain: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: "127.0.0.1:0".parse().expect("addr"),
            openshift: false,
            object_bucket_claims: false,
            monitoring: false,
            history_limit: 10_000,
            bookmark_interval: Duration::from_secs(30),
            controllers: ControllerSettings::default(),
            cluster_domain: "sim.example.com".into(),
        }
    }
}

impl Options {
    /// OpenShift-like: Route, APIServer config, OBC and monitoring CRDs installed.
    pub fn openshift() -> Self {
        Options {
            openshift: true,
            object_bucket_claims: true,
            monitoring: true,
            ..Default::default()
        }
    }
}

/// A running simulator.
pub struct Simulator {
    shared: Arc<Shared>,
    settings: SharedSettings,
    stop_tx: tokio::sync::watch::Sender<bool>,
    /// The HTTP server task and its stop signal (replaced on `restart`).
    server: Mutex<Option<ServerTask>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Simulator {
    /// Bind, install the requested CRD bundles and start serving plus the background
    /// controllers (GC, simulated controllers).
    pub async fn start(opts: Options) -> Result<Simulator, SimError> {
        let listener = tokio::net::TcpListener::bind(opts.listen).await?;
        let addr = listener.local_addr()?;
        let mut state = State::new(opts.history_limit);
        state.cluster_domain = opts.cluster_domain.clone();
        let (drop_tx, _) = tokio::sync::watch::channel(0u64);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            faults: Mutex::new(Faults::default()),
            metrics: Metrics::default(),
            addr,
            drop_watches: drop_tx,
            bookmark_interval: opts.bookmark_interval,
            unavailable: Default::default(),
            authz: Default::default(),
        });
        let settings: SharedSettings = Arc::new(Mutex::new(opts.controllers.clone()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let server = spawn_server(shared.clone(), listener);
        let tasks = vec![
            tokio::spawn(gc::run(shared.clone(), stop_rx.clone())),
            tokio::spawn(controllers::run(
                shared.clone(),
                settings.clone(),
                stop_rx.clone(),
            )),
        ];
        let sim = Simulator {
            shared,
            settings,
            stop_tx,
            server: Mutex::new(Some(server)),
            tasks,
        };
        if opts.openshift {
            sim.install_openshift()?;
        }
        if opts.object_bucket_claims {
            sim.install_object_bucket_claims()?;
        }
        if opts.monitoring {
            sim.install_monitoring()?;
        }
        Ok(sim)
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// A kube-rs client for this simulator (default namespace `default`).
    pub fn client(&self) -> kube::Client {
        let mut cfg = kube::Config::new(self.url().parse().expect("url"));
        cfg.default_namespace = "default".into();
        kube::Client::try_from(cfg).expect("kube client")
    }

    /// A kube-rs client with kube's default retry layer (429/503/504 retried) switched off, to
    /// observe injected faults exactly as the server sent them.
    pub fn client_without_retries(&self) -> kube::Client {
        let mut cfg = kube::Config::new(self.url().parse().expect("url"));
        cfg.default_namespace = "default".into();
        cfg.default_retry = false;
        kube::Client::try_from(cfg).expect("kube client")
    }

    /// A kubeconfig pointing at this simulator (plain HTTP; any token is accepted).
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig_yaml(&self.url())
    }

    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    // ---- authorization (off unless a ServiceAccount token is registered) ----

    /// From now on, requests with `Authorization: Bearer <token>` act as ServiceAccount `namespace/name` and are
    /// checked against the Roles, ClusterRoles and bindings in the store (403 as kube-apiserver's RBAC when not
    /// allowed). Other requests stay unrestricted.
    pub fn add_service_account_token(&self, token: &str, namespace: &str, name: &str) {
        if let Ok(mut authz) = self.shared.authz.lock() {
            authz.tokens.insert(
                token.to_owned(),
                crate::authz::ServiceAccount {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                },
            );
        }
    }

    /// A client that sends `token` (see [`Simulator::add_service_account_token`]).
    pub fn client_with_token(&self, token: &str) -> kube::Client {
        let mut cfg = kube::Config::new(self.url().parse().expect("url"));
        cfg.default_namespace = "default".into();
        cfg.auth_info.token = Some(token.to_owned().into());
        kube::Client::try_from(cfg).expect("kube client")
    }

    /// A kubeconfig that sends `token` instead of the unrestricted default one.
    pub fn kubeconfig_yaml_with_token(&self, token: &str) -> String {
        kubeconfig_yaml(&self.url()).replace("token: kube-sim", &format!("token: {token}"))
    }

    /// Stop serving and end background tasks (open watches are cut).
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        self.drop_watches();
        let _ = self.stop_tx.send(true);
        let server = self.server.lock().expect("server").take();
        if let Some(s) = server {
            s.stop().await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    // ---- CRDs ----

    /// Create (or replace) a CRD; it is Established immediately.
    pub fn install_crd(&self, crd_obj: Value) -> Result<Value, ApiError> {
        let mut st = self.shared.lock();
        let rd = st
            .find("apiextensions.k8s.io", "customresourcedefinitions")
            .expect("crds");
        let ctx = WriteOpts {
            manager: "kube-sim".into(),
            version: "v1".into(),
            ..Default::default()
        };
        let name = crd_obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if st.get_raw(&rd, "", &name).is_some() {
            let body = crd_obj.clone();
            return st.update_with(&rd, "", &name, &ctx, Managed::Update, false, move |old| {
                let mut n = body;
                n["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
                Ok(n)
            });
        }
        st.create(&rd, "", crd_obj, &ctx, Managed::Update)
    }

    /// Delete a CRD (its custom resources are deleted first, honouring their finalizers).
    pub fn uninstall_crd(&self, name: &str) -> Result<(), ApiError> {
        let mut st = self.shared.lock();
        let rd = st
            .find("apiextensions.k8s.io", "customresourcedefinitions")
            .expect("crds");
        st.delete(&rd, "", name, &DeleteOpts::default()).map(|_| ())
    }

    /// OpenShift: `route.openshift.io/v1` Route and `config.openshift.io/v1` APIServer.
    pub fn install_openshift(&self) -> Result<(), ApiError> {
        self.install_crd(crd::route_crd())?;
        self.install_crd(crd::apiserver_config_crd())?;
        // Every OpenShift cluster has the `cluster` APIServer config (default TLS profile).
        if self
            .get("config.openshift.io", "apiservers", "", "cluster")
            .is_none()
        {
            self.create(
                serde_json::json!({"apiVersion": "config.openshift.io/v1", "kind": "APIServer",
                "metadata": {"name": "cluster"}, "spec": {"audit": {"profile": "Default"}}}),
            )?;
        }
        Ok(())
    }

    /// `objectbucket.io/v1alpha1` ObjectBucketClaim and ObjectBucket.
    pub fn install_object_bucket_claims(&self) -> Result<(), ApiError> {
        for c in crd::obc_crds() {
            self.install_crd(c)?;
        }
        Ok(())
    }

    /// `monitoring.coreos.com/v1` ServiceMonitor and PrometheusRule.
    pub fn install_monitoring(&self) -> Result<(), ApiError> {
        for c in crd::monitoring_crds() {
            self.install_crd(c)?;
        }
        Ok(())
    }

    // ---- controllers ----

    /// Set a simulated controller's mode; existing objects are reconciled right away.
    pub fn set_controller_mode(&self, c: Controller, mode: Mode) {
        self.settings
            .lock()
            .expect("settings")
            .modes
            .insert(c, mode);
        controllers::resync(&self.shared, &self.settings);
    }

    /// Hold one object whatever its controller's mode: it does not progress, e.g. a Deployment created or
    /// re-created from now on stays without available replicas. An object that exists keeps its status until its
    /// next change (no resync).
    pub fn hold_object(&self, c: Controller, namespace: &str, name: &str) {
        self.settings.lock().expect("settings").held.insert((
            c,
            namespace.to_owned(),
            name.to_owned(),
        ));
    }

    /// Ends [`Simulator::hold_object`]; existing objects are reconciled right away.
    pub fn release_object(&self, c: Controller, namespace: &str, name: &str) {
        self.settings.lock().expect("settings").held.remove(&(
            c,
            namespace.to_owned(),
            name.to_owned(),
        ));
        controllers::resync(&self.shared, &self.settings);
    }

    /// Delay before controllers finish (rollout/job/bind time).
    pub fn set_controller_delay(&self, d: Duration) {
        self.settings.lock().expect("settings").delay = d;
    }

    /// Change any controller setting (e.g. `deployment_pods`, `default_storage_class`), then resync.
    pub fn configure_controllers(&self, f: impl FnOnce(&mut ControllerSettings)) {
        f(&mut self.settings.lock().expect("settings"));
        controllers::resync(&self.shared, &self.settings);
    }

    /// Run every controller over every object it manages now (e.g. after `Hold` → `Succeed`).
    pub fn resync_controllers(&self) {
        controllers::resync(&self.shared, &self.settings);
    }

    // ---- faults ----

    pub fn inject_fault(&self, rule: FaultRule) {
        self.shared.faults.lock().expect("faults").rules.push(rule);
    }

    pub fn clear_faults(&self) {
        let mut f = self.shared.faults.lock().expect("faults");
        f.rules.clear();
        f.latency = Duration::ZERO;
    }

    /// Added latency on every request.
    pub fn set_latency(&self, d: Duration) {
        self.shared.faults.lock().expect("faults").latency = d;
    }

    /// Cut every open watch connection (clients re-watch from their last rv).
    pub fn drop_watches(&self) {
        self.shared.drop_watches.send_modify(|v| *v += 1);
    }

    /// Forget all retained watch history: watches resuming from an older rv get 410 Expired.
    pub fn compact_history(&self) {
        self.shared.lock().compact();
    }

    /// Keep only the last `n` events for resuming watches.
    pub fn set_history_limit(&self, n: usize) {
        self.shared.lock().set_history_limit(n);
    }

    /// Answer every request with 503 while `on` (an apiserver that is up but not serving,
    /// e.g. behind a load balancer during a rollout). Open watches are cut when switched on.
    pub fn set_unavailable(&self, on: bool) {
        self.shared.unavailable.store(on, Ordering::SeqCst);
        if on {
            self.drop_watches();
        }
    }

    /// A full apiserver restart that keeps the store: the listener closes (connections are
    /// refused), every watch is cut, requests in flight get a moment to finish, then every
    /// connection of the old server is closed, idle keep-alive ones included (a client sees EOF
    /// or a reset once and reconnects), and after `downtime` the server listens again on the
    /// same address. With `compact`, the watch history is lost too, so watchers resuming from
    /// their last resourceVersion get 410 Expired and must relist (a restart against a
    /// compacted etcd).
    pub async fn restart(&self, downtime: Duration, compact: bool) -> Result<(), SimError> {
        self.drop_watches();
        let old = self.server.lock().expect("server").take();
        if let Some(s) = old {
            // A watch opened while the server drains subscribed after that cut and would hold the drain until its
            // deadline (when its connection is closed): keep cutting until drained.
            let cut = async {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    self.drop_watches();
                }
            };
            tokio::select! {
                () = s.stop() => {}
                () = cut => {}
            }
        }
        if compact {
            self.compact_history();
        }
        tokio::time::sleep(downtime).await;
        // The port was just released; a listener socket may take a moment to be rebindable.
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.shared.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    tracing::debug!("rebind {}: {e}", self.shared.addr);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        *self.server.lock().expect("server") = Some(spawn_server(self.shared.clone(), listener));
        Ok(())
    }

    // ---- metrics and direct store access ----

    /// Request counters (`apiserver_request_total`) and the audit log.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.metrics.requests()
    }

    /// Waits until no request (watches excepted) is being served, so every change a client has seen is in
    /// [`Simulator::requests`] and the counters: a change reaches watchers before its request is logged.
    pub async fn requests_landed(&self) {
        self.shared.metrics.requests_landed().await
    }

    /// Wait until `cond` holds, re-checking it after every store change (no polling); gives up
    /// after `timeout` and returns whether it held. Useful for asserting on what the GC or
    /// simulated controllers did.
    pub async fn wait_until(&self, timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
        let mut rx = self.shared.lock().tx.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if cond() {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return cond(),
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return cond(),
                Ok(_) => {}
            }
        }
    }

    /// Current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv
    }

    /// Read an object straight from the store (no request counted).
    pub fn get(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let st = self.shared.lock();
        let rd = st.find(group, plural)?;
        st.get_raw(&rd, namespace, name).cloned()
    }

    /// All objects of a resource (no request counted).
    pub fn list(&self, group: &str, plural: &str, namespace: Option<&str>) -> Vec<Value> {
        let st = self.shared.lock();
        match st.find(group, plural) {
            Some(rd) => st.list(&rd, namespace).into_iter().cloned().collect(),
            None => vec![],
        }
    }

    /// How many objects of a resource satisfy `pred`, looked at in place (no copy, no request counted): for
    /// polling many objects, where [`Simulator::list`] would copy all of them each time.
    pub fn count(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> usize {
        let st = self.shared.lock();
        match st.find(group, plural) {
            Some(rd) => st
                .list(&rd, namespace)
                .into_iter()
                .filter(|o| pred(o))
                .count(),
            None => 0,
        }
    }

    /// Create an object directly (as manager `kube-sim`), e.g. fixtures.
    pub fn create(&self, obj: Value) -> Result<Value, ApiError> {
        let mut st = self.shared.lock();
        let av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let rd = st
            .find_kind(&av, &kind)
            .ok_or_else(|| ApiError::BadRequest(format!("no kind {kind} in {av}")))?;
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let version = av.rsplit('/').next().unwrap_or("v1").to_string();
        let ctx = WriteOpts {
            manager: "kube-sim".into(),
            version,
            ..Default::default()
        };
        st.create(&rd, &ns, obj, &ctx, Managed::Update)
    }

    /// Internal access for advanced tests.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.stop_tx.send(true);
        self.shared.drop_watches.send_modify(|v| *v += 1);
        for t in &self.tasks {
            t.abort();
        }
        if let Ok(mut s) = self.server.lock()
            && let Some(s) = s.take()
        {
            let _ = s.stop.send(true);
            s.connections.close_all();
            s.handle.abort();
        }
    }
}

/// A running HTTP server and the means to stop it.
struct ServerTask {
    handle: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    connections: Arc<server::Connections>,
}

/// How long a stopping server lets requests in flight finish before it closes their connections (kube-apiserver
/// drains too, then goes away with every connection).
const DRAIN_DEADLINE: Duration = Duration::from_secs(1);

impl ServerTask {
    /// Graceful stop (watches were cut before; idle keep-alive connections close at once), then every connection
    /// still open is closed: none outlives its server.
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(DRAIN_DEADLINE, &mut self.handle)
            .await
            .is_err()
        {
            self.connections.close_all();
            // The server future ends once its connection tasks did, which they do on their next poll.
            if tokio::time::timeout(DRAIN_DEADLINE, &mut self.handle)
                .await
                .is_err()
            {
                self.handle.abort();
            }
        }
        self.connections.close_all();
    }
}

fn spawn_server(shared: Arc<Shared>, listener: tokio::net::TcpListener) -> ServerTask {
    let (stop, mut stop_rx) = tokio::sync::watch::channel(false);
    let connections = Arc::new(server::Connections::default());
    let listener = server::ConnectionListener::new(listener, connections.clone());
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: axum::http::HeaderMap,
              body: axum::body::Bytes| {
            let s = shared.clone();
            async move { server::handle(s, method, uri, headers, body).await }
        },
    );
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.changed().await;
            })
            .await;
    });
    ServerTask {
        handle,
        stop,
        connections,
    }
}

pub fn kubeconfig_yaml(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-sim\n  cluster:\n    server: {url}\ncontexts:\n- name: kube-sim\n  context:\n    cluster: kube-sim\n    user: kube-sim\n    namespace: default\ncurrent-context: kube-sim\nusers:\n- name: kube-sim\n  user:\n    token: kube-sim\npreferences: {{}}\n"
    )
}
