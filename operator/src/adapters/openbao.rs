//! OpenBao Transit: the keys behind pseudonyms.
//!
//! Every `ensure_*` call is idempotent and reports whether it wrote anything, so a
//! steady-state reconcile sends no write to OpenBao. Batch HMAC goes through an endpoint of
//! our own, because `vaultrs` has no `batch_input` for HMAC; it is sent through
//! `vaultrs::api::exec_with_result`, which keeps the client's token and namespace.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustify_derive::Endpoint;
use serde::{Deserialize, Serialize};
use vaultrs::api::transit::requests::{CreateKeyRequest, ExportKeyType, ExportVersion};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;
use zeroize::Zeroizing;

use crate::telemetry::calls;

/// Most items one HMAC request may carry: OpenBao's listener refuses a request with more
/// than 1000 JSON strings by default, and each item costs two.
pub const MAX_BATCH: usize = 499;

/// What can go wrong talking to OpenBao. Messages never contain key material or inputs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client could not be set up.
    #[error("OpenBao client: {0}")]
    Client(String),
    /// OpenBao answered with an error or could not be reached.
    #[error("OpenBao request failed: {}", describe(.0))]
    Request(#[from] ClientError),
    /// A key exists with settings that cannot be changed any more.
    #[error("transit key {key} exists with exportable={actual}; it cannot be changed to {wanted}")]
    KeyMismatch {
        /// The key.
        key: String,
        /// What the key has.
        actual: bool,
        /// What was asked for.
        wanted: bool,
    },
    /// OpenBao's answer did not have the expected shape.
    #[error("unexpected answer from OpenBao: {0}")]
    Unexpected(String),
    /// An OpenBao namespace exists that another resource, or no vardhub resource, created.
    #[error("OpenBao namespace {namespace} belongs to {}, not to this resource", owner.as_deref().unwrap_or("no vardhub resource"))]
    NotOurs {
        /// The namespace.
        namespace: String,
        /// The owner its custom metadata records, if any.
        owner: Option<String>,
    },
    /// An OpenBao policy or Kubernetes auth role exists that another resource, or no vardhub
    /// resource, created.
    #[error("OpenBao policy and role {name} belong to {}, not to this resource", owner.as_deref().unwrap_or("no vardhub resource"))]
    AccessNotOurs {
        /// The name of the policy and the role.
        name: String,
        /// The owner the claim in the custodian's namespace records, if any.
        owner: Option<String>,
    },
    /// A pseudonymisation service's mounts, policies or roles exist that another resource, or
    /// no vardhub resource, created.
    #[error("OpenBao mounts, policies and roles of {mount} belong to {}, not to this resource", owner.as_deref().unwrap_or("no vardhub resource"))]
    KeysNotOurs {
        /// The service's Transit mount, which names the set.
        mount: String,
        /// The owner the record in the operator's registry namespace records, if any.
        owner: Option<String>,
    },
}

/// What OpenBao said: for an error answer, its status and its own messages (such as
/// "Vault is sealed"), which the client's message leaves out.
fn describe(e: &ClientError) -> String {
    match e {
        ClientError::APIError { code, errors } if !errors.is_empty() => {
            format!("status {code}: {}", errors.join("; "))
        }
        other => other.to_string(),
    }
}

/// Sends one request (`call`, made by `vaultrs`) and counts it as `operation` under the
/// running reconcile's controller ([`calls`]).
async fn sent<T>(
    operation: &'static str,
    call: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    let pending = calls::Pending::sent(calls::Server::OpenBao, operation);
    let result = call.await;
    pending.answered(match &result {
        Ok(_) => calls::Outcome::Ok,
        Err(ClientError::APIError { code, .. }) => calls::Outcome::of_status(*code),
        Err(_) => calls::Outcome::Unanswered,
    });
    result
}

/// The longest any one OpenBao call may take: a hung server fails the call (and the reconcile
/// reports it) instead of holding it forever.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A client of OpenBao at `address`, with a token or (to log in) without.
fn client(address: &str, token: Option<&str>) -> Result<VaultClient, Error> {
    client_in(address, token, None)
}

/// A client of OpenBao at `address` working inside `namespace` (the root namespace if none).
fn client_in(
    address: &str,
    token: Option<&str>,
    namespace: Option<&str>,
) -> Result<VaultClient, Error> {
    let mut settings = VaultClientSettingsBuilder::default();
    settings.address(address);
    settings.namespace(namespace.map(str::to_string));
    settings.timeout(Some(CALL_TIMEOUT));
    if let Some(token) = token {
        settings.token(token);
    }
    let settings = settings.build().map_err(|e| Error::Client(e.to_string()))?;
    VaultClient::new(settings).map_err(|e| Error::Client(e.to_string()))
}

/// A client like `base` (same address, settings and connection pool) with `token`, working
/// inside `namespace` (the root namespace if none).
fn sharing_connections(base: &VaultClient, token: &str, namespace: Option<&str>) -> VaultClient {
    let mut settings = base.settings.clone();
    settings.token = token.to_string();
    settings.namespace = namespace.map(str::to_string);
    VaultClient {
        http: rustify::clients::reqwest::Client::new(&base.http.base, base.http.http.clone()),
        middle: vaultrs::api::EndpointMiddleware {
            token: settings.token.clone(),
            version: base.middle.version.clone(),
            wrap: None,
            namespace: settings.namespace.clone(),
        },
        settings,
    }
}

/// A Transit secrets engine at one mount path.
#[derive(Clone)]
pub struct Transit {
    client: std::sync::Arc<VaultClient>,
    mount: String,
}

/// The state of a Transit key after [`Transit::ensure_key`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    /// The newest key version.
    pub latest_version: u64,
    /// Whether this call created the key.
    pub created: bool,
}

impl Transit {
    /// A Transit client at `mount`, authenticated with `token`.
    pub fn new(address: &str, token: &str, mount: &str) -> Result<Self, Error> {
        let client = client(address, Some(token))?;
        Ok(Self {
            client: std::sync::Arc::new(client),
            mount: mount.trim_matches('/').to_string(),
        })
    }

