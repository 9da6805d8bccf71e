//! The `RegionalNode` controller.
//!
//! Pipeline: validate ([`validate`], pure) → build ([`build`], pure) → apply and prune (I/O,
//! [`crate::controller::apply`]) → status (I/O, [`crate::controller::status`]).

pub mod build;
pub mod validate;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::apply::{Owner, stamp};
use super::conditions::{self, Desired, merge, types};
use super::context::Context;
use super::status::{self, HasConditions};
use crate::api::{CommonStatus, RegionalNode, RegionalNodeStatus};

/// Name of the controller: its field manager is `vardhub-regionalnode`.
pub const CONTROLLER: &str = "regionalnode";

/// How often a converged node is checked again for drift that no watch reported.
const RESYNC: Duration = Duration::from_secs(600);

/// What can go wrong, one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid in a way the schema cannot express.
    #[error(transparent)]
    Invalid(#[from] validate::Invalid),
    /// Building the desired objects failed.
    #[error("building the node's objects failed: {0}")]
    Build(#[from] serde_json::Error),
    /// Applying or pruning objects failed.
    #[error("applying the node's objects failed: {0}")]
    Apply(#[source] kube::Error),
    /// Writing the status failed.
    #[error("writing the status failed: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    /// The CamelCase reason used in conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "InvalidSpec",
            Error::Build(_) => "BuildFailed",
            Error::Apply(_) => "ApplyFailed",
            Error::Status(_) => "StatusUpdateFailed",
        }
    }
}

impl HasConditions for RegionalNode {
    type Status = RegionalNodeStatus;
    fn status(&self) -> Option<&RegionalNodeStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &RegionalNodeStatus) -> &[Condition] {
        &status.common.conditions
    }
}

/// Reconciles one regional node.
#[tracing::instrument(skip_all, fields(object = %node.name_any(), generation = node.metadata.generation))]
pub async fn reconcile(node: Arc<RegionalNode>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = run_pipeline(&node, &ctx).await;
    ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    let (conditions, action) = match &result {
        Ok(Step::Converged) => (converged(&node), Action::requeue(RESYNC)),
        Ok(Step::Paused) => {
            let current = node
                .status
                .as_ref()
                .map(|s| s.common.conditions.as_slice())
                .unwrap_or_default();
            (
                conditions::paused(
                    current,
                    &[types::READY, types::PROGRESSING, types::DEGRADED],
                ),
                Action::await_change(),
            )
        }
        Err(e) => {
            ctx.metrics.reconcile_error(CONTROLLER, e.reason());
            tracing::warn!(reason = e.reason(), error = %e, "reconcile failed");
            (failed(e), Action::requeue(Duration::from_secs(30)))
        }
    };
    let new = next_status(
        &node,
        &conditions,
        Time(k8s_openapi::jiff::Timestamp::now()),
    );
    status::update(&ctx, CONTROLLER, node.as_ref(), &new)
        .await
        .map_err(Error::Status)?;
    match result {
        Err(Error::Invalid(_)) => Ok(Action::await_change()),
        Err(e) => Err(e),
        Ok(_) => Ok(action),
    }
}

enum Step {
    Converged,
    Paused,
}

async fn run_pipeline(node: &RegionalNode, ctx: &Context) -> Result<Step, Error> {
    if super::is_paused(&node.metadata) {
        return Ok(Step::Paused);
    }
    validate::validate(node)?;
    let desired = stamp(&Owner::of(node), build::children(node)?);
    let applier = ctx.applier(CONTROLLER);
    applier.apply_all(&desired).await.map_err(Error::Apply)?;
    applier
        .prune(&Owner::of(node), &build::owned_kinds(), &desired)
        .await
        .map_err(Error::Apply)?;
    Ok(Step::Converged)
}

fn converged(node: &RegionalNode) -> Vec<Desired> {
    let ns = node.workload_namespace();
    vec![
        Desired::yes(
            types::READY,
            "Reconciled",
            format!("namespace {ns} is isolated by default-deny and has its ServiceAccount"),
        ),
        Desired::no(types::PROGRESSING, "Converged", "nothing left to do"),
        Desired::no(types::DEGRADED, "NoErrors", "the last reconcile succeeded"),
    ]
}

fn failed(e: &Error) -> Vec<Desired> {
    let advice = match e {
        Error::Invalid(_) => "correct the spec",
        _ => "the operator retries; see its log and events",
    };
    conditions::failed(e.reason(), &format!("{e}; {advice}"))
}

/// The next status: the namespace and the merged conditions. Pure.
pub fn next_status(node: &RegionalNode, conditions: &[Desired], now: Time) -> RegionalNodeStatus {
    let current = node.status.clone().unwrap_or_default();
    let generation = node.metadata.generation;
    RegionalNodeStatus {
        common: CommonStatus {
            observed_generation: generation,
            conditions: merge(&current.common.conditions, conditions, generation, &now),
        },
        namespace: Some(node.workload_namespace()),
    }
}

/// Backoff after a failed reconcile; the failure is already in the status and the metrics.
pub fn error_policy(_node: Arc<RegionalNode>, _error: &Error, _ctx: Arc<Context>) -> Action {
    Action::requeue(Duration::from_secs(30))
}
