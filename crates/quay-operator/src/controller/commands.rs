//! The long-running commands: `run` (the operator), `demo` (the operator on an in-process simulated cluster)
//! and `diff` (what `run` would change, without writing).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use futures::TryStreamExt;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, CustomResourceExt, ResourceExt};

use super::run::{RunOptions, run};
use crate::api::{QuayRegistry, REGISTRY_LABEL};
use crate::render::OperatorSettings;

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Json,
    Text,
}

/// `quay-operator run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Namespaces to watch (comma-separated or repeated); none means all namespaces.
    #[arg(long = "namespace", value_delimiter = ',', env = "WATCH_NAMESPACE")]
    pub namespaces: Vec<String>,
    /// Address serving /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Kubeconfig to use instead of the in-cluster config or $KUBECONFIG.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Take part in leader election on a coordination.k8s.io Lease (for several replicas).
    #[arg(long)]
    pub leader_election: bool,
    /// Namespace of the leader-election Lease (defaults to $MY_POD_NAMESPACE, else `default`).
    #[arg(long)]
    pub leader_election_namespace: Option<String>,
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
}

/// `quay-operator demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Example directory with quayregistry.yaml and config-bundle.yaml.
    #[arg(long, default_value = "examples/all-managed")]
    pub example: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// `quay-operator diff`.
#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// Namespace of the QuayRegistry.
    #[arg(long, short = 'n')]
    pub namespace: String,
    /// Name of the QuayRegistry.
    pub name: String,
    /// Kubeconfig to use instead of $KUBECONFIG.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,kube=warn,tower=warn,hyper=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

async fn client_from(kubeconfig: Option<&PathBuf>) -> Result<Client, BoxError> {
    match kubeconfig {
        None => Ok(Client::try_default().await?),
        Some(path) => {
            let config = kube::config::Kubeconfig::read_from(path)?;
            let options = kube::config::KubeConfigOptions::default();
            let config = kube::Config::from_custom_kubeconfig(config, &options).await?;
            Ok(Client::try_from(config)?)
        }
    }
}

fn settings() -> OperatorSettings {
    OperatorSettings::from_env(|k| std::env::var(k).ok())
}

/// Runs the operator until SIGTERM/SIGINT. Returns the process exit code.
pub fn run_command(args: &RunArgs) -> u8 {
    init_logging(args.log_format);
    let result: Result<(), BoxError> = runtime().block_on(async {
        let client = client_from(args.kubeconfig.as_ref()).await?;
        let options = RunOptions {
            namespaces: args
                .namespaces
                .iter()
                .filter(|n| !n.is_empty())
                .cloned()
                .collect(),
            http_addr: args.http_addr,
            settings: settings(),
        };
        if args.leader_election {
            let namespace = args
                .leader_election_namespace
                .clone()
                .or_else(|| options.settings.operator_namespace.clone())
                .unwrap_or_else(|| "default".to_owned());
            super::leader::run_as_leader(client, options, &namespace).await
        } else {
            run(client, options).await
        }
    });
    match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "operator stopped");
            1
        }
    }
}

/// Starts a simulated OpenShift cluster in-process, runs the operator on it, creates the example registry and
/// prints what happens until the registry is Available. Returns the process exit code.
pub fn demo_command(args: &DemoArgs) -> u8 {
    // The demo prints the story itself; only problems are logged.
    if std::env::var_os("RUST_LOG").is_none() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn")
            .with_writer(std::io::stderr)
            .try_init();
    }
    match runtime().block_on(demo(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("demo failed: {e}");
            1
        }
    }
}

fn read_yaml<T: serde::de::DeserializeOwned>(path: PathBuf) -> Result<T, BoxError> {
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?)
}

