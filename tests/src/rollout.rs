//! A whole environment rolled out by the operator running as its own process, as it runs in a
//! pod: the image's release binary, which a test starts, kills with SIGKILL or stops with
//! SIGTERM. The chaos test and the scale benchmark share it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{ApiCapabilities, ApiResource, Scope, pinned_kind};
use kube::{Api, Client};
use serde_json::json;
use vardhub::controller::apply::{DesiredObject, HASH_ANNOTATION, MANAGED_BY, contains};

use crate::{
    LocalCluster, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, eventually, free_port, repo_root,
};

/// The field manager of what the tests apply.
const FIELD_MANAGER: &str = "vardhub-tests";

/// The reference of the image `make image` built last (`VARDHUB_IMAGE` when `make test` set
/// it).
pub fn image_reference() -> Result<String> {
    if let Ok(image) = std::env::var("VARDHUB_IMAGE") {
        return Ok(image);
    }
    let path = repo_root().join("target/image/reference");
    Ok(std::fs::read_to_string(&path)
        .with_context(|| format!("no image at {}: run `make image`", path.display()))?
        .trim()
        .to_string())
}

/// The operator's release binary, as the image holds it (`make image` builds it first), or
/// the program `VARDHUB_OPERATOR_BINARY` names (a build for profiling, or a wrapper that runs
/// one under a heap profiler).
pub fn operator_binary() -> Result<PathBuf> {
    let path = match std::env::var_os("VARDHUB_OPERATOR_BINARY") {
        Some(path) => PathBuf::from(path),
        None => repo_root().join("target/x86_64-unknown-linux-musl/release/vardhub"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "no operator binary at {}: run `make image` (`make test` does)",
            path.display()
        )
    }
}

impl LocalCluster {
    /// A kubeconfig file for the chart's operator ServiceAccount (a token valid for an hour),
    /// so that an operator run as a process has exactly the chart's rights.
    pub async fn operator_kubeconfig(&self) -> Result<PathBuf> {
        let token = self
            .service_account_token(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, None)
            .await?;
        let mut config = kube::config::Kubeconfig::read()?;
        for named in &mut config.auth_infos {
            named.auth_info = Some(kube::config::AuthInfo {
                token: Some(token.clone().into()),
                ..Default::default()
            });
        }
        let path = self.dir.join("operator-process.kubeconfig");
        // JSON is YAML, and every kubeconfig reader takes it.
        std::fs::write(&path, serde_json::to_vec(&config)?)?;
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&path)?.permissions(),
            0o600,
        );
        Ok(path)
    }
}

/// Resident memory of a process, from the kernel's own accounting.
#[derive(Clone, Copy, Debug)]
pub struct Memory {
    /// Resident now, in KiB (`VmRSS`).
    pub resident_kib: u64,
    /// The most it has been resident, in KiB (`VmHWM`).
    pub peak_kib: u64,
}

/// The operator as a process of its own.
pub struct OperatorProcess {
    child: tokio::process::Child,
    pid: u32,
    /// Where its `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_addr: SocketAddr,
}

/// When a resource became Ready, and when it was created (both to the second, as the API
/// server keeps them).
#[derive(Clone, Copy, Debug)]
pub struct ReadyTime {
    /// The `Ready` condition's last transition to true.
    pub ready: chrono::DateTime<chrono::Utc>,
    /// The object's creation.
    pub created: chrono::DateTime<chrono::Utc>,
}

