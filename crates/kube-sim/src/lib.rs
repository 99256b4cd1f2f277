//! kube-sim: a Kubernetes API server simulator for tests. It speaks the real HTTP protocol on
//! 127.0.0.1 so kube-rs clients, operator binaries and kubectl 1.32 run against it unchanged.
//! See `README.md` for usage and for what it does *not* simulate.
//!
//! Module map (one concern each):
//! - [`store`]: objects, global resourceVersion, watch history, the write pipeline
//! - [`resources`]: the registry of served kinds; [`crd`]: CRDs, pruning, defaults, bundles
//! - [`server`]: HTTP routing, non-resource endpoints; [`handlers`]: get/list/watch/writes
//! - [`discovery`], [`openapi`]: discovery documents and the minimal OpenAPI v3
//! - [`patch`]: JSON/merge/strategic patches; [`ssa`]: server-side apply and managedFields
//! - [`gc`]: ownerReference GC, namespace and CRD cleanup; [`controllers`]: simulated controllers
//! - [`faults`], [`metrics`], [`errors`]: fault injection, request counters, Status bodies
//! - [`validation`]: OpenAPI schema validation of custom resources
//! - [`sim`]: the handle tests use
//! - [`gateway_api`], [`cert_manager`]: those projects' CRDs, and a simulated cert-manager issuer

pub mod authz;
pub mod cert_manager;
pub mod controllers;
pub mod crd;
pub mod defaults;
pub mod discovery;
pub mod errors;
pub mod faults;
pub mod gateway_api;
pub mod gc;
pub mod handlers;
pub mod metrics;
pub mod openapi;
pub mod patch;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod sim;
pub mod ssa;
pub mod store;
pub mod util;
pub mod validation;

pub use controllers::{Controller, ControllerSettings, Mode};
pub use errors::{ApiError, SimError};
pub use faults::FaultRule;
pub use metrics::Metrics;
pub use sim::{Options, Simulator};
