//! Every check that must pass before a registry rolls out. Each problem carries the field path, the upstream
//! reason and the exact upstream message where upstream has one.
//!
//! [`validate`] runs the checks in the order the upstream operator meets them during a reconcile, so the first
//! error of the report is the one upstream would put into status. Unlike upstream it does not stop there: the
//! report lists every problem, and checks upstream only logged (capabilities) or never made (certificate expiry,
//! documented feature rules, live PVC sizes) are reported too.

mod exposure;
mod features;
mod inflate;
mod requirements;
mod spec;
mod tls;

#[cfg(test)]
mod tests;

pub use inflate::{Quantity, parse_quantity};
pub use tls::{tls_profile_settings, translate_tls_profile};

use super::{QuayConfig, ValidationReport};
use crate::api::{Component, ComponentKind};
use crate::render::context::{EffectiveComponent, RenderInput, effective_components};

/// Path prefix of values in the user's `config.yaml`.
pub(crate) const CONFIG_PATH: &str = "configBundleSecret[config.yaml]";
/// Prefix of messages for problems upstream finds while rendering.
pub(crate) const INFLATE_PREFIX: &str = "could not inflate kubernetes objects: ";

/// Runs every check on the input, collecting all problems (the first error is what status reports).
pub fn validate(input: &RenderInput<'_>) -> ValidationReport {
    let facts = Facts::new(input);
    let mut report = ValidationReport::default();
    // An unsupported Quay upgrade blocks everything: nothing may be touched.
    let target = input
        .cluster
        .quay_version
        .as_deref()
        .unwrap_or(&input.settings.quay_version);
    let current = input
        .registry
        .status
        .as_ref()
        .and_then(|s| s.current_version.as_deref());
    if let Err(problem) = super::upgrade::check_upgrade(current, target) {
        report.push(problem);
    }
    spec::check_registry_name(&facts, &mut report);
    // The API server's CEL rules (and duplicate kinds, which it lets through).
    spec::check_component_rules(&facts, &mut report);
    // Then the reconcile steps, in upstream's order.
    tls::check_external_secret(&facts, &mut report);
    requirements::check_config_parses(&facts, &mut report);
    spec::check_object_storage_support(&facts, &mut report);
    requirements::check_buildman_hostname(&facts, &mut report);
    spec::check_monitoring_support(&facts, &mut report);
    spec::check_route_support(&facts, &mut report);
    exposure::check(&facts, &mut report);
    spec::check_overrides(&facts, &mut report);
    requirements::check_component_config(&facts, &mut report);
    features::check(&facts, &mut report);
    // What upstream only finds while rendering.
    tls::check_bundle_pair_is_text(&facts, &mut report);
    tls::check_certificate(&facts, &mut report);
    tls::check_extra_ca_certs(&facts, &mut report);
    inflate::check_images(&facts, &mut report);
    inflate::check_volume_sizes(&facts, &mut report);
    report
}

/// What the checks read, derived once from the input.
pub(crate) struct Facts<'a> {
    pub input: RenderInput<'a>,
    pub name: String,
    /// The user's `config.yaml`; `None` when it does not parse (checks that need it are skipped).
    pub config: Option<&'a QuayConfig>,
    /// Effective components in [`ComponentKind::ALL`] order.
    pub components: Vec<EffectiveComponent>,
}

impl<'a> Facts<'a> {
    fn new(input: &RenderInput<'a>) -> Self {
        Self {
            input: *input,
            name: input.registry.metadata.name.clone().unwrap_or_default(),
            config: input.bundle.parsed_quay_config().ok(),
            components: effective_components(input.registry, input.bundle, input.cluster),
        }
    }

    pub fn declared(&self) -> &'a [Component] {
        self.input
            .registry
            .spec
            .components
            .as_deref()
            .unwrap_or_default()
    }

    pub fn component(&self, kind: ComponentKind) -> &EffectiveComponent {
        self.components
            .iter()
            .find(|c| c.kind == kind)
            .expect("every kind has an effective entry")
    }

    pub fn managed(&self, kind: ComponentKind) -> bool {
        self.component(kind).managed
    }

    /// Where a component is declared: `spec.components[i]`, or a note that it was defaulted.
    pub fn component_path(&self, kind: ComponentKind) -> String {
        match self.component(kind).spec_index {
            Some(i) => format!("spec.components[{i}]"),
            None => format!("spec.components(defaulted {kind})"),
        }
    }

    /// `SERVER_HOSTNAME` as the registry will use it: the user's, else derived from the cluster's ingress
    /// domain when a managed Route exposes Quay; may be empty. `None` when config.yaml does not parse or the
    /// user's value is not a string.
    pub fn server_hostname(&self) -> Option<String> {
        let config = self.config.as_ref()?;
        if config.contains("SERVER_HOSTNAME") && config.get_str("SERVER_HOSTNAME").is_none() {
            return None;
        }
        let user = config.get_str("SERVER_HOSTNAME").filter(|h| !h.is_empty());
        let cluster = self.input.cluster;
        Some(match (user, &cluster.cluster_hostname) {
            (Some(h), _) => h.to_owned(),
            (None, Some(domain)) if cluster.routes && self.managed(ComponentKind::Route) => {
                let namespace = self
                    .input
                    .registry
                    .metadata
                    .namespace
                    .as_deref()
                    .unwrap_or_default();
                format!("{}-quay-{namespace}.{domain}", self.name)
            }
            _ => String::new(),
        })
    }

    /// The certificate and key Quay serves (tls unmanaged): from the `secretRef` Secret or the bundle.
    pub fn served_tls_pair(&self) -> Option<TlsPair<'a>> {
        let tls = self.component(ComponentKind::Tls);
        if tls.managed {
            return None;
        }
        if let Some(secret_ref) = &tls.secret_ref {
            let ext = self
                .input
                .cluster
                .external_tls
                .as_ref()
                .filter(|e| e.name == secret_ref.name)?;
            let cert = ext.cert.as_deref().filter(|c| !c.trim().is_empty())?;
            let key = ext.key.as_deref().filter(|k| !k.trim().is_empty())?;
            return Some(TlsPair {
                cert,
                key,
                source: format!("TLS secret {:?}", ext.name),
            });
        }
        let (cert, key) = self.input.bundle.tls_pair()?;
        Some(TlsPair {
            cert,
            key,
            source: "configBundleSecret[ssl.cert]".to_owned(),
        })
    }
}

/// A certificate and key Quay serves, and where they come from (for paths).
pub(crate) struct TlsPair<'a> {
    pub cert: &'a str,
    pub key: &'a str,
    pub source: String,
}
