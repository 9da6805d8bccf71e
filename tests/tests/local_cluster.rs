//! Foundation tests against the local cluster: CRDs, the `RegionalNode` chain end to end,
//! steady state without writes, admission of bad input, OpenBao's Kubernetes login and the
//! S3 server.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use vardhub::adapters::openbao::KubernetesRole;
use vardhub::api::{RegionalNode, RegionalNodeSpec};
use vardhub::controller::conditions::{is_true, types};
use vardhub::controller::manager::Stopped;
use vardhub_tests::{
    LocalCluster, OPERATOR_LOCK, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, RunningOperator,
    eventually, kubectl, metric, metric_with, openbao_audit_mark, openbao_requests_since,
};

fn node(name: &str, regions: &[&str]) -> Result<RegionalNode> {
    let spec: RegionalNodeSpec = serde_json::from_value(serde_json::json!({ "regions": regions }))?;
    Ok(RegionalNode::new(name, spec))
}

async fn wait_ready(api: &Api<RegionalNode>, name: &str) -> Result<RegionalNode> {
    eventually(
        &format!("RegionalNode {name} to be Ready"),
        Duration::from_secs(60),
        || async {
            let node = api.get(name).await?;
            let ready = node.status.as_ref().is_some_and(|s| {
                is_true(&s.common.conditions, types::READY)
                    && s.common.observed_generation == node.metadata.generation
                    && s.common
                        .conditions
                        .iter()
                        .all(|c| c.observed_generation == node.metadata.generation)
            });
            Ok(ready.then_some(node))
        },
    )
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn crds_are_installed_with_category_and_short_names() -> Result<()> {
    LocalCluster::get();
    let names = kubectl(&["api-resources", "--api-group=vardhub.io", "-o", "name"])?;
    for plural in [
        "regionalnodes",
        "datahubs",
        "pseudonymisationservices",
        "catalogservices",
        "datasets",
        "datapermits",
    ] {
        assert!(
            names.contains(&format!("{plural}.vardhub.io")),
            "{plural} served: {names}"
        );
    }
    let all = kubectl(&["get", "vardhub", "-A"]);
    assert!(all.is_ok(), "`kubectl get vardhub` works: {all:?}");
    let explained = kubectl(&["explain", "regionalnode.spec.regions"])?;
    assert!(
        explained.contains("county code"),
        "field docs reach kubectl explain: {explained}"
    );
    // Each kind opens with what it is, not with kube-derive's placeholder.
    for (kind, opening) in [
        ("regionalnode", "A RegionalNode is"),
        ("datahub", "A DataHub is"),
        ("pseudonymisationservice", "A PseudonymisationService"),
        ("catalogservice", "A CatalogService"),
        ("dataset", "A Dataset is"),
        ("datapermit", "A DataPermit grants"),
    ] {
        let text = kubectl(&["explain", kind])?;
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(opening) && !flat.contains("Auto-generated"),
            "kubectl explain {kind} describes the kind: {text}"
        );
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn regional_node_reconciles_to_ready_then_steady_state_makes_no_writes_and_delete_cleans_up()
-> Result<()> {
    let cluster = LocalCluster::get();
    // One operator at a time: another test's operator would reconcile this node too.
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let name = "test-sussa";
    let _ = nodes.delete(name, &DeleteParams::default()).await;
    wait_gone::<RegionalNode>(&nodes, name).await?;

    let before_first = k8s_openapi::jiff::Timestamp::now().to_string();
    let first = RunningOperator::start(cluster, "test-first").await?;
    nodes
        .create(&PostParams::default(), &node(name, &["03", "04", "17"])?)
        .await?;
    let ready = wait_ready(&nodes, name).await?;
    let ns_name = ready
        .status
        .as_ref()
        .and_then(|s| s.namespace.clone())
        .unwrap_or_default();
    assert_eq!(ns_name, format!("region-{name}"));

    // The children exist, with our labels and an owner reference to the node.
    let ns = Api::<Namespace>::all(admin.clone()).get(&ns_name).await?;
    let labels = ns.labels();
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "vardhub-operator");
    assert_eq!(labels["vardhub.io/owner-name"], name);
    assert_eq!(labels["vardhub.io/region-17"], "true");
    assert_eq!(
        ns.owner_references()[0].uid,
        ready.uid().unwrap_or_default()
    );
    let deny = Api::<NetworkPolicy>::namespaced(admin.clone(), &ns_name)
        .get("default-deny")
        .await?;
    assert_eq!(
        deny.spec.as_ref().and_then(|s| s.policy_types.clone()),
        Some(vec!["Ingress".into(), "Egress".into()])
    );
    assert_eq!(deny.labels()["vardhub.io/owner-kind"], "RegionalNode");
    let sa = Api::<ServiceAccount>::namespaced(admin.clone(), &ns_name)
        .get("regional-node")
        .await?;
    assert_eq!(sa.labels()["app.kubernetes.io/part-of"], "vardhub");
    let first_metrics = first.metrics().await?;
    assert!(
        metric(&first_metrics, "vardhub_api_writes_total") >= 3.0,
        "the first start wrote: {first_metrics}"
    );
    assert_eq!(first.stop().await?, Stopped::Shutdown);

    // A second start at steady state reconciles but sends no write.
    let since = k8s_openapi::jiff::Timestamp::now().to_string();
    let bao_mark = openbao_audit_mark()?;
    let trace = cluster.s3_trace().await?;
    let second = RunningOperator::start(cluster, "test-second").await?;
    let text = second
        .settled(&[("regionalnode", 1)], Duration::from_secs(60))
        .await?;
    assert_eq!(
        metric(&text, "vardhub_api_writes_total"),
        0.0,
        "no writes counted by the operator: {text}"
    );
    // The requests the operator counts to OpenBao and the S3 server, against what OpenBao's
    // audit device and the S3 server's trace saw: every one of them names the node (its
    // OpenBao namespace, policy and role; its buckets).
    let counted = |server| {
        metric_with(
            &text,
            "vardhub_external_calls_total",
            &[("controller", "regionalnode"), ("server", server)],
        )
    };
    let audited: Vec<_> = openbao_requests_since(bao_mark)?
        .into_iter()
        .filter(|(_, path)| path.contains(name))
        .collect();
    let traced: Vec<_> = trace
        .stop()
        .into_iter()
        .filter(|c| c.path.contains(name))
        .collect();
    // Signed by the operator's own S3 identity, which holds only the chart's policy.
    let foreign: Vec<_> = traced
        .iter()
        .filter(|c| c.access_key.as_deref() != Some(vardhub_tests::OPERATOR_S3_USER))
        .collect();
    assert!(foreign.is_empty(), "signed by someone else: {foreign:?}");
    let traced: Vec<_> = traced
        .iter()
        .map(|c| format!("{} {}", c.api, c.path))
        .collect();
    assert!(counted("openbao") > 0.0 && counted("s3") > 0.0, "{text}");
    #[allow(clippy::cast_precision_loss)]
    let (audited_n, traced_n) = (audited.len() as f64, traced.len() as f64);
    assert_eq!(
        counted("openbao"),
        audited_n,
        "OpenBao requests counted by the operator and by the audit device: {text}\n{audited:?}"
    );
    assert_eq!(
        counted("s3"),
        traced_n,
        "S3 requests counted by the operator and by the S3 server's trace: {text}\n{traced:?}"
    );
    let user = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}");
    let first_writes = cluster.audited_writes(&user, &before_first)?;
    assert!(
        first_writes
            .iter()
            .any(|w| w.starts_with("patch namespaces")),
        "the audit log shows the first start's writes as the operator's ServiceAccount: {first_writes:?}"
    );
    let writes = cluster.audited_writes(&user, &since)?;
    assert!(
        writes.is_empty(),
        "the API server's audit log shows writes at steady state: {writes:?}"
    );

    // Drift: a child deleted by hand comes back.
    Api::<NetworkPolicy>::namespaced(admin.clone(), &ns_name)
        .delete("default-deny", &DeleteParams::default())
        .await?;
    eventually(
        "default-deny to be restored",
        Duration::from_secs(30),
        || async {
            Ok(Api::<NetworkPolicy>::namespaced(admin.clone(), &ns_name)
                .get_opt("default-deny")
                .await?
                .map(|_| ()))
        },
    )
    .await?;

    // An object carrying the node's owner labels that the node no longer wants is pruned.
    let stale: ServiceAccount = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "stale", "namespace": ns_name, "labels": {
            "app.kubernetes.io/managed-by": "vardhub-operator", "app.kubernetes.io/part-of": "vardhub",
            "vardhub.io/owner-kind": "RegionalNode", "vardhub.io/owner-name": name},
            "ownerReferences": [{"apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode", "name": name,
                "uid": ready.uid().unwrap_or_default(), "controller": true}]}
    }))?;
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns_name)
        .create(&PostParams::default(), &stale)
        .await?;
    eventually(
        "the stale ServiceAccount to be pruned",
        Duration::from_secs(30),
        || async {
            let left = Api::<ServiceAccount>::namespaced(admin.clone(), &ns_name)
                .get_opt("stale")
                .await?;
            Ok(left.is_none().then_some(()))
        },
    )
    .await?;

    // Becoming Ready was announced with an event on the node.
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(admin.clone(), "default");
    let announced = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .any(|e| {
            e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
                && e.reason.as_deref() == Some("Reconciled")
        });
    assert!(announced, "a Reconciled event was published for the node");

    // Pausing stops reconciliation and says so.
    let pause = serde_json::json!({"metadata": {"annotations": {"vardhub.io/reconciliation-paused": "true"}}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&pause))
        .await?;
    eventually(
        "the node to report the pause",
        Duration::from_secs(30),
        || async {
            let n = nodes.get(name).await?;
            Ok(n.status
                .is_some_and(|s| is_true(&s.common.conditions, types::RECONCILIATION_PAUSED))
                .then_some(()))
        },
    )
    .await?;
    let unpause = serde_json::json!({"metadata": {"annotations": {"vardhub.io/reconciliation-paused": null}}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&unpause))
        .await?;
    eventually(
        "the pause to be lifted",
        Duration::from_secs(30),
        || async {
            let n = nodes.get(name).await?;
            Ok(n.status
                .is_some_and(|s| !is_true(&s.common.conditions, types::RECONCILIATION_PAUSED))
                .then_some(()))
        },
    )
    .await?;

    // Deleting the node removes what it owns.
    nodes.delete(name, &DeleteParams::foreground()).await?;
    wait_gone::<RegionalNode>(&nodes, name).await?;
    wait_gone::<Namespace>(&Api::all(admin.clone()), &ns_name).await?;
    second.stop().await?;
    Ok(())
}

