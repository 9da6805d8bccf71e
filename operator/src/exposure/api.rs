//! The read-only HTTP API for data products.
//!
//! - `GET /v1/products`: the products the caller's permits grant now.
//! - `GET /v1/products/{product}/objects`: the product's objects (keys and sizes).
//! - `GET /v1/products/{product}/objects/{key}`: one object, whole or a `Range` of it.
//!
//! No bearer token, or one that does not verify against the issuer's keys (signature, issuer,
//! audience, lifetime) → 401. A valid token without a permit in force for the product → 403.
//! Object keys are the product's own: the caller cannot name anything outside the product's
//! prefix in the purpose-specific zone.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt as _;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, ResourceExt as _};
use serde::Serialize;
use serde_json::json;

use crate::adapters::openbao::{self, IssuedCertificate};
use crate::api::{DataPermit, PermitAccesses};
use crate::pseudonymisation::access::{Refusal, Verifier};
use crate::pseudonymisation::tls::{Certificates, renewal_time};
use crate::telemetry::AuditSink;

/// The value of every audit record's `audit` field.
pub const STREAM: &str = "vardhub-exposure";
/// Clock skew tolerated on a token's lifetime, in seconds: an expired token stops working
/// at most this long after its `exp`.
pub const LEEWAY_SECONDS: u64 = 5;
/// How often the component reads its S3 credential again (the operator renews it well
/// before it expires).
pub const CREDENTIAL_REFRESH: Duration = Duration::from_secs(300);
/// The most objects one listing returns.
pub const MAX_LISTED: usize = 10_000;

/// How a request ended, in the audit trail.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Answered.
    Served,
    /// No valid token (401).
    Unauthenticated,
    /// A valid token without a permit in force for the product (403).
    Forbidden,
    /// The product holds no such object (404), or the range lies outside it (416).
    NotFound,
    /// The request was malformed, or the S3 server failed.
    Failed,
}

/// One audit record: who, under which permit, which product and object, how many bytes,
/// how it ended. Never the token.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    outcome: Option<Outcome>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    permit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    holder: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    range: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// What the API serves from, shared by every request.
#[derive(Clone)]
pub struct Exposure {
    hub: Arc<str>,
    bucket: Arc<str>,
    verifier: Arc<Verifier>,
    permits: Store<DataPermit>,
    s3: Arc<RwLock<aws_sdk_s3::Client>>,
    audit: AuditSink,
    tallies: Arc<std::sync::Mutex<std::collections::BTreeMap<String, Tally>>>,
}

/// The accesses counted under one permit (by name), for the permit's UID: the permit's own
/// figures when the count began, plus what this process served since.
#[derive(Clone, Debug)]
struct Tally {
    uid: String,
    accesses: PermitAccesses,
}

/// How often counted accesses are written to the permits' status (only those that differ).
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// The field manager of the API's writes to permits' status.
pub const FIELD_MANAGER: &str = "vardhub-exposure-api";

impl Exposure {
    /// The API of `hub`'s products in `bucket`, deciding by `permits` and `verifier`.
    pub fn new(
        hub: &str,
        bucket: &str,
        verifier: Verifier,
        permits: Store<DataPermit>,
        s3: aws_sdk_s3::Client,
        audit: AuditSink,
    ) -> Self {
        Self {
            hub: hub.into(),
            bucket: bucket.into(),
            verifier: Arc::new(verifier),
            permits,
            s3: Arc::new(RwLock::new(s3)),
            audit,
            tallies: Arc::default(),
        }
    }

