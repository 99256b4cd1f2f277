//! Inputs of a render, and the [`RenderContext`] derived from them once so every component module reads the
//! same names, hostnames and TLS decisions.

use std::collections::BTreeMap;
use std::time::SystemTime;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde::{Deserialize, Serialize};

use crate::api::{
    ComponentKind, ComponentStatus, Override, QuayRegistry, SecretReference, TlsSecurityProfile,
};
use crate::config::{ConfigBundle, ManagedKeys, Problem, QuayConfig, Reason, RenderError};

/// Everything a render depends on. Rendering the same input twice gives byte-identical output.
#[derive(Debug, Clone, Copy)]
pub struct RenderInput<'a> {
    pub registry: &'a QuayRegistry,
    pub bundle: &'a ConfigBundle,
    pub managed_keys: &'a ManagedKeys,
    pub cluster: &'a ClusterFacts,
    pub settings: &'a OperatorSettings,
    /// The time certificates are checked against (expiry); an input so that rendering stays pure.
    pub now: SystemTime,
}

/// What the cluster offers, observed by the controller (or given with `--cluster` to the CLI).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterFacts {
    /// The OpenShift Route API (`route.openshift.io/v1`) is served.
    pub routes: bool,
    /// The cluster's ingress domain (e.g. `apps.example.com`), discovered from the router.
    pub cluster_hostname: Option<String>,
    /// The certificate chain the OpenShift router presents (cluster wildcard), PEM.
    pub cluster_wildcard_cert: Option<String>,
    /// The ObjectBucketClaim API (`objectbucket.io/v1alpha1`) is served in the registry's namespace.
    pub object_bucket_claims: bool,
    /// The provisioned bucket, present once `<reg>-quay-datastore` is bound.
    pub object_bucket: Option<ObjectBucket>,
    /// Prometheus operator APIs are usable for this registry (ServiceMonitor, PrometheusRule, dashboards namespace).
    pub monitoring: bool,
    /// The operator's target Quay version (overrides the operator setting when given, e.g. in `--cluster`).
    pub quay_version: Option<String>,
    /// The OpenShift APIServer TLS security profile, when there is one.
    pub tls_security_profile: Option<TlsSecurityProfile>,
    /// Contents of the tls component's `secretRef` Secret, read by the controller.
    pub external_tls: Option<ExternalTls>,
    /// `service-ca.crt` of `<reg>-cluster-service-ca`, as injected by OpenShift.
    pub cluster_service_ca: Option<String>,
    /// `ca-bundle.crt` of `<reg>-cluster-trusted-ca`, as injected by OpenShift.
    pub cluster_trusted_ca: Option<String>,
    /// Live sizes of the registry's PVCs by name, so a volume is never asked to shrink.
    pub pvc_sizes: BTreeMap<String, Quantity>,
    /// Managed-database major-version upgrades in progress, as the controller observed them.
    pub postgres_upgrades: Vec<crate::render::postgres_upgrade::PostgresUpgrade>,
    /// The Gateway API HTTPRoute (`gateway.networking.k8s.io/v1`) is served.
    pub gateway_api: bool,
    /// cert-manager's Certificate API (`cert-manager.io/v1`) is served.
    pub cert_manager: bool,
}

/// The bucket behind the `<reg>-quay-datastore` ObjectBucketClaim.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectBucket {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    pub bucket_name: String,
    pub access_key: String,
    pub secret_key: String,
}

/// A `kubernetes.io/tls` Secret named by the tls component's `secretRef`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalTls {
    pub name: String,
    /// The Secret's `type`.
    #[serde(rename = "type")]
    pub type_: String,
    pub cert: Option<String>,
    pub key: Option<String>,
}

/// The operator's own settings (its environment).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperatorSettings {
    /// `QUAY_VERSION`: the Quay version this operator deploys.
    pub quay_version: String,
    pub images: ImageSettings,
    /// `QUAY_DEFAULT_BRANDING=redhat`.
    pub redhat_branding: bool,
    pub proxy: ProxySettings,
    /// `SKIP_RESOURCE_REQUESTS=true` strips container resources (small test clusters).
    pub skip_resource_requests: bool,
    /// Namespace the operator runs in (`MY_POD_NAMESPACE`).
    pub operator_namespace: Option<String>,
    /// `DEV_OPERATOR_ENDPOINT`.
    pub operator_endpoint: Option<String>,
}

