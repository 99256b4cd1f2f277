//! Installing the operator: its RBAC (derived from the API calls the controller makes), the plain manifests of
//! each install mode, and the OLM bundle. Pure: everything here builds objects and text; the CLI writes them.

pub mod bundle;
pub mod chart;
pub mod manifests;
pub mod rbac;

/// Name of the operator's Deployment, ServiceAccount and other objects of its own.
pub const OPERATOR_NAME: &str = "quay-operator-rs";
/// Namespace the plain manifests install into unless told otherwise.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "quay-operator";
/// The image built from `Containerfile` (there is no published image: push yours and pass `--image`).
pub const DEFAULT_IMAGE: &str = concat!("localhost/quay-operator-rs:", env!("CARGO_PKG_VERSION"));
/// The operator's version, as released.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which namespaces the operator watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallMode {
    /// Only the namespace it runs in.
    OwnNamespace,
    /// A list of namespaces (one: OLM's SingleNamespace).
    MultiNamespace(Vec<String>),
    /// Every namespace.
    AllNamespaces,
}

impl InstallMode {
    /// The namespaces watched; empty for all namespaces.
    pub fn watched_namespaces(&self, operator_namespace: &str) -> Vec<String> {
        match self {
            InstallMode::OwnNamespace => vec![operator_namespace.to_owned()],
            InstallMode::MultiNamespace(namespaces) => namespaces.clone(),
            InstallMode::AllNamespaces => vec![],
        }
    }
}

/// What an install consists of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallSpec {
    pub mode: InstallMode,
    pub operator_namespace: String,
    pub image: String,
}

impl Default for InstallSpec {
    fn default() -> Self {
        Self {
            mode: InstallMode::AllNamespaces,
            operator_namespace: DEFAULT_OPERATOR_NAMESPACE.to_owned(),
            image: DEFAULT_IMAGE.to_owned(),
        }
    }
}
