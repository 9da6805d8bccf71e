//! The `RegionalNode` controller.
//!
//! Pipeline: validate ([`validate`], pure) → keys (I/O: the region's OpenBao namespace, key,
//! policy, role) → storage (I/O: buckets, the node's STS credential kept in OpenBao) → build
//! ([`build`], pure) → apply and prune (I/O, [`crate::controller::apply`]) → job outcomes →
//! status (I/O, [`crate::controller::status`]). Deleting a node keeps buckets, objects and
//! keys unless `deletionPolicy: Delete` is confirmed.

pub mod build;
pub mod validate;

use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply::{Owner, stamp};
use super::conditions::{Desired, types};
use super::context::Context;
use super::driver::Reconciled;
use super::status::HasConditions;
use super::storage;
use crate::adapters::s3::BucketSpec;
use crate::api::{
    CommonStatus, DataHub, JobRun, JobStatus, PseudonymisationService, RegionalNode,
    RegionalNodeStatus, StorageMode,
};

/// Name of the controller: its field manager is `vardhub-regionalnode`.
pub const CONTROLLER: &str = "regionalnode";

/// How often a converged node is checked again for drift that no watch reported.
const RESYNC: Duration = Duration::from_secs(600);

/// Finalizer present only while `deletionPolicy: Delete` (with `confirmDeletion`) asks for
/// the buckets and keys to be deleted with the node.
pub const DATA_FINALIZER: &str = "vardhub.io/delete-data";
pub use super::storage::{Error, KEYS_READY, STORAGE_READY};
/// Condition type: the node's hub exists and the export path to it is in place.
pub const HUB_CONNECTED: &str = "HubConnected";

impl HasConditions for RegionalNode {
    type Status = RegionalNodeStatus;
    fn status(&self) -> Option<&RegionalNodeStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &RegionalNodeStatus) -> &[Condition] {
        &status.common.conditions
    }
}

/// What a converged reconcile learned.
#[derive(Default)]
pub struct Observed {
    hub: Option<Result<String, String>>,
    /// A reference the node names that does not resolve (a missing hub or service, a domain
    /// that does not admit the node), naming the field.
    unresolved: Option<String>,
    jobs: Vec<JobStatus>,
}

impl Reconciled for RegionalNode {
    const CONTROLLER: &'static str = CONTROLLER;
    const OWN_CONDITIONS: &'static [&'static str] = &[KEYS_READY, STORAGE_READY];
    const DATA_FINALIZER: Option<&'static str> = Some(DATA_FINALIZER);
    type Error = Error;
    type Observed = Observed;

    fn api(client: kube::Client, _namespace: Option<&str>) -> Api<Self> {
        Api::all(client)
    }

    fn wants_destruction(&self) -> bool {
        self.deletes_data()
    }

    /// Deletes the buckets (refused while objects remain unless `purgeObjects`), the OpenBao
    /// namespace with the region's key and credential, its policy and role.
    async fn destroy(&self, ctx: &Context) -> Result<(), Error> {
        let (bao, s3) = storage::connections(ctx)?;
        let layout = storage::node_layout(self);
        let custody = storage::Custody {
            buckets: vec![&layout.landing, &layout.standardised],
            owner: storage::bucket_owner(self),
            openbao_namespace: &layout.openbao_namespace,
            access: vec![&layout.access],
        };
        let purge = self.spec.purge_objects == Some(true);
        storage::delete_custody(s3, &bao.admin, &custody, purge, &ctx.metrics, CONTROLLER).await
    }

    async fn steps(&self, ctx: &Context) -> Result<Observed, Error> {
        run_pipeline(self, ctx).await
    }

    fn converged(&self, observed: &Observed, _ctx: &Context) -> (Vec<Desired>, Action) {
        // The hub is watched; the service a reference waits for is looked up again soon.
        let again = match observed.unresolved {
            Some(_) => Duration::from_secs(30),
            None => RESYNC,
        };
        (converged(self, observed), Action::requeue(again))
    }

    fn next_status(&self, common: CommonStatus, observed: Option<&Observed>) -> RegionalNodeStatus {
        let current = self.status.clone().unwrap_or_default();
        let layout = storage::node_layout(self);
        RegionalNodeStatus {
            common,
            namespace: Some(self.workload_namespace()),
            openbao_namespace: Some(layout.openbao_namespace),
            buckets: vec![layout.landing, layout.standardised],
            jobs: observed.map_or(current.jobs, |o| o.jobs.clone()),
        }
    }
}

