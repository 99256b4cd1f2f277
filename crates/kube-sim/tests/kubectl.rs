//! kubectl 1.32 (/usr/bin/kubectl) against the `kube-sim` binary (spec §10 items 1, 8, 18,
//! 28, 40, 48 and the issue's kubectl list): create, server-side apply (no-op second run,
//! conflict text), get -o jsonpath, get --watch, wait, delete, explain of a CRD field.
//! Skipped (with a message) when kubectl is not installed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const KUBECTL: &str = "/usr/bin/kubectl";
const T: Duration = Duration::from_secs(30);

struct Bin {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl Drop for Bin {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "kube-sim-{tag}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

/// Start the binary on a free port and wait for its "ready" line (no sleeps).
async fn start(tag: &str, extra: &[&str]) -> Option<Bin> {
    if !Path::new(KUBECTL).exists() {
        eprintln!("kubectl not installed at {KUBECTL}: skipping");
        return None;
    }
    let dir = tmpdir(tag);
    let kc = dir.join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-sim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig",
            kc.to_str().unwrap(),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn kube-sim");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(T, lines.next_line())
        .await
        .expect("ready line in time")
        .unwrap()
        .expect("a line");
    let url = line
        .strip_prefix("kube-sim ready on ")
        .expect("ready line")
        .to_string();
    Some(Bin { child, dir, url })
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Bin {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(KUBECTL);
        c.env("KUBECONFIG", self.dir.join("kubeconfig"))
            .arg(format!("--cache-dir={}", self.dir.join("cache").display()))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        c
    }

    async fn kubectl(&self, args: &[&str]) -> Out {
        let o = tokio::time::timeout(T, self.cmd(args).output())
            .await
            .expect("kubectl in time")
            .expect("run kubectl");
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    async fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args).await;
        assert_eq!(
            o.code, 0,
            "kubectl {args:?} failed: {}{}",
            o.stdout, o.stderr
        );
        o.stdout
    }

    fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// kube-rs client to the binary (for /metrics).
    fn client(&self) -> kube::Client {
        kube::Client::try_from(kube::Config::new(self.url.parse().unwrap())).unwrap()
    }

