//! The reconcile every controller runs, written once. A controller supplies only its own
//! steps ([`Reconciled::steps`]), what their outcome means ([`Reconciled::converged`]), its
//! status ([`Reconciled::next_status`]) and, for a resource that holds data or keys, how to
//! destroy them ([`Reconciled::destroy`]). The driver does the rest, the same way for all:
//!
//! 1. **Finalizer.** A resource whose deletion policy asks for its data or keys to go carries
//!    [`Reconciled::DATA_FINALIZER`]; on deletion the driver reads the resource again past the
//!    cache and destroys only if it still asks, then lets it go. A failure is written into the
//!    status and retried.
//! 2. **Pause.** With the pause annotation nothing runs; the conditions stay as they were and
//!    `ReconciliationPaused` says how to resume.
//! 3. **Steps under a deadline.** A reconcile that runs longer than the context's deadline
//!    ([`DEADLINE`] unless the operator is told otherwise) is cancelled (every step is
//!    idempotent, so the next attempt starts over safely) and reported.
//! 4. **Conditions, status, events, metrics.** The status is written only when it changed,
//!    with one field manager; transitions of `Ready` and `Degraded` become events; every
//!    reconcile and every failure is counted, with its reason.
//! 5. **Requeue.** After a success, when the controller says; after a failure, exponentially
//!    later with jitter ([`super::backoff`]); after an invalid spec, when the spec changes.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};

use super::conditions::{self, Desired, types};
use super::context::Context;
use super::status::{self, HasConditions};
use crate::api::CommonStatus;
use crate::telemetry::calls;

/// The longest one reconcile may run before it is cancelled and reported, by default.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// A controller's error, as the driver needs to see it.
pub trait Failure: std::error::Error + Send + Sync + Sized + 'static {
    /// The CamelCase reason used in conditions, events and metrics.
    fn reason(&self) -> &'static str;
    /// The conditions of a reconcile that failed with this error, naming what to do next.
    fn conditions(&self) -> Vec<Desired> {
        let advice = if self.needs_new_spec() {
            "correct the spec"
        } else {
            "the operator retries; see its log and events"
        };
        conditions::failed(self.reason(), &format!("{self}; {advice}"))
    }
    /// Whether only a change of the spec can fix it; the driver then waits for one.
    fn needs_new_spec(&self) -> bool {
        false
    }
    /// A failed write of the resource itself (its status or finalizers).
    fn write(error: kube::Error) -> Self;
    /// The reconcile ran past its deadline.
    fn deadline(after: Duration) -> Self;
}

/// A vardhub resource as its controller reconciles it.
pub trait Reconciled:
    HasConditions + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
    /// Name of the controller; its field manager is `vardhub-<name>`.
    const CONTROLLER: &'static str;
    /// Condition types of the resource's own that a pause keeps as they were (`Ready`,
    /// `Progressing` and `Degraded` are always kept).
    const OWN_CONDITIONS: &'static [&'static str] = &[];
    /// The finalizer that holds the resource until its data or keys are destroyed, for a
    /// resource that has any.
    const DATA_FINALIZER: Option<&'static str> = None;
    /// The controller's error.
    type Error: Failure;
    /// What a converged reconcile learned.
    type Observed: Send + Sync;

    /// The API of the resource's kind in its namespace (or cluster-wide).
    fn api(client: Client, namespace: Option<&str>) -> Api<Self>;
    /// Whether deleting the resource destroys its data or keys (its deletion policy).
    fn wants_destruction(&self) -> bool {
        false
    }
    /// Destroys the resource's data or keys; only called when the resource, read again past
    /// the cache, still asks for it.
    fn destroy(&self, _ctx: &Context) -> impl Future<Output = Result<(), Self::Error>> + Send {
        async { Ok(()) }
    }
    /// The controller's own steps: validate, external state, build, apply, observe.
    fn steps(
        &self,
        ctx: &Context,
    ) -> impl Future<Output = Result<Self::Observed, Self::Error>> + Send;
    /// The conditions of a converged reconcile, and when to look again.
    fn converged(&self, observed: &Self::Observed, ctx: &Context) -> (Vec<Desired>, Action);
    /// The next status: `common` (generation and merged conditions) and the resource's own
    /// fields, from `observed` when the reconcile converged, kept as they were otherwise.
    fn next_status(&self, common: CommonStatus, observed: Option<&Self::Observed>) -> Self::Status;
}

/// Reconciles `obj`: what every controller's `run` calls.
#[tracing::instrument(skip_all, fields(controller = K::CONTROLLER, object = %describe(obj.as_ref()), generation = obj.meta().generation))]
pub async fn reconcile<K: Reconciled>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, K::Error> {
    let _running = ctx.metrics.in_flight(K::CONTROLLER);
    // OpenBao and S3 requests, the finalizer's included, count under this controller.
    let result = calls::scope(&ctx.metrics, K::CONTROLLER, drive(obj.as_ref(), &ctx)).await;
    let uid = obj.uid().unwrap_or_default();
    if obj.meta().deletion_timestamp.is_some() {
        ctx.metrics.forget(K::CONTROLLER, &uid);
    } else {
        ctx.metrics.finished(K::CONTROLLER, &uid);
    }
    match &result {
        Ok(_) => ctx.backoff.succeeded(&super::backoff::key(obj.as_ref())),
        Err(e) => {
            ctx.metrics.reconcile_error(K::CONTROLLER, e.reason());
            tracing::warn!(reason = e.reason(), error = %e, "reconcile failed");
        }
    }
    result
}

