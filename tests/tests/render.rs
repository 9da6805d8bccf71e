//! `vardhub render` prints what the operator creates: `environments/local` is rendered
//! offline and compared, object by object, with what the operator applied in the cluster.
//! `vardhub plan` then finds no drift, and exactly the manual edits made afterwards.

use std::time::Duration;

use anyhow::{Result, bail};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::Api;
use kube::api::{Patch, PatchParams};
use vardhub::api::{DataHub, RegionalNode};
use vardhub::controller::conditions::{is_true, types};
use vardhub_tests::rollout::{differences, render_settings};
use vardhub_tests::{LocalCluster, OPERATOR_LOCK, RunningOperator, eventually, kubectl, repo_root};

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn render_of_the_local_environment_equals_what_the_operator_creates() -> Result<()> {
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
    let operator = RunningOperator::start(cluster, "test-render").await?;
    let hubs: Api<DataHub> = Api::all(admin.clone());
    // The hubs' pseudonymisation services live in the namespaces the operator makes for the
    // hubs; the nodes export through them, and neither is Ready without them.
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
    for ns in ["hub-national", "hub-federated"] {
        eventually(
            &format!("namespace {ns}"),
            Duration::from_secs(90),
            || async { Ok(namespaces.get_opt(ns).await?.map(|_| ())) },
        )
        .await?;
    }
    let services = repo_root().join("environments/local/hub-services");
    kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=vardhub-tests",
        "-k",
        &services.to_string_lossy(),
    ])?;
    for name in ["national", "federated"] {
        eventually(
            &format!("the local hub {name} to be Ready"),
            Duration::from_secs(90),
            || async {
                let hub = hubs.get(name).await?;
                Ok(is_true(
                    &hub.status.unwrap_or_default().common.conditions,
                    types::READY,
                )
                .then_some(()))
            },
        )
        .await?;
    }

    let resources = vardhub::render::load(&dir)?;
    let settings = render_settings(cluster, vardhub::controller::context::default_image())?;
    let rendered = vardhub::render::render(&resources, &settings)?;
    assert!(rendered.len() >= 20, "{} objects", rendered.len());
    let differing = differences(&admin, &rendered).await?;
    operator.stop().await?;
    if !differing.is_empty() {
        bail!("rendered objects differ from the cluster's: {differing:?}");
    }

    // plan: nothing to change right after the operator converged...
    let plan = vardhub::plan::plan(&admin, &resources, &settings).await?;
    assert!(plan.is_empty(), "no drift expected: {plan:?}");
    // ...and exactly the manual edits afterwards: a child removed, a resource changed.
    Api::<NetworkPolicy>::namespaced(admin.clone(), "region-stockholm")
        .delete("allow-egress", &Default::default())
        .await?;
    Api::<RegionalNode>::all(admin.clone())
        .patch(
            "stockholm",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"keys": {"rotationPeriodDays": 30}}})),
        )
        .await?;
    let plan: Vec<String> = vardhub::plan::plan(&admin, &resources, &settings)
        .await?
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        plan,
        [
            "change  RegionalNode stockholm: spec.keys.rotationPeriodDays",
            "create  NetworkPolicy region-stockholm/allow-egress: by the operator",
        ],
        "the plan names exactly the manual edits"
    );

    // The hubs' services first, and wholly, so that the next test's dry runs of the other
    // alternatives do not meet them.
    kubectl(&["delete", "-k", &services.to_string_lossy(), "--wait=true"])?;
    kubectl(&["delete", "-k", &dir_arg, "--wait=false"])?;
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    eventually(
        "the local environment to be gone",
        Duration::from_secs(60),
        || async {
            let mut left = 0;
            for node in &resources.nodes {
                left += usize::from(
                    nodes
                        .get_opt(&kube::ResourceExt::name_any(node))
                        .await?
                        .is_some(),
                );
            }
            left += usize::from(hubs.get_opt("national").await?.is_some());
            left += usize::from(hubs.get_opt("federated").await?.is_some());
            // The catalogue's namespace too, so that the next test can create it again.
            left += usize::from(namespaces.get_opt("vardhub-catalog").await?.is_some());
            Ok((left == 0).then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn every_environment_builds_renders_and_is_accepted_by_the_api_server() -> Result<()> {
    let cluster = LocalCluster::get();
    // The other test here creates the local hub for real; a dry run of another alternative
    // against it would rightly be refused (its storage mode cannot change).
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    for (environment, nodes, hubs) in [
        ("local", 5, 2),
        ("cloud", 21, 1),
        ("on-prem", 21, 1),
        ("hybrid", 21, 1),
    ] {
        let dir = repo_root().join("environments").join(environment);
        let built = kubectl(&["kustomize", &dir.to_string_lossy()])?;
        let mut resources = vardhub::render::Resources::default();
        vardhub::render::parse(&built, &mut resources)?;
        assert_eq!(
            resources.nodes.len(),
            nodes,
            "{environment}: regional nodes"
        );
        assert_eq!(resources.hubs.len(), hubs, "{environment}: hubs");
        let settings = vardhub::render::Settings {
            openbao_addr: cluster.vault_addr.clone(),
            s3_endpoint: cluster.s3_endpoint.clone(),
            image: vardhub::controller::context::default_image(),
            cluster: Default::default(),
        };
        let objects = vardhub::render::render(&resources, &settings)?;
        assert!(
            objects.len() >= 5 * nodes,
            "{environment}: {} objects",
            objects.len()
        );
        // The directory's own namespaces (the catalogue's) exist before its resources do, as
        // when a GitOps tool applies it; a dry run cannot create them.
        let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(admin.clone());
        // Nor the hubs' namespaces, which the operator makes (the pseudonymisation service
        // lives there and is applied in a later wave): the test stands one in for the dry
        // run and removes it again.
        let mut stand_ins = Vec::new();
        // Waits until namespace `name` is not terminating (gone, or live).
        let settled = |name: String| {
            let namespaces = namespaces.clone();
            async move {
                eventually(
                    &format!("namespace {name} not to be terminating"),
                    Duration::from_secs(90),
                    || async {
                        let live = namespaces.get_opt(&name).await?;
                        Ok(live
                            .is_none_or(|n| n.metadata.deletion_timestamp.is_none())
                            .then_some(()))
                    },
                )
                .await
            }
        };
        for document in &resources.documents {
            let Some(ns) = document["metadata"]["namespace"].as_str() else {
                continue;
            };
            let made_by_a_hub = resources.hubs.iter().any(|h| h.workload_namespace() == ns);
            if made_by_a_hub {
                // The hub namespace of an earlier test's hub may still be terminating.
                settled(ns.to_owned()).await?;
            }
            if made_by_a_hub
                && namespaces.get_opt(ns).await?.is_none()
                && !stand_ins.contains(&ns.to_owned())
            {
                namespaces
                    .create(
                        &Default::default(),
                        &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
                    )
                    .await?;
                stand_ins.push(ns.to_owned());
            }
        }
        for ns in resources.others.iter().filter(|o| o["kind"] == "Namespace") {
            let name = ns["metadata"]["name"].as_str().unwrap_or_default();
            // One that an earlier test deleted may still be terminating.
            settled(name.to_owned()).await?;
            let existed = namespaces.get_opt(name).await?.is_some();
            namespaces
                .patch(
                    name,
                    &PatchParams::apply("vardhub-tests"),
                    &Patch::Apply(ns),
                )
                .await?;
            // Made here, so removed here with the stand-ins.
            if !existed && !stand_ins.iter().any(|s| s == name) {
                stand_ins.push(name.to_owned());
            }
        }
        // Every document dry-run; the namespaces made for them go whatever the outcome.
        let mut refused = None;
        for document in &resources.documents {
            if let Err(e) = vardhub::plan::dry_run_apply(&admin, document).await {
                refused = Some(anyhow::anyhow!(
                    "{environment}: {} refused: {e}",
                    document["metadata"]["name"]
                ));
                break;
            }
        }
        for ns in &stand_ins {
            namespaces.delete(ns, &Default::default()).await?;
            eventually(
                &format!("the namespace {ns} made for the dry run to be gone"),
                Duration::from_secs(90),
                || async { Ok(namespaces.get_opt(ns).await?.is_none().then_some(())) },
            )
            .await?;
        }
        if let Some(e) = refused {
            return Err(e);
        }
        if environment != "local" {
            for hub in &resources.hubs {
                let annotations = hub.metadata.annotations.clone().unwrap_or_default();
                for assumption in ["storage", "keys", "eu-region", "compute"] {
                    assert!(
                        annotations.contains_key(&format!("vardhub.io/assumption-{assumption}")),
                        "{environment} states its {assumption} assumption in the manifests"
                    );
                }
            }
        }
    }
    Ok(())
}
