//! The operator's RBAC, generated from its table of API calls: it covers every kind the controller watches and
//! applies, keeps Secrets out of cluster-wide rules in the namespaced modes, and — the real proof — is enough for
//! the operator to bring registries to Available on a simulated cluster that enforces RBAC for its
//! ServiceAccount (kube-sim's authorizer), without a single 403.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use kube_sim::{Options, Simulator};
use quay_operator::api::QuayRegistry;
use quay_operator::controller::kinds::owned_kinds;
use quay_operator::controller::{GRAFANA_DASHBOARD_NAMESPACE, RunOptions};
use quay_operator::install::rbac::{self, API_CALLS, RoleRules, Scope};
use quay_operator::install::{self, InstallMode, InstallSpec, manifests};
use quay_operator::render::OperatorSettings;
use serde_json::{Value, json};

mod common;

const OPERATOR_NS: &str = install::DEFAULT_OPERATOR_NAMESPACE;
const TOKEN: &str = "operator-service-account-token";

fn modes() -> Vec<(&'static str, InstallMode)> {
    vec![
        ("own namespace", InstallMode::OwnNamespace),
        (
            "single namespace",
            InstallMode::MultiNamespace(vec!["quay".to_owned()]),
        ),
        (
            "multi namespace (3)",
            InstallMode::MultiNamespace(vec!["a".into(), "b".into(), "c".into()]),
        ),
        ("all namespaces", InstallMode::AllNamespaces),
    ]
}

/// Whether a Role's rules allow `verb` on `group`/`resource` (as RBAC matches a request).
fn allows(role: &RoleRules, group: &str, resource: &str, verb: &str) -> bool {
    role.rules.iter().any(|r| {
        r.api_groups.iter().flatten().any(|g| g == group)
            && r.resources.iter().flatten().any(|x| x == resource)
            && r.verbs.iter().any(|v| v == verb)
            && r.resource_names.as_ref().is_none_or(|n| n.is_empty())
    })
}

#[test]
fn rule_count_per_install_mode() {
    for (name, mode) in modes() {
        let roles = rbac::roles(&mode, OPERATOR_NS);
        let per_role: Vec<String> = roles
            .iter()
            .map(|r| {
                format!(
                    "{} {}{}: {}",
                    r.kind,
                    r.namespace
                        .as_deref()
                        .map(|n| format!("{n}/"))
                        .unwrap_or_default(),
                    r.name,
                    r.rules.len()
                )
            })
            .collect();
        println!(
            "{name}: {} rules in total ({})",
            rbac::rule_count(&roles),
            per_role.join(", ")
        );
        assert!(rbac::rule_count(&roles) > 0);
    }
}

#[test]
fn every_kind_the_controller_renders_can_be_watched_and_applied_in_every_mode() {
    for (name, mode) in modes() {
        let roles = rbac::roles(&mode, OPERATOR_NS);
        // The registries' role: the ClusterRole in all-namespaces mode, a watched namespace's Role otherwise.
        let registries = roles
            .iter()
            .find(|r| r.name == rbac::REGISTRIES_ROLE)
            .expect("a role for the registries' namespaces");
        for kind in owned_kinds() {
            for verb in ["list", "watch", "patch"] {
                assert!(
                    allows(
                        registries,
                        &kind.resource.group,
                        &kind.resource.plural,
                        verb
                    ),
                    "{name}: no `{verb}` on {}.{}",
                    kind.resource.plural,
                    kind.resource.group
                );
            }
        }
        // The call sites that are not owned-kind watches and applies.
        for (group, resource, verb) in [
            ("quay.redhat.com", "quayregistries", "list"),
            ("quay.redhat.com", "quayregistries", "watch"),
            ("quay.redhat.com", "quayregistries", "patch"),
            ("quay.redhat.com", "quayregistries/status", "patch"),
            ("", "secrets", "get"),
            ("", "secrets", "create"),
            ("", "secrets", "delete"),
            ("", "configmaps", "get"),
            ("", "events", "create"),
            ("", "events", "list"),
            ("", "events", "watch"),
            ("batch", "jobs", "delete"),
        ] {
            assert!(
                allows(registries, group, resource, verb),
                "{name}: no `{verb}` on {resource}.{group}"
            );
        }
        let own = roles.iter().find(|r| r.name == rbac::SELF_ROLE).unwrap();
        assert_eq!(own.namespace.as_deref(), Some(OPERATOR_NS));
        for verb in ["get", "create", "update"] {
            assert!(
                allows(own, "coordination.k8s.io", "leases", verb),
                "{name}: leases {verb}"
            );
        }
        for verb in ["create", "get", "watch", "delete"] {
            assert!(
                allows(own, "route.openshift.io", "routes", verb),
                "{name}: probe Route {verb}"
            );
        }
    }
}

