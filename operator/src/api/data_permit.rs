//! `DataPermit`: access to a hub's data products for one holder, one purpose, for a limited
//! time, as a health data access body decides under the EHDS.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Agent, CommonStatus, DNS_LABEL, HTTP_IRI, ResourceRef};

/// A data permit: which of a hub's data products one holder may receive, for which purpose,
/// from when until when, issued by which access body. It lives in the hub's namespace, where
/// the hub's exposure (API and SFTP) reads it; before `validFrom`, after `validUntil`, or
/// once deleted, it grants nothing.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    cel,
    doc = "A DataPermit grants one holder access to some of a hub's data products, for one purpose and a limited time, as issued by a health data access body. It lives in the hub's namespace.",
    namespaced,
    group = "vardhub.io",
    version = "v1alpha1",
    kind = "DataPermit",
    plural = "datapermits",
    shortname = "permit",
    category = "vardhub",
    status = "DataPermitStatus",
    printcolumn(name = "Holder", type_ = "string", json_path = ".spec.holder.name"),
    printcolumn(name = "Products", type_ = "string", json_path = ".spec.products"),
    printcolumn(name = "Until", type_ = "date", json_path = ".spec.validUntil"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new("timestamp(self.validFrom) < timestamp(self.validUntil)")
    .message("spec.validUntil must be after spec.validFrom"))]
#[serde(rename_all = "camelCase")]
pub struct DataPermitSpec {
    /// The hub whose data products the permit covers; the permit lives in its namespace
    /// (`hub-<name>`).
    pub data_hub: ResourceRef,
    /// The data products (`spec.zones.purposeSpecific[].name` of the hub) the holder may
    /// receive; at least one.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(inner(regex(pattern = DNS_LABEL), length(max = 40)))]
    pub products: Vec<String>,
    /// What the data may be used for, as the permit states it.
    #[schemars(length(min = 1, max = 2048))]
    pub purpose: String,
    /// Who receives the data, and how they prove it.
    pub holder: Holder,
    /// The health data access body that issued the permit.
    pub issued_by: Agent,
    /// The permit's own reference at the access body, for example its case number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub reference: Option<String>,
    /// When access begins.
    pub valid_from: Time,
    /// When access ends.
    pub valid_until: Time,
}

/// The holder of a permit and the identities it proves itself with: an identity of an OIDC
/// issuer for the API, an SSH key for SFTP; at least one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.oidc) || has(self.sshPublicKey)")
    .message("spec.holder: give an oidc identity (for the API), an sshPublicKey (for SFTP), or both"))]
pub struct Holder {
    /// The holder's name, for example a research group and its organisation.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// The holder's identity at an OIDC issuer: bearer tokens of that issuer with this subject
    /// are the holder's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcIdentity>,
    /// The holder's SSH public key, in the `authorized_keys` form (`ssh-ed25519 AAAA… comment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(
            pattern = r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521) [A-Za-z0-9+/]+={0,2}( [^\n]*)?$"
        ),
        length(max = 16384)
    )]
    pub ssh_public_key: Option<String>,
}

/// An identity at an OIDC issuer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct OidcIdentity {
    /// The issuer, as its tokens name it (`iss`).
    #[schemars(regex(pattern = HTTP_IRI), length(max = 2048))]
    pub issuer: String,
    /// The holder's subject at that issuer (`sub`).
    #[schemars(length(min = 1, max = 255))]
    pub subject: String,
}

/// Observed state of a permit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataPermitStatus {
    /// Generation and conditions: `Ready` is true exactly while the permit grants access.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// `NotYetValid`, `Active`, `Expired`, or `Invalid` (the permit names something the
    /// hub does not have).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// What the holder did under the permit, as the hub's exposure components count it
    /// (each writes its own field; the audit trail holds each access).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accesses: Option<ChannelAccesses>,
}

/// Accesses under a permit, per way of exposure.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ChannelAccesses {
    /// Through the exposure API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<PermitAccesses>,
    /// Through the SFTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sftp: Option<PermitAccesses>,
}

/// Accesses under a permit.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermitAccesses {
    /// Requests (API) or files and listings (SFTP) served.
    pub served: i64,
    /// Accesses the permit covered but that were refused (no such object, a bad range or
    /// key, a write).
    pub refused: i64,
    /// Bytes served.
    pub bytes: i64,
    /// The last access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Time>,
}

impl DataPermit {
    /// Whether the permit grants anything at `now`: within its validity (the end exclusive),
    /// not being deleted, and not found invalid by its controller.
    pub fn in_force(&self, now: k8s_openapi::jiff::Timestamp) -> bool {
        self.metadata.deletion_timestamp.is_none()
            && self.spec.valid_from.0 <= now
            && now < self.spec.valid_until.0
            && self
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_none_or(|p| p != "Invalid")
    }

    /// Whether the permit, in force at `now`, grants `product` of `hub` to its holder.
    pub fn covers(&self, hub: &str, product: &str, now: k8s_openapi::jiff::Timestamp) -> bool {
        self.spec.data_hub.name == hub
            && self.spec.products.iter().any(|p| p == product)
            && self.in_force(now)
    }

    /// Whether the permit, in force at `now`, grants `product` of `hub` to the OIDC identity
    /// (`issuer`, `subject`).
    pub fn grants(
        &self,
        hub: &str,
        issuer: &str,
        subject: &str,
        product: &str,
        now: k8s_openapi::jiff::Timestamp,
    ) -> bool {
        self.spec
            .holder
            .oidc
            .as_ref()
            .is_some_and(|o| o.issuer == issuer && o.subject == subject)
            && self.covers(hub, product, now)
    }
}
