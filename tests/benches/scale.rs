//! `cargo bench -p vardhub-tests --bench scale`: the operator at the country's scale on the
//! local cluster: `environments/cloud` (the hub, its services, 21 regional nodes) and 100
//! datasets per region (2,100), rolled out by the operator's release binary as its own
//! process. Prints, with no timed assertion:
//! - the time until everything is Ready, against the floor of `kubectl apply --server-side`
//!   of the same resources and of every object `vardhub render` says the operator makes, and
//!   against that floor plus one status write per vardhub resource (a roll-out that reports
//!   `Ready` on every resource cannot write less);
//! - the operator's resident memory, at its peak and at rest;
//! - reconcile latency p50 and p99 (from the operator's histogram: bucket bounds);
//! - what a restart at steady state writes, counted by the independent witnesses: the API
//!   server's audit log, OpenBao's audit device and the S3 server's trace.
//!
//! Needs the local cluster up with its environment loaded and the image built:
//! `make cluster-up && eval "$(bash environments/local/cluster/cluster.sh env)" && make image`.
//! The targets are printed beside the figures: within 1.5× the floor, under 64 MiB
//! resident, zero writes at steady state.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};
use vardhub_tests::rollout::{
    Environment, OperatorProcess, image_reference, label_pools, render_settings,
};
use vardhub_tests::{LocalCluster, cpu_since, kubectl, openbao_audit_mark, openbao_requests_since};

const DATASETS_PER_REGION: usize = 100;
const IDENTITY: &str = "vardhub-operator-scale";
/// The chart's ServiceAccount, as the API server's audit log names it.
const OPERATOR_USER: &str = "system:serviceaccount:vardhub-system:vardhub-operator";

