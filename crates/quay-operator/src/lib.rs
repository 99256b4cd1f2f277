//! quay-operator-rs: deploys and runs Red Hat Quay registries from `QuayRegistry` resources.
//!
//! The crate is split so that everything that decides *what* the cluster should hold is pure:
//! [`api`] (the CRD types), [`config`] (the config bundle, managed keys, validation) and [`render`]
//! (QuayRegistry + bundle + keys + cluster facts → desired objects).

pub mod api;
pub mod cli;
pub mod config;
pub mod controller;
pub mod ecosystem;
pub mod install;
pub mod render;

/// The Quay version deployed when `QUAY_VERSION` is not set.
pub const DEFAULT_QUAY_VERSION: &str = "v3.11.0";
