//! The geo-replicated upgrade of the 3.11 manual (§5.2.2 procedure), with three sites A, B and C: three OpenShift
//! clusters, each with its own operator, sharing one external database, Redis and storage configuration (the
//! `examples/geo-replication` bundle; postgres, clairpostgres, redis and objectstorage unmanaged, as
//! geo-replication requires). B and C are scaled to zero with `overrides.replicas: 0` on quay, clair and mirror
//! (autoscaling off); A's operator is upgraded and runs the migration; then B's and C's operators are upgraded and
//! the overrides removed. Each step asserts what the manual says happens.

#[path = "common/sim.rs"]
mod sim;

use std::collections::BTreeMap;

use kube::api::{Patch, PatchParams};
use quay_operator::config::managed_keys::MANAGED_KEYS_SUFFIX;
use quay_operator::render::OperatorSettings;
use serde_json::{Value, json};
use sim::{Cluster, Platform, QUAY_VERSION, conditions};

const NS: &str = "quay-enterprise";
const REG: &str = "registry";
const BUNDLE: &str = "georep-config-bundle";
const OLDER: &str = "v3.10.2";

/// One site: its cluster, its operator, its storage preference.
struct Site {
    name: &'static str,
    storage: &'static str,
    cluster: Cluster,
    operator: tokio::task::JoinHandle<()>,
}

fn settings(version: &str) -> OperatorSettings {
    OperatorSettings {
        quay_version: version.into(),
        ..sim::settings()
    }
}

