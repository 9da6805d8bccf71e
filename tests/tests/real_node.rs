//! The local cluster's real node (containerd, runc, kubelet, kube-proxy, CoreDNS): the
//! project's image runs there under the restricted profile, pods reach the cluster's servers
//! and nothing beyond this machine, and the operator installed by its chart runs there with
//! its workloads, which answer through their Services, and goes on after its leader is
//! killed.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use vardhub::api::{CatalogService, DataHub, PseudonymisationService, RegionalNode};
use vardhub::controller::conditions::{is_true, types};
use vardhub_tests::{
    LocalCluster, OPERATOR_LOCK, cluster_sh, env, eventually, kubectl, on_real_node, repo_root,
    run, run_now, what_pods_said,
};

/// The container security context of Pod Security "restricted".
fn restricted() -> Value {
    json!({
        "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
        "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// A namespace that enforces Pod Security "restricted", made by the tests' field manager.
async fn restricted_namespace(admin: &Client, name: &str) -> Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name, "labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}}))?;
    Api::<Namespace>::all(admin.clone())
        .patch(
            name,
            &PatchParams::apply("vardhub-tests"),
            &Patch::Apply(&ns),
        )
        .await?;
    Ok(())
}

/// Deletes namespaces and waits until they are gone.
async fn delete_namespaces(admin: &Client, names: &[&str]) -> Result<()> {
    let api = Api::<Namespace>::all(admin.clone());
    for name in names {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    for name in names {
        eventually(
            &format!("namespace {name} to be gone"),
            Duration::from_secs(120),
            || async { Ok(api.get_opt(name).await?.is_none().then_some(())) },
        )
        .await?;
    }
    Ok(())
}

/// Creates a pod on the real node and waits until it is in one of `phases`.
async fn run_pod(admin: &Client, ns: &str, spec: Value, phases: &[&str]) -> Result<Pod> {
    let pod: Pod = serde_json::from_value(spec)?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let pods = Api::<Pod>::namespaced(admin.clone(), ns);
    pods.create(&PostParams::default(), &pod).await?;
    eventually(
        &format!("pod {ns}/{name} to be {phases:?}"),
        Duration::from_secs(120),
        || async {
            let pod = pods.get(&name).await?;
            let phase = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_default();
            if phase == "Failed" && !phases.contains(&"Failed") {
                bail!("pod {name} failed: {:?}", pod.status);
            }
            Ok(phases.contains(&phase.as_str()).then_some(pod))
        },
    )
    .await
}

/// A long-running toolbox pod (Debian's static busybox) on the real node.
async fn toolbox(admin: &Client, ns: &str, name: &str) -> Result<()> {
    let mut spec = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "toolbox", "image": env("VARDHUB_TOOLBOX_IMAGE")?, "imagePullPolicy": "Never",
                "command": ["/bin/busybox", "sleep", "900"],
                "securityContext": restricted(),
            }],
        },
    });
    merge(&mut spec["spec"], on_real_node()?);
    run_pod(admin, ns, spec, &["Running"]).await?;
    Ok(())
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// Runs a busybox applet in the toolbox pod, with no standard input (so `nc` connects, sends
/// nothing and ends); its exit status and output.
fn exec(ns: &str, pod: &str, args: &[&str]) -> Result<(bool, String)> {
    let output = Command::new("kubectl")
        .args(["exec", "-n", ns, pod, "--", "/bin/busybox"])
        .args(args)
        .output()?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

/// An HTTP request from the toolbox pod (busybox `wget`), with one header and, for a POST, a
/// body; its exit status and output.
fn wget(
    ns: &str,
    pod: &str,
    url: &str,
    header: &str,
    post: Option<&str>,
) -> Result<(bool, String)> {
    let mut args = vec!["wget", "-q", "-O", "-", "--header", header];
    if let Some(body) = post {
        args.extend(["--post-data", body]);
    }
    args.push(url);
    exec(ns, pod, &args)
}

/// Packets the fence around the pod bridge dropped on their way out (its first rule).
fn fence_drops() -> Result<u64> {
    let chain = env("VARDHUB_NODE_FENCE_CHAIN")?;
    let listing = run(Command::new("iptables").args(["-w", "-n", "-v", "-x", "-L", &chain]))?;
    listing
        .lines()
        .find(|l| l.contains("pods never reach beyond this machine"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("the fence's rule in {listing}"))
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn the_real_node_runs_the_project_image_and_its_pods_reach_only_this_machine() -> Result<()> {
    const NS: &str = "realnode-probe";
    let cluster = LocalCluster::get();
    let admin = cluster.admin_client().await?;
    let node_ip = env("VARDHUB_NODE_IP")?;

    // The node is a real kubelet on containerd, next to the kwok nodes.
    let node = Api::<Node>::all(admin.clone())
        .get(&env("VARDHUB_NODE_NAME")?)
        .await?;
    let info = node
        .status
        .and_then(|s| s.node_info)
        .context("the node reports no nodeInfo")?;
    assert_eq!(info.kubelet_version, "v1.36.3");
    assert!(
        info.container_runtime_version.starts_with(&format!(
            "containerd://{}",
            env("VARDHUB_VERSION_CONTAINERD")?.trim_start_matches('v')
        )),
        "runtime: {}",
        info.container_runtime_version
    );

    // A run that failed half-way may have left the namespace behind.
    delete_namespaces(&admin, &[NS]).await?;
    restricted_namespace(&admin, NS).await?;
    // The project's image runs as a real container under Pod Security "restricted".
    let image = env("VARDHUB_IMAGE")?;
    let mut spec = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "vardhub-version", "namespace": NS},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "vardhub", "image": image, "imagePullPolicy": "Never",
                            "args": ["--version"], "securityContext": restricted()}],
        },
    });
    merge(&mut spec["spec"], on_real_node()?);
    let pod = run_pod(&admin, NS, spec, &["Succeeded"]).await?;
    let status = pod
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default();
    let digest = image
        .split('@')
        .nth(1)
        .context("VARDHUB_IMAGE is pinned by digest")?;
    assert!(
        status.iter().any(|c| c.image_id.contains(digest)),
        "the container ran the image with digest {digest}: {status:?}"
    );
    let log = kubectl(&["logs", "-n", NS, "vardhub-version"])?;
    assert!(log.starts_with("vardhub "), "the binary answered: {log}");

    toolbox(&admin, NS, "toolbox").await?;
    // Cluster DNS and the `kubernetes` Service work from inside a pod.
    let (ok, text) = exec(
        NS,
        "toolbox",
        &["nslookup", "kubernetes.default.svc.cluster.local"],
    )?;
    assert!(ok && text.contains("10.96.0.1"), "nslookup: {text}");
    // An earlier test restarts the API server, which empties the `kubernetes` Service's
    // endpoints while it is down; the node's kube-proxy and NetworkPolicy agent re-sync once
    // their watches are allowed back in. So the Service is given a bounded wait, and a
    // failure shows what the API server then lists as its endpoints.
    let connected = eventually(
        "the kubernetes Service to accept a connection from the pod",
        Duration::from_secs(60),
        || async {
            let (ok, text) = exec(
                NS,
                "toolbox",
                &[
                    "nc",
                    "-w",
                    "5",
                    "kubernetes.default.svc.cluster.local",
                    "443",
                ],
            )?;
            Ok(ok.then_some(text))
        },
    )
    .await;
    if let Err(e) = connected {
        let endpoints = kubectl(&[
            "get",
            "endpointslices",
            "-n",
            "default",
            "-l",
            "kubernetes.io/service-name=kubernetes",
            "-o",
            "wide",
        ])
        .unwrap_or_else(|e| e.to_string());
        bail!("{e:#}; the kubernetes Service's endpoints: {endpoints}");
    }
    // OpenBao and MinIO answer at the node's address.
    let (ok, text) = exec(
        NS,
        "toolbox",
        &[
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{node_ip}:18200/v1/sys/health"),
        ],
    )?;
    assert!(
        ok && text.contains("\"initialized\":true"),
        "OpenBao: {text}"
    );
    let (ok, text) = exec(
        NS,
        "toolbox",
        &[
            "wget",
            "-q",
            "-S",
            "-O",
            "/dev/null",
            &format!("http://{node_ip}:19000/minio/health/live"),
        ],
    )?;
    assert!(ok && text.contains("200 OK"), "MinIO: {text}");

    // An address beyond this machine (TEST-NET-2, RFC 5737) is unreachable, and it is the
    // fence that drops the packets: its counter, read from the kernel, goes up.
    let before = fence_drops()?;
    let (ok, text) = exec(NS, "toolbox", &["nc", "-w", "3", "198.51.100.7", "443"])?;
    assert!(!ok, "a pod reached an address beyond the node: {text}");
    let after = fence_drops()?;
    assert!(
        after > before,
        "the fence dropped the packets ({before} -> {after})"
    );

    delete_namespaces(&admin, &[NS]).await
}

