//! TLS checks: the external (`secretRef`) TLS Secret, the certificate Quay serves, and the OpenShift TLS security
//! profile translated into Quay's `SSL_PROTOCOLS` / `SSL_CIPHERS`.

use std::time::Duration;

use super::{Facts, INFLATE_PREFIX};
use crate::api::{ComponentKind, TlsSecurityProfile};
use crate::config::bundle::{EXTRA_CA_PREFIX, SSL_CERT, SSL_KEY};
use crate::config::certificates::{self, format_rfc3339};
use crate::config::{Problem, Reason, ValidationReport};
use crate::render::context::{RenderContext, host_without_port};

/// A certificate that expires within this window is reported as a warning.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// The tls component's `secretRef` (upstream PROJQUAY-10631): exclusive with `ssl.cert`/`ssl.key` in the
/// bundle, and the Secret must be a non-empty `kubernetes.io/tls` Secret.
pub(super) fn check_external_secret(facts: &Facts<'_>, report: &mut ValidationReport) {
    let tls = facts.component(ComponentKind::Tls);
    let Some(secret_ref) = tls.secret_ref.as_ref().filter(|_| !tls.managed) else {
        return;
    };
    let path = format!("{}.secretRef", facts.component_path(ComponentKind::Tls));
    let mut error = |path: String, msg: String| {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            path,
            format!("external TLS secret error: {msg}"),
        ));
    };
    for key in [SSL_CERT, SSL_KEY] {
        if facts.input.bundle.contains(key) {
            error(
                format!("configBundleSecret[{key}]"),
                format!(
                    "tls component secretRef and {key} in configBundleSecret are mutually exclusive"
                ),
            );
        }
    }
    let name = &secret_ref.name;
    if name.is_empty() {
        return; // reported by the CEL rule
    }
    if super::exposure::awaiting_certificate(facts) {
        return; // cert-manager is about to fill it: the registry waits (render/certificate.rs)
    }
    let secret = facts
        .input
        .cluster
        .external_tls
        .as_ref()
        .filter(|e| &e.name == name);
    let Some(secret) = secret else {
        error(
            path,
            format!("unable to get TLS secret {name:?}: secrets {name:?} not found"),
        );
        return;
    };
    if secret.type_ != "kubernetes.io/tls" {
        error(
            path.clone(),
            format!(
                "TLS secret {name:?} must be type \"kubernetes.io/tls\", got {:?}",
                secret.type_
            ),
        );
    }
    for (field, value) in [("tls.crt", &secret.cert), ("tls.key", &secret.key)] {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            error(
                path.clone(),
                format!("TLS secret {name:?} missing or empty {field}"),
            );
        }
    }
}

/// Hosts longer than a DNS name are reported by the config checks and not matched against certificates.
const MAX_CHECKED_HOST_LENGTH: usize = 253;

/// `ssl.cert` and `ssl.key` in the bundle are PEM text: a DER (binary) file would otherwise be taken for no
/// certificate at all, and Quay would start without one.
pub(super) fn check_bundle_pair_is_text(facts: &Facts<'_>, report: &mut ValidationReport) {
    let tls = facts.component(ComponentKind::Tls);
    if tls.managed || tls.secret_ref.is_some() {
        return;
    }
    for (key, what, convert) in [
        (
            SSL_CERT,
            "certificate",
            "openssl x509 -inform der -in FILE -out ssl.cert",
        ),
        (
            SSL_KEY,
            "private key",
            "openssl pkey -inform der -in FILE -out ssl.key",
        ),
    ] {
        let Some(bytes) = facts.input.bundle.get(key) else {
            continue;
        };
        if std::str::from_utf8(bytes).is_err() {
            report.push(Problem::error(
                Reason::ConfigInvalid,
                format!("configBundleSecret[{key}]"),
                format!(
                    "{key} in configBundleSecret is not PEM text (a DER {what}?): convert it with `{convert}`"
                ),
            ));
        }
    }
}

