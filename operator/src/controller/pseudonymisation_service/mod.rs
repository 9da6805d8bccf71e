//! The `PseudonymisationService` controller.
//!
//! Pipeline: validate (pure) → keys (I/O: Transit mount and keys, policy, Kubernetes auth
//! role in OpenBao, each written only when missing or different) → build ([`build`], pure) →
//! apply and prune (I/O) → status with `KeysReady` and `Ready`. Deleting the resource removes
//! the workloads but keeps the keys: without them every pseudonym ever issued is unlinkable.

pub mod build;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply::{Owner, stamp};
use super::conditions::{self, Desired, types};
use super::context::Context;
use super::status::{self, HasConditions};
use crate::adapters::openbao;
use crate::api::{PseudonymisationMode, PseudonymisationService, PseudonymisationServiceStatus};

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
    /// Writing the status failed.
    #[error("writing the status failed: {0}")]
    Status(#[source] kube::Error),
    /// Adding or removing the key-deletion finalizer failed.
    #[error("updating the finalizer failed: {0}")]
    Finalizer(#[source] kube::Error),
}

impl Error {
    /// The CamelCase reason used in conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "InvalidSpec",
            Error::NoOpenBao => "OpenBaoNotConfigured",
            Error::Keys(_) => "KeysFailed",
            Error::Build(_) => "BuildFailed",
            Error::Apply(_) => "ApplyFailed",
            Error::Foreign(_) => "Conflict",
            Error::Status(_) => "StatusUpdateFailed",
            Error::Finalizer(_) => "FinalizerFailed",
        }
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

enum Outcome {
    Paused,
    Converged { available: bool },
}

/// Reconciles one pseudonymisation service.
#[tracing::instrument(skip_all, fields(object = %format!("{}/{}", svc.namespace().unwrap_or_default(), svc.name_any())))]
pub async fn reconcile(
    svc: Arc<PseudonymisationService>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if let Some(action) = finalize(&svc, &ctx).await? {
        return Ok(action);
    }
    let started = Instant::now();
    let result = run_pipeline(&svc, &ctx).await;
    ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    let (conditions, action) = match &result {
        Ok(Outcome::Paused) => {
            let current = svc
                .status
                .as_ref()
                .map(|s| s.common.conditions.as_slice())
                .unwrap_or_default();
            let keep = [
                KEYS_READY,
                types::READY,
                types::PROGRESSING,
                types::DEGRADED,
            ];
            (conditions::paused(current, &keep), Action::await_change())
        }
        Ok(Outcome::Converged { available }) => {
            let mut c = vec![
                Desired::yes(
                    KEYS_READY,
                    "KeysInPlace",
                    "domain keys, policy and role exist in OpenBao",
                ),
                Desired::no(types::DEGRADED, "NoErrors", "the last reconcile succeeded"),
            ];
            c.extend(conditions::rollout(*available, "the service answers"));
            let requeue = if *available { 600 } else { 10 };
            (c, Action::requeue(Duration::from_secs(requeue)))
        }
        Err(e) => {
            ctx.metrics.reconcile_error(CONTROLLER, e.reason());
            tracing::warn!(reason = e.reason(), error = %e, "reconcile failed");
            let keys_ok = !matches!(e, Error::Keys(_) | Error::NoOpenBao | Error::Invalid { .. });
            let advice = match e {
                Error::Invalid { .. } => "correct the spec",
                Error::NoOpenBao => "give the operator VAULT_ADDR and VAULT_TOKEN",
                _ => "the operator retries; see its log and events",
            };
            let message = format!("{e}; {advice}");
            let mut c = conditions::failed(e.reason(), &message);
            c.push(if keys_ok {
                Desired::yes(
                    KEYS_READY,
                    "KeysInPlace",
                    "domain keys, policy and role exist in OpenBao",
                )
            } else {
                Desired::no(KEYS_READY, e.reason(), message)
            });
            (c, Action::requeue(Duration::from_secs(30)))
        }
    };
    let generation = svc.metadata.generation;
    let current = svc.status.clone().unwrap_or_default();
    let new = PseudonymisationServiceStatus {
        common: conditions::common_status(
            &current.common,
            &conditions,
            generation,
            &Time(k8s_openapi::jiff::Timestamp::now()),
        ),
        domains: Some(svc.spec.domains.len() as i32),
        audience: Some(build::audience(&svc)),
    };
    status::update(&ctx, CONTROLLER, svc.as_ref(), &new)
        .await
        .map_err(Error::Status)?;
    match result {
        Err(Error::Invalid { .. }) => Ok(Action::await_change()),
        Err(e) => Err(e),
        Ok(_) => Ok(action),
    }
}

async fn run_pipeline(svc: &PseudonymisationService, ctx: &Context) -> Result<Outcome, Error> {
    if super::is_paused(&svc.metadata) {
        return Ok(Outcome::Paused);
    }
    validate(svc)?;
    let Some(bao) = &ctx.openbao else {
        return Err(Error::NoOpenBao);
    };
    ensure_keys(svc, ctx, &bao.admin).await?;

    let desired = stamp(
        &Owner::of(svc),
        build::children(svc, &bao.workload_addr, &ctx.image)?,
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
    Ok(Outcome::Converged { available })
}

/// Transit mount, one key per domain, the policy and the Kubernetes auth role. Keys are
/// created exportable only in local mode; they are never deleted here.
async fn ensure_keys(
    svc: &PseudonymisationService,
    ctx: &Context,
    admin: &openbao::Admin,
) -> Result<(), Error> {
    let names = build::names(svc);
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
        .ensure_kubernetes_role(build::AUTH_MOUNT, &names.role, &build::role(svc))
        .await?
    {
        ctx.metrics.api_write(CONTROLLER, "OpenBaoRole", "write");
    }
    if let Some(role) = build::caller_role(svc)
        && admin
            .ensure_kubernetes_role(build::AUTH_MOUNT, &names.caller_role, &role)
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

fn has_finalizer(svc: &PseudonymisationService) -> bool {
    svc.finalizers().iter().any(|f| f == KEY_FINALIZER)
}

/// Keeps the key-deletion finalizer in line with the deletion policy, and on deletion of a
/// resource that carries it deletes the mount with every domain key, the policies and the
/// role. Returns an action when the reconcile ends here.
async fn finalize(svc: &PseudonymisationService, ctx: &Context) -> Result<Option<Action>, Error> {
    let wants = svc.deletes_keys();
    let has = has_finalizer(svc);
    let deleting = svc.metadata.deletion_timestamp.is_some();
    let api: Api<PseudonymisationService> =
        Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
    let confirmed = match deleting && has {
        true => super::confirmed_destruction(&api, svc, PseudonymisationService::deletes_keys)
            .await
            .map_err(Error::Finalizer)?,
        false => None,
    };
    if deleting && has && confirmed.is_none() {
        tracing::info!(
            "the deletion policy no longer asks for the keys to be deleted; keeping them"
        );
    }
    if let Some(svc) = &confirmed {
        let Some(bao) = &ctx.openbao else {
            return Err(Error::NoOpenBao);
        };
        let names = build::names(svc);
        bao.admin
            .delete_kubernetes_role(build::AUTH_MOUNT, &names.role)
            .await?;
        bao.admin
            .delete_kubernetes_role(build::AUTH_MOUNT, &names.caller_role)
            .await?;
        bao.admin.delete_policy(&names.policy).await?;
        bao.admin.delete_policy(&names.reidentify_policy).await?;
        bao.admin.delete_mount(&names.mount).await?;
        bao.admin.delete_mount(&names.pki_mount).await?;
        ctx.metrics.api_write(CONTROLLER, "OpenBaoMount", "delete");
        tracing::warn!(mount = %names.mount, "deleted the domain keys as the deletion policy asks");
    }
    if deleting {
        if has {
            set_finalizer(svc, ctx, false).await?;
        }
        return Ok(Some(Action::await_change()));
    }
    if wants != has {
        set_finalizer(svc, ctx, wants).await?;
    }
    Ok(None)
}

async fn set_finalizer(
    svc: &PseudonymisationService,
    ctx: &Context,
    present: bool,
) -> Result<(), Error> {
    let api: Api<PseudonymisationService> =
        Api::namespaced(ctx.client.clone(), &svc.namespace().unwrap_or_default());
    super::set_finalizer(&api, svc, KEY_FINALIZER, present)
        .await
        .map_err(Error::Finalizer)?;
    ctx.metrics
        .api_write(CONTROLLER, "PseudonymisationService", "patch");
    Ok(())
}

/// Backoff after a failed reconcile; the failure is already in the status and the metrics.
pub fn error_policy(
    svc: Arc<PseudonymisationService>,
    _error: &Error,
    ctx: Arc<Context>,
) -> Action {
    crate::controller::backoff::requeue(svc.as_ref(), &ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

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
