//! User story: whatever a person (or a script gone wrong) puts into a QuayRegistry or its config bundle, the
//! registry's status says exactly what is wrong, and nothing else is written: no object applied, no Secret
//! created or regenerated, no rollout started.
//!
//! The corpus is data: one YAML file per case under `tests/corpus/bad_input/` (format in its README.md). Every
//! case gets its own namespace; all cases of one platform run in one simulated cluster with one in-process
//! operator, started only after every case is set up, so each request the simulator records after that point is
//! the operator's. A case passes when its registry shows `RolloutBlocked=True` with the exact reason and message
//! (or, for input the API server itself refuses, when the create fails with the exact API message), and when
//! the operator wrote nothing in its namespace but the registry's status and Events.

#[path = "common/sim.rs"]
mod sim;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use base64::Engine;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube_sim::Simulator;
use quay_operator::api::QuayRegistry;
use quay_operator::controller::reconcile::CONFIG_BUNDLE_LABEL;
use quay_operator::render::OperatorSettings;
use serde_json::{Value, json};
use sim::{Platform, conditions};

/// Name of every case's registry (each case has its own namespace).
const REGISTRY: &str = "reg";
/// Default name of a case's config bundle Secret.
const BUNDLE: &str = "bundle";

/// One case of the corpus, as read from its file.
struct Case {
    file: String,
    /// The registry's name (`reg` unless the case is about names).
    name: String,
    namespace: String,
    platform: Platform,
    operator_env: BTreeMap<String, String>,
    /// The registry as sent to the API server (name, namespace and the finalizer filled in).
    registry: Value,
    /// Status written through the status subresource before the operator starts (e.g. `currentVersion`).
    status: Option<Value>,
    /// The bundle Secret's data, or `None` when the case has no bundle Secret.
    bundle: Option<BTreeMap<String, Vec<u8>>>,
    bundle_name: String,
    /// The bundle is put straight into the simulator's store: an API server refuses a body this large, but the
    /// operator must not fall over should one ever reach it.
    bundle_direct: bool,
    objects: Vec<Value>,
    expect: Expect,
}

enum Expect {
    /// `RolloutBlocked=True` with this reason and message.
    Blocked { reason: String, message: String },
    /// The API server refuses the registry with this message.
    Rejected { message: String },
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad_input")
}

fn text_of(value: &Value, what: &str) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} must be a string, got {value}"))
        .to_owned()
}

/// A bundle file's content: a string, `{base64: ...}` for binary data, or `{repeat: s, times: n}` for huge
/// generated values (kept out of the repository).
fn file_content(value: &Value, what: &str) -> Vec<u8> {
    match value {
        Value::String(s) => s.clone().into_bytes(),
        Value::Object(o) if o.contains_key("base64") => base64::engine::general_purpose::STANDARD
            .decode(text_of(&o["base64"], what))
            .unwrap_or_else(|e| panic!("{what}: bad base64: {e}")),
        Value::Object(o) if o.contains_key("repeat") => {
            let prefix = o
                .get("prefix")
                .map(|p| text_of(p, what))
                .unwrap_or_default();
            let unit = text_of(&o["repeat"], what);
            let times = o["times"]
                .as_u64()
                .unwrap_or_else(|| panic!("{what}: times"));
            let mut s = prefix;
            for _ in 0..times {
                s.push_str(&unit);
            }
            s.into_bytes()
        }
        other => panic!("{what}: unsupported file content {other}"),
    }
}

/// The base bundle of a platform: examples/kubernetes-s3-tls on Kubernetes, Quay settings only on OpenShift.
fn base_bundle(base: &str) -> BTreeMap<String, Vec<u8>> {
    match base {
        "kubernetes" => sim::kubernetes_bundle()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect(),
        "openshift" => BTreeMap::from([(
            "config.yaml".to_owned(),
            b"SERVER_HOSTNAME: quay.example.com\n".to_vec(),
        )]),
        "empty" => BTreeMap::new(),
        other => panic!("unknown bundle base {other}"),
    }
}

