//! Config checks upstream makes on every reconcile: `config.yaml` parses, host settings have the right types,
//! and each component is configured by exactly one side (upstream `hasNecessaryConfig`).

use serde_json::Value;

use super::{CONFIG_PATH, Facts};
use crate::api::ComponentKind;
use crate::config::bundle::{CLAIR_CONFIG_YAML, SSL_CERT, SSL_KEY};
use crate::config::field_groups::field_group_keys;
use crate::config::{Problem, Reason, ValidationReport};

/// `config.yaml` must parse (the raw parser message), and the host settings upstream reads early must have the
/// types Quay expects.
pub(super) fn check_config_parses(facts: &Facts<'_>, report: &mut ValidationReport) {
    let size: usize = facts.input.bundle.files().values().map(Vec::len).sum();
    if size > MAX_SECRET_BYTES {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            "configBundleSecret",
            format!(
                "configBundleSecret holds {size} bytes, more than a Kubernetes Secret may ({MAX_SECRET_BYTES}): \
                 the config Secret rendered from it could not be stored; remove what Quay does not need"
            ),
        ));
        return;
    }
    let config = match facts.input.bundle.parsed_quay_config() {
        Ok(config) => config,
        Err(e) => {
            report.push(Problem::error(
                Reason::ConfigInvalid,
                CONFIG_PATH,
                explain_yaml_error(&e.to_string()),
            ));
            return;
        }
    };
    // Anchors and aliases can make a few kilobytes mean a hundred thousand values, which every later step
    // (validation, the render, hashing, the rendered Secret) would carry: refuse before any of them.
    let values = config
        .keys()
        .filter_map(|k| config.get(k))
        .try_fold(0usize, |n, v| {
            count_values(v, MAX_CONFIG_VALUES - n).map(|c| n + c)
        });
    if values.is_none() {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            CONFIG_PATH,
            format!(
                "config.yaml holds more than {MAX_CONFIG_VALUES} values once its anchors and aliases are expanded; \
                 Quay's configuration needs far fewer: write the values out or remove what Quay does not need"
            ),
        ));
        return;
    }
    for (key, wanted) in [
        ("EXTERNAL_TLS_TERMINATION", "bool"),
        ("PREFERRED_URL_SCHEME", "string"),
        ("SERVER_HOSTNAME", "string"),
    ] {
        let ok = match config.get(key) {
            None => true,
            Some(Value::Bool(_)) => wanted == "bool",
            Some(Value::String(_)) => wanted == "string",
            Some(_) => false,
        };
        if !ok {
            report.push(Problem::error(
                Reason::ConfigInvalid,
                format!("{CONFIG_PATH}.{key}"),
                format!(
                    "unable to parse SERVER_HOSTNAME from config: {key} must be of type {wanted}"
                ),
            ));
        }
    }
    if let Some(hostname) = config.get_str("SERVER_HOSTNAME") {
        check_hostname_shape("SERVER_HOSTNAME", hostname, report);
    }
}

/// Most values (scalars, lists and mappings, at any depth) a `config.yaml` may hold once parsed.
const MAX_CONFIG_VALUES: usize = 20_000;

/// The number of values in `value` (itself included), or `None` once it exceeds `budget`.
fn count_values(value: &Value, budget: usize) -> Option<usize> {
    let mut count = 0usize;
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        count += 1;
        if count > budget {
            return None;
        }
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
            _ => {}
        }
    }
    Some(count)
}

/// Longest `data` a Kubernetes Secret may hold.
const MAX_SECRET_BYTES: usize = 1024 * 1024;
/// Longest DNS name (RFC 1035); with a `:port` suffix a little more is allowed.
const MAX_HOSTNAME_LENGTH: usize = 253;

