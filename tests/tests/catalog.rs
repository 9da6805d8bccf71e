//! The catalogue: `environments/local`'s datasets (the four use cases, three regional nodes,
//! every stage) rendered as DCAT-AP 3 / HealthDCAT-AP and checked by pySHACL against the
//! official shapes; then served from the cluster by the catalogue component, with content
//! negotiation, paging, per-dataset resources, admission refusals, change propagation and a
//! steady state without writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use vardhub::api::{AccessRights, CatalogService, Dataset};
use vardhub::catalog::Catalogue;
use vardhub::catalog::format::{Format, serialize};
use vardhub::controller::conditions::{is_true, types};
use vardhub_tests::{
    LocalCluster, OPERATOR_LOCK, RunningOperator, eventually, free_port, kubectl, metric, repo_root,
};

const NAMESPACE: &str = "vardhub-catalog";

fn standards() -> PathBuf {
    repo_root().join("tests/shacl/shapes")
}

fn dcat_ap() -> Vec<PathBuf> {
    let s = standards().join("dcat-ap-3.0.1");
    vec![s.join("shapes.ttl"), s.join("range.ttl")]
}

fn health() -> PathBuf {
    standards().join("healthdcat-ap-r8/non-public-shapes.ttl")
}

/// Runs the project's pySHACL script; `VARDHUB_SHACL_PYTHON` comes from `tests/run.sh`.
fn shacl(args: &[&Path]) -> Result<Value> {
    let python = std::env::var("VARDHUB_SHACL_PYTHON")
        .context("VARDHUB_SHACL_PYTHON is not set: run the tests with `make test`")?;
    let out = Command::new(python)
        .arg(repo_root().join("tests/shacl/validate.py"))
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!(
            "validate.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The violations of one file, as (path, message).
type Violations = (PathBuf, Vec<(String, String)>);

/// Violations (severity Violation) per file, as (path, message).
fn violations(shapes: &[PathBuf], files: &[PathBuf]) -> Result<Vec<Violations>> {
    let mut args: Vec<&Path> = Vec::new();
    let flag = Path::new("--shapes");
    for s in shapes {
        args.push(flag);
        args.push(s);
    }
    args.extend(files.iter().map(PathBuf::as_path));
    let report = shacl(&args)?;
    files
        .iter()
        .map(|f| {
            let results = report["files"][f.to_string_lossy().as_ref()]["results"]
                .as_array()
                .with_context(|| format!("no report for {}", f.display()))?;
            let v = results
                .iter()
                .filter(|r| r["severity"] == "Violation")
                .map(|r| {
                    (
                        r["path"].as_str().unwrap_or_default().to_string(),
                        r["message"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            Ok((f.clone(), v))
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, bytes)?;
    Ok(path)
}

fn ntriples_set(bytes: &[u8]) -> BTreeSet<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// Validates a catalogue: the whole of it against DCAT-AP 3.0.1, and every dataset's own
/// resource against DCAT-AP plus HealthDCAT-AP; returns how many datasets of each level.
fn validate_catalogue(catalogue: &Catalogue, dir: &Path) -> Result<[usize; 3]> {
    let all = catalogue.all();
    let whole = write(dir, "catalog.ttl", &serialize(&all, Format::Turtle)?)?;
    let jsonld = write(dir, "catalog.jsonld", &serialize(&all, Format::JsonLd)?)?;
    let rdfxml = write(dir, "catalog.rdf", &serialize(&all, Format::RdfXml)?)?;
    let same = shacl(&[Path::new("--isomorphic"), &whole, &jsonld, &rdfxml])?;
    assert_eq!(
        same["isomorphic"], true,
        "the three formats hold one graph: {same}"
    );
    for (file, v) in violations(&dcat_ap(), std::slice::from_ref(&whole))? {
        assert!(
            v.is_empty(),
            "{}: DCAT-AP 3.0.1 violations: {v:#?}",
            file.display()
        );
    }
    let mut shapes = dcat_ap();
    shapes.push(health());
    let mut files = Vec::new();
    for e in &catalogue.datasets {
        let triples = catalogue.dataset(&e.name).context("dataset")?;
        files.push(write(
            dir,
            &format!("{}.ttl", e.name),
            &serialize(&triples, Format::Turtle)?,
        )?);
    }
    let mut levels = [0; 3];
    for ((_, v), e) in violations(&shapes, &files)?
        .into_iter()
        .zip(&catalogue.datasets)
    {
        // HealthDCAT-AP's shapes are those of NON_PUBLIC datasets. A RESTRICTED or PUBLIC
        // dataset carries all they ask for but the access-rights value itself, and for a
        // PUBLIC one the access body, which decides only on non-public data.
        let allowed: &[&str] = match e.spec().access_rights {
            AccessRights::NonPublic => &[],
            AccessRights::Restricted => &["http://purl.org/dc/terms/accessRights"],
            AccessRights::Public => &[
                "http://purl.org/dc/terms/accessRights",
                "http://healthdataportal.eu/ns/health#hdab",
            ],
        };
        let unexpected: Vec<_> = v
            .iter()
            .filter(|(p, _)| !allowed.contains(&p.as_str()))
            .collect();
        assert!(unexpected.is_empty(), "{}: {unexpected:#?}", e.name);
        levels[e.spec().access_rights as usize] += 1;
    }
    Ok(levels)
}

#[test]
#[ignore = "needs pySHACL and kubectl from the project's scripts: run `make test`"]
fn a_catalogue_of_exposed_products_names_the_api_and_still_validates() -> Result<()> {
    let mut resources = vardhub::render::load(&repo_root().join("environments/local"))?;
    for hub in &mut resources.hubs {
        hub.spec.exposure.api = true;
        hub.spec.exposure.sftp = true;
    }
    let catalogue = vardhub::catalog::offline(&resources, None)?;
    let dir = tempdir()?;
    validate_catalogue(&catalogue, &dir)?;
    let turtle = String::from_utf8(serialize(&catalogue.all(), Format::Turtle)?)?;
    for term in [
        "dcat:accessService",
        "dcat:DataService",
        "dcat:endpointURL",
        "dcat:servesDataset",
        "<sftp://exposure-sftp.hub-national.svc/>",
    ] {
        assert!(turtle.contains(term), "the exposed catalogue has {term}");
    }
    Ok(())
}

#[test]
#[ignore = "needs pySHACL and kubectl from the project's scripts: run `make test`"]
fn the_local_catalogue_validates_against_dcat_ap_and_healthdcat_ap() -> Result<()> {
    let resources = vardhub::render::load(&repo_root().join("environments/local"))?;
    let catalogue = vardhub::catalog::offline(&resources, None)?;
    assert_eq!(
        catalogue.datasets.len(),
        20,
        "4 use cases × (3 sources + standardised + product)"
    );
    let dir = tempdir()?;
    let [public, restricted, non_public] = validate_catalogue(&catalogue, &dir)?;
    assert!(
        public >= 1 && restricted >= 1 && non_public >= 10,
        "{public} {restricted} {non_public}"
    );

    // The same catalogue once a run has written: every distribution carries what the S3
    // server would list (Parquet data, and a report beside it), in DCAT-AP's recommended
    // properties, and every dataset still conforms.
    let mut after_run = catalogue.clone();
    let written = k8s_openapi::jiff::Timestamp::from_second(1_790_000_000).ok();
    for e in &mut after_run.datasets {
        e.distributions =
            vardhub::catalog::locate::with_figures(e.distributions.clone(), |_, prefix| {
                Some((
                    vec![
                        (format!("{prefix}person.parquet"), 2048, written),
                        (format!("{prefix}report.html"), 512, written),
                    ],
                    Some(100),
                ))
            });
    }
    let run_dir = tempdir()?;
    validate_catalogue(&after_run, &run_dir)?;
    let turtle = String::from_utf8(serialize(&after_run.all(), Format::Turtle)?)?;
    for property in [
        "dcat:byteSize",
        "dcat:mediaType",
        "dct:format",
        "dct:modified",
        "dcatap:availability",
        "dct:license",
        "/report.html",
    ] {
        assert!(
            turtle.contains(property),
            "the catalogue after a run has {property}"
        );
    }

    // Every stage is there, each with a distribution where its data really lives.
    let urls: Vec<&str> = catalogue
        .datasets
        .iter()
        .flat_map(|e| e.distributions.iter().map(|d| d.access_url.as_str()))
        .collect();
    assert!(urls.contains(&"s3://vardhub-stockholm-landing/"));
    assert!(urls.contains(&"s3://vardhub-hub-national-standardised/"));
    assert!(urls.contains(&"s3://vardhub-hub-national-products/hip-fracture/"));

    // A mutation the shapes must catch: a NON_PUBLIC dataset without its access body.
    let mut broken = catalogue.clone();
    let e = broken
        .datasets
        .iter_mut()
        .find(|e| e.spec().access_rights == AccessRights::NonPublic)
        .context("a non-public dataset")?;
    e.spec_mut().health_data_access_body = None;
    let name = e.name.clone();
    let file = write(
        &dir,
        "broken.ttl",
        &serialize(&broken.dataset(&name).context("ds")?, Format::Turtle)?,
    )?;
    let mut shapes = dcat_ap();
    shapes.push(health());
    let v = violations(&shapes, &[file])?;
    assert!(
        v[0].1
            .iter()
            .any(|(p, _)| p == "http://healthdataportal.eu/ns/health#hdab"),
        "the validator catches a missing access body: {v:?}"
    );

    // The variable list: one row per variable, with its code system.
    let csv = String::from_utf8(catalogue.variables_csv()?)?;
    let variables: usize = catalogue
        .datasets
        .iter()
        .map(|e| e.spec().variables.len())
        .sum();
    assert_eq!(csv.lines().count(), variables + 1);
    assert!(
        csv.lines()
            .any(|l| l.contains(",diagnosis,") && l.ends_with(",ICD-10-SE"))
    );
    Ok(())
}

fn tempdir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("vardhub-catalog-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn writes(metrics: &str) -> f64 {
    metric(metrics, "vardhub_api_writes_total{controller=\"catalog\"")
        + metric(metrics, "vardhub_api_writes_total{controller=\"dataset\"")
}

async fn get(url: &str, accept: Option<&str>) -> Result<reqwest::Response> {
    let mut r = reqwest::Client::new().get(url);
    if let Some(a) = accept {
        r = r.header("accept", a);
    }
    Ok(r.send().await?)
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn the_catalogue_is_served_from_the_cluster_and_follows_its_datasets() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let dir = repo_root().join("environments/local");
    let dir_arg = dir.to_string_lossy().to_string();
    kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=vardhub-tests",
        "-k",
        &dir_arg,
    ])?;
    let operator = RunningOperator::start(cluster, "test-catalog").await?;
    let catalogs: Api<CatalogService> = Api::namespaced(admin.clone(), NAMESPACE);
    let datasets: Api<Dataset> = Api::namespaced(admin.clone(), NAMESPACE);

    // Every dataset located at its generation, and the catalogue holding all 20 (a catalogue
    // status left by an earlier run can say so before this operator has looked).
    let svc = eventually(
        "every dataset to be located and the catalogue to hold all 20",
        Duration::from_secs(120),
        || async {
            let located = datasets
                .list(&Default::default())
                .await?
                .items
                .iter()
                .all(|d| {
                    d.status.as_ref().is_some_and(|s| {
                        is_true(&s.common.conditions, types::READY)
                            && s.common.observed_generation == d.metadata.generation
                    })
                });
            let svc = catalogs.get("national").await?;
            let s = svc.status.clone().unwrap_or_default();
            Ok(
                (located && s.datasets == Some(20) && s.pending == Some(0) && s.digest.is_some())
                    .then_some(svc),
            )
        },
    )
    .await?;
    let status = svc.status.clone().unwrap_or_default();
    assert!(status.triples.unwrap_or(0) > 1000, "{status:?}");
    assert_eq!(
        status.url.as_deref(),
        Some("http://national-catalog.vardhub-catalog.svc/catalog")
    );

    // The component, as a local process of its own, with its ServiceAccount's rights only.
    let component = cluster.client_as(NAMESPACE, "national-catalog").await?;
    let port = free_port()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(vardhub::catalog::server::run(
        component,
        NAMESPACE.into(),
        "national".into(),
        format!("127.0.0.1:{port}").parse()?,
        async move {
            let _ = stopped.await;
        },
    ));
    let base = format!("http://127.0.0.1:{port}");
    eventually(
        "the component to be ready",
        Duration::from_secs(30),
        || async {
            Ok(get(&format!("{base}/readyz"), None)
                .await
                .ok()
                .filter(|r| r.status() == 200))
        },
    )
    .await?;

    // Content negotiation: each format with its media type; the ETag carries the digest the
    // operator reports. (The datasets' distributions gain the S3 server's figures once the
    // hub's buckets exist, so the digest settles after the catalogue first holds them all.)
    let digest = eventually(
        "the component to serve the digest the operator reports",
        Duration::from_secs(60),
        || async {
            let digest = catalogs
                .get("national")
                .await?
                .status
                .and_then(|s| s.digest)
                .unwrap_or_default();
            let r = get(&format!("{base}/catalog"), None).await?;
            let etag = r.headers()["etag"].to_str()?.to_string();
            Ok(etag.starts_with(&format!("\"{digest}.")).then_some(digest))
        },
    )
    .await?;
    for (accept, media) in [
        (None, "text/turtle"),
        (Some("application/ld+json"), "application/ld+json"),
        (
            Some("application/rdf+xml;q=0.9, text/html"),
            "application/rdf+xml",
        ),
        (
            Some("text/turtle;q=0.2, application/n-triples"),
            "application/n-triples",
        ),
    ] {
        let r = get(&format!("{base}/catalog"), accept).await?;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], media);
        let etag = r.headers()["etag"].to_str()?.to_string();
        assert!(
            etag.starts_with(&format!("\"{digest}.")),
            "{etag} vs {digest}"
        );
    }
    assert_eq!(
        get(&format!("{base}/catalog"), Some("text/html"))
            .await?
            .status(),
        406
    );

    // Paging: 20 datasets, 10 per page; Link headers and Hydra links.
    let first = get(&format!("{base}/catalog"), Some("application/n-triples")).await?;
    let link = first.headers()["link"].to_str()?.to_string();
    assert!(link.contains("catalog?page=2>; rel=\"next\""), "{link}");
    let page1 = first.text().await?;
    let members = |page: &str| {
        page.lines()
            .filter(|l| l.contains("<http://www.w3.org/ns/dcat#dataset>"))
            .count()
    };
    assert_eq!(members(&page1), 10);
    let page2 = get(
        &format!("{base}/catalog?page=2"),
        Some("application/n-triples"),
    )
    .await?
    .text()
    .await?;
    assert_eq!(members(&page2), 10);
    assert!(page2.contains("<http://www.w3.org/ns/hydra/core#previous>"));
    assert_eq!(
        get(&format!("{base}/catalog?page=3"), None).await?.status(),
        404
    );
    let etag = get(&format!("{base}/catalog?page=2"), None)
        .await?
        .headers()["etag"]
        .clone();
    let cached = reqwest::Client::new()
        .get(format!("{base}/catalog?page=2"))
        .header("if-none-match", etag)
        .send()
        .await?;
    assert_eq!(cached.status(), 304);

    // A dataset's own resource, and the variable list.
    let ds = get(
        &format!("{base}/datasets/hip-fracture-product"),
        Some("application/ld+json"),
    )
    .await?;
    assert_eq!(ds.status(), 200);
    let body: Value = ds.json().await?;
    assert!(
        body.to_string()
            .contains("s3://vardhub-hub-national-products/hip-fracture/")
    );
    assert_eq!(
        get(&format!("{base}/datasets/no-such"), None)
            .await?
            .status(),
        404
    );
    let csv = get(&format!("{base}/variables.csv"), None)
        .await?
        .text()
        .await?;
    assert!(csv.starts_with("dataset,dataset_uri,"));

    // Served from the cluster, it is the catalogue rendered offline from the same directory.
    let resources = vardhub::render::load(&dir)?;
    let offline = vardhub::catalog::offline(&resources, None)?;
    assert_eq!(
        offline.digest(),
        digest,
        "the cluster's catalogue is the directory's"
    );
    let served_all: BTreeSet<String> = [page1.as_str(), page2.as_str()]
        .iter()
        .flat_map(|p| ntriples_set(p.as_bytes()))
        .collect();
    let offline_pages: BTreeSet<String> = (1..=2)
        .flat_map(|n| {
            ntriples_set(
                &serialize(&offline.page(n).unwrap_or_default(), Format::NTriples)
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(served_all, offline_pages);

    // Admission: a dataset missing a field its access level makes mandatory is refused,
    // naming the field; nothing is created.
    let mut bad = datasets.get("hip-fracture-product").await?;
    bad.metadata = kube::core::ObjectMeta {
        name: Some("refused".into()),
        namespace: Some(NAMESPACE.into()),
        ..Default::default()
    };
    bad.status = None;
    bad.spec.health_data_access_body = None;
    let err = datasets
        .create(&PostParams::default(), &bad)
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("spec.healthDataAccessBody"),
        "{err}"
    );
    let mut no_keywords = serde_json::to_value(&bad)?;
    no_keywords["spec"]["accessRights"] = json!("PUBLIC");
    no_keywords["spec"]["keywords"] = json!([]);
    let err = kubectl_create(&no_keywords).expect_err("refused");
    assert!(err.to_string().contains("spec.keywords"), "{err}");
    assert!(datasets.get_opt("refused").await?.is_none());

    // A change reaches the served catalogue within one reconcile.
    datasets
        .patch(
            "waiting-times-product",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"title": {"en": "Waiting times, monthly data product"}}}),
            ),
        )
        .await?;
    let changed = eventually(
        "the served catalogue to show the new title",
        Duration::from_secs(30),
        || async {
            let body = get(&format!("{base}/datasets/waiting-times-product"), None)
                .await?
                .text()
                .await?;
            Ok(body
                .contains("Waiting times, monthly data product")
                .then_some(()))
        },
    )
    .await;
    changed?;
    let new_digest = eventually(
        "the status to carry the new digest",
        Duration::from_secs(30),
        || async {
            let s = catalogs.get("national").await?.status.unwrap_or_default();
            Ok(s.digest.filter(|d| *d != digest))
        },
    )
    .await?;
    let etag = get(&format!("{base}/catalog"), None).await?.headers()["etag"]
        .to_str()?
        .to_string();
    assert!(
        etag.starts_with(&format!("\"{new_digest}.")),
        "{etag} vs {new_digest}"
    );

    // Steady state: a fresh operator finds nothing to write. The catalogue's pod runs for real
    // on the real node, so the steady state begins once the first operator has seen it ready.
    eventually(
        "the catalogue's pod to be ready",
        Duration::from_secs(120),
        || async {
            let s = catalogs.get("national").await?.status.unwrap_or_default();
            Ok(is_true(&s.common.conditions, types::READY).then_some(()))
        },
    )
    .await?;
    assert!(
        writes(&operator.metrics().await?) > 0.0,
        "the counter counts"
    );
    operator.stop().await?;
    let operator = RunningOperator::start(cluster, "test-catalog-2").await?;
    let settled = operator
        .settled(&[("catalog", 1), ("dataset", 20)], Duration::from_secs(60))
        .await?;
    assert_eq!(writes(&settled), 0.0, "no change, no write");
    operator.stop().await?;
    let _ = stop.send(());
    server.await??;

    kubectl(&["delete", "-k", &dir_arg, "--wait=false"])?;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    eventually(
        "the catalogue's namespace to be gone",
        Duration::from_secs(90),
        || async { Ok(namespaces.get_opt(NAMESPACE).await?.is_none().then_some(())) },
    )
    .await?;
    Ok(())
}

fn kubectl_create(doc: &Value) -> Result<String> {
    let path = tempdir()?.join("refused.json");
    std::fs::write(&path, serde_json::to_vec(doc)?)?;
    kubectl(&["create", "-f", &path.to_string_lossy()])
}
