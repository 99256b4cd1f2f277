//! What the operator costs a cluster, measured against the in-process API server simulator (kube-sim, OpenShift
//! flavour, simulated controllers with no delay): time to Available, API requests, memory, binary size, start-up.
//!
//! ```text
//! cargo bench -p quay-operator --bench operator -- [latency] [scale] [change] [startup]
//!     [--runs N] [--registries 1,100,300] [--quiet-hours H]
//! ```
//!
//! With no scenario named, all four run, with 1, 10 and 30 registries. Figures are medians over `--runs` runs
//! (default 5; scale scenarios with 30 to 99 registries run `min(runs, 3)` times, 100 or more once). See
//! docs/benchmarks.md: beyond a few dozen registries the simulator, not the operator, sets the pace.
//!
//! * `latency`: operator and simulator in one single-threaded process; one registry from create to Available,
//!   the operator's requests while it converges, then one hour of quiet on tokio's paused clock (every timer —
//!   watch timeouts, bookmarks, requeues — fires as it would in an hour; nothing waits for real).
//! * `scale`: the simulator in this process, the operator as a separate `quay-operator run` process (so its
//!   peak RSS, VmHWM, is its own); N registries in N namespaces, time until all are Available, requests per
//!   registry.
//! * `change`: after `scale`, one registry's config bundle changes; time until its quay-app pod template
//!   changes, and every operator write in that time, which must all belong to that registry.
//! * `startup`: release binary size and the time from spawning `quay-operator run` to `/readyz` answering 200.
//!
//! The operator's requests are told apart from the benchmark's own by User-Agent: the benchmark's client sends
//! [`BENCH_AGENT`]; the simulated controllers write to the store directly and send no requests.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::CustomResourceExt;
use kube::api::ApiResource;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube_sim::metrics::RequestRecord;
use kube_sim::{Options, Simulator};
use quay_operator::api::QuayRegistry;
use quay_operator::controller::cache::WatchCache;
use quay_operator::controller::context::slim_for_cache;
use quay_operator::controller::{GRAFANA_DASHBOARD_NAMESPACE, RunOptions, run};
use quay_operator::render::OperatorSettings;
use serde_json::{Value, json};

/// User-Agent of the benchmark's own requests (creating registries, changing a bundle).
const BENCH_AGENT: &str = "quay-operator-bench";
/// User-Agent given to the in-process operator's client.
const OPERATOR_AGENT: &str = "quay-operator";
const QUAY_VERSION: &str = "v3.11.0";
const OPERATOR_BIN: &str = env!("CARGO_BIN_EXE_quay-operator");

// ---------------------------------------------------------------------------------------------------------------
// Heap accounting: how much memory parsed objects take (used to size the operator's watch caches)

/// The system allocator, counting the bytes currently allocated by this process.
struct CountingAllocator;

static ALLOCATED: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is updated besides.
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocated() -> isize {
    ALLOCATED.load(std::sync::atomic::Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------------------------
// Command line

struct Args {
    scenarios: Vec<String>,
    runs: usize,
    registries: Vec<usize>,
    quiet_hours: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        scenarios: vec![],
        runs: 5,
        registries: vec![1, 10, 30],
        quiet_hours: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            "--runs" => args.runs = it.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            "--quiet-hours" => {
                args.quiet_hours = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--quiet-hours H")
            }
            "--registries" => {
                args.registries = it
                    .next()
                    .expect("--registries 1,100")
                    .split(',')
                    .map(|n| n.trim().parse().expect("a number of registries"))
                    .collect()
            }
            s if s.starts_with("--") => panic!("unknown option {s}"),
            s => args.scenarios.push(s.to_owned()),
        }
    }
    if args.scenarios.is_empty() {
        args.scenarios = ["latency", "scale", "change", "startup"]
            .map(String::from)
            .to_vec();
    }
    args
}

