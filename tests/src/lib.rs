//! The harness of vardhub's integration tests.
//!
//! The tests run against the local cluster that `environments/local/cluster/cluster.sh up`
//! starts: a real kube-apiserver with etcd, controller manager, scheduler and kwok nodes, a
//! real OpenBao and a real MinIO. `make test` brings it up and exports its settings; each
//! test is marked `#[ignore]` so that a plain `cargo test` runs only the unit tests.
//!
//! Setup that every test shares (CRDs, the chart) happens once per test binary, through the
//! same commands a platform engineer uses (`kubectl apply --server-side`, `helm upgrade
//! --install`).

pub mod flow;
pub mod rollout;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::config::{AuthInfo, KubeConfigOptions};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, Config};

/// Namespace the chart is installed into.
pub const OPERATOR_NAMESPACE: &str = "vardhub-system";
/// ServiceAccount of the operator, created by the chart.
pub const OPERATOR_SERVICE_ACCOUNT: &str = "vardhub-operator";

/// The S3 user the operators the tests start sign their requests as (see
/// [`LocalCluster::operator_s3_settings`]).
pub const OPERATOR_S3_USER: &str = "vardhub-operator-tests";

/// The running local cluster, as described by the environment `cluster.sh env` prints.
#[derive(Clone, Debug)]
pub struct LocalCluster {
    /// The run folder of the cluster (certificates, logs, audit log).
    pub dir: PathBuf,
    /// The API server's audit log.
    pub audit_log: PathBuf,
    /// OpenBao's address.
    pub vault_addr: String,
    /// OpenBao's root token (dev mode, generated for tests).
    pub vault_token: String,
    /// The S3 endpoint.
    pub s3_endpoint: String,
    /// The S3 region.
    pub s3_region: String,
    /// The S3 server's root access key (generated per run).
    pub s3_access_key_id: String,
    /// The S3 server's root secret key (generated per run).
    pub s3_secret_access_key: String,
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The local catalogue's source dataset of Stockholm (waiting times), as a document to copy:
/// the dataset the benchmarks and tests multiply or place elsewhere.
pub fn source_dataset_document() -> Result<serde_json::Value> {
    let catalog = vardhub::render::load(&repo_root().join("environments/local/catalog"))?;
    catalog
        .documents
        .into_iter()
        .find(|d| d["metadata"]["name"] == "waiting-times-stockholm-source")
        .context("the local catalogue's Stockholm source dataset")
}

/// An environment variable the test run sets, or an error naming it.
pub fn env(name: &str) -> Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set: run the integration tests with `make test`"))
}

