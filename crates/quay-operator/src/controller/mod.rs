//! The controller: observe → render → diff → apply → report, driven by label-scoped watches.
//!
//! The decisions that need no API server live in [`status`] (component health) and [`diff`] (whether an object
//! needs applying) and are unit-tested; [`reconcile`] and [`run`] are the thin shell that talks to the cluster.

pub mod cache;
pub mod commands;
pub mod context;
pub mod diff;
pub mod ecosystem;
pub mod kinds;
pub mod leader;
pub mod metrics;
pub mod postgres_upgrade;
mod preview;
pub mod reconcile;
mod route_probe;
pub mod run;
pub mod status;

pub use run::{RunOptions, discover, run};

/// Namespace of OpenShift console dashboards (the Grafana dashboard ConfigMap).
pub const GRAFANA_DASHBOARD_NAMESPACE: &str = "openshift-config-managed";
