//! The operator, as its own process, killed with SIGKILL 100 times at random moments while it
//! rolls out `environments/cloud` (the hub, its pseudonymisation service, the catalogue and
//! all 21 regional nodes), with a change to every node half-way. It converges, and nothing it
//! keeps is lost, doubled or left behind: checked against `vardhub render` and against
//! OpenBao's and the S3 server's own state (key versions, secret versions, bucket tags and
//! settings), not against what the operator reports.

use std::time::{Duration, Instant};

use anyhow::Result;
use rand::{Rng as _, SeedableRng as _};
use vardhub::adapters::s3::{IssuedCredentials, Storage};
use vardhub::api::StorageMode;
use vardhub::controller::storage::{KEY_MOUNT, KV_MOUNT};
use vardhub::layout::{self, HubRole};
use vardhub_tests::rollout::{
    Environment, OperatorProcess, differences, label_pools, render_settings, unrendered,
};
use vardhub_tests::{LocalCluster, OPERATOR_LOCK, env};
use vaultrs::api::transit::responses::ReadKeyData;

/// How many times the operator is killed.
const KILLS: usize = 100;
/// How many roll-outs the kills are spread over: the environment, then a change to every
/// regional node every `KILLS / ROLLOUTS` kills.
const ROLLOUTS: usize = 4;
/// A kill comes at a moment drawn evenly from 0 to this many milliseconds after the start
/// (the release binary leads within about 20 ms and rolls `cloud` out in a few seconds, so
/// most lives end part-way).
const LONGEST_LIFE_MS: u64 = 1_000;
/// The operator's identity in its Lease: as a pod's name, the same after every restart.
const IDENTITY: &str = "vardhub-operator-chaos";

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn the_operator_killed_100_times_while_it_rolls_out_cloud_converges_and_loses_nothing()
-> Result<()> {
    let cluster = LocalCluster::get();
    let _serial = OPERATOR_LOCK.lock().await;
    let admin = cluster.admin_client().await?;
    let image = env("VARDHUB_IMAGE")?;
    // The environment, then every node given another rotation period (a change that each
    // node carries to its Transit key in OpenBao), and again.
    let first = Environment::load("cloud")?;
    let mut rollouts = vec![first];
    for i in 1..ROLLOUTS {
        let days = 30 * i;
        rollouts.push(rollouts[0].changed(|doc| {
            if doc["kind"] == "RegionalNode" {
                doc["spec"]["keys"]["rotationPeriodDays"] = days.into();
            }
        })?);
    }
    label_pools(true)?;
    let kubeconfig = cluster.operator_kubeconfig().await?;
    let log = cluster.dir.join("logs").join("operator-chaos.log");
    // The operators append to the log; what this run wrote starts here.
    let log_start = std::fs::metadata(&log).map_or(0, |m| m.len());
    let args = ["--image", image.as_str()];
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let seed = std::env::var("VARDHUB_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(now.as_secs().wrapping_mul(1_000_000_007) ^ u64::from(now.subsec_nanos()));
    eprintln!("chaos: seed {seed} (VARDHUB_CHAOS_SEED={seed} repeats the kills' moments)");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

    // The environment is applied while the kills go on: the pseudonymisation service can only
    // be applied once a (killed and restarted) operator has made the hub's namespace.
    let started = Instant::now();
    let per_rollout = KILLS / ROLLOUTS;
    // For each roll-out, the kill after which it was first whole, and how many kills came
    // while it was not.
    let mut whole_after = [None; ROLLOUTS];
    let mut part_way = [0usize; ROLLOUTS];
    let chaos = async {
        for kill in 1..=KILLS {
            let rollout = (kill - 1) / per_rollout;
            if rollout > 0 && (kill - 1) % per_rollout == 0 {
                // Between two lives no operator runs, so only the change is applied here:
                // the nodes, which need no namespace. The first roll-out may not be whole
                // yet (its services wait for the hub's namespace); its own apply goes on.
                rollouts[rollout]
                    .change_from(&rollouts[rollout - 1])?
                    .apply(&admin, Duration::from_secs(60))
                    .await?;
            }
            let operator =
                OperatorProcess::spawn(cluster, &kubeconfig, IDENTITY, &args, &log).await?;
            let life = Duration::from_millis(rng.random_range(0..=LONGEST_LIFE_MS));
            tokio::time::sleep(life).await;
            operator.kill().await?;
            let left = rollouts[rollout].not_ready(&admin).await?.len();
            if whole_after[rollout].is_none() {
                if left == 0 {
                    whole_after[rollout] = Some(kill);
                } else {
                    part_way[rollout] += 1;
                }
            }
            if kill % 10 == 0 {
                eprintln!(
                    "chaos: {kill} kills in {:.0} s; roll-out {}: {left} of {} resources not Ready",
                    started.elapsed().as_secs_f64(),
                    rollout + 1,
                    rollouts[rollout].vardhub_resources()
                );
            }
        }
        let chaos_seconds = started.elapsed().as_secs_f64();
        report_log(&log, log_start)?;
        // One more start, left alone: it converges. The first roll-out's apply may still be
        // waiting for the hub's namespace, which this operator makes.
        let operator = OperatorProcess::spawn(cluster, &kubeconfig, IDENTITY, &args, &log).await?;
        anyhow::Ok((operator, chaos_seconds, Instant::now()))
    };
    // Whichever fails first is the error reported, not hidden behind the other's wait.
    let ((), (operator, chaos_seconds, calm)) =
        tokio::try_join!(rollouts[0].apply(&admin, Duration::from_secs(600)), chaos)?;
    for (i, (whole, part)) in whole_after.iter().zip(part_way).enumerate() {
        eprintln!(
            "chaos: roll-out {} (kills {}..={}): {part} kills landed before it was whole; whole \
             after kill {whole:?} (None: not while the kills went on)",
            i + 1,
            i * per_rollout + 1,
            (i + 1) * per_rollout
        );
    }
    let last = &rollouts[ROLLOUTS - 1];
    last.wait_ready(&admin, Duration::from_secs(300)).await?;
    eprintln!(
        "chaos: {KILLS} kills over {chaos_seconds:.0} s; Ready {:.1} s after the last restart",
        calm.elapsed().as_secs_f64()
    );

    // Every object `vardhub render` names is there as rendered, and nothing else was made.
    let rendered =
        vardhub::render::render(&last.resources, &render_settings(cluster, image.clone())?)?;
    let differing = differences(&admin, &rendered).await?;
    assert!(
        differing.is_empty(),
        "differ from the render: {differing:?}"
    );
    let extra = unrendered(&admin, &rendered, &last.uids(&admin).await?).await?;
    assert!(extra.is_empty(), "made but not rendered: {extra:?}");
    eprintln!(
        "chaos: the cluster holds the {} rendered objects and no others",
        rendered.len()
    );

    // Keys, credentials and buckets, as OpenBao and the S3 server hold them.
    let problems = custody_problems(cluster, last).await?;
    assert!(
        problems.is_empty(),
        "custody after the kills: {problems:#?}"
    );

    last.remove(&admin, Duration::from_secs(300)).await?;
    let (shutdown, clean) = operator.terminate(Duration::from_secs(60)).await?;
    assert!(clean, "the operator exits cleanly on SIGTERM");
    eprintln!(
        "chaos: removed; the operator exited {:.1} s after SIGTERM",
        shutdown.as_secs_f64()
    );
    label_pools(false)?;
    Ok(())
}

/// Prints what the operators' log (`log`, from byte `start`) says about the kills: leaderships
/// taken, bucket creations finished after a kill, lines at ERROR.
fn report_log(log: &std::path::Path, start: u64) -> Result<()> {
    let logged = std::fs::read(log)?;
    let logged = String::from_utf8_lossy(
        logged
            .get(usize::try_from(start).unwrap_or(0)..)
            .unwrap_or_default(),
    );
    let count = |needle: &str| logged.lines().filter(|l| l.contains(needle)).count();
    eprintln!(
        "chaos: the operators' log: {} leaderships taken, {} buckets whose creation a kill cut \
         off were finished from their claims, {} lines at ERROR",
        count("leading; starting controllers"),
        count("finishing a bucket whose creation was cut off"),
        count("\"level\":\"ERROR\"")
    );
    Ok(())
}

/// What is wrong with the keys, credentials and buckets of `environment`'s resources, read from
/// OpenBao and the S3 server with their root credentials: each OpenBao namespace and bucket
/// records its owner, each key has exactly one version and each stored credential exactly one
/// write (a second would be a duplicate issued after a kill), each credential works, and each
/// bucket is versioned, encrypted and under its policy (nothing half-made).
async fn custody_problems(
    cluster: &LocalCluster,
    environment: &Environment,
) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let bao = cluster.openbao_admin()?;
    let s3 = Storage::new(cluster.s3_settings());
    let hub = environment
        .resources
        .hubs
        .first()
        .ok_or_else(|| anyhow::anyhow!("no hub"))?;
    let hub_layout = layout::hub_layout(hub);
    // (OpenBao namespace, owner, key, credential paths, buckets)
    let mut custodians = Vec::new();
    for node in &environment.resources.nodes {
        let l = layout::node_layout(node);
        custodians.push((
            l.openbao_namespace,
            layout::bucket_owner(node),
            l.key,
            vec![l.credentials_path],
            vec![l.landing, l.standardised],
        ));
    }
    let mut hub_paths: Vec<String> = HubRole::of(hub)
        .into_iter()
        .map(layout::role_credentials_path)
        .collect();
    if hub.spec.storage_mode == StorageMode::Central {
        hub_paths.extend(
            environment
                .resources
                .nodes
                .iter()
                .map(|n| layout::ingest_credentials_path(&kube::ResourceExt::name_any(n))),
        );
    }
    custodians.push((
        hub_layout.openbao_namespace.clone(),
        layout::bucket_owner(hub),
        hub_layout.key.clone(),
        hub_paths,
        vec![
            hub_layout.landing.clone(),
            hub_layout.standardised.clone(),
            hub_layout.products.clone(),
        ],
    ));
    for (namespace, owner, key, paths, buckets) in custodians {
        match bao.namespace_owner(&namespace).await? {
            Some(Some(o)) if o == owner => {}
            other => problems.push(format!("OpenBao namespace {namespace}: owner {other:?}")),
        }
        let client = cluster.openbao_root_in(Some(&namespace))?;
        let versions = key_versions(&client, KEY_MOUNT, &key).await;
        if versions != Ok(1) {
            problems.push(format!(
                "{namespace}/{KEY_MOUNT}/keys/{key}: versions {versions:?}"
            ));
        }
        for path in &paths {
            match vaultrs::kv2::read_metadata(&client, KV_MOUNT, path).await {
                Ok(m) if m.current_version == 1 => {}
                Ok(m) => problems.push(format!(
                    "{namespace}/{KV_MOUNT}/{path}: written {} times",
                    m.current_version
                )),
                Err(e) => problems.push(format!("{namespace}/{KV_MOUNT}/{path}: {e}")),
            }
        }
        for bucket in &buckets {
            problems.extend(bucket_problems(&s3, bucket, &owner).await);
        }
        // The custodian's own credential (a node's) reaches its first bucket.
        if let Some(own) = paths.first().filter(|p| p.as_str() == "s3/node") {
            let issued: Option<IssuedCredentials> = bao
                .in_namespace(&namespace)?
                .read_secret(KV_MOUNT, own)
                .await?;
            match issued {
                Some(c) => {
                    if let Err(e) = c
                        .client()
                        .list_objects_v2()
                        .bucket(&buckets[0])
                        .send()
                        .await
                    {
                        problems.push(format!("{namespace}/{own} cannot list {}: {e}", buckets[0]));
                    }
                }
                None => problems.push(format!("{namespace}/{own}: no credential")),
            }
        }
    }
    let root = cluster.openbao_root_in(None)?;
    for svc in &environment.resources.pseudonymisation {
        let names = vardhub::controller::pseudonymisation_service::build::names(svc);
        for domain in &svc.spec.domains {
            let versions = key_versions(&root, &names.mount, &domain.name).await;
            if versions != Ok(1) {
                problems.push(format!(
                    "{}/keys/{}: versions {versions:?}",
                    names.mount, domain.name
                ));
            }
        }
    }
    Ok(problems)
}

