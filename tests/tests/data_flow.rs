//! The reference data flow against the real servers: synthetic extracts of three regions
//! through mapping (OMOP CDM 5.4, Parquet), export through the real pseudonymisation service
//! (OpenBao Transit), standardisation, publication and the report, all in real MinIO buckets
//! with credentials the S3 server's STS issued for exactly each step's grants. Then a second
//! hub in federated mode over the same regions.
//!
//! Witnesses are independent of the code under test: the scan of every object in the hubs'
//! buckets, and indicators the test computes itself from the synthetic extracts.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context as _, Result};
use vardhub::adapters::openbao::Transit;
use vardhub::adapters::s3::{Access, Grant, Storage, session_policy};
use vardhub::controller::regional_node::build::SERVICE_ACCOUNT;
use vardhub::flow::export::Pseudonymiser;
use vardhub::flow::layout;
use vardhub::flow::omop::Omop;
use vardhub::flow::run::{self, Destination, Input};
use vardhub::flow::scan;
use vardhub::flow::store::Bucket;
use vardhub::flow::synth::{self, Params, Source};
use vardhub::pseudonymisation::access::Grants;
use vardhub::pseudonymisation::service::{Auth, Config, Service};
use vardhub_tests::flow::{expected_indicators, scan_bucket};
use vardhub_tests::{LocalCluster, free_port};

const MOUNT: &str = "vardhub-test-flow";
const PREFIX: &str = "vardhub-flowtest";
const COUNTIES: [&str; 3] = ["01", "03", "14"];
const THRESHOLD: u64 = 5;

fn node_bucket(county: &str, zone: &str) -> String {
    format!("{PREFIX}-r{county}-{zone}")
}

fn hub_bucket(hub: &str, zone: &str) -> String {
    format!("{PREFIX}-{hub}-{zone}")
}

fn all_buckets() -> Vec<String> {
    let mut b: Vec<String> = COUNTIES
        .iter()
        .flat_map(|c| [node_bucket(c, "landing"), node_bucket(c, "standardised")])
        .collect();
    for hub in ["central", "federated"] {
        for zone in ["landing", "standardised", "products"] {
            b.push(hub_bucket(hub, zone));
        }
    }
    b
}

/// The S3 error code of a refused call.
fn code<E: aws_sdk_s3::error::ProvideErrorMetadata>(
    r: Result<impl Sized, aws_sdk_s3::error::SdkError<E>>,
) -> String {
    match r {
        Ok(_) => "allowed".into(),
        Err(e) => e
            .as_service_error()
            .and_then(|s| s.code())
            .unwrap_or("no code")
            .to_owned(),
    }
}

struct Fixture {
    storage: Storage,
}

impl Fixture {
    async fn step(&self, grants: Vec<Grant>, names: &[String]) -> Result<Vec<Bucket>> {
        let creds = self
            .storage
            .issue_credentials("flowtest", &session_policy(&grants), 3600)
            .await?;
        Ok(names
            .iter()
            .map(|n| Bucket::new(creds.client(), n.clone()))
            .collect())
    }
}

fn grant(bucket: &str, prefix: Option<&str>, access: Access) -> Grant {
    Grant {
        bucket: bucket.into(),
        prefix: prefix.map(str::to_owned),
        access,
    }
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn data_flows_from_three_regions_to_a_report_in_both_storage_modes() -> Result<()> {
    let cluster = LocalCluster::get();
    let storage = Storage::new(cluster.s3_settings());
    let root = cluster.s3_root();
    for b in all_buckets() {
        storage.purge_bucket(&b).await?;
        root.create_bucket()
            .bucket(&b)
            .send()
            .await
            .with_context(|| format!("creating {b}"))?;
    }
    let outcome = flow(
        cluster,
        &Fixture {
            storage: Storage::new(cluster.s3_settings()),
        },
        &root,
    )
    .await;
    for b in all_buckets() {
        storage.purge_bucket(&b).await?;
    }
    let _ = std::fs::remove_file(token_file());
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(cluster.admin_client().await?)
        .delete(CALLER_NS, &Default::default())
        .await?;
    outcome
}

/// The namespace of the regions' export jobs, the only caller the service admits.
const CALLER_NS: &str = "vardhub-test-flow";
/// The audience of the service under test.
const AUDIENCE: &str = "vardhub.io/pseudonymisation/vardhub-test-flow/pseudonymisation";

/// Where the export jobs' token is kept, as a projected token would be.
fn token_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("vardhub-test-flow-token-{}", std::process::id()))
}