/// Helm, run from the repository root.
fn helm(args: &[&str]) -> Result<String> {
    run(Command::new("helm").current_dir(repo_root()).args(args))
}

const RELEASE: &str = "vardhub-real";
const OPERATOR_NS: &str = "vardhub-real";
const HUB_NS: &str = "realnode-hub";
const REGION_NS: &str = "realnode-region";
const NODE: &str = "realnode-a";
const OTHER_NODE: &str = "realnode-b";
const HUB: &str = "realnode-hub";
const FEDERATED_HUB: &str = "realnode-fed";
const FLOW_PS: &str = "flow-ps";
const PURPOSE: &str = "hip-fracture";

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn the_chart_runs_the_operator_on_the_real_node_and_its_workloads_answer_there() -> Result<()>
{
    let cluster = LocalCluster::get();
    // No operator runs in this process meanwhile: the installed one is the only one.
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    // In a task of its own, so that a failed assertion (a panic) still reaches the cleanup.
    let outcome = match tokio::spawn(installed_operator_scenario(admin.clone())).await {
        Ok(outcome) => outcome,
        Err(e) => Err(anyhow::anyhow!("the scenario failed: {e}")),
    };
    // Whatever happened, nothing of this test may go on reconciling in later tests.
    let cleanup = clean_up_installed_operator(&admin).await;
    outcome.and(cleanup)
}

