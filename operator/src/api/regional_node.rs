//! `RegionalNode`: the regional infrastructure of one or more regions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    CRON, CommonStatus, CountyCode, DNS_LABEL, DeletionPolicy, IMAGE_BY_DIGEST, Placement,
    ResourceRef,
};

/// A regional node: the part of the architecture that stays under a region's control.
///
/// It gets its own namespace (labelled for Pod Security "restricted", isolated by a
/// default-deny NetworkPolicy), a ServiceAccount as its workload identity, region-owned keys in
/// OpenBao, region storage, scheduled mapping jobs from the region's source model to the common
/// model, and an export path to the hub and nothing else. Identifiable data never leaves it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    cel,
    doc = "A RegionalNode is the part of the health data hub that stays under a region's control: its namespace, its keys in OpenBao, its storage buckets, the mapping jobs from the region's source model to the common data model, and the export to the hub. Identifiable data never leaves it.",
    group = "vardhub.io",
    version = "v1alpha1",
    kind = "RegionalNode",
    plural = "regionalnodes",
    shortname = "rn",
    category = "vardhub",
    status = "RegionalNodeStatus",
    printcolumn(name = "Regions", type_ = "string", json_path = ".spec.regions"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 50 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: a DNS label (lowercase letters, digits and '-') of at most 50 characters, so that the node's namespace name can be made from it"),
    validation = Rule::new("(has(self.spec.storage) && has(self.spec.storage.bucketPrefix)) || self.metadata.name.size() <= 42").message("metadata.name: longer than 42 characters, so the default bucket names (vardhub-<name>-standardised) would exceed 63; set spec.storage.bucketPrefix"),
)]
#[x_kube(validation = Rule::new("has(self.namespace) == has(oldSelf.namespace)")
    .message("spec.namespace cannot be changed after creation"))]
#[x_kube(validation = Rule::new(
    "(has(self.storage) && has(self.storage.bucketPrefix)) == (has(oldSelf.storage) && has(oldSelf.storage.bucketPrefix)) && (!has(self.storage) || !has(self.storage.bucketPrefix) || self.storage.bucketPrefix == oldSelf.storage.bucketPrefix)"
).message("spec.storage.bucketPrefix cannot be changed after creation: the node's buckets, and the data in them, keep the names they were created with"))]
#[x_kube(validation = Rule::new(
    "self.deletionPolicy != 'Delete' || (has(self.confirmDeletion) && self.confirmDeletion == true)"
).message("spec.confirmDeletion must be true when spec.deletionPolicy is Delete"))]
#[serde(rename_all = "camelCase")]
pub struct RegionalNodeSpec {
    /// The regions this node serves, by county code. One node may serve several regions (the
    /// nine Sussa regions share one central data warehouse).
    #[schemars(length(min = 1, max = 21))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub regions: Vec<CountyCode>,

    /// The namespace the node's workloads run in. Defaults to `region-<metadata.name>`. Cannot
    /// be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.namespace cannot be changed after creation"))]
    pub namespace: Option<String>,

    /// The hub this node exports to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<ResourceRef>,

    /// The region's own keys in OpenBao.
    #[serde(default)]
    pub keys: RegionalKeys,

    /// The region's own storage for landing and standardised data.
    #[serde(default)]
    pub storage: RegionalStorage,

    /// Scheduled jobs that map the region's source model to the common data model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(length(max = 32))]
    pub mapping_jobs: Vec<MappingJob>,

    /// What the node hands to the hub, through which pseudonymisation domain, on what schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<Export>,

    /// Placement of the node's workloads: node selector, tolerations, storage class, defaults.
    #[serde(default)]
    pub placement: Placement,

    /// What happens to the node's buckets and keys when the resource is deleted.
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

/// The region's keys; the region is their custodian.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionalKeys {
    /// How often the region's Transit keys are rotated, in days. Omitted means no automatic
    /// rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub rotation_period_days: Option<i32>,
}

