//! User story: the people who run a registry trust the operator with its database passwords and keys. Every
//! secret it generates is strong (≥ 256 bits from the OS CSPRNG), and no secret — generated or the user's —
//! ever shows in the operator's logs, in Events or in any QuayRegistry status, whatever happens: install, a
//! bundle change, a TLS rotation, bad input, an upgrade, deletion.

#[path = "common/logs.rs"]
mod logs;
#[path = "common/sim.rs"]
mod sim;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use base64::Engine;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::watcher;
use quay_operator::api::QuayRegistry;
use quay_operator::config::ManagedKeys;
use quay_operator::config::managed_keys::{ALPHABET, MANAGED_KEY_NAMES};
use serde_json::{Value, json};
use sim::{Cluster, Platform, secret_data};

/// Every log line of the operator in this test process (JSON, every level down to trace).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    logs::captured(tracing::Level::TRACE)
}

/// Bits of entropy of a uniformly random string over [`ALPHABET`].
fn bits(symbols: usize) -> f64 {
    symbols as f64 * (ALPHABET.len() as f64).log2()
}

/// The randomly generated part of each managed key: the password inside `DB_URI`, the key under the PSK's
/// base64; `None` for the fixed user and database names.
fn random_parts(keys: &ManagedKeys) -> BTreeMap<&'static str, String> {
    let mut parts = BTreeMap::new();
    for name in MANAGED_KEY_NAMES {
        let value = keys.get(name).unwrap_or_else(|| panic!("{name} generated"));
        let random = match name {
            "CLAIR_DB_USER" | "CLAIR_DB_NAME" => continue,
            "DB_URI" => {
                let credentials = value.strip_prefix("postgresql://").unwrap();
                let (userinfo, _) = credentials.split_once('@').unwrap();
                userinfo.split_once(':').unwrap().1.to_owned()
            }
            "SECURITY_SCANNER_V4_PSK" => String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(value)
                    .unwrap(),
            )
            .unwrap(),
            _ => value.to_owned(),
        };
        parts.insert(name, random);
    }
    parts
}

#[test]
fn every_generated_secret_has_at_least_256_bits_of_entropy() {
    const REGISTRIES: usize = 200;
    let mut seen = BTreeSet::new();
    let mut counts = [0u64; 256];
    let mut total = 0u64;
    for i in 0..REGISTRIES {
        let mut keys = ManagedKeys::default();
        // The production path: `complete` draws from the OS CSPRNG.
        assert!(keys.complete(&format!("reg{i}")));
        let parts = random_parts(&keys);
        assert_eq!(parts.len(), 7, "seven generated secrets per registry");
        for (name, random) in parts {
            if name == "CLAIR_DB_ROOT_PW" {
                // Upstream's layout: the Clair database's root password is its user's password.
                assert_eq!(Some(random.as_str()), keys.clair_db_password());
                continue;
            }
            assert!(
                random.bytes().all(|b| ALPHABET.contains(&b)),
                "{name}: symbols outside the alphabet"
            );
            assert!(
                bits(random.len()) >= 256.0,
                "{name}: {} symbols carry {:.0} bits",
                random.len(),
                bits(random.len())
            );
            assert!(seen.insert(random.clone()), "{name}: a value repeated");
            for b in random.bytes() {
                counts[b as usize] += 1;
                total += 1;
            }
        }
    }
    // Each symbol is drawn uniformly: with ~60 000 draws, every symbol's count lies within 25% of the mean
    // (a fixed, biased or short-cycle generator would not); the bound is ~10 standard deviations wide.
    let mean = total as f64 / ALPHABET.len() as f64;
    for &symbol in ALPHABET {
        let n = counts[symbol as usize] as f64;
        assert!(
            (n - mean).abs() < 0.25 * mean,
            "symbol {:?} drawn {n} times, mean {mean:.0}",
            symbol as char
        );
    }
    println!(
        "entropy: {} secrets from {REGISTRIES} registries, all distinct, ≥ {:.0} bits each",
        seen.len(),
        bits(quay_operator::config::managed_keys::PASSWORD_LENGTH)
    );
}

/// Records every QuayRegistry status the API server serves, in every namespace, while the story runs.
fn record_statuses(cluster: &Cluster) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let sink = statuses.clone();
    let api: Api<QuayRegistry> = Api::all(cluster.client.clone());
    let task = tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default()).boxed();
        while let Some(event) = events.next().await {
            let objects = match event {
                Ok(watcher::Event::Apply(r) | watcher::Event::InitApply(r)) => vec![r],
                _ => vec![],
            };
            for r in objects {
                sink.lock()
                    .unwrap()
                    .push(serde_json::to_string(&r.status).unwrap());
            }
        }
    });
    (statuses, task)
}

