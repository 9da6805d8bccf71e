//! Prometheus metrics of the controllers.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
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
    in_flight: Family<ControllerLabels, Gauge>,
    finished: Family<ControllerLabels, Gauge>,
    /// The UIDs behind `finished`, per controller.
    finished_uids: Mutex<HashMap<&'static str, HashSet<String>>>,
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
        let in_flight = Family::<ControllerLabels, Gauge>::default();
        let finished = Family::<ControllerLabels, Gauge>::default();
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
        registry.register(
            "reconciles_in_flight",
            "Reconciles running now, by controller",
            in_flight.clone(),
        );
        registry.register(
            "objects_reconciled",
            "Objects this process has reconciled to the end at least once (status written or \
             error reported), by controller; an object leaves the count when it is deleted",
            finished.clone(),
        );
        Self {
            registry,
            reconciles,
            errors,
            durations,
            writes,
            calls,
            in_flight,
            finished,
            finished_uids: Mutex::default(),
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

    /// Counts a reconcile of `controller` as running until the guard is dropped.
    pub fn in_flight(&self, controller: &str) -> InFlight {
        let gauge = self
            .in_flight
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .clone();
        gauge.inc();
        InFlight(gauge)
    }

    /// Records that the object with `uid` has been reconciled to the end once more.
    pub fn finished(&self, controller: &'static str, uid: &str) {
        let mut uids = self.finished_uids.lock().unwrap_or_else(|e| e.into_inner());
        let set = uids.entry(controller).or_default();
        if set.insert(uid.to_owned()) {
            self.set_finished(controller, set.len());
        }
    }

    /// Records that the object with `uid` is gone.
    pub fn forget(&self, controller: &'static str, uid: &str) {
        let mut uids = self.finished_uids.lock().unwrap_or_else(|e| e.into_inner());
        let set = uids.entry(controller).or_default();
        if set.remove(uid) {
            self.set_finished(controller, set.len());
        }
    }

    fn set_finished(&self, controller: &str, n: usize) {
        self.finished
            .get_or_create(&ControllerLabels {
                controller: controller.into(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
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

/// A running reconcile, counted in `vardhub_reconciles_in_flight` until dropped.
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
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

    #[test]
    fn counts_running_reconciles_and_distinct_objects() {
        let m = Metrics::default();
        let running = m.in_flight("dataset");
        assert!(
            m.encode()
                .contains("vardhub_reconciles_in_flight{controller=\"dataset\"} 1")
        );
        m.finished("dataset", "uid-a");
        m.finished("dataset", "uid-a");
        m.finished("dataset", "uid-b");
        drop(running);
        let text = m.encode();
        assert!(text.contains("vardhub_reconciles_in_flight{controller=\"dataset\"} 0"));
        assert!(text.contains("vardhub_objects_reconciled{controller=\"dataset\"} 2"));
        m.forget("dataset", "uid-a");
        m.forget("dataset", "uid-c");
        assert!(
            m.encode()
                .contains("vardhub_objects_reconciled{controller=\"dataset\"} 1")
        );
    }
}