fn main() {
    let args = parse_args();
    let wants = |s: &str| args.scenarios.iter().any(|x| x == s);
    println!(
        "operator benchmark: kube-sim OpenShift, simulated controller delay 0, {} (2 cores shared)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if wants("startup") {
        startup(&args);
    }
    if wants("latency") {
        latency(&args);
    }
    if wants("scale") || wants("change") {
        for &n in &args.registries {
            let runs = match n {
                0..30 => args.runs,
                30..100 => args.runs.min(3),
                _ => 1,
            };
            scale(n, runs, wants("change"));
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Simulated cluster and registries

/// Simulated OpenShift with the QuayRegistry CRD, the dashboards namespace, and controllers that finish at once.
async fn start_cluster() -> Simulator {
    let sim = Simulator::start(Options::openshift())
        .await
        .expect("simulator starts");
    sim.configure_controllers(|c| c.delay = Duration::ZERO);
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).expect("CRD serializes"))
        .expect("CRD installs");
    sim.create(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": GRAFANA_DASHBOARD_NAMESPACE}}))
        .expect("dashboards namespace");
    sim
}

fn client_with_agent(sim: &Simulator, agent: &'static str) -> kube::Client {
    let mut config = kube::Config::new(sim.url().parse().expect("simulator url"));
    config.default_namespace = "default".into();
    config.headers.push((
        axum::http::header::USER_AGENT,
        axum::http::HeaderValue::from_static(agent),
    ));
    kube::Client::try_from(config).expect("kube client")
}

fn namespace_of(i: usize) -> String {
    format!("bench-{i}")
}

fn registry_of(i: usize) -> String {
    // Unique names: the Grafana dashboard of every registry lands in one shared namespace.
    format!("registry-{i}")
}

fn bundle_config(title: &str) -> String {
    format!("FEATURE_USER_INITIALIZE: true\nSUPER_USERS:\n  - quayadmin\nREGISTRY_TITLE: {title}\n")
}

/// Creates namespace, config bundle and the all-managed registry number `i` through the API.
async fn create_registry(client: &kube::Client, i: usize) {
    let ns = namespace_of(i);
    let name = registry_of(i);
    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::erase::<k8s_openapi::api::core::v1::Namespace>(&()),
    );
    let post = PostParams::default();
    namespaces
        .create(
            &post,
            &serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .unwrap(),
        )
        .await
        .expect("namespace created");
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &post,
            &serde_json::from_value(json!({
                "metadata": {"name": format!("{name}-config-bundle")},
                "stringData": {"config.yaml": bundle_config("Quay")},
            }))
            .unwrap(),
        )
        .await
        .expect("bundle created");
    let registries: Api<QuayRegistry> = Api::namespaced(client.clone(), &ns);
    registries
        .create(
            &post,
            &serde_json::from_value(json!({
                "apiVersion": "quay.redhat.com/v1",
                "kind": "QuayRegistry",
                "metadata": {"name": name},
                "spec": {"configBundleSecret": format!("{name}-config-bundle")},
            }))
            .unwrap(),
        )
        .await
        .expect("registry created");
}

fn is_available(registry: &Value) -> bool {
    registry
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Available" && c["status"] == "True")
        })
}

/// How many registries are Available, read from the store directly (no request counted) and in place: copying
/// every registry on each 20 ms poll was ~19 % of the benchmark process's CPU at 200 registries.
fn available_count(sim: &Simulator) -> usize {
    sim.count("quay.redhat.com", "quayregistries", None, is_available)
}

async fn wait_until(deadline: Duration, poll: Duration, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(poll).await;
    }
    done()
}

/// Waits until the operator sent no request for `quiet` (its watches are established, its writes done).
async fn wait_operator_idle(sim: &Simulator, quiet: Duration, limit: Duration) {
    let start = Instant::now();
    // Counted in place: a copy of the whole audit log every 50 ms adds up with thousands of registries.
    let count = || {
        sim.metrics()
            .count_requests(|r| r.user_agent != BENCH_AGENT)
    };
    let mut last = count();
    let mut since = Instant::now();
    while start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = count();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Request accounting from the audit log

fn operator_requests(sim: &Simulator) -> Vec<RequestRecord> {
    sim.requests()
        .into_iter()
        .filter(|r| r.user_agent != BENCH_AGENT)
        .collect()
}

/// A request as kube-apiserver's metrics name it: verb, resource (with subresource), namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Classified {
    verb: &'static str,
    resource: String,
    namespace: String,
    name: String,
}