#[test]
fn namespaced_modes_grant_nothing_namespaced_cluster_wide() {
    for (name, mode) in modes() {
        let roles = rbac::roles(&mode, OPERATOR_NS);
        for role in roles.iter().filter(|r| r.kind == "ClusterRole") {
            for rule in &role.rules {
                let resources = rule.resources.clone().unwrap_or_default();
                if mode == InstallMode::AllNamespaces {
                    continue;
                }
                for resource in &resources {
                    assert!(
                        ["customresourcedefinitions", "apiservers", "namespaces"]
                            .contains(&resource.as_str()),
                        "{name}: cluster-wide `{resource}` in {}",
                        role.name
                    );
                }
                // Reads of single named objects only, apart from the CRD watch.
                if !resources.contains(&"customresourcedefinitions".to_owned()) {
                    assert!(rule.resource_names.as_ref().is_some_and(|n| !n.is_empty()));
                }
            }
        }
        if mode != InstallMode::AllNamespaces {
            let watched = mode.watched_namespaces(OPERATOR_NS);
            let namespaces: Vec<&str> = roles
                .iter()
                .filter(|r| r.name == rbac::REGISTRIES_ROLE)
                .map(|r| r.namespace.as_deref().unwrap())
                .collect();
            assert_eq!(
                namespaces,
                watched.iter().map(String::as_str).collect::<Vec<_>>()
            );
        }
    }
}

#[test]
fn no_wildcards_and_no_privilege_verbs() {
    for call in API_CALLS {
        for verb in call.verbs {
            assert!(
                !["*", "escalate", "bind", "impersonate", "deletecollection"].contains(verb),
                "{}.{}: {verb}",
                call.resource,
                call.group
            );
            // `update` (a full replace) only where the code replaces: the Lease, the legacy database Deployment
            // of a QuayEcosystem migration, and the owner-reference admission check.
            if *verb == "update" {
                assert!(
                    ["leases", "deployments", "quayecosystems/finalizers"].contains(&call.resource),
                    "{}: update",
                    call.resource
                );
            }
        }
        assert_ne!(call.resource, "*");
        assert!(!call.why.is_empty());
    }
    // The operator's own namespace needs only the Lease and the probe Route.
    let own: Vec<&str> = rbac::calls(Scope::OperatorNamespace, true)
        .map(|c| c.resource)
        .collect();
    assert_eq!(own, ["routes", "routes/custom-host", "leases"]);
}

// ---- the proof on a cluster that enforces RBAC ----

/// Creates the install's objects (as the cluster admin) and lets requests with `TOKEN` act as its ServiceAccount.
fn install_rbac(sim: &Simulator, spec: &InstallSpec) {
    let m = manifests::manifests(spec);
    for doc in m.operator {
        let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
        if kind == "Deployment" {
            // The operator runs in the test instead.
            continue;
        }
        if let Err(e) = sim.create(doc) {
            // Namespaces created beforehand.
            assert!(kind == "Namespace", "{kind}: {e:?}");
        }
    }
    sim.add_service_account_token(TOKEN, &spec.operator_namespace, install::OPERATOR_NAME);
}

fn example(name: &str, file: &str, namespace: &str) -> Value {
    let text = std::fs::read_to_string(common::examples_dir().join(name).join(file)).unwrap();
    let mut doc: Value = serde_saphyr::from_str(&text).unwrap();
    doc["metadata"]["namespace"] = json!(namespace);
    if let Some(meta) = doc["metadata"].as_object_mut() {
        meta.remove("uid");
    }
    doc
}

async fn create_example(admin: &kube::Client, name: &str, namespace: &str) -> String {
    let bundle: Secret =
        serde_json::from_value(example(name, "config-bundle.yaml", namespace)).unwrap();
    Api::<Secret>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &bundle)
        .await
        .unwrap();
    let registry: QuayRegistry =
        serde_json::from_value(example(name, "quayregistry.yaml", namespace)).unwrap();
    Api::<QuayRegistry>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &registry)
        .await
        .unwrap()
        .name_any()
}

fn is_available(sim: &Simulator, namespace: &str, name: &str) -> bool {
    sim.get("quay.redhat.com", "quayregistries", namespace, name)
        .and_then(|r| r["status"]["conditions"].as_array().cloned())
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Available" && c["status"] == "True")
        })
}

