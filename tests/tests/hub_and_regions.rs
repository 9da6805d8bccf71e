//! `RegionalNode` and `DataHub` against the local cluster, OpenBao and MinIO: region-owned
//! keys and storage, the hub's zones in both storage modes, tenant separation enforced by the
//! S3 server, mapping jobs, drift, steady state and deletion.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{BucketVersioningStatus, ServerSideEncryption};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use vardhub::adapters::s3::IssuedCredentials;
use vardhub::api::{DataHub, PseudonymisationService, RegionalNode};
use vardhub::controller::conditions::{is_true, types};
use vardhub_tests::{LocalCluster, OPERATOR_LOCK, RunningOperator, eventually, run_now};

/// The three regions of these tests: Stockholm, Västra Götaland, Skåne.
const REGIONS: [(&str, &str); 3] = [("sthlm", "01"), ("vg", "14"), ("skane", "12")];

fn node_name(prefix: &str, short: &str) -> String {
    format!("{prefix}-{short}")
}

fn writes(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("vardhub_api_writes_total{controller=\"regionalnode\"")
                || l.starts_with("vardhub_api_writes_total{controller=\"datahub\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Applies a hub and three nodes, each node with a mapping job and an export.
async fn apply_hub(admin: &Client, hub: &str, mode: &str) -> Result<()> {
    let apply = PatchParams::apply("vardhub-tests").force();
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    for (short, code) in REGIONS {
        let name = node_name(hub, short);
        let node: RegionalNode = serde_json::from_value(json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
            "metadata": {"name": name},
            "spec": {
                "regions": [code],
                "hub": {"name": hub},
                "keys": {"rotationPeriodDays": 90},
                "mappingJobs": [{
                    "name": "vardfakta",
                    "image": "vardhub/mapping-example@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                    "schedule": "0 2 * * *",
                    "sourceModel": "regional-warehouse-v3",
                    "targetModel": {"name": "omop-cdm", "version": "5.4"},
                    "config": {"BATCH_SIZE": "10000"},
                }],
                "export": {
                    "pseudonymisation": {"name": "pseudonymisation"},
                    "domain": "waiting-times",
                    "schedule": "0 4 * * *",
                    "image": "vardhub/export-example@sha256:1111111111111111111111111111111111111111111111111111111111111111",
                },
            },
        }))?;
        nodes.patch(&name, &apply, &Patch::Apply(&node)).await?;
    }
    let hub_obj: DataHub = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "DataHub",
        "metadata": {"name": hub},
        "spec": {
            "storageMode": mode,
            "regionalNodes": REGIONS.iter().map(|(s, _)| json!({"name": node_name(hub, s)})).collect::<Vec<_>>(),
            "zones": {
                "landing": {"retentionDays": 30},
                "purposeSpecific": [{"name": "waiting-times", "purpose": "waiting-times", "retentionDays": 365}],
            },
        },
    }))?;
    Api::<DataHub>::all(admin.clone())
        .patch(hub, &apply, &Patch::Apply(&hub_obj))
        .await?;
    Ok(())
}

/// The pseudonymisation service the nodes of `apply_hub` export through, with their domain
/// admitting each node's jobs. It lives in the hub's namespace, so it is applied once the
/// operator has made that namespace; until then the nodes report the missing service.
async fn apply_export_service(admin: &Client, hub: &str) -> Result<()> {
    let ns = DataHub::workload_namespace_of(hub);
    eventually(
        &format!("namespace {ns}"),
        Duration::from_secs(90),
        || async {
            Ok(Api::<Namespace>::all(admin.clone())
                .get_opt(&ns)
                .await?
                .map(|_| ()))
        },
    )
    .await?;
    let callers: Vec<_> = REGIONS
        .iter()
        .map(|(short, _)| {
            json!({"namespace": format!("region-{}", node_name(hub, short)), "serviceAccount": "regional-node"})
        })
        .collect();
    let svc: PseudonymisationService = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "PseudonymisationService",
        "metadata": {"name": "pseudonymisation", "namespace": ns},
        "spec": {"replicas": 1, "domains": [{"name": "waiting-times", "callers": callers}]},
    }))?;
    Api::<PseudonymisationService>::namespaced(admin.clone(), &ns)
        .patch(
            "pseudonymisation",
            &PatchParams::apply("vardhub-tests").force(),
            &Patch::Apply(&svc),
        )
        .await?;
    Ok(())
}

