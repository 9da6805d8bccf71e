//! The `PseudonymisationService` controller.
//!
//! Pipeline: validate (pure) → claim (I/O: the service's owner record in the operator's
//! registry namespace, before anything under its names is written) → keys (I/O: Transit
//! mount and keys, policy, Kubernetes auth role in OpenBao, each written only when missing
//! or different) → build ([`build`], pure) → apply and prune (I/O) → status with `KeysReady`
//! and `Ready`. Deleting the resource removes the workloads but keeps the keys: without them
//! every pseudonym ever issued is unlinkable; a deletion policy that asks for the keys to go
//! removes only what the service's record says is its own.

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
use crate::adapters::openbao;
use crate::api::{
    CommonStatus, PseudonymisationMode, PseudonymisationService, PseudonymisationServiceStatus,
};
use crate::controller::storage::{self, Claim};
use crate::layout::{
    AUTH_MOUNT, REGISTRY_NAMESPACE, REGISTRY_OWNER, service_claim_path, service_owner,
};

/// Name of the controller: its field manager is `vardhub-pseudonymisation`.
pub const CONTROLLER: &str = "pseudonymisation";
/// Finalizer present only while `deletionPolicy: Delete` (with `confirmKeyDeletion`) asks
/// for the keys to be deleted with the resource.
pub const KEY_FINALIZER: &str = "vardhub.io/delete-keys";
/// Condition type: the domain keys, policy and role exist in OpenBao.
pub const KEYS_READY: &str = "KeysReady";

/// What can go wrong, one variant per step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec asks for something not supported.
    #[error("{field}: {message}")]
    Invalid {
        /// The offending field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The operator was started without OpenBao settings.
    #[error("the operator has no OpenBao connection (start it with VAULT_ADDR and VAULT_TOKEN)")]
    NoOpenBao,
    /// OpenBao refused or failed.
    #[error("OpenBao: {0}")]
    Keys(#[from] openbao::Error),
    /// Building the desired objects failed.
    #[error("building the service's objects failed: {0}")]
    Build(#[from] serde_json::Error),
    /// Applying or pruning objects failed.
    #[error("applying the service's objects failed: {0}")]
    Apply(#[source] kube::Error),
    /// An object to be written exists and belongs to someone else.
    #[error("{0}")]
    Foreign(#[from] crate::controller::apply::Foreign),
    /// Writing the resource's status or finalizers failed.
    #[error("writing the resource failed: {0}")]
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
            Error::NoOpenBao => "OpenBaoNotConfigured",
            Error::Keys(openbao::Error::NotOurs { .. } | openbao::Error::KeysNotOurs { .. }) => {
                "Conflict"
            }
            Error::Keys(_) => "KeysFailed",
            Error::Build(_) => "BuildFailed",
            Error::Apply(_) => "ApplyFailed",
            Error::Foreign(_) => "Conflict",
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
            Error::NoOpenBao => "give the operator VAULT_ADDR and VAULT_TOKEN",
            Error::Keys(openbao::Error::KeysNotOurs { .. }) => {
                "give the service a name whose OpenBao mounts, policies and roles are free, or remove the other ones (a service an earlier vardhub made needs its owner record: see the README); the operator retries"
            }
            Error::Keys(openbao::Error::NotOurs { .. }) => {
                "OpenBao namespace vardhub-claims is the operator's own: remove the other one; the operator retries"
            }
            _ => "the operator retries; see its log and events",
        };
        let message = format!("{self}; {advice}");
        let mut c = conditions::failed(self.reason(), &message);
        let keys_ok = !matches!(
            self,
            Error::Keys(_) | Error::NoOpenBao | Error::Invalid { .. }
        );
        c.push(if keys_ok {
            Desired::yes(
                KEYS_READY,
                "KeysInPlace",
                "domain keys, policy and role exist in OpenBao",
            )
        } else {
            Desired::no(KEYS_READY, self.reason(), message)
        });
        c
    }
    fn write(error: kube::Error) -> Self {
        Error::Status(error)
    }
    fn deadline(after: Duration) -> Self {
        Error::TimedOut(after)
    }
}

impl HasConditions for PseudonymisationService {
    type Status = PseudonymisationServiceStatus;
    fn status(&self) -> Option<&PseudonymisationServiceStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &PseudonymisationServiceStatus) -> &[Condition] {
        &status.common.conditions
    }
}

/// Checks the spec beyond what the schema expresses. Pure; today every rule fits in the
/// schema, so this is the place for the next one.
pub fn validate(_svc: &PseudonymisationService) -> Result<(), Error> {
    Ok(())
}

/// What a converged reconcile learned.
pub struct Observed {
    available: bool,
}

impl Reconciled for PseudonymisationService {
    const CONTROLLER: &'static str = CONTROLLER;
    const OWN_CONDITIONS: &'static [&'static str] = &[KEYS_READY];
    const DATA_FINALIZER: Option<&'static str> = Some(KEY_FINALIZER);
    type Error = Error;
    type Observed = Observed;

    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }

    fn wants_destruction(&self) -> bool {
        self.deletes_keys()
    }

    async fn destroy(&self, ctx: &Context) -> Result<(), Error> {
        let Some(bao) = &ctx.openbao else {
            return Err(Error::NoOpenBao);
        };
        let names = build::names(self);
        if !owned(self, &bao.admin).await? {
            // Never claimed by this service, so never written by it: whatever has its names
            // is kept, and the finalizer goes.
            tracing::warn!(mount = %names.mount, "the keys are not this service's; kept");
            return Ok(());
        }
        bao.admin
            .delete_kubernetes_role(AUTH_MOUNT, &names.role)
            .await?;
        bao.admin
            .delete_kubernetes_role(AUTH_MOUNT, &names.caller_role)
            .await?;
        bao.admin.delete_policy(&names.policy).await?;
        bao.admin.delete_policy(&names.reidentify_policy).await?;
        bao.admin.delete_mount(&names.mount).await?;
        bao.admin.delete_mount(&names.pki_mount).await?;
        ctx.metrics.api_write(CONTROLLER, "OpenBaoMount", "delete");
        tracing::warn!(mount = %names.mount, "deleted the domain keys as the deletion policy asks");
        Ok(())
    }

    async fn steps(&self, ctx: &Context) -> Result<Observed, Error> {
        run_pipeline(self, ctx).await
    }

    fn converged(&self, o: &Observed, _ctx: &Context) -> (Vec<Desired>, Action) {
        let mut c = vec![
            Desired::yes(
                KEYS_READY,
                "KeysInPlace",
                "domain keys, policy and role exist in OpenBao",
            ),
            Desired::no(types::DEGRADED, "NoErrors", "the last reconcile succeeded"),
        ];
        c.extend(conditions::rollout(o.available, "the service answers"));
        let requeue = if o.available { 600 } else { 10 };
        (c, Action::requeue(Duration::from_secs(requeue)))
    }

    fn next_status(&self, common: CommonStatus, _observed: Option<&Observed>) -> Self::Status {
        PseudonymisationServiceStatus {
            common,
            domains: Some(self.spec.domains.len() as i32),
            audience: Some(build::audience(self)),
        }
    }
}

