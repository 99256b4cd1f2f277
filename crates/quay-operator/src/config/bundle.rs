//! The config bundle: the user's Secret named by `spec.configBundleSecret`.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;

use super::quay_config::{QuayConfig, QuayConfigError};

/// Key of Quay's configuration in the bundle.
pub const CONFIG_YAML: &str = "config.yaml";
/// TLS certificate Quay serves (unmanaged tls).
pub const SSL_CERT: &str = "ssl.cert";
/// TLS key Quay serves (unmanaged tls).
pub const SSL_KEY: &str = "ssl.key";
/// Prefix of extra CA certificates Quay and Clair trust.
pub const EXTRA_CA_PREFIX: &str = "extra_ca_cert_";
/// The user's Clair config, merged over the generated one.
pub const CLAIR_CONFIG_YAML: &str = "clair-config.yaml";
pub const CLAIR_SSL_CRT: &str = "clair-ssl.crt";
pub const CLAIR_SSL_KEY: &str = "clair-ssl.key";

/// The files of a config bundle, by key. The user's Secret is only ever read.
#[derive(Clone, Default)]
pub struct ConfigBundle {
    files: BTreeMap<String, Vec<u8>>,
    /// `config.yaml` parsed once: validation and rendering both read it.
    parsed: std::sync::OnceLock<Result<QuayConfig, QuayConfigError>>,
}

impl PartialEq for ConfigBundle {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files
    }
}

impl Eq for ConfigBundle {}

impl std::fmt::Debug for ConfigBundle {
    // Bundles hold keys and passwords: show only which files there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigBundle")
            .field("files", &self.files.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ConfigBundle {
    pub fn new(files: BTreeMap<String, Vec<u8>>) -> Self {
        Self {
            files,
            parsed: Default::default(),
        }
    }

    /// A bundle with only a `config.yaml`.
    pub fn from_config_yaml(yaml: &str) -> Self {
        let mut files = BTreeMap::new();
        files.insert(CONFIG_YAML.to_owned(), yaml.as_bytes().to_vec());
        Self::new(files)
    }

    /// Reads `data` and `stringData` (the latter wins, as on the API server).
    pub fn from_secret(secret: &Secret) -> Self {
        Self::new(secret_files(secret))
    }

    pub fn files(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.files
    }

    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.files.get(key).map(Vec::as_slice)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.files.contains_key(key)
    }

    /// A file as UTF-8 text (`None` if absent or not text).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The parsed `config.yaml` (an absent or empty file is an empty config).
    pub fn quay_config(&self) -> Result<QuayConfig, QuayConfigError> {
        self.parsed_quay_config().cloned().map_err(Clone::clone)
    }

    /// [`Self::quay_config`] without a copy: validation and every render read it.
    pub fn parsed_quay_config(&self) -> Result<&QuayConfig, &QuayConfigError> {
        self.parsed
            .get_or_init(|| self.parse_quay_config())
            .as_ref()
    }

    fn parse_quay_config(&self) -> Result<QuayConfig, QuayConfigError> {
        match self.get(CONFIG_YAML) {
            None => Ok(QuayConfig::default()),
            Some(bytes) => {
                let text = std::str::from_utf8(bytes).map_err(|_| QuayConfigError::NotUtf8)?;
                QuayConfig::parse(text)
            }
        }
    }

    /// `ssl.cert` and `ssl.key` when both are present and non-empty.
    pub fn tls_pair(&self) -> Option<(&str, &str)> {
        let cert = self.get_str(SSL_CERT).filter(|s| !s.trim().is_empty())?;
        let key = self.get_str(SSL_KEY).filter(|s| !s.trim().is_empty())?;
        Some((cert, key))
    }

    /// `extra_ca_cert_<name>` files as `(name, content)`, sorted by name.
    pub fn extra_ca_certs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().filter_map(|(k, v)| {
            k.strip_prefix(EXTRA_CA_PREFIX)
                .map(|name| (name, v.as_slice()))
        })
    }

    pub fn clair_config(&self) -> Option<&[u8]> {
        self.get(CLAIR_CONFIG_YAML)
    }
}

/// `data` (base64-decoded by serde already) merged with `stringData`.
pub fn secret_files(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut files: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in secret.string_data.iter().flatten() {
        files.insert(k.clone(), v.as_bytes().to_vec());
    }
    files
}

/// Decodes base64 the way the API server does for Secret `data` (used where raw JSON is read).
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}