/// Removes the service of [`apply_export_service`] and waits until it is gone, so that no
/// later test's operator finds it.
async fn remove_export_service(admin: &Client, hub: &str) -> Result<()> {
    let services: Api<PseudonymisationService> =
        Api::namespaced(admin.clone(), &DataHub::workload_namespace_of(hub));
    if services.get_opt("pseudonymisation").await?.is_some() {
        services
            .delete("pseudonymisation", &DeleteParams::foreground())
            .await?;
    }
    eventually(
        "the export service to be gone",
        Duration::from_secs(60),
        || async {
            Ok(services
                .get_opt("pseudonymisation")
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await
}

async fn wait_hub_ready(admin: &Client, hub: &str) -> Result<DataHub> {
    apply_export_service(admin, hub).await?;
    let hubs: Api<DataHub> = Api::all(admin.clone());
    eventually(
        &format!("hub {hub} to be Ready with three regions"),
        Duration::from_secs(90),
        || async {
            let h = hubs.get(hub).await?;
            let status = h.status.clone().unwrap_or_default();
            Ok((is_true(&status.common.conditions, types::READY)
                && status.connected_regions == Some(3))
            .then_some(h))
        },
    )
    .await
}

async fn wait_gone(nodes: &Api<RegionalNode>, name: &str) -> Result<()> {
    eventually(
        &format!("{name} to be gone"),
        Duration::from_secs(60),
        || async { Ok(nodes.get_opt(name).await?.is_none().then_some(())) },
    )
    .await
}

/// Deletes the nodes whose names start with `prefix` and waits until they are gone, so that
/// later tests see only their own resources.
async fn delete_nodes(admin: &Client, prefix: &str) -> Result<()> {
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    for n in nodes.list(&Default::default()).await?.items {
        if n.name_any().starts_with(prefix) {
            nodes
                .delete(&n.name_any(), &DeleteParams::background())
                .await?;
        }
    }
    eventually("the nodes to be gone", Duration::from_secs(60), || async {
        let left = nodes.list(&Default::default()).await?;
        Ok((!left.items.iter().any(|n| n.name_any().starts_with(prefix))).then_some(()))
    })
    .await
}

async fn stored_credentials(
    cluster: &LocalCluster,
    namespace: &str,
    path: &str,
) -> Result<IssuedCredentials> {
    cluster
        .openbao_admin()?
        .in_namespace(namespace)?
        .read_secret(vardhub::controller::storage::KV_MOUNT, path)
        .await?
        .with_context(|| format!("a credential at {namespace}/{path}"))
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"pseudonymised rows"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("unknown")
                .to_string()
        })
}

async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<(), String> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("unknown")
                .to_string()
        })
}

