//! Seeded fault schedules (issue 7, part 1): a registry history (create, edit overrides, toggle components,
//! rotate the external TLS Secret, change or break the config bundle, upgrade the operator, delete, re-create)
//! is drawn from a seed, run once without faults (the reference) and once with API faults, watch drops,
//! simulator restarts, operator kills and failing simulated controllers woven in. At every settle point of the
//! history (before the bundle is broken, at random, at the end) the faulted run has its faults switched off and
//! must reach exactly the state the reference reached there: the same objects with the same rendered content,
//! the same managed keys, the same registry status. All along, a monitor checks that no managed key changes once
//! written and no database volume goes away.
//!
//! The seed alone reproduces the schedule: the actions, the faults and where they fall between the actions
//! (`FAULT_SEED=<n>`). Which of the operator's requests a fault rule hits still depends on the order the operator
//! sends them in, which the seed does not fix.
//!
//! Included by `tests/fault_schedule.rs` next to `common/sim.rs`.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube_sim::{Controller, FaultRule, Mode, Simulator};
use quay_operator::api::{QuayRegistry, REGISTRY_LABEL};
use quay_operator::controller::{GRAFANA_DASHBOARD_NAMESPACE, RunOptions, run};
use quay_operator::render::OperatorSettings;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rcgen::{CertificateParams, KeyPair, SanType};
use serde_json::{Value, json};

use crate::sim::{self, Cluster, Platform};

pub const NS: &str = "faults-ns";
pub const NAME: &str = "reg";
const BUNDLE: &str = "reg-config";
const TLS_SECRET: &str = "reg-external-tls";
const KEYS_SECRET: &str = "reg-quay-registry-managed-secret-keys";
const FIRST_VERSION: &str = "v3.11.0";
const NEXT_VERSION: &str = "v3.12.0";
/// How long a settle point may take (faults off) before the seed fails. The operator retries a failed reconcile
/// after 5 s, so a few retries fit.
const SETTLE: Duration = Duration::from_secs(30);
/// A run is at rest once its store has not changed for this long after it reached the settle point's state: no
/// write by the operator, the simulated controllers or the garbage collector, so no reconcile is still under way
/// (one writes every few milliseconds; a reaction to a watch event follows within tens). `FAULT_QUIET_MS` changes
/// it.
fn quiet() -> Duration {
    let ms = std::env::var("FAULT_QUIET_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    Duration::from_millis(ms)
}
/// Safety net for a user action (retried while faults make it fail).
const ACTION: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------------------------
// The schedule
// ---------------------------------------------------------------------------------------------------------------

/// What the registry's owner does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create,
    /// Sets an environment variable override on a managed component (`quay` or `mirror`).
    EditOverrides {
        component: &'static str,
        value: u32,
    },
    Toggle {
        component: &'static str,
        managed: bool,
    },
    /// Replaces the external `kubernetes.io/tls` Secret's pair with the other certificate.
    RotateTls,
    /// Writes a valid bundle whose `config.yaml` carries a new marker (and repairs a broken one).
    ChangeBundle {
        marker: u32,
    },
    /// Writes a `config.yaml` that does not parse: the rollout must block and nothing may change.
    BreakBundle,
    /// Restarts the operator with the next Quay version.
    Upgrade,
    Delete,
}

/// What goes wrong meanwhile (faulted run only).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    Api {
        code: u16,
        verb: Option<&'static str>,
        resource: Option<&'static str>,
        times: Option<u32>,
        probability: f64,
    },
    Latency {
        ms: u64,
    },
    ClearApiFaults,
    DropWatches,
    CompactHistory,
    RestartSimulator {
        downtime_ms: u64,
        compact: bool,
    },
    /// The API server answers 503 to everything for a while.
    Unavailable {
        ms: u64,
    },
    /// The operator process dies; a new one starts at once or only after the next action.
    KillOperator {
        restart_now: bool,
    },
    Controller(Controller, Mode),
    /// Lets the operator work until the store saw this many more writes (at most 1 s): puts the next fault or
    /// action in the middle of a reconcile.
    Progress {
        writes: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Act(Action),
    Inject(Fault),
    /// Faults off; both runs must be in the same state.
    Settle,
}

/// Which managed keys exist before the registry is created (restored from a backup, or an earlier install).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KeysSeed {
    None,
    /// `DB_URI` and `DATABASE_SECRET_KEY` given; the operator generates the rest.
    Partial,
    All,
}

#[derive(Debug, Clone)]
pub struct Schedule {
    pub seed: u64,
    pub platform: Platform,
    pub external_tls: bool,
    pub keys: KeysSeed,
    pub events: Vec<Event>,
}

/// The registry as its owner wants it; decides which actions make sense next and what a settled state is.
#[derive(Debug, Clone)]
struct Model {
    platform: Platform,
    exists: bool,
    external_tls: bool,
    cert: usize,
    components: BTreeMap<&'static str, bool>,
    env: BTreeMap<&'static str, u32>,
    marker: u32,
    broken: bool,
    version: &'static str,
}

impl Model {
    fn new(platform: Platform, external_tls: bool) -> Model {
        Model {
            platform,
            exists: false,
            external_tls,
            cert: 0,
            components: BTreeMap::new(),
            env: BTreeMap::new(),
            marker: 0,
            broken: false,
            version: FIRST_VERSION,
        }
    }

    fn toggleable(&self) -> Vec<&'static str> {
        let mut kinds = vec!["clair", "mirror", "horizontalpodautoscaler"];
        if self.platform == Platform::OpenShift {
            kinds.push("monitoring");
        }
        kinds
    }

    fn managed(&self, kind: &str) -> bool {
        self.components.get(kind).copied().unwrap_or(true)
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::Create => self.exists = true,
            Action::EditOverrides { component, value } => {
                self.env.insert(component, *value);
            }
            Action::Toggle { component, managed } => {
                self.components.insert(component, *managed);
                if !managed {
                    // Overrides on an unmanaged component are invalid input.
                    self.env.remove(component);
                }
            }
            Action::RotateTls => self.cert = 1 - self.cert,
            Action::ChangeBundle { marker } => {
                self.marker = *marker;
                self.broken = false;
            }
            Action::BreakBundle => self.broken = true,
            Action::Upgrade => self.version = NEXT_VERSION,
            Action::Delete => self.exists = false,
        }
    }

    /// The registry's `spec.components`.
    fn components_json(&self) -> Value {
        let mut list = Vec::new();
        let mut quay = json!({"kind": "quay", "managed": true});
        if let Some(v) = self.env.get("quay") {
            quay["overrides"] = json!({"env": [{"name": OVERRIDE_ENV, "value": v.to_string()}]});
        }
        list.push(quay);
        for kind in self.toggleable() {
            let mut c = json!({"kind": kind, "managed": self.managed(kind)});
            if let Some(v) = self.env.get(kind) {
                c["overrides"] = json!({"env": [{"name": OVERRIDE_ENV, "value": v.to_string()}]});
            }
            list.push(c);
        }
        if self.external_tls {
            list.push(json!({"kind": "tls", "managed": false, "secretRef": {"name": TLS_SECRET}}));
        }
        if self.platform == Platform::Kubernetes {
            for kind in ["objectstorage", "route", "monitoring"] {
                list.push(json!({"kind": kind, "managed": false}));
            }
            if !self.external_tls {
                list.push(json!({"kind": "tls", "managed": false}));
            }
        }
        Value::Array(list)
    }

    fn bundle_files(&self) -> BTreeMap<String, String> {
        let mut files = match self.platform {
            Platform::Kubernetes => sim::kubernetes_bundle(),
            Platform::OpenShift => BTreeMap::from([(
                "config.yaml".to_owned(),
                "FEATURE_USER_INITIALIZE: true\n".to_owned(),
            )]),
        };
        if self.external_tls {
            files.remove("ssl.cert");
            files.remove("ssl.key");
        }
        let config = files.entry("config.yaml".to_owned()).or_default();
        if self.broken {
            config.push_str("REGISTRY_TITLE: [fault-schedule\n");
        } else {
            let _ = writeln!(config, "REGISTRY_TITLE: fault-marker-{}", self.marker);
        }
        files
    }

    fn host(&self) -> String {
        match self.platform {
            Platform::OpenShift => format!("{NAME}-quay-{NS}.apps.sim.example.com"),
            Platform::Kubernetes => "quay.example.com".to_owned(),
        }
    }
}

