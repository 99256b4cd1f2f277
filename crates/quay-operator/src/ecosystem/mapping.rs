//! QuayEcosystem + its config Secret → what the QuayRegistry will be (facts §12.2, 3.11 manual §12.4.2).
//!
//! | QuayEcosystem | QuayRegistry |
//! |---|---|
//! | object storage | `objectstorage` unmanaged; local storage (a `registryStorage` volume, no backend, a `local` backend) refused |
//! | `database.server` set | `postgres` unmanaged (the config keeps its `DB_URI`) |
//! | `database.volumeSize` set, no server | `postgres` managed, data copied; DB fields removed from `config.yaml` |
//! | neither (ephemeral database) | refused |
//! | `externalAccess.type: Route`, passthrough | `route` managed; host settings except `SERVER_HOSTNAME` removed |
//! | `externalAccess.type: Route`, other termination | refused |
//! | other external access | `route` unmanaged (the manual's manual steps) |
//! | `ssl.cert` + `ssl.key` in the bundle | `tls` unmanaged |
//! | `redis` with empty hostname | `redis` managed, Redis fields removed; otherwise unmanaged |
//! | `enableRepoMirroring` | `mirror` managed; otherwise unmanaged |
//! | `clair.enabled` | `clair` (and `clairpostgres`) managed, scanner fields removed; otherwise unmanaged |
//! | deprecated signing keys | removed |

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::conditions::{ConditionType, Failure, FailureReason};
use super::{DEFAULT_CONFIG_SECRET, old_database_name};
use crate::api::quayecosystem::QuayEcosystem;
use crate::api::{Component, ComponentKind, Override};
use crate::config::QuayConfig;
use crate::config::bundle::{CONFIG_YAML, SSL_CERT, SSL_KEY, secret_files};
use crate::config::field_groups::field_group_keys;

/// Keys of features Quay no longer has (image signing with GPG); removed from every migrated `config.yaml`.
pub const DEPRECATED_KEYS: [&str; 5] = [
    "GPG2_PRIVATE_KEY_FILENAME",
    "GPG2_PRIVATE_KEY_NAME",
    "GPG2_PUBLIC_KEY_FILENAME",
    "SIGNING_ENGINE",
    "FEATURE_SIGNING",
];

/// Keys of the legacy operator's database credentials Secret.
pub const CREDENTIALS_USERNAME: &str = "database-username";
pub const CREDENTIALS_NAME: &str = "database-name";
pub const CREDENTIALS_ROOT_PASSWORD: &str = "database-root-password";

/// Why a QuayEcosystem cannot be migrated. Messages name fields and Secrets, never their values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    #[error("config Secret `{secret}` not found")]
    ConfigSecretMissing { secret: String },
    #[error("config Secret `{secret}` has no `config.yaml`")]
    ConfigYamlMissing { secret: String },
    #[error("`config.yaml` of Secret `{secret}` cannot be read: {message}")]
    ConfigYamlInvalid { secret: String, message: String },
    #[error(
        "cannot migrate local object storage ({detail}); move the blobs to object storage first"
    )]
    LocalStorage { detail: String },
    #[error(
        "cannot migrate an ephemeral database: spec.quay.database has neither `volumeSize` nor `server`"
    )]
    EphemeralDatabase,
    #[error(
        "cannot migrate external access through a Route with TLS termination `{termination}`: only passthrough Routes are migrated automatically"
    )]
    RouteTermination { termination: String },
    #[error("the QuayRegistry would not roll out: {path}: {message}")]
    RegistryInvalid { path: String, message: String },
    #[error("database credentials Secret `{secret}` not found")]
    CredentialsSecretMissing { secret: String },
    #[error("database credentials Secret `{secret}` has no `{key}`")]
    CredentialsKeyMissing { secret: String, key: &'static str },
}

impl Unsupported {
    /// The condition upstream reported this under.
    pub fn failure(&self) -> Failure {
        let (type_, reason) = match self {
            Unsupported::ConfigSecretMissing { .. }
            | Unsupported::ConfigYamlMissing { .. }
            | Unsupported::ConfigYamlInvalid { .. }
            | Unsupported::RegistryInvalid { .. } => (
                ConditionType::ConfigMigrationFailure,
                FailureReason::ConfigBundleSecretInvalid,
            ),
            _ => (
                ConditionType::ComponentMigrationFailure,
                FailureReason::ComponentUnsupported,
            ),
        };
        Failure {
            type_,
            reason,
            message: self.to_string(),
        }
    }
}

