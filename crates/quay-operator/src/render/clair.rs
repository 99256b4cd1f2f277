//! The `clair` component: the Clair v4 security scanner in combo mode, and its generated config.
//!
//! The user's `clair-config.yaml` is deep-merged over the generated config here, in the operator, so the config
//! Clair runs with is visible in one Secret key (`config.yaml`) and a bad user file is reported before rollout.
//! The user's text is also kept as the `01_user_config.yaml` drop-in Clair merges after `config.yaml`: Clair's
//! drop-in merge is a JSON merge patch, which is idempotent, so applying the same document twice changes
//! nothing, and any YAML the operator might read differently from Clair is settled in the user's favour.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, Container, EphemeralVolumeSource, HTTPGetAction, KeyToPath,
    PersistentVolumeClaimTemplate, PodSpec, Probe, SecretVolumeSource, ServiceAccount,
    TCPSocketAction, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Map, Value, json};

use super::context::RenderContext;
use super::meta;
use super::object::DesiredObject;
use super::secrets::opaque_secret;
use super::workload::{
    self, config_map_source, env, mount, named_port, projected_volume, secret_source, service_port,
    sub_path_mount,
};
use crate::api::ComponentKind;
use crate::config::bundle::{CLAIR_CONFIG_YAML, CLAIR_SSL_CRT, CLAIR_SSL_KEY};
use crate::config::hash::short_sha256;
use crate::config::{Reason, RenderError};

/// Key of the merged config in `<reg>-clair-config-secret`.
pub const CONFIG_KEY: &str = "config.yaml";
/// Key of the user's drop-in in `<reg>-clair-config-secret`.
pub const USER_DROP_IN_KEY: &str = "01_user_config.yaml";
/// Pod-template annotation with a hash of the Clair config: the config is mounted with `subPath`, which never
/// sees updates, so a changed config must roll the pods.
pub const CLAIR_CONFIG_HASH_ANNOTATION: &str = "quay.redhat.com/clair-config-hash";
/// Size of the scratch volume layers are unpacked into.
pub const LAYER_STORAGE_SIZE: &str = "20Gi";
/// Name of the ephemeral scratch volume (its size and class follow the clair overrides).
pub const LAYER_STORAGE_VOLUME: &str = "indexer-layer-storage";

const UPDATER_SETS: [&str; 10] = [
    "alpine",
    "aws",
    "clair.cvss",
    "debian",
    "oracle",
    "photon",
    "rhcc",
    "rhel-vex",
    "suse",
    "ubuntu",
];

pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) -> Result<(), RenderError> {
    if !ctx.managed(ComponentKind::Clair) {
        return Ok(());
    }
    let user_text = ctx.input.bundle.clair_config().unwrap_or_default();
    let user_config = parse_user_config(user_text)?;
    let config_yaml = if user_config.is_empty() {
        check_webhook_target(ctx, &user_config)?;
        // Nothing to merge: the generated config is written straight out, without a JSON tree.
        let mut out = String::with_capacity(2048);
        write_generated_config(ctx, &mut out);
        out
    } else {
        to_block_yaml(&merged_config(ctx, &user_config)?)
    };

    let mut data = BTreeMap::from([
        (CONFIG_KEY.to_owned(), config_yaml.into_bytes()),
        (USER_DROP_IN_KEY.to_owned(), user_text.to_vec()),
        (
            "clair-db-host".to_owned(),
            ctx.object_name("clair-postgres").into_bytes(),
        ),
        (
            "clair-db-old-host".to_owned(),
            ctx.object_name("clair-postgres-old").into_bytes(),
        ),
    ]);
    for key in [CLAIR_SSL_CRT, CLAIR_SSL_KEY] {
        if let Some(v) = ctx.input.bundle.get(key) {
            data.insert(key.to_owned(), v.to_vec());
        }
    }
    let config_hash = short_sha256(&[&data[CONFIG_KEY], &data[USER_DROP_IN_KEY]]);
    let secret_name = ctx.object_name("clair-config-secret");
    out.push(DesiredObject::Secret(opaque_secret(
        ctx,
        &secret_name,
        "clair",
        data,
    )));

    out.push(DesiredObject::ServiceAccount(ServiceAccount {
        metadata: meta::object_meta(ctx, "clair-app", "clair"),
        ..Default::default()
    }));
    let selector = meta::selector(ctx, "clair-app");
    out.push(DesiredObject::Service(workload::cluster_ip_service(
        meta::object_meta(ctx, "clair-app", "clair"),
        selector.clone(),
        vec![
            service_port(Some("clair-http"), 80, 8080),
            service_port(Some("clair-introspection"), 8089, 8089),
        ],
    )));
    out.push(DesiredObject::Deployment(Box::new(clair_app(
        ctx,
        &secret_name,
        config_hash,
        selector,
    ))));
    Ok(())
}

