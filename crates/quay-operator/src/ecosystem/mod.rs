//! QuayEcosystem → QuayRegistry migration, the pure part: what a legacy `QuayEcosystem` and its config Secret
//! become (a QuayRegistry, a cleaned config bundle, the managed database's data copy), or why they cannot be
//! migrated. No API calls here; `controller::ecosystem` observes the cluster and applies what this decides.
//!
//! - [`mapping`]: QuayEcosystem + old config Secret → [`MigrationPlan`] or a list of [`Unsupported`] problems.
//! - [`check`]: the planned QuayRegistry validated like any other, before anything is written.
//! - [`objects`]: the objects the migration creates or changes, built from a plan.
//! - [`conditions`]: the failure conditions written on the QuayEcosystem (types and reasons of upstream).

pub mod check;
pub mod conditions;
pub mod mapping;
pub mod objects;

pub use conditions::{ConditionType, FailureReason};
pub use mapping::{
    DEPRECATED_KEYS, DatabaseCredentials, ManagedDatabase, MigrationPlan, Unsupported,
    database_credentials, plan_migration,
};

/// Label put on every object the migration creates or changes, with the QuayEcosystem's name: what the migration
/// controller watches, and how an object is recognised as the migration's own after a restart.
pub const ECOSYSTEM_LABEL: &str = "quay-operator/quayecosystem";
/// Label of the data-copy Job (upstream's `quay-operator/migration-component`).
pub const MIGRATION_COMPONENT_LABEL: &str = "quay-operator/migration-component";
/// The legacy operator's config Secret when `spec.quay.configSecretName` is empty.
pub const DEFAULT_CONFIG_SECRET: &str = "quay-enterprise-config-secret";

/// Name of the config bundle Secret the migration creates. A fixed name (upstream used `generateName`) so that an
/// operator restarted mid-migration finds it instead of creating a second one.
pub fn bundle_secret_name(ecosystem: &str) -> String {
    format!("{ecosystem}-config-bundle-migrated")
}

/// The legacy operator's database Deployment and Service.
pub fn old_database_name(ecosystem: &str) -> String {
    format!("{ecosystem}-quay-postgresql")
}

/// The new database's volume: the PVC the QuayRegistry's managed postgres uses (`render::postgres`).
pub fn new_database_pvc_name(ecosystem: &str) -> String {
    format!("{ecosystem}-quay-postgres-13")
}

/// The new database's role and database name, as the managed keys' default `DB_URI` names them.
pub fn new_database_name(ecosystem: &str) -> String {
    format!("{ecosystem}-quay-database")
}

/// The data-copy Job.
pub fn migration_job_name(ecosystem: &str) -> String {
    format!("{ecosystem}-quay-postgres-migration")
}