    /// The mount path.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// Enables the Transit engine at the mount unless it is there; returns whether it wrote.
    pub async fn ensure_mount(&self) -> Result<bool, Error> {
        ensure_engine(self.client.as_ref(), &self.mount, "transit", None).await
    }

    /// Creates the key unless it exists. Keys are created with deletion not allowed (the
    /// Transit default). `exportable` lets the pseudonymisation service hold the HMAC key in
    /// memory (local mode); it cannot be undone, so an existing key with another setting is an
    /// error rather than a silent change.
    pub async fn ensure_key(&self, name: &str, exportable: bool) -> Result<KeyState, Error> {
        self.ensure_key_with(
            name,
            |key| {
                (key.exportable == exportable)
                    .then_some(())
                    .ok_or(Error::KeyMismatch {
                        key: name.into(),
                        actual: key.exportable,
                        wanted: exportable,
                    })
            },
            |request| {
                request.exportable(exportable);
            },
        )
        .await
    }

    /// Creates an AES-256-GCM key for a custodian's own encryption unless it exists, and keeps
    /// its automatic rotation period at `rotate_days` (none: no automatic rotation). Never
    /// exportable, never deletable. Returns whether it wrote.
    pub async fn ensure_custodian_key(
        &self,
        name: &str,
        rotate_days: Option<i32>,
    ) -> Result<bool, Error> {
        let period = rotate_days.map_or(0, |d| i64::from(d) * 86_400);
        let state = self
            .ensure_key_with(
                name,
                |_| Ok(()),
                |request| {
                    request.auto_rotate_period(format!("{period}s"));
                },
            )
            .await?;
        if state.created {
            return Ok(true);
        }
        let current = sent(
            "transit.key.read",
            vaultrs::api::exec_with_result(
                self.client.as_ref(),
                ReadKeyRaw {
                    mount: self.mount.clone(),
                    name: name.into(),
                },
            ),
        )
        .await?;
        if current.auto_rotate_period == period {
            return Ok(false);
        }
        let mut update = vaultrs::api::transit::requests::UpdateKeyConfigurationRequest::builder();
        update.auto_rotate_period(format!("{period}s"));
        sent(
            "transit.key.update",
            vaultrs::transit::key::update(
                self.client.as_ref(),
                &self.mount,
                name,
                Some(&mut update),
            ),
        )
        .await?;
        Ok(true)
    }

    /// Creates a key for reversible pseudonyms unless it exists: AES-256-GCM with key
    /// derivation and convergent encryption, so that the same identifier in the same context
    /// always gives the same ciphertext. Never exportable.
    pub async fn ensure_convergent_key(&self, name: &str) -> Result<KeyState, Error> {
        self.ensure_key_with(
            name,
            |key| {
                (key.derived && !key.exportable)
                    .then_some(())
                    .ok_or_else(|| {
                        Error::Unexpected(format!("key {name} exists but is not a convergent key"))
                    })
            },
            |request| {
                request.derived(true).convergent_encryption(true);
            },
        )
        .await
    }

    /// Reads the key; an existing one must pass `check`, a missing one is created with the
    /// settings `configure` makes.
    async fn ensure_key_with(
        &self,
        name: &str,
        check: impl Fn(&vaultrs::api::transit::responses::ReadKeyResponse) -> Result<(), Error>,
        configure: impl FnOnce(&mut vaultrs::api::transit::requests::CreateKeyRequestBuilder),
    ) -> Result<KeyState, Error> {
        let read = sent(
            "transit.key.read",
            vaultrs::transit::key::read(self.client.as_ref(), &self.mount, name),
        )
        .await;
        let created = match read {
            Ok(key) => {
                check(&key)?;
                return Ok(KeyState {
                    latest_version: latest_version(&key.keys)?,
                    created: false,
                });
            }
            Err(ClientError::APIError { code: 404, .. }) => {
                let mut request = CreateKeyRequest::builder();
                configure(&mut request);
                sent(
                    "transit.key.create",
                    vaultrs::transit::key::create(
                        self.client.as_ref(),
                        &self.mount,
                        name,
                        Some(&mut request),
                    ),
                )
                .await?;
                sent(
                    "transit.key.read",
                    vaultrs::transit::key::read(self.client.as_ref(), &self.mount, name),
                )
                .await?
            }
            Err(e) => return Err(e.into()),
        };
        Ok(KeyState {
            latest_version: latest_version(&created.keys)?,
            created: true,
        })
    }

    /// Convergent encryption of every input under `context`, in order, with the key at
    /// `version`: the reversible pseudonyms.
    pub async fn encrypt_batch(
        &self,
        name: &str,
        version: u64,
        context: &[u8],
        inputs: &[&[u8]],
    ) -> Result<Vec<String>, Error> {
        let context = STANDARD.encode(context);
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(MAX_BATCH / 2) {
            let request = EncryptBatchRequest {
                mount: self.mount.clone(),
                name: name.to_string(),
                key_version: version,
                batch_input: chunk
                    .iter()
                    .map(|i| CryptItem {
                        plaintext: Some(STANDARD.encode(i)),
                        ciphertext: None,
                        context: context.clone(),
                    })
                    .collect(),
            };
            let response = sent(
                "transit.encrypt",
                vaultrs::api::exec_with_result(self.client.as_ref(), request),
            )
            .await?;
            out.extend(collect(response.batch_results, chunk.len(), |r| {
                r.ciphertext
            })?);
        }
        Ok(out)
    }