impl LocalCluster {
    /// Reads the cluster's settings, sets up what all tests share (once), and prints the
    /// versions of the servers (once).
    pub fn get() -> &'static LocalCluster {
        static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
        CLUSTER.get_or_init(|| {
            // The in-process operators log to the test output when RUST_LOG asks for it.
            if std::env::var_os("RUST_LOG").is_some() {
                let _ = tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                    .with_test_writer()
                    .try_init();
            }
            let cluster = LocalCluster::from_env().expect("the local cluster's environment");
            cluster.print_versions();
            cluster
                .install()
                .expect("installing the CRDs and the chart");
            cluster
        })
    }

    fn from_env() -> Result<Self> {
        Ok(Self {
            dir: env("VARDHUB_CLUSTER_DIR")?.into(),
            audit_log: env("VARDHUB_AUDIT_LOG")?.into(),
            vault_addr: env("VAULT_ADDR")?,
            vault_token: env("VAULT_TOKEN")?,
            s3_endpoint: env("VARDHUB_S3_ENDPOINT")?,
            s3_region: env("AWS_REGION")?,
            s3_access_key_id: env("AWS_ACCESS_KEY_ID")?,
            s3_secret_access_key: env("AWS_SECRET_ACCESS_KEY")?,
        })
    }

    /// Prints the versions of the real servers the tests run against. Written straight to
    /// stderr so that the test runner's output capture does not swallow it.
    fn print_versions(&self) {
        let kube = kubectl(&["version", "-o", "json"])
            .ok()
            .and_then(|out| serde_json::from_str::<serde_json::Value>(&out).ok())
            .and_then(|v| v["serverVersion"]["gitVersion"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        let line = |name: &str| std::env::var(name).unwrap_or_else(|_| "unknown".into());
        let text = format!(
            "\n== vardhub integration tests run against real servers ==\n  kube-apiserver {kube}\n  etcd {}\n  OpenBao {}\n  S3: MinIO {}\n  kwok {}\n\n",
            line("VARDHUB_VERSION_ETCD"),
            line("VARDHUB_VERSION_OPENBAO"),
            line("VARDHUB_VERSION_MINIO"),
            line("VARDHUB_VERSION_KWOK"),
        );
        let _ = std::io::stderr().write_all(text.as_bytes());
    }

    /// Installs the CRDs and the chart, as a platform engineer would.
    fn install(&self) -> Result<()> {
        let root = repo_root();
        kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=vardhub-tests",
            "-f",
            &root.join("crds").to_string_lossy(),
        ])?;
        wait_for_crds_established(Duration::from_secs(60))?;
        run(Command::new("helm").args([
            "upgrade",
            "--install",
            "vardhub",
            &root.join("charts/vardhub-operator").to_string_lossy(),
            "--namespace",
            OPERATOR_NAMESPACE,
            "--create-namespace",
            "--wait",
            "--timeout",
            "180s",
        ]))?;
        Ok(())
    }

    /// Processor time (user and system) of each of the cluster's components that runs as a
    /// process of its own, in seconds, read from the kernel by the pid files its script keeps
    /// (`pid path`). For benchmarks that print where a workload's processor time went.
    pub fn component_cpu(&self) -> BTreeMap<String, f64> {
        /// The kernel counts processor time in ticks of 1/100 s on Linux.
        const TICKS: f64 = 100.0;
        let Ok(files) = std::fs::read_dir(self.dir.join("pids")) else {
            return BTreeMap::new();
        };
        files
            .flatten()
            .filter_map(|f| {
                let name = f
                    .file_name()
                    .to_string_lossy()
                    .strip_suffix(".pid")?
                    .to_string();
                // The file holds the pid, then the program's path.
                let file = std::fs::read_to_string(f.path()).ok()?;
                let pid = file.split_whitespace().next()?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // The fields after the command's closing parenthesis; utime and stime are the
                // 14th and 15th of the whole line.
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let ticks: u64 =
                    fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
                #[allow(clippy::cast_precision_loss)]
                Some((name, ticks as f64 / TICKS))
            })
            .collect()
    }

    /// A client with the administrator's rights (the cluster's kubeconfig).
    pub async fn admin_client(&self) -> Result<Client> {
        Ok(Client::try_from(Config::infer().await?)?)
    }

    /// A client that authenticates as the chart's operator ServiceAccount, so that what the
    /// operator does is checked against the chart's RBAC.
    pub async fn operator_client(&self) -> Result<Client> {
        self.client_as(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT)
            .await
    }

    /// A client that authenticates as a ServiceAccount, with exactly its RBAC rights.
    pub async fn client_as(&self, namespace: &str, service_account: &str) -> Result<Client> {
        let token = self
            .service_account_token(namespace, service_account, None)
            .await?;
        let mut config = Config::from_kubeconfig(&KubeConfigOptions::default()).await?;
        config.auth_info = AuthInfo {
            token: Some(token.into()),
            ..AuthInfo::default()
        };
        Ok(Client::try_from(config)?)
    }

    /// A fresh token of a ServiceAccount (TokenRequest API).
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audience: Option<&str>,
    ) -> Result<String> {
        let admin = self.admin_client().await?;
        let api: Api<ServiceAccount> = Api::namespaced(admin, namespace);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: audience.map(|a| vec![a.to_string()]),
                expiration_seconds: Some(3600),
                ..Default::default()
            }),
            ..Default::default()
        };
        let response = api
            .create_token_request(name, &Default::default(), &request)
            .await?;
        match response.status.and_then(|s| s.token) {
            Some(token) => Ok(token),
            None => bail!("no token issued for {namespace}/{name}"),
        }
    }

    /// Writes to the Kubernetes API by `username` recorded in the audit log after `after`
    /// (RFC 3339), leaving out leader-election Lease renewals; each as
    /// `verb resource/subresource namespace/name` (`name` alone for cluster objects).
    pub fn audited_writes(&self, username: &str, after: &str) -> Result<Vec<String>> {
        let text = std::fs::read_to_string(&self.audit_log)?;
        let after = after.parse::<k8s_openapi::jiff::Timestamp>()?;
        let mut writes = Vec::new();
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if event["stage"] != "ResponseComplete" || event["user"]["username"] != username {
                continue;
            }
            let verb = event["verb"].as_str().unwrap_or_default();
            if !["create", "update", "patch", "delete", "deletecollection"].contains(&verb) {
                continue;
            }
            if event["objectRef"]["resource"] == "leases" {
                continue;
            }
            let at = event["requestReceivedTimestamp"]
                .as_str()
                .unwrap_or_default();
            if at
                .parse::<k8s_openapi::jiff::Timestamp>()
                .is_ok_and(|t| t > after)
            {
                let name = event["objectRef"]["name"].as_str().unwrap_or_default();
                let at = match event["objectRef"]["namespace"].as_str() {
                    Some(ns) => format!("{ns}/{name}"),
                    None => name.to_string(),
                };
                writes.push(format!(
                    "{verb} {}/{} {at}",
                    event["objectRef"]["resource"].as_str().unwrap_or_default(),
                    event["objectRef"]["subresource"]
                        .as_str()
                        .unwrap_or_default(),
                ));
            }
        }
        Ok(writes)
    }
}

/// Waits until the API server serves every vardhub CRD. A CRD created a moment ago may
/// still have `status.conditions: null`, which `kubectl wait` reports as an error instead of
/// waiting; kube-runtime's condition watch waits through it. The shared setup runs from
/// inside a test's runtime, so the wait gets a runtime of its own on its own thread.
fn wait_for_crds_established(timeout: Duration) -> Result<()> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(async {
                    let client = Client::try_from(Config::infer().await?)?;
                    let api: Api<CustomResourceDefinition> = Api::all(client);
                    for crd in vardhub::api::crds() {
                        let name = crd.metadata.name.context("a CRD without a name")?;
                        let established =
                            await_condition(api.clone(), &name, conditions::is_crd_established());
                        tokio::time::timeout(timeout, established)
                            .await
                            .with_context(|| {
                                format!("CRD {name} not Established after {timeout:?}")
                            })?
                            .with_context(|| format!("watching CRD {name}"))?;
                    }
                    Ok(())
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the CRD wait panicked"))?
    })
}