/// Every request the simulator refused with 403.
fn forbidden(sim: &Simulator) -> Vec<String> {
    sim.requests()
        .into_iter()
        .filter(|r| r.code == 403)
        .map(|r| format!("{} {}", r.method, r.uri))
        .collect()
}

fn registry_conditions(sim: &Simulator, namespace: &str, name: &str) -> String {
    sim.get("quay.redhat.com", "quayregistries", namespace, name)
        .map(|r| r["status"].to_string())
        .unwrap_or_default()
}

async fn namespace(sim: &Simulator, name: &str) {
    let _ =
        sim.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorizer_refuses_what_the_namespaced_rbac_does_not_grant() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    for ns in [OPERATOR_NS, "quay-enterprise", "elsewhere"] {
        namespace(&sim, ns).await;
    }
    let spec = InstallSpec {
        mode: InstallMode::MultiNamespace(vec!["quay-enterprise".into()]),
        ..Default::default()
    };
    install_rbac(&sim, &spec);
    let operator = sim.client_with_token(TOKEN);
    // Allowed: the watched namespace.
    Api::<Secret>::namespaced(operator.clone(), "quay-enterprise")
        .list(&ListParams::default())
        .await
        .expect("secrets of a watched namespace are listed");
    // Refused: Secrets cluster-wide and in a namespace not watched, and granting more than held.
    for api in [
        Api::<Secret>::all(operator.clone()),
        Api::<Secret>::namespaced(operator.clone(), "elsewhere"),
    ] {
        match api.list(&ListParams::default()).await {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
            other => panic!("expected 403, got {other:?}"),
        }
    }
    let escalation: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(json!({
        "metadata": {"name": "more", "namespace": "quay-enterprise"},
        "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]}],
    }))
    .unwrap();
    match Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(operator.clone(), "quay-enterprise")
        .patch(
            "more",
            &kube::api::PatchParams::apply("quay-operator").force(),
            &kube::api::Patch::Apply(&escalation),
        )
        .await
    {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 403, "{e:?}"),
        other => panic!("expected 403 for a Role granting more than held, got {other:?}"),
    }
    sim.stop().await;
}

/// The operator binary, started with the Deployment's arguments and a kubeconfig carrying the ServiceAccount's
/// token, brings the plain-Kubernetes example to Available in the namespace the namespaced manifests watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_rbac_is_enough_for_the_operator_binary() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    let watched = "quay-enterprise";
    for ns in [OPERATOR_NS, watched] {
        namespace(&sim, ns).await;
    }
    let spec = InstallSpec {
        mode: InstallMode::MultiNamespace(vec![watched.into()]),
        ..Default::default()
    };
    install_rbac(&sim, &spec);
    let dir = std::env::temp_dir().join(format!("quay-operator-rbac-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, sim.kubeconfig_yaml_with_token(TOKEN)).unwrap();

    // The Deployment's container arguments, with a free local port instead of 8080.
    let deployment = manifests::deployment_spec(&spec, manifests::WatchNamespaces::Argument);
    let args: Vec<String> = deployment["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .map(|a| {
            if a.starts_with("--http-addr=") {
                "--http-addr=127.0.0.1:0".to_owned()
            } else {
                a
            }
        })
        .collect();
    let mut operator = tokio::process::Command::new(env!("CARGO_BIN_EXE_quay-operator"))
        .args(&args)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("MY_POD_NAMESPACE", OPERATOR_NS)
        .env("QUAY_VERSION", common_quay_version())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("quay-operator run starts");

    let name = create_example(&sim.client(), "kubernetes-s3-tls", watched).await;
    let available = sim
        .wait_until(Duration::from_secs(60), || {
            is_available(&sim, watched, &name)
        })
        .await;
    let refused = forbidden(&sim);
    operator.kill().await.unwrap();
    assert!(
        available,
        "not Available: {}\nrefused: {refused:#?}",
        registry_conditions(&sim, watched, &name)
    );
    assert!(refused.is_empty(), "requests refused by RBAC: {refused:#?}");
    assert!(
        sim.get(
            "coordination.k8s.io",
            "leases",
            OPERATOR_NS,
            quay_operator::controller::leader::LEASE_NAME
        )
        .is_some(),
        "the leader-election Lease is held in the operator's namespace"
    );
    sim.stop().await;
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}

fn common_quay_version() -> &'static str {
    quay_operator::DEFAULT_QUAY_VERSION
}

