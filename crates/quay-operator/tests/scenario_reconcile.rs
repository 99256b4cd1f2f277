//! User story: upstream's e2e `reconcile` (facts §10.1, steps 1–5 and 8–16; 6–7 push/pull need a running Quay).
//! A registry with workload overrides comes up; a component is unmanaged, scaled by hand, re-managed, scaled to
//! zero and back; deleted Deployments come back; the rendered config Secret is stable until the bundle changes,
//! and the old one goes once quay-app rolled out the new one. On plain Kubernetes and on OpenShift.

#[path = "common/sim.rs"]
mod sim;

use kube_sim::Controller;
use serde_json::{Value, json};
use sim::{Cluster, Platform, annotation, assert_condition, conditions, is_healthy, template};

const NS: &str = "reconcile-ns";
const NAME: &str = "reconcile";

fn affinity() -> Value {
    json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]}
    ]}}})
}

fn workload_overrides(with_affinity: bool) -> Value {
    let mut o = json!({
        "labels": {"l1": "TESTING", "l2": "TESTING"},
        "annotations": {"a1": "TESTING", "a2": "TESTING"},
        "env": [{"name": "TESTING", "value": "TESTING"}],
    });
    if with_affinity {
        o["affinity"] = affinity();
    }
    o
}

fn components(mirror: Value) -> Value {
    let mut list = vec![
        json!({"kind": "quay", "managed": true, "overrides": workload_overrides(true)}),
        json!({"kind": "clair", "managed": true, "overrides": workload_overrides(true)}),
        json!({"kind": "postgres", "managed": true, "overrides": workload_overrides(false)}),
        json!({"kind": "redis", "managed": true, "overrides": workload_overrides(false)}),
        json!({"kind": "clairpostgres", "managed": true}),
        json!({"kind": "horizontalpodautoscaler", "managed": false}),
        mirror,
    ];
    list.push(json!({"kind": "route", "managed": true, "overrides": {
        "labels": {"l1": "TESTING"}, "annotations": {"a1": "TESTING"}
    }}));
    Value::Array(list)
}

fn managed_mirror(replicas: Option<i32>) -> Value {
    let mut overrides = workload_overrides(true);
    if let Some(r) = replicas {
        overrides["replicas"] = json!(r);
    }
    json!({"kind": "mirror", "managed": true, "overrides": overrides})
}

fn platform_components(cluster: &Cluster, mirror: Value) -> Value {
    let mut c = components(mirror);
    if cluster.platform == Platform::Kubernetes {
        // values-kind.yaml: the route component is `{kind: route, managed: false}`.
        let list = c.as_array_mut().unwrap();
        list.retain(|c| c["kind"] != "route");
        list.push(json!({"kind": "route", "managed": false}));
    }
    c
}

#[track_caller]
fn assert_template_overrides(cluster: &Cluster, deployment: &str, with_affinity: bool) {
    let d = cluster
        .deployment(NS, &format!("{NAME}-{deployment}"))
        .unwrap_or_else(|| panic!("{deployment} exists"));
    let t = template(&d);
    assert_eq!(
        t["metadata"]["labels"]["l1"], "TESTING",
        "{deployment} label"
    );
    assert_eq!(
        t["metadata"]["labels"]["l2"], "TESTING",
        "{deployment} label"
    );
    assert_eq!(
        annotation(t, "a1"),
        Some("TESTING"),
        "{deployment} annotation"
    );
    assert_eq!(
        annotation(t, "a2"),
        Some("TESTING"),
        "{deployment} annotation"
    );
    if with_affinity {
        assert_eq!(t["spec"]["affinity"], affinity(), "{deployment} affinity");
    }
    let env = &t["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "TESTING" && e["value"] == "TESTING"),
        "{deployment} env: {env}"
    );
}

