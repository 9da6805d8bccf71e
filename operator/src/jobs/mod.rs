//! The reference jobs that a regional node's CronJobs run from the project's image
//! (`vardhub job mapping|export`).
//!
//! Today a job proves the path every real job takes, and does nothing with data: it logs in to
//! OpenBao with the pod's projected ServiceAccount token through the node's Kubernetes auth
//! role, reads the node's S3 credential from the node's OpenBao namespace, and checks with that
//! credential that the node's own buckets answer. Each step that is refused fails the run with
//! a message naming the step, so the node's status shows `Failed` for a broken identity or
//! grant. It never prints a token, a key or a credential.
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
    /// The node's buckets.
    pub buckets: Vec<String>,
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
        })
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
    Ok(Report {
        stage: match stage {
            Stage::Mapping => "mapping",
            Stage::Export => "export",
        },
        role: settings.role.clone(),
        buckets: settings.buckets.clone(),
    })
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
    fn the_credential_path_splits_into_namespace_mount_and_path() {
        assert_eq!(
            secret_path("region-a/secrets/data/s3/node").ok(),
            Some(("region-a", "secrets", "s3/node"))
        );
        assert!(secret_path("region-a/secrets/s3/node").is_err());
        assert!(secret_path("region-a").is_err());
    }
}
