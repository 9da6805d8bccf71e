//! `PseudonymisationService`: pseudonyms per purpose, keyed in OpenBao.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, DNS_LABEL, DNS_SUBDOMAIN, DeletionPolicy, IMAGE_BY_DIGEST, Placement};

/// A pseudonymisation service: turns personal identity numbers, coordination numbers and
/// local identifiers into pseudonyms, one pseudonym domain per purpose so that datasets
/// cannot be linked outside a permit. Keys live in OpenBao Transit and never in manifests.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    cel,
    doc = "A PseudonymisationService turns identifiers into pseudonyms per purpose (domain), with one key per domain in OpenBao Transit, so that datasets cannot be linked outside a permit. The operator runs it from the project's image.",
    namespaced,
    group = "vardhub.io",
    version = "v1alpha1",
    kind = "PseudonymisationService",
    plural = "pseudonymisationservices",
    shortname = "pseudo",
    category = "vardhub",
    status = "PseudonymisationServiceStatus",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(name = "Domains", type_ = "integer", json_path = ".status.domains"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    validation = Rule::new("self.metadata.name.size() <= 50 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: a DNS label that starts with a letter, of at most 50 characters, so that the service's Service and ServiceAccount names can be made from it"),
)]
#[x_kube(validation = Rule::new(
    "self.deletionPolicy != 'Delete' || (has(self.confirmKeyDeletion) && self.confirmKeyDeletion == true)"
).message("spec.confirmKeyDeletion must be true when spec.deletionPolicy is Delete: deleting the keys makes every pseudonym ever issued unlinkable"))]
#[serde(rename_all = "camelCase")]
pub struct PseudonymisationServiceSpec {
    /// `transit`: every batch is one OpenBao Transit HMAC call. `local`: the domain key is
    /// fetched from OpenBao once, held only in memory, and HMAC-SHA256 runs in process.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message(
        "spec.mode cannot be changed after creation: the domain keys were made for one mode (exportable only in local mode); create a second service"
    ))]
    pub mode: PseudonymisationMode,

    /// The pseudonym domains, one per purpose. The same identifier gives unrelated
    /// pseudonyms in different domains.
    #[schemars(length(min = 1, max = 256))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub domains: Vec<PseudonymDomain>,

    /// Rows each caller may send per second (each replica counts on its own). A JSON
    /// request carries at most this many rows; beyond its share a caller gets 429 with
    /// `Retry-After`, and a stream slows down. The default lets a region export two million
    /// people in under a minute while trying every possible identity number takes a quarter
    /// of an hour. At least 20,000, the rows a reference export job sends per request.
    #[serde(default = "default_rows_per_second")]
    #[schemars(range(min = 20_000, max = 10_000_000))]
    pub rows_per_second: i32,

    /// Number of service replicas.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 50))]
    pub replicas: i32,

    /// Container image of the service, pinned by digest; defaults to the operator's own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = IMAGE_BY_DIGEST), length(max = 512))]
    pub image: Option<String>,

    /// Placement of the service's pods.
    #[serde(default)]
    pub placement: Placement,

    /// What happens to the Transit keys when the resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Must be `true` for `deletionPolicy: Delete` to be honoured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_key_deletion: Option<bool>,
}

impl PseudonymisationService {
    /// Whether deleting the service deletes its domain keys: `deletionPolicy: Delete`,
    /// confirmed.
    pub fn deletes_keys(&self) -> bool {
        self.spec.deletion_policy == DeletionPolicy::Delete
            && self.spec.confirm_key_deletion == Some(true)
    }
}

fn default_replicas() -> i32 {
    2
}

fn default_rows_per_second() -> i32 {
    crate::pseudonymisation::access::DEFAULT_ROWS_PER_SECOND as i32
}

/// How pseudonyms are computed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PseudonymisationMode {
    /// One OpenBao Transit HMAC call per batch; the key never leaves OpenBao.
    #[default]
    Transit,
    /// The domain key is held in process memory only; HMAC-SHA256 runs in process.
    Local,
}

/// A pseudonym domain: one purpose, one key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new(
    "(has(self.reversible) && self.reversible) == (has(oldSelf.reversible) && oldSelf.reversible)"
).message("spec.domains[].reversible cannot be changed after creation: the domain's key was made for one kind of pseudonym; add a domain under a new name"))]
#[x_kube(validation = Rule::new(
    "!has(oldSelf.keyVersion) || (has(self.keyVersion) && self.keyVersion >= oldSelf.keyVersion)"
).message("spec.domains[].keyVersion cannot be lowered or removed: pseudonyms issued under the pinned version would no longer be reproduced"))]
#[serde(rename_all = "camelCase")]
pub struct PseudonymDomain {
    /// Name of the domain, for example `region-export-01` or `permit-2026-0042`.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub name: String,
    /// What the pseudonyms of this domain are for. Every audit record of the domain states
    /// it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub purpose: Option<String>,
    /// The key version the domain is pinned to. Omitted means the version current when the
    /// domain was created; a rotation opens a new epoch only when this is raised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub key_version: Option<i32>,
    /// Allow re-identification through convergent encryption. Reverse look-ups need a
    /// separate OpenBao policy and are audited.
    #[serde(default)]
    pub reversible: bool,
    /// Who may use the domain. A caller proves who it is with a projected ServiceAccount
    /// token whose audience is `status.audience`; the service answers 401 without one and
    /// 403 to a caller listed under no grant of the domain. The callers' namespaces are also
    /// the only ones the service's NetworkPolicy admits. A domain without callers serves no
    /// one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub callers: Vec<DomainCaller>,
}

/// A ServiceAccount, or every ServiceAccount of a namespace, allowed to use a domain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainCaller {
    /// The caller's namespace, for example a regional node's `region-stockholm`.
    #[schemars(regex(pattern = DNS_LABEL), length(max = 63))]
    pub namespace: String,
    /// The caller's ServiceAccount; omitted admits every ServiceAccount of the namespace.
    /// A regional node's jobs run as `regional-node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DNS_SUBDOMAIN), length(max = 253))]
    pub service_account: Option<String>,
}

/// Observed state of a pseudonymisation service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PseudonymisationServiceStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Number of domains whose keys are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<i32>,
    /// The audience a caller's ServiceAccount token must carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}
