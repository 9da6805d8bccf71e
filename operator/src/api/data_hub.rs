//! `DataHub`: the region-common health data hub.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, CountyCode, DeletionPolicy, Placement, ResourceRef};

/// The region-common data hub: data mapped to the common data model, logically separated per
/// region, processed into purpose-specific models and exposed by API or SFTP.
///
/// Storage is organised in zones (landing → standardised → purpose-specific), each with its own
/// bucket or prefix. In `central` mode regions export copies into the hub's zones; in `federated`
/// mode regional data stays in the regions' buckets and the hub holds only purpose-specific
/// extracts and metadata.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    cel,
    doc = "A DataHub is the regions' shared hub: storage zones from landing through standardised to purpose-specific data products, kept apart per region and per purpose, in central or federated storage mode, with the hub's own keys in OpenBao.",
    group = "vardhub.io",
    version = "v1alpha1",
    kind = "DataHub",
    plural = "datahubs",
    shortname = "hub",
    category = "vardhub",
    status = "DataHubStatus",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.storageMode"),
    printcolumn(name = "Regions", type_ = "integer", json_path = ".status.connectedRegions"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 50").message("metadata.name: at most 50 characters, so that the hub's namespace name fits"),
)]
#[x_kube(validation = Rule::new(
    "self.deletionPolicy != 'Delete' || (has(self.confirmDeletion) && self.confirmDeletion == true)"
).message("spec.confirmDeletion must be true when spec.deletionPolicy is Delete"))]
#[x_kube(validation = Rule::new(
    "has(self.bucketPrefix) == has(oldSelf.bucketPrefix) && (!has(self.bucketPrefix) || self.bucketPrefix == oldSelf.bucketPrefix)"
).message("spec.bucketPrefix cannot be changed after creation: the hub's buckets, and the data in them, keep the names they were created with"))]
#[serde(rename_all = "camelCase")]
pub struct DataHubSpec {
    /// `central`: regions export copies into the hub's zones. `federated`: regional data stays
    /// in regional buckets; the hub holds only purpose-specific extracts and metadata. Fixed
    /// for the life of a hub: to compare the two, run a second hub (or environment) in the
    /// other mode; switching a running hub would strand data or credentials half-way.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "spec.storageMode cannot be changed on an existing hub: create a hub in the other mode and move the regions to it"
    ))]
    pub storage_mode: StorageMode,

    /// Prefix of the hub's bucket names. Defaults to `vardhub-hub-<metadata.name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$"))]
    pub bucket_prefix: Option<String>,

    /// The regional nodes that belong to the hub, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub regional_nodes: Vec<ResourceRef>,

    /// Regional nodes that belong to the hub, by label, in addition to `regionalNodes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regional_node_selector: Option<LabelSelector>,

    /// The storage zones of the hub.
    #[serde(default)]
    pub zones: Zones,

    /// The pseudonymisation service that serves the hub (namespace/name not needed: it runs in
    /// the hub's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pseudonymisation: Option<ResourceRef>,

    /// The catalogue service that publishes the hub's datasets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog: Option<ResourceRef>,

    /// How consumers reach purpose-specific data.
    #[serde(default)]
    pub exposure: Exposure,

    /// Placement of the hub's workloads.
    #[serde(default)]
    pub placement: Placement,

    /// What happens to buckets, objects and keys when the hub is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Must be `true` for `deletionPolicy: Delete` to be honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_deletion: Option<bool>,

    /// With `deletionPolicy: Delete`, also delete objects still in the buckets. Without it the
    /// deletion is refused while objects remain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purge_objects: Option<bool>,
}

/// Where the hub keeps patient-level (pseudonymised) data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum StorageMode {
    /// Regions export copies into the hub's landing and standardised zones.
    #[default]
    Central,
    /// Regional data stays in regional buckets; the hub holds purpose-specific extracts only.
    Federated,
}

/// The hub's storage zones.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Zones {
    /// Landing zone settings (one prefix per region).
    #[serde(default)]
    pub landing: ZoneSettings,
    /// Standardised zone settings (common data model, one prefix per region).
    #[serde(default)]
    pub standardised: ZoneSettings,
    /// Purpose-specific data products, one prefix each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub purpose_specific: Vec<DataProduct>,
}

/// Settings of one zone.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneSettings {
    /// Days objects are kept locked for the audit trail (object lock, where the S3 server
    /// supports it). Omitted means no retention lock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 36500))]
    pub retention_days: Option<i32>,
}

/// A purpose-specific data product of the hub.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataProduct {
    /// Name of the data product, for example `waiting-times`.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 40))]
    pub name: String,
    /// The purpose (pseudonym domain) the product's data is pseudonymised for.
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))]
    pub purpose: String,
    /// Regions whose data the product may hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub regions: Vec<CountyCode>,
    /// Retention lock, as for the other zones.
    #[serde(default, flatten)]
    pub settings: ZoneSettings,
}

/// How consumers reach purpose-specific data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    /// Serve purpose-specific data over an HTTP API.
    #[serde(default)]
    pub api: bool,
    /// Share purpose-specific data over SFTP.
    #[serde(default)]
    pub sftp: bool,
}

/// Observed state of a hub.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataHubStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Number of regions whose regional node is connected and ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_regions: Option<i32>,
    /// The namespace of the hub's workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The OpenBao namespace holding the hub's keys and credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openbao_namespace: Option<String>,
    /// Each member region: its node and its state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["code"]))]
    pub regions: Vec<RegionState>,
    /// Each zone: where it lives and whether its retention lock is in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["zone"]))]
    pub zones: Vec<ZoneStatus>,
}

/// A member region of the hub.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionState {
    /// County code.
    pub code: String,
    /// The region's name.
    pub region: String,
    /// The regional node serving it.
    pub node: String,
    /// Whether the node is Ready and exports to this hub.
    pub connected: bool,
    /// Where the region's patient-level (pseudonymised) data lives for this hub.
    pub data_location: String,
    /// Why it is not connected, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A storage zone of the hub.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ZoneStatus {
    /// `landing`, `standardised` or `purpose-specific`.
    pub zone: String,
    /// Its bucket.
    pub bucket: String,
    /// How it is divided: `per region` or `per data product`.
    pub layout: String,
    /// `none`, `locked <n> days`, or why the lock is unavailable.
    pub retention: String,
}

impl DataHub {
    /// The prefix of the hub's bucket names.
    pub fn bucket_prefix(&self) -> String {
        match &self.spec.bucket_prefix {
            Some(p) => p.clone(),
            None => format!("vardhub-hub-{}", kube::ResourceExt::name_any(self)),
        }
    }

    /// The namespace of the hub's workloads.
    pub fn workload_namespace(&self) -> String {
        format!("hub-{}", kube::ResourceExt::name_any(self))
    }
}