/// Each component's processor time between two readings of
/// [`LocalCluster::component_cpu`].
pub fn cpu_since(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or_default()))
        .collect()
}

/// Runs `kubectl` against the local cluster and returns its standard output.
pub fn kubectl(args: &[&str]) -> Result<String> {
    run(Command::new("kubectl").args(args))
}

/// Runs a command; its standard output on success, its standard error in the error.
pub fn run(command: &mut Command) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Polls `check` every 250 ms until it returns `Some`, or fails after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if tokio::time::Instant::now() > deadline {
            match last_error {
                Some(e) => bail!("timed out waiting for {what}; last error: {e:#}"),
                None => bail!("timed out waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates a Job from a CronJob's template, as `kubectl create job --from=cronjob/...` does.
pub async fn run_now(admin: &Client, ns: &str, cron_job: &str) -> Result<String> {
    let cj = Api::<k8s_openapi::api::batch::v1::CronJob>::namespaced(admin.clone(), ns)
        .get(cron_job)
        .await?;
    let template = cj.spec.job_template;
    let name = format!(
        "{cron_job}-{}",
        k8s_openapi::jiff::Timestamp::now().as_second()
    );
    let mut meta = template.metadata.unwrap_or_default();
    meta.name = Some(name.clone());
    meta.namespace = Some(ns.into());
    let job = k8s_openapi::api::batch::v1::Job {
        metadata: meta,
        spec: template.spec,
        ..Default::default()
    };
    Api::<k8s_openapi::api::batch::v1::Job>::namespaced(admin.clone(), ns)
        .create(&kube::api::PostParams::default(), &job)
        .await?;
    Ok(name)
}

/// The placement that puts a pod on the real node (it is tainted; kwok nodes are not).
pub fn on_real_node() -> Result<serde_json::Value> {
    Ok(serde_json::json!({
        "nodeSelector": {"kubernetes.io/hostname": env("VARDHUB_NODE_NAME")?},
        "tolerations": [{"key": env("VARDHUB_NODE_TAINT")?, "operator": "Exists", "effect": "NoSchedule"}],
    }))
}

/// Waits (up to 240 s) until the Deployment `name` in `ns` has rolled out, and returns its
/// running pod's name and IP. On a timeout the error carries what the pods said.
pub async fn rolled_out_pod(admin: &Client, ns: &str, name: &str) -> Result<(String, String)> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::ListParams;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let of_it = ListParams::default().labels(&format!("app.kubernetes.io/name={name}"));
    let rolled_out = eventually(
        &format!("{name}'s pod to be ready"),
        Duration::from_secs(240),
        || async {
            Ok(deployments
                .get_opt(name)
                .await?
                .filter(vardhub::controller::workload::rolled_out)
                .map(|_| ()))
        },
    )
    .await;
    if let Err(e) = rolled_out {
        let said = what_pods_said(admin, ns, &format!("app.kubernetes.io/name={name}")).await;
        return Err(e.context(format!("{name}'s pods said:{said}")));
    }
    let pod = pods
        .list(&of_it)
        .await?
        .items
        .into_iter()
        .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .with_context(|| format!("{name}'s running pod"))?;
    let pod_name = pod.metadata.name.clone().context("pod name")?;
    let ip = pod.status.and_then(|s| s.pod_ip).context("the pod's IP")?;
    Ok((pod_name, ip))
}

/// What the pods matching `selector` in `ns` and the namespace's events say: each pod's phase,
/// conditions, container states and log, then the events. For a test that timed out waiting.
pub async fn what_pods_said(admin: &Client, ns: &str, selector: &str) -> String {
    use k8s_openapi::api::core::v1::{Event, Pod};
    use kube::api::{ListParams, LogParams};
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    let mut said = String::new();
    match pods.list(&ListParams::default().labels(selector)).await {
        Ok(list) => {
            for p in list.items {
                let pod = p.metadata.name.clone().unwrap_or_default();
                let logs = pods
                    .logs(&pod, &LogParams::default())
                    .await
                    .unwrap_or_else(|e| format!("(no log: {e})"));
                let status = p.status.unwrap_or_default();
                said.push_str(&format!(
                    "\n{pod} on {:?}: phase {:?}, conditions {:?}, containers {:?}\n{logs}",
                    p.spec.and_then(|s| s.node_name),
                    status.phase,
                    status.conditions,
                    status.container_statuses
                ));
            }
        }
        Err(e) => said.push_str(&format!("\n(could not list the pods: {e})")),
    }
    if let Ok(events) = Api::<Event>::namespaced(admin.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        said.push_str("\nevents:");
        for e in events.items {
            said.push_str(&format!(
                "\n  {:?} {:?} {:?}: {:?}",
                e.involved_object.name, e.type_, e.reason, e.message
            ));
        }
    }
    said
}

/// The best of three times, in seconds, to read `key` of `bucket` straight from the S3 server
/// through a presigned URL: the floor a way of exposure is measured against.
pub async fn presigned_read_seconds(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    length: usize,
) -> Result<f64> {
    let presigned = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(aws_sdk_s3::presigning::PresigningConfig::expires_in(
            Duration::from_secs(300),
        )?)
        .await?;
    let http = reqwest::Client::new();
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let body = http
            .get(presigned.uri())
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        best = best.min(started.elapsed().as_secs_f64());
        if body.len() != length {
            bail!("read {} bytes of {key}, not {length}", body.len());
        }
    }
    Ok(best)
}

/// The exposure tests' hub: two products, `exposure` as given, its pods on the real node, and
/// its data deleted with it. Applied, and returned once Ready.
pub async fn exposed_hub(
    admin: &Client,
    name: &str,
    exposure: serde_json::Value,
) -> Result<vardhub::api::DataHub> {
    let hubs: Api<vardhub::api::DataHub> = Api::all(admin.clone());
    let hub: vardhub::api::DataHub = serde_json::from_value(serde_json::json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "DataHub",
        "metadata": {"name": name},
        "spec": {
            "zones": {"purposeSpecific": [
                {"name": "waiting-times", "purpose": "waiting-times"},
                {"name": "hip-fracture", "purpose": "hip-fracture"},
            ]},
            "exposure": exposure,
            "placement": on_real_node()?,
            "deletionPolicy": "Delete", "confirmDeletion": true, "purgeObjects": true,
        },
    }))?;
    hubs.patch(
        name,
        &kube::api::PatchParams::apply("vardhub-tests"),
        &kube::api::Patch::Apply(&hub),
    )
    .await?;
    eventually("the hub to be Ready", Duration::from_secs(120), || async {
        Ok(hubs.get(name).await?.status.as_ref().is_some_and(|s| {
            vardhub::controller::conditions::is_true(
                &s.common.conditions,
                vardhub::controller::conditions::types::READY,
            )
        }))
        .map(|ready| ready.then_some(()))
    })
    .await?;
    Ok(hubs.get(name).await?)
}

