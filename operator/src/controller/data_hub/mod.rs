//! The `DataHub` controller.
//!
//! Pipeline: members (the hub's regional nodes) → validate ([`build::validate`], pure) → keys
//! (I/O: the hub's OpenBao namespace, key, policy and role, apart from every region's) →
//! zones (I/O: buckets with versioning, encryption, no anonymous access, retention lock) →
//! credentials (I/O: each region's ingest drop box and each hub role, issued by the S3
//! server's STS and kept in OpenBao) → build ([`build`], pure) → apply and prune → status
//! with each region's state. Deleting a hub keeps buckets, objects and keys unless
//! `deletionPolicy: Delete` is confirmed.

pub mod build;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply::{Owner, stamp};
use super::conditions::{self, Desired, types};
use super::context::Context;
use super::status::{self, HasConditions};
use super::storage::{self, HubRole};
use crate::adapters::s3;
use crate::api::{
    DataHub, DataHubStatus, PseudonymisationService, RegionState, RegionalNode, ZoneStatus,
};

/// Name of the controller: its field manager is `vardhub-datahub`.
pub const CONTROLLER: &str = "datahub";
/// Finalizer present only while `deletionPolicy: Delete` (with `confirmDeletion`) asks for
/// the hub's buckets and keys to be deleted with it.
pub const DATA_FINALIZER: &str = "vardhub.io/delete-data";
pub use super::storage::{Error, KEYS_READY, STORAGE_READY};
/// Condition type: every zone that asks for a retention lock has one.
pub const RETENTION_READY: &str = "RetentionReady";

const RESYNC: Duration = Duration::from_secs(600);

impl HasConditions for DataHub {
    type Status = DataHubStatus;
    fn status(&self) -> Option<&DataHubStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &DataHubStatus) -> &[Condition] {
        &status.common.conditions
    }
}

struct Observed {
    regions: Vec<RegionState>,
    zones: Vec<ZoneStatus>,
    retention_gaps: Vec<String>,
    jobs: Vec<crate::api::JobStatus>,
    /// The services the hub names that do not exist, naming the field.
    unresolved: Vec<String>,
}

enum Step {
    Converged(Observed),
    Paused,
}

/// Reconciles one hub.
#[tracing::instrument(skip_all, fields(object = %hub.name_any(), generation = hub.metadata.generation))]
pub async fn reconcile(hub: Arc<DataHub>, ctx: Arc<Context>) -> Result<Action, Error> {
    match finalize(&hub, &ctx).await {
        Ok(Some(action)) => return Ok(action),
        Ok(None) => {}
        Err(e) => {
            ctx.metrics.reconcile_error(CONTROLLER, e.reason());
            tracing::warn!(reason = e.reason(), error = %e, "finalizing failed");
            return Err(e);
        }
    }
    let started = Instant::now();
    let result = run_pipeline(&hub, &ctx).await;
    ctx.metrics.reconciled(CONTROLLER, started.elapsed());
    let mut observed = None;
    let (conditions, action) = match &result {
        Ok(Step::Converged(o)) => {
            let c = converged(&hub, o);
            observed = Some(o);
            // Services are not watched by the hub: one that is missing is looked up again soon.
            let again = if o.unresolved.is_empty() {
                RESYNC
            } else {
                Duration::from_secs(30)
            };
            (c, Action::requeue(again))
        }
        Ok(Step::Paused) => {
            let current = hub
                .status
                .as_ref()
                .map(|s| s.common.conditions.as_slice())
                .unwrap_or_default();
            let keep = [
                types::READY,
                types::PROGRESSING,
                types::DEGRADED,
                KEYS_READY,
                STORAGE_READY,
                RETENTION_READY,
            ];
            (conditions::paused(current, &keep), Action::await_change())
        }
        Err(e) => {
            ctx.metrics.reconcile_error(CONTROLLER, e.reason());
            tracing::warn!(reason = e.reason(), error = %e, "reconcile failed");
            (failed(e), Action::requeue(Duration::from_secs(30)))
        }
    };
    let new = next_status(
        &hub,
        &conditions,
        observed,
        Time(k8s_openapi::jiff::Timestamp::now()),
    );
    status::update(&ctx, CONTROLLER, hub.as_ref(), &new)
        .await
        .map_err(Error::Status)?;
    match result {
        Err(Error::Invalid(_)) => Ok(Action::await_change()),
        Err(e) => Err(e),
        Ok(_) => Ok(action),
    }
}