impl OperatorProcess {
    /// Starts `vardhub operator` as the chart's ServiceAccount (`kubeconfig`), on the chart's
    /// Lease with `identity`, with OpenBao (holding only the chart's policy, see
    /// [`LocalCluster::operator_openbao_token`]) and S3, and `args` after that; its log (JSON)
    /// is appended to `log`.
    pub async fn spawn(
        cluster: &LocalCluster,
        kubeconfig: &Path,
        identity: &str,
        args: &[&str],
        log: &Path,
    ) -> Result<Self> {
        let token = cluster.operator_openbao_token().await?;
        let s3 = cluster.operator_s3_settings().await?;
        let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let child = tokio::process::Command::new(operator_binary()?)
            .args(["--log-format", "json", "operator"])
            .args(["--metrics-addr", &metrics_addr.to_string()])
            .args(["--leader-election-namespace", OPERATOR_NAMESPACE])
            .args(["--leader-election-identity", identity])
            .args(["--openbao-addr", &cluster.vault_addr])
            .args(["--s3-endpoint", &cluster.s3_endpoint])
            .args(["--s3-region", &cluster.s3_region])
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("VAULT_TOKEN", &token)
            .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &s3.secret_access_key)
            .env("RUST_LOG", "info")
            // Only what the arguments say: nothing of the test run's own environment.
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .env_remove("VARDHUB_IMAGE")
            .env_remove("VARDHUB_OPENBAO_ROLE")
            .env_remove("VARDHUB_STS_ENDPOINT")
            .env_remove("VARDHUB_METRICS_ADDR")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .context("starting the operator")?;
        let pid = child.id().context("the operator's process id")?;
        Ok(Self {
            child,
            pid,
            metrics_addr,
        })
    }

    /// Its resident memory now and at its peak.
    pub fn memory(&self) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("{name} in /proc/{}/status", self.pid))
        };
        Ok(Memory {
            resident_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    /// The processor time it has used so far (user and system), from `/proc/<pid>/stat`.
    pub fn cpu(&self) -> Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // The fields after the command name, which is in parentheses and may hold spaces:
        // utime and stime are the 14th and 15th fields of the line.
        let rest = stat
            .rsplit_once(')')
            .map(|(_, r)| r)
            .context("a /proc stat line")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| -> Result<u64> {
            fields
                .get(i)
                .and_then(|f| f.parse().ok())
                .with_context(|| format!("field {} of /proc/{}/stat", i + 3, self.pid))
        };
        // The kernel reports these in clock ticks, 100 per second on Linux.
        Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
    }

    /// Its metrics in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String> {
        Ok(
            reqwest::get(format!("http://{}/metrics", self.metrics_addr))
                .await?
                .text()
                .await?,
        )
    }

    /// Kills it with SIGKILL, with no chance to release its Lease or finish a step, and reaps
    /// it.
    pub async fn kill(mut self) -> Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// Sends it SIGTERM, as the kubelet does, and waits (at most `grace`) for it to exit;
    /// returns how long it took and whether it exited cleanly.
    pub async fn terminate(mut self, grace: Duration) -> Result<(Duration, bool)> {
        let started = Instant::now();
        crate::run(std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]))?;
        let status = tokio::time::timeout(grace, self.child.wait())
            .await
            .with_context(|| format!("the operator did not exit within {grace:?} of SIGTERM"))??;
        Ok((started.elapsed(), status.success()))
    }
}

/// The documents of an environment directory (`environments/<name>`), read as
/// `kubectl apply -k` reads them.
pub struct Environment {
    /// Its vardhub resources.
    pub resources: vardhub::render::Resources,
    /// Every document: its other kinds (namespaces) first, then the vardhub resources.
    documents: Vec<DynamicObject>,
}

/// A resource's kind, namespace and name.
type ResourceKey = (String, Option<String>, String);

/// Whether a vardhub resource is `Ready` for its current generation.
fn is_ready(o: &DynamicObject) -> bool {
    let generation = o.metadata.generation;
    o.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| {
            c["type"] == "Ready"
                && c["status"] == "True"
                && c["observedGeneration"].as_i64() == generation
        })
}

/// One applied document's place in the API.
struct Placed {
    api: Api<DynamicObject>,
    name: String,
    kind: String,
}

impl Environment {
    /// Reads `environments/<name>`.
    pub fn load(name: &str) -> Result<Self> {
        let resources = vardhub::render::load(&repo_root().join("environments").join(name))?;
        Self::of(resources.others.iter().chain(&resources.documents).cloned())
    }