    async fn metric(&self, verb: &str, resource: &str) -> u64 {
        let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
        let text = self.client().request_text(req).await.unwrap();
        text.lines()
            .filter(|l| {
                l.starts_with("apiserver_request_total{")
                    && l.contains(&format!("resource=\"{resource}\""))
                    && l.contains(&format!("verb=\"{verb}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c1\ndata:\n  a: \"1\"\n";

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
";

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {plural: widgets, singular: widget, kind: Widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        description: A Widget is a test kind.
        properties:
          spec:
            type: object
            description: Desired state of the widget.
            properties:
              size:
                type: integer
                description: How big the widget is.
"#;

#[tokio::test]
async fn kubectl_version_create_get_jsonpath_and_errors() {
    let Some(b) = start("basic", &[]).await else {
        return;
    };
    let v = b.ok(&["version", "-o", "json"]).await;
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["serverVersion"]["minor"], "32");
    // Strict validation without --validate=false (needs the OpenAPI v3 documents).
    let f = b.file("cm.yaml", CM);
    assert!(
        b.ok(&["create", "-f", &f])
            .await
            .contains("configmap/c1 created")
    );
    assert_eq!(
        b.ok(&["get", "cm", "c1", "-o", "jsonpath={.data.a}"]).await,
        "1"
    );
    let o = b.kubectl(&["get", "cm", "missing"]).await;
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("Error from server (NotFound): configmaps \"missing\" not found"),
        "{}",
        o.stderr
    );
    let o = b.kubectl(&["create", "-f", &f]).await;
    assert!(o.stderr.contains("AlreadyExists"), "{}", o.stderr);
    assert!(
        b.ok(&["delete", "-f", &f])
            .await
            .contains("configmap \"c1\" deleted")
    );
    let o = b.kubectl(&["get", "cm", "c1"]).await;
    assert_ne!(o.code, 0);
}

#[tokio::test]
async fn kubectl_server_side_apply_noop_wait_and_conflict() {
    let Some(b) = start("ssa", &[]).await else {
        return;
    };
    let cm = b.file("cm.yaml", CM);
    b.ok(&["apply", "--server-side", "-f", &cm]).await;
    let rv1 = b
        .ok(&[
            "get",
            "cm",
            "c1",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    b.ok(&["apply", "--server-side", "-f", &cm]).await;
    let rv2 = b
        .ok(&[
            "get",
            "cm",
            "c1",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    assert_eq!(
        rv1, rv2,
        "second server-side apply must not change resourceVersion"
    );
    let mf = b
        .ok(&[
            "get",
            "cm",
            "c1",
            "-o",
            "jsonpath={.metadata.managedFields[0].manager}/{.metadata.managedFields[0].operation}",
            "--show-managed-fields",
        ])
        .await;
    assert_eq!(mf, "kubectl/Apply");

    let d = b.file("deploy.yaml", DEPLOY);
    b.ok(&["apply", "--server-side", "-f", &d]).await;
    assert!(
        b.ok(&[
            "wait",
            "--for=condition=Available",
            "deploy/web",
            "--timeout=20s"
        ])
        .await
        .contains("condition met")
    );
    let rv1 = b
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    b.ok(&["apply", "--server-side", "-f", &d]).await;
    let rv2 = b
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ])
        .await;
    assert_eq!(rv1, rv2);
    // Another manager takes spec.replicas; a changed apply without --force-conflicts fails.
    b.ok(&[
        "patch",
        "deploy",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"replicas":5}}"#,
        "--field-manager=other",
    ])
    .await;
    let d3 = b.file(
        "deploy3.yaml",
        &DEPLOY.replace("replicas: 2", "replicas: 3"),
    );
    let o = b.kubectl(&["apply", "--server-side", "-f", &d3]).await;
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains(
            "Apply failed with 1 conflict: conflict with \"other\" using apps/v1: .spec.replicas"
        ),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("Please review the fields above"),
        "{}",
        o.stderr
    );
    b.ok(&["apply", "--server-side", "--force-conflicts", "-f", &d3])
        .await;
    assert_eq!(
        b.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
            .await,
        "3"
    );
    b.ok(&["delete", "deploy", "web", "--timeout=20s"]).await;
}

/// The next line of kubectl's output that contains `what`.
async fn next_with(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    what: &str,
) -> String {
    let fut = async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.contains(what) {
                return l;
            }
        }
        panic!("kubectl --watch ended")
    };
    tokio::time::timeout(T, fut)
        .await
        .expect("kubectl output in time")
}

#[tokio::test]
async fn kubectl_get_watch_sees_new_object() {
    let Some(b) = start("watch", &[]).await else {
        return;
    };
    let first = b.file("first.yaml", &CM.replace("name: c1", "name: first"));
    b.ok(&["create", "-f", &first]).await;
    let mut child = b
        .cmd(&["get", "cm", "--watch", "--output-watch-events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Once the listed object is printed, kubectl watches from the list's resourceVersion, so
    // an object created from now on is delivered whether or not the watch request has
    // arrived yet: no race, no sleep.
    next_with(&mut lines, "first").await;
    let f = b.file("cm.yaml", CM);
    b.ok(&["create", "-f", &f]).await;
    let seen = next_with(&mut lines, "c1").await;
    assert!(seen.contains("ADDED"), "{seen}");
    assert!(b.metric("WATCH", "configmaps").await >= 1);
    child.start_kill().unwrap();
}

#[tokio::test]
async fn kubectl_crd_established_custom_resource_and_explain() {
    let Some(b) = start("crd", &[]).await else {
        return;
    };
    let crd = b.file("crd.yaml", CRD);
    b.ok(&["apply", "--server-side", "-f", &crd]).await;
    b.ok(&[
        "wait",
        "--for=condition=Established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ])
    .await;
    let w = b.file(
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 4\n",
    );
    b.ok(&["create", "-f", &w]).await;
    assert_eq!(
        b.ok(&["get", "widgets", "w1", "-o", "jsonpath={.spec.size}"])
            .await,
        "4"
    );
    let ex = b.ok(&["explain", "widgets.spec.size"]).await;
    assert!(ex.contains("How big the widget is."), "{ex}");
    let ex = b.ok(&["explain", "widgets.spec"]).await;
    assert!(ex.contains("Desired state of the widget."), "{ex}");
    // Built-in kinds carry k8s-openapi's schemas (and so their descriptions) too.
    let ex = b.ok(&["explain", "deployment.spec.replicas"]).await;
    assert!(ex.contains("Number of desired pods."), "{ex}");
    // ... which makes kubectl's Strict validation reject typos in built-ins, as a cluster does.
    let typo = b.file(
        "typo.yaml",
        &DEPLOY.replace("  replicas: 2", "  replica: 2"),
    );
    let o = b.kubectl(&["create", "-f", &typo]).await;
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("strict decoding error: unknown field \"spec.replica\""),
        "{}",
        o.stderr
    );
}

#[tokio::test]
async fn kubectl_openshift_route_flag() {
    let Some(b) = start("os", &["--openshift"]).await else {
        return;
    };
    let out = b
        .ok(&[
            "api-resources",
            "--api-group=route.openshift.io",
            "-o",
            "name",
        ])
        .await;
    assert!(out.contains("routes.route.openshift.io"), "{out}");
    let r = b.file("r.yaml", "apiVersion: route.openshift.io/v1\nkind: Route\nmetadata:\n  name: quay\nspec:\n  to: {kind: Service, name: quay}\n");
    b.ok(&["create", "-f", &r]).await;
    b.ok(&[
        "wait",
        "--for=jsonpath={.status.ingress[0].conditions[0].status}=True",
        "route/quay",
        "--timeout=20s",
    ])
    .await;
    assert_eq!(
        b.ok(&["get", "route", "quay", "-o", "jsonpath={.spec.host}"])
            .await,
        "quay-default.apps.sim.example.com"
    );
}

/// Spec §10 items 1 and 8 from the server's side: kubectl 1.32 itself (not the dispatcher's
/// fallback) talks to us, and with the OpenAPI v3 documents it validates server-side
/// (`fieldValidation=Strict`); unknown CR fields are then rejected as on a real cluster.
#[tokio::test]
async fn kubectl_sends_strict_field_validation_and_is_1_32() {
    if !Path::new(KUBECTL).exists() {
        return;
    }
    let sim = kube_sim::Simulator::start(kube_sim::Options::default())
        .await
        .unwrap();
    let dir = tmpdir("inproc");
    sim.write_kubeconfig(&dir.join("kubeconfig")).unwrap();
    let run = |args: Vec<String>| {
        let dir = dir.clone();
        async move {
            Command::new(KUBECTL)
                .env("KUBECONFIG", dir.join("kubeconfig"))
                .arg(format!("--cache-dir={}", dir.join("cache").display()))
                .args(args)
                .stdin(Stdio::null())
                .output()
                .await
                .unwrap()
        }
    };
    let f = dir.join("cm.yaml");
    std::fs::write(&f, CM).unwrap();
    let o = run(vec![
        "create".into(),
        "-f".into(),
        f.to_str().unwrap().into(),
    ])
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reqs = sim.requests();
    let post = reqs
        .iter()
        .find(|r| r.method == "POST")
        .expect("the create request");
    assert!(post.uri.contains("fieldValidation=Strict"), "{}", post.uri);
    assert!(
        post.uri.contains("fieldManager=kubectl-create"),
        "{}",
        post.uri
    );
    assert!(
        post.user_agent.starts_with("kubectl/v1.32."),
        "{}",
        post.user_agent
    );
    assert!(reqs.iter().any(|r| r.uri.starts_with("/openapi/v3")));
    assert!(!reqs.iter().any(|r| r.uri.starts_with("/openapi/v2")));

    let crd = dir.join("crd.yaml");
    std::fs::write(&crd, CRD).unwrap();
    let o = run(vec![
        "create".into(),
        "-f".into(),
        crd.to_str().unwrap().into(),
    ])
    .await;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let w = dir.join("w.yaml");
    std::fs::write(&w, "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 4\n  bogus: 1\n").unwrap();
    let o = run(vec![
        "create".into(),
        "-f".into(),
        w.to_str().unwrap().into(),
    ])
    .await;
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("strict decoding error: unknown field \"spec.bogus\""),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