/// The managed keys, the bucket keys and the database password of every registry in a namespace.
fn generated_secrets(cluster: &Cluster, namespace: &str, registry: &str) -> Vec<String> {
    let mut found = Vec::new();
    let keys = cluster
        .sim
        .get(
            "",
            "secrets",
            namespace,
            &format!("{registry}-quay-registry-managed-secret-keys"),
        )
        .expect("managed keys");
    for key in keys["data"].as_object().unwrap().keys() {
        found.push(secret_data(&keys, key).unwrap());
    }
    let keys = ManagedKeys::from_files(&found_files(&keys));
    found.extend(random_parts(&keys).into_values());
    if let Some(bucket) = cluster.sim.get(
        "",
        "secrets",
        namespace,
        &format!("{registry}-quay-datastore"),
    ) {
        found.push(secret_data(&bucket, "AWS_SECRET_ACCESS_KEY").unwrap());
    }
    found
}

fn found_files(secret: &Value) -> BTreeMap<String, Vec<u8>> {
    secret["data"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (k.clone(), secret_data(secret, k).unwrap().into_bytes()))
        .collect()
}

/// The body lines of a PEM private key (each long enough to identify the key).
fn pem_body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 40)
        .map(str::to_owned)
        .collect()
}

async fn write_bundle(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    files: &BTreeMap<String, String>,
) {
    let data: Vec<(&str, &str)> = files
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    cluster.secret(namespace, name, "Opaque", &data).await;
}

/// Writes the bundle and waits until quay-app runs with a config Secret rendered from it.
async fn rolled_out(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    bundle: &str,
    files: &BTreeMap<String, String>,
) {
    let config_secret = |cluster: &Cluster| {
        cluster
            .deployment(namespace, &format!("{name}-quay-app"))
            .map(|d| d["spec"]["template"]["spec"]["volumes"].to_string())
    };
    let before = config_secret(cluster);
    write_bundle(cluster, namespace, bundle, files).await;
    let changed = cluster
        .sim
        .wait_until(sim::WAIT, || config_secret(cluster) != before)
        .await;
    assert!(changed, "quay-app never picked up the new bundle");
    cluster.wait_healthy(namespace, name).await;
}