/// A permit of `hub` (in `hub-<hub>`) for one product, valid from a minute ago for an hour,
/// to `holder` (the `spec.holder` object).
pub fn data_permit(
    hub: &str,
    name: &str,
    product: &str,
    holder: serde_json::Value,
) -> Result<vardhub::api::DataPermit> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let at = |s: i64| {
        (now + k8s_openapi::jiff::SignedDuration::from_secs(s))
            .round(k8s_openapi::jiff::Unit::Second)
            .map(|t| t.to_string())
    };
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "vardhub.io/v1alpha1", "kind": "DataPermit",
        "metadata": {"name": name, "namespace": format!("hub-{hub}")},
        "spec": {
            "dataHub": {"name": hub},
            "products": [product],
            "purpose": "Follow-up of the care guarantee",
            "holder": holder,
            "issuedBy": {"name": "The access body", "uri": "https://example.org/hdab", "email": "hdab@example.org"},
            "validFrom": at(-60)?, "validUntil": at(3600)?,
        },
    }))?)
}

/// Deletes `permits` and the hub, and waits (up to 180 s) until the hub is gone.
pub async fn remove_exposed_hub(admin: &Client, hub: &str, permits: &[&str]) -> Result<()> {
    let hubs: Api<vardhub::api::DataHub> = Api::all(admin.clone());
    let in_hub: Api<vardhub::api::DataPermit> =
        Api::namespaced(admin.clone(), &format!("hub-{hub}"));
    for name in permits {
        let _ = in_hub.delete(name, &Default::default()).await;
    }
    if hubs.get_opt(hub).await?.is_some() {
        hubs.delete(hub, &Default::default()).await?;
    }
    eventually("the hub to be gone", Duration::from_secs(180), || async {
        Ok(hubs.get_opt(hub).await?.is_none().then_some(()))
    })
    .await
}

/// Waits (up to 60 s) until permit `name` of `hub` counts `served` accesses through the API
/// (or SFTP, with `sftp`), and returns its counts.
pub async fn counted_accesses(
    admin: &Client,
    hub: &str,
    name: &str,
    sftp: bool,
    served: i64,
) -> Result<vardhub::api::PermitAccesses> {
    let permits: Api<vardhub::api::DataPermit> =
        Api::namespaced(admin.clone(), &format!("hub-{hub}"));
    eventually(
        &format!("{name} to count {served} accesses"),
        Duration::from_secs(60),
        || async {
            let accesses = permits.get(name).await?.status.and_then(|s| s.accesses);
            Ok(accesses
                .and_then(|a| if sftp { a.sftp } else { a.api })
                .filter(|a| a.served == served))
        },
    )
    .await
}

/// A 4 KiB object: every byte value, sixteen times.
pub fn small_object() -> Vec<u8> {
    (0..4096u32).map(|i| (i % 256) as u8).collect()
}

