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

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kube::ResourceExt as _;
use serde_json::json;

use super::{
    CREDENTIAL_REFRESH, Channel, MAX_LISTED, Outcome, Products, Record, plain_key, until_ok,
};
use crate::adapters::openbao::{self, IssuedCertificate};
use crate::pseudonymisation::access::{Refusal, Verifier};
use crate::pseudonymisation::tls::{Certificates, renewal_time};
use crate::telemetry::AuditSink;

/// Clock skew tolerated on a token's lifetime, in seconds: an expired token stops working
/// at most this long after its `exp`.
pub const LEEWAY_SECONDS: u64 = 5;

/// What the API serves from, shared by every request: the products and the issuer's keys.
#[derive(Clone)]
pub struct Exposure {
    products: Products,
    verifier: Arc<Verifier>,
}

impl Exposure {
    /// The API of `products`, deciding who is who with `verifier`.
    pub fn new(products: Products, verifier: Verifier) -> Self {
        Self {
            products,
            verifier: Arc::new(verifier),
        }
    }

    /// The permit (name and holder) that grants `product` to `subject` now, if any; the
    /// first by name when several do.
    fn permit_for(&self, subject: &str, product: &str) -> Option<(String, String)> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let hub = self.products.hub();
        let mut found: Vec<_> = self
            .products
            .permits()
            .into_iter()
            .filter(|p| p.grants(hub, self.verifier.issuer(), subject, product, now))
            .map(|p| (p.name_any(), p.spec.holder.name.clone()))
            .collect();
        found.sort();
        found.into_iter().next()
    }

    /// The products the permits in force grant `subject`, each with its permit.
    fn products_of(&self, subject: &str) -> Vec<(String, String)> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let hub = self.products.hub();
        let mut out: Vec<(String, String)> = Vec::new();
        for p in self.products.permits() {
            for product in &p.spec.products {
                if p.grants(hub, self.verifier.issuer(), subject, product, now) {
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
            record.status = Some(response.status().as_u16());
            exposure.products.record(record);
            response
        }
        Err(refused) => {
            record.outcome = Some(refused.outcome);
            record.status = Some(refused.status.as_u16());
            record.reason = Some(refused.message.clone());
            record.bytes = None;
            exposure.products.record(record);
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
            .products
            .s3()
            .ok_or_else(|| s3_failure("listing", "no client"))?;
        let prefix = format!("{product}/");
        let mut pages = s3
            .list_objects_v2()
            .bucket(exposure.products.bucket())
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
            .products
            .s3()
            .ok_or_else(|| s3_failure("reading", "no client"))?;
        let got = s3
            .get_object()
            .bucket(exposure.products.bucket())
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

/// What the API adds to a component's settings: its issuer and, for HTTPS, its certificate.
#[derive(Clone, Debug)]
pub struct Options {
    /// The OIDC issuer whose tokens are accepted.
    pub issuer: String,
    /// The audience they must carry.
    pub audience: String,
    /// Serve HTTPS with certificates from this OpenBao PKI mount (path from the root
    /// namespace) for these DNS names (the first is the common name); plain HTTP without.
    pub tls: Option<(String, Vec<String>)>,
}

/// Logs in to OpenBao as the component; returns a client with its S3 credential and, when
/// `certificate` is set, a new server certificate.
async fn login(
    settings: &super::Settings,
    options: &Options,
    certificate: bool,
) -> anyhow::Result<(aws_sdk_s3::Client, Option<IssuedCertificate>)> {
    let (token, s3) = settings.login().await?;
    let certificate = match (&options.tls, certificate) {
        (Some((mount, names)), true) => Some(
            openbao::Admin::new(&settings.openbao_addr, &token)?
                .issue_server_certificate(mount, names)
                .await?,
        ),
        _ => None,
    };
    Ok((s3, certificate))
}

/// Runs the API on `listen` until `shutdown`. It listens at once, and serves once it has read
/// the issuer's keys, follows the permits of the hub's namespace and has logged in to OpenBao
/// for its credential and certificate (read again every [`CREDENTIAL_REFRESH`]; the
/// certificate at two thirds of its life). Until its first certificate every TLS handshake
/// fails.
pub async fn run(
    client: kube::Client,
    settings: super::Settings,
    options: Options,
    listen: std::net::SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = Started::default();
    let certificates = options
        .tls
        .as_ref()
        .map(|_| Arc::new(Certificates::pending()));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, hub = %settings.hub, tls = certificates.is_some(), "listening; starting");
    let init = tokio::spawn(start(
        client,
        settings,
        options,
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
    settings: super::Settings,
    options: Options,
    started: Started,
    certificates: Option<Arc<Certificates>>,
) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let verifier = until_ok("reading the OIDC issuer's keys", || async {
        Ok(
            Verifier::discover_oidc(http.clone(), &options.issuer, &options.audience)
                .await?
                .with_leeway(LEEWAY_SECONDS),
        )
    })
    .await;
    let (store, permits) = settings.follow_permits(client).await?;
    let wants_certificate = certificates.is_some();
    let (s3, issued) = until_ok("logging in to OpenBao", || {
        login(&settings, &options, wants_certificate)
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
    let products = Products::new(
        Channel::Api,
        &settings.hub,
        &settings.bucket,
        store,
        s3,
        AuditSink::to(super::STREAM, std::io::stdout()),
    );
    products.keep_counts(permits);
    started.set(Exposure::new(products.clone(), verifier));
    tracing::info!(hub = %settings.hub, "serving the hub's data products");
    loop {
        tokio::time::sleep(CREDENTIAL_REFRESH).await;
        let due = wants_certificate && renew_at.is_none_or(|t| std::time::Instant::now() >= t);
        match login(&settings, &options, due).await {
            Ok((s3, issued)) => {
                products.replace_s3(s3);
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
