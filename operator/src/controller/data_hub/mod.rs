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
pub mod exposure;

use std::time::Duration;

use futures::{StreamExt as _, TryStreamExt as _};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply::{Owner, stamp};
use super::conditions::{Desired, types};
use super::context::Context;
use super::driver::Reconciled;
use super::status::HasConditions;
use super::storage::{self, HubRole};
use crate::adapters::s3;
use crate::api::{
    CommonStatus, DataHub, DataHubStatus, ExposureStatus, PseudonymisationService, RegionState,
    RegionalNode, ZoneStatus,
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

/// Credentials checked or issued at once by one hub's reconcile.
const CREDENTIALS_AT_ONCE: usize = 4;

impl HasConditions for DataHub {
    type Status = DataHubStatus;
    fn status(&self) -> Option<&DataHubStatus> {
        self.status.as_ref()
    }
    fn conditions(status: &DataHubStatus) -> &[Condition] {
        &status.common.conditions
    }
}

/// What a converged reconcile learned.
pub struct Observed {
    regions: Vec<RegionState>,
    zones: Vec<ZoneStatus>,
    retention_gaps: Vec<String>,
    jobs: Vec<crate::api::JobStatus>,
    sftp_host_key: Option<String>,
    /// The services the hub names that do not exist, naming the field.
    unresolved: Vec<String>,
}

impl Reconciled for DataHub {
    const CONTROLLER: &'static str = CONTROLLER;
    const OWN_CONDITIONS: &'static [&'static str] = &[KEYS_READY, STORAGE_READY, RETENTION_READY];
    const DATA_FINALIZER: Option<&'static str> = Some(DATA_FINALIZER);
    type Error = Error;
    type Observed = Observed;

    fn api(client: kube::Client, _namespace: Option<&str>) -> Api<Self> {
        Api::all(client)
    }

    fn wants_destruction(&self) -> bool {
        self.deletes_data()
    }

    /// Deletes the hub's buckets (refused while objects remain unless `purgeObjects`) and its
    /// OpenBao namespace, policy and role.
    async fn destroy(&self, ctx: &Context) -> Result<(), Error> {
        let (bao, s3) = storage::connections(ctx)?;
        let layout = storage::hub_layout(self);
        let custody = storage::Custody {
            buckets: vec![&layout.landing, &layout.standardised, &layout.products],
            owner: storage::bucket_owner(self),
            openbao_namespace: &layout.openbao_namespace,
            access: vec![&layout.access, &layout.exposure_access],
        };
        let purge = self.spec.purge_objects == Some(true);
        storage::delete_custody(s3, &bao.admin, &custody, purge, &ctx.metrics, CONTROLLER).await
    }

    async fn steps(&self, ctx: &Context) -> Result<Observed, Error> {
        run_pipeline(self, ctx).await
    }

    fn converged(&self, o: &Observed, _ctx: &Context) -> (Vec<Desired>, Action) {
        // Services are not watched by the hub: one that is missing is looked up again soon.
        let again = if o.unresolved.is_empty() {
            RESYNC
        } else {
            Duration::from_secs(30)
        };
        (converged(self, o), Action::requeue(again))
    }

    fn next_status(&self, common: CommonStatus, observed: Option<&Observed>) -> DataHubStatus {
        let current = self.status.clone().unwrap_or_default();
        let (regions, zones, jobs) = match observed {
            Some(o) => (o.regions.clone(), o.zones.clone(), o.jobs.clone()),
            None => (current.regions, current.zones, current.jobs),
        };
        let exposure = match observed {
            Some(o) => self.exposes().then(|| ExposureStatus {
                api: self.spec.exposure.api.then(|| exposure::api_url(self)),
                sftp: self.spec.exposure.sftp.then(|| exposure::sftp_url(self)),
                sftp_host_key: o.sftp_host_key.clone(),
            }),
            None => current.exposure,
        };
        DataHubStatus {
            common,
            connected_regions: Some(regions.iter().filter(|r| r.connected).count() as i32),
            namespace: Some(self.workload_namespace()),
            openbao_namespace: Some(storage::hub_layout(self).openbao_namespace),
            regions,
            zones,
            jobs,
            exposure,
        }
    }
}

async fn run_pipeline(hub: &DataHub, ctx: &Context) -> Result<Observed, Error> {
    let nodes = Api::<RegionalNode>::all(ctx.client.clone())
        .list(&Default::default())
        .await
        .map_err(Error::Apply)?
        .items;
    let (members, missing) = build::members(hub, &nodes);
    build::validate(hub, &members)?;
    let unresolved = unresolved_services(hub, ctx).await?;
    let (bao, s3) = storage::connections(ctx)?;

    // The external pass, unless nothing it depends on (the hub, its members) changed since
    // the last one; what it found about the zones is kept for the status.
    let pass = super::backoff::key(hub);
    let member_prints: Vec<_> = members
        .iter()
        .map(|n| (n.name_any(), n.metadata.uid.clone(), n.metadata.generation))
        .collect();
    let print = super::passes::fingerprint(&hub.metadata, &member_prints);
    let found = match ctx.passes.recent::<Zones>(&pass, print) {
        Some(found) => found,
        None => {
            let found = external_pass(hub, &members, ctx, bao, s3).await?;
            ctx.passes.record(&pass, print, found.clone());
            found
        }
    };

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
    Ok(Observed {
        regions: region_states(hub, &members, &missing),
        zones: found.zones,
        retention_gaps: found.retention_gaps,
        sftp_host_key: found.sftp_host_key,
        jobs,
        unresolved,
    })
}