/// Removes the resources (the operator deletes what it made and, as their deletion policy
/// says, their keys and buckets), then the release and the namespaces.
async fn clean_up_installed_operator(admin: &Client) -> Result<()> {
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let services: Api<PseudonymisationService> = Api::namespaced(admin.clone(), HUB_NS);
    let hubs: Api<DataHub> = Api::all(admin.clone());
    let _ = nodes.delete(NODE, &DeleteParams::default()).await;
    let _ = nodes.delete(OTHER_NODE, &DeleteParams::default()).await;
    let flow_services = [
        Api::<PseudonymisationService>::namespaced(admin.clone(), &format!("hub-{HUB}")),
        Api::<PseudonymisationService>::namespaced(admin.clone(), &format!("hub-{FEDERATED_HUB}")),
    ];
    for api in &flow_services {
        let _ = api.delete(FLOW_PS, &DeleteParams::default()).await;
    }
    let _ = hubs.delete(HUB, &DeleteParams::default()).await;
    let _ = hubs.delete(FEDERATED_HUB, &DeleteParams::default()).await;
    let _ = services.delete("pseudo", &DeleteParams::default()).await;
    let gone = eventually(
        "the nodes, hub and service to be gone",
        Duration::from_secs(120),
        || async {
            Ok((nodes.get_opt(NODE).await?.is_none()
                && nodes.get_opt(OTHER_NODE).await?.is_none()
                && hubs.get_opt(HUB).await?.is_none()
                && hubs.get_opt(FEDERATED_HUB).await?.is_none()
                && flow_services[0].get_opt(FLOW_PS).await?.is_none()
                && flow_services[1].get_opt(FLOW_PS).await?.is_none()
                && services.get_opt("pseudo").await?.is_none())
            .then_some(()))
        },
    )
    .await;
    helm(&[
        "uninstall",
        RELEASE,
        "--namespace",
        OPERATOR_NS,
        "--ignore-not-found",
        "--wait",
        "--timeout",
        "120s",
    ])?;
    // Finalizers that only the uninstalled operator would have removed do not hold the test.
    let (hub_ns, federated_ns) = (format!("hub-{HUB}"), format!("hub-{FEDERATED_HUB}"));
    for (kind, name, ns) in [
        ("regionalnode", NODE, None),
        ("regionalnode", OTHER_NODE, None),
        ("datahub", HUB, None),
        ("datahub", FEDERATED_HUB, None),
        ("pseudonymisationservice", "pseudo", Some(HUB_NS)),
        ("pseudonymisationservice", FLOW_PS, Some(hub_ns.as_str())),
        (
            "pseudonymisationservice",
            FLOW_PS,
            Some(federated_ns.as_str()),
        ),
    ] {
        let mut args = vec![
            "patch",
            kind,
            name,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        let _ = kubectl(&args);
    }
    let region_ns = format!("region-{NODE}");
    let other_ns = format!("region-{OTHER_NODE}");
    delete_namespaces(
        admin,
        &[
            HUB_NS,
            REGION_NS,
            OPERATOR_NS,
            &region_ns,
            &other_ns,
            &hub_ns,
            &federated_ns,
        ],
    )
    .await?;
    gone
}

async fn installed_operator_scenario(admin: Client) -> Result<()> {
    let image = env("VARDHUB_IMAGE")?;

    // Installed as a platform engineer would: the chart, pinned by digest, on the real node.
    // (The admission policies are cluster-wide and already come with the release "vardhub".)
    // OpenBao's audit log from here on is this test's witness.
    let audit = env("VARDHUB_OPENBAO_AUDIT_LOG")?;
    let audit_from = std::fs::metadata(&audit)?.len();
    // Its OpenBao tokens live 30 seconds, so that it must log in again during the test.
    let install = repo_root().join("environments/local/install-operator.sh");
    run(Command::new("bash")
        .arg(install)
        .env("VARDHUB_OPERATOR_TOKEN_TTL", "30s")
        .args([
            &image,
            RELEASE,
            OPERATOR_NS,
            "--",
            "--set",
            "admissionPolicies.enabled=false",
        ]))?;
    // It logs in to OpenBao with its ServiceAccount; it is never given a token.
    let deployment = kubectl(&["get", "deployment", "-n", OPERATOR_NS, "-o", "json"])?;
    assert!(
        deployment.contains("VARDHUB_OPENBAO_ROLE") && !deployment.contains("VAULT_TOKEN"),
        "the operator logs in through Kubernetes auth: {deployment}"
    );
    let pods = Api::<Pod>::namespaced(admin.clone(), OPERATOR_NS)
        .list(
            &kube::api::ListParams::default()
                .labels(&format!("app.kubernetes.io/instance={RELEASE}")),
        )
        .await?;
    assert_eq!(pods.items.len(), 2, "two replicas");
    let node_name = env("VARDHUB_NODE_NAME")?;
    for pod in &pods.items {
        let spec = pod.spec.as_ref().context("pod spec")?;
        assert_eq!(spec.node_name.as_deref(), Some(node_name.as_str()));
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        assert!(
            ready,
            "operator pod passes its readiness probe: {:?}",
            pod.status
        );
    }
    let holder = eventually("a leader", Duration::from_secs(60), || async {
        let lease = Api::<Lease>::namespaced(admin.clone(), OPERATOR_NS)
            .get_opt("vardhub-operator")
            .await?;
        Ok(lease.and_then(|l| l.spec?.holder_identity))
    })
    .await?;
    assert!(
        pods.items
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(holder.as_str())),
        "the Lease is held by one of the chart's pods: {holder}"
    );

    // Its S3 identity is its own, limited to the buckets named vardhub-*: the S3 server
    // refuses it a bucket by any other name.
    let secret = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), OPERATOR_NS)
        .get("vardhub-operator-s3")
        .await?;
    let data = secret.data.unwrap_or_default();
    let field = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
            .with_context(|| format!("the Secret has no {k}"))
    };
    let cluster = LocalCluster::get();
    let access_key_id = field("accessKeyId")?;
    assert_ne!(
        access_key_id, cluster.s3_access_key_id,
        "the operator is not given the root user"
    );
    let own = vardhub::adapters::s3::Storage::new(vardhub::adapters::s3::Settings {
        access_key_id,
        secret_access_key: field("secretAccessKey")?,
        ..cluster.s3_settings()
    });
    let refused = own
        .client()
        .create_bucket()
        .bucket("realnode-not-vardhub")
        .send()
        .await
        .expect_err("a bucket outside vardhub-* is refused");
    assert_eq!(
        refused.as_service_error().and_then(|e| e.meta().code()),
        Some("AccessDenied"),
        "{refused:?}"
    );

    // A pseudonymisation service, run by the installed operator from the same image.
    restricted_namespace(&admin, HUB_NS).await?;
    restricted_namespace(&admin, REGION_NS).await?;
    let services: Api<PseudonymisationService> = Api::namespaced(admin.clone(), HUB_NS);
    let svc: PseudonymisationService = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "PseudonymisationService",
        "metadata": {"name": "pseudo", "namespace": HUB_NS},
        "spec": {"mode": "local", "replicas": 1,
                 "domains": [{"name": "region-export", "callers": [{"namespace": REGION_NS}]}],
                 "placement": on_real_node()?,
                 "deletionPolicy": "Delete", "confirmKeyDeletion": true},
    }))?;
    services
        .patch(
            "pseudo",
            &PatchParams::apply("vardhub-tests"),
            &Patch::Apply(&svc),
        )
        .await?;
    eventually(
        "the service to be Ready on its real pod",
        Duration::from_secs(180),
        || async {
            let s = services.get("pseudo").await?;
            let conditions = s.status.map(|st| st.common.conditions).unwrap_or_default();
            if is_true(&conditions, types::READY) {
                return Ok(Some(()));
            }
            // A refusal (for example a verb the chart's RBAC lacks) shows in the failure.
            match conditions
                .iter()
                .find(|c| c.type_ == types::DEGRADED && c.status == "True")
            {
                Some(c) => bail!("Degraded: {}", c.message),
                None => Ok(None),
            }
        },
    )
    .await?;
    let service_pods = Api::<Pod>::namespaced(admin.clone(), HUB_NS)
        .list(&Default::default())
        .await?;
    let running = service_pods.items.iter().any(|p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node_name.as_str())
            && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
    });
    assert!(
        running,
        "the service's pod runs on the real node: {service_pods:?}"
    );

    // A pod of the granted region namespace reaches the service through its Service's name:
    // the NetworkPolicy admits it. (busybox's TLS cannot talk to the service: it offers only
    // SHA-1 signatures, which rustls refuses, so the HTTPS calls below come from this test.)
    toolbox(&admin, REGION_NS, "client").await?;
    let host = format!("pseudo.{HUB_NS}.svc");
    let (ok, text) = connect(REGION_NS, "client", &format!("{host}.cluster.local"), 8080)?;
    assert!(ok, "the granted region reaches the service: {text}");

    // Over HTTPS to the real pod, with a certificate that chains to the service's own CA in
    // OpenBao and names the Service: without a token the service refuses; with a token of a
    // ServiceAccount of the granted namespace, for the service's audience, it answers.
    let service_ip = service_pods
        .items
        .iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .map(pod_ip)
        .context("the service's running pod")??;
    let ca = vardhub::adapters::openbao::ca_certificate(
        &reqwest::Client::new(),
        &cluster.vault_addr,
        &format!("pseudonymisation-pki/{HUB_NS}/pseudo"),
    )
    .await?;
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes())?])
        .resolve(&host, std::net::SocketAddr::new(service_ip.parse()?, 8080))
        .build()?;
    let url = format!("https://{host}:8080/v1/domains/region-export/pseudonyms");
    let body = json!({"kind": "personnummer", "identifiers": ["19121212-1212"]});
    let anonymous = https.post(&url).json(&body).send().await?;
    assert_eq!(
        anonymous.status(),
        401,
        "a caller without a token is refused"
    );
    let audience = services
        .get("pseudo")
        .await?
        .status
        .and_then(|s| s.audience)
        .context("the status names the audience")?;
    let token = cluster
        .service_account_token(REGION_NS, "default", Some(&audience))
        .await?;
    let answer: Value = https
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert!(
        answer["pseudonyms"][0]
            .as_str()
            .is_some_and(|p| p.starts_with("vault:v1:")),
        "one pseudonym of key version 1: {answer}"
    );

    // The leader dies by SIGKILL, with no chance to release its Lease. A live process (its
    // container restarted by the kubelet, or the standby once the Lease has run out) renews
    // the Lease, and everything below is reconciled after the kill.
    let leases = Api::<Lease>::namespaced(admin.clone(), OPERATOR_NS);
    let leader = Api::<Pod>::namespaced(admin.clone(), OPERATOR_NS)
        .get(&holder)
        .await?;
    let container = leader
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.into_iter().find(|c| c.name == "operator"))
        .and_then(|c| c.container_id)
        .context("the leader's operator container")?;
    let killed = Timestamp::now();
    cluster_sh(&["kill-container", &container])?;
    let (by, renewed) = eventually(
        "a live process to renew the Lease after the leader's SIGKILL",
        Duration::from_secs(90),
        || async {
            let spec = leases
                .get("vardhub-operator")
                .await?
                .spec
                .unwrap_or_default();
            Ok(spec
                .renew_time
                .filter(|t| t.0 > killed)
                .zip(spec.holder_identity)
                .map(|(t, by)| (by, t.0)))
        },
    )
    .await?;
    println!(
        "the Lease was renewed {:.1} s after the leader's SIGKILL, by {}",
        renewed.duration_since(killed).as_secs_f64(),
        if by == holder {
            "its restarted container"
        } else {
            "the standby"
        }
    );

    // A catalogue, served by the project's component in a real pod, answers through its Service.
    let catalogs: Api<CatalogService> = Api::namespaced(admin.clone(), HUB_NS);
    let catalog: CatalogService = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "CatalogService",
        "metadata": {"name": "probe", "namespace": HUB_NS},
        "spec": {
            "title": {"sv": "Provkatalog", "en": "Probe catalogue"},
            "description": {"sv": "Katalog för provet", "en": "The test's catalogue"},
            "publisher": {"name": "vardhub tests", "uri": "https://vardhub.example.se", "email": "tests@vardhub.example.se"},
            "baseUri": "https://katalog.vardhub.example.se/",
            "datasetSelector": {"matchLabels": {"vardhub.io/catalog": "probe"}},
            "placement": on_real_node()?,
        },
    }))?;
    catalogs
        .patch(
            "probe",
            &PatchParams::apply("vardhub-tests"),
            &Patch::Apply(&catalog),
        )
        .await?;
    // The address the operator publishes in the status is the one a pod uses.
    let url = eventually(
        "the catalogue to be Ready on its real pod",
        Duration::from_secs(180),
        || async {
            let c = catalogs.get("probe").await?;
            Ok(c.status
                .filter(|st| is_true(&st.common.conditions, types::READY))
                .and_then(|st| st.url))
        },
    )
    .await?;
    let (ok, text) = wget(REGION_NS, "client", &url, "Accept: text/turtle", None)?;
    assert!(
        ok && text.contains("dcat:Catalog"),
        "the catalogue answered through its Service: {text}"
    );

    // A regional node's reference job runs as a real container and its outcome reaches the
    // node's status: it logged in to OpenBao with its ServiceAccount and used its credential.
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let node: RegionalNode = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
        "metadata": {"name": NODE},
        "spec": {"regions": ["25"], "placement": on_real_node()?,
                 "deletionPolicy": "Delete", "confirmDeletion": true, "purgeObjects": true,
                 "mappingJobs": [{"name": "reference", "schedule": "0 3 * * *",
                                  "sourceModel": "synthetic", "targetModel": {"name": "omop-cdm", "version": "5.4"}}]},
    }))?;
    nodes
        .patch(
            NODE,
            &PatchParams::apply("vardhub-tests"),
            &Patch::Apply(&node),
        )
        .await?;
    let region_ns = format!("region-{NODE}");
    eventually("the node to be Ready", Duration::from_secs(120), || async {
        let n = nodes.get(NODE).await?;
        Ok(n.status
            .as_ref()
            .is_some_and(|st| is_true(&st.common.conditions, types::READY))
            .then_some(()))
    })
    .await?;
    let job = eventually("the CronJob", Duration::from_secs(60), || async {
        Ok(Some(run_now(&admin, &region_ns, "map-reference").await?))
    })
    .await?;
    eventually(
        "the reference job's success in the node's status",
        Duration::from_secs(180),
        || async {
            let n = nodes.get(NODE).await?;
            let runs = n.status.unwrap_or_default().jobs;
            let last = runs
                .iter()
                .find(|j| j.name == "reference")
                .and_then(|j| j.last_run.clone())
                .filter(|r| r.job == job);
            match last {
                Some(r) if r.result == "Succeeded" => Ok(Some(())),
                Some(r) if r.result == "Failed" => {
                    let log = kubectl(&["logs", "-n", &region_ns, &format!("job/{job}")])
                        .unwrap_or_default();
                    bail!("the reference job failed: {log}")
                }
                _ => Ok(None),
            }
        },
    )
    .await?;

    // The reference mapping really ran in that container: a synthetic extract in the node's
    // landing bucket, and the region's OMOP CDM 5.4 tables in its standardised bucket, each a
    // Parquet file the test reads back.
    let layout = vardhub::controller::storage::node_layout(&nodes.get(NODE).await?);
    let landing = vardhub::flow::store::Bucket::new(cluster.s3_root(), layout.landing.clone());
    let standardised =
        vardhub::flow::store::Bucket::new(cluster.s3_root(), layout.standardised.clone());
    let extract = landing.list("source/").await?;
    assert_eq!(extract.len(), 3, "the synthetic extract: {extract:?}");
    let (omop, _) = vardhub::flow::run::read_omop(&standardised, "omop").await?;
    assert!(
        omop.person.len() > 100 && !omop.visit_occurrence.is_empty(),
        "the region's common model: {:?}",
        omop.counts()
    );

    network_isolation(&admin, &node_name).await?;
    flow_on_real_pods(&admin).await?;

    // OpenBao's own audit log witnesses how the operator used OpenBao: it logged in with its
    // ServiceAccount, again before the token expired, and every request that came from its
    // pods carried its ServiceAccount's token with the chart's policy alone (never root).
    let operator_ips: Vec<String> = pods
        .items
        .iter()
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    let (logins, requests) = eventually(
        "a second login of the operator in OpenBao's audit log",
        Duration::from_secs(90),
        || async {
            let (logins, requests) = operator_in_openbao_audit(&audit, audit_from, &operator_ips)?;
            Ok((logins >= 2).then_some((logins, requests)))
        },
    )
    .await?;
    assert!(
        requests.len() > 10,
        "the operator's requests were audited: {}",
        requests.len()
    );
    let foreign: Vec<_> = requests
        .iter()
        .filter(|identity| identity.as_str() != "vardhub-operator:default,vardhub-operator")
        .collect();
    assert!(
        foreign.is_empty(),
        "requests with another identity: {foreign:?} ({logins} logins)"
    );
    Ok(())
}