/// The user's `clair-config.yaml` as a map (empty when absent or blank). The error never quotes the file: it
/// may hold database passwords.
fn parse_user_config(text: &[u8]) -> Result<Map<String, Value>, RenderError> {
    let invalid = |detail: String| {
        RenderError::new(
            Reason::ComponentCreationFailed,
            "configBundleSecret[clair-config.yaml]",
            format!("{CLAIR_CONFIG_YAML} in configBundleSecret {detail}"),
        )
    };
    let text = std::str::from_utf8(text).map_err(|_| invalid("is not valid UTF-8".to_owned()))?;
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(invalid("must be a YAML mapping".to_owned())),
        Err(e) => Err(invalid(match e.location() {
            Some(at) => format!(
                "is not valid YAML (line {}, column {})",
                at.line(),
                at.column()
            ),
            None => "is not valid YAML".to_owned(),
        })),
    }
}

/// The generated config with the user's config merged over it.
fn merged_config(ctx: &RenderContext<'_>, user: &Map<String, Value>) -> Result<Value, RenderError> {
    check_webhook_target(ctx, user)?;
    let mut config = generated_config(ctx);
    merge_map(&mut config, user);
    Ok(config)
}

/// The notifier's webhook needs a target: the hostname, or the user's own.
fn check_webhook_target(
    ctx: &RenderContext<'_>,
    user: &Map<String, Value>,
) -> Result<(), RenderError> {
    let user_sets_webhook_target = user
        .get("notifier")
        .and_then(|n| n.get("webhook"))
        .and_then(|w| w.get("target"))
        .is_some_and(|t| !t.is_null());
    if ctx.server_hostname.is_empty() && !user_sets_webhook_target {
        return Err(RenderError::new(
            Reason::ComponentCreationFailed,
            "configBundleSecret[config.yaml].SERVER_HOSTNAME",
            "cannot configure managed security scanner, SERVER_HOSTNAME is not set anywhere: set \
             SERVER_HOSTNAME in config.yaml (or manage the route component on OpenShift), or mark clair \
             unmanaged",
        ));
    }
    Ok(())
}

/// The connection string of the managed Clair database; `None` without one (the user's config supplies the
/// connstrings, validation requires at least one).
fn managed_connstring(ctx: &RenderContext<'_>) -> Option<String> {
    let keys = ctx.input.managed_keys;
    ctx.managed(ComponentKind::ClairPostgres).then(|| {
        let pool_max_conns = if ctx.managed(ComponentKind::HorizontalPodAutoscaler) {
            33
        } else {
            10
        };
        format!(
            "host={} port=5432 dbname={} user={} password={} sslmode=disable pool_max_conns={pool_max_conns}",
            ctx.object_name("clair-postgres"),
            keys.clair_db_name().unwrap_or_default(),
            keys.clair_db_user().unwrap_or_default(),
            keys.clair_db_password().unwrap_or_default(),
        )
    })
}

