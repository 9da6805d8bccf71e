//! S3 storage: buckets with versioning, default encryption, a deny-anonymous policy and,
//! where a zone needs an audit trail, object lock; and credentials limited to prefixes,
//! issued by the S3 server's own STS.
//!
//! Every `ensure_*` call reads first and writes only what differs, and reports what it
//! wrote, so a steady-state reconcile sends no write to the S3 server.

use crate::telemetry::calls;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, ObjectIdentifier, ObjectLockConfiguration,
    ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// What can go wrong talking to the S3 server. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server refused or failed a call.
    #[error("S3 {operation} on {target}: {message}")]
    Call {
        /// The S3 operation.
        operation: &'static str,
        /// The bucket (or the STS session).
        target: String,
        /// The server's message.
        message: String,
    },
    /// A request could not be built.
    #[error("S3 request: {0}")]
    Build(String),
    /// The bucket exists and belongs to another resource, or to no vardhub resource.
    #[error(
        "bucket {bucket} already exists and belongs to {}; the operator does not adopt, change or delete what it did not create",
        owner.as_deref().unwrap_or("no vardhub resource (it has no vardhub.io/owner tag)")
    )]
    NotOurs {
        /// The bucket.
        bucket: String,
        /// Its recorded owner, if any.
        owner: Option<String>,
    },
    /// The record of a bucket's creation could not be written or read.
    #[error("the creation claim of bucket {bucket}: {message}")]
    Claim {
        /// The bucket.
        bucket: String,
        /// What went wrong.
        message: String,
    },
    /// The server kept an object a purge must delete (legal hold, compliance retention, ...).
    #[error(
        "S3 refused to delete object {key} (version {version}) of bucket {bucket}: {code}: {message}; the bucket is kept"
    )]
    Kept {
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
        /// The object's version.
        version: String,
        /// The server's error code, for example `AccessDenied` for a legal hold.
        code: String,
        /// The server's message.
        message: String,
    },
}

fn call_error<E>(operation: &'static str, target: &str, e: E) -> Error
where
    E: std::error::Error + 'static,
{
    Error::Call {
        operation,
        target: target.into(),
        message: DisplayErrorContext(e).to_string(),
    }
}

/// How to reach the S3 server with the operator's own (administrative) credentials.
#[derive(Clone)]
pub struct Settings {
    /// Endpoint URL, for example `https://s3.eu-north-1.amazonaws.com` or a MinIO address.
    pub endpoint: String,
    /// Region of the server.
    pub region: String,
    /// Access key of the operator.
    pub access_key_id: String,
    /// Secret key of the operator.
    pub secret_access_key: String,
    /// Endpoint of the STS that issues the workloads' credentials; `None` is the S3
    /// endpoint itself, where MinIO serves it. On AWS, the regional STS endpoint.
    pub sts_endpoint: Option<String>,
    /// The role the workloads' credentials are issued for (`AssumeRole`); each credential
    /// gets the intersection of this role's rights and a session policy for its prefixes.
    /// MinIO ignores it and uses the operator's own rights instead; on AWS it is a role the
    /// operator may assume, with rights on every vardhub bucket.
    pub role_arn: String,
}

/// The role ARN when none is configured. MinIO accepts any ARN; AWS needs a real one.
pub const DEFAULT_ROLE_ARN: &str = "arn:aws:iam::vardhub:role/tenant";

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// The bucket tag that records which resource a bucket belongs to (`Kind/name`).
pub const OWNER_TAG: &str = "vardhub.io/owner";

/// A bucket as a zone or a node wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketSpec {
    /// Name of the bucket.
    pub name: String,
    /// The resource the bucket belongs to (`Kind/name`), recorded in the bucket's tag
    /// [`OWNER_TAG`] when the bucket is created. An existing bucket with another owner, or
    /// none, is never used.
    pub owner: String,
    /// Days of default retention (object lock, governance mode) for an audit trail.
    pub retention_days: Option<i32>,
}