/// What the external pass found: the zones' status, the retention locks that could not be
/// set, and the SFTP server's public host key.
#[derive(Clone)]
struct Zones {
    zones: Vec<ZoneStatus>,
    retention_gaps: Vec<String>,
    sftp_host_key: Option<String>,
}

/// The SFTP server's host key, kept in the hub's OpenBao namespace: made once (Ed25519), then
/// only read, so that holders' `known_hosts` stay valid across restarts. Returns the public
/// key in the `known_hosts` form.
async fn ensure_host_key(
    admin: &crate::adapters::openbao::Admin,
    namespace: &str,
    ctx: &Context,
) -> Result<String, Error> {
    let kv = admin.in_namespace(namespace)?;
    let stored: Option<exposure::HostKey> = kv
        .read_secret(storage::KV_MOUNT, exposure::SFTP_HOST_KEY_PATH)
        .await?;
    if let Some(key) = stored {
        return Ok(key.public_key);
    }
    let key = exposure::HostKey::generate().map_err(Error::KeyGeneration)?;
    kv.write_secret(storage::KV_MOUNT, exposure::SFTP_HOST_KEY_PATH, &key)
        .await?;
    ctx.metrics.api_write(CONTROLLER, "OpenBaoSecret", "write");
    tracing::info!(namespace, "made the SFTP server's host key");
    Ok(key.public_key)
}

/// The hub's external state: its OpenBao namespace, key, policy and role, its zone buckets,
/// and the credentials (a drop box per member, one per hub role) kept current in OpenBao.
async fn external_pass(
    hub: &DataHub,
    members: &[RegionalNode],
    ctx: &Context,
    bao: &super::context::OpenBaoAccess,
    s3: &crate::adapters::s3::Storage,
) -> Result<Zones, Error> {
    // Keys: the hub's own namespace and key, then its policy and role (claimed there).
    let layout = storage::hub_layout(hub);
    let owner = storage::bucket_owner(hub);
    storage::ensure_custody(
        &bao.admin,
        &owner,
        &layout.openbao_namespace,
        &layout.key,
        None,
        &ctx.metrics,
        CONTROLLER,
    )
    .await?;
    let access = storage::Access {
        name: &layout.access,
        policy: storage::hub_policy(hub),
        role: build::role(hub),
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
    // The exposure components' own identity: they read their credential and nothing else.
    if hub.exposes() {
        let access = storage::Access {
            name: &layout.exposure_access,
            policy: storage::exposure_policy(hub),
            role: exposure::role(hub),
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
    } else {
        // Switched off (or never on): nobody may log in as an exposure component any more.
        // Their credential is no longer renewed and expires; the CA and the host key stay
        // with the hub's namespace.
        storage::remove_access(
            &bao.admin,
            &layout.openbao_namespace,
            &owner,
            &layout.exposure_access,
            &ctx.metrics,
            CONTROLLER,
        )
        .await?;
    }
    if hub.spec.exposure.api
        && bao
            .admin
            .in_namespace(&layout.openbao_namespace)?
            .ensure_server_pki(&exposure::server_pki(hub), exposure::CA_NAME)
            .await?
    {
        ctx.metrics.api_write(CONTROLLER, "OpenBaoPki", "write");
    }
    let sftp_host_key = if hub.spec.exposure.sftp {
        Some(ensure_host_key(&bao.admin, &layout.openbao_namespace, ctx).await?)
    } else {
        None
    };

    // Zones.
    let zones = build::zones(hub);
    let specs: Vec<s3::BucketSpec> = zones.iter().map(|z| z.bucket.clone()).collect();
    let claims = storage::OpenBaoClaims::new(
        &bao.admin,
        &layout.openbao_namespace,
        &ctx.metrics,
        CONTROLLER,
    )?;
    let outcomes = storage::ensure_buckets(s3, &claims, &specs, &ctx.metrics, CONTROLLER).await?;
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

    // Credentials: a drop box per member node, and one per hub role. Each is its own slot,
    // so they are checked (and, on a first roll-out, issued) a few at a time: one after
    // another, 21 regions' drop boxes made a hub wait for 21 round trips to each server.
    let mut slots: Vec<(String, String, Vec<s3::Grant>)> = members
        .iter()
        .map(|node| {
            (
                storage::ingest_credentials_path(&node.name_any()),
                format!("ingest-{}", node.name_any()),
                storage::ingest_grants(hub, node),
            )
        })
        .filter(|(_, _, grants)| !grants.is_empty())
        .collect();
    slots.extend(HubRole::of(hub).into_iter().map(|role| {
        (
            storage::role_credentials_path(role),
            format!("hub-{}-{}", hub.name_any(), role.name()),
            storage::role_grants(hub, role, members),
        )
    }));
    let namespace = layout.openbao_namespace.as_str();
    let issued = slots.into_iter().map(|(path, session, grants)| async move {
        let slot = storage::CredentialSlot {
            namespace,
            path: &path,
            session: &session,
        };
        storage::ensure_credential(s3, &bao.admin, &slot, &grants, &ctx.metrics, CONTROLLER).await
    });
    futures::stream::iter(issued)
        .buffer_unordered(CREDENTIALS_AT_ONCE)
        .try_collect::<Vec<bool>>()
        .await?;
    Ok(Zones {
        zones: zone_status,
        retention_gaps,
        sftp_host_key,
    })
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