    /// Decrypts reversible pseudonyms made under `context`; the caller's token must carry a
    /// policy that allows `decrypt` on the key.
    pub async fn decrypt_batch(
        &self,
        name: &str,
        context: &[u8],
        pseudonyms: &[&str],
    ) -> Result<Vec<Vec<u8>>, Error> {
        let context = STANDARD.encode(context);
        let mut out = Vec::with_capacity(pseudonyms.len());
        for chunk in pseudonyms.chunks(MAX_BATCH / 2) {
            let request = DecryptBatchRequest {
                mount: self.mount.clone(),
                name: name.to_string(),
                batch_input: chunk
                    .iter()
                    .map(|c| CryptItem {
                        plaintext: None,
                        ciphertext: Some(c.to_string()),
                        context: context.clone(),
                    })
                    .collect(),
            };
            let response = sent(
                "transit.decrypt",
                vaultrs::api::exec_with_result(self.client.as_ref(), request),
            )
            .await?;
            for plaintext in collect(response.batch_results, chunk.len(), |r| r.plaintext)? {
                out.push(
                    STANDARD
                        .decode(plaintext)
                        .map_err(|_| Error::Unexpected("plaintext is not base64".into()))?,
                );
            }
        }
        Ok(out)
    }

    /// Who holds this client's token: its display name, for audit records.
    pub async fn caller(&self) -> Result<String, Error> {
        Ok(sent(
            "token.lookup",
            vaultrs::token::lookup_self(self.client.as_ref()),
        )
        .await?
        .display_name)
    }

    /// Rotates the key: a new version becomes the latest. Pinned versions keep working.
    pub async fn rotate(&self, name: &str) -> Result<(), Error> {
        Ok(sent(
            "transit.key.rotate",
            vaultrs::transit::key::rotate(self.client.as_ref(), &self.mount, name),
        )
        .await?)
    }

    /// HMAC-SHA256 of every input with the key at `version`, in order, in requests of at most
    /// [`MAX_BATCH`] items. Outputs have Transit's form `vault:v<version>:<base64>`.
    pub async fn hmac_batch(
        &self,
        name: &str,
        version: u64,
        inputs: &[&[u8]],
    ) -> Result<Vec<String>, Error> {
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in inputs.chunks(MAX_BATCH) {
            let request = HmacBatchRequest {
                mount: self.mount.clone(),
                name: name.to_string(),
                key_version: version,
                batch_input: chunk
                    .iter()
                    .map(|i| BatchItem {
                        input: STANDARD.encode(i),
                    })
                    .collect(),
            };
            let response = sent(
                "transit.hmac",
                vaultrs::api::exec_with_result(self.client.as_ref(), request),
            )
            .await?;
            if response.batch_results.len() != chunk.len() {
                return Err(Error::Unexpected(
                    "batch answer has the wrong length".into(),
                ));
            }
            for (i, item) in response.batch_results.into_iter().enumerate() {
                match (item.hmac, item.error) {
                    (Some(h), None) => out.push(h),
                    (_, e) => {
                        return Err(Error::Unexpected(format!(
                            "item {i} of a batch failed: {}",
                            e.unwrap_or_default()
                        )));
                    }
                }
            }
        }
        Ok(out)
    }

    /// HMAC of one input (one request per item: the slow path, kept for comparison).
    pub async fn hmac_one(&self, name: &str, version: u64, input: &[u8]) -> Result<String, Error> {
        let mut out = self.hmac_batch(name, version, &[input]).await?;
        out.pop()
            .ok_or_else(|| Error::Unexpected("empty answer".into()))
    }

    /// The HMAC key of one version, for in-process HMAC. Only an exportable key can be read,
    /// and only with a policy that allows `export/hmac-key`.
    pub async fn export_hmac_key(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let exported = sent(
            "transit.key.export",
            vaultrs::transit::key::export(
                self.client.as_ref(),
                &self.mount,
                name,
                ExportKeyType::HmacKey,
                ExportVersion::Version(version),
            ),
        )
        .await?;
        let encoded = Zeroizing::new(
            exported
                .keys
                .get(&version.to_string())
                .cloned()
                .ok_or_else(|| Error::Unexpected("export has no such version".into()))?,
        );
        STANDARD
            .decode(encoded.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| Error::Unexpected("exported key is not base64".into()))
    }
}

fn latest_version(keys: &vaultrs::api::transit::responses::ReadKeyData) -> Result<u64, Error> {
    match keys {
        vaultrs::api::transit::responses::ReadKeyData::Symmetric(versions) => versions
            .keys()
            .filter_map(|v| v.parse::<u64>().ok())
            .max()
            .ok_or_else(|| Error::Unexpected("key has no versions".into())),
        vaultrs::api::transit::responses::ReadKeyData::Asymmetric(_) => {
            Err(Error::Unexpected("expected a symmetric key".into()))
        }
    }
}

fn collect(
    results: Vec<CryptResult>,
    expected: usize,
    field: impl Fn(CryptResult) -> Option<String>,
) -> Result<Vec<String>, Error> {
    if results.len() != expected {
        return Err(Error::Unexpected(
            "batch answer has the wrong length".into(),
        ));
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r.error.clone().filter(|e| !e.is_empty()) {
            Some(e) => Err(Error::Unexpected(format!(
                "item {i} of a batch failed: {e}"
            ))),
            None => field(r)
                .ok_or_else(|| Error::Unexpected(format!("item {i} of a batch has no result"))),
        })
        .collect()
}

/// `POST <mount>/encrypt/<name>` with `batch_input`.
#[derive(Debug, Endpoint, Serialize)]
#[endpoint(
    path = "{self.mount}/encrypt/{self.name}",
    method = "POST",
    response = "CryptBatchResponse"
)]
struct EncryptBatchRequest {
    #[endpoint(skip)]
    mount: String,
    #[endpoint(skip)]
    name: String,
    key_version: u64,
    batch_input: Vec<CryptItem>,
}

/// `POST <mount>/decrypt/<name>` with `batch_input`.
#[derive(Debug, Endpoint, Serialize)]
#[endpoint(
    path = "{self.mount}/decrypt/{self.name}",
    method = "POST",
    response = "CryptBatchResponse"
)]
struct DecryptBatchRequest {
    #[endpoint(skip)]
    mount: String,
    #[endpoint(skip)]
    name: String,
    batch_input: Vec<CryptItem>,
}

#[derive(Debug, Serialize)]
struct CryptItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    plaintext: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext: Option<String>,
    context: String,
}