/// Where the operator writes down that it is about to create a bucket, before it does.
///
/// A creation cut off between `CreateBucket` and the owner tag (the operator killed, the
/// server gone) leaves a bucket with no tag, which by itself is indistinguishable from one
/// somebody else made. [`Storage::ensure_bucket`] finishes such a bucket only when its claim
/// names the same owner, and refuses it otherwise. The operator keeps claims with the
/// custodian's keys in OpenBao (`controller::storage::OpenBaoClaims`).
pub trait CreationClaims: Sync {
    /// Records that `owner` is about to create `bucket`.
    fn claim(
        &self,
        bucket: &str,
        owner: &str,
    ) -> impl std::future::Future<Output = Result<(), Error>> + Send;
    /// The owner that claimed `bucket`, if any.
    fn claimant(
        &self,
        bucket: &str,
    ) -> impl std::future::Future<Output = Result<Option<String>, Error>> + Send;
}

/// Whether a bucket's retention lock is in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Retention {
    /// The zone asks for none.
    NotRequested,
    /// Object lock with this many days of default retention.
    Locked(i32),
    /// Asked for but not possible; the reason says why.
    Unavailable(String),
}

/// What [`Storage::ensure_bucket`] found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketOutcome {
    /// The writes it made, as `operation` names (empty in a steady state).
    pub writes: Vec<&'static str>,
    /// The retention lock.
    pub retention: Retention,
}

/// Temporary credentials issued by the S3 server's STS, limited by a session policy.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IssuedCredentials {
    /// Access key.
    pub access_key_id: String,
    /// Secret key.
    pub secret_access_key: String,
    /// Session token.
    pub session_token: String,
    /// Expiry, RFC 3339.
    pub expiration: String,
    /// The S3 endpoint the credentials are for.
    pub endpoint: String,
    /// The S3 region.
    pub region: String,
    /// SHA-256 of the session policy, so that a changed policy is noticed.
    pub policy_sha256: String,
}

/// An S3 client at `endpoint` acting with `credentials`; path-style addressing, as MinIO and
/// most on-premises servers need.
/// How long to wait for a connection to the S3 server.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long to wait for the first byte of an answer: a hung server fails the call instead of
/// holding the reconcile (or a job) forever; large uploads are not cut short by it.
pub const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long one administrative call of the operator may take, retries included: a hung
/// server fails the step, and the resource says so, well within a reconcile's deadline.
pub const ADMIN_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn timeouts(operation: Option<std::time::Duration>) -> aws_sdk_s3::config::timeout::TimeoutConfig {
    let mut builder = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT);
    if let Some(limit) = operation {
        builder = builder.operation_timeout(limit);
    }
    builder.build()
}

/// Counts every request an S3 or STS client sends (each attempt, retries included) as one
/// call to the S3 server under the running reconcile's controller
/// ([`crate::telemetry::calls`]); an attempt cut off by a timeout counts as unanswered.
#[derive(Debug)]
struct Counted;

/// The attempt in flight, kept in the request's config bag: dropped with the request if it
/// is cut off, which counts it as unanswered.
#[derive(Clone, Debug)]
struct Attempt(std::sync::Arc<std::sync::Mutex<Option<calls::Pending>>>);

impl aws_smithy_types::config_bag::Storable for Attempt {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl aws_sdk_s3::config::Intercept for Counted {
    fn name(&self) -> &'static str {
        "vardhub-counted-calls"
    }

    fn read_before_attempt(
        &self,
        _context: &aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let operation = cfg
            .load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            .map_or("unknown", |m| m.name())
            .to_string();
        let pending = calls::Pending::sent(calls::Server::S3, &operation);
        cfg.interceptor_state()
            .store_put(Attempt(std::sync::Arc::new(std::sync::Mutex::new(Some(
                pending,
            )))));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &aws_sdk_s3::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let pending = cfg.load::<Attempt>().and_then(|a| a.0.lock().ok()?.take());
        if let Some(pending) = pending {
            pending.answered(context.response().map_or(calls::Outcome::Unanswered, |r| {
                calls::Outcome::of_status(r.status().as_u16())
            }));
        }
        Ok(())
    }
}