/// The managed database of a QuayEcosystem, to be copied into the QuayRegistry's database volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedDatabase {
    /// The legacy operator's credentials Secret (read by the copy Job; never changed).
    pub credentials_secret: String,
    pub volume_size: String,
    pub storage_class: Option<String>,
}

/// What a QuayEcosystem becomes.
#[derive(Clone, PartialEq)]
pub struct MigrationPlan {
    pub name: String,
    pub namespace: String,
    /// The QuayRegistry's `spec.components`.
    pub components: Vec<Component>,
    /// The new config bundle: the old Secret's files with a cleaned `config.yaml`.
    pub bundle: BTreeMap<String, Vec<u8>>,
    /// Set when the data of a managed database must be copied before the QuayRegistry exists.
    pub database: Option<ManagedDatabase>,
}

impl std::fmt::Debug for MigrationPlan {
    // The bundle holds keys and passwords: show only which files there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MigrationPlan")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("components", &self.components)
            .field("bundle", &self.bundle.keys().collect::<Vec<_>>())
            .field("database", &self.database)
            .finish()
    }
}

impl MigrationPlan {
    pub fn managed(&self, kind: ComponentKind) -> Option<bool> {
        self.components
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| c.managed)
    }

    /// The cleaned `config.yaml`.
    pub fn config_yaml(&self) -> &str {
        self.bundle
            .get(CONFIG_YAML)
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }
}

/// Name of the config Secret a QuayEcosystem reads.
pub fn config_secret_name(ecosystem: &QuayEcosystem) -> String {
    ecosystem
        .spec
        .quay
        .as_ref()
        .and_then(|q| q.config_secret_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_CONFIG_SECRET.to_owned())
}

/// Name of the legacy database credentials Secret.
pub fn credentials_secret_name(ecosystem: &QuayEcosystem) -> String {
    ecosystem
        .spec
        .quay
        .as_ref()
        .and_then(|q| q.database.as_ref())
        .and_then(|d| d.credentials_secret_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| old_database_name(&ecosystem.metadata.name.clone().unwrap_or_default()))
}