async fn wait_gone<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(
        &format!("{name} to be deleted"),
        Duration::from_secs(90),
        || async { Ok(api.get_opt(name).await?.is_none().then_some(())) },
    )
    .await
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn invalid_regional_node_is_refused_by_the_api_server_naming_the_field() -> Result<()> {
    let cluster = LocalCluster::get();
    // The accepted node below would be reconciled by an operator of another test.
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    // Sent as plain JSON, the way a manifest reaches the API server: the typed client could
    // not even hold an unknown county code.
    let resource = ApiResource::erase::<RegionalNode>(&());
    let nodes: Api<DynamicObject> = Api::all_with(admin.clone(), &resource);
    let create = |name: &str, spec: serde_json::Value| {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
            "metadata": {"name": name}, "spec": spec,
        }))
        .expect("object");
        let nodes = nodes.clone();
        async move { nodes.create(&PostParams::default(), &object).await }
    };

    let err = create("test-bad-region", serde_json::json!({"regions": ["02"]}))
        .await
        .expect_err("02 refused")
        .to_string();
    assert!(
        err.contains("spec.regions[0]"),
        "the message names the field: {err}"
    );
    assert!(
        err.contains("\"01\""),
        "the message lists the valid codes: {err}"
    );

    let err = create(
        "test-dup-region",
        serde_json::json!({"regions": ["01", "01"]}),
    )
    .await
    .expect_err("dup refused")
    .to_string();
    assert!(
        err.contains("spec.regions[1]"),
        "a duplicate region names the field: {err}"
    );

    let err = create("test-no-region", serde_json::json!({"regions": []}))
        .await
        .expect_err("empty refused")
        .to_string();
    assert!(
        err.contains("spec.regions"),
        "an empty list names the field: {err}"
    );

    // Each class of bad input is refused by the schema, naming the field, before anything
    // is created: images without a real digest, schedules that are no schedule, references
    // that could be paths, environment names that are the operator's.
    let job = |field: &str, value: serde_json::Value| {
        let mut job = serde_json::json!({
            "name": "m", "schedule": "0 2 * * *", "sourceModel": "s",
            "targetModel": {"name": "omop-cdm", "version": "5.4"},
        });
        job[field] = value;
        serde_json::json!({"regions": ["01"], "mappingJobs": [job]})
    };
    for (spec, field) in [
        (
            job("image", serde_json::json!("example/map@sha256:anything")),
            "spec.mappingJobs[0].image",
        ),
        (
            job("schedule", serde_json::json!("every night at two")),
            "spec.mappingJobs[0].schedule",
        ),
        (
            job("config", serde_json::json!({"VARDHUB_OPENBAO_ROLE": "x"})),
            "spec.mappingJobs[].config",
        ),
        (
            serde_json::json!({"regions": ["01"], "hub": {"name": "../hub-national"}}),
            "spec.hub.name",
        ),
    ] {
        let err = create("test-bad-input", spec)
            .await
            .expect_err(field)
            .to_string();
        assert!(err.contains(field), "the refusal names {field}: {err}");
    }
    let err = create("test.dotted", serde_json::json!({"regions": ["01"]}))
        .await
        .expect_err("a name that is no DNS label")
        .to_string();
    assert!(err.contains("metadata.name: a DNS label"), "{err}");
    assert!(
        nodes.get_opt("test-bad-input").await?.is_none(),
        "nothing was created"
    );

    let _ = nodes
        .delete("test-immutable-ns", &DeleteParams::default())
        .await;
    wait_gone(&nodes, "test-immutable-ns").await?;
    create(
        "test-immutable-ns",
        serde_json::json!({"regions": ["12"], "namespace": "region-skane"}),
    )
    .await?;
    let moved = serde_json::json!({"spec": {"namespace": "elsewhere"}});
    let err = nodes
        .patch(
            "test-immutable-ns",
            &PatchParams::default(),
            &Patch::Merge(&moved),
        )
        .await
        .expect_err("namespace change refused")
        .to_string();
    assert!(err.contains("spec.namespace cannot be changed"), "{err}");
    nodes
        .delete("test-immutable-ns", &DeleteParams::default())
        .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn service_account_token_logs_in_to_openbao_through_kubernetes_auth() -> Result<()> {
    use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
    let cluster = LocalCluster::get();
    let admin = cluster.admin_client().await?;
    let ns = "vardhub-test-openbao";
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    cluster.ensure_service_account(ns, "reader").await?;

    let role = KubernetesRole {
        service_accounts: vec!["reader".into()],
        namespaces: vec![ns.into()],
        policies: vec!["default".into()],
        ttl_seconds: 300,
        ..Default::default()
    };
    cluster
        .openbao_admin()?
        .ensure_kubernetes_role("kubernetes", "vardhub-test-reader", &role)
        .await?;

    let jwt = cluster.service_account_token(ns, "reader", None).await?;
    let client = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&cluster.vault_addr)
            .build()?,
    )?;
    let auth = vaultrs::auth::kubernetes::login(&client, "kubernetes", "vardhub-test-reader", &jwt)
        .await?;
    assert!(
        auth.policies.contains(&"default".to_string()),
        "logged in with the role's policy"
    );
    assert_eq!(
        auth.metadata
            .as_ref()
            .and_then(|m| m.get("service_account_name"))
            .map(String::as_str),
        Some("reader")
    );

    // A token of another ServiceAccount is refused.
    let other = cluster
        .service_account_token("kube-system", "openbao-token-reviewer", None)
        .await?;
    let refused =
        vaultrs::auth::kubernetes::login(&client, "kubernetes", "vardhub-test-reader", &other)
            .await
            .err();
    assert_eq!(
        refused.as_ref().and_then(vardhub_tests::openbao_status),
        Some(403),
        "a ServiceAccount the role does not bind is refused (403)"
    );
    namespaces.delete(ns, &DeleteParams::default()).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn s3_server_accepts_a_bucket_with_versioning() -> Result<()> {
    use aws_sdk_s3::config::{Credentials, Region};
    use aws_sdk_s3::types::{BucketVersioningStatus, VersioningConfiguration};
    let cluster = LocalCluster::get();
    let credentials = Credentials::new(
        std::env::var("AWS_ACCESS_KEY_ID")?,
        std::env::var("AWS_SECRET_ACCESS_KEY")?,
        None,
        None,
        "vardhub-tests",
    );
    let config = aws_sdk_s3::Config::builder()
        .endpoint_url(&cluster.s3_endpoint)
        .region(Region::new("eu-north-1"))
        .credentials_provider(credentials)
        .force_path_style(true)
        .build();
    let s3 = aws_sdk_s3::Client::from_conf(config);
    let bucket = "vardhub-test-versioning";
    if s3.head_bucket().bucket(bucket).send().await.is_err() {
        s3.create_bucket().bucket(bucket).send().await?;
    }
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await?;
    let versioning = s3.get_bucket_versioning().bucket(bucket).send().await?;
    assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
    for body in ["first", "second"] {
        s3.put_object()
            .bucket(bucket)
            .key("object")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await?;
    }
    let versions = s3
        .list_object_versions()
        .bucket(bucket)
        .prefix("object")
        .send()
        .await?;
    assert!(versions.versions().len() >= 2, "both versions are kept");
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_purge_stops_at_an_object_under_legal_hold_and_names_it() -> Result<()> {
    use aws_sdk_s3::types::ObjectLockLegalHoldStatus;
    use vardhub::adapters::s3::{BucketSpec, Error, Storage};
    let cluster = LocalCluster::get();
    let storage = Storage::new(cluster.s3_settings());
    let s3 = storage.client();
    let bucket = "vardhub-test-purge-held";
    // A bucket with object lock (as a zone with retention gets), an ordinary object and one
    // under legal hold, which no purge may delete.
    storage
        .ensure_bucket(
            &BucketSpec {
                name: bucket.into(),
                owner: "Test/purge".into(),
                retention_days: Some(1),
            },
            &vardhub_tests::Unclaimed,
        )
        .await?;
    for key in ["free", "held"] {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(key.as_bytes().to_vec().into())
            .send()
            .await?;
    }
    let hold = |status: ObjectLockLegalHoldStatus| {
        s3.put_object_legal_hold()
            .bucket(bucket)
            .key("held")
            .legal_hold(
                aws_sdk_s3::types::ObjectLockLegalHold::builder()
                    .status(status)
                    .build(),
            )
            .send()
    };
    hold(ObjectLockLegalHoldStatus::On).await?;

    // The purge ends (it does not list the held object again and again) and names it.
    let refused = tokio::time::timeout(Duration::from_secs(60), storage.purge_bucket(bucket))
        .await
        .map_err(|_| anyhow::anyhow!("the purge did not end"))?;
    match refused {
        Err(Error::Kept { key, code, .. }) => {
            assert_eq!(key, "held");
            assert!(!code.is_empty(), "the server's reason is kept");
        }
        other => panic!("expected the held object to stop the purge: {other:?}"),
    }
    assert!(storage.bucket_exists(bucket).await?, "the bucket is kept");

    // With the hold lifted the same purge completes.
    hold(ObjectLockLegalHoldStatus::Off).await?;
    storage.purge_bucket(bucket).await?;
    assert!(!storage.bucket_exists(bucket).await?, "the bucket is gone");
    Ok(())
}

/// A creation cut off between `CreateBucket` and the owner tag (as a kill at that moment
/// leaves it) is finished by the resource that claimed the bucket beforehand, and by no other:
/// the claim in OpenBao is what tells the operator's own half-made bucket from a stranger's.
/// Against the real OpenBao and S3 server.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_bucket_whose_creation_was_cut_off_is_finished_only_by_its_claimant() -> Result<()> {
    use vardhub::adapters::s3::{BucketSpec, CreationClaims as _, Error, Storage};
    use vardhub::controller::storage::{KV_MOUNT, OpenBaoClaims};
    let cluster = LocalCluster::get();
    let storage = Storage::new(cluster.s3_settings());
    let admin = cluster.openbao_admin()?;
    let namespace = "test-bucket-claims";
    let bucket = "vardhub-test-cut-off";
    let spec = |owner: &str| BucketSpec {
        name: bucket.into(),
        owner: owner.into(),
        retention_days: None,
    };
    admin.ensure_namespace(namespace, "Test/claims").await?;
    admin
        .in_namespace(namespace)?
        .ensure_kv_mount(KV_MOUNT)
        .await?;
    let metrics = vardhub::telemetry::Metrics::default();
    let claims = OpenBaoClaims::new(&admin, namespace, &metrics, "test")?;

    // What a kill right after CreateBucket leaves: the claim, and a bucket with no owner tag.
    claims.claim(bucket, "Test/cut-off").await?;
    storage
        .client()
        .create_bucket()
        .bucket(bucket)
        .send()
        .await?;
    assert_eq!(storage.bucket_owner(bucket).await?, Some(None));

    // Another resource may not finish it: the claim is not its own.
    match storage.ensure_bucket(&spec("Test/other"), &claims).await {
        Err(Error::NotOurs { owner: None, .. }) => {}
        other => panic!("expected NotOurs for another owner: {other:?}"),
    }
    assert_eq!(
        storage.bucket_owner(bucket).await?,
        Some(None),
        "left untouched"
    );

    // The claimant finishes it without creating it again.
    let outcome = storage
        .ensure_bucket(&spec("Test/cut-off"), &claims)
        .await?;
    assert!(
        outcome.writes.contains(&"PutBucketTagging") && !outcome.writes.contains(&"CreateBucket"),
        "{:?}",
        outcome.writes
    );
    assert_eq!(
        storage.bucket_owner(bucket).await?,
        Some(Some("Test/cut-off".to_string()))
    );
    let again = storage
        .ensure_bucket(&spec("Test/cut-off"), &claims)
        .await?;
    assert!(again.writes.is_empty(), "then steady: {:?}", again.writes);

    storage.purge_bucket(bucket).await?;
    admin.delete_namespace(namespace).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn an_access_whose_writing_was_cut_off_is_finished_only_by_its_owner() -> Result<()> {
    use vardhub::adapters::openbao::Error;
    use vardhub::controller::storage::{AUTH_MOUNT, Access, KV_MOUNT, ensure_access};
    let cluster = LocalCluster::get();
    let admin = cluster.openbao_admin()?;
    let namespace = "test-access-claims";
    let name = "vardhub-test-access-cut-off";
    let access = Access {
        name,
        policy: serde_json::json!({"path": {"sys/health": {"capabilities": ["read"]}}}),
        role: KubernetesRole {
            service_accounts: vec!["cut-off".into()],
            namespaces: vec![namespace.into()],
            policies: vec![name.into()],
            ttl_seconds: 600,
            audience: None,
            batch_tokens: false,
        },
    };
    admin.ensure_namespace(namespace, "Test/claims").await?;
    let kv = admin.in_namespace(namespace)?;
    kv.ensure_kv_mount(KV_MOUNT).await?;
    let written = |metrics: &vardhub::telemetry::Metrics, kind: &str| {
        metric_with(
            &metrics.encode(),
            "vardhub_api_writes_total",
            &[("kind", kind)],
        )
    };

    // What a kill right after the owner record leaves: the record, no policy, no role.
    kv.write_secret(
        KV_MOUNT,
        &vardhub::layout::access_claim_path(name),
        &serde_json::json!({"owner": "Test/cut-off"}),
    )
    .await?;
    let absent = || async {
        anyhow::Ok(
            !admin.policy_exists(name).await?
                && !admin.kubernetes_role_exists(AUTH_MOUNT, name).await?,
        )
    };
    assert!(absent().await?);

    // Another resource may not finish it: the record is not its own.
    let metrics = vardhub::telemetry::Metrics::default();
    match ensure_access(&admin, namespace, "Test/other", &access, &metrics, "test").await {
        Err(Error::AccessNotOurs {
            owner: Some(owner), ..
        }) => {
            assert_eq!(owner, "Test/cut-off");
        }
        other => panic!("expected AccessNotOurs naming the recorded owner: {other:?}"),
    }
    assert!(absent().await?, "nothing written for the other resource");

    // The owner finishes it without writing its record again, then is steady.
    ensure_access(&admin, namespace, "Test/cut-off", &access, &metrics, "test").await?;
    assert_eq!(
        written(&metrics, "OpenBaoPolicy"),
        1.0,
        "{}",
        metrics.encode()
    );
    assert_eq!(
        written(&metrics, "OpenBaoRole"),
        1.0,
        "{}",
        metrics.encode()
    );
    assert_eq!(
        written(&metrics, "OpenBaoSecret"),
        0.0,
        "{}",
        metrics.encode()
    );
    assert!(
        admin.policy_exists(name).await? && admin.kubernetes_role_exists(AUTH_MOUNT, name).await?
    );
    let steady = vardhub::telemetry::Metrics::default();
    ensure_access(&admin, namespace, "Test/cut-off", &access, &steady, "test").await?;
    assert_eq!(
        metric(&steady.encode(), "vardhub_api_writes_total"),
        0.0,
        "then steady: {}",
        steady.encode()
    );

    admin.remove_kubernetes_role(AUTH_MOUNT, name).await?;
    admin.remove_policy(name).await?;
    admin.delete_namespace(namespace).await?;
    Ok(())
}

/// Every pseudonymisation service's first pass makes the operator's registry namespace, so
/// several reconciles may create it at the same moment: each of them succeeds, the namespace
/// records its owner, and a creator with another owner is still refused.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_namespace_made_at_once_by_several_passes_of_one_owner_is_theirs() -> Result<()> {
    use vardhub::adapters::openbao::Error;
    let cluster = LocalCluster::get();
    let admin = cluster.openbao_admin()?;
    let namespace = "test-registry-race";
    admin.delete_namespace(namespace).await?;
    let passes = futures::future::join_all(
        (0..4).map(|_| admin.ensure_namespace(namespace, "Test/registry")),
    )
    .await;
    // OpenBao may accept a second creation of a namespace, so how many say they wrote is
    // its business; none may fail, and the owner stays the one recorded.
    let wrote: Vec<bool> = passes.into_iter().collect::<Result<_, _>>()?;
    assert!(wrote.iter().any(|w| *w), "a pass made it: {wrote:?}");
    assert_eq!(
        admin.namespace_owner(namespace).await?.flatten().as_deref(),
        Some("Test/registry")
    );
    match admin.ensure_namespace(namespace, "Test/someone-else").await {
        Err(Error::NotOurs { owner, .. }) => assert_eq!(owner.as_deref(), Some("Test/registry")),
        other => panic!("expected NotOurs naming the owner: {other:?}"),
    }
    admin.delete_namespace(namespace).await?;
    Ok(())
}