fn s3_client(
    endpoint: &str,
    region: &str,
    credentials: aws_sdk_s3::config::Credentials,
    operation_timeout: Option<std::time::Duration>,
) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(aws_sdk_s3::config::Region::new(region.to_string()))
        .credentials_provider(credentials)
        .force_path_style(true)
        .timeout_config(timeouts(operation_timeout))
        .interceptor(Counted)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

impl IssuedCredentials {
    /// An S3 client that acts with these credentials.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let credentials = aws_sdk_s3::config::Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            Some(self.session_token.clone()),
            None,
            "issued-by-vardhub",
        );
        s3_client(&self.endpoint, &self.region, credentials, None)
    }
}

impl std::fmt::Debug for IssuedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCredentials")
            .field("expiration", &self.expiration)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The S3 server as the operator administers it.
#[derive(Clone)]
pub struct Storage {
    s3: aws_sdk_s3::Client,
    sts: aws_sdk_sts::Client,
    settings: Settings,
}

impl Storage {
    /// A client with the operator's credentials; path-style addressing, as MinIO and most
    /// on-premises servers need.
    pub fn new(settings: Settings) -> Self {
        let credentials = aws_sdk_s3::config::Credentials::new(
            &settings.access_key_id,
            &settings.secret_access_key,
            None,
            None,
            "vardhub-operator",
        );
        let s3 = s3_client(
            &settings.endpoint,
            &settings.region,
            credentials.clone(),
            Some(ADMIN_CALL_TIMEOUT),
        );
        let sts = aws_sdk_sts::Config::builder()
            .behavior_version_latest()
            .endpoint_url(settings.sts_endpoint.as_ref().unwrap_or(&settings.endpoint))
            .region(aws_sdk_sts::config::Region::new(settings.region.clone()))
            .credentials_provider(credentials)
            .timeout_config(
                aws_sdk_sts::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .operation_timeout(ADMIN_CALL_TIMEOUT)
                    .build(),
            )
            .interceptor(Counted)
            .build();
        Self {
            s3,
            sts: aws_sdk_sts::Client::from_conf(sts),
            settings,
        }
    }

    /// The endpoint workloads use.
    pub fn endpoint(&self) -> &str {
        &self.settings.endpoint
    }