/// Decides the migration of `ecosystem` whose config Secret is `config_secret` (`None`: not found). Every problem
/// is reported, not only the first, so one round of fixes is enough.
pub fn plan_migration(
    ecosystem: &QuayEcosystem,
    config_secret: Option<&Secret>,
) -> Result<MigrationPlan, Vec<Unsupported>> {
    let mut problems = Vec::new();
    let secret_name = config_secret_name(ecosystem);
    let quay = ecosystem.spec.quay.clone().unwrap_or_default();

    // Object storage: never managed (QuayEcosystem had no managed object storage); local storage cannot move.
    let backends = quay.registry_backends.clone().unwrap_or_default();
    if quay.registry_storage.is_some() {
        problems.push(Unsupported::LocalStorage {
            detail: "spec.quay.registryStorage is set".to_owned(),
        });
    } else if backends.is_empty() {
        problems.push(Unsupported::LocalStorage {
            detail: "spec.quay.registryBackends is empty".to_owned(),
        });
    } else if let Some(local) = backends.iter().find(|b| b.is_local()) {
        problems.push(Unsupported::LocalStorage {
            detail: format!("registry backend `{}` is local", local.name),
        });
    }

    // Database.
    let database = quay.database.clone().unwrap_or_default();
    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
    let postgres_managed = match (
        non_empty(&database.server),
        non_empty(&database.volume_size),
    ) {
        (Some(_), _) => Some(false),
        (None, Some(_)) => Some(true),
        (None, None) => {
            problems.push(Unsupported::EphemeralDatabase);
            None
        }
    };

    // External access.
    let access = quay.external_access.clone().unwrap_or_default();
    let route_managed = access.type_.as_deref() == Some("Route");
    if route_managed {
        let termination = access
            .tls
            .as_ref()
            .and_then(|t| non_empty(&t.termination))
            .unwrap_or_else(|| "passthrough".to_owned());
        if termination != "passthrough" {
            problems.push(Unsupported::RouteTermination { termination });
        }
    }

    // The config bundle.
    let files = match config_secret {
        None => {
            problems.push(Unsupported::ConfigSecretMissing {
                secret: secret_name.clone(),
            });
            None
        }
        Some(secret) => Some(secret_files(secret)),
    };
    let config = files
        .as_ref()
        .and_then(|files| match files.get(CONFIG_YAML) {
            None => {
                problems.push(Unsupported::ConfigYamlMissing {
                    secret: secret_name.clone(),
                });
                None
            }
            Some(bytes) => match std::str::from_utf8(bytes)
                .map_err(|_| "not UTF-8".to_owned())
                .and_then(|t| QuayConfig::parse(t).map_err(|e| e.to_string()))
            {
                Ok(config) => Some(config),
                Err(message) => {
                    problems.push(Unsupported::ConfigYamlInvalid {
                        secret: secret_name.clone(),
                        message,
                    });
                    None
                }
            },
        });

    let (Some(mut files), Some(mut config), Some(postgres_managed), true) =
        (files, config, postgres_managed, problems.is_empty())
    else {
        return Err(problems);
    };

    let redis_managed = ecosystem
        .spec
        .redis
        .as_ref()
        .is_some_and(|r| non_empty(&r.hostname).is_none());
    let mirror_managed = quay.enable_repo_mirroring.unwrap_or(false);
    let clair_managed = ecosystem
        .spec
        .clair
        .as_ref()
        .and_then(|c| c.enabled)
        .unwrap_or(false);

    for key in DEPRECATED_KEYS {
        config.remove(key);
    }
    if postgres_managed {
        remove_all(&mut config, field_group_keys(ComponentKind::Postgres));
    }
    if route_managed {
        // SERVER_HOSTNAME stays: the managed Route keeps serving the registry's host name.
        remove_all(
            &mut config,
            &["PREFERRED_URL_SCHEME", "EXTERNAL_TLS_TERMINATION"],
        );
    }
    if redis_managed {
        remove_all(&mut config, field_group_keys(ComponentKind::Redis));
    }
    if clair_managed {
        remove_all(&mut config, field_group_keys(ComponentKind::Clair));
        // Clair v2's settings (issuer, PSKs of the old scanner) mean nothing to the managed Clair v4.
        let scanner: Vec<String> = config
            .keys()
            .filter(|k| k.starts_with("SECURITY_SCANNER_"))
            .map(str::to_owned)
            .collect();
        for key in scanner {
            config.remove(&key);
        }
    }
    files.insert(CONFIG_YAML.to_owned(), config.to_yaml().into_bytes());

    let mut components = vec![
        Component::new(ComponentKind::ObjectStorage, false),
        Component::new(ComponentKind::Postgres, postgres_managed),
        Component::new(ComponentKind::Route, route_managed),
        Component::new(ComponentKind::Redis, redis_managed),
        Component::new(ComponentKind::Mirror, mirror_managed),
        Component::new(ComponentKind::Clair, clair_managed),
        // No Clair database without the Clair it serves.
        Component::new(ComponentKind::ClairPostgres, clair_managed),
    ];
    if files.contains_key(SSL_CERT) && files.contains_key(SSL_KEY) {
        components.push(Component::new(ComponentKind::Tls, false));
    }

    let database = postgres_managed.then(|| ManagedDatabase {
        credentials_secret: credentials_secret_name(ecosystem),
        volume_size: non_empty(&database.volume_size).unwrap_or_default(),
        storage_class: non_empty(&database.storage_class),
    });
    if let Some(db) = &database {
        // The copied volume keeps the size (and class) the legacy database had; the default (50Gi) could be
        // smaller than the data or need an expansion the StorageClass refuses.
        let postgres = components
            .iter_mut()
            .find(|c| c.kind == ComponentKind::Postgres)
            .expect("postgres is in the list");
        postgres.overrides = Some(Override {
            volume_size: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                db.volume_size.clone(),
            )),
            storage_class_name: db.storage_class.clone(),
            ..Default::default()
        });
    }

    Ok(MigrationPlan {
        name: ecosystem.metadata.name.clone().unwrap_or_default(),
        namespace: ecosystem.metadata.namespace.clone().unwrap_or_default(),
        components,
        bundle: files,
        database,
    })
}

