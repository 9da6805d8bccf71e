//! The reference jobs that the operator's CronJobs run from the project's image
//! (`vardhub job mapping|export|standardise|publish`): the regions' jobs and the hub's.
//!
//! Every job first takes the path every real job takes: it logs in to OpenBao with the pod's
//! projected ServiceAccount token through its owner's Kubernetes auth role, reads its S3
//! credential from its owner's OpenBao namespace, and checks with that credential that the
//! buckets it works on answer. Each step that is refused fails the run with a message naming
//! the step, so the owner's status shows `Failed` for a broken identity or grant. It never
//! prints a token, a key, a credential or an identifier.
//!
//! Then each runs its step of [`crate::flow`]:
//! - **mapping** (region): the region's extract in `source/` of its landing bucket to OMOP CDM
//!   5.4 in `omop/` of its standardised bucket. With the source model `synthetic` and no
//!   extract yet, it first writes a synthetic extract for the node's region (job config
//!   `VARDHUB_SYNTHETIC_SEED`, `VARDHUB_SYNTHETIC_PATIENTS`, and `VARDHUB_SYNTHETIC_REGIONS`,
//!   the county codes of the whole synthetic population, so that people cross regions as they
//!   do in [`crate::flow::synth`]);
//! - **export** (region): `omop/` through the hub's pseudonymisation service for the export's
//!   purpose, to the region's write-only prefix in the hub's landing zone with the ingest
//!   credential the hub keeps for the node (central mode), or standardised in the region to
//!   its own `export/<purpose>/` with a manifest (federated mode). The node's data goes under
//!   its first county code;
//! - **standardise** (hub, central mode): every `<county>/<purpose>/` in the landing zone to
//!   the standardised zone, the quarantine and a manifest;
//! - **publish** (hub): the product from its inputs (`VARDHUB_PRODUCT_INPUTS`, set by the
//!   operator) to `<product>/` of the products bucket, with the report for hip fractures.
//!
//! Everything here does I/O except [`Settings::from_lookup`] and [`secret_path`].

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::adapters::openbao;
use crate::adapters::s3::IssuedCredentials;
use crate::api::ReferenceProduct;
use crate::flow::publish::{HipFracture, WaitingTimes};
use crate::flow::{
    export::Pseudonymiser, layout, run, standardise::Manifest, store::Bucket, synth,
};

/// Which job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// A region's mapping job: the region's source model to the common model.
    Mapping,
    /// A region's export to the hub through pseudonymisation.
    Export,
    /// The hub's standardisation of the landing zone (central mode).
    Standardise,
    /// The hub's publishing of a data product.
    Publish,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Mapping => "mapping",
            Stage::Export => "export",
            Stage::Standardise => "standardise",
            Stage::Publish => "publish",
        }
    }
}

/// What a job is told by its environment (set by the operator on the CronJob).
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    /// OpenBao's address.
    pub openbao_addr: String,
    /// Mount of the Kubernetes auth method.
    pub auth_mount: String,
    /// The owner's Kubernetes auth role.
    pub role: String,
    /// The projected ServiceAccount token.
    pub token_file: PathBuf,
    /// Where the job's S3 credential lives: `<namespace>/<mount>/data/<path>`.
    pub credentials: String,
    /// The step and what it works on.
    pub work: Work,
}

/// A job's step and its inputs.
#[derive(Debug, PartialEq, Eq)]
pub enum Work {
    /// The region's mapping.
    Mapping(Mapping),
    /// The region's export.
    Export(Export),
    /// The hub's standardisation: landing and standardised buckets.
    Standardise {
        /// The hub's landing bucket.
        landing: String,
        /// The hub's standardised bucket.
        standardised: String,
    },
    /// The hub's publishing of one product.
    Publish(Publish),
}

/// A mapping job's settings.
#[derive(Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The node's landing bucket.
    pub landing: String,
    /// The node's standardised bucket.
    pub standardised: String,
    /// The node's county codes.
    pub regions: Vec<String>,
    /// The source model (`synthetic` generates an extract when there is none).
    pub source_model: Option<String>,
    /// The synthetic population: seed, size, and the county codes it spans.
    pub synthetic: synth::Params,
}