    /// The S3 client with the operator's credentials.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    /// Whether the bucket exists.
    pub async fn bucket_exists(&self, name: &str) -> Result<bool, Error> {
        match self.s3.head_bucket().bucket(name).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(call_error("HeadBucket", name, e)),
        }
    }

    /// The recorded owner of a bucket: `None` when the bucket does not exist, `Some(None)`
    /// when it has no owner tag.
    pub async fn bucket_owner(&self, name: &str) -> Result<Option<Option<String>>, Error> {
        if !self.bucket_exists(name).await? {
            return Ok(None);
        }
        match self.s3.get_bucket_tagging().bucket(name).send().await {
            Ok(out) => Ok(Some(
                out.tag_set()
                    .iter()
                    .find(|t| t.key() == OWNER_TAG)
                    .map(|t| t.value().to_string()),
            )),
            Err(e) if e.code() == Some("NoSuchTagSet") => Ok(Some(None)),
            Err(e) => Err(call_error("GetBucketTagging", name, e)),
        }
    }

    /// Creates the bucket unless it exists, records its owner, and brings versioning, default
    /// encryption (SSE-S3), the deny-anonymous policy and the retention lock to what `spec`
    /// wants. Before it creates the bucket it claims it in `claims`; a bucket without an owner
    /// tag is finished only when its claim names `spec.owner` (a creation of ours that was cut
    /// off). A bucket that exists with another owner, or none and no such claim, is refused
    /// untouched.
    pub async fn ensure_bucket(
        &self,
        spec: &BucketSpec,
        claims: &impl CreationClaims,
    ) -> Result<BucketOutcome, Error> {
        let name = spec.name.as_str();
        let mut writes = Vec::new();
        match self.bucket_owner(name).await? {
            Some(Some(owner)) if owner == spec.owner => {}
            Some(None) if claims.claimant(name).await?.as_deref() == Some(spec.owner.as_str()) => {
                tracing::info!(
                    bucket = name,
                    "finishing a bucket whose creation was cut off"
                );
                self.tag_owner(name, &spec.owner).await?;
                writes.push("PutBucketTagging");
            }
            Some(owner) => {
                return Err(Error::NotOurs {
                    bucket: name.into(),
                    owner,
                });
            }
            None => {
                claims.claim(name, &spec.owner).await?;
                self.s3
                    .create_bucket()
                    .bucket(name)
                    .object_lock_enabled_for_bucket(spec.retention_days.is_some())
                    .send()
                    .await
                    .map_err(|e| call_error("CreateBucket", name, e))?;
                writes.push("CreateBucket");
                self.tag_owner(name, &spec.owner).await?;
                writes.push("PutBucketTagging");
            }
        }

        let versioning = self
            .s3
            .get_bucket_versioning()
            .bucket(name)
            .send()
            .await
            .map_err(|e| call_error("GetBucketVersioning", name, e))?;
        if versioning.status() != Some(&BucketVersioningStatus::Enabled) {
            self.s3
                .put_bucket_versioning()
                .bucket(name)
                .versioning_configuration(
                    VersioningConfiguration::builder()
                        .status(BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .map_err(|e| call_error("PutBucketVersioning", name, e))?;
            writes.push("PutBucketVersioning");
        }

        if !self.has_default_encryption(name).await? {
            let by_default = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .map_err(|e| Error::Build(e.to_string()))?;
            let configuration = ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(by_default)
                        .build(),
                )
                .build()
                .map_err(|e| Error::Build(e.to_string()))?;
            self.s3
                .put_bucket_encryption()
                .bucket(name)
                .server_side_encryption_configuration(configuration)
                .send()
                .await
                .map_err(|e| call_error("PutBucketEncryption", name, e))?;
            writes.push("PutBucketEncryption");
        }

        let wanted = deny_anonymous_policy(name);
        let current = self.bucket_policy(name).await?.map(canonical_policy);
        if current != Some(canonical_policy(wanted.clone())) {
            self.s3
                .put_bucket_policy()
                .bucket(name)
                .policy(wanted.to_string())
                .send()
                .await
                .map_err(|e| call_error("PutBucketPolicy", name, e))?;
            writes.push("PutBucketPolicy");
        }

        let retention = match spec.retention_days {
            None => Retention::NotRequested,
            Some(days) => self.ensure_retention(name, days, &mut writes).await?,
        };
        Ok(BucketOutcome { writes, retention })
    }

    /// Records `owner` in the bucket's [`OWNER_TAG`].
    async fn tag_owner(&self, name: &str, owner: &str) -> Result<(), Error> {
        let tag = Tag::builder()
            .key(OWNER_TAG)
            .value(owner)
            .build()
            .map_err(|e| Error::Build(e.to_string()))?;
        let tagging = Tagging::builder()
            .tag_set(tag)
            .build()
            .map_err(|e| Error::Build(e.to_string()))?;
        self.s3
            .put_bucket_tagging()
            .bucket(name)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| call_error("PutBucketTagging", name, e))?;
        Ok(())
    }

    async fn has_default_encryption(&self, name: &str) -> Result<bool, Error> {
        match self.s3.get_bucket_encryption().bucket(name).send().await {
            Ok(out) => Ok(out
                .server_side_encryption_configuration()
                .map(|c| c.rules())
                .unwrap_or_default()
                .iter()
                .filter_map(|r| r.apply_server_side_encryption_by_default())
                .any(|d| {
                    matches!(
                        d.sse_algorithm(),
                        ServerSideEncryption::Aes256 | ServerSideEncryption::AwsKms
                    )
                })),
            Err(e) if e.code() == Some("ServerSideEncryptionConfigurationNotFoundError") => {
                Ok(false)
            }
            Err(e) => Err(call_error("GetBucketEncryption", name, e)),
        }
    }

    /// The bucket's policy, parsed; `None` when it has none.
    pub async fn bucket_policy(&self, name: &str) -> Result<Option<Value>, Error> {
        match self.s3.get_bucket_policy().bucket(name).send().await {
            Ok(out) => Ok(out.policy().and_then(|p| serde_json::from_str(p).ok())),
            Err(e) if e.code() == Some("NoSuchBucketPolicy") => Ok(None),
            Err(e) => Err(call_error("GetBucketPolicy", name, e)),
        }
    }

    async fn ensure_retention(
        &self,
        name: &str,
        days: i32,
        writes: &mut Vec<&'static str>,
    ) -> Result<Retention, Error> {
        let current = match self
            .s3
            .get_object_lock_configuration()
            .bucket(name)
            .send()
            .await
        {
            Ok(out) => out.object_lock_configuration().cloned(),
            Err(e) if e.code() == Some("ObjectLockConfigurationNotFoundError") => {
                return Ok(Retention::Unavailable(
                    "the bucket was created without object lock, which can only be enabled at creation"
                        .into(),
                ));
            }
            Err(e) if e.code() == Some("NotImplemented") => {
                return Ok(Retention::Unavailable(
                    "the S3 server does not implement object lock".into(),
                ));
            }
            Err(e) => return Err(call_error("GetObjectLockConfiguration", name, e)),
        };
        let current_days = current
            .as_ref()
            .and_then(|c| c.rule())
            .and_then(|r| r.default_retention())
            .and_then(|d| d.days());
        if current_days != Some(days) {
            let configuration = ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Governance)
                                .days(days)
                                .build(),
                        )
                        .build(),
                )
                .build();
            self.s3
                .put_object_lock_configuration()
                .bucket(name)
                .object_lock_configuration(configuration)
                .send()
                .await
                .map_err(|e| call_error("PutObjectLockConfiguration", name, e))?;
            writes.push("PutObjectLockConfiguration");
        }
        Ok(Retention::Locked(days))
    }

    /// Whether any object version (current or not) remains in the bucket. An absent bucket
    /// holds nothing.
    pub async fn holds_objects(&self, name: &str) -> Result<bool, Error> {
        if !self.bucket_exists(name).await? {
            return Ok(false);
        }
        let out = self
            .s3
            .list_object_versions()
            .bucket(name)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| call_error("ListObjectVersions", name, e))?;
        Ok(!out.versions().is_empty() || !out.delete_markers().is_empty())
    }

    /// The row count a Parquet object carries in its metadata (`x-amz-meta-rows`), if any.
    pub async fn object_rows(&self, name: &str, key: &str) -> Result<Option<i64>, Error> {
        let head = self
            .s3
            .head_object()
            .bucket(name)
            .key(key)
            .send()
            .await
            .map_err(|e| call_error("HeadObject", name, e))?;
        Ok(head
            .metadata()
            .and_then(|m| m.get(crate::flow::store::ROWS_METADATA))
            .and_then(|v| v.parse().ok()))
    }

    /// The current objects under `prefix`: key, size and when each was written, all pages.
    pub async fn list_objects(
        &self,
        name: &str,
        prefix: &str,
    ) -> Result<Vec<(String, i64, Option<k8s_openapi::jiff::Timestamp>)>, Error> {
        let mut out = Vec::new();
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(name)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("ListObjectsV2", name, e))?;
            for o in page.contents() {
                let modified = o.last_modified().and_then(|t| {
                    k8s_openapi::jiff::Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()
                });
                out.push((
                    o.key().unwrap_or_default().to_owned(),
                    o.size().unwrap_or(0),
                    modified,
                ));
            }
        }
        Ok(out)
    }

    /// Deletes every object version and the bucket itself, bypassing governance retention.
    /// Only for a resource whose deletion policy asks for it with every confirmation. An object
    /// the server keeps (a legal hold, compliance-mode retention) stops the purge with
    /// [`Error::Kept`] naming it, instead of a loop that lists it again forever.
    pub async fn purge_bucket(&self, name: &str) -> Result<(), Error> {
        if !self.bucket_exists(name).await? {
            return Ok(());
        }
        loop {
            let out = self
                .s3
                .list_object_versions()
                .bucket(name)
                .max_keys(1000)
                .send()
                .await
                .map_err(|e| call_error("ListObjectVersions", name, e))?;
            let mut ids = Vec::new();
            for (key, version) in out
                .versions()
                .iter()
                .map(|v| (v.key(), v.version_id()))
                .chain(
                    out.delete_markers()
                        .iter()
                        .map(|m| (m.key(), m.version_id())),
                )
            {
                let id = ObjectIdentifier::builder()
                    .set_key(key.map(str::to_string))
                    .set_version_id(version.map(str::to_string))
                    .build()
                    .map_err(|e| Error::Build(e.to_string()))?;
                ids.push(id);
            }
            if ids.is_empty() {
                break;
            }
            let delete = aws_sdk_s3::types::Delete::builder()
                .set_objects(Some(ids))
                .quiet(true)
                .build()
                .map_err(|e| Error::Build(e.to_string()))?;
            let deleted = self
                .s3
                .delete_objects()
                .bucket(name)
                .bypass_governance_retention(true)
                .delete(delete)
                .send()
                .await
                .map_err(|e| call_error("DeleteObjects", name, e))?;
            // Quiet mode answers with the objects it could not delete, and only those.
            if let Some(kept) = deleted.errors().first() {
                return Err(Error::Kept {
                    bucket: name.to_string(),
                    key: kept.key().unwrap_or_default().to_string(),
                    version: kept.version_id().unwrap_or_default().to_string(),
                    code: kept.code().unwrap_or_default().to_string(),
                    message: kept.message().unwrap_or_default().to_string(),
                });
            }
        }
        self.s3
            .delete_bucket()
            .bucket(name)
            .send()
            .await
            .map_err(|e| call_error("DeleteBucket", name, e))?;
        Ok(())
    }

    /// Issues temporary credentials through the S3 server's STS (`AssumeRole`) whose rights
    /// are the intersection of the operator's and `policy`, valid for `duration_seconds`.
    pub async fn issue_credentials(
        &self,
        session: &str,
        policy: &Value,
        duration_seconds: i32,
    ) -> Result<IssuedCredentials, Error> {
        let out = self
            .sts
            .assume_role()
            .role_arn(&self.settings.role_arn)
            .role_session_name(session)
            .policy(policy.to_string())
            .duration_seconds(duration_seconds)
            .send()
            .await
            .map_err(|e| call_error("AssumeRole", session, e))?;
        let c = out
            .credentials()
            .ok_or_else(|| Error::Build("AssumeRole answered without credentials".into()))?;
        Ok(IssuedCredentials {
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: c.secret_access_key().to_string(),
            session_token: c.session_token().to_string(),
            expiration: c
                .expiration()
                .fmt(aws_sdk_sts::primitives::DateTimeFormat::DateTime)
                .map_err(|e| Error::Build(e.to_string()))?,
            endpoint: self.settings.endpoint.clone(),
            region: self.settings.region.clone(),
            policy_sha256: policy_digest(policy),
        })
    }
}