/// OpenShift, all namespaces: Routes (and the probe Route), ObjectBucketClaims, monitoring with its Roles (RBAC
/// escalation prevention applies) and the console dashboard, leader election — with the all-namespaces RBAC only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_namespaces_rbac_is_enough_on_openshift_with_every_component_managed() {
    let sim = Simulator::start(Options::openshift()).await.unwrap();
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    let registry_ns = "quay-enterprise";
    for ns in [OPERATOR_NS, registry_ns, GRAFANA_DASHBOARD_NAMESPACE] {
        namespace(&sim, ns).await;
    }
    let spec = InstallSpec::default();
    install_rbac(&sim, &spec);
    let options = RunOptions {
        namespaces: vec![],
        http_addr: "127.0.0.1:0".parse().unwrap(),
        settings: OperatorSettings {
            quay_version: common_quay_version().to_owned(),
            operator_namespace: Some(OPERATOR_NS.to_owned()),
            ..OperatorSettings::from_env(|_| None)
        },
    };
    let client = sim.client_with_token(TOKEN);
    let operator = tokio::spawn(async move {
        let _ =
            quay_operator::controller::leader::run_as_leader(client, options, OPERATOR_NS).await;
    });
    let name = create_example(&sim.client(), "all-managed", registry_ns).await;
    let available = sim
        .wait_until(Duration::from_secs(60), || {
            is_available(&sim, registry_ns, &name)
        })
        .await;
    let refused = forbidden(&sim);
    operator.abort();
    assert!(
        available,
        "not Available: {}\nrefused: {refused:#?}",
        registry_conditions(&sim, registry_ns, &name)
    );
    assert!(refused.is_empty(), "requests refused by RBAC: {refused:#?}");
    // Monitoring was managed: its Roles could only be created because the operator holds what they grant.
    assert!(
        !sim.list("rbac.authorization.k8s.io", "roles", Some(registry_ns))
            .is_empty(),
        "the monitoring Roles exist"
    );
    assert!(
        !sim.list("", "configmaps", Some(GRAFANA_DASHBOARD_NAMESPACE))
            .is_empty(),
        "the console dashboard exists"
    );
    sim.stop().await;
}

/// Plain Kubernetes, namespaced install: a managed route becomes an Ingress (the exposure on plain Kubernetes),
/// with the namespaced RBAC only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_rbac_is_enough_for_ingress_exposure_on_plain_kubernetes() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    let watched = "quay-enterprise";
    let operator = start_namespaced_operator(&sim, watched);
    let name = create_example(&sim.client(), "kubernetes-ingress", watched).await;
    let available = sim
        .wait_until(Duration::from_secs(60), || {
            is_available(&sim, watched, &name)
        })
        .await;
    let refused = forbidden(&sim);
    operator.abort();
    assert!(
        available,
        "not Available: {}\nrefused: {refused:#?}",
        registry_conditions(&sim, watched, &name)
    );
    assert!(refused.is_empty(), "requests refused by RBAC: {refused:#?}");
    assert!(
        !sim.list("networking.k8s.io", "ingresses", Some(watched))
            .is_empty(),
        "the registry is exposed by an Ingress"
    );
    sim.stop().await;
}

/// Plain Kubernetes, namespaced install, cert-manager asked to issue the registry's certificate: the Certificate,
/// the TLS Secret it fills (read, labelled for the watch) and the Ingress, with the namespaced RBAC only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_rbac_is_enough_for_a_cert_manager_certificate() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    let _issuer = sim.install_cert_manager().unwrap();
    let watched = "quay-enterprise";
    let operator = start_namespaced_operator(&sim, watched);
    // The ingress example, with its certificate coming from cert-manager instead of the bundle.
    let admin = sim.client();
    let mut bundle = example("kubernetes-ingress", "config-bundle.yaml", watched);
    let files = bundle["stringData"].as_object_mut().unwrap();
    files.retain(|k, _| !k.starts_with("ssl."));
    let bundle: Secret = serde_json::from_value(bundle).unwrap();
    Api::<Secret>::namespaced(admin.clone(), watched)
        .create(&PostParams::default(), &bundle)
        .await
        .unwrap();
    let mut registry = example("kubernetes-ingress", "quayregistry.yaml", watched);
    registry["metadata"]["annotations"]["quay-operator.rs/cert-manager-issuer"] =
        json!("ClusterIssuer/letsencrypt");
    for component in registry["spec"]["components"].as_array_mut().unwrap() {
        if component["kind"] == "tls" {
            component["secretRef"] = json!({"name": "quay-serving-cert"});
        }
    }
    let registry: QuayRegistry = serde_json::from_value(registry).unwrap();
    let name = Api::<QuayRegistry>::namespaced(admin.clone(), watched)
        .create(&PostParams::default(), &registry)
        .await
        .unwrap()
        .name_any();
    let available = sim
        .wait_until(Duration::from_secs(60), || {
            is_available(&sim, watched, &name)
        })
        .await;
    let refused = forbidden(&sim);
    operator.abort();
    assert!(
        available,
        "not Available: {}\nrefused: {refused:#?}",
        registry_conditions(&sim, watched, &name)
    );
    assert!(refused.is_empty(), "requests refused by RBAC: {refused:#?}");
    assert!(
        !sim.list("cert-manager.io", "certificates", Some(watched))
            .is_empty(),
        "the Certificate was created"
    );
    sim.stop().await;
}