/// OpenBao takes a second creation of a namespace as an update of its metadata: a creator
/// whose write lands last is recorded as the owner, whatever the first was told. The operator
/// settles the race on a create-only owner record in its registry instead, so of eight owners
/// creating one namespace at once exactly one goes on, every other is refused naming it, and
/// the namespace and the record agree. Against the real OpenBao.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn of_several_owners_creating_one_namespace_at_once_exactly_one_gets_it() -> Result<()> {
    use vardhub::adapters::openbao::Error;
    use vardhub::controller::storage::{
        KV_MOUNT, REGISTRY_NAMESPACE, ensure_owned_namespace, namespace_claim_path,
    };
    let cluster = LocalCluster::get();
    let admin = cluster.openbao_admin()?;
    let namespace = "region-test-owner-race";
    let registry = cluster.openbao_root_in(Some(REGISTRY_NAMESPACE))?;
    let forget = || async {
        admin.delete_namespace(namespace).await?;
        // Only the test removes a record: the operator never does.
        match vaultrs::kv2::delete_metadata(&registry, KV_MOUNT, &namespace_claim_path(namespace))
            .await
        {
            Ok(()) | Err(vaultrs::error::ClientError::APIError { code: 404, .. }) => {}
            Err(e) => return Err(anyhow::Error::from(e)),
        }
        anyhow::Ok(())
    };

    // What the operator must not rely on: a second creation overwrites the first's owner.
    let http = reqwest::Client::new();
    for owner in ["Test/first", "Test/second"] {
        let created = http
            .post(format!(
                "{}/v1/sys/namespaces/{namespace}",
                cluster.vault_addr
            ))
            .header("X-Vault-Token", &cluster.vault_token)
            .json(&serde_json::json!({"custom_metadata": {"vardhub.io/owner": owner}}))
            .send()
            .await?;
        assert!(created.status().is_success(), "{}", created.status());
    }
    assert_eq!(
        admin.namespace_owner(namespace).await?.flatten().as_deref(),
        Some("Test/second"),
        "OpenBao records the last creator"
    );
    admin.delete_namespace(namespace).await?;

    let metrics = vardhub::telemetry::Metrics::default();
    vardhub::controller::storage::registry(&admin, &metrics, "test").await?;
    forget().await?;
    let owners: Vec<String> = (0..8).map(|i| format!("Test/owner-{i}")).collect();
    let passes = futures::future::join_all(
        owners
            .iter()
            .map(|o| ensure_owned_namespace(&admin, namespace, o, &metrics, "test")),
    )
    .await;
    let recorded = admin.namespace_owner(namespace).await?.flatten();
    let winners: Vec<&String> = owners
        .iter()
        .zip(&passes)
        .filter(|(_, p)| p.is_ok())
        .map(|(o, _)| o)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one owner goes on: {passes:?}");
    assert_eq!(
        recorded.as_ref(),
        Some(winners[0]),
        "the namespace names the one"
    );
    for pass in passes.iter().filter(|p| p.is_err()) {
        match pass {
            Err(Error::NotOurs { owner, .. }) => {
                assert_eq!(owner.as_ref(), Some(winners[0]), "refused naming the one")
            }
            other => panic!("expected NotOurs: {other:?}"),
        }
    }
    let record: serde_json::Value =
        vaultrs::kv2::read(&registry, KV_MOUNT, &namespace_claim_path(namespace)).await?;
    assert_eq!(
        record["owner"].as_str(),
        recorded.as_deref(),
        "the record agrees"
    );

    // Afterwards the one keeps it with no write, and anyone else is still refused.
    let steady = vardhub::telemetry::Metrics::default();
    ensure_owned_namespace(&admin, namespace, winners[0], &steady, "test").await?;
    assert_eq!(metric(&steady.encode(), "vardhub_api_writes_total"), 0.0);
    forget().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn two_replicas_elect_one_leader_and_the_standby_takes_over() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let lease = "vardhub-test-election";
    let start =
        |identity: &'static str| RunningOperator::start_with(cluster, identity, lease, 6, false);
    let readyz = |op: &RunningOperator| {
        let url = format!("http://{}/readyz", op.metrics_addr);
        async move { anyhow::Ok(reqwest::get(url).await?.text().await?) }
    };
    let a = start("replica-a").await?;
    eventually("replica-a to lead", Duration::from_secs(30), || async {
        Ok((readyz(&a).await.unwrap_or_default() == "leader").then_some(()))
    })
    .await?;
    let b = start("replica-b").await?;
    eventually(
        "replica-b to be a ready standby",
        Duration::from_secs(30),
        || async { Ok((readyz(&b).await.unwrap_or_default() == "standby").then_some(())) },
    )
    .await?;
    let health = reqwest::get(format!("http://{}/healthz", b.metrics_addr)).await?;
    assert!(health.status().is_success());
    assert_eq!(readyz(&a).await?, "leader", "only one replica leads");

    assert_eq!(a.stop().await?, Stopped::Shutdown);
    eventually(
        "replica-b to take over",
        Duration::from_secs(30),
        || async { Ok((readyz(&b).await.unwrap_or_default() == "leader").then_some(())) },
    )
    .await?;
    b.stop().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn fields_that_name_stored_data_or_keys_cannot_change() -> Result<()> {
    let cluster = LocalCluster::get();
    // No operator may reconcile these objects meanwhile: the API server alone decides.
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let apply = PatchParams::apply("vardhub-tests").force();
    let refused = |e: kube::Error, field: &str| match e {
        kube::Error::Api(status) if status.code == 422 => {
            assert!(
                status
                    .message
                    .contains(&format!("{field} cannot be changed")),
                "the refusal names {field}: {}",
                status.message
            );
        }
        other => panic!("expected 422 naming {field}, got {other:?}"),
    };

    // A node's bucket prefix and its workload namespace: each neither changed, added after
    // creation nor removed. Each transition starts from a node made anew with the first spec.
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let node = |extra: serde_json::Value| -> Result<RegionalNode> {
        let mut spec = serde_json::json!({"regions": ["23"]});
        if let (Some(s), serde_json::Value::Object(extra)) = (spec.as_object_mut(), extra) {
            s.extend(extra);
        }
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
            "metadata": {"name": "test-immutable"}, "spec": spec,
        }))?)
    };
    let prefix = |p: &str| serde_json::json!({"storage": {"bucketPrefix": p}});
    let namespace = |ns: &str| serde_json::json!({"namespace": ns});
    let none = serde_json::json!({});
    for (first, then, field, what) in [
        (
            prefix("vardhub-t-first"),
            prefix("vardhub-t-second"),
            "spec.storage.bucketPrefix",
            "a changed prefix",
        ),
        (
            prefix("vardhub-t-first"),
            none.clone(),
            "spec.storage.bucketPrefix",
            "a removed prefix",
        ),
        (
            none.clone(),
            prefix("vardhub-t-later"),
            "spec.storage.bucketPrefix",
            "a prefix added later",
        ),
        (
            none.clone(),
            namespace("region-t-later"),
            "spec.namespace",
            "a namespace added later",
        ),
        (
            namespace("region-t-first"),
            none.clone(),
            "spec.namespace",
            "a removed namespace",
        ),
    ] {
        nodes
            .patch("test-immutable", &apply, &Patch::Apply(node(first)?))
            .await?;
        let e = nodes
            .patch("test-immutable", &apply, &Patch::Apply(node(then)?))
            .await
            .expect_err(&format!("{what} is refused"));
        refused(e, field);
        nodes
            .delete("test-immutable", &DeleteParams::default())
            .await?;
        wait_gone(&nodes, "test-immutable").await?;
    }

    // A hub's bucket prefix (changed, removed) and its storage mode.
    let hubs: Api<vardhub::api::DataHub> = Api::all(admin.clone());
    let hub = |prefix: Option<&str>, mode: &str| -> Result<vardhub::api::DataHub> {
        let mut spec = serde_json::json!({"storageMode": mode});
        if let Some(p) = prefix {
            spec["bucketPrefix"] = serde_json::json!(p);
        }
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "DataHub",
            "metadata": {"name": "test-immutable"}, "spec": spec,
        }))?)
    };
    let first = Some("vardhub-t-hub-first");
    hubs.patch(
        "test-immutable",
        &apply,
        &Patch::Apply(hub(first, "central")?),
    )
    .await?;
    for (changed, field, what) in [
        (
            hub(Some("vardhub-t-hub-second"), "central")?,
            "spec.bucketPrefix",
            "a changed prefix",
        ),
        (
            hub(None, "central")?,
            "spec.bucketPrefix",
            "a removed prefix",
        ),
        (
            hub(first, "federated")?,
            "spec.storageMode",
            "a changed storage mode",
        ),
    ] {
        let e = hubs
            .patch("test-immutable", &apply, &Patch::Apply(changed))
            .await
            .expect_err(&format!("{what} is refused"));
        refused(e, field);
    }
    hubs.delete("test-immutable", &DeleteParams::default())
        .await?;

    // A pseudonymisation service's mode.
    let ns = "test-immutable";
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?;
    Api::<Namespace>::all(admin.clone())
        .patch(ns, &apply, &Patch::Apply(&namespace))
        .await?;
    let services: Api<vardhub::api::PseudonymisationService> = Api::namespaced(admin.clone(), ns);
    let with_mode = |mode: &str| -> Result<vardhub::api::PseudonymisationService> {
        Ok(serde_json::from_value(serde_json::json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "PseudonymisationService",
            "metadata": {"name": "pseudo", "namespace": ns},
            "spec": {"mode": mode, "domains": [{"name": "purpose-a"}]},
        }))?)
    };
    services
        .patch("pseudo", &apply, &Patch::Apply(with_mode("local")?))
        .await?;
    let e = services
        .patch("pseudo", &apply, &Patch::Apply(with_mode("transit")?))
        .await
        .expect_err("a changed mode is refused");
    refused(e, "spec.mode");
    // A domain's reversibility, and its pinned key version going down or away; a new
    // domain beside it is still accepted.
    let with_domains =
        |domains: serde_json::Value| -> Result<vardhub::api::PseudonymisationService> {
            Ok(serde_json::from_value(serde_json::json!({
                "apiVersion": "vardhub.io/v1alpha1", "kind": "PseudonymisationService",
                "metadata": {"name": "pseudo", "namespace": ns},
                "spec": {"mode": "local", "domains": domains},
            }))?)
        };
    services
        .patch(
            "pseudo",
            &apply,
            &Patch::Apply(with_domains(
                serde_json::json!([{"name": "purpose-a", "keyVersion": 2}]),
            )?),
        )
        .await?;
    let e = services
        .patch(
            "pseudo",
            &apply,
            &Patch::Apply(with_domains(
                serde_json::json!([{"name": "purpose-a", "keyVersion": 2, "reversible": true}]),
            )?),
        )
        .await
        .expect_err("a domain made reversible is refused");
    refused(e, "spec.domains[].reversible");
    for (domain, what) in [
        (
            serde_json::json!({"name": "purpose-a", "keyVersion": 1}),
            "lowered",
        ),
        (serde_json::json!({"name": "purpose-a"}), "removed"),
    ] {
        let e = services
            .patch(
                "pseudo",
                &apply,
                &Patch::Apply(with_domains(serde_json::json!([domain]))?),
            )
            .await
            .expect_err("a pinned key version going down or away is refused");
        match e {
            kube::Error::Api(status) if status.code == 422 => assert!(
                status
                    .message
                    .contains("spec.domains[].keyVersion cannot be lowered or removed"),
                "{what}: {}",
                status.message
            ),
            other => panic!("{what}: expected 422, got {other:?}"),
        }
    }
    services
        .patch(
            "pseudo",
            &apply,
            &Patch::Apply(with_domains(serde_json::json!([
                {"name": "purpose-a", "keyVersion": 3},
                {"name": "purpose-b", "reversible": true},
            ]))?),
        )
        .await?;
    services.delete("pseudo", &DeleteParams::default()).await?;
    let namespaces = Api::<Namespace>::all(admin.clone());
    namespaces.delete(ns, &DeleteParams::default()).await?;
    eventually(
        "the namespace to be gone",
        Duration::from_secs(60),
        || async { Ok(namespaces.get_opt(ns).await?.is_none().then_some(())) },
    )
    .await
}