/// Writes what `to_block_yaml(&generated_config(ctx))` writes, without building the tree (a hundred-odd small
/// allocations per render). A unit test holds the two to the same text.
fn write_generated_config(ctx: &RenderContext<'_>, out: &mut String) {
    let keys = ctx.input.managed_keys;
    let connstring = managed_connstring(ctx);
    let push_connstring = |out: &mut String| {
        if let Some(c) = &connstring {
            out.push_str("  connstring: ");
            push_json_string(out, c);
            out.push('\n');
        }
    };
    out.push_str(
        "http_listen_addr: \":8080\"\nlog_level: \"info\"\nindexer:\n  scanlock_retry: 10\n  \
         layer_scan_concurrency: 5\n  migrations: true\n",
    );
    push_connstring(out);
    out.push_str("matcher:\n  migrations: true\n");
    push_connstring(out);
    out.push_str(
        "notifier:\n  migrations: true\n  delivery_interval: \"1m\"\n  poll_interval: \"5m\"\n  webhook:\n    \
         target: ",
    );
    push_json_string(
        out,
        &format!("https://{}/secscan/notification", ctx.server_hostname),
    );
    out.push_str("\n    callback: ");
    push_json_string(
        out,
        &format!(
            "http://{}/notifier/api/v1/notifications",
            ctx.object_name("clair-app")
        ),
    );
    out.push('\n');
    push_connstring(out);
    out.push_str("auth:\n  psk:\n    key: ");
    push_json_string(out, keys.security_scanner_psk().unwrap_or_default());
    out.push_str(
        "\n    iss:\n      - \"quay\"\n      - \"clairctl\"\nmetrics:\n  name: \"prometheus\"\nupdaters:\n  \
         sets:\n",
    );
    for set in UPDATER_SETS {
        out.push_str("    - ");
        push_json_string(out, set);
        out.push('\n');
    }
    out.push_str("  config:\n    rhel-vex:\n      ignore_unpatched: true\n");
}

/// A string as JSON writes it (what [`write_scalar`] writes for a string value).
fn push_json_string(out: &mut String, s: &str) {
    if s.chars().any(|c| c < ' ' || c == '"' || c == '\\') {
        out.push_str(&Value::String(s.to_owned()).to_string());
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

/// The Clair config the operator generates.
fn generated_config(ctx: &RenderContext<'_>) -> Value {
    let keys = ctx.input.managed_keys;
    let connstring = managed_connstring(ctx);
    let with_connstring = |mut section: Value| {
        if let (Some(c), Some(map)) = (&connstring, section.as_object_mut()) {
            map.insert("connstring".to_owned(), json!(c));
        }
        section
    };
    json!({
        "http_listen_addr": ":8080",
        "log_level": "info",
        "indexer": with_connstring(json!({
            "scanlock_retry": 10,
            "layer_scan_concurrency": 5,
            "migrations": true,
        })),
        "matcher": with_connstring(json!({"migrations": true})),
        "notifier": with_connstring(json!({
            "migrations": true,
            "delivery_interval": "1m",
            "poll_interval": "5m",
            "webhook": {
                "target": format!("https://{}/secscan/notification", ctx.server_hostname),
                "callback": format!("http://{}/notifier/api/v1/notifications", ctx.object_name("clair-app")),
            },
        })),
        "auth": {"psk": {
            "key": keys.security_scanner_psk().unwrap_or_default(),
            "iss": ["quay", "clairctl"],
        }},
        "metrics": {"name": "prometheus"},
        "updaters": {
            "sets": UPDATER_SETS,
            "config": {"rhel-vex": {"ignore_unpatched": true}},
        },
    })
}

/// JSON merge patch (RFC 7396), the semantics of Clair's drop-ins: maps merge recursively, anything else in
/// the patch replaces the target, `null` removes a key. Idempotent: merging the same patch twice is a no-op.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(patch) => merge_map(target, patch),
        other => *target = other.clone(),
    }
}

fn merge_map(target: &mut Value, patch: &Map<String, Value>) {
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let target = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// Writes a JSON value as a block-style YAML document. Strings (and keys that are not plain identifiers) are
/// written JSON-quoted, which YAML 1.1 and 1.2 read identically, so no value can change type on the way
/// (`yes`, `0443`, `:8080`). Much cheaper than a general YAML serializer, and the Secret stays readable.
pub fn to_block_yaml(value: &Value) -> String {
    let mut out = String::with_capacity(2048);
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_list(&mut out, items, 0),
        scalar => {
            write_scalar(&mut out, scalar);
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &Map<String, Value>, indent: usize) {
    for (key, value) in map {
        push_indent(out, indent);
        write_key(out, key);
        out.push(':');
        write_nested(out, value, indent);
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        push_indent(out, indent);
        out.push('-');
        write_nested(out, item, indent);
    }
}

/// The value after `key:` or `-`: inline when scalar or empty, else on the following lines, indented.
fn write_nested(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_list(out, items, indent + 2);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar);
            out.push('\n');
        }
    }
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn write_key(out: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !["y", "n", "yes", "no", "on", "off", "true", "false", "null"]
            .iter()
            .any(|word| key.eq_ignore_ascii_case(word));
    if plain {
        out.push_str(key);
    } else {
        out.push_str(&Value::String(key.to_owned()).to_string());
    }
}

