//! User story: a cluster runs an all-managed registry made by the upstream Go operator; the admin stops it and
//! starts this one. The upstream objects are built here from the facts file (§2–§4, §8: names, labels,
//! annotations, selectors, ports, secret layouts, content-hashed Secret names, managed keys, database volumes) and
//! server-side applied with upstream's field manager `quay-operator`, owned by the registry without the controller
//! flag. Then this operator starts and converges. Nothing of the registry's data may go: no PVC, Service or
//! Secret is deleted or renamed (the one exception upstream shares, §3.8: a rendered config Secret superseded by a
//! new render is removed once Quay runs with the new one), the managed keys and the database passwords keep
//! their bytes, and the registry is Available.

#[path = "common/sim.rs"]
mod sim;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, CustomResourceExt, ResourceExt};
use kube_sim::{Options, Simulator};
use quay_operator::api::QuayRegistry;
use quay_operator::controller::GRAFANA_DASHBOARD_NAMESPACE;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const NS: &str = "quay-enterprise";
const REG: &str = "example-registry";
const BUNDLE: &str = "example-registry-config-bundle";
/// Where the upstream operator ran (its `MY_POD_NAMESPACE`, in the service-endpoint annotation).
const UPSTREAM_NS: &str = "openshift-operators";
/// The router domain of the simulated OpenShift (`router-default.apps.<domain>`).
const CLUSTER_HOSTNAME: &str = "apps.sim.example.com";

fn server_hostname() -> String {
    format!("{REG}-quay-{NS}.{CLUSTER_HOSTNAME}")
}

/// Generated-looking values from the managed-keys alphabet (`0-9A-Za-z-`), fixed so the test can compare bytes.
fn key(seed: usize, len: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-";
    (0..len)
        .map(|i| ALPHABET[(seed * 31 + i * 17 + i * i) % ALPHABET.len()] as char)
        .collect()
}

struct Keys {
    database_secret_key: String,
    secret_key: String,
    db_password: String,
    db_root_pw: String,
    psk: String,
    clair_password: String,
}

impl Keys {
    fn new() -> Self {
        Keys {
            database_secret_key: key(1, 80),
            secret_key: key(2, 80),
            db_password: key(3, 80),
            db_root_pw: key(4, 32),
            psk: B64.encode(key(5, 32)),
            clair_password: key(6, 32),
        }
    }
    fn db_uri(&self) -> String {
        format!(
            "postgresql://{REG}-quay-database:{}@{REG}-quay-database:5432/{REG}-quay-database",
            self.db_password
        )
    }
}

/// §3.4: kustomize's name suffix, from compact sorted JSON of the Secret's base64 data.
fn kustomize_hash(data: &BTreeMap<String, String>) -> String {
    let encoded: BTreeMap<&str, String> = data
        .iter()
        .map(|(k, v)| (k.as_str(), B64.encode(v)))
        .collect();
    let doc = format!(
        r#"{{"data":{},"kind":"Secret","name":"","type":"Opaque"}}"#,
        serde_json::to_string(&encoded).unwrap()
    );
    let hex: String = Sha256::digest(doc.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

#[test]
fn the_hash_of_the_facts_example_is_reproduced() {
    assert_eq!(kustomize_hash(&BTreeMap::new()), "46f8b28mk5");
}

/// Metadata of an upstream object: `<reg>-<name>`, the registry label, the common annotations (§2.0).
fn meta(owner: &Value, name: &str, component: &str, labels: Value) -> Value {
    let mut all_labels = json!({"quay-operator/quayregistry": REG});
    for (k, v) in labels.as_object().cloned().unwrap_or_default() {
        all_labels[k] = v;
    }
    json!({
        "name": format!("{REG}-{name}"),
        "namespace": NS,
        "labels": all_labels,
        "annotations": common_annotations(Some(component)),
        "ownerReferences": [owner],
    })
}

fn common_annotations(component: Option<&str>) -> Value {
    let mut a = json!({
        "quay-registry-hostname": server_hostname(),
        "quay-buildmanager-hostname": "",
        "quay-operator-service-endpoint": format!("http://quay-operator.{UPSTREAM_NS}.svc.cluster.local:7071"),
    });
    if let Some(c) = component {
        a["quay-component"] = json!(c);
    }
    a
}

fn secret(owner: &Value, name: &str, component: &str, data: &BTreeMap<String, String>) -> Value {
    let encoded: BTreeMap<&String, String> = data.iter().map(|(k, v)| (k, B64.encode(v))).collect();
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": meta(owner, name, component, json!({})),
        "type": "Opaque",
        "data": encoded,
    })
}

