//! Types shared by several resources.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A DNS label (RFC 1123): what a namespace, and each part of a bucket name, can be.
pub const DNS_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS subdomain (RFC 1123): what the name of a Kubernetes object can be. No `/`, no `..`.
pub const DNS_SUBDOMAIN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A container image pinned by a real digest: `<repository>@sha256:<64 hex digits>`.
pub const IMAGE_BY_DIGEST: &str = r"^[a-z0-9][a-z0-9._/:-]*@sha256:[a-f0-9]{64}$";
/// An absolute `http` or `https` IRI without spaces or the characters RFC 3987 excludes.
pub const HTTP_IRI: &str = r#"^https?://[^\s<>"{}|\\^`]+$"#;
/// An e-mail address (RFC 5322 dot-atom local part, a domain with at least one dot).
pub const EMAIL: &str = r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$";
/// A calendar date, `YYYY-MM-DD`.
pub const DATE: &str = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
/// A cron schedule as a CronJob takes it: five fields, or a macro such as `@daily`.
pub const CRON: &str = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9*/,?LW#A-Za-z-]+( +[0-9*/,?LW#A-Za-z-]+){4})$";

/// The CEL rule that makes a `LabelSelector` field (`field`, relative to `self`) well formed
/// before anything selects with it: a known operator, and values exactly where it needs them.
pub fn label_selector_rule(field: &str) -> kube::core::Rule {
    let s = format!("self.{field}");
    kube::core::Rule::new(format!(
        "!has({s}) || !has({s}.matchExpressions) || {s}.matchExpressions.all(e, \
         e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'] && \
         ((e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0)))"
    ))
    .message(kube::core::Message::Message(format!(
        "spec.{field}.matchExpressions: the operator is In, NotIn, Exists or DoesNotExist; \
         In and NotIn need values, Exists and DoesNotExist take none"
    )))
}

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
    #[schemars(regex(pattern = DNS_SUBDOMAIN), length(min = 1, max = 253))]
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
    /// Default resource requests and limits for containers that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// A text in Swedish and English; catalogues are published in both.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalizedText {
    /// The text in Swedish.
    #[schemars(length(min = 1, max = 8192))]
    pub sv: String,
    /// The text in English.
    #[schemars(length(min = 1, max = 8192))]
    pub en: String,
}
