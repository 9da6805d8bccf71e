//! Exposure: the hub's data products reach the holders of data permits.
//!
//! Two components, run by the hub's controller, serve the same products under the same
//! permits:
//! - the API (`vardhub exposure-api`, `spec.exposure.api`) answers bearer tokens of the hub's
//!   OIDC issuer, over HTTPS;
//! - the SFTP server (`vardhub exposure-sftp`, `spec.exposure.sftp`) logs in the holder of a
//!   permit with the permit's SSH key, read-only.
//!
//! Both decide on every request from a watch of the permits of the hub's namespace, so a
//! permit that expires or is deleted stops working at once (the SFTP server also closes the
//! permit's open sessions). Both read the purpose-specific zone with a read-only credential
//! they fetch from OpenBao, and every access, served or refused, leaves a record in the same
//! audit trail. This module is what they share: the permits, the credential, the trail and
//! the access counts in each permit's status.

pub mod api;
pub mod sftp;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use kube::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde::Serialize;
use serde_json::json;

use crate::api::{DataPermit, PermitAccesses};
use crate::telemetry::AuditSink;

/// The value of every audit record's `audit` field.
pub const STREAM: &str = "vardhub-exposure";
/// How often a component reads its S3 credential again (the operator renews it well before
/// it expires).
pub const CREDENTIAL_REFRESH: Duration = Duration::from_secs(300);
/// The most objects one listing returns.
pub const MAX_LISTED: usize = 10_000;
/// How often counted accesses are written to the permits' status (only those that differ).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);

/// The way a product reaches its holder.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// The HTTPS API.
    Api,
    /// The SFTP server.
    Sftp,
}

impl Channel {
    /// The field manager of the channel's writes to permits' status; each channel owns its
    /// own counts (`status.accesses.api`, `status.accesses.sftp`).
    pub fn field_manager(self) -> &'static str {
        match self {
            Channel::Api => "vardhub-exposure-api",
            Channel::Sftp => "vardhub-exposure-sftp",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Channel::Api => "api",
            Channel::Sftp => "sftp",
        }
    }
}

/// How an access ended, in the audit trail.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Answered.
    Served,
    /// No valid token or key.
    Unauthenticated,
    /// Authenticated, but no permit in force grants it.
    Forbidden,
    /// The product holds no such object, or the range lies outside it.
    NotFound,
    /// The request was malformed, or the S3 server failed.
    Failed,
}

/// One audit record: which channel, who, under which permit, which product and object, how
/// many bytes, how it ended. Never a token or a key.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record<'a> {
    /// Set by [`Products::record`].
    pub channel: Option<Channel>,
    pub outcome: Option<Outcome>,
    /// The HTTP status (API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// What was asked (SFTP): `login`, `list`, `read`, `stat`, `write`, ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<&'static str>,
    /// The token's subject (API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub range: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The accesses counted under one permit (by name), for the permit's UID: the permit's own
/// figures when the count began, plus what this process served since.
#[derive(Clone, Debug)]
struct Tally {
    uid: String,
    accesses: PermitAccesses,
}

/// What a component serves from: the hub's products bucket, the permits of its namespace,
/// its S3 credential (swapped when renewed), its audit trail and its access counts.
#[derive(Clone)]
pub struct Products {
    channel: Channel,
    hub: Arc<str>,
    bucket: Arc<str>,
    permits: Store<DataPermit>,
    s3: Arc<RwLock<aws_sdk_s3::Client>>,
    audit: AuditSink,
    tallies: Arc<Mutex<BTreeMap<String, Tally>>>,
}

impl Products {
    /// `hub`'s products in `bucket`, served over `channel` under `permits`.
    pub fn new(
        channel: Channel,
        hub: &str,
        bucket: &str,
        permits: Store<DataPermit>,
        s3: aws_sdk_s3::Client,
        audit: AuditSink,
    ) -> Self {
        Self {
            channel,
            hub: hub.into(),
            bucket: bucket.into(),
            permits,
            s3: Arc::new(RwLock::new(s3)),
            audit,
            tallies: Arc::default(),
        }
    }

    /// The hub.
    pub fn hub(&self) -> &str {
        &self.hub
    }

    /// The products bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The permits of the hub's namespace, as last seen.
    pub fn permits(&self) -> Vec<Arc<DataPermit>> {
        self.permits.state()
    }

    /// The permit `name` of the hub's namespace, as last seen.
    pub fn permit(&self, name: &str) -> Option<Arc<DataPermit>> {
        self.permits
            .get(&ObjectRef::new(name).within(&self.namespace()))
    }

    fn namespace(&self) -> String {
        crate::api::DataHub::workload_namespace_of(&self.hub)
    }

    /// Swaps in a client with a fresh credential.
    pub fn replace_s3(&self, client: aws_sdk_s3::Client) {
        if let Ok(mut held) = self.s3.write() {
            *held = client;
        }
    }

    /// The current S3 client.
    pub fn s3(&self) -> Option<aws_sdk_s3::Client> {
        self.s3.read().ok().map(|c| c.clone())
    }

    /// Writes `record` to the trail and counts it under its permit, if it names one: served
    /// when its outcome is [`Outcome::Served`], refused otherwise.
    pub fn record(&self, record: Record<'_>) {
        let record = self.note(record);
        if let Some(permit) = &record.permit {
            self.count(
                permit,
                record.outcome == Some(Outcome::Served),
                record.bytes,
            );
        }
    }