async fn assert_bucket_hardened(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<()> {
    let versioning = s3.get_bucket_versioning().bucket(bucket).send().await?;
    assert_eq!(
        versioning.status(),
        Some(&BucketVersioningStatus::Enabled),
        "{bucket} is versioned"
    );
    let encryption = s3.get_bucket_encryption().bucket(bucket).send().await?;
    let algorithm = encryption
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .map(|d| d.sse_algorithm().clone());
    assert_eq!(
        algorithm,
        Some(ServerSideEncryption::Aes256),
        "{bucket} encrypts by default"
    );
    let policy = s3.get_bucket_policy().bucket(bucket).send().await?;
    assert!(
        policy
            .policy()
            .unwrap_or_default()
            .contains("DenyAnonymous"),
        "{bucket} denies anonymous access"
    );
    Ok(())
}

async fn bucket_exists(s3: &aws_sdk_s3::Client, bucket: &str) -> bool {
    s3.head_bucket().bucket(bucket).send().await.is_ok()
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn central_hub_with_three_regions_separates_tenants_and_keeps_data_on_delete() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let hub = "t4c";
    apply_hub(&admin, hub, "central").await?;
    let first = RunningOperator::start(cluster, "test-hub-first").await?;
    let ready = wait_hub_ready(&admin, hub).await?;
    let status = ready.status.clone().unwrap_or_default();
    assert_eq!(status.openbao_namespace.as_deref(), Some("hub-t4c"));
    assert!(
        status.regions[0]
            .data_location
            .contains("vardhub-hub-t4c-landing/01/")
    );

    // Zones and regional buckets: versioned, encrypted, closed to anonymous access.
    let root = cluster.s3_root();
    let hub_buckets = [
        "vardhub-hub-t4c-landing",
        "vardhub-hub-t4c-standardised",
        "vardhub-hub-t4c-products",
    ];
    for bucket in hub_buckets {
        assert_bucket_hardened(&root, bucket).await?;
    }
    for (short, _) in REGIONS {
        for zone in ["landing", "standardised"] {
            assert_bucket_hardened(&root, &format!("vardhub-t4c-{short}-{zone}")).await?;
        }
    }
    let lock = root
        .get_object_lock_configuration()
        .bucket("vardhub-hub-t4c-landing")
        .send()
        .await?;
    let days = lock
        .object_lock_configuration()
        .and_then(|c| c.rule())
        .and_then(|r| r.default_retention())
        .and_then(|d| d.days());
    assert_eq!(days, Some(30), "the landing zone keeps an audit trail");
    assert!(is_true(&status.common.conditions, "RetentionReady"));
    let anonymous =
        reqwest::get(format!("{}/vardhub-hub-t4c-landing/", cluster.s3_endpoint)).await?;
    assert_eq!(anonymous.status().as_u16(), 403, "no anonymous listing");
    // Someone adds a public grant beside the operator's statement: the deny still refuses
    // anonymous callers, and, conditioned on the principal type, binds nobody else.
    let bucket = "vardhub-t4c-sthlm-landing";
    put(&root, bucket, "probe/public.txt")
        .await
        .map_err(anyhow::Error::msg)?;
    let mut opened = vardhub::adapters::s3::deny_anonymous_policy(bucket);
    opened["Statement"]
        .as_array_mut()
        .context("statements")?
        .push(json!({
            "Sid": "Public", "Effect": "Allow", "Principal": {"AWS": ["*"]},
            "Action": ["s3:GetObject"], "Resource": [format!("arn:aws:s3:::{bucket}/*")],
        }));
    root.put_bucket_policy()
        .bucket(bucket)
        .policy(opened.to_string())
        .send()
        .await?;
    let public = reqwest::get(format!("{}/{bucket}/probe/public.txt", cluster.s3_endpoint)).await?;
    assert_eq!(
        public.status().as_u16(),
        403,
        "the deny outranks a public grant"
    );
    assert!(
        public.text().await?.contains("<Code>AccessDenied</Code>"),
        "refused as AccessDenied"
    );
    get(&root, bucket, "probe/public.txt")
        .await
        .map_err(|code| anyhow::anyhow!("an authenticated caller is refused: {code}"))?;
    root.put_bucket_policy()
        .bucket(bucket)
        .policy(vardhub::adapters::s3::deny_anonymous_policy(bucket).to_string())
        .send()
        .await?;
    root.delete_object()
        .bucket(bucket)
        .key("probe/public.txt")
        .send()
        .await?;

    // Keys: each region's and the hub's in OpenBao namespaces of their own.
    let bao = cluster.openbao_admin()?;
    for ns in ["region-t4c-sthlm", "region-t4c-vg", "region-t4c-skane"] {
        let transit = bao.transit_in(ns, "transit")?;
        assert!(
            !transit.ensure_key("region", false).await?.created,
            "{ns} has its key"
        );
    }
    assert!(
        !bao.transit_in("hub-t4c", "transit")?
            .ensure_key("hub", false)
            .await?
            .created
    );

    // The node's workload identity reaches its own key and credential, not another region's.
    let token = cluster
        .service_account_token("region-t4c-sthlm", "regional-node", None)
        .await?;
    let (bao_token, _) = vardhub::adapters::openbao::login_kubernetes(
        &cluster.vault_addr,
        "kubernetes",
        "vardhub-region-t4c-sthlm",
        &token,
    )
    .await?;
    let as_node = vardhub::adapters::openbao::Admin::new(&cluster.vault_addr, &bao_token)?;
    let own: Option<IssuedCredentials> = as_node
        .read_secret("region-t4c-sthlm/secrets", "s3/node")
        .await?;
    assert!(own.is_some(), "the node reads its own credential");
    let other = as_node
        .read_secret::<IssuedCredentials>("region-t4c-vg/secrets", "s3/node")
        .await;
    assert_eq!(
        other.as_ref().err().and_then(vardhub_tests::adapter_status),
        Some(403),
        "another region's credential is refused by OpenBao's policy (403)"
    );

    // Cross-tenant denial, enforced by the S3 server.
    let ingest = stored_credentials(cluster, "hub-t4c", "s3/ingest/t4c-sthlm").await?;
    let as_sthlm = cluster.s3_with(&ingest);
    assert_eq!(
        put(
            &as_sthlm,
            "vardhub-hub-t4c-landing",
            "01/2026-11/beds.parquet"
        )
        .await,
        Ok(()),
        "Stockholm writes its own landing prefix"
    );
    for (bucket, key) in [
        ("vardhub-hub-t4c-landing", "14/2026-11/beds.parquet"),
        ("vardhub-hub-t4c-standardised", "01/beds.parquet"),
        ("vardhub-hub-t4c-products", "waiting-times/x.parquet"),
        ("vardhub-t4c-vg-landing", "x.parquet"),
    ] {
        assert_eq!(
            put(&as_sthlm, bucket, key).await,
            Err("AccessDenied".into()),
            "writing {bucket}/{key} with Stockholm's credential"
        );
    }
    assert_eq!(
        get(
            &as_sthlm,
            "vardhub-hub-t4c-landing",
            "01/2026-11/beds.parquet"
        )
        .await,
        Err("AccessDenied".into()),
        "the landing prefix is a drop box"
    );
    let node_cred = stored_credentials(cluster, "region-t4c-sthlm", "s3/node").await?;
    let as_node_s3 = cluster.s3_with(&node_cred);
    assert_eq!(
        put(&as_node_s3, "vardhub-t4c-sthlm-landing", "raw.csv").await,
        Ok(())
    );
    assert_eq!(
        get(&as_node_s3, "vardhub-t4c-sthlm-landing", "raw.csv").await,
        Ok(())
    );
    assert_eq!(
        get(&as_node_s3, "vardhub-t4c-vg-landing", "raw.csv").await,
        Err("AccessDenied".into())
    );
    let standardiser = stored_credentials(cluster, "hub-t4c", "s3/roles/standardise").await?;
    let as_standardiser = cluster.s3_with(&standardiser);
    assert_eq!(
        get(
            &as_standardiser,
            "vardhub-hub-t4c-landing",
            "01/2026-11/beds.parquet"
        )
        .await,
        Ok(()),
        "the standardiser reads the landing zone"
    );
    assert_eq!(
        put(&as_standardiser, "vardhub-hub-t4c-products", "x").await,
        Err("AccessDenied".into()),
        "but cannot write data products"
    );

    // Mapping jobs and the export are CronJobs; a run's outcome reaches the status.
    let region_ns = "region-t4c-sthlm";
    let cron_jobs = Api::<CronJob>::namespaced(admin.clone(), region_ns);
    let map = cron_jobs.get("map-vardfakta").await?;
    let text = serde_json::to_string(&map)?;
    assert!(text.contains("omop-cdm") && text.contains("regional-node"));
    assert!(
        !text.contains(&node_cred.secret_access_key),
        "no secret in the CronJob"
    );
    let export = serde_json::to_string(&cron_jobs.get("export").await?)?;
    assert!(export.contains("vardhub-hub-t4c-landing"));
    // A Job finishing changes the node's status only: the operator skips the external pass,
    // so neither the S3 server's trace nor OpenBao's audit device sees a call of it.
    let bao_mark = vardhub_tests::openbao_audit_mark()?;
    let trace = cluster.s3_trace().await?;
    let job = run_now(&admin, region_ns, "map-vardfakta").await?;
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    eventually(
        "the run's outcome in the node's status",
        Duration::from_secs(90),
        || async {
            let node = nodes.get("t4c-sthlm").await?;
            let jobs = node.status.unwrap_or_default().jobs;
            Ok(jobs
                .iter()
                .find(|j| j.name == "vardfakta")
                .and_then(|j| j.last_run.clone())
                .filter(|r| r.job == job && r.result == "Succeeded")
                .map(|_| ()))
        },
    )
    .await?;
    let s3_calls: Vec<_> = trace
        .stop()
        .into_iter()
        .filter(|c| c.access_key.as_deref() == Some(vardhub_tests::OPERATOR_S3_USER))
        .collect();
    let bao_calls: Vec<_> = vardhub_tests::openbao_requests_since(bao_mark)?
        .into_iter()
        .filter(|(_, path)| path != "sys/health")
        .collect();
    assert!(
        s3_calls.is_empty() && bao_calls.is_empty(),
        "a Job's completion costs no external call: S3 {s3_calls:?}, OpenBao {bao_calls:?}"
    );
    first.stop().await?;

    // A second start at steady state writes nothing: API server, OpenBao or S3. The S3
    // server's own trace is the witness for S3.
    let trace = cluster.s3_trace().await?;
    let since = k8s_openapi::jiff::Timestamp::now().to_string();
    let second = RunningOperator::start(cluster, "test-hub-second").await?;
    let text = second
        .settled(
            &[("datahub", 1), ("regionalnode", REGIONS.len())],
            Duration::from_secs(60),
        )
        .await?;
    assert_eq!(writes(&text), 0.0, "no writes at steady state: {text}");
    let audited = cluster.audited_writes(
        "system:serviceaccount:vardhub-system:vardhub-operator",
        &since,
    )?;
    assert!(
        audited.is_empty(),
        "no API writes at steady state: {audited:?}"
    );
    let calls = trace.stop();
    let by_operator = calls
        .iter()
        .filter(|c| c.access_key.as_deref() == Some(vardhub_tests::OPERATOR_S3_USER))
        .count();
    let written: Vec<_> = calls.iter().filter(|c| c.writes()).collect();
    assert!(
        by_operator > 0,
        "the trace sees the operator's reads (it checks every bucket once at start): {calls:?}"
    );
    assert!(
        written.is_empty(),
        "the S3 server's trace shows writes at steady state: {written:?}"
    );
    println!(
        "steady state: the S3 server traced {by_operator} calls of the second operator, none a write"
    );

    // Drift: a CronJob, a NetworkPolicy and a bucket policy removed by hand come back.
    cron_jobs
        .delete("map-vardfakta", &DeleteParams::background())
        .await?;
    Api::<NetworkPolicy>::namespaced(admin.clone(), region_ns)
        .delete("allow-egress", &DeleteParams::default())
        .await?;
    root.delete_bucket_policy()
        .bucket("vardhub-t4c-sthlm-landing")
        .send()
        .await?;
    nodes
        .patch(
            "t4c-sthlm",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"test/touch": "1"}}})),
        )
        .await?;
    eventually(
        "the children to be restored",
        Duration::from_secs(60),
        || async {
            let cj = cron_jobs.get_opt("map-vardfakta").await?;
            let np = Api::<NetworkPolicy>::namespaced(admin.clone(), region_ns)
                .get_opt("allow-egress")
                .await?;
            let policy = root
                .get_bucket_policy()
                .bucket("vardhub-t4c-sthlm-landing")
                .send()
                .await
                .is_ok();
            Ok((cj.is_some() && np.is_some() && policy).then_some(()))
        },
    )
    .await?;

    // Deleting the hub and the nodes (default policy) keeps every object and key.
    remove_export_service(&admin, hub).await?;
    Api::<DataHub>::all(admin.clone())
        .delete(hub, &DeleteParams::background())
        .await?;
    for (short, _) in REGIONS {
        nodes
            .delete(&node_name(hub, short), &DeleteParams::background())
            .await?;
    }
    eventually(
        "the resources to be gone",
        Duration::from_secs(60),
        || async {
            let left = nodes.list(&Default::default()).await?;
            Ok((!left.items.iter().any(|n| n.name_any().starts_with("t4c-"))).then_some(()))
        },
    )
    .await?;
    second.stop().await?;
    for bucket in hub_buckets {
        assert!(bucket_exists(&root, bucket).await, "{bucket} is kept");
    }
    assert_eq!(
        get(&root, "vardhub-hub-t4c-landing", "01/2026-11/beds.parquet").await,
        Ok(()),
        "objects are kept"
    );
    assert_eq!(
        get(&root, "vardhub-t4c-sthlm-landing", "raw.csv").await,
        Ok(())
    );
    assert!(
        !bao.transit_in("region-t4c-sthlm", "transit")?
            .ensure_key("region", false)
            .await?
            .created,
        "the region's key is kept"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn federated_hub_keeps_regional_data_in_the_regions() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let hub = "t4f";
    apply_hub(&admin, hub, "federated").await?;
    let operator = RunningOperator::start(cluster, "test-hub-federated").await?;
    let ready = wait_hub_ready(&admin, hub).await?;
    let status = ready.status.unwrap_or_default();
    let zones: Vec<_> = status.zones.iter().map(|z| z.zone.as_str()).collect();
    assert_eq!(zones, ["purpose-specific"]);
    assert!(
        status
            .regions
            .iter()
            .all(|r| r.data_location.contains("stays in the region"))
    );

    let root = cluster.s3_root();
    assert!(!bucket_exists(&root, "vardhub-hub-t4f-landing").await);
    assert!(!bucket_exists(&root, "vardhub-hub-t4f-standardised").await);
    assert_bucket_hardened(&root, "vardhub-hub-t4f-products").await?;
    let bao = cluster.openbao_admin()?.in_namespace("hub-t4f")?;
    let ingest: Option<IssuedCredentials> =
        bao.read_secret("secrets", "s3/ingest/t4f-sthlm").await?;
    assert!(ingest.is_none(), "no ingest credential in federated mode");

    // The export goes to the region's own bucket; the hub's publisher reads only exports.
    let export = serde_json::to_string(
        &Api::<CronJob>::namespaced(admin.clone(), "region-t4f-sthlm")
            .get("export")
            .await?,
    )?;
    assert!(
        export.contains("vardhub-t4f-sthlm-standardised")
            && export.contains("export/waiting-times")
    );
    let node_cred = stored_credentials(cluster, "region-t4f-sthlm", "s3/node").await?;
    let as_node = cluster.s3_with(&node_cred);
    for key in ["export/waiting-times/2026-11.parquet", "cdm/person.parquet"] {
        assert_eq!(
            put(&as_node, "vardhub-t4f-sthlm-standardised", key).await,
            Ok(())
        );
    }
    let publisher = stored_credentials(cluster, "hub-t4f", "s3/roles/publish").await?;
    let as_publisher = cluster.s3_with(&publisher);
    assert_eq!(
        get(
            &as_publisher,
            "vardhub-t4f-sthlm-standardised",
            "export/waiting-times/2026-11.parquet"
        )
        .await,
        Ok(())
    );
    assert_eq!(
        get(
            &as_publisher,
            "vardhub-t4f-sthlm-standardised",
            "cdm/person.parquet"
        )
        .await,
        Err("AccessDenied".into()),
        "the hub sees only what the region exported"
    );
    assert_eq!(
        put(
            &as_publisher,
            "vardhub-hub-t4f-products",
            "waiting-times/extract.parquet"
        )
        .await,
        Ok(())
    );

    // The storage mode of a running hub cannot be flipped.
    let hubs: Api<DataHub> = Api::all(admin.clone());
    let err = hubs
        .patch(
            hub,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"storageMode": "central"}})),
        )
        .await
        .expect_err("mode switch refused");
    assert!(err.to_string().contains("spec.storageMode"), "{err}");

    remove_export_service(&admin, hub).await?;
    operator.stop().await?;
    hubs.delete(hub, &DeleteParams::background()).await?;
    delete_nodes(&admin, "t4f-").await
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn duplicate_regions_and_deletion_with_objects_are_refused() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let apply = PatchParams::apply("vardhub-tests").force();
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let hubs: Api<DataHub> = Api::all(admin.clone());
    for (name, regions) in [("t4d-a", json!(["01"])), ("t4d-b", json!(["09", "01"]))] {
        let node: RegionalNode = serde_json::from_value(json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
            "metadata": {"name": name, "labels": {"hub": "t4d"}},
            "spec": {"regions": regions, "hub": {"name": "t4d"}},
        }))?;
        nodes.patch(name, &apply, &Patch::Apply(&node)).await?;
    }
    let hub: DataHub = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "DataHub",
        "metadata": {"name": "t4d"},
        "spec": {"regionalNodeSelector": {"matchLabels": {"hub": "t4d"}},
                 "deletionPolicy": "Delete", "confirmDeletion": true},
    }))?;
    hubs.patch("t4d", &apply, &Patch::Apply(&hub)).await?;
    let operator = RunningOperator::start(cluster, "test-hub-refusals").await?;

    // Region 01 in two member nodes: refused, naming the field, and nothing is created.
    let message = eventually("the hub to refuse", Duration::from_secs(60), || async {
        let h = hubs.get("t4d").await?;
        Ok(h.status
            .unwrap_or_default()
            .common
            .conditions
            .into_iter()
            .find(|c| c.type_ == types::READY && c.reason == "InvalidSpec")
            .map(|c| c.message))
    })
    .await?;
    assert!(
        message.starts_with("spec.regionalNodes: region 01"),
        "{message}"
    );
    let root = cluster.s3_root();
    assert!(
        !bucket_exists(&root, "vardhub-hub-t4d-products").await,
        "nothing half-applied"
    );

    // Fixed: the hub converges.
    nodes
        .patch(
            "t4d-b",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"regions": ["09"]}})),
        )
        .await?;
    eventually("the hub to converge", Duration::from_secs(60), || async {
        let h = hubs.get("t4d").await?;
        Ok(is_true(
            &h.status.unwrap_or_default().common.conditions,
            types::READY,
        )
        .then_some(()))
    })
    .await?;

    // A node asked to delete its data, whose deletion waits (objects remain), is turned back
    // to Retain and given purgeObjects in the same change: the data stays. The operator reads
    // the policy again, past its cache, before it destroys anything.
    nodes
        .patch(
            "t4d-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deletionPolicy": "Delete", "confirmDeletion": true}})),
        )
        .await?;
    eventually(
        "the data finalizer on t4d-a",
        Duration::from_secs(60),
        || async {
            let n = nodes.get("t4d-a").await?;
            Ok(n.finalizers()
                .iter()
                .any(|f| f == "vardhub.io/delete-data")
                .then_some(()))
        },
    )
    .await?;
    let landing = "vardhub-t4d-a-landing";
    put(&root, landing, "01/export.parquet")
        .await
        .map_err(anyhow::Error::msg)?;
    nodes.delete("t4d-a", &DeleteParams::background()).await?;
    eventually(
        "the node's deletion to wait for its objects",
        Duration::from_secs(60),
        || async {
            let n = nodes.get("t4d-a").await?;
            Ok(n.status
                .unwrap_or_default()
                .common
                .conditions
                .iter()
                .any(|c| c.type_ == types::READY && c.reason == "DeletionRefused")
                .then_some(()))
        },
    )
    .await?;
    nodes
        .patch(
            "t4d-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deletionPolicy": "Retain", "purgeObjects": true}})),
        )
        .await?;
    wait_gone(&nodes, "t4d-a").await?;
    get(&root, landing, "01/export.parquet")
        .await
        .map_err(|code| anyhow::anyhow!("the retained object is gone: {code}"))?;
    // Read only: the region's key is still there.
    let key = reqwest::Client::new()
        .get(format!("{}/v1/transit/keys/region", cluster.vault_addr))
        .header("X-Vault-Token", &cluster.vault_token)
        .header("X-Vault-Namespace", "region-t4d-a")
        .send()
        .await?;
    assert_eq!(key.status().as_u16(), 200, "the region's key is kept");
    // Clean up what the test made: the retained buckets.
    let storage = vardhub::adapters::s3::Storage::new(cluster.s3_settings());
    for bucket in [landing, "vardhub-t4d-a-standardised"] {
        storage.purge_bucket(bucket).await?;
    }

    // Deletion with policy Delete is refused while objects remain, and honoured with purge.
    put(
        &root,
        "vardhub-hub-t4d-products",
        "waiting-times/extract.parquet",
    )
    .await
    .map_err(anyhow::Error::msg)?;
    hubs.delete("t4d", &DeleteParams::background()).await?;
    let refused = eventually(
        "the deletion to be refused",
        Duration::from_secs(60),
        || async {
            let h = hubs.get("t4d").await?;
            Ok(h.status
                .unwrap_or_default()
                .common
                .conditions
                .into_iter()
                .find(|c| c.type_ == types::READY && c.reason == "DeletionRefused")
                .map(|c| c.message))
        },
    )
    .await?;
    assert!(refused.contains("spec.purgeObjects"), "{refused}");
    assert!(
        bucket_exists(&root, "vardhub-hub-t4d-products").await,
        "data kept"
    );
    hubs.patch(
        "t4d",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"purgeObjects": true}})),
    )
    .await?;
    eventually("the hub to be deleted", Duration::from_secs(60), || async {
        Ok(hubs.get_opt("t4d").await?.is_none().then_some(()))
    })
    .await?;
    assert!(
        !bucket_exists(&root, "vardhub-hub-t4d-products").await,
        "purged as asked"
    );
    let gone = cluster
        .openbao_admin()?
        .transit_in("hub-t4d", "transit")?
        .ensure_mount()
        .await;
    if gone.is_ok() {
        bail!("the hub's OpenBao namespace should be gone");
    }
    operator.stop().await?;
    delete_nodes(&admin, "t4d-").await
}