/// `RELATED_IMAGE_COMPONENT_*` overrides; `None` keeps the default image.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageSettings {
    pub quay: Option<String>,
    pub clair: Option<String>,
    pub postgres: Option<String>,
    pub clairpostgres: Option<String>,
    pub redis: Option<String>,
    pub postgres_previous: Option<String>,
    pub clairpostgres_previous: Option<String>,
}

/// Proxy settings propagated to Quay, Clair and the mirror workers.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProxySettings {
    pub http_proxy: Option<String>,
    pub https_proxy: Option<String>,
    pub no_proxy: Option<String>,
}

impl OperatorSettings {
    /// Reads the settings from environment variables through `lookup` (so tests need not touch the process env).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let either = |upper: &str, lower: &str| get(upper).or_else(|| get(lower));
        Self {
            quay_version: get("QUAY_VERSION")
                .unwrap_or_else(|| crate::DEFAULT_QUAY_VERSION.to_owned()),
            images: ImageSettings {
                quay: get("RELATED_IMAGE_COMPONENT_QUAY"),
                clair: get("RELATED_IMAGE_COMPONENT_CLAIR"),
                postgres: get("RELATED_IMAGE_COMPONENT_POSTGRES"),
                clairpostgres: get("RELATED_IMAGE_COMPONENT_CLAIRPOSTGRES"),
                redis: get("RELATED_IMAGE_COMPONENT_REDIS"),
                postgres_previous: get("RELATED_IMAGE_COMPONENT_POSTGRES_PREVIOUS"),
                clairpostgres_previous: get("RELATED_IMAGE_COMPONENT_CLAIRPOSTGRES_PREVIOUS"),
            },
            redhat_branding: get("QUAY_DEFAULT_BRANDING").as_deref() == Some("redhat"),
            proxy: ProxySettings {
                http_proxy: either("HTTP_PROXY", "http_proxy"),
                https_proxy: either("HTTPS_PROXY", "https_proxy"),
                no_proxy: either("NO_PROXY", "no_proxy"),
            },
            skip_resource_requests: get("SKIP_RESOURCE_REQUESTS").as_deref() == Some("true"),
            operator_namespace: get("MY_POD_NAMESPACE"),
            operator_endpoint: get("DEV_OPERATOR_ENDPOINT"),
        }
    }
}

/// A component as it is in effect: declared in spec, or defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveComponent {
    pub kind: ComponentKind,
    pub managed: bool,
    pub overrides: Option<Override>,
    pub secret_ref: Option<SecretReference>,
    /// Index in `spec.components`, `None` when defaulted.
    pub spec_index: Option<usize>,
}

/// Where the registry's TLS certificate comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TlsSource {
    /// tls managed: the OpenShift router terminates TLS (edge) with the cluster wildcard certificate.
    Managed,
    /// tls unmanaged, `ssl.cert`/`ssl.key` in the config bundle.
    Bundle { cert: String, key: String },
    /// tls unmanaged, an external `kubernetes.io/tls` Secret (`secretRef`).
    SecretRef {
        name: String,
        cert: String,
        key: String,
    },
    /// tls unmanaged and no certificate: Quay serves plain HTTP behind the user's own TLS terminator.
    None,
}

impl TlsSource {
    /// The certificate and key Quay serves itself, if any.
    pub fn pair(&self) -> Option<(&str, &str)> {
        match self {
            TlsSource::Bundle { cert, key } | TlsSource::SecretRef { cert, key, .. } => {
                Some((cert, key))
            }
            TlsSource::Managed | TlsSource::None => None,
        }
    }
}

/// IP families the registry's Services use (`FEATURE_LISTEN_IP_VERSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IpFamilies {
    #[default]
    V4,
    V6,
    DualStack,
}

/// Names of the hash-suffixed objects of this render.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Names {
    pub config_secret: String,
    pub tls_secret: String,
    pub extra_ca_secret: String,
    pub proxy_secret: String,
    pub postgres_bootstrap_secret: String,
}

/// Images each container runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Images {
    pub quay: String,
    pub clair: String,
    pub postgres: String,
    pub clairpostgres: String,
    pub redis: String,
    pub postgres_previous: String,
    pub clairpostgres_previous: String,
}