    /// Counts one request the permit `name` covered.
    fn count(&self, name: &str, served: bool, bytes: Option<i64>) {
        let Some(permit) = self
            .permits
            .get(&ObjectRef::new(name).within(&self.namespace()))
        else {
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
                accesses: permit
                    .status
                    .as_ref()
                    .and_then(|s| s.accesses.clone())
                    .unwrap_or_default(),
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

    fn namespace(&self) -> String {
        crate::api::DataHub::workload_namespace_of(&self.hub)
    }

    /// Writes each counted permit's figures to its status where they differ from what the
    /// status shows; forgets permits that are gone.
    async fn flush(&self, api: &Api<DataPermit>) {
        let counted: Vec<(String, Tally)> = match self.tallies.lock() {
            Ok(t) => t.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => return,
        };
        let ns = self.namespace();
        for (name, tally) in counted {
            let current = self.permits.get(&ObjectRef::new(&name).within(&ns));
            let Some(permit) = current.filter(|p| p.metadata.uid.as_deref() == Some(&tally.uid))
            else {
                if let Ok(mut t) = self.tallies.lock() {
                    t.remove(&name);
                }
                continue;
            };
            if permit.status.as_ref().and_then(|s| s.accesses.as_ref()) == Some(&tally.accesses) {
                continue;
            }
            let patch = json!({
                "apiVersion": "vardhub.io/v1alpha1",
                "kind": "DataPermit",
                "status": { "accesses": tally.accesses },
            });
            let params = kube::api::PatchParams::apply(FIELD_MANAGER).force();
            if let Err(e) = api
                .patch_status(&name, &params, &kube::api::Patch::Apply(&patch))
                .await
            {
                tracing::warn!(error = %e, permit = %name, "could not write the permit's access counts");
            }
        }
    }

    /// Swaps in a client with a fresh credential.
    pub fn replace_s3(&self, client: aws_sdk_s3::Client) {
        if let Ok(mut held) = self.s3.write() {
            *held = client;
        }
    }

    fn s3(&self) -> Option<aws_sdk_s3::Client> {
        self.s3.read().ok().map(|c| c.clone())
    }

    /// The permit (name and holder) that grants `product` to `subject` now, if any; the
    /// first by name when several do.
    fn permit_for(&self, subject: &str, product: &str) -> Option<(String, String)> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let mut found: Vec<_> = self
            .permits
            .state()
            .into_iter()
            .filter(|p| p.grants(&self.hub, self.verifier.issuer(), subject, product, now))
            .map(|p| (p.name_any(), p.spec.holder.name.clone()))
            .collect();
        found.sort();
        found.into_iter().next()
    }

    /// The products the permits in force grant `subject`, each with its permit.
    fn products_of(&self, subject: &str) -> Vec<(String, String)> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let mut out: Vec<(String, String)> = Vec::new();
        for p in self.permits.state() {
            for product in &p.spec.products {
                if p.grants(&self.hub, self.verifier.issuer(), subject, product, now) {
                    out.push((product.clone(), p.name_any()));
                }
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }
}

/// The API once it has what it serves from: its issuer's keys, the permits and its S3
/// credential. Until then it answers 503 (and `/readyz` says not ready), while `/healthz`
/// answers from the start, so that a slow dependency does not get the pod restarted.
#[derive(Clone, Default)]
pub struct Started(Arc<std::sync::OnceLock<Exposure>>);

impl Started {
    /// Already started with `exposure`.
    pub fn with(exposure: Exposure) -> Self {
        let started = Self::default();
        started.set(exposure);
        started
    }

    fn set(&self, exposure: Exposure) {
        let _ = self.0.set(exposure);
    }

    fn get(&self) -> Option<&Exposure> {
        self.0.get()
    }
}

fn starting() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        axum::Json(json!({ "error": "starting: try again shortly" })),
    )
        .into_response()
}

/// The API's routes, with `/healthz` and `/readyz`.
pub fn router(started: Started) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(started): State<Started>| async move {
                match started.get() {
                    Some(_) => "ready".into_response(),
                    None => starting(),
                }
            }),
        )
        .route("/v1/products", get(products))
        .route("/v1/products/{product}/objects", get(objects))
        .route("/v1/products/{product}/objects/{*key}", get(object))
        .with_state(started)
}

/// A refusal, as the caller sees it.
struct Refused {
    status: StatusCode,
    outcome: Outcome,
    message: String,
}

impl Refused {
    fn new(status: StatusCode, outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            status,
            outcome,
            message: message.into(),
        }
    }

    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}

