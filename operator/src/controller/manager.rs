//! Runs the controllers: leader election on a Lease, the health and metrics endpoints, and
//! graceful shutdown. All I/O.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::coordination::v1::Lease;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::apply::{OWNER_KIND_LABEL, OWNER_NAME_LABEL};
use super::context::{Context, OpenBaoAccess};
use super::{data_hub, driver};
use crate::api::{
    CatalogService, DataHub, DataPermit, Dataset, PseudonymisationService, RegionalNode,
};
use crate::telemetry::{Health, Metrics, serve};

/// Settings of the operator process.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_addr: SocketAddr,
    /// Namespace of the leader-election Lease.
    pub lease_namespace: String,
    /// Name of the leader-election Lease.
    pub lease_name: String,
    /// This replica's identity in the Lease (the pod name in a cluster).
    pub identity: String,
    /// How long the lease is valid without renewal, in seconds.
    pub lease_duration_seconds: u64,
    /// The longest one reconcile may run before it is cancelled and reported.
    pub reconcile_deadline: Duration,
    /// Reconciles each controller runs at once.
    pub max_concurrent_reconciles: u16,
    /// Image of the project's own workloads; this build's default when `None`.
    pub image: Option<String>,
    /// OpenBao: address and token of the operator. Without it, resources that need keys
    /// report `OpenBaoNotConfigured`.
    pub openbao: Option<OpenBaoSettings>,
    /// The S3 server and the operator's credentials there. Without it, resources that need
    /// storage report `NotConfigured`.
    pub s3: Option<crate::adapters::s3::Settings>,
}

/// Reconciles each controller runs at once, by default. At the country's scale (2,125
/// resources, `cargo bench -p vardhub-tests --bench scale`) more made the roll-out no faster
/// and held more connections and listed objects in memory at once.
pub const MAX_CONCURRENT_RECONCILES: u16 = 8;

/// Datasets per page of the operator's listing of them.
const DATASET_PAGE: u32 = 100;

/// Events a subscriber of a shared watch may fall behind by before the watch waits for it.
const SHARED_WATCH_BUFFER: usize = 1024;

/// OpenBao's address and how the operator logs in there.
#[derive(Clone, Debug)]
pub struct OpenBaoSettings {
    /// OpenBao's address, as the operator and the workloads reach it.
    pub address: String,
    /// A token, or the Kubernetes auth method with the operator's ServiceAccount.
    pub auth: crate::adapters::openbao::Auth,
}

