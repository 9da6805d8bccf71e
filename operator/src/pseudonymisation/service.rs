//! The pseudonymisation service: an HTTP API over the pseudonym core.
//!
//! - `POST /v1/domains/{domain}/pseudonyms` with JSON `{"kind": "personnummer" | "local",
//!   "identifiers": [...]}` answers `{"domain", "keyVersion", "pseudonyms": [...],
//!   "errors": [{"index", "reason"}]}`; a bad row gets `null` and an error naming its index.
//! - The same path with `Content-Type: application/x-ndjson` streams: one JSON string per
//!   line in, one `{"index", "pseudonym"}` or `{"index", "error"}` per line out, processed in
//!   batches so that files with millions of rows never sit in memory whole.
//! - The same path with `Content-Type: application/vnd.apache.arrow.stream` takes an Arrow
//!   IPC stream with a Utf8 column `identifier` and answers one, row for row, with the
//!   columns `pseudonym` and `error` ([`super::arrow`]): the bulk path, with no parsing or
//!   allocation per row. `X-Identifier-Kind: local` selects local identifiers, as for NDJSON.
//! - `/healthz`, `/readyz` (OpenBao reachable and unsealed, token valid), `/metrics`.
//!
//! Every `/v1` request is authenticated and authorised before its body is read (see
//! [`super::access`]): no or an invalid token → 401, a caller without a grant for the domain
//! → 403, whether or not the domain exists. Each request, served or refused, leaves one
//! record in the audit trail ([`super::audit`]) naming the caller, the domain and the row
//! count.
//!
//! Limits fit the pod's memory: a JSON or Arrow body of at most [`MAX_BODY`] bytes and
//! [`MAX_ROWS`] rows, NDJSON lines of at most [`MAX_LINE`] bytes. Each caller may send a
//! number of rows per second ([`Throttle`]): a JSON request beyond its share gets 429 with
//! `Retry-After`, a stream is slowed down.
//!
//! Identifiers never reach a log line, a metric or an error message: rows are referred to by
//! their index.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow_array::Array as _;
use axum::body::Body;
use axum::extract::{Extension, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Router, routing::MethodRouter};
use futures::StreamExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use super::access::{Caller, Grants, Throttle, Throttled, Verifier};
use super::arrow;
use super::audit::{Action, AuditLog, Outcome, Record};
use super::identifier::{
    Invalid, canonical_local, canonical_personal, parse_local, parse_personal,
};
use super::pseudonym::LocalKey;
use super::tls::{Certificates, TlsError, renewal_time};
use crate::adapters::openbao::{self, MAX_BATCH, Transit};

/// How a domain computes pseudonyms.
pub enum Engine {
    /// One Transit HMAC call per batch.
    Transit {
        /// Transit key name.
        key: String,
        /// Pinned key version.
        version: u64,
    },
    /// In-process HMAC with the key exported once at start.
    Local(LocalKey),
    /// Reversible: Transit convergent encryption with the domain's name as context.
    /// Re-identification needs a caller whose own token may decrypt.
    Reversible {
        /// Transit key name.
        key: String,
        /// Pinned key version.
        version: u64,
    },
}

/// A pseudonym domain as the service runs it.
pub struct Domain {
    /// The Transit key of the domain.
    pub key: String,
    /// How pseudonyms are computed.
    pub engine: Engine,
    /// The pinned key version (the epoch).
    pub version: u64,
}

/// Kind of identifiers in a request.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IdentifierKind {
    /// Personal identity or coordination numbers, in any accepted written form.
    Personnummer,
    /// Opaque local identifiers.
    Local,
}

#[derive(Deserialize)]
struct BatchRequest<'a> {
    kind: IdentifierKind,
    /// Borrowed from the request body where no escape needs decoding.
    #[serde(borrow)]
    identifiers: Vec<std::borrow::Cow<'a, str>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BatchResponse {
    domain: String,
    key_version: u64,
    pseudonyms: Pseudonyms,
    errors: Vec<RowError>,
}

#[derive(Serialize)]
struct RowError {
    index: usize,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabels {
    domain: String,
}

/// Metrics of the service: records, batches, row errors and batch latency per domain.
pub struct ServiceMetrics {
    registry: Registry,
    records: Family<DomainLabels, Counter>,
    batches: Family<DomainLabels, Counter>,
    errors: Family<DomainLabels, Counter>,
    latency: Family<DomainLabels, Histogram>,
}

impl Default for ServiceMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vardhub_pseudonymisation");
        let records = Family::default();
        let batches = Family::default();
        let errors = Family::default();
        let latency = Family::<DomainLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register("records", "Identifiers pseudonymised", records.clone());
        registry.register("batches", "Batches processed", batches.clone());
        registry.register("row_errors", "Rows refused as invalid", errors.clone());
        registry.register(
            "batch_seconds",
            "Time to pseudonymise one batch",
            latency.clone(),
        );
        Self {
            registry,
            records,
            batches,
            errors,
            latency,
        }
    }
}

/// Where the service's OpenBao token comes from.
pub use crate::adapters::openbao::Auth;

/// The largest JSON body accepted, in bytes.
pub const MAX_BODY: usize = 16 * 1024 * 1024;
/// The most rows in one JSON batch.
pub const MAX_ROWS: usize = 100_000;
/// The longest NDJSON line accepted, in bytes.
pub const MAX_LINE: usize = 1024;

/// Who may call the service: how tokens are verified, and the grants per domain.
#[derive(Clone)]
pub struct Access {
    /// Verifies callers' tokens.
    pub verifier: Arc<Verifier>,
    /// Who may use which domain.
    pub grants: Grants,
    /// Where every request, served or refused, is recorded.
    pub audit: AuditLog,
    /// Rows per second per caller; `None` leaves callers unthrottled.
    pub throttle: Option<Arc<Throttle>>,
}

