//! Exposure by SFTP, end to end on the real node, with OpenSSH's own `sftp` client: a hub with
//! `exposure.sftp` runs the project's SFTP server in a real pod with a host key kept in
//! OpenBao (and published in the hub's status); a permit's holder logs in as the permit with
//! the permit's key and reads exactly its products; every other login, product, path, write
//! and shell is refused with the specific answer; revoking the permit closes an open session
//! mid-transfer; and the server's audit trail holds what the test did.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, LogParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use vardhub::api::{DataHub, DataPermit};
use vardhub_tests::{
    LocalCluster, OPERATOR_LOCK, RunningOperator, counted_accesses, data_permit, eventually,
    exposed_hub, large_object, presigned_read_seconds, remove_exposed_hub, rolled_out_pod,
    small_object,
};

const HUB: &str = "sftp-exposed";
const NS: &str = "hub-sftp-exposed";
const PORT: u16 = 2222;

/// A holder's key pair, made by OpenSSH's `ssh-keygen`.
struct KeyPair {
    private: PathBuf,
    public: String,
}

async fn key_pair(dir: &Path, name: &str) -> Result<KeyPair> {
    let private = dir.join(name);
    let made = tokio::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&private)
        .output()
        .await
        .context("running ssh-keygen (Debian's openssh-client)")?;
    if !made.status.success() {
        bail!("ssh-keygen: {}", String::from_utf8_lossy(&made.stderr));
    }
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub")))?
        .trim()
        .to_string();
    Ok(KeyPair { private, public })
}

fn permit(name: &str, product: &str, key: &str) -> Result<DataPermit> {
    data_permit(
        HUB,
        name,
        product,
        json!({"name": format!("holder of {name}"), "sshPublicKey": key}),
    )
}

/// OpenSSH's client against the pod: only the given key, the host key from the hub's status
/// checked strictly, never a password or a prompt.
struct OpenSsh {
    ip: String,
    known_hosts: PathBuf,
    work: PathBuf,
}