impl Schedule {
    /// The schedule of a seed: a platform, a history of 3 to 7 actions after the creation, and up to three
    /// faults before each action.
    pub fn from_seed(seed: u64) -> Schedule {
        let mut rng = StdRng::seed_from_u64(seed);
        let platform = if rng.random_bool(0.5) {
            Platform::OpenShift
        } else {
            Platform::Kubernetes
        };
        let external_tls = rng.random_bool(0.4);
        let keys = match rng.random_range(0..4) {
            0 => KeysSeed::Partial,
            1 => KeysSeed::All,
            _ => KeysSeed::None,
        };
        let mut model = Model::new(platform, external_tls);
        let mut events = Vec::new();
        let mut marker = 0;
        let mut step = 0;
        // Components chosen at creation.
        for kind in model.toggleable() {
            if rng.random_bool(0.3) {
                model.components.insert(kind, false);
            }
        }
        let actions = rng.random_range(3..=7);
        for i in 0..=actions {
            for _ in 0..rng.random_range(0..=3) {
                events.push(Event::Inject(random_fault(&mut rng)));
            }
            let action = if i == 0 {
                Action::Create
            } else {
                next_action(&mut rng, &model, &mut marker, &mut step)
            };
            // Both leave what exists at that moment in place (a blocked rollout changes nothing; an unmanaged
            // component's objects are kept, as upstream), so both runs must be at the same point first.
            // A deletion keeps what exists by then (volumes and keys are retained and labelled) — the same.
            if matches!(
                action,
                Action::BreakBundle | Action::Toggle { managed: false, .. } | Action::Delete
            ) && events.last() != Some(&Event::Settle)
            {
                events.push(Event::Settle);
            }
            model.apply(&action);
            events.push(Event::Act(action));
            if rng.random_bool(0.2) {
                events.push(Event::Settle);
            }
        }
        if events.last() != Some(&Event::Settle) {
            events.push(Event::Settle);
        }
        Schedule {
            seed,
            platform,
            external_tls,
            keys,
            events,
        }
    }

    /// The components the registry is created with (drawn from the same seed).
    fn initial_model(&self) -> Model {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let _ = rng.random_bool(0.5);
        let _ = rng.random_bool(0.4);
        let _ = rng.random_range(0..4);
        let mut model = Model::new(self.platform, self.external_tls);
        for kind in model.toggleable() {
            if rng.random_bool(0.3) {
                model.components.insert(kind, false);
            }
        }
        model
    }

    /// The same schedule without API server restarts (see docs/reliability.md, "Open findings").
    pub fn without_restarts(mut self) -> Schedule {
        self.events
            .retain(|e| !matches!(e, Event::Inject(Fault::RestartSimulator { .. })));
        self
    }

    pub fn describe(&self) -> String {
        let mut out = format!(
            "seed {}: {:?}, external TLS {}, managed keys given: {:?}\n",
            self.seed, self.platform, self.external_tls, self.keys
        );
        for e in &self.events {
            let _ = writeln!(out, "  {e:?}");
        }
        out
    }
}

fn next_action(rng: &mut StdRng, model: &Model, marker: &mut u32, step: &mut u32) -> Action {
    if !model.exists {
        if model.version == FIRST_VERSION && rng.random_bool(0.3) {
            return Action::Upgrade;
        }
        return Action::Create;
    }
    let mut choices: Vec<Action> = Vec::new();
    *step += 1;
    choices.push(Action::EditOverrides {
        component: "quay",
        value: *step,
    });
    if model.managed("mirror") {
        choices.push(Action::EditOverrides {
            component: "mirror",
            value: *step,
        });
    }
    let kinds = model.toggleable();
    let kind = kinds[rng.random_range(0..kinds.len())];
    choices.push(Action::Toggle {
        component: kind,
        managed: !model.managed(kind),
    });
    if model.external_tls {
        choices.push(Action::RotateTls);
    }
    choices.push(Action::ChangeBundle {
        marker: *marker + 1,
    });
    if !model.broken {
        choices.push(Action::BreakBundle);
    }
    if model.version == FIRST_VERSION {
        choices.push(Action::Upgrade);
    }
    choices.push(Action::Delete);
    let action = choices.swap_remove(rng.random_range(0..choices.len()));
    if let Action::ChangeBundle { marker: m } = action {
        *marker = m;
    }
    action
}

