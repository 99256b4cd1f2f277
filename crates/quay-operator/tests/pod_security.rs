//! Every pod the operator creates passes the Kubernetes Pod Security Standards "restricted" profile
//! (https://kubernetes.io/docs/concepts/security/pod-security-standards/, baseline and restricted controls as of
//! Kubernetes 1.33), so a registry runs in a namespace labelled `pod-security.kubernetes.io/enforce: restricted`.
//!
//! The rules below are written from the published standard. They are checked on every Deployment and Job of the
//! renders of every example, of each example while a Quay upgrade is due (the migration Job), and of the
//! all-managed registry on both platforms. Exceptions are listed in docs/pod-security.md and asserted here; there
//! are none today.

mod common;

use quay_operator::api::ComponentKind;
use quay_operator::api::QuayRegistryStatus;
use quay_operator::cli::Inputs;
use quay_operator::render::postgres_upgrade::{PostgresUpgrade, UpgradeStage};
use quay_operator::render::{ClusterFacts, DesiredObject, render};
use serde_json::Value;

/// Volume types the restricted profile allows.
const ALLOWED_VOLUME_TYPES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

/// Sysctls the baseline profile allows.
const SAFE_SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// SELinux types the baseline profile allows (besides unset).
const ALLOWED_SELINUX_TYPES: [&str; 4] = [
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true)
}

fn seccomp_ok(profile: &Value) -> bool {
    matches!(
        profile["type"].as_str(),
        Some("RuntimeDefault" | "Localhost")
    )
}

/// Every violation of the restricted profile in one pod template (`spec.template` of a Deployment or Job).
fn violations(template: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let pod = &template["spec"];
    let pod_sc = &pod["securityContext"];

    // Baseline: host namespaces, HostProcess, hostPath, sysctls, AppArmor annotations.
    for field in ["hostNetwork", "hostPID", "hostIPC"] {
        if is_true(&pod[field]) {
            found.push(format!("spec.{field} is true"));
        }
    }
    if is_true(&pod_sc["windowsOptions"]["hostProcess"]) {
        found.push("spec.securityContext.windowsOptions.hostProcess is true".to_owned());
    }
    for sysctl in pod_sc["sysctls"].as_array().into_iter().flatten() {
        let name = sysctl["name"].as_str().unwrap_or_default();
        if !SAFE_SYSCTLS.contains(&name) {
            found.push(format!("unsafe sysctl {name}"));
        }
    }
    for (key, value) in template["metadata"]["annotations"]
        .as_object()
        .into_iter()
        .flatten()
    {
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/") {
            let v = value.as_str().unwrap_or_default();
            if v != "runtime/default" && !v.starts_with("localhost/") {
                found.push(format!("AppArmor annotation {key}={v}"));
            }
        }
    }
    // Restricted: volume types.
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        let name = volume["name"].as_str().unwrap_or_default();
        let types: Vec<&String> = volume
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.as_str() != "name")
            .collect();
        for t in types {
            if !ALLOWED_VOLUME_TYPES.contains(&t.as_str()) {
                found.push(format!("volume {name} is of type {t}"));
            }
        }
    }
    // Pod-level fields that containers inherit.
    check_security_context("spec.securityContext", pod_sc, &mut found);
    let pod_non_root = is_true(&pod_sc["runAsNonRoot"]);
    let pod_seccomp = seccomp_ok(&pod_sc["seccompProfile"]);

    let containers = ["initContainers", "containers", "ephemeralContainers"]
        .into_iter()
        .flat_map(|list| {
            pod[list]
                .as_array()
                .into_iter()
                .flatten()
                .map(move |c| (list, c))
        });
    for (list, c) in containers {
        let at = format!("{list}[{}]", c["name"].as_str().unwrap_or("?"));
        let sc = &c["securityContext"];
        check_security_context(&format!("{at}.securityContext"), sc, &mut found);
        if is_true(&sc["privileged"]) {
            found.push(format!("{at} is privileged"));
        }
        if sc["allowPrivilegeEscalation"].as_bool() != Some(false) {
            found.push(format!("{at}: allowPrivilegeEscalation is not false"));
        }
        let non_root = match sc["runAsNonRoot"].as_bool() {
            Some(v) => v,
            None => pod_non_root,
        };
        if !non_root {
            found.push(format!("{at}: runAsNonRoot is not true (pod or container)"));
        }
        let seccomp = if sc["seccompProfile"].is_null() {
            pod_seccomp
        } else {
            seccomp_ok(&sc["seccompProfile"])
        };
        if !seccomp {
            found.push(format!(
                "{at}: no RuntimeDefault/Localhost seccompProfile (pod or container)"
            ));
        }
        let caps = &sc["capabilities"];
        let drops_all = caps["drop"]
            .as_array()
            .is_some_and(|d| d.iter().any(|c| c == "ALL"));
        if !drops_all {
            found.push(format!("{at}: capabilities do not drop ALL"));
        }
        for cap in caps["add"].as_array().into_iter().flatten() {
            if cap != "NET_BIND_SERVICE" {
                found.push(format!("{at}: adds capability {cap}"));
            }
        }
        if sc["procMount"].as_str().is_some_and(|m| m != "Default") {
            found.push(format!("{at}: procMount {}", sc["procMount"]));
        }
        for port in c["ports"].as_array().into_iter().flatten() {
            if port["hostPort"].as_i64().is_some_and(|p| p != 0) {
                found.push(format!("{at}: hostPort {}", port["hostPort"]));
            }
        }
    }
    found
}

