//! The controller's decisions that need no API server: component health ([`status`]) and whether an object needs
//! applying ([`diff`]). The reconcile loop that observes the cluster and applies renders is built on top of these
//! (see the controller issue).

pub mod diff;
pub mod status;