#[derive(Debug, Deserialize)]
struct CryptBatchResponse {
    batch_results: Vec<CryptResult>,
}

#[derive(Debug, Deserialize)]
struct CryptResult {
    #[serde(default)]
    ciphertext: Option<String>,
    #[serde(default)]
    plaintext: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `POST <mount>/hmac/<name>` with `batch_input`.
#[derive(Debug, Endpoint, Serialize)]
#[endpoint(
    path = "{self.mount}/hmac/{self.name}",
    method = "POST",
    response = "HmacBatchResponse"
)]
struct HmacBatchRequest {
    #[endpoint(skip)]
    mount: String,
    #[endpoint(skip)]
    name: String,
    key_version: u64,
    batch_input: Vec<BatchItem>,
}

#[derive(Debug, Serialize)]
struct BatchItem {
    input: String,
}

#[derive(Debug, Deserialize)]
struct HmacBatchResponse {
    batch_results: Vec<BatchResult>,
}

#[derive(Debug, Deserialize)]
struct BatchResult {
    hmac: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// `GET <mount>/keys/<name>`, for the fields `vaultrs`' key response lacks.
#[derive(Debug, Endpoint)]
#[endpoint(path = "{self.mount}/keys/{self.name}", response = "RawKey")]
struct ReadKeyRaw {
    #[endpoint(skip)]
    mount: String,
    #[endpoint(skip)]
    name: String,
}

#[derive(Debug, Deserialize)]
struct RawKey {
    #[serde(default)]
    auto_rotate_period: i64,
}

/// `GET sys/namespaces/<name>`: `vaultrs` has no call for OpenBao namespaces.
#[derive(Debug, Endpoint)]
#[endpoint(path = "sys/namespaces/{self.name}", response = "serde_json::Value")]
struct ReadNamespace {
    #[endpoint(skip)]
    name: String,
}

/// `POST sys/namespaces/<name>`, recording its owner in its custom metadata.
#[derive(Debug, Endpoint, Serialize)]
#[endpoint(
    path = "sys/namespaces/{self.name}",
    method = "POST",
    response = "serde_json::Value"
)]
struct CreateNamespace {
    #[endpoint(skip)]
    name: String,
    custom_metadata: std::collections::BTreeMap<String, String>,
}

/// The custom-metadata key of an OpenBao namespace that records which resource created it
/// (`Kind/name`), as the tag of the same name does on a bucket.
pub const OWNER_METADATA: &str = "vardhub.io/owner";

/// `DELETE sys/namespaces/<name>`.
#[derive(Debug, Endpoint)]
#[endpoint(path = "sys/namespaces/{self.name}", method = "DELETE")]
struct DeleteNamespace {
    #[endpoint(skip)]
    name: String,
}

/// Logs in with a Kubernetes ServiceAccount token through the Kubernetes auth method at
/// `auth_mount`; returns the OpenBao token and its time to live in seconds.
pub async fn login_kubernetes(
    address: &str,
    auth_mount: &str,
    role: &str,
    jwt: &str,
) -> Result<(String, u64), Error> {
    let client = client(address, None)?;
    let auth = sent(
        "auth.login",
        vaultrs::auth::kubernetes::login(&client, auth_mount, role, jwt.trim()),
    )
    .await?;
    Ok((auth.client_token, auth.lease_duration))
}

/// Whether OpenBao answers, is initialised and unsealed (`/v1/sys/health` answers 200 then).
/// Called directly because `vaultrs`' health call cannot parse OpenBao's answer.
pub async fn healthy(http: &reqwest::Client, address: &str) -> bool {
    let url = format!("{}/v1/sys/health", address.trim_end_matches('/'));
    matches!(http.get(url).timeout(std::time::Duration::from_secs(2)).send().await, Ok(r) if r.status().is_success())
}

/// OpenBao administration the operator needs: policies and Kubernetes auth roles. Clones
/// share one session, whose token [`Admin::set_token`] replaces (a new login before the old
/// token expires).
#[derive(Clone)]
pub struct Admin {
    session: std::sync::Arc<std::sync::RwLock<Session>>,
    address: String,
    namespace: Option<String>,
}

struct Session {
    client: std::sync::Arc<VaultClient>,
    token: Zeroizing<String>,
}

/// Where a process's OpenBao token comes from. Its `Debug` never shows a token.
#[derive(Clone)]
pub enum Auth {
    /// A token given directly (development, or a token issued by an administrator).
    Token(String),
    /// The Kubernetes auth method with the pod's ServiceAccount token, read from `jwt_path`
    /// at every login so that rotated projected tokens are picked up.
    Kubernetes {
        /// Mount of the auth method, usually `kubernetes`.
        mount: String,
        /// The OpenBao role.
        role: String,
        /// Path of the ServiceAccount token.
        jwt_path: std::path::PathBuf,
    },
}

/// A login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// OpenBao refused or could not be reached.
    #[error(transparent)]
    OpenBao(#[from] Error),
    /// The ServiceAccount token could not be read.
    #[error("reading the ServiceAccount token: {0}")]
    Token(#[from] std::io::Error),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Token(..)"),
            Auth::Kubernetes { mount, role, .. } => f
                .debug_struct("Kubernetes")
                .field("mount", mount)
                .field("role", role)
                .finish_non_exhaustive(),
        }
    }
}

impl Auth {
    /// Logs in (or takes the given token); returns the token and its time to live in
    /// seconds (0: the token is not renewed by logging in again).
    pub async fn login(&self, address: &str) -> Result<(String, u64), LoginError> {
        match self {
            Auth::Token(t) => Ok((t.clone(), 0)),
            Auth::Kubernetes {
                mount,
                role,
                jwt_path,
            } => {
                let jwt = Zeroizing::new(tokio::fs::read_to_string(jwt_path).await?);
                Ok(login_kubernetes(address, mount, role, &jwt).await?)
            }
        }
    }
}

