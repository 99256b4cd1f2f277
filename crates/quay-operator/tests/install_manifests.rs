//! The install files: what is checked in equals what the code generates, and the plain manifests apply with
//! `kubectl apply --server-side` to the simulated cluster, giving the Deployment we mean.

use std::path::{Path, PathBuf};

use kube_sim::{Options, Simulator};
use quay_operator::install::{self, InstallMode, bundle, chart, manifests};
use serde_json::Value;
use tokio::process::Command;

mod common;

const KUBECTL: &str = "/usr/bin/kubectl";

fn read(relative: &str) -> String {
    std::fs::read_to_string(common::repo_root().join(relative)).unwrap_or_default()
}

#[test]
fn deploy_manifests_are_up_to_date() {
    for (dir, spec) in manifests::committed_layouts() {
        let command = format!("{} --output-dir {dir}", manifests::command_line(&spec));
        for (file, content) in manifests::files(&spec, &manifests::command_line(&spec)) {
            let path = format!("{dir}/{file}");
            assert!(
                read(&path) == content,
                "{path} is stale: run `cargo run -p quay-operator -- {}`",
                command.trim_start_matches("quay-operator ")
            );
        }
    }
}

#[test]
fn olm_bundle_is_up_to_date() {
    for (path, content) in bundle::files(install::DEFAULT_IMAGE) {
        assert!(
            read(&path) == content,
            "{path} is stale: run `cargo run -p quay-operator -- bundle --output-dir .`"
        );
    }
}

#[test]
fn helm_chart_generated_parts_are_up_to_date() {
    assert!(
        read(chart::RULES_TEMPLATE_PATH) == chart::rules_template(),
        "{} is stale: run `cargo run -p quay-operator -- rbac --helm > {}`",
        chart::RULES_TEMPLATE_PATH,
        chart::RULES_TEMPLATE_PATH
    );
    let crd = "charts/quay-operator-rs/crds/quayregistries.quay.redhat.com.yaml";
    assert!(
        read(crd) == quay_operator::api::crd_yaml(),
        "{crd} is stale: run `cargo run -p quay-operator -- crd > {crd}`"
    );
}

