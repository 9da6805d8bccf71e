//! The `Dataset` controller: resolves where the dataset's data lives into distributions
//! (from its stage and the hub or node holding it) and reports them in the status, where
//! the catalogue picks them up, with what the last look at their objects found.
//!
//! Pipeline: dereference the holder (from the watch's store, else the API server) →
//! [`locate::distributions`] (pure) → list what the S3 server holds under each address (I/O,
//! read only) → [`locate::with_figures`] (pure) → status. It never reads or writes the data itself.

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use super::conditions::{self, Desired, types};
use super::context::Context;
use super::driver::{Failure, Reconciled};
use super::status::HasConditions;
use crate::api::{CommonStatus, Dataset, DatasetStatus, Distribution};
use crate::catalog::locate::{self, Holder};

/// Name of the controller: its field manager is `vardhub-dataset`.
pub const CONTROLLER: &str = "dataset";

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the holder failed.
    #[error("reading the dataset's holder failed: {0}")]
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

impl HasConditions for Dataset {
    type Status = DatasetStatus;
    fn status(&self) -> Option<&DatasetStatus> {
        self.status.as_ref()
    }
    fn conditions(
        status: &DatasetStatus,
    ) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
        &status.common.conditions
    }
    const FIRST_READY_IS_EVENT: bool = false;
}

/// What a reconcile learned: the distributions, or why the location does not resolve, and
/// the sources that do not exist.
pub struct Observed {
    resolved: Result<Vec<Distribution>, locate::Unresolved>,
    missing_sources: Vec<String>,
}

impl Reconciled for Dataset {
    const CONTROLLER: &'static str = CONTROLLER;
    type Error = Error;
    type Observed = Observed;

    fn api(client: kube::Client, namespace: Option<&str>) -> Api<Self> {
        Api::namespaced(client, namespace.unwrap_or_default())
    }

    async fn steps(&self, ctx: &Context) -> Result<Observed, Error> {
        let location = &self.spec.location;
        let hub;
        let node;
        let holder = if let Some(h) = &location.data_hub {
            hub = holder(&ctx.holders.hubs, ctx, &h.name).await?;
            hub.as_deref().map(Holder::Hub)
        } else if let Some(n) = &location.regional_node {
            node = holder(&ctx.holders.nodes, ctx, &n.name).await?;
            node.as_deref().map(Holder::Node)
        } else {
            None
        };
        let resolved = match locate::distributions(location, holder) {
            Ok(d) => Ok(figures(d, ctx).await),
            Err(e) => Err(e),
        };
        Ok(Observed {
            resolved,
            missing_sources: missing_sources(self, ctx).await?,
        })
    }

    fn converged(&self, o: &Observed, ctx: &Context) -> (Vec<Desired>, Action) {
        let desired = match &o.resolved {
            // The data is located, but the lineage names a dataset that does not exist.
            Ok(_) if !o.missing_sources.is_empty() => vec![
                Desired::no(types::READY, "SourceNotFound", o.missing_sources.join("; ")),
                Desired::no(types::DEGRADED, "NoErrors", "the location resolves"),
            ],
            Ok(d) => vec![
                Desired::yes(
                    types::READY,
                    "Located",
                    format!("{} distribution(s) derived from spec.location", d.len()),
                ),
                Desired::no(types::DEGRADED, "NoErrors", "the location resolves"),
            ],
            Err(e) => {
                ctx.metrics
                    .reconcile_error(CONTROLLER, "LocationUnresolved");
                let mut c = conditions::failed("LocationUnresolved", &e.to_string());
                c.retain(|d| d.type_ != types::PROGRESSING);
                c
            }
        };
        // A missing holder is watched: its creation triggers a reconcile. A missing source
        // and the objects a run writes are not: they are looked at again soon, or on this
        // period.
        let action = if !o.missing_sources.is_empty() {
            Action::requeue(Duration::from_secs(30))
        } else if ctx.storage.is_some() {
            Action::requeue(FIGURES_PERIOD)
        } else {
            Action::await_change()
        };
        (desired, action)
    }

    fn next_status(&self, common: CommonStatus, observed: Option<&Observed>) -> DatasetStatus {
        let distributions = match observed {
            Some(o) => o.resolved.clone().unwrap_or_default(),
            None => self
                .status
                .as_ref()
                .map(|s| s.distributions.clone())
                .unwrap_or_default(),
        };
        DatasetStatus {
            common,
            distributions,
        }
    }
}

/// A holder (cluster-scoped) from the store its watch keeps, or from the API server when the
/// store does not hold it.
async fn holder<K>(store: &Store<K>, ctx: &Context, name: &str) -> Result<Option<Arc<K>>, Error>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    if let Some(found) = store.get(&ObjectRef::new(name)) {
        return Ok(Some(found));
    }
    Api::<K>::all(ctx.client.clone())
        .get_opt(name)
        .await
        .map(|found| found.map(Arc::new))
        .map_err(Error::Read)
}

/// The datasets `spec.derivedFrom` names that do not exist in the dataset's namespace, each
/// naming its field.
async fn missing_sources(ds: &Dataset, ctx: &Context) -> Result<Vec<String>, Error> {
    let ns = ds.namespace().unwrap_or_default();
    let api = Api::<Dataset>::namespaced(ctx.client.clone(), &ns);
    let mut missing = Vec::new();
    for (i, source) in ds.spec.derived_from.iter().enumerate() {
        if api
            .get_opt(&source.name)
            .await
            .map_err(Error::Read)?
            .is_none()
        {
            missing.push(format!(
                "spec.derivedFrom[{i}]: no Dataset {} in namespace {ns}",
                source.name
            ));
        }
    }
    Ok(missing)
}

/// How often a dataset's distributions are looked at again for what runs wrote.
pub const FIGURES_PERIOD: Duration = Duration::from_secs(300);

/// The distributions with what the S3 server lists under their addresses, read with the
/// operator's own S3 identity, each address looked at once for all datasets there within
/// [`super::listings::FRESH`]. A listing that fails leaves that distribution without figures
/// (and says so in the log) rather than failing the dataset.
async fn figures(resolved: Vec<Distribution>, ctx: &Context) -> Vec<Distribution> {
    let Some(storage) = ctx.storage.as_ref() else {
        return resolved;
    };
    let mut looks = std::collections::HashMap::new();
    for d in &resolved {
        let Some((bucket, prefix)) = locate::s3_location(&d.access_url) else {
            continue;
        };
        let look = ctx
            .listings
            .get(bucket, prefix, || look(storage, bucket, prefix))
            .await;
        match look {
            Ok(look) => {
                looks.insert((bucket.to_owned(), prefix.to_owned()), look);
            }
            Err(e) => {
                tracing::debug!(bucket, error = %e, "listing a distribution's objects");
            }
        }
    }
    locate::with_figures(resolved, |bucket, prefix| {
        looks
            .get(&(bucket.to_owned(), prefix.to_owned()))
            .map(|look| look.as_ref().clone())
    })
}

/// What the S3 server holds under `bucket`/`prefix`, and the rows its Parquet files record.
async fn look(
    storage: &crate::adapters::s3::Storage,
    bucket: &str,
    prefix: &str,
) -> Result<locate::Look, crate::adapters::s3::Error> {
    let objects = storage.list_objects(bucket, prefix).await?;
    let mut rows = None;
    for (key, _, _) in objects.iter().filter(|(k, _, _)| k.ends_with(".parquet")) {
        if let Ok(Some(n)) = storage.object_rows(bucket, key).await {
            *rows.get_or_insert(0) += n;
        }
    }
    Ok((objects, rows))
}