async fn run_pipeline(hub: &DataHub, ctx: &Context) -> Result<Step, Error> {
    if super::is_paused(&hub.metadata) {
        return Ok(Step::Paused);
    }
    let nodes = Api::<RegionalNode>::all(ctx.client.clone())
        .list(&Default::default())
        .await
        .map_err(Error::Apply)?
        .items;
    let (members, missing) = build::members(hub, &nodes);
    build::validate(hub, &members)?;
    let unresolved = unresolved_services(hub, ctx).await?;
    let bao = ctx
        .openbao
        .as_ref()
        .ok_or(Error::NotConfigured("OpenBao"))?;
    let s3 = ctx.storage.as_ref().ok_or(Error::NotConfigured("S3"))?;

    // Keys: the hub's own namespace, key, policy and role.
    let layout = storage::hub_layout(hub);
    storage::ensure_custody(
        &bao.admin,
        &layout.openbao_namespace,
        &layout.key,
        None,
        &ctx.metrics,
        CONTROLLER,
    )
    .await?;
    if bao
        .admin
        .ensure_policy(&layout.policy, &storage::hub_policy(hub))
        .await?
    {
        ctx.metrics.api_write(CONTROLLER, "OpenBaoPolicy", "write");
    }
    if bao
        .admin
        .ensure_kubernetes_role(storage::AUTH_MOUNT, &layout.role, &build::role(hub))
        .await?
    {
        ctx.metrics.api_write(CONTROLLER, "OpenBaoRole", "write");
    }

    // Zones.
    let zones = build::zones(hub);
    let specs: Vec<s3::BucketSpec> = zones.iter().map(|z| z.bucket.clone()).collect();
    let outcomes = storage::ensure_buckets(s3, &specs, &ctx.metrics, CONTROLLER).await?;
    let mut retention_gaps = Vec::new();
    let zone_status = zones
        .iter()
        .zip(&outcomes)
        .map(|(z, o)| {
            if let s3::Retention::Unavailable(why) = &o.retention {
                retention_gaps.push(format!("{} zone ({}): {why}", z.zone, z.bucket.name));
            }
            ZoneStatus {
                zone: z.zone.into(),
                bucket: z.bucket.name.clone(),
                layout: z.layout.into(),
                retention: storage::describe_retention(&o.retention),
            }
        })
        .collect();

    // Credentials: a drop box per member node, and one per hub role.
    for node in &members {
        let grants = storage::ingest_grants(hub, node);
        if grants.is_empty() {
            continue;
        }
        let path = storage::ingest_credentials_path(&node.name_any());
        let session = format!("ingest-{}", node.name_any());
        storage::ensure_credential(
            s3,
            &bao.admin,
            &storage::CredentialSlot {
                namespace: &layout.openbao_namespace,
                path: &path,
                session: &session,
            },
            &grants,
            &ctx.metrics,
            CONTROLLER,
        )
        .await?;
    }
    for role in HubRole::of(hub.spec.storage_mode) {
        let path = storage::role_credentials_path(*role);
        let session = format!("hub-{}-{}", hub.name_any(), role.name());
        storage::ensure_credential(
            s3,
            &bao.admin,
            &storage::CredentialSlot {
                namespace: &layout.openbao_namespace,
                path: &path,
                session: &session,
            },
            &storage::role_grants(hub, *role, &members),
            &ctx.metrics,
            CONTROLLER,
        )
        .await?;
    }

    // The hub's namespace in the cluster.
    let inputs = build::Inputs {
        openbao_addr: bao.workload_addr.clone(),
        s3_endpoint: s3.endpoint().to_string(),
        paths: ctx.paths.clone(),
        hub: None,
        image: ctx.image.clone(),
    };
    let desired = stamp(&Owner::of(hub), build::children(hub, &members, &inputs)?);
    let applier = ctx.applier(CONTROLLER);
    applier
        .apply_all(&desired)
        .await
        .map_err(|e| e.split(Error::Apply))?;
    applier
        .prune(&Owner::of(hub), &build::owned_kinds(), &desired)
        .await
        .map_err(Error::Apply)?;

    let jobs = super::regional_node::job_statuses(&Owner::of(hub), &hub.workload_namespace(), ctx)
        .await
        .map_err(Error::Apply)?;
    Ok(Step::Converged(Observed {
        regions: region_states(hub, &members, &missing),
        zones: zone_status,
        retention_gaps,
        jobs,
        unresolved,
    }))
}