/// A Kubernetes auth role: which ServiceAccounts log in, with which policies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubernetesRole {
    /// ServiceAccount names allowed to log in.
    pub service_accounts: Vec<String>,
    /// Their namespaces.
    pub namespaces: Vec<String>,
    /// Policies of the issued token.
    pub policies: Vec<String>,
    /// Time to live of the issued token, in seconds.
    pub ttl_seconds: u64,
    /// The audience the ServiceAccount token must carry; `None` is the API server's own.
    pub audience: Option<String>,
    /// Issue batch tokens, which OpenBao does not store: for a role whose logins only
    /// confirm a token and whose issued token is never used.
    pub batch_tokens: bool,
}

impl Admin {
    /// An administrative client authenticated with `token`.
    pub fn new(address: &str, token: &str) -> Result<Self, Error> {
        Self::with(address, token, None)
    }

    fn with(address: &str, token: &str, namespace: Option<&str>) -> Result<Self, Error> {
        let session = Session {
            client: std::sync::Arc::new(client_in(address, Some(token), namespace)?),
            token: Zeroizing::new(token.to_string()),
        };
        Ok(Self {
            session: std::sync::Arc::new(std::sync::RwLock::new(session)),
            address: address.into(),
            namespace: namespace.map(str::to_string),
        })
    }

    /// Replaces the token of this administrator and of every clone of it.
    pub fn set_token(&self, token: &str) -> Result<(), Error> {
        let session = Session {
            client: std::sync::Arc::new(client_in(
                &self.address,
                Some(token),
                self.namespace.as_deref(),
            )?),
            token: Zeroizing::new(token.to_string()),
        };
        *self
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = session;
        Ok(())
    }

    fn client(&self) -> std::sync::Arc<VaultClient> {
        self.session
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .client
            .clone()
    }

    fn token(&self) -> Zeroizing<String> {
        self.session
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .token
            .clone()
    }

    /// A Transit client at `mount` with the same credentials.
    pub fn transit(&self, mount: &str) -> Result<Transit, Error> {
        Ok(Transit {
            client: std::sync::Arc::new(sharing_connections(
                &self.client(),
                &self.token(),
                self.namespace.as_deref(),
            )),
            mount: mount.trim_matches('/').to_string(),
        })
    }

    /// The same administrator working inside the OpenBao namespace `namespace`, with the
    /// current token (a later [`Admin::set_token`] does not reach it: it is for one pass).
    /// It shares this administrator's connections: a client of its own per namespace would
    /// open (and handshake) new connections for every pass of every resource.
    pub fn in_namespace(&self, namespace: &str) -> Result<Admin, Error> {
        let token = self.token();
        let session = Session {
            client: std::sync::Arc::new(sharing_connections(
                &self.client(),
                &token,
                Some(namespace),
            )),
            token,
        };
        Ok(Self {
            session: std::sync::Arc::new(std::sync::RwLock::new(session)),
            address: self.address.clone(),
            namespace: Some(namespace.to_string()),
        })
    }

    /// A Transit client at `mount` inside the OpenBao namespace `namespace`.
    pub fn transit_in(&self, namespace: &str, mount: &str) -> Result<Transit, Error> {
        Ok(Transit {
            client: self.in_namespace(namespace)?.client(),
            mount: mount.trim_matches('/').to_string(),
        })
    }