/// A policy with every list sorted: servers may return a policy's lists (resources,
/// actions) in another order than they were written, which is no change.
pub fn canonical_policy(policy: Value) -> Value {
    match policy {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.into_iter().map(canonical_policy).collect();
            items.sort_by_key(|v| v.to_string());
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, canonical_policy(v)))
                .collect(),
        ),
        other => other,
    }
}

/// SHA-256 of a policy's JSON text, hex.
pub fn policy_digest(policy: &Value) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(policy.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bucket policy every vardhub bucket carries: anonymous requests are denied everything,
/// even where another statement or an ACL would make the bucket public. Reconciling it
/// reverts anyone who replaces it. The deny is conditioned on the principal type, so that it
/// binds only anonymous callers on every S3 server: a deny of every principal without the
/// condition would lock out the operator and the workloads on AWS S3, where bucket policies
/// bind authenticated callers too. Condition keys are case-insensitive on AWS; MinIO knows
/// only the lower-case spelling.
pub fn deny_anonymous_policy(bucket: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyAnonymous",
            "Effect": "Deny",
            "Principal": {"AWS": ["*"]},
            "Action": ["s3:*"],
            "Resource": [format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")],
            "Condition": {"StringEquals": {"aws:principaltype": ["Anonymous"]}},
        }],
    })
}