async fn run_pipeline(node: &RegionalNode, ctx: &Context) -> Result<Observed, Error> {
    validate::validate(node)?;
    let (bao, s3) = storage::connections(ctx)?;

    let hub = match &node.spec.hub {
        Some(r) => Api::<DataHub>::all(ctx.client.clone())
            .get_opt(&r.name)
            .await
            .map_err(Error::Apply)?,
        None => None,
    };

    let export_problem = match (&hub, &node.spec.export) {
        (Some(h), Some(export)) => {
            let service = Api::<PseudonymisationService>::namespaced(
                ctx.client.clone(),
                &h.workload_namespace(),
            )
            .get_opt(&export.pseudonymisation.name)
            .await
            .map_err(Error::Apply)?;
            build::export_problem(node, h, service.as_ref())
        }
        _ => None,
    };

    // The external pass, unless nothing it depends on changed since the last one.
    let pass = super::backoff::key(node);
    let print = super::passes::fingerprint(&node.metadata, ());
    if ctx.passes.recent::<()>(&pass, print).is_none() {
        external_pass(node, ctx, bao, s3).await?;
        ctx.passes.record(&pass, print, ());
    }

    // Workloads and isolation in the cluster.
    let inputs = build::Inputs {
        openbao_addr: bao.workload_addr.clone(),
        s3_endpoint: s3.endpoint().to_string(),
        paths: ctx.paths.clone(),
        hub: hub.clone(),
        image: ctx.image.clone(),
    };
    let desired = stamp(&Owner::of(node), build::children(node, &inputs)?);
    let applier = ctx.applier(CONTROLLER);
    applier
        .apply_all(&desired)
        .await
        .map_err(|e| e.split(Error::Apply))?;
    applier
        .prune(&Owner::of(node), &build::owned_kinds(), &desired)
        .await
        .map_err(Error::Apply)?;

    let jobs = job_statuses(&Owner::of(node), &node.workload_namespace(), ctx)
        .await
        .map_err(Error::Apply)?;
    let hub = node.spec.hub.as_ref().map(|r| match &hub {
        Some(h) => Ok(format!(
            "exports to hub {} ({} mode)",
            r.name,
            match h.spec.storage_mode {
                StorageMode::Central => "central",
                StorageMode::Federated => "federated",
            }
        )),
        None => Err(format!("spec.hub: DataHub {} does not exist", r.name)),
    });
    let unresolved = match (&hub, &export_problem) {
        (Some(Err(missing)), _) => Some(missing.clone()),
        (_, Some(problem)) => Some(problem.clone()),
        _ => None,
    };
    Ok(Observed {
        hub,
        unresolved,
        jobs,
    })
}

/// The node's external state: its OpenBao namespace, key, policy and role, its buckets, and
/// its own S3 credential kept current in OpenBao.
async fn external_pass(
    node: &RegionalNode,
    ctx: &Context,
    bao: &super::context::OpenBaoAccess,
    s3: &crate::adapters::s3::Storage,
) -> Result<(), Error> {
    let layout = storage::node_layout(node);
    let owner = storage::bucket_owner(node);
    // The region's own OpenBao namespace and key first: the claims below are kept there.
    storage::ensure_custody(
        &bao.admin,
        &owner,
        &layout.openbao_namespace,
        &layout.key,
        node.spec.keys.rotation_period_days,
        &ctx.metrics,
        CONTROLLER,
    )
    .await?;
    // Who may log in as the node's jobs, and what they may do: independent of the storage
    // below, so written beside it.
    let access = async {
        let access = storage::Access {
            name: &layout.access,
            policy: storage::node_policy(node),
            role: build::role(node),
        };
        storage::ensure_access(
            &bao.admin,
            &layout.openbao_namespace,
            &owner,
            &access,
            &ctx.metrics,
            CONTROLLER,
        )
        .await?;
        Ok::<(), Error>(())
    };
    // Storage: the region's buckets (claimed in its namespace) and its own credential (kept
    // there).
    let buckets = async {
        storage::ensure_buckets(
            s3,
            &storage::OpenBaoClaims::new(
                &bao.admin,
                &layout.openbao_namespace,
                &ctx.metrics,
                CONTROLLER,
            )?,
            &[
                BucketSpec {
                    name: layout.landing.clone(),
                    owner: owner.clone(),
                    retention_days: None,
                },
                BucketSpec {
                    name: layout.standardised.clone(),
                    owner: owner.clone(),
                    retention_days: None,
                },
            ],
            &ctx.metrics,
            CONTROLLER,
        )
        .await?;
        let session = format!("region-{}", node.name_any());
        storage::ensure_credential(
            s3,
            &bao.admin,
            &storage::CredentialSlot {
                namespace: &layout.openbao_namespace,
                path: &layout.credentials_path,
                session: &session,
            },
            &storage::node_grants(node),
            &ctx.metrics,
            CONTROLLER,
        )
        .await?;
        Ok::<(), Error>(())
    };
    tokio::try_join!(access, buckets)?;
    Ok(())
}