async fn demo(args: &DemoArgs) -> Result<(), BoxError> {
    let mut registry: QuayRegistry = read_yaml(args.example.join("quayregistry.yaml"))?;
    let mut bundle: Secret = read_yaml(args.example.join("config-bundle.yaml"))?;
    registry.metadata.uid = None;
    let namespace = registry.namespace().unwrap_or_else(|| "default".to_owned());
    bundle.metadata.namespace = Some(namespace.clone());

    let sim = kube_sim::Simulator::start(kube_sim::Options::openshift()).await?;
    sim.install_crd(serde_json::to_value(QuayRegistry::crd())?)
        .map_err(|e| format!("installing the QuayRegistry CRD: {e:?}"))?;
    let client = sim.client();
    println!(
        "simulated OpenShift API server on {} (QuayRegistry CRD installed)",
        sim.url()
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    for ns in [namespace.as_str(), super::GRAFANA_DASHBOARD_NAMESPACE] {
        let object: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?;
        namespaces.create(&PostParams::default(), &object).await?;
    }

    let options = RunOptions {
        namespaces: vec![],
        http_addr: "127.0.0.1:0".parse()?,
        settings: OperatorSettings {
            quay_version: settings().quay_version,
            ..settings()
        },
    };
    let operator = tokio::spawn(run(client.clone(), options));

    Api::<Secret>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &bundle)
        .await?;
    let registries: Api<QuayRegistry> = Api::namespaced(client.clone(), &namespace);
    let name = registries
        .create(&PostParams::default(), &registry)
        .await?
        .name_any();
    println!("created QuayRegistry {namespace}/{name}; watching its conditions:");

    let started = std::time::Instant::now();
    let watch = watcher(
        registries.clone(),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .applied_objects();
    let mut seen: BTreeMap<String, (String, String)> = BTreeMap::new();
    let available = async {
        let mut watch = std::pin::pin!(watch);
        while let Some(r) = watch.try_next().await? {
            for c in r.status.iter().flat_map(|s| s.conditions.iter().flatten()) {
                let now = (c.status.clone(), c.message.clone().unwrap_or_default());
                if seen.get(&c.type_) != Some(&now) {
                    println!(
                        "  {:>6} ms  {:<28} {:<5} {}",
                        started.elapsed().as_millis(),
                        c.type_,
                        c.status,
                        now.1
                    );
                    seen.insert(c.type_.clone(), now);
                }
            }
            let is_available = r
                .status
                .iter()
                .flat_map(|s| s.conditions.iter().flatten())
                .any(|c| c.type_ == "Available" && c.status == "True");
            if is_available {
                return Ok::<QuayRegistry, BoxError>(r);
            }
        }
        Err("watch ended".into())
    };
    let registry = tokio::time::timeout(Duration::from_secs(args.timeout), available)
        .await
        .map_err(|_| format!("not Available after {} s", args.timeout))??;
    println!(
        "\nAvailable after {} ms. Objects the operator manages:",
        started.elapsed().as_millis()
    );
    print_objects(&sim, &namespace, &name);
    println!("\nstatus:\n{}", serde_saphyr::to_string(&registry.status)?);
    operator.abort();
    sim.stop().await;
    Ok(())
}

fn print_objects(sim: &kube_sim::Simulator, namespace: &str, registry: &str) {
    let kinds = [
        ("", "secrets", "Secret"),
        ("", "configmaps", "ConfigMap"),
        ("", "serviceaccounts", "ServiceAccount"),
        ("", "services", "Service"),
        ("", "persistentvolumeclaims", "PersistentVolumeClaim"),
        ("apps", "deployments", "Deployment"),
        ("batch", "jobs", "Job"),
        (
            "autoscaling",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
        ),
        ("rbac.authorization.k8s.io", "roles", "Role"),
        ("rbac.authorization.k8s.io", "rolebindings", "RoleBinding"),
        ("route.openshift.io", "routes", "Route"),
        ("objectbucket.io", "objectbucketclaims", "ObjectBucketClaim"),
        ("monitoring.coreos.com", "servicemonitors", "ServiceMonitor"),
        ("monitoring.coreos.com", "prometheusrules", "PrometheusRule"),
    ];
    for (group, plural, kind) in kinds {
        for object in sim.list(group, plural, None) {
            let labels = &object["metadata"]["labels"];
            if labels[REGISTRY_LABEL] != registry {
                continue;
            }
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or(namespace);
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            println!("  {kind:<24} {ns}/{name}");
        }
    }
}

/// Prints what `run` would change for one registry. Returns the process exit code (0: nothing to change, 2:
/// changes pending, 1: error).
pub fn diff_command(args: &DiffArgs) -> u8 {
    init_logging(LogFormat::Text);
    match runtime().block_on(super::preview::diff(args)) {
        Ok(0) => 0,
        Ok(_) => 2,
        Err(e) => {
            eprintln!("diff failed: {e}");
            1
        }
    }
}

/// A client for `diff`.
pub(super) async fn diff_client(args: &DiffArgs) -> Result<Client, BoxError> {
    client_from(args.kubeconfig.as_ref()).await
}

/// Lists registries (used by `diff` to name candidates when the one asked for is missing).
pub(super) async fn registry_names(client: &Client, namespace: &str) -> Vec<String> {
    let api: Api<QuayRegistry> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .map(|l| l.items.into_iter().map(|r| r.name_any()).collect())
        .unwrap_or_default()
}