/// Deletes a Deployment; its condition turns False (with a Warning Event), then the operator recreates it and all
/// is healthy again (with a Normal Event).
///
/// The simulated controller would make the re-created Deployment ready at once, so whether the operator ever
/// writes the degraded state would depend on timing (a reconcile in flight, watch events batched). On a real
/// cluster the new pods take seconds to start; the re-created Deployment is held without available replicas
/// until the degraded state was reported, as a user would see it.
async fn delete_and_recover(cluster: &Cluster, deployment: &str, condition: &str) {
    let name = format!("{NAME}-{deployment}");
    let old_uid =
        cluster.deployment(NS, &name).expect("Deployment exists")["metadata"]["uid"].clone();
    let events_before = cluster.events(NS, NAME).len();
    cluster.sim.hold_object(Controller::Deployment, NS, &name);
    cluster.delete("apps", "v1", "Deployment", NS, &name).await;

    // The state the hold keeps: the re-created Deployment seen without an available replica (a "not found" in
    // between is possible but brief).
    let zero = format!("Deployment {name} has zero replicas available");
    let r = cluster
        .wait(NS, NAME, &format!("{condition}=False: {zero}"), |r| {
            conditions(r)
                .get(condition)
                .is_some_and(|c| c.status == "False" && c.message.ends_with(&zero))
        })
        .await;
    let degraded = &conditions(&r)[condition];
    assert_eq!(
        degraded.reason, "ComponentNotReady",
        "{condition}: {degraded:?}"
    );
    let recreated = cluster
        .deployment(NS, &name)
        .unwrap_or_else(|| panic!("{name} re-created while {condition} is False"));
    assert_ne!(
        recreated["metadata"]["uid"], old_uid,
        "{name} is a new Deployment"
    );
    assert_eq!(
        recreated["status"]["availableReplicas"],
        Value::Null,
        "held: {recreated:#}"
    );
    let warning = format!("{condition}=False");
    cluster
        .wait_events(NS, NAME, events_before, "degraded Warning", |events| {
            events
                .iter()
                .any(|e| e.0 == "Warning" && e.2.starts_with(&warning))
        })
        .await;

    cluster
        .sim
        .release_object(Controller::Deployment, NS, &name);
    cluster.wait_healthy(NS, NAME).await;
    let recovered = format!("{condition}=True");
    cluster
        .wait_events(
            NS,
            NAME,
            events_before,
            "recovered Normal after the Warning",
            |events| {
                events
                    .iter()
                    .position(|e| e.0 == "Warning" && e.2.starts_with(&warning))
                    .is_some_and(|w| {
                        events[w..].iter().any(|e| {
                            e.0 == "Normal"
                                && e.1 == "ComponentReady"
                                && e.2.starts_with(&recovered)
                        })
                    })
            },
        )
        .await;
    let app = cluster.deployment(NS, &name).unwrap();
    assert_eq!(
        app["status"]["availableReplicas"], app["spec"]["replicas"],
        "{app:#}"
    );
}