/// From OpenBao's audit log after byte `from`: how often this test's operator logged in, and
/// for every other request from its pods' addresses, who made it (`<service account>:<sorted
/// policies>`, with no service account for a request without this operator's identity).
fn operator_in_openbao_audit(
    path: &str,
    from: u64,
    pod_ips: &[String],
) -> Result<(usize, Vec<String>)> {
    let bytes = std::fs::read(path)?;
    let text = String::from_utf8_lossy(&bytes[usize::try_from(from)?.min(bytes.len())..]);
    let mut logins = 0;
    let mut requests = Vec::new();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let from_pod = entry["request"]["remote_address"]
            .as_str()
            .is_some_and(|a| pod_ips.iter().any(|ip| ip == a));
        if !from_pod || entry["type"] != "request" {
            continue;
        }
        if entry["request"]["path"] == "auth/kubernetes/login" {
            logins += 1;
            continue;
        }
        let meta = &entry["auth"]["metadata"];
        let ours = meta["service_account_namespace"] == OPERATOR_NS
            && meta["service_account_name"] == "vardhub-operator";
        let mut policies: Vec<&str> = entry["auth"]["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        policies.sort_unstable();
        let who = if ours { "vardhub-operator" } else { "" };
        requests.push(format!("{who}:{}", policies.join(",")));
    }
    Ok((logins, requests))
}