/// Each member region's state. Pure.
pub fn region_states(
    hub: &DataHub,
    members: &[RegionalNode],
    missing: &[String],
) -> Vec<RegionState> {
    let mut out = Vec::new();
    for node in members {
        let ready = node
            .status
            .as_ref()
            .map(|s| s.common.conditions.as_slice())
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == types::READY && c.status == "True");
        let exports_here =
            node.spec.hub.as_ref().map(|r| r.name.as_str()) == Some(hub.name_any().as_str());
        let message = if !exports_here {
            Some(format!(
                "RegionalNode {}: spec.hub does not name this hub",
                node.name_any()
            ))
        } else if !ready {
            Some(format!("RegionalNode {} is not Ready", node.name_any()))
        } else {
            None
        };
        for region in &node.spec.regions {
            out.push(RegionState {
                code: region.code().into(),
                region: region.name().into(),
                node: node.name_any(),
                connected: message.is_none(),
                data_location: build::data_location(hub, node, region.code()),
                message: message.clone(),
            });
        }
    }
    out.sort_by(|a, b| a.code.cmp(&b.code));
    for name in missing {
        tracing::debug!(node = %name, "named regional node does not exist");
    }
    out
}

/// The services the hub names (its pseudonymisation service, in its own namespace) that do
/// not exist, each naming its field.
async fn unresolved_services(hub: &DataHub, ctx: &Context) -> Result<Vec<String>, Error> {
    let ns = hub.workload_namespace();
    let mut out = Vec::new();
    if let Some(r) = &hub.spec.pseudonymisation {
        let found = Api::<PseudonymisationService>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&r.name)
            .await
            .map_err(Error::Apply)?;
        if found.is_none() {
            out.push(format!(
                "spec.pseudonymisation: no PseudonymisationService {} in the hub's namespace {ns}",
                r.name
            ));
        }
    }
    Ok(out)
}

fn converged(hub: &DataHub, o: &Observed) -> Vec<Desired> {
    let connected = o.regions.iter().filter(|r| r.connected).count();
    let mut c = vec![
        Desired::yes(
            KEYS_READY,
            "KeysInPlace",
            "the hub's key, policy and role exist in its own OpenBao namespace",
        ),
        Desired::yes(
            STORAGE_READY,
            "StorageInPlace",
            "zone buckets are versioned, encrypted and closed to anonymous access; credentials are current",
        ),
        Desired::no(types::DEGRADED, "NoErrors", "the last reconcile succeeded"),
    ];
    c.push(if o.retention_gaps.is_empty() {
        Desired::yes(
            RETENTION_READY,
            "AsRequested",
            "every zone that asks for a retention lock has one",
        )
    } else {
        Desired::no(
            RETENTION_READY,
            "ObjectLockUnavailable",
            o.retention_gaps.join("; "),
        )
    });
    let named_missing: Vec<&str> = hub
        .spec
        .regional_nodes
        .iter()
        .map(|r| r.name.as_str())
        .filter(|n| !o.regions.iter().any(|r| r.node == *n))
        .collect();
    if connected == o.regions.len() && named_missing.is_empty() && !o.unresolved.is_empty() {
        let problems = o.unresolved.join("; ");
        c.push(Desired::no(
            types::READY,
            "ReferenceNotFound",
            problems.clone(),
        ));
        c.push(Desired::yes(
            types::PROGRESSING,
            "WaitingForReferences",
            problems,
        ));
    } else if connected == o.regions.len() && named_missing.is_empty() {
        c.push(Desired::yes(
            types::READY,
            "Reconciled",
            format!("{connected} regions connected"),
        ));
        c.push(Desired::no(
            types::PROGRESSING,
            "Converged",
            "nothing left to do",
        ));
    } else {
        let mut waiting: Vec<String> = o.regions.iter().filter_map(|r| r.message.clone()).collect();
        waiting.dedup();
        waiting.extend(
            named_missing
                .iter()
                .map(|n| format!("spec.regionalNodes: RegionalNode {n} does not exist")),
        );
        waiting.extend(o.unresolved.iter().cloned());
        c.push(Desired::no(
            types::READY,
            "RegionsNotConnected",
            format!(
                "{connected} of {} regions connected; {}",
                o.regions.len(),
                waiting.join("; ")
            ),
        ));
        c.push(Desired::yes(
            types::PROGRESSING,
            "WaitingForRegions",
            "waiting for regional nodes",
        ));
    }
    c
}