/// Every `extra_ca_cert_*` file holds PEM certificates that parse: Quay and Clair add them to their trust
/// bundles, and one unreadable block breaks TLS to everything they connect to.
pub(super) fn check_extra_ca_certs(facts: &Facts<'_>, report: &mut ValidationReport) {
    for (name, bytes) in facts.input.bundle.extra_ca_certs() {
        let key = format!("{EXTRA_CA_PREFIX}{name}");
        let invalid = |detail: &str| {
            Problem::error(
                Reason::ConfigInvalid,
                format!("configBundleSecret[{key}]"),
                format!("{key} in configBundleSecret {detail}"),
            )
        };
        let blocks = pem::parse_many(bytes).unwrap_or_default();
        let certificates: Vec<&pem::Pem> =
            blocks.iter().filter(|b| b.tag() == "CERTIFICATE").collect();
        if certificates.is_empty() {
            report.push(invalid(
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
            continue;
        }
        for (i, block) in certificates.iter().enumerate() {
            if let Err(e) = x509_parser::parse_x509_certificate(block.contents()) {
                report.push(invalid(&format!(
                    "holds a certificate that does not parse (PEM block {}): {}",
                    i + 1,
                    plain_parse_error(&e.to_string())
                )));
                break;
            }
        }
    }
}

/// The X.509 parser reports malformed DER in its own terms (`Parsing Error: NomError(Eof)`): say what it means.
fn plain_parse_error(message: &str) -> String {
    match message.find("Parsing Error: NomError") {
        Some(at) => format!(
            "{}its DER data is malformed (truncated, or not a certificate)",
            &message[..at]
        ),
        None => message.to_owned(),
    }
}

/// The certificate Quay serves (upstream `EnsureTLSFor`, plus expiry): the pair parses and matches, and is
/// valid for `SERVER_HOSTNAME` and `BUILDMAN_HOSTNAME` (ports stripped).
pub(super) fn check_certificate(facts: &Facts<'_>, report: &mut ValidationReport) {
    let Some(pair) = facts.served_tls_pair() else {
        return;
    };
    let Some(server_hostname) = facts.server_hostname() else {
        return; // config.yaml or SERVER_HOSTNAME already reported
    };
    let server_host = host_without_port(&server_hostname).to_owned();
    if server_host.len() > MAX_CHECKED_HOST_LENGTH {
        return; // not a hostname: reported by the config checks
    }
    let invalid_for = |host: &str, reason: String| {
        Problem::error(
            Reason::ComponentCreationFailed,
            pair.source.clone(),
            format!(
                "{INFLATE_PREFIX}provided certificate pair not valid for host '{host}': {reason}"
            ),
        )
    };
    let cert = match certificates::check_pair(pair.cert, pair.key) {
        Ok(cert) => cert,
        Err(e) => {
            report.push(invalid_for(&server_host, plain_parse_error(&e.to_string())));
            return;
        }
    };
    if server_host.is_empty() {
        report.push(invalid_for(
            "",
            "SERVER_HOSTNAME is not set: set SERVER_HOSTNAME in config.yaml to the hostname the \
             certificate is issued for"
                .to_owned(),
        ));
    } else if let Err(e) = cert.verify_hostname(&server_host) {
        report.push(invalid_for(&server_host, e.to_string()));
    }
    let buildman = facts
        .config
        .as_ref()
        .and_then(|c| c.get_str("BUILDMAN_HOSTNAME"))
        .map(host_without_port)
        .filter(|h| !h.is_empty() && h.len() <= MAX_CHECKED_HOST_LENGTH);
    if let Some(host) = buildman
        && let Err(e) = cert.verify_hostname(host)
    {
        report.push(invalid_for(host, e.to_string()));
    }

    let now = facts.input.now;
    let expires = cert.expires_at();
    if expires <= now {
        report.push(Problem::error(
            Reason::ComponentCreationFailed,
            pair.source.clone(),
            format!(
                "{INFLATE_PREFIX}provided certificate expired on {}: renew the certificate",
                format_rfc3339(expires)
            ),
        ));
    } else if expires < now + EXPIRY_WARNING {
        let days = expires
            .duration_since(now)
            .unwrap_or_default()
            .as_secs()
            .div_ceil(86_400);
        report.push(Problem::warning(
            Reason::ConfigInvalid,
            pair.source.clone(),
            format!(
                "provided certificate expires on {} (in {days} day{}): renew it before then",
                format_rfc3339(expires),
                if days == 1 { "" } else { "s" }
            ),
        ));
    }
    if cert.valid_from() > now {
        report.push(Problem::warning(
            Reason::ConfigInvalid,
            pair.source.clone(),
            format!(
                "provided certificate is not valid before {}",
                format_rfc3339(cert.valid_from())
            ),
        ));
    }
}

/// `SSL_PROTOCOLS` and `SSL_CIPHERS` from the OpenShift APIServer TLS security profile: only when tls is
/// unmanaged (Quay terminates TLS itself), the cluster has a profile, and the user set neither key.
pub fn tls_profile_settings(ctx: &RenderContext<'_>) -> Option<(Vec<String>, Vec<String>)> {
    if ctx.managed(ComponentKind::Tls)
        || ctx.quay_config.contains("SSL_PROTOCOLS")
        || ctx.quay_config.contains("SSL_CIPHERS")
    {
        return None;
    }
    let profile = ctx.input.cluster.tls_security_profile.as_ref()?;
    Some(translate_tls_profile(Some(profile)))
}

const MODERN_CIPHERS: [&str; 3] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];
const INTERMEDIATE_EXTRA_CIPHERS: [&str; 8] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
];
// The facts file lists 17 names after Intermediate but counts 29: openshift/api's Old profile also carries
// DHE-RSA-CHACHA20-POLY1305 right after the Intermediate ones (as Mozilla's "old" does).
const OLD_EXTRA_CIPHERS: [&str; 18] = [
    "DHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA384",
    "ECDHE-RSA-AES256-SHA384",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "DHE-RSA-AES128-SHA256",
    "DHE-RSA-AES256-SHA256",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA256",
    "AES256-SHA256",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// Upstream's translation of an APIServer TLS profile: no profile, an unknown type or `Custom` without its
/// spec mean Intermediate; protocols follow the minimum TLS version.
pub fn translate_tls_profile(profile: Option<&TlsSecurityProfile>) -> (Vec<String>, Vec<String>) {
    let owned = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let intermediate = || {
        let mut c = owned(&MODERN_CIPHERS);
        c.extend(owned(&INTERMEDIATE_EXTRA_CIPHERS));
        c
    };
    let (min_version, ciphers) = match profile.and_then(|p| p.type_.as_deref()) {
        Some("Old") => {
            let mut c = intermediate();
            c.extend(owned(&OLD_EXTRA_CIPHERS));
            ("VersionTLS10".to_owned(), c)
        }
        Some("Modern") => ("VersionTLS13".to_owned(), owned(&MODERN_CIPHERS)),
        Some("Custom") if profile.and_then(|p| p.custom.as_ref()).is_some() => {
            let custom = profile.and_then(|p| p.custom.as_ref()).expect("checked");
            (
                custom.min_tls_version.clone().unwrap_or_default(),
                custom.ciphers.clone(),
            )
        }
        _ => ("VersionTLS12".to_owned(), intermediate()),
    };
    let protocols: &[&str] = match min_version.as_str() {
        "VersionTLS10" => &["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
        "VersionTLS11" => &["TLSv1.1", "TLSv1.2", "TLSv1.3"],
        "VersionTLS13" => &["TLSv1.3"],
        _ => &["TLSv1.2", "TLSv1.3"],
    };
    (owned(protocols), ciphers)
}