fn load_case(path: &Path, index: usize) -> Case {
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(path).unwrap();
    let doc: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    let platform = match doc["platform"].as_str().unwrap_or("kubernetes") {
        "kubernetes" => Platform::Kubernetes,
        "openshift" => Platform::OpenShift,
        other => panic!("{file}: unknown platform {other}"),
    };
    let namespace = format!("case-{index:03}");
    let operator_env = doc["operatorEnv"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), text_of(v, "operatorEnv")))
        .collect();

    // The bundle: a base, files replaced or added, files removed; or none at all.
    let bundle_doc = &doc["bundle"];
    let bundle_name = bundle_doc["name"].as_str().unwrap_or(BUNDLE).to_owned();
    let bundle = if bundle_doc["absent"] == true {
        None
    } else {
        let default_base = match platform {
            Platform::Kubernetes => "kubernetes",
            Platform::OpenShift => "openshift",
        };
        let mut files = base_bundle(bundle_doc["base"].as_str().unwrap_or(default_base));
        for (k, v) in bundle_doc["files"].as_object().into_iter().flatten() {
            files.insert(
                k.clone(),
                file_content(v, &format!("{file}: bundle.files.{k}")),
            );
        }
        if let Some(append) = bundle_doc["appendConfig"].as_str() {
            files
                .entry("config.yaml".to_owned())
                .or_default()
                .extend_from_slice(append.as_bytes());
        }
        for k in bundle_doc["remove"].as_array().into_iter().flatten() {
            files.remove(k.as_str().unwrap());
        }
        Some(files)
    };

    // The registry: the case's spec, the platform's unmanaged components added on Kubernetes (as the e2e
    // values). No finalizer and no managed keys: the operator adds them only once the input is good.
    let reg_doc = &doc["registry"];
    let mut spec = reg_doc.get("spec").cloned().unwrap_or_else(|| json!({}));
    if spec.get("configBundleSecret").is_none() {
        spec["configBundleSecret"] = json!(BUNDLE);
    }
    if platform == Platform::Kubernetes && reg_doc["platformComponents"] != false {
        let mut list = spec["components"].as_array().cloned().unwrap_or_default();
        for kind in ["objectstorage", "route", "tls", "monitoring"] {
            if !list.iter().any(|c| c["kind"] == kind) {
                list.push(json!({"kind": kind, "managed": false}));
            }
        }
        spec["components"] = Value::Array(list);
    }
    let name = reg_doc["name"].as_str().unwrap_or(REGISTRY).to_owned();
    let registry = json!({
        "apiVersion": "quay.redhat.com/v1", "kind": "QuayRegistry",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    });

    let objects = doc["objects"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut o| {
            o["metadata"]["namespace"] = json!(namespace);
            o
        })
        .collect();

    let expect = &doc["expect"];
    let expect = if let Some(rejected) = expect.get("rejected") {
        Expect::Rejected {
            message: text_of(rejected, "expect.rejected"),
        }
    } else {
        Expect::Blocked {
            reason: text_of(&expect["reason"], "expect.reason"),
            message: text_of(&expect["message"], "expect.message"),
        }
    };
    Case {
        file,
        name,
        namespace,
        platform,
        operator_env,
        registry,
        status: reg_doc.get("status").cloned(),
        bundle,
        bundle_name,
        bundle_direct: bundle_doc["direct"] == true,
        objects,
        expect,
    }
}

fn load_corpus() -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    // CORPUS_FILTER=<substring> runs only the matching cases (their namespaces keep their corpus-wide numbers).
    let filter = std::env::var("CORPUS_FILTER").unwrap_or_default();
    paths
        .iter()
        .enumerate()
        .filter(|(_, p)| p.to_string_lossy().contains(&filter))
        .map(|(i, p)| load_case(p, i))
        .collect()
}

fn secret_json(
    namespace: &str,
    name: &str,
    labels: Value,
    files: &BTreeMap<String, Vec<u8>>,
) -> Value {
    let data: BTreeMap<&String, String> = files
        .iter()
        .map(|(k, v)| (k, base64::engine::general_purpose::STANDARD.encode(v)))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "type": "Opaque",
        "data": data,
    })
}

