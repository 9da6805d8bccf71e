//! Outages of the servers the operator depends on, against the real servers: OpenBao and the
//! S3 server are frozen (SIGSTOP, so that they keep their state) or OpenBao is sealed while a
//! resource changes. The resource reports the outage in its status, naming the server, for
//! the generation it was asked for; nothing it already had is lost or made twice; and once
//! the server is back it becomes Ready again without a manual step. The API server restarts
//! under the operator; a reconcile that outlasts its deadline is cancelled and reported; and
//! a leader cut off from the API server steps down before its Lease runs out.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use vardhub::api::RegionalNode;
use vardhub::controller::conditions::{find, is_true, types};
use vardhub::controller::manager::Stopped;
use vardhub_tests::{
    LocalCluster, OPERATOR_LOCK, OPERATOR_NAMESPACE, RunningOperator, cluster_sh, eventually,
    metric_with,
};

const NODE: &str = "outage";

/// A frozen component, continued when this is dropped, so that a failing test never leaves
/// a server stopped for the tests after it.
struct Frozen(&'static str);

impl Frozen {
    fn new(component: &'static str) -> Result<Self> {
        cluster_sh(&["freeze", component])?;
        Ok(Self(component))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Err(e) = cluster_sh(&["thaw", self.0]) {
            eprintln!("could not thaw {}: {e:#}", self.0);
        }
    }
}

/// OpenBao sealed, unsealed when this is dropped.
struct Sealed;

impl Sealed {
    fn new() -> Result<Self> {
        cluster_sh(&["seal"])?;
        Ok(Self)
    }
}

impl Drop for Sealed {
    fn drop(&mut self) {
        if let Err(e) = cluster_sh(&["unseal"]) {
            eprintln!("could not unseal OpenBao: {e:#}");
        }
    }
}

/// The node's status once it reports `reason` on `Degraded` for `generation`.
async fn wait_degraded(nodes: &Api<RegionalNode>, generation: i64, reason: &str) -> Result<String> {
    eventually(
        &format!("{NODE} to report {reason} for generation {generation}"),
        Duration::from_secs(150),
        || async {
            let n = nodes.get(NODE).await?;
            let status = n.status.unwrap_or_default();
            let degraded = find(&status.common.conditions, types::DEGRADED).cloned();
            Ok(degraded
                .filter(|c| {
                    c.status == "True"
                        && c.reason == reason
                        && c.observed_generation == Some(generation)
                        && !is_true(&status.common.conditions, types::READY)
                })
                .map(|c| c.message))
        },
    )
    .await
}

/// Waits until the node is Ready for its current generation (the last change asked for).
async fn ready_again(nodes: &Api<RegionalNode>) -> Result<()> {
    let generation = nodes
        .get(NODE)
        .await?
        .metadata
        .generation
        .unwrap_or_default();
    wait_ready(nodes, generation).await
}

async fn wait_ready(nodes: &Api<RegionalNode>, generation: i64) -> Result<()> {
    eventually(
        &format!("{NODE} to be Ready for generation {generation}"),
        Duration::from_secs(150),
        || async {
            let n = nodes.get(NODE).await?;
            let status = n.status.unwrap_or_default();
            Ok((status.common.observed_generation == Some(generation)
                && is_true(&status.common.conditions, types::READY))
            .then_some(()))
        },
    )
    .await
}

/// The region's Transit key as OpenBao holds it, read only.
async fn region_key(cluster: &LocalCluster) -> Result<serde_json::Value> {
    let answer = reqwest::Client::new()
        .get(format!("{}/v1/transit/keys/region", cluster.vault_addr))
        .header("X-Vault-Token", &cluster.vault_token)
        .header("X-Vault-Namespace", format!("region-{NODE}"))
        .send()
        .await?
        .error_for_status()?;
    Ok(answer.json::<serde_json::Value>().await?["data"].clone())
}

async fn patch(nodes: &Api<RegionalNode>, spec: serde_json::Value) -> Result<i64> {
    let node = nodes
        .patch(
            NODE,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await?;
    Ok(node.metadata.generation.unwrap_or_default())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn openbao_and_s3_outages_are_reported_and_recovered_from_without_loss() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    // Its Lease (60 s) outlasts the API server's restart below.
    let operator =
        RunningOperator::start_with(cluster, "test-outages", "vardhub-operator", 60, true).await?;
    let node: RegionalNode = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
        "metadata": {"name": NODE},
        "spec": {"regions": ["13"], "keys": {"rotationPeriodDays": 90}},
    }))?;
    nodes
        .patch(
            NODE,
            &PatchParams::apply("vardhub-tests").force(),
            &Patch::Apply(&node),
        )
        .await?;
    let first = nodes
        .get(NODE)
        .await?
        .metadata
        .generation
        .unwrap_or_default();
    wait_ready(&nodes, first).await?;
    let key_before = region_key(cluster).await?;

    // OpenBao hangs while the node asks for another rotation period.
    {
        let _frozen = Frozen::new("openbao")?;
        let generation = patch(&nodes, json!({"keys": {"rotationPeriodDays": 30}})).await?;
        let message = wait_degraded(&nodes, generation, "KeysFailed").await?;
        assert!(message.starts_with("OpenBao: "), "names OpenBao: {message}");
    }
    assert_calls(&operator, "openbao", "unanswered").await?;
    ready_again(&nodes).await?;
    let key_after = region_key(cluster).await?;
    assert_eq!(
        key_after["latest_version"], key_before["latest_version"],
        "the region's key is the same key, neither lost nor made again"
    );
    assert_eq!(
        key_after["auto_rotate_period"],
        json!(30 * 24 * 3600),
        "the change asked for during the outage is in place"
    );

    // The S3 server hangs while the node gains a mapping job.
    {
        let _frozen = Frozen::new("minio")?;
        let generation = patch(
            &nodes,
            json!({"mappingJobs": [{"name": "after-outage", "schedule": "0 2 * * *",
                                    "sourceModel": "s", "targetModel": {"name": "omop-cdm", "version": "5.4"}}]}),
        )
        .await?;
        let message = wait_degraded(&nodes, generation, "StorageFailed").await?;
        assert!(message.starts_with("S3 "), "names the S3 server: {message}");
    }
    assert_calls(&operator, "s3", "unanswered").await?;
    ready_again(&nodes).await?;
    let root = cluster.s3_root();
    for bucket in [
        format!("vardhub-{NODE}-landing"),
        format!("vardhub-{NODE}-standardised"),
    ] {
        let versioning = root.get_bucket_versioning().bucket(&bucket).send().await?;
        assert_eq!(
            versioning.status().map(|s| s.as_str()),
            Some("Enabled"),
            "{bucket} is still there, versioned"
        );
    }
    assert_eq!(
        region_key(cluster).await?["latest_version"],
        key_before["latest_version"]
    );

    // OpenBao sealed (it answers, but refuses everything) while the node asks for yet another
    // rotation period: the status says OpenBao is sealed; unsealed, the node is Ready with
    // the change and the same key, and how long that took is printed.
    let unsealed_at = {
        let _sealed = Sealed::new()?;
        let generation = patch(&nodes, json!({"keys": {"rotationPeriodDays": 60}})).await?;
        let message = wait_degraded(&nodes, generation, "KeysFailed").await?;
        assert!(
            message.starts_with("OpenBao: ") && message.contains("sealed"),
            "names OpenBao and says it is sealed: {message}"
        );
        std::time::Instant::now()
    };
    assert_calls(&operator, "openbao", "server_error").await?;
    ready_again(&nodes).await?;
    println!(
        "ready {:.1} s after OpenBao was unsealed",
        unsealed_at.elapsed().as_secs_f64()
    );
    let key_after = region_key(cluster).await?;
    assert_eq!(key_after["latest_version"], key_before["latest_version"]);
    assert_eq!(key_after["auto_rotate_period"], json!(60 * 24 * 3600));

    // The API server restarts, cutting every connection and watch: the operator keeps
    // leading and takes up the next change by itself.
    let restarting = std::time::Instant::now();
    cluster_sh(&["restart", "kube-apiserver"])?;
    let restarted = restarting.elapsed();
    let generation = eventually(
        "the restarted API server to take a change",
        Duration::from_secs(60),
        || async {
            Ok(Some(
                patch(&nodes, json!({"keys": {"rotationPeriodDays": 45}})).await?,
            ))
        },
    )
    .await?;
    let changed = std::time::Instant::now();
    wait_ready(&nodes, generation).await?;
    println!(
        "the API server restarted in {:.1} s; the next change was Ready {:.1} s after it was made",
        restarted.as_secs_f64(),
        changed.elapsed().as_secs_f64()
    );
    assert_eq!(operator.get("/readyz").await?, "leader", "it still leads");
    let key_after = region_key(cluster).await?;
    assert_eq!(key_after["latest_version"], key_before["latest_version"]);
    assert_eq!(key_after["auto_rotate_period"], json!(45 * 24 * 3600));

    // A reconcile that outlasts its deadline is cancelled and reported as such: an operator
    // allowed 5 s per reconcile meets a frozen OpenBao, whose calls would only time out after
    // 30 s. Thawed, the node is Ready with the change.
    assert_eq!(operator.stop().await?, Stopped::Shutdown);
    let operator = RunningOperator::start_tuned(cluster, "test-deadline", |o| {
        o.reconcile_deadline = Duration::from_secs(5);
    })
    .await?;
    {
        let _frozen = Frozen::new("openbao")?;
        let generation = patch(&nodes, json!({"keys": {"rotationPeriodDays": 50}})).await?;
        let message = wait_degraded(&nodes, generation, "DeadlineExceeded").await?;
        assert!(
            message.starts_with("the reconcile took longer than 5s and was cancelled"),
            "says what happened: {message}"
        );
    }
    ready_again(&nodes).await?;
    let key_after = region_key(cluster).await?;
    assert_eq!(key_after["latest_version"], key_before["latest_version"]);
    assert_eq!(key_after["auto_rotate_period"], json!(50 * 24 * 3600));

    // Clean up: the node (its data is retained), then its buckets and keys.
    assert_eq!(operator.stop().await?, Stopped::Shutdown);
    nodes.delete(NODE, &DeleteParams::default()).await?;
    eventually("the node to be gone", Duration::from_secs(60), || async {
        Ok(nodes.get_opt(NODE).await?.is_none().then_some(()))
    })
    .await?;
    let storage = vardhub::adapters::s3::Storage::new(cluster.s3_settings());
    for bucket in ["landing", "standardised"] {
        storage
            .purge_bucket(&format!("vardhub-{NODE}-{bucket}"))
            .await?;
    }
    // The node kept its keys and access (deletionPolicy Retain); the test removes them, the
    // policy and role before the namespace that holds their owner record.
    let bao = cluster.openbao_admin()?;
    let access = format!("vardhub-region-{NODE}");
    bao.delete_kubernetes_role("kubernetes", &access).await?;
    bao.delete_policy(&access).await?;
    bao.delete_namespace(&format!("region-{NODE}")).await?;
    Ok(())
}