fn classify(r: &RequestRecord) -> Classified {
    let (path, query) = r.uri.split_once('?').unwrap_or((&r.uri, ""));
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let rest: &[&str] = match segments.first() {
        Some(&"api") if segments.len() >= 2 => &segments[2..],
        Some(&"apis") if segments.len() >= 3 => &segments[3..],
        _ => &[],
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (ns.to_string(), rest),
        _ => (String::new(), rest),
    };
    let resource = match rest {
        [] => path.to_owned(),
        [plural] | [plural, _] => plural.to_string(),
        [plural, _, sub, ..] => format!("{plural}/{sub}"),
    };
    let name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match r.method.as_str() {
        "GET" if watch => "WATCH",
        "GET" if rest.len() <= 1 => "LIST",
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" if r.content_type.contains("apply-patch") => "APPLY",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        _ => "OTHER",
    };
    Classified {
        verb,
        resource,
        namespace,
        name,
    }
}

fn is_write(verb: &str) -> bool {
    matches!(verb, "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE")
}

/// Requests counted by `verb resource`.
fn by_verb_and_resource(requests: &[RequestRecord]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for r in requests {
        let c = classify(r);
        *counts.entry((c.verb.to_owned(), c.resource)).or_default() += 1;
    }
    counts
}

fn by_verb(requests: &[RequestRecord]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for r in requests {
        *counts.entry(classify(r).verb).or_default() += 1;
    }
    counts
}

fn print_counts(title: &str, requests: &[RequestRecord]) {
    let total = requests.len();
    let writes = requests
        .iter()
        .filter(|r| is_write(classify(r).verb))
        .count();
    println!(
        "  {title}: {total} requests, {writes} writes; by verb {:?}",
        by_verb(requests)
    );
    for ((verb, resource), n) in by_verb_and_resource(requests) {
        println!("    {verb:6} {resource:40} {n}");
    }
}