/// How many versions a Transit key has, as OpenBao reads it.
async fn key_versions(
    client: &vaultrs::client::VaultClient,
    mount: &str,
    key: &str,
) -> Result<usize, String> {
    match vaultrs::transit::key::read(client, mount, key).await {
        Ok(k) => match k.keys {
            ReadKeyData::Symmetric(versions) => Ok(versions.len()),
            ReadKeyData::Asymmetric(versions) => Ok(versions.len()),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// What is wrong with a bucket: absent, owned by another, or missing versioning, default
/// encryption or its policy.
async fn bucket_problems(s3: &Storage, bucket: &str, owner: &str) -> Vec<String> {
    let mut problems = Vec::new();
    match s3.bucket_owner(bucket).await {
        Ok(Some(Some(o))) if o == owner => {}
        other => problems.push(format!("bucket {bucket}: owner {other:?}")),
    }
    let client = s3.client();
    let versioned = client
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .ok()
        .and_then(|v| v.status().cloned());
    if versioned != Some(aws_sdk_s3::types::BucketVersioningStatus::Enabled) {
        problems.push(format!("bucket {bucket}: versioning {versioned:?}"));
    }
    if client
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .is_err()
    {
        problems.push(format!("bucket {bucket}: no default encryption"));
    }
    if !matches!(s3.bucket_policy(bucket).await, Ok(Some(_))) {
        problems.push(format!("bucket {bucket}: no policy"));
    }
    problems
}