/// Rules shared by the pod and container security contexts.
fn check_security_context(at: &str, sc: &Value, found: &mut Vec<String>) {
    if sc["runAsUser"].as_i64() == Some(0) {
        found.push(format!("{at}.runAsUser is 0"));
    }
    if sc["runAsNonRoot"].as_bool() == Some(false) {
        found.push(format!("{at}.runAsNonRoot is false"));
    }
    if sc["seccompProfile"]["type"] == "Unconfined" {
        found.push(format!("{at}.seccompProfile is Unconfined"));
    }
    if sc["appArmorProfile"]["type"] == "Unconfined" {
        found.push(format!("{at}.appArmorProfile is Unconfined"));
    }
    let selinux = &sc["seLinuxOptions"];
    if let Some(t) = selinux["type"].as_str()
        && !t.is_empty()
        && !ALLOWED_SELINUX_TYPES.contains(&t)
    {
        found.push(format!("{at}.seLinuxOptions.type {t}"));
    }
    for field in ["user", "role"] {
        if selinux[field].as_str().is_some_and(|v| !v.is_empty()) {
            found.push(format!("{at}.seLinuxOptions.{field} is set"));
        }
    }
    if is_true(&sc["windowsOptions"]["hostProcess"]) {
        found.push(format!("{at}.windowsOptions.hostProcess is true"));
    }
}

/// The pod templates of a render: (object, template).
fn pod_templates(objects: &[DesiredObject]) -> Vec<(String, Value)> {
    objects
        .iter()
        .filter(|o| matches!(o, DesiredObject::Deployment(_) | DesiredObject::Job(_)))
        .map(|o| {
            let json = o.to_json();
            let name = format!(
                "{}/{}",
                json["kind"].as_str().unwrap(),
                json["metadata"]["name"].as_str().unwrap()
            );
            (name, json["spec"]["template"].clone())
        })
        .collect()
}

/// Renders and checks one set of inputs; returns (pods checked, violations).
fn check(label: &str, inputs: &Inputs) -> (usize, Vec<String>) {
    let rendered = render(&inputs.render_input(common::fixed_now()))
        .unwrap_or_else(|e| panic!("{label} does not render: {e}"));
    let pods = pod_templates(&rendered.objects);
    let problems = pods
        .iter()
        .flat_map(|(name, template)| {
            violations(template)
                .into_iter()
                .map(move |v| format!("{label}: {name}: {v}"))
        })
        .collect();
    (pods.len(), problems)
}

/// Every variant the test renders: each example as is, and each while a Quay upgrade is due.
fn variants() -> Vec<(String, Inputs)> {
    let mut out = Vec::new();
    for name in common::example_names() {
        out.push((name.clone(), common::load_example(&name)));
        let mut upgrading = common::load_example(&name);
        upgrading.registry.status = Some(QuayRegistryStatus {
            current_version: Some("v3.10.3".to_owned()),
            ..Default::default()
        });
        out.push((format!("{name} (upgrade from v3.10.3)"), upgrading));
    }
    // all-managed on plain Kubernetes: every component the cluster can offer managed, and mirror on.
    let mut kubernetes = common::load_example("kubernetes-s3-tls");
    kubernetes.cluster = ClusterFacts::default();
    let mut components = kubernetes
        .registry
        .spec
        .components
        .clone()
        .unwrap_or_default();
    components.push(quay_operator::api::Component::new(
        ComponentKind::Mirror,
        true,
    ));
    kubernetes.registry.spec.components = Some(components);
    out.push(("all-managed on Kubernetes".to_owned(), kubernetes));
    // all-managed on OpenShift while both databases are copied to their new major version (upgrade Jobs and
    // the temporary old-data servers).
    let mut pg_upgrade = common::load_example("all-managed");
    pg_upgrade.cluster.postgres_upgrades = vec![
        PostgresUpgrade {
            component: ComponentKind::Postgres,
            old_image: "centos/postgresql-10-centos7:latest".to_owned(),
            old_claim: "quay-quay-database".to_owned(),
            stage: UpgradeStage::Migrate,
        },
        PostgresUpgrade {
            component: ComponentKind::ClairPostgres,
            old_image: "quay.io/sclorg/postgresql-13-c9s:latest".to_owned(),
            old_claim: "quay-clair-postgres-13".to_owned(),
            stage: UpgradeStage::Migrate,
        },
    ];
    out.push(("all-managed (PostgreSQL upgrades)".to_owned(), pg_upgrade));
    out
}