impl Access {
    fn record(&self, record: Record<'_>) {
        self.audit.record(&record);
    }
}

/// An audit record of `outcome` for `caller` in `domain`; the rest left empty.
fn audited<'a>(
    action: Action,
    outcome: Outcome,
    caller: Option<&'a str>,
    domain: &'a str,
) -> Record<'a> {
    Record {
        action: Some(action),
        outcome,
        caller,
        openbao_entity: None,
        domain,
        rows: None,
        reason: None,
    }
}

/// Settings of the service.
#[derive(Clone)]
pub struct Config {
    /// OpenBao's address.
    pub openbao_addr: String,
    /// How to authenticate.
    pub auth: Auth,
    /// Mount of the Transit engine.
    pub transit_mount: String,
    /// Use in-process HMAC (`local`) instead of one Transit call per batch.
    pub local: bool,
    /// Domains: name → (Transit key name, pinned key version).
    pub domains: Vec<(String, String, u64)>,
    /// Names of the domains whose pseudonyms are reversible (convergent encryption).
    pub reversible: Vec<String>,
    /// Who may call the service.
    pub access: Access,
    /// Serve HTTPS with a certificate from OpenBao's PKI engine; `None` serves plain HTTP
    /// (tests in one process), where re-identification is refused.
    pub tls: Option<TlsSettings>,
}

/// Where the service's certificate comes from.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The PKI mount with the service's CA and its `server` role.
    pub pki_mount: String,
    /// The DNS names the certificate carries; the first is the common name.
    pub names: Vec<String>,
}

/// The running service's state.
pub struct Service {
    config: Config,
    transit: RwLock<Transit>,
    domains: HashMap<String, Domain>,
    openbao_up: AtomicBool,
    metrics: ServiceMetrics,
    http: reqwest::Client,
    /// The served certificate, when serving HTTPS, and when to take the next one.
    certificates: Option<(Arc<Certificates>, std::sync::Mutex<Instant>)>,
}