/// Everything derived once from a [`RenderInput`].
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    pub input: RenderInput<'a>,
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
    /// Effective components in [`ComponentKind::ALL`] order.
    pub components: Vec<EffectiveComponent>,
    /// `SERVER_HOSTNAME` (user's, or derived from the cluster hostname; may carry a `:port`; may be empty).
    pub server_hostname: String,
    /// `BUILDMAN_HOSTNAME` as the user wrote it.
    pub buildman_hostname: Option<String>,
    pub tls: TlsSource,
    /// The user's `config.yaml` as parsed (the bundle's copy: a render copies it once, to merge into it).
    pub quay_config: &'a QuayConfig,
    pub names: Names,
    pub images: Images,
    /// `status.currentVersion` differs from the target version: the migration Job runs and quay-app waits.
    pub migration_due: bool,
    pub ip_families: IpFamilies,
    /// Annotations put on every object and on non-database pod templates.
    pub common_annotations: BTreeMap<String, String>,
    /// Last 8 hex of sha256 of the cluster service CA and trusted CA bundles ("" when absent).
    pub cluster_service_ca_hash: String,
    pub cluster_trusted_ca_hash: String,
    /// Last 8 hex of sha256(cert ‖ key) of the external TLS Secret.
    pub tls_secret_hash: Option<String>,
    /// Data of the rendered Secrets (filled by `secrets::build`), keyed by the Secret's logical name.
    pub secret_data: crate::render::secrets::SecretData,
}

impl<'a> RenderContext<'a> {
    pub fn new(input: &RenderInput<'a>) -> Result<Self, RenderError> {
        let registry = input.registry;
        let name = registry.metadata.name.clone().unwrap_or_default();
        let namespace = registry.metadata.namespace.clone().unwrap_or_default();
        let owner = OwnerReference {
            api_version: crate::api::API_VERSION.to_owned(),
            kind: "QuayRegistry".to_owned(),
            name: name.clone(),
            uid: registry.metadata.uid.clone().unwrap_or_default(),
            controller: None,
            block_owner_deletion: None,
        };
        let user_config = input.bundle.parsed_quay_config().map_err(|e| {
            RenderError(Problem::error(
                Reason::ConfigInvalid,
                "configBundleSecret[config.yaml]",
                e.to_string(),
            ))
        })?;
        let components = effective_components(registry, input.bundle, input.cluster);
        let managed = |kind| components.iter().any(|c| c.kind == kind && c.managed);

        let user_hostname = user_config
            .get_str("SERVER_HOSTNAME")
            .filter(|h| !h.is_empty());
        let server_hostname = match (user_hostname, &input.cluster.cluster_hostname) {
            (Some(h), _) => h.to_owned(),
            (None, Some(domain)) if input.cluster.routes && managed(ComponentKind::Route) => {
                format!("{name}-quay-{namespace}.{domain}")
            }
            _ => String::new(),
        };
        let buildman_hostname = user_config.get_str("BUILDMAN_HOSTNAME").map(str::to_owned);

        let tls = tls_source(&components, input);
        let images = crate::render::images::resolve(&input.settings.images);
        let target_version = input
            .cluster
            .quay_version
            .as_deref()
            .unwrap_or(&input.settings.quay_version);
        let current_version = registry
            .status
            .as_ref()
            .and_then(|s| s.current_version.as_deref())
            .unwrap_or("");
        let migration_due = current_version != target_version;
        let ip_families = match user_config
            .get_str("FEATURE_LISTEN_IP_VERSION")
            .map(str::to_ascii_lowercase)
        {
            Some(v) if v == "ipv6" => IpFamilies::V6,
            Some(v) if v == "dual-stack" => IpFamilies::DualStack,
            _ => IpFamilies::V4,
        };

        let operator_endpoint = input.settings.operator_endpoint.clone().unwrap_or_else(|| {
            match &input.settings.operator_namespace {
                Some(ns) => format!("http://quay-operator.{ns}.svc.cluster.local:7071"),
                None => "http://quay-operator:7071".to_owned(),
            }
        });
        let mut common_annotations = BTreeMap::new();
        common_annotations.insert("quay-registry-hostname".to_owned(), server_hostname.clone());
        common_annotations.insert(
            "quay-buildmanager-hostname".to_owned(),
            buildman_hostname
                .as_deref()
                .map(host_without_port)
                .unwrap_or_default()
                .to_owned(),
        );
        common_annotations.insert(
            "quay-operator-service-endpoint".to_owned(),
            operator_endpoint,
        );

        let tls_secret_hash = match &tls {
            TlsSource::SecretRef { cert, key, .. } => Some(crate::config::hash::short_sha256(&[
                cert.as_bytes(),
                key.as_bytes(),
            ])),
            _ => None,
        };
        let ca_hash = |ca: &Option<String>| {
            ca.as_deref()
                .map(|c| crate::config::hash::short_sha256(&[c.as_bytes()]))
                .unwrap_or_default()
        };

        let mut ctx = RenderContext {
            input: *input,
            name,
            namespace,
            owner,
            components,
            server_hostname,
            buildman_hostname,
            tls,
            quay_config: user_config,
            names: Names::default(),
            images,
            migration_due,
            ip_families,
            common_annotations,
            cluster_service_ca_hash: ca_hash(&input.cluster.cluster_service_ca),
            cluster_trusted_ca_hash: ca_hash(&input.cluster.cluster_trusted_ca),
            tls_secret_hash,
            secret_data: Default::default(),
        };
        crate::render::secrets::build(&mut ctx)?;
        Ok(ctx)
    }

