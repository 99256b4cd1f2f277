//! User stories: upstream's e2e `unmanaged_clair`, `unmanaged_postgres` and `unmanaged_redis` (facts §10.1): the
//! admin brings a component of their own, configured in the bundle; the operator deploys none of it and the
//! registry is healthy. On plain Kubernetes and on OpenShift.

#[path = "common/sim.rs"]
mod sim;

use serde_json::{Value, json};
use sim::{Cluster, Platform, assert_condition};

const NS: &str = "unmanaged-ns";

fn labelled(cluster: &Cluster, component: &str) -> Vec<Value> {
    cluster
        .sim
        .list("apps", "deployments", Some(NS))
        .into_iter()
        .filter(|d| d["metadata"]["labels"]["quay-component"] == component)
        .collect()
}

async fn story(
    platform: Platform,
    name: &str,
    extra_config: &str,
    unmanaged: &[&str],
    absent: &[&str],
) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;
    let bundle = format!("{name}-config");
    cluster.bundle(NS, &bundle, extra_config).await;
    let components: Vec<Value> = unmanaged
        .iter()
        .map(|k| json!({"kind": k, "managed": false}))
        .collect();
    cluster
        .create_registry(cluster.registry_json(NS, name, &bundle, Value::Array(components)))
        .await;
    let r = cluster.wait_healthy(NS, name).await;
    for component in absent {
        assert!(
            labelled(&cluster, component).is_empty(),
            "no {component} Deployment"
        );
    }
    let app = cluster
        .deployment(NS, &format!("{name}-quay-app"))
        .expect("quay-app");
    assert!(
        app["status"]["readyReplicas"].as_i64().unwrap_or(0) > 0,
        "quay-app ready"
    );
    for kind in unmanaged {
        let (t, what) = match *kind {
            "clair" => ("ComponentClairReady", "Clair"),
            "clairpostgres" => ("ComponentClairPostgresReady", "ClairPostgres"),
            "postgres" => ("ComponentPostgresReady", "Postgres"),
            "redis" => ("ComponentRedisReady", "Redis"),
            _ => continue,
        };
        assert_condition(
            &r,
            t,
            "True",
            "ComponentNotManaged",
            &format!("{what} not managed by the operator"),
        );
    }
    cluster.stop().await;
}

const EXTERNAL_POSTGRES: &str = "DB_URI: postgresql://quay:quay-password@external-postgres:5432/quay\n\
DB_CONNECTION_ARGS:\n  autorollback: true\n  threadlocals: true\n";
const EXTERNAL_REDIS: &str = "BUILDLOGS_REDIS:\n  host: external-redis\n  port: 6379\n\
USER_EVENTS_REDIS:\n  host: external-redis\n  port: 6379\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_clair_on_kubernetes() {
    story(
        Platform::Kubernetes,
        "noclair",
        "",
        &["clair", "clairpostgres"],
        &["clair-app", "clair-postgres"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_clair_on_openshift() {
    story(
        Platform::OpenShift,
        "noclair",
        "",
        &["clair", "clairpostgres"],
        &["clair-app", "clair-postgres"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_postgres_on_kubernetes() {
    story(
        Platform::Kubernetes,
        "nopg",
        EXTERNAL_POSTGRES,
        &["postgres", "clair", "clairpostgres"],
        &["postgres"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_postgres_on_openshift() {
    story(
        Platform::OpenShift,
        "nopg",
        EXTERNAL_POSTGRES,
        &["postgres", "clair", "clairpostgres"],
        &["postgres"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_redis_on_kubernetes() {
    story(
        Platform::Kubernetes,
        "noredis",
        EXTERNAL_REDIS,
        &["redis"],
        &["redis"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_redis_on_openshift() {
    story(
        Platform::OpenShift,
        "noredis",
        EXTERNAL_REDIS,
        &["redis"],
        &["redis"],
    )
    .await;
}
