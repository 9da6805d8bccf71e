//! `cargo bench -p vardhub-tests --bench status_write`: what one write of a `Dataset`'s
//! status costs the local cluster's API server, beside what reading the object costs. A
//! roll-out that reports `Ready` on every resource writes each status at least once; at
//! 2,100 datasets those writes are most of what the operator asks of the API server, so
//! they bound how close a roll-out can come to `kubectl apply`'s floor (see the scale
//! benchmark). Prints, with no timed assertion, per way of writing (server-side apply with
//! the operator's field manager, JSON merge patch) and for plain reads:
//! - the wall time of `COUNT` requests, `IN_FLIGHT` at a time (and of the creates before
//!   them, which is what `kubectl apply` of a dataset costs);
//! - the processor time the API server and etcd spent on them, read from the kernel.
//!
//! Needs the local cluster up with its environment loaded:
//! `make cluster-up && eval "$(bash environments/local/cluster/cluster.sh env)"`. It makes
//! its datasets in a namespace of its own and deletes the namespace when done.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use vardhub::api::{Dataset, DatasetStatus, Distribution};
use vardhub::controller::conditions::{Desired, common_status, types};
use vardhub_tests::{LocalCluster, cpu_since};

/// Datasets per way of writing and round.
const COUNT: usize = 600;
/// Requests in flight at once, as in the scale benchmark's floor.
const IN_FLIGHT: usize = 8;
/// Rounds; the first warms the API server's caches.
const ROUNDS: usize = 2;
const NAMESPACE: &str = "vardhub-bench-status";
/// The components whose processor time is printed.
const COMPONENTS: [&str; 2] = ["kube-apiserver", "etcd"];

#[tokio::main]
async fn main() -> Result<()> {
    let cluster = LocalCluster::get();
    let admin = cluster.admin_client().await?;
    let apply = PatchParams::apply("vardhub-bench").force();
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE},
    }))?;
    namespaces
        .patch(NAMESPACE, &apply, &Patch::Apply(&namespace))
        .await?;
    let result = measure(cluster, &admin).await;
    namespaces
        .delete(NAMESPACE, &DeleteParams::background())
        .await?;
    result
}

async fn measure(cluster: &LocalCluster, admin: &Client) -> Result<()> {
    let template = vardhub_tests::source_dataset_document()?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        admin.clone(),
        NAMESPACE,
        &ApiResource::erase::<Dataset>(&()),
    );
    let status = located_status();
    println!(
        "status_write: {COUNT} datasets per way and round, {IN_FLIGHT} requests at a time; \
         processor time of {}",
        COMPONENTS.join(" and ")
    );
    for round in 1..=ROUNDS {
        for way in [Way::Apply, Way::Merge] {
            let names: Vec<String> = (0..COUNT)
                .map(|i| format!("{}-{round}-{i:04}", way.name()))
                .collect();
            let before = cluster.component_cpu();
            let started = Instant::now();
            create(&api, &template, &names).await?;
            report(
                &format!("round {round}, creates by apply"),
                started,
                &cpu_since(&before, &cluster.component_cpu()),
            );
            let before = cluster.component_cpu();
            let started = Instant::now();
            each(&names, |name| {
                let api = api.clone();
                let patch = way.patch(&status);
                async move {
                    api.patch_status(&name, &way.params(), &patch)
                        .await
                        .map(drop)
                }
            })
            .await?;
            report(
                &format!("round {round}, status by {}", way.name()),
                started,
                &cpu_since(&before, &cluster.component_cpu()),
            );
        }
        let names: Vec<String> = (0..COUNT)
            .map(|i| format!("apply-{round}-{i:04}"))
            .collect();
        let before = cluster.component_cpu();
        let started = Instant::now();
        each(&names, |name| {
            let api = api.clone();
            async move { api.get(&name).await.map(drop) }
        })
        .await?;
        report(
            &format!("round {round}, reads"),
            started,
            &cpu_since(&before, &cluster.component_cpu()),
        );
    }
    Ok(())
}

/// How a status is written.
#[derive(Clone, Copy)]
enum Way {
    /// Server-side apply with the dataset controller's field manager, as the operator does.
    Apply,
    /// A JSON merge patch.
    Merge,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Apply => "apply",
            Way::Merge => "merge",
        }
    }

    fn params(self) -> PatchParams {
        match self {
            Way::Apply => PatchParams::apply("vardhub-dataset").force(),
            Way::Merge => PatchParams::default(),
        }
    }

    fn patch(self, status: &DatasetStatus) -> Patch<Value> {
        let mut body = json!({ "status": status });
        match self {
            Way::Apply => {
                body["apiVersion"] = json!("vardhub.io/v1alpha1");
                body["kind"] = json!("Dataset");
                Patch::Apply(body)
            }
            Way::Merge => Patch::Merge(body),
        }
    }
}

/// The status the dataset controller writes for a located regional source: `Ready` and
/// `Degraded`, and one distribution in the node's landing bucket.
fn located_status() -> DatasetStatus {
    let desired = [
        Desired::yes(
            types::READY,
            "Located",
            "1 distribution(s) derived from spec.location",
        ),
        Desired::no(types::DEGRADED, "NoErrors", "the location resolves"),
    ];
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    DatasetStatus {
        common: common_status(&Default::default(), &desired, Some(1), &now),
        distributions: vec![Distribution {
            name: "landing".into(),
            access_url: "s3://vardhub-bench-landing/waiting-times/".into(),
            title: "Regional extracts in the region's own storage".into(),
            availability: Some("TEMPORARY".into()),
            media_type: Some("application/vnd.apache.parquet".into()),
            objects: Some(0),
            byte_size: Some(0),
            ..Default::default()
        }],
    }
}

/// Applies one dataset per name, made from `template`.
async fn create(api: &Api<DynamicObject>, template: &Value, names: &[String]) -> Result<()> {
    let apply = PatchParams::apply("vardhub-bench").force();
    each(names, |name| {
        let api = api.clone();
        let apply = apply.clone();
        let mut doc = template.clone();
        doc["metadata"] = json!({"name": name, "namespace": NAMESPACE});
        async move {
            api.patch(&name, &apply, &Patch::Apply(&doc))
                .await
                .map(drop)
        }
    })
    .await
}

/// Runs one request per name, [`IN_FLIGHT`] at a time, and fails on the first that fails.
async fn each<F, Fut>(names: &[String], request: F) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    futures::stream::iter(names.iter().cloned().map(request))
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

fn report(what: &str, started: Instant, cpu: &BTreeMap<String, f64>) {
    let seconds = started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let per = |name: &str| cpu.get(name).copied().unwrap_or_default() * 1000.0 / COUNT as f64;
    println!(
        "status_write: {what}: {COUNT} in {seconds:.2} s; per request {}",
        COMPONENTS
            .iter()
            .map(|c| format!("{c} {:.1} ms", per(c)))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