use super::storage::failed;

fn next_status(
    hub: &DataHub,
    conditions: &[Desired],
    observed: Option<&Observed>,
    now: Time,
) -> DataHubStatus {
    let current = hub.status.clone().unwrap_or_default();
    let generation = hub.metadata.generation;
    let (regions, zones, jobs) = match observed {
        Some(o) => (o.regions.clone(), o.zones.clone(), o.jobs.clone()),
        None => (
            current.regions.clone(),
            current.zones.clone(),
            current.jobs.clone(),
        ),
    };
    DataHubStatus {
        common: conditions::common_status(&current.common, conditions, generation, &now),
        connected_regions: Some(regions.iter().filter(|r| r.connected).count() as i32),
        namespace: Some(hub.workload_namespace()),
        openbao_namespace: Some(storage::hub_layout(hub).openbao_namespace),
        regions,
        zones,
        jobs,
    }
}

/// Keeps the data finalizer in line with the deletion policy and, on deletion of a hub that
/// carries it, deletes its buckets (refused while objects remain unless `purgeObjects`) and
/// its OpenBao namespace, policy and role.
async fn finalize(hub: &DataHub, ctx: &Context) -> Result<Option<Action>, Error> {
    let wants = hub.deletes_data();
    let has = hub.finalizers().iter().any(|f| f == DATA_FINALIZER);
    let deleting = hub.metadata.deletion_timestamp.is_some();
    let api = Api::<DataHub>::all(ctx.client.clone());
    let confirmed = match deleting && has {
        true => super::confirmed_destruction(&api, hub, DataHub::deletes_data)
            .await
            .map_err(Error::Apply)?,
        false => None,
    };
    if deleting && has && confirmed.is_none() {
        tracing::info!("the deletion policy no longer asks for the data to be deleted; keeping it");
    }
    if let Some(current) = &confirmed
        && let Err(e) = delete_data(current, ctx).await
    {
        let new = next_status(
            hub,
            &failed(&e),
            None,
            Time(k8s_openapi::jiff::Timestamp::now()),
        );
        status::update(ctx, CONTROLLER, hub, &new)
            .await
            .map_err(Error::Status)?;
        return Err(e);
    }
    if deleting {
        if has {
            super::set_finalizer(&api, hub, DATA_FINALIZER, false)
                .await
                .map_err(Error::Apply)?;
            ctx.metrics.api_write(CONTROLLER, "DataHub", "patch");
        }
        return Ok(Some(Action::await_change()));
    }
    if wants != has {
        super::set_finalizer(&api, hub, DATA_FINALIZER, wants)
            .await
            .map_err(Error::Apply)?;
        ctx.metrics.api_write(CONTROLLER, "DataHub", "patch");
    }
    Ok(None)
}

async fn delete_data(hub: &DataHub, ctx: &Context) -> Result<(), Error> {
    let bao = ctx
        .openbao
        .as_ref()
        .ok_or(Error::NotConfigured("OpenBao"))?;
    let s3 = ctx.storage.as_ref().ok_or(Error::NotConfigured("S3"))?;
    let layout = storage::hub_layout(hub);
    let custody = storage::Custody {
        buckets: vec![&layout.landing, &layout.standardised, &layout.products],
        owner: storage::bucket_owner(hub),
        openbao_namespace: &layout.openbao_namespace,
        policy: &layout.policy,
        role: &layout.role,
    };
    let purge = hub.spec.purge_objects == Some(true);
    storage::delete_custody(s3, &bao.admin, &custody, purge, &ctx.metrics, CONTROLLER).await
}

/// Backoff after a failed reconcile; the failure is already in the status and the metrics.
pub fn error_policy(hub: Arc<DataHub>, _error: &Error, ctx: Arc<Context>) -> Action {
    crate::controller::backoff::requeue(hub.as_ref(), &ctx)
}
