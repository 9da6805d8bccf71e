//! The `CatalogService` controller.
//!
//! Pipeline: build ([`build`], pure) → apply and prune (I/O) → list the namespace's datasets
//! (I/O) → render the catalogue ([`crate::catalog`], pure) → status with the number of
//! datasets, the digest the served catalogue also carries, and `Ready` once the component is
//! available. A render that changes nothing writes nothing.

pub mod build;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply::{Owner, stamp};
use super::conditions::{self, Desired, types};
use super::context::Context;
use super::status::{self, HasConditions};
use crate::api::{CatalogService, CatalogServiceStatus, Dataset};
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
    /// Listing the datasets failed.
    #[error("listing the datasets failed: {0}")]
    List(#[source] kube::Error),
    /// Writing the status failed.
    #[error("writing the status failed: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    /// The CamelCase reason used in conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "InvalidSpec",
            Error::Build(_) => "BuildFailed",
            Error::Apply(_) => "ApplyFailed",
            Error::Foreign(_) => "Conflict",
            Error::List(_) => "ListFailed",
            Error::Status(_) => "StatusUpdateFailed",
        }
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

struct Rendered {
    catalogue: Catalogue,
    available: bool,
}

/// Reconciles one catalogue service.
#[tracing::instrument(skip_all, fields(object = %format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())))]
pub async fn reconcile(svc: Arc<CatalogService>, ctx: Arc<Context>) -> Result<Action, Error> {
    if svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let paused = super::is_paused(&svc.metadata);
    let result = if paused {
        None
    } else {
        Some(run_pipeline(&svc, &ctx).await)
    };
    ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    let current = svc.status.clone().unwrap_or_default();
    let mut new = current.clone();
    let (desired, action) = match &result {
        None => (
            conditions::paused(
                &current.common.conditions,
                &[types::READY, RENDERED, types::PROGRESSING, types::DEGRADED],
            ),
            Action::await_change(),
        ),
        Some(Ok(r)) => {
            let digest = r.catalogue.digest();
            if current.digest.as_deref() != Some(digest.as_str()) {
                new.digest = Some(digest);
                new.triples = Some(r.catalogue.triples_served() as i64);
                new.last_render = Some(k8s_openapi::jiff::Timestamp::now().to_string());
            }
            new.datasets = Some(r.catalogue.datasets.len() as i32);
            new.pending = Some(r.catalogue.pending.len() as i32);
            new.url = Some(build::url(&svc));
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
        Some(Err(e)) => {
            ctx.metrics.reconcile_error(CONTROLLER, e.reason());
            tracing::warn!(reason = e.reason(), error = %e, "reconcile failed");
            let advice = match e {
                Error::Invalid { .. } => "correct the spec",
                _ => "the operator retries; see its log and events",
            };
            let message = format!("{e}; {advice}");
            let mut c = conditions::failed(e.reason(), &message);
            c.push(Desired::no(RENDERED, e.reason(), message));
            (c, Action::requeue(Duration::from_secs(30)))
        }
    };
    let generation = svc.metadata.generation;
    new.common = conditions::common_status(
        &current.common,
        &desired,
        generation,
        &Time(k8s_openapi::jiff::Timestamp::now()),
    );
    status::update(&ctx, CONTROLLER, svc.as_ref(), &new)
        .await
        .map_err(Error::Status)?;
    match result {
        Some(Err(Error::Invalid { .. })) => Ok(Action::await_change()),
        Some(Err(e)) => Err(e),
        _ => Ok(action),
    }
}

async fn run_pipeline(svc: &CatalogService, ctx: &Context) -> Result<Rendered, Error> {
    let ns = svc.namespace().unwrap_or_default();
    // The selector is checked before anything is applied, so a bad one changes nothing.
    let selector = crate::catalog::selector(&svc.spec).map_err(|e| Error::Invalid {
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

    let mut params = ListParams::default();
    if let Some(s) = &selector {
        params = params.labels_from(s);
    }
    let datasets = Api::<Dataset>::namespaced(ctx.client.clone(), &ns)
        .list(&params)
        .await
        .map_err(Error::List)?
        .items;
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

/// Backoff after a failed reconcile; the failure is already in the status and the metrics.
pub fn error_policy(svc: Arc<CatalogService>, _error: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::backoff::requeue(svc.as_ref(), &ctx)
}
