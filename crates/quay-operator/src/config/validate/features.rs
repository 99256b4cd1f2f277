//! Config rules from the Quay 3.11 operator manual ("advanced features"): geo-replication, builders, IPv6,
//! the STS and CloudFront S3 drivers, and read-only mode. Upstream checks none of these; a registry that breaks
//! them deploys and then fails at run time, so they are reported before anything rolls out.

use serde_json::{Map, Value};

use super::{CONFIG_PATH, Facts};
use crate::api::ComponentKind;
use crate::config::{Problem, QuayConfig, Reason, ValidationReport};

/// The storage location the managed objectstorage component configures.
const MANAGED_STORAGE_LOCATION: &str = "local_us";
/// Env override that picks a site's preferred storage location (geo-replication).
const STORAGE_PREFERENCE_ENV: &str = "QUAY_DISTRIBUTED_STORAGE_PREFERENCE";

pub(super) fn check(facts: &Facts<'_>, report: &mut ValidationReport) {
    let Some(config) = facts.config else { return };
    let storage = user_storage(facts, config);
    check_geo_replication(facts, config, storage, report);
    check_storage_location_names(config, storage, report);
    check_storage_preference_env(facts, storage, report);
    if let Some(storage) = storage {
        check_storage_drivers(facts, storage, report);
    }
    check_builders(facts, config, report);
    check_listen_ip_version(config, storage, report);
    check_read_only(facts, config, report);
}

fn error(path: String, message: String) -> Problem {
    Problem::error(Reason::ConfigInvalid, path, message)
}

/// The user's `DISTRIBUTED_STORAGE_CONFIG`, when it is what Quay will use (objectstorage unmanaged).
fn user_storage<'v>(facts: &Facts<'_>, config: &'v QuayConfig) -> Option<&'v Map<String, Value>> {
    if facts.managed(ComponentKind::ObjectStorage) {
        return None;
    }
    config.get("DISTRIBUTED_STORAGE_CONFIG")?.as_object()
}