/// The region's storage.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionalStorage {
    /// Prefix of the node's bucket names. Defaults to `vardhub-<metadata.name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$"))]
    pub bucket_prefix: Option<String>,
}

/// A scheduled job mapping the region's source model to the common data model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.config) || self.config.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$') && (!k.startsWith('VARDHUB_') || k.startsWith('VARDHUB_SYNTHETIC_')))"
).message("spec.mappingJobs[].config: each key becomes an environment variable: letters, digits and '_', not starting with a digit; VARDHUB_ names are the operator's (only the reference job's VARDHUB_SYNTHETIC_ settings may be given)"))]
pub struct MappingJob {
    /// Name of the job, unique within the node.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 40))]
    pub name: String,
    /// Container image of the region's mapping, pinned by digest. Without it the job runs the
    /// project's reference job (`vardhub job mapping`) from the operator's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IMAGE_BY_DIGEST), length(max = 512))]
    pub image: Option<String>,
    /// Cron schedule, for example `0 2 * * *`.
    #[schemars(regex(pattern = CRON), length(max = 128))]
    pub schedule: String,
    /// The region's source model, for example the name of its data warehouse schema.
    #[schemars(length(min = 1, max = 253))]
    pub source_model: String,
    /// The common data model the job maps to.
    pub target_model: ModelRef,
    /// Resources of the job's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Non-secret configuration handed to the job as environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("maxProperties" = 64))]
    pub config: BTreeMap<String, String>,
}

/// A named, versioned data model.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ModelRef {
    /// Name of the model, for example `omop-cdm`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Version of the model, for example `5.4`.
    #[schemars(length(min = 1, max = 32))]
    pub version: String,
}

/// The export path from the node to the hub.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Export {
    /// The pseudonymisation service that pseudonymises the export.
    pub pseudonymisation: ResourceRef,
    /// The pseudonym domain (purpose) of the export.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub domain: String,
    /// Cron schedule of the export.
    #[schemars(regex(pattern = CRON), length(max = 128))]
    pub schedule: String,
    /// Container image of the region's export tool, pinned by digest. It reads the
    /// standardised data, pseudonymises it through the service and writes where the hub's
    /// storage mode says (its environment names the bucket and prefix). Without it the job
    /// runs the project's reference job (`vardhub job export`) from the operator's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IMAGE_BY_DIGEST), length(max = 512))]
    pub image: Option<String>,
}

/// Observed state of a regional node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionalNodeStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The namespace the node's workloads run in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The OpenBao namespace holding the region's keys and credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openbao_namespace: Option<String>,
    /// The node's buckets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buckets: Vec<String>,
    /// The last run of each scheduled job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub jobs: Vec<JobStatus>,
}

/// The state of one scheduled job, from its CronJob and its most recent Job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// Name of the job in the spec (`export` for the export).
    pub name: String,
    /// Name of the CronJob.
    pub cron_job: String,
    /// When the CronJob last started a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// The most recent run: its Job, and `Succeeded`, `Failed` or `Running`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<JobRun>,
}

/// One run of a scheduled job.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    /// Name of the Job.
    pub job: String,
    /// `Succeeded`, `Failed` or `Running`.
    pub result: String,
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    /// When the run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

impl RegionalNode {
    /// Whether deleting the resource deletes its buckets and keys: `deletionPolicy: Delete`,
    /// confirmed.
    pub fn deletes_data(&self) -> bool {
        self.spec.deletion_policy == super::DeletionPolicy::Delete
            && self.spec.confirm_deletion == Some(true)
    }

    /// The prefix of the node's bucket names.
    pub fn bucket_prefix(&self) -> String {
        match &self.spec.storage.bucket_prefix {
            Some(p) => p.clone(),
            None => format!("vardhub-{}", kube::ResourceExt::name_any(self)),
        }
    }

    /// The namespace of the node's workloads.
    pub fn workload_namespace(&self) -> String {
        match &self.spec.namespace {
            Some(ns) => ns.clone(),
            None => format!("region-{}", kube::ResourceExt::name_any(self)),
        }
    }
}
