//! User stories: upstream's e2e `external_tls`, `tls_security_profile`, `unmanaged_route_tls` (A/B/C) and
//! `ca_rotation` (facts §10.1, §4.5–4.7): certificates come from the bundle, an external `kubernetes.io/tls`
//! Secret or the cluster, and every rotation restarts exactly the pods that serve or trust them.

#[path = "common/sim.rs"]
mod sim;

use std::net::IpAddr;

use rcgen::{CertificateParams, KeyPair, SanType};
use serde_json::{Value, json};
use sim::{Cluster, Platform, annotation, assert_condition, conditions, secret_data, template};

const NS: &str = "tls-ns";
const DOMAIN: &str = "apps.sim.example.com";
const TLS_HASH: &str = "quay.redhat.com/tls-secret-hash";

/// A self-signed EC P-256 certificate for `names` and its key (PEM).
fn certificate(names: &[&str]) -> (String, String) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName((*n).try_into().unwrap()),
        })
        .collect();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn template_annotation(cluster: &Cluster, deployment: &str, key: &str) -> Option<String> {
    let d = cluster.deployment(NS, deployment)?;
    annotation(template(&d), key).map(str::to_owned)
}

/// Bundle files of the platform without `ssl.cert`/`ssl.key`, with `extra` appended to `config.yaml`.
fn bundle_without_certs(cluster: &Cluster, extra: &str) -> Vec<(String, String)> {
    let mut files = cluster.platform_bundle();
    files.remove("ssl.cert");
    files.remove("ssl.key");
    files.get_mut("config.yaml").unwrap().push_str(extra);
    files.into_iter().collect()
}

async fn write_bundle(cluster: &Cluster, name: &str, files: &[(String, String)]) {
    let data: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    cluster.secret(NS, name, "Opaque", &data).await;
}