fn remove_all(config: &mut QuayConfig, keys: &[&str]) {
    for key in keys {
        config.remove(key);
    }
}

/// The legacy database's role and database names, read from its credentials Secret (the password is only ever
/// referenced by the copy Job, never read into the operator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseCredentials {
    pub secret: String,
}

/// Checks that the legacy credentials Secret has what the copy needs: the role and database names and the admin
/// password the old database is restarted with.
pub fn database_credentials(
    secret_name: &str,
    secret: Option<&Secret>,
) -> Result<DatabaseCredentials, Unsupported> {
    let secret = secret.ok_or_else(|| Unsupported::CredentialsSecretMissing {
        secret: secret_name.to_owned(),
    })?;
    let files = secret_files(secret);
    for key in [
        CREDENTIALS_USERNAME,
        CREDENTIALS_NAME,
        CREDENTIALS_ROOT_PASSWORD,
    ] {
        if files.get(key).is_none_or(|v| v.is_empty()) {
            return Err(Unsupported::CredentialsKeyMissing {
                secret: secret_name.to_owned(),
                key,
            });
        }
    }
    Ok(DatabaseCredentials {
        secret: secret_name.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    const CONFIG: &str = "SERVER_HOSTNAME: quay.apps.example.com\n\
PREFERRED_URL_SCHEME: https\n\
EXTERNAL_TLS_TERMINATION: false\n\
DB_URI: postgresql://quay:secretpw@example-quayecosystem-quay-postgresql/quay\n\
DB_CONNECTION_ARGS: {}\n\
BUILDLOGS_REDIS: {host: example-quayecosystem-redis, port: 6379}\n\
USER_EVENTS_REDIS: {host: example-quayecosystem-redis, port: 6379}\n\
FEATURE_SECURITY_SCANNER: true\n\
SECURITY_SCANNER_ENDPOINT: https://example-quayecosystem-clair:6060\n\
SECURITY_SCANNER_ISSUER_NAME: security_scanner\n\
FEATURE_REPO_MIRROR: true\n\
FEATURE_SIGNING: false\n\
SIGNING_ENGINE: gpg2\n\
GPG2_PRIVATE_KEY_NAME: key\n\
GPG2_PRIVATE_KEY_FILENAME: signing-private.gpg\n\
GPG2_PUBLIC_KEY_FILENAME: signing-public.gpg\n\
DISTRIBUTED_STORAGE_CONFIG:\n  s3:\n  - S3Storage\n  - {s3_bucket: quay, storage_path: /registry}\n\
DEFAULT_TAG_EXPIRATION: 0443\n";

    fn ecosystem(spec: Value) -> QuayEcosystem {
        serde_json::from_value(json!({
            "apiVersion": "redhatcop.redhat.io/v1alpha1",
            "kind": "QuayEcosystem",
            "metadata": {"name": "example-quayecosystem", "namespace": "quay"},
            "spec": spec,
        }))
        .unwrap()
    }

    /// The manuals' supported set-up: managed database with a volume, S3, passthrough Route, managed Redis,
    /// mirroring and Clair.
    fn supported() -> Value {
        json!({
            "quay": {
                "database": {"volumeSize": "10Gi"},
                "registryBackends": [{"name": "s3", "s3": {"bucketName": "quay"}}],
                "externalAccess": {"type": "Route", "hostname": "quay.apps.example.com",
                                   "tls": {"termination": "passthrough"}},
                "enableRepoMirroring": true,
            },
            "redis": {},
            "clair": {"enabled": true},
        })
    }

    fn config_secret(files: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                files
                    .iter()
                    .map(|(k, v)| {
                        (
                            (*k).to_owned(),
                            k8s_openapi::ByteString(v.as_bytes().to_vec()),
                        )
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn plan(spec: Value) -> Result<MigrationPlan, Vec<Unsupported>> {
        plan_migration(
            &ecosystem(spec),
            Some(&config_secret(&[("config.yaml", CONFIG)])),
        )
    }

    fn with(mut spec: Value, pointer: &str, value: Value) -> Value {
        *spec.pointer_mut(pointer).unwrap() = value;
        spec
    }

    fn managed(plan: &MigrationPlan, kind: ComponentKind) -> bool {
        plan.managed(kind)
            .unwrap_or_else(|| panic!("{kind} missing from {plan:?}"))
    }

    #[test]
    fn object_storage_is_always_unmanaged() {
        let plan = plan(supported()).unwrap();
        assert!(!managed(&plan, ComponentKind::ObjectStorage));
        assert!(plan.config_yaml().contains("DISTRIBUTED_STORAGE_CONFIG"));
    }

    #[test]
    fn local_storage_is_refused_in_each_of_its_forms() {
        let cases = [
            with(
                supported(),
                "/quay/registryBackends",
                json!([{"name": "local", "local": {"storagePath": "/datastorage"}}]),
            ),
            with(supported(), "/quay/registryBackends", json!([])),
            {
                let mut spec = supported();
                spec["quay"]["registryStorage"] = json!({"persistentVolumeSize": "10Gi"});
                spec
            },
            {
                let mut spec = supported();
                spec["quay"]
                    .as_object_mut()
                    .unwrap()
                    .remove("registryBackends");
                spec
            },
        ];
        for spec in cases {
            let problems = plan(spec.clone()).unwrap_err();
            assert!(
                matches!(problems.as_slice(), [Unsupported::LocalStorage { .. }]),
                "{spec}: {problems:?}"
            );
            let failure = problems[0].failure();
            assert_eq!(
                failure.type_.as_str(),
                "QuayEcosystemComponentMigrationFailure"
            );
            assert_eq!(failure.reason.as_str(), "ComponentUnsupported");
            assert!(
                failure
                    .message
                    .contains("cannot migrate local object storage")
            );
        }
    }

    #[test]
    fn database_with_a_volume_and_no_server_becomes_managed_and_loses_its_db_fields() {
        let plan = plan(supported()).unwrap();
        assert!(managed(&plan, ComponentKind::Postgres));
        assert!(!plan.config_yaml().contains("DB_URI"));
        assert!(!plan.config_yaml().contains("DB_CONNECTION_ARGS"));
        let db = plan.database.as_ref().expect("data to copy");
        assert_eq!(
            db.credentials_secret,
            "example-quayecosystem-quay-postgresql"
        );
        assert_eq!(db.volume_size, "10Gi");
        let postgres = plan
            .components
            .iter()
            .find(|c| c.kind == ComponentKind::Postgres)
            .unwrap();
        let overrides = postgres.overrides.as_ref().unwrap();
        assert_eq!(overrides.volume_size.as_ref().unwrap().0, "10Gi");
    }

    #[test]
    fn named_credentials_secret_and_storage_class_are_carried_over() {
        let spec = with(
            supported(),
            "/quay/database",
            json!({"volumeSize": "20Gi", "credentialsSecretName": "db-creds", "storageClass": "fast"}),
        );
        let plan = plan(spec).unwrap();
        let db = plan.database.unwrap();
        assert_eq!(db.credentials_secret, "db-creds");
        assert_eq!(db.storage_class.as_deref(), Some("fast"));
    }

    #[test]
    fn external_database_stays_unmanaged_with_its_config() {
        let spec = with(
            supported(),
            "/quay/database",
            json!({"server": "db.example.com", "volumeSize": "10Gi"}),
        );
        let plan = plan(spec).unwrap();
        assert!(!managed(&plan, ComponentKind::Postgres));
        assert!(plan.database.is_none());
        assert!(
            plan.config_yaml()
                .contains("DB_URI: postgresql://quay:secretpw@")
        );
    }

    #[test]
    fn ephemeral_database_is_refused() {
        for database in [json!({}), json!({"volumeSize": ""}), Value::Null] {
            let mut spec = supported();
            if database.is_null() {
                spec["quay"].as_object_mut().unwrap().remove("database");
            } else {
                spec["quay"]["database"] = database.clone();
            }
            let problems = plan(spec).unwrap_err();
            assert_eq!(problems, vec![Unsupported::EphemeralDatabase], "{database}");
        }
    }

    #[test]
    fn passthrough_route_becomes_a_managed_route_keeping_the_hostname() {
        let plan = plan(supported()).unwrap();
        assert!(managed(&plan, ComponentKind::Route));
        let config = plan.config_yaml();
        assert!(config.contains("SERVER_HOSTNAME: quay.apps.example.com"));
        assert!(!config.contains("PREFERRED_URL_SCHEME"));
        assert!(!config.contains("EXTERNAL_TLS_TERMINATION"));
    }

    #[test]
    fn route_without_tls_settings_is_the_legacy_default_passthrough() {
        let mut spec = supported();
        spec["quay"]["externalAccess"] = json!({"type": "Route"});
        assert!(managed(&plan(spec).unwrap(), ComponentKind::Route));
    }

    #[test]
    fn non_passthrough_route_is_refused() {
        for termination in ["edge", "reencrypt", "none"] {
            let spec = with(
                supported(),
                "/quay/externalAccess/tls/termination",
                json!(termination),
            );
            let problems = plan(spec).unwrap_err();
            assert_eq!(
                problems,
                vec![Unsupported::RouteTermination {
                    termination: termination.to_owned()
                }]
            );
        }
    }

    #[test]
    fn other_external_access_leaves_the_route_unmanaged_and_the_host_settings_alone() {
        for type_ in ["LoadBalancer", "NodePort", "Ingress"] {
            let spec = with(supported(), "/quay/externalAccess/type", json!(type_));
            let plan = plan(spec).unwrap();
            assert!(!managed(&plan, ComponentKind::Route), "{type_}");
            assert!(plan.config_yaml().contains("PREFERRED_URL_SCHEME: https"));
        }
    }

    #[test]
    fn certificate_in_the_bundle_makes_tls_unmanaged() {
        let secret = config_secret(&[
            ("config.yaml", CONFIG),
            ("ssl.cert", "CERT"),
            ("ssl.key", "KEY"),
        ]);
        let plan = plan_migration(&ecosystem(supported()), Some(&secret)).unwrap();
        assert_eq!(plan.managed(ComponentKind::Tls), Some(false));
        assert_eq!(plan.bundle.get("ssl.key").unwrap(), b"KEY");
        // Without the pair, tls is left to the operator's defaulting.
        let plan = plan_migration(
            &ecosystem(supported()),
            Some(&config_secret(&[
                ("config.yaml", CONFIG),
                ("ssl.cert", "CERT"),
            ])),
        )
        .unwrap();
        assert_eq!(plan.managed(ComponentKind::Tls), None);
    }

    #[test]
    fn redis_with_empty_hostname_becomes_managed_and_loses_its_fields() {
        let plan = plan(supported()).unwrap();
        assert!(managed(&plan, ComponentKind::Redis));
        assert!(!plan.config_yaml().contains("BUILDLOGS_REDIS"));
        assert!(!plan.config_yaml().contains("USER_EVENTS_REDIS"));
    }

    #[test]
    fn external_or_absent_redis_stays_unmanaged() {
        let external = with(
            supported(),
            "/redis",
            json!({"hostname": "redis.example.com"}),
        );
        let mut absent = supported();
        absent.as_object_mut().unwrap().remove("redis");
        for spec in [external, absent] {
            let plan = plan(spec.clone()).unwrap();
            assert!(!managed(&plan, ComponentKind::Redis), "{spec}");
            assert!(plan.config_yaml().contains("BUILDLOGS_REDIS"));
        }
    }

    #[test]
    fn mirroring_follows_enable_repo_mirroring() {
        assert!(managed(&plan(supported()).unwrap(), ComponentKind::Mirror));
        let off = with(supported(), "/quay/enableRepoMirroring", json!(false));
        assert!(!managed(&plan(off).unwrap(), ComponentKind::Mirror));
    }

    #[test]
    fn enabled_clair_becomes_managed_and_loses_the_scanner_fields() {
        let plan = plan(supported()).unwrap();
        assert!(managed(&plan, ComponentKind::Clair));
        assert!(managed(&plan, ComponentKind::ClairPostgres));
        let config = plan.config_yaml();
        assert!(!config.contains("FEATURE_SECURITY_SCANNER"), "{config}");
        assert!(!config.contains("SECURITY_SCANNER_"), "{config}");
    }

    #[test]
    fn disabled_clair_stays_unmanaged_with_its_fields() {
        let spec = with(supported(), "/clair/enabled", json!(false));
        let plan = plan(spec).unwrap();
        assert!(!managed(&plan, ComponentKind::Clair));
        assert!(!managed(&plan, ComponentKind::ClairPostgres));
        assert!(plan.config_yaml().contains("SECURITY_SCANNER_ENDPOINT"));
    }

    #[test]
    fn deprecated_signing_keys_are_removed_and_other_values_kept_as_written() {
        let plan = plan(supported()).unwrap();
        let config = plan.config_yaml();
        for key in DEPRECATED_KEYS {
            assert!(!config.contains(key), "{key} left in {config}");
        }
        // A value the operator does not own keeps its text (YAML 1.1 would read 0443 as octal).
        assert!(config.contains("DEFAULT_TAG_EXPIRATION: 0443"), "{config}");
        assert!(config.contains("FEATURE_REPO_MIRROR: true"));
    }

    #[test]
    fn other_bundle_files_are_copied() {
        let secret = config_secret(&[("config.yaml", CONFIG), ("extra_ca_cert_corp.crt", "CA")]);
        let plan = plan_migration(&ecosystem(supported()), Some(&secret)).unwrap();
        assert_eq!(plan.bundle.get("extra_ca_cert_corp.crt").unwrap(), b"CA");
    }

    #[test]
    fn config_secret_problems_are_config_migration_failures() {
        let missing = plan_migration(&ecosystem(supported()), None).unwrap_err();
        assert_eq!(
            missing,
            vec![Unsupported::ConfigSecretMissing {
                secret: "quay-enterprise-config-secret".to_owned()
            }]
        );
        let failure = missing[0].failure();
        assert_eq!(
            failure.type_.as_str(),
            "QuayEcosystemConfigMigrationFailure"
        );
        assert_eq!(failure.reason.as_str(), "ConfigBundleSecretInvalid");

        let no_config = plan_migration(&ecosystem(supported()), Some(&config_secret(&[])));
        assert!(matches!(
            no_config.unwrap_err().as_slice(),
            [Unsupported::ConfigYamlMissing { .. }]
        ));
        let invalid = plan_migration(
            &ecosystem(supported()),
            Some(&config_secret(&[("config.yaml", "- a list")])),
        );
        assert!(matches!(
            invalid.unwrap_err().as_slice(),
            [Unsupported::ConfigYamlInvalid { .. }]
        ));
    }

    #[test]
    fn the_config_secret_named_in_the_spec_is_the_one_read() {
        let spec = with(supported(), "/quay/enableRepoMirroring", json!(true));
        let mut eco = ecosystem(spec);
        eco.spec.quay.as_mut().unwrap().config_secret_name = Some("my-config".to_owned());
        assert_eq!(config_secret_name(&eco), "my-config");
        let problems = plan_migration(&eco, None).unwrap_err();
        assert_eq!(
            problems,
            vec![Unsupported::ConfigSecretMissing {
                secret: "my-config".to_owned()
            }]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut spec = supported();
        spec["quay"]["database"] = json!({});
        spec["quay"]["registryBackends"] = json!([{"name": "local", "local": {}}]);
        spec["quay"]["externalAccess"]["tls"]["termination"] = json!("edge");
        let problems = plan_migration(&ecosystem(spec), None).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
    }

    #[test]
    fn messages_and_debug_output_carry_no_secret_values() {
        let plan = plan(supported()).unwrap();
        assert!(!format!("{plan:?}").contains("secretpw"));
        let unmanaged_db = with(
            supported(),
            "/quay/database",
            json!({"server": "db", "volumeSize": "1Gi"}),
        );
        let plan = self::plan(unmanaged_db).unwrap();
        assert!(!format!("{plan:?}").contains("secretpw"));
    }

    #[test]
    fn credentials_secret_must_name_role_database_and_admin_password() {
        let full = config_secret(&[
            ("database-username", "quay"),
            ("database-name", "quay"),
            ("database-root-password", "root"),
            ("database-password", "pw"),
        ]);
        assert!(database_credentials("c", Some(&full)).is_ok());
        let without_root =
            config_secret(&[("database-username", "quay"), ("database-name", "quay")]);
        let err = database_credentials("c", Some(&without_root)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "database credentials Secret `c` has no `database-root-password`"
        );
        assert_eq!(err.failure().reason.as_str(), "ComponentUnsupported");
        assert!(matches!(
            database_credentials("c", None),
            Err(Unsupported::CredentialsSecretMissing { .. })
        ));
    }
}