/// Objects the operator applied more than once, and every other request by object (reads by name bypass its caches).
fn print_repeats(requests: &[RequestRecord]) {
    let mut per_object: BTreeMap<(&'static str, String, String), usize> = BTreeMap::new();
    for c in requests.iter().map(classify) {
        if c.verb != "WATCH" && c.verb != "LIST" {
            *per_object
                .entry((c.verb, c.resource, format!("{}/{}", c.namespace, c.name)))
                .or_default() += 1;
        }
    }
    for ((verb, resource, object), n) in per_object {
        if n > 1 || verb != "APPLY" {
            println!("    {n} x {verb} {resource} {object}");
        }
    }
}

/// What the operator's watch caches hold: the JSON size of every object carrying the registry label, by kind,
/// whole and in the slim form the caches keep (`context::slim_for_cache`), and the heap of the slim forms.
fn print_cached_bytes(sim: &Simulator, n: usize) {
    const OWNED: [(&str, &str); 14] = [
        ("", "secrets"),
        ("", "configmaps"),
        ("", "serviceaccounts"),
        ("", "services"),
        ("", "persistentvolumeclaims"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("apps", "deployments"),
        ("batch", "jobs"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("route.openshift.io", "routes"),
        ("objectbucket.io", "objectbucketclaims"),
        ("monitoring.coreos.com", "servicemonitors"),
        ("monitoring.coreos.com", "prometheusrules"),
    ];
    let (mut total, mut total_slim) = (0usize, 0usize);
    let mut lines = vec![];
    let mut slim_serialized: Vec<Vec<u8>> = vec![];
    let mut compact = 0usize;
    for (group, plural) in OWNED {
        let (mut count, mut bytes, mut slim_bytes) = (0, 0, 0);
        // The operator's watch cache of the kind, filled as a first listing fills it.
        let mut cache: Option<WatchCache> = None;
        for object in sim.list(group, plural, None) {
            if object
                .pointer("/metadata/labels/quay-operator~1quayregistry")
                .is_none()
            {
                continue;
            }
            count += 1;
            bytes += serde_json::to_vec(&object).map_or(0, |v| v.len());
            let kind = object["kind"].as_str().unwrap_or_default().to_owned();
            let Ok(mut dynamic) = serde_json::from_value::<DynamicObject>(object) else {
                continue;
            };
            cache
                .get_or_insert_with(|| {
                    let cache = WatchCache::new(&kind);
                    cache.apply(watcher::Event::Init);
                    cache
                })
                .apply(watcher::Event::InitApply(dynamic.clone()));
            slim_for_cache(&mut dynamic, &kind, None);
            let slim = serde_json::to_vec(&dynamic).unwrap_or_default();
            slim_bytes += slim.len();
            slim_serialized.push(slim);
        }
        let cached = cache.map_or(0, |c| {
            c.apply(watcher::Event::InitDone);
            c.heap_bytes()
        });
        total += bytes;
        total_slim += slim_bytes;
        compact += cached;
        lines.push(format!(
            "    {plural:26} {count:5} objects {:8.1} KiB whole, {:.1} KiB cached, {:.1} KiB in the watch cache",
            bytes as f64 / 1024.0,
            slim_bytes as f64 / 1024.0,
            cached as f64 / 1024.0
        ));
    }
    println!(
        "  owned objects (registry label): {:.1} KiB of JSON per registry whole, {:.1} KiB in the operator's cache",
        total as f64 / 1024.0 / n as f64,
        total_slim as f64 / 1024.0 / n as f64
    );
    for line in lines {
        println!("{line}");
    }
    println!(
        "  the operator's watch caches (controller::cache, compressed slim forms): {:.1} KiB per registry",
        compact as f64 / 1024.0 / n as f64
    );
    // The cached forms as the operator's reflector stores hold them: parsed `DynamicObject`s. (Other threads
    // allocate too, so this is approximate; the simulator is idle by now.)
    let before = allocated();
    let parsed: Vec<DynamicObject> = slim_serialized
        .iter()
        .filter_map(|json| serde_json::from_slice(json).ok())
        .collect();
    let heap = allocated() - before;
    println!(
        "  the {} cached forms parsed as DynamicObject: {:.1} KiB of heap per registry",
        parsed.len(),
        heap as f64 / 1024.0 / n as f64
    );
    // A registry's status as the operator holds it (its registry store, and each status write it remembers).
    let before = allocated();
    let statuses: Vec<quay_operator::api::QuayRegistryStatus> = sim
        .list("quay.redhat.com", "quayregistries", None)
        .into_iter()
        .filter_map(|r| serde_json::from_value(r.get("status")?.clone()).ok())
        .collect();
    let heap = allocated() - before;
    println!(
        "  a registry's status parsed: {:.1} KiB of heap ({} statuses)",
        heap as f64 / 1024.0 / statuses.len().max(1) as f64,
        statuses.len()
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

fn summary(label: &str, unit: &str, xs: &[f64]) {
    let mut sorted = xs.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    println!(
        "  {label}: median {:.1} {unit} (runs: {})",
        median(xs.to_vec()),
        sorted
            .iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Scenario: create → Available of one registry, its requests, and a quiet hour

fn latency(args: &Args) {
    println!(
        "\n== latency: one registry, operator in-process (single-threaded runtime, tokio paused clock for the quiet period)"
    );
    let mut latencies = vec![];
    let mut creation_totals = vec![];
    let mut creation_writes = vec![];
    let mut quiet_totals = vec![];
    let mut quiet_writes = vec![];
    let mut quiet_polls = vec![];
    for run_index in 0..args.runs {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let outcome = runtime.block_on(latency_run(args.quiet_hours, run_index == 0));
        latencies.push(outcome.create_to_available.as_secs_f64() * 1000.0);
        creation_totals.push(outcome.creation.len() as f64);
        creation_writes.push(
            outcome
                .creation
                .iter()
                .filter(|r| is_write(classify(r).verb))
                .count() as f64,
        );
        quiet_totals.push(outcome.quiet.len() as f64);
        quiet_writes.push(
            outcome
                .quiet
                .iter()
                .filter(|r| is_write(classify(r).verb))
                .count() as f64,
        );
        quiet_polls.push(
            outcome
                .quiet
                .iter()
                .filter(|r| matches!(classify(r).verb, "GET" | "LIST"))
                .count() as f64,
        );
        if run_index == 0 {
            println!(
                "  distinct objects applied (a superseded config Secret included): {}",
                outcome.objects
            );
            print_counts(
                "operator requests from create to converged",
                &outcome.creation,
            );
            print_repeats(&outcome.creation);
            print_counts(
                &format!(
                    "operator requests during {} quiet hour(s)",
                    args.quiet_hours
                ),
                &outcome.quiet,
            );
        }
    }
    summary("create -> Available", "ms", &latencies);
    summary("operator requests during creation", "", &creation_totals);
    summary("operator writes during creation", "", &creation_writes);
    summary("operator requests in the quiet period", "", &quiet_totals);
    summary("operator writes in the quiet period", "", &quiet_writes);
    summary("operator GET/LIST in the quiet period", "", &quiet_polls);
}

struct LatencyOutcome {
    create_to_available: Duration,
    objects: usize,
    creation: Vec<RequestRecord>,
    quiet: Vec<RequestRecord>,
}

async fn latency_run(quiet_hours: u64, verbose: bool) -> LatencyOutcome {
    let sim = start_cluster().await;
    let bench = client_with_agent(&sim, BENCH_AGENT);
    let operator_client = client_with_agent(&sim, OPERATOR_AGENT);
    let options = RunOptions {
        namespaces: vec![],
        http_addr: "127.0.0.1:0".parse().expect("addr"),
        settings: OperatorSettings {
            quay_version: QUAY_VERSION.into(),
            ..OperatorSettings::from_env(|_| None)
        },
    };
    let operator = tokio::spawn(async move {
        if let Err(e) = run(operator_client, options).await {
            panic!("operator stopped: {e}");
        }
    });
    // Start-up (discovery, the domain probe Route, initial lists, watches) is not part of the latency.
    wait_operator_idle(&sim, Duration::from_millis(300), Duration::from_secs(30)).await;
    sim.metrics().reset();

    let start = Instant::now();
    create_registry(&bench, 0).await;
    let available = wait_until(Duration::from_secs(60), Duration::from_millis(1), || {
        available_count(&sim) == 1
    })
    .await;
    let create_to_available = start.elapsed();
    assert!(available, "the registry never became Available");
    // Writes after Available (e.g. a last status update) still belong to the creation.
    wait_operator_idle(&sim, Duration::from_millis(500), Duration::from_secs(30)).await;
    let creation = operator_requests(&sim);
    let objects = creation
        .iter()
        .filter(|r| classify(r).verb == "APPLY" && !classify(r).resource.ends_with("/status"))
        .map(|r| {
            let c = classify(r);
            (c.resource, c.namespace, c.name)
        })
        .collect::<std::collections::BTreeSet<_>>()
        .len();

    sim.metrics().reset();
    // A simulated hour: with the clock paused, tokio jumps to the next timer whenever every task is idle, so the
    // watch timeouts, bookmarks and any requeue of an hour all happen, in a fraction of a second.
    tokio::time::pause();
    let before = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3600 * quiet_hours)).await;
    let simulated = tokio::time::Instant::now() - before;
    tokio::time::resume();
    let quiet = operator_requests(&sim);
    if verbose {
        println!(
            "  quiet period simulated: {} s of clock",
            simulated.as_secs()
        );
    }
    operator.abort();
    sim.stop().await;
    LatencyOutcome {
        create_to_available,
        objects,
        creation,
        quiet,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The operator as its own process

struct OperatorProcess {
    child: Child,
    http: SocketAddr,
}

impl OperatorProcess {
    fn spawn(kubeconfig: &Path, log: &Path) -> OperatorProcess {
        let http = free_port();
        let log = std::fs::File::create(log).expect("log file");
        // BENCH_OPERATOR_WRAPPER runs the operator under a profiler (e.g. `heaptrack`): its heap by call site.
        let mut command = match std::env::var_os("BENCH_OPERATOR_WRAPPER") {
            Some(wrapper) => {
                let mut c = Command::new(wrapper);
                c.arg(OPERATOR_BIN);
                c
            }
            None => Command::new(OPERATOR_BIN),
        };
        let child = command
            .args([
                "run",
                "--log-format",
                "text",
                "--http-addr",
                &http.to_string(),
                "--kubeconfig",
            ])
            .arg(kubeconfig)
            .env("QUAY_VERSION", QUAY_VERSION)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("quay-operator run starts");
        OperatorProcess { child, http }
    }

    fn ready(&self) -> bool {
        http_status(self.http, "/readyz") == Some(200)
    }

    /// Peak resident set size (VmHWM) in KiB.
    fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmHWM:")
    }

    fn rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmRSS:")
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) a process has used, in milliseconds, from `/proc/<pid>/stat`.
fn cpu_ms(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) * 10.0
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// Status code of a plain HTTP GET, or `None` if nothing answers.
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

fn work_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("quay-operator-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

// ---------------------------------------------------------------------------------------------------------------
// Scenario: release binary size and start-up time

fn startup(args: &Args) {
    println!(
        "\n== startup: release binary and time from spawn to /readyz 200 (simulated OpenShift, no registries)"
    );
    let size = std::fs::metadata(OPERATOR_BIN)
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "  binary {OPERATOR_BIN}: {:.1} MiB ({size} bytes)",
        size as f64 / 1048576.0
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut to_ready = vec![];
    let mut to_idle = vec![];
    let mut rss = vec![];
    let dir = work_dir();
    for _ in 0..args.runs {
        runtime.block_on(async {
            let sim = start_cluster().await;
            let kubeconfig = dir.join("kubeconfig");
            sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
            let start = Instant::now();
            let operator = OperatorProcess::spawn(&kubeconfig, &dir.join("startup.log"));
            let ready = wait_until(Duration::from_secs(30), Duration::from_millis(1), || {
                operator.ready()
            })
            .await;
            assert!(
                ready,
                "operator never ready; see {}",
                dir.join("startup.log").display()
            );
            to_ready.push(start.elapsed().as_secs_f64() * 1000.0);
            wait_operator_idle(&sim, Duration::from_millis(300), Duration::from_secs(30)).await;
            // The idle wait ends 300 ms after the last request.
            to_idle.push((start.elapsed().as_secs_f64() - 0.3) * 1000.0);
            rss.push(operator.rss_kib() as f64 / 1024.0);
            drop(operator);
            sim.stop().await;
        });
    }
    summary("spawn -> /readyz 200", "ms", &to_ready);
    summary(
        "spawn -> watches established (last start-up request)",
        "ms",
        &to_idle,
    );
    summary("idle RSS with no registries", "MiB", &rss);
}

// ---------------------------------------------------------------------------------------------------------------
// Scenario: N registries in N namespaces, then one config change

fn scale(n: usize, runs: usize, change: bool) {
    println!(
        "\n== scale: {n} registries in {n} namespaces, operator as a separate process ({runs} run(s))"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut all_available = vec![];
    let mut per_registry = vec![];
    let mut writes_per_registry = vec![];
    let mut peak = vec![];
    let mut rolls = vec![];
    let mut cpu_per_registry = vec![];
    for run_index in 0..runs {
        let outcome = runtime.block_on(scale_run(n, change, run_index == 0));
        all_available.push(outcome.all_available.as_secs_f64() * 1000.0);
        per_registry.push(outcome.requests as f64 / n as f64);
        writes_per_registry.push(outcome.writes as f64 / n as f64);
        peak.push(outcome.peak_rss_kib as f64 / 1024.0);
        cpu_per_registry.push(outcome.operator_cpu / n as f64);
        if let Some(roll) = outcome.roll {
            rolls.push(roll.as_secs_f64() * 1000.0);
        }
    }
    summary(
        &format!("{n} registries: first create -> all Available"),
        "ms",
        &all_available,
    );
    summary("operator requests per registry", "", &per_registry);
    summary("operator writes per registry", "", &writes_per_registry);
    summary("operator peak RSS (VmHWM)", "MiB", &peak);
    summary("operator CPU time per registry", "ms", &cpu_per_registry);
    if change {
        summary(
            "config change -> quay-app pod template changed",
            "ms",
            &rolls,
        );
    }
}

struct ScaleOutcome {
    all_available: Duration,
    requests: usize,
    writes: usize,
    peak_rss_kib: u64,
    operator_cpu: f64,
    roll: Option<Duration>,
}

async fn scale_run(n: usize, change: bool, verbose: bool) -> ScaleOutcome {
    let sim = start_cluster().await;
    let dir = work_dir();
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let log = dir.join(format!("scale-{n}.log"));
    let operator = OperatorProcess::spawn(&kubeconfig, &log);
    assert!(
        wait_until(Duration::from_secs(30), Duration::from_millis(5), || {
            operator.ready()
        })
        .await,
        "operator never ready; see {}",
        log.display()
    );
    wait_operator_idle(&sim, Duration::from_millis(300), Duration::from_secs(30)).await;
    sim.metrics().reset();
    let bench = client_with_agent(&sim, BENCH_AGENT);
    let operator_pid = operator.child.id().to_string();
    let operator_cpu_before = cpu_ms(&operator_pid);
    let simulator_cpu_before = cpu_ms("self");

    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let bench = bench.clone();
            async move { create_registry(&bench, i).await }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    let created = start.elapsed();
    // A bound for a stuck run, not a target: generous for a machine shared with other work.
    let limit = Duration::from_secs(60 + n as u64);
    let mut last_report = Instant::now();
    // Each poll reads all N registries under the store lock: every 20 ms, or every N/10 ms beyond 200 registries
    // (100 ms for 1,000), so that polling stays a small, constant share of the simulator's time.
    let poll = Duration::from_millis(20.max(n as u64 / 10));
    let done = wait_until(limit, poll, || {
        let count = available_count(&sim);
        if verbose && last_report.elapsed() > Duration::from_secs(10) {
            println!(
                "    ... {count}/{n} Available after {:.1} s",
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        count == n
    })
    .await;
    let all_available = start.elapsed();
    assert!(
        done,
        "only {}/{n} registries Available after {limit:?}; see {}",
        available_count(&sim),
        log.display()
    );
    wait_operator_idle(&sim, Duration::from_millis(1000), Duration::from_secs(120)).await;
    let operator_cpu = cpu_ms(&operator_pid) - operator_cpu_before;
    let simulator_cpu = cpu_ms("self") - simulator_cpu_before;
    let requests = operator_requests(&sim);
    let writes = requests
        .iter()
        .filter(|r| is_write(classify(r).verb))
        .count();
    if verbose {
        println!(
            "  created {n} registries in {:.0} ms; all Available after {:.0} ms; operator RSS now {:.1} MiB",
            created.as_secs_f64() * 1000.0,
            all_available.as_secs_f64() * 1000.0,
            operator.rss_kib() as f64 / 1024.0
        );
        println!(
            "  CPU time until converged: operator {operator_cpu:.0} ms ({:.1} ms per registry), simulator and benchmark {simulator_cpu:.0} ms",
            operator_cpu / n as f64
        );
        print_counts(&format!("operator requests for {n} registries"), &requests);
        print_cached_bytes(&sim, n);
    }

    let roll = if change {
        Some(config_change(&sim, &bench, n, verbose).await)
    } else {
        None
    };
    let peak_rss_kib = operator.peak_rss_kib();
    drop(operator);
    sim.stop().await;
    ScaleOutcome {
        all_available,
        requests: requests.len(),
        writes,
        peak_rss_kib,
        operator_cpu,
        roll,
    }
}

/// Changes the config bundle of the registry in the middle; returns the time until its quay-app pod template
/// changed, after checking that every operator write until it converged again belongs to that registry.
async fn config_change(sim: &Simulator, bench: &kube::Client, n: usize, verbose: bool) -> Duration {
    let i = n / 2;
    let ns = namespace_of(i);
    let name = registry_of(i);
    let app = format!("{name}-quay-app");
    let template = |sim: &Simulator| {
        sim.get("apps", "deployments", &ns, &app)
            .map(|d| d["spec"]["template"].clone())
    };
    let before = template(sim).expect("quay-app exists");
    sim.metrics().reset();
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(bench.clone(), &ns);
    let start = Instant::now();
    secrets
        .patch(
            &format!("{name}-config-bundle"),
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"config.yaml": bundle_config("Changed")}})),
        )
        .await
        .expect("bundle changed");
    let rolled = wait_until(Duration::from_secs(60), Duration::from_millis(1), || {
        template(sim).is_some_and(|t| t != before)
    })
    .await;
    let roll = start.elapsed();
    assert!(rolled, "quay-app of {ns}/{name} never rolled");
    wait_operator_idle(sim, Duration::from_millis(1000), Duration::from_secs(60)).await;
    let writes: Vec<Classified> = operator_requests(sim)
        .iter()
        .map(classify)
        .filter(|c| is_write(c.verb))
        .collect();
    let foreign: Vec<&Classified> = writes
        .iter()
        .filter(|c| {
            let own_dashboard = c.namespace == GRAFANA_DASHBOARD_NAMESPACE
                && c.name.starts_with(&format!("{name}-"));
            c.namespace != ns && !own_dashboard
        })
        .collect();
    if verbose {
        println!(
            "  config change of {ns}/{name}: quay-app rolled after {:.0} ms; {} operator writes, all in {ns}: {}",
            roll.as_secs_f64() * 1000.0,
            writes.len(),
            foreign.is_empty()
        );
        for c in &writes {
            println!("    {:6} {} {}/{}", c.verb, c.resource, c.namespace, c.name);
        }
    }
    assert!(
        foreign.is_empty(),
        "the config change of {ns}/{name} wrote other registries' objects: {foreign:?}"
    );
    roll
}
