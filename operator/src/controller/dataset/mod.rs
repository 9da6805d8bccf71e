//! The `Dataset` controller: resolves where the dataset's data lives into distributions
//! (from its stage and the hub or node holding it) and reports them in the status, where
//! the catalogue picks them up. It never touches the data.
//!
//! Pipeline: dereference the holder (I/O) → [`locate::distributions`] (pure) → status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::conditions::{self, Desired, types};
use super::context::Context;
use super::status::{self, HasConditions};
use crate::api::{DataHub, Dataset, DatasetStatus, RegionalNode};
use crate::catalog::locate::{self, Holder};

/// Name of the controller: its field manager is `vardhub-dataset`.
pub const CONTROLLER: &str = "dataset";

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the holder failed.
    #[error("reading the dataset's holder failed: {0}")]
    Read(#[source] kube::Error),
    /// Writing the status failed.
    #[error("writing the status failed: {0}")]
    Status(#[source] kube::Error),
}

impl HasConditions for Dataset {
    type Status = DatasetStatus;
    fn status(&self) -> Option<&DatasetStatus> {
        self.status.as_ref()
    }
    fn conditions(
        status: &DatasetStatus,
    ) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
        &status.common.conditions
    }
}

/// Reconciles one dataset.
#[tracing::instrument(skip_all, fields(object = %format!("{}/{}", ds.namespace().unwrap_or_default(), ds.name_any())))]
pub async fn reconcile(ds: Arc<Dataset>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let location = &ds.spec.location;
    let hub;
    let node;
    let holder = if let Some(h) = &location.data_hub {
        hub = Api::<DataHub>::all(ctx.client.clone())
            .get_opt(&h.name)
            .await
            .map_err(Error::Read)?;
        hub.as_ref().map(Holder::Hub)
    } else if let Some(n) = &location.regional_node {
        node = Api::<RegionalNode>::all(ctx.client.clone())
            .get_opt(&n.name)
            .await
            .map_err(Error::Read)?;
        node.as_ref().map(Holder::Node)
    } else {
        None
    };
    let resolved = locate::distributions(location, holder);
    ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    let (desired, distributions) = match resolved {
        Ok(d) => (
            vec![
                Desired::yes(
                    types::READY,
                    "Located",
                    format!("{} distribution(s) derived from spec.location", d.len()),
                ),
                Desired::no(types::DEGRADED, "NoErrors", "the location resolves"),
            ],
            d,
        ),
        Err(e) => {
            ctx.metrics
                .reconcile_error(CONTROLLER, "LocationUnresolved");
            let mut c = conditions::failed("LocationUnresolved", &e.to_string());
            c.retain(|d| d.type_ != types::PROGRESSING);
            (c, Vec::new())
        }
    };
    let generation = ds.metadata.generation;
    let current = ds.status.clone().unwrap_or_default();
    let new = DatasetStatus {
        common: conditions::common_status(
            &current.common,
            &desired,
            generation,
            &Time(k8s_openapi::jiff::Timestamp::now()),
        ),
        distributions,
    };
    status::update(&ctx, CONTROLLER, ds.as_ref(), &new)
        .await
        .map_err(Error::Status)?;
    // A missing holder is watched: its creation triggers a reconcile.
    Ok(Action::await_change())
}

/// Backoff after a failed reconcile.
pub fn error_policy(_ds: Arc<Dataset>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_error(
        CONTROLLER,
        match error {
            Error::Read(_) => "ReadFailed",
            Error::Status(_) => "StatusUpdateFailed",
        },
    );
    Action::requeue(Duration::from_secs(30))
}
