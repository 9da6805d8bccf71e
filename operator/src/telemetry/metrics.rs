//! Prometheus metrics of the controllers.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabels {
    controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    controller: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    controller: String,
    kind: String,
    verb: String,
}

/// The operator's metrics: reconciles, errors, durations, API writes and requests to OpenBao
/// and the S3 server.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ControllerLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    durations: Family<ControllerLabels, Histogram>,
    writes: Family<WriteLabels, Counter>,
    calls: super::calls::Calls,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vardhub");
        let reconciles = Family::<ControllerLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let durations = Family::<ControllerLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        let writes = Family::<WriteLabels, Counter>::default();
        let calls = super::calls::Calls::default();
        registry.register(
            "reconciles",
            "Reconciles run, by controller",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by controller and reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles, by controller",
            durations.clone(),
        );
        registry.register(
            "api_writes",
            "Writes sent to the Kubernetes API, by controller, kind and verb",
            writes.clone(),
        );
        registry.register(
            "external_calls",
            "Requests sent to OpenBao and the S3 server, by controller, server, operation and \
             outcome",
            calls.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            durations,
            writes,
            calls,
        }
    }
}

impl Metrics {
    /// Records a finished reconcile.
    pub fn reconciled(&self, controller: &str, took: Duration) {
        let labels = ControllerLabels {
            controller: controller.into(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Records a failed reconcile.
    pub fn reconcile_error(&self, controller: &str, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                controller: controller.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// Records one write to the Kubernetes API.
    pub fn api_write(&self, controller: &str, kind: &str, verb: &str) {
        self.writes
            .get_or_create(&WriteLabels {
                controller: controller.into(),
                kind: kind.into(),
                verb: verb.into(),
            })
            .inc();
    }

    /// The counters of requests to OpenBao and the S3 server (see [`super::calls`]).
    pub(super) fn calls(&self) -> super::calls::Calls {
        self.calls.clone()
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family() {
        let m = Metrics::default();
        m.reconciled("regionalnode", Duration::from_millis(12));
        m.reconcile_error("regionalnode", "ApplyFailed");
        m.api_write("regionalnode", "Namespace", "apply");
        let text = m.encode();
        assert!(text.contains("vardhub_reconciles_total{controller=\"regionalnode\"} 1"));
        assert!(text.contains(
            "vardhub_reconcile_errors_total{controller=\"regionalnode\",reason=\"ApplyFailed\"} 1"
        ));
        assert!(text.contains("vardhub_api_writes_total{controller=\"regionalnode\",kind=\"Namespace\",verb=\"apply\"} 1"));
        assert!(
            text.contains(
                "vardhub_reconcile_duration_seconds_count{controller=\"regionalnode\"} 1"
            )
        );
    }
}