/// Creates a JSON object through the API (as `kubectl create` would).
async fn create(client: &kube::Client, obj: &Value) -> Result<(), kube::Error> {
    let api_version = obj["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        group,
        version,
        obj["kind"].as_str().unwrap(),
    ));
    let namespace = obj["metadata"]["namespace"].as_str().unwrap();
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    let obj: kube::api::DynamicObject = serde_json::from_value(obj.clone()).unwrap();
    api.create(&PostParams::default(), &obj).await.map(|_| ())
}

/// What the case's setup produced: whether the registry exists, or the API server's refusal.
enum Setup {
    Created,
    Refused(String),
}

/// Namespace, existing objects, bundle (labelled, as the operator labels a bundle it watches), registry and its
/// status: everything the operator will find when it starts.
async fn set_up(sim: &Simulator, client: &kube::Client, case: &Case) -> Setup {
    sim::create_namespace(client, &case.namespace).await;
    for obj in &case.objects {
        create(client, obj)
            .await
            .unwrap_or_else(|e| panic!("{}: existing object: {e}", case.file));
    }
    if let Some(files) = &case.bundle {
        let labels = json!({ (CONFIG_BUNDLE_LABEL): "true" });
        let secret = secret_json(&case.namespace, &case.bundle_name, labels, files);
        if case.bundle_direct {
            sim.create(secret)
                .unwrap_or_else(|e| panic!("{}: bundle: {e}", case.file));
        } else {
            create(client, &secret)
                .await
                .unwrap_or_else(|e| panic!("{}: bundle: {e}", case.file));
        }
    }
    let api: Api<QuayRegistry> = Api::namespaced(client.clone(), &case.namespace);
    let ar = kube::api::ApiResource::erase::<QuayRegistry>(&());
    let dynamic: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), &case.namespace, &ar);
    let registry: kube::api::DynamicObject = serde_json::from_value(case.registry.clone()).unwrap();
    match dynamic.create(&PostParams::default(), &registry).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) => return Setup::Refused(e.message),
        Err(e) => panic!("{}: create registry: {e}", case.file),
    }
    if let Some(status) = &case.status {
        api.patch_status(
            &case.name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: status: {e}", case.file));
    }
    Setup::Created
}

/// Every write request in `namespace` other than the registry's status and Events.
fn unexpected_writes(
    records: &[kube_sim::metrics::RequestRecord],
    namespace: &str,
    registry: &str,
) -> Vec<String> {
    let prefix = format!("/namespaces/{namespace}/");
    let status = format!("/namespaces/{namespace}/quayregistries/{registry}/status");
    let events = format!("/api/v1/namespaces/{namespace}/events");
    records
        .iter()
        .filter(|r| !matches!(r.method.as_str(), "GET" | "HEAD"))
        .filter(|r| r.uri.contains(&prefix))
        .filter(|r| {
            let path = r.uri.split('?').next().unwrap_or_default();
            let status_write = path.ends_with(&status) && r.method == "PATCH";
            let event = path == events && r.method == "POST";
            !(status_write || event)
        })
        .map(|r| format!("{} {} -> {}", r.method, r.uri, r.code))
        .collect()
}

/// Cases sharing a simulated cluster: (OpenShift?, operator environment).
type GroupKey = (bool, Vec<(String, String)>);

