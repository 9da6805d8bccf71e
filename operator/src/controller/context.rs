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
    /// True once that watch has listed every Dataset; never while no watch runs. Waited on
    /// with `wait_for`, which wakes every waiter: kube's `Store::wait_until_ready` wakes only
    /// the last of several tasks waiting at once, so a catalogue reconcile that waited beside
    /// the dataset controller's start hung until its deadline.
    pub datasets_listed: tokio::sync::watch::Receiver<bool>,
    /// The data hubs and regional nodes as the dataset controller's watches of them keep them:
    /// each event reaches the store before it wakes a dataset, so a dataset reads its holder
    /// here, and asks the API server only for one the store does not hold (before the first
    /// listing, or without a watch). Empty until the controllers run.
    pub holders: Holders,
    /// The recent look at each dataset address, shared by the datasets there.
    pub listings: Arc<super::listings::Listings>,
}

/// The stores a dataset reads its holder from (see [`Context::holders`]).
#[derive(Clone)]
pub struct Holders {
    /// Every DataHub.
    pub hubs: kube::runtime::reflector::Store<crate::api::DataHub>,
    /// Every RegionalNode.
    pub nodes: kube::runtime::reflector::Store<crate::api::RegionalNode>,
}

impl Default for Holders {
    fn default() -> Self {
        Self {
            hubs: kube::runtime::reflector::store().0,
            nodes: kube::runtime::reflector::store().0,
        }
    }
}

/// Waits until `listed` says the dataset watch has listed every Dataset; false when the watch
/// is gone first. Any number of tasks may wait at once.
pub async fn datasets_listed(listed: &tokio::sync::watch::Receiver<bool>) -> bool {
    listed.clone().wait_for(|l| *l).await.is_ok()
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
            datasets_listed: tokio::sync::watch::channel(false).1,
            holders: Holders::default(),
            listings: Default::default(),
            image: default_image(),
        }
    }

    /// The applier of one controller (its own field manager).
    pub fn applier(&self, controller: &'static str) -> Applier {
        Applier::new(self.client.clone(), controller, self.metrics.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn every_task_waiting_for_the_dataset_listing_wakes() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let rx = rx.clone();
                tokio::spawn(async move { super::datasets_listed(&rx).await })
            })
            .collect();
        tokio::task::yield_now().await;
        tx.send_replace(true);
        for w in waiters {
            let woke = tokio::time::timeout(Duration::from_secs(5), w).await;
            assert!(matches!(woke, Ok(Ok(true))), "{woke:?}");
        }
        let (tx, rx) = tokio::sync::watch::channel(false);
        drop(tx);
        assert!(!super::datasets_listed(&rx).await, "no watch, never listed");
    }
}
