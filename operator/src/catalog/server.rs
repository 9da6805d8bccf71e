//! The catalogue's HTTP component. It follows its `CatalogService` and the `Dataset`s of its
//! namespace through the API server (read-only) and serves the catalogue they make:
//!
//! - `GET /catalog?page=N`: a page of the catalogue with Hydra paging links, also as
//!   `Link` headers; `/` is the first page.
//! - `GET /datasets/{name}`: one dataset's resource.
//! - `GET /variables.csv`: the variable list.
//! - `GET /healthz`, `GET /readyz`.
//!
//! RDF is chosen by the `Accept` header (Turtle, JSON-LD, RDF/XML, N-Triples) or
//! `?format=`; the `ETag` starts with the catalogue's digest, which the operator also
//! reports in the `CatalogService` status.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{StreamExt, TryStreamExt};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client};
use tokio::sync::watch;

use super::Catalogue;
use super::format::{self, Format};
use super::graph::Triples;
use crate::api::{CatalogService, Dataset};

/// The catalogue being served; `None` until the first complete view of the cluster.
pub type Current = watch::Receiver<Option<Arc<Catalogue>>>;

#[derive(serde::Deserialize)]
struct Params {
    page: Option<usize>,
    format: Option<String>,
}

/// The routes, serving whatever `current` holds.
pub fn router(current: Current) -> Router {
    Router::new()
        .route("/", get(catalog_page))
        .route("/catalog", get(catalog_page))
        .route("/datasets/{name}", get(dataset))
        .route("/variables.csv", get(variables))
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(c): State<Current>| async move {
                if c.borrow().is_some() {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "waiting for the catalogue")
                }
            }),
        )
        .with_state(current)
}

/// A refused request: its status and a message saying why.
struct Reject(StatusCode, String);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

fn snapshot(current: &Current) -> Result<Arc<Catalogue>, Reject> {
    current.borrow().clone().ok_or_else(|| {
        Reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "the catalogue is not loaded yet".into(),
        )
    })
}