/// Someone allowed to create a `RegionalNode` names it so that its buckets are a hub's
/// (`hub-<hub>` gives the hub's bucket prefix), or a bucket that no vardhub resource made,
/// and asks for everything to be purged on deletion. The operator touches neither: the node
/// reports `Conflict` naming the bucket and its owner, gets no credential, and deleting it
/// leaves the other party's objects where they were. The S3 server itself is the witness.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_node_can_neither_claim_nor_purge_buckets_it_did_not_create() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let hubs: Api<DataHub> = Api::all(admin.clone());
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let root = cluster.s3_root();
    let hub = "claimed";
    let stranger_bucket = "vardhub-test-stranger-landing";
    let apply = PatchParams::apply("vardhub-tests").force();

    let operator = RunningOperator::start(cluster, "test-claims").await?;
    let hub_obj: DataHub = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "DataHub",
        "metadata": {"name": hub},
        "spec": {"storageMode": "central", "zones": {"purposeSpecific": []},
                 "deletionPolicy": "Delete", "confirmDeletion": true, "purgeObjects": true},
    }))?;
    hubs.patch(hub, &apply, &Patch::Apply(&hub_obj)).await?;
    let landing = format!("vardhub-hub-{hub}-landing");
    eventually(
        "the hub's landing bucket",
        Duration::from_secs(90),
        || async {
            Ok(root
                .get_bucket_tagging()
                .bucket(&landing)
                .send()
                .await
                .ok()
                .filter(|t| {
                    t.tag_set()
                        .iter()
                        .any(|t| t.key() == "vardhub.io/owner" && t.value() == "DataHub/claimed")
                })
                .map(|_| ()))
        },
    )
    .await?;
    root.put_object()
        .bucket(&landing)
        .key("01/hip-fracture/extract.parquet")
        .body(ByteStream::from_static(b"the hub's data"))
        .send()
        .await?;
    // A bucket someone made by hand, with data in it.
    let _ = root.create_bucket().bucket(stranger_bucket).send().await;
    root.put_object()
        .bucket(stranger_bucket)
        .key("theirs")
        .body(ByteStream::from_static(b"someone's data"))
        .send()
        .await?;

    for (name, prefix, owner) in [
        (format!("hub-{hub}"), None, "DataHub/claimed"),
        (
            "test-stranger".to_string(),
            Some("vardhub-test-stranger"),
            "no vardhub resource",
        ),
    ] {
        let mut spec = json!({"regions": ["21"], "deletionPolicy": "Delete",
                              "confirmDeletion": true, "purgeObjects": true});
        if let Some(prefix) = prefix {
            spec["storage"] = json!({"bucketPrefix": prefix});
        }
        let node: RegionalNode = serde_json::from_value(json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
            "metadata": {"name": name}, "spec": spec,
        }))?;
        nodes.patch(&name, &apply, &Patch::Apply(&node)).await?;
        let message = eventually(
            &format!("{name} to report the conflict"),
            Duration::from_secs(60),
            || async {
                let n = nodes.get(&name).await?;
                let conditions = n.status.map(|s| s.common.conditions).unwrap_or_default();
                Ok(conditions
                    .into_iter()
                    .find(|c| c.type_ == types::DEGRADED && c.reason == "Conflict")
                    .map(|c| c.message))
            },
        )
        .await?;
        assert!(
            message.contains(owner) && message.contains("bucketPrefix"),
            "the condition names the owner and the field: {message}"
        );
        let credential: Option<serde_json::Value> = cluster
            .openbao_admin()?
            .in_namespace(&format!("region-{name}"))?
            .read_secret(vardhub::controller::storage::KV_MOUNT, "s3/node")
            .await
            .unwrap_or(None);
        assert!(
            credential.is_none(),
            "no credential was issued for the claimed buckets"
        );
        nodes.delete(&name, &DeleteParams::foreground()).await?;
        eventually(
            &format!("{name} to be gone"),
            Duration::from_secs(60),
            || async { Ok(nodes.get_opt(&name).await?.is_none().then_some(())) },
        )
        .await?;
    }

    // The S3 server still holds both parties' objects, and the hub still owns its bucket.
    let kept = root
        .get_object()
        .bucket(&landing)
        .key("01/hip-fracture/extract.parquet")
        .send()
        .await
        .context("the hub's object survived the node's deletion")?;
    assert_eq!(
        kept.body.collect().await?.into_bytes().as_ref(),
        b"the hub's data"
    );
    let theirs = root
        .get_object()
        .bucket(stranger_bucket)
        .key("theirs")
        .send()
        .await
        .context("the stranger's object survived")?;
    assert_eq!(
        theirs.body.collect().await?.into_bytes().as_ref(),
        b"someone's data"
    );

    hubs.delete(hub, &DeleteParams::foreground()).await?;
    eventually("the hub to be gone", Duration::from_secs(90), || async {
        Ok(hubs.get_opt(hub).await?.is_none().then_some(()))
    })
    .await?;
    operator.stop().await?;
    vardhub::adapters::s3::Storage::new(cluster.s3_settings())
        .purge_bucket(stranger_bucket)
        .await?;
    Ok(())
}