async fn run_pipeline(svc: &PseudonymisationService, ctx: &Context) -> Result<Observed, Error> {
    validate(svc)?;
    let Some(bao) = &ctx.openbao else {
        return Err(Error::NoOpenBao);
    };
    ensure_keys(svc, ctx, &bao.admin).await?;

    let desired = stamp(
        &Owner::of(svc),
        build::children(svc, &bao.workload_addr, &ctx.image, &ctx.paths)?,
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

    let ns = svc.namespace().unwrap_or_default();
    let deployment = Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&svc.name_any())
        .await
        .map_err(Error::Apply)?;
    let available = deployment.as_ref().is_some_and(super::workload::rolled_out);
    Ok(Observed { available })
}

/// Whether the owner record of the service's OpenBao objects names it (false when the
/// operator's registry namespace is missing or someone else's: nothing was claimed there).
async fn owned(svc: &PseudonymisationService, admin: &openbao::Admin) -> Result<bool, Error> {
    let registry_owner = admin.namespace_owner(REGISTRY_NAMESPACE).await?.flatten();
    if registry_owner.as_deref() != Some(REGISTRY_OWNER) {
        return Ok(false);
    }
    let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
    let registry = admin.in_namespace(REGISTRY_NAMESPACE)?;
    let found = storage::claimant(&registry, &service_claim_path(&ns, &name)).await?;
    Ok(found == Some(service_owner(&ns, &name)))
}

/// Records the service as the owner of its OpenBao objects, which live in the root namespace
/// where names are shared, before the first of them is written: in the operator's registry
/// namespace, which it makes when missing. Mounts, policies or roles under the service's
/// names that exist without its record are someone else's and are reported, never touched.
async fn claim_keys(
    svc: &PseudonymisationService,
    ctx: &Context,
    admin: &openbao::Admin,
    names: &build::Names,
) -> Result<(), Error> {
    let registry = storage::registry(admin, &ctx.metrics, CONTROLLER).await?;
    let mounts = [names.mount.as_str(), names.pki_mount.as_str()];
    let taken = async {
        let (mounts, policy, reidentify, role, callers) = tokio::try_join!(
            admin.any_mounted(&mounts),
            admin.policy_exists(&names.policy),
            admin.policy_exists(&names.reidentify_policy),
            admin.kubernetes_role_exists(AUTH_MOUNT, &names.role),
            admin.kubernetes_role_exists(AUTH_MOUNT, &names.caller_role),
        )?;
        Ok(mounts || policy || reidentify || role || callers)
    };
    let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
    let path = service_claim_path(&ns, &name);
    let owner = service_owner(&ns, &name);
    match storage::claim(&registry, &path, &owner, taken, &ctx.metrics, CONTROLLER).await? {
        Claim::Ours => Ok(()),
        Claim::Theirs(owner) => Err(Error::Keys(openbao::Error::KeysNotOurs {
            mount: names.mount.clone(),
            owner,
        })),
    }
}

