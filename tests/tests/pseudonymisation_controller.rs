//! The `PseudonymisationService` controller against the local cluster and OpenBao.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use vardhub::adapters::openbao::Transit;
use vardhub::api::PseudonymisationService;
use vardhub::controller::conditions::{is_true, types};
use vardhub_tests::{LocalCluster, OPERATOR_LOCK, RunningOperator, eventually};

const NS: &str = "vardhub-test-pseudo-ctl";

fn writes(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("vardhub_api_writes_total{controller=\"pseudonymisation\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn pseudonymisation_service_gets_keys_policy_role_and_workloads_and_keeps_keys_on_delete()
-> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let apply = PatchParams::apply("vardhub-tests");
    let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": NS}}))?;
    Api::<Namespace>::all(admin.clone())
        .patch(NS, &apply, &Patch::Apply(&ns))
        .await?;
    let services: Api<PseudonymisationService> = Api::namespaced(admin.clone(), NS);
    let svc: PseudonymisationService = serde_json::from_value(serde_json::json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "PseudonymisationService",
        "metadata": {"name": "pseudo", "namespace": NS},
        "spec": {"mode": "local", "replicas": 2,
                 "domains": [{"name": "region-export", "callers": [{"namespace": "region-stockholm", "serviceAccount": "regional-node"}]},
                             {"name": "permit-42"}, {"name": "linkable", "reversible": true}]},
    }))?;
    services
        .patch("pseudo", &apply, &Patch::Apply(&svc))
        .await?;

    let first = RunningOperator::start(cluster, "test-pseudo-first").await?;
    eventually(
        "the service to be Ready with its keys",
        Duration::from_secs(90),
        || async {
            let s = services.get("pseudo").await?;
            let ok = s.status.as_ref().is_some_and(|st| {
                is_true(&st.common.conditions, "KeysReady")
                    && is_true(&st.common.conditions, types::READY)
            });
            Ok(ok.then_some(()))
        },
    )
    .await?;
    first.stop().await?;

    // OpenBao holds the mount, one exportable key per domain, the policy and the role.
    let transit = Transit::new(
        &cluster.vault_addr,
        &cluster.vault_token,
        &format!("pseudonymisation/{NS}/pseudo"),
    )?;
    for domain in ["region-export", "permit-42"] {
        let key = transit.ensure_key(domain, true).await?;
        assert!(!key.created, "the operator created key {domain}");
    }
    let root = cluster.openbao_root()?;
    assert!(
        !transit.ensure_convergent_key("linkable").await?.created,
        "the reversible domain has a convergent key"
    );
    let policy =
        vaultrs::sys::policy::read(&root, &format!("vardhub-pseudonymisation.{NS}.pseudo")).await?;
    assert!(
        policy.rules.contains("/hmac/*") && policy.rules.contains("export/hmac-key"),
        "{}",
        policy.rules
    );
    let reidentify = vaultrs::sys::policy::read(
        &root,
        &format!("vardhub-pseudonymisation-reidentify.{NS}.pseudo"),
    )
    .await?;
    assert!(
        reidentify.rules.contains("/decrypt/linkable"),
        "{}",
        reidentify.rules
    );
    assert!(
        !policy.rules.contains("decrypt"),
        "the service's own policy cannot re-identify"
    );
    let role = vaultrs::auth::kubernetes::role::read(
        &root,
        "kubernetes",
        &format!("vardhub-pseudonymisation.{NS}.pseudo"),
    )
    .await?;
    assert_eq!(
        role.bound_service_account_names,
        vec!["pseudo-pseudonymiser".to_string()]
    );
    assert_eq!(role.bound_service_account_namespaces, vec![NS.to_string()]);

    // The cluster holds the workload, reachable only from the named namespaces.
    let deployment = Api::<Deployment>::namespaced(admin.clone(), NS)
        .get("pseudo")
        .await?;
    let pod = deployment
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec");
    let container = &pod.containers[0];
    assert_eq!(
        container
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem),
        Some(true)
    );
    assert!(
        container
            .args
            .as_ref()
            .is_some_and(|a| a.contains(&"--mode=local".to_string())
                && a.contains(&"--grant=region-export=region-stockholm/regional-node".to_string())
                && a.contains(&format!(
                    "--audience=vardhub.io/pseudonymisation/{NS}/pseudo"
                )))
    );
    Api::<Service>::namespaced(admin.clone(), NS)
        .get("pseudo")
        .await?;
    Api::<PodDisruptionBudget>::namespaced(admin.clone(), NS)
        .get("pseudo")
        .await?;
    let np = Api::<NetworkPolicy>::namespaced(admin.clone(), NS)
        .get("pseudo")
        .await?;
    assert!(serde_json::to_string(&np)?.contains("region-stockholm"));

    // A second start at steady state writes nothing, to the API server or to OpenBao: the
    // operator's counter says so, and so does OpenBao's own audit device.
    let audit_from = vardhub_tests::openbao_audit_mark()?;
    let second = RunningOperator::start(cluster, "test-pseudo-second").await?;
    let text = second
        .settled(&[("pseudonymisation", 1)], Duration::from_secs(60))
        .await?;
    assert_eq!(writes(&text), 0.0, "no writes at steady state: {text}");
    let written = openbao_writes(audit_from, NS)?;
    assert!(
        written.is_empty(),
        "OpenBao's audit device shows writes at steady state: {written:?}"
    );

    // Deleting the resource removes the workload and keeps the keys.
    services
        .delete("pseudo", &DeleteParams::background())
        .await?;
    eventually(
        "the resource to be gone",
        Duration::from_secs(60),
        || async { Ok(services.get_opt("pseudo").await?.is_none().then_some(())) },
    )
    .await?;
    let deployments = Api::<Deployment>::namespaced(admin.clone(), NS);
    eventually(
        "the garbage collector to remove the Deployment",
        Duration::from_secs(120),
        || async { Ok(deployments.get_opt("pseudo").await?.is_none().then_some(())) },
    )
    .await?;
    for domain in ["region-export", "permit-42"] {
        assert!(
            !transit.ensure_key(domain, true).await?.created,
            "key {domain} survives the deletion"
        );
    }
    second.stop().await?;
    Api::<Namespace>::all(admin)
        .delete(NS, &DeleteParams::default())
        .await?;
    Ok(())
}