/// Errors while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// OpenBao refused or could not be reached.
    #[error(transparent)]
    OpenBao(#[from] openbao::Error),
    /// The login failed.
    #[error(transparent)]
    Login(#[from] openbao::LoginError),
    /// The certificate from OpenBao could not be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

async fn login(config: &Config) -> Result<(Transit, u64), StartError> {
    let (token, ttl) = config.auth.login(&config.openbao_addr).await?;
    Ok((
        Transit::new(&config.openbao_addr, &token, &config.transit_mount)?,
        ttl,
    ))
}

impl Service {
    /// Logs in to OpenBao and prepares every domain (in local mode: exports each pinned key
    /// version once). Fails closed: no domain, no service.
    pub async fn start(config: Config) -> Result<Arc<Self>, StartError> {
        let (transit, ttl) = login(&config).await?;
        let mut domains = HashMap::new();
        for (name, key, version) in &config.domains {
            let engine = if config.reversible.contains(name) {
                Engine::Reversible {
                    key: key.clone(),
                    version: *version,
                }
            } else if config.local {
                Engine::Local(LocalKey::new(
                    *version,
                    transit.export_hmac_key(key, *version).await?,
                ))
            } else {
                Engine::Transit {
                    key: key.clone(),
                    version: *version,
                }
            };
            domains.insert(
                name.clone(),
                Domain {
                    key: key.clone(),
                    engine,
                    version: *version,
                },
            );
        }
        let certificates = match &config.tls {
            Some(tls) => {
                let issued = transit
                    .issue_server_certificate(&tls.pki_mount, &tls.names)
                    .await?;
                let held = Certificates::new(&issued.certificate, &issued.private_key)?;
                Some((
                    Arc::new(held),
                    std::sync::Mutex::new(renewal_time(issued.expiration)),
                ))
            }
            None => None,
        };
        let service = Arc::new(Self {
            config,
            transit: RwLock::new(transit),
            domains,
            openbao_up: AtomicBool::new(true),
            metrics: ServiceMetrics::default(),
            http: reqwest::Client::new(),
            certificates,
        });
        tokio::spawn(Self::watch_openbao(Arc::downgrade(&service), ttl));
        tracing::info!(
            domains = service.domains.len(),
            local = service.config.local,
            "pseudonymisation service ready"
        );
        Ok(service)
    }

    /// Checks OpenBao every second and logs in again before the token expires (or after
    /// OpenBao comes back). Ends when the service is dropped.
    async fn watch_openbao(service: std::sync::Weak<Self>, ttl: u64) {
        let mut renew_at = (ttl > 0).then(|| Instant::now() + Duration::from_secs(ttl * 2 / 3));
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Some(s) = service.upgrade() else { return };
            let up = openbao::healthy(&s.http, &s.config.openbao_addr).await;
            let was_up = s.openbao_up.swap(up, Ordering::AcqRel);
            if up != was_up {
                tracing::warn!(openbao_up = up, "OpenBao availability changed");
            }
            let due = renew_at.is_some_and(|t| Instant::now() >= t) || (up && !was_up);
            if up && due && !matches!(s.config.auth, Auth::Token(_)) {
                match login(&s.config).await {
                    Ok((transit, ttl)) => {
                        *s.transit.write().await = transit;
                        renew_at = Some(Instant::now() + Duration::from_secs((ttl * 2 / 3).max(1)));
                        tracing::info!("renewed the OpenBao token");
                    }
                    Err(e) => tracing::warn!(error = %e, "could not log in to OpenBao again"),
                }
            }
            if up {
                s.renew_certificate().await;
            }
        }
    }

    /// Takes a new certificate from OpenBao when the current one reaches two thirds of its
    /// life; a failure is retried at the next check, while the current one still serves.
    async fn renew_certificate(&self) {
        let (Some((held, next)), Some(tls)) = (&self.certificates, &self.config.tls) else {
            return;
        };
        if next.lock().map_or(true, |t| Instant::now() < *t) {
            return;
        }
        let issued = self
            .transit
            .read()
            .await
            .issue_server_certificate(&tls.pki_mount, &tls.names)
            .await;
        match issued {
            Ok(issued) => match held.replace(&issued.certificate, &issued.private_key) {
                Ok(()) => {
                    if let Ok(mut t) = next.lock() {
                        *t = renewal_time(issued.expiration);
                    }
                    tracing::info!("took a new server certificate from OpenBao");
                }
                Err(e) => tracing::warn!(error = %e, "the new server certificate is unusable"),
            },
            Err(e) => tracing::warn!(error = %e, "could not take a new server certificate"),
        }
    }

    /// Whether requests arrive over TLS.
    pub fn is_tls(&self) -> bool {
        self.certificates.is_some()
    }

    /// Serves the API on `listener` until `shutdown` completes: HTTPS when the service has a
    /// certificate, plain HTTP otherwise.
    pub async fn serve(
        self: &Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        match &self.certificates {
            Some((held, _)) => {
                let config = held.server_config().map_err(std::io::Error::other)?;
                super::tls::serve(listener, router, config, shutdown).await
            }
            None => {
                axum::serve(listener, router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        }
    }

    /// Whether requests can be served: OpenBao answers and is unsealed. Fails closed in
    /// local mode too, so that a sealed OpenBao stops all pseudonymisation.
    pub fn is_ready(&self) -> bool {
        self.openbao_up.load(Ordering::Acquire)
    }

    /// Pseudonymises already validated canonical identifiers.
    async fn pseudonymise(
        &self,
        domain: &str,
        canonical: &[&[u8]],
    ) -> Result<Vec<String>, openbao::Error> {
        let Some(d) = self.domains.get(domain) else {
            return Err(openbao::Error::Unexpected("unknown domain".into()));
        };
        let started = Instant::now();
        let out = match &d.engine {
            Engine::Local(key) => canonical.iter().map(|c| key.pseudonym(c)).collect(),
            Engine::Reversible { key, version } => {
                self.transit
                    .read()
                    .await
                    .encrypt_batch(key, *version, domain.as_bytes(), canonical)
                    .await?
            }
            Engine::Transit { key, version } => {
                self.transit
                    .read()
                    .await
                    .hmac_batch(key, *version, canonical)
                    .await?
            }
        };
        self.counted(domain, out.len(), started);
        Ok(out)
    }

    /// Counts a batch of `records` pseudonyms for `domain` begun at `started`.
    fn counted(&self, domain: &str, records: usize, started: Instant) {
        let labels = DomainLabels {
            domain: domain.to_string(),
        };
        self.metrics
            .records
            .get_or_create(&labels)
            .inc_by(records as u64);
        self.metrics.batches.get_or_create(&labels).inc();
        self.metrics
            .latency
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts `errors` refused rows for `domain`.
    fn refused_rows(&self, domain: &str, errors: usize) {
        if errors > 0 {
            let labels = DomainLabels {
                domain: domain.to_string(),
            };
            self.metrics
                .errors
                .get_or_create(&labels)
                .inc_by(errors as u64);
        }
    }

    /// Pseudonymises one Arrow column of identifiers, row for row. In local mode each row is
    /// validated and pseudonymised straight into the answer's buffers, with no allocation per
    /// row; the other modes go through [`Self::pseudonymise`] as a JSON batch does.
    async fn pseudonymise_column(
        &self,
        domain: &str,
        kind: IdentifierKind,
        year: i32,
        identifiers: &arrow_array::StringArray,
    ) -> Result<arrow::Answer, openbao::Error> {
        use arrow_array::builder::StringBuilder;
        let Some(d) = self.domains.get(domain) else {
            return Err(openbao::Error::Unexpected("unknown domain".into()));
        };
        let rows = identifiers.len();
        let mut pseudonyms = StringBuilder::with_capacity(rows, rows * 56);
        // Refused rows are few: their reasons are gathered, and the error column built once.
        let mut refused: Vec<(usize, String)> = Vec::new();
        if let Engine::Local(key) = &d.engine {
            let started = Instant::now();
            each_local(
                key,
                kind,
                year,
                identifiers.iter(),
                |index, row| match row {
                    Ok(pseudonym) => pseudonyms.append_value(pseudonym),
                    Err(e) => {
                        pseudonyms.append_null();
                        refused.push((index, e.to_string()));
                    }
                },
            );
            self.counted(domain, rows - refused.len(), started);
        } else {
            let values: Vec<std::borrow::Cow<'_, str>> = identifiers
                .iter()
                .map(|v| v.unwrap_or_default().into())
                .collect();
            let Rows {
                valid,
                positions,
                errors,
            } = rows_of(kind, &values, year);
            let inputs: Vec<&[u8]> = valid.iter().map(|s| s.as_bytes()).collect();
            let mut served = self.pseudonymise(domain, &inputs).await?.into_iter();
            let mut next_valid = positions.into_iter().peekable();
            for index in 0..rows {
                if next_valid.next_if_eq(&index).is_some() {
                    pseudonyms.append_option(served.next());
                } else {
                    pseudonyms.append_null();
                }
            }
            refused = errors.into_iter().map(|e| (e.index, e.reason)).collect();
        }
        self.refused_rows(domain, refused.len());
        let errors = if refused.is_empty() {
            arrow_array::StringArray::new_null(rows)
        } else {
            let mut errors = StringBuilder::with_capacity(rows, 0);
            let mut reasons = refused.into_iter().peekable();
            for index in 0..rows {
                match reasons.next_if(|(i, _)| *i == index) {
                    Some((_, reason)) => errors.append_value(reason),
                    None => errors.append_null(),
                }
            }
            errors.finish()
        };
        Ok(arrow::Answer {
            pseudonyms: pseudonyms.finish(),
            errors,
        })
    }

    /// The canonical form of one row. `year` resolves the century of ten-digit numbers; it is
    /// read once per request, not per row.
    fn canonical(kind: IdentifierKind, value: &str, year: i32) -> Result<String, Invalid> {
        match kind {
            IdentifierKind::Personnummer => parse_personal(value, year).map(|i| i.into_canonical()),
            IdentifierKind::Local => parse_local(value).map(|i| i.into_canonical()),
        }
    }

    /// The domain a request names, if the service can serve it: OpenBao must be up (fail
    /// closed) and the domain known.
    fn domain(&self, name: &str) -> Result<&Domain, Box<Response>> {
        if !self.is_ready() {
            let detail = "OpenBao is unreachable or sealed; try again later";
            return Err(Box::new(problem(StatusCode::SERVICE_UNAVAILABLE, detail)));
        }
        self.domains
            .get(name)
            .ok_or_else(|| Box::new(problem(StatusCode::NOT_FOUND, "no such pseudonym domain")))
    }

    /// The HTTP routes.
    pub fn router(self: &Arc<Self>) -> Router {
        let guarded = |handler: MethodRouter<Arc<Service>>| {
            handler.route_layer(middleware::from_fn_with_state(self.clone(), authorise))
        };
        Router::new()
            .route(
                "/v1/domains/{domain}/pseudonyms",
                guarded(post(pseudonymise)),
            )
            .route("/v1/domains/{domain}/migrations", guarded(post(migrate)))
            .route(
                "/v1/domains/{domain}/reidentifications",
                guarded(post(reidentify)),
            )
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/readyz",
                get(|State(s): State<Arc<Service>>| async move {
                    if s.is_ready() {
                        (StatusCode::OK, "ready")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "OpenBao unreachable or sealed",
                        )
                    }
                }),
            )
            .route(
                "/metrics",
                get(|State(s): State<Arc<Service>>| async move {
                    let mut out = String::new();
                    let _ =
                        prometheus_client::encoding::text::encode(&mut out, &s.metrics.registry);
                    out
                }),
            )
            .with_state(self.clone())
    }
}

/// Authenticates the caller of a `/v1` request and checks its grant for the domain, before
/// anything else is read. The caller is handed on to the handler for its audit line.
async fn authorise(
    State(service): State<Arc<Service>>,
    Path(domain): Path<String>,
    mut request: Request,
    next: Next,
) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let caller = match token {
        None => Err(super::access::Refusal::Missing),
        Some(token) => service.config.access.verifier.verify(token).await,
    };
    let access = &service.config.access;
    let action = Action::of_path(request.uri().path());
    let caller = match caller {
        Ok(caller) => caller,
        Err(refusal) => {
            let reason = refusal.to_string();
            let unconfirmed = refusal == super::access::Refusal::Unconfirmed;
            access.record(Record {
                action,
                outcome: if unconfirmed {
                    Outcome::Failed
                } else {
                    Outcome::Unauthenticated
                },
                caller: None,
                openbao_entity: None,
                domain: &domain,
                rows: None,
                reason: Some(&reason),
            });
            if unconfirmed {
                // Fail closed, and say when to come back.
                let mut response = problem(StatusCode::SERVICE_UNAVAILABLE, &reason);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                return response;
            }
            let mut response = problem(StatusCode::UNAUTHORIZED, &refusal.to_string());
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    };
    if !access.grants.allows(&domain, &caller) {
        let name = caller.to_string();
        access.record(Record {
            action,
            outcome: Outcome::Forbidden,
            caller: Some(&name),
            openbao_entity: None,
            domain: &domain,
            rows: None,
            reason: Some("no grant for the domain"),
        });
        let detail = format!("{caller} has no grant for pseudonym domain {domain}");
        return problem(StatusCode::FORBIDDEN, &detail);
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// Parses a domain given as `NAME=KEY@VERSION`.
pub fn parse_domain(text: &str) -> Result<(String, String, u64), String> {
    let err = || format!("domain {text:?} is not NAME=KEY@VERSION");
    let (name, rest) = text.split_once('=').ok_or_else(err)?;
    let (key, version) = rest.rsplit_once('@').ok_or_else(err)?;
    let version: u64 = version.parse().map_err(|_| err())?;
    if name.is_empty() || key.is_empty() || version == 0 {
        return Err(err());
    }
    Ok((name.to_string(), key.to_string(), version))
}

fn current_year() -> i32 {
    k8s_openapi::jiff::Zoned::now().year().into()
}

fn problem(status: StatusCode, detail: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::json!({ "detail": detail }).to_string(),
    )
        .into_response()
}

async fn pseudonymise(
    State(service): State<Arc<Service>>,
    Path(domain): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let d = match service.domain(&domain) {
        Ok(d) => d,
        Err(response) => {
            return failed(&service, Action::Pseudonymise, &caller, &domain, *response);
        }
    };
    let version = d.version;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind = match headers
        .get("x-identifier-kind")
        .and_then(|v| v.to_str().ok())
    {
        Some("local") => IdentifierKind::Local,
        _ => IdentifierKind::Personnummer,
    };
    if content_type.starts_with("application/x-ndjson") {
        return stream_ndjson(service, domain, caller, kind, body);
    }
    if content_type.starts_with(arrow::CONTENT_TYPE) {
        return pseudonymise_arrow(service, domain, caller, kind, version, body).await;
    }
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(response) => {
            return failed(&service, Action::Pseudonymise, &caller, &domain, *response);
        }
    };
    let request: BatchRequest = match parse(&bytes) {
        Ok(r) => r,
        Err(response) => {
            return failed(&service, Action::Pseudonymise, &caller, &domain, *response);
        }
    };
    if let Err(response) = admitted(&service, &caller, request.identifiers.len()) {
        return failed(&service, Action::Pseudonymise, &caller, &domain, *response);
    }
    let count = request.identifiers.len();
    let (pseudonyms, errors) = if let Engine::Local(key) = &d.engine {
        let started = Instant::now();
        let mut text = String::with_capacity(count * 56);
        let mut rows = Vec::with_capacity(count);
        let mut errors = Vec::new();
        let values = request.identifiers.iter().map(|v| Some(v.as_ref()));
        each_local(
            key,
            request.kind,
            current_year(),
            values,
            |index, row| match row {
                Ok(pseudonym) => {
                    let start = text.len();
                    text.push_str(pseudonym);
                    rows.push(Some(start..text.len()));
                }
                Err(e) => {
                    rows.push(None);
                    errors.push(RowError {
                        index,
                        reason: e.to_string(),
                    });
                }
            },
        );
        service.counted(&domain, count - errors.len(), started);
        service.refused_rows(&domain, errors.len());
        (Pseudonyms::Packed { text, rows }, errors)
    } else {
        let Rows {
            valid,
            positions,
            errors,
        } = rows(&service, &domain, request.kind, &request.identifiers);
        let inputs: Vec<&[u8]> = valid.iter().map(|s| s.as_bytes()).collect();
        let out = match service.pseudonymise(&domain, &inputs).await {
            Ok(out) => out,
            Err(e) => return refused_by_openbao(&service, &caller, &domain, &e),
        };
        let mut pseudonyms = vec![None; count];
        for (p, index) in out.into_iter().zip(positions) {
            pseudonyms[index] = Some(p);
        }
        (Pseudonyms::Rows(pseudonyms), errors)
    };
    let name = caller.to_string();
    service.config.access.record(Record {
        rows: Some(count),
        ..audited(Action::Pseudonymise, Outcome::Served, Some(&name), &domain)
    });
    axum::Json(BatchResponse {
        domain,
        key_version: version,
        pseudonyms,
        errors,
    })
    .into_response()
}

/// The answer to a batch OpenBao refused or failed (transit and reversible modes), recorded as
/// failed.
fn refused_by_openbao(
    service: &Service,
    caller: &Caller,
    domain: &str,
    e: &openbao::Error,
) -> Response {
    tracing::warn!(error = %e, "pseudonymisation failed");
    let name = caller.to_string();
    service.config.access.record(Record {
        reason: Some("OpenBao refused the batch"),
        ..audited(Action::Pseudonymise, Outcome::Failed, Some(&name), domain)
    });
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "OpenBao refused the batch; try again later",
    )
}

/// `POST /v1/domains/{domain}/pseudonyms` with an Arrow IPC stream: the whole body is read
/// (at most [`MAX_BODY`] bytes and [`MAX_ROWS`] rows, the caller's share admitted as for
/// JSON), every batch answered row for row, and one audit record written.
async fn pseudonymise_arrow(
    service: Arc<Service>,
    domain: String,
    caller: Caller,
    kind: IdentifierKind,
    version: u64,
    body: Body,
) -> Response {
    let refused =
        |response: Response| failed(&service, Action::Pseudonymise, &caller, &domain, response);
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(response) => return refused(*response),
    };
    let columns = match arrow::read_identifiers(bytes) {
        Ok(c) => c,
        Err(e) => return refused(problem(StatusCode::BAD_REQUEST, &e.to_string())),
    };
    let rows: usize = columns.iter().map(|c| c.len()).sum();
    if let Err(response) = admitted(&service, &caller, rows) {
        return refused(*response);
    }
    let year = current_year();
    let mut answers = Vec::with_capacity(columns.len());
    for column in &columns {
        match service
            .pseudonymise_column(&domain, kind, year, column)
            .await
        {
            Ok(answer) => answers.push(answer),
            Err(e) => return refused_by_openbao(&service, &caller, &domain, &e),
        }
    }
    let name = caller.to_string();
    service.config.access.record(Record {
        rows: Some(rows),
        ..audited(Action::Pseudonymise, Outcome::Served, Some(&name), &domain)
    });
    match arrow::write_answers(arrow::answer_schema(&domain, version), answers) {
        Ok(stream) => ([(header::CONTENT_TYPE, arrow::CONTENT_TYPE)], stream).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "could not encode an Arrow answer");
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not encode the answer",
            )
        }
    }
}

