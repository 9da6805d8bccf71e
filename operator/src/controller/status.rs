//! Status writes: only when the status changed, with one field manager, and an event for
//! every transition of `Ready` or `Degraded`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use super::conditions::{find, types};
use super::context::Context;

/// A vardhub resource whose status carries conditions.
pub trait HasConditions: Resource<DynamicType = ()> {
    /// The status type.
    type Status: Serialize + PartialEq + Clone + Default;
    /// The current status, if any.
    fn status(&self) -> Option<&Self::Status>;
    /// The conditions of a status.
    fn conditions(status: &Self::Status) -> &[Condition];
    /// Whether becoming `Ready` for the first time is an event. A kind of which there are
    /// thousands (datasets) says no: its first `Ready` is in its status and would otherwise
    /// be thousands of events in a roll-out. Becoming `Ready` again after a failure is always
    /// an event.
    const FIRST_READY_IS_EVENT: bool = true;
}

/// Writes `new` as the status of `obj` unless it equals the current status; publishes events
/// for transitions. Returns whether a write was sent.
pub async fn update<K: HasConditions>(
    ctx: &Context,
    controller: &'static str,
    obj: &K,
    new: &K::Status,
) -> Result<bool, kube::Error> {
    let default = K::Status::default();
    let old = obj.status().unwrap_or(&default);
    if old == new {
        return Ok(false);
    }
    let resource = ApiResource::erase::<K>(&());
    let api: Api<DynamicObject> = match obj.meta().namespace.as_deref() {
        Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &resource),
        None => Api::all_with(ctx.client.clone(), &resource),
    };
    let patch = serde_json::json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "status": new,
    });
    let params = PatchParams::apply(&format!("vardhub-{controller}")).force();
    api.patch_status(&obj.name_any(), &params, &Patch::Apply(&patch))
        .await?;
    ctx.metrics
        .api_write(controller, &resource.kind, "apply-status");
    for event in transitions(
        K::conditions(old),
        K::conditions(new),
        K::FIRST_READY_IS_EVENT,
    ) {
        ctx.metrics.api_write(controller, "Event", "create");
        if let Err(e) = ctx.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, "could not publish event");
        }
    }
    Ok(true)
}

/// The events that a change of conditions deserves: `Ready` becoming true (the first time
/// only if `first_ready` says so) or false, and `Degraded` becoming true or changing its
/// reason.
pub fn transitions(old: &[Condition], new: &[Condition], first_ready: bool) -> Vec<Event> {
    let mut events = Vec::new();
    let changed = |type_: &str| {
        let (o, n) = (find(old, type_), find(new, type_));
        match (o, n) {
            (_, None) => None,
            (None, Some(n)) => Some(n),
            (Some(o), Some(n)) if o.status != n.status || o.reason != n.reason => Some(n),
            _ => None,
        }
    };
    let was_ready = find(old, types::READY).is_some_and(|o| o.status == "True");
    let was_degraded = find(old, types::DEGRADED).is_some_and(|o| o.status == "True");
    if let Some(ready) = changed(types::READY)
        && ((ready.status == "True" && (first_ready || was_degraded)) || was_ready)
    {
        events.push(Event {
            type_: if ready.status == "True" {
                EventType::Normal
            } else {
                EventType::Warning
            },
            reason: ready.reason.clone(),
            note: Some(ready.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    if let Some(degraded) = changed(types::DEGRADED)
        && degraded.status == "True"
    {
        events.push(Event {
            type_: EventType::Warning,
            reason: degraded.reason.clone(),
            note: Some(degraded.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    if let Some(paused) = changed(types::RECONCILIATION_PAUSED)
        && paused.status == "True"
    {
        events.push(Event {
            type_: EventType::Normal,
            reason: paused.reason.clone(),
            note: Some(paused.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::super::conditions::{Desired, merge};
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1).expect("ts"))
    }

    #[test]
    fn becoming_ready_is_one_normal_event() {
        let new = merge(
            &[],
            &[Desired::yes(types::READY, "Reconciled", "ok")],
            Some(1),
            &now(),
        );
        let events = transitions(&[], &new, true);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].type_, EventType::Normal);
        assert!(
            transitions(&new, &new, true).is_empty(),
            "steady state publishes nothing"
        );
    }

    #[test]
    fn a_kind_of_thousands_announces_recovery_but_not_its_first_ready() {
        let progressing = merge(
            &[],
            &[Desired::no(types::READY, "Progressing", "resolving")],
            Some(1),
            &now(),
        );
        let ready = merge(
            &progressing,
            &[Desired::yes(types::READY, "Resolved", "ok")],
            Some(1),
            &now(),
        );
        assert!(transitions(&[], &ready, false).is_empty());
        assert!(transitions(&progressing, &ready, false).is_empty());
        let failed = merge(
            &ready,
            &[
                Desired::no(types::READY, "HolderMissing", "x"),
                Desired::yes(types::DEGRADED, "HolderMissing", "x"),
            ],
            Some(1),
            &now(),
        );
        assert_eq!(transitions(&ready, &failed, false).len(), 2);
        let recovered = merge(
            &failed,
            &[
                Desired::yes(types::READY, "Resolved", "ok"),
                Desired::no(types::DEGRADED, "NoErrors", "ok"),
            ],
            Some(1),
            &now(),
        );
        let events = transitions(&failed, &recovered, false);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].type_, EventType::Normal);
    }

    #[test]
    fn degrading_is_a_warning() {
        let ready = merge(
            &[],
            &[Desired::yes(types::READY, "Reconciled", "ok")],
            Some(1),
            &now(),
        );
        let broken = merge(
            &ready,
            &[
                Desired::no(types::READY, "ApplyFailed", "x"),
                Desired::yes(types::DEGRADED, "ApplyFailed", "x"),
            ],
            Some(1),
            &now(),
        );
        let events = transitions(&ready, &broken, true);
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e.type_ == EventType::Warning));
    }
}