/// Verdicts of the node's NetworkPolicy engine so far: (accepted, dropped) first packets.
fn netpol_verdicts() -> Result<(u64, u64)> {
    let text = run(Command::new("curl").args(["-fsS", &env("VARDHUB_NETPOL_METRICS")?]))?;
    let count = |verdict: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("kube_network_policies_packet_count")
                    && l.contains(&format!("verdict=\"{verdict}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    };
    Ok((count("accept"), count("drop")))
}

/// `nc` from a toolbox pod to `host:port`, sending nothing: whether it connected, and what
/// it said.
fn connect(ns: &str, pod: &str, host: &str, port: u16) -> Result<(bool, String)> {
    exec(ns, pod, &["nc", "-w", "3", host, &port.to_string()])
}

fn pod_ip(pod: &Pod) -> Result<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .context("the pod has no address yet")
}

/// NetworkPolicy, enforced on the real node, from real pods in the namespaces the operator
/// isolates: a region reaches DNS, OpenBao, the S3 server and its hub's pseudonymisation
/// service when named, and nothing else; no region reaches another; a hub's own workloads
/// reach DNS, OpenBao and S3. Every refusal is a dropped first packet (the client times
/// out), counted by the engine.
async fn network_isolation(admin: &Client, node_name: &str) -> Result<()> {
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let hubs: Api<DataHub> = Api::all(admin.clone());
    let other: RegionalNode = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
        "metadata": {"name": OTHER_NODE},
        "spec": {"regions": ["24"], "deletionPolicy": "Delete", "confirmDeletion": true, "purgeObjects": true},
    }))?;
    nodes
        .patch(
            OTHER_NODE,
            &PatchParams::apply("vardhub-tests"),
            &Patch::Apply(&other),
        )
        .await?;
    let hub: DataHub = serde_json::from_value(json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "DataHub",
        "metadata": {"name": HUB},
        "spec": {"regionalNodeSelector": {"matchLabels": {"vardhub.io/hub": HUB}},
                 "deletionPolicy": "Delete", "confirmDeletion": true, "purgeObjects": true},
    }))?;
    hubs.patch(
        HUB,
        &PatchParams::apply("vardhub-tests"),
        &Patch::Apply(&hub),
    )
    .await?;
    let (region_a, region_b, hub_ns) = (
        format!("region-{NODE}"),
        format!("region-{OTHER_NODE}"),
        format!("hub-{HUB}"),
    );
    for ns in [&region_b, &hub_ns] {
        eventually(
            &format!("the allow-egress policy of {ns}"),
            Duration::from_secs(120),
            || async {
                Ok(
                    Api::<k8s_openapi::api::networking::v1::NetworkPolicy>::namespaced(
                        admin.clone(),
                        ns,
                    )
                    .get_opt("allow-egress")
                    .await?
                    .map(|_| ()),
                )
            },
        )
        .await?;
    }
    // A client in each isolated namespace, and a listener in the other region.
    toolbox(admin, &region_a, "client").await?;
    toolbox(admin, &hub_ns, "client").await?;
    let mut listener = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "listener", "namespace": region_b},
        "spec": {
            "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "listener", "image": env("VARDHUB_TOOLBOX_IMAGE")?, "imagePullPolicy": "Never",
                "command": ["/bin/busybox", "nc", "-ll", "-p", "8080", "-e", "/bin/busybox", "echo", "hello"],
                "securityContext": restricted(),
            }],
        },
    });
    merge(&mut listener["spec"], on_real_node()?);
    let listener = run_pod(admin, &region_b, listener, &["Running"]).await?;
    let listener_ip = pod_ip(&listener)?;
    let node_ip = env("VARDHUB_NODE_IP")?;
    let port_of = |var: &str| -> Result<u16> {
        let url = env(var)?;
        reqwest::Url::parse(&url)?
            .port_or_known_default()
            .with_context(|| format!("{var} has no port"))
    };
    let (openbao, s3) = (port_of("VAULT_ADDR")?, port_of("VARDHUB_S3_ENDPOINT")?);
    let api_server = port_of("VARDHUB_KUBE_APISERVER")?;

    // What a region may reach.
    let (ok, text) = exec(
        &region_a,
        "client",
        &["nslookup", "kubernetes.default.svc.cluster.local"],
    )?;
    assert!(
        ok && text.contains("10.96.0.1"),
        "DNS from a region: {text}"
    );
    for (what, port) in [("OpenBao", openbao), ("S3", s3)] {
        let (ok, text) = connect(&region_a, "client", &node_ip, port)?;
        assert!(ok, "a region reaches {what}: {text}");
    }
    // What it may not, each a dropped packet.
    let (_, drops_before) = netpol_verdicts()?;
    for (what, host, port) in [
        ("another region's pod", listener_ip.as_str(), 8080),
        ("the API server", node_ip.as_str(), api_server),
        (
            "a pseudonymisation service that does not name it",
            "pseudo.realnode-hub.svc.cluster.local",
            8080,
        ),
    ] {
        let (ok, text) = connect(&region_a, "client", host, port)?;
        assert!(
            !ok && text.contains("timed out"),
            "a region reached {what}: {text}"
        );
    }
    // A hub's own pods reach DNS, OpenBao and S3, and not the other region either.
    let (ok, text) = exec(
        &hub_ns,
        "client",
        &["nslookup", "kubernetes.default.svc.cluster.local"],
    )?;
    assert!(ok && text.contains("10.96.0.1"), "DNS from a hub: {text}");
    for (what, port) in [("OpenBao", openbao), ("S3", s3)] {
        let (ok, text) = connect(&hub_ns, "client", &node_ip, port)?;
        assert!(ok, "a hub reaches {what}: {text}");
    }
    // Nor the API server: only the pseudonymisation service's own policy opens it, for its pods.
    for (what, host, port) in [
        ("a region's pod", listener_ip.as_str(), 8080),
        ("the API server", node_ip.as_str(), api_server),
    ] {
        let (ok, text) = connect(&hub_ns, "client", host, port)?;
        assert!(
            !ok && text.contains("timed out"),
            "a hub's pod reached {what}: {text}"
        );
    }
    let (_, drops_after) = netpol_verdicts()?;
    assert!(
        drops_after >= drops_before + 5,
        "the engine dropped the refused connections ({drops_before} -> {drops_after})"
    );
    // The listener is alive: it answers inside its own pod, where no policy applies, so what
    // stopped the others was policy.
    let (ok, text) = exec(
        &region_b,
        "listener",
        &["nc", "-w", "3", "127.0.0.1", "8080"],
    )?;
    let _ = node_name;
    assert!(ok && text.contains("hello"), "the listener answers: {text}");
    Ok(())
}