#[test]
fn every_rendered_pod_passes_the_restricted_pod_security_profile() {
    let mut pods = 0;
    let mut problems = Vec::new();
    let variants = variants();
    for (label, inputs) in &variants {
        let (n, p) = check(label, inputs);
        pods += n;
        problems.extend(p);
    }
    println!(
        "pod security (restricted): {pods} pod templates checked in {} renders, {} violations",
        variants.len(),
        problems.len()
    );
    assert!(pods >= 60, "only {pods} pod templates checked");
    let jobs = |label: &str| {
        let inputs = &variants.iter().find(|(l, _)| l == label).unwrap().1;
        let rendered = render(&inputs.render_input(common::fixed_now())).unwrap();
        pod_templates(&rendered.objects)
            .into_iter()
            .filter(|(name, _)| name.starts_with("Job/"))
            .map(|(name, _)| name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        jobs("all-managed (PostgreSQL upgrades)").len(),
        2,
        "both database upgrade Jobs are among the pods checked"
    );
    assert!(
        !jobs("kubernetes-s3-tls (upgrade from v3.10.3)").is_empty(),
        "the Quay migration Job is among the pods checked"
    );
    assert!(
        variants
            .iter()
            .any(|(l, _)| l.starts_with("all-managed (upgrade")),
        "the all-managed OpenShift registry is among the variants"
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_finds_each_kind_of_violation() {
    // A pod that breaks every rule once: the checker must name each.
    let bad: Value = serde_json::from_str(
        r#"{"metadata": {"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"}},
            "spec": {"hostNetwork": true, "hostPID": true, "hostIPC": true,
              "securityContext": {"runAsUser": 0, "sysctls": [{"name": "kernel.msgmax", "value": "1"}],
                                  "seccompProfile": {"type": "Unconfined"}},
              "volumes": [{"name": "host", "hostPath": {"path": "/"}}],
              "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}],
                "securityContext": {"privileged": true, "allowPrivilegeEscalation": true,
                  "capabilities": {"add": ["SYS_ADMIN"]}, "procMount": "Unmasked",
                  "seLinuxOptions": {"type": "spc_t", "user": "root"}}}]}}"#,
    )
    .unwrap();
    let found = violations(&bad).join("\n");
    for expected in [
        "spec.hostNetwork is true",
        "spec.hostPID is true",
        "spec.hostIPC is true",
        "unsafe sysctl kernel.msgmax",
        "AppArmor annotation",
        "volume host is of type hostPath",
        "spec.securityContext.runAsUser is 0",
        "spec.securityContext.seccompProfile is Unconfined",
        "containers[c] is privileged",
        "containers[c]: allowPrivilegeEscalation is not false",
        "containers[c]: runAsNonRoot is not true",
        "containers[c]: no RuntimeDefault/Localhost seccompProfile",
        "containers[c]: capabilities do not drop ALL",
        "containers[c]: adds capability \"SYS_ADMIN\"",
        "containers[c]: procMount",
        "containers[c]: hostPort 80",
        "seLinuxOptions.type spc_t",
        "seLinuxOptions.user is set",
    ] {
        assert!(
            found.contains(expected),
            "missing {expected:?} in:\n{found}"
        );
    }
    // And a compliant pod has none.
    let good: Value = serde_json::from_str(
        r#"{"spec": {"securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
              "volumes": [{"name": "cfg", "secret": {"secretName": "s"}}, {"name": "tmp", "emptyDir": {}}],
              "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}]}}"#,
    )
    .unwrap();
    assert_eq!(violations(&good), Vec::<String>::new());
}