/// Transit mount, one key per domain, the policy and the Kubernetes auth role, each written
/// only under the service's owner record ([`claim_keys`]). Keys are created exportable only
/// in local mode; they are never deleted here.
async fn ensure_keys(
    svc: &PseudonymisationService,
    ctx: &Context,
    admin: &openbao::Admin,
) -> Result<(), Error> {
    let names = build::names(svc);
    claim_keys(svc, ctx, admin, &names).await?;
    let transit = admin.transit(&names.mount)?;
    if transit.ensure_mount().await? {
        ctx.metrics.api_write(CONTROLLER, "OpenBaoMount", "create");
    }
    let exportable = svc.spec.mode == PseudonymisationMode::Local;
    for domain in &svc.spec.domains {
        let state = if domain.reversible {
            transit.ensure_convergent_key(&domain.name).await?
        } else {
            transit.ensure_key(&domain.name, exportable).await?
        };
        if state.created {
            ctx.metrics
                .api_write(CONTROLLER, "OpenBaoTransitKey", "create");
            tracing::info!(domain = %domain.name, "created the domain key");
        }
    }
    if admin
        .ensure_policy(&names.policy, &build::policy(svc))
        .await?
    {
        ctx.metrics.api_write(CONTROLLER, "OpenBaoPolicy", "write");
    }
    if let Some(rules) = build::reidentify_policy(svc)
        && admin
            .ensure_policy(&names.reidentify_policy, &rules)
            .await?
    {
        ctx.metrics.api_write(CONTROLLER, "OpenBaoPolicy", "write");
    }
    if admin
        .ensure_kubernetes_role(AUTH_MOUNT, &names.role, &build::role(svc))
        .await?
    {
        ctx.metrics.api_write(CONTROLLER, "OpenBaoRole", "write");
    }
    if let Some(role) = build::caller_role(svc)
        && admin
            .ensure_kubernetes_role(AUTH_MOUNT, &names.caller_role, &role)
            .await?
    {
        ctx.metrics.api_write(CONTROLLER, "OpenBaoRole", "write");
    }
    if admin
        .ensure_server_pki(&build::server_pki(svc), build::CA_NAME)
        .await?
    {
        ctx.metrics.api_write(CONTROLLER, "OpenBaoPki", "write");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_someone_else_made_are_a_conflict_that_names_the_mount() {
        let e = Error::Keys(openbao::Error::KeysNotOurs {
            mount: "pseudonymisation/hub/pseudo".into(),
            owner: None,
        });
        assert_eq!(e.reason(), "Conflict");
        let conditions = Failure::conditions(&e);
        let keys = conditions
            .iter()
            .find(|c| c.type_ == KEYS_READY)
            .expect("KeysReady");
        assert_eq!(keys.reason, "Conflict");
        assert!(
            keys.message
                .contains("of pseudonymisation/hub/pseudo belong to no vardhub resource"),
            "{}",
            keys.message
        );
        assert!(keys.message.contains("owner record"), "{}", keys.message);
    }

    #[test]
    fn reversible_domains_get_encrypt_for_the_service_and_a_separate_decrypt_policy() {
        let mut svc = PseudonymisationService::new(
            "pseudo",
            serde_json::from_value(serde_json::json!({
                "domains": [{"name": "a"}, {"name": "b", "reversible": true}],
            }))
            .expect("spec"),
        );
        svc.metadata.namespace = Some("hub".into());
        assert!(validate(&svc).is_ok());
        let service = build::policy(&svc).to_string();
        assert!(service.contains("pseudonymisation/hub/pseudo/encrypt/b"));
        assert!(
            !service.contains("decrypt"),
            "the service itself can never re-identify"
        );
        let reidentify = build::reidentify_policy(&svc)
            .expect("a reversible domain")
            .to_string();
        assert!(reidentify.contains("pseudonymisation/hub/pseudo/decrypt/b"));
        assert!(!reidentify.contains("/a"), "only reversible domains");
        svc.spec.domains[1].reversible = false;
        assert!(build::reidentify_policy(&svc).is_none());
    }
}
