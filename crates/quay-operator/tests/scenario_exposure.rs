//! User stories: exposing Quay on plain Kubernetes (no Route API). A managed `route` becomes an Ingress (class
//! from an annotation) or, when the registry names a Gateway, a Gateway API HTTPRoute; a cert-manager
//! Certificate fills the tls `secretRef` Secret, the registry waits for it, and a renewal restarts the pods
//! that serve it and writes nothing else. Without SERVER_HOSTNAME nothing is applied and status says why.

#[path = "common/sim.rs"]
mod sim;

use std::sync::Mutex;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube_sim::cert_manager::IssuerMode;
use serde_json::{Value, json};
use sim::{Cluster, Platform, annotation, assert_condition, conditions, template};

const NS: &str = "expose";
const HOST: &str = "quay.example.com";
const BUILDER_HOST: &str = "builds.example.com";
const TLS_HASH: &str = "quay.redhat.com/tls-secret-hash";

/// Bundle files of plain Kubernetes (S3, certificate for quay.example.com) with `config.yaml` adjusted.
fn bundle_files(
    cluster: &Cluster,
    with_certs: bool,
    edit: impl Fn(&str) -> String,
) -> Vec<(String, String)> {
    let mut files = cluster.platform_bundle();
    if !with_certs {
        files.remove("ssl.cert");
        files.remove("ssl.key");
    }
    let config = files.get_mut("config.yaml").unwrap();
    *config = edit(config);
    files.into_iter().collect()
}

async fn write_bundle(cluster: &Cluster, name: &str, files: &[(String, String)]) {
    let data: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    cluster.secret(NS, name, "Opaque", &data).await;
}

/// A plain-Kubernetes registry with `route` declared managed, the given tls entry and annotations.
fn registry(cluster: &Cluster, name: &str, bundle: &str, tls: Value, annotations: Value) -> Value {
    let mut r = cluster.registry_json(
        NS,
        name,
        bundle,
        json!([{"kind": "route", "managed": true}, tls]),
    );
    r["metadata"]["annotations"] = annotations;
    r
}