fn random_fault(rng: &mut StdRng) -> Fault {
    match rng.random_range(0..12) {
        0..=3 => {
            let codes = [409, 429, 500, 503, 504];
            let verbs = [
                None,
                Some("get"),
                Some("list"),
                Some("watch"),
                Some("create"),
                Some("patch"),
                Some("delete"),
            ];
            let resources = [
                None,
                Some("secrets"),
                Some("deployments"),
                Some("jobs"),
                Some("persistentvolumeclaims"),
                Some("quayregistries"),
                Some("quayregistries/status"),
                Some("configmaps"),
                Some("services"),
            ];
            let limited = rng.random_bool(0.6);
            Fault::Api {
                code: codes[rng.random_range(0..codes.len())],
                verb: verbs[rng.random_range(0..verbs.len())],
                resource: resources[rng.random_range(0..resources.len())],
                times: limited.then(|| rng.random_range(1..=6)),
                probability: if limited {
                    1.0
                } else {
                    rng.random_range(1..=5) as f64 / 20.0
                },
            }
        }
        4 => Fault::Latency {
            ms: rng.random_range(1..=30),
        },
        5 => Fault::ClearApiFaults,
        6 => {
            if rng.random_bool(0.5) {
                Fault::DropWatches
            } else {
                Fault::CompactHistory
            }
        }
        7 => Fault::RestartSimulator {
            downtime_ms: rng.random_range(0..=300),
            compact: rng.random_bool(0.5),
        },
        8 => Fault::Unavailable {
            ms: rng.random_range(20..=400),
        },
        9 => Fault::KillOperator {
            restart_now: rng.random_bool(0.6),
        },
        10 => {
            let controllers = [
                (Controller::Deployment, Mode::Hold),
                (Controller::Deployment, Mode::Fail),
                (Controller::Job, Mode::Hold),
                (Controller::Job, Mode::Fail),
                (Controller::PersistentVolumeClaim, Mode::Hold),
                (Controller::PersistentVolumeClaim, Mode::Fail),
                (Controller::Route, Mode::Hold),
                (Controller::ObjectBucketClaim, Mode::Hold),
                (Controller::Deployment, Mode::Succeed),
                (Controller::Job, Mode::Succeed),
            ];
            let (c, m) = controllers[rng.random_range(0..controllers.len())];
            Fault::Controller(c, m)
        }
        _ => Fault::Progress {
            writes: rng.random_range(1..=40),
        },
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Comparable state
// ---------------------------------------------------------------------------------------------------------------

/// The registry's state, normalised: server-assigned fields dropped, and the values that are random per run
/// (generated keys, bucket credentials, the registry's uid, the config Secret's content hash) replaced by
/// placeholders so that two runs compare equal exactly when they hold the same objects with the same content.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub objects: BTreeMap<String, Value>,
}

impl Snapshot {
    /// What differs from `other`, for a failure message.
    pub fn difference(&self, other: &Snapshot) -> String {
        let mut out = String::new();
        let keys: BTreeSet<&String> = self.objects.keys().chain(other.objects.keys()).collect();
        for k in keys {
            match (self.objects.get(k), other.objects.get(k)) {
                (Some(_), None) => {
                    let _ = writeln!(out, "only in this run: {k}");
                }
                (None, Some(_)) => {
                    let _ = writeln!(out, "only in the reference: {k}");
                }
                (Some(a), Some(b)) if a != b => {
                    let _ = writeln!(out, "differs: {k}: {}", first_difference(a, b, ""));
                }
                _ => {}
            }
        }
        out
    }
}

fn first_difference(a: &Value, b: &Value, path: &str) -> String {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if va != vb {
                    return first_difference(va, vb, &format!("{path}/{k}"));
                }
            }
            String::new()
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                if va != vb {
                    return first_difference(va, vb, &format!("{path}/{i}"));
                }
            }
            String::new()
        }
        // Long texts (a rendered config.yaml): the first line that differs.
        (Value::String(x), Value::String(y)) if x.contains('\n') || y.contains('\n') => {
            let (mut lx, mut ly) = (x.lines(), y.lines());
            let mut n = 1;
            loop {
                match (lx.next(), ly.next()) {
                    (Some(p), Some(q)) if p == q => n += 1,
                    (p, q) => {
                        return format!(
                            "{path}, line {n}: {:?} (reference {:?})",
                            p.unwrap_or("<end>"),
                            q.unwrap_or("<end>")
                        );
                    }
                }
            }
        }
        _ => {
            let cut = |v: &Value| {
                let s = v.to_string();
                if s.chars().count() > 300 {
                    format!("{}…", s.chars().take(300).collect::<String>())
                } else {
                    s
                }
            };
            format!("{path}: {} (reference {})", cut(a), cut(b))
        }
    }
}

/// The kinds a registry's objects come in (group, plural).
const KINDS: [(&str, &str); 14] = [
    ("", "secrets"),
    ("", "configmaps"),
    ("", "services"),
    ("", "serviceaccounts"),
    ("", "persistentvolumeclaims"),
    ("apps", "deployments"),
    ("batch", "jobs"),
    ("rbac.authorization.k8s.io", "roles"),
    ("rbac.authorization.k8s.io", "rolebindings"),
    ("autoscaling", "horizontalpodautoscalers"),
    ("route.openshift.io", "routes"),
    ("objectbucket.io", "objectbucketclaims"),
    ("monitoring.coreos.com", "servicemonitors"),
    ("monitoring.coreos.com", "prometheusrules"),
];

const DROPPED_LABELS: [&str; 4] = [
    "batch.kubernetes.io/controller-uid",
    "controller-uid",
    "pod-template-hash",
    "scenario-touch",
];
const DROPPED_ANNOTATIONS: [&str; 6] = [
    "deployment.kubernetes.io/revision",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

pub fn snapshot(sim: &Simulator) -> Snapshot {
    let mut raw: BTreeMap<String, Value> = BTreeMap::new();
    for (group, plural) in KINDS {
        for obj in sim.list(group, plural, Some(NS)) {
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            raw.insert(format!("{plural}/{name}"), obj);
        }
        for obj in sim.list(group, plural, Some(GRAFANA_DASHBOARD_NAMESPACE)) {
            if obj["metadata"]["labels"][REGISTRY_LABEL] == NAME {
                let name = obj["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                raw.insert(
                    format!("{plural}/{GRAFANA_DASHBOARD_NAMESPACE}/{name}"),
                    obj,
                );
            }
        }
    }
    let registry = sim.get("quay.redhat.com", "quayregistries", NS, NAME);

    // Values that differ between runs by design, longest first (a password inside a URI).
    let mut random: Vec<(String, String)> = Vec::new();
    if let Some(keys) = raw.get(&format!("secrets/{KEYS_SECRET}")) {
        for (k, v) in secret_strings(keys) {
            if v.len() >= 16 && !is_given_key(&v) {
                if k == "DB_URI"
                    && let Some(pw) = v.split("://").nth(1).and_then(|r| r.split('@').next())
                    && let Some((_, pw)) = pw.split_once(':')
                {
                    random.push((pw.to_owned(), "<DB_PASSWORD>".to_owned()));
                }
                random.push((v.clone(), format!("<{k}>")));
            }
        }
    }
    if let Some(s) = raw.get(&format!("secrets/{NAME}-quay-datastore")) {
        for (k, v) in secret_strings(s) {
            if !v.is_empty() {
                random.push((v, format!("<bucket {k}>")));
            }
        }
    }
    if let Some(obc) = raw.get(&format!("objectbucketclaims/{NAME}-quay-datastore"))
        && let Some(b) = obc["spec"]["bucketName"].as_str()
        && !b.is_empty()
    {
        random.push((b.to_owned(), "<bucket name>".to_owned()));
    }
    // Owner references name uids, which the API server assigns: name the object instead.
    for (key, obj) in raw.iter() {
        if let Some(uid) = obj["metadata"]["uid"].as_str() {
            random.push((uid.to_owned(), format!("<uid of {key}>")));
        }
    }
    if let Some(uid) = registry
        .as_ref()
        .and_then(|r| r["metadata"]["uid"].as_str())
    {
        random.push((uid.to_owned(), "<uid of the registry>".to_owned()));
    }
    // The config emitter quotes a value that would otherwise read as a number (a bucket key `12E34...` or all
    // digits), so whether a random value appears quoted is itself random: the quoted forms get the same
    // placeholder (found by seed 23: the faulted run's access key was quoted, the reference's was not).
    add_quoted_forms(&mut random);

    let mut objects = BTreeMap::new();
    for (key, obj) in raw {
        let mut n = normalize(obj);
        substitute(&mut n, &random);
        objects.insert(substitute_str(&key, &random), n);
    }
    if let Some(r) = registry {
        let mut n = normalize_registry(r);
        substitute(&mut n, &random);
        objects.insert(format!("quayregistries/{NAME}"), n);
    }
    Snapshot { objects }
}

/// Adds each random value's YAML-quoted forms with the same placeholder, and orders the list longest first (a
/// quoted value before the bare one, a whole value before a part of it).
fn add_quoted_forms(random: &mut Vec<(String, String)>) {
    let quoted: Vec<(String, String)> = random
        .iter()
        .flat_map(|(v, p)| {
            [
                (format!("\"{v}\""), p.clone()),
                (format!("'{v}'"), p.clone()),
            ]
        })
        .collect();
    random.extend(quoted);
    random.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
}

#[test]
fn a_random_value_compares_equal_quoted_or_not() {
    let text = |key: &str| format!("ACCESS_KEY: {key}\nDB_URI: postgresql://u:pw1@db/x\n");
    let placeholders = |key: &str| {
        let mut random = vec![
            (
                key.trim_matches(['\'', '"']).to_owned(),
                "<bucket key>".to_owned(),
            ),
            ("pw1".to_owned(), "<DB_PASSWORD>".to_owned()),
        ];
        add_quoted_forms(&mut random);
        substitute_str(&text(key), &random)
    };
    let plain = placeholders("ABCD1234");
    assert_eq!(
        plain,
        "ACCESS_KEY: <bucket key>\nDB_URI: postgresql://u:<DB_PASSWORD>@db/x\n"
    );
    assert_eq!(placeholders("'12E34'"), plain);
    assert_eq!(placeholders("\"12345\""), plain);
}

#[test]
fn a_finished_migration_job_is_compared_without_the_overrides_and_field_groups_it_ran_with() {
    let job = |step: &str, succeeded: i64| {
        json!({"kind": "Job", "metadata": {"name": format!("{NAME}-quay-app-upgrade")},
            "spec": {"template": {"spec": {"containers": [{"name": "quay-app-upgrade",
                "env": [{"name": "A", "value": "1"}, {"name": OVERRIDE_ENV, "value": step}]}]}}},
            "status": {"succeeded": succeeded}})
    };
    assert_eq!(normalize(job("3", 1)), normalize(job("5", 1)));
    assert_eq!(
        normalize(job("3", 1))["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "A", "value": "1"}])
    );
    // Still running: it must carry the current overrides.
    assert_ne!(normalize(job("3", 0)), normalize(job("5", 0)));
    // Nor the field groups it ran with (seed 647).
    let with_groups = |groups: &str, succeeded: i64| {
        let mut j = job("3", succeeded);
        j["spec"]["template"]["metadata"] =
            json!({"annotations": {MANAGED_FIELD_GROUPS_ANNOTATION: groups}});
        j
    };
    assert_eq!(
        normalize(with_groups("Database,Redis", 1)),
        normalize(with_groups("RepoMirror,Database,Redis", 1))
    );
    assert_ne!(
        normalize(with_groups("Database,Redis", 0)),
        normalize(with_groups("RepoMirror,Database,Redis", 0))
    );
}

#[test]
fn names_of_rendered_secrets_are_found_in_a_template() {
    let t = r#"{"volumes":[{"secret":{"secretName":"reg-quay-config-tls-ab12"}},{"secret":{"secretName":"reg-quay-config-secret-9f"}}]}"#;
    assert_eq!(
        names_with_prefix(t, "reg-quay-config-tls-"),
        BTreeSet::from(["reg-quay-config-tls-ab12".to_owned()])
    );
}

/// Keys pre-seeded by the harness are the same in both runs and must stay byte for byte: not replaced.
fn is_given_key(v: &str) -> bool {
    v.contains("given-by-fault-schedule")
}

fn secret_strings(secret: &Value) -> Vec<(String, String)> {
    secret["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap_or_default())
                .unwrap_or_default();
            (k.clone(), String::from_utf8_lossy(&bytes).into_owned())
        })
        .collect()
}

/// Annotations holding a hash of content that may include generated keys.
const HASH_ANNOTATIONS: [&str; 2] = [
    "quay-operator.rs/applied-hash",
    "quay.redhat.com/clair-config-hash",
];

fn normalize_annotations(meta: &mut serde_json::Map<String, Value>) {
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        for k in DROPPED_ANNOTATIONS {
            a.remove(k);
        }
        // Hashes of content compared in full here, and random per run where that content holds generated keys.
        for key in HASH_ANNOTATIONS {
            if a.contains_key(key) {
                a.insert(key.to_owned(), json!("<hash>"));
            }
        }
    }
}