/// A host setting must look like `host` or `host:port`: no spaces or control characters, and not longer than a
/// DNS name. Its value is quoted only when short (it ends up in status).
pub(super) fn check_hostname_shape(key: &str, hostname: &str, report: &mut ValidationReport) {
    let path = format!("{CONFIG_PATH}.{key}");
    if hostname.len() > MAX_HOSTNAME_LENGTH + ":65535".len() {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            path,
            format!(
                "{key} is {} characters long; a hostname has at most {MAX_HOSTNAME_LENGTH} (plus an optional :port)",
                hostname.chars().count()
            ),
        ));
    } else if let Some(bad) = hostname
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | '@' | '?' | '#'))
    {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            path,
            format!(
                "{key} {hostname:?} is not a hostname: it contains {bad:?}; give the host name only, e.g. \
                 quay.example.com or quay.example.com:8443"
            ),
        ));
    }
}

/// The YAML parser's message in the user's terms: where (`line L column C`) and what, without the parser's
/// advice to its own callers.
fn explain_yaml_error(message: &str) -> String {
    let message = message.strip_prefix("error: ").unwrap_or(message);
    // `line L column C: what`, or just `what`.
    let (at, what) = match message.split_once(": ") {
        Some((at, what)) if at.starts_with("line ") => (format!("{at}: "), what),
        _ => (String::new(), message),
    };
    let what = if what.starts_with("budget breached") {
        "more YAML nodes than the operator reads (a document this large, or anchors and aliases expanding to \
         it); write the values out or remove what Quay does not need"
            .to_owned()
    } else if let Some((duplicate, _)) = what.split_once(", set DuplicateKeyPolicy") {
        format!("{duplicate} (each key may appear once in a mapping)")
    } else if what.starts_with("multiple YAML documents detected") {
        "a second YAML document (`---`) follows the first; Quay reads exactly one".to_owned()
    } else if what == "recursion limit exceeded" {
        "values nested too deeply (more levels than the operator reads)".to_owned()
    } else if what == "expected string scalar" {
        "a key that is not a string (config.yaml keys are strings)".to_owned()
    } else {
        what.to_owned()
    };
    if message.starts_with("config.yaml") {
        return message.to_owned();
    }
    format!("config.yaml is not valid YAML: {at}{what}")
}

/// `BUILDMAN_HOSTNAME` must be a string (upstream panics on anything else).
pub(super) fn check_buildman_hostname(facts: &Facts<'_>, report: &mut ValidationReport) {
    let Some(config) = &facts.config else { return };
    if let Some(hostname) = config.get_str("BUILDMAN_HOSTNAME") {
        check_hostname_shape("BUILDMAN_HOSTNAME", hostname, report);
    }
    if config
        .get("BUILDMAN_HOSTNAME")
        .is_some_and(|v| !v.is_string())
    {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            format!("{CONFIG_PATH}.BUILDMAN_HOSTNAME"),
            "could not check for build manager support: BUILDMAN_HOSTNAME must be of type string",
        ));
    }
}

/// Components in the order upstream checks them: as declared (first entry of a kind), then the defaulted ones.
fn upstream_order(facts: &Facts<'_>) -> Vec<ComponentKind> {
    let mut order: Vec<ComponentKind> = Vec::new();
    for c in facts.declared() {
        if !order.contains(&c.kind) {
            order.push(c.kind);
        }
    }
    for kind in ComponentKind::ALL {
        if !order.contains(&kind) {
            order.push(kind);
        }
    }
    order
}

/// What the user's bundle says about a component's configuration.
enum UserConfig {
    /// The user configures it; the path of the first key found.
    Present(String),
    Absent,
}

