//! The README's flow with real processes: `kubectl apply --server-side` the CRD and a registry, start
//! `quay-operator run`, `kubectl wait --for=condition=Available`. Also `quay-operator diff` before and after.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use kube_sim::{Options, Simulator};
use tokio::process::Command;

const KUBECTL: &str = "/usr/bin/kubectl";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

async fn kubectl(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(kubeconfig)
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

async fn operator(kubeconfig: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_quay-operator"))
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("QUAY_VERSION", "v3.11.0")
        .output()
        .await
        .expect("quay-operator runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_then_wait_for_available_with_the_operator_binary() {
    if !Path::new(KUBECTL).exists() {
        panic!("kubectl is expected at {KUBECTL} on these machines");
    }
    let sim = Simulator::start(Options::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("quay-operator-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).unwrap();
    let example = repo().join("examples/kubernetes-s3-tls");

    let (ok, out) = kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "-f",
            repo().join("deploy/crd.yaml").to_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{out}");
    // (`kubectl create namespace` speaks protobuf, which the simulator does not; a manifest is JSON.)
    let namespace = dir.join("namespace.yaml");
    std::fs::write(
        &namespace,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: quay\n",
    )
    .unwrap();
    let (ok, out) = kubectl(
        &kubeconfig,
        &["apply", "--server-side", "-f", namespace.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{out}");
    for file in ["config-bundle.yaml", "quayregistry.yaml"] {
        let (ok, out) = kubectl(
            &kubeconfig,
            &[
                "apply",
                "--server-side",
                "-f",
                example.join(file).to_str().unwrap(),
            ],
        )
        .await;
        assert!(ok, "{file}: {out}");
    }

    // Before the operator ran, diff shows everything to create (exit code 2: changes pending).
    let (code, plan) = operator(&kubeconfig, &["diff", "-n", "quay", "quay"]).await;
    assert_eq!(code, 2, "{plan}");
    assert!(
        plan.contains("create   Deployment quay/quay-quay-app"),
        "{plan}"
    );

    let mut run = Command::new(env!("CARGO_BIN_EXE_quay-operator"))
        .args(["run", "--http-addr", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .env("QUAY_VERSION", "v3.11.0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("quay-operator run starts");

    let (ok, out) = kubectl(
        &kubeconfig,
        &[
            "wait",
            "--for=condition=Available",
            "quayregistry/quay",
            "-n",
            "quay",
            "--timeout=60s",
        ],
    )
    .await;
    assert!(ok, "{out}");
    let (ok, version) = kubectl(
        &kubeconfig,
        &[
            "get",
            "quayregistry",
            "quay",
            "-n",
            "quay",
            "-o",
            "jsonpath={.status.currentVersion}",
        ],
    )
    .await;
    assert!(ok);
    assert_eq!(version, "v3.11.0");

    // Converged: diff has nothing left to write. Give the last status write a moment to land in the cache the
    // diff lists from (it lists, it does not watch).
    let mut last = (-1, String::new());
    for _ in 0..50 {
        last = operator(&kubeconfig, &["diff", "-n", "quay", "quay"]).await;
        if last.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, plan) = last;
    assert_eq!(code, 0, "nothing to write once converged:\n{plan}");
    assert!(
        plan.lines().last().unwrap_or_default().starts_with("0 of "),
        "{plan}"
    );

    run.kill().await.unwrap();
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