/// Validates and pseudonymises rows in process (local mode) with no allocation per row: each
/// row's pseudonym, borrowed from one reused buffer, or why it was refused, goes to `row`.
fn each_local<'a>(
    key: &LocalKey,
    kind: IdentifierKind,
    year: i32,
    values: impl Iterator<Item = Option<&'a str>>,
    mut row: impl FnMut(usize, Result<&str, Invalid>),
) {
    let mut pseudonym = String::with_capacity(64);
    for (index, value) in values.enumerate() {
        let written = match (kind, value) {
            (_, None) => Err(Invalid::Empty),
            (IdentifierKind::Personnummer, Some(v)) => {
                canonical_personal(v, year).map(|(_, c)| key.pseudonym_into(&c, &mut pseudonym))
            }
            (IdentifierKind::Local, Some(v)) => {
                canonical_local(v).map(|c| key.pseudonym_into(c.as_bytes(), &mut pseudonym))
            }
        };
        row(index, written.map(|()| pseudonym.as_str()));
    }
}

/// A JSON answer's pseudonyms: one string per row, or, in local mode, every pseudonym in one
/// buffer with each row's range, so that no row allocates.
enum Pseudonyms {
    Rows(Vec<Option<String>>),
    Packed {
        text: String,
        rows: Vec<Option<std::ops::Range<usize>>>,
    },
}