/// The environment variable the schedules' override edits set.
const OVERRIDE_ENV: &str = "FAULT_SCHEDULE_STEP";

/// Pod-template annotation naming the config field groups the operator managed when it rendered the pod.
const MANAGED_FIELD_GROUPS_ANNOTATION: &str = "quay-managed-fieldgroups";

fn normalize(mut obj: Value) -> Value {
    let kind = obj["kind"].as_str().unwrap_or_default().to_owned();
    // A migration Job that succeeded is a record of the migration: it ran with the overrides of its time and is
    // neither re-run nor updated afterwards (its version is migrated), so which override edit it saw depends on
    // when it ran relative to the edits (found by seed 53: an edit landed during the faulted run's migration).
    // The same holds for the managed field groups it ran with (seed 647: mirror made managed after the faulted
    // run's migration had succeeded, before the reference's had).
    let migration_done = kind == "Job"
        && obj["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with("-quay-app-upgrade"))
        && obj["status"]["succeeded"].as_i64().unwrap_or(0) > 0;
    if migration_done
        && let Some(containers) = obj
            .pointer_mut("/spec/template/spec/containers")
            .and_then(Value::as_array_mut)
    {
        for c in containers {
            if let Some(env) = c["env"].as_array_mut() {
                env.retain(|e| e["name"] != OVERRIDE_ENV);
            }
        }
    }
    if migration_done
        && let Some(annotations) = obj
            .pointer_mut("/spec/template/metadata/annotations")
            .and_then(Value::as_object_mut)
    {
        annotations.remove(MANAGED_FIELD_GROUPS_ANNOTATION);
    }
    let meta = obj["metadata"].take();
    let mut m = serde_json::Map::new();
    for k in ["name", "namespace", "labels", "annotations", "finalizers"] {
        if let Some(v) = meta.get(k) {
            m.insert(k.to_owned(), v.clone());
        }
    }
    if let Some(owners) = meta.get("ownerReferences").and_then(Value::as_array)
        && !owners.is_empty()
    {
        m.insert("ownerReferences".to_owned(), Value::Array(owners.clone()));
    }
    if meta.get("deletionTimestamp").is_some() {
        m.insert("terminating".to_owned(), json!(true));
    }
    if let Some(labels) = m.get_mut("labels").and_then(Value::as_object_mut) {
        for l in DROPPED_LABELS {
            labels.remove(l);
        }
    }
    normalize_annotations(&mut m);
    obj["metadata"] = Value::Object(m);
    if let Some(template) = obj
        .pointer_mut("/spec/template/metadata")
        .and_then(Value::as_object_mut)
    {
        normalize_annotations(template);
    }
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    match kind.as_str() {
        "Secret" => {
            let decoded: serde_json::Map<String, Value> = secret_strings(&obj)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            obj["data"] = Value::Object(decoded);
        }
        "Service" => {
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.remove("volumeName");
            }
        }
        "Job" => {
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.remove("selector");
            }
            if let Some(labels) = obj
                .pointer_mut("/spec/template/metadata/labels")
                .and_then(Value::as_object_mut)
            {
                for l in DROPPED_LABELS {
                    labels.remove(l);
                }
            }
        }
        _ => {}
    }
    obj
}

fn normalize_registry(r: Value) -> Value {
    let generation = r["metadata"]["generation"].as_i64();
    let status = &r["status"];
    let mut conditions: Vec<Value> = status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!({"type": c["type"], "status": c["status"], "reason": c["reason"], "message": c["message"]})
        })
        .collect();
    conditions.sort_by_key(|c| c["type"].as_str().unwrap_or_default().to_owned());
    json!({
        "metadata": {
            "labels": r["metadata"]["labels"],
            "annotations": r["metadata"]["annotations"],
            "finalizers": r["metadata"]["finalizers"],
            "terminating": r["metadata"].get("deletionTimestamp").is_some(),
        },
        "spec": r["spec"],
        "status": {
            "conditions": conditions,
            "currentVersion": status["currentVersion"],
            "registryEndpoint": status["registryEndpoint"],
            "components": status["components"],
            "configBundleSecret": status["configBundleSecret"],
            "observedCurrentGeneration": status["observedGeneration"].as_i64() == generation,
        },
    })
}