#[tokio::main]
async fn main() -> Result<()> {
    let cluster = LocalCluster::get();
    let admin = cluster.admin_client().await?;
    let image = image_reference()?;
    let environment = scale_environment()?;
    let resources = environment.vardhub_resources();
    label_pools(true)?;
    let rendered = vardhub::render::render(
        &environment.resources,
        &render_settings(cluster, image.clone())?,
    )?;
    println!(
        "scale: {} regional nodes, {} datasets, {resources} vardhub resources, {} rendered objects",
        environment.resources.nodes.len(),
        environment.resources.datasets.len(),
        rendered.len()
    );

    // The floor: the same resources and every rendered object, applied by kubectl, and the
    // rendered Deployments available.
    let before = cluster.component_cpu();
    let (floor, with_status) = floor(cluster, &admin, &environment, &rendered).await?;
    let floor_cpu = cpu_since(&before, &cluster.component_cpu());
    println!("scale: floor (kubectl apply --server-side, Deployments available): {floor:.1} s");
    println!(
        "scale: floor and one status write per vardhub resource ({resources} writes, {} at a \
         time): {with_status:.1} s",
        STATUS_CONCURRENCY
    );

    // The operator rolls the environment out.
    let kubeconfig = cluster.operator_kubeconfig().await?;
    let log = cluster.dir.join("logs").join("operator-scale.log");
    let args = ["--image", image.as_str()];
    let operator = OperatorProcess::spawn(cluster, &kubeconfig, IDENTITY, &args, &log).await?;
    let before = cluster.component_cpu();
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let (applied, ready) = tokio::join!(
        async {
            environment.apply(&admin, Duration::from_secs(900)).await?;
            anyhow::Ok(started.elapsed())
        },
        environment.wait_ready(&admin, Duration::from_secs(1800))
    );
    let applied = applied?.as_secs_f64();
    ready?;
    let rollout = started.elapsed().as_secs_f64();
    let rollout_cpu = cpu_since(&before, &cluster.component_cpu());
    let at_ready = operator.memory()?;
    println!(
        "scale: the operator: everything Ready in {rollout:.1} s = {:.2}× the floor (target ≤ 1.5), \
         {:.2}× the floor with one status write per resource",
        rollout / floor,
        rollout / with_status
    );
    println!(
        "scale:   the operator's processor time: {:.1} s of the roll-out's {rollout:.1} s",
        operator.cpu()?.as_secs_f64()
    );
    // Where the machine's processor time went, by the cluster's components.
    println!(
        "scale:   processor time by component, the floor (both steps, and their removal) / \
         the roll-out, in seconds:"
    );
    for (component, seconds) in &rollout_cpu {
        println!(
            "scale:     {component}: {:.1} / {seconds:.1}",
            floor_cpu.get(component).copied().unwrap_or_default()
        );
    }
    // Where the time went: when the last resource was applied, when each kind's resources
    // became Ready, and how long each waited from its creation to Ready.
    println!("scale:   the last resource applied after {applied:.0} s");
    for (kind, times) in environment.ready_times(&admin).await? {
        #[allow(clippy::cast_precision_loss)]
        let seconds = |d: chrono::TimeDelta| d.num_milliseconds() as f64 / 1000.0;
        let after = |i: usize| seconds(times[i].ready - started_at);
        let mut waits: Vec<f64> = times.iter().map(|t| seconds(t.ready - t.created)).collect();
        waits.sort_unstable_by(f64::total_cmp);
        println!(
            "scale:   {kind}: {} Ready, the first after {:.0} s, half after {:.0} s, the last \
             after {:.0} s; from creation to Ready: median {:.0} s, longest {:.0} s",
            times.len(),
            after(0),
            after(times.len() / 2),
            after(times.len() - 1),
            waits[waits.len() / 2],
            waits[waits.len() - 1]
        );
    }
    let metrics = operator.metrics().await?;
    print_calls("over the roll-out", &metrics);
    for controller in
        vardhub_tests::label_values(&metrics, "vardhub_reconciles_total", "controller")
    {
        let c = [("controller", controller.as_str())];
        println!(
            "scale:   {controller}: {} API writes counted by the operator",
            vardhub_tests::metric_with(&metrics, "vardhub_api_writes_total", &c)
        );
    }
    let (p50, p99) = (quantile(&metrics, 0.5), quantile(&metrics, 0.99));
    println!(
        "scale: reconcile latency over the roll-out ({} reconciles): p50 ≤ {p50} s, p99 ≤ {p99} s",
        vardhub_tests::metric(&metrics, "vardhub_reconciles_total")
    );
    // At rest: a minute with nothing to do.
    let rest = Instant::now();
    while rest.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let resting = operator.memory()?;
    println!(
        "scale: resident memory: peak {} MiB, at Ready {} MiB, after a minute at rest {} MiB \
         (target < 64 MiB)",
        resting.peak_kib / 1024,
        at_ready.resident_kib / 1024,
        resting.resident_kib / 1024
    );

    // A restart at steady state reconciles everything once, and writes nothing.
    let since = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let bao_mark = openbao_audit_mark()?;
    let trace = cluster.s3_trace().await?;
    let (shutdown, _) = operator.terminate(Duration::from_secs(60)).await?;
    println!("scale: SIGTERM to exit: {:.1} s", shutdown.as_secs_f64());
    let operator = OperatorProcess::spawn(cluster, &kubeconfig, IDENTITY, &args, &log).await?;
    let restarted = Instant::now();
    let reconciled = vardhub_tests::eventually(
        "every resource reconciled after the restart",
        Duration::from_secs(900),
        || async {
            // Every resource reconciled to the end once, and nothing running.
            let text = operator.metrics().await.unwrap_or_default();
            let objects = vardhub_tests::metric_with(&text, "vardhub_objects_reconciled", &[]);
            let running = vardhub_tests::metric_with(&text, "vardhub_reconciles_in_flight", &[]);
            #[allow(clippy::cast_precision_loss)]
            Ok((objects >= resources as f64 && running == 0.0)
                .then(|| vardhub_tests::metric(&text, "vardhub_reconciles_total")))
        },
    )
    .await?;
    let again = restarted.elapsed().as_secs_f64();
    environment
        .wait_ready(&admin, Duration::from_secs(300))
        .await?;
    let api = cluster.audited_writes(OPERATOR_USER, &since)?;
    let bao_requests = openbao_requests_since(bao_mark)?;
    let bao_all = bao_requests.len();
    let bao: Vec<_> = bao_requests
        .into_iter()
        .filter(|(op, _)| op != "read" && op != "list")
        .collect();
    let s3_requests = trace.stop();
    let s3_all = s3_requests.len();
    let s3: Vec<_> = s3_requests.into_iter().filter(|c| c.writes()).collect();
    let metrics = operator.metrics().await?;
    print_calls("in the restart", &metrics);
    println!(
        "scale:   all controllers: OpenBao {} (its audit device: {bao_all}, logins and \
         renewals included), S3 {} (its trace: {s3_all})",
        vardhub_tests::metric_with(
            &metrics,
            "vardhub_external_calls_total",
            &[("server", "openbao")]
        ),
        vardhub_tests::metric_with(
            &metrics,
            "vardhub_external_calls_total",
            &[("server", "s3")]
        ),
    );
    println!(
        "scale: a restart at steady state: {reconciled} reconciles in {again:.1} s; writes: \
         API {}, OpenBao {}, S3 {} (target 0; counted by the audit log, the audit device and \
         the S3 trace)",
        api.len(),
        bao.len(),
        s3.len()
    );
    for w in api.iter().take(10) {
        println!("scale:   API write: {w}");
    }
    for (op, path) in bao.iter().take(10) {
        println!("scale:   OpenBao {op} {path}");
    }
    for c in s3.iter().take(10) {
        println!("scale:   S3 {} {}", c.api, c.path);
    }
    println!(
        "scale: resident memory after the restart: peak {} MiB",
        operator.memory()?.peak_kib / 1024
    );

    environment.remove(&admin, Duration::from_secs(900)).await?;
    operator.terminate(Duration::from_secs(60)).await?;
    label_pools(false)?;
    Ok(())
}