/// Kills the pseudonymisation service's container in `ns` and waits until the kubelet's
/// restart of it is ready: it has read the API server's token keys again, from a pod whose
/// address the NetworkPolicy engine already knows.
async fn restarted_container_is_ready_again(admin: &Client, ns: &str) -> Result<()> {
    const SELECTOR: &str = "app.kubernetes.io/name=pseudonymisation-service";
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let serving = |pod: &Pod| {
        pod.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.iter().find(|c| c.name == "pseudonymisation").cloned())
    };
    let pod = pods
        .list(&kube::api::ListParams::default().labels(SELECTOR))
        .await?
        .items
        .into_iter()
        .find(|p| serving(p).is_some_and(|c| c.ready))
        .context("a ready pseudonymisation pod")?;
    let name = pod.metadata.name.clone().context("its name")?;
    let before = serving(&pod).context("its container")?;
    let container = before.container_id.context("its container's id")?;
    cluster_sh(&["kill-container", &container])?;
    let back = eventually(
        "the killed pseudonymisation container to be restarted and ready",
        Duration::from_secs(120),
        || async {
            Ok(serving(&pods.get(&name).await?)
                .filter(|c| c.restart_count > before.restart_count && c.ready)
                .map(|_| ()))
        },
    )
    .await;
    if let Err(e) = back {
        let said = what_pods_said(admin, ns, SELECTOR).await;
        return Err(e.context(format!("its pods:{said}")));
    }
    Ok(())
}

/// Runs a CronJob now and waits for its Job to succeed; a failure fails with the Job's log.
async fn run_to_end(admin: &Client, ns: &str, cron_job: &str) -> Result<String> {
    eventually(
        &format!("the CronJob {ns}/{cron_job}"),
        Duration::from_secs(60),
        || async {
            Ok(
                Api::<k8s_openapi::api::batch::v1::CronJob>::namespaced(admin.clone(), ns)
                    .get_opt(cron_job)
                    .await?
                    .map(|_| ()),
            )
        },
    )
    .await?;
    let job = run_now(admin, ns, cron_job).await?;
    let jobs = Api::<k8s_openapi::api::batch::v1::Job>::namespaced(admin.clone(), ns);
    eventually(
        &format!("the Job {ns}/{job} to succeed"),
        Duration::from_secs(240),
        || async {
            let status = jobs.get(&job).await?.status.unwrap_or_default();
            if status.succeeded.unwrap_or(0) > 0 {
                return Ok(Some(()));
            }
            let failed = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Failed" && c.status == "True");
            if failed {
                let log = kubectl(&["logs", "-n", ns, &format!("job/{job}")]).unwrap_or_default();
                bail!("{ns}/{job} failed: {log}");
            }
            Ok(None)
        },
    )
    .await?;
    Ok(job)
}

