//! The operator's own Prometheus metrics (`/metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// Counters of what the operator did.
#[derive(Default)]
pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_errors: Family<ReasonLabels, Counter>,
    pub applies: Family<KindLabels, Counter>,
    pub applies_skipped: Family<KindLabels, Counter>,
    pub status_writes: Counter,
    pub rollouts_blocked: Family<ReasonLabels, Counter>,
}

impl Metrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "quay_operator_reconciles",
            "Reconciles run",
            self.reconciles.clone(),
        );
        registry.register(
            "quay_operator_reconcile_errors",
            "Reconciles that failed, by reason",
            self.reconcile_errors.clone(),
        );
        registry.register(
            "quay_operator_applies",
            "Objects written with server-side apply",
            self.applies.clone(),
        );
        registry.register(
            "quay_operator_applies_skipped",
            "Objects whose desired state already held (no request sent)",
            self.applies_skipped.clone(),
        );
        registry.register(
            "quay_operator_status_writes",
            "QuayRegistry status writes",
            self.status_writes.clone(),
        );
        registry.register(
            "quay_operator_rollouts_blocked",
            "Reconciles that ended with RolloutBlocked, by reason",
            self.rollouts_blocked.clone(),
        );
    }
}