fn substitute(v: &mut Value, random: &[(String, String)]) {
    match v {
        Value::String(s) => *s = substitute_str(s, random),
        Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, random)),
        Value::Object(map) => {
            let entries: Vec<(String, Value)> = std::mem::take(map).into_iter().collect();
            for (k, mut val) in entries {
                substitute(&mut val, random);
                map.insert(substitute_str(&k, random), val);
            }
        }
        _ => {}
    }
}

fn substitute_str(s: &str, random: &[(String, String)]) -> String {
    let mut out = s.to_owned();
    for (value, placeholder) in random {
        if out.contains(value.as_str()) {
            out = out.replace(value.as_str(), placeholder);
        }
    }
    // The config Secret's name ends in a hash of its content, which holds the generated keys.
    let prefix = format!("{NAME}-quay-config-secret-");
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(i) = rest.find(&prefix) {
        result.push_str(&rest[..i + prefix.len()]);
        rest = &rest[i + prefix.len()..];
        let hash_len = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        result.push_str("<hash>");
        rest = &rest[hash_len..];
    }
    result.push_str(rest);
    result
}

// ---------------------------------------------------------------------------------------------------------------
// Invariants watched all along
// ---------------------------------------------------------------------------------------------------------------

/// What must never happen, checked after every change of the store: a managed key changing once written, the
/// managed keys Secret disappearing, a database volume deleted or replaced.
#[derive(Default)]
struct Monitor {
    keys: BTreeMap<String, String>,
    keys_seen: bool,
    pvcs: BTreeMap<String, String>,
    violations: Vec<String>,
}

impl Monitor {
    fn check(&mut self, sim: &Simulator) {
        match sim.get("", "secrets", NS, KEYS_SECRET) {
            Some(secret) => {
                self.keys_seen = true;
                for (k, v) in secret_strings(&secret) {
                    if v.is_empty() {
                        continue;
                    }
                    match self.keys.get(&k) {
                        None => {
                            self.keys.insert(k, v);
                        }
                        Some(old) if *old != v => {
                            self.violate(format!("managed key {k} changed"));
                            self.keys.insert(k, v);
                        }
                        _ => {}
                    }
                }
            }
            None if self.keys_seen => self.violate("managed keys Secret deleted".to_owned()),
            None => {}
        }
        let live: BTreeMap<String, (String, bool)> = sim
            .list("", "persistentvolumeclaims", Some(NS))
            .into_iter()
            .map(|p| {
                (
                    p["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    (
                        p["metadata"]["uid"].as_str().unwrap_or_default().to_owned(),
                        p["metadata"].get("deletionTimestamp").is_some(),
                    ),
                )
            })
            .collect();
        let mut found = Vec::new();
        for (name, uid) in &self.pvcs {
            match live.get(name) {
                None => found.push(format!("PVC {name} deleted")),
                Some((u, _)) if u != uid => found.push(format!("PVC {name} replaced")),
                Some((_, true)) => found.push(format!("PVC {name} being deleted")),
                _ => {}
            }
        }
        for f in found {
            self.violate(f);
        }
        for (name, (uid, _)) in live {
            self.pvcs.entry(name).or_insert(uid);
        }
    }