/// When to try again after a failure: exponentially later, with jitter, per object.
pub fn error_policy<K: Reconciled>(obj: Arc<K>, _error: &K::Error, ctx: Arc<Context>) -> Action {
    super::backoff::requeue(obj.as_ref(), &ctx)
}

fn describe<K: ResourceExt>(obj: &K) -> String {
    match obj.namespace() {
        Some(ns) => format!("{ns}/{}", obj.name_any()),
        None => obj.name_any(),
    }
}

async fn drive<K: Reconciled>(obj: &K, ctx: &Context) -> Result<Action, K::Error> {
    if let Some(action) = finalize(obj, ctx).await? {
        return Ok(action);
    }
    if obj.meta().deletion_timestamp.is_some() {
        // Owned objects go with the resource (owner references); nothing to reconcile.
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let outcome = if super::is_paused(obj.meta()) {
        None
    } else {
        Some(
            tokio::time::timeout(ctx.deadline, obj.steps(ctx))
                .await
                .unwrap_or_else(|_| Err(K::Error::deadline(ctx.deadline))),
        )
    };
    ctx.metrics.reconciled(K::CONTROLLER, started.elapsed());
    let (desired, action, observed) = match &outcome {
        None => {
            let mut keep = vec![types::READY, types::PROGRESSING, types::DEGRADED];
            keep.extend(K::OWN_CONDITIONS);
            (
                conditions::paused(current_conditions(obj), &keep),
                Action::await_change(),
                None,
            )
        }
        Some(Ok(observed)) => {
            let (desired, action) = obj.converged(observed, ctx);
            (desired, action, Some(observed))
        }
        Some(Err(e)) => (e.conditions(), Action::await_change(), None),
    };
    write_status(obj, ctx, &desired, observed).await?;
    match outcome {
        Some(Err(e)) if e.needs_new_spec() => {
            // Counted and reported, but retried only when the spec changes.
            ctx.metrics.reconcile_error(K::CONTROLLER, e.reason());
            tracing::warn!(reason = e.reason(), error = %e, "the spec cannot be reconciled");
            Ok(Action::await_change())
        }
        Some(Err(e)) => Err(e),
        _ => Ok(action),
    }
}

fn current_conditions<K: HasConditions>(
    obj: &K,
) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
    obj.status().map(K::conditions).unwrap_or_default()
}

async fn write_status<K: Reconciled>(
    obj: &K,
    ctx: &Context,
    desired: &[Desired],
    observed: Option<&K::Observed>,
) -> Result<(), K::Error> {
    let generation = obj.meta().generation;
    let common = CommonStatus {
        observed_generation: generation,
        conditions: conditions::merge(
            current_conditions(obj),
            desired,
            generation,
            &Time(k8s_openapi::jiff::Timestamp::now()),
        ),
    };
    let new = obj.next_status(common, observed);
    status::update(ctx, K::CONTROLLER, obj, &new)
        .await
        .map_err(K::Error::write)?;
    Ok(())
}

/// Keeps the data finalizer in line with the deletion policy and, on deletion of a resource
/// that carries it, destroys its data or keys if the resource, read again past the cache,
/// still asks for it. Returns an action when the reconcile ends here.
async fn finalize<K: Reconciled>(obj: &K, ctx: &Context) -> Result<Option<Action>, K::Error> {
    let Some(finalizer) = K::DATA_FINALIZER else {
        return Ok(None);
    };
    let wants = obj.wants_destruction();
    let has = obj.finalizers().iter().any(|f| f == finalizer);
    let deleting = obj.meta().deletion_timestamp.is_some();
    let api = K::api(ctx.client.clone(), obj.namespace().as_deref());
    let kind = K::kind(&()).to_string();
    if deleting && has {
        let current = super::confirmed_destruction(&api, obj, K::wants_destruction)
            .await
            .map_err(K::Error::write)?;
        match current {
            Some(current) => {
                if let Err(e) = current.destroy(ctx).await {
                    write_status(&current, ctx, &e.conditions(), None).await?;
                    return Err(e);
                }
            }
            None => tracing::info!(
                "the deletion policy no longer asks for the data or keys to go; keeping them"
            ),
        }
    }
    if deleting {
        if has {
            super::set_finalizer(&api, obj, finalizer, false)
                .await
                .map_err(K::Error::write)?;
            ctx.metrics.api_write(K::CONTROLLER, &kind, "patch");
        }
        return Ok(Some(Action::await_change()));
    }
    if wants != has {
        super::set_finalizer(&api, obj, finalizer, wants)
            .await
            .map_err(K::Error::write)?;
        ctx.metrics.api_write(K::CONTROLLER, &kind, "patch");
    }
    Ok(None)
}