/// What a grant allows on its objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Read and list.
    Read,
    /// Write only (a landing drop box).
    Write,
    /// Read, list and write.
    ReadWrite,
}

/// Access to a bucket, or to one prefix in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Grant {
    /// The bucket.
    pub bucket: String,
    /// The prefix (without trailing slash); `None` is the whole bucket.
    pub prefix: Option<String>,
    /// What is allowed.
    pub access: Access,
}

/// The session policy of a set of grants: object access under exactly the granted prefixes,
/// listing restricted to them, nothing else (no bucket administration, no other bucket).
pub fn session_policy(grants: &[Grant]) -> Value {
    let mut statements = Vec::new();
    for g in grants {
        let objects = match &g.prefix {
            Some(p) => format!("arn:aws:s3:::{}/{p}/*", g.bucket),
            None => format!("arn:aws:s3:::{}/*", g.bucket),
        };
        let mut actions = Vec::new();
        if matches!(g.access, Access::Read | Access::ReadWrite) {
            actions.extend(["s3:GetObject", "s3:GetObjectVersion"]);
        }
        if matches!(g.access, Access::Write | Access::ReadWrite) {
            actions.extend(["s3:PutObject", "s3:AbortMultipartUpload"]);
        }
        statements.push(json!({
            "Effect": "Allow",
            "Action": actions,
            "Resource": [objects],
        }));
        if matches!(g.access, Access::Read | Access::ReadWrite) {
            let mut list = json!({
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [format!("arn:aws:s3:::{}", g.bucket)],
            });
            if let Some(p) = &g.prefix {
                list["Condition"] = json!({"StringLike": {"s3:prefix": [format!("{p}/*")]}});
            }
            statements.push(list);
        }
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_policy_names_only_the_granted_prefixes() {
        let policy = session_policy(&[
            Grant {
                bucket: "hub-landing".into(),
                prefix: Some("01".into()),
                access: Access::Write,
            },
            Grant {
                bucket: "node-a".into(),
                prefix: None,
                access: Access::ReadWrite,
            },
        ]);
        let text = policy.to_string();
        assert!(text.contains("arn:aws:s3:::hub-landing/01/*"));
        assert!(text.contains("arn:aws:s3:::node-a/*"));
        assert!(!text.contains("s3:*"), "no wildcard actions");
        let statements = policy["Statement"].as_array().expect("statements");
        assert_eq!(
            statements[0]["Action"],
            json!(["s3:PutObject", "s3:AbortMultipartUpload"])
        );
        assert_eq!(statements.len(), 3, "write-only grants get no listing");
    }

    #[test]
    fn credentials_never_show_their_secrets_in_debug() {
        let c = IssuedCredentials {
            access_key_id: "AKIDSECRET".into(),
            secret_access_key: "SECRETKEY".into(),
            session_token: "TOKEN".into(),
            expiration: "2026-01-01T00:00:00Z".into(),
            endpoint: "http://s3".into(),
            region: "eu-north-1".into(),
            policy_sha256: "00".into(),
        };
        let shown = format!("{c:?}");
        assert!(!shown.contains("SECRET") && !shown.contains("TOKEN"));
    }
}