    /// Creates the OpenBao namespace unless it exists; returns whether it wrote. Namespaces
    /// give each custodian (a region, the hub) a boundary of its own for keys and mounts.
    pub async fn ensure_namespace(&self, name: &str, owner: &str) -> Result<bool, Error> {
        match self.namespace_owner(name).await? {
            Some(Some(found)) if found == owner => Ok(false),
            Some(found) => Err(Error::NotOurs {
                namespace: name.into(),
                owner: found,
            }),
            None => {
                let create = CreateNamespace {
                    name: name.into(),
                    custom_metadata: [(OWNER_METADATA.to_string(), owner.to_string())].into(),
                };
                let created = sent(
                    "namespace.create",
                    vaultrs::api::exec_with_result(self.client().as_ref(), create),
                )
                .await;
                match created {
                    // OpenBao takes a second creation of a namespace as an update of its
                    // metadata, so a creator that raced another owner's learns it here.
                    Ok(_) => match self.namespace_owner(name).await?.flatten() {
                        Some(found) if found == owner => Ok(true),
                        found => Err(Error::NotOurs {
                            namespace: name.into(),
                            owner: found,
                        }),
                    },
                    // Made meanwhile by another reconcile for the same owner (the operator's
                    // registry namespace is shared by every pseudonymisation service).
                    Err(ClientError::APIError { .. })
                        if self.namespace_owner(name).await?.flatten().as_deref()
                            == Some(owner) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// The owner an OpenBao namespace records: `None` when there is no such namespace,
    /// `Some(None)` when it records none.
    pub async fn namespace_owner(&self, name: &str) -> Result<Option<Option<String>>, Error> {
        let read = ReadNamespace { name: name.into() };
        match sent(
            "namespace.read",
            vaultrs::api::exec_with_result(self.client().as_ref(), read),
        )
        .await
        {
            Ok(found) => Ok(Some(
                found["custom_metadata"][OWNER_METADATA]
                    .as_str()
                    .map(str::to_string),
            )),
            Err(ClientError::APIError { code: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Enables a KV version 2 engine at `mount` unless it is there; returns whether it wrote.
    pub async fn ensure_kv_mount(&self, mount: &str) -> Result<bool, Error> {
        let mut options = vaultrs::api::sys::requests::EnableEngineRequest::builder();
        options.options(std::collections::HashMap::from([(
            "version".to_string(),
            "2".to_string(),
        )]));
        ensure_engine(self.client().as_ref(), mount, "kv", Some(options)).await
    }

    /// Reads a KV version 2 secret; `None` when it does not exist (or was deleted).
    pub async fn read_secret<D: serde::de::DeserializeOwned>(
        &self,
        mount: &str,
        path: &str,
    ) -> Result<Option<D>, Error> {
        match sent(
            "kv.read",
            vaultrs::kv2::read(self.client().as_ref(), mount, path),
        )
        .await
        {
            Ok(data) => Ok(Some(data)),
            Err(ClientError::APIError { code: 404, .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a new version of a KV version 2 secret.
    pub async fn write_secret<T: Serialize>(
        &self,
        mount: &str,
        path: &str,
        data: &T,
    ) -> Result<(), Error> {
        sent(
            "kv.write",
            vaultrs::kv2::set(self.client().as_ref(), mount, path, data),
        )
        .await?;
        Ok(())
    }

    /// Writes the first version of a KV version 2 secret, and nothing when one exists: the
    /// write carries check-and-set 0, which OpenBao decides under its own lock, so of several
    /// writers at once exactly one succeeds. Returns whether it wrote.
    pub async fn create_secret<T: Serialize>(
        &self,
        mount: &str,
        path: &str,
        data: &T,
    ) -> Result<bool, Error> {
        let first = vaultrs::api::kv2::requests::SetSecretRequestOptions { cas: 0 };
        match sent(
            "kv.write",
            vaultrs::kv2::set_with_options(self.client().as_ref(), mount, path, data, first),
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::APIError { code: 400, errors })
                if errors.iter().any(|e| e.contains("check-and-set")) =>
            {
                Ok(false)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the policy unless it already has exactly these rules; returns whether it wrote.
    pub async fn ensure_policy(
        &self,
        name: &str,
        rules: &serde_json::Value,
    ) -> Result<bool, Error> {
        let wanted = rules.to_string();
        match sent(
            "policy.read",
            vaultrs::sys::policy::read(self.client().as_ref(), name),
        )
        .await
        {
            Ok(current)
                if serde_json::from_str::<serde_json::Value>(&current.rules)
                    .ok()
                    .as_ref()
                    == Some(rules) =>
            {
                Ok(false)
            }
            Ok(_) | Err(ClientError::APIError { code: 404, .. }) => {
                sent(
                    "policy.write",
                    vaultrs::sys::policy::set(self.client().as_ref(), name, &wanted),
                )
                .await?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes the Kubernetes auth role unless it already matches; returns whether it wrote.
    pub async fn ensure_kubernetes_role(
        &self,
        auth_mount: &str,
        name: &str,
        role: &KubernetesRole,
    ) -> Result<bool, Error> {
        let read = ReadKubernetesRole {
            mount: auth_mount.into(),
            name: name.into(),
        };
        match sent(
            "auth.role.read",
            vaultrs::api::exec_with_result(self.client().as_ref(), read),
        )
        .await
        {
            Ok(current) if kubernetes_role_matches(&current, role) => return Ok(false),
            Ok(_) | Err(ClientError::APIError { code: 404, .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let mut request =
            vaultrs::api::auth::kubernetes::requests::CreateKubernetesRoleRequest::builder();
        request
            .bound_service_account_names(role.service_accounts.clone())
            .bound_service_account_namespaces(role.namespaces.clone())
            .token_policies(role.policies.clone())
            .token_ttl(format!("{}s", role.ttl_seconds))
            .token_type(if role.batch_tokens {
                "batch"
            } else {
                "default"
            });
        if let Some(audience) = &role.audience {
            request.audience(audience.clone());
        }
        sent(
            "auth.role.write",
            vaultrs::auth::kubernetes::role::create(
                self.client().as_ref(),
                auth_mount,
                name,
                Some(&mut request),
            ),
        )
        .await?;
        Ok(true)
    }
}

/// `GET auth/<mount>/role/<name>`, read as it comes: `vaultrs`' typed response leaves out
/// the audience.
#[derive(Debug, Endpoint)]
#[endpoint(
    path = "auth/{self.mount}/role/{self.name}",
    response = "serde_json::Value"
)]
struct ReadKubernetesRole {
    #[endpoint(skip)]
    mount: String,
    #[endpoint(skip)]
    name: String,
}

/// Whether a Kubernetes auth role read from OpenBao is `wanted`, field by field (lists in
/// any order). Pure.
fn kubernetes_role_matches(current: &serde_json::Value, wanted: &KubernetesRole) -> bool {
    let list = |key: &str| {
        let mut v: Vec<String> = current[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let token_type = if wanted.batch_tokens {
        "batch"
    } else {
        "default"
    };
    list("bound_service_account_names") == sorted(&wanted.service_accounts)
        && list("bound_service_account_namespaces") == sorted(&wanted.namespaces)
        && list("token_policies") == sorted(&wanted.policies)
        && current["token_ttl"].as_u64() == Some(wanted.ttl_seconds)
        && current["audience"].as_str().unwrap_or_default()
            == wanted.audience.as_deref().unwrap_or_default()
        && current["token_type"].as_str().unwrap_or("default") == token_type
}

impl Admin {
    /// Disables a secrets engine mount, deleting every key in it. Only for a resource whose
    /// deletion policy explicitly asks for its keys to go.
    pub async fn delete_mount(&self, mount: &str) -> Result<(), Error> {
        Ok(sent(
            "mount.disable",
            vaultrs::sys::mount::disable(self.client().as_ref(), mount),
        )
        .await?)
    }

    /// Deletes an OpenBao namespace with every mount and key in it; an absent one is fine.
    /// Only for a resource whose deletion policy explicitly asks for its keys to go.
    pub async fn delete_namespace(&self, name: &str) -> Result<(), Error> {
        let request = DeleteNamespace { name: name.into() };
        match sent(
            "namespace.delete",
            vaultrs::api::exec_with_empty(self.client().as_ref(), request),
        )
        .await
        {
            Ok(()) | Err(ClientError::APIError { code: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a policy; an absent one is fine.
    pub async fn delete_policy(&self, name: &str) -> Result<(), Error> {
        match sent(
            "policy.delete",
            vaultrs::sys::policy::delete(self.client().as_ref(), name),
        )
        .await
        {
            Ok(()) | Err(ClientError::APIError { code: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a policy named `name` exists.
    pub async fn policy_exists(&self, name: &str) -> Result<bool, Error> {
        match sent(
            "policy.read",
            vaultrs::sys::policy::read(self.client().as_ref(), name),
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::APIError { code: 404, .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether a Kubernetes auth role named `name` exists at `auth_mount`.
    pub async fn kubernetes_role_exists(
        &self,
        auth_mount: &str,
        name: &str,
    ) -> Result<bool, Error> {
        let read = ReadKubernetesRole {
            mount: auth_mount.into(),
            name: name.into(),
        };
        match sent(
            "auth.role.read",
            vaultrs::api::exec_with_result(self.client().as_ref(), read),
        )
        .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::APIError { code: 404, .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether any of `mounts` is mounted (one read of the mount table, whatever the engine).
    pub async fn any_mounted(&self, mounts: &[&str]) -> Result<bool, Error> {
        let table = sent(
            "mount.list",
            vaultrs::sys::mount::list(self.client().as_ref()),
        )
        .await?;
        Ok(mounts
            .iter()
            .any(|m| table.contains_key(&format!("{}/", m.trim_matches('/')))))
    }

    /// Deletes a policy if it exists (read first, so that an absent one costs no write);
    /// returns whether it deleted.
    pub async fn remove_policy(&self, name: &str) -> Result<bool, Error> {
        if !self.policy_exists(name).await? {
            return Ok(false);
        }
        self.delete_policy(name).await.map(|()| true)
    }

    /// Deletes a Kubernetes auth role if it exists (read first); returns whether it deleted.
    pub async fn remove_kubernetes_role(
        &self,
        auth_mount: &str,
        name: &str,
    ) -> Result<bool, Error> {
        if !self.kubernetes_role_exists(auth_mount, name).await? {
            return Ok(false);
        }
        self.delete_kubernetes_role(auth_mount, name)
            .await
            .map(|()| true)
    }

    /// Deletes a Kubernetes auth role; an absent one is fine.
    pub async fn delete_kubernetes_role(&self, auth_mount: &str, name: &str) -> Result<(), Error> {
        match sent(
            "auth.role.delete",
            vaultrs::auth::kubernetes::role::delete(self.client().as_ref(), auth_mount, name),
        )
        .await
        {
            Ok(()) | Err(ClientError::APIError { code: 404, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Enables a secrets engine of `kind` at `mount` unless one is there; returns whether it
/// wrote. Another engine at the path is an error. Two callers racing to enable the same
/// engine both succeed: the loser finds the winner's engine.
async fn ensure_engine(
    client: &VaultClient,
    mount: &str,
    kind: &str,
    options: Option<vaultrs::api::sys::requests::EnableEngineRequestBuilder>,
) -> Result<bool, Error> {
    type Mounts = std::collections::HashMap<String, vaultrs::api::sys::responses::MountResponse>;
    let present = |mounts: &Mounts| match mounts.get(&format!("{mount}/")) {
        Some(m) if m.mount_type == kind => Ok(true),
        Some(m) => Err(Error::Unexpected(format!(
            "{mount}/ is a {} engine, not {kind}",
            m.mount_type
        ))),
        None => Ok(false),
    };
    if present(&sent("mount.list", vaultrs::sys::mount::list(client)).await?)? {
        return Ok(false);
    }
    let mut options = options;
    match sent(
        "mount.enable",
        vaultrs::sys::mount::enable(client, mount, kind, options.as_mut()),
    )
    .await
    {
        Ok(()) => Ok(true),
        Err(ClientError::APIError { code: 400, .. })
            if present(&sent("mount.list", vaultrs::sys::mount::list(client)).await?)? =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Name of the PKI role that issues a service's server certificates.
pub const SERVER_ROLE: &str = "server";
/// Lifetime of a server certificate; a service takes a new one at two thirds of it.
pub const SERVER_CERT_TTL_SECONDS: u64 = 72 * 3600;
/// Lifetime of a service's CA.
const CA_TTL: &str = "87600h";

/// A PKI engine that issues one service's server certificates: a root CA of its own, whose
/// key never leaves OpenBao, and the role [`SERVER_ROLE`], limited to exactly the service's
/// DNS names (no subdomains, no other names, no IP addresses, server use only). Keys are RSA
/// (2048 for servers, 3072 for the CA), which every TLS client can use; some small clients
/// (busybox's, for one) cannot use ECDSA certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPki {
    /// Mount path of the engine.
    pub mount: String,
    /// The DNS names certificates may carry; the first is the common name.
    pub names: Vec<String>,
}

/// `GET <mount>/roles/<name>`, read as it comes: `vaultrs`' role response expects fields
/// OpenBao does not send.
#[derive(Debug, Endpoint)]
#[endpoint(
    path = "{self.mount}/roles/{self.name}",
    response = "serde_json::Value"
)]
struct ReadPkiRole {
    #[endpoint(skip)]
    mount: String,
    #[endpoint(skip)]
    name: String,
}

/// `LIST <mount>/issuers`: which CAs the engine holds.
#[derive(Debug, Endpoint)]
#[endpoint(
    path = "{self.mount}/issuers",
    method = "LIST",
    response = "serde_json::Value"
)]
struct ListPkiIssuers {
    #[endpoint(skip)]
    mount: String,
}

/// Whether a role read from OpenBao issues what [`ServerPki`] wants.
fn role_matches(role: &serde_json::Value, names: &[String]) -> bool {
    let flag = |key: &str| role[key].as_bool();
    let mut allowed: Vec<&str> = role["allowed_domains"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();
    allowed.sort_unstable();
    let mut wanted: Vec<&str> = names.iter().map(String::as_str).collect();
    wanted.sort_unstable();
    allowed == wanted
        && flag("allow_bare_domains") == Some(true)
        && flag("allow_subdomains") == Some(false)
        && flag("allow_glob_domains") == Some(false)
        && flag("allow_any_name") == Some(false)
        && flag("allow_localhost") == Some(false)
        && flag("allow_ip_sans") == Some(false)
        && flag("server_flag") == Some(true)
        && flag("client_flag") == Some(false)
        && role["key_type"].as_str() == Some("rsa")
        && role["key_bits"].as_u64() == Some(2048)
        && role["max_ttl"].as_u64() == Some(SERVER_CERT_TTL_SECONDS)
}

impl Admin {
    /// Enables the PKI engine, generates its root CA and writes the server role unless each is
    /// already there as wanted; returns whether it wrote.
    pub async fn ensure_server_pki(&self, pki: &ServerPki, ca_name: &str) -> Result<bool, Error> {
        let client = self.client();
        let mut wrote = false;
        let mut options = vaultrs::api::sys::requests::EnableEngineRequest::builder();
        options.config(vaultrs::api::sys::requests::EnableEngineDataConfig {
            max_lease_ttl: Some(CA_TTL.into()),
            ..Default::default()
        });
        wrote |= ensure_engine(client.as_ref(), &pki.mount, "pki", Some(options)).await?;
        let issuers = ListPkiIssuers {
            mount: pki.mount.clone(),
        };
        let has_ca = match sent(
            "pki.issuers.list",
            vaultrs::api::exec_with_result(client.as_ref(), issuers),
        )
        .await
        {
            Ok(list) => list["keys"].as_array().is_some_and(|k| !k.is_empty()),
            Err(ClientError::APIError { code: 404, .. }) => false,
            Err(e) => return Err(e.into()),
        };
        if !has_ca {
            let mut root = vaultrs::api::pki::requests::GenerateRootRequest::builder();
            // The common name is a label, not a host name: it goes into no SAN.
            root.common_name(ca_name)
                .exclude_cn_from_sans(true)
                .ttl(CA_TTL)
                .key_type("rsa")
                .key_bits(3072u64);
            sent(
                "pki.root.generate",
                vaultrs::pki::cert::ca::generate(
                    client.as_ref(),
                    &pki.mount,
                    "internal",
                    Some(&mut root),
                ),
            )
            .await?;
            wrote = true;
        }
        let read = ReadPkiRole {
            mount: pki.mount.clone(),
            name: SERVER_ROLE.into(),
        };
        let current = match sent(
            "pki.role.read",
            vaultrs::api::exec_with_result(client.as_ref(), read),
        )
        .await
        {
            Ok(role) => Some(role),
            Err(ClientError::APIError { code: 404, .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if !current.is_some_and(|r| role_matches(&r, &pki.names)) {
            let mut role = vaultrs::api::pki::requests::SetRoleRequest::builder();
            role.allowed_domains(pki.names.clone())
                .allow_bare_domains(true)
                .allow_subdomains(false)
                .allow_glob_domains(false)
                .allow_any_name(false)
                .allow_localhost(false)
                .allow_ip_sans(false)
                .server_flag(true)
                .client_flag(false)
                .key_type("rsa")
                .key_bits(2048u64)
                .max_ttl(format!("{SERVER_CERT_TTL_SECONDS}s"))
                .ttl(format!("{SERVER_CERT_TTL_SECONDS}s"))
                .no_store(true);
            sent(
                "pki.role.write",
                vaultrs::pki::role::set(client.as_ref(), &pki.mount, SERVER_ROLE, Some(&mut role)),
            )
            .await?;
            wrote = true;
        }
        Ok(wrote)
    }
}

/// A server certificate with its key and the CA that signed it, in PEM.
pub struct IssuedCertificate {
    /// The certificate.
    pub certificate: String,
    /// Its private key (never logged).
    pub private_key: Zeroizing<String>,
    /// The CA certificate clients trust.
    pub ca: String,
    /// When the certificate expires (seconds since the epoch).
    pub expiration: u64,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

impl Transit {
    /// Issues a server certificate for `names` (the first is the common name) from the PKI
    /// engine at `mount`, with this client's token.
    pub async fn issue_server_certificate(
        &self,
        mount: &str,
        names: &[String],
    ) -> Result<IssuedCertificate, Error> {
        issue_server_certificate(self.client.as_ref(), mount, names).await
    }
}

impl Admin {
    /// Issues a server certificate for `names` (the first is the common name) from the PKI
    /// engine at `mount`, with this client's token.
    pub async fn issue_server_certificate(
        &self,
        mount: &str,
        names: &[String],
    ) -> Result<IssuedCertificate, Error> {
        issue_server_certificate(self.client().as_ref(), mount, names).await
    }
}

async fn issue_server_certificate(
    client: &VaultClient,
    mount: &str,
    names: &[String],
) -> Result<IssuedCertificate, Error> {
    let Some((common, alternatives)) = names.split_first() else {
        return Err(Error::Unexpected("a certificate needs a name".into()));
    };
    let mut request = vaultrs::api::pki::requests::GenerateCertificateRequest::builder();
    request
        .common_name(common)
        .alt_names(alternatives.join(","))
        .ttl(format!("{SERVER_CERT_TTL_SECONDS}s"));
    let issued = sent(
        "pki.certificate.issue",
        vaultrs::pki::cert::generate(client, mount, SERVER_ROLE, Some(&mut request)),
    )
    .await?;
    Ok(IssuedCertificate {
        certificate: issued.certificate,
        private_key: Zeroizing::new(issued.private_key),
        ca: issued.issuing_ca,
        expiration: issued.expiration.unwrap_or_default(),
    })
}

/// The PEM of the CA of the PKI engine at `mount`, which OpenBao serves without a token.
pub async fn ca_certificate(
    http: &reqwest::Client,
    address: &str,
    mount: &str,
) -> Result<String, Error> {
    let url = format!("{}/v1/{mount}/ca/pem", address.trim_end_matches('/'));
    let response = http
        .get(&url)
        .timeout(CALL_TIMEOUT)
        .send()
        .await
        .map_err(|e| Error::Unexpected(format!("reading the CA at {url}: {e}")))?;
    let text = response
        .error_for_status()
        .map_err(|e| Error::Unexpected(format!("reading the CA at {url}: {e}")))?
        .text()
        .await
        .map_err(|e| Error::Unexpected(format!("reading the CA at {url}: {e}")))?;
    if !text.contains("BEGIN CERTIFICATE") {
        return Err(Error::Unexpected(format!("{url} holds no CA certificate")));
    }
    Ok(text)
}
