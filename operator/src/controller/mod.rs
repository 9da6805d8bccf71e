//! The controllers and the machinery they share.
//!
//! Each controller is a folder with a short pipeline: dereference → validate (pure) → build
//! (pure) → apply → status. Only `apply` and `status` talk to the cluster, through the shared
//! [`apply::Applier`] and [`status`] helpers.
//!
//! - [`driver`]: the one reconcile every controller runs (finalizer, pause, deadline,
//!   conditions, status, events, metrics, backoff); each controller supplies its own steps.
//! - [`manager`]: leader election, the controllers' run loop, graceful shutdown (I/O).
//! - [`apply`]: server-side apply with one field manager, compare-before-write, pruning (I/O).
//! - [`conditions`]: pure helpers for Kubernetes conditions.
//! - [`status`]: writes a status only when it changed, with events on transitions (I/O).
//! - [`regional_node`]: the `RegionalNode` controller.
//! - [`pseudonymisation_service`]: the `PseudonymisationService` controller.
//! - [`data_hub`]: the `DataHub` controller.
//! - [`storage`]: where data and keys live (buckets, OpenBao namespaces, credentials).
//! - [`dataset`]: the `Dataset` controller (distributions from the location).
//! - [`catalog_service`]: the `CatalogService` controller (the served catalogue).
//! - [`data_permit`]: the `DataPermit` controller (whether a permit grants access now).

pub mod apply;
pub mod backoff;
pub mod catalog_service;
pub mod component;
pub mod conditions;
pub mod context;
pub mod data_hub;
pub mod data_permit;
pub mod dataset;
pub mod driver;
pub mod listings;
pub mod manager;
pub mod network;
pub mod passes;
pub mod pseudonymisation_service;
pub mod regional_node;
pub mod status;
pub mod storage;
pub mod triggers;
pub mod workload;

/// A spec that is invalid in a way its schema cannot express, naming the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The offending field, for example `spec.namespace`.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

/// Annotation that pauses reconciliation of one resource: nothing is applied or pruned while
/// it is `"true"`; the status says so.
pub const PAUSE_ANNOTATION: &str = "vardhub.io/reconciliation-paused";

/// Whether the resource asks for reconciliation to be paused.
pub fn is_paused(meta: &kube::core::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(PAUSE_ANNOTATION))
        .is_some_and(|v| v == "true")
}

/// `obj` as the API server holds it now, read past the watch cache, when it is being deleted
/// and still asks (`wants`) for its data or keys to be destroyed; `None` keeps them. A
/// deletion policy turned back to `Retain` while the deletion waits is honoured, and a cache
/// that lags behind it never destroys anything.
pub async fn confirmed_destruction<K>(
    api: &kube::Api<K>,
    obj: &K,
    wants: impl Fn(&K) -> bool,
) -> kube::Result<Option<K>>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use kube::ResourceExt;
    // A GET without a resource version is a quorum read from etcd, not from a cache.
    let current = api.get_opt(&obj.name_any()).await?;
    Ok(current.filter(|c| c.meta().deletion_timestamp.is_some() && wants(c)))
}

/// Adds or removes `finalizer` on `obj`. The resource version makes this a compare-and-swap: a
/// concurrent change of the list fails with a conflict and the reconcile is retried.
pub async fn set_finalizer<K>(
    api: &kube::Api<K>,
    obj: &K,
    finalizer: &str,
    present: bool,
) -> kube::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use kube::ResourceExt;
    let mut finalizers: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    if present {
        finalizers.push(finalizer.to_string());
    }
    let patch = serde_json::json!({"metadata": {
        "finalizers": finalizers,
        "resourceVersion": obj.resource_version(),
    }});
    api.patch(
        &obj.name_any(),
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}
