//! The Secrets made from the config bundle: the flattened Quay config, the TLS material, the extra CA
//! certificates, the proxy settings and the managed keys. Hash-suffixed names change only when content changes.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::context::{RenderContext, TlsSource};
use super::meta;
use super::object::DesiredObject;
use crate::config::RenderError;
use crate::config::bundle::{
    CLAIR_SSL_CRT, CLAIR_SSL_KEY, CONFIG_YAML, EXTRA_CA_PREFIX, SSL_CERT, SSL_KEY,
};
use crate::config::field_groups::merged_quay_config;
use crate::config::hash::kustomize_secret_suffix;
use crate::config::managed_keys::MANAGED_KEYS_SUFFIX;

type Files = BTreeMap<String, Vec<u8>>;

/// Contents of the hash-named Secrets of one render.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecretData {
    pub config: Files,
    pub tls: Files,
    pub extra_ca: Files,
    pub proxy: Files,
    pub postgres_bootstrap: Files,
}

/// The script the postgres image runs at first start: Quay needs `pg_trgm`.
pub const CREATE_EXTENSIONS_SH: &str = "#!/bin/bash\n\
echo \"attempting to create pg_trgm extension if it does not exist\"\n\
_psql() { psql --set ON_ERROR_STOP=1 \"$@\" ; }\n\
echo \"CREATE EXTENSION IF NOT EXISTS pg_trgm;\" | _psql -d \"$POSTGRESQL_DATABASE\"\n";

/// Computes the Secrets' data and their hash-suffixed names into `ctx`.
pub fn build(ctx: &mut RenderContext<'_>) -> Result<(), RenderError> {
    let bundle = ctx.input.bundle;
    let merged = merged_quay_config(ctx);

    // Every bundle file passes through to /conf/stack except the TLS and CA material, which get Secrets of their
    // own, so that a certificate change does not look like a config change.
    let mut config: Files = bundle
        .files()
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                SSL_CERT | SSL_KEY | CLAIR_SSL_CRT | CLAIR_SSL_KEY
            ) && !k.starts_with(EXTRA_CA_PREFIX)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    config.insert(CONFIG_YAML.to_owned(), merged.to_yaml().into_bytes());

    let mut tls = Files::new();
    if let Some(wildcard) = ctx
        .input
        .cluster
        .cluster_wildcard_cert
        .as_ref()
        .filter(|_| ctx.tls == TlsSource::Managed)
    {
        tls.insert(
            "ocp-cluster-wildcard.cert".to_owned(),
            wildcard.as_bytes().to_vec(),
        );
    }
    if let Some((cert, key)) = ctx.tls.pair() {
        tls.insert(SSL_CERT.to_owned(), cert.as_bytes().to_vec());
        tls.insert(SSL_KEY.to_owned(), key.as_bytes().to_vec());
    }

    let extra_ca: Files = bundle
        .extra_ca_certs()
        .map(|(name, v)| (name.to_owned(), v.to_vec()))
        .collect();

    let proxy_settings = &ctx.input.settings.proxy;
    let mut proxy = Files::new();
    let mut no_proxy = ctx.server_hostname.clone();
    if let Some(extra) = &proxy_settings.no_proxy {
        no_proxy.push(',');
        no_proxy.push_str(extra);
    }
    proxy.insert(
        "HTTP_PROXY".to_owned(),
        proxy_settings
            .http_proxy
            .clone()
            .unwrap_or_default()
            .into_bytes(),
    );
    proxy.insert(
        "HTTPS_PROXY".to_owned(),
        proxy_settings
            .https_proxy
            .clone()
            .unwrap_or_default()
            .into_bytes(),
    );
    proxy.insert("NO_PROXY".to_owned(), no_proxy.into_bytes());

    let mut postgres_bootstrap = Files::new();
    postgres_bootstrap.insert(
        "create-extensions.sh".to_owned(),
        CREATE_EXTENSIONS_SH.as_bytes().to_vec(),
    );

    let named =
        |base: &str, data: &Files| format!("{}-{base}-{}", ctx.name, kustomize_secret_suffix(data));
    ctx.names.config_secret = named("quay-config-secret", &config);
    ctx.names.tls_secret = named("quay-config-tls", &tls);
    ctx.names.extra_ca_secret = named("extra-ca-certs", &extra_ca);
    ctx.names.proxy_secret = named("quay-proxy-config", &proxy);
    ctx.names.postgres_bootstrap_secret = named("postgres-bootstrap", &postgres_bootstrap);
    ctx.secret_data = SecretData {
        config,
        tls,
        extra_ca,
        proxy,
        postgres_bootstrap,
    };
    Ok(())
}

/// An Opaque Secret with the given data (taken, not copied: config.yaml alone is kilobytes).
pub fn opaque_secret(ctx: &RenderContext<'_>, name: &str, component: &str, data: Files) -> Secret {
    Secret {
        metadata: meta::named(ctx, name, component),
        type_: Some("Opaque".to_owned()),
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        ..Default::default()
    }
}

/// Emits the managed keys Secret and the hash-named Secrets built by [`build`], moving their data out of `ctx`
/// (nothing reads it afterwards but the postgres component, which reads only its bootstrap script).
pub fn render(
    ctx: &mut RenderContext<'_>,
    out: &mut Vec<DesiredObject>,
) -> Result<(), RenderError> {
    let mut keys = ctx
        .input
        .managed_keys
        .to_secret(&ctx.name, &ctx.namespace, None);
    keys.metadata = meta::named(ctx, &format!("{}-{MANAGED_KEYS_SUFFIX}", ctx.name), "quay");
    out.push(DesiredObject::Secret(keys));
    let data = &mut ctx.secret_data;
    let secrets = [
        (&ctx.names.config_secret, std::mem::take(&mut data.config)),
        (&ctx.names.tls_secret, std::mem::take(&mut data.tls)),
        (
            &ctx.names.extra_ca_secret,
            std::mem::take(&mut data.extra_ca),
        ),
        (&ctx.names.proxy_secret, std::mem::take(&mut data.proxy)),
    ];
    for (name, files) in secrets {
        out.push(DesiredObject::Secret(opaque_secret(
            ctx, name, "quay", files,
        )));
    }
    Ok(())
}