async fn reconcile_story(platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;

    // 1. Create: the database first, then the migration Job; overrides on every pod template; healthy.
    cluster
        .registry(
            NS,
            NAME,
            platform_components(&cluster, managed_mirror(None)),
        )
        .await;
    let healthy = cluster.wait_healthy(NS, NAME).await;
    assert_eq!(
        healthy.status.as_ref().unwrap().current_version.as_deref(),
        Some(sim::QUAY_VERSION)
    );
    let requests = cluster.sim.requests();
    let position = |needle: &str| {
        requests
            .iter()
            .position(|r| r.method != "GET" && r.uri.contains(needle))
            .unwrap_or_else(|| panic!("no write to {needle}"))
    };
    assert!(
        position(&format!("deployments/{NAME}-quay-database")) < position("jobs"),
        "migration Job created after the postgres Deployment"
    );
    for (deployment, affinity) in [
        ("quay-app", true),
        ("clair-app", true),
        ("quay-database", false),
        ("quay-redis", false),
        ("quay-mirror", true),
    ] {
        assert_template_overrides(&cluster, deployment, affinity);
    }
    let config_secrets = cluster.rendered_config_secrets(NS, NAME);
    assert_eq!(config_secrets.len(), 1, "one rendered config Secret");
    let config_secret = config_secrets[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();

    // 2. Route overrides (OpenShift).
    if platform == Platform::OpenShift {
        let route = cluster
            .sim
            .get("route.openshift.io", "routes", NS, &format!("{NAME}-quay"))
            .expect("route");
        assert_eq!(annotation(&route, "a1"), Some("TESTING"));
        assert_eq!(route["metadata"]["labels"]["l1"], "TESTING");
        assert_eq!(
            annotation(&route, "haproxy.router.openshift.io/timeout"),
            Some("30m")
        );
    }

    // 3. Unmanage mirror.
    cluster
        .set_components(
            NS,
            NAME,
            platform_components(&cluster, json!({"kind": "mirror", "managed": false})),
        )
        .await;
    let r = cluster
        .wait_condition(
            NS,
            NAME,
            "ComponentMirrorReady",
            "True",
            "ComponentNotManaged",
        )
        .await;
    assert_condition(
        &r,
        "ComponentMirrorReady",
        "True",
        "ComponentNotManaged",
        "Mirror not managed by the operator",
    );
    let r = cluster.wait_healthy(NS, NAME).await;
    assert_condition(
        &r,
        "Available",
        "True",
        "HealthChecksPassing",
        "All components reporting as healthy",
    );

    // 4. The user scales the orphaned mirror Deployment: it stays as the user left it.
    cluster
        .apply_as_user(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": format!("{NAME}-quay-mirror"), "namespace": NS},
            "spec": {"replicas": 3},
        }))
        .await;
    // The operator reacts to the Deployment's change at once; give it a moment in which nothing may happen.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mirror = cluster
        .deployment(NS, &format!("{NAME}-quay-mirror"))
        .unwrap();
    assert_eq!(
        mirror["spec"]["replicas"], 3,
        "orphaned Deployment not reverted"
    );

    // 5. Delete quay-app: Quay degrades, the Deployment comes back with 1 replica (overrides ⇒ replicas unset).
    // Both transitions are announced on the registry: degraded (Warning), then recovered (Normal).
    delete_and_recover(&cluster, "quay-app", "ComponentQuayReady").await;
    let app = cluster.deployment(NS, &format!("{NAME}-quay-app")).unwrap();
    assert_eq!(app["status"]["readyReplicas"], 1, "{app:#}");

    // 8. Re-manage mirror: overrides restored, Mirror ready.
    cluster
        .set_components(
            NS,
            NAME,
            platform_components(&cluster, managed_mirror(None)),
        )
        .await;
    let r = cluster
        .wait_condition(NS, NAME, "ComponentMirrorReady", "True", "ComponentReady")
        .await;
    assert!(
        conditions(&r)["ComponentMirrorReady"]
            .message
            .contains("healthy")
    );
    assert_template_overrides(&cluster, "quay-mirror", true);
    cluster.wait_healthy(NS, NAME).await;

    // 9. Scale mirror to zero.
    cluster
        .set_components(
            NS,
            NAME,
            platform_components(&cluster, managed_mirror(Some(0))),
        )
        .await;
    let r = cluster
        .wait(NS, NAME, "mirror scaled down", |r| {
            conditions(r)
                .get("ComponentMirrorReady")
                .is_some_and(|c| c.message == "Mirror manually scaled down")
        })
        .await;
    assert_condition(
        &r,
        "ComponentMirrorReady",
        "True",
        "ComponentReady",
        "Mirror manually scaled down",
    );
    let mirror = cluster
        .deployment(NS, &format!("{NAME}-quay-mirror"))
        .unwrap();
    assert_eq!(mirror["spec"]["replicas"], 0);

    // 10. Restore mirror to 2 replicas.
    cluster
        .set_components(
            NS,
            NAME,
            platform_components(&cluster, managed_mirror(Some(2))),
        )
        .await;
    cluster
        .wait_object(
            "apps",
            "deployments",
            NS,
            &format!("{NAME}-quay-mirror"),
            "2 replicas",
            |d| {
                d.is_some_and(|d| {
                    d["spec"]["replicas"] == 2 && d["status"]["availableReplicas"] == 2
                })
            },
        )
        .await;
    cluster.wait_healthy(NS, NAME).await;

    // 11–14. Deleted Deployments come back.
    delete_and_recover(&cluster, "clair-app", "ComponentClairReady").await;
    delete_and_recover(&cluster, "quay-mirror", "ComponentMirrorReady").await;
    delete_and_recover(&cluster, "quay-redis", "ComponentRedisReady").await;
    delete_and_recover(&cluster, "quay-database", "ComponentPostgresReady").await;

    // 15. The rendered config Secret never changed.
    let names: Vec<String> = cluster
        .rendered_config_secrets(NS, NAME)
        .iter()
        .map(|s| s["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec![config_secret.clone()], "config Secret stable");

    // 16. Rotate the config: a new Secret, the old one removed after the quay-app rollout.
    cluster
        .bundle(NS, &format!("{NAME}-config"), "TAGGING_DISABLED: true\n")
        .await;
    let after = cluster
        .wait_list("", "secrets", NS, "old config Secret replaced", |list| {
            let names: Vec<&str> = list
                .iter()
                .filter_map(|s| s["metadata"]["name"].as_str())
                .filter(|n| n.starts_with(&format!("{NAME}-quay-config-secret-")))
                .collect();
            names.len() == 1 && names[0] != config_secret
        })
        .await;
    let new_secret = after
        .iter()
        .find(|s| {
            s["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&format!("{NAME}-quay-config-secret-")))
        })
        .unwrap();
    assert!(
        sim::secret_data(new_secret, "config.yaml")
            .unwrap()
            .contains("TAGGING_DISABLED: true")
    );
    let app = cluster.deployment(NS, &format!("{NAME}-quay-app")).unwrap();
    assert!(
        template(&app)
            .to_string()
            .contains(new_secret["metadata"]["name"].as_str().unwrap()),
        "quay-app mounts the new config Secret"
    );
    let r = cluster.wait_healthy(NS, NAME).await;
    assert!(is_healthy(&r));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_story_on_kubernetes() {
    reconcile_story(Platform::Kubernetes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_story_on_openshift() {
    reconcile_story(Platform::OpenShift).await;
}