/// An export job's settings.
#[derive(Debug, PartialEq, Eq)]
pub struct Export {
    /// The node's standardised bucket (its common model, and its exports in federated mode).
    pub standardised: String,
    /// The county code the node's data is exported under.
    pub county: String,
    /// The purpose (pseudonym domain).
    pub purpose: String,
    /// The pseudonymisation service's base URL.
    pub pseudonymisation_url: String,
    /// The file holding the job's token for the pseudonymisation service (read per request,
    /// since the kubelet renews it).
    pub pseudonymisation_token: PathBuf,
    /// The OpenBao PKI mount whose CA the service's certificate must chain to.
    pub pseudonymisation_ca_mount: String,
    /// Central mode: the hub's landing bucket and where the node's ingest credential is kept.
    /// `None`: federated mode.
    pub central: Option<(String, String)>,
}

/// A publish job's settings.
#[derive(Debug, PartialEq, Eq)]
pub struct Publish {
    /// The product's name (its prefix in the products bucket).
    pub product: String,
    /// The product's purpose.
    pub purpose: String,
    /// Which reference product to build.
    pub reference: ReferenceProduct,
    /// Columns an individual-level product keeps (all when empty).
    pub columns: Vec<String>,
    /// Suppression threshold.
    pub threshold: u64,
    /// The hub's products bucket.
    pub products: String,
    /// `(county, bucket, prefix)` of each region's input.
    pub inputs: Vec<(String, String, String)>,
}

impl Settings {
    /// Reads the settings of `stage` through `lookup` (the process environment in a job); a
    /// missing or malformed variable is named in the error. Pure.
    pub fn from_lookup(stage: Stage, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| {
            lookup(name).filter(|v| !v.is_empty()).with_context(|| {
                format!(
                    "{name} is not set: run this as the {} job of a RegionalNode or DataHub",
                    stage.name()
                )
            })
        };
        let work = match stage {
            Stage::Mapping => Work::Mapping(Mapping {
                landing: get("VARDHUB_LANDING_BUCKET")?,
                standardised: get("VARDHUB_STANDARDISED_BUCKET")?,
                regions: codes(lookup("VARDHUB_REGIONS")),
                source_model: lookup("VARDHUB_SOURCE_MODEL").filter(|v| !v.is_empty()),
                synthetic: synth::Params {
                    seed: number(&lookup, "VARDHUB_SYNTHETIC_SEED", 1)?,
                    patients: number(&lookup, "VARDHUB_SYNTHETIC_PATIENTS", 3000)?,
                    regions: codes(lookup("VARDHUB_SYNTHETIC_REGIONS")),
                    defects_per_mille: number(&lookup, "VARDHUB_SYNTHETIC_DEFECTS_PER_MILLE", 2)?
                        as u32,
                },
            }),
            Stage::Export => Work::Export(Export {
                standardised: get("VARDHUB_STANDARDISED_BUCKET")?,
                county: codes(Some(get("VARDHUB_REGIONS")?))
                    .into_iter()
                    .next()
                    .context("VARDHUB_REGIONS names no county")?,
                purpose: get("VARDHUB_EXPORT_DOMAIN")?,
                pseudonymisation_url: get("VARDHUB_PSEUDONYMISATION_URL")?,
                pseudonymisation_token: get("VARDHUB_PSEUDONYMISATION_TOKEN_FILE")?.into(),
                pseudonymisation_ca_mount: get("VARDHUB_PSEUDONYMISATION_CA_MOUNT")?,
                central: match lookup("VARDHUB_EXPORT_CREDENTIALS").filter(|v| !v.is_empty()) {
                    Some(path) => Some((get("VARDHUB_EXPORT_BUCKET")?, path)),
                    None => None,
                },
            }),
            Stage::Standardise => Work::Standardise {
                landing: get("VARDHUB_LANDING_BUCKET")?,
                standardised: get("VARDHUB_STANDARDISED_BUCKET")?,
            },
            Stage::Publish => Work::Publish(Publish {
                product: get("VARDHUB_PRODUCT")?,
                purpose: get("VARDHUB_PRODUCT_PURPOSE")?,
                reference: match get("VARDHUB_REFERENCE_PRODUCT")?.as_str() {
                    "hipFracture" => ReferenceProduct::HipFracture,
                    "waitingTimes" => ReferenceProduct::WaitingTimes,
                    other => bail!(
                        "VARDHUB_REFERENCE_PRODUCT: {other:?} is neither hipFracture nor waitingTimes"
                    ),
                },
                columns: codes(lookup("VARDHUB_PRODUCT_COLUMNS")),
                threshold: number(&lookup, "VARDHUB_SUPPRESSION_THRESHOLD", 5)?,
                products: get("VARDHUB_PRODUCTS_BUCKET")?,
                inputs: inputs(&get("VARDHUB_PRODUCT_INPUTS")?)?,
            }),
        };
        Ok(Self {
            openbao_addr: get("VAULT_ADDR")?,
            auth_mount: get("VARDHUB_OPENBAO_AUTH_MOUNT")?,
            role: get("VARDHUB_OPENBAO_ROLE")?,
            token_file: get("VARDHUB_OPENBAO_TOKEN_FILE")?.into(),
            credentials: get("VARDHUB_S3_CREDENTIALS")?,
            work,
        })
    }