    fn violate(&mut self, what: String) {
        if !self.violations.contains(&what) {
            self.violations.push(what);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// One run of a schedule
// ---------------------------------------------------------------------------------------------------------------

/// An operator "process": `run` restarted after it fails, as the kubelet restarts a crashed container.
struct Operator {
    task: Option<tokio::task::JoinHandle<()>>,
    crashes: Arc<AtomicUsize>,
}

impl Operator {
    fn start(&mut self, sim: &Simulator, version: &str) {
        self.stop();
        // `FAULT_CLIENT_READ_TIMEOUT_SECS=<n>` gives the operator's client a read timeout (kube's default has none),
        // to tell a request hanging on a dead connection from an operator bug.
        let client = match std::env::var("FAULT_CLIENT_READ_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(secs) => {
                let mut config = kube::Config::new(sim.url().parse().expect("url"));
                config.default_namespace = "default".into();
                config.read_timeout = Some(Duration::from_secs(secs));
                kube::Client::try_from(config).expect("client")
            }
            None => sim.client(),
        };
        let options = RunOptions {
            namespaces: vec![],
            http_addr: "127.0.0.1:0".parse().expect("address"),
            settings: OperatorSettings {
                quay_version: version.to_owned(),
                ..sim::settings()
            },
        };
        let crashes = self.crashes.clone();
        self.task = Some(tokio::spawn(async move {
            loop {
                match run(client.clone(), options.clone()).await {
                    Ok(()) => return,
                    Err(_) => {
                        crashes.fetch_add(1, Ordering::SeqCst);
                        // The kubelet's restart delay (shortened).
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }

    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    fn running(&self) -> bool {
        self.task.is_some()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What one run observed.
pub struct RunReport {
    /// The state at each settle point.
    pub settled: Vec<Snapshot>,
    pub violations: Vec<String>,
    pub crashes: usize,
    pub elapsed: Duration,
    /// The managed keys at the end (raw values).
    pub keys: BTreeMap<String, String>,
    cluster: Cluster,
    operator: Operator,
}

struct Runner<'a> {
    schedule: &'a Schedule,
    certs: &'a [(String, String); 2],
    cluster: &'a Cluster,
    operator: Operator,
    model: Model,
    /// Reference states to reach at each settle point (faulted run), or `None` (reference run).
    expected: Option<&'a [Snapshot]>,
    settled: Vec<Snapshot>,
    /// The operator was killed and is to be restarted after the next action.
    restart_pending: bool,
}

pub async fn run_schedule(
    schedule: &Schedule,
    certs: &[(String, String); 2],
    expected: Option<&[Snapshot]>,
) -> Result<RunReport, String> {
    let started = Instant::now();
    let cluster = Cluster::start_with(schedule.platform, schedule.platform.options(), vec![]).await;
    // This harness runs its own operator process (restarted on failure, killed and upgraded by the schedule).
    cluster.stop_operator();
    cluster
        .sim
        .shared()
        .faults
        .lock()
        .expect("faults")
        .seed(schedule.seed);
    let mut runner = Runner {
        schedule,
        certs,
        cluster: &cluster,
        operator: Operator {
            task: None,
            crashes: Arc::new(AtomicUsize::new(0)),
        },
        model: schedule.initial_model(),
        expected,
        settled: Vec::new(),
        restart_pending: false,
    };
    runner.operator.start(&runner.cluster.sim, FIRST_VERSION);
    runner.prepare().await?;

    let mut monitor = Monitor::default();
    let done = std::sync::atomic::AtomicBool::new(false);
    let result = {
        let watch = async {
            let sim = &cluster.sim;
            while !done.load(Ordering::SeqCst) {
                sim.wait_until(Duration::from_millis(200), || {
                    monitor.check(sim);
                    done.load(Ordering::SeqCst)
                })
                .await;
            }
        };
        let drive = async {
            let r = runner.drive().await;
            done.store(true, Ordering::SeqCst);
            r
        };
        let (r, ()) = tokio::join!(drive, watch);
        r
    };
    monitor.check(&cluster.sim);
    let Runner {
        operator, settled, ..
    } = runner;
    if let Err(e) = result {
        drop(operator);
        cluster.stop().await;
        return Err(e);
    }
    let keys = cluster
        .sim
        .get("", "secrets", NS, KEYS_SECRET)
        .map(|s| secret_strings(&s).into_iter().collect())
        .unwrap_or_default();
    Ok(RunReport {
        settled,
        violations: monitor.violations,
        crashes: operator.crashes.load(Ordering::SeqCst),
        elapsed: started.elapsed(),
        keys,
        cluster,
        operator,
    })
}

impl RunReport {
    /// The reference's state now (it should not have moved since its last settle point).
    pub fn snapshot_now(&self) -> Snapshot {
        snapshot(&self.cluster.sim)
    }

    pub async fn stop(mut self) {
        self.operator.stop();
        self.cluster.stop().await;
    }
}

impl Runner<'_> {
    fn faulted(&self) -> bool {
        self.expected.is_some()
    }

    fn api(&self) -> Api<QuayRegistry> {
        self.cluster.api(NS)
    }

    /// Namespace, the pre-seeded managed keys and the external TLS Secret, before the history starts.
    async fn prepare(&mut self) -> Result<(), String> {
        self.cluster.namespace(NS).await;
        let given = |k: &str| format!("given-by-fault-schedule-{k}-{}", self.schedule.seed);
        let keys: Vec<(String, String)> = match self.schedule.keys {
            KeysSeed::None => vec![],
            KeysSeed::Partial => vec![
                (
                    "DB_URI".to_owned(),
                    format!(
                        "postgresql://{NAME}-quay-database:{}@{NAME}-quay-database:5432/{NAME}-quay-database",
                        given("db")
                    ),
                ),
                ("DATABASE_SECRET_KEY".to_owned(), given("dbkey")),
            ],
            KeysSeed::All => {
                let mut all = vec![
                    (
                        "DB_URI".to_owned(),
                        format!(
                            "postgresql://{NAME}-quay-database:{}@{NAME}-quay-database:5432/{NAME}-quay-database",
                            given("db")
                        ),
                    ),
                    ("DATABASE_SECRET_KEY".to_owned(), given("dbkey")),
                    ("SECRET_KEY".to_owned(), given("secret")),
                    ("DB_ROOT_PW".to_owned(), given("root")),
                    (
                        "SECURITY_SCANNER_V4_PSK".to_owned(),
                        base64::engine::general_purpose::STANDARD.encode(given("psk")),
                    ),
                    ("CLAIR_DB_USER".to_owned(), "postgres".to_owned()),
                    ("CLAIR_DB_NAME".to_owned(), "postgres".to_owned()),
                    ("CLAIR_DB_PASSWORD".to_owned(), given("clair")),
                ];
                all.push(("CLAIR_DB_ROOT_PW".to_owned(), given("clair")));
                all
            }
        };
        if !keys.is_empty() {
            let data: Vec<(&str, &str)> =
                keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            self.cluster.secret(NS, KEYS_SECRET, "Opaque", &data).await;
        }
        if self.model.external_tls {
            self.write_tls().await?;
        }
        self.write_bundle().await
    }

    async fn drive(&mut self) -> Result<(), String> {
        // `FAULT_TRACE=1` prints when each event ends (where a slow seed spends its time).
        let trace = std::env::var("FAULT_TRACE").is_ok_and(|v| v == "1");
        let started = Instant::now();
        for event in self.schedule.events.clone() {
            if trace {
                println!(
                    "  [{} {:>6.2} s] {event:?}",
                    if self.faulted() {
                        "faulted"
                    } else {
                        "reference"
                    },
                    started.elapsed().as_secs_f64()
                );
            }
            match event {
                Event::Act(action) => self.act(&action).await?,
                Event::Inject(fault) => {
                    if self.faulted() {
                        self.inject(&fault).await?;
                    }
                }
                Event::Settle => self.settle().await?,
            }
        }
        Ok(())
    }

    async fn act(&mut self, action: &Action) -> Result<(), String> {
        self.model.apply(action);
        match action {
            Action::Create => {
                let mut registry = json!({
                    "apiVersion": "quay.redhat.com/v1", "kind": "QuayRegistry",
                    "metadata": {"name": NAME, "namespace": NS},
                    "spec": {"configBundleSecret": BUNDLE, "components": self.model.components_json()},
                });
                registry["spec"]["components"] = self.model.components_json();
                let registry: QuayRegistry = serde_json::from_value(registry).expect("registry");
                let api = self.api();
                retry("create the registry", || async {
                    match api.create(&PostParams::default(), &registry).await {
                        Err(kube::Error::Api(e))
                            if e.code == 409 && e.reason == "AlreadyExists" =>
                        {
                            Ok(())
                        }
                        other => other.map(|_| ()),
                    }
                })
                .await?;
            }
            Action::EditOverrides { .. } | Action::Toggle { .. } => {
                let patch = json!({"spec": {"components": self.model.components_json()}});
                let api = self.api();
                retry("edit the registry", || async {
                    api.patch(NAME, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ())
                })
                .await?;
            }
            Action::RotateTls => self.write_tls().await?,
            Action::ChangeBundle { .. } | Action::BreakBundle => self.write_bundle().await?,
            Action::Upgrade => {
                self.restart_pending = false;
                self.operator.start(&self.cluster.sim, self.model.version);
            }
            Action::Delete => {
                let api = self.api();
                retry("delete the registry", || async {
                    match api.delete(NAME, &DeleteParams::default()).await {
                        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                        other => other.map(|_| ()),
                    }
                })
                .await?;
            }
        }
        if self.restart_pending {
            self.restart_pending = false;
            self.operator.start(&self.cluster.sim, self.model.version);
        }
        if *action == Action::Delete {
            // `kubectl delete` waits for the finalizer; a re-create needs the old registry gone.
            let sim = &self.cluster.sim;
            if !sim
                .wait_until(ACTION, || {
                    sim.get("quay.redhat.com", "quayregistries", NS, NAME)
                        .is_none()
                })
                .await
            {
                return Err("the deleted registry was not finalized in 30 s".to_owned());
            }
        }
        Ok(())
    }

    async fn write_tls(&self) -> Result<(), String> {
        let (cert, key) = &self.certs[self.model.cert];
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": TLS_SECRET, "namespace": NS},
            "stringData": {"tls.crt": cert, "tls.key": key},
        }))
        .expect("secret");
        self.apply_secret(secret).await
    }

    async fn write_bundle(&self) -> Result<(), String> {
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": BUNDLE, "namespace": NS},
            "stringData": self.model.bundle_files(),
        }))
        .expect("secret");
        self.apply_secret(secret).await
    }

    async fn apply_secret(&self, secret: k8s_openapi::api::core::v1::Secret) -> Result<(), String> {
        let api: Api<k8s_openapi::api::core::v1::Secret> =
            Api::namespaced(self.cluster.client.clone(), NS);
        let name = secret.metadata.name.clone().unwrap_or_default();
        retry(&format!("write Secret {name}"), || async {
            api.patch(
                &name,
                &PatchParams::apply("fault-schedule-user").force(),
                &Patch::Apply(&secret),
            )
            .await
            .map(|_| ())
        })
        .await
    }

    async fn inject(&mut self, fault: &Fault) -> Result<(), String> {
        let sim = &self.cluster.sim;
        match fault {
            Fault::Api {
                code,
                verb,
                resource,
                times,
                probability,
            } => {
                let mut rule = FaultRule::new(*code).probability(*probability);
                if let Some(v) = verb {
                    rule = rule.verb(v);
                }
                if let Some(r) = resource {
                    rule = rule.resource(r);
                }
                if let Some(t) = times {
                    rule = rule.times(*t);
                }
                sim.inject_fault(rule);
            }
            Fault::Latency { ms } => sim.set_latency(Duration::from_millis(*ms)),
            Fault::ClearApiFaults => sim.clear_faults(),
            Fault::DropWatches => sim.drop_watches(),
            Fault::CompactHistory => sim.compact_history(),
            Fault::RestartSimulator {
                downtime_ms,
                compact,
            } => sim
                .restart(Duration::from_millis(*downtime_ms), *compact)
                .await
                .map_err(|e| format!("simulator restart: {e}"))?,
            Fault::Unavailable { ms } => {
                sim.set_unavailable(true);
                // The outage lasts this long: a window of time, not a condition to wait for.
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                sim.set_unavailable(false);
            }
            Fault::KillOperator { restart_now } => {
                self.operator.stop();
                if *restart_now {
                    self.operator.start(sim, self.model.version);
                } else {
                    self.restart_pending = true;
                }
            }
            Fault::Controller(c, m) => sim.set_controller_mode(*c, *m),
            Fault::Progress { writes } => {
                let target = sim.resource_version() + writes;
                sim.wait_until(Duration::from_secs(1), || sim.resource_version() >= target)
                    .await;
            }
        }
        Ok(())
    }

    /// Faults off, everything running: the state the history leads to.
    async fn heal(&mut self) -> Result<(), String> {
        let sim = &self.cluster.sim;
        sim.clear_faults();
        sim.set_unavailable(false);
        for c in [
            Controller::Deployment,
            Controller::Job,
            Controller::PersistentVolumeClaim,
            Controller::Route,
            Controller::ObjectBucketClaim,
        ] {
            sim.set_controller_mode(c, Mode::Succeed);
        }
        if !self.operator.running() || self.restart_pending {
            self.restart_pending = false;
            self.operator.start(sim, self.model.version);
        }
        // A migration Job that failed while Jobs were failing is kept and reported until the admin deletes it
        // (docs/differences-from-upstream.md); the admin does so once the cause is fixed.
        for job in sim.list("batch", "jobs", Some(NS)) {
            let failed = job["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Failed" && c["status"] == "True");
            if failed {
                let name = job["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let jobs: Api<k8s_openapi::api::batch::v1::Job> =
                    Api::namespaced(self.cluster.client.clone(), NS);
                retry(&format!("delete failed Job {name}"), || async {
                    match jobs.delete(&name, &DeleteParams::background()).await {
                        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
                        other => other.map(|_| ()),
                    }
                })
                .await?;
            }
        }
        Ok(())
    }

    async fn settle(&mut self) -> Result<(), String> {
        let index = self.settled.len();
        if let Some(expected) = self.expected {
            self.heal().await?;
            let want = &expected[index];
            let sim = &self.cluster.sim;
            // At rest in the reference's state, not passing through it on the way elsewhere.
            let reached = wait_at_rest(sim, SETTLE, || snapshot(sim) == *want).await;
            let now = snapshot(sim);
            if !reached {
                return Err(format!(
                    "settle point {index}: not the reference state after {} s without faults:\n{}",
                    SETTLE.as_secs(),
                    now.difference(want)
                ));
            }
            self.settled.push(now);
        } else {
            let sim = &self.cluster.sim;
            let model = self.model.clone();
            let certs = self.certs;
            if !wait_at_rest(sim, SETTLE, || settled(sim, &model, certs).is_ok()).await {
                return Err(format!(
                    "reference run, settle point {index}: {}",
                    settled(sim, &model, certs).unwrap_err()
                ));
            }
            self.settled.push(snapshot(sim));
        }
        Ok(())
    }
}

/// Waits until `ready` holds and the store then stays unchanged for [`quiet`] with `ready` still holding (the run
/// is at rest there, not passing through); `false` if that does not happen within `limit`. Store changes are
/// awaited, not polled.
async fn wait_at_rest(sim: &Simulator, limit: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    let quiet = quiet();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if !sim.wait_until(left, &mut ready).await {
            return false;
        }
        let rv = sim.resource_version();
        let moved = sim.wait_until(quiet, || sim.resource_version() != rv).await;
        if !moved && ready() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
    }
}

/// The names starting with `prefix` (a rendered Secret's name up to its content hash) that `text` mentions.
fn names_with_prefix(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        names.insert(format!("{prefix}{}", &rest[..end]));
        rest = &rest[end..];
    }
    names
}

/// The component a workload of the registry belongs to (for whether the operator still updates it).
fn component_of(deployment: &str) -> &'static str {
    if deployment.starts_with(&format!("{NAME}-clair-")) {
        "clair"
    } else if deployment == format!("{NAME}-quay-mirror") {
        "mirror"
    } else {
        "quay"
    }
}