/// A 32 MiB object of spread byte values, for throughput figures.
pub fn large_object() -> Vec<u8> {
    (0..32u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

/// Runs the local cluster's script (`freeze`, `thaw`, `kill-container`, ...).
pub fn cluster_sh(args: &[&str]) -> Result<String> {
    run(Command::new("bash")
        .arg(repo_root().join("environments/local/cluster/cluster.sh"))
        .args(args))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Held by every test that runs operators: they share the operator's ServiceAccount, so two
/// at once would blur which writes the audit log attributes to whom.
pub static OPERATOR_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// An operator running in this test process as the chart's ServiceAccount, so that what it
/// does is checked against the chart's RBAC.
pub struct RunningOperator {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<vardhub::controller::manager::Stopped>>,
    /// Where its `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_addr: std::net::SocketAddr,
}

impl RunningOperator {
    /// Starts an operator on the usual Lease, connected to OpenBao.
    pub async fn start(cluster: &LocalCluster, identity: &str) -> Result<Self> {
        Self::start_tuned(cluster, identity, |_| {}).await
    }

    /// Starts an operator on the usual Lease whose workloads run the project's image built
    /// for this run (`VARDHUB_IMAGE`, imported into the real node), so that they really run.
    pub async fn start_with_image(cluster: &LocalCluster, identity: &str) -> Result<Self> {
        let image = env("VARDHUB_IMAGE")?;
        Self::start_tuned(cluster, identity, |o| o.image = Some(image)).await
    }

    /// Starts an operator on the given Lease, with or without OpenBao and S3.
    pub async fn start_with(
        cluster: &LocalCluster,
        identity: &str,
        lease: &str,
        lease_duration_seconds: u64,
        openbao: bool,
    ) -> Result<Self> {
        Self::start_tuned(cluster, identity, |o| {
            o.lease_name = lease.into();
            o.lease_duration_seconds = lease_duration_seconds;
            if !openbao {
                o.openbao = None;
                o.s3 = None;
            }
        })
        .await
    }

    /// Starts an operator with the usual settings (the usual Lease for 15 s, OpenBao and S3,
    /// the default deadline and image) as `tune` changes them.
    pub async fn start_tuned(
        cluster: &LocalCluster,
        identity: &str,
        tune: impl FnOnce(&mut vardhub::controller::manager::Options),
    ) -> Result<Self> {
        let client = cluster.operator_client().await?;
        let token = cluster.operator_openbao_token().await?;
        let metrics_addr: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let mut options = vardhub::controller::manager::Options {
            metrics_addr,
            lease_namespace: OPERATOR_NAMESPACE.into(),
            lease_name: "vardhub-operator".into(),
            identity: identity.into(),
            lease_duration_seconds: 15,
            reconcile_deadline: vardhub::controller::driver::DEADLINE,
            max_concurrent_reconciles: vardhub::controller::manager::MAX_CONCURRENT_RECONCILES,
            image: None,
            openbao: Some(vardhub::controller::manager::OpenBaoSettings {
                address: cluster.vault_addr.clone(),
                auth: vardhub::adapters::openbao::Auth::Token(token),
            }),
            s3: Some(cluster.operator_s3_settings().await?),
        };
        tune(&mut options);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(vardhub::controller::manager::run(
            client,
            options,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Self {
            stop,
            task,
            metrics_addr,
        })
    }

    /// The body of one of its endpoints (`/metrics`, `/readyz`, `/healthz`).
    pub async fn get(&self, path: &str) -> Result<String> {
        Ok(reqwest::get(format!("http://{}{path}", self.metrics_addr))
            .await?
            .text()
            .await?)
    }

    /// Its metrics in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String> {
        self.get("/metrics").await
    }

    /// Waits until it has reconciled to the end at least as many objects of each controller
    /// as `objects` names (`("regionalnode", 1)`) and no reconcile runs, and returns its
    /// metrics from that moment: every write of a first pass over those objects is counted
    /// in them. A wait on the operator's own progress, not on a quiet period.
    pub async fn settled(&self, objects: &[(&str, usize)], within: Duration) -> Result<String> {
        eventually(
            "the operator to reconcile every object once and go idle",
            within,
            || async {
                let text = self.metrics().await?;
                #[allow(clippy::cast_precision_loss)]
                let done = objects.iter().all(|(controller, n)| {
                    metric_with(
                        &text,
                        "vardhub_objects_reconciled",
                        &[("controller", controller)],
                    ) >= *n as f64
                });
                let running = metric_with(&text, "vardhub_reconciles_in_flight", &[]);
                Ok((done && running == 0.0).then_some(text))
            },
        )
        .await
    }

    /// Stops it and reports why it stopped.
    pub async fn stop(self) -> Result<vardhub::controller::manager::Stopped> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// The sum of the samples of every metric line starting with `prefix`.
pub fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The sum of the series of metric `name` in `text` whose labels include every `labels`
/// pair (all of its series for none).
pub fn metric_with(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let open = format!("{name}{{");
    text.lines()
        .filter(|l| l.starts_with(&open))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        // An empty sum is -0.
        + 0.0
}

/// The values label `label` takes in the series of metric `name` in `text`, sorted.
pub fn label_values(text: &str, name: &str, label: &str) -> std::collections::BTreeSet<String> {
    let open = format!("{name}{{");
    let key = format!("{label}=\"");
    text.lines()
        .filter(|l| l.starts_with(&open))
        .filter_map(|l| {
            let rest = &l[l.find(&key)? + key.len()..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .collect()
}

impl LocalCluster {
    /// Creates (or keeps) a namespace and a ServiceAccount in it, as the tests' own field
    /// manager.
    pub async fn ensure_service_account(&self, namespace: &str, name: &str) -> Result<()> {
        use kube::api::{Patch, PatchParams};
        let admin = self.admin_client().await?;
        let apply = PatchParams::apply("vardhub-tests");
        let ns: k8s_openapi::api::core::v1::Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?;
        Api::<k8s_openapi::api::core::v1::Namespace>::all(admin.clone())
            .patch(namespace, &apply, &Patch::Apply(&ns))
            .await?;
        let sa: ServiceAccount = serde_json::from_value(
            serde_json::json!({"metadata": {"name": name, "namespace": namespace}}),
        )?;
        Api::<ServiceAccount>::namespaced(admin, namespace)
            .patch(name, &apply, &Patch::Apply(&sa))
            .await?;
        Ok(())
    }
}

impl LocalCluster {
    /// Who may call a pseudonymisation service run in the test process: tokens for
    /// `audience`, verified against the local cluster's published keys, and `grants`
    /// (`DOMAIN=NAMESPACE[/SERVICEACCOUNT]`).
    pub async fn pseudonymisation_access(
        &self,
        audience: &str,
        grants: &[String],
    ) -> Result<vardhub::pseudonymisation::service::Access> {
        use vardhub::pseudonymisation::access::{Grants, Verifier};
        let verifier = Verifier::discover(self.admin_client().await?, audience).await?;
        Ok(vardhub::pseudonymisation::service::Access {
            verifier: std::sync::Arc::new(verifier),
            grants: Grants::parse(grants).map_err(anyhow::Error::msg)?,
            // Tests that check the audit trail set a writer of their own.
            audit: vardhub::pseudonymisation::audit::AuditLog::to(std::io::sink()),
            // Tests of the throttle set one of their own.
            throttle: None,
        })
    }

    /// A verifier of tokens for `audience` that also has each token confirmed with the API
    /// server through OpenBao, as the operator's deployment of the service does: the role
    /// `role` (made here as the operator makes it) admits tokens of `namespaces`.
    pub async fn confirming_verifier(
        &self,
        audience: &str,
        role: &str,
        namespaces: &[&str],
    ) -> Result<vardhub::pseudonymisation::access::Verifier> {
        use vardhub::pseudonymisation::access::{Liveness, Verifier};
        let bound = vardhub::adapters::openbao::KubernetesRole {
            service_accounts: vec!["*".into()],
            namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
            policies: Vec::new(),
            ttl_seconds: 60,
            audience: Some(audience.into()),
            batch_tokens: true,
        };
        self.openbao_admin()?
            .ensure_kubernetes_role("kubernetes", role, &bound)
            .await?;
        let liveness =
            Liveness::new(&self.vault_addr, "kubernetes", role).map_err(anyhow::Error::msg)?;
        Ok(Verifier::discover(self.admin_client().await?, audience)
            .await?
            .confirming(liveness))
    }

    /// An HTTP client that presents a token of the ServiceAccount `namespace/name` (created
    /// if missing) for `audience` with every request, as a pod's projected token would be.
    pub async fn caller(
        &self,
        namespace: &str,
        name: &str,
        audience: &str,
    ) -> Result<reqwest::Client> {
        self.ensure_service_account(namespace, name).await?;
        let token = self
            .service_account_token(namespace, name, Some(audience))
            .await?;
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
        value.set_sensitive(true);
        let headers =
            reqwest::header::HeaderMap::from_iter([(reqwest::header::AUTHORIZATION, value)]);
        Ok(reqwest::Client::builder()
            .default_headers(headers)
            .build()?)
    }
}

impl LocalCluster {
    /// A client of OpenBao with the dev server's root token.
    pub fn openbao_root(&self) -> Result<vaultrs::client::VaultClient> {
        let settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address(&self.vault_addr)
            .token(&self.vault_token)
            .build()?;
        Ok(vaultrs::client::VaultClient::new(settings)?)
    }

    /// A client of OpenBao with the root token, in an OpenBao namespace (`None`: the root).
    pub fn openbao_root_in(&self, namespace: Option<&str>) -> Result<vaultrs::client::VaultClient> {
        let settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address(&self.vault_addr)
            .token(&self.vault_token)
            .namespace(namespace.map(str::to_owned))
            .build()?;
        Ok(vaultrs::client::VaultClient::new(settings)?)
    }

    /// The S3 server's root settings, as the operator gets them.
    pub fn s3_settings(&self) -> vardhub::adapters::s3::Settings {
        vardhub::adapters::s3::Settings {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            sts_endpoint: None,
            role_arn: vardhub::adapters::s3::DEFAULT_ROLE_ARN.into(),
        }
    }

    /// An S3 client with the root credentials.
    pub fn s3_root(&self) -> aws_sdk_s3::Client {
        vardhub::adapters::s3::Storage::new(self.s3_settings())
            .client()
            .clone()
    }

    /// An S3 client with credentials the operator issued (read back from OpenBao).
    pub fn s3_with(&self, c: &vardhub::adapters::s3::IssuedCredentials) -> aws_sdk_s3::Client {
        c.client()
    }

    /// An OpenBao token holding only the policy the chart ships
    /// (`charts/vardhub-operator/openbao-policy.hcl`, written as `vardhub-operator`), as a
    /// chart-installed operator holds after its Kubernetes login: the operators the tests
    /// start use it, so every test also proves that the policy allows what the operator does.
    /// One token per test process, valid for eight hours.
    pub async fn operator_openbao_token(&self) -> Result<String> {
        static TOKEN: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        TOKEN
            .get_or_try_init(|| async {
                let policy = std::fs::read_to_string(
                    repo_root().join("charts/vardhub-operator/openbao-policy.hcl"),
                )?;
                let bao = |method: reqwest::Method, path: &str| {
                    reqwest::Client::new()
                        .request(method, format!("{}/v1/{path}", self.vault_addr))
                        .header("X-Vault-Token", &self.vault_token)
                };
                bao(reqwest::Method::PUT, "sys/policies/acl/vardhub-operator")
                    .json(&serde_json::json!({ "policy": policy }))
                    .send()
                    .await?
                    .error_for_status()?;
                let created: serde_json::Value =
                    bao(reqwest::Method::POST, "auth/token/create-orphan")
                        .json(&serde_json::json!({
                            "policies": ["vardhub-operator"],
                            "ttl": "8h",
                            "display_name": "vardhub-operator-tests",
                        }))
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                created["auth"]["client_token"]
                    .as_str()
                    .map(str::to_owned)
                    .context("OpenBao made no token")
            })
            .await
            .cloned()
    }

    /// `mc` on the S3 server as its root (the alias `witness`), its configuration in a
    /// folder of its own; the root keys reach it through its environment, never its
    /// command line.
    fn mc(&self) -> Result<Command> {
        let (scheme, host) = self
            .s3_endpoint
            .split_once("://")
            .context("the S3 endpoint has no scheme")?;
        let mut mc = Command::new(env("VARDHUB_MC")?);
        mc.env(
            "MC_HOST_witness",
            format!(
                "{scheme}://{}:{}@{host}",
                self.s3_access_key_id, self.s3_secret_access_key
            ),
        )
        .env("MC_CONFIG_DIR", std::env::temp_dir().join("vardhub-mc"));
        Ok(mc)
    }

    /// The S3 identity the operators the tests start hold: the MinIO user
    /// [`OPERATOR_S3_USER`] with only the chart's policy
    /// (`charts/vardhub-operator/s3-policy.json`, the buckets named `vardhub-*`), made as
    /// `environments/local/install-operator.sh` makes it for a chart install. So every test
    /// also proves that the policy allows what the operator does on S3, and the S3 server's
    /// trace tells the operator's requests from the tests' own (root) ones. Its secret is
    /// derived from the root secret, so every test process of one cluster run makes the same
    /// user with the same key.
    pub async fn operator_s3_settings(&self) -> Result<vardhub::adapters::s3::Settings> {
        static SECRET: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        let secret = SECRET
            .get_or_try_init(|| async {
                use sha2::Digest as _;
                let secret = format!(
                    "{:x}",
                    sha2::Sha256::digest(format!(
                        "{OPERATOR_S3_USER}:{}",
                        self.s3_secret_access_key
                    ))
                );
                let policy = repo_root().join("charts/vardhub-operator/s3-policy.json");
                let (add, create, attach) = (self.mc()?, self.mc()?, self.mc()?);
                let key = secret.clone();
                tokio::task::spawn_blocking(move || -> Result<()> {
                    let (mut add, mut create, mut attach) = (add, create, attach);
                    run(add.args(["admin", "user", "add", "witness", OPERATOR_S3_USER, &key]))?;
                    run(create
                        .args(["admin", "policy", "create", "witness", "vardhub-operator"])
                        .arg(&policy))?;
                    let attached = attach.args([
                        "admin",
                        "policy",
                        "attach",
                        "witness",
                        "vardhub-operator",
                        "--user",
                        OPERATOR_S3_USER,
                    ]);
                    match run(attached) {
                        Err(e) if !e.to_string().contains("already") => Err(e),
                        _ => Ok(()),
                    }
                })
                .await??;
                anyhow::Ok(secret)
            })
            .await?;
        Ok(vardhub::adapters::s3::Settings {
            access_key_id: OPERATOR_S3_USER.into(),
            secret_access_key: secret.clone(),
            ..self.s3_settings()
        })
    }

    /// The operator's own OpenBao administration adapter, with the root token.
    pub fn openbao_admin(&self) -> Result<vardhub::adapters::openbao::Admin> {
        Ok(vardhub::adapters::openbao::Admin::new(
            &self.vault_addr,
            &self.vault_token,
        )?)
    }
}

/// One S3 call as the S3 server's own trace saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Call {
    /// The S3 API, for example `s3.PutObject`.
    pub api: String,
    /// The HTTP status it answered.
    pub status: u64,
    /// The access key that signed it, when it was signed.
    pub access_key: Option<String>,
    /// The request path (`/bucket/key`).
    pub path: String,
}

impl S3Call {
    /// Whether the call changes anything on the server.
    pub fn writes(&self) -> bool {
        ["Put", "Delete", "Post", "Copy", "Multipart", "Restore"]
            .iter()
            .any(|w| self.api.contains(w))
    }
}

/// The S3 server's own trace of S3 calls (`mc admin trace`), an independent witness of what
/// the operator sends. Only each call's API, status and signing access key are kept, in
/// memory: never its headers, so no session token is written anywhere.
pub struct S3Trace {
    child: std::process::Child,
    calls: std::sync::Arc<std::sync::Mutex<Vec<S3Call>>>,
    reader: std::thread::JoinHandle<()>,
    /// The calls before this index were seen before the trace was proven live.
    from: usize,
}

/// The bucket name the trace is proven live with; it never exists.
const TRACE_MARKER: &str = "vardhub-trace-marker";

impl LocalCluster {
    /// Starts tracing the S3 server's S3 calls; returns once the trace has seen a call of
    /// its own (a HEAD of a bucket that does not exist), so nothing after it is missed.
    pub async fn s3_trace(&self) -> Result<S3Trace> {
        let mut child = self
            .mc()?
            .args(["admin", "trace", "-v", "--json", "--call", "s3", "witness"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting mc admin trace")?;
        let stdout = child.stdout.take().context("the trace's output")?;
        let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = calls.clone();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let Some(api) = v["api"].as_str() else {
                    continue;
                };
                let path = field_anywhere(&v, "path")
                    .and_then(|p| p.as_str())
                    .unwrap_or_default()
                    .to_string();
                let access_key = field_anywhere(&v, "authorization")
                    .and_then(|c| c.as_str())
                    .and_then(|c| {
                        let rest = c.split_once("Credential=")?.1;
                        Some(rest.split('/').next()?.to_string())
                    });
                let call = S3Call {
                    api: api.to_string(),
                    status: field_anywhere(&v, "statusCode")
                        .and_then(|c| c.as_u64())
                        .unwrap_or(0),
                    access_key,
                    path,
                };
                if let Ok(mut held) = sink.lock() {
                    held.push(call);
                }
            }
        });
        let mut trace = S3Trace {
            child,
            calls,
            reader,
            from: 0,
        };
        let probe = self.s3_root();
        eventually(
            "the S3 trace to be live",
            Duration::from_secs(30),
            || async {
                let _ = probe.head_bucket().bucket(TRACE_MARKER).send().await;
                Ok(trace
                    .calls()
                    .iter()
                    .any(|c| c.api == "s3.HeadBucket")
                    .then_some(()))
            },
        )
        .await?;
        trace.from = trace.calls().len();
        Ok(trace)
    }
}

/// A field of a trace record (a header such as `Authorization`, `path`, `statusCode`),
/// wherever the trace nests it; the name is compared without case. A header given as a list
/// is its first value.
fn field_anywhere<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    match v {
        serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.eq_ignore_ascii_case(name) {
                Some(v.get(0).unwrap_or(v))
            } else {
                field_anywhere(v, name)
            }
        }),
        serde_json::Value::Array(items) => items.iter().find_map(|i| field_anywhere(i, name)),
        _ => None,
    }
}

impl S3Trace {
    fn calls(&self) -> Vec<S3Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Stops the trace; returns every call it saw after it was proven live, its own probes
    /// left out.
    pub fn stop(mut self) -> Vec<S3Call> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.reader.join();
        let mut calls = self.calls.lock().map(|c| c.clone()).unwrap_or_default();
        let mut after = calls.split_off(self.from.min(calls.len()));
        // A probe of the marker may reach the trace after it was proven live.
        after.retain(|c| !c.path.contains(TRACE_MARKER));
        after
    }
}

/// The HTTP status OpenBao answered a failed call with; `None` when no answer came (a
/// network failure is not a refusal).
pub fn openbao_status(e: &vaultrs::error::ClientError) -> Option<u16> {
    match e {
        vaultrs::error::ClientError::APIError { code, .. } => Some(*code),
        _ => None,
    }
}

/// [`openbao_status`] of a call made through the operator's OpenBao adapter.
pub fn adapter_status(e: &vardhub::adapters::openbao::Error) -> Option<u16> {
    match e {
        vardhub::adapters::openbao::Error::Request(e) => openbao_status(e),
        _ => None,
    }
}

/// OpenBao's own audit device: where its log ends now, to read what comes after.
pub fn openbao_audit_mark() -> Result<u64> {
    Ok(std::fs::metadata(env("VARDHUB_OPENBAO_AUDIT_LOG")?)?.len())
}

/// The requests OpenBao's audit device recorded after `mark`, as `(operation, path)`; the
/// path carries its namespace (`hub-x/transit/keys/hub`).
pub fn openbao_requests_since(mark: u64) -> Result<Vec<(String, String)>> {
    let bytes = std::fs::read(env("VARDHUB_OPENBAO_AUDIT_LOG")?)?;
    let text = String::from_utf8_lossy(&bytes[usize::try_from(mark)?.min(bytes.len())..]);
    let mut out = Vec::new();
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if entry["type"] != "request" {
            continue;
        }
        let request = &entry["request"];
        let namespace = request["namespace"]["path"].as_str().unwrap_or_default();
        out.push((
            request["operation"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            format!(
                "{namespace}{}",
                request["path"].as_str().unwrap_or_default()
            ),
        ));
    }
    Ok(out)
}

/// Bucket creation claims that record nothing, for a test that makes buckets through
/// [`vardhub::adapters::s3::Storage::ensure_bucket`] directly and never resumes a creation
/// that was cut off (an untagged bucket is then always refused).
pub struct Unclaimed;

impl vardhub::adapters::s3::CreationClaims for Unclaimed {
    async fn claim(&self, _bucket: &str, _owner: &str) -> Result<(), vardhub::adapters::s3::Error> {
        Ok(())
    }

    async fn claimant(
        &self,
        _bucket: &str,
    ) -> Result<Option<String>, vardhub::adapters::s3::Error> {
        Ok(None)
    }
}