/// The subject of the request's bearer token, verified.
async fn subject(exposure: &Exposure, headers: &HeaderMap) -> Result<String, Refused> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Refused::new(
                StatusCode::UNAUTHORIZED,
                Outcome::Unauthenticated,
                "send a bearer token of the hub's OIDC issuer in Authorization: Bearer",
            )
        })?;
    exposure.verifier.subject(token).await.map_err(|r| {
        let message = match r {
            Refusal::Invalid(why) => format!("the token is not valid here: {why}"),
            other => other.to_string(),
        };
        Refused::new(StatusCode::UNAUTHORIZED, Outcome::Unauthenticated, message)
    })
}

/// The permit for `product`, or 403 naming the product.
fn permitted(
    exposure: &Exposure,
    subject: &str,
    product: &str,
    record: &mut Record<'_>,
) -> Result<(), Refused> {
    match exposure.permit_for(subject, product) {
        Some((permit, holder)) => {
            record.permit = Some(permit);
            record.holder = Some(holder);
            Ok(())
        }
        None => Err(Refused::new(
            StatusCode::FORBIDDEN,
            Outcome::Forbidden,
            format!("no data permit in force grants you the data product {product}"),
        )),
    }
}

/// Writes the record of a request and answers it.
fn finish(
    exposure: &Exposure,
    mut record: Record<'_>,
    result: Result<Response, Refused>,
) -> Response {
    match result {
        Ok(response) => {
            record.outcome = Some(Outcome::Served);
            record.status = response.status().as_u16();
            exposure.audit.write(&record);
            if let Some(permit) = &record.permit {
                exposure.count(permit, true, record.bytes);
            }
            response
        }
        Err(refused) => {
            record.outcome = Some(refused.outcome);
            record.status = refused.status.as_u16();
            record.reason = Some(refused.message.clone());
            record.bytes = None;
            exposure.audit.write(&record);
            if let Some(permit) = &record.permit {
                exposure.count(permit, false, None);
            }
            refused.into_response()
        }
    }
}

async fn products(State(started): State<Started>, headers: HeaderMap) -> Response {
    let Some(exposure) = started.get() else {
        return starting();
    };
    let mut record = Record::default();
    let result = async {
        let subject = subject(exposure, &headers).await?;
        record.subject = Some(subject.clone());
        let granted: Vec<_> = exposure
            .products_of(&subject)
            .into_iter()
            .map(|(product, permit)| json!({ "name": product, "permit": permit }))
            .collect();
        Ok(axum::Json(json!({ "products": granted })).into_response())
    }
    .await;
    finish(exposure, record, result)
}

fn s3_failure(what: &str, e: impl std::fmt::Display) -> Refused {
    tracing::warn!(error = %e, "{what}");
    Refused::new(
        StatusCode::BAD_GATEWAY,
        Outcome::Failed,
        format!("{what}: the object store did not answer; try again"),
    )
}

async fn objects(
    State(started): State<Started>,
    Path(product): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(exposure) = started.get() else {
        return starting();
    };
    let mut record = Record {
        product: Some(&product),
        ..Default::default()
    };
    let result = async {
        let subject = subject(exposure, &headers).await?;
        record.subject = Some(subject.clone());
        permitted(exposure, &subject, &product, &mut record)?;
        let s3 = exposure
            .s3()
            .ok_or_else(|| s3_failure("listing", "no client"))?;
        let prefix = format!("{product}/");
        let mut pages = s3
            .list_objects_v2()
            .bucket(exposure.bucket.as_ref())
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut listed = Vec::new();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| s3_failure("listing", aws_sdk_s3::error::DisplayErrorContext(e)))?;
            for o in page.contents() {
                let Some(key) = o.key().and_then(|k| k.strip_prefix(&prefix)) else {
                    continue;
                };
                listed.push(json!({ "key": key, "size": o.size().unwrap_or(0) }));
            }
            if listed.len() >= MAX_LISTED {
                break;
            }
        }
        listed.truncate(MAX_LISTED);
        Ok(axum::Json(json!({ "product": product, "objects": listed })).into_response())
    }
    .await;
    finish(exposure, record, result)
}