async fn external_tls_story(platform: Platform) {
    let cluster = Cluster::start(platform).await;
    cluster.namespace(NS).await;
    let host = match platform {
        Platform::OpenShift => format!("ext-quay-{NS}.{DOMAIN}"),
        Platform::Kubernetes => "quay.example.com".to_owned(),
    };
    let tls_secret = |(cert, key): &(String, String)| {
        vec![
            ("tls.crt".to_owned(), cert.clone()),
            ("tls.key".to_owned(), key.clone()),
        ]
    };
    let write_tls = async |pair: &(String, String)| {
        let data = tls_secret(pair);
        let data: Vec<(&str, &str)> = data.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        cluster
            .secret(NS, "external-tls-cert", "kubernetes.io/tls", &data)
            .await;
    };
    let first = certificate(&[&host, "localhost", "127.0.0.1"]);
    write_tls(&first).await;
    write_bundle(&cluster, "ext-config", &bundle_without_certs(&cluster, "")).await;
    let components =
        json!([{"kind": "tls", "managed": false, "secretRef": {"name": "external-tls-cert"}}]);
    cluster
        .create_registry(cluster.registry_json(NS, "ext", "ext-config", components))
        .await;
    let r = cluster.wait_healthy(NS, "ext").await;
    assert_condition(
        &r,
        "ComponentTLSReady",
        "True",
        "ComponentReady",
        "Using externally managed TLS certificate",
    );
    let secret = cluster
        .sim
        .get("", "secrets", NS, "external-tls-cert")
        .unwrap();
    assert_eq!(
        secret["metadata"]["labels"]["quay.redhat.com/tls-secret"],
        "true"
    );
    let hash =
        template_annotation(&cluster, "ext-quay-app", TLS_HASH).expect("tls hash on quay-app");
    assert_eq!(
        template_annotation(&cluster, "ext-clair-app", TLS_HASH),
        Some(hash.clone())
    );
    if platform == Platform::OpenShift {
        let route = cluster
            .sim
            .get("route.openshift.io", "routes", NS, "ext-quay")
            .unwrap();
        assert_eq!(route["spec"]["tls"]["termination"], "passthrough");
    }

    // Rotation: a new certificate in the same Secret restarts quay-app and clair-app.
    write_tls(&certificate(&[&host])).await;
    cluster
        .wait_object(
            "apps",
            "deployments",
            NS,
            "ext-quay-app",
            "new tls hash",
            |d| {
                d.and_then(|d| annotation(template(d), TLS_HASH))
                    .is_some_and(|h| h != hash)
            },
        )
        .await;
    let rotated = template_annotation(&cluster, "ext-quay-app", TLS_HASH).unwrap();
    cluster
        .wait_object(
            "apps",
            "deployments",
            NS,
            "ext-clair-app",
            "clair has the new hash",
            |d| d.and_then(|d| annotation(template(d), TLS_HASH)) == Some(rotated.as_str()),
        )
        .await;
    cluster.wait_healthy(NS, "ext").await;

    // Deleting the Secret: TLS degrades, the rollout is blocked, nothing is removed.
    let deployments_before = cluster.workloads(NS).len();
    cluster
        .delete("", "v1", "Secret", NS, "external-tls-cert")
        .await;
    let r = cluster
        .wait_condition(NS, "ext", "ComponentTLSReady", "False", "ComponentNotReady")
        .await;
    assert_eq!(
        conditions(&r)["ComponentTLSReady"].message,
        "External TLS secret not found"
    );
    let r = cluster
        .wait_condition(NS, "ext", "RolloutBlocked", "True", "ConfigInvalid")
        .await;
    assert_eq!(
        conditions(&r)["RolloutBlocked"].message,
        "external TLS secret error: unable to get TLS secret \"external-tls-cert\": secrets \"external-tls-cert\" not found"
    );
    assert_eq!(
        cluster.workloads(NS).len(),
        deployments_before,
        "nothing deleted"
    );

    // Re-creating it (without the operator's label): healthy again.
    write_tls(&first).await;
    cluster.wait_healthy(NS, "ext").await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_tls_on_openshift() {
    external_tls_story(Platform::OpenShift).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_tls_on_kubernetes() {
    external_tls_story(Platform::Kubernetes).await;
}

/// OpenShift only: the APIServer's TLS security profile reaches Quay's config when tls is unmanaged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_security_profile_on_openshift() {
    let cluster = Cluster::start(Platform::OpenShift).await;
    cluster.namespace(NS).await;
    // The simulator ships OpenShift's `cluster` APIServer without a profile: OpenShift's default, Intermediate.
    assert!(
        cluster
            .sim
            .get("config.openshift.io", "apiservers", "", "cluster")
            .is_some()
    );
    let (cert, key) = certificate(&["localhost"]);
    let files = vec![
        (
            "config.yaml".to_owned(),
            "SERVER_HOSTNAME: localhost\n".to_owned(),
        ),
        ("ssl.cert".to_owned(), cert),
        ("ssl.key".to_owned(), key),
    ];
    write_bundle(&cluster, "profile-config", &files).await;
    let components =
        json!([{"kind": "tls", "managed": false}, {"kind": "route", "managed": false}]);
    cluster
        .create_registry(cluster.registry_json(NS, "profile", "profile-config", components))
        .await;
    cluster.wait_healthy(NS, "profile").await;
    let secrets = cluster.rendered_config_secrets(NS, "profile");
    assert_eq!(secrets.len(), 1);
    let config: Value =
        serde_saphyr::from_str(&secret_data(&secrets[0], "config.yaml").unwrap()).unwrap();
    // No profile set: OpenShift's default, Intermediate.
    assert_eq!(config["SSL_PROTOCOLS"], json!(["TLSv1.2", "TLSv1.3"]));
    let ciphers = config["SSL_CIPHERS"].as_array().expect("SSL_CIPHERS list");
    assert_eq!(ciphers.len(), 11, "{ciphers:?}");
    assert_eq!(ciphers[0], "TLS_AES_128_GCM_SHA256");
    cluster.stop().await;
}

/// OpenShift only: unmanaged TLS behind a managed Route (A), a custom hostname without a Route (B), and
/// unmanaged TLS without certificates (C, blocked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_route_tls_on_openshift() {
    let cluster = Cluster::start(Platform::OpenShift).await;
    cluster.namespace(NS).await;

    // A: managed Route, unmanaged TLS with a certificate for the Route's host: passthrough.
    let host_a = format!("route-tls-a-quay-{NS}.{DOMAIN}");
    let (cert, key) = certificate(&[&host_a]);
    let files = vec![
        (
            "config.yaml".to_owned(),
            "EXTERNAL_TLS_TERMINATION: false\n".to_owned(),
        ),
        ("ssl.cert".to_owned(), cert),
        ("ssl.key".to_owned(), key),
    ];
    write_bundle(&cluster, "route-tls-a-config", &files).await;
    cluster
        .create_registry(cluster.registry_json(
            NS,
            "route-tls-a",
            "route-tls-a-config",
            json!([{"kind": "tls", "managed": false}]),
        ))
        .await;

    // B: Route and TLS unmanaged, custom hostname: no Route at all.
    let host_b = format!("quayqe-{NS}.{DOMAIN}");
    let (cert, key) = certificate(&[&host_b]);
    let files = vec![
        (
            "config.yaml".to_owned(),
            format!("SERVER_HOSTNAME: {host_b}\n"),
        ),
        ("ssl.cert".to_owned(), cert),
        ("ssl.key".to_owned(), key),
    ];
    write_bundle(&cluster, "route-tls-b-config", &files).await;
    cluster
        .create_registry(cluster.registry_json(
            NS,
            "route-tls-b",
            "route-tls-b-config",
            json!([{"kind": "tls", "managed": false}, {"kind": "route", "managed": false}]),
        ))
        .await;

    // C: managed Route, unmanaged TLS, no certificates.
    write_bundle(
        &cluster,
        "route-tls-c-config",
        &[("config.yaml".to_owned(), "{}\n".to_owned())],
    )
    .await;
    cluster
        .create_registry(cluster.registry_json(
            NS,
            "route-tls-c",
            "route-tls-c-config",
            json!([{"kind": "tls", "managed": false}]),
        ))
        .await;

    cluster.wait_healthy(NS, "route-tls-a").await;
    let route = cluster
        .sim
        .get("route.openshift.io", "routes", NS, "route-tls-a-quay")
        .unwrap();
    assert_eq!(route["spec"]["tls"]["termination"], "passthrough");

    let r = cluster.wait_healthy(NS, "route-tls-b").await;
    assert_condition(
        &r,
        "ComponentRouteReady",
        "True",
        "ComponentNotManaged",
        "Route is not managed by the operator",
    );
    let routes = cluster.sim.list("route.openshift.io", "routes", Some(NS));
    assert!(
        !routes
            .iter()
            .any(|r| r["metadata"]["labels"]["quay-operator/quayregistry"] == "route-tls-b"),
        "no Route for B"
    );

    let r = cluster
        .wait_condition(NS, "route-tls-c", "RolloutBlocked", "True", "ConfigInvalid")
        .await;
    assert_eq!(
        conditions(&r)["RolloutBlocked"].message,
        "required component `tls` marked as unmanaged, but `configBundleSecret` is missing necessary fields"
    );
    assert!(
        cluster.deployment(NS, "route-tls-c-quay-app").is_none(),
        "nothing rolled out for C"
    );
    assert_eq!(conditions(&r)["Available"].status, "False");
    cluster.stop().await;
}