fn hashed_secret(
    owner: &Value,
    prefix: &str,
    component: &str,
    data: BTreeMap<String, String>,
) -> (String, Value) {
    let name = format!("{prefix}-{}", kustomize_hash(&data));
    let object = secret(owner, &name, component, &data);
    (format!("{REG}-{name}"), object)
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The flattened `config.yaml` upstream renders for the manuals' all-managed registry (§3.2, field groups §2.x).
fn quay_config(keys: &Keys, bucket: &Value) -> String {
    let user: Value = {
        let bundle = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/all-managed/config-bundle.yaml"),
        )
        .unwrap();
        let secret: Value = serde_saphyr::from_str(&bundle).unwrap();
        serde_saphyr::from_str(secret["stringData"]["config.yaml"].as_str().unwrap()).unwrap()
    };
    let mut config: BTreeMap<String, Value> = user
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let set_default = |config: &mut BTreeMap<String, Value>, k: &str, v: Value| {
        config.entry(k.to_owned()).or_insert(v);
    };
    for (k, v) in [
        ("SETUP_COMPLETE", json!(true)),
        ("FEATURE_MAILING", json!(false)),
        ("REGISTRY_TITLE", json!("Quay")),
        ("REGISTRY_TITLE_SHORT", json!("Quay")),
        ("AUTHENTICATION_TYPE", json!("Database")),
        (
            "ENTERPRISE_LOGO_URL",
            json!("/static/img/quay-horizontal-color.svg"),
        ),
        ("DEFAULT_TAG_EXPIRATION", json!("2w")),
        ("ALLOW_PULLS_WITHOUT_STRICT_LOGGING", json!(false)),
        ("TAG_EXPIRATION_OPTIONS", json!(["2w"])),
        ("TEAM_RESYNC_STALE_TIME", json!("60m")),
        ("FEATURE_DIRECT_LOGIN", json!(true)),
        ("FEATURE_BUILD_SUPPORT", json!(false)),
        ("TESTING", json!(false)),
    ] {
        set_default(&mut config, k, v);
    }
    let redis = json!({"host": format!("{REG}-quay-redis"), "port": 6379});
    let overrides = [
        ("DATABASE_SECRET_KEY", json!(keys.database_secret_key)),
        ("SECRET_KEY", json!(keys.secret_key)),
        ("DB_URI", json!(keys.db_uri())),
        (
            "DB_CONNECTION_ARGS",
            json!({"autorollback": true, "threadlocals": true}),
        ),
        ("FEATURE_SECURITY_SCANNER", json!(true)),
        ("FEATURE_SECURITY_NOTIFICATIONS", json!(true)),
        ("SECURITY_SCANNER_INDEXING_INTERVAL", json!(30)),
        (
            "SECURITY_SCANNER_V4_ENDPOINT",
            json!(format!("http://{REG}-clair-app.{NS}.svc.cluster.local")),
        ),
        ("SECURITY_SCANNER_V4_NAMESPACE_WHITELIST", json!(["admin"])),
        ("SECURITY_SCANNER_V4_PSK", json!(keys.psk)),
        ("BUILDLOGS_REDIS", redis.clone()),
        ("USER_EVENTS_REDIS", redis),
        ("FEATURE_PROXY_STORAGE", json!(true)),
        ("FEATURE_STORAGE_REPLICATION", json!(false)),
        ("DISTRIBUTED_STORAGE_PREFERENCE", json!(["local_us"])),
        ("DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS", json!(["local_us"])),
        (
            "DISTRIBUTED_STORAGE_CONFIG",
            json!({"local_us": ["RHOCSStorage", {
                "hostname": bucket["host"], "port": 443, "is_secure": true,
                "storage_path": "/datastorage/registry",
                "access_key": bucket["access_key"], "secret_key": bucket["secret_key"],
                "bucket_name": bucket["bucket_name"],
            }]}),
        ),
        ("SERVER_HOSTNAME", json!(server_hostname())),
        ("PREFERRED_URL_SCHEME", json!("https")),
        ("EXTERNAL_TLS_TERMINATION", json!(true)),
        ("FEATURE_REPO_MIRROR", json!(true)),
        ("REPO_MIRROR_INTERVAL", json!(30)),
        ("REPO_MIRROR_TLS_VERIFY", json!(true)),
    ];
    for (k, v) in overrides {
        config.insert(k.to_owned(), v);
    }
    serde_saphyr::to_string(&config).unwrap()
}

/// §3.7: the Clair config upstream generates.
fn clair_config(keys: &Keys) -> String {
    let conn = format!(
        "host={REG}-clair-postgres port=5432 dbname=postgres user=postgres password={} sslmode=disable pool_max_conns=33",
        keys.clair_password
    );
    let config = json!({
        "http_listen_addr": ":8080",
        "log_level": "info",
        "indexer": {"connstring": conn, "scanlock_retry": 10, "layer_scan_concurrency": 5, "migrations": true},
        "matcher": {"connstring": conn, "migrations": true},
        "notifier": {"connstring": conn, "migrations": true, "delivery_interval": "1m", "poll_interval": "5m",
            "webhook": {"target": format!("https://{}/secscan/notification", server_hostname()),
                        "callback": format!("http://{REG}-clair-app/notifier/api/v1/notifications")}},
        "auth": {"psk": {"key": keys.psk, "iss": ["quay", "clairctl"]}},
        "metrics": {"name": "prometheus"},
        "updaters": {"sets": ["alpine", "aws", "clair.cvss", "debian", "oracle", "photon", "rhcc", "rhel-vex", "suse", "ubuntu"],
                     "config": {"rhel-vex": {"ignore_unpatched": true}}},
    });
    serde_saphyr::to_string(&config).unwrap()
}

fn pod_labels(component: &str, app_quay: bool) -> Value {
    let mut l = json!({"quay-component": component, "quay-operator/quayregistry": REG});
    if app_quay {
        l["app"] = json!("quay");
    }
    l
}

#[allow(clippy::too_many_arguments)]
fn deployment(
    owner: &Value,
    name: &str,
    component_annotation: &str,
    meta_labels: Value,
    pod_component: &str,
    app_quay: bool,
    replicas: Option<i64>,
    pod: Value,
    database: bool,
) -> Value {
    let mut spec = json!({
        "selector": {"matchLabels": pod_labels(pod_component, app_quay)},
        "template": {
            "metadata": {"labels": pod_labels(pod_component, app_quay)},
            "spec": pod,
        },
    });
    if !database {
        // Common annotations land on pod templates too (removed from the databases' by middleware, §2.4).
        spec["template"]["metadata"]["annotations"] = common_annotations(None);
    } else {
        spec["strategy"] = json!({"type": "Recreate"});
    }
    if let Some(r) = replicas {
        spec["replicas"] = json!(r);
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta(owner, name, component_annotation, meta_labels),
        "spec": spec,
    })
}

