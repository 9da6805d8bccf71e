//! The `DataPermit` controller: whether a permit grants access now, and what it is missing if
//! it cannot.
//!
//! Pipeline: read the hub (I/O) → [`assess`] (pure: the hub and its products exist, the
//! permit lives in the hub's namespace, the SSH key parses, and where `now` falls in the
//! validity) → status. `Ready` is true exactly while the permit grants access; the reconcile
//! is scheduled for the moment that changes (`validFrom`, `validUntil`), so a permit stops
//! working within a second of its end.

use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::conditions::{Desired, types};
use super::context::Context;
use super::driver::{Failure, Reconciled};
use super::status::HasConditions;
use crate::api::{CommonStatus, DataHub, DataPermit, DataPermitStatus};

/// Name of the controller: its field manager is `vardhub-datapermit`.
pub const CONTROLLER: &str = "datapermit";

/// How long a permit without a coming change of phase goes unlooked at.
const RESYNC: Duration = Duration::from_secs(600);

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the hub failed.
    #[error("reading the permit's hub failed: {0}")]
    Read(#[source] kube::Error),
    /// Writing the status failed.
    #[error("writing the status failed: {0}")]
    Status(#[source] kube::Error),
    /// The reconcile ran past its deadline and was cancelled.
    #[error("the reconcile took longer than {0:?} and was cancelled")]
    TimedOut(Duration),
}

impl Failure for Error {
    fn reason(&self) -> &'static str {
        match self {
            Error::Read(_) => "ReadFailed",
            Error::Status(_) => "StatusUpdateFailed",
            Error::TimedOut(_) => "DeadlineExceeded",
        }
    }
    fn write(error: kube::Error) -> Self {
        Error::Status(error)
    }
    fn deadline(after: Duration) -> Self {
        Error::TimedOut(after)
    }
}

impl HasConditions for DataPermit {
    type Status = DataPermitStatus;
    fn status(&self) -> Option<&DataPermitStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &DataPermitStatus) -> &[Condition] {
        &status.common.conditions
    }
}

/// Where a permit stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before `validFrom`.
    NotYetValid,
    /// Granting access.
    Active,
    /// After `validUntil`.
    Expired,
    /// It names something the hub does not have, or a key that does not parse.
    Invalid,
}

impl Phase {
    /// The phase as the status and the `Ready` reason give it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::NotYetValid => "NotYetValid",
            Phase::Active => "Active",
            Phase::Expired => "Expired",
            Phase::Invalid => "Invalid",
        }
    }
}

/// What the controller found: the phase, why, and how long until it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// The phase.
    pub phase: Phase,
    /// What it means, naming the field when the permit is invalid.
    pub message: String,
    /// Until the phase changes by itself, if it will.
    pub changes_in: Option<Duration>,
}

/// Where `permit` stands at `now`, with its hub as it is (`None`: missing). Pure.
pub fn assess(
    permit: &DataPermit,
    hub: Option<&DataHub>,
    now: k8s_openapi::jiff::Timestamp,
) -> Assessment {
    let invalid = |message: String| Assessment {
        phase: Phase::Invalid,
        message,
        changes_in: None,
    };
    let spec = &permit.spec;
    let hub_name = &spec.data_hub.name;
    let home = DataHub::workload_namespace_of(hub_name);
    if permit.namespace().as_deref() != Some(home.as_str()) {
        return invalid(format!(
            "spec.dataHub: a permit for hub {hub_name} lives in its namespace {home}"
        ));
    }
    let Some(hub) = hub else {
        return invalid(format!("spec.dataHub: no DataHub named {hub_name}"));
    };
    let offered: Vec<&str> = hub
        .spec
        .zones
        .purpose_specific
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    if let Some(missing) = spec
        .products
        .iter()
        .find(|p| !offered.contains(&p.as_str()))
    {
        return invalid(format!(
            "spec.products: hub {hub_name} has no data product {missing} (it has: {})",
            offered.join(", ")
        ));
    }
    if let Some(key) = &spec.holder.ssh_public_key
        && let Err(why) = ssh_key_algorithm(key)
    {
        return invalid(format!("spec.holder.sshPublicKey: {why}"));
    }
    let (from, until) = (spec.valid_from.0, spec.valid_until.0);
    let left = |t: k8s_openapi::jiff::Timestamp| {
        t.duration_since(now)
            .unsigned_abs()
            .min(Duration::from_secs(u32::MAX.into()))
    };
    if now < from {
        Assessment {
            phase: Phase::NotYetValid,
            message: format!("grants access from {from}"),
            changes_in: Some(left(from)),
        }
    } else if now < until {
        Assessment {
            phase: Phase::Active,
            message: format!(
                "grants {} the data products {} until {until}",
                spec.holder.name,
                spec.products.join(", ")
            ),
            changes_in: Some(left(until)),
        }
    } else {
        Assessment {
            phase: Phase::Expired,
            message: format!("expired at {until}; it grants nothing"),
            changes_in: None,
        }
    }
}

/// The algorithm of an SSH public key in the `authorized_keys` form, read from the key
/// itself: its base64 decodes, and the algorithm it starts with is the one the line names.
pub fn ssh_key_algorithm(line: &str) -> Result<String, String> {
    let mut fields = line.split_whitespace();
    let (Some(named), Some(encoded)) = (fields.next(), fields.next()) else {
        return Err("expected `<algorithm> <base64 key> [comment]`".into());
    };
    let blob = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("the key is not base64: {e}"))?;
    let len = blob
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or("the key is too short")?;
    let inside = blob
        .get(4..4 + len)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or("the key does not start with its algorithm")?;
    if inside != named || blob.len() <= 4 + len {
        return Err(format!(
            "the key is a {inside} key with nothing after its name, or the line names {named}"
        ));
    }
    Ok(inside.to_string())
}