fn choose(headers: &HeaderMap, params: &Params) -> Result<Format, Reject> {
    if let Some(name) = &params.format {
        return Format::parse(name).ok_or_else(|| {
            Reject(
                StatusCode::BAD_REQUEST,
                format!("format: unknown format {name:?}; use turtle, jsonld, rdfxml or ntriples"),
            )
        });
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    format::negotiate(accept).ok_or_else(|| {
        let offered: Vec<&str> = Format::ALL.iter().map(|f| f.media_type()).collect();
        Reject(
            StatusCode::NOT_ACCEPTABLE,
            format!("the catalogue is offered as {}", offered.join(", ")),
        )
    })
}

fn rdf(
    headers: &HeaderMap,
    triples: &Triples,
    format: Format,
    etag: String,
    links: Vec<String>,
) -> Response {
    let etag = format!("\"{etag}.{}\"", format.extension());
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let body = match format::serialize(triples, format) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "serialising the catalogue failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.media_type()),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if !links.is_empty()
        && let Ok(v) = HeaderValue::from_str(&links.join(", "))
    {
        h.insert(header::LINK, v);
    }
    response
}

async fn catalog_page(
    State(current): State<Current>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, Reject> {
    let catalogue = snapshot(&current)?;
    let format = choose(&headers, &params)?;
    let number = params.page.unwrap_or(1);
    let pages = catalogue.pages();
    let Some(triples) = catalogue.page(number) else {
        return Err(Reject(
            StatusCode::NOT_FOUND,
            format!("page: {number} is outside 1..={pages}"),
        ));
    };
    let url = |n: usize| format!("{}?page={n}", super::graph::catalog_iri(&catalogue.spec));
    let mut links = vec![
        format!("<{}>; rel=\"first\"", url(1)),
        format!("<{}>; rel=\"last\"", url(pages)),
    ];
    if number > 1 {
        links.push(format!("<{}>; rel=\"prev\"", url(number - 1)));
    }
    if number < pages {
        links.push(format!("<{}>; rel=\"next\"", url(number + 1)));
    }
    let etag = format!("{}.{number}", catalogue.digest());
    Ok(rdf(&headers, &triples, format, etag, links))
}

async fn dataset(
    State(current): State<Current>,
    Path(name): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, Reject> {
    let catalogue = snapshot(&current)?;
    let format = choose(&headers, &params)?;
    let Some(triples) = catalogue.dataset(&name) else {
        return Err(Reject(
            StatusCode::NOT_FOUND,
            "no such dataset in this catalogue".into(),
        ));
    };
    let etag = format!("{}.{name}", catalogue.digest());
    Ok(rdf(&headers, &triples, format, etag, Vec::new()))
}

async fn variables(State(current): State<Current>) -> Result<Response, Reject> {
    let catalogue = snapshot(&current)?;
    Ok(match catalogue.variables_csv() {
        Ok(body) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "writing the variable list failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    })
}

/// Follows the `CatalogService` `name` and the `Dataset`s of `namespace`, publishing a new
/// catalogue on `tx` whenever its content changes. Returns when the watches end.
pub async fn follow(
    client: Client,
    namespace: &str,
    name: &str,
    tx: watch::Sender<Option<Arc<Catalogue>>>,
) -> anyhow::Result<()> {
    let (datasets, dataset_writer) = reflector::store::<Dataset>();
    let (services, service_writer) = reflector::store::<CatalogService>();
    // Each event as (which watch, whether its initial listing is complete after it).
    fn progress<K>(e: &watcher::Event<K>) -> bool {
        !matches!(e, watcher::Event::Init | watcher::Event::InitApply(_))
    }
    let dataset_events = watcher(
        Api::<Dataset>::namespaced(client.clone(), namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(dataset_writer)
    .map_ok(|e| (0usize, progress(&e)))
    .boxed();
    let service_events = watcher(
        Api::<CatalogService>::namespaced(client, namespace),
        watcher::Config::default().fields(&format!("metadata.name={name}")),
    )
    .default_backoff()
    .reflect(service_writer)
    .map_ok(|e| (1usize, progress(&e)))
    .boxed();
    let mut events = futures::stream::select(dataset_events, service_events);
    // Nothing is rendered until both initial listings are complete.
    let mut listed = [false, false];
    while let Some(event) = events.next().await {
        match event {
            Ok((watch, done)) => listed[watch] |= done,
            Err(e) => {
                tracing::warn!(error = %e, "watch failed; retrying");
                continue;
            }
        }
        if !listed.iter().all(|l| *l) {
            continue;
        }
        let Some(svc) = services
            .state()
            .into_iter()
            .find(|s| kube::ResourceExt::name_any(s.as_ref()) == name)
        else {
            tx.send_if_modified(|c| c.take().is_some());
            continue;
        };
        let state = datasets.state();
        match Catalogue::from_cluster(&svc, &state) {
            Ok(next) => {
                tx.send_if_modified(|c| {
                    if c.as_deref() == Some(&next) {
                        return false;
                    }
                    tracing::info!(
                        datasets = next.datasets.len(),
                        pending = next.pending.len(),
                        digest = %next.digest(),
                        "catalogue updated"
                    );
                    *c = Some(Arc::new(next));
                    true
                });
            }
            Err(e) => tracing::warn!(error = %e, "spec.datasetSelector: invalid selector"),
        }
    }
    Ok(())
}

/// Serves the catalogue `name` of `namespace` on `addr` until `shutdown` resolves.
pub async fn run(
    client: Client,
    namespace: String,
    name: String,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (tx, rx) = watch::channel(None);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, namespace = %namespace, catalog = %name, "serving the catalogue");
    let follower = tokio::spawn(async move { follow(client, &namespace, &name, tx).await });
    axum::serve(listener, router(rx))
        .with_graceful_shutdown(shutdown)
        .await?;
    follower.abort();
    Ok(())
}
