//! Fault injection for reliability tests (spec §9 SHOULD): per verb/resource error answers
//! (409, 429, 500, 503, 403, 504) by count or probability, and added latency. Watch drops,
//! restarts and history compaction live on the `Simulator` handle because they act on the
//! store and on open streams.

use crate::errors::ApiError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// One injected failure. Verbs are the Kubernetes request verbs: get, list, watch, create,
/// update, patch, delete, deletecollection. `resource` is a plural ("configmaps"), optionally
/// with a subresource ("deployments/status").
#[derive(Debug, Clone)]
pub struct FaultRule {
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub namespace: Option<String>,
    pub code: u16,
    /// Fire only this many times (None = unlimited).
    pub times: Option<u32>,
    /// Chance to fire per matching request (1.0 = always).
    pub probability: f64,
}

impl FaultRule {
    /// Fail every matching request with `code` (until narrowed with the builder methods).
    pub fn new(code: u16) -> Self {
        FaultRule {
            verb: None,
            resource: None,
            namespace: None,
            code,
            times: None,
            probability: 1.0,
        }
    }
    pub fn verb(mut self, v: &str) -> Self {
        self.verb = Some(v.into());
        self
    }
    pub fn resource(mut self, r: &str) -> Self {
        self.resource = Some(r.into());
        self
    }
    pub fn namespace(mut self, n: &str) -> Self {
        self.namespace = Some(n.into());
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = p;
        self
    }

    /// The error a real apiserver (or its etcd / priority-and-fairness layer) answers with.
    pub fn error(&self, resource: &str, group: &str, name: &str) -> ApiError {
        match self.code {
            409 => ApiError::conflict_modified(resource, group, name),
            429 => ApiError::TooManyRequests("Too many requests, please try again later.".into()),
            503 => ApiError::ServiceUnavailable(
                "the server is currently unable to handle the request".into(),
            ),
            504 => ApiError::Timeout(
                "the server was unable to return a response in the time allotted".into(),
            ),
            403 => ApiError::Forbidden {
                message: format!("{resource} is forbidden: injected by kube-sim"),
                cause: None,
            },
            404 => ApiError::not_found(resource, group, name),
            _ => ApiError::Internal("Internal error occurred: injected by kube-sim".into()),
        }
    }
}

#[derive(Debug, Default)]
pub struct Faults {
    pub rules: Vec<FaultRule>,
    pub latency: Duration,
    /// Draws for `probability` rules; seeded ones make a fault schedule repeatable (which requests fire still
    /// depends on the order the clients send them in).
    rng: Option<StdRng>,
}

impl Faults {
    /// Draw the `probability` of rules from a generator seeded with `seed` instead of the thread's.
    pub fn seed(&mut self, seed: u64) {
        self.rng = Some(StdRng::seed_from_u64(seed));
    }

    /// First rule that fires for this request (consuming one of its `times`).
    pub fn check(&mut self, verb: &str, resource: &str, namespace: &str) -> Option<FaultRule> {
        let mut thread_rng = rand::rng();
        let rng: &mut dyn rand::RngCore = match self.rng.as_mut() {
            Some(seeded) => seeded,
            None => &mut thread_rng,
        };
        let mut fired = None;
        for r in self.rules.iter_mut() {
            if r.verb.as_deref().is_some_and(|v| v != verb) {
                continue;
            }
            if r.resource.as_deref().is_some_and(|x| x != resource) {
                continue;
            }
            if r.namespace.as_deref().is_some_and(|x| x != namespace) {
                continue;
            }
            if r.times == Some(0) {
                continue;
            }
            if r.probability < 1.0 && rng.random::<f64>() >= r.probability {
                continue;
            }
            if let Some(t) = r.times.as_mut() {
                *t -= 1;
            }
            fired = Some(r.clone());
            break;
        }
        self.rules.retain(|r| r.times != Some(0));
        fired
    }
}
