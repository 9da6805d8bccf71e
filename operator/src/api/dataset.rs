//! `Dataset`: the metadata of one dataset at one stage.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Agent, CommonStatus, CountyCode, LocalizedText, ResourceRef};

/// One dataset at one stage (regional source, standardised, purpose-specific data product),
/// described in the terms of DCAT-AP 3 and HealthDCAT-AP. The operator fills its distributions
/// from where the data really lives (`spec.location`); nothing here is a hand-typed URL.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    cel,
    namespaced,
    group = "vardhub.io",
    version = "v1alpha1",
    kind = "Dataset",
    plural = "datasets",
    shortname = "ds",
    category = "vardhub",
    status = "DatasetStatus",
    printcolumn(name = "Stage", type_ = "string", json_path = ".spec.location.stage"),
    printcolumn(name = "Access", type_ = "string", json_path = ".spec.accessRights"),
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
#[x_kube(validation = Rule::new(
    "!has(self.hasStructuredData) || !self.hasStructuredData || (has(self.variables) && size(self.variables) > 0)"
).message("spec.variables must list at least one variable when spec.hasStructuredData is true"))]
#[serde(rename_all = "camelCase")]
pub struct DatasetSpec {
    /// Title in Swedish and English.
    pub title: LocalizedText,
    /// Description in Swedish and English.
    pub description: LocalizedText,
    /// The organisation responsible for the dataset.
    pub publisher: Agent,
    /// Contact point for questions about the dataset.
    pub contact_point: ContactPoint,
    /// Data themes (EU data-theme vocabulary codes, for example `HEAL`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub themes: Vec<String>,
    /// Keywords.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<LocalizedText>,
    /// Access rights, from the EU access-right vocabulary.
    pub access_rights: AccessRights,
    /// Legislation that applies, as ELI URIs; health data for secondary use names the EHDS
    /// regulation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applicable_legislation: Vec<String>,
    /// The health data access body that decides on access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_data_access_body: Option<Agent>,
    /// Health categories (HealthDCAT-AP vocabulary).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_categories: Vec<String>,
    /// Whether the dataset is structured (has variables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_structured_data: Option<bool>,
    /// The dataset's variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub variables: Vec<Variable>,
    /// How the data came about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<LocalizedText>,
    /// Period the data covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_coverage: Option<TemporalCoverage>,
    /// Regions the data covers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub spatial_coverage: Vec<CountyCode>,
    /// Population statistics, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub population: Option<Population>,
    /// The legal basis for processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    /// The purpose of processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<LocalizedText>,
    /// Datasets this one is derived from (lineage), by name in the same namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived_from: Vec<ResourceRef>,
    /// Where the data lives; the distributions are derived from it.
    pub location: DatasetLocation,
}

/// Access rights of a dataset.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessRights {
    /// Open to anyone.
    Public,
    /// Available under conditions.
    Restricted,
    /// Not publicly available; the usual case for health data.
    NonPublic,
}

/// A contact point.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactPoint {
    /// Name of the contact (a function, not a person).
    #[schemars(length(min = 1))]
    pub name: String,
    /// E-mail address.
    #[schemars(regex(pattern = r"^[^@\s]+@[^@\s]+$"))]
    pub email: String,
}

/// A variable of a structured dataset.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    /// Technical name of the variable.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,
    /// Title of the variable.
    pub title: LocalizedText,
    /// Description of the variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<LocalizedText>,
    /// Datatype, as an XSD datatype name (for example `dateTime`, `string`, `integer`).
    pub datatype: String,
    /// The code system of coded values, where one applies (for example ICD-10-SE, KVÅ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_system: Option<String>,
}

/// A period of time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemporalCoverage {
    /// First day covered (YYYY-MM-DD).
    #[schemars(regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub start: String,
    /// Last day covered (YYYY-MM-DD); omitted for an ongoing collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub end: Option<String>,
}

/// Population statistics.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Population {
    /// Number of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<i64>,
    /// Number of unique individuals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_individuals: Option<i64>,
    /// Lowest age in the population, in years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_age: Option<i32>,
    /// Highest age in the population, in years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i32>,
}

/// The stage of a dataset in the architecture.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// In a region's own storage, in the region's source model.
    RegionalSource,
    /// Mapped to the common data model.
    Standardised,
    /// A purpose-specific data product of the hub.
    PurposeSpecific,
}

/// Where a dataset lives.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.dataHub) != has(self.regionalNode)")
    .message("spec.location: set exactly one of dataHub and regionalNode"))]
#[serde(rename_all = "camelCase")]
pub struct DatasetLocation {
    /// The stage of the dataset.
    pub stage: Stage,
    /// The hub holding the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_hub: Option<ResourceRef>,
    /// The regional node holding the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regional_node: Option<ResourceRef>,
    /// The data product (for the purpose-specific stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_product: Option<String>,
}

/// Observed state of a dataset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
}
