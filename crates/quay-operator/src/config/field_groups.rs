//! Quay config field groups: which keys belong to which component, the base defaults, and what each managed
//! component writes into `config.yaml` (overwriting the user's values for those keys, as upstream does).

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::api::ComponentKind;
use crate::render::context::RenderContext;

use super::QuayConfig;
use super::quay_config::emit_entry;

/// Keys whose presence in the user's `config.yaml` means "the user configures this component".
pub fn field_group_keys(kind: ComponentKind) -> &'static [&'static str] {
    match kind {
        ComponentKind::Postgres => &["DB_CONNECTION_ARGS", "DB_URI"],
        ComponentKind::Clair => &[
            "FEATURE_SECURITY_SCANNER",
            "SECURITY_SCANNER_ENDPOINT",
            "SECURITY_SCANNER_INDEXING_INTERVAL",
            "SECURITY_SCANNER_NOTIFICATIONS",
            "SECURITY_SCANNER_V4_ENDPOINT",
            "SECURITY_SCANNER_V4_NAMESPACE_WHITELIST",
        ],
        ComponentKind::Redis => &["BUILDLOGS_REDIS", "USER_EVENTS_REDIS", "PULL_METRICS_REDIS"],
        ComponentKind::ObjectStorage => &[
            "DISTRIBUTED_STORAGE_CONFIG",
            "DISTRIBUTED_STORAGE_PREFERENCE",
            "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS",
            "FEATURE_STORAGE_REPLICATION",
        ],
        ComponentKind::Route => &[
            "EXTERNAL_TLS_TERMINATION",
            "PREFERRED_URL_SCHEME",
            "SERVER_HOSTNAME",
        ],
        ComponentKind::Mirror => &[
            "FEATURE_REPO_MIRROR",
            "REPO_MIRROR_INTERVAL",
            "REPO_MIRROR_SERVER_HOSTNAME",
            "REPO_MIRROR_TLS_VERIFY",
        ],
        _ => &[],
    }
}

/// Upstream's `BaseQuayConfig`: set only where the user did not.
pub fn base_defaults(redhat_branding: bool) -> Vec<(&'static str, Value)> {
    let (title, logo) = if redhat_branding {
        (
            "Red Hat Quay",
            "/static/img/RH_Logo_Quay_Black_UX-horizontal.svg",
        )
    } else {
        ("Quay", "/static/img/quay-horizontal-color.svg")
    };
    vec![
        ("SETUP_COMPLETE", json!(true)),
        ("FEATURE_MAILING", json!(false)),
        ("REGISTRY_TITLE", json!(title)),
        ("REGISTRY_TITLE_SHORT", json!(title)),
        ("AUTHENTICATION_TYPE", json!("Database")),
        ("ENTERPRISE_LOGO_URL", json!(logo)),
        ("DEFAULT_TAG_EXPIRATION", json!("2w")),
        ("ALLOW_PULLS_WITHOUT_STRICT_LOGGING", json!(false)),
        ("TAG_EXPIRATION_OPTIONS", json!(["2w"])),
        ("TEAM_RESYNC_STALE_TIME", json!("60m")),
        ("FEATURE_DIRECT_LOGIN", json!(true)),
        ("FEATURE_BUILD_SUPPORT", json!(false)),
        ("TESTING", json!(false)),
    ]
}