/// OpenShift only: the service CA injected into `<reg>-cluster-service-ca` rotates; pod templates follow, the
/// databases do not restart, and every condition is healthy before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_rotation_on_openshift() {
    let cluster = Cluster::start(Platform::OpenShift).await;
    cluster.namespace(NS).await;
    let unmanaged = [
        "monitoring",
        "mirror",
        "horizontalpodautoscaler",
        "clair",
        "clairpostgres",
    ];
    let components: Vec<Value> = unmanaged
        .iter()
        .map(|k| json!({"kind": k, "managed": false}))
        .collect();
    cluster.registry(NS, "ca", Value::Array(components)).await;

    let assert_exact = |r: &quay_operator::api::QuayRegistry| {
        let status = r.status.as_ref().unwrap();
        for c in status.components.as_ref().unwrap() {
            let kind = c.kind.as_str();
            assert_eq!(c.managed, !unmanaged.contains(&kind), "{kind}");
            assert_eq!(c.defaulted, !unmanaged.contains(&kind), "{kind} defaulted");
        }
        let c = conditions(r);
        for (t, reason) in [
            ("ComponentHPAReady", "ComponentNotManaged"),
            ("ComponentMonitoringReady", "ComponentNotManaged"),
            ("ComponentMirrorReady", "ComponentNotManaged"),
            ("ComponentClairReady", "ComponentNotManaged"),
            ("ComponentClairPostgresReady", "ComponentNotManaged"),
            ("ComponentQuayReady", "ComponentReady"),
            ("ComponentPostgresReady", "ComponentReady"),
            ("ComponentRedisReady", "ComponentReady"),
            ("ComponentObjectStorageReady", "ComponentReady"),
            ("ComponentRouteReady", "ComponentReady"),
            ("ComponentTLSReady", "ComponentReady"),
            ("Available", "HealthChecksPassing"),
            ("ComponentsCreated", "ComponentsCreationSuccess"),
            ("RolloutBlocked", "ComponentsCreationSuccess"),
        ] {
            assert_eq!(c[t].reason, reason, "{t}: {:?}", c[t]);
            let status = if t == "RolloutBlocked" {
                "False"
            } else {
                "True"
            };
            assert_eq!(c[t].status, status, "{t}");
        }
    };
    let r = cluster.wait_healthy(NS, "ca").await;
    assert_exact(&r);

    let before =
        template_annotation(&cluster, "ca-quay-app", "cluster-service-ca").expect("annotation");
    let db_before = template(&cluster.deployment(NS, "ca-quay-database").unwrap()).clone();
    for (round, ca) in ["CA ONE", "CA TWO"].iter().enumerate() {
        let previous = template_annotation(&cluster, "ca-quay-app", "cluster-service-ca").unwrap();
        // What OpenShift's service-CA operator does: (re)inject the bundle into the annotated ConfigMap.
        cluster
            .merge_patch(
                ("", "v1", "ConfigMap"),
                NS,
                "ca-cluster-service-ca",
                json!({"data": {"service-ca.crt": ca}}),
            )
            .await;
        cluster
            .wait_object(
                "apps",
                "deployments",
                NS,
                "ca-quay-app",
                "new CA hash",
                |d| {
                    d.and_then(|d| annotation(template(d), "cluster-service-ca"))
                        .is_some_and(|h| h != previous)
                },
            )
            .await;
        let r = cluster.wait_healthy(NS, "ca").await;
        assert_exact(&r);
        assert_ne!(
            template_annotation(&cluster, "ca-quay-app", "cluster-service-ca").unwrap(),
            before,
            "round {round}"
        );
    }
    let cm = cluster
        .sim
        .get("", "configmaps", NS, "ca-cluster-service-ca")
        .unwrap();
    assert_eq!(
        cm["data"]["service-ca.crt"], "CA TWO",
        "the operator never overwrites the injected CA"
    );
    assert_eq!(
        template(&cluster.deployment(NS, "ca-quay-database").unwrap()),
        &db_before,
        "the database pod template is unchanged: no restart"
    );
    cluster.stop().await;
}