impl Serialize for Pseudonyms {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Pseudonyms::Rows(rows) => rows.serialize(serializer),
            Pseudonyms::Packed { text, rows } => serializer.collect_seq(
                rows.iter()
                    .map(|r| r.as_ref().and_then(|r| text.get(r.clone()))),
            ),
        }
    }
}

/// The valid rows of a batch in canonical form, where they stood, and the refused rows.
struct Rows {
    valid: Vec<String>,
    positions: Vec<usize>,
    errors: Vec<RowError>,
}

fn rows(
    service: &Service,
    domain: &str,
    kind: IdentifierKind,
    identifiers: &[std::borrow::Cow<'_, str>],
) -> Rows {
    let out = rows_of(kind, identifiers, current_year());
    service.refused_rows(domain, out.errors.len());
    out
}

/// [`rows`] without counting.
fn rows_of(kind: IdentifierKind, identifiers: &[std::borrow::Cow<'_, str>], year: i32) -> Rows {
    let mut out = Rows {
        valid: Vec::with_capacity(identifiers.len()),
        positions: Vec::with_capacity(identifiers.len()),
        errors: Vec::new(),
    };
    for (index, value) in identifiers.iter().enumerate() {
        match Service::canonical(kind, value, year) {
            Ok(c) => {
                out.valid.push(c);
                out.positions.push(index);
            }
            Err(e) => out.errors.push(RowError {
                index,
                reason: e.to_string(),
            }),
        }
    }
    out
}

/// Records a request of `caller` that ends in `response` (an error) as failed, with the
/// response's status as the reason, and hands the response back.
fn failed(
    service: &Service,
    action: Action,
    caller: &Caller,
    domain: &str,
    response: Response,
) -> Response {
    let name = caller.to_string();
    let status = response.status();
    let reason = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    service.config.access.record(Record {
        reason: Some(reason.trim_end()),
        ..audited(action, Outcome::Failed, Some(&name), domain)
    });
    response
}

/// Reads a whole request body of at most [`MAX_BODY`] bytes.
async fn read_body(body: Body) -> Result<axum::body::Bytes, Box<Response>> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        let detail = format!(
            "the body is larger than {} MiB; split it, or stream NDJSON",
            MAX_BODY >> 20
        );
        Box::new(problem(StatusCode::PAYLOAD_TOO_LARGE, &detail))
    })
}