async fn flow(cluster: &LocalCluster, fx: &Fixture, root: &aws_sdk_s3::Client) -> Result<()> {
    // The hub's pseudonymisation service, on OpenBao Transit, one key per purpose.
    let transit = Transit::new(&cluster.vault_addr, &cluster.vault_token, MOUNT)?;
    transit.ensure_mount().await?;
    let hip = transit
        .ensure_key("hip-fracture", false)
        .await?
        .latest_version;
    let wait = transit
        .ensure_key("waiting-times", false)
        .await?
        .latest_version;
    let service = Service::start(Config {
        openbao_addr: cluster.vault_addr.clone(),
        tls: None,
        auth: Auth::Token(cluster.vault_token.clone()),
        transit_mount: MOUNT.into(),
        local: false,
        domains: vec![
            ("hip-fracture".into(), "hip-fracture".into(), hip),
            ("waiting-times".into(), "waiting-times".into(), wait),
        ],
        reversible: Vec::new(),
        access: cluster
            .pseudonymisation_access(
                AUDIENCE,
                &[
                    Grants::entry("hip-fracture", CALLER_NS, Some(SERVICE_ACCOUNT)),
                    Grants::entry("waiting-times", CALLER_NS, Some(SERVICE_ACCOUNT)),
                ],
            )
            .await?,
    })
    .await?;
    cluster
        .ensure_service_account(CALLER_NS, SERVICE_ACCOUNT)
        .await?;
    let token = cluster
        .service_account_token(CALLER_NS, SERVICE_ACCOUNT, Some(AUDIENCE))
        .await?;
    std::fs::write(token_file(), token)?;
    let port = free_port()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, service.router()).await;
    });
    let pseudonymiser = Pseudonymiser::Service {
        url: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::new(),
        token_file: token_file(),
    };

    let params = Params {
        seed: 2025,
        patients: 3000,
        regions: COUNTIES.iter().map(|c| (*c).to_owned()).collect(),
        defects_per_mille: 20,
    };
    let sources: Vec<(&str, Source)> = COUNTIES
        .iter()
        .enumerate()
        .map(|(n, c)| (*c, synth::region(&params, n)))
        .collect();
    let purposes = ["hip-fracture", "waiting-times"];

    // In each region: the extract, the mapping, the exports (central, and federated for the
    // second hub), each with the region's own credential or its ingest drop box.
    let (central_landing, central_std, central_products) = (
        hub_bucket("central", "landing"),
        hub_bucket("central", "standardised"),
        hub_bucket("central", "products"),
    );
    for (county, source) in &sources {
        let (landing, standardised) = (
            node_bucket(county, "landing"),
            node_bucket(county, "standardised"),
        );
        let own = fx
            .step(
                vec![
                    grant(&landing, None, Access::ReadWrite),
                    grant(&standardised, None, Access::ReadWrite),
                ],
                &[landing.clone(), standardised.clone()],
            )
            .await?;
        run::write_source(&own[0], source).await?;
        let mapped = run::map_region(&own[0], &own[1]).await?;
        assert_eq!(mapped["person"], source.patients.len() as u64);
        assert_eq!(mapped["visit_occurrence"], source.kontakter.len() as u64);
        assert_eq!(mapped["procedure_occurrence"], source.atgarder.len() as u64);

        let ingest = fx
            .step(
                vec![grant(&central_landing, Some(county), Access::Write)],
                std::slice::from_ref(&central_landing),
            )
            .await?
            .remove(0);
        for purpose in purposes {
            let (exported, _) = run::export_region(
                &own[1],
                Destination::Central { landing: &ingest },
                county,
                purpose,
                &pseudonymiser,
            )
            .await?;
            assert_eq!(
                exported, mapped,
                "{county} {purpose}: the export keeps every row"
            );
        }
        // The drop box: no reading back, no other region's prefix.
        let other = COUNTIES.iter().find(|c| *c != county).unwrap_or(&"99");
        let key = layout::key(
            &layout::central_export(county, "hip-fracture"),
            "person.parquet",
        );
        assert_eq!(
            code(
                ingest
                    .client
                    .get_object()
                    .bucket(&central_landing)
                    .key(&key)
                    .send()
                    .await
            ),
            "AccessDenied"
        );
        assert_eq!(
            code(
                ingest
                    .client
                    .put_object()
                    .bucket(&central_landing)
                    .key(format!("{other}/hip-fracture/person.parquet"))
                    .body(Vec::new().into())
                    .send()
                    .await
            ),
            "AccessDenied",
            "{county} writes into {other}'s landing prefix"
        );
        let (_, manifest) = run::export_region(
            &own[1],
            Destination::Federated,
            county,
            "hip-fracture",
            &pseudonymiser,
        )
        .await?;
        let m = manifest.context("a federated export standardises in the region")?;
        for (table, n) in &m.rows_in {
            assert_eq!(
                *n,
                m.rows_out[table] + m.rows_rejected[table],
                "{county} federated {table}"
            );
        }
    }

    // The hub's standardisation, with the standardise role's grants.
    let std_buckets = fx
        .step(
            vec![
                grant(&central_landing, None, Access::Read),
                grant(&central_std, None, Access::ReadWrite),
            ],
            &[central_landing.clone(), central_std.clone()],
        )
        .await?;
    let mut quarantined = 0;
    let stored = Bucket::new(root.clone(), central_std.clone());
    for (county, source) in &sources {
        // The rows each table must hold, counted from the extract itself.
        let expected = BTreeMap::from([
            ("person", source.patients.len() as u64),
            (
                "death",
                source
                    .patients
                    .iter()
                    .filter(|p| p.avliden.is_some())
                    .count() as u64,
            ),
            ("visit_occurrence", source.kontakter.len() as u64),
            (
                "condition_occurrence",
                source
                    .kontakter
                    .iter()
                    .filter(|k| k.huvuddiagnos.is_some())
                    .count() as u64,
            ),
            (
                "observation",
                source
                    .kontakter
                    .iter()
                    .filter(|k| k.remissdatum.is_some())
                    .count() as u64,
            ),
            ("procedure_occurrence", source.atgarder.len() as u64),
        ]);
        for purpose in purposes {
            let m =
                run::standardise_region(&std_buckets[0], &std_buckets[1], county, purpose).await?;
            // Conservation, counted in the objects the S3 server holds (read with its root
            // credential), not in the step's own manifest: source = standardised + quarantined.
            let (passed, _) =
                run::read_omop(&stored, &layout::standardised(county, purpose)).await?;
            let (failed, _) = run::read_omop(&stored, &layout::quarantine(county, purpose)).await?;
            let (passed, failed) = (passed.counts(), failed.counts());
            for (table, n) in &expected {
                assert_eq!(
                    *n,
                    passed[table] + failed[table],
                    "{county} {purpose} {table}"
                );
                assert_eq!(
                    (passed[table], failed[table]),
                    (m.rows_out[table], m.rows_rejected[table]),
                    "the manifest agrees with the stored rows: {county} {purpose} {table}"
                );
            }
            for (table, n) in &m.rows_in {
                assert_eq!(
                    *n,
                    m.rows_out[table] + m.rows_rejected[table],
                    "{county} {purpose} {table}"
                );
            }
            assert_eq!(
                m.rows_rejected.values().sum::<u64>(),
                m.reasons.values().sum::<u64>()
            );
            quarantined += m.rows_rejected.values().sum::<u64>();
            assert!(
                m.checksums.len() >= 19,
                "checksums of what was read and written"
            );
        }
    }
    assert!(
        quarantined > 0,
        "the defects of the extracts are quarantined"
    );

    // Publication, with the publish role's grants.
    let publish = fx
        .step(
            vec![
                grant(&central_std, None, Access::Read),
                grant(&central_products, None, Access::ReadWrite),
            ],
            &[central_std.clone(), central_products.clone()],
        )
        .await?;
    let inputs = |purpose: &str| -> Vec<Input> {
        COUNTIES
            .iter()
            .map(|c| Input {
                county: (*c).into(),
                bucket: publish[0].clone(),
                prefix: layout::standardised(c, purpose),
            })
            .collect()
    };
    let indicators = run::publish_hip_fracture(
        &inputs("hip-fracture"),
        &publish[1],
        "hip-fracture",
        &[],
        THRESHOLD,
    )
    .await?;
    let cells = run::publish_waiting_times(
        &inputs("waiting-times"),
        &publish[1],
        "waiting-times",
        THRESHOLD,
    )
    .await?;
    assert!(cells.iter().any(|c| c.suppressed) && cells.iter().any(|c| !c.suppressed));
    for c in cells.iter().filter(|c| c.suppressed) {
        assert_eq!(
            (c.referrals, c.median_wait_days, c.within_90_days),
            (None, None, None)
        );
    }
    assert_eq!(
        run::read_waiting_times(&publish[1], "waiting-times").await?,
        cells
    );

    // The report's figures are the test's own.
    let expected = expected_indicators(&sources);
    let got: BTreeMap<String, [u64; 4]> = indicators
        .iter()
        .map(|i| {
            (
                i.region.clone(),
                [i.admissions, i.within_24h, i.within_36h, i.died_30d],
            )
        })
        .collect();
    assert_eq!(got, expected);
    let page = String::from_utf8(publish[1].get("hip-fracture/report.html").await?)?;
    assert!(page.contains("<svg") && page.contains("Operated within 24 hours"));
    for i in &indicators {
        assert!(page.contains(&format!("{:.1} %", i.share(i.within_24h) * 100.0)));
    }

    // Pseudonyms: the same person in two regions is one pseudonym within a purpose, and
    // unrelated across purposes.
    let persons = |county: &str, purpose: &str| {
        let bucket = publish[0].clone();
        let prefix = layout::standardised(county, purpose);
        async move {
            let (omop, _): (Omop, _) = run::read_omop(&bucket, &prefix).await?;
            anyhow::Ok(
                omop.person
                    .into_iter()
                    .filter_map(|p| p.person_source_value)
                    .collect::<HashSet<_>>(),
            )
        }
    };
    let hip_01 = persons("01", "hip-fracture").await?;
    let hip_03 = persons("03", "hip-fracture").await?;
    let wait_03 = persons("03", "waiting-times").await?;
    assert!(
        !hip_01.is_disjoint(&hip_03),
        "people of two regions are linked within a purpose"
    );
    assert!(
        hip_03.is_disjoint(&wait_03),
        "no pseudonym is shared across purposes"
    );

    // The federated hub: it reads only the regions' export prefixes and holds the product.
    let fed_products = hub_bucket("federated", "products");
    let mut grants = vec![grant(&fed_products, None, Access::ReadWrite)];
    for c in COUNTIES {
        grants.push(grant(
            &node_bucket(c, "standardised"),
            Some(&layout::federated_export("hip-fracture")),
            Access::Read,
        ));
    }
    let creds = fx
        .storage
        .issue_credentials("flowtest", &session_policy(&grants), 3600)
        .await?;
    let fed_inputs: Vec<Input> = COUNTIES
        .iter()
        .map(|c| Input {
            county: (*c).into(),
            bucket: Bucket::new(creds.client(), node_bucket(c, "standardised")),
            prefix: layout::federated_export("hip-fracture"),
        })
        .collect();
    let federated = run::publish_hip_fracture(
        &fed_inputs,
        &Bucket::new(creds.client(), fed_products.clone()),
        "hip-fracture",
        &[],
        THRESHOLD,
    )
    .await?;
    assert_eq!(
        federated, indicators,
        "both storage modes give the same report"
    );
    assert_eq!(
        code(
            creds
                .client()
                .get_object()
                .bucket(node_bucket("01", "standardised"))
                .key("omop/person.parquet")
                .send()
                .await
        ),
        "AccessDenied",
        "the federated hub reads a region's identifiable tables"
    );
    for zone in ["landing", "standardised"] {
        let (n, _) = scan_bucket(root, &hub_bucket("federated", zone)).await?;
        assert_eq!(n, 0, "the federated hub's {zone} zone holds row-level data");
    }
    let product_keys: Vec<String> = Bucket::new(root.clone(), &fed_products)
        .list("")
        .await?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        product_keys.iter().all(|k| k.starts_with("hip-fracture/")),
        "{product_keys:?}"
    );

    // No identity number in any object of either hub; the witness does find them in a
    // region's own common model, where they belong.
    let mut scanned = 0;
    for hub in ["central", "federated"] {
        for zone in ["landing", "standardised", "products"] {
            let (n, found) = scan_bucket(root, &hub_bucket(hub, zone)).await?;
            assert!(found.is_empty(), "identity numbers in the hub: {found:?}");
            scanned += n;
        }
    }
    assert!(scanned > 40, "scanned {scanned} objects");
    let person = Bucket::new(root.clone(), node_bucket("01", "standardised"))
        .get("omop/person.parquet")
        .await?;
    assert!(
        scan::object("omop/person.parquet", person)?.is_some(),
        "the witness sees identity numbers in the region"
    );

    server.abort();
    Ok(())
}