fn quay_pod(config_secret: &str, tls_secret: &str, extra_ca: &str, proxy: &str) -> Value {
    json!({
        "serviceAccountName": format!("{REG}-quay-app"),
        "containers": [{
            "name": "quay-app",
            "image": "quay.io/projectquay/quay:latest",
            "args": ["registry-nomigrate"],
            "env": [
                {"name": "QE_K8S_CONFIG_SECRET", "value": config_secret},
                {"name": "QE_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "DEBUGLOG", "value": "false"},
                {"name": "WORKER_COUNT_WEB", "value": "4"},
                {"name": "WORKER_COUNT_SECSCAN", "value": "2"},
                {"name": "WORKER_COUNT_REGISTRY", "value": "8"},
                {"name": "HTTP_PROXY", "valueFrom": {"secretKeyRef": {"name": proxy, "key": "HTTP_PROXY"}}},
                {"name": "HTTPS_PROXY", "valueFrom": {"secretKeyRef": {"name": proxy, "key": "HTTPS_PROXY"}}},
                {"name": "NO_PROXY", "valueFrom": {"secretKeyRef": {"name": proxy, "key": "NO_PROXY"}}},
                {"name": "QUAY_VERSION", "value": sim::QUAY_VERSION},
            ],
            "ports": [{"containerPort": 8443}, {"containerPort": 8080}, {"containerPort": 8081},
                      {"containerPort": 9091}, {"containerPort": 55443}],
            "volumeMounts": [
                {"name": "config", "mountPath": "/conf/stack"},
                {"name": "extra-ca-certs", "mountPath": "/conf/stack/extra_ca_certs", "readOnly": true},
            ],
        }],
        "volumes": [
            {"name": "config", "projected": {"sources": [
                {"secret": {"name": config_secret}}, {"secret": {"name": tls_secret}}]}},
            {"name": "extra-ca-certs", "projected": {"sources": [
                {"configMap": {"name": format!("{REG}-cluster-service-ca")}},
                {"configMap": {"name": format!("{REG}-cluster-trusted-ca")}},
                {"secret": {"name": extra_ca}}]}},
        ],
    })
}

fn database_pod(
    sa: &str,
    container: &str,
    image: &str,
    config_secret: &str,
    pvc: &str,
    conf: &str,
) -> Value {
    let from = |env: &str, key: &str| json!({"name": env, "valueFrom": {"secretKeyRef": {"name": config_secret, "key": key}}});
    json!({
        "serviceAccountName": sa,
        "containers": [{
            "name": container,
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": 5432, "protocol": "TCP"}],
            "env": [
                from("POSTGRESQL_USER", "database-username"),
                from("POSTGRESQL_DATABASE", "database-name"),
                from("POSTGRESQL_ADMIN_PASSWORD", "database-root-password"),
                from("POSTGRESQL_PASSWORD", "database-password"),
                {"name": "POSTGRESQL_SHARED_BUFFERS", "value": "256MB"},
                {"name": "POSTGRESQL_MAX_CONNECTIONS", "value": "2000"},
            ],
            "volumeMounts": [
                {"name": "postgres-conf-sample", "mountPath": "/usr/share/pgsql/postgresql.conf.sample", "subPath": "postgresql.conf.sample"},
                {"name": "postgres-data", "mountPath": "/var/lib/pgsql/data"},
            ],
        }],
        "volumes": [
            {"name": "postgres-conf-sample", "configMap": {"name": conf}},
            {"name": "postgres-data", "persistentVolumeClaim": {"claimName": pvc}},
        ],
    })
}

fn service(owner: &Value, name: &str, labels: Value, selector: Value, ports: Value) -> Value {
    let component = labels["quay-component"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": meta(owner, name, &component, labels),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    })
}

fn service_account(owner: &Value, name: &str, component: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(owner, name, component, json!({}))})
}

fn pvc(owner: &Value, name: &str, component: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": meta(owner, name, component, json!({"quay-component": component})),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}},
    })
}

fn hpa(owner: &Value, name: &str, component: &str, max: i64) -> Value {
    let utilization = |r: &str| json!({"type": "Resource", "resource": {"name": r, "target": {"type": "Utilization", "averageUtilization": 90}}});
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": meta(owner, name, component, json!({})),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("{REG}-{name}")},
            "minReplicas": 2, "maxReplicas": max,
            "metrics": [utilization("cpu"), utilization("memory")],
        },
    })
}

fn conf_sample(owner: &Value, name: &str, component: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": meta(owner, name, component, json!({})),
        "data": {"postgresql.conf.sample": "huge_pages = off\nlogging_collector = on\nlog_filename = 'postgresql-%a.log'\nlog_truncate_on_rotation = on\nlog_rotation_age = 1d\nlog_rotation_size = 0\n"},
    })
}

fn monitoring_role(owner: &Value, name: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": meta(owner, name, "monitoring", json!({})),
        "rules": [{"apiGroups": [""], "resources": ["services", "endpoints", "pods"], "verbs": ["get", "list", "watch"]}],
    })
}