/// The last run of each of an owner's scheduled jobs in `ns`, from its CronJobs and Jobs.
pub async fn job_statuses(owner: &Owner, ns: &str, ctx: &Context) -> kube::Result<Vec<JobStatus>> {
    let selector = owner.selector();
    let params = ListParams::default().labels(&selector);
    let cron_jobs = Api::<CronJob>::namespaced(ctx.client.clone(), ns)
        .list(&params)
        .await?;
    let jobs = Api::<Job>::namespaced(ctx.client.clone(), ns)
        .list(&params)
        .await?;
    Ok(summarise_jobs(&cron_jobs.items, &jobs.items))
}

/// Pairs each CronJob with its newest Job. Pure.
pub fn summarise_jobs(cron_jobs: &[CronJob], jobs: &[Job]) -> Vec<JobStatus> {
    let label = |meta: &kube::core::ObjectMeta| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(build::JOB_LABEL))
            .cloned()
    };
    let mut out: Vec<JobStatus> = cron_jobs
        .iter()
        .filter_map(|cj| {
            let job_name = cj.spec.job_template.metadata.as_ref().and_then(label)?;
            let newest = jobs
                .iter()
                .filter(|j| label(&j.metadata).as_deref() == Some(job_name.as_str()))
                .max_by_key(|j| {
                    (
                        j.metadata.creation_timestamp.clone().map(|t| t.0),
                        j.metadata.name.clone(),
                    )
                });
            Some(JobStatus {
                name: job_name,
                cron_job: cj.name_any(),
                last_schedule_time: cj
                    .status
                    .as_ref()
                    .and_then(|s| s.last_schedule_time.clone()),
                last_run: newest.map(|j| {
                    let status = j.status.clone().unwrap_or_default();
                    let failed = status
                        .conditions
                        .iter()
                        .flatten()
                        .any(|c| c.type_ == "Failed" && c.status == "True");
                    JobRun {
                        job: j.name_any(),
                        result: if status.succeeded.unwrap_or(0) > 0 {
                            "Succeeded"
                        } else if failed {
                            "Failed"
                        } else {
                            "Running"
                        }
                        .into(),
                        start_time: status.start_time,
                        completion_time: status.completion_time,
                    }
                }),
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn converged(node: &RegionalNode, observed: &Observed) -> Vec<Desired> {
    let ns = node.workload_namespace();
    let layout = storage::node_layout(node);
    let mut c = vec![
        Desired::yes(
            types::READY,
            "Reconciled",
            format!(
                "namespace {ns} is isolated; keys in OpenBao namespace {}; data in buckets {} and {}",
                layout.openbao_namespace, layout.landing, layout.standardised
            ),
        ),
        Desired::yes(
            KEYS_READY,
            "KeysInPlace",
            "the region's key, policy and role exist in its OpenBao namespace",
        ),
        Desired::yes(
            STORAGE_READY,
            "StorageInPlace",
            "buckets are versioned, encrypted and closed to anonymous access; the node's credential is current",
        ),
        Desired::no(types::PROGRESSING, "Converged", "nothing left to do"),
        Desired::no(types::DEGRADED, "NoErrors", "the last reconcile succeeded"),
    ];
    match &observed.hub {
        Some(Ok(message)) => c.push(Desired::yes(HUB_CONNECTED, "HubFound", message.clone())),
        Some(Err(message)) => c.push(Desired::no(HUB_CONNECTED, "HubNotFound", message.clone())),
        None => c.push(Desired::no(
            HUB_CONNECTED,
            "NoHub",
            "spec.hub is not set; the node exports nothing",
        )),
    }
    if let Some(problem) = &observed.unresolved {
        // Everything the node owns is in place, but what it names is not: never Ready.
        c[0] = Desired::no(types::READY, "ReferenceNotFound", problem.clone());
        c[3] = Desired::yes(types::PROGRESSING, "WaitingForReferences", problem.clone());
    }
    c
}
