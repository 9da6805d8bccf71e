//! The reference jobs that a regional node's CronJobs run from the project's image
//! (`vardhub job mapping|export`).
//!
//! Every job first takes the path every real job takes: it logs in to OpenBao with the pod's
//! projected ServiceAccount token through the node's Kubernetes auth role, reads the node's S3
//! credential from the node's OpenBao namespace, and checks with that credential that the
//! node's own buckets answer. Each step that is refused fails the run with a message naming
//! the step, so the node's status shows `Failed` for a broken identity or grant. It never
//! prints a token, a key, a credential or an identifier.
//!
//! The mapping job then runs the reference mapping of [`crate::flow`]: the region's extract in
//! `source/` of its landing bucket to OMOP CDM 5.4 in `omop/` of its standardised bucket. With
//! the source model `synthetic` and no extract yet, it first writes a synthetic extract for
//! the node's region (job config `VARDHUB_SYNTHETIC_SEED`, `VARDHUB_SYNTHETIC_PATIENTS`, and
//! `VARDHUB_SYNTHETIC_REGIONS`, the county codes of the whole synthetic population, so that
//! people cross regions as they do in [`crate::flow::synth`]).
//!
//! Everything here does I/O except [`Settings::from_lookup`] and [`secret_path`].

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use serde::Serialize;

use crate::adapters::openbao;
use crate::adapters::s3::IssuedCredentials;

/// Which of the node's jobs runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// A mapping job: the region's source model to the common model.
    Mapping,
    /// The export to the hub through pseudonymisation.
    Export,
}

/// What a job is told by its environment (set by the operator on the CronJob).
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    /// OpenBao's address.
    pub openbao_addr: String,
    /// Mount of the Kubernetes auth method.
    pub auth_mount: String,
    /// The node's Kubernetes auth role.
    pub role: String,
    /// The projected ServiceAccount token.
    pub token_file: PathBuf,
    /// Where the node's S3 credential lives: `<namespace>/<mount>/data/<path>`.
    pub credentials: String,
    /// The node's buckets: landing, then standardised.
    pub buckets: Vec<String>,
    /// The node's county codes.
    pub regions: Vec<String>,
    /// The source model (`synthetic` generates an extract when there is none).
    pub source_model: Option<String>,
    /// The synthetic population: seed, size, and the county codes it spans.
    pub synthetic: crate::flow::synth::Params,
}

impl Settings {
    /// Reads the settings through `lookup` (the process environment in a job); a missing
    /// variable is named in the error. Pure.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |name: &str| {
            lookup(name)
                .filter(|v| !v.is_empty())
                .with_context(|| format!("{name} is not set: run this as a RegionalNode's job"))
        };
        Ok(Self {
            openbao_addr: get("VAULT_ADDR")?,
            auth_mount: get("VARDHUB_OPENBAO_AUTH_MOUNT")?,
            role: get("VARDHUB_OPENBAO_ROLE")?,
            token_file: get("VARDHUB_OPENBAO_TOKEN_FILE")?.into(),
            credentials: get("VARDHUB_S3_CREDENTIALS")?,
            buckets: vec![
                get("VARDHUB_LANDING_BUCKET")?,
                get("VARDHUB_STANDARDISED_BUCKET")?,
            ],
            regions: codes(lookup("VARDHUB_REGIONS")),
            source_model: lookup("VARDHUB_SOURCE_MODEL").filter(|v| !v.is_empty()),
            synthetic: crate::flow::synth::Params {
                seed: number(&lookup, "VARDHUB_SYNTHETIC_SEED", 1)?,
                patients: number(&lookup, "VARDHUB_SYNTHETIC_PATIENTS", 3000)?,
                regions: codes(lookup("VARDHUB_SYNTHETIC_REGIONS")),
                defects_per_mille: number(&lookup, "VARDHUB_SYNTHETIC_DEFECTS_PER_MILLE", 2)?
                    as u32,
            },
        })
    }
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

impl Settings {
    /// The synthetic population's parameters for this node, and the index of its region in
    /// it: the population spans `VARDHUB_SYNTHETIC_REGIONS`, or the node's own regions.
    pub fn synthetic_region(&self) -> Result<(crate::flow::synth::Params, usize, String)> {
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
        bail!("VARDHUB_S3_CREDENTIALS: expected <namespace>/<mount>/data/<path>, got {full:?}");
    };
    let Some(path) = rest.strip_prefix("data/") else {
        bail!("VARDHUB_S3_CREDENTIALS: expected <namespace>/<mount>/data/<path>, got {full:?}");
    };
    Ok((namespace, mount, path))
}