#[test]
fn bundle_declares_every_install_mode_and_the_namespaced_rules() {
    let csv = bundle::cluster_service_version(install::DEFAULT_IMAGE);
    let modes: Vec<&str> = csv["spec"]["installModes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["supported"] == true)
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        modes,
        [
            "OwnNamespace",
            "SingleNamespace",
            "MultiNamespace",
            "AllNamespaces"
        ]
    );
    assert_eq!(csv["metadata"]["name"], "quay-operator-rs.v0.1.0");
    // Cluster-wide permissions are the cluster-scoped reads only: no Secret, nothing namespaced.
    let cluster = &csv["spec"]["install"]["spec"]["clusterPermissions"][0]["rules"];
    let resources: Vec<&str> = cluster
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        resources,
        ["customresourcedefinitions", "apiservers", "namespaces"]
    );
    let deployment = &csv["spec"]["install"]["spec"]["deployments"][0]["spec"];
    let env = &deployment["template"]["spec"]["containers"][0]["env"];
    assert!(
        env.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "WATCH_NAMESPACE"
                && e["valueFrom"]["fieldRef"]["fieldPath"]
                    == "metadata.annotations['olm.targetNamespaces']"),
        "{env}"
    );
    let related: Vec<&str> = csv["spec"]["relatedImages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        related.contains(&"quay") && related.contains(&"clairpostgres-previous"),
        "{related:?}"
    );
    let example: Value = serde_json::from_str(
        csv["metadata"]["annotations"]["alm-examples"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(example[0]["kind"], "QuayRegistry");
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quay-operator-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let cache = kubeconfig.with_file_name("kubectl-cache");
    let out = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(&cache)
        .args(args)
        .output()
        .await
        .expect("kubectl runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn apply(kubeconfig: &Path, path: &str) {
    let full = common::repo_root().join(path);
    let (ok, out) = kubectl(
        kubeconfig,
        &["apply", "--server-side", "-f", full.to_str().unwrap()],
    )
    .await;
    assert!(ok, "kubectl apply -f {path}: {out}");
}

fn env_value<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["env"]
        .as_array()?
        .iter()
        .find(|e| e["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_all_namespaces_manifests_and_the_deployment_is_as_intended() {
    let sim = Simulator::start(Options {
        monitoring: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = scratch_dir("install-all");
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();

    apply(&kubeconfig, "deploy/crd.yaml").await;
    apply(&kubeconfig, "deploy/all-namespaces/").await;
    apply(&kubeconfig, "deploy/all-namespaces/monitoring/").await;

    let ns = install::DEFAULT_OPERATOR_NAMESPACE;
    let deployment = sim
        .get("apps", "deployments", ns, install::OPERATOR_NAME)
        .expect("the operator Deployment exists");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], install::OPERATOR_NAME);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let container = &pod["containers"][0];
    assert_eq!(container["image"], install::DEFAULT_IMAGE);
    assert_eq!(
        container["args"],
        serde_json::json!(["run", "--leader-election", "--http-addr=0.0.0.0:8080"]),
        "all namespaces: no --namespace"
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );
    assert_eq!(container["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(container["resources"]["limits"]["memory"], "256Mi");
    assert_eq!(
        env_value(container, "QUAY_VERSION").unwrap()["value"],
        quay_operator::DEFAULT_QUAY_VERSION
    );
    assert_eq!(
        env_value(container, "RELATED_IMAGE_COMPONENT_QUAY").unwrap()["value"],
        quay_operator::render::images::DEFAULT_QUAY_IMAGE
    );
    assert_eq!(
        env_value(container, "MY_POD_NAMESPACE").unwrap()["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );

    // The ServiceAccount is bound to the cluster-wide role of this mode.
    assert!(
        sim.get("", "serviceaccounts", ns, install::OPERATOR_NAME)
            .is_some()
    );
    let binding = sim
        .get(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            "",
            install::rbac::REGISTRIES_ROLE,
        )
        .expect("ClusterRoleBinding");
    assert_eq!(binding["subjects"][0]["name"], install::OPERATOR_NAME);
    assert_eq!(binding["subjects"][0]["namespace"], ns);
    let role = sim
        .get(
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            install::rbac::REGISTRIES_ROLE,
        )
        .expect("ClusterRole");
    let expected = install::rbac::roles(&InstallMode::AllNamespaces, ns);
    assert_eq!(
        role["rules"].as_array().unwrap().len(),
        expected[0].rules.len()
    );
    assert!(
        sim.get("", "services", ns, manifests::METRICS_SERVICE)
            .is_some()
    );
    let monitor = sim
        .get(
            "monitoring.coreos.com",
            "servicemonitors",
            ns,
            install::OPERATOR_NAME,
        )
        .expect("ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");

    sim.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_namespaced_manifests_with_roles_only_in_the_watched_namespace() {
    let sim = Simulator::start(Options::default()).await.unwrap();
    let dir = scratch_dir("install-namespaced");
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let namespace = dir.join("namespace.yaml");
    std::fs::write(
        &namespace,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: quay-enterprise\n",
    )
    .unwrap();
    apply(&kubeconfig, "deploy/crd.yaml").await;
    apply(&kubeconfig, namespace.to_str().unwrap()).await;
    apply(&kubeconfig, "deploy/namespaced/").await;

    let ns = install::DEFAULT_OPERATOR_NAMESPACE;
    let deployment = sim
        .get("apps", "deployments", ns, install::OPERATOR_NAME)
        .unwrap();
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        args.as_array()
            .unwrap()
            .contains(&Value::from("--namespace=quay-enterprise")),
        "{args}"
    );
    assert!(
        sim.get(
            "rbac.authorization.k8s.io",
            "roles",
            "quay-enterprise",
            install::rbac::REGISTRIES_ROLE
        )
        .is_some()
    );
    assert!(
        sim.get(
            "rbac.authorization.k8s.io",
            "roles",
            ns,
            install::rbac::SELF_ROLE
        )
        .is_some()
    );
    // The only ClusterRole holds cluster-scoped reads.
    let cluster_roles = sim.list("rbac.authorization.k8s.io", "clusterroles", None);
    assert_eq!(cluster_roles.len(), 1, "{cluster_roles:?}");
    let secrets_anywhere = cluster_roles[0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| {
            r["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "secrets" || x == "*")
        });
    assert!(!secrets_anywhere);

    sim.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn manifests_command_refuses_namespaces_that_do_not_fit_the_mode() {
    use clap::Parser;
    use quay_operator::cli::{Cli, execute};
    let run = |args: &[&str]| {
        let cli = Cli::try_parse_from(std::iter::once("quay-operator").chain(args.iter().copied()))
            .expect("arguments parse");
        execute(&cli, |_| None, common::fixed_now())
    };
    let out = run(&["manifests", "--mode", "multi"]);
    assert_eq!(out.code, 1);
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("--mode multi needs --namespaces"),
        "{}",
        out.stderr
    );
    let out = run(&["manifests", "--mode", "all", "--namespaces", "quay"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let out = run(&[
        "manifests",
        "--mode",
        "own",
        "--operator-namespace",
        "registries",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("--namespace=registries"),
        "own namespace watches the operator's namespace"
    );
    assert!(
        out.stdout.contains("kind: ServiceMonitor"),
        "printed output includes the ServiceMonitor"
    );
    let out = run(&["rbac"]);
    assert!(out.stdout.contains("all namespaces: "), "{}", out.stdout);
}
