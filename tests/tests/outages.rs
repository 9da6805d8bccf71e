//! Outages of the servers the operator depends on, against the real servers: OpenBao and the
//! S3 server are frozen (SIGSTOP, so that they keep their state) while a resource changes.
//! The resource reports the outage in its status, naming the server, for the generation it
//! was asked for; nothing it already had is lost or made twice; and once the server is back
//! it becomes Ready again without a manual step.

use std::time::Duration;

use anyhow::Result;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use vardhub::api::RegionalNode;
use vardhub::controller::conditions::{find, is_true, types};
use vardhub_tests::{LocalCluster, OPERATOR_LOCK, RunningOperator, cluster_sh, eventually};

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
    let operator = RunningOperator::start(cluster, "test-outages").await?;
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
    let generation = nodes
        .get(NODE)
        .await?
        .metadata
        .generation
        .unwrap_or_default();
    wait_ready(&nodes, generation).await?;
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
    let generation = nodes
        .get(NODE)
        .await?
        .metadata
        .generation
        .unwrap_or_default();
    wait_ready(&nodes, generation).await?;
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

    // Clean up: the node (its data is retained), then its buckets and keys.
    operator.stop().await?;
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
    cluster
        .openbao_admin()?
        .delete_namespace(&format!("region-{NODE}"))
        .await?;
    Ok(())
}