/// Someone allowed to create a `RegionalNode` names a namespace that exists already (here one
/// holding another party's ConfigMap). The operator does not take it over: the node reports
/// `Degraded` with reason `Conflict`, naming the namespace and the field; the namespace gets
/// no owner reference and keeps its labels; the API server's audit log shows no write by the
/// operator to the namespace or inside it; deleting the node leaves both in place. An object
/// that copies a node's owner labels without its owner reference is never pruned.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_node_never_takes_over_a_namespace_it_did_not_create() -> Result<()> {
    use k8s_openapi::api::core::v1::ConfigMap;
    const FOREIGN: &str = "vardhub-test-foreign";
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let name = "test-takeover";
    let _ = nodes.delete(name, &DeleteParams::default()).await;
    wait_gone::<RegionalNode>(&nodes, name).await?;

    let other = PatchParams::apply("someone-else");
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": {"name": FOREIGN, "labels": {"team": "platform"}}
    }))?;
    namespaces
        .patch(FOREIGN, &other, &Patch::Apply(&ns))
        .await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), FOREIGN);
    // It even carries the node's owner labels, as a copy would, but no owner reference.
    let precious: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "precious", "namespace": FOREIGN, "labels": {
            "app.kubernetes.io/managed-by": "vardhub-operator", "app.kubernetes.io/part-of": "vardhub",
            "vardhub.io/owner-kind": "RegionalNode", "vardhub.io/owner-name": name}},
        "data": {"kept": "yes"}
    }))?;
    config_maps
        .patch("precious", &other, &Patch::Apply(&precious))
        .await?;

    let since = k8s_openapi::jiff::Timestamp::now().to_string();
    let operator = RunningOperator::start(cluster, "test-takeover").await?;
    let node: RegionalNode = serde_json::from_value(serde_json::json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
        "metadata": {"name": name},
        "spec": {"regions": ["20"], "namespace": FOREIGN,
                 "deletionPolicy": "Delete", "confirmDeletion": true, "purgeObjects": true},
    }))?;
    nodes.create(&PostParams::default(), &node).await?;
    let message = eventually(
        "the node to report the conflict",
        Duration::from_secs(60),
        || async {
            let n = nodes.get(name).await?;
            let conditions = n.status.map(|s| s.common.conditions).unwrap_or_default();
            Ok(conditions
                .into_iter()
                .find(|c| {
                    c.type_ == types::DEGRADED && c.status == "True" && c.reason == "Conflict"
                })
                .map(|c| c.message))
        },
    )
    .await?;
    assert!(
        message.contains(&format!("Namespace {FOREIGN}")) && message.contains("spec.namespace"),
        "the condition names the namespace and the field: {message}"
    );
    let n = nodes.get(name).await?;
    let conditions = n.status.map(|s| s.common.conditions).unwrap_or_default();
    assert!(!is_true(&conditions, types::READY), "never Ready");

    let ns = namespaces.get(FOREIGN).await?;
    assert!(ns.owner_references().is_empty(), "no owner reference");
    assert_eq!(
        ns.labels().get("team").map(String::as_str),
        Some("platform")
    );
    assert!(!ns.labels().contains_key("app.kubernetes.io/managed-by"));
    let user = format!("system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}");
    let touched: Vec<String> = cluster
        .audited_writes(&user, &since)?
        .into_iter()
        .filter(|w| w.contains(FOREIGN))
        .collect();
    assert!(
        touched.is_empty(),
        "the audit log shows the operator writing to the foreign namespace: {touched:?}"
    );

    nodes.delete(name, &DeleteParams::foreground()).await?;
    wait_gone::<RegionalNode>(&nodes, name).await?;
    let ns = namespaces.get(FOREIGN).await?;
    assert!(
        ns.metadata.deletion_timestamp.is_none(),
        "deleting the node left the namespace alone"
    );
    let kept = config_maps.get("precious").await?;
    assert_eq!(
        kept.data.and_then(|d| d.get("kept").cloned()).as_deref(),
        Some("yes")
    );
    operator.stop().await?;
    namespaces.delete(FOREIGN, &DeleteParams::default()).await?;
    Ok(())
}