/// A request to OpenBao's HTTP API with the root token, in OpenBao namespace `ns` (`None`:
/// the root): what someone with OpenBao rights, not the operator, would send.
fn openbao_as_root(
    cluster: &LocalCluster,
    method: reqwest::Method,
    path: &str,
    ns: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/v1/{path}", cluster.vault_addr))
        .header("X-Vault-Token", &cluster.vault_token);
    if let Some(ns) = ns {
        request = request.header("X-Vault-Namespace", ns);
    }
    request
}

/// Waits for node `name` to report `Degraded` with reason `Conflict`, and returns its message.
async fn conflict(nodes: &Api<RegionalNode>, name: &str) -> Result<String> {
    eventually(
        "the node to report the conflict",
        Duration::from_secs(60),
        || async {
            let n = nodes.get(name).await?;
            let conditions = n.status.map(|s| s.common.conditions).unwrap_or_default();
            Ok(conditions
                .into_iter()
                .find(|c| c.type_ == types::DEGRADED && c.reason == "Conflict")
                .map(|c| c.message))
        },
    )
    .await
}

/// Someone with OpenBao rights made a namespace (with a key in it) under the name a node
/// would use. The node does not take it over: it reports `Conflict` naming the namespace, no
/// policy or role of the node is written, and deleting the node with every purge asked for
/// leaves the namespace and its key where they were. OpenBao itself is the witness.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_node_cannot_take_over_an_openbao_namespace_it_did_not_create() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let name = "squatted";
    let namespace = format!("region-{name}");
    let bao = |method, path: &str, ns| openbao_as_root(cluster, method, path, ns);
    bao(
        reqwest::Method::POST,
        &format!("sys/namespaces/{namespace}"),
        None,
    )
    .send()
    .await?
    .error_for_status()?;
    bao(
        reqwest::Method::POST,
        "sys/mounts/transit",
        Some(&namespace),
    )
    .json(&json!({"type": "transit"}))
    .send()
    .await?
    .error_for_status()?;
    bao(
        reqwest::Method::POST,
        "transit/keys/region",
        Some(&namespace),
    )
    .send()
    .await?
    .error_for_status()?;

    let operator = RunningOperator::start(cluster, "test-namespace-claim").await?;
    let node: RegionalNode = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
        "metadata": {"name": name},
        "spec": {"regions": ["21"], "deletionPolicy": "Delete", "confirmDeletion": true,
                 "purgeObjects": true},
    }))?;
    nodes
        .patch(
            name,
            &PatchParams::apply("vardhub-tests").force(),
            &Patch::Apply(&node),
        )
        .await?;
    let message = conflict(&nodes, name).await?;
    assert!(
        message.contains(&format!(
            "OpenBao namespace {namespace} belongs to no vardhub resource"
        )),
        "names the namespace: {message}"
    );
    let layout = vardhub::layout::node_layout(&node);
    for path in [
        format!("sys/policies/acl/{}", layout.access),
        format!("auth/kubernetes/role/{}", layout.access),
    ] {
        let status = bao(reqwest::Method::GET, &path, None)
            .send()
            .await?
            .status();
        assert_eq!(status.as_u16(), 404, "{path} was not written");
    }

    nodes.delete(name, &DeleteParams::foreground()).await?;
    eventually("the node to be gone", Duration::from_secs(60), || async {
        Ok(nodes.get_opt(name).await?.is_none().then_some(()))
    })
    .await?;
    let key = bao(
        reqwest::Method::GET,
        "transit/keys/region",
        Some(&namespace),
    )
    .send()
    .await?;
    assert_eq!(key.status().as_u16(), 200, "the other party's key is kept");
    operator.stop().await?;
    cluster
        .openbao_admin()?
        .delete_namespace(&namespace)
        .await?;
    Ok(())
}