/// A fresh certificate and key for quay.example.com (a TLS rotation).
fn new_certificate() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["quay.example.com".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

const USER_DB_PASSWORD: &str = "UserDbPassw0rd-in-DB_URI-must-stay-hidden";
const USER_SECRET_KEY: &str = "user-SECRET_KEY-value-that-must-stay-hidden-0123456789";

/// Plain Kubernetes: install with the user's certificate and SECRET_KEY, change the bundle, rotate the
/// certificate, put bad input in (a DB password on a broken line, a certificate for another host), upgrade
/// Quay, delete. Returns the secrets to look for.
async fn kubernetes_story(cluster: &Cluster) -> Vec<String> {
    let (ns, name) = ("scan-k8s", "scan");
    let bundle_name = format!("{name}-config");
    cluster.namespace(ns).await;
    let mut files = sim::kubernetes_bundle();
    files
        .get_mut("config.yaml")
        .unwrap()
        .push_str(&format!("SECRET_KEY: {USER_SECRET_KEY}\n"));
    let mut secrets = vec![USER_SECRET_KEY.to_owned(), USER_DB_PASSWORD.to_owned()];
    secrets.extend(pem_body_lines(&files["ssl.key"]));
    secrets.push("EXAMPLE-ONLY-secret-key".to_owned());
    write_bundle(cluster, ns, &bundle_name, &files).await;
    let registry = cluster.registry_json(ns, name, &bundle_name, json!([]));
    cluster.create_registry(registry).await;
    cluster.wait_healthy(ns, name).await;

    // A bundle change.
    files
        .get_mut("config.yaml")
        .unwrap()
        .push_str("FEATURE_USER_INITIALIZE: true\n");
    rolled_out(cluster, ns, name, &bundle_name, &files).await;

    // TLS rotation.
    let (cert, key) = new_certificate();
    secrets.extend(pem_body_lines(&key));
    files.insert("ssl.cert".into(), cert);
    files.insert("ssl.key".into(), key);
    rolled_out(cluster, ns, name, &bundle_name, &files).await;

    // Bad input: the user's database password on a line that does not parse.
    let good = files.clone();
    files.get_mut("config.yaml").unwrap().push_str(&format!(
        "DB_URI: postgresql://quay:{USER_DB_PASSWORD}@db:5432/quay\n  oops: [{USER_DB_PASSWORD}\n"
    ));
    write_bundle(cluster, ns, &bundle_name, &files).await;
    cluster
        .wait_condition(ns, name, "RolloutBlocked", "True", "ConfigInvalid")
        .await;
    // Bad input: a well-formed DB_URI with a password while postgres is managed.
    let mut files = good.clone();
    files.get_mut("config.yaml").unwrap().push_str(&format!(
        "DB_URI: postgresql://quay:{USER_DB_PASSWORD}@db:5432/quay\n"
    ));
    write_bundle(cluster, ns, &bundle_name, &files).await;
    cluster
        .wait(ns, name, "DB_URI refused", |r| {
            sim::conditions(r).get("RolloutBlocked").is_some_and(|c| {
                c.status == "True" && c.message.contains("postgres component marked as managed")
            })
        })
        .await;
    // Bad input: a certificate for another host.
    let mut files = good.clone();
    let other_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let other = rcgen::CertificateParams::new(vec!["other.example.org".to_owned()])
        .unwrap()
        .self_signed(&other_key)
        .unwrap();
    secrets.extend(pem_body_lines(&other_key.serialize_pem()));
    files.insert("ssl.cert".into(), other.pem());
    files.insert("ssl.key".into(), other_key.serialize_pem());
    write_bundle(cluster, ns, &bundle_name, &files).await;
    cluster
        .wait_condition(
            ns,
            name,
            "RolloutBlocked",
            "True",
            "ComponentCreationFailed",
        )
        .await;
    write_bundle(cluster, ns, &bundle_name, &good).await;
    cluster.wait_healthy(ns, name).await;

    secrets.extend(generated_secrets(cluster, ns, name));
    secrets
}

/// OpenShift, all managed: install, a bundle change, bad input, upgrade of Quay, delete.
async fn openshift_story(cluster: &Cluster) -> Vec<String> {
    let (ns, name) = ("scan-os", "scan");
    cluster.namespace(ns).await;
    cluster.registry(ns, name, json!([])).await;
    cluster.wait_healthy(ns, name).await;
    cluster
        .bundle(ns, &format!("{name}-config"), "FEATURE_PROXY_CACHE: true\n")
        .await;
    cluster.wait_healthy(ns, name).await;
    cluster
        .bundle(
            ns,
            &format!("{name}-config"),
            &format!("oops: [{USER_DB_PASSWORD}\n"),
        )
        .await;
    cluster
        .wait_condition(ns, name, "RolloutBlocked", "True", "ConfigInvalid")
        .await;
    cluster.bundle(ns, &format!("{name}-config"), "").await;
    cluster.wait_healthy(ns, name).await;
    let secrets = generated_secrets(cluster, ns, name);

    // A newer operator upgrades Quay (migration Job), then the registry is deleted.
    cluster.stop_operator();
    let newer = quay_operator::render::OperatorSettings {
        quay_version: "v3.12.0".into(),
        ..sim::settings()
    };
    let operator = cluster.spawn_operator(newer);
    cluster
        .wait(ns, name, "v3.12.0 installed", |r| {
            sim::is_healthy(r)
                && r.status.as_ref().unwrap().current_version.as_deref() == Some("v3.12.0")
        })
        .await;
    cluster
        .api(ns)
        .delete(name, &Default::default())
        .await
        .unwrap();
    cluster
        .sim
        .wait_until(sim::WAIT, || {
            cluster
                .sim
                .get("quay.redhat.com", "quayregistries", ns, name)
                .is_none()
        })
        .await;
    operator.abort();
    secrets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_shows_in_logs_events_or_any_status() {
    let logs = logs();
    let kubernetes = Cluster::start(Platform::Kubernetes).await;
    let (k8s_statuses, k8s_watch) = record_statuses(&kubernetes);
    let openshift = Cluster::start(Platform::OpenShift).await;
    let (os_statuses, os_watch) = record_statuses(&openshift);
    let (mut secrets, os_secrets) =
        tokio::join!(kubernetes_story(&kubernetes), openshift_story(&openshift));
    secrets.extend(os_secrets);

    // Short values (user names, `postgres`, empty keys) are not secrets; each secret also in base64.
    secrets.retain(|s| s.len() >= 16);
    secrets.sort();
    secrets.dedup();
    let distinct = secrets.len();
    let encoded: Vec<String> = secrets
        .iter()
        .map(|s| base64::engine::general_purpose::STANDARD.encode(s))
        .collect();
    secrets.extend(encoded);
    assert!(
        secrets.len() >= 40,
        "secrets to look for: {}",
        secrets.len()
    );

    let mut events = Vec::new();
    for cluster in [&kubernetes, &openshift] {
        events.extend(cluster.sim.list("", "events", None));
        events.extend(cluster.sim.list("events.k8s.io", "events", None));
    }
    let events = serde_json::to_string(&events).unwrap();
    let statuses = [k8s_statuses, os_statuses]
        .iter()
        .map(|s| s.lock().unwrap().join("\n"))
        .collect::<Vec<_>>()
        .join("\n");
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(logs.contains("rollout blocked"), "the logs were captured");
    assert!(events.contains("ConfigInvalid"), "the Events were written");
    assert!(statuses.contains("v3.12.0"), "the statuses were recorded");
    let status_count = statuses.lines().count();
    for secret in &secrets {
        let shown = secret.chars().take(4).collect::<String>();
        for (what, text) in [
            ("logs", &logs),
            ("Events", &events),
            ("a status", &statuses),
        ] {
            assert!(
                !text.contains(secret.as_str()),
                "a secret ({shown}…) in {what}"
            );
        }
    }
    println!(
        "secret scan: {} secret values (and their base64) absent from {} bytes of logs, {} bytes of Events, {status_count} statuses",
        distinct,
        logs.len(),
        events.len()
    );
    k8s_watch.abort();
    os_watch.abort();
    kubernetes.stop().await;
    openshift.stop().await;
}
