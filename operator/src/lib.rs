//! vardhub: a Kubernetes operator that deploys the reference architecture of the Swedish
//! regions' shared health data hub for secondary use of health data.
//!
//! - [`adapters`]: narrow, idempotent adapters to OpenBao and S3.
//! - [`api`]: the custom resources (plain data, doc comments become `kubectl explain`).
//! - [`catalog`]: the DCAT-AP / HealthDCAT-AP catalogue: RDF, formats, the HTTP component.
//! - [`controller`]: one folder per controller, each a pipeline of small steps, plus the
//!   shared apply, conditions and runtime machinery.
//! - [`telemetry`]: metrics, health endpoints and logging.
//! - [`crdgen`]: the generated CRDs and their drift check.
//! - [`flow`]: the reference data flow, source data to report (synthetic data, OMOP, Parquet).
//! - [`markup`]: Markdown to HTML for the self-contained pages.
//! - [`jobs`]: the reference jobs a regional node's CronJobs run (`vardhub job`).
//! - [`pseudonymisation`]: the pseudonymisation service (identifiers, pseudonyms).
//! - [`render`]: the objects of a manifest directory, offline (`vardhub render`).
//! - [`plan`]: what applying a directory would change in a live cluster (`vardhub plan`).
//! - [`validate`]: the compliance rules of `policies/rego`, offline (`vardhub validate`).
//! - [`compare`]: realisation alternatives side by side (`vardhub compare`).

pub mod adapters;
pub mod api;
pub mod catalog;
pub mod compare;
pub mod controller;
pub mod crdgen;
pub mod exposure;
pub mod flow;
pub mod jobs;
pub mod layout;
pub mod manifest;
pub mod markup;
pub mod plan;
pub mod pseudonymisation;
pub mod render;
pub mod telemetry;
pub mod validate;
pub mod yaml;
