//! `CatalogService`: the served DCAT-AP / HealthDCAT-AP catalogue.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{CommonStatus, EMAIL, HTTP_IRI, LocalizedText, Placement};

/// A data catalogue generated from the `Dataset` resources it selects, served over HTTP in
/// Turtle, JSON-LD and RDF/XML. Because it is generated from the same resources that provision
/// the data, it cannot drift from reality.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    cel,
    doc = "A CatalogService publishes the Datasets of its namespace as a DCAT-AP 3 / HealthDCAT-AP catalogue over HTTP, generated from the cluster's own state and served by the project's component.",
    namespaced,
    group = "vardhub.io",
    version = "v1alpha1",
    kind = "CatalogService",
    plural = "catalogservices",
    shortname = "catalog",
    category = "vardhub",
    status = "CatalogServiceStatus",
    printcolumn(name = "Datasets", type_ = "integer", json_path = ".status.datasets"),
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
    validation = Rule::new("self.metadata.name.size() <= 55 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: a DNS label that starts with a letter, of at most 55 characters, so that the catalogue's Service name (<name>-catalog) can be made from it"),
)]
#[x_kube(validation = super::label_selector_rule("datasetSelector"))]
#[serde(rename_all = "camelCase")]
pub struct CatalogServiceSpec {
    /// Title of the catalogue.
    pub title: LocalizedText,
    /// Description of the catalogue.
    pub description: LocalizedText,
    /// The organisation publishing the catalogue.
    pub publisher: Agent,
    /// Legislation that applies to the catalogue, as ELI URIs. Defaults to the EHDS
    /// regulation.
    #[serde(default = "default_legislation")]
    #[schemars(length(min = 1, max = 32))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(inner(regex(pattern = HTTP_IRI), length(max = 2048)))]
    pub applicable_legislation: Vec<String>,
    /// Languages of the catalogue, as ISO 639-1 codes.
    #[serde(default = "default_languages")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(inner(regex(pattern = r"^(sv|en|fi|da|nb|nn|no|de|fr|es|it|nl|pl|et|lv|lt)$")))]
    pub languages: Vec<String>,
    /// The base URI of the catalogue's resources, for example `https://catalog.example.se/`.
    #[schemars(regex(pattern = HTTP_IRI), length(max = 2048))]
    pub base_uri: String,
    /// Which `Dataset` resources of this namespace the catalogue includes. Omitted selects all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_selector: Option<LabelSelector>,
    /// Number of server replicas.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 20))]
    pub replicas: i32,
    /// Datasets per page of the served catalogue.
    #[serde(default = "default_page_size")]
    #[schemars(range(min = 1, max = 10000))]
    pub page_size: i32,
    /// Placement of the server's pods.
    #[serde(default)]
    pub placement: Placement,
}

fn default_languages() -> Vec<String> {
    vec!["sv".into(), "en".into()]
}
/// The EHDS regulation, (EU) 2025/327, by its ELI.
pub const EHDS_ELI: &str = "http://data.europa.eu/eli/reg/2025/327/oj";

fn default_legislation() -> Vec<String> {
    vec![EHDS_ELI.into()]
}
fn default_replicas() -> i32 {
    1
}
fn default_page_size() -> i32 {
    100
}

/// An organisation (publisher, health data access body).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// Name of the organisation.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// URI identifying the organisation.
    #[schemars(regex(pattern = HTTP_IRI), length(max = 2048))]
    pub uri: String,
    /// Type of the organisation, from the ADMS publisher-type vocabulary (for example
    /// `RegionalAuthority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z-]+$"), length(max = 64))]
    pub publisher_type: Option<String>,
    /// Functional e-mail address of the organisation (its contact point in the catalogue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = EMAIL), length(max = 254))]
    pub email: Option<String>,
}

/// Observed state of a catalogue service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CatalogServiceStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Number of datasets in the served catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasets: Option<i32>,
    /// When the catalogue's content last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_render: Option<String>,
    /// Digest of the catalogue's content; the served catalogue gives the same value as its
    /// `ETag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Selected datasets left out because their location is not resolved yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<i32>,
    /// Number of triples served, over all pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triples: Option<i64>,
    /// Where the catalogue is served inside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
