//! Types shared by several resources.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The status every vardhub resource reports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `metadata.generation` that the operator last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Conditions in the Kubernetes format: `Ready`, `Progressing`, `Degraded`, and domain
    /// conditions such as `KeysReady` or `StorageReady`. Each carries the generation it
    /// describes in `observedGeneration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// What happens to data and keys when the resource is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Buckets, objects and keys stay in place; only the workloads go. The default, because
    /// deleting a resource must never silently delete health data or the keys behind pseudonyms.
    #[default]
    Retain,
    /// Buckets and keys are deleted too. Honoured only together with the resource's explicit
    /// confirmation field.
    Delete,
}

/// A reference to another vardhub resource by name (in the same namespace for namespaced
/// resources).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ResourceRef {
    /// Name of the referenced resource.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Where and how the workloads of a resource are placed; the knobs that differ between cloud,
/// hybrid and on-prem clusters.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Node labels the workloads must run on (for example a region's own node pool).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations for tainted nodes reserved for this workload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub tolerations: Vec<Toleration>,
    /// Storage class for any persistent volume the workloads claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Default resource requests and limits for containers that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// A text in Swedish and English; catalogues are published in both.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalizedText {
    /// The text in Swedish.
    #[schemars(length(min = 1))]
    pub sv: String,
    /// The text in English.
    #[schemars(length(min = 1))]
    pub en: String,
}