impl OpenSsh {
    fn options(&self, key: &Path) -> Vec<String> {
        vec![
            "-i".into(),
            key.display().to_string(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "ConnectTimeout=10".into(),
        ]
    }

    /// `sftp -b` with `commands`, as `user` with `key`.
    fn command(
        &self,
        user: &str,
        key: &Path,
        commands: &str,
        extra: &[&str],
    ) -> Result<tokio::process::Command> {
        let batch = self.work.join(format!("batch-{}", rand_name()));
        std::fs::write(&batch, commands)?;
        let mut c = tokio::process::Command::new("sftp");
        c.args(self.options(key))
            .args(extra)
            .arg("-P")
            .arg(PORT.to_string())
            .arg("-b")
            .arg(&batch)
            .arg(format!("{user}@{}", self.ip))
            .current_dir(&self.work)
            .kill_on_drop(true);
        Ok(c)
    }

    /// Starts fetching `object` at 250 kB/s, does `end` once the first bytes have arrived,
    /// and returns how many bytes had arrived when the server closed the session, having
    /// checked that it did so within 20 s, telling the client why.
    async fn cut_transfer(
        &self,
        user: &str,
        key: &Path,
        object: &str,
        end: impl AsyncFnOnce() -> Result<()>,
    ) -> Result<u64> {
        let local = self.work.join(format!("cut-{}", rand_name()));
        let mut transfer = self
            .command(
                user,
                key,
                &format!("get {object} {}\n", local.display()),
                &["-l", "2000"],
            )?
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        eventually(
            "the slow transfer to begin",
            Duration::from_secs(30),
            || async {
                Ok(std::fs::metadata(&local)
                    .ok()
                    .filter(|m| m.len() > 0)
                    .map(|_| ()))
            },
        )
        .await?;
        end().await?;
        let ended = tokio::time::timeout(Duration::from_secs(20), transfer.wait())
            .await
            .context("the session stayed open 20 s after its permit stopped granting")??;
        let mut err = String::new();
        if let Some(mut e) = transfer.stderr.take() {
            use tokio::io::AsyncReadExt as _;
            e.read_to_string(&mut err).await?;
        }
        assert!(!ended.success(), "the transfer was cut: {err}");
        assert!(
            err.contains("no longer grants access"),
            "the client was told why: {err}"
        );
        Ok(std::fs::metadata(&local)?.len())
    }

    async fn sftp(&self, user: &str, key: &Path, commands: &str) -> Result<Output> {
        Ok(tokio::time::timeout(
            Duration::from_secs(60),
            self.command(user, key, commands, &[])?.output(),
        )
        .await
        .context("sftp did not finish in 60 s")??)
    }
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

fn said(o: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The session ran, and the one command asked for was refused: permission denied, or, where
/// OpenSSH's client first looks the path up and reports a refused lookup its own way, "not
/// found". The audit trail shows the server's permission denied for each.
fn assert_denied(o: &Output, what: &str) {
    assert!(!o.status.success(), "{what} must fail: {}", said(o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        (err.contains("Permission denied") || err.contains("not found"))
            && !err.contains("(publickey)"),
        "{what}: logged in, then refused: {}",
        said(o)
    );
}

/// The login itself was refused.
fn assert_login_refused(o: &Output, what: &str) {
    assert_eq!(o.status.code(), Some(255), "{what}: {}", said(o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied (publickey)"),
        "{what}: {}",
        said(o)
    );
}

#[tokio::test]
#[ignore = "needs the local cluster and the real node: make test"]
async fn permit_holders_read_exactly_their_products_over_sftp() -> Result<()> {
    let _serial = OPERATOR_LOCK.lock().await;
    let cluster = LocalCluster::get();
    let admin = cluster.admin_client().await?;
    let operator = RunningOperator::start_with_image(cluster, "exposure-sftp-test").await?;
    let work = std::env::temp_dir().join(format!("vardhub-sftp-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let outcome = scenario(cluster, &admin, &work).await;
    let cleanup = remove_exposed_hub(&admin, HUB, &["permit-a", "permit-b"]).await;
    let _ = std::fs::remove_dir_all(&work);
    operator.stop().await?;
    outcome?;
    cleanup
}

async fn scenario(cluster: &LocalCluster, admin: &Client, work: &Path) -> Result<()> {
    let hubs: Api<DataHub> = Api::all(admin.clone());
    exposed_hub(admin, HUB, json!({"sftp": true})).await?;
    let status = eventually(
        "the hub to publish its SFTP host key",
        Duration::from_secs(60),
        || async { Ok(hubs.get(HUB).await?.status.and_then(|s| s.exposure)) },
    )
    .await?;
    assert_eq!(
        status.sftp.as_deref(),
        Some("sftp://exposure-sftp.hub-sftp-exposed.svc")
    );
    assert_eq!(status.api, None, "the API is off");
    let host_key = status.sftp_host_key.context("the host key in the status")?;
    assert!(host_key.starts_with("ssh-ed25519 "), "{host_key}");

    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NS);
    let (pod_name, ip) = rolled_out_pod(admin, NS, "exposure-sftp").await?;

    // The products, as the publish job would leave them (written as the S3 server's root).
    let s3 = cluster.s3_root();
    let bucket = format!("vardhub-hub-{HUB}-products");
    let small = small_object();
    for (key, body) in [
        ("waiting-times/waiting_times.csv", small.clone()),
        ("waiting-times/2026/q1.csv", b"quarter one".to_vec()),
        ("hip-fracture/hip_fracture.parquet", b"rows of b".to_vec()),
    ] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.into())
            .send()
            .await?;
    }

    let a = key_pair(work, "holder-a").await?;
    let b = key_pair(work, "holder-b").await?;
    let stranger = key_pair(work, "stranger").await?;
    let permits: Api<DataPermit> = Api::namespaced(admin.clone(), NS);
    for p in [
        permit("permit-a", "waiting-times", &a.public)?,
        permit("permit-b", "hip-fracture", &b.public)?,
    ] {
        let name = p.metadata.name.clone().unwrap_or_default();
        permits
            .patch(
                &name,
                &PatchParams::apply("vardhub-tests"),
                &Patch::Apply(&p),
            )
            .await?;
    }
    let known_hosts = work.join("known_hosts");
    std::fs::write(&known_hosts, format!("[{ip}]:{PORT} {host_key}\n"))?;
    let client = OpenSsh {
        ip: ip.clone(),
        known_hosts,
        work: work.to_path_buf(),
    };

    // Holder A, checking the server against the host key the hub published: its product is
    // the only directory, and its objects read back exactly.
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let listed = eventually(
        "holder A to log in (the permit reaches the server's watch)",
        Duration::from_secs(30),
        || async {
            attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let o = client.sftp("permit-a", &a.private, "ls -1 /\n").await?;
            Ok(o.status.success().then_some(o))
        },
    )
    .await?;
    let early = attempts.load(std::sync::atomic::Ordering::Relaxed) - 1;
    let names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|l| !l.starts_with("sftp>"))
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(names, vec!["waiting-times"], "{}", said(&listed));
    let got = client
        .sftp(
            "permit-a",
            &a.private,
            "ls -l /waiting-times\nget /waiting-times/waiting_times.csv whole.csv\nget /waiting-times/2026/q1.csv q1.csv\n",
        )
        .await?;
    assert!(got.status.success(), "{}", said(&got));
    assert_eq!(std::fs::read(work.join("whole.csv"))?, small);
    assert_eq!(std::fs::read(work.join("q1.csv"))?, b"quarter one");
    let long = String::from_utf8_lossy(&got.stdout);
    assert!(
        long.contains("4096") && long.contains("waiting_times.csv") && long.contains("2026"),
        "a listing with sizes and the nested prefix: {long}"
    );

    // Everything else is refused, each with permission denied.
    std::fs::write(work.join("upload.csv"), b"not allowed")?;
    for (what, commands) in [
        ("listing another product", "ls /hip-fracture\n".to_string()),
        (
            "reading another product",
            "get /hip-fracture/hip_fracture.parquet stolen\n".to_string(),
        ),
        (
            "climbing out of the product",
            "get /waiting-times/../hip-fracture/hip_fracture.parquet stolen\n".to_string(),
        ),
        (
            "writing",
            "put upload.csv /waiting-times/upload.csv\n".to_string(),
        ),
        (
            "removing",
            "rm /waiting-times/waiting_times.csv\n".to_string(),
        ),
        ("making a directory", "mkdir /waiting-times/x\n".to_string()),
        (
            "renaming",
            "rename /waiting-times/waiting_times.csv /waiting-times/moved.csv\n".to_string(),
        ),
    ] {
        let o = client.sftp("permit-a", &a.private, &commands).await?;
        assert_denied(&o, what);
    }
    assert!(!work.join("stolen").exists(), "nothing of B's reached A");
    let still = s3
        .head_object()
        .bucket(&bucket)
        .key("waiting-times/waiting_times.csv")
        .send()
        .await?;
    assert_eq!(
        still.content_length(),
        Some(4096),
        "the object is untouched"
    );
    let none = s3
        .head_object()
        .bucket(&bucket)
        .key("waiting-times/upload.csv")
        .send()
        .await;
    assert!(
        none.is_err_and(|e| e.into_service_error().is_not_found()),
        "nothing was written"
    );

    // Logins: a stranger's key, A's key for B's permit, and a permit that does not exist are
    // refused at authentication; no shell or command runs even for a valid holder.
    for (what, user, key) in [
        ("a key no permit names", "permit-a", &stranger.private),
        ("A's key for B's permit", "permit-b", &a.private),
        ("a permit that does not exist", "permit-z", &a.private),
    ] {
        let o = client.sftp(user, key, "ls /\n").await?;
        assert_login_refused(&o, what);
    }
    let shell = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("ssh")
            .args(client.options(&a.private))
            .args(["-p", &PORT.to_string(), &format!("permit-a@{ip}"), "id"])
            .output(),
    )
    .await??;
    assert!(
        !shell.status.success() && shell.stdout.is_empty(),
        "no command runs: {}",
        said(&shell)
    );

    // Holder B reads its own product: the figures for the permit's status.
    let got_b = client
        .sftp(
            "permit-b",
            &b.private,
            "get /hip-fracture/hip_fracture.parquet b.parquet\n",
        )
        .await?;
    assert!(got_b.status.success(), "{}", said(&got_b));
    assert_eq!(std::fs::read(work.join("b.parquet"))?, b"rows of b");

    // Throughput (figures only, no assertion on time): a 32 MiB object over SFTP with
    // OpenSSH's client, and straight from the S3 server through a presigned URL, best of
    // three each.
    let large = large_object();
    s3.put_object()
        .bucket(&bucket)
        .key("hip-fracture/large.bin")
        .body(large.clone().into())
        .send()
        .await?;
    let mib = large.len() as f64 / f64::from(1u32 << 20);
    let mut over_sftp = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let o = client
            .sftp(
                "permit-b",
                &b.private,
                "get /hip-fracture/large.bin large.bin\n",
            )
            .await?;
        over_sftp = over_sftp.min(started.elapsed().as_secs_f64());
        assert!(o.status.success(), "{}", said(&o));
        assert!(
            std::fs::read(work.join("large.bin"))? == large,
            "the large object reads back exactly"
        );
    }
    let direct =
        presigned_read_seconds(&s3, &bucket, "hip-fracture/large.bin", large.len()).await?;
    println!(
        "throughput of {mib:.0} MiB: SFTP (OpenSSH client, one session each) {:.0} MiB/s, S3 directly (HTTP, presigned) {:.0} MiB/s, SFTP/direct {:.2}",
        mib / over_sftp,
        mib / direct,
        direct / over_sftp
    );

    // Revocation closes an open session mid-transfer: A fetches 8 MiB at 250 kB/s, and the
    // permit is deleted once the first bytes have arrived.
    s3.put_object()
        .bucket(&bucket)
        .key("waiting-times/slow.bin")
        .body(large[..8 << 20].to_vec().into())
        .send()
        .await?;
    let cut = client
        .cut_transfer(
            "permit-a",
            &a.private,
            "/waiting-times/slow.bin",
            async || {
                permits.delete("permit-a", &DeleteParams::default()).await?;
                Ok(())
            },
        )
        .await?;
    assert!(cut < 8 << 20, "only part of the object arrived: {cut}");
    let after = client.sftp("permit-a", &a.private, "ls /\n").await?;
    assert_login_refused(&after, "A after revocation");

    // The audit trail, read from the pod's log.
    let records = eventually("the audit records", Duration::from_secs(30), || async {
        let logs = pods.logs(&pod_name, &LogParams::default()).await?;
        let records: Vec<Value> = logs
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["audit"] == "vardhub-exposure")
            .collect();
        Ok(records
            .iter()
            .any(|r| r["operation"] == "disconnect")
            .then_some(records))
    })
    .await?;
    assert!(records.iter().all(|r| r["channel"] == "sftp"));
    let count = |f: &dyn Fn(&Value) -> bool| records.iter().filter(|r| f(r)).count();
    println!(
        "audit: {} records: {} logins, {} refused logins, {} reads, {} lists, {} refused",
        records.len(),
        count(&|r| r["operation"] == "login" && r["outcome"] == "served"),
        count(&|r| r["operation"] == "login" && r["outcome"] != "served"),
        count(&|r| r["operation"] == "read" && r["outcome"] == "served"),
        count(&|r| r["operation"] == "list" && r["outcome"] == "served"),
        count(&|r| r["operation"] != "login" && r["outcome"] == "forbidden"),
    );
    for r in records
        .iter()
        .filter(|r| r["outcome"] != "served" && r["operation"] != "login")
    {
        println!(
            "refused: {} {} {} {}",
            r["operation"], r["permit"], r["product"], r["object"]
        );
    }
    // Nothing but what the test did: one login per session it opened (fifteen), the four
    // refused logins (and any attempt made before the permit reached the server), seven files
    // read (the cut one included), two listings, and refusals.
    assert_eq!(
        count(&|r| r["operation"] == "login" && r["outcome"] == "served"),
        15
    );
    assert_eq!(
        count(&|r| r["operation"] == "login" && r["outcome"] == "unauthenticated"),
        4 + early
    );
    assert_eq!(
        count(&|r| r["operation"] == "read" && r["outcome"] == "served"),
        7
    );
    assert_eq!(
        count(&|r| r["operation"] == "list" && r["outcome"] == "served"),
        2
    );
    assert_eq!(
        count(&|r| r["outcome"] == "served"
            && !["login", "read", "list"].contains(&r["operation"].as_str().unwrap_or(""))),
        0,
        "nothing else was served"
    );
    let read_of = |permit: &str, object: &str| {
        records
            .iter()
            .filter(|r| {
                r["operation"] == "read"
                    && r["outcome"] == "served"
                    && r["permit"] == permit
                    && r["object"] == object
            })
            .map(|r| r["bytes"].as_i64().unwrap_or(-1))
            .collect::<Vec<_>>()
    };
    assert_eq!(read_of("permit-a", "waiting_times.csv"), vec![4096]);
    assert_eq!(read_of("permit-a", "2026/q1.csv"), vec![11]);
    assert_eq!(read_of("permit-b", "hip_fracture.parquet"), vec![9]);
    assert_eq!(read_of("permit-b", "large.bin"), vec![32 << 20; 3]);
    let cut = read_of("permit-a", "slow.bin");
    assert!(
        cut.len() == 1 && cut[0] > 0 && cut[0] < 8 << 20,
        "the cut transfer is recorded with what was sent: {cut:?}"
    );
    // Every refusal after login is recorded as forbidden: at least one per attempt above on
    // B's product (the client looks a path up before it lists or reads it), and one per
    // change asked for.
    assert!(
        count(&|r| r["outcome"] == "forbidden"
            && r["product"] == "hip-fracture"
            && r["permit"] == "permit-a")
            >= 3,
        "the listing, the read and the climb into B's product are recorded"
    );
    for operation in ["write", "remove", "mkdir", "rename"] {
        assert_eq!(
            count(&|r| r["operation"] == operation
                && r["outcome"] == "forbidden"
                && r["product"] == "waiting-times"
                && r["permit"] == "permit-a"),
            1,
            "the refused {operation} is recorded"
        );
    }
    assert_eq!(
        count(&|r| r["outcome"] == "served"
            && r["product"] == "hip-fracture"
            && r["permit"] == "permit-a"),
        0,
        "nothing of B's product was served to A"
    );
    // Refused logins name what was tried (the client offers the one key once each).
    for user in ["permit-a", "permit-b", "permit-z"] {
        assert!(
            count(&|r| r["operation"] == "login"
                && r["outcome"] == "unauthenticated"
                && r["permit"] == user)
                >= 1,
            "the refused login as {user}"
        );
    }
    assert_eq!(
        count(&|r| r["operation"] == "disconnect" && r["permit"] == "permit-a"),
        1
    );
    let logs = pods.logs(&pod_name, &LogParams::default()).await?;
    for secret in [&a.public, &b.public, &host_key] {
        let body = secret.split(' ').nth(1).unwrap_or_default();
        assert!(!logs.contains(body), "no key in the server's log");
    }