/// Refuses a batch of more than [`MAX_ROWS`] rows, or more than the caller may send now:
/// 429 with `Retry-After` while the caller has used its share, 413 for more rows than a
/// request may carry.
fn admitted(service: &Service, caller: &Caller, rows: usize) -> Result<(), Box<Response>> {
    if rows > MAX_ROWS {
        let detail = format!("a batch holds at most {MAX_ROWS} rows; split it, or stream NDJSON");
        return Err(Box::new(problem(StatusCode::PAYLOAD_TOO_LARGE, &detail)));
    }
    let Some(throttle) = &service.config.access.throttle else {
        return Ok(());
    };
    match throttle.admit(caller, rows) {
        Ok(()) => Ok(()),
        Err(Throttled::TooMany(max)) => {
            let detail = format!(
                "this service takes at most {max} rows per caller and second, and so per request; split the batch, or stream NDJSON"
            );
            Err(Box::new(problem(StatusCode::PAYLOAD_TOO_LARGE, &detail)))
        }
        Err(Throttled::Wait(wait)) => {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            let detail = format!(
                "{caller} has sent its share of {} rows per second; retry in {seconds} s",
                throttle.max_rows()
            );
            let mut response = problem(StatusCode::TOO_MANY_REQUESTS, &detail);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
            Err(Box::new(response))
        }
    }
}

/// Parses a JSON body; the error names the position, never a value.
fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(bytes).map_err(|e| {
        let detail = format!("malformed batch at line {} column {}", e.line(), e.column());
        Box::new(problem(StatusCode::BAD_REQUEST, &detail))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MigrationRequest<'a> {
    kind: IdentifierKind,
    #[serde(borrow)]
    identifiers: Vec<std::borrow::Cow<'a, str>>,
    from_version: u64,
}

#[derive(Serialize)]
struct Pair {
    old: String,
    new: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MigrationResponse {
    domain: String,
    from_version: u64,
    to_version: u64,
    pairs: Vec<Option<Pair>>,
    errors: Vec<RowError>,
}

/// `POST /v1/domains/{domain}/migrations`: for each identifier, its pseudonym under an
/// earlier key version (`fromVersion`) and under the domain's pinned version, so that a
/// holder of old pseudonyms can build the old → new mapping after a rotation. The old
/// version is always computed by Transit, so no old key is ever held in memory.
async fn migrate(
    State(service): State<Arc<Service>>,
    Path(domain): Path<String>,
    Extension(caller): Extension<Caller>,
    body: Body,
) -> Response {
    let d = match service.domain(&domain) {
        Ok(d) => d,
        Err(response) => return failed(&service, Action::Migrate, &caller, &domain, *response),
    };
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(response) => return failed(&service, Action::Migrate, &caller, &domain, *response),
    };
    let request: MigrationRequest = match parse(&bytes) {
        Ok(r) => r,
        Err(response) => return failed(&service, Action::Migrate, &caller, &domain, *response),
    };
    if let Err(response) = admitted(&service, &caller, request.identifiers.len()) {
        return failed(&service, Action::Migrate, &caller, &domain, *response);
    }
    if request.from_version == 0 || request.from_version >= d.version {
        return failed(
            &service,
            Action::Migrate,
            &caller,
            &domain,
            problem(
                StatusCode::BAD_REQUEST,
                &format!(
                    "fromVersion must be between 1 and {} (the pinned version minus one)",
                    d.version - 1
                ),
            ),
        );
    }
    let Rows {
        valid,
        positions,
        errors,
    } = rows(&service, &domain, request.kind, &request.identifiers);
    let inputs: Vec<&[u8]> = valid.iter().map(|s| s.as_bytes()).collect();
    let old = service
        .transit
        .read()
        .await
        .hmac_batch(&d.key, request.from_version, &inputs)
        .await;
    let new = service.pseudonymise(&domain, &inputs).await;
    let (Ok(old), Ok(new)) = (old, new) else {
        return failed(
            &service,
            Action::Migrate,
            &caller,
            &domain,
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "OpenBao refused the batch; try again later",
            ),
        );
    };
    let mut pairs: Vec<Option<Pair>> = (0..request.identifiers.len()).map(|_| None).collect();
    for ((old, new), index) in old.into_iter().zip(new).zip(positions) {
        pairs[index] = Some(Pair { old, new });
    }
    let name = caller.to_string();
    service.config.access.record(Record {
        rows: Some(pairs.len()),
        ..audited(Action::Migrate, Outcome::Served, Some(&name), &domain)
    });
    axum::Json(MigrationResponse {
        domain,
        from_version: request.from_version,
        to_version: d.version,
        pairs,
        errors,
    })
    .into_response()
}

