//! `Dataset`: the metadata of one dataset at one stage.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Agent, CommonStatus, CountyCode, DATE, DNS_LABEL, EMAIL, HTTP_IRI, LocalizedText, ResourceRef,
};

/// One dataset at one stage (regional source, standardised, purpose-specific data product),
/// described in the terms of DCAT-AP 3 and HealthDCAT-AP. The operator fills its distributions
/// from where the data really lives (`spec.location`); nothing here is a hand-typed URL.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    cel,
    doc = "A Dataset is the metadata of one dataset at one stage (regional source, standardised or purpose-specific) in the terms of DCAT-AP 3 and HealthDCAT-AP; the operator fills in where its data lives.",
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
    "!self.hasStructuredData || (has(self.variables) && size(self.variables) > 0)"
).message("spec.variables must list at least one variable when spec.hasStructuredData is true"))]
#[x_kube(validation = Rule::new(
    "self.accessRights == 'PUBLIC' || has(self.healthDataAccessBody)"
).message("spec.healthDataAccessBody is required when spec.accessRights is RESTRICTED or NON_PUBLIC: HealthDCAT-AP names the body that decides on access"))]
#[x_kube(validation = Rule::new(
    "!has(self.healthDataAccessBody) || has(self.healthDataAccessBody.email)"
).message("spec.healthDataAccessBody.email is required: HealthDCAT-AP gives the access body a contact point"))]
#[x_kube(validation = Rule::new("has(self.publisher.email)")
    .message("spec.publisher.email is required: HealthDCAT-AP gives the publisher a contact point"))]
#[x_kube(validation = Rule::new(
    "self.location.stage != 'purposeSpecific' || has(self.location.dataProduct)"
).message("spec.location.dataProduct is required for the purposeSpecific stage"))]
#[x_kube(validation = Rule::new(
    "self.location.stage != 'regionalSource' || has(self.location.regionalNode)"
).message("spec.location.regionalNode is required for the regionalSource stage: source data lives only in its region"))]
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
    /// The type of dataset, as a code of the EU dataset-type vocabulary (for example
    /// `STATISTICAL`). HealthDCAT-AP makes it mandatory.
    #[schemars(regex(pattern = r"^[A-Z][A-Z0-9_]*$"), length(max = 64))]
    pub dataset_type: String,
    /// Data themes of the EU data-theme vocabulary; at least one (usually `HEAL`).
    #[schemars(length(min = 1))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub themes: Vec<DataTheme>,
    /// Keywords in Swedish and English; at least one.
    #[schemars(length(min = 1, max = 64))]
    pub keywords: Vec<LocalizedText>,
    /// Access rights, from the EU access-right vocabulary.
    pub access_rights: AccessRights,
    /// The licence under which the data may be used once access is granted, as a URI (for
    /// an open aggregate, `http://publications.europa.eu/resource/authority/licence/CC_BY_4_0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = HTTP_IRI), length(max = 2048))]
    pub license: Option<String>,
    /// Legislation that applies, as ELI URIs; health data for secondary use names the EHDS
    /// regulation (`http://data.europa.eu/eli/reg/2025/327/oj`). At least one.
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(length(min = 1, max = 32))]
    #[schemars(inner(regex(pattern = HTTP_IRI), length(max = 2048)))]
    pub applicable_legislation: Vec<String>,
    /// The health data access body that decides on access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_data_access_body: Option<Agent>,
    /// Health categories, as IRIs of the HealthDCAT-AP health-category vocabulary (the
    /// categories of EHDS Art. 51); at least one.
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    #[schemars(length(min = 1, max = 32))]
    #[schemars(inner(regex(pattern = HTTP_IRI), length(max = 2048)))]
    pub health_categories: Vec<String>,
    /// Whether the dataset is structured (has variables). HealthDCAT-AP makes it mandatory.
    pub has_structured_data: bool,
    /// The dataset's variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    #[schemars(length(max = 1000))]
    pub variables: Vec<Variable>,
    /// How the data came about. HealthDCAT-AP makes it mandatory.
    pub provenance: LocalizedText,
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
    #[schemars(length(max = 2048))]
    pub legal_basis: Option<String>,
    /// The purpose of processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<LocalizedText>,
    /// Datasets this one is derived from (lineage), by name in the same namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub derived_from: Vec<ResourceRef>,
    /// Where the data lives; the distributions are derived from it.
    pub location: DatasetLocation,
}

/// A theme of the EU data-theme vocabulary.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum DataTheme {
    /// Agriculture, fisheries, forestry and food.
    #[serde(rename = "AGRI")]
    Agriculture,
    /// Economy and finance.
    #[serde(rename = "ECON")]
    Economy,
    /// Education, culture and sport.
    #[serde(rename = "EDUC")]
    Education,
    /// Energy.
    #[serde(rename = "ENER")]
    Energy,
    /// Environment.
    #[serde(rename = "ENVI")]
    Environment,
    /// Government and public sector.
    #[serde(rename = "GOVE")]
    Government,
    /// Health.
    #[serde(rename = "HEAL")]
    Health,
    /// International issues.
    #[serde(rename = "INTR")]
    International,
    /// Justice, legal system and public safety.
    #[serde(rename = "JUST")]
    Justice,
    /// Regions and cities.
    #[serde(rename = "REGI")]
    Regions,
    /// Population and society.
    #[serde(rename = "SOCI")]
    Society,
    /// Science and technology.
    #[serde(rename = "TECH")]
    Technology,
    /// Transport.
    #[serde(rename = "TRAN")]
    Transport,
}