/// Whether `result` is the API server's 403 from the operator's scope policy.
fn refused_by_scope<T: std::fmt::Debug>(result: kube::Result<T>, attempt: &str) -> Result<()> {
    match result {
        Err(kube::Error::Api(status))
            if status.code == 403 && status.message.contains("vardhub-operator-scope") =>
        {
            Ok(())
        }
        other => {
            anyhow::bail!("{attempt}: expected 403 from vardhub-operator-scope, got {other:?}")
        }
    }
}

/// Someone holding the operator's ServiceAccount token (stolen from its pod) tries what RBAC
/// alone would allow it: deleting a namespace it did not create, adopting another party's
/// object, writing in kube-system, writing an object no vardhub resource owns, scheduling a
/// privileged pod or one that reads another party's Secrets, binding a ClusterRole, and
/// changing a vardhub resource beyond its finalizers. The chart's admission policy refuses
/// each with 403, and the other party's objects are untouched.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn the_operators_token_reaches_only_what_the_operator_created() -> Result<()> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::rbac::v1::RoleBinding;
    const NS: &str = "vardhub-test-scope";
    let cluster = LocalCluster::get();
    let admin = cluster.admin_client().await?;
    let stolen = cluster.operator_client().await?;
    let theirs = PatchParams::apply("someone-else");
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(admin.clone())
        .patch(NS, &theirs, &Patch::Apply(&ns))
        .await?;
    let sa: ServiceAccount = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "theirs", "namespace": NS}}),
    )?;
    Api::<ServiceAccount>::namespaced(admin.clone(), NS)
        .patch("theirs", &theirs, &Patch::Apply(&sa))
        .await?;

    // What the operator's own objects carry, copied by the attacker.
    let owned = |extra: serde_json::Value| {
        let mut meta = serde_json::json!({
            "labels": {"app.kubernetes.io/managed-by": "vardhub-operator"},
            "ownerReferences": [{"apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
                "name": "any", "uid": "6b1f0c52-0000-4000-8000-000000000000", "controller": true}],
        });
        if let (Some(m), serde_json::Value::Object(e)) = (meta.as_object_mut(), extra) {
            m.extend(e);
        }
        meta
    };
    let as_operator = PatchParams::apply("vardhub-regionalnode").force();

    refused_by_scope(
        Api::<Namespace>::all(stolen.clone())
            .delete(NS, &DeleteParams::default())
            .await,
        "deleting a namespace the operator did not create",
    )?;
    let adopt: ServiceAccount = serde_json::from_value(serde_json::json!({
        "metadata": owned(serde_json::json!({"name": "theirs", "namespace": NS}))
    }))?;
    refused_by_scope(
        Api::<ServiceAccount>::namespaced(stolen.clone(), NS)
            .patch("theirs", &as_operator, &Patch::Apply(&adopt))
            .await,
        "adopting another party's ServiceAccount",
    )?;
    let bare: ServiceAccount = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "unowned", "namespace": NS}}),
    )?;
    refused_by_scope(
        Api::<ServiceAccount>::namespaced(stolen.clone(), NS)
            .create(&PostParams::default(), &bare)
            .await,
        "creating an object no vardhub resource owns",
    )?;
    let deployment = |namespace: &str, privileged: bool| -> Result<Deployment> {
        Ok(serde_json::from_value(serde_json::json!({
            "metadata": owned(serde_json::json!({"name": "implant", "namespace": namespace})),
            "spec": {"selector": {"matchLabels": {"app": "implant"}},
                     "template": {"metadata": {"labels": {"app": "implant"}},
                                  "spec": {"hostPID": privileged, "containers": [{
                                      "name": "c", "image": "implant@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                                      "securityContext": {"privileged": privileged}}]}}}
        }))?)
    };
    refused_by_scope(
        Api::<Deployment>::namespaced(stolen.clone(), "kube-system")
            .create(&PostParams::default(), &deployment("kube-system", false)?)
            .await,
        "a workload in kube-system",
    )?;
    refused_by_scope(
        Api::<Deployment>::namespaced(stolen.clone(), NS)
            .create(&PostParams::default(), &deployment(NS, true)?)
            .await,
        "a privileged pod on the host's PID namespace",
    )?;
    // Unprivileged pods in another party's namespace, each taking one way to what that
    // namespace holds: its Secrets (as a volume, all variables, one variable), or a
    // privileged init container, or an added capability.
    let container = serde_json::json!({
        "name": "c", "image": "implant@sha256:0000000000000000000000000000000000000000000000000000000000000000"});
    let with = |pod: serde_json::Value| -> Result<Deployment> {
        let mut d = deployment(NS, false)?;
        let mut spec = serde_json::json!({"containers": [container.clone()]});
        if let (Some(s), serde_json::Value::Object(extra)) = (spec.as_object_mut(), pod) {
            s.extend(extra);
        }
        if let Some(template) = d.spec.as_mut().map(|s| &mut s.template) {
            template.spec = Some(serde_json::from_value(spec)?);
        }
        Ok(d)
    };
    let reading = |field: &str, value: serde_json::Value| {
        let mut c = container.clone();
        c[field] = value;
        serde_json::json!({"containers": [c]})
    };
    for (pod, attempt) in [
        (
            serde_json::json!({"volumes": [{"name": "s", "secret": {"secretName": "theirs"}}]}),
            "a pod mounting another party's Secret",
        ),
        (
            serde_json::json!({"volumes": [{"name": "s", "projected": {"sources": [
                {"secret": {"name": "theirs"}}]}}]}),
            "a pod projecting another party's Secret",
        ),
        (
            reading(
                "envFrom",
                serde_json::json!([{"secretRef": {"name": "theirs"}}]),
            ),
            "a pod reading a Secret into its environment",
        ),
        (
            reading(
                "env",
                serde_json::json!([{"name": "K", "valueFrom":
                    {"secretKeyRef": {"name": "theirs", "key": "k"}}}]),
            ),
            "a pod reading one key of a Secret",
        ),
        (
            serde_json::json!({"initContainers": [{"name": "i",
                "image": "implant@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "securityContext": {"privileged": true}}]}),
            "a privileged init container",
        ),
        (
            reading(
                "securityContext",
                serde_json::json!({"capabilities": {"add": ["SYS_ADMIN"]}}),
            ),
            "a container with an added capability",
        ),
    ] {
        refused_by_scope(
            Api::<Deployment>::namespaced(stolen.clone(), NS)
                .create(&PostParams::default(), &with(pod)?)
                .await,
            attempt,
        )?;
    }
    // The operator's own ClusterRole, so that RBAC's escalation check passes and the policy
    // is what refuses.
    let role = Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(admin.clone())
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/name=vardhub-operator"))
        .await?
        .items
        .into_iter()
        .find_map(|r| r.metadata.name)
        .ok_or_else(|| anyhow::anyhow!("the chart's ClusterRole"))?;
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": owned(serde_json::json!({"name": "escalate", "namespace": NS})),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": "theirs", "namespace": NS}],
    }))?;
    refused_by_scope(
        Api::<RoleBinding>::namespaced(stolen.clone(), NS)
            .create(&PostParams::default(), &binding)
            .await,
        "binding a ClusterRole",
    )?;

    // The vardhub resources: RBAC lets the operator patch a DataHub, for its finalizer; the
    // policy refuses any other change. No operator runs meanwhile, so nothing reconciles the
    // hub made here.
    {
        let _serial = OPERATOR_LOCK.lock().await;
        let hubs: Api<vardhub::api::DataHub> = Api::all(admin.clone());
        let hub: vardhub::api::DataHub = serde_json::from_value(serde_json::json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "DataHub",
            "metadata": {"name": NS, "labels": {"team": "theirs"}}, "spec": {},
        }))?;
        hubs.patch(NS, &theirs, &Patch::Apply(&hub)).await?;
        let as_stolen: &Api<vardhub::api::DataHub> = &Api::all(stolen.clone());
        let merge = |patch: serde_json::Value| async move {
            as_stolen
                .patch(NS, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        };
        refused_by_scope(
            merge(serde_json::json!({"spec": {"regionalNodeSelector":
                {"matchLabels": {"vardhub.io/hub": "elsewhere"}}}}))
            .await,
            "changing a DataHub's spec",
        )?;
        refused_by_scope(
            merge(serde_json::json!({"metadata": {"labels": {"team": "mine"}}})).await,
            "changing a DataHub's labels",
        )?;
        // Its finalizer it may set and clear.
        merge(serde_json::json!({"metadata": {"finalizers": ["vardhub.io/test-scope"]}})).await?;
        merge(serde_json::json!({"metadata": {"finalizers": null}})).await?;
        let kept = hubs.get(NS).await?;
        assert_eq!(
            kept.labels().get("team").map(String::as_str),
            Some("theirs")
        );
        assert!(
            kept.spec.regional_node_selector.is_none(),
            "the spec is untouched"
        );
        hubs.delete(NS, &DeleteParams::default()).await?;
        wait_gone(&hubs, NS).await?;
    }

    let left = Api::<ServiceAccount>::namespaced(admin.clone(), NS)
        .get("theirs")
        .await?;
    assert!(left.owner_references().is_empty(), "not adopted");
    assert!(
        Api::<Namespace>::all(admin.clone())
            .get(NS)
            .await?
            .metadata
            .deletion_timestamp
            .is_none()
    );
    Api::<Namespace>::all(admin)
        .delete(NS, &DeleteParams::default())
        .await?;
    Ok(())
}