fn monitoring_binding(owner: &Value, name: &str, role: &str, sa: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": meta(owner, name, "monitoring", json!({})),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": format!("{REG}-{role}")},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": "openshift-monitoring"}],
    })
}

/// Every object upstream renders for the all-managed registry on OpenShift, except the ObjectBucketClaim (applied
/// first, its bucket feeds the config).
fn upstream_objects(owner: &Value, keys: &Keys, bucket: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    // §3.3 hashed Secrets.
    let (config_name, config) = hashed_secret(
        owner,
        "quay-config-secret",
        "quay",
        strings(&[("config.yaml", &quay_config(keys, bucket))]),
    );
    let (tls_name, tls) = hashed_secret(owner, "quay-config-tls", "quay", BTreeMap::new());
    let (extra_ca_name, extra_ca) = hashed_secret(owner, "extra-ca-certs", "quay", BTreeMap::new());
    let (proxy_name, proxy) = hashed_secret(
        owner,
        "quay-proxy-config",
        "quay",
        strings(&[
            ("HTTP_PROXY", ""),
            ("HTTPS_PROXY", ""),
            ("NO_PROXY", &server_hostname()),
        ]),
    );
    let (bootstrap_name, bootstrap) = hashed_secret(
        owner,
        "postgres-bootstrap",
        "postgres",
        strings(&[(
            "create-extensions.sh",
            "#!/bin/bash\necho \"attempting to create pg_trgm extension if it does not exist\"\n_psql -d $POSTGRESQL_DATABASE -c 'CREATE EXTENSION IF NOT EXISTS pg_trgm;'\n",
        )]),
    );
    let _ = bootstrap_name;
    out.extend([config, tls, extra_ca, proxy, bootstrap]);
    // §3.5 managed keys, §2.4 / §2.6 database credentials, §2.5 Clair config.
    out.push(secret(
        owner,
        "quay-registry-managed-secret-keys",
        "quay",
        &strings(&[
            ("DATABASE_SECRET_KEY", &keys.database_secret_key),
            ("SECRET_KEY", &keys.secret_key),
            ("DB_URI", &keys.db_uri()),
            ("DB_ROOT_PW", &keys.db_root_pw),
            ("SECURITY_SCANNER_V4_PSK", &keys.psk),
            ("CLAIR_DB_USER", "postgres"),
            ("CLAIR_DB_PASSWORD", &keys.clair_password),
            ("CLAIR_DB_ROOT_PW", &keys.clair_password),
            ("CLAIR_DB_NAME", "postgres"),
        ]),
    ));
    let database = format!("{REG}-quay-database");
    out.push(secret(
        owner,
        "postgres-config-secret",
        "postgres",
        &strings(&[
            ("database-username", &database),
            ("database-password", &keys.db_password),
            ("database-name", &database),
            ("database-root-password", &keys.db_root_pw),
        ]),
    ));
    out.push(secret(
        owner,
        "clairpostgres-config-secret",
        "clairpostgres",
        &strings(&[
            ("database-username", "postgres"),
            ("database-password", &keys.clair_password),
            ("database-name", "postgres"),
            ("database-root-password", &keys.clair_password),
        ]),
    ));
    out.push(secret(
        owner,
        "clair-config-secret",
        "clair",
        &strings(&[
            ("config.yaml", &clair_config(keys)),
            ("01_user_config.yaml", ""),
            ("clair-db-host", &format!("{REG}-clair-postgres")),
            ("clair-db-old-host", &format!("{REG}-clair-postgres-old")),
        ]),
    ));
    // §2.2 quay.
    out.push(service_account(owner, "quay-app", "quay"));
    let mut service_ca = meta(owner, "cluster-service-ca", "quay", json!({}));
    service_ca["annotations"]["service.beta.openshift.io/inject-cabundle"] = json!("true");
    out.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": service_ca}));
    let mut trusted = meta(
        owner,
        "cluster-trusted-ca",
        "quay",
        json!({"config.openshift.io/inject-trusted-cabundle": "true"}),
    );
    trusted["labels"]["config.openshift.io/inject-trusted-cabundle"] = json!("true");
    out.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": trusted, "data": {"ca-bundle.crt": ""}}));
    out.push(service(
        owner,
        "quay-app",
        json!({"quay-component": "quay"}),
        pod_labels("quay-app", true),
        json!([
            {"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"},
            {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "jwtproxy", "port": 8081, "targetPort": 8081, "protocol": "TCP"},
            {"name": "grpc", "port": 55443, "targetPort": 55443, "protocol": "TCP"},
        ]),
    ));
    out.push(deployment(
        owner,
        "quay-app",
        "quay",
        json!({"app": "quay", "quay-component": "quay"}),
        "quay-app",
        true,
        None,
        quay_pod(&config_name, &tls_name, &extra_ca_name, &proxy_name),
        false,
    ));
    // §2.11 mirror.
    let mut mirror_pod = quay_pod(&config_name, &tls_name, &extra_ca_name, &proxy_name);
    mirror_pod["containers"][0]["name"] = json!("quay-mirror");
    mirror_pod["containers"][0]["args"] = json!(["repomirror-nomigrate"]);
    out.push(deployment(
        owner,
        "quay-mirror",
        "mirror",
        json!({"quay-component": "quay-mirror"}),
        "quay-mirror",
        false,
        None,
        mirror_pod,
        false,
    ));
    // §2.4 postgres.
    out.push(service_account(owner, "quay-database", "postgres"));
    out.push(pvc(owner, "quay-postgres-13", "postgres"));
    out.push(conf_sample(owner, "postgres-conf-sample", "postgres"));
    out.push(service(
        owner,
        "quay-database",
        json!({"quay-component": "postgres"}),
        json!({"quay-component": "postgres", "quay-operator/quayregistry": REG}),
        json!([{"name": "postgres", "port": 5432, "targetPort": 5432, "protocol": "TCP"}]),
    ));
    out.push(deployment(
        owner,
        "quay-database",
        "postgres",
        json!({"quay-component": "postgres"}),
        "postgres",
        false,
        Some(1),
        database_pod(
            &format!("{REG}-quay-database"),
            "postgres",
            "quay.io/sclorg/postgresql-13-c9s:latest",
            &format!("{REG}-postgres-config-secret"),
            &format!("{REG}-quay-postgres-13"),
            &format!("{REG}-postgres-conf-sample"),
        ),
        true,
    ));
    // §2.5 clair, §2.6 clairpostgres.
    out.push(service_account(owner, "clair-app", "clair"));
    out.push(service(
        owner,
        "clair-app",
        json!({"quay-component": "clair"}),
        json!({"quay-component": "clair-app", "quay-operator/quayregistry": REG}),
        json!([
            {"name": "clair-http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
            {"name": "clair-introspection", "port": 8089, "targetPort": 8089, "protocol": "TCP"},
        ]),
    ));
    out.push(deployment(
        owner,
        "clair-app",
        "clair",
        json!({"quay-component": "clair-app"}),
        "clair-app",
        false,
        None,
        json!({
            "serviceAccountName": format!("{REG}-clair-app"),
            "containers": [{
                "name": "clair-app", "image": "quay.io/projectquay/clair:4.8.0",
                "env": [{"name": "CLAIR_CONF", "value": "/clair/config.yaml"}, {"name": "CLAIR_MODE", "value": "combo"}],
                "ports": [{"name": "clair-http", "containerPort": 8080}, {"name": "clair-intro", "containerPort": 8089}],
                "volumeMounts": [{"name": "config", "mountPath": "/clair/config.yaml", "subPath": "config.yaml"}],
            }],
            "volumes": [{"name": "config", "secret": {"secretName": format!("{REG}-clair-config-secret")}}],
        }),
        false,
    ));
    out.push(service_account(owner, "clair-postgres", "clairpostgres"));
    out.push(pvc(owner, "clair-postgres-15", "clair-postgres"));
    out.push(conf_sample(
        owner,
        "clair-postgres-conf-sample",
        "clairpostgres",
    ));
    out.push(service(
        owner,
        "clair-postgres",
        json!({"quay-component": "clair-postgres"}),
        json!({"quay-component": "clair-postgres", "quay-operator/quayregistry": REG}),
        json!([{"name": "postgres", "port": 5432, "targetPort": 5432, "protocol": "TCP"}]),
    ));
    out.push(deployment(
        owner,
        "clair-postgres",
        "clairpostgres",
        json!({"quay-component": "clair-postgres"}),
        "clair-postgres",
        false,
        Some(1),
        database_pod(
            &format!("{REG}-clair-postgres"),
            "clair-postgres",
            "quay.io/sclorg/postgresql-15-c9s:latest",
            &format!("{REG}-clairpostgres-config-secret"),
            &format!("{REG}-clair-postgres-15"),
            &format!("{REG}-clair-postgres-conf-sample"),
        ),
        true,
    ));
    // §2.7 redis.
    out.push(service_account(owner, "quay-redis", "redis"));
    out.push(service(
        owner,
        "quay-redis",
        json!({"quay-component": "redis"}),
        json!({"quay-component": "redis", "quay-operator/quayregistry": REG}),
        json!([{"port": 6379, "targetPort": 6379, "protocol": "TCP"}]),
    ));
    out.push(deployment(
        owner,
        "quay-redis",
        "redis",
        json!({"quay-component": "redis"}),
        "redis",
        false,
        Some(1),
        json!({
            "serviceAccountName": format!("{REG}-quay-redis"),
            "containers": [{"name": "redis-master", "image": "quay.io/sclorg/redis-7-c9s:latest",
                            "ports": [{"containerPort": 6379, "protocol": "TCP"}]}],
        }),
        false,
    ));
    // §2.8 HPAs.
    out.push(hpa(owner, "quay-app", "horizontalpodautoscaler", 20));
    out.push(hpa(owner, "clair-app", "clair", 10));
    out.push(hpa(owner, "quay-mirror", "mirror", 20));
    // §2.10 Routes.
    for (name, label, port) in [
        ("quay", "quay-app-route", "http"),
        ("quay-builder", "quay-builder-route", "grpc"),
    ] {
        let mut m = meta(owner, name, "route", json!({"quay-component": label}));
        m["annotations"]["haproxy.router.openshift.io/timeout"] = json!("30m");
        let mut spec = json!({
            "to": {"kind": "Service", "name": format!("{REG}-quay-app")},
            "port": {"targetPort": port},
            "tls": {"termination": "edge", "insecureEdgeTerminationPolicy": "Redirect"},
        });
        if name == "quay" {
            spec["host"] = json!(server_hostname());
        }
        out.push(json!({"apiVersion": "route.openshift.io/v1", "kind": "Route", "metadata": m, "spec": spec}));
    }
    // §8 monitoring.
    let mut metrics = service(
        owner,
        "quay-metrics",
        json!({"quay-component": "monitoring"}),
        pod_labels("quay-app", false),
        json!([{"name": "quay-metrics", "port": 9091, "targetPort": 9091, "protocol": "TCP"}]),
    );
    for (k, v) in [
        ("prometheus.io/scrape", "true"),
        ("prometheus.io/scheme", "http"),
        ("prometheus.io/port", "9091"),
    ] {
        metrics["metadata"]["annotations"][k] = json!(v);
    }
    out.push(metrics);
    out.push(json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
        "metadata": meta(owner, "quay-metrics-monitor", "monitoring", json!({})),
        "spec": {"endpoints": [{"port": "quay-metrics"}], "selector": {"matchLabels": {"quay-component": "monitoring"}}},
    }));
    out.push(monitoring_role(owner, "quay-metrics"));
    out.push(monitoring_binding(
        owner,
        "quay-metrics",
        "quay-metrics",
        "prometheus-k8s",
    ));
    out.push(monitoring_role(owner, "quay-alerts-role"));
    out.push(monitoring_binding(
        owner,
        "quay-alerts-rolebinding",
        "quay-alerts-role",
        "prometheus-operator",
    ));
    out.push(json!({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
        "metadata": meta(owner, "quay-prometheus-rules", "monitoring", json!({"prometheus": "k8s", "role": "alert-rules"})),
        "spec": {"groups": [{"name": "quay-alerts.rules", "rules": [{
            "alert": "QuayPodFrequentlyRestarting",
            "expr": "increase(kube_pod_container_status_restarts_total{pod=~\".*-quay-app-.*\"}[1h]) > 5",
            "for": "10m",
            "labels": {"severity": "warning"},
        }]}]},
    }));
    let mut dashboard = meta(
        owner,
        "grafana-dashboard-quay",
        "monitoring",
        json!({"console.openshift.io/dashboard": "true"}),
    );
    dashboard["namespace"] = json!(GRAFANA_DASHBOARD_NAMESPACE);
    dashboard.as_object_mut().unwrap().remove("ownerReferences");
    out.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": dashboard, "data": {"quay.json": "{}"}}));
    // §2.3 the migration Job of the install, finished.
    let mut job_pod = quay_pod(&config_name, &tls_name, &extra_ca_name, &proxy_name);
    job_pod["containers"][0]["name"] = json!("quay-app-upgrade");
    job_pod["containers"][0]["args"] = json!(["migrate", "head"]);
    job_pod["restartPolicy"] = json!("OnFailure");
    out.push(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": meta(owner, "quay-app-upgrade", "base", json!({"quay-component": "quay-app-upgrade"})),
        "spec": {"template": {"metadata": {"labels": {"quay-component": "quay-app-upgrade"}}, "spec": job_pod}},
    }));
    out
}