/// Write requests (create, update, delete) that OpenBao's audit device recorded after byte
/// `from` of its log, on paths that name `namespace` (mounts, keys, the CA's role, policies
/// and roles of the services there, and their owner records), as `operation path`.
fn openbao_writes(from: u64, namespace: &str) -> Result<Vec<String>> {
    Ok(vardhub_tests::openbao_requests_since(from)?
        .into_iter()
        .filter(|(operation, path)| {
            (path.contains(&format!("/{namespace}/"))
                || path.contains(&format!(".{namespace}."))
                || path.contains(&format!("/{namespace}.")))
                && ["create", "update", "delete"].contains(&operation.as_str())
        })
        .map(|(operation, path)| format!("{operation} {path}"))
        .collect())
}

/// Applies service `name` whose deletion policy asks for its keys to go, with `domains`.
async fn apply_deletable(
    services: &Api<PseudonymisationService>,
    name: &str,
    domains: serde_json::Value,
) -> Result<()> {
    let svc: PseudonymisationService = serde_json::from_value(serde_json::json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "PseudonymisationService",
        "metadata": {"name": name},
        "spec": {"replicas": 1, "domains": domains,
                 "deletionPolicy": "Delete", "confirmKeyDeletion": true},
    }))?;
    services
        .patch(
            name,
            &PatchParams::apply("vardhub-tests"),
            &Patch::Apply(&svc),
        )
        .await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn explicit_delete_policy_deletes_the_keys_with_the_resource() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let ns = "vardhub-test-pseudo-delete";
    cluster.ensure_service_account(ns, "default").await?;
    let services: Api<PseudonymisationService> = Api::namespaced(admin.clone(), ns);
    apply_deletable(
        &services,
        "throwaway",
        serde_json::json!([{"name": "trial"}]),
    )
    .await?;
    let operator = RunningOperator::start(cluster, "test-pseudo-delete").await?;
    eventually(
        "the keys and the finalizer",
        Duration::from_secs(90),
        || async {
            let s = services.get("throwaway").await?;
            let keys = s
                .status
                .as_ref()
                .is_some_and(|st| is_true(&st.common.conditions, "KeysReady"));
            Ok(
                (keys && s.finalizers().iter().any(|f| f == "vardhub.io/delete-keys"))
                    .then_some(()),
            )
        },
    )
    .await?;
    let mount = format!("pseudonymisation/{ns}/throwaway/");
    let root = cluster.openbao_root()?;
    let mounts = vaultrs::sys::mount::list(&root).await?;
    assert!(mounts.contains_key(&mount));
    assert!(mounts.contains_key(&format!("pseudonymisation-pki/{ns}/throwaway/")));

    services
        .delete("throwaway", &DeleteParams::background())
        .await?;
    eventually(
        "the resource to be gone",
        Duration::from_secs(60),
        || async { Ok(services.get_opt("throwaway").await?.is_none().then_some(())) },
    )
    .await?;
    let mounts = vaultrs::sys::mount::list(&root).await?;
    assert!(
        !mounts.contains_key(&mount),
        "the mount and its keys are gone"
    );
    assert!(
        !mounts.contains_key(&format!("pseudonymisation-pki/{ns}/throwaway/")),
        "the service's CA is gone too"
    );
    let policy =
        vaultrs::sys::policy::read(&root, &format!("vardhub-pseudonymisation.{ns}.throwaway"))
            .await;
    assert_eq!(
        policy
            .err()
            .as_ref()
            .and_then(vardhub_tests::openbao_status),
        Some(404),
        "the policy is gone"
    );
    operator.stop().await?;
    Api::<Namespace>::all(admin)
        .delete(ns, &DeleteParams::default())
        .await?;
    Ok(())
}