fn write_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        // JSON's own rendering of strings, numbers, booleans and null is valid YAML.
        other => write!(out, "{other}").expect("writing to a String cannot fail"),
    }
}

fn clair_app(
    ctx: &RenderContext<'_>,
    config_secret: &str,
    config_hash: String,
    selector: BTreeMap<String, String>,
) -> k8s_openapi::api::apps::v1::Deployment {
    let mut clair_env = vec![
        env("CLAIR_CONF", "/clair/config.yaml"),
        env("CLAIR_MODE", "combo"),
    ];
    clair_env.extend(workload::proxy_env(ctx));
    let tcp = |port: IntOrString| TCPSocketAction { host: None, port };
    let mut mounts = vec![
        sub_path_mount("config", "/clair/config.yaml", CONFIG_KEY, false),
        sub_path_mount(
            "config",
            "/clair/config.yaml.d/01_user_config.yaml",
            USER_DROP_IN_KEY,
            false,
        ),
        mount("certificates", "/var/run/certs", None),
        mount(LAYER_STORAGE_VOLUME, "/var/tmp", None),
    ];
    let mut volumes = vec![
        Volume {
            name: "config".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(config_secret.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        projected_volume(
            "certificates",
            vec![
                secret_source(&ctx.names.extra_ca_secret, false),
                secret_source(&ctx.names.tls_secret, false),
                config_map_source(&ctx.object_name("cluster-service-ca")),
                config_map_source(&ctx.object_name("cluster-trusted-ca")),
            ],
        ),
        Volume {
            name: LAYER_STORAGE_VOLUME.to_owned(),
            ephemeral: Some(EphemeralVolumeSource {
                volume_claim_template: Some(PersistentVolumeClaimTemplate {
                    metadata: None,
                    spec: workload::pvc_spec(LAYER_STORAGE_SIZE),
                }),
            }),
            ..Default::default()
        },
    ];
    // The trusted CA bundle replaces the image's system bundle; only worth it once OpenShift filled it in.
    // Mounting an empty bundle (upstream, on plain Kubernetes) leaves Clair's updaters unable to verify TLS.
    let trusted_ca_known = ctx
        .input
        .cluster
        .cluster_trusted_ca
        .as_deref()
        .is_some_and(|ca| !ca.trim().is_empty());
    if trusted_ca_known {
        mounts.insert(
            0,
            mount(
                "cluster-trusted-ca",
                "/etc/pki/ca-trust/extracted/pem",
                Some(true),
            ),
        );
        volumes.insert(
            0,
            Volume {
                name: "cluster-trusted-ca".to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: ctx.object_name("cluster-trusted-ca"),
                    items: Some(vec![KeyToPath {
                        key: "ca-bundle.crt".to_owned(),
                        path: "tls-ca-bundle.pem".to_owned(),
                        mode: None,
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
    }
    let clair = Container {
        image_pull_policy: Some("IfNotPresent".to_owned()),
        env: Some(clair_env),
        ports: Some(vec![
            named_port("clair-http", 8080),
            named_port("clair-intro", 8089),
        ]),
        startup_probe: Some(Probe {
            tcp_socket: Some(tcp(IntOrString::String("clair-intro".to_owned()))),
            period_seconds: Some(10),
            failure_threshold: Some(300),
            ..Default::default()
        }),
        readiness_probe: Some(Probe {
            tcp_socket: Some(tcp(IntOrString::Int(8080))),
            ..Default::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".to_owned()),
                port: IntOrString::String("clair-intro".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        resources: Some(workload::resources(
            ("2000m", "2Gi"),
            Some(("4000m", "16Gi")),
        )),
        volume_mounts: Some(mounts),
        ..workload::container("clair-app", &ctx.images.clair)
    };
    let pod = PodSpec {
        service_account_name: Some(ctx.object_name("clair-app")),
        affinity: Some(workload::spread_over_nodes("clair-app")),
        restart_policy: Some("Always".to_owned()),
        containers: vec![clair],
        volumes: Some(volumes),
        ..Default::default()
    };
    let mut deployment = workload::deployment(
        workload::labelled_meta(ctx, "clair-app", "clair-app", "clair"),
        selector,
        None,
        None,
        pod,
    );
    if let Some(template_meta) = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.metadata.as_mut())
    {
        template_meta
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(CLAIR_CONFIG_HASH_ANNOTATION.to_owned(), config_hash);
    }
    deployment
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::postgres::secret_text;
    use crate::render::testing::{Fixture, deployment, object};

    fn clair_secret(fixture: &Fixture) -> k8s_openapi::api::core::v1::Secret {
        let rendered = fixture.render();
        match object(&rendered, "Secret", "reg-clair-config-secret") {
            DesiredObject::Secret(s) => s,
            _ => unreachable!(),
        }
    }

    fn clair_config(fixture: &Fixture) -> Value {
        let text = secret_text(&clair_secret(fixture), CONFIG_KEY);
        serde_saphyr::from_str(&text).unwrap()
    }

    #[test]
    fn clair_user_config_is_deep_merged() {
        let user = "log_level: debug\nindexer:\n  layer_scan_concurrency: 10\n  scanner:\n    package:\n      rhel: {x: 1}\nupdaters:\n  sets: [rhel-vex]\nnotifier:\n  webhook: null\n";
        let fixture = Fixture::new().bundle_file("clair-config.yaml", user);
        let config = clair_config(&fixture);
        assert_eq!(config["log_level"], "debug");
        // Maps merge: the generated indexer keys stay next to the user's.
        assert_eq!(config["indexer"]["layer_scan_concurrency"], 10);
        assert_eq!(config["indexer"]["scanlock_retry"], 10);
        assert!(
            config["indexer"]["connstring"]
                .as_str()
                .unwrap()
                .starts_with("host=reg-clair-postgres ")
        );
        assert_eq!(config["indexer"]["scanner"]["package"]["rhel"]["x"], 1);
        // Lists are replaced, null removes.
        assert_eq!(config["updaters"]["sets"], json!(["rhel-vex"]));
        assert_eq!(
            config["updaters"]["config"]["rhel-vex"]["ignore_unpatched"],
            true
        );
        assert!(config["notifier"].get("webhook").is_none());
        // The user's text is kept as the drop-in, byte for byte.
        assert_eq!(secret_text(&clair_secret(&fixture), USER_DROP_IN_KEY), user);
    }

    #[test]
    fn generated_config_is_written_as_the_tree_would_be() {
        let fixtures = [
            Fixture::new(),
            Fixture::new().component(ComponentKind::ClairPostgres, false, None),
            Fixture::new().component(ComponentKind::HorizontalPodAutoscaler, false, None),
            Fixture::new().config_line("SERVER_HOSTNAME: \"q.example.com\\\\x\""),
        ];
        for fixture in fixtures {
            fixture.with_context(|ctx| {
                let mut direct = String::new();
                write_generated_config(ctx, &mut direct);
                assert_eq!(direct, to_block_yaml(&generated_config(ctx)));
            });
        }
    }

    #[test]
    fn merging_the_drop_in_again_changes_nothing() {
        let user: Value = json!({"indexer": {"a": 1, "b": null}, "x": [1, 2], "s": "v"});
        let mut once = json!({"indexer": {"b": 2, "c": 3}, "x": [3]});
        merge_patch(&mut once, &user);
        let mut twice = once.clone();
        merge_patch(&mut twice, &user);
        assert_eq!(once, twice);
        assert_eq!(
            once,
            json!({"indexer": {"c": 3, "a": 1}, "x": [1, 2], "s": "v"})
        );
    }

    #[test]
    fn block_yaml_reads_back_as_the_same_value() {
        let value = json!({
            "plain": "text",
            "colon": ":8080",
            "yes": "yes",
            "octal": "0443",
            "multi": "line one\nline \"two\"",
            "unicode": "caf\u{e9}",
            "num": 1.5,
            "int": -3,
            "flag": false,
            "nothing": null,
            "empty_map": {},
            "empty_list": [],
            "odd key: #1": 1,
            "nested": {"list": [{"a": 1, "b": [1, 2]}, [3], "s"], "deeper": {"x": {"y": "z"}}},
        });
        let yaml = to_block_yaml(&value);
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, value, "{yaml}");
    }

    #[test]
    fn generated_clair_config_matches_upstream_shape() {
        let fixture = Fixture::new();
        let config = clair_config(&fixture);
        assert_eq!(config["http_listen_addr"], ":8080");
        assert_eq!(
            config["notifier"]["webhook"]["target"],
            "https://reg-quay-ns.apps.example.com/secscan/notification"
        );
        assert_eq!(
            config["notifier"]["webhook"]["callback"],
            "http://reg-clair-app/notifier/api/v1/notifications"
        );
        assert_eq!(
            config["auth"]["psk"]["key"],
            fixture.keys.security_scanner_psk().unwrap()
        );
        assert_eq!(config["updaters"]["sets"].as_array().unwrap().len(), 10);
        let secret = clair_secret(&fixture);
        assert_eq!(secret_text(&secret, USER_DROP_IN_KEY), "");
        assert_eq!(secret_text(&secret, "clair-db-host"), "reg-clair-postgres");
    }

    #[test]
    fn clair_pool_is_33_with_managed_hpa_else_10() {
        let with_hpa = clair_config(&Fixture::new());
        assert!(
            with_hpa["matcher"]["connstring"]
                .as_str()
                .unwrap()
                .ends_with("pool_max_conns=33")
        );
        let without = clair_config(&Fixture::new().component(
            ComponentKind::HorizontalPodAutoscaler,
            false,
            None,
        ));
        assert!(
            without["matcher"]["connstring"]
                .as_str()
                .unwrap()
                .ends_with("pool_max_conns=10")
        );
    }

    #[test]
    fn unmanaged_clair_database_leaves_connstrings_to_the_user() {
        let fixture = Fixture::new()
            .component(ComponentKind::ClairPostgres, false, None)
            .bundle_file(
                "clair-config.yaml",
                "indexer:\n  connstring: host=db.example.com\n",
            );
        let config = clair_config(&fixture);
        assert_eq!(config["indexer"]["connstring"], "host=db.example.com");
        assert!(config["matcher"].get("connstring").is_none());
    }

    #[test]
    fn unparsable_clair_config_blocks_rollout_without_echoing_it() {
        let err = Fixture::new()
            .bundle_file(
                "clair-config.yaml",
                "indexer:\n  connstring: password=hunter2\n   bad: [\n",
            )
            .try_render()
            .unwrap_err();
        // Validation reports it first, with upstream's reason for clair-config.yaml parse errors.
        assert_eq!(err.reason(), Reason::ConfigInvalid);
        assert!(
            err.message().contains("clair-config.yaml"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains("hunter2"));
        let err = Fixture::new()
            .bundle_file("clair-config.yaml", "- a\n- b\n")
            .try_render()
            .unwrap_err();
        assert!(err.message().contains("must be a YAML mapping"));
    }

    #[test]
    fn missing_server_hostname_blocks_rollout_with_managed_clair() {
        let err = Fixture::new().kubernetes().try_render().unwrap_err();
        assert_eq!(err.reason(), Reason::ComponentCreationFailed);
        assert!(
            err.message()
                .contains("SERVER_HOSTNAME is not set anywhere")
        );
        // The user's own webhook target makes the hostname unnecessary.
        assert!(
            Fixture::new()
                .kubernetes()
                .bundle_file(
                    "clair-config.yaml",
                    "notifier:\n  webhook:\n    target: https://hooks.example.com/\n"
                )
                .try_render()
                .is_ok()
        );
    }

    #[test]
    fn clair_pods_roll_when_the_clair_config_changes() {
        let hash = |f: &Fixture| {
            deployment(&f.render(), "reg-clair-app")
                .spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()[CLAIR_CONFIG_HASH_ANNOTATION]
                .clone()
        };
        let a = hash(&Fixture::new());
        let b = hash(&Fixture::new().bundle_file("clair-config.yaml", "log_level: debug\n"));
        assert_ne!(a, b);
        assert_eq!(a, hash(&Fixture::new()));
    }

    #[test]
    fn trusted_ca_bundle_is_mounted_only_once_openshift_filled_it() {
        let volumes = |f: &Fixture| -> Vec<String> {
            deployment(&f.render(), "reg-clair-app")
                .spec
                .unwrap()
                .template
                .spec
                .unwrap()
                .volumes
                .unwrap()
                .into_iter()
                .map(|v| v.name)
                .collect()
        };
        assert!(!volumes(&Fixture::new()).contains(&"cluster-trusted-ca".to_owned()));
        let mut filled = Fixture::new();
        filled.cluster.cluster_trusted_ca = Some("-----BEGIN CERTIFICATE-----\n".to_owned());
        assert!(volumes(&filled).contains(&"cluster-trusted-ca".to_owned()));
    }
}
