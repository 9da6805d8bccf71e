//! `DataPermit` against the local cluster: the API server refuses a malformed permit naming
//! the field; the operator says whether a permit grants access now, names what its hub lacks,
//! and ends the grant when the permit expires, without anyone touching it.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use vardhub::api::{DataHub, DataPermit};
use vardhub::controller::conditions::{find, types};
use vardhub_tests::{LocalCluster, OPERATOR_LOCK, RunningOperator, eventually};

const HUB: &str = "permits";
const NS: &str = "hub-permits";
/// A syntactically whole ed25519 key in the `authorized_keys` form.
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGs0bG0ZVpxTZmD9hEwHzQb5PLuFHiBJbDnbl4ObHlSn holder@example";

fn permit(name: &str, products: &[&str], from: &str, until: &str, key: &str) -> serde_json::Value {
    json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "DataPermit",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "dataHub": {"name": HUB},
            "products": products,
            "purpose": "Follow-up of the care guarantee",
            "holder": {"name": "A research group", "sshPublicKey": key},
            "issuedBy": {"name": "The access body", "uri": "https://example.org/hdab",
                         "email": "hdab@example.org"},
            "validFrom": from, "validUntil": until,
        },
    })
}

fn rfc3339(offset_seconds: i64) -> String {
    let t = k8s_openapi::jiff::Timestamp::now()
        + k8s_openapi::jiff::SignedDuration::from_secs(offset_seconds);
    t.round(k8s_openapi::jiff::Unit::Second)
        .expect("rounded")
        .to_string()
}

/// The `Ready` condition of a permit once its reason is `reason`.
async fn wait_reason(
    permits: &Api<DataPermit>,
    name: &str,
    reason: &str,
) -> Result<(String, String)> {
    eventually(
        &format!("permit {name} to be {reason}"),
        Duration::from_secs(90),
        || async {
            let p = permits.get(name).await?;
            let status = p.status.unwrap_or_default();
            Ok(find(&status.common.conditions, types::READY)
                .filter(|c| c.reason == reason)
                .map(|c| (c.status.clone(), c.message.clone())))
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_permit_grants_access_only_while_valid_and_names_what_its_hub_lacks() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let hubs: Api<DataHub> = Api::all(admin.clone());
    let operator = RunningOperator::start(cluster, "test-permits").await?;
    let hub: DataHub = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "DataHub",
        "metadata": {"name": HUB},
        "spec": {"zones": {"purposeSpecific": [{"name": "waiting-times", "purpose": "waiting-times"}]},
                 "deletionPolicy": "Delete", "confirmDeletion": true, "purgeObjects": true},
    }))?;
    hubs.patch(
        HUB,
        &PatchParams::apply("vardhub-tests").force(),
        &Patch::Apply(&hub),
    )
    .await?;
    eventually(
        &format!("namespace {NS}"),
        Duration::from_secs(90),
        || async {
            Ok(Api::<Namespace>::all(admin.clone())
                .get_opt(NS)
                .await?
                .map(|_| ()))
        },
    )
    .await?;

    // Malformed permits are refused by the API server, naming the field; none is stored.
    let resource = ApiResource::erase::<DataPermit>(&());
    let raw: Api<DynamicObject> = Api::namespaced_with(admin.clone(), NS, &resource);
    for (object, field) in [
        (
            permit(
                "backwards",
                &["waiting-times"],
                &rfc3339(60),
                &rfc3339(-60),
                KEY,
            ),
            "spec.validUntil must be after spec.validFrom",
        ),
        (
            permit("nothing", &[], &rfc3339(0), &rfc3339(60), KEY),
            "spec.products",
        ),
        (
            permit(
                "bad-key",
                &["waiting-times"],
                &rfc3339(0),
                &rfc3339(60),
                "ssh-ed25519 *** not base64",
            ),
            "spec.holder.sshPublicKey",
        ),
    ] {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let object: DynamicObject = serde_json::from_value(object)?;
        let err = raw
            .create(&PostParams::default(), &object)
            .await
            .expect_err(field)
            .to_string();
        assert!(
            err.contains(field),
            "{name}: the refusal names {field}: {err}"
        );
        assert!(raw.get_opt(&name).await?.is_none(), "{name} was not stored");
    }

    // A permit valid for the next 20 seconds grants access, then stops on its own.
    let permits: Api<DataPermit> = Api::namespaced(admin.clone(), NS);
    let apply = |value: serde_json::Value| {
        let permits = permits.clone();
        async move {
            let p: DataPermit = serde_json::from_value(value)?;
            let name = p.metadata.name.clone().unwrap_or_default();
            permits
                .patch(
                    &name,
                    &PatchParams::apply("vardhub-tests").force(),
                    &Patch::Apply(&p),
                )
                .await?;
            anyhow::Ok(())
        }
    };
    apply(permit(
        "short",
        &["waiting-times"],
        &rfc3339(-5),
        &rfc3339(20),
        KEY,
    ))
    .await?;
    let (ready, message) = wait_reason(&permits, "short", "Active").await?;
    assert_eq!(ready, "True");
    assert!(message.contains("waiting-times"), "{message}");
    let (ready, _) = wait_reason(&permits, "short", "Expired").await?;
    assert_eq!(ready, "False", "an expired permit grants nothing");
    assert_eq!(
        permits
            .get("short")
            .await?
            .status
            .and_then(|s| s.phase)
            .as_deref(),
        Some("Expired")
    );

    // One that starts later grants nothing yet; one naming a product the hub lacks says so.
    apply(permit(
        "later",
        &["waiting-times"],
        &rfc3339(3600),
        &rfc3339(7200),
        KEY,
    ))
    .await?;
    let (ready, _) = wait_reason(&permits, "later", "NotYetValid").await?;
    assert_eq!(ready, "False");
    apply(permit(
        "beds",
        &["hospital-beds"],
        &rfc3339(-5),
        &rfc3339(3600),
        KEY,
    ))
    .await?;
    let (ready, message) = wait_reason(&permits, "beds", "Invalid").await?;
    assert_eq!(ready, "False");
    assert!(
        message.starts_with("spec.products: hub permits has no data product hospital-beds"),
        "{message}"
    );

    // Clean up: the permits, then the hub with its buckets and keys.
    for name in ["short", "later", "beds"] {
        permits.delete(name, &DeleteParams::default()).await?;
    }
    hubs.delete(HUB, &DeleteParams::foreground()).await?;
    eventually("the hub to be gone", Duration::from_secs(90), || async {
        Ok(hubs.get_opt(HUB).await?.is_none().then_some(()))
    })
    .await?;
    operator.stop().await?;
    Ok(())
}