    /// The buckets the job's own credential must answer for.
    pub fn buckets(&self) -> Vec<String> {
        match &self.work {
            Work::Mapping(m) => vec![m.landing.clone(), m.standardised.clone()],
            Work::Export(e) => vec![e.standardised.clone()],
            Work::Standardise {
                landing,
                standardised,
            } => vec![landing.clone(), standardised.clone()],
            Work::Publish(p) => vec![p.products.clone()],
        }
    }
}

/// `<county>=<bucket>/<prefix>,…` as triples. Pure.
fn inputs(value: &str) -> Result<Vec<(String, String, String)>> {
    codes(Some(value.to_owned()))
        .into_iter()
        .map(|item| {
            let parsed = item.split_once('=').and_then(|(county, location)| {
                let (bucket, prefix) = location.split_once('/')?;
                Some((county.to_owned(), bucket.to_owned(), prefix.to_owned()))
            });
            parsed.with_context(|| {
                format!("VARDHUB_PRODUCT_INPUTS: expected <county>=<bucket>/<prefix>, got {item:?}")
            })
        })
        .collect()
}

fn codes(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

fn number(lookup: &impl Fn(&str) -> Option<String>, name: &str, default: u64) -> Result<u64> {
    match lookup(name).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .with_context(|| format!("{name} must be a whole number")),
    }
}

impl Mapping {
    /// The synthetic population's parameters for this node, and the index of its region in
    /// it: the population spans `VARDHUB_SYNTHETIC_REGIONS`, or the node's own regions.
    pub fn synthetic_region(&self) -> Result<(synth::Params, usize, String)> {
        let county = self
            .regions
            .first()
            .context("VARDHUB_REGIONS is empty: the node has no region")?
            .clone();
        let mut params = self.synthetic.clone();
        if params.regions.is_empty() {
            params.regions = self.regions.clone();
        }
        let index = params
            .regions
            .iter()
            .position(|c| *c == county)
            .with_context(|| {
                format!("VARDHUB_SYNTHETIC_REGIONS does not include the node's region {county}")
            })?;
        Ok((params, index, county))
    }
}

/// Splits `<namespace>/<mount>/data/<path>` into its three parts. Pure.
pub fn secret_path(full: &str) -> Result<(&str, &str, &str)> {
    let mut parts = full.splitn(3, '/');
    let (Some(namespace), Some(mount), Some(rest)) = (parts.next(), parts.next(), parts.next())
    else {
        bail!("credential path: expected <namespace>/<mount>/data/<path>, got {full:?}");
    };
    let Some(path) = rest.strip_prefix("data/") else {
        bail!("credential path: expected <namespace>/<mount>/data/<path>, got {full:?}");
    };
    Ok((namespace, mount, path))
}