/// What a run found, printed as one JSON line at its end.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The stage that ran.
    pub stage: &'static str,
    /// The OpenBao role it logged in with.
    pub role: String,
    /// The buckets that answered to the node's credential.
    pub buckets: Vec<String>,
    /// Whether a synthetic extract was written in this run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub synthetic_extract: bool,
    /// Rows written per table of the common model (mapping).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rows: crate::flow::omop::Counts,
}

/// Runs one job to its end.
pub async fn run(stage: Stage, settings: &Settings) -> Result<Report> {
    let jwt = std::fs::read_to_string(&settings.token_file).with_context(|| {
        format!(
            "reading the ServiceAccount token {}",
            settings.token_file.display()
        )
    })?;
    let (token, _) = openbao::login_kubernetes(
        &settings.openbao_addr,
        &settings.auth_mount,
        &settings.role,
        &jwt,
    )
    .await
    .with_context(|| format!("logging in to OpenBao as role {}", settings.role))?;
    let (namespace, mount, path) = secret_path(&settings.credentials)?;
    let stored: IssuedCredentials = openbao::Admin::new(&settings.openbao_addr, &token)?
        .in_namespace(namespace)?
        .read_secret(mount, path)
        .await
        .with_context(|| {
            format!(
                "reading the node's S3 credential at {}",
                settings.credentials
            )
        })?
        .with_context(|| format!("no S3 credential at {}", settings.credentials))?;
    let s3 = stored.client();
    for bucket in &settings.buckets {
        s3.head_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
            .with_context(|| format!("the node's credential on bucket {bucket}"))?;
    }
    let mut report = Report {
        stage: match stage {
            Stage::Mapping => "mapping",
            Stage::Export => "export",
        },
        role: settings.role.clone(),
        buckets: settings.buckets.clone(),
        synthetic_extract: false,
        rows: Default::default(),
    };
    if stage == Stage::Mapping {
        use crate::flow::{layout, run, store::Bucket, synth};
        let landing = Bucket::new(s3.clone(), settings.buckets[0].clone());
        let standardised = Bucket::new(s3.clone(), settings.buckets[1].clone());
        if settings.source_model.as_deref() == Some("synthetic")
            && landing
                .list(&format!("{}/", layout::SOURCE))
                .await?
                .is_empty()
        {
            let (params, index, _) = settings.synthetic_region()?;
            run::write_source(&landing, &synth::region(&params, index)).await?;
            report.synthetic_extract = true;
        }
        report.rows = run::map_region(&landing, &standardised)
            .await
            .context("mapping the region's extract to OMOP CDM 5.4")?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_variable_is_named() {
        let err = Settings::from_lookup(|name| (name == "VAULT_ADDR").then(|| "http://x".into()))
            .expect_err("incomplete environment");
        assert!(
            err.to_string().contains("VARDHUB_OPENBAO_AUTH_MOUNT"),
            "{err}"
        );
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
        let s = Settings::from_lookup(env(&[
            ("VARDHUB_REGIONS", "03"),
            ("VARDHUB_SYNTHETIC_REGIONS", "01,03,14"),
            ("VARDHUB_SYNTHETIC_SEED", "9"),
            ("VARDHUB_SYNTHETIC_PATIENTS", "100"),
        ]))
        .expect("settings");
        let (params, index, county) = s.synthetic_region().expect("region");
        assert_eq!(
            (params.seed, params.patients, index, county.as_str()),
            (9, 100, 1, "03")
        );
        let s = Settings::from_lookup(env(&[
            ("VARDHUB_REGIONS", "25"),
            ("VARDHUB_SYNTHETIC_REGIONS", "01,03"),
        ]))
        .expect("settings");
        assert!(
            s.synthetic_region()
                .expect_err("not in the population")
                .to_string()
                .contains("VARDHUB_SYNTHETIC_REGIONS")
        );
        let bad = Settings::from_lookup(env(&[("VARDHUB_SYNTHETIC_PATIENTS", "many")]));
        assert!(
            bad.expect_err("bad")
                .to_string()
                .contains("VARDHUB_SYNTHETIC_PATIENTS")
        );
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