/// Whether the reference run has done everything the model asks for (`Err` says what is still missing).
fn settled(sim: &Simulator, model: &Model, certs: &[(String, String); 2]) -> Result<(), String> {
    let registry = sim.get("quay.redhat.com", "quayregistries", NS, NAME);
    if !model.exists {
        if registry.is_some() {
            return Err("registry still exists".into());
        }
        // Garbage collection done: every owner reference names an object that still exists.
        let objects: Vec<Value> = KINDS
            .iter()
            .flat_map(|(group, plural)| sim.list(group, plural, Some(NS)))
            .collect();
        let alive: BTreeSet<&str> = objects
            .iter()
            .filter_map(|o| o["metadata"]["uid"].as_str())
            .collect();
        for obj in &objects {
            let orphaned = obj["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|o| o["uid"].as_str().is_none_or(|uid| !alive.contains(uid)));
            if orphaned {
                return Err(format!(
                    "{} {} not collected",
                    obj["kind"], obj["metadata"]["name"]
                ));
            }
        }
        return Ok(());
    }
    let Some(registry) = registry else {
        return Err("registry missing".into());
    };
    if registry["status"]["observedGeneration"] != registry["metadata"]["generation"] {
        return Err("generation not observed".into());
    }
    let typed: QuayRegistry =
        serde_json::from_value(registry.clone()).map_err(|e| e.to_string())?;
    let conditions = sim::conditions(&typed);
    if model.broken {
        return match conditions.get("RolloutBlocked") {
            Some(c) if c.status == "True" && c.reason == "ConfigInvalid" => Ok(()),
            other => Err(format!("rollout not blocked: {other:?}")),
        };
    }
    if !sim::is_healthy(&typed) {
        return Err(format!("not healthy: {conditions:?}"));
    }
    if registry["status"]["currentVersion"] != model.version {
        return Err(format!(
            "version {} not {}",
            registry["status"]["currentVersion"], model.version
        ));
    }
    let prefix = format!("{NAME}-quay-config-secret-");
    let configs: Vec<Value> = sim
        .list("", "secrets", Some(NS))
        .into_iter()
        .filter(|s| {
            s["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    let [config] = configs.as_slice() else {
        return Err(format!("{} rendered config Secrets", configs.len()));
    };
    let config_name = config["metadata"]["name"].as_str().unwrap_or_default();
    let app = sim
        .get("apps", "deployments", NS, &format!("{NAME}-quay-app"))
        .ok_or("no quay-app")?;
    if !app["spec"]["template"].to_string().contains(config_name) {
        return Err("quay-app does not mount the current config".into());
    }
    let config_yaml = secret_strings(config)
        .into_iter()
        .find(|(k, _)| k == "config.yaml")
        .map(|(_, v)| v)
        .unwrap_or_default();
    if !config_yaml.contains(&format!("fault-marker-{}", model.marker)) {
        return Err("the latest bundle is not rendered yet".into());
    }
    if model.external_tls {
        let cert = &certs[model.cert].0;
        let served = sim
            .list("", "secrets", Some(NS))
            .into_iter()
            .filter(|s| {
                s["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&format!("{NAME}-quay-config-tls-")))
            })
            .any(|s| {
                secret_strings(&s)
                    .iter()
                    .any(|(k, v)| k == "ssl.cert" && v == cert)
            });
        if !served {
            return Err("the current certificate is not rendered yet".into());
        }
    }
    // Every managed workload runs the current render: it mounts the config and TLS Secrets quay-app mounts (a
    // rotation reaches clair-app and the mirror after quay-app; seed 172), and no earlier TLS Secret is left that
    // the operator is about to remove (kept only while a workload still mounts it; seeds 24, 60, 118).
    let tls_prefix = format!("{NAME}-quay-config-tls-");
    let app_template = app["spec"]["template"].to_string();
    if names_with_prefix(&app_template, &tls_prefix).is_empty() {
        return Err("quay-app mounts no TLS Secret".into());
    }
    let deployments = sim.list("apps", "deployments", Some(NS));
    let mut mounted = BTreeSet::new();
    for d in &deployments {
        let name = d["metadata"]["name"].as_str().unwrap_or_default();
        let template = d["spec"]["template"].to_string();
        for p in [&prefix, &tls_prefix] {
            let names = names_with_prefix(&template, p);
            if model.managed(component_of(name))
                && !names.is_empty()
                && names != names_with_prefix(&app_template, p)
            {
                return Err(format!("{name} does not run the current render: {names:?}"));
            }
            mounted.extend(names);
        }
    }
    for j in sim.list("batch", "jobs", Some(NS)) {
        mounted.extend(names_with_prefix(
            &j["spec"]["template"].to_string(),
            &tls_prefix,
        ));
    }
    for s in sim.list("", "secrets", Some(NS)) {
        let name = s["metadata"]["name"].as_str().unwrap_or_default();
        if name.starts_with(&tls_prefix) && !mounted.contains(name) {
            return Err(format!("{name}, mounted by no workload, not removed yet"));
        }
    }
    for d in &deployments {
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let status = &d["status"];
        if status["observedGeneration"] != d["metadata"]["generation"]
            || status["updatedReplicas"].as_i64().unwrap_or(0) != replicas
        {
            return Err(format!("Deployment {} rolling out", d["metadata"]["name"]));
        }
    }
    Ok(())
}

/// A user's request, repeated until the API server takes it (faults may refuse it several times).
async fn retry<F, Fut>(what: &str, mut attempt: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let deadline = Instant::now() + ACTION;
    loop {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(_) if Instant::now() < deadline => {
                // A person retrying a refused kubectl command.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(format!("{what}: still refused after 30 s: {e}")),
        }
    }
}

/// Two self-signed certificates for the registry's host (the rotation alternates between them).
pub fn certificates(platform: Platform) -> [(String, String); 2] {
    let host = Model::new(platform, true).host();
    let one = || {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = vec![
            SanType::DnsName(host.as_str().try_into().expect("dns name")),
            SanType::DnsName("localhost".try_into().expect("dns name")),
        ];
        let cert = params.self_signed(&key).expect("certificate");
        (cert.pem(), key.serialize_pem())
    };
    [one(), one()]
}

// ---------------------------------------------------------------------------------------------------------------
// A seed, start to end
// ---------------------------------------------------------------------------------------------------------------

/// What a converged seed measured.
#[derive(Debug)]
pub struct SeedOutcome {
    pub seed: u64,
    pub settle_points: usize,
    pub faults: usize,
    pub crashes: usize,
    pub reference: Duration,
    pub faulted: Duration,
}

/// Runs a seed's schedule without and with faults; `Err` describes the first difference or broken invariant.
pub async fn check_seed(seed: u64) -> Result<SeedOutcome, String> {
    check_schedule(Schedule::from_seed(seed)).await
}

/// Runs a schedule without and with faults; `Err` describes the first difference or broken invariant.
pub async fn check_schedule(schedule: Schedule) -> Result<SeedOutcome, String> {
    let seed = schedule.seed;
    // `FAULT_LOG=<filter>` shows the operator's log (e.g. `FAULT_LOG=info,kube=debug`).
    if let Ok(filter) = std::env::var("FAULT_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let certs = certificates(schedule.platform);
    let fail = |e: String| format!("{e}\n{}", schedule.describe());

    let reference = run_schedule(&schedule, &certs, None).await.map_err(fail)?;
    if !reference.violations.is_empty() {
        let v = reference.violations.join("; ");
        reference.stop().await;
        return Err(fail(format!("reference run broke an invariant: {v}")));
    }
    let faulted = match run_schedule(&schedule, &certs, Some(&reference.settled)).await {
        Ok(f) => f,
        Err(e) => {
            reference.stop().await;
            return Err(fail(e));
        }
    };
    let mut problems = Vec::new();
    if !faulted.violations.is_empty() {
        problems.push(format!("invariants: {}", faulted.violations.join("; ")));
    }
    // The reference's last state was a fixed point: it has not moved while the faulted run ran.
    let last = reference.settled.last().cloned();
    let now = reference.snapshot_now();
    if let Some(last) = &last
        && *last != now
    {
        problems.push(format!(
            "the reference moved after its last settle point (harness): {}",
            now.difference(last)
        ));
    }
    // Keys the harness gave are kept byte for byte in both runs.
    for run in [&reference, &faulted] {
        for (k, v) in &run.keys {
            if is_given_key(v) && !v.contains(&seed.to_string()) {
                problems.push(format!("given key {k} not kept"));
            }
        }
    }
    if schedule.keys != KeysSeed::None && faulted.keys.get("DB_URI") != reference.keys.get("DB_URI")
    {
        problems.push("the given DB_URI (database password) differs between the runs".into());
    }
    let outcome = SeedOutcome {
        seed,
        settle_points: faulted.settled.len(),
        faults: schedule
            .events
            .iter()
            .filter(|e| matches!(e, Event::Inject(_)))
            .count(),
        crashes: faulted.crashes,
        reference: reference.elapsed,
        faulted: faulted.elapsed,
    };
    reference.stop().await;
    faulted.stop().await;
    if problems.is_empty() {
        Ok(outcome)
    } else {
        Err(fail(problems.join("\n")))
    }
}

/// The seeds to run: `FAULT_SEED=<n>` for one; `FAULT_SEEDS=<count>` from 0 (or from `FAULT_SEED_START`, to
/// split a nightly run); else `default`.
pub fn seeds_from_env(default: &[u64]) -> Vec<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
    if let Some(seed) = var("FAULT_SEED") {
        return vec![seed];
    }
    match var("FAULT_SEEDS") {
        Some(count) => {
            let start = var("FAULT_SEED_START").unwrap_or(0);
            (start..start + count).collect()
        }
        None => default.to_vec(),
    }
}