/// `environments/cloud` and 100 datasets per regional node: copies of the local catalogue's
/// source dataset of Stockholm, each placed in one node.
fn scale_environment() -> Result<Environment> {
    let cloud = Environment::load("cloud")?;
    let template = vardhub_tests::source_dataset_document()?;
    let mut datasets = Vec::new();
    for node in &cloud.resources.nodes {
        let name = kube::ResourceExt::name_any(node);
        let code = node.spec.regions.first().map(|r| r.code().to_string());
        for i in 0..DATASETS_PER_REGION {
            let mut d = template.clone();
            d["metadata"]["name"] = json!(format!("{name}-source-{i:03}"));
            d["spec"]["location"]["regionalNode"]["name"] = json!(name);
            d["spec"]["spatialCoverage"] = json!(code.iter().collect::<Vec<_>>());
            datasets.push(d);
        }
    }
    cloud.with(datasets)
}

/// Status writes in flight at once in the second floor.
const STATUS_CONCURRENCY: usize = 8;

/// Seconds to apply the resources and the rendered objects with kubectl and see the rendered
/// Deployments available; and that plus the time to write one status to each vardhub resource
/// (the least a roll-out that reports `Ready` on every resource asks of the API server). Then
/// removes them again (no operator runs, so nothing else exists).
async fn floor(
    cluster: &LocalCluster,
    admin: &kube::Client,
    environment: &Environment,
    rendered: &[vardhub::controller::apply::DesiredObject],
) -> Result<(f64, f64)> {
    let r = &environment.resources;
    let mut items: Vec<Value> = r.others.clone();
    for d in rendered {
        let mut v = serde_json::to_value(&d.object)?;
        v["apiVersion"] = json!(d.resource.api_version);
        v["kind"] = json!(d.resource.kind);
        items.push(v);
    }
    items.extend(r.documents.iter().cloned());
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let file = cluster.dir.join("scale-floor.json");
    std::fs::write(&file, serde_json::to_vec(&list)?)?;
    let file = file.to_string_lossy().to_string();
    let deployments: Vec<String> = rendered
        .iter()
        .filter(|d| d.resource.kind == "Deployment")
        .map(|d| {
            format!(
                "{}/{}",
                d.object.metadata.namespace.as_deref().unwrap_or_default(),
                d.object.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    let started = Instant::now();
    kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=vardhub-floor",
        "-f",
        &file,
    ])?;
    for d in &deployments {
        let (ns, name) = d.split_once('/').unwrap_or_default();
        kubectl(&[
            "wait",
            "--for=condition=Available",
            "--timeout=600s",
            "-n",
            ns,
            &format!("deployment/{name}"),
        ])?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let statuses = Instant::now();
    environment
        .write_one_status_each(admin, STATUS_CONCURRENCY)
        .await?;
    let with_status = seconds + statuses.elapsed().as_secs_f64();
    kubectl(&["delete", "-f", &file, "--wait=true", "--ignore-not-found"])?;
    Ok((seconds, with_status))
}

/// Prints the requests the operator counted to OpenBao and the S3 server, per controller,
/// with the reconciles each controller ran.
fn print_calls(when: &str, metrics: &str) {
    const CALLS: &str = "vardhub_external_calls_total";
    println!("scale: requests to OpenBao / the S3 server {when}, per controller:");
    for controller in vardhub_tests::label_values(metrics, CALLS, "controller") {
        let c = ("controller", controller.as_str());
        let reconciles = vardhub_tests::metric_with(metrics, "vardhub_reconciles_total", &[c]);
        let bao = vardhub_tests::metric_with(metrics, CALLS, &[c, ("server", "openbao")]);
        let s3 = vardhub_tests::metric_with(metrics, CALLS, &[c, ("server", "s3")]);
        println!(
            "scale:   {controller}: {reconciles} reconciles, {bao} OpenBao requests, {s3} S3 \
             requests ({:.1} / {:.1} per reconcile)",
            bao / reconciles.max(1.0),
            s3 / reconciles.max(1.0)
        );
    }
}

/// The upper bound of the bucket of reconcile durations (all controllers) that holds the
/// quantile `q`.
fn quantile(metrics: &str, q: f64) -> String {
    let mut buckets: std::collections::BTreeMap<String, (f64, f64)> = Default::default();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("vardhub_reconcile_duration_seconds_bucket{") else {
            continue;
        };
        let Some(le) = rest.split("le=\"").nth(1).and_then(|s| s.split('"').next()) else {
            continue;
        };
        let count: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let bound = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap_or(f64::INFINITY)
        };
        buckets.entry(le.to_string()).or_insert((bound, 0.0)).1 += count;
    }
    let mut sorted: Vec<(f64, f64)> = buckets.into_values().collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = sorted.last().map_or(0.0, |b| b.1);
    sorted
        .iter()
        .find(|b| b.1 >= q * total)
        .map_or_else(|| "?".into(), |b| format!("{}", b.0))
}
