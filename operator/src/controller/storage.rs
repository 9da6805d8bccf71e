//! The storage and custody steps the `RegionalNode` and `DataHub` controllers share (I/O):
//! the custodian's OpenBao namespace, key, policy and role, its buckets, the credentials kept
//! current in OpenBao, and the deletion of all of it when the deletion policy asks. Where
//! everything lives is [`crate::layout`] (pure), re-exported here.
//!
//! Custody: each region's keys and credentials sit in an OpenBao namespace of its own
//! (`region-<node>`), the hub's in another (`hub-<hub>`). Credentials are issued by the S3
//! server's STS with a session policy naming exactly the prefixes of one tenant, and are
//! written only to OpenBao; workloads read them there with their ServiceAccount.

use std::time::Duration;

use serde_json::Value;

use super::conditions::{self, Desired};
use crate::adapters::openbao;
use crate::adapters::s3::{self, Grant, IssuedCredentials};
use crate::telemetry::Metrics;

pub use crate::layout::*;

/// Condition type: the custodian's OpenBao namespace, key, policy and role exist.
pub const KEYS_READY: &str = "KeysReady";
/// Condition type: the buckets and the issued credentials exist.
pub const STORAGE_READY: &str = "StorageReady";

/// What can go wrong in the `RegionalNode` and `DataHub` controllers, one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec is invalid in a way the schema cannot express.
    #[error(transparent)]
    Invalid(#[from] super::Invalid),
    /// The operator lacks a connection the resource needs.
    #[error("the operator has no {0} connection (see the chart's openbao and s3 values)")]
    NotConfigured(&'static str),
    /// OpenBao refused or failed.
    #[error("OpenBao: {0}")]
    Keys(#[from] openbao::Error),
    /// The S3 server refused or failed.
    #[error("{0}")]
    Storage(#[from] s3::Error),
    /// A credential could not be issued or stored.
    #[error("credential: {0}")]
    Credential(#[from] CredentialError),
    /// Building the desired objects failed.
    #[error("building the objects failed: {0}")]
    Build(#[from] serde_json::Error),
    /// Reading, applying or pruning objects failed.
    #[error("applying the objects failed: {0}")]
    Apply(#[source] kube::Error),
    /// An object to be written exists and belongs to someone else.
    #[error("{0}")]
    Foreign(#[from] super::apply::Foreign),
    /// Writing the status failed.
    #[error("writing the status failed: {0}")]
    Status(#[source] kube::Error),
    /// Deletion with `deletionPolicy: Delete` cannot proceed.
    #[error("{0}")]
    DeletionRefused(String),
    /// The reconcile ran past its deadline and was cancelled.
    #[error("the reconcile took longer than {0:?} and was cancelled")]
    TimedOut(Duration),
    /// A key the operator makes itself (the SFTP server's host key) could not be made.
    #[error("making a key: {0}")]
    KeyGeneration(String),
}

impl Error {
    /// The CamelCase reason used in conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "InvalidSpec",
            Error::NotConfigured(_) => "NotConfigured",
            Error::Keys(openbao::Error::NotOurs { .. } | openbao::Error::AccessNotOurs { .. }) => {
                "Conflict"
            }
            Error::Keys(_) => "KeysFailed",
            Error::Storage(s3::Error::NotOurs { .. }) => "Conflict",
            Error::Storage(_) => "StorageFailed",
            Error::Credential(_) => "CredentialFailed",
            Error::Build(_) => "BuildFailed",
            Error::Apply(_) => "ApplyFailed",
            Error::Foreign(_) => "Conflict",
            Error::Status(_) => "StatusUpdateFailed",
            Error::DeletionRefused(_) => "DeletionRefused",
            Error::TimedOut(_) => "DeadlineExceeded",
            Error::KeyGeneration(_) => "KeysFailed",
        }
    }
}

impl super::driver::Failure for Error {
    fn reason(&self) -> &'static str {
        Error::reason(self)
    }
    fn conditions(&self) -> Vec<Desired> {
        failed(self)
    }
    fn needs_new_spec(&self) -> bool {
        matches!(self, Error::Invalid(_))
    }
    fn write(error: kube::Error) -> Self {
        Error::Status(error)
    }
    fn deadline(after: Duration) -> Self {
        Error::TimedOut(after)
    }
}

/// The conditions of a failed reconcile: Ready false, Degraded true, and `KeysReady` or
/// `StorageReady` false when that step failed. Pure.
pub fn failed(e: &Error) -> Vec<Desired> {
    let advice = match e {
        Error::Invalid(_) => "correct the spec",
        Error::DeletionRefused(_) => "the data is kept",
        Error::Foreign(f) if f.kind == "Namespace" => {
            "name a namespace of the resource's own (a node's spec.namespace, a hub's metadata.name), or remove the other one; the operator retries"
        }
        Error::Foreign(_) => "remove the other object; the operator retries",
        Error::Keys(openbao::Error::NotOurs { .. }) => {
            "give the resource a name whose OpenBao namespace is free, or remove the other namespace; the operator retries"
        }
        Error::Keys(openbao::Error::AccessNotOurs { .. }) => {
            "give the resource a name whose OpenBao policy and role are free, or remove the other ones; the operator retries"
        }
        Error::Storage(s3::Error::NotOurs { .. }) => {
            "give the resource a bucket prefix of its own (a node's spec.storage.bucketPrefix, a hub's spec.bucketPrefix); the operator retries"
        }
        _ => "the operator retries; see its log and events",
    };
    let message = format!("{e}; {advice}");
    let mut c = conditions::failed(e.reason(), &message);
    match e {
        Error::Keys(_) => c.push(Desired::no(KEYS_READY, e.reason(), message)),
        Error::Storage(_) | Error::Credential(_) => {
            c.push(Desired::no(STORAGE_READY, e.reason(), message))
        }
        _ => {}
    }
    c
}

/// The OpenBao and S3 connections a custodian's steps need, or which one the operator lacks.
pub fn connections(
    ctx: &super::context::Context,
) -> Result<(&super::context::OpenBaoAccess, &s3::Storage), Error> {
    let bao = ctx
        .openbao
        .as_ref()
        .ok_or(Error::NotConfigured("OpenBao"))?;
    let s3 = ctx.storage.as_deref().ok_or(Error::NotConfigured("S3"))?;
    Ok((bao, s3))
}

/// What a custodian (a node or the hub) holds, for deletion.
#[derive(Clone, Debug)]
pub struct Custody<'a> {
    /// Its buckets.
    pub buckets: Vec<&'a str>,
    /// The owner its buckets record (see [`bucket_owner`]).
    pub owner: String,
    /// Its OpenBao namespace (keys and credentials).
    pub openbao_namespace: &'a str,
    /// Its OpenBao policies and the Kubernetes auth roles of the same names.
    pub access: Vec<&'a str>,
}

/// Deletes a custodian's buckets and OpenBao namespace, policy and role, as a confirmed
/// `deletionPolicy: Delete` asks. Refused while objects remain unless `purge`.
pub async fn delete_custody(
    storage: &s3::Storage,
    admin: &openbao::Admin,
    custody: &Custody<'_>,
    purge: bool,
    metrics: &Metrics,
    controller: &'static str,
) -> Result<(), Error> {
    // Only buckets that record this custodian as their owner are touched: a bucket of the
    // same name that belongs to another resource (or to no vardhub resource) is kept.
    let mut own = Vec::new();
    for b in &custody.buckets {
        match storage.bucket_owner(b).await? {
            Some(Some(owner)) if owner == custody.owner => own.push(*b),
            Some(owner) => tracing::warn!(
                bucket = b,
                owner = owner.as_deref().unwrap_or("none"),
                "keeping a bucket this resource does not own"
            ),
            None => {}
        }
    }
    if !purge {
        for b in &own {
            if storage.holds_objects(b).await? {
                return Err(Error::DeletionRefused(format!(
                    "bucket {b} still holds objects; set spec.purgeObjects: true to delete them too, or set spec.deletionPolicy: Retain to keep everything"
                )));
            }
        }
    }
    for b in &own {
        storage.purge_bucket(b).await?;
        metrics.api_write(controller, "S3Bucket", "DeleteBucket");
    }
    for name in &custody.access {
        remove_access(
            admin,
            custody.openbao_namespace,
            &custody.owner,
            name,
            metrics,
            controller,
        )
        .await?;
    }
    // The namespace, with every key and credential in it, only when it records this
    // custodian as its owner.
    match admin.namespace_owner(custody.openbao_namespace).await? {
        Some(Some(owner)) if owner == custody.owner => {
            admin.delete_namespace(custody.openbao_namespace).await?;
            metrics.api_write(controller, "OpenBaoNamespace", "delete");
        }
        Some(owner) => tracing::warn!(
            namespace = custody.openbao_namespace,
            owner = owner.as_deref().unwrap_or("none"),
            "keeping an OpenBao namespace this resource does not own"
        ),
        None => {}
    }
    tracing::warn!(
        namespace = custody.openbao_namespace,
        "deleted buckets and keys as the deletion policy asks"
    );
    Ok(())
}

/// Where a credential is kept: an OpenBao namespace and a KV path in its `secrets` mount.
#[derive(Clone, Debug)]
pub struct CredentialSlot<'a> {
    /// OpenBao namespace.
    pub namespace: &'a str,
    /// KV path.
    pub path: &'a str,
    /// STS session name (shown in the S3 server's audit log).
    pub session: &'a str,
}

/// Whether a stored credential still serves: same policy, and more than a third of its
/// lifetime left at `now`. Pure.
pub fn credential_current(
    stored: &IssuedCredentials,
    policy: &Value,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    let Ok(expires) = stored.expiration.parse::<k8s_openapi::jiff::Timestamp>() else {
        return false;
    };
    let margin = k8s_openapi::jiff::SignedDuration::from_secs(
        (CREDENTIAL_LIFETIME.as_secs() / 3)
            .try_into()
            .unwrap_or(i64::MAX),
    );
    stored.policy_sha256 == s3::policy_digest(policy) && expires.duration_since(now) > margin
}

/// Keeps the credential in `slot` issued for `grants`: reads it, and issues and writes a new
/// one only when it is missing, for another policy, or nearing expiry. Returns whether it
/// wrote. The secret itself never leaves this function except into OpenBao.
pub async fn ensure_credential(
    storage: &s3::Storage,
    admin: &openbao::Admin,
    slot: &CredentialSlot<'_>,
    grants: &[Grant],
    metrics: &Metrics,
    controller: &'static str,
) -> Result<bool, CredentialError> {
    let policy = s3::session_policy(grants);
    let kv = admin.in_namespace(slot.namespace)?;
    let stored: Option<IssuedCredentials> = kv.read_secret(KV_MOUNT, slot.path).await?;
    if stored
        .as_ref()
        .is_some_and(|s| credential_current(s, &policy, k8s_openapi::jiff::Timestamp::now()))
    {
        return Ok(false);
    }
    let lifetime = i32::try_from(CREDENTIAL_LIFETIME.as_secs()).unwrap_or(43_200);
    let issued = storage
        .issue_credentials(slot.session, &policy, lifetime)
        .await?;
    metrics.api_write(controller, "S3Credential", "issue");
    kv.write_secret(KV_MOUNT, slot.path, &issued).await?;
    metrics.api_write(controller, "OpenBaoSecret", "write");
    tracing::info!(
        namespace = slot.namespace,
        path = slot.path,
        "issued an S3 credential"
    );
    Ok(true)
}

/// A credential could not be read, issued or stored.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// OpenBao refused or failed.
    #[error(transparent)]
    OpenBao(#[from] openbao::Error),
    /// The S3 server's STS refused or failed.
    #[error(transparent)]
    S3(#[from] s3::Error),
}

/// Keeps a custodian's OpenBao namespace, its Transit key and its KV mount in place; counts
/// every write.
pub async fn ensure_custody(
    admin: &openbao::Admin,
    owner: &str,
    namespace: &str,
    key: &str,
    rotate_days: Option<i32>,
    metrics: &Metrics,
    controller: &'static str,
) -> Result<(), openbao::Error> {
    ensure_owned_namespace(admin, namespace, owner, metrics, controller).await?;
    let transit = admin.transit_in(namespace, KEY_MOUNT)?;
    if transit.ensure_mount().await? {
        metrics.api_write(controller, "OpenBaoMount", "create");
    }
    if transit.ensure_custodian_key(key, rotate_days).await? {
        metrics.api_write(controller, "OpenBaoTransitKey", "write");
    }
    if admin
        .in_namespace(namespace)?
        .ensure_kv_mount(KV_MOUNT)
        .await?
    {
        metrics.api_write(controller, "OpenBaoMount", "create");
    }
    Ok(())
}

/// The operator's registry namespace ([`REGISTRY_NAMESPACE`]) with its KV mount, both made
/// when missing and never deleted: the owner records of what lives where names are shared.
/// Counts every write.
pub async fn registry(
    admin: &openbao::Admin,
    metrics: &Metrics,
    controller: &'static str,
) -> Result<openbao::Admin, openbao::Error> {
    if admin
        .ensure_namespace(REGISTRY_NAMESPACE, REGISTRY_OWNER)
        .await?
    {
        metrics.api_write(controller, "OpenBaoNamespace", "create");
    }
    let registry = admin.in_namespace(REGISTRY_NAMESPACE)?;
    if registry.ensure_kv_mount(KV_MOUNT).await? {
        metrics.api_write(controller, "OpenBaoMount", "create");
    }
    Ok(registry)
}

/// Keeps the OpenBao namespace `namespace` in place as `owner`'s. One that exists is used
/// only when its metadata names `owner`. A missing one is first claimed in the registry
/// (create-only, so of two owners at once exactly one goes on) and then created; a claim that
/// names another owner is refused like their namespace. Counts every write.
pub async fn ensure_owned_namespace(
    admin: &openbao::Admin,
    namespace: &str,
    owner: &str,
    metrics: &Metrics,
    controller: &'static str,
) -> Result<(), openbao::Error> {
    let not_ours = |found| openbao::Error::NotOurs {
        namespace: namespace.into(),
        owner: found,
    };
    match admin.namespace_owner(namespace).await? {
        Some(Some(found)) if found == owner => return Ok(()),
        Some(found) => return Err(not_ours(found)),
        None => {}
    }
    let registry = registry(admin, metrics, controller).await?;
    let path = namespace_claim_path(namespace);
    let free = std::future::ready(Ok(false));
    if let Claim::Theirs(found) = claim(&registry, &path, owner, free, metrics, controller).await? {
        return Err(not_ours(found));
    }
    if admin.ensure_namespace(namespace, owner).await? {
        metrics.api_write(controller, "OpenBaoNamespace", "create");
    }
    Ok(())
}

/// What a custodian's workloads may do in OpenBao: a policy and the Kubernetes auth role of
/// the same name that logs them in under it.
#[derive(Clone, Debug)]
pub struct Access<'a> {
    /// The name of the policy and of the role (root namespace).
    pub name: &'a str,
    /// The policy's rules.
    pub policy: Value,
    /// The role.
    pub role: openbao::KubernetesRole,
}

/// Whom the owner record at `path` (KV, in the OpenBao namespace `kv` works in) names;
/// `None` when there is no record.
pub async fn claimant(kv: &openbao::Admin, path: &str) -> Result<Option<String>, openbao::Error> {
    let claim: Option<OwnerRecord> = kv.read_secret(KV_MOUNT, path).await?;
    Ok(claim.map(|c| c.owner))
}

/// What an owner record says about the objects it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// They are `owner`'s (the record names it, or was just written for it).
    Ours,
    /// They are someone else's: the record names another owner, or there is no record and
    /// one of them exists already (`None`).
    Theirs(Option<String>),
}

/// Makes sure the owner record at `path` in `kv` names `owner` before objects that live where
/// names are shared are written. A record naming someone else is theirs; without a record,
/// the objects are `owner`'s only when none exists yet (`taken` says whether any does), and
/// the record is written first. Counts the write.
pub async fn claim(
    kv: &openbao::Admin,
    path: &str,
    owner: &str,
    taken: impl Future<Output = Result<bool, openbao::Error>>,
    metrics: &Metrics,
    controller: &'static str,
) -> Result<Claim, openbao::Error> {
    match claimant(kv, path).await? {
        Some(found) if found == owner => Ok(Claim::Ours),
        Some(found) => Ok(Claim::Theirs(Some(found))),
        None if taken.await? => Ok(Claim::Theirs(None)),
        None => {
            let record = OwnerRecord {
                owner: owner.into(),
            };
            // Create-only: of two owners claiming at once, one is refused (a check-and-set
            // mismatch, or 403 where the policy grants create but not update) and then reads
            // the winner's record.
            let created = kv.create_secret(KV_MOUNT, path, &record).await;
            if let Ok(true) = created {
                metrics.api_write(controller, "OpenBaoSecret", "write");
                return Ok(Claim::Ours);
            }
            match (claimant(kv, path).await?, created) {
                (Some(found), _) if found == owner => Ok(Claim::Ours),
                (Some(found), _) => Ok(Claim::Theirs(Some(found))),
                (None, Err(e)) => Err(e),
                (None, Ok(_)) => Err(openbao::Error::Unexpected(format!(
                    "the owner record at {path} exists but cannot be read"
                ))),
            }
        }
    }
}

/// Keeps a custodian's policy and role as `access` says, in the root namespace, where names
/// are shared. Before the first write the operator records `owner` as their owner in the
/// custodian's OpenBao namespace (which [`ensure_custody`] has made); a policy or role it
/// finds there without its claim, or with another's, is reported and neither changed nor
/// deleted. Counts every write.
pub async fn ensure_access(
    admin: &openbao::Admin,
    namespace: &str,
    owner: &str,
    access: &Access<'_>,
    metrics: &Metrics,
    controller: &'static str,
) -> Result<(), openbao::Error> {
    let kv = admin.in_namespace(namespace)?;
    let taken = async {
        let (policy, role) = tokio::try_join!(
            admin.policy_exists(access.name),
            admin.kubernetes_role_exists(AUTH_MOUNT, access.name)
        )?;
        Ok(policy || role)
    };
    let path = access_claim_path(access.name);
    if let Claim::Theirs(owner) = claim(&kv, &path, owner, taken, metrics, controller).await? {
        return Err(openbao::Error::AccessNotOurs {
            name: access.name.into(),
            owner,
        });
    }
    let (policy, role) = tokio::try_join!(
        admin.ensure_policy(access.name, &access.policy),
        admin.ensure_kubernetes_role(AUTH_MOUNT, access.name, &access.role)
    )?;
    if policy {
        metrics.api_write(controller, "OpenBaoPolicy", "write");
    }
    if role {
        metrics.api_write(controller, "OpenBaoRole", "write");
    }
    Ok(())
}

/// Removes the policy and role `name` when the claim in the custodian's OpenBao namespace
/// names `owner`; anyone else's are kept. The claim stays, so the name stays the owner's.
/// Counts every write.
pub async fn remove_access(
    admin: &openbao::Admin,
    namespace: &str,
    owner: &str,
    name: &str,
    metrics: &Metrics,
    controller: &'static str,
) -> Result<(), openbao::Error> {
    if admin.namespace_owner(namespace).await?.flatten().as_deref() != Some(owner) {
        return Ok(());
    }
    let kv = admin.in_namespace(namespace)?;
    if claimant(&kv, &access_claim_path(name)).await?.as_deref() != Some(owner) {
        // Never claimed, so never written by this resource: whatever has the name is kept.
        return Ok(());
    }
    // The role first: without it nobody logs in under the policy.
    if admin.remove_kubernetes_role(AUTH_MOUNT, name).await? {
        metrics.api_write(controller, "OpenBaoRole", "delete");
    }
    if admin.remove_policy(name).await? {
        metrics.api_write(controller, "OpenBaoPolicy", "delete");
    }
    Ok(())
}

/// Bucket creation claims in the custodian's OpenBao namespace (KV, at
/// [`bucket_claim_path`]), beside the keys and credentials the same custodian holds.
pub struct OpenBaoClaims<'a> {
    kv: openbao::Admin,
    metrics: &'a Metrics,
    controller: &'static str,
}

/// An owner record (a bucket's creation claim, a policy's and role's claim) as it is
/// stored.
#[derive(serde::Serialize, serde::Deserialize)]
struct OwnerRecord {
    owner: String,
}

impl<'a> OpenBaoClaims<'a> {
    /// The claims in OpenBao namespace `namespace`; writes are counted in `metrics`.
    pub fn new(
        admin: &openbao::Admin,
        namespace: &str,
        metrics: &'a Metrics,
        controller: &'static str,
    ) -> Result<Self, openbao::Error> {
        Ok(Self {
            kv: admin.in_namespace(namespace)?,
            metrics,
            controller,
        })
    }
}

fn claim_error(bucket: &str, e: &openbao::Error) -> s3::Error {
    s3::Error::Claim {
        bucket: bucket.into(),
        message: format!("OpenBao: {e}"),
    }
}

impl s3::CreationClaims for OpenBaoClaims<'_> {
    async fn claim(&self, bucket: &str, owner: &str) -> Result<(), s3::Error> {
        let path = bucket_claim_path(bucket);
        let free = std::future::ready(Ok(false));
        match claim(&self.kv, &path, owner, free, self.metrics, self.controller).await {
            Ok(Claim::Ours) => Ok(()),
            Ok(Claim::Theirs(owner)) => Err(s3::Error::NotOurs {
                bucket: bucket.into(),
                owner,
            }),
            Err(e) => Err(claim_error(bucket, &e)),
        }
    }

    async fn claimant(&self, bucket: &str) -> Result<Option<String>, s3::Error> {
        let claim: Option<OwnerRecord> = self
            .kv
            .read_secret(KV_MOUNT, &bucket_claim_path(bucket))
            .await
            .map_err(|e| claim_error(bucket, &e))?;
        Ok(claim.map(|c| c.owner))
    }
}