/// The operator's metrics count requests to `server` with `outcome` under the node's
/// controller: what an outage looks like to whoever watches them.
async fn assert_calls(operator: &RunningOperator, server: &str, outcome: &str) -> Result<()> {
    let text = operator.metrics().await?;
    let n = metric_with(
        &text,
        "vardhub_external_calls_total",
        &[
            ("controller", "regionalnode"),
            ("server", server),
            ("outcome", outcome),
        ],
    );
    assert!(n > 0.0, "{server} requests counted as {outcome}: {text}");
    Ok(())
}

/// What an operator's `/readyz` says: "leader", "standby", or anything else once it stops.
async fn role(operator: &RunningOperator) -> String {
    operator.get("/readyz").await.unwrap_or_default()
}

/// The time of a Lease's last renewal.
async fn renewed(leases: &Api<Lease>, name: &str) -> Result<Option<Timestamp>> {
    Ok(leases
        .get(name)
        .await?
        .spec
        .and_then(|s| s.renew_time)
        .map(|t| t.0))
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_leader_cut_off_from_the_api_server_steps_down_before_its_lease_ends() -> Result<()> {
    const LEASE: &str = "vardhub-cut-off";
    const SECONDS: u64 = 15;
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let leases: Api<Lease> = Api::namespaced(cluster.admin_client().await?, OPERATOR_NAMESPACE);
    let first = RunningOperator::start_with(cluster, "cut-off", LEASE, SECONDS, false).await?;
    eventually(
        "the first replica to lead",
        Duration::from_secs(60),
        || async { Ok((role(&first).await == "leader").then_some(())) },
    )
    .await?;

    // The API server freezes just after a renewal, so that the renewal seen is the last one
    // before the outage: its connections hang rather than fail, as in a partition. The
    // replica must stop leading before the Lease could pass to another.
    let seen = renewed(&leases, LEASE).await?;
    let last = eventually(
        "a renewal of the Lease",
        Duration::from_secs(30),
        || async { Ok(renewed(&leases, LEASE).await?.filter(|t| Some(*t) != seen)) },
    )
    .await?;
    let stepped_down = {
        let _frozen = Frozen::new("kube-apiserver")?;
        eventually(
            "the cut-off replica to step down",
            Duration::from_secs(30),
            || async { Ok((role(&first).await != "leader").then(Timestamp::now)) },
        )
        .await?
    };
    let after = stepped_down.duration_since(last);
    println!(
        "stepped down {:.1} s after its last renewal; the Lease lasts {SECONDS} s",
        after.as_secs_f64()
    );
    assert!(
        after < SignedDuration::from_secs(SECONDS as i64),
        "it stepped down before another replica could take the Lease: {after:?}"
    );
    assert_eq!(first.stop().await?, Stopped::LostLeadership);

    // Once the API server is back, another replica takes the Lease.
    let successor =
        RunningOperator::start_with(cluster, "successor", LEASE, SECONDS, false).await?;
    eventually("the successor to lead", Duration::from_secs(60), || async {
        Ok((role(&successor).await == "leader").then_some(()))
    })
    .await?;
    assert_eq!(successor.stop().await?, Stopped::Shutdown);
    leases.delete(LEASE, &DeleteParams::default()).await?;
    Ok(())
}