/// Creates the namespaces and the namespaced install's RBAC watching `watched`, and runs the operator in-process
/// as its ServiceAccount.
fn start_namespaced_operator(sim: &Simulator, watched: &str) -> tokio::task::JoinHandle<()> {
    for ns in [OPERATOR_NS, watched] {
        let _ =
            sim.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    let spec = InstallSpec {
        mode: InstallMode::MultiNamespace(vec![watched.into()]),
        ..Default::default()
    };
    install_rbac(sim, &spec);
    let options = RunOptions {
        namespaces: vec![watched.to_owned()],
        http_addr: "127.0.0.1:0".parse().unwrap(),
        settings: OperatorSettings {
            quay_version: common_quay_version().to_owned(),
            operator_namespace: Some(OPERATOR_NS.to_owned()),
            ..OperatorSettings::from_env(|_| None)
        },
    };
    let client = sim.client_with_token(TOKEN);
    tokio::spawn(async move {
        let _ = quay_operator::controller::run(client, options).await;
    })
}

/// Plain Kubernetes, namespaced install, a registry naming a Gateway: the Gateway API HTTPRoute, with the
/// namespaced RBAC only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaced_rbac_is_enough_for_a_gateway_api_http_route() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    sim.install_gateway_api().unwrap();
    let watched = "quay-enterprise";
    let operator = start_namespaced_operator(&sim, watched);
    let admin = sim.client();
    let bundle: Secret =
        serde_json::from_value(example("kubernetes-ingress", "config-bundle.yaml", watched))
            .unwrap();
    Api::<Secret>::namespaced(admin.clone(), watched)
        .create(&PostParams::default(), &bundle)
        .await
        .unwrap();
    let mut registry = example("kubernetes-ingress", "quayregistry.yaml", watched);
    registry["metadata"]["annotations"] = json!({"quay-operator.rs/gateway": "infra/public/https"});
    let registry: QuayRegistry = serde_json::from_value(registry).unwrap();
    let name = Api::<QuayRegistry>::namespaced(admin.clone(), watched)
        .create(&PostParams::default(), &registry)
        .await
        .unwrap()
        .name_any();
    let available = sim
        .wait_until(Duration::from_secs(60), || {
            is_available(&sim, watched, &name)
        })
        .await;
    let refused = forbidden(&sim);
    operator.abort();
    assert!(
        available,
        "not Available: {}\nrefused: {refused:#?}",
        registry_conditions(&sim, watched, &name)
    );
    assert!(refused.is_empty(), "requests refused by RBAC: {refused:#?}");
    assert!(
        !sim.list("gateway.networking.k8s.io", "httproutes", Some(watched))
            .is_empty(),
        "the registry is exposed by an HTTPRoute"
    );
    sim.stop().await;
}

/// Every row's group is the one the resource is really served under: a row with the right resource name and
/// the wrong group grants nothing and the call gets a 403 on a real cluster.
#[test]
fn every_custom_resource_row_names_the_group_its_crd_serves() {
    use quay_operator::api::quayecosystem::QuayEcosystem;
    let served: Vec<(String, String)> = [QuayRegistry::crd(), QuayEcosystem::crd()]
        .into_iter()
        .map(|crd| (crd.spec.group.clone(), crd.spec.names.plural.clone()))
        .collect();
    for (group, plural) in &served {
        let rows: Vec<&rbac::ApiCall> = API_CALLS
            .iter()
            .filter(|call| call.resource.split('/').next() == Some(plural.as_str()))
            .collect();
        assert!(!rows.is_empty(), "no RBAC row for {plural}");
        for row in rows {
            assert_eq!(
                row.group, group,
                "RBAC row {} has group {}, its CRD serves {group}",
                row.resource, row.group
            );
        }
    }
}