fn plural(kind: &str) -> &'static str {
    match kind {
        "Secret" => "secrets",
        "ConfigMap" => "configmaps",
        "ServiceAccount" => "serviceaccounts",
        "Service" => "services",
        "PersistentVolumeClaim" => "persistentvolumeclaims",
        "Deployment" => "deployments",
        "Job" => "jobs",
        "HorizontalPodAutoscaler" => "horizontalpodautoscalers",
        "Route" => "routes",
        "ObjectBucketClaim" => "objectbucketclaims",
        "ServiceMonitor" => "servicemonitors",
        "PrometheusRule" => "prometheusrules",
        "Role" => "roles",
        "RoleBinding" => "rolebindings",
        other => panic!("no plural for {other}"),
    }
}

/// Server-side apply as the upstream operator does: field manager `quay-operator`, force.
async fn apply_as_upstream(client: &Client, object: &Value) {
    let api_version = object["apiVersion"].as_str().unwrap();
    let kind = object["kind"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(group, version, kind),
        plural(kind),
    );
    let namespace = object["metadata"]["namespace"].as_str().unwrap();
    let name = object["metadata"]["name"].as_str().unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    api.patch(
        name,
        &PatchParams::apply("quay-operator").force(),
        &Patch::Apply(object),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {kind} {name} as upstream: {e}"));
}

fn names(sim: &Simulator, plural: &str) -> BTreeSet<String> {
    sim.list("", plural, Some(NS))
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

fn secret_bytes(sim: &Simulator, name: &str) -> BTreeMap<String, String> {
    sim.get("", "secrets", NS, name)
        .and_then(|s| s["data"].as_object().cloned())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// Records every deletion of a Secret, Service or PVC in the namespace, from watches opened before the operator
/// starts.
async fn record_deletions(
    client: &Client,
) -> (Arc<Mutex<Vec<String>>>, Vec<tokio::task::JoinHandle<()>>) {
    let deleted = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(3);
    fn spawn<K>(
        api: Api<K>,
        kind: &'static str,
        deleted: Arc<Mutex<Vec<String>>>,
        ready: tokio::sync::mpsc::Sender<()>,
    ) -> tokio::task::JoinHandle<()>
    where
        K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    {
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(watcher::Event::InitDone) => {
                        let _ = ready.send(()).await;
                    }
                    Ok(watcher::Event::Delete(o)) => deleted
                        .lock()
                        .unwrap()
                        .push(format!("{kind} {}", o.name_any())),
                    _ => {}
                }
            }
        })
    }
    let tasks = vec![
        spawn(
            Api::<Secret>::namespaced(client.clone(), NS),
            "Secret",
            deleted.clone(),
            ready_tx.clone(),
        ),
        spawn(
            Api::<Service>::namespaced(client.clone(), NS),
            "Service",
            deleted.clone(),
            ready_tx.clone(),
        ),
        spawn(
            Api::<PersistentVolumeClaim>::namespaced(client.clone(), NS),
            "PersistentVolumeClaim",
            deleted.clone(),
            ready_tx,
        ),
    ];
    for _ in 0..3 {
        ready_rx.recv().await.expect("deletion watches start");
    }
    (deleted, tasks)
}