/// A base default: key, value and the entry's `config.yaml` text.
type PresetEntry = (&'static str, Value, String);

/// Entries with their `config.yaml` text.
fn with_yaml(entries: Vec<(&'static str, Value)>) -> Vec<PresetEntry> {
    entries
        .into_iter()
        .map(|(key, value)| {
            let text = emit_entry(key, &value);
            (key, value, text)
        })
        .collect()
}

/// [`base_defaults`] with the YAML of each entry, emitted once per process.
fn base_default_entries(redhat_branding: bool) -> &'static [PresetEntry] {
    static ENTRIES: LazyLock<[Vec<PresetEntry>; 2]> = LazyLock::new(|| {
        [false, true].map(|redhat_branding| with_yaml(base_defaults(redhat_branding)))
    });
    &ENTRIES[usize::from(redhat_branding)]
}

/// The constant part of the field group a managed component writes into `config.yaml`.
fn managed_constants(kind: ComponentKind) -> Vec<(&'static str, Value)> {
    match kind {
        ComponentKind::Postgres => vec![(
            "DB_CONNECTION_ARGS",
            json!({"autorollback": true, "threadlocals": true}),
        )],
        ComponentKind::Clair => vec![
            ("FEATURE_SECURITY_SCANNER", json!(true)),
            ("FEATURE_SECURITY_NOTIFICATIONS", json!(true)),
            ("SECURITY_SCANNER_INDEXING_INTERVAL", json!(30)),
            ("SECURITY_SCANNER_V4_NAMESPACE_WHITELIST", json!(["admin"])),
        ],
        ComponentKind::ObjectStorage => vec![
            ("FEATURE_PROXY_STORAGE", json!(true)),
            ("FEATURE_STORAGE_REPLICATION", json!(false)),
            ("DISTRIBUTED_STORAGE_PREFERENCE", json!(["local_us"])),
            ("DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS", json!(["local_us"])),
        ],
        ComponentKind::Route => vec![("PREFERRED_URL_SCHEME", json!("https"))],
        ComponentKind::Mirror => vec![
            ("FEATURE_REPO_MIRROR", json!(true)),
            ("REPO_MIRROR_INTERVAL", json!(30)),
            ("REPO_MIRROR_TLS_VERIFY", json!(true)),
        ],
        _ => Vec::new(),
    }
}

/// [`managed_constants`] with the YAML of each entry, emitted once per process (like the base defaults).
fn managed_constant_entries(kind: ComponentKind) -> &'static [PresetEntry] {
    static ENTRIES: LazyLock<Vec<(ComponentKind, Vec<PresetEntry>)>> = LazyLock::new(|| {
        ComponentKind::ALL
            .into_iter()
            .map(|kind| (kind, with_yaml(managed_constants(kind))))
            .collect()
    });
    ENTRIES
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, entries)| entries.as_slice())
        .unwrap_or_default()
}

/// The part of the field group a managed component writes into `config.yaml` that depends on the registry:
/// values from the managed keys, the cluster (bucket) and the derived hostname. The rest is [`managed_constants`].
fn managed_variables(ctx: &RenderContext<'_>, kind: ComponentKind) -> Vec<(&'static str, Value)> {
    let keys = ctx.input.managed_keys;
    match kind {
        ComponentKind::Postgres => vec![("DB_URI", json!(keys.db_uri().unwrap_or_default()))],
        ComponentKind::Redis => {
            let redis = json!({"host": ctx.object_name("quay-redis"), "port": 6379});
            vec![
                ("BUILDLOGS_REDIS", redis.clone()),
                ("USER_EVENTS_REDIS", redis),
            ]
        }
        ComponentKind::Clair => vec![
            (
                "SECURITY_SCANNER_V4_ENDPOINT",
                json!(format!(
                    "http://{}.{}.svc.cluster.local",
                    ctx.object_name("clair-app"),
                    ctx.namespace
                )),
            ),
            (
                "SECURITY_SCANNER_V4_PSK",
                json!(keys.security_scanner_psk().unwrap_or_default()),
            ),
        ],
        ComponentKind::ObjectStorage => {
            let bucket = ctx.input.cluster.object_bucket.clone().unwrap_or_default();
            let hostname = cluster_local_host(&bucket.host);
            vec![(
                "DISTRIBUTED_STORAGE_CONFIG",
                json!({"local_us": ["RHOCSStorage", {
                    "hostname": hostname,
                    "port": bucket.port.unwrap_or(443),
                    "is_secure": true,
                    "storage_path": "/datastorage/registry",
                    "access_key": bucket.access_key,
                    "secret_key": bucket.secret_key,
                    "bucket_name": bucket.bucket_name,
                }]}),
            )]
        }
        ComponentKind::Route => vec![
            ("SERVER_HOSTNAME", json!(ctx.server_hostname)),
            ("EXTERNAL_TLS_TERMINATION", json!(!ctx.quay_serves_tls())),
        ],
        _ => Vec::new(),
    }
}