fn names(objects: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = objects
        .iter()
        .map(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_route_on_plain_kubernetes_is_an_ingress_with_the_bundle_certificate() {
    let cluster = Cluster::start(Platform::Kubernetes).await;
    cluster.namespace(NS).await;
    write_bundle(
        &cluster,
        "ing-config",
        &bundle_files(&cluster, true, str::to_owned),
    )
    .await;
    cluster
        .create_registry(registry(
            &cluster,
            "ing",
            "ing-config",
            json!({"kind": "tls", "managed": false}),
            json!({"quay-operator.rs/ingress-class": "nginx"}),
        ))
        .await;
    let r = cluster.wait_healthy(NS, "ing").await;
    assert_condition(
        &r,
        "ComponentRouteReady",
        "True",
        "ComponentReady",
        "Ingress ing-quay created",
    );
    assert_eq!(
        r.status.as_ref().unwrap().registry_endpoint.as_deref(),
        Some("https://quay.example.com")
    );

    let ingress = cluster
        .sim
        .get("networking.k8s.io", "ingresses", NS, "ing-quay")
        .expect("Ingress ing-quay");
    let spec = &ingress["spec"];
    assert_eq!(spec["ingressClassName"], "nginx");
    assert_eq!(spec["rules"][0]["host"], HOST);
    assert_eq!(
        spec["rules"][0]["http"]["paths"][0]["backend"]["service"],
        json!({"name": "ing-quay-app", "port": {"name": "https"}})
    );
    assert_eq!(
        spec["tls"],
        json!([{"hosts": [HOST], "secretName": "ing-quay-ingress-tls"}])
    );
    assert_eq!(
        annotation(&ingress, "nginx.ingress.kubernetes.io/backend-protocol"),
        Some("HTTPS")
    );
    assert_eq!(ingress["metadata"]["ownerReferences"][0]["name"], "ing");
    // Quay serves the bundle's certificate; the ingress controller gets it as a kubernetes.io/tls Secret.
    let secret = cluster
        .sim
        .get("", "secrets", NS, "ing-quay-ingress-tls")
        .expect("ingress TLS Secret");
    assert_eq!(secret["type"], "kubernetes.io/tls");
    let bundle_cert = cluster.platform_bundle()["ssl.cert"].clone();
    assert_eq!(
        sim::secret_data(&secret, "tls.crt").as_deref(),
        Some(bundle_cert.as_str())
    );
    // No builds configured: no builder Ingress.
    assert!(
        cluster
            .sim
            .get("networking.k8s.io", "ingresses", NS, "ing-quay-builder")
            .is_none()
    );
    let config = cluster.rendered_config_secrets(NS, "ing");
    let config_yaml = sim::secret_data(&config[0], "config.yaml").unwrap();
    assert!(
        config_yaml.contains("EXTERNAL_TLS_TERMINATION: false"),
        "{config_yaml}"
    );
    assert!(config_yaml.contains("PREFERRED_URL_SCHEME: https"));
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_naming_a_gateway_gets_an_http_route() {
    let cluster = Cluster::start_prepared(Platform::Kubernetes, |sim| {
        sim.install_gateway_api().unwrap();
    })
    .await;
    cluster.namespace(NS).await;
    write_bundle(
        &cluster,
        "gw-config",
        &bundle_files(&cluster, true, str::to_owned),
    )
    .await;
    cluster
        .create_registry(registry(
            &cluster,
            "gw",
            "gw-config",
            json!({"kind": "tls", "managed": false}),
            json!({"quay-operator.rs/gateway": "infra/public/https"}),
        ))
        .await;
    let r = cluster.wait_healthy(NS, "gw").await;
    assert_condition(
        &r,
        "ComponentRouteReady",
        "True",
        "ComponentReady",
        "HTTPRoute gw-quay created",
    );
    let route = cluster
        .sim
        .get("gateway.networking.k8s.io", "httproutes", NS, "gw-quay")
        .expect("HTTPRoute gw-quay");
    assert_eq!(
        route["spec"]["parentRefs"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "infra",
                "name": "public", "sectionName": "https"}])
    );
    assert_eq!(route["spec"]["hostnames"], json!([HOST]));
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"],
        json!([{"name": "gw-quay-app", "port": 443}])
    );
    assert!(
        cluster
            .sim
            .list("networking.k8s.io", "ingresses", Some(NS))
            .is_empty(),
        "no Ingress next to the HTTPRoute"
    );

    // The Gateway refuses the route: the route component (and so the registry) is not ready, and says why.
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "gateway.networking.k8s.io",
        "v1",
        "HTTPRoute",
    ));
    let routes: Api<DynamicObject> = Api::namespaced_with(cluster.client.clone(), NS, &ar);
    let refused = json!({"status": {"parents": [{
        "parentRef": {"namespace": "infra", "name": "public", "sectionName": "https"},
        "controllerName": "example.com/gateway",
        "conditions": [{"type": "Accepted", "status": "False", "reason": "NotAllowedByListeners",
                        "message": "listener https does not allow routes from namespace expose",
                        "lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": 1}]
    }]}});
    routes
        .patch_status("gw-quay", &PatchParams::default(), &Patch::Merge(&refused))
        .await
        .unwrap();
    let r = cluster
        .wait_condition(
            NS,
            "gw",
            "ComponentRouteReady",
            "False",
            "ComponentNotReady",
        )
        .await;
    assert_eq!(
        conditions(&r)["ComponentRouteReady"].message,
        "HTTPRoute gw-quay not accepted by its Gateway: listener https does not allow routes from namespace expose"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_manager_fills_the_tls_secret_and_a_renewal_restarts_only_what_serves_it() {
    let cert_manager = Mutex::new(None);
    let cluster = Cluster::start_prepared(Platform::Kubernetes, |sim| {
        *cert_manager.lock().unwrap() = Some(sim.install_cert_manager().unwrap());
    })
    .await;
    let cert_manager = cert_manager.into_inner().unwrap().unwrap();
    // The issuer does not answer at first: the registry must wait for it, not fail.
    cert_manager.set_mode(IssuerMode::Hold);
    cluster.namespace(NS).await;
    let files = bundle_files(&cluster, false, |c| {
        format!("{c}FEATURE_BUILD_SUPPORT: true\nBUILDMAN_HOSTNAME: {BUILDER_HOST}:443\n")
    });
    write_bundle(&cluster, "cm-config", &files).await;
    cluster
        .create_registry(registry(
            &cluster,
            "cm",
            "cm-config",
            json!({"kind": "tls", "managed": false, "secretRef": {"name": "cm-serving-cert"}}),
            json!({"quay-operator.rs/cert-manager-issuer": "ClusterIssuer/letsencrypt"}),
        ))
        .await;

    let certificate = cluster
        .wait_object(
            "cert-manager.io",
            "certificates",
            NS,
            "cm-quay-tls",
            "the Certificate",
            |c| c.is_some(),
        )
        .await
        .unwrap();
    assert_eq!(
        certificate["spec"],
        json!({"secretName": "cm-serving-cert", "dnsNames": [HOST, BUILDER_HOST],
               "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"},
               "privateKey": {"rotationPolicy": "Always"}})
    );
    let r = cluster
        .wait(NS, "cm", "waiting for the certificate", |r| {
            conditions(r)
                .get("ComponentTLSReady")
                .is_some_and(|c| c.message.starts_with("Waiting for cert-manager"))
                && conditions(r)
                    .get("ComponentsCreated")
                    .is_some_and(|c| c.message.contains("Certificate"))
        })
        .await;
    assert_eq!(
        conditions(&r)["ComponentTLSReady"].message,
        "Waiting for cert-manager Certificate cm-quay-tls to issue TLS secret \"cm-serving-cert\""
    );
    assert_eq!(conditions(&r)["RolloutBlocked"].status, "False");
    // Quay's workloads and configuration wait; the Ingress already names the Secret to come.
    assert!(cluster.deployment(NS, "cm-quay-app").is_none());
    assert!(cluster.rendered_config_secrets(NS, "cm").is_empty());
    let ingress = cluster
        .sim
        .get("networking.k8s.io", "ingresses", NS, "cm-quay")
        .unwrap();
    assert_eq!(ingress["spec"]["tls"][0]["secretName"], "cm-serving-cert");

    // The issuer refuses: status says why, still waiting and not blocked.
    cert_manager.set_mode(IssuerMode::Refuse(
        "ClusterIssuer letsencrypt not found".to_owned(),
    ));
    let r = cluster
        .wait(NS, "cm", "the issuer's refusal in status", |r| {
            conditions(r)
                .get("ComponentTLSReady")
                .is_some_and(|c| c.message.ends_with("not found"))
        })
        .await;
    assert_eq!(
        conditions(&r)["ComponentTLSReady"].message,
        "Waiting for cert-manager Certificate cm-quay-tls to issue TLS secret \"cm-serving-cert\": \
         ClusterIssuer letsencrypt not found"
    );
    assert_eq!(conditions(&r)["RolloutBlocked"].status, "False");

    // The issuer answers: the registry rolls out with the issued certificate.
    cert_manager.set_mode(IssuerMode::Issue);
    let r = cluster.wait_healthy(NS, "cm").await;
    assert_condition(
        &r,
        "ComponentTLSReady",
        "True",
        "ComponentReady",
        "Using externally managed TLS certificate",
    );
    let builder = cluster
        .sim
        .get("networking.k8s.io", "ingresses", NS, "cm-quay-builder")
        .expect("builder Ingress");
    assert_eq!(builder["spec"]["rules"][0]["host"], BUILDER_HOST);
    assert_eq!(
        builder["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"],
        "grpc"
    );
    assert_eq!(
        annotation(&builder, "nginx.ingress.kubernetes.io/backend-protocol"),
        Some("GRPCS")
    );
    let hash_before = annotation(
        template(&cluster.deployment(NS, "cm-quay-app").unwrap()),
        TLS_HASH,
    )
    .expect("tls hash on quay-app")
    .to_owned();

    let database_pods = template(&cluster.deployment(NS, "cm-quay-database").unwrap()).clone();

    // Renewal: a new key and certificate in the same Secret. Earlier writes must be logged before counting.
    cluster.sim.requests_landed().await;
    let since = cluster.sim.requests().len();
    cert_manager.renew(NS, "cm-quay-tls");
    cluster
        .wait_object(
            "apps",
            "deployments",
            NS,
            "cm-quay-app",
            "a new tls hash",
            |d| {
                d.and_then(|d| annotation(template(d), TLS_HASH))
                    .is_some_and(|h| h != hash_before)
            },
        )
        .await;
    cluster.wait_healthy(NS, "cm").await;
    let writes: Vec<String> = cluster.sim.requests()[since..]
        .iter()
        .filter(|r| matches!(r.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .map(|r| format!("{} {}", r.method, r.uri))
        .filter(|w| !w.contains("/events"))
        .collect();
    for forbidden in [
        "/ingresses/",
        "/certificates/",
        "/services/",
        "/persistentvolumeclaims/",
        "managed-secret-keys",
        "cm-config",
    ] {
        assert!(
            writes.iter().all(|w| !w.contains(forbidden)),
            "renewal wrote {forbidden}: {writes:#?}"
        );
    }
    assert!(
        writes
            .iter()
            .any(|w| w.contains("/deployments/cm-quay-app")),
        "{writes:#?}"
    );
    assert_eq!(
        template(&cluster.deployment(NS, "cm-quay-database").unwrap()),
        &database_pods,
        "the database does not serve the certificate: its pods stay"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_route_without_server_hostname_applies_nothing_and_says_why() {
    let cluster = Cluster::start(Platform::Kubernetes).await;
    cluster.namespace(NS).await;
    let files = bundle_files(&cluster, true, |c| {
        c.lines()
            .filter(|l| !l.starts_with("SERVER_HOSTNAME"))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    write_bundle(&cluster, "nohost-config", &files).await;
    cluster
        .create_registry(registry(
            &cluster,
            "nohost",
            "nohost-config",
            json!({"kind": "tls", "managed": false}),
            json!({}),
        ))
        .await;
    let r = cluster
        .wait_condition(NS, "nohost", "RolloutBlocked", "True", "ConfigInvalid")
        .await;
    assert_eq!(
        conditions(&r)["RolloutBlocked"].message,
        "route component is managed and the cluster has no Route API: Quay is exposed with an Ingress for \
         SERVER_HOSTNAME, which config.yaml does not set; set SERVER_HOSTNAME to the registry's public \
         hostname, or set route to managed: false"
    );
    for (group, plural) in [
        ("apps", "deployments"),
        ("", "services"),
        ("networking.k8s.io", "ingresses"),
        ("", "persistentvolumeclaims"),
    ] {
        assert!(
            cluster.sim.list(group, plural, Some(NS)).is_empty(),
            "{plural} applied: {:?}",
            names(&cluster.sim.list(group, plural, Some(NS)))
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_installed_after_start_up_unblocks_the_registry() {
    let cluster = Cluster::start(Platform::Kubernetes).await;
    cluster.namespace(NS).await;
    write_bundle(
        &cluster,
        "late-config",
        &bundle_files(&cluster, true, str::to_owned),
    )
    .await;
    cluster
        .create_registry(registry(
            &cluster,
            "late",
            "late-config",
            json!({"kind": "tls", "managed": false}),
            json!({"quay-operator.rs/gateway": "infra/public"}),
        ))
        .await;
    let r = cluster
        .wait_condition(
            NS,
            "late",
            "RolloutBlocked",
            "True",
            "RouteComponentDependencyError",
        )
        .await;
    assert!(
        conditions(&r)["RolloutBlocked"].message.starts_with(
            "annotation quay-operator.rs/gateway names Gateway infra/public, but the Gateway API"
        ),
        "{:?}",
        conditions(&r)["RolloutBlocked"]
    );
    assert!(cluster.sim.list("apps", "deployments", Some(NS)).is_empty());

    // The Gateway API's CRDs arrive: discovery sees them, and the registry rolls out with its HTTPRoute.
    cluster.sim.install_gateway_api().unwrap();
    cluster.wait_healthy(NS, "late").await;
    assert!(
        cluster
            .sim
            .get("gateway.networking.k8s.io", "httproutes", NS, "late-quay")
            .is_some()
    );
    cluster.stop().await;
}