    // Permit B's status counts what its holder did over SFTP, as the audit trail records it.
    let of_b: Vec<&Value> = records
        .iter()
        .filter(|r| r["permit"] == "permit-b" && r["operation"] != "login")
        .collect();
    let served_b = of_b.iter().filter(|r| r["outcome"] == "served").count() as i64;
    let bytes_b: i64 = of_b.iter().filter_map(|r| r["bytes"].as_i64()).sum();
    let counted = counted_accesses(admin, HUB, "permit-b", true, served_b).await?;
    assert_eq!(counted.bytes, bytes_b);

    // Expiry closes an open session too: B's permit ends three seconds from now while B
    // fetches the large object slowly.
    let cut = client
        .cut_transfer(
            "permit-b",
            &b.private,
            "/hip-fracture/large.bin",
            async || {
                let until = (k8s_openapi::jiff::Timestamp::now()
                    + k8s_openapi::jiff::SignedDuration::from_secs(3))
                .round(k8s_openapi::jiff::Unit::Second)?;
                permits
                    .patch(
                        "permit-b",
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"validUntil": until.to_string()}})),
                    )
                    .await?;
                Ok(())
            },
        )
        .await?;
    assert!(cut < 32 << 20, "only part of the object arrived: {cut}");
    let after = client.sftp("permit-b", &b.private, "ls /\n").await?;
    assert_login_refused(&after, "B after expiry");

    // Switched off, the server goes, and nobody can log in to OpenBao as it any more.
    hubs.patch(
        HUB,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"exposure": {"sftp": false}}})),
    )
    .await?;
    eventually(
        "the SFTP server to be gone",
        Duration::from_secs(60),
        || async {
            Ok(deployments
                .get_opt("exposure-sftp")
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await?;
    Ok(())
}