impl Reconciled for DataPermit {
    const CONTROLLER: &'static str = CONTROLLER;
    type Error = Error;
    type Observed = Assessment;

    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }

    async fn steps(&self, ctx: &Context) -> Result<Assessment, Error> {
        let hub = Api::<DataHub>::all(ctx.client.clone())
            .get_opt(&self.spec.data_hub.name)
            .await
            .map_err(Error::Read)?;
        Ok(assess(
            self,
            hub.as_ref(),
            k8s_openapi::jiff::Timestamp::now(),
        ))
    }

    fn converged(&self, a: &Assessment, _ctx: &Context) -> (Vec<Desired>, Action) {
        let ready = match a.phase {
            Phase::Active => Desired::yes(types::READY, a.phase.name(), a.message.clone()),
            _ => Desired::no(types::READY, a.phase.name(), a.message.clone()),
        };
        let degraded = match a.phase {
            Phase::Invalid => Desired::yes(types::DEGRADED, "InvalidPermit", a.message.clone()),
            _ => Desired::no(
                types::DEGRADED,
                "NoErrors",
                "the permit is consistent with its hub",
            ),
        };
        // Woken a second after the phase changes, and at least every RESYNC.
        let again = a
            .changes_in
            .map_or(RESYNC, |d| (d + Duration::from_secs(1)).min(RESYNC));
        (vec![ready, degraded], Action::requeue(again))
    }

    fn next_status(&self, common: CommonStatus, a: Option<&Assessment>) -> DataPermitStatus {
        let current = self.status.clone().unwrap_or_default();
        DataPermitStatus {
            common,
            phase: a.map(|a| a.phase.name().to_string()).or(current.phase),
            // The exposure components' fields, carried as read (a write here may carry a stale
            // copy, which their next flush puts right).
            accesses: current.accesses,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGs0bG0ZVpxTZmD9hEwHzQb5PLuFHiBJbDnbl4ObHlSn holder@example";

    fn permit(products: &[&str], from: &str, until: &str) -> DataPermit {
        let mut p = DataPermit::new(
            "p",
            serde_json::from_value(serde_json::json!({
                "dataHub": {"name": "national"},
                "products": products,
                "purpose": "research",
                "holder": {"name": "A research group", "sshPublicKey": KEY},
                "issuedBy": {"name": "Access body", "uri": "https://example.org/hdab"},
                "validFrom": from, "validUntil": until,
            }))
            .expect("spec"),
        );
        p.metadata.namespace = Some("hub-national".into());
        p
    }

    fn hub() -> DataHub {
        DataHub::new(
            "national",
            serde_json::from_value(serde_json::json!({"zones": {"purposeSpecific": [
                {"name": "waiting-times", "purpose": "waiting-times"}]}}))
            .expect("spec"),
        )
    }

    fn at(t: &str) -> Timestamp {
        t.parse().expect("time")
    }

    #[test]
    fn the_phase_follows_the_validity_and_says_when_it_changes() {
        let p = permit(
            &["waiting-times"],
            "2027-01-01T00:00:00Z",
            "2027-02-01T00:00:00Z",
        );
        let before = assess(&p, Some(&hub()), at("2026-12-31T23:59:00Z"));
        assert_eq!(before.phase, Phase::NotYetValid);
        assert_eq!(before.changes_in, Some(Duration::from_secs(60)));
        let during = assess(&p, Some(&hub()), at("2027-01-31T23:59:59Z"));
        assert_eq!(during.phase, Phase::Active);
        assert_eq!(during.changes_in, Some(Duration::from_secs(1)));
        let after = assess(&p, Some(&hub()), at("2027-02-01T00:00:00Z"));
        assert_eq!(after.phase, Phase::Expired, "the end is exclusive");
    }

    #[test]
    fn what_the_hub_lacks_is_named() {
        let p = permit(&["beds"], "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z");
        let a = assess(&p, Some(&hub()), at("2027-01-02T00:00:00Z"));
        assert_eq!(a.phase, Phase::Invalid);
        assert!(
            a.message
                .starts_with("spec.products: hub national has no data product beds")
        );
        let none = assess(&p, None, at("2027-01-02T00:00:00Z"));
        assert!(
            none.message
                .starts_with("spec.dataHub: no DataHub named national")
        );
        let mut elsewhere = permit(
            &["waiting-times"],
            "2027-01-01T00:00:00Z",
            "2027-02-01T00:00:00Z",
        );
        elsewhere.metadata.namespace = Some("default".into());
        let a = assess(&elsewhere, Some(&hub()), at("2027-01-02T00:00:00Z"));
        assert!(
            a.message.contains("lives in its namespace hub-national"),
            "{}",
            a.message
        );
    }

    #[test]
    fn an_ssh_key_must_parse_as_what_it_names() {
        assert_eq!(ssh_key_algorithm(KEY).as_deref(), Ok("ssh-ed25519"));
        assert!(
            ssh_key_algorithm(
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGs0bG0ZVpxTZmD9hEwHzQb5PLuFHiBJbDnbl4ObHlSn"
            )
            .is_err()
        );
        assert!(ssh_key_algorithm("ssh-ed25519 bm90IGEga2V5").is_err());
        assert!(ssh_key_algorithm("ssh-ed25519 ###").is_err());
    }
}