    /// Writes `record` to the trail without counting it (logins, disconnects).
    pub fn note<'a>(&self, mut record: Record<'a>) -> Record<'a> {
        record.channel = Some(self.channel);
        self.audit.write(&record);
        record
    }

    /// Counts one access the permit `name` covered.
    fn count(&self, name: &str, served: bool, bytes: Option<i64>) {
        let Some(permit) = self.permit(name) else {
            return;
        };
        let uid = permit.metadata.uid.clone().unwrap_or_default();
        let Ok(mut tallies) = self.tallies.lock() else {
            return;
        };
        let tally = tallies.entry(name.to_string()).or_insert_with(|| Tally {
            uid: String::new(),
            accesses: PermitAccesses::default(),
        });
        if tally.uid != uid {
            // A permit counted for the first time, or deleted and made again: start from its
            // own figures.
            *tally = Tally {
                uid,
                accesses: self.shown(&permit).cloned().unwrap_or_default(),
            };
        }
        let a = &mut tally.accesses;
        if served {
            a.served += 1;
            a.bytes += bytes.unwrap_or(0);
        } else {
            a.refused += 1;
        }
        a.last = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        ));
    }

    /// This channel's counts as the permit's status shows them.
    fn shown<'p>(&self, permit: &'p DataPermit) -> Option<&'p PermitAccesses> {
        let accesses = permit.status.as_ref()?.accesses.as_ref()?;
        match self.channel {
            Channel::Api => accesses.api.as_ref(),
            Channel::Sftp => accesses.sftp.as_ref(),
        }
    }

    /// Writes each counted permit's figures to its status where they differ from what the
    /// status shows; forgets permits that are gone.
    async fn flush(&self, api: &Api<DataPermit>) {
        let counted: Vec<(String, Tally)> = match self.tallies.lock() {
            Ok(t) => t.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => return,
        };
        for (name, tally) in counted {
            let current = self.permit(&name);
            let Some(permit) = current.filter(|p| p.metadata.uid.as_deref() == Some(&tally.uid))
            else {
                if let Ok(mut t) = self.tallies.lock() {
                    t.remove(&name);
                }
                continue;
            };
            if self.shown(&permit) == Some(&tally.accesses) {
                continue;
            }
            let patch = json!({
                "apiVersion": "vardhub.io/v1alpha1",
                "kind": "DataPermit",
                "status": { "accesses": { self.channel.key(): tally.accesses } },
            });
            let params = kube::api::PatchParams::apply(self.channel.field_manager()).force();
            if let Err(e) = api
                .patch_status(&name, &params, &kube::api::Patch::Apply(&patch))
                .await
            {
                tracing::warn!(error = %e, permit = %name, "could not write the permit's access counts");
            }
        }
    }

    /// Writes the counts every [`FLUSH_INTERVAL`], in the background.
    pub fn keep_counts(&self, api: Api<DataPermit>) {
        let flushing = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(FLUSH_INTERVAL).await;
                flushing.flush(&api).await;
            }
        });
    }
}

/// Whether `key` names an object inside a product: no empty, `.` or `..` segment.
pub fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1024
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Where a component finds its credential and its permits.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the hub's workloads and permits.
    pub namespace: String,
    /// The hub.
    pub hub: String,
    /// The hub's purpose-specific bucket.
    pub bucket: String,
    /// OpenBao's address.
    pub openbao_addr: String,
    /// Mount of OpenBao's Kubernetes auth method.
    pub auth_mount: String,
    /// The component's Kubernetes auth role.
    pub role: String,
    /// The ServiceAccount token it logs in with.
    pub token_file: std::path::PathBuf,
    /// Where its S3 credential lives (`<namespace>/<mount>/data/<path>`).
    pub credentials: String,
}

impl Settings {
    /// Logs in to OpenBao as the component; returns its token and an S3 client with its
    /// credential.
    pub async fn login(&self) -> anyhow::Result<(String, aws_sdk_s3::Client)> {
        let (token, issued) = crate::jobs::workload_credential(
            &self.openbao_addr,
            &self.auth_mount,
            &self.role,
            &self.token_file,
            &self.credentials,
        )
        .await?;
        Ok((token, issued.client()))
    }

    /// Follows the permits of the hub's namespace; returns once the first list is in.
    pub async fn follow_permits(
        &self,
        client: kube::Client,
    ) -> anyhow::Result<(Store<DataPermit>, Api<DataPermit>)> {
        let (store, writer) = reflector::store();
        let permits = Api::<DataPermit>::namespaced(client, &self.namespace);
        let follow =
            reflector::reflector(writer, watcher(permits.clone(), watcher::Config::default()))
                .default_backoff()
                .applied_objects()
                .for_each(|_| std::future::ready(()));
        tokio::spawn(follow);
        store.wait_until_ready().await?;
        Ok((store, permits))
    }
}

pub use crate::adapters::until_ok;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_product() {
        assert!(plain_key("hip_fracture.parquet"));
        assert!(plain_key("2026/report.json"));
        for bad in ["", "../other/x", "a/../../b", "a//b", "./a", "a/."] {
            assert!(!plain_key(bad), "{bad}");
        }
    }
}