/// What a run found, printed as one JSON line at its end: counts and addresses, never a row.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The stage that ran.
    pub stage: &'static str,
    /// The OpenBao role it logged in with.
    pub role: String,
    /// The buckets that answered to the job's credential.
    pub buckets: Vec<String>,
    /// Whether a synthetic extract was written in this run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub synthetic_extract: bool,
    /// Rows written per table of the common model (mapping, export).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rows: crate::flow::omop::Counts,
    /// Standardisation runs: county, purpose, rows in, out and rejected over all tables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub standardised: Vec<Standardised>,
    /// The objects a publish run wrote, by `s3://` URL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<String>,
}

/// The totals of one standardisation.
#[derive(Debug, Serialize)]
pub struct Standardised {
    /// County code.
    pub region: String,
    /// Purpose.
    pub purpose: String,
    /// Rows read.
    pub rows_in: u64,
    /// Rows standardised.
    pub rows_out: u64,
    /// Rows quarantined.
    pub rows_rejected: u64,
}

impl From<&Manifest> for Standardised {
    fn from(m: &Manifest) -> Self {
        Self {
            region: m.region.clone(),
            purpose: m.purpose.clone(),
            rows_in: m.rows_in.values().sum(),
            rows_out: m.rows_out.values().sum(),
            rows_rejected: m.rows_rejected.values().sum(),
        }
    }
}

/// Reads a stored S3 credential with an OpenBao token.
async fn credential(addr: &str, token: &str, full_path: &str) -> Result<IssuedCredentials> {
    read_secret_at(addr, token, full_path, "S3 credential").await
}

/// Reads the secret `what` at `full_path` (`<namespace>/<mount>/data/<path>`) with `token`.
pub async fn read_secret_at<T: serde::de::DeserializeOwned>(
    addr: &str,
    token: &str,
    full_path: &str,
    what: &str,
) -> Result<T> {
    let (namespace, mount, path) = secret_path(full_path)?;
    openbao::Admin::new(addr, token)?
        .in_namespace(namespace)?
        .read_secret(mount, path)
        .await
        .with_context(|| format!("reading the {what} at {full_path}"))?
        .with_context(|| format!("no {what} at {full_path}"))
}

/// Logs in to OpenBao as a workload, with the ServiceAccount token in `token_file` under the
/// Kubernetes auth `role` at `auth_mount`, and reads its S3 credential at `credentials`
/// (`<namespace>/<mount>/data/<path>`). Returns the OpenBao token and the credential. Used by
/// the jobs and the exposure API.
pub async fn workload_credential(
    openbao_addr: &str,
    auth_mount: &str,
    role: &str,
    token_file: &std::path::Path,
    credentials: &str,
) -> Result<(String, IssuedCredentials)> {
    let jwt = std::fs::read_to_string(token_file)
        .with_context(|| format!("reading the ServiceAccount token {}", token_file.display()))?;
    let (token, _) = openbao::login_kubernetes(openbao_addr, auth_mount, role, &jwt)
        .await
        .with_context(|| format!("logging in to OpenBao as role {role}"))?;
    let issued = credential(openbao_addr, &token, credentials).await?;
    Ok((token, issued))
}