impl DataTheme {
    /// The vocabulary code, for example `HEAL`.
    pub fn code(self) -> &'static str {
        match self {
            DataTheme::Agriculture => "AGRI",
            DataTheme::Economy => "ECON",
            DataTheme::Education => "EDUC",
            DataTheme::Energy => "ENER",
            DataTheme::Environment => "ENVI",
            DataTheme::Government => "GOVE",
            DataTheme::Health => "HEAL",
            DataTheme::International => "INTR",
            DataTheme::Justice => "JUST",
            DataTheme::Regions => "REGI",
            DataTheme::Society => "SOCI",
            DataTheme::Technology => "TECH",
            DataTheme::Transport => "TRAN",
        }
    }

    /// The English label of the vocabulary.
    pub fn label(self) -> &'static str {
        match self {
            DataTheme::Agriculture => "Agriculture, fisheries, forestry and food",
            DataTheme::Economy => "Economy and finance",
            DataTheme::Education => "Education, culture and sport",
            DataTheme::Energy => "Energy",
            DataTheme::Environment => "Environment",
            DataTheme::Government => "Government and public sector",
            DataTheme::Health => "Health",
            DataTheme::International => "International issues",
            DataTheme::Justice => "Justice, legal system and public safety",
            DataTheme::Regions => "Regions and cities",
            DataTheme::Society => "Population and society",
            DataTheme::Technology => "Science and technology",
            DataTheme::Transport => "Transport",
        }
    }
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
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// E-mail address.
    #[schemars(regex(pattern = EMAIL), length(max = 254))]
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
    pub description: LocalizedText,
    /// Datatype, as an XSD datatype name (for example `dateTime`, `string`, `integer`).
    #[schemars(length(min = 1, max = 64))]
    pub datatype: String,
    /// The code system of coded values, where one applies (for example ICD-10-SE, KVÅ).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub code_system: Option<String>,
}

/// A period of time.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.end) || self.end >= self.start")
    .message("spec.temporalCoverage.end: before spec.temporalCoverage.start"))]
#[serde(rename_all = "camelCase")]
pub struct TemporalCoverage {
    /// First day covered (YYYY-MM-DD).
    #[schemars(regex(pattern = DATE))]
    pub start: String,
    /// Last day covered (YYYY-MM-DD); omitted for an ongoing collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = DATE))]
    pub end: Option<String>,
}

/// Population statistics.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("!has(self.minAge) || !has(self.maxAge) || self.minAge <= self.maxAge")
    .message("spec.population.minAge: greater than spec.population.maxAge"))]
#[x_kube(validation = Rule::new("!has(self.records) || !has(self.uniqueIndividuals) || self.uniqueIndividuals <= self.records")
    .message("spec.population.uniqueIndividuals: more individuals than spec.population.records"))]
#[serde(rename_all = "camelCase")]
pub struct Population {
    /// Number of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub records: Option<i64>,
    /// Number of unique individuals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub unique_individuals: Option<i64>,
    /// Lowest age in the population, in years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 150))]
    pub min_age: Option<i32>,
    /// Highest age in the population, in years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 150))]
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
    #[schemars(regex(pattern = DNS_LABEL), length(max = 40))]
    pub data_product: Option<String>,
}

/// Observed state of a dataset.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Where the data can be reached, derived by the operator from `spec.location` and the
    /// hub or node that holds it; the catalogue publishes these as distributions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub distributions: Vec<Distribution>,
}

/// One way to reach a dataset's data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Distribution {
    /// Short name of the distribution within the dataset (for example `s3`).
    pub name: String,
    /// How it is reached.
    pub kind: DistributionKind,
    /// The address (for S3, `s3://<bucket>/<prefix>`).
    pub access_url: String,
    /// Title in English, for the catalogue.
    pub title: String,
    /// How long the distribution is planned to be available, from the EU
    /// planned-availability vocabulary: `TEMPORARY` for a landing zone, `AVAILABLE` for
    /// standardised data, `STABLE` for a data product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<String>,
    /// IANA media type of its data files, when the last look found them all of one type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Bytes stored under the address at the last look, as the S3 server lists them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_size: Option<i64>,
    /// Objects under the address at the last look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<i64>,
    /// Rows in its Parquet files at the last look, as each file records them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// When the newest object under the address was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
}

/// How a distribution is reached.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DistributionKind {
    /// An S3 bucket and prefix.
    #[default]
    S3,
    /// An HTTP API.
    Api,
    /// An SFTP endpoint.
    Sftp,
}