/// Available, as this operator reports it: the component conditions are its own (the seeded upstream status has
/// only Available, ComponentsCreated and RolloutBlocked).
fn available(sim: &Simulator) -> bool {
    sim.get("quay.redhat.com", "quayregistries", NS, REG)
        .and_then(|r| r["status"]["conditions"].as_array().cloned())
        .is_some_and(|c| {
            let is_true = |t: &str| c.iter().any(|c| c["type"] == t && c["status"] == "True");
            is_true("Available")
                && is_true("ComponentQuayReady")
                && is_true("ComponentPostgresReady")
        })
}

/// Waits until the simulator has seen no request for `calm` (at most 10 s): the operator has settled.
async fn settle(sim: &Simulator, calm: Duration) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = sim.requests().len();
    loop {
        tokio::time::sleep(calm).await;
        let now = sim.requests().len();
        if now == seen || Instant::now() > deadline {
            return;
        }
        seen = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_over_an_upstream_all_managed_registry_loses_nothing() {
    let sim = Simulator::start(Options::openshift()).await.unwrap();
    sim.install_crd(serde_json::to_value(QuayRegistry::crd()).unwrap())
        .unwrap();
    let client = sim.client();
    for ns in [NS, GRAFANA_DASHBOARD_NAMESPACE, UPSTREAM_NS] {
        sim::create_namespace(&client, ns).await;
    }

    // The user's bundle and the registry as upstream left it: every component listed as managed (upstream wrote
    // them into spec), its finalizer, its status.
    let bundle: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/all-managed/config-bundle.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let bundle: Secret = serde_json::from_value(bundle).unwrap();
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &bundle)
        .await
        .unwrap();
    let components: Vec<Value> = [
        "quay",
        "postgres",
        "clair",
        "redis",
        "horizontalpodautoscaler",
        "objectstorage",
        "route",
        "mirror",
        "monitoring",
        "tls",
        "clairpostgres",
    ]
    .iter()
    .map(|k| json!({"kind": k, "managed": true}))
    .collect();
    let registry: QuayRegistry = serde_json::from_value(json!({
        "apiVersion": "quay.redhat.com/v1", "kind": "QuayRegistry",
        "metadata": {"name": REG, "namespace": NS, "finalizers": ["quay-operator/finalizer"]},
        "spec": {"configBundleSecret": BUNDLE, "components": components},
    }))
    .unwrap();
    let registries: Api<QuayRegistry> = Api::namespaced(client.clone(), NS);
    let registry = registries
        .create(&PostParams::default(), &registry)
        .await
        .unwrap();
    let owner = json!({
        "apiVersion": "quay.redhat.com/v1", "kind": "QuayRegistry",
        "name": REG, "uid": registry.uid().unwrap(),
    });
    let status = json!({"status": {
        "currentVersion": sim::QUAY_VERSION,
        "registryEndpoint": format!("https://{}", server_hostname()),
        "configEditorEndpoint": "",
        "conditions": [
            {"type": "Available", "status": "True", "reason": "HealthChecksPassing", "message": "All components reporting as healthy"},
            {"type": "ComponentsCreated", "status": "True", "reason": "ComponentsCreationSuccess", "message": "All objects created/updated successfully"},
            {"type": "RolloutBlocked", "status": "False", "reason": "ComponentsCreationSuccess", "message": ""},
        ],
    }});
    registries
        .patch_status(REG, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    // The bucket first: its credentials are in upstream's config.yaml.
    let mut obc_meta = meta(
        &owner,
        "quay-datastore",
        "objectstorage",
        json!({"quay-component": "quay-datastore"}),
    );
    obc_meta["labels"]["quay-component"] = json!("quay-datastore");
    let obc = json!({
        "apiVersion": "objectbucket.io/v1alpha1", "kind": "ObjectBucketClaim",
        "metadata": obc_meta,
        "spec": {"generateBucketName": "quay-datastore", "storageClassName": "openshift-storage.noobaa.io",
                 "additionalConfig": {"bucketclass": "noobaa-default-bucket-class"}},
    });
    apply_as_upstream(&client, &obc).await;
    let datastore = format!("{REG}-quay-datastore");
    assert!(
        sim.wait_until(sim::WAIT, || sim
            .get("", "configmaps", NS, &datastore)
            .is_some()
            && sim.get("", "secrets", NS, &datastore).is_some())
            .await,
        "the simulated bucket provisioner bound the claim"
    );
    let cm = sim.get("", "configmaps", NS, &datastore).unwrap();
    let creds = secret_bytes(&sim, &datastore);
    let decode = |k: &str| String::from_utf8(B64.decode(&creds[k]).unwrap()).unwrap();
    let host = cm["data"]["BUCKET_HOST"]
        .as_str()
        .unwrap()
        .replace(".svc", ".svc.cluster.local");
    let host = host.replace(".svc.cluster.local.cluster.local", ".svc.cluster.local");
    let bucket = json!({
        "host": host,
        "bucket_name": cm["data"]["BUCKET_NAME"],
        "access_key": decode("AWS_ACCESS_KEY_ID"),
        "secret_key": decode("AWS_SECRET_ACCESS_KEY"),
    });

    let keys = Keys::new();
    for object in upstream_objects(&owner, &keys, &bucket) {
        apply_as_upstream(&client, &object).await;
    }
    let workloads_ready = || {
        sim.list("apps", "deployments", Some(NS)).iter().all(|d| {
            d["status"]["availableReplicas"].as_i64().unwrap_or(0)
                >= d["spec"]["replicas"].as_i64().unwrap_or(1)
        })
    };
    assert!(
        sim.wait_until(sim::WAIT, workloads_ready).await,
        "upstream's workloads run"
    );

    // What must survive.
    let pvcs_before = names(&sim, "persistentvolumeclaims");
    let services_before = names(&sim, "services");
    let secrets_before = names(&sim, "secrets");
    let managed_keys = format!("{REG}-quay-registry-managed-secret-keys");
    let keys_before = secret_bytes(&sim, &managed_keys);
    let db_before = secret_bytes(&sim, &format!("{REG}-postgres-config-secret"));
    let clair_db_before = secret_bytes(&sim, &format!("{REG}-clairpostgres-config-secret"));
    assert_eq!(pvcs_before.len(), 2, "{pvcs_before:?}");

    // The upstream operator is gone; this one starts.
    let (deleted, watches) = record_deletions(&client).await;
    let operator = sim::start_operator_with(client.clone(), vec![], sim::settings());
    let bundle_labelled = || {
        sim.get("", "secrets", NS, BUNDLE)
            .is_some_and(|s| s["metadata"]["labels"]["quay-operator/config-bundle"] == "true")
    };
    assert!(
        sim.wait_until(Duration::from_secs(60), || bundle_labelled()
            && available(&sim)
            && workloads_ready())
            .await,
        "not converged: {}",
        sim.get("quay.redhat.com", "quayregistries", NS, REG)
            .map(|r| r["status"].to_string())
            .unwrap_or_default()
    );
    settle(&sim, Duration::from_millis(300)).await;
    assert!(available(&sim), "Available after settling");
    operator.abort();
    for watch in &watches {
        watch.abort();
    }

    let deleted = deleted.lock().unwrap().clone();
    let rendered_config = sim
        .get("apps", "deployments", NS, &format!("{REG}-quay-app"))
        .unwrap()["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "QE_K8S_CONFIG_SECRET")
        .and_then(|e| e["value"].as_str().map(str::to_owned))
        .unwrap();
    let superseded_config = |d: &str| {
        d.strip_prefix("Secret ").is_some_and(|n| {
            n.starts_with(&format!("{REG}-quay-config-secret-")) && n != rendered_config
        })
    };
    println!(
        "rendered config Secret: {rendered_config} ({}); deleted: {deleted:?}",
        if secrets_before.contains(&rendered_config) {
            "upstream's name kept"
        } else {
            "a new name"
        }
    );
    let unexpected: Vec<&String> = deleted.iter().filter(|d| !superseded_config(d)).collect();
    assert!(
        unexpected.is_empty(),
        "deleted by the takeover: {unexpected:?}"
    );

    // Nothing renamed: every PVC, Service and Secret is still there under its name, and no new volume appeared.
    assert_eq!(names(&sim, "persistentvolumeclaims"), pvcs_before);
    let services_after = names(&sim, "services");
    assert!(
        services_before.is_subset(&services_after),
        "{services_before:?} ⊄ {services_after:?}"
    );
    let secrets_after = names(&sim, "secrets");
    let missing: Vec<&String> = secrets_before
        .difference(&secrets_after)
        .filter(|n| !superseded_config(&format!("Secret {n}")))
        .collect();
    assert!(missing.is_empty(), "Secrets gone: {missing:?}");
    let database = sim
        .get("apps", "deployments", NS, &format!("{REG}-quay-database"))
        .unwrap();
    let claims: Vec<&str> = database["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .collect();
    assert_eq!(claims, [format!("{REG}-quay-postgres-13")]);

    // The secrets of the data keep their bytes.
    assert_eq!(
        secret_bytes(&sim, &managed_keys),
        keys_before,
        "managed keys changed"
    );
    let db_after = secret_bytes(&sim, &format!("{REG}-postgres-config-secret"));
    assert_eq!(
        db_after.get("database-password"),
        db_before.get("database-password")
    );
    assert_eq!(
        db_after.get("database-root-password"),
        db_before.get("database-root-password")
    );
    let clair_db_after = secret_bytes(&sim, &format!("{REG}-clairpostgres-config-secret"));
    assert_eq!(
        clair_db_after.get("database-password"),
        clair_db_before.get("database-password")
    );
    // The quay config this operator rendered carries the same DB_URI and secret keys.
    let config = secret_bytes(&sim, &rendered_config);
    let config = String::from_utf8(B64.decode(&config["config.yaml"]).unwrap()).unwrap();
    // Same values as upstream's config.yaml (the text may differ: user values are kept as written).
    let ours: Value = serde_saphyr::from_str(&config).unwrap();
    let theirs: Value = serde_saphyr::from_str(&quay_config(&keys, &bucket)).unwrap();
    assert_eq!(ours, theirs, "config.yaml values differ from upstream's");
    assert!(
        config.contains(&keys.db_password),
        "config.yaml keeps the database password"
    );
    assert!(config.contains(&keys.secret_key) && config.contains(&keys.database_secret_key));

    // One field manager: what upstream applied is now owned by this operator under the same name, with no
    // second applier left holding fields.
    let quay_app = sim
        .get("apps", "deployments", NS, &format!("{REG}-quay-app"))
        .unwrap();
    let appliers: BTreeSet<&str> = quay_app["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["operation"] == "Apply")
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(appliers, BTreeSet::from(["quay-operator"]));
    sim.stop().await;
}