/// A second service named after the first one's re-identification policy
/// (`pseudo-reidentify` beside `pseudo`): with names joined by dashes the two collided in
/// OpenBao and the second overwrote the first's re-identification policy. Each keeps its own.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn services_whose_names_once_collided_keep_their_own_openbao_policies() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let ns = "vardhub-test-pseudo-names";
    cluster.ensure_service_account(ns, "default").await?;
    let services: Api<PseudonymisationService> = Api::namespaced(admin.clone(), ns);
    for (name, domain) in [("pseudo", "linkable"), ("pseudo-reidentify", "other")] {
        let domains = serde_json::json!([{"name": domain, "reversible": true}]);
        apply_deletable(&services, name, domains).await?;
    }
    let operator = RunningOperator::start(cluster, "test-pseudo-names").await?;
    for name in ["pseudo", "pseudo-reidentify"] {
        eventually(
            &format!("{name} to have its keys"),
            Duration::from_secs(90),
            || async {
                let s = services.get(name).await?;
                Ok(s.status
                    .is_some_and(|st| is_true(&st.common.conditions, "KeysReady"))
                    .then_some(()))
            },
        )
        .await?;
    }
    let root = cluster.openbao_root()?;
    let read = |name: String| {
        let root = &root;
        async move { anyhow::Ok(vaultrs::sys::policy::read(root, &name).await?.rules) }
    };
    let reidentify = read(format!("vardhub-pseudonymisation-reidentify.{ns}.pseudo")).await?;
    assert!(
        reidentify.contains(&format!("pseudonymisation/{ns}/pseudo/decrypt/linkable"))
            && !reidentify.contains("pseudo-reidentify/"),
        "the first service's re-identification policy is its own: {reidentify}"
    );
    let second = read(format!("vardhub-pseudonymisation.{ns}.pseudo-reidentify")).await?;
    assert!(
        second.contains(&format!("pseudonymisation/{ns}/pseudo-reidentify/"))
            && !second.contains("decrypt"),
        "the second service's own policy: {second}"
    );
    for name in ["pseudo", "pseudo-reidentify"] {
        services.delete(name, &DeleteParams::background()).await?;
    }
    for name in ["pseudo", "pseudo-reidentify"] {
        eventually(
            &format!("{name} to be gone"),
            Duration::from_secs(60),
            || async { Ok(services.get_opt(name).await?.is_none().then_some(())) },
        )
        .await?;
    }
    operator.stop().await?;
    Api::<Namespace>::all(admin)
        .delete(ns, &DeleteParams::default())
        .await?;
    Ok(())
}