/// Whether `key` names an object inside a product: no empty, `.` or `..` segment.
pub fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 1024
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Whether `range` is one byte range (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
pub fn single_range(range: &str) -> bool {
    let Some(spec) = range.strip_prefix("bytes=") else {
        return false;
    };
    let Some((a, b)) = spec.split_once('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 19 && s.bytes().all(|c| c.is_ascii_digit());
    match (a.is_empty(), b.is_empty()) {
        (true, true) => false,
        (true, false) => digits(b),
        (false, true) => digits(a),
        (false, false) => digits(a) && digits(b) && a.parse::<u64>().ok() <= b.parse::<u64>().ok(),
    }
}

async fn object(
    State(started): State<Started>,
    Path((product, key)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(exposure) = started.get() else {
        return starting();
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut record = Record {
        product: Some(&product),
        object: Some(&key),
        range: range.as_deref(),
        ..Default::default()
    };
    let result = async {
        let subject = subject(exposure, &headers).await?;
        record.subject = Some(subject.clone());
        permitted(exposure, &subject, &product, &mut record)?;
        if !plain_key(&key) {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                Outcome::Failed,
                "the object key has an empty, '.' or '..' segment",
            ));
        }
        if let Some(r) = &range
            && !single_range(r)
        {
            return Err(Refused::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                Outcome::Failed,
                "Range: one byte range (bytes=first-last, bytes=first- or bytes=-length)",
            ));
        }
        let s3 = exposure
            .s3()
            .ok_or_else(|| s3_failure("reading", "no client"))?;
        let got = s3
            .get_object()
            .bucket(exposure.bucket.as_ref())
            .key(format!("{product}/{key}"))
            .set_range(range.clone())
            .send()
            .await
            .map_err(|e| match e.code() {
                Some("NoSuchKey") => Refused::new(
                    StatusCode::NOT_FOUND,
                    Outcome::NotFound,
                    format!("the data product {product} has no object {key}"),
                ),
                Some("InvalidRange") => Refused::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    Outcome::NotFound,
                    "the range lies outside the object",
                ),
                _ => s3_failure("reading", aws_sdk_s3::error::DisplayErrorContext(e)),
            })?;
        let length = got.content_length();
        let mut response = Response::builder()
            .status(if range.is_some() {
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            })
            .header(header::ACCEPT_RANGES, "bytes")
            .header(
                header::CONTENT_TYPE,
                got.content_type().unwrap_or("application/octet-stream"),
            );
        if let Some(n) = length {
            response = response.header(header::CONTENT_LENGTH, n);
        }
        if let Some(r) = got.content_range() {
            response = response.header(header::CONTENT_RANGE, r);
        }
        if let Some(tag) = got.e_tag() {
            response = response.header(header::ETAG, tag);
        }
        record.bytes = length;
        let stream = futures::stream::unfold(got.body, |mut body| async move {
            body.next()
                .await
                .map(|chunk| (chunk.map_err(std::io::Error::other), body))
        });
        response
            .body(Body::from_stream(stream))
            .map_err(|e| s3_failure("answering", e))
    }
    .await;
    finish(exposure, record, result)
}

/// Where the component finds its credential, its permits and its issuer.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the hub's workloads and permits.
    pub namespace: String,
    /// The hub.
    pub hub: String,
    /// The hub's purpose-specific bucket.
    pub bucket: String,
    /// The OIDC issuer whose tokens are accepted.
    pub issuer: String,
    /// The audience they must carry.
    pub audience: String,
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
    /// Serve HTTPS with certificates from this OpenBao PKI mount (path from the root
    /// namespace) for these DNS names (the first is the common name); plain HTTP without.
    pub tls: Option<(String, Vec<String>)>,
}

/// Logs in to OpenBao as the component; returns a client with its S3 credential and, when
/// `certificate` is set, a new server certificate.
async fn login(
    settings: &Settings,
    certificate: bool,
) -> anyhow::Result<(aws_sdk_s3::Client, Option<IssuedCertificate>)> {
    let (token, issued) = crate::jobs::workload_credential(
        &settings.openbao_addr,
        &settings.auth_mount,
        &settings.role,
        &settings.token_file,
        &settings.credentials,
    )
    .await?;
    let certificate = match (&settings.tls, certificate) {
        (Some((mount, names)), true) => Some(
            openbao::Admin::new(&settings.openbao_addr, &token)?
                .issue_server_certificate(mount, names)
                .await?,
        ),
        _ => None,
    };
    Ok((issued.client(), certificate))
}

