//! What every reconcile gets: the client, metrics and the event recorder.

use std::sync::Arc;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};

use super::apply::Applier;
use crate::telemetry::Metrics;

/// The operator's connection to OpenBao.
#[derive(Clone)]
pub struct OpenBaoAccess {
    /// Administrative client (mounts, keys, policies, roles).
    pub admin: crate::adapters::openbao::Admin,
    /// OpenBao's address as workloads reach it.
    pub workload_addr: String,
}

/// The image of the project's own workloads, at this build's version.
pub fn default_image() -> String {
    format!("ghcr.io/vardhub/vardhub:{}", env!("CARGO_PKG_VERSION"))
}

/// Shared state of the controllers.
#[derive(Clone)]
pub struct Context {
    /// Client of the Kubernetes API.
    pub client: Client,
    /// The operator's metrics.
    pub metrics: Arc<Metrics>,
    /// Publishes events on transitions and errors.
    pub recorder: Recorder,
    /// OpenBao, when the operator was given a connection.
    pub openbao: Option<OpenBaoAccess>,
    /// Image of the project's own workloads (the pseudonymisation service, ...).
    pub image: String,
    /// The S3 server, when the operator was given a connection.
    pub storage: Option<Arc<crate::adapters::s3::Storage>>,
    /// Where workloads may connect (DNS, the API server, OpenBao, S3), resolved at start.
    pub paths: super::network::Paths,
    /// Failures in a row per object, for the requeue after the next.
    pub backoff: Arc<super::backoff::Backoff>,
    /// The last external pass of each resource, so that it is not repeated needlessly.
    pub passes: Arc<super::passes::Passes>,
    /// The longest one reconcile may run before it is cancelled and reported.
    pub deadline: std::time::Duration,
    /// Every Dataset, as the operator's shared watch keeps it (without managed fields). Empty
    /// and never ready until the controllers run.
    pub datasets: kube::runtime::reflector::Store<crate::api::Dataset>,
}

impl Context {
    /// A context whose events are reported as `vardhub-operator` from `instance`.
    pub fn new(client: Client, metrics: Arc<Metrics>, instance: Option<String>) -> Self {
        let reporter = Reporter {
            controller: "vardhub-operator".into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            openbao: None,
            storage: None,
            paths: Default::default(),
            backoff: Default::default(),
            passes: Default::default(),
            deadline: super::driver::DEADLINE,
            datasets: kube::runtime::reflector::store().0,
            image: default_image(),
        }
    }

    /// The applier of one controller (its own field manager).
    pub fn applier(&self, controller: &'static str) -> Applier {
        Applier::new(self.client.clone(), controller, self.metrics.clone())
    }
}