/// Writes each bucket to its spec, claiming it in `claims` before creating it, and returns
/// their outcomes; counts every write.
pub async fn ensure_buckets(
    storage: &s3::Storage,
    claims: &OpenBaoClaims<'_>,
    buckets: &[s3::BucketSpec],
    metrics: &Metrics,
    controller: &'static str,
) -> Result<Vec<s3::BucketOutcome>, s3::Error> {
    // Each bucket is its own, so they are checked side by side (a node's two, a hub's zones).
    futures::future::try_join_all(buckets.iter().map(|b| async move {
        let outcome = storage.ensure_bucket(b, claims).await?;
        for op in &outcome.writes {
            metrics.api_write(controller, "S3Bucket", op);
        }
        Ok(outcome)
    }))
    .await
}

/// The words a status uses for a retention outcome.
pub fn describe_retention(r: &s3::Retention) -> String {
    match r {
        s3::Retention::NotRequested => "none".into(),
        s3::Retention::Locked(days) => format!("locked {days} days (governance)"),
        s3::Retention::Unavailable(why) => format!("unavailable: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::s3::Access;
    use crate::api::{DataHub, RegionalNode};
    use serde_json::json;

    fn node(name: &str, regions: &[&str]) -> RegionalNode {
        let mut n = RegionalNode::new(
            name,
            serde_json::from_value(json!({"regions": regions, "hub": {"name": "hub"},
                "export": {"pseudonymisation": {"name": "p"}, "domain": "research",
                           "schedule": "0 3 * * *", "image": "export@sha256:00"}}))
            .expect("spec"),
        );
        n.metadata.uid = Some("u".into());
        n
    }

    fn hub(mode: &str) -> DataHub {
        DataHub::new(
            "hub",
            serde_json::from_value(json!({"storageMode": mode})).expect("spec"),
        )
    }

    #[test]
    fn central_ingest_is_a_write_only_drop_box_per_region() {
        let grants = ingest_grants(&hub("central"), &node("sussa", &["03", "04"]));
        assert_eq!(grants.len(), 2);
        assert!(grants.iter().all(|g| g.access == Access::Write));
        assert_eq!(grants[0].bucket, "vardhub-hub-hub-landing");
        assert_eq!(grants[0].prefix.as_deref(), Some("03"));
        assert!(ingest_grants(&hub("federated"), &node("sussa", &["03"])).is_empty());
    }

    #[test]
    fn federated_publisher_reads_only_the_regions_exports() {
        let members = [node("a", &["01"]), node("b", &["14"])];
        let grants = role_grants(&hub("federated"), HubRole::Publish, &members);
        let reads: Vec<_> = grants.iter().filter(|g| g.access == Access::Read).collect();
        assert_eq!(reads.len(), 2);
        assert!(
            reads
                .iter()
                .all(|g| g.prefix.as_deref() == Some("export/research"))
        );
        assert_eq!(HubRole::of(&hub("federated")), vec![HubRole::Publish]);
    }

    #[test]
    fn node_policy_reaches_only_its_own_namespace_and_ingest_slot() {
        let text = node_policy(&node("a", &["01"])).to_string();
        assert!(text.contains("region-a/transit/encrypt/region"));
        assert!(text.contains("region-a/secrets/data/s3/node"));
        assert!(text.contains("hub-hub/secrets/data/s3/ingest/a"));
        assert!(!text.contains("s3/roles"));
    }

    #[test]
    fn credentials_are_renewed_on_policy_change_or_near_expiry() {
        let policy = s3::session_policy(&node_grants(&node("a", &["01"])));
        let now: k8s_openapi::jiff::Timestamp = "2026-11-25T12:00:00Z".parse().expect("ts");
        let stored = |expiration: &str, digest: String| IssuedCredentials {
            access_key_id: String::new(),
            secret_access_key: String::new(),
            session_token: String::new(),
            expiration: expiration.into(),
            endpoint: String::new(),
            region: String::new(),
            policy_sha256: digest,
        };
        let digest = s3::policy_digest(&policy);
        assert!(credential_current(
            &stored("2026-11-25T23:00:00Z", digest.clone()),
            &policy,
            now
        ));
        assert!(!credential_current(
            &stored("2026-11-25T15:00:00Z", digest),
            &policy,
            now
        ));
        assert!(!credential_current(
            &stored("2026-11-25T23:00:00Z", "other".into()),
            &policy,
            now
        ));
    }

    #[test]
    fn a_policy_or_role_of_another_is_a_conflict_that_names_it() {
        let e = Error::Keys(openbao::Error::AccessNotOurs {
            name: "vardhub-region-x".into(),
            owner: None,
        });
        assert_eq!(e.reason(), "Conflict");
        let conditions = failed(&e);
        let message = &conditions[0].message;
        assert!(
            message
                .contains("OpenBao policy and role vardhub-region-x belong to no vardhub resource"),
            "{message}"
        );
        assert!(message.contains("policy and role are free"), "{message}");
    }
}