/// The requirement matrix: a managed component must not be configured by the user (its field group would be
/// overwritten), and a required unmanaged one must be. Messages are upstream's.
pub(super) fn check_component_config(facts: &Facts<'_>, report: &mut ValidationReport) {
    let Some(config) = &facts.config else { return };
    let bundle = facts.input.bundle;
    let clair_config = clair_connstring(facts, report);
    for kind in upstream_order(facts) {
        let component = facts.component(kind);
        let user_config = match kind {
            ComponentKind::Tls => {
                if bundle.contains(SSL_CERT) && bundle.contains(SSL_KEY) {
                    UserConfig::Present(format!("configBundleSecret[{SSL_CERT}]"))
                } else {
                    UserConfig::Absent
                }
            }
            ComponentKind::ClairPostgres => match &clair_config {
                Some(path) => UserConfig::Present(path.clone()),
                None => UserConfig::Absent,
            },
            _ => match field_group_keys(kind).iter().find(|k| config.contains(k)) {
                Some(key) => UserConfig::Present(format!("{CONFIG_PATH}.{key}")),
                None => UserConfig::Absent,
            },
        };
        let path = facts.component_path(kind);
        match (component.managed, user_config) {
            (true, UserConfig::Present(key_path)) if !supports_user_config_when_managed(kind) => {
                report.push(Problem::error(
                    Reason::ConfigInvalid,
                    key_path,
                    format!(
                        "{kind} component marked as managed, but `configBundleSecret` contains required fields"
                    ),
                ));
            }
            (false, UserConfig::Absent) => {
                if kind == ComponentKind::Tls && component.secret_ref.is_some() {
                    continue;
                }
                if kind == ComponentKind::ClairPostgres {
                    if facts.managed(ComponentKind::Clair) {
                        report.push(Problem::error(
                            Reason::ConfigInvalid,
                            path,
                            "clairpostgres component unmanaged but no clair postgres config provided",
                        ));
                    }
                } else if kind.is_required() {
                    report.push(Problem::error(
                        Reason::ConfigInvalid,
                        path,
                        format!(
                            "required component `{kind}` marked as unmanaged, but `configBundleSecret` is missing necessary fields"
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Components whose field group may also be set by the user while managed (upstream: redis since
/// PROJQUAY-11501, route, mirror).
fn supports_user_config_when_managed(kind: ComponentKind) -> bool {
    matches!(
        kind,
        ComponentKind::Redis | ComponentKind::Route | ComponentKind::Mirror
    )
}

/// The path of the first non-empty `connstring` in the bundle's `clair-config.yaml` (indexer, matcher,
/// notifier), or `None`. A file that does not parse is reported.
fn clair_connstring(facts: &Facts<'_>, report: &mut ValidationReport) -> Option<String> {
    let bytes = facts.input.bundle.get(CLAIR_CONFIG_YAML)?;
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(_) => {
            report.push(Problem::error(
                Reason::ConfigInvalid,
                format!("configBundleSecret[{CLAIR_CONFIG_YAML}]"),
                format!(
                    "unable to verify component config: {CLAIR_CONFIG_YAML} is not valid UTF-8"
                ),
            ));
            return None;
        }
    };
    if text.trim().is_empty() {
        return None;
    }
    // Never quote the file (it may hold database passwords): only where the parser stopped.
    let invalid = |detail: String| {
        Problem::error(
            Reason::ConfigInvalid,
            format!("configBundleSecret[{CLAIR_CONFIG_YAML}]"),
            format!(
                "unable to verify component config: {CLAIR_CONFIG_YAML} in configBundleSecret {detail}"
            ),
        )
    };
    let value: Value = match serde_saphyr::from_str(text) {
        Ok(v @ (Value::Object(_) | Value::Null)) => v,
        Ok(_) => {
            report.push(invalid("must be a YAML mapping".to_owned()));
            return None;
        }
        Err(e) => {
            report.push(invalid(match e.location() {
                Some(at) => format!(
                    "is not valid YAML (line {}, column {})",
                    at.line(),
                    at.column()
                ),
                None => "is not valid YAML".to_owned(),
            }));
            return None;
        }
    };
    ["indexer", "matcher", "notifier"]
        .into_iter()
        .find_map(|section| {
            value
                .get(section)
                .and_then(|s| s.get("connstring"))
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(|_| format!("configBundleSecret[{CLAIR_CONFIG_YAML}].{section}.connstring"))
        })
}
