//! The controller's decisions that need no API server: component health ([`status`]). The reconcile loop that
//! observes the cluster and applies renders is being built on top of these (see the controller issue).

pub mod status;