#[derive(Deserialize)]
struct ReidentifyRequest {
    pseudonyms: Vec<String>,
}

#[derive(Serialize)]
struct ReidentifyResponse {
    identifiers: Vec<String>,
}

/// `POST /v1/domains/{domain}/reidentifications` with `X-Vault-Token`: the caller's own
/// OpenBao token, which must carry the domain's re-identification policy (OpenBao decides,
/// not this service). Every attempt is written to the audit log with the caller's name;
/// identifiers and pseudonyms never are.
async fn reidentify(
    State(service): State<Arc<Service>>,
    Path(domain): Path<String>,
    Extension(caller_sa): Extension<Caller>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let d = match service.domain(&domain) {
        Ok(d) => d,
        Err(response) => {
            return failed(&service, Action::Reidentify, &caller_sa, &domain, *response);
        }
    };
    let Engine::Reversible { key, .. } = &d.engine else {
        return failed(
            &service,
            Action::Reidentify,
            &caller_sa,
            &domain,
            problem(
                StatusCode::CONFLICT,
                "this domain's pseudonyms are not reversible",
            ),
        );
    };
    if !service.is_tls() {
        // A caller's OpenBao token that may decrypt is never taken over plain HTTP.
        return failed(
            &service,
            Action::Reidentify,
            &caller_sa,
            &domain,
            problem(
                StatusCode::FORBIDDEN,
                "re-identification is served only over TLS",
            ),
        );
    }
    let Some(token) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) else {
        return failed(
            &service,
            Action::Reidentify,
            &caller_sa,
            &domain,
            problem(
                StatusCode::UNAUTHORIZED,
                "send your own OpenBao token in X-Vault-Token",
            ),
        );
    };
    let caller = match Transit::new(
        &service.config.openbao_addr,
        token,
        &service.config.transit_mount,
    ) {
        Ok(c) => c,
        Err(_) => {
            return failed(
                &service,
                Action::Reidentify,
                &caller_sa,
                &domain,
                problem(StatusCode::UNAUTHORIZED, "unusable OpenBao token"),
            );
        }
    };
    let Ok(name) = caller.caller().await else {
        let name = caller_sa.to_string();
        service.config.access.record(Record {
            reason: Some("OpenBao does not accept the caller's token"),
            ..audited(
                Action::Reidentify,
                Outcome::RefusedByOpenbao,
                Some(&name),
                &domain,
            )
        });
        return problem(
            StatusCode::UNAUTHORIZED,
            "OpenBao does not accept this token",
        );
    };
    let bytes = match read_body(body).await {
        Ok(b) => b,
        Err(response) => {
            return failed(&service, Action::Reidentify, &caller_sa, &domain, *response);
        }
    };
    let request: ReidentifyRequest = match parse(&bytes) {
        Ok(r) => r,
        Err(response) => {
            return failed(&service, Action::Reidentify, &caller_sa, &domain, *response);
        }
    };
    if let Err(response) = admitted(&service, &caller_sa, request.pseudonyms.len()) {
        return failed(&service, Action::Reidentify, &caller_sa, &domain, *response);
    }
    let pseudonyms: Vec<&str> = request.pseudonyms.iter().map(String::as_str).collect();
    match caller
        .decrypt_batch(key, domain.as_bytes(), &pseudonyms)
        .await
    {
        Ok(plain) => {
            let caller = caller_sa.to_string();
            service.config.access.record(Record {
                openbao_entity: Some(&name),
                rows: Some(plain.len()),
                ..audited(Action::Reidentify, Outcome::Served, Some(&caller), &domain)
            });
            let identifiers = plain
                .into_iter()
                .map(|p| String::from_utf8_lossy(&p).into_owned())
                .collect();
            axum::Json(ReidentifyResponse { identifiers }).into_response()
        }
        Err(openbao::Error::Request(vaultrs::error::ClientError::APIError {
            code: 403, ..
        })) => {
            let caller = caller_sa.to_string();
            service.config.access.record(Record {
                openbao_entity: Some(&name),
                reason: Some("the caller's OpenBao policy does not allow it"),
                ..audited(
                    Action::Reidentify,
                    Outcome::RefusedByOpenbao,
                    Some(&caller),
                    &domain,
                )
            });
            problem(
                StatusCode::FORBIDDEN,
                "your OpenBao token may not re-identify in this domain",
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "re-identification failed");
            let caller = caller_sa.to_string();
            service.config.access.record(Record {
                openbao_entity: Some(&name),
                reason: Some("OpenBao could not decrypt the batch"),
                ..audited(Action::Reidentify, Outcome::Failed, Some(&caller), &domain)
            });
            problem(
                StatusCode::BAD_REQUEST,
                "OpenBao could not decrypt the pseudonyms of this batch",
            )
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Line {
    Ok { index: usize, pseudonym: String },
    Err { index: usize, error: String },
}

fn stream_ndjson(
    service: Arc<Service>,
    domain: String,
    caller: Caller,
    kind: IdentifierKind,
    body: Body,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(8);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut pending = Vec::<u8>::new();
        let mut index = 0usize;
        let year = current_year();
        let mut batch: Vec<(usize, Result<String, String>)> = Vec::with_capacity(MAX_BATCH);
        let mut done = false;
        while !done {
            match stream.next().await {
                Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                Some(Err(_)) => return,
                None => done = true,
            }
            // Complete lines are taken in one pass; the unfinished tail stays for the next chunk.
            let complete = match pending.iter().rposition(|b| *b == b'\n') {
                Some(last) => last + 1,
                None if done => pending.len(),
                None if pending.len() > MAX_LINE => {
                    let name = caller.to_string();
                    service.config.access.record(Record {
                        rows: Some(index),
                        reason: Some("a line is longer than the limit"),
                        ..audited(Action::Pseudonymise, Outcome::Failed, Some(&name), &domain)
                    });
                    let _ = tx
                        .send(Err(std::io::Error::other(
                            "a line is longer than the limit",
                        )))
                        .await;
                    return;
                }
                None => continue,
            };
            let tail = pending.split_off(complete);
            let lines = std::mem::replace(&mut pending, tail);
            for line in lines.split(|b| *b == b'\n') {
                let text = std::str::from_utf8(line).map(str::trim);
                if text.is_ok_and(str::is_empty) {
                    continue;
                }
                let row = match text {
                    _ if line.len() > MAX_LINE => Err(format!("longer than {MAX_LINE} bytes")),
                    Err(_) => Err("not UTF-8".to_string()),
                    // Borrowed where the string has no escape, decoded where it has.
                    Ok(text) => match serde_json::from_str::<&str>(text)
                        .map(std::borrow::Cow::Borrowed)
                        .or_else(|_| serde_json::from_str::<String>(text).map(Into::into))
                    {
                        Ok(value) => {
                            Service::canonical(kind, &value, year).map_err(|e| e.to_string())
                        }
                        Err(_) => Err("not a JSON string".to_string()),
                    },
                };
                batch.push((index, row));
                index += 1;
                if batch.len() == MAX_BATCH
                    && flush(&service, &domain, &caller, &mut batch, &tx)
                        .await
                        .is_err()
                {
                    return;
                }
            }
        }
        if flush(&service, &domain, &caller, &mut batch, &tx)
            .await
            .is_ok()
        {
            let name = caller.to_string();
            service.config.access.record(Record {
                rows: Some(index),
                ..audited(Action::Pseudonymise, Outcome::Served, Some(&name), &domain)
            });
        }
    });
    let body = Body::from_stream(tokio_stream_from(rx));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(body)
        .unwrap_or_else(|_| problem(StatusCode::INTERNAL_SERVER_ERROR, "response"))
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<String, std::io::Error>>,
) -> impl futures::Stream<Item = Result<String, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Pseudonymises one batch of a stream and sends its lines; a caller over its share of rows
/// waits here, so a stream slows down instead of failing.
async fn flush(
    service: &Service,
    domain: &str,
    caller: &Caller,
    batch: &mut Vec<(usize, Result<String, String>)>,
    tx: &tokio::sync::mpsc::Sender<Result<String, std::io::Error>>,
) -> Result<(), ()> {
    if batch.is_empty() {
        return Ok(());
    }
    if let Some(throttle) = &service.config.access.throttle {
        // A batch never holds more than MAX_BATCH rows, below any share the schema allows.
        throttle.wait(caller, batch.len()).await.map_err(|_| ())?;
    }
    let valid: Vec<&[u8]> = batch
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().map(|s| s.as_bytes()))
        .collect();
    let mut out = match service.pseudonymise(domain, &valid).await {
        Ok(out) => out.into_iter(),
        Err(e) => {
            tracing::warn!(error = %e, "pseudonymisation failed mid-stream");
            let _ = tx
                .send(Err(std::io::Error::other("OpenBao refused a batch")))
                .await;
            return Err(());
        }
    };
    let mut text = String::new();
    let mut errors = 0u64;
    for (index, row) in batch.drain(..) {
        let line = match row {
            Ok(_) => Line::Ok {
                index,
                pseudonym: out.next().unwrap_or_default(),
            },
            Err(error) => {
                errors += 1;
                Line::Err { index, error }
            }
        };
        text.push_str(&serde_json::to_string(&line).unwrap_or_default());
        text.push('\n');
    }
    if errors > 0 {
        service
            .metrics
            .errors
            .get_or_create(&DomainLabels {
                domain: domain.to_string(),
            })
            .inc_by(errors);
    }
    tx.send(Ok(text)).await.map_err(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_name_key_and_version() {
        assert_eq!(
            parse_domain("region-01=pseudo-region-01@3"),
            Ok(("region-01".into(), "pseudo-region-01".into(), 3))
        );
        assert!(parse_domain("region-01=key").is_err());
        assert!(parse_domain("=key@1").is_err());
        assert!(parse_domain("a=key@0").is_err());
    }
}
