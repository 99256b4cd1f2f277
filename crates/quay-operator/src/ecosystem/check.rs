//! The planned QuayRegistry is validated like any QuayRegistry before anything is written: a bundle the new
//! registry would refuse (storage settings missing, a certificate that does not cover the host name, ...) is
//! reported on the QuayEcosystem, instead of surfacing on a QuayRegistry created after the database was copied.

use std::time::SystemTime;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::mapping::{MigrationPlan, Unsupported};
use super::objects::quay_registry;
use crate::config::{ConfigBundle, ManagedKeys};
use crate::render::{ClusterFacts, OperatorSettings, RenderInput};

/// Every blocking problem the QuayRegistry of `plan` would have on a cluster with `cluster`'s capabilities.
pub fn check_registry(
    plan: &MigrationPlan,
    cluster: &ClusterFacts,
    settings: &OperatorSettings,
    now: SystemTime,
) -> Vec<Unsupported> {
    let registry = quay_registry(plan);
    let bundle = ConfigBundle::new(plan.bundle.clone());
    // Stand-ins for the keys the registry's controller generates: only their presence is checked, and these
    // are never stored anywhere.
    let mut keys = ManagedKeys::default();
    keys.complete_with(&plan.name, &mut StdRng::seed_from_u64(0));
    let input = RenderInput {
        registry: &registry,
        bundle: &bundle,
        managed_keys: &keys,
        cluster,
        settings,
        now,
    };
    crate::config::validate(&input)
        .errors()
        .map(|p| Unsupported::RegistryInvalid {
            path: p.path.clone(),
            message: p.message.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::quayecosystem::QuayEcosystem;
    use crate::ecosystem::plan_migration;
    use k8s_openapi::api::core::v1::Secret;
    use serde_json::json;

    fn plan(config: &str) -> MigrationPlan {
        let eco: QuayEcosystem = serde_json::from_value(json!({
            "metadata": {"name": "eco", "namespace": "quay"},
            "spec": {"quay": {"database": {"volumeSize": "10Gi"},
                              "registryBackends": [{"name": "s3", "s3": {}}],
                              "externalAccess": {"type": "Route"}},
                     "redis": {}, "clair": {"enabled": true}},
        }))
        .unwrap();
        let secret: Secret = serde_json::from_value(json!({
            "stringData": {}, "data": {"config.yaml": base64(config)},
        }))
        .unwrap();
        plan_migration(&eco, Some(&secret)).unwrap()
    }

    fn base64(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn openshift() -> ClusterFacts {
        ClusterFacts {
            routes: true,
            cluster_hostname: Some("apps.example.com".to_owned()),
            ..Default::default()
        }
    }

    fn settings() -> OperatorSettings {
        OperatorSettings::from_env(|_| None)
    }

    const STORAGE: &str = "DISTRIBUTED_STORAGE_CONFIG:\n  s3: [S3Storage, {s3_bucket: b, storage_path: /r, host: s3.example.com, s3_access_key: a, s3_secret_key: s}]\nDISTRIBUTED_STORAGE_PREFERENCE: [s3]\n";

    #[test]
    fn a_complete_legacy_config_passes() {
        let problems = check_registry(&plan(STORAGE), &openshift(), &settings(), SystemTime::now());
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn a_config_without_storage_settings_is_refused_before_anything_is_written() {
        let problems = check_registry(
            &plan("FEATURE_USER_INITIALIZE: true\n"),
            &openshift(),
            &settings(),
            SystemTime::now(),
        );
        assert!(!problems.is_empty());
        let failure = problems[0].failure();
        assert_eq!(
            failure.type_.as_str(),
            "QuayEcosystemConfigMigrationFailure"
        );
        assert_eq!(failure.reason.as_str(), "ConfigBundleSecretInvalid");
        assert!(
            failure.message.contains("objectstorage"),
            "{}",
            failure.message
        );
    }
}