/// Runs the cases of one platform and operator environment in one simulator; returns one line per failure.
async fn run_group(
    platform: Platform,
    env: &BTreeMap<String, String>,
    cases: &[&Case],
) -> Vec<String> {
    let sim = Simulator::start(platform.options()).await.unwrap();
    sim.install_crd(
        serde_json::to_value(<QuayRegistry as kube::CustomResourceExt>::crd()).unwrap(),
    )
    .unwrap();
    let client = sim.client();
    if platform == Platform::OpenShift {
        sim::create_namespace(
            &client,
            quay_operator::controller::GRAFANA_DASHBOARD_NAMESPACE,
        )
        .await;
    }
    let mut failures = Vec::new();
    let mut created = Vec::new();
    for case in cases {
        match (set_up(&sim, &client, case).await, &case.expect) {
            (Setup::Created, Expect::Blocked { .. }) => created.push(*case),
            (Setup::Refused(got), Expect::Rejected { message }) => {
                if &got != message {
                    failures.push(format!(
                        "{}: API refusal differs\n  expected: {message}\n  got:      {got}",
                        case.file
                    ));
                }
            }
            (Setup::Created, Expect::Rejected { message }) => failures.push(format!(
                "{}: the API server accepted the registry; expected refusal: {message}",
                case.file
            )),
            (Setup::Refused(got), Expect::Blocked { .. }) => failures.push(format!(
                "{}: the API server refused the registry: {got}",
                case.file
            )),
        }
    }

    let settings = OperatorSettings {
        quay_version: sim::QUAY_VERSION.into(),
        ..OperatorSettings::from_env(|k| env.get(k).cloned())
    };
    let first_operator_request = sim.requests().len();
    let operator = sim::start_operator_with(client.clone(), vec![], settings);

    let blocked = |case: &Case| {
        let reg = sim.get(
            "quay.redhat.com",
            "quayregistries",
            &case.namespace,
            &case.name,
        )?;
        let reg: QuayRegistry = serde_json::from_value(reg).ok()?;
        let c = conditions(&reg).get("RolloutBlocked")?.clone();
        (c.status == "True").then_some(c)
    };
    let all_blocked = sim
        .wait_until(sim::WAIT, || created.iter().all(|c| blocked(c).is_some()))
        .await;
    let records = sim.requests()[first_operator_request..].to_vec();
    for case in &created {
        let Expect::Blocked { reason, message } = &case.expect else {
            unreachable!()
        };
        match blocked(case) {
            None => failures.push(format!(
                "{}: never blocked (waited {:?} for all: {all_blocked}); conditions: {:?}",
                case.file,
                sim::WAIT,
                sim.get(
                    "quay.redhat.com",
                    "quayregistries",
                    &case.namespace,
                    &case.name
                )
                .map(|r| r["status"]["conditions"].clone())
            )),
            Some(c) => {
                if &c.reason != reason || &c.message != message {
                    failures.push(format!(
                        "{}: RolloutBlocked differs\n  expected: {reason}: {message}\n  got:      {}: {}",
                        case.file, c.reason, c.message
                    ));
                }
            }
        }
    }
    for case in cases {
        let writes = unexpected_writes(&records, &case.namespace, &case.name);
        if !writes.is_empty() {
            failures.push(format!(
                "{}: the operator wrote more than status: {writes:#?}",
                case.file
            ));
        }
    }
    operator.abort();
    sim.stop().await;
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_blocks_with_its_exact_message_and_writes_nothing_but_status() {
    let started = Instant::now();
    let cases = load_corpus();
    if std::env::var("CORPUS_FILTER").is_err() {
        assert!(cases.len() >= 100, "corpus has {} cases", cases.len());
    }
    let mut groups: BTreeMap<GroupKey, Vec<&Case>> = BTreeMap::new();
    for case in &cases {
        let env = case.operator_env.clone().into_iter().collect();
        groups
            .entry((case.platform == Platform::OpenShift, env))
            .or_default()
            .push(case);
    }
    let runs = groups.iter().map(|((openshift, env), cases)| {
        let platform = if *openshift {
            Platform::OpenShift
        } else {
            Platform::Kubernetes
        };
        let env: BTreeMap<String, String> = env.iter().cloned().collect();
        async move { run_group(platform, &env, cases).await }
    });
    let failures: Vec<String> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    let failed_files: std::collections::BTreeSet<&str> = failures
        .iter()
        .map(|f| f.split(':').next().unwrap())
        .collect();
    println!(
        "bad-input corpus: {} cases, {} passed, {} failed, in {:.1?} ({} simulated clusters)",
        cases.len(),
        cases.len() - failed_files.len(),
        failed_files.len(),
        started.elapsed(),
        groups.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
