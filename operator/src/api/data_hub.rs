//! `DataHub`: the region-common health data hub.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    CRON, CommonStatus, CountyCode, DNS_LABEL, DeletionPolicy, HTTP_IRI, IMAGE_BY_DIGEST,
    Placement, ResourceRef,
};

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
    validation = Rule::new("self.metadata.name.size() <= 50 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: a DNS label (lowercase letters, digits and '-') of at most 50 characters, so that the hub's namespace name can be made from it"),
    validation = Rule::new("has(self.spec.bucketPrefix) || self.metadata.name.size() <= 38").message("metadata.name: longer than 38 characters, so the default bucket names (vardhub-hub-<name>-standardised) would exceed 63; set spec.bucketPrefix"),
)]
#[x_kube(validation = Rule::new(
    "self.deletionPolicy != 'Delete' || (has(self.confirmDeletion) && self.confirmDeletion == true)"
).message("spec.confirmDeletion must be true when spec.deletionPolicy is Delete"))]
#[x_kube(validation = Rule::new(
    "has(self.bucketPrefix) == has(oldSelf.bucketPrefix) && (!has(self.bucketPrefix) || self.bucketPrefix == oldSelf.bucketPrefix)"
).message("spec.bucketPrefix cannot be changed after creation: the hub's buckets, and the data in them, keep the names they were created with"))]
#[x_kube(validation = super::label_selector_rule("regionalNodeSelector"))]
#[x_kube(validation = Rule::new(
    "self.storageMode != 'federated' || !has(self.standardisation)"
).message("spec.standardisation: a federated hub has no standardisation job; its regions standardise their exports in the region"))]
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
    #[schemars(length(max = 64))]
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

    /// The hub's standardisation job (central mode): every region's export in the landing
    /// zone is checked against the common model into the standardised zone, with failing rows
    /// quarantined and a manifest per run. Federated hubs have none: their regions
    /// standardise in the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standardisation: Option<HubJob>,

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
    #[schemars(length(max = 64))]
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
    #[schemars(regex(pattern = DNS_LABEL), length(max = 40))]
    pub name: String,
    /// The purpose (pseudonym domain) the product's data is pseudonymised for.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub purpose: String,
    /// Regions whose data the product may hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub regions: Vec<CountyCode>,
    /// Retention lock, as for the other zones.
    #[serde(default, flatten)]
    pub settings: ZoneSettings,
    /// How the product is built from standardised data. Without it the hub makes the
    /// product's prefix and credential, and a tool of the hub's own fills it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ProductBuild>,
}

/// A scheduled job of the hub.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HubJob {
    /// Cron schedule, for example `30 3 * * *`.
    #[schemars(regex(pattern = CRON), length(max = 128))]
    pub schedule: String,
    /// Container image, pinned by digest. Without it the job runs the project's reference
    /// job (`vardhub job <step>`) from the operator's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IMAGE_BY_DIGEST), length(max = 512))]
    pub image: Option<String>,
}

/// The reference data products the project's publish job builds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReferenceProduct {
    /// Use case D, the hip-fracture care flow: one row per fracture admission (individual
    /// level, pseudonymised), and a report of the share operated within 24 and 36 hours and
    /// 30-day mortality per region.
    HipFracture,
    /// Use case B, waiting times from referral to first visit: an aggregate per region,
    /// year and month, with small cells suppressed.
    WaitingTimes,
}

/// How a data product is built.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "self.product == 'hipFracture' || !has(self.columns) || size(self.columns) == 0"
).message("columns: only an individual-level product (hipFracture) declares its columns; an aggregate's cells are fixed"))]
pub struct ProductBuild {
    /// The reference product to build.
    pub product: ReferenceProduct,
    /// Cron schedule of the publish job.
    #[schemars(regex(pattern = CRON), length(max = 128))]
    pub schedule: String,
    /// The columns an individual-level product keeps; every other column is left out.
    /// Omitted means all of the product's columns. A name the product does not have is
    /// refused, naming it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"), length(max = 64))]
    #[schemars(inner(length(min = 1, max = 128)))]
    pub columns: Vec<String>,
    /// Cells of an aggregate, and figures in a report, that count fewer people than this are
    /// suppressed.
    #[serde(default = "default_threshold")]
    #[schemars(range(min = 1, max = 1000))]
    pub suppression_threshold: i32,
    /// Container image of the hub's own publish tool, pinned by digest. Without it the job
    /// runs the project's reference job (`vardhub job publish`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IMAGE_BY_DIGEST), length(max = 512))]
    pub image: Option<String>,
}

fn default_threshold() -> i32 {
    5
}

/// How consumers reach purpose-specific data. Either way, a consumer receives only the
/// products of a `DataPermit` that is in force for it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.api || has(self.oidc)")
    .message("spec.exposure.oidc: the API needs the OIDC issuer whose bearer tokens it accepts"))]
pub struct Exposure {
    /// Serve purpose-specific data over an HTTP API (`vardhub exposure-api`, in the hub's
    /// namespace): listing and download, with range requests, of the products a permit holder
    /// may receive.
    #[serde(default)]
    pub api: bool,
    /// Share purpose-specific data over SFTP (`vardhub exposure-sftp`, in the hub's
    /// namespace): read-only; a permit holder logs in as the permit's name with the permit's
    /// SSH key and sees exactly the permit's products.
    #[serde(default)]
    pub sftp: bool,
    /// The OIDC issuer whose tokens the API accepts, and the audience they must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcProvider>,
}

/// An OIDC issuer trusted by the hub's API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcProvider {
    /// The issuer (`iss`); its keys are found at `<issuer>/.well-known/openid-configuration`.
    #[schemars(regex(pattern = HTTP_IRI), length(max = 2048))]
    pub issuer: String,
    /// The audience (`aud`) tokens must carry: the client id the issuer gives the hub's API.
    #[schemars(length(min = 1, max = 255))]
    pub audience: String,
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
    /// The last run of each of the hub's scheduled jobs (standardisation, publishing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub jobs: Vec<super::JobStatus>,
    /// Where permit holders reach the hub's data products.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<ExposureStatus>,
}

/// Where permit holders reach the hub's data products.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExposureStatus {
    /// The API's address in the cluster (`https://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// The SFTP server's address in the cluster (`sftp://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sftp: Option<String>,
    /// The SFTP server's host key, in the `known_hosts` form without a host name, for holders
    /// to check the server with. Public; the private key stays in OpenBao.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sftp_host_key: Option<String>,
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
    /// Whether deleting the resource deletes its buckets and keys: `deletionPolicy: Delete`,
    /// confirmed.
    pub fn deletes_data(&self) -> bool {
        self.spec.deletion_policy == super::DeletionPolicy::Delete
            && self.spec.confirm_deletion == Some(true)
    }

    /// Whether the hub hands data products to permit holders (API or SFTP).
    pub fn exposes(&self) -> bool {
        self.spec.exposure.api || self.spec.exposure.sftp
    }

    /// The prefix of the hub's bucket names.
    pub fn bucket_prefix(&self) -> String {
        match &self.spec.bucket_prefix {
            Some(p) => p.clone(),
            None => format!("vardhub-hub-{}", kube::ResourceExt::name_any(self)),
        }
    }

    /// The namespace of the hub's workloads.
    pub fn workload_namespace(&self) -> String {
        Self::workload_namespace_of(&kube::ResourceExt::name_any(self))
    }

    /// The namespace of the workloads of the hub named `name`.
    pub fn workload_namespace_of(name: &str) -> String {
        format!("hub-{name}")
    }
}