/// In-cluster bucket hosts are made fully qualified (`.svc` → `.svc.cluster.local`).
fn cluster_local_host(host: &str) -> String {
    if host.contains(".svc") && !host.contains(".svc.cluster.local") {
        host.replacen(".svc", ".svc.cluster.local", 1)
    } else {
        host.to_owned()
    }
}

/// Builds the `config.yaml` Quay runs with: the user's config, secrets from the managed keys where the user set
/// none, base defaults, the TLS profile, then each managed component's field group (which wins).
pub fn merged_quay_config(ctx: &RenderContext<'_>) -> QuayConfig {
    let mut config = ctx.quay_config.clone();
    let keys = ctx.input.managed_keys;
    for (key, value) in [
        ("DATABASE_SECRET_KEY", keys.database_secret_key()),
        ("SECRET_KEY", keys.secret_key()),
    ] {
        let user_set = config.get_str(key).is_some_and(|v| !v.is_empty());
        if !user_set {
            config.set(key, json!(value.unwrap_or_default()));
        }
    }
    for (key, value, text) in base_default_entries(ctx.input.settings.redhat_branding) {
        config.set_default_preset(key, value, text);
    }
    let user_tls_settings = config.contains("SSL_PROTOCOLS") || config.contains("SSL_CIPHERS");
    if let Some((protocols, ciphers)) =
        crate::config::validate::tls_profile_settings(ctx).filter(|_| !user_tls_settings)
    {
        config.set("SSL_PROTOCOLS", json!(protocols));
        config.set("SSL_CIPHERS", json!(ciphers));
    }
    for component in &ctx.components {
        if component.managed {
            for (key, value, text) in managed_constant_entries(component.kind) {
                config.set_preset(key, value, text);
            }
            for (key, value) in managed_variables(ctx, component.kind) {
                config.set(key, value);
            }
        }
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preset_base_defaults_write_what_set_defaults_write() {
        for redhat_branding in [false, true] {
            // A user value that wins over a default, and user keys sorted before and among the defaults.
            let user = "FEATURE_MAILING: true\nA_USER_KEY: [x]\nSERVER_HOSTNAME: q.example.com\n";
            let mut preset = QuayConfig::parse(user).unwrap();
            let mut set = preset.clone();
            for (key, value, text) in base_default_entries(redhat_branding) {
                preset.set_default_preset(key, value, text);
            }
            for (key, value) in base_defaults(redhat_branding) {
                set.set_default(key, value);
            }
            set.set("DB_URI", json!("postgresql://u:p@h/db"));
            preset.set("DB_URI", json!("postgresql://u:p@h/db"));
            assert_eq!(preset.to_yaml(), set.to_yaml());
            assert_eq!(preset.to_value(), set.to_value());
        }
    }

    #[test]
    fn preset_managed_constants_write_what_set_writes() {
        // User values the field groups overwrite, and user keys sorted before, among and after them.
        let user = "A_USER_KEY: [x]\nFEATURE_REPO_MIRROR: false\nDB_CONNECTION_ARGS: {a: 1}\n\
                    PREFERRED_URL_SCHEME: http\nZ_KEY: 1\n";
        let mut preset = QuayConfig::parse(user).unwrap();
        let mut set = preset.clone();
        for kind in ComponentKind::ALL {
            for (key, value, text) in managed_constant_entries(kind) {
                preset.set_preset(key, value, text);
            }
            for (key, value) in managed_constants(kind) {
                set.set(key, value);
            }
        }
        assert_eq!(managed_constant_entries(ComponentKind::Clair).len(), 4);
        set.set("DB_URI", json!("postgresql://u:p@h/db"));
        preset.set("DB_URI", json!("postgresql://u:p@h/db"));
        assert_eq!(preset.to_yaml(), set.to_yaml());
        assert_eq!(preset.to_value(), set.to_value());
    }

    #[test]
    fn svc_hosts_become_cluster_local() {
        assert_eq!(
            cluster_local_host("s3.openshift-storage.svc"),
            "s3.openshift-storage.svc.cluster.local"
        );
        assert_eq!(
            cluster_local_host("s3.ns.svc.cluster.local"),
            "s3.ns.svc.cluster.local"
        );
        assert_eq!(cluster_local_host("s3.amazonaws.com"), "s3.amazonaws.com");
    }
}