/// Runs one job to its end.
pub async fn run(stage: Stage, settings: &Settings) -> Result<Report> {
    let (token, issued) = workload_credential(
        &settings.openbao_addr,
        &settings.auth_mount,
        &settings.role,
        &settings.token_file,
        &settings.credentials,
    )
    .await?;
    let s3 = issued.client();
    let buckets = settings.buckets();
    for bucket in &buckets {
        s3.head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
            .with_context(|| format!("the job's credential on bucket {bucket}"))?;
    }
    let mut report = Report {
        stage: stage.name(),
        role: settings.role.clone(),
        buckets,
        synthetic_extract: false,
        rows: Default::default(),
        standardised: Vec::new(),
        published: Vec::new(),
    };
    let bucket = |name: &str| Bucket::new(s3.clone(), name);
    match &settings.work {
        Work::Mapping(m) => {
            let landing = bucket(&m.landing);
            let standardised = bucket(&m.standardised);
            if m.source_model.as_deref() == Some("synthetic")
                && landing
                    .list(&format!("{}/", layout::SOURCE))
                    .await?
                    .is_empty()
            {
                let (params, index, _) = m.synthetic_region()?;
                run::write_source(&landing, &synth::region(&params, index)).await?;
                report.synthetic_extract = true;
            }
            report.rows = run::map_region(&landing, &standardised)
                .await
                .context("mapping the region's extract to OMOP CDM 5.4")?;
        }
        Work::Export(e) => {
            let standardised = bucket(&e.standardised);
            // The service's certificate must chain to its own CA in OpenBao, and to nothing
            // else: no system roots.
            let ca = openbao::ca_certificate(
                &reqwest::Client::new(),
                &settings.openbao_addr,
                &e.pseudonymisation_ca_mount,
            )
            .await
            .context("reading the pseudonymisation service's CA from OpenBao")?;
            let pseudonymiser = Pseudonymiser::Service {
                url: e.pseudonymisation_url.clone(),
                client: crate::pseudonymisation::tls::client_trusting(&ca)?,
                token_file: e.pseudonymisation_token.clone(),
            };
            let landing = match &e.central {
                Some((hub_landing, path)) => {
                    let ingest = credential(&settings.openbao_addr, &token, path).await?;
                    Some(Bucket::new(ingest.client(), hub_landing))
                }
                None => None,
            };
            let destination = match &landing {
                Some(landing) => run::Destination::Central { landing },
                None => run::Destination::Federated,
            };
            let (rows, manifest) = run::export_region(
                &standardised,
                destination,
                &e.county,
                &e.purpose,
                &pseudonymiser,
            )
            .await
            .with_context(|| format!("exporting for purpose {}", e.purpose))?;
            report.rows = rows;
            if let Some(manifest) = manifest {
                standardised
                    .put(
                        &layout::key(&layout::federated_export(&e.purpose), "manifest.json"),
                        serde_json::to_vec_pretty(&manifest)?,
                        "application/json",
                    )
                    .await?;
                report.standardised.push((&manifest).into());
            }
        }
        Work::Standardise {
            landing,
            standardised,
        } => {
            let landing = bucket(landing);
            let standardised = bucket(standardised);
            let found: BTreeSet<(String, String)> = landing
                .list("")
                .await?
                .into_iter()
                .filter_map(|(key, _)| {
                    let mut parts = key.split('/');
                    let (county, purpose) = (parts.next()?, parts.next()?);
                    parts.next()?;
                    Some((county.to_owned(), purpose.to_owned()))
                })
                .collect();
            for (county, purpose) in found {
                let manifest = run::standardise_region(&landing, &standardised, &county, &purpose)
                    .await
                    .with_context(|| format!("standardising {county}/{purpose}"))?;
                report.standardised.push((&manifest).into());
            }
        }
        Work::Publish(p) => {
            if p.inputs.is_empty() {
                bail!(
                    "product {}: no region exports for purpose {}, so there is nothing to publish",
                    p.product,
                    p.purpose
                );
            }
            let inputs: Vec<run::Input> = p
                .inputs
                .iter()
                .map(|(county, name, prefix)| run::Input {
                    county: county.clone(),
                    bucket: bucket(name),
                    prefix: prefix.clone(),
                })
                .collect();
            let products = bucket(&p.products);
            let files = match p.reference {
                ReferenceProduct::HipFracture => {
                    run::publish_hip_fracture(
                        &inputs,
                        &products,
                        &p.product,
                        &p.columns,
                        p.threshold,
                    )
                    .await?;
                    vec![
                        run::rows_file::<HipFracture>(),
                        run::INDICATORS_FILE.into(),
                        run::REPORT_FILE.into(),
                    ]
                }
                ReferenceProduct::WaitingTimes => {
                    run::publish_waiting_times(&inputs, &products, &p.product, p.threshold).await?;
                    vec![run::rows_file::<WaitingTimes>()]
                }
            };
            report.published = files
                .iter()
                .map(|f| products.url(&layout::key(&p.product, f)))
                .collect();
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_variable_is_named() {
        let err = Settings::from_lookup(Stage::Mapping, |name| {
            matches!(
                name,
                "VAULT_ADDR" | "VARDHUB_LANDING_BUCKET" | "VARDHUB_STANDARDISED_BUCKET"
            )
            .then(|| "x".into())
        })
        .expect_err("incomplete environment");
        assert!(
            err.to_string().contains("VARDHUB_OPENBAO_AUTH_MOUNT"),
            "{err}"
        );
        let err = Settings::from_lookup(Stage::Publish, |_| None).expect_err("empty");
        assert!(err.to_string().contains("VARDHUB_PRODUCT "), "{err}");
    }

    #[test]
    fn the_synthetic_population_spans_the_configured_regions() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
                    .or_else(|| {
                        matches!(
                            name,
                            "VAULT_ADDR"
                                | "VARDHUB_OPENBAO_AUTH_MOUNT"
                                | "VARDHUB_OPENBAO_ROLE"
                                | "VARDHUB_OPENBAO_TOKEN_FILE"
                                | "VARDHUB_LANDING_BUCKET"
                                | "VARDHUB_STANDARDISED_BUCKET"
                                | "VARDHUB_S3_CREDENTIALS"
                        )
                        .then(|| "x".to_owned())
                    })
            }
        };
        let mapping = |s: Settings| match s.work {
            Work::Mapping(m) => m,
            other => panic!("not a mapping: {other:?}"),
        };
        let s = Settings::from_lookup(
            Stage::Mapping,
            env(&[
                ("VARDHUB_REGIONS", "03"),
                ("VARDHUB_SYNTHETIC_REGIONS", "01,03,14"),
                ("VARDHUB_SYNTHETIC_SEED", "9"),
                ("VARDHUB_SYNTHETIC_PATIENTS", "100"),
            ]),
        )
        .expect("settings");
        let (params, index, county) = mapping(s).synthetic_region().expect("region");
        assert_eq!(
            (params.seed, params.patients, index, county.as_str()),
            (9, 100, 1, "03")
        );
        let s = Settings::from_lookup(
            Stage::Mapping,
            env(&[
                ("VARDHUB_REGIONS", "25"),
                ("VARDHUB_SYNTHETIC_REGIONS", "01,03"),
            ]),
        )
        .expect("settings");
        assert!(
            mapping(s)
                .synthetic_region()
                .expect_err("not in the population")
                .to_string()
                .contains("VARDHUB_SYNTHETIC_REGIONS")
        );
        let bad = Settings::from_lookup(
            Stage::Mapping,
            env(&[("VARDHUB_SYNTHETIC_PATIENTS", "many")]),
        );
        assert!(
            bad.expect_err("bad")
                .to_string()
                .contains("VARDHUB_SYNTHETIC_PATIENTS")
        );
    }

    #[test]
    fn a_publish_job_reads_its_inputs_and_refuses_a_malformed_one() {
        let base = |inputs: &'static str| {
            move |name: &str| {
                Some(
                    match name {
                        "VARDHUB_REFERENCE_PRODUCT" => "hipFracture",
                        "VARDHUB_PRODUCT_INPUTS" => inputs,
                        "VARDHUB_PRODUCT_COLUMNS" => "region, admitted",
                        "VARDHUB_SUPPRESSION_THRESHOLD" => "10",
                        _ => "x",
                    }
                    .to_owned(),
                )
            }
        };
        let s = Settings::from_lookup(Stage::Publish, base("01=hub-std/01/hf,14=r-std/export/hf"))
            .expect("settings");
        let Work::Publish(p) = s.work else {
            panic!("not a publish job")
        };
        assert_eq!(p.threshold, 10);
        assert_eq!(p.columns, ["region", "admitted"]);
        assert_eq!(
            p.inputs[1],
            ("14".into(), "r-std".into(), "export/hf".into())
        );
        let err = Settings::from_lookup(Stage::Publish, base("01:hub-std"))
            .expect_err("malformed")
            .to_string();
        assert!(err.contains("VARDHUB_PRODUCT_INPUTS"), "{err}");
    }

    #[test]
    fn the_credential_path_splits_into_namespace_mount_and_path() {
        assert_eq!(
            secret_path("region-a/secrets/data/s3/node").ok(),
            Some(("region-a", "secrets", "s3/node"))
        );
        assert!(secret_path("region-a/secrets/s3/node").is_err());
        assert!(secret_path("region-a").is_err());
    }
}