/// Someone with OpenBao rights wrote a policy under the name a node's workloads would log in
/// under. The node does not take it over: it reports `Conflict` naming the policy and role,
/// writes no role and no claim, and deleting the node with every purge asked for leaves the
/// policy as it was. OpenBao itself is the witness.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_node_cannot_take_over_an_openbao_policy_it_did_not_create() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let name = "policy-squat";
    let node: RegionalNode = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
        "metadata": {"name": name},
        "spec": {"regions": ["22"], "deletionPolicy": "Delete", "confirmDeletion": true,
                 "purgeObjects": true},
    }))?;
    let layout = vardhub::layout::node_layout(&node);
    let bao = |method, path: &str, ns| openbao_as_root(cluster, method, path, ns);
    let policy_path = format!("sys/policies/acl/{}", layout.access);
    let theirs = "path \"sys/health\" { capabilities = [\"read\"] }";
    bao(reqwest::Method::PUT, &policy_path, None)
        .json(&json!({ "policy": theirs }))
        .send()
        .await?
        .error_for_status()?;
    let policy_text = || async {
        let answer: serde_json::Value = bao(reqwest::Method::GET, &policy_path, None)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        anyhow::Ok(
            answer["data"]["policy"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };

    let operator = RunningOperator::start(cluster, "test-policy-claim").await?;
    nodes
        .patch(
            name,
            &PatchParams::apply("vardhub-tests").force(),
            &Patch::Apply(&node),
        )
        .await?;
    let message = conflict(&nodes, name).await?;
    assert!(
        message.contains(&format!(
            "OpenBao policy and role {} belong to no vardhub resource",
            layout.access
        )),
        "names the policy and role: {message}"
    );
    assert_eq!(policy_text().await?, theirs, "the policy is not changed");
    for (path, ns) in [
        (format!("auth/kubernetes/role/{}", layout.access), None),
        (
            format!("secrets/data/claims/access/{}", layout.access),
            Some(layout.openbao_namespace.as_str()),
        ),
    ] {
        let status = bao(reqwest::Method::GET, &path, ns).send().await?.status();
        assert_eq!(status.as_u16(), 404, "{path} was not written");
    }

    nodes.delete(name, &DeleteParams::foreground()).await?;
    eventually("the node to be gone", Duration::from_secs(60), || async {
        Ok(nodes.get_opt(name).await?.is_none().then_some(()))
    })
    .await?;
    assert_eq!(
        policy_text().await?,
        theirs,
        "the other party's policy is kept"
    );
    operator.stop().await?;
    bao(reqwest::Method::DELETE, &policy_path, None)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

/// The `Ready` condition of a dataset as `(status, reason, message)`, once it has one.
async fn dataset_ready(
    datasets: &Api<vardhub::api::Dataset>,
    name: &str,
) -> Result<Option<(String, String, String)>> {
    let ds = datasets.get(name).await?;
    let conditions = ds.status.map(|s| s.common.conditions).unwrap_or_default();
    Ok(
        vardhub::controller::conditions::find(&conditions, types::READY)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone())),
    )
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_dataset_follows_its_regional_node_appearing_and_going() -> Result<()> {
    // The dataset controller reads a holder from its watch's store: the node's creation and
    // deletion must each reach the store before they wake the dataset, or the dataset would
    // keep what it saw last until its next periodic look.
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let (node, dataset) = ("t4h-gotland", "t4h-gotland-source");
    let apply = PatchParams::apply("vardhub-tests").force();
    let mut doc = vardhub_tests::source_dataset_document()?;
    doc["metadata"] = json!({"name": dataset, "namespace": "default"});
    doc["spec"]["location"]["regionalNode"]["name"] = json!(node);
    doc["spec"]["spatialCoverage"] = json!(["09"]);
    let datasets: Api<vardhub::api::Dataset> = Api::namespaced(admin.clone(), "default");
    datasets.patch(dataset, &apply, &Patch::Apply(&doc)).await?;
    let operator = RunningOperator::start(cluster, "test-holder").await?;

    let unresolved = |why: &'static str| {
        let datasets = datasets.clone();
        async move {
            eventually(why, Duration::from_secs(60), || async {
                Ok(dataset_ready(&datasets, dataset)
                    .await?
                    .filter(|(s, r, m)| {
                        s == "False"
                            && r == "LocationUnresolved"
                            && m.contains(&format!(
                                "spec.location.regionalNode: no RegionalNode named {node}"
                            ))
                    }))
            })
            .await
        }
    };
    unresolved("the dataset to name its missing node").await?;

    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let spec: RegionalNode = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
        "metadata": {"name": node},
        "spec": {"regions": ["09"]},
    }))?;
    nodes.patch(node, &apply, &Patch::Apply(&spec)).await?;
    let located = eventually(
        "the dataset to be located in the new node",
        Duration::from_secs(60),
        || async {
            let ready = dataset_ready(&datasets, dataset).await?;
            if !matches!(&ready, Some((s, r, _)) if s == "True" && r == "Located") {
                return Ok(None);
            }
            Ok(datasets.get(dataset).await?.status)
        },
    )
    .await?;
    assert!(
        located
            .distributions
            .iter()
            .all(|d| d.access_url.contains(node)),
        "{:?}",
        located.distributions
    );

    nodes.delete(node, &DeleteParams::background()).await?;
    wait_gone(&nodes, node).await?;
    unresolved("the dataset to name its deleted node").await?;

    datasets
        .delete(dataset, &DeleteParams::background())
        .await?;
    operator.stop().await?;
    Ok(())
}