fn is_true(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The driver name of a location (`[driver, {params}]`).
fn driver(location: &Value) -> Option<&str> {
    location.get(0).and_then(Value::as_str)
}

/// Geo-replication (manual ch. 5.2): every site shares one external database and Redis, each has its own
/// object storage, Clair's database is unmanaged, and Quay needs its own certificate.
fn check_geo_replication(
    facts: &Facts<'_>,
    config: &QuayConfig,
    storage: Option<&Map<String, Value>>,
    report: &mut ValidationReport,
) {
    if !is_true(config.get("FEATURE_STORAGE_REPLICATION")) {
        return;
    }
    let path = format!("{CONFIG_PATH}.FEATURE_STORAGE_REPLICATION");
    let locations = storage.map_or(0, Map::len);
    if storage.is_some() && locations < 2 {
        report.push(Problem::warning(
            Reason::ConfigInvalid,
            path,
            format!(
                "FEATURE_STORAGE_REPLICATION is true but DISTRIBUTED_STORAGE_CONFIG defines {locations} \
                 storage location{}: there is nothing to replicate to",
                if locations == 1 { "" } else { "s" }
            ),
        ));
        return;
    }
    let feature = "geo-replication (FEATURE_STORAGE_REPLICATION: true)";
    for (kind, why) in [
        (
            ComponentKind::ObjectStorage,
            "every site needs its own object storage, configured in DISTRIBUTED_STORAGE_CONFIG",
        ),
        (
            ComponentKind::Postgres,
            "all sites share one external database",
        ),
        (ComponentKind::Redis, "all sites share one external Redis"),
        (
            ComponentKind::ClairPostgres,
            "the registries of all sites must use the same Clair database",
        ),
    ] {
        if facts.managed(kind) {
            report.push(error(
                facts.component_path(kind),
                format!("{feature} requires the {kind} component to be unmanaged: {why}"),
            ));
        }
    }
    if facts.served_tls_pair().is_none() {
        report.push(error(
            facts.component_path(ComponentKind::Tls),
            format!(
                "{feature} requires an SSL/TLS certificate and key: set the tls component to managed: false \
                 and provide ssl.cert and ssl.key in the config bundle (or a tls secretRef)"
            ),
        ));
    }
    for (name, location) in storage.into_iter().flatten() {
        if driver(location) == Some("LocalStorage") {
            report.push(error(
                format!("{CONFIG_PATH}.DISTRIBUTED_STORAGE_CONFIG.{name}"),
                format!(
                    "{feature} does not work with LocalStorage: storage location {name:?} must be object storage \
                     reachable from every site"
                ),
            ));
        }
    }
}

fn defined_list(storage: &Map<String, Value>) -> String {
    storage.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// `DISTRIBUTED_STORAGE_PREFERENCE` and `DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS` name configured locations.
fn check_storage_location_names(
    config: &QuayConfig,
    storage: Option<&Map<String, Value>>,
    report: &mut ValidationReport,
) {
    let Some(storage) = storage else { return };
    for key in [
        "DISTRIBUTED_STORAGE_PREFERENCE",
        "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS",
    ] {
        let Some(value) = config.get(key) else {
            continue;
        };
        let Some(list) = value.as_array() else {
            report.push(error(
                format!("{CONFIG_PATH}.{key}"),
                format!("{key} must be a list of storage location names"),
            ));
            continue;
        };
        for (i, entry) in list.iter().enumerate() {
            let path = format!("{CONFIG_PATH}.{key}[{i}]");
            match entry.as_str() {
                Some(name) if storage.contains_key(name) => {}
                Some(name) => report.push(error(
                    path,
                    format!(
                        "{key} names storage location {name:?} that DISTRIBUTED_STORAGE_CONFIG does not define \
                         (defined: {})",
                        defined_list(storage)
                    ),
                )),
                None => report.push(error(
                    path,
                    format!("{key} must be a list of storage location names"),
                )),
            }
        }
    }
}

/// A `QUAY_DISTRIBUTED_STORAGE_PREFERENCE` env override (geo-replication: one site's preferred storage) must
/// name configured locations.
fn check_storage_preference_env(
    facts: &Facts<'_>,
    storage: Option<&Map<String, Value>>,
    report: &mut ValidationReport,
) {
    let managed_location = [MANAGED_STORAGE_LOCATION.to_owned()];
    let defined: Vec<String> = match storage {
        Some(s) => s.keys().cloned().collect(),
        None if facts.managed(ComponentKind::ObjectStorage) => managed_location.to_vec(),
        None => return,
    };
    for (i, c) in facts.declared().iter().enumerate() {
        if !matches!(c.kind, ComponentKind::Quay | ComponentKind::Mirror) {
            continue;
        }
        let env = c.overrides.as_ref().and_then(|o| o.env.as_ref());
        for (j, var) in env.into_iter().flatten().enumerate() {
            if var.name != STORAGE_PREFERENCE_ENV {
                continue;
            }
            let Some(value) = &var.value else { continue };
            for name in value
                .split(|ch: char| ch == ',' || ch.is_whitespace())
                .filter(|n| !n.is_empty())
            {
                if !defined.iter().any(|d| d == name) {
                    report.push(error(
                        format!("spec.components[{i}].overrides.env[{j}]"),
                        format!(
                            "{STORAGE_PREFERENCE_ENV} override on component {} names storage location {name:?} \
                             that DISTRIBUTED_STORAGE_CONFIG does not define (defined: {})",
                            c.kind,
                            defined.join(", ")
                        ),
                    ));
                }
            }
        }
    }
}

/// Required parameters of the STS and CloudFront S3 drivers (manual ch. 9 and 3.7); CloudFront's signing key
/// must be a file of the bundle.
fn check_storage_drivers(
    facts: &Facts<'_>,
    storage: &Map<String, Value>,
    report: &mut ValidationReport,
) {
    for (name, location) in storage {
        let path = format!("{CONFIG_PATH}.DISTRIBUTED_STORAGE_CONFIG.{name}");
        let (Some(driver), Some(params)) = (driver(location), location.get(1)) else {
            report.push(error(
                path,
                format!(
                    "DISTRIBUTED_STORAGE_CONFIG.{name} must be a list of a storage driver name and its parameters"
                ),
            ));
            continue;
        };
        let required: &[&str] = match driver {
            "STSS3Storage" => &[
                "sts_role_arn",
                "sts_user_access_key",
                "sts_user_secret_key",
                "s3_bucket",
                "storage_path",
            ],
            "CloudFrontedS3Storage" => &[
                "cloudfront_distribution_domain",
                "cloudfront_key_id",
                "cloudfront_privatekey_filename",
                "s3_bucket",
                "storage_path",
            ],
            _ => continue,
        };
        for field in required {
            let present = params
                .get(field)
                .is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
            if !present {
                report.push(error(
                    format!("{path}[1].{field}"),
                    format!("storage location {name:?} ({driver}) requires {field}"),
                ));
            }
        }
        if driver == "CloudFrontedS3Storage" {
            let file = params
                .get("cloudfront_privatekey_filename")
                .and_then(Value::as_str)
                .filter(|f| !f.is_empty());
            if let Some(file) = file
                && let Some(key) = bundle_file_for(file)
                && !facts.input.bundle.contains(key)
            {
                report.push(error(
                            format!("{path}[1].cloudfront_privatekey_filename"),
                            format!(
                                "storage location {name:?} (CloudFrontedS3Storage): cloudfront_privatekey_filename \
                                 {file:?} is not in the config bundle: add the CloudFront signing key to the \
                                 configBundleSecret as {key:?}"
                            ),
                        ));
            }
        }
    }
}

/// The bundle key of a file Quay reads from its config directory (`conf/stack/<key>` or a bare name); `None` for
/// paths elsewhere, which the bundle cannot provide.
fn bundle_file_for(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let rest = rest.strip_prefix("conf/stack/").unwrap_or(rest);
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// Builders (manual ch. 4.2.1): not supported while the operator manages TLS.
fn check_builders(facts: &Facts<'_>, config: &QuayConfig, report: &mut ValidationReport) {
    if is_true(config.get("FEATURE_BUILD_SUPPORT")) && facts.managed(ComponentKind::Tls) {
        report.push(error(
            format!("{CONFIG_PATH}.FEATURE_BUILD_SUPPORT"),
            "FEATURE_BUILD_SUPPORT: builders are not supported while the tls component is managed: set tls to \
             managed: false and provide a certificate valid for SERVER_HOSTNAME and BUILDMAN_HOSTNAME"
                .to_owned(),
        ));
    }
}

/// IPv6 (manual ch. 10): `FEATURE_LISTEN_IP_VERSION` is `IPv4`, `IPv6` or `dual-stack`.
fn check_listen_ip_version(
    config: &QuayConfig,
    storage: Option<&Map<String, Value>>,
    report: &mut ValidationReport,
) {
    let Some(value) = config.get("FEATURE_LISTEN_IP_VERSION") else {
        return;
    };
    let path = format!("{CONFIG_PATH}.FEATURE_LISTEN_IP_VERSION");
    match value.as_str() {
        Some("IPv4" | "dual-stack") => {}
        Some("IPv6") => {
            // Manual ch. 10.2: these endpoints have no IPv6 address.
            for (name, location) in storage.into_iter().flatten() {
                if let Some(d @ ("AzureStorage" | "CloudFrontedS3Storage")) = driver(location) {
                    report.push(Problem::warning(
                        Reason::ConfigInvalid,
                        format!("{CONFIG_PATH}.DISTRIBUTED_STORAGE_CONFIG.{name}"),
                        format!(
                            "storage location {name:?} uses {d}, which does not work in an IPv6 single-stack \
                             environment (FEATURE_LISTEN_IP_VERSION: IPv6)"
                        ),
                    ));
                }
            }
        }
        Some(other) => report.push(error(
            path,
            format!("FEATURE_LISTEN_IP_VERSION must be IPv4, IPv6 or dual-stack, got {other:?}"),
        )),
        None => report.push(error(
            path,
            "FEATURE_LISTEN_IP_VERSION must be a string: IPv4, IPv6 or dual-stack".to_owned(),
        )),
    }
}

/// Read-only mode (manual ch. 6.1): Quay needs a service key registered in the database, whose key ID and
/// private key files are given by the two location keys and provided in the bundle.
fn check_read_only(facts: &Facts<'_>, config: &QuayConfig, report: &mut ValidationReport) {
    let readonly = config
        .get("REGISTRY_STATE")
        .and_then(Value::as_str)
        .is_some_and(|s| s == "readonly");
    if !readonly {
        return;
    }
    for (key, example) in [
        (
            "INSTANCE_SERVICE_KEY_KID_LOCATION",
            "conf/stack/quay-readonly.kid",
        ),
        (
            "INSTANCE_SERVICE_KEY_LOCATION",
            "conf/stack/quay-readonly.pem",
        ),
    ] {
        let path = format!("{CONFIG_PATH}.{key}");
        match config.get(key).and_then(Value::as_str).filter(|v| !v.is_empty()) {
            None => report.push(error(
                path,
                format!(
                    "REGISTRY_STATE: readonly requires {key} (e.g. '{example}') and that file in the config bundle"
                ),
            )),
            Some(location) => {
                if let Some(file) = bundle_file_for(location)
                    && !facts.input.bundle.contains(file)
                {
                        report.push(error(
                            path,
                            format!(
                                "REGISTRY_STATE: readonly: {key} is '{location}' but the config bundle has no \
                                 {file:?}: add the read-only service key file to the configBundleSecret"
                            ),
                        ));
                }
            }
        }
    }
}