/// The reference flow, every step a Job of the operator's own CronJobs in a real pod: node A
/// exports to a central hub, node B to a federated one, both through a pseudonymisation
/// service in their hub's namespace that names only their region. The test then reads what
/// the pods wrote, as the S3 server's root, and checks it against its own counts.
async fn flow_on_real_pods(admin: &Client) -> Result<()> {
    let cluster = LocalCluster::get();
    let nodes: Api<RegionalNode> = Api::all(admin.clone());
    let hubs: Api<DataHub> = Api::all(admin.clone());
    let placement = on_real_node()?;
    let columns = [
        "person_id",
        "region",
        "age_group",
        "hours_to_surgery",
        "died_within_30_days",
    ];
    let product = |mode: &str| {
        json!({"name": PURPOSE, "purpose": PURPOSE,
               "build": {"product": "hipFracture", "schedule": "0 7 * * *",
                         "columns": if mode == "central" { json!(columns) } else { json!([]) }}})
    };
    for (name, mode) in [(HUB, "central"), (FEDERATED_HUB, "federated")] {
        let mut spec = json!({
            "storageMode": mode,
            "regionalNodeSelector": {"matchLabels": {"vardhub.io/hub": name}},
            "zones": {"purposeSpecific": [product(mode)]},
            "placement": placement,
            "deletionPolicy": "Delete", "confirmDeletion": true, "purgeObjects": true,
        });
        if mode == "central" {
            spec["standardisation"] = json!({"schedule": "0 6 * * *"});
        }
        let hub: DataHub = serde_json::from_value(json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "DataHub",
            "metadata": {"name": name}, "spec": spec,
        }))?;
        hubs.patch(
            name,
            &PatchParams::apply("vardhub-tests"),
            &Patch::Apply(&hub),
        )
        .await?;
    }
    // Node A (already mapped) joins the central hub, node B the federated one.
    for (name, region, hub) in [(NODE, "25", HUB), (OTHER_NODE, "24", FEDERATED_HUB)] {
        let node: RegionalNode = serde_json::from_value(json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "RegionalNode",
            "metadata": {"name": name, "labels": {"vardhub.io/hub": hub}},
            "spec": {"regions": [region], "placement": placement, "hub": {"name": hub},
                     "deletionPolicy": "Delete", "confirmDeletion": true, "purgeObjects": true,
                     "mappingJobs": [{"name": "reference", "schedule": "0 3 * * *",
                                      "sourceModel": "synthetic", "targetModel": {"name": "omop-cdm", "version": "5.4"}}],
                     "export": {"pseudonymisation": {"name": FLOW_PS}, "domain": PURPOSE,
                                "schedule": "0 4 * * *"}},
        }))?;
        nodes
            .patch(
                name,
                &PatchParams::apply("vardhub-tests"),
                &Patch::Apply(&node),
            )
            .await?;
    }
    for (hub, region_ns) in [
        (HUB, format!("region-{NODE}")),
        (FEDERATED_HUB, format!("region-{OTHER_NODE}")),
    ] {
        let hub_ns = format!("hub-{hub}");
        eventually(
            &format!("namespace {hub_ns}"),
            Duration::from_secs(120),
            || async {
                Ok(Api::<Namespace>::all(admin.clone())
                    .get_opt(&hub_ns)
                    .await?
                    .map(|_| ()))
            },
        )
        .await?;
        let services: Api<PseudonymisationService> = Api::namespaced(admin.clone(), &hub_ns);
        let svc: PseudonymisationService = serde_json::from_value(json!({
            "apiVersion": "vardhub.io/v1alpha1", "kind": "PseudonymisationService",
            "metadata": {"name": FLOW_PS, "namespace": hub_ns},
            "spec": {"mode": "local", "replicas": 1,
                     "domains": [{"name": PURPOSE, "callers": [
                         {"namespace": region_ns, "serviceAccount": "regional-node"}]}],
                     "placement": placement,
                     "deletionPolicy": "Delete", "confirmKeyDeletion": true},
        }))?;
        services
            .patch(
                FLOW_PS,
                &PatchParams::apply("vardhub-tests"),
                &Patch::Apply(&svc),
            )
            .await?;
    }
    for hub in [HUB, FEDERATED_HUB] {
        let services: Api<PseudonymisationService> =
            Api::namespaced(admin.clone(), &format!("hub-{hub}"));
        let ready = eventually(
            &format!("the pseudonymisation service of {hub}"),
            Duration::from_secs(180),
            || async {
                Ok(services
                    .get(FLOW_PS)
                    .await?
                    .status
                    .filter(|s| is_true(&s.common.conditions, types::READY))
                    .map(|_| ()))
            },
        )
        .await;
        if let Err(e) = ready {
            let status = services.get(FLOW_PS).await?.status;
            let said = what_pods_said(
                admin,
                &format!("hub-{hub}"),
                "app.kubernetes.io/name=pseudonymisation-service",
            )
            .await;
            return Err(e.context(format!("its status: {status:?}; its pods:{said}")));
        }
    }
    // A restarted container keeps its pod's address, which the NetworkPolicy engine now
    // knows, so it reads the API server's token keys only if the hub's default-deny
    // namespace lets it: killed, it must come back ready.
    restarted_container_is_ready_again(admin, &format!("hub-{HUB}")).await?;

    // Every step in a real pod, as the CronJobs would run it at night.
    let (region_a, region_b) = (format!("region-{NODE}"), format!("region-{OTHER_NODE}"));
    let (hub_ns, federated_ns) = (format!("hub-{HUB}"), format!("hub-{FEDERATED_HUB}"));
    run_to_end(admin, &region_b, "map-reference").await?;
    run_to_end(admin, &region_a, "export").await?;
    run_to_end(admin, &region_b, "export").await?;
    run_to_end(admin, &hub_ns, "standardise").await?;
    let publish = format!("publish-{PURPOSE}");
    let last = run_to_end(admin, &hub_ns, &publish).await?;
    run_to_end(admin, &federated_ns, &publish).await?;
    // The hub's status reports its jobs' last runs.
    eventually(
        "the publish run in the hub's status",
        Duration::from_secs(60),
        || async {
            let jobs = hubs.get(HUB).await?.status.unwrap_or_default().jobs;
            Ok(jobs
                .iter()
                .find(|j| j.cron_job == publish)
                .and_then(|j| j.last_run.clone())
                .filter(|r| r.job == last && r.result == "Succeeded")
                .map(|_| ()))
        },
    )
    .await?;

    // What the pods wrote, read by the test as the S3 server's root.
    let root = cluster.s3_root();
    let bucket = |name: String| vardhub::flow::store::Bucket::new(root.clone(), name);
    let a = vardhub::controller::storage::node_layout(&nodes.get(NODE).await?);
    let b = vardhub::controller::storage::node_layout(&nodes.get(OTHER_NODE).await?);
    let central = format!("vardhub-hub-{HUB}");
    let federated = format!("vardhub-hub-{FEDERATED_HUB}");

    // Conservation in the central hub: every row of the region's common model is in the
    // hub's standardised zone or its quarantine, counted in the stored objects.
    let (mapped, _) =
        vardhub::flow::run::read_omop(&bucket(a.standardised.clone()), "omop").await?;
    let hub_std = bucket(format!("{central}-standardised"));
    let (kept, _) = vardhub::flow::run::read_omop(&hub_std, &format!("25/{PURPOSE}")).await?;
    let (held, _) =
        vardhub::flow::run::read_omop(&hub_std, &format!("quarantine/25/{PURPOSE}")).await?;
    for (table, n) in mapped.counts() {
        assert_eq!(
            kept.counts()[table] + held.counts()[table],
            n,
            "rows of {table}: standardised + quarantined = mapped"
        );
    }
    assert!(kept.counts()["person"] > 100, "{:?}", kept.counts());

    // The reports' figures are the test's own, counted from each region's extract.
    for (hub, county, landing) in [(&central, "25", &a.landing), (&federated, "24", &b.landing)] {
        let source = vardhub::flow::run::read_source(&bucket(landing.clone())).await?;
        let expected = vardhub_tests::flow::expected_indicators(&[(county, source)]);
        let products = bucket(format!("{hub}-products"));
        let got: Vec<vardhub::flow::report::Indicators> =
            serde_json::from_slice(&products.get(&format!("{PURPOSE}/indicators.json")).await?)?;
        let got: std::collections::BTreeMap<String, [u64; 4]> = got
            .iter()
            .map(|i| {
                (
                    i.region.clone(),
                    [i.admissions, i.within_24h, i.within_36h, i.died_30d],
                )
            })
            .collect();
        assert_eq!(got, expected, "the report of {hub}");
        let page = String::from_utf8(products.get(&format!("{PURPOSE}/report.html")).await?)?;
        assert!(page.contains("<svg"), "the report has its charts");
    }

    // The individual-level product keeps only the columns it declares.
    let rows = bucket(format!("{central}-products"))
        .get(&format!("{PURPOSE}/hip_fracture.parquet"))
        .await?;
    let reader = parquet::file::reader::SerializedFileReader::new(bytes::Bytes::from(rows))?;
    let schema = parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .schema_descr_ptr();
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    assert_eq!(names, columns, "the product's columns");

    // No identity number in any object of either hub; the federated hub holds the product
    // and nothing else.
    let mut hub_buckets = vec![format!("{federated}-products")];
    for zone in ["landing", "standardised", "products"] {
        hub_buckets.push(format!("{central}-{zone}"));
    }
    for name in &hub_buckets {
        let (objects, found) = vardhub_tests::flow::scan_bucket(&root, name).await?;
        assert!(objects > 0, "{name} holds the run's objects");
        assert!(found.is_empty(), "identity numbers in the hub: {found:?}");
    }
    let held = bucket(format!("{federated}-products")).list("").await?;
    assert!(
        held.iter()
            .all(|(key, _)| key.starts_with(&format!("{PURPOSE}/"))),
        "the federated hub holds only its product: {held:?}"
    );
    // The product's Dataset: the operator fills its distributions with what the run wrote,
    // as the S3 server lists it, and links the report as a distribution of its own.
    let mut dataset = vardhub::render::load(&repo_root().join("environments/local/catalog"))?
        .datasets
        .into_iter()
        .find(|d| d.metadata.name.as_deref() == Some("hip-fracture-product"))
        .context("the local hip-fracture product's Dataset")?;
    dataset.metadata = kube::core::ObjectMeta {
        name: Some("flow-product".into()),
        namespace: Some(HUB_NS.into()),
        ..Default::default()
    };
    dataset.spec.location.data_hub = Some(vardhub::api::ResourceRef { name: HUB.into() });
    dataset.spec.derived_from.clear();
    let datasets: Api<vardhub::api::Dataset> = Api::namespaced(admin.clone(), HUB_NS);
    datasets
        .patch(
            "flow-product",
            &PatchParams::apply("vardhub-tests"),
            &Patch::Apply(&dataset),
        )
        .await?;
    let distributions = eventually(
        "the product's distributions with the run's figures",
        Duration::from_secs(60),
        || async {
            let d = datasets
                .get("flow-product")
                .await?
                .status
                .unwrap_or_default();
            Ok((d.distributions.len() == 2).then_some(d.distributions))
        },
    )
    .await?;
    let listed = bucket(format!("{central}-products"))
        .list(&format!("{PURPOSE}/"))
        .await?;
    let data = &distributions[0];
    assert_eq!(data.objects, Some(listed.len() as i64), "{data:?}");
    assert_eq!(
        data.byte_size,
        Some(listed.iter().map(|(_, size)| size).sum::<i64>()),
        "{data:?}"
    );
    let admissions: u64 = vardhub_tests::flow::expected_indicators(&[(
        "25",
        vardhub::flow::run::read_source(&bucket(a.landing.clone())).await?,
    )])
    .values()
    .map(|f| f[0])
    .sum();
    assert_eq!(data.rows, Some(admissions as i64), "one row per admission");
    assert_eq!(
        data.media_type.as_deref(),
        Some("application/vnd.apache.parquet")
    );
    assert!(data.modified.is_some(), "{data:?}");
    assert_eq!(
        distributions[1].access_url,
        format!("s3://{central}-products/{PURPOSE}/report.html")
    );
    datasets
        .delete("flow-product", &DeleteParams::default())
        .await?;

    // The federated region standardised its own export and kept its manifest.
    let manifest: Value = serde_json::from_slice(
        &bucket(b.standardised.clone())
            .get(&format!("export/{PURPOSE}/manifest.json"))
            .await?,
    )?;
    assert_eq!(manifest["region"], "24", "{manifest}");
    Ok(())
}