/// The shared bundle of examples/geo-replication (the same `config.yaml` at every site, as the manual requires).
fn georeplication_bundle() -> BTreeMap<String, String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/geo-replication/config-bundle.yaml");
    let secret: Value = serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    secret["stringData"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// The site's components: the manual's geo-replication list, plus, while `scaled_down`, autoscaling off and
/// `replicas: 0` on quay, clair and mirror (procedure step 1).
fn components(storage: &str, scaled_down: bool) -> Value {
    let preference =
        json!({"env": [{"name": "QUAY_DISTRIBUTED_STORAGE_PREFERENCE", "value": storage}]});
    let mut quay = preference.clone();
    let mut mirror = preference;
    let mut list = vec![
        json!({"kind": "objectstorage", "managed": false}),
        json!({"kind": "route", "managed": true}),
        json!({"kind": "tls", "managed": false}),
        json!({"kind": "postgres", "managed": false}),
        json!({"kind": "clairpostgres", "managed": false}),
        json!({"kind": "redis", "managed": false}),
    ];
    if scaled_down {
        quay["replicas"] = json!(0);
        mirror["replicas"] = json!(0);
        list.push(json!({"kind": "horizontalpodautoscaler", "managed": false}));
        list.push(json!({"kind": "clair", "managed": true, "overrides": {"replicas": 0}}));
    }
    list.push(json!({"kind": "quay", "managed": true, "overrides": quay}));
    list.push(json!({"kind": "mirror", "managed": true, "overrides": mirror}));
    Value::Array(list)
}

impl Site {
    /// A cluster whose operator deploys `OLDER`, with the site's registry installed and healthy.
    async fn install(name: &'static str, storage: &'static str) -> Site {
        let cluster = Cluster::start(Platform::OpenShift).await;
        cluster.stop_operator();
        cluster
            .sim
            .configure_controllers(|c| c.deployment_pods = true);
        cluster.namespace(NS).await;
        let bundle = georeplication_bundle();
        let data: Vec<(&str, &str)> = bundle
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        cluster.secret(NS, BUNDLE, "Opaque", &data).await;
        cluster
            .create_registry(json!({
                "apiVersion": "quay.redhat.com/v1", "kind": "QuayRegistry",
                "metadata": {"name": REG, "namespace": NS},
                "spec": {"configBundleSecret": BUNDLE, "components": components(storage, false)},
            }))
            .await;
        let operator = cluster.spawn_operator(settings(OLDER));
        let site = Site {
            name,
            storage,
            cluster,
            operator,
        };
        site.wait_version(OLDER, true).await;
        site
    }

    /// Waits until the registry runs `version` (migration done) and, when `healthy`, every condition is good.
    async fn wait_version(&self, version: &str, healthy: bool) -> quay_operator::api::QuayRegistry {
        self.cluster
            .wait(NS, REG, &format!("site {} on {version}", self.name), |r| {
                r.status.as_ref().and_then(|s| s.current_version.as_deref()) == Some(version)
                    && conditions(r)
                        .get("ComponentsCreated")
                        .is_some_and(|c| c.status == "True")
                    && (!healthy || sim::is_healthy(r))
            })
            .await
    }

    async fn upgrade_operator(&mut self, version: &str) {
        self.operator.abort();
        self.operator = self.cluster.spawn_operator(settings(version));
    }

    async fn set_scaled_down(&self, scaled_down: bool) {
        let patch = json!({"spec": {"components": components(self.storage, scaled_down)}});
        self.cluster
            .api(NS)
            .patch(REG, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }

    fn replicas(&self, deployment: &str) -> Value {
        self.cluster
            .deployment(NS, &format!("{REG}-{deployment}"))
            .unwrap_or_else(|| panic!("site {}: {deployment}", self.name))["spec"]["replicas"]
            .clone()
    }

    /// Pods of quay-app, the mirror workers and clair-app (what the manual's step 2 waits to be gone).
    fn serving_pods(&self) -> Vec<String> {
        self.cluster
            .sim
            .list("", "pods", Some(NS))
            .into_iter()
            .filter(|p| {
                matches!(
                    p["metadata"]["labels"]["quay-component"].as_str(),
                    Some("quay-app" | "quay-mirror" | "clair-app")
                )
            })
            .map(|p| p["metadata"]["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The Quay version the migration Job was made for, if there is one.
    fn migration_version(&self) -> Option<String> {
        self.cluster
            .sim
            .get("batch", "jobs", NS, &format!("{REG}-quay-app-upgrade"))
            .and_then(|j| {
                j["metadata"]["annotations"]["quay-operator.rs/quay-version"]
                    .as_str()
                    .map(str::to_owned)
            })
    }

    /// What must never change: the managed keys and the config bundle (which holds the shared DB_URI).
    fn kept(&self) -> (Value, Value) {
        let data =
            |name: &str| self.cluster.sim.get("", "secrets", NS, name).unwrap()["data"].clone();
        (data(&format!("{REG}-{MANAGED_KEYS_SUFFIX}")), data(BUNDLE))
    }

    async fn stop(self) {
        self.operator.abort();
        self.cluster.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_replicated_sites_upgrade_one_at_a_time_with_the_others_scaled_to_zero() {
    let mut a = Site::install("A", "usstorage").await;
    let mut b = Site::install("B", "eustorage").await;
    let mut c = Site::install("C", "eustorage").await;
    let kept: Vec<_> = [&a, &b, &c].iter().map(|s| s.kept()).collect();
    for site in [&a, &b, &c] {
        assert_eq!(site.migration_version().as_deref(), Some(OLDER));
        assert!(!site.serving_pods().is_empty(), "site {} serves", site.name);
    }

    // Step 1-2: B and C scaled to zero through overrides; their quay, mirror and clair pods go away.
    for site in [&b, &c] {
        site.set_scaled_down(true).await;
    }
    for site in [&b, &c] {
        site.cluster
            .wait_list("", "pods", NS, "quay, mirror and clair pods gone", |pods| {
                !pods.iter().any(|p| {
                    matches!(
                        p["metadata"]["labels"]["quay-component"].as_str(),
                        Some("quay-app" | "quay-mirror" | "clair-app")
                    )
                })
            })
            .await;
        for deployment in ["quay-app", "quay-mirror", "clair-app"] {
            assert_eq!(
                site.replicas(deployment),
                0,
                "site {} {deployment}",
                site.name
            );
        }
        // The databases' clients are gone; Redis (unmanaged here) and the external database are shared.
        assert!(
            site.cluster
                .deployment(NS, &format!("{REG}-quay-database"))
                .is_none()
        );
    }
    // A keeps running, untouched.
    assert!(!a.serving_pods().is_empty());

    // Step 3-4: A's operator is upgraded; A runs the migration against the shared database and comes back.
    a.upgrade_operator(QUAY_VERSION).await;
    let r = a.wait_version(QUAY_VERSION, true).await;
    assert!(sim::is_healthy(&r));
    assert_eq!(a.migration_version().as_deref(), Some(QUAY_VERSION));
    assert!(!a.serving_pods().is_empty(), "A serves the new version");
    // Only A migrated: B and C, still on their older operators, did not move and stay at zero.
    for site in [&b, &c] {
        assert_eq!(site.migration_version().as_deref(), Some(OLDER));
        let r = site.cluster.api(NS).get(REG).await.unwrap();
        assert_eq!(
            r.status.unwrap().current_version.as_deref(),
            Some(OLDER),
            "site {}",
            site.name
        );
        assert!(site.serving_pods().is_empty(), "site {}", site.name);
    }

    // Step 6: B's and C's operators upgraded: they reach the new version; still scaled to zero.
    for site in [&mut b, &mut c] {
        site.upgrade_operator(QUAY_VERSION).await;
    }
    for site in [&b, &c] {
        site.wait_version(QUAY_VERSION, false).await;
        assert_eq!(site.migration_version().as_deref(), Some(QUAY_VERSION));
        for deployment in ["quay-app", "quay-mirror", "clair-app"] {
            assert_eq!(
                site.replicas(deployment),
                0,
                "site {} {deployment}",
                site.name
            );
        }
    }

    // Step 7: the overrides removed; B and C serve again, everything healthy everywhere.
    for site in [&b, &c] {
        site.set_scaled_down(false).await;
    }
    for site in [&a, &b, &c] {
        site.wait_version(QUAY_VERSION, true).await;
        site.cluster
            .wait_list("", "pods", NS, "serving again", |pods| {
                pods.iter()
                    .any(|p| p["metadata"]["labels"]["quay-component"] == "quay-app")
            })
            .await;
    }
    let after: Vec<_> = [&a, &b, &c].iter().map(|s| s.kept()).collect();
    assert_eq!(
        after, kept,
        "managed keys and the shared configuration unchanged"
    );
    for site in [a, b, c] {
        site.stop().await;
    }
}
