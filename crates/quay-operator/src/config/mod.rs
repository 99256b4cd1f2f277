//! The config bundle, Quay's config and its field groups, the managed keys, and every check that must pass
//! before anything rolls out.

pub mod bundle;
pub mod certificates;
pub mod field_groups;
pub mod hash;
pub mod managed_keys;
pub mod problem;
pub mod quay_config;
pub mod upgrade;
pub mod validate;

pub use bundle::ConfigBundle;
pub use managed_keys::ManagedKeys;
pub use problem::{Problem, Reason, RenderError, Severity, ValidationReport};
pub use quay_config::{QuayConfig, QuayConfigError};
pub use validate::validate;