/// Retries `attempt` every five seconds until it succeeds, saying why it waits.
async fn until_ok<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => tracing::warn!(error = format!("{e:#}"), "{what}; trying again in 5 s"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// Runs the API on `listen` until `shutdown`. It listens at once, and serves once it has read
/// the issuer's keys, follows the permits of the hub's namespace and has logged in to OpenBao
/// for its credential and certificate (read again every [`CREDENTIAL_REFRESH`]; the
/// certificate at two thirds of its life). Until its first certificate every TLS handshake
/// fails.
pub async fn run(
    client: kube::Client,
    settings: Settings,
    listen: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = Started::default();
    let certificates = settings
        .tls
        .as_ref()
        .map(|_| Arc::new(Certificates::pending()));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, hub = %settings.hub, tls = certificates.is_some(), "listening; starting");
    let init = tokio::spawn(start(
        client,
        settings,
        started.clone(),
        certificates.clone(),
    ));
    let served = match certificates {
        Some(held) => {
            let config = held.server_config()?;
            crate::pseudonymisation::tls::serve(listener, router(started), config, shutdown).await
        }
        None => {
            axum::serve(listener, router(started))
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    init.abort();
    Ok(served?)
}

async fn start(
    client: kube::Client,
    settings: Settings,
    started: Started,
    certificates: Option<Arc<Certificates>>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let verifier = until_ok("reading the OIDC issuer's keys", || async {
        Ok(
            Verifier::discover_oidc(http.clone(), &settings.issuer, &settings.audience)
                .await?
                .with_leeway(LEEWAY_SECONDS),
        )
    })
    .await;
    let (store, writer) = reflector::store();
    let permits = Api::<DataPermit>::namespaced(client, &settings.namespace);
    let follow = reflector::reflector(writer, watcher(permits.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects()
        .for_each(|_| std::future::ready(()));
    tokio::spawn(follow);
    store.wait_until_ready().await?;
    let wants_certificate = certificates.is_some();
    let (s3, issued) = until_ok("logging in to OpenBao", || {
        login(&settings, wants_certificate)
    })
    .await;
    let mut renew_at = None;
    let take = |issued: Option<IssuedCertificate>, renew_at: &mut Option<std::time::Instant>| {
        if let (Some(held), Some(c)) = (&certificates, issued) {
            match held.replace(&c.certificate, &c.private_key) {
                Ok(()) => *renew_at = Some(renewal_time(c.expiration)),
                Err(e) => tracing::warn!(error = %e, "the server certificate is unusable"),
            }
        }
    };
    take(issued, &mut renew_at);
    let exposure = Exposure::new(
        &settings.hub,
        &settings.bucket,
        verifier,
        store,
        s3,
        AuditSink::to(STREAM, std::io::stdout()),
    );
    started.set(exposure.clone());
    tracing::info!(hub = %settings.hub, "serving the hub's data products");
    let flushing = exposure.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(FLUSH_INTERVAL).await;
            flushing.flush(&permits).await;
        }
    });
    loop {
        tokio::time::sleep(CREDENTIAL_REFRESH).await;
        let due = wants_certificate && renew_at.is_none_or(|t| std::time::Instant::now() >= t);
        match login(&settings, due).await {
            Ok((s3, issued)) => {
                exposure.replace_s3(s3);
                take(issued, &mut renew_at);
            }
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "could not log in to OpenBao again; keeping the current credential and certificate"
            ),
        }
    }
}

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

    #[test]
    fn only_one_plain_byte_range_is_passed_on() {
        for good in ["bytes=0-9", "bytes=10-", "bytes=-5", "bytes=7-7"] {
            assert!(single_range(good), "{good}");
        }
        for bad in [
            "bytes=9-0",
            "bytes=-",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=a-b",
            "bytes= 0-1",
        ] {
            assert!(!single_range(bad), "{bad}");
        }
    }
}
