//! A test fixture for render tests: a registry `reg` in namespace `ns` on an OpenShift-like cluster (Route API,
//! cluster hostname `apps.example.com`, no ObjectBucketClaims, so objectstorage is unmanaged and configured in
//! the bundle), seeded managed keys, and migrations already done. Builder methods change one thing each.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Service};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::context::{ClusterFacts, OperatorSettings, RenderContext, RenderInput};
use super::object::DesiredObject;
use super::{Rendered, render};
use crate::api::{Component, ComponentKind, Override, QuayRegistry, QuayRegistryStatus};
use crate::config::bundle::CONFIG_YAML;
use crate::config::{ConfigBundle, ManagedKeys, RenderError};

/// The bundle's `config.yaml` of [`Fixture::new`]: storage configured, everything else left to the operator.
pub const BASE_CONFIG_YAML: &str = "DISTRIBUTED_STORAGE_CONFIG:\n  default:\n    - LocalStorage\n    - storage_path: /datastorage/registry\nDISTRIBUTED_STORAGE_DEFAULT_LOCATIONS: [default]\nDISTRIBUTED_STORAGE_PREFERENCE: [default]\n";

#[derive(Debug, Clone)]
pub struct Fixture {
    pub registry: QuayRegistry,
    pub bundle: ConfigBundle,
    pub keys: ManagedKeys,
    pub cluster: ClusterFacts,
    pub settings: OperatorSettings,
    pub now: SystemTime,
    config_yaml: String,
    files: BTreeMap<String, Vec<u8>>,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        let settings = OperatorSettings {
            quay_version: crate::DEFAULT_QUAY_VERSION.to_owned(),
            ..Default::default()
        };
        let mut registry = QuayRegistry::new("reg", Default::default());
        registry.metadata.namespace = Some("ns".to_owned());
        registry.metadata.uid = Some("0b5c7a2e-1111-4222-8333-444455556666".to_owned());
        registry.spec.config_bundle_secret = Some("reg-config-bundle".to_owned());
        registry.status = Some(QuayRegistryStatus {
            current_version: Some(settings.quay_version.clone()),
            ..Default::default()
        });
        let mut keys = ManagedKeys::default();
        keys.complete_with("reg", &mut StdRng::seed_from_u64(7));
        let cluster = ClusterFacts {
            routes: true,
            cluster_hostname: Some("apps.example.com".to_owned()),
            ..Default::default()
        };
        let mut fixture = Self {
            registry,
            bundle: ConfigBundle::default(),
            keys,
            cluster,
            settings,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000),
            config_yaml: BASE_CONFIG_YAML.to_owned(),
            files: BTreeMap::new(),
        };
        fixture.rebuild_bundle();
        fixture
    }

    fn rebuild_bundle(&mut self) {
        let mut files = self.files.clone();
        files.insert(
            CONFIG_YAML.to_owned(),
            self.config_yaml.clone().into_bytes(),
        );
        self.bundle = ConfigBundle::new(files);
    }

    /// A plain Kubernetes cluster: no Route API (route and tls unmanaged), so no derived SERVER_HOSTNAME.
    /// The bundle carries the host settings route needs, except SERVER_HOSTNAME, and empty TLS keys.
    pub fn kubernetes(mut self) -> Self {
        self.cluster.routes = false;
        self.cluster.cluster_hostname = None;
        self.config_yaml
            .push_str("PREFERRED_URL_SCHEME: http\nEXTERNAL_TLS_TERMINATION: true\n");
        self.files.insert("ssl.cert".to_owned(), Vec::new());
        self.files.insert("ssl.key".to_owned(), Vec::new());
        self.rebuild_bundle();
        self
    }

    /// Declares `kind` in `spec.components` (replacing an earlier declaration).
    pub fn component(
        mut self,
        kind: ComponentKind,
        managed: bool,
        overrides: Option<Override>,
    ) -> Self {
        let components = self.registry.spec.components.get_or_insert_with(Vec::new);
        components.retain(|c| c.kind != kind);
        components.push(Component {
            overrides,
            ..Component::new(kind, managed)
        });
        self
    }

    /// Appends one line to the bundle's `config.yaml`.
    pub fn config_line(mut self, line: &str) -> Self {
        self.config_yaml.push_str(line);
        self.config_yaml.push('\n');
        self.rebuild_bundle();
        self
    }

    /// Adds a file to the bundle.
    pub fn bundle_file(mut self, key: &str, content: &str) -> Self {
        self.files
            .insert(key.to_owned(), content.as_bytes().to_vec());
        self.rebuild_bundle();
        self
    }

    /// A fresh install: no `status.currentVersion`, so the migration is due.
    pub fn migration_due(mut self) -> Self {
        self.registry.status = None;
        self
    }

    pub fn input(&self) -> RenderInput<'_> {
        RenderInput {
            registry: &self.registry,
            bundle: &self.bundle,
            managed_keys: &self.keys,
            cluster: &self.cluster,
            settings: &self.settings,
            now: self.now,
        }
    }

    pub fn try_render(&self) -> Result<Rendered, RenderError> {
        render(&self.input())
    }

    pub fn render(&self) -> Rendered {
        match self.try_render() {
            Ok(r) => r,
            Err(e) => panic!("render failed: {} ({})", e.message(), e.reason()),
        }
    }

    /// Runs `f` on the render context of this input (no validation, no rendering).
    pub fn with_context<R>(&self, f: impl FnOnce(&RenderContext<'_>) -> R) -> R {
        let ctx = RenderContext::new(&self.input()).expect("context builds");
        f(&ctx)
    }
}

/// The object of `kind` named `name`; panics with the rendered names when there is none.
pub fn object(rendered: &Rendered, kind: &str, name: &str) -> DesiredObject {
    rendered
        .objects
        .iter()
        .find(|o| o.kind() == kind && o.name() == name)
        .cloned()
        .unwrap_or_else(|| {
            let names: Vec<String> = rendered
                .objects
                .iter()
                .map(|o| format!("{}/{}", o.kind(), o.name()))
                .collect();
            panic!("no {kind} {name} in {names:?}")
        })
}

pub fn deployment(rendered: &Rendered, name: &str) -> Deployment {
    match object(rendered, "Deployment", name) {
        DesiredObject::Deployment(d) => *d,
        _ => unreachable!(),
    }
}

pub fn job(rendered: &Rendered, name: &str) -> Job {
    match object(rendered, "Job", name) {
        DesiredObject::Job(j) => *j,
        _ => unreachable!(),
    }
}

pub fn pvc(rendered: &Rendered, name: &str) -> PersistentVolumeClaim {
    match object(rendered, "PersistentVolumeClaim", name) {
        DesiredObject::PersistentVolumeClaim(p) => p,
        _ => unreachable!(),
    }
}

pub fn service(rendered: &Rendered, name: &str) -> Service {
    match object(rendered, "Service", name) {
        DesiredObject::Service(s) => s,
        _ => unreachable!(),
    }
}