/// How long reconciles in flight (and the health server) get to finish when the operator is
/// told to stop. A replica that loses its Lease cancels them at once instead: another may be
/// leading already.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Logs in to OpenBao, trying again every five seconds while it does not answer (it may be
/// down when leadership begins); `None` when the operator is told to stop meanwhile.
async fn login_until_stopped(
    settings: &OpenBaoSettings,
    mut stop: watch::Receiver<bool>,
) -> Option<(String, u64)> {
    loop {
        match settings.auth.login(&settings.address).await {
            Ok(login) => return Some(login),
            Err(e) => tracing::warn!(error = %e, "could not log in to OpenBao; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.wait_for(|stopped| *stopped) => return None,
        }
    }
}

/// Logs in again at two thirds of each token's lifetime, for as long as the task lives (it is
/// aborted with the leadership term); a failed login is retried every five seconds.
async fn keep_logged_in(
    admin: crate::adapters::openbao::Admin,
    settings: OpenBaoSettings,
    mut ttl: u64,
) {
    loop {
        tokio::time::sleep(Duration::from_secs((ttl * 2 / 3).max(1))).await;
        loop {
            match settings.auth.login(&settings.address).await {
                Ok((token, new_ttl)) => match admin.set_token(&token) {
                    Ok(()) => {
                        ttl = new_ttl;
                        tracing::info!(ttl, "logged in to OpenBao again");
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not use the new OpenBao token"),
                },
                Err(e) => tracing::warn!(error = %e, "could not log in to OpenBao again"),
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}

/// Why the operator stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    /// The shutdown signal arrived.
    Shutdown,
    /// Another replica took the Lease, or it could not be renewed in time; the process
    /// should exit and be restarted.
    LostLeadership,
}

/// Runs until `shutdown` resolves or leadership is lost.
pub async fn run(
    client: Client,
    options: Options,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Stopped> {
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let shutdown = shutdown.shared();
    {
        let stop_tx = stop_tx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
    }
    let server = tokio::spawn(serve(
        options.metrics_addr,
        metrics.clone(),
        health.clone(),
        wait_for(stop_rx.clone()),
    ));

    let version = client.apiserver_version().await?;
    tracing::info!(kubernetes = %version.git_version, "connected to the API server");
    health.set_ready(true);

    let lease = LeaseManagerBuilder::new(client.clone(), &options.lease_name)
        .with_namespace(&options.lease_namespace)
        .with_identity(&options.identity)
        .with_duration(options.lease_duration_seconds)
        .with_grace(renewal_grace(options.lease_duration_seconds))
        .with_field_manager("vardhub-leader-election")
        .build()
        .await?;
    let (mut leading, lease_task) = lease.watch().await;
    tracing::info!(lease = %options.lease_name, namespace = %options.lease_namespace, "waiting for leadership");
    let mut stop = stop_rx.clone();
    let became_leader = loop {
        if *leading.borrow_and_update() {
            break true;
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { break false },
            _ = stop.changed() => break false,
        }
    };

    let mut stopped = Stopped::Shutdown;
    if became_leader {
        health.set_leading(true);
        tracing::info!(identity = %options.identity, "leading; starting controllers");
        let lost = {
            let mut leading = leading.clone();
            let taken = async move {
                while leading.changed().await.is_ok() {
                    if !*leading.borrow() {
                        return;
                    }
                }
            };
            let unconfirmed = lease_unconfirmed(
                Api::namespaced(client.clone(), &options.lease_namespace),
                options.lease_name.clone(),
                options.identity.clone(),
                renew_deadline(options.lease_duration_seconds),
            );
            async move {
                tokio::select! {
                    () = taken => {}
                    () = unconfirmed => tracing::warn!(
                        "the Lease was not renewed in time; stepping down"
                    ),
                }
            }
            .shared()
        };
        let mut ctx = Context::new(
            client.clone(),
            metrics.clone(),
            Some(options.identity.clone()),
        );
        if let Some(image) = &options.image {
            ctx.image = image.clone();
        }
        ctx.deadline = options.reconcile_deadline;
        let mut renewal = None;
        let mut stopping = false;
        let login = match &options.openbao {
            Some(settings) => login_until_stopped(settings, stop_rx.clone())
                .await
                .map(|login| (settings, login)),
            None => None,
        };
        if options.openbao.is_some() && login.is_none() {
            stopping = true;
        }
        if let Some((settings, (token, ttl))) = login {
            let admin = crate::adapters::openbao::Admin::new(&settings.address, &token)?;
            if ttl > 0 {
                renewal = Some(tokio::spawn(keep_logged_in(
                    admin.clone(),
                    settings.clone(),
                    ttl,
                )));
            }
            ctx.openbao = Some(OpenBaoAccess {
                admin,
                workload_addr: settings.address.clone(),
            });
        }
        ctx.paths = super::network::discover(
            &client,
            ctx.openbao.as_ref().map(|o| o.workload_addr.as_str()),
            options.s3.as_ref().map(|s| s.endpoint.as_str()),
        )
        .await;
        if let Some(settings) = &options.s3 {
            ctx.storage = Some(Arc::new(crate::adapters::s3::Storage::new(
                settings.clone(),
            )));
        }
        let ctx = Arc::new(ctx);
        let until =
            futures::future::select(Box::pin(wait_for(stop_rx.clone())), Box::pin(lost.clone()))
                .map(|_| ())
                .shared();
        if !stopping {
            // Told to stop, reconciles in flight get SHUTDOWN_GRACE to finish; then they are
            // cancelled (each write is one idempotent call, taken up again by the next
            // leader). Having lost the Lease, they are cancelled at once, so that no write
            // of this replica follows the moment another may take over.
            let deadline = futures::future::select(
                Box::pin(wait_for(stop_rx.clone()).then(|_| tokio::time::sleep(SHUTDOWN_GRACE))),
                Box::pin(lost.clone()),
            );
            tokio::select! {
                _ = run_controllers(client.clone(), ctx, options.max_concurrent_reconciles, until) => {}
                _ = deadline => tracing::warn!(
                    grace = ?SHUTDOWN_GRACE,
                    "reconciles did not finish in time; cancelled"
                ),
            }
        }
        if let Some(task) = renewal {
            task.abort();
        }
        if lost.now_or_never().is_some() && !*stop_rx.borrow() {
            tracing::warn!("lost the Lease; stopping");
            stopped = Stopped::LostLeadership;
        }
        health.set_leading(false);
    }

    // Dropping the receivers makes the lease task release the lease.
    drop(leading);
    match tokio::time::timeout(Duration::from_secs(5), lease_task).await {
        Ok(Ok(Ok(_))) => tracing::info!("released the lease"),
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "could not release the lease"),
        Ok(Err(e)) => tracing::warn!(error = %e, "lease task failed"),
        Err(_) => tracing::warn!("timed out releasing the lease"),
    }
    health.set_ready(false);
    let _ = stop_tx.send(true);
    // The health server waits for open connections to close, for a bounded time.
    if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
        tracing::warn!("the health server did not stop in time");
    }
    Ok(stopped)
}

/// How many seconds before its Lease ends the holder renews it: half the duration, so that
/// a renewal has time to land before the renew deadline.
fn renewal_grace(lease_duration_seconds: u64) -> u64 {
    lease_duration_seconds.div_ceil(2)
}

/// How long after its last renewal a leader still counts on its Lease: the lease duration
/// less half the renewal grace. A renewal is due half-way; if none has landed a quarter of
/// the duration later, the replica steps down, a quarter before another may take over.
/// Client-go's leader election has the same safeguard, its renew deadline.
fn renew_deadline(lease_duration_seconds: u64) -> Duration {
    let duration = Duration::from_secs(lease_duration_seconds);
    duration.saturating_sub(Duration::from_secs(renewal_grace(lease_duration_seconds)) / 2)
}

/// Resolves when this replica can no longer count on holding the Lease: it names another
/// holder, or its last renewal is older than `valid_for`. The Lease is watched, so each
/// renewal is seen without polling; when the API server cannot be reached, no renewal
/// arrives, and the replica stops reconciling before another replica may take the Lease.
async fn lease_unconfirmed(
    leases: Api<Lease>,
    name: String,
    identity: String,
    valid_for: Duration,
) {
    use kube::runtime::WatchStreamExt;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut seen = watcher(leases, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    // Leadership was confirmed just now, by the renewal that made this replica the holder.
    let mut deadline = tokio::time::Instant::now() + valid_for;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => return,
            next = seen.next() => match next {
                Some(Ok(lease)) => {
                    let spec = lease.spec.unwrap_or_default();
                    if spec.holder_identity.as_deref() != Some(identity.as_str()) {
                        return;
                    }
                    if let Some(renewed) = spec.renew_time {
                        let age = k8s_openapi::jiff::Timestamp::now()
                            .duration_since(renewed.0)
                            .try_into()
                            .unwrap_or(Duration::ZERO);
                        deadline = tokio::time::Instant::now() + valid_for.saturating_sub(age);
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "watching the Lease"),
                None => return,
            },
        }
    }
}

async fn wait_for(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// The backoff of a controller's watches when they fail. A Controller has one backoff for
/// all its watches, so each watch's error delays every other. After an API server restart
/// every watch's resourceVersion is too old (410) once; with kube's default (growing to
/// 30 s with each error) those errors chained into 90 to 125 s before a change was seen
/// again (measured in `tests/tests/outages.rs`). Capped at 2 s (with jitter), the watches
/// are back within seconds, and a server that is down is asked at most about once a second
/// per controller.
fn watch_backoff() -> watcher::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(2))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .into()
}

/// The cluster-scoped owner (a hub, a node) of a namespaced child, by the owner label the
/// operator stamps on what it makes (the watch selects the owner's kind by its label). kube's
/// `owns` names a cluster-scoped owner within the child's namespace: a second reference to the
/// same object, under which a second reconcile of it could run at the same time as the first.
/// The chaos test caught two such reconciles of one hub issuing the same credential twice.
fn owner_by_label<K, C>(child: C) -> Option<ObjectRef<K>>
where
    K: kube::Resource<DynamicType = ()>,
    C: kube::Resource,
{
    child
        .labels()
        .get(OWNER_NAME_LABEL)
        .map(|name| ObjectRef::new(name))
}

/// A watched object as the operator keeps it: without its managed fields, which no step
/// reads and which, for a resource applied by two managers, are larger than its spec.
fn trimmed<K: kube::Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// Runs every controller until `until` resolves; in-flight reconciles finish first.
async fn run_controllers(
    client: Client,
    ctx: Arc<Context>,
    concurrency: u16,
    until: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let until = until.shared();
    let config = || kube::runtime::controller::Config::default().concurrency(concurrency);
    // Datasets are the many: one watch of them, kept once without managed fields, serves the
    // dataset controller and the catalogues (which read it to render, instead of listing).
    let (dataset_cache, dataset_writer) =
        kube::runtime::reflector::store_shared::<Dataset>(SHARED_WATCH_BUFFER);
    let dataset_events = dataset_writer
        .subscribe()
        .expect("a shared store has subscribers");
    // Listed in pages of 100 rather than kube's 500: a page is held whole, managed fields and
    // all, before it is trimmed.
    let dataset_watch = watcher(
        Api::<Dataset>::all(client.clone()),
        watcher::Config::default().page_size(DATASET_PAGE),
    )
    .backoff(watch_backoff())
    .modify(trimmed)
    .reflect_shared(dataset_writer);
    // Set once the watch has listed every Dataset (the store holds them all by then).
    let (listed, datasets_listed) = tokio::sync::watch::channel(false);
    let dataset_watch = dataset_watch.for_each(move |event| {
        match event {
            Ok(watcher::Event::InitDone) => {
                listed.send_replace(true);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "dataset watch"),
        }
        std::future::ready(())
    });
    // The dataset controller's watches of the holders keep them for its reconciles.
    let (hub_holders, hub_holders_writer) = kube::runtime::reflector::store::<DataHub>();
    let (node_holders, node_holders_writer) = kube::runtime::reflector::store::<RegionalNode>();
    let ctx = Arc::new(Context {
        datasets: dataset_cache.clone(),
        datasets_listed,
        holders: super::context::Holders {
            hubs: hub_holders,
            nodes: node_holders,
        },
        ..(*ctx).clone()
    });
    let owned =
        |kind: &str| watcher::Config::default().labels(&format!("{OWNER_KIND_LABEL}={kind}"));
    let hubs = Controller::new(
        Api::<DataHub>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(config())
    .trigger_backoff(watch_backoff());
    let hub_store = hubs.store();
    let nodes = Controller::new(
        Api::<RegionalNode>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(config())
    .trigger_backoff(watch_backoff());
    let node_store = nodes.store();
    let exporters = node_store.clone();
    let nodes = nodes
        .owns(Api::<Namespace>::all(client.clone()), owned("RegionalNode"))
        .watches(
            Api::<NetworkPolicy>::all(client.clone()),
            owned("RegionalNode"),
            owner_by_label::<RegionalNode, _>,
        )
        .watches(
            Api::<ServiceAccount>::all(client.clone()),
            owned("RegionalNode"),
            owner_by_label::<RegionalNode, _>,
        )
        .watches(
            Api::<CronJob>::all(client.clone()),
            owned("RegionalNode"),
            owner_by_label::<RegionalNode, _>,
        )
        // A Job's outcome is the node's job status; Jobs belong to CronJobs, so they too are
        // mapped to their node by the owner label (the job template carries it).
        .watches(
            Api::<Job>::all(client.clone()),
            owned("RegionalNode"),
            owner_by_label::<RegionalNode, _>,
        )
        // A hub's mode decides where its nodes export to.
        .watches(
            Api::<DataHub>::all(client.clone()),
            watcher::Config::default(),
            move |hub: DataHub| {
                let name = hub.name_any();
                node_store
                    .state()
                    .into_iter()
                    .filter(|n| n.spec.hub.as_ref().is_some_and(|h| h.name == name))
                    .map(|n| ObjectRef::from_obj(n.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        // The service a node exports through decides whether its export can work.
        .watches(
            Api::<PseudonymisationService>::all(client.clone()),
            watcher::Config::default(),
            move |svc: PseudonymisationService| {
                let (ns, name) = (svc.namespace().unwrap_or_default(), svc.name_any());
                exporters
                    .state()
                    .into_iter()
                    .filter(|n| {
                        n.spec.export.as_ref().is_some_and(|e| {
                            e.pseudonymisation.name == name
                                && n.spec
                                    .hub
                                    .as_ref()
                                    .is_some_and(|h| DataHub::workload_namespace_of(&h.name) == ns)
                        })
                    })
                    .map(|n| ObjectRef::from_obj(n.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(until.clone())
        .run(
            driver::reconcile::<RegionalNode>,
            driver::error_policy::<RegionalNode>,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "regionalnode controller");
            }
        });
    let hubs = hubs
        .owns(Api::<Namespace>::all(client.clone()), owned("DataHub"))
        .watches(
            Api::<NetworkPolicy>::all(client.clone()),
            owned("DataHub"),
            owner_by_label::<DataHub, _>,
        )
        .watches(
            Api::<ServiceAccount>::all(client.clone()),
            owned("DataHub"),
            owner_by_label::<DataHub, _>,
        )
        .watches(
            Api::<CronJob>::all(client.clone()),
            owned("DataHub"),
            owner_by_label::<DataHub, _>,
        )
        .watches(
            Api::<Job>::all(client.clone()),
            owned("DataHub"),
            owner_by_label::<DataHub, _>,
        )
        // A node's readiness and regions are the hub's region states: a node event wakes the
        // hubs it belongs to, names, or (by their status) belonged to until now.
        .watches(
            Api::<RegionalNode>::all(client.clone()),
            watcher::Config::default(),
            move |node: RegionalNode| {
                hub_store
                    .state()
                    .into_iter()
                    .filter(|h| data_hub::build::concerns(h, &node))
                    .map(|h| ObjectRef::from_obj(h.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(until.clone())
        .run(
            driver::reconcile::<DataHub>,
            driver::error_policy::<DataHub>,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "datahub controller");
            }
        });
    let kind = "PseudonymisationService";
    let pseudonymisation = Controller::new(
        Api::<PseudonymisationService>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(config())
    .trigger_backoff(watch_backoff())
    .owns(Api::<Deployment>::all(client.clone()), owned(kind))
    .owns(Api::<Service>::all(client.clone()), owned(kind))
    .owns(Api::<NetworkPolicy>::all(client.clone()), owned(kind))
    .owns(Api::<ServiceAccount>::all(client.clone()), owned(kind))
    .owns(Api::<PodDisruptionBudget>::all(client.clone()), owned(kind))
    .graceful_shutdown_on(until.clone())
    .run(
        driver::reconcile::<PseudonymisationService>,
        driver::error_policy::<PseudonymisationService>,
        ctx.clone(),
    )
    .for_each(|result| async move {
        if let Err(e) = result {
            tracing::debug!(error = %e, "pseudonymisation controller");
        }
    });
    // A dataset is reconciled when its spec or annotations change, not when its own status
    // write comes back; its distributions follow its holder's spec, not the holder's status.
    let alive = dataset_cache.clone();
    let mut changed = super::triggers::intent_changed(move || alive.state());
    let own = dataset_events
        .clone()
        .filter(move |d| std::future::ready(changed(d.as_ref())));
    let datasets = Controller::for_shared_stream(own, dataset_cache.clone())
        .with_config(config())
        .trigger_backoff(watch_backoff());
    let holds = move |pick: fn(&Dataset) -> Option<&str>, name: String| {
        dataset_cache
            .state()
            .into_iter()
            .filter(|d| pick(d) == Some(name.as_str()))
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect::<Vec<_>>()
    };
    let holds_hub = holds.clone();
    let datasets = datasets
        .watches_stream(
            super::triggers::intent_changes(
                watcher(
                    Api::<DataHub>::all(client.clone()),
                    watcher::Config::default(),
                )
                .backoff(watch_backoff())
                .reflect(hub_holders_writer),
            ),
            move |hub: DataHub| {
                holds_hub(
                    |d| d.spec.location.data_hub.as_ref().map(|r| r.name.as_str()),
                    hub.name_any(),
                )
            },
        )
        .watches_stream(
            super::triggers::intent_changes(
                watcher(
                    Api::<RegionalNode>::all(client.clone()),
                    watcher::Config::default(),
                )
                .backoff(watch_backoff())
                .reflect(node_holders_writer),
            ),
            move |node: RegionalNode| {
                holds(
                    |d| {
                        d.spec
                            .location
                            .regional_node
                            .as_ref()
                            .map(|r| r.name.as_str())
                    },
                    node.name_any(),
                )
            },
        )
        .graceful_shutdown_on(until.clone())
        .run(
            driver::reconcile::<Dataset>,
            driver::error_policy::<Dataset>,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "dataset controller");
            }
        });
    // A catalogue is re-rendered when any dataset of its namespace changes; bursts of
    // changes are debounced into one reconcile.
    let kind = "CatalogService";
    let catalogs = Controller::new(
        Api::<CatalogService>::all(client.clone()),
        watcher::Config::default(),
    )
    .trigger_backoff(watch_backoff())
    .with_config(config().debounce(Duration::from_millis(500)));
    let catalog_store = catalogs.store();
    let catalogs = catalogs
        .owns(Api::<Deployment>::all(client.clone()), owned(kind))
        .owns(Api::<Service>::all(client.clone()), owned(kind))
        .owns(Api::<NetworkPolicy>::all(client.clone()), owned(kind))
        .owns(Api::<ServiceAccount>::all(client.clone()), owned(kind))
        .owns(Api::<Role>::all(client.clone()), owned(kind))
        .owns(Api::<RoleBinding>::all(client.clone()), owned(kind))
        .watches_shared_stream(dataset_events, move |ds: Arc<Dataset>| {
            let ns = ds.namespace();
            catalog_store
                .state()
                .into_iter()
                .filter(|c| c.namespace() == ns)
                .map(|c| ObjectRef::from_obj(c.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(until.clone())
        .run(
            driver::reconcile::<CatalogService>,
            driver::error_policy::<CatalogService>,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "catalog controller");
            }
        });
    // A permit follows its hub's data products, and changes phase on its own schedule.
    let permits = Controller::new(
        Api::<DataPermit>::all(client.clone()),
        watcher::Config::default(),
    )
    .with_config(config())
    .trigger_backoff(watch_backoff());
    let permit_store = permits.store();
    let permits = permits
        .watches(
            Api::<DataHub>::all(client.clone()),
            watcher::Config::default(),
            move |hub: DataHub| {
                let name = hub.name_any();
                permit_store
                    .state()
                    .into_iter()
                    .filter(|p| p.spec.data_hub.name == name)
                    .map(|p| ObjectRef::from_obj(p.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(until)
        .run(
            driver::reconcile::<DataPermit>,
            driver::error_policy::<DataPermit>,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "datapermit controller");
            }
        });
    // The shared watch ends when the controllers have: it is not itself told to stop.
    tokio::select! {
        _ = async { futures::join!(nodes, hubs, pseudonymisation, datasets, catalogs, permits) } => {}
        _ = dataset_watch => {}
    }
    tracing::info!("controllers stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespaced_child_wakes_its_cluster_scoped_owner_under_the_owners_own_reference() {
        let policy: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "default-deny",
                "namespace": "hub-national",
                "labels": {OWNER_KIND_LABEL: "DataHub", OWNER_NAME_LABEL: "national"},
            },
        }))
        .expect("a NetworkPolicy");
        let owner = owner_by_label::<DataHub, _>(policy).expect("an owner");
        // The same reference the hub's own events produce: one object, one reconcile at a time.
        assert_eq!(owner, ObjectRef::<DataHub>::new("national"));
        assert_eq!(owner.namespace, None);
        let unlabelled = NetworkPolicy::default();
        assert_eq!(owner_by_label::<DataHub, _>(unlabelled), None);
    }

    #[test]
    fn a_watched_object_is_kept_without_its_managed_fields() {
        let mut policy: NetworkPolicy = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "default-deny",
                "namespace": "hub-national",
                "managedFields": [{
                    "manager": "kubectl",
                    "operation": "Apply",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {}},
                }],
            },
        }))
        .expect("a NetworkPolicy");
        trimmed(&mut policy);
        assert_eq!(policy.metadata.managed_fields, None);
        assert_eq!(policy.metadata.name.as_deref(), Some("default-deny"));
    }

    #[test]
    fn a_leader_counts_on_its_lease_until_half_the_grace_before_it_ends() {
        // Renewed 7 s after the last renewal (15 s less the 8 s grace); counted on for 11 s.
        assert_eq!(renewal_grace(15), 8);
        assert_eq!(renew_deadline(15), Duration::from_secs(11));
        assert_eq!(renew_deadline(60), Duration::from_secs(45));
        assert_eq!(renew_deadline(1), Duration::from_millis(500));
    }
}