    /// The effective entry of `kind` (every kind has one).
    pub fn component(&self, kind: ComponentKind) -> &EffectiveComponent {
        self.components
            .iter()
            .find(|c| c.kind == kind)
            .expect("every kind has an effective entry")
    }

    pub fn managed(&self, kind: ComponentKind) -> bool {
        self.component(kind).managed
    }

    pub fn overrides(&self, kind: ComponentKind) -> Option<&Override> {
        let c = self.component(kind);
        if c.managed {
            c.overrides.as_ref()
        } else {
            None
        }
    }

    /// `<reg>-<suffix>`: every object's name.
    pub fn object_name(&self, suffix: &str) -> String {
        // Called for nearly every object and reference: cheaper than `format!`.
        let mut name = String::with_capacity(self.name.len() + 1 + suffix.len());
        name.push_str(&self.name);
        name.push('-');
        name.push_str(suffix);
        name
    }

    /// Quay serves TLS itself (unmanaged tls with a certificate): HTTPS probes and passthrough Routes.
    pub fn quay_serves_tls(&self) -> bool {
        self.tls.pair().is_some()
    }

    pub fn component_statuses(&self) -> Vec<ComponentStatus> {
        self.components
            .iter()
            .map(|c| ComponentStatus {
                kind: c.kind,
                managed: c.managed,
                defaulted: c.spec_index.is_none(),
            })
            .collect()
    }
}

/// `host:port` → `host` (IPv6 literals in brackets keep their brackets off).
pub fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if !h.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The spec's components plus the defaulted ones (upstream `EnsureDefaultComponents`, without writing spec).
/// A declared `quay` is always managed.
pub fn effective_components(
    registry: &QuayRegistry,
    bundle: &ConfigBundle,
    cluster: &ClusterFacts,
) -> Vec<EffectiveComponent> {
    let declared = registry.spec.components.as_deref().unwrap_or_default();
    ComponentKind::ALL
        .into_iter()
        .map(|kind| match declared.iter().position(|c| c.kind == kind) {
            Some(i) => {
                let c = &declared[i];
                EffectiveComponent {
                    kind,
                    managed: c.managed || kind == ComponentKind::Quay,
                    overrides: c.overrides.clone(),
                    secret_ref: c.secret_ref.clone(),
                    spec_index: Some(i),
                }
            }
            None => {
                let managed = match kind {
                    ComponentKind::ObjectStorage => cluster.object_bucket_claims,
                    ComponentKind::Route => cluster.routes,
                    ComponentKind::Monitoring => cluster.monitoring,
                    ComponentKind::Tls => cluster.routes && bundle.tls_pair().is_none(),
                    _ => true,
                };
                EffectiveComponent {
                    kind,
                    managed,
                    overrides: None,
                    secret_ref: None,
                    spec_index: None,
                }
            }
        })
        .collect()
}

fn tls_source(components: &[EffectiveComponent], input: &RenderInput<'_>) -> TlsSource {
    let tls = components
        .iter()
        .find(|c| c.kind == ComponentKind::Tls)
        .expect("tls is always present");
    if tls.managed {
        return TlsSource::Managed;
    }
    if let Some(secret_ref) = &tls.secret_ref {
        let ext = input
            .cluster
            .external_tls
            .as_ref()
            .filter(|e| e.name == secret_ref.name);
        if let Some(ExternalTls {
            cert: Some(cert),
            key: Some(key),
            ..
        }) = ext
        {
            return TlsSource::SecretRef {
                name: secret_ref.name.clone(),
                cert: cert.clone(),
                key: key.clone(),
            };
        }
        return TlsSource::None;
    }
    match input.bundle.tls_pair() {
        Some((cert, key)) => TlsSource::Bundle {
            cert: cert.to_owned(),
            key: key.to_owned(),
        },
        None => TlsSource::None,
    }
}
