//! Pure helpers for conditions in the Kubernetes format.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Condition types used across controllers.
pub mod types {
    /// The resource is fully reconciled and serving.
    pub const READY: &str = "Ready";
    /// The operator is working towards the desired state.
    pub const PROGRESSING: &str = "Progressing";
    /// Something is wrong that the operator cannot fix by itself.
    pub const DEGRADED: &str = "Degraded";
    /// Reconciliation is paused by the pause annotation.
    pub const RECONCILIATION_PAUSED: &str = "ReconciliationPaused";
}

/// A condition to set: type, truth, reason (CamelCase) and a message that tells the operator
/// what to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type, for example `Ready`.
    pub type_: &'static str,
    /// Whether the condition holds.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl Desired {
    /// A condition that holds.
    pub fn yes(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: true,
            reason: reason.into(),
            message: message.into(),
        }
    }
    /// A condition that does not hold.
    pub fn no(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Merges `desired` into `current`: the transition time changes only when a condition's status
/// changes, so a steady state yields an identical list (and no status write). Conditions not in
/// `desired` are dropped; the result is sorted by type.
pub fn merge(
    current: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = desired
        .iter()
        .map(|d| {
            let previous = current.iter().find(|c| c.type_ == d.type_);
            let status = status_str(d.status).to_string();
            let last_transition_time = match previous {
                Some(p) if p.status == status => p.last_transition_time.clone(),
                _ => now.clone(),
            };
            Condition {
                type_: d.type_.to_string(),
                status,
                reason: d.reason.clone(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The status every resource shares, after a reconcile of `generation`: `desired` merged
/// into the current conditions (see [`merge`]), and the generation they describe.
pub fn common_status(
    current: &crate::api::CommonStatus,
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> crate::api::CommonStatus {
    crate::api::CommonStatus {
        observed_generation: generation,
        conditions: merge(&current.conditions, desired, generation, now),
    }
}

/// The conditions of a paused resource: those of `keep` stay as they were, and
/// `ReconciliationPaused` says how to resume.
pub fn paused(current: &[Condition], keep: &[&'static str]) -> Vec<Desired> {
    let mut out: Vec<Desired> = current
        .iter()
        .filter_map(|c| {
            let type_ = keep.iter().copied().find(|t| *t == c.type_)?;
            Some(Desired {
                type_,
                status: c.status == "True",
                reason: c.reason.clone(),
                message: c.message.clone(),
            })
        })
        .collect();
    out.push(Desired::yes(
        types::RECONCILIATION_PAUSED,
        "PausedByAnnotation",
        format!(
            "remove the annotation {} to resume",
            super::PAUSE_ANNOTATION
        ),
    ));
    out
}

/// The standard conditions of a failed reconcile: not ready, not progressing, degraded, with
/// the reason and a message that says what to do next.
pub fn failed(reason: &str, message: &str) -> Vec<Desired> {
    vec![
        Desired::no(types::READY, reason, message),
        Desired::no(types::PROGRESSING, reason, "blocked by the error"),
        Desired::yes(types::DEGRADED, reason, message),
    ]
}

/// `Ready` and `Progressing` of a resource whose workload is a Deployment: ready once it is
/// available (`ready` says what that means to the user), rolling out until then.
pub fn rollout(available: bool, ready: &str) -> [Desired; 2] {
    if available {
        [
            Desired::yes(types::READY, "Available", ready),
            Desired::no(types::PROGRESSING, "Converged", "nothing left to do"),
        ]
    } else {
        [
            Desired::no(
                types::READY,
                "Starting",
                "waiting for the Deployment to become available",
            ),
            Desired::yes(
                types::PROGRESSING,
                "RollingOut",
                "the Deployment is rolling out",
            ),
        ]
    }
}

/// The condition of a type, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of a type is present and `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).expect("timestamp"))
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let first = merge(
            &[],
            &[Desired::yes(types::READY, "Reconciled", "ok")],
            Some(1),
            &at(100),
        );
        let second = merge(
            &first,
            &[Desired::yes(types::READY, "Reconciled", "ok")],
            Some(1),
            &at(200),
        );
        assert_eq!(first, second);
        assert_eq!(second[0].last_transition_time, at(100));
    }

    #[test]
    fn changed_status_moves_transition_time_and_generation() {
        let first = merge(
            &[],
            &[Desired::yes(types::READY, "Reconciled", "ok")],
            Some(1),
            &at(100),
        );
        let second = merge(
            &first,
            &[Desired::no(types::READY, "ApplyFailed", "boom")],
            Some(2),
            &at(200),
        );
        assert_eq!(second[0].last_transition_time, at(200));
        assert_eq!(second[0].observed_generation, Some(2));
        assert_eq!(second[0].status, "False");
        assert!(!is_true(&second, types::READY));
    }

    #[test]
    fn sorted_by_type_and_dropped_when_not_desired() {
        let first = merge(
            &[],
            &[
                Desired::yes(types::READY, "A", ""),
                Desired::no(types::DEGRADED, "B", ""),
            ],
            None,
            &at(1),
        );
        assert_eq!(
            first.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            ["Degraded", "Ready"]
        );
        let second = merge(&first, &[Desired::yes(types::READY, "A", "")], None, &at(2));
        assert_eq!(second.len(), 1);
    }

    #[test]
    fn pausing_keeps_the_chosen_conditions_and_adds_the_pause() {
        let current = merge(
            &[],
            &[
                Desired::yes(types::READY, "Reconciled", "ok"),
                Desired::no(types::DEGRADED, "NoErrors", ""),
            ],
            Some(1),
            &at(1),
        );
        let kept = paused(&current, &[types::READY]);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0], Desired::yes(types::READY, "Reconciled", "ok"));
        assert_eq!(kept[1].type_, types::RECONCILIATION_PAUSED);
        assert_eq!(
            failed("ApplyFailed", "x")
                .iter()
                .filter(|d| d.status)
                .count(),
            1,
            "only Degraded holds"
        );
    }
}