    /// Its documents as JSON, the non-vardhub ones first.
    fn values(&self) -> impl Iterator<Item = serde_json::Value> + '_ {
        self.resources
            .others
            .iter()
            .chain(&self.resources.documents)
            .cloned()
    }

    /// The same documents with `edit` applied to each (as JSON).
    pub fn changed(&self, edit: impl Fn(&mut serde_json::Value)) -> Result<Self> {
        Self::of(self.values().map(|mut doc| {
            edit(&mut doc);
            doc
        }))
    }

    /// Only its documents that differ from `earlier`'s: the change from `earlier` to this, as a
    /// GitOps tool applies it over what is already there (applying the unchanged documents
    /// again would change nothing, and would wait, as [`Self::apply`] does, for namespaces
    /// that only a running operator makes).
    pub fn change_from(&self, earlier: &Self) -> Result<Self> {
        let before: Vec<serde_json::Value> = earlier.values().collect();
        Self::of(self.values().filter(|doc| !before.contains(doc)))
    }

    /// The same documents and `extra` after them.
    pub fn with(&self, extra: impl IntoIterator<Item = serde_json::Value>) -> Result<Self> {
        Self::of(self.values().chain(extra))
    }

    fn of(values: impl Iterator<Item = serde_json::Value>) -> Result<Self> {
        let mut resources = vardhub::render::Resources::default();
        let mut documents = Vec::new();
        for value in values {
            // One JSON document is a YAML stream of one document.
            vardhub::render::parse(&serde_json::to_string(&value)?, &mut resources)?;
            documents.push(serde_json::from_value::<DynamicObject>(value)?);
        }
        // The other kinds (namespaces) first, as `load` orders them.
        documents.sort_by_key(|d| {
            d.types
                .as_ref()
                .is_some_and(|t| t.api_version.starts_with("vardhub.io/"))
        });
        Ok(Self {
            resources,
            documents,
        })
    }

    /// How many vardhub resources it holds.
    pub fn vardhub_resources(&self) -> usize {
        self.resources.documents.len()
    }

    async fn placed(&self, admin: &Client) -> Result<Vec<(Placed, &DynamicObject)>> {
        let mut found: HashMap<String, (ApiResource, ApiCapabilities)> = HashMap::new();
        let mut out = Vec::with_capacity(self.documents.len());
        for doc in &self.documents {
            let types = doc
                .types
                .as_ref()
                .context("a document without apiVersion")?;
            let gvk = GroupVersionKind::try_from(types)?;
            let key = format!("{}/{}", types.api_version, types.kind);
            if !found.contains_key(&key) {
                found.insert(key.clone(), pinned_kind(admin, &gvk).await?);
            }
            let (resource, caps) = &found[&key];
            let api = match (&caps.scope, &doc.metadata.namespace) {
                (Scope::Namespaced, Some(ns)) => Api::namespaced_with(admin.clone(), ns, resource),
                (Scope::Namespaced, None) => Api::default_namespaced_with(admin.clone(), resource),
                (Scope::Cluster, _) => Api::all_with(admin.clone(), resource),
            };
            let name = doc
                .metadata
                .name
                .clone()
                .context("a document without a name")?;
            out.push((
                Placed {
                    api,
                    name,
                    kind: types.kind.clone(),
                },
                doc,
            ));
        }
        Ok(out)
    }

    /// Writes one status (a `Ready` condition, built as the operator builds its own) to every
    /// vardhub resource, `concurrency` at a time, with no operator running: the API server's
    /// share of the least status a roll-out can write, for the scale benchmark's second floor.
    pub async fn write_one_status_each(&self, admin: &Client, concurrency: usize) -> Result<()> {
        use futures::StreamExt as _;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        use vardhub::controller::conditions::{Desired, common_status, types};
        let ready = [Desired::yes(
            types::READY,
            "Ready",
            "written by the scale benchmark's floor",
        )];
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        // A resource just applied is at generation 1.
        let status = common_status(&Default::default(), &ready, Some(1), &now);
        let params = PatchParams::apply("vardhub-floor").force();
        let placed = self.placed(admin).await?;
        let writes = placed
            .iter()
            .filter_map(|(at, doc)| {
                let types = doc.types.as_ref()?;
                let group = types.api_version.split_once('/').map(|(g, _)| g);
                (group == Some(vardhub::api::GROUP)).then_some((at, types))
            })
            .map(|(at, types)| {
                let patch = json!({
                    "apiVersion": types.api_version,
                    "kind": types.kind,
                    "status": status,
                });
                let params = params.clone();
                async move {
                    at.api
                        .patch_status(&at.name, &params, &Patch::Apply(&patch))
                        .await
                        .with_context(|| format!("the status of {} {}", at.kind, at.name))
                }
            });
        let results: Vec<_> = futures::stream::iter(writes)
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(())
    }

    /// Applies every document server-side, as `kubectl apply --server-side -k` would, and
    /// again those whose namespace the operator has yet to make (a hub's services live in the
    /// hub's namespace), as a GitOps tool retries what failed: after every
    /// [`RETRY_EVERY`] documents of a pass, and after each pass, until all are applied (at
    /// most `timeout`).
    pub async fn apply(&self, admin: &Client, timeout: Duration) -> Result<()> {
        /// Documents applied between two retries of those still waiting.
        const RETRY_EVERY: usize = 100;
        let placed = self.placed(admin).await?;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<&(Placed, &DynamicObject)> = placed.iter().collect();
        // Applies one document; false when its namespace is not there yet.
        let apply = async |(at, doc): &(Placed, &DynamicObject)| -> Result<bool> {
            match at.api.patch(&at.name, &params, &Patch::Apply(doc)).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
                Err(e) => Err(e).with_context(|| format!("applying {} {}", at.kind, at.name)),
            }
        };
        loop {
            let mut waiting = Vec::new();
            for (i, entry) in pending.into_iter().enumerate() {
                if !apply(entry).await? {
                    waiting.push(entry);
                }
                if (i + 1) % RETRY_EVERY == 0 && !waiting.is_empty() {
                    let mut still = Vec::new();
                    for entry in waiting {
                        if !apply(entry).await? {
                            still.push(entry);
                        }
                    }
                    waiting = still;
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let names: Vec<_> = waiting.iter().map(|(p, _)| p.name.as_str()).collect();
                bail!("not applied within {timeout:?} (no namespace yet): {names:?}");
            }
            pending = waiting;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// The vardhub resources that are not `Ready` for their current generation, as
    /// `Kind name`; an empty list when the whole environment is Ready. One list per kind.
    pub async fn not_ready(&self, admin: &Client) -> Result<Vec<String>> {
        let live = self.live(admin).await?;
        let mut out = Vec::new();
        for (kind, namespace, name) in self.vardhub_keys() {
            let key = (kind, namespace, name);
            if !live.get(&key).is_some_and(is_ready) {
                out.push(format!("{} {}", key.0, key.2));
            }
        }
        Ok(out)
    }

    /// Its vardhub resources, by kind, namespace and name.
    fn vardhub_keys(&self) -> Vec<ResourceKey> {
        self.documents
            .iter()
            .filter(|doc| {
                doc.types
                    .as_ref()
                    .is_some_and(|t| t.api_version.starts_with("vardhub.io/"))
            })
            .map(|doc| {
                (
                    doc.types
                        .as_ref()
                        .map(|t| t.kind.clone())
                        .unwrap_or_default(),
                    doc.metadata.namespace.clone(),
                    doc.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect()
    }

    /// When each of its vardhub resources last became Ready (its `Ready` condition's
    /// `lastTransitionTime`, to the second), by kind; a resource not Ready is left out.
    pub async fn ready_times(&self, admin: &Client) -> Result<BTreeMap<String, Vec<ReadyTime>>> {
        let mut out = BTreeMap::<String, Vec<_>>::new();
        let parse = |t: Option<&str>| {
            t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        for ((kind, _, _), o) in self.live(admin).await? {
            let ready = parse(
                o.data["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| c["type"] == "Ready" && c["status"] == "True")
                    .and_then(|c| c["lastTransitionTime"].as_str()),
            );
            let created = o
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string());
            if let (Some(ready), Some(created)) = (ready, parse(created.as_deref())) {
                out.entry(kind)
                    .or_default()
                    .push(ReadyTime { ready, created });
            }
        }
        for times in out.values_mut() {
            times.sort_unstable_by_key(|t| t.ready);
        }
        Ok(out)
    }

    /// Each kind of its vardhub resources, with its API across all namespaces.
    async fn vardhub_apis(&self, admin: &Client) -> Result<Vec<(String, Api<DynamicObject>)>> {
        let mut out = Vec::new();
        for (api_version, kind) in self.vardhub_kinds() {
            let gvk = GroupVersionKind::try_from(&kube::core::TypeMeta {
                api_version,
                kind: kind.clone(),
            })?;
            let (resource, _) = pinned_kind(admin, &gvk).await?;
            out.push((kind, Api::all_with(admin.clone(), &resource)));
        }
        Ok(out)
    }

    /// The API versions and kinds of its vardhub resources, each once.
    fn vardhub_kinds(&self) -> Vec<(String, String)> {
        let mut kinds: Vec<(String, String)> = Vec::new();
        for doc in &self.documents {
            if let Some(t) = &doc.types {
                let k = (t.api_version.clone(), t.kind.clone());
                if t.api_version.starts_with("vardhub.io/") && !kinds.contains(&k) {
                    kinds.push(k);
                }
            }
        }
        kinds
    }

    /// Every object of the kinds of its vardhub resources, by kind, namespace and name.
    async fn live(&self, admin: &Client) -> Result<HashMap<ResourceKey, DynamicObject>> {
        let mut out = HashMap::new();
        for (kind, api) in self.vardhub_apis(admin).await? {
            for o in api.list(&Default::default()).await? {
                let key = (
                    kind.clone(),
                    o.metadata.namespace.clone(),
                    o.metadata.name.clone().unwrap_or_default(),
                );
                out.insert(key, o);
            }
        }
        Ok(out)
    }

    /// The UIDs of its vardhub resources as they are now.
    pub async fn uids(&self, admin: &Client) -> Result<std::collections::BTreeSet<String>> {
        let mut out = std::collections::BTreeSet::new();
        for (at, doc) in self.placed(admin).await? {
            if !doc
                .types
                .as_ref()
                .is_some_and(|t| t.api_version.starts_with("vardhub.io/"))
            {
                continue;
            }
            if let Some(uid) = at.api.get_opt(&at.name).await?.and_then(|o| o.metadata.uid) {
                out.insert(uid);
            }
        }
        Ok(out)
    }

    /// Waits (at most `timeout`) until every vardhub resource is Ready for its generation;
    /// the error names those that are not. It watches each kind, as a GitOps tool's health
    /// check does, so that waiting costs the API server one event per change, not a listing
    /// of every resource every second (which at 2,000 resources would load the server under
    /// measurement).
    pub async fn wait_ready(&self, admin: &Client, timeout: Duration) -> Result<()> {
        use futures::StreamExt as _;
        use kube::runtime::{WatchStreamExt as _, watcher};
        let deadline = tokio::time::Instant::now() + timeout;
        let expected = self.vardhub_keys();
        let mut waiting: BTreeSet<ResourceKey> = expected.iter().cloned().collect();
        let mut streams = Vec::new();
        for (kind, api) in self.vardhub_apis(admin).await? {
            let events = watcher(api, watcher::Config::default()).default_backoff();
            streams.push(events.map(move |e| (kind.clone(), e)).boxed());
        }
        // Kinds whose listing is under way: until it ends, their resources not yet seen may
        // be gone, so nothing is concluded.
        let mut listing: BTreeSet<String> = BTreeSet::new();
        let mut events = futures::stream::select_all(streams);
        loop {
            let Ok(next) = tokio::time::timeout_at(deadline, events.next()).await else {
                let left: Vec<_> = waiting
                    .iter()
                    .take(5)
                    .map(|k| format!("{} {}", k.0, k.2))
                    .collect();
                bail!(
                    "the environment was not Ready within {timeout:?}: {} not Ready, first {left:?}",
                    waiting.len()
                );
            };
            let Some((kind, event)) = next else {
                bail!("the watches of the environment's resources ended");
            };
            let mut seen = |o: DynamicObject, ready: bool| {
                let key = (
                    kind.clone(),
                    o.metadata.namespace.clone(),
                    o.metadata.name.clone().unwrap_or_default(),
                );
                if ready {
                    waiting.remove(&key);
                } else if expected.contains(&key) {
                    waiting.insert(key);
                }
            };
            match event {
                // Transient: the watcher lists again after its backoff.
                Err(_) => continue,
                Ok(watcher::Event::Init) => {
                    listing.insert(kind.clone());
                    waiting.extend(expected.iter().filter(|k| k.0 == kind).cloned());
                }
                Ok(watcher::Event::InitDone) => {
                    listing.remove(&kind);
                }
                Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => {
                    let ready = is_ready(&o);
                    seen(o, ready);
                }
                Ok(watcher::Event::Delete(o)) => seen(o, false),
            }
            if waiting.is_empty() && listing.is_empty() {
                return Ok(());
            }
        }
    }

    /// Removes the environment and what it keeps: its resources are switched to
    /// `deletionPolicy: Delete` (confirmed) first, so that their buckets and keys go with them,
    /// then deleted in reverse order; waits (at most `timeout`) until all are gone. Needs an
    /// operator running to finish the deletions.
    pub async fn remove(&self, admin: &Client, timeout: Duration) -> Result<()> {
        let placed = self.placed(admin).await?;
        // The kinds that keep data or keys, and the field that confirms their deletion.
        let keeps = [
            ("DataHub", "confirmDeletion"),
            ("RegionalNode", "confirmDeletion"),
            ("PseudonymisationService", "confirmKeyDeletion"),
        ];
        for (at, _) in &placed {
            let Some((_, confirm)) = keeps.iter().find(|(kind, _)| *kind == at.kind) else {
                continue;
            };
            if at.api.get_opt(&at.name).await?.is_some() {
                let patch = json!({"spec": {"deletionPolicy": "Delete", *confirm: true}});
                at.api
                    .patch(&at.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .with_context(|| format!("switching {} {} to Delete", at.kind, at.name))?;
            }
        }
        for (at, _) in placed.iter().rev() {
            match at.api.delete(&at.name, &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        eventually("the environment to be gone", timeout, || async {
            for (at, _) in &placed {
                if at.api.get_opt(&at.name).await?.is_some() {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
    }
}

/// Sets (or with `None` removes) a label of a node, as a placement's `nodeSelector` needs
/// (`environments/cloud` places the hub and the regions on node pools).
fn label_node(node: &str, label: &str, value: Option<&str>) -> Result<()> {
    let assignment = match value {
        Some(v) => format!("{label}={v}"),
        None => format!("{label}-"),
    };
    crate::kubectl(&["label", "node", node, "--overwrite", &assignment])?;
    Ok(())
}

/// The label `environments/cloud` places its workloads by (a node pool per workload class).
const POOL: &str = "vardhub.io/pool";
/// The kwok nodes that stand for the hub's and the regions' node pools.
const POOLS: [(&str, &str); 3] = [
    ("kwok-node-0", "hub"),
    ("kwok-node-1", "regional"),
    ("kwok-node-2", "regional"),
];

/// Labels the kwok nodes as the node pools `environments/cloud` asks for (`true`), or takes
/// the labels off again (`false`).
pub fn label_pools(on: bool) -> Result<()> {
    for (node, pool) in POOLS {
        label_node(node, POOL, on.then_some(pool))?;
    }
    Ok(())
}

/// What `vardhub render` is told about the local cluster, as the operator learns it when it
/// runs: OpenBao, S3, DNS and the API server on the real node's address, and `image`.
pub fn render_settings(cluster: &LocalCluster, image: String) -> Result<vardhub::render::Settings> {
    Ok(vardhub::render::Settings {
        openbao_addr: cluster.vault_addr.clone(),
        s3_endpoint: cluster.s3_endpoint.clone(),
        image,
        cluster: vardhub::controller::network::Paths {
            dns: vec![format!("{}/32", crate::env("VARDHUB_NODE_IP")?)],
            api_server: vardhub::controller::network::literal(&crate::env(
                "VARDHUB_KUBE_APISERVER",
            )?),
            ..Default::default()
        },
    })
}

/// The rendered objects that the cluster does not hold as rendered (missing, or with other
/// contents or another spec hash), as `Kind name`.
pub async fn differences(admin: &Client, rendered: &[DesiredObject]) -> Result<Vec<String>> {
    let mut differing = Vec::new();
    for desired in rendered {
        let name = desired.object.metadata.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> = match &desired.object.metadata.namespace {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, &desired.resource),
            None => Api::all_with(admin.clone(), &desired.resource),
        };
        let Some(live) = api.get_opt(&name).await? else {
            differing.push(format!("{} {name}: missing", desired.resource.kind));
            continue;
        };
        let hash = |o: &DynamicObject| {
            o.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(HASH_ANNOTATION).cloned())
        };
        let same = contains(
            &serde_json::to_value(&live)?,
            &serde_json::to_value(&desired.object)?,
        ) && hash(&live) == hash(&desired.object);
        if !same {
            differing.push(format!("{} {name}", desired.resource.kind));
        }
    }
    Ok(differing)
}

/// Objects the operator made (its `managed-by` label) of the kinds it rendered, owned by one
/// of `owners` (UIDs) or in a rendered namespace, that `vardhub render` does not name: what a
/// killed operator could have left behind. As `Kind namespace/name`.
pub async fn unrendered(
    admin: &Client,
    rendered: &[DesiredObject],
    owners: &std::collections::BTreeSet<String>,
) -> Result<Vec<String>> {
    let key = |kind: &str, ns: Option<&str>, name: &str| {
        format!("{kind} {}/{name}", ns.unwrap_or_default())
    };
    let expected: std::collections::BTreeSet<String> = rendered
        .iter()
        .map(|d| {
            key(
                &d.resource.kind,
                d.object.metadata.namespace.as_deref(),
                d.object.metadata.name.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    let namespaces: std::collections::BTreeSet<&str> = rendered
        .iter()
        .filter_map(|d| d.object.metadata.namespace.as_deref())
        .collect();
    let mut kinds: Vec<&ApiResource> = Vec::new();
    for d in rendered {
        if !kinds
            .iter()
            .any(|k| k.kind == d.resource.kind && k.group == d.resource.group)
        {
            kinds.push(&d.resource);
        }
    }
    let selector = format!("app.kubernetes.io/managed-by={MANAGED_BY}");
    let mut extra = Vec::new();
    for kind in kinds {
        let api: Api<DynamicObject> = Api::all_with(admin.clone(), kind);
        for o in api
            .list(&kube::api::ListParams::default().labels(&selector))
            .await?
        {
            let ns = o.metadata.namespace.as_deref();
            let owned = o
                .metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| owners.contains(&r.uid));
            if !owned && !ns.is_some_and(|n| namespaces.contains(n)) {
                continue;
            }
            let k = key(
                &kind.kind,
                ns,
                o.metadata.name.as_deref().unwrap_or_default(),
            );
            if !expected.contains(&k) {
                extra.push(k);
            }
        }
    }
    Ok(extra)
}