/// Someone who can create a PseudonymisationService names it after a Transit mount that
/// already holds keys (here one that root made, as an earlier service or another tool might
/// have). The operator neither creates keys in it nor writes a policy or role that would let
/// the new service's pods use them: the service reports `Conflict` naming the mount, and
/// deleting it with `deletionPolicy: Delete` keeps the mount. OpenBao's audit device shows no
/// write under the service's names.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn a_service_named_after_keys_it_did_not_make_gets_no_access_to_them() -> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let ns = "vardhub-test-pseudo-taken";
    let name = "taken";
    cluster.ensure_service_account(ns, "default").await?;
    let root = cluster.openbao_root()?;
    let mount = format!("pseudonymisation/{ns}/{name}");
    let theirs = Transit::new(&cluster.vault_addr, &cluster.vault_token, &mount)?;
    theirs.ensure_mount().await?;
    theirs.ensure_key("someone-elses", false).await?;
    let audit_from = vardhub_tests::openbao_audit_mark()?;

    let services: Api<PseudonymisationService> = Api::namespaced(admin.clone(), ns);
    let domains = serde_json::json!([{"name": "trial", "reversible": true}]);
    apply_deletable(&services, name, domains).await?;
    let operator = RunningOperator::start(cluster, "test-pseudo-taken").await?;
    let message = eventually(
        "the service to report the conflict",
        Duration::from_secs(90),
        || async {
            let s = services.get(name).await?;
            let conditions = s.status.map(|st| st.common.conditions).unwrap_or_default();
            let keys = conditions
                .iter()
                .find(|c| c.type_ == "KeysReady" && c.status == "False" && c.reason == "Conflict");
            let degraded = conditions.iter().any(|c| {
                c.type_ == types::DEGRADED && c.status == "True" && c.reason == "Conflict"
            });
            Ok(keys.filter(|_| degraded).map(|c| c.message.clone()))
        },
    )
    .await?;
    assert!(
        message.contains(&format!("of {mount} belong to no vardhub resource")),
        "the condition names the mount and says whose it is: {message}"
    );
    let keys = vaultrs::transit::key::list(&root, &mount).await?.keys;
    assert_eq!(keys, vec!["someone-elses".to_string()], "no key was added");
    for policy in [
        format!("vardhub-pseudonymisation.{ns}.{name}"),
        format!("vardhub-pseudonymisation-reidentify.{ns}.{name}"),
    ] {
        assert_eq!(
            vaultrs::sys::policy::read(&root, &policy)
                .await
                .err()
                .as_ref()
                .and_then(vardhub_tests::openbao_status),
            Some(404),
            "no policy {policy} reaches the keys"
        );
    }
    assert!(
        Api::<Deployment>::namespaced(admin.clone(), ns)
            .get_opt(name)
            .await?
            .is_none(),
        "no pod of the service runs"
    );

    services.delete(name, &DeleteParams::background()).await?;
    eventually(
        "the resource to be gone",
        Duration::from_secs(60),
        || async { Ok(services.get_opt(name).await?.is_none().then_some(())) },
    )
    .await?;
    let mounts = vaultrs::sys::mount::list(&root).await?;
    assert!(
        mounts.contains_key(&format!("{mount}/")),
        "deleting the service kept the keys it never had"
    );
    let written = openbao_writes(audit_from, ns)?;
    assert!(
        written.is_empty(),
        "nothing was written under the service's names: {written:?}"
    );
    operator.stop().await?;
    vaultrs::sys::mount::disable(&root, &mount).await?;
    Api::<Namespace>::all(admin)
        .delete(ns, &DeleteParams::default())
        .await?;
    Ok(())
}
