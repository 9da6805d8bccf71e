//! The `CatalogService` controller.
//!
//! Pipeline: build ([`build`], pure) → apply and prune (I/O) → list the namespace's datasets
//! (I/O) → render the catalogue ([`crate::catalog`], pure) → status with the number of
//! datasets, the digest the served catalogue also carries, and `Ready` once the component is
//! available. A render that changes nothing writes nothing.

pub mod build;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply::{Owner, stamp};
use super::conditions::{self, Desired, types};
use super::context::Context;
use super::driver::{Failure, Reconciled};
use super::status::HasConditions;
use crate::api::{CatalogService, CatalogServiceStatus, CommonStatus};
use crate::catalog::Catalogue;

/// Name of the controller: its field manager is `vardhub-catalog`.
pub const CONTROLLER: &str = "catalog";
/// Condition type: the catalogue renders from the selected datasets.
pub const RENDERED: &str = "CatalogRendered";

/// What can go wrong, one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid in a way the schema cannot express.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Building the desired objects failed.
    #[error("building the catalogue's objects failed: {0}")]
    Build(#[from] serde_json::Error),
    /// Applying or pruning objects failed.
    #[error("applying the catalogue's objects failed: {0}")]
    Apply(#[source] kube::Error),
    /// An object to be written exists and belongs to someone else.
    #[error("{0}")]
    Foreign(#[from] crate::controller::apply::Foreign),
    /// The operator's watch of the datasets has stopped (the operator is shutting down).
    #[error("the operator's watch of the datasets has stopped")]
    NoDatasetWatch,
    /// Writing the status failed.
    #[error("writing the status failed: {0}")]
    Status(#[source] kube::Error),
    /// The reconcile ran past its deadline and was cancelled.
    #[error("the reconcile took longer than {0:?} and was cancelled")]
    TimedOut(Duration),
}

impl Error {
    /// The CamelCase reason used in conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "InvalidSpec",
            Error::Build(_) => "BuildFailed",
            Error::Apply(_) => "ApplyFailed",
            Error::Foreign(_) => "Conflict",
            Error::NoDatasetWatch => "DatasetWatchStopped",
            Error::Status(_) => "StatusUpdateFailed",
            Error::TimedOut(_) => "DeadlineExceeded",
        }
    }
}

impl Failure for Error {
    fn reason(&self) -> &'static str {
        Error::reason(self)
    }
    fn needs_new_spec(&self) -> bool {
        matches!(self, Error::Invalid { .. })
    }
    fn conditions(&self) -> Vec<Desired> {
        let advice = match self {
            Error::Invalid { .. } => "correct the spec",
            _ => "the operator retries; see its log and events",
        };
        let message = format!("{self}; {advice}");
        let mut c = conditions::failed(self.reason(), &message);
        c.push(Desired::no(RENDERED, self.reason(), message));
        c
    }
    fn write(error: kube::Error) -> Self {
        Error::Status(error)
    }
    fn deadline(after: Duration) -> Self {
        Error::TimedOut(after)
    }
}

impl HasConditions for CatalogService {
    type Status = CatalogServiceStatus;
    fn status(&self) -> Option<&CatalogServiceStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &CatalogServiceStatus) -> &[Condition] {
        &status.common.conditions
    }
}

/// What a converged reconcile learned.
pub struct Rendered {
    catalogue: Catalogue,
    available: bool,
}

impl Reconciled for CatalogService {
    const CONTROLLER: &'static str = CONTROLLER;
    const OWN_CONDITIONS: &'static [&'static str] = &[RENDERED];
    type Error = Error;
    type Observed = Rendered;

    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }

    async fn steps(&self, ctx: &Context) -> Result<Rendered, Error> {
        run_pipeline(self, ctx).await
    }

    fn converged(&self, r: &Rendered, _ctx: &Context) -> (Vec<Desired>, Action) {
        let pending = if r.catalogue.pending.is_empty() {
            String::new()
        } else {
            format!(
                "; {} selected dataset(s) wait for their location: {}",
                r.catalogue.pending.len(),
                r.catalogue.pending.join(", ")
            )
        };
        let mut c = vec![
            Desired::yes(
                RENDERED,
                "Rendered",
                format!(
                    "{} dataset(s) in {} page(s){pending}",
                    r.catalogue.datasets.len(),
                    r.catalogue.pages()
                ),
            ),
            Desired::no(types::DEGRADED, "NoErrors", "the last reconcile succeeded"),
        ];
        c.extend(conditions::rollout(r.available, "the catalogue is served"));
        let requeue = if r.available { 600 } else { 10 };
        (c, Action::requeue(Duration::from_secs(requeue)))
    }

    fn next_status(
        &self,
        common: CommonStatus,
        observed: Option<&Rendered>,
    ) -> CatalogServiceStatus {
        let mut new = self.status.clone().unwrap_or_default();
        new.common = common;
        if let Some(r) = observed {
            let digest = r.catalogue.digest();
            if new.digest.as_deref() != Some(digest.as_str()) {
                new.digest = Some(digest);
                new.triples = Some(r.catalogue.triples_served() as i64);
                new.last_render = Some(k8s_openapi::jiff::Timestamp::now().to_string());
            }
            new.datasets = Some(r.catalogue.datasets.len() as i32);
            new.pending = Some(r.catalogue.pending.len() as i32);
            new.url = Some(build::url(self));
        }
        new
    }
}

async fn run_pipeline(svc: &CatalogService, ctx: &Context) -> Result<Rendered, Error> {
    let ns = svc.namespace().unwrap_or_default();
    // The selector is checked before anything is applied, so a bad one changes nothing.
    crate::catalog::selector(&svc.spec).map_err(|e| Error::Invalid {
        field: "spec.datasetSelector",
        message: e.to_string(),
    })?;
    let desired = stamp(
        &Owner::of(svc),
        build::children(svc, &ctx.image, &ctx.paths)?,
    );
    let applier = ctx.applier(CONTROLLER);
    applier
        .apply_all(&desired)
        .await
        .map_err(|e| e.split(Error::Apply))?;
    applier
        .prune(&Owner::of(svc), &build::owned_kinds(), &desired)
        .await
        .map_err(Error::Apply)?;

    // From the operator's watch of every Dataset (a listing per render, at 2,100 datasets,
    // held tens of MiB at once): the render waits until the watch has listed them all, so that
    // a start never renders, and records, a catalogue short of datasets.
    if !super::context::datasets_listed(&ctx.datasets_listed).await {
        return Err(Error::NoDatasetWatch);
    }
    let datasets = ctx.datasets.state();
    let catalogue = Catalogue::from_cluster(svc, &datasets).map_err(|e| Error::Invalid {
        field: "spec.datasetSelector",
        message: e.to_string(),
    })?;
    let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&build::object_name(svc))
        .await
        .map_err(Error::Apply)?;
    let available = deployment.as_ref().is_some_and(super::workload::rolled_out);
    Ok(Rendered {
        catalogue,
        available,
    })
}
