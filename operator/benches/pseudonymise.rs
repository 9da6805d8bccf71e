//! Pseudonymisation throughput, printed as figures (not asserted).
//!
//! (a) HMAC-SHA256 in process, one core: the physical limit.
//! (a*) (a) on every core at once, per core: what a core does while the others are busy too,
//!      as they are when the service's client shares the machine (for information).
//! (a2) the service's whole work for a row in process, one core: the written identifier
//!      validated into its canonical form, then its HMAC (for information beside (a)).
//! (b) OpenBao Transit batch HMAC, called directly (sequential and 4 concurrent batches).
//! (e) single-item Transit calls: the naive baseline.
//! (c) the service over HTTPS in `transit` mode (JSON batches of 10,000).
//! (d) the service over HTTPS in `local` mode (JSON batches of 10,000).
//! (f) the same with Arrow IPC streams of 10,000 (the bulk path).
//! (c), (d) and (f) are each timed five times, each time just after (a) is measured again on
//! 200,000 records, and the median run (by its rate per core against that (a)) printed. A
//! shared machine's speed drifts by tens of percent between minutes; a pair measured together
//! is compared under the same conditions. (d) and (f) also print the cores the service's
//! threads used, measured from the kernel's scheduler statistics, and the rate per core used,
//! which the target compares with (a).
//! Sweden's population (10.5 million identifiers) through the service in `local` mode as one
//! NDJSON stream, and in process, with peak memory.
//!
//! Client and server share the machine's cores, as they would on one node. The service runs
//! as in production: over HTTPS with a certificate from OpenBao's PKI engine, and every request
//! carries a ServiceAccount token that the service verifies against the local cluster's
//! published keys (KUBECONFIG, from the cluster's `env`). It is not throttled.

use std::time::Instant;

use futures::StreamExt;

use vardhub::adapters::openbao::{MAX_BATCH, Transit};
use vardhub::pseudonymisation::identifier::{canonical_personal, luhn_check_digit, parse_personal};
use vardhub::pseudonymisation::pseudonym::LocalKey;
use zeroize::Zeroizing;

const POPULATION: usize = 10_500_000;

fn identifiers(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let year = 1930 + (i / 1_000_000) % 90;
            let day = 1 + (i / 1000) % 28;
            let nine = format!("{:02}01{day:02}{:03}", year % 100, i % 1000);
            let ten = format!("{nine}{}", luhn_check_digit(&nine));
            parse_personal(&ten, 2026)
                .map(|id| id.canonical().to_string())
                .unwrap_or_default()
        })
        .collect()
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The audience of the benchmarked service.
const AUDIENCE: &str = "vardhub.io/pseudonymisation/default/vardhub-bench";

/// Authentication as in production: the client presents a ServiceAccount token for the
/// service's audience, which the service verifies against the API server's published keys
/// (once per request) and meets with its grants.
struct Authenticated {
    access: vardhub::pseudonymisation::service::Access,
    client: reqwest::Client,
}

/// The name the benchmarked service's certificate carries; the client resolves it to
/// 127.0.0.1.
const BENCH_HOST: &str = "pseudo.vardhub-bench.svc";
/// The PKI mount that issues the benchmarked service its certificate.
const BENCH_PKI: &str = "vardhub-bench-pki";

/// A ServiceAccount `default/vardhub-bench` of the cluster KUBECONFIG names, its token, and
/// a grant of the `bench` domain to it; a PKI engine in OpenBao (`addr`, root `token`) for the
/// service's certificate, and a client that trusts only its CA.
async fn authenticated(addr: &str, token: &str) -> anyhow::Result<Authenticated> {
    use vardhub::adapters::openbao::{Admin, ServerPki, ca_certificate};
    let pki = ServerPki {
        mount: BENCH_PKI.into(),
        names: vec![BENCH_HOST.into()],
    };
    Admin::new(addr, token)?
        .ensure_server_pki(&pki, "vardhub bench CA")
        .await?;
    let ca = ca_certificate(&reqwest::Client::new(), addr, BENCH_PKI).await?;
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use kube::api::{Patch, PatchParams};
    use vardhub::pseudonymisation::access::{Grants, Verifier};
    let kube = kube::Client::try_default().await?;
    let accounts = kube::Api::<ServiceAccount>::namespaced(kube.clone(), "default");
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "vardhub-bench"}}))?;
    accounts
        .patch(
            "vardhub-bench",
            &PatchParams::apply("vardhub-bench"),
            &Patch::Apply(&account),
        )
        .await?;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![AUDIENCE.into()]),
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let token = accounts
        .create_token_request("vardhub-bench", &Default::default(), &request)
        .await?
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| anyhow::anyhow!("no token issued"))?;
    let mut bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
    bearer.set_sensitive(true);
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes())?])
        // The URL's port is used; only the address comes from here.
        .resolve(BENCH_HOST, std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            bearer,
        )]))
        .build()?;
    Ok(Authenticated {
        access: vardhub::pseudonymisation::service::Access {
            verifier: std::sync::Arc::new(Verifier::discover(kube, AUDIENCE).await?),
            grants: Grants::parse(&["bench=default/vardhub-bench"]).map_err(anyhow::Error::msg)?,
            // The benchmark measures the service with its audit trail, which it discards.
            audit: vardhub::pseudonymisation::audit::AuditLog::to(std::io::sink()),
            // Unthrottled: the benchmark measures what one service can do.
            throttle: None,
        },
        client,
    })
}

/// The name of the service runtime's threads, whose CPU time is the service's.
const SERVICE_THREADS: &str = "vardhub-svc";

/// CPU time, in seconds, that this process's threads named [`SERVICE_THREADS`] have run
/// (the kernel's scheduler statistics, in nanoseconds).
fn service_cpu_secs() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm"))
                .is_ok_and(|c| c.trim_end() == SERVICE_THREADS)
        })
        .filter_map(|t| {
            let stat = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    nanos as f64 / 1e9
}

/// The service runs on its own runtime, whose two worker threads are the only ones named
/// [`SERVICE_THREADS`], so that its CPU time is told from the client's.
async fn start_service(
    addr: &str,
    token: &str,
    version: u64,
    local: bool,
    auth: &Authenticated,
    runtime: &tokio::runtime::Handle,
) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    use vardhub::pseudonymisation::service::{Auth, Config, Service, TlsSettings};
    let service = Service::start(Config {
        openbao_addr: addr.into(),
        tls: Some(TlsSettings {
            pki_mount: BENCH_PKI.into(),
            names: vec![BENCH_HOST.into()],
        }),
        auth: Auth::Token(token.into()),
        transit_mount: "vardhub-bench-transit".into(),
        local,
        reversible: Vec::new(),
        domains: vec![("bench".into(), "bench".into(), version)],
        access: auth.access.clone(),
    })
    .await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let base = format!("https://{BENCH_HOST}:{}", listener.local_addr()?.port());
    let task = runtime.spawn(async move {
        if let Ok(listener) = tokio::net::TcpListener::from_std(listener) {
            let _ = service.serve(listener, std::future::pending()).await;
        }
    });
    Ok((base, task))
}

/// Records per second through the service, the cores its threads used meanwhile, and (a) as
/// measured just before.
struct Rate {
    records_per_sec: f64,
    cores: f64,
    in_process: f64,
}

impl Rate {
    /// Records per second per core the service used.
    fn per_core(&self) -> f64 {
        self.records_per_sec / self.cores
    }

    /// The rate per core against (a) measured just before the same run: the machine's speed
    /// drifts between runs (a shared machine, its clock), and a pair measured together is
    /// compared under the same conditions.
    fn paired(&self) -> f64 {
        self.per_core() / self.in_process
    }
}

/// (a) over `sample`: in-process HMAC-SHA256 on one core, records per second.
fn in_process_rate(key: &LocalKey, sample: &[String]) -> f64 {
    let mut out = String::with_capacity(64);
    let mut checksum = 0usize;
    let started = Instant::now();
    for id in sample {
        key.pseudonym_into(id.as_bytes(), &mut out);
        checksum = checksum.wrapping_add(out.len());
    }
    let secs = started.elapsed().as_secs_f64();
    std::hint::black_box(checksum);
    rate(sample.len(), secs)
}

/// Requests of 10,000 identifiers: JSON batches, or Arrow IPC streams.
fn bodies(written: &[String], arrow: bool) -> anyhow::Result<Vec<Vec<u8>>> {
    use arrow_array::{RecordBatch, StringArray};
    written
        .chunks(10_000)
        .map(|c| {
            if !arrow {
                let json = serde_json::json!({"kind": "personnummer", "identifiers": c});
                return Ok(serde_json::to_vec(&json)?);
            }
            let column = StringArray::from_iter_values(c);
            let batch =
                RecordBatch::try_from_iter([("identifier", std::sync::Arc::new(column) as _)])?;
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())?;
            writer.write(&batch)?;
            Ok(writer.into_inner()?)
        })
        .collect()
}

/// Records per second through the service's JSON API, two requests in flight, once the
/// client is connected and its token confirmed (one batch first, not timed): a caller's
/// steady state. The cold start is what the NDJSON figure below includes.
#[allow(clippy::too_many_arguments)]
async fn http_rate(
    addr: &str,
    token: &str,
    version: u64,
    local: bool,
    written: &[String],
    arrow: bool,
    auth: &Authenticated,
    runtime: &tokio::runtime::Handle,
    baseline: impl Fn() -> f64,
) -> anyhow::Result<Rate> {
    let (base, server) = start_service(addr, token, version, local, auth, runtime).await?;
    let http = auth.client.clone();
    let url = format!("{base}/v1/domains/bench/pseudonyms");
    let content_type = if arrow {
        vardhub::pseudonymisation::arrow::CONTENT_TYPE
    } else {
        "application/json"
    };
    let bodies = bodies(written, arrow)?;
    let warm = http
        .post(&url)
        .header("content-type", content_type)
        .body(bodies[0].clone())
        .send()
        .await?;
    anyhow::ensure!(warm.status().is_success(), "status {}", warm.status());
    warm.bytes().await?;
    // Runs of a quarter of a second move with the machine's load: the median of five.
    let mut runs = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let in_process = baseline();
        let cpu = service_cpu_secs();
        let started = Instant::now();
        let sends = bodies.iter().map(|b| {
            let http = http.clone();
            let url = url.clone();
            let body = b.clone();
            async move {
                let r = http
                    .post(url)
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "status {}", r.status());
                r.bytes().await?;
                anyhow::Ok(())
            }
        });
        let results: Vec<_> = futures::stream::iter(sends)
            .buffer_unordered(2)
            .collect()
            .await;
        for r in results {
            r?;
        }
        let secs = started.elapsed().as_secs_f64();
        runs.push(Rate {
            records_per_sec: rate(written.len(), secs),
            cores: (service_cpu_secs() - cpu) / secs,
            in_process,
        });
    }
    server.abort();
    runs.sort_by(|x, y| x.paired().total_cmp(&y.paired()));
    Ok(runs.swap_remove(ROUNDS / 2))
}

/// How many times (c), (d) and (f) are timed.
const ROUNDS: usize = 5;

fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs
}

fn main() -> anyhow::Result<()> {
    let key = LocalKey::new(1, Zeroizing::new(vec![42u8; 32]));
    let sample = identifiers(1_000_000);

    // The fastest form in process: one buffer reused for every pseudonym.
    let mut out = String::with_capacity(64);
    let started = Instant::now();
    let mut checksum = 0usize;
    for id in &sample {
        key.pseudonym_into(id.as_bytes(), &mut out);
        checksum = checksum.wrapping_add(out.len());
    }
    let a = rate(sample.len(), started.elapsed().as_secs_f64());
    println!(
        "(a) in-process HMAC-SHA256, 1 core:       {a:>12.0} records/s  ({} records)",
        sample.len()
    );

    // The same on every core at once, as when the service's client and server share the
    // machine: cores that share caches, memory bandwidth or a physical core slow each other,
    // and a core's rate is then below (a). Printed per core, for information beside (a).
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let started = Instant::now();
    let busy: u64 = std::thread::scope(|scope| {
        let workers: Vec<_> = sample
            .chunks(sample.len().div_ceil(cores))
            .map(|chunk| {
                let key = &key;
                scope.spawn(move || {
                    let mut out = String::with_capacity(64);
                    let mut sum = 0u64;
                    for id in chunk {
                        key.pseudonym_into(id.as_bytes(), &mut out);
                        sum = sum.wrapping_add(out.len() as u64);
                    }
                    sum
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    let a_busy = rate(sample.len(), started.elapsed().as_secs_f64()) / cores as f64;
    checksum = checksum.wrapping_add(busy as usize);
    println!("(a*) the same on all {cores} cores at once, per core: {a_busy:>9.0} records/s");

    // The service's whole job for a row, in process: the written form validated into its
    // canonical form, then its pseudonym. For information beside (a), not a target.
    let written_sample: Vec<String> = sample
        .iter()
        .map(|c| format!("{}-{}", &c[2..8], &c[8..]))
        .collect();
    let started = Instant::now();
    for w in &written_sample {
        if let Ok((_, canonical)) = canonical_personal(w, 2026) {
            key.pseudonym_into(&canonical, &mut out);
            checksum = checksum.wrapping_add(out.len());
        }
    }
    let a2 = rate(written_sample.len(), started.elapsed().as_secs_f64());
    println!("(a2) in process, validated then HMAC, 1 core: {a2:>9.0} records/s");

    let runtime = tokio::runtime::Runtime::new()?;
    let service_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(SERVICE_THREADS)
        .enable_all()
        .build()?;
    if let (Ok(addr), Ok(token)) = (std::env::var("VAULT_ADDR"), std::env::var("VAULT_TOKEN")) {
        runtime.block_on(async {
            let transit = Transit::new(&addr, &token, "vardhub-bench-transit")?;
            transit.ensure_mount().await?;
            let version = transit.ensure_key("bench", true).await?.latest_version;
            let inputs: Vec<&[u8]> = sample[..200_000].iter().map(|s| s.as_bytes()).collect();

            let started = Instant::now();
            transit.hmac_batch("bench", version, &inputs).await?;
            let b = rate(inputs.len(), started.elapsed().as_secs_f64());
            println!(
                "(b) Transit batch HMAC ({MAX_BATCH}/request), sequential: {b:>12.0} records/s"
            );

            let started = Instant::now();
            let chunks: Vec<&[&[u8]]> = inputs.chunks(inputs.len() / 4 + 1).collect();
            let tasks = chunks
                .iter()
                .map(|c| transit.hmac_batch("bench", version, c));
            for result in futures::future::join_all(tasks).await {
                result?;
            }
            let b4 = rate(inputs.len(), started.elapsed().as_secs_f64());
            println!("(b) Transit batch HMAC, 4 concurrent:     {b4:>12.0} records/s");

            let started = Instant::now();
            for input in &inputs[..2000] {
                transit.hmac_one("bench", version, input).await?;
            }
            let e = rate(2000, started.elapsed().as_secs_f64());
            println!("(e) Transit single-item calls:            {e:>12.0} records/s");
            let b = b4.max(b);

            let written: Vec<String> = sample[..200_000].iter().map(|c| format!("{}-{}", &c[2..8], &c[8..])).collect();
            let auth = authenticated(&addr, &token).await?;
            let service = service_runtime.handle();
            // (a) on a fifth of the sample, measured before each run of (c), (d) and (f).
            let baseline = || in_process_rate(&key, &sample[..200_000]);
            let c = http_rate(&addr, &token, version, false, &written, false, &auth, service, baseline).await?.records_per_sec;
            println!("(c) service, transit mode, HTTPS:         {c:>12.0} records/s");
            let written = &written_sample;
            let d = http_rate(&addr, &token, version, true, written, false, &auth, service, baseline).await?;
            println!(
                "(d) service, local mode, HTTPS, JSON:     {:>12.0} records/s  ({} records; the service used {:.2} cores: {:.0} records/s per core)",
                d.records_per_sec, written.len(), d.cores, d.per_core()
            );
            let f = http_rate(&addr, &token, version, true, written, true, &auth, service, baseline).await?;
            println!(
                "(f) service, local mode, HTTPS, Arrow:    {:>12.0} records/s  ({} records; the service used {:.2} cores: {:.0} records/s per core)",
                f.records_per_sec, written.len(), f.cores, f.per_core()
            );
            println!(
                "    per core used, against (a) measured just before the same run (the median run): d/a = {:.2} ((a) {:.0}), f/a = {:.2} ((a) {:.0}) (target >= 0.8)",
                d.paired(),
                d.in_process,
                f.paired(),
                f.in_process
            );
            println!(
                "    against the first (a): d/a = {:.2}, f/a = {:.2}; d/b = {:.1}, f/b = {:.1} (target >= 10), c/b = {:.2} (target >= 0.8), b/e = {:.0}",
                d.per_core() / a,
                f.per_core() / a,
                d.records_per_sec / b,
                f.records_per_sec / b,
                c / b,
                b / e
            );
            println!(
                "    against (a2), the same work in process: d/a2 = {:.2}, f/a2 = {:.2}; against (a*), every core busy: d/a* = {:.2}, f/a* = {:.2} (for information)",
                d.per_core() / a2,
                f.per_core() / a2,
                d.per_core() / a_busy,
                f.per_core() / a_busy
            );

            let population = identifiers(POPULATION);
            let mut body = String::with_capacity(POPULATION * 16);
            for c in &population {
                body.push('"');
                body.push_str(&c[2..8]);
                body.push('-');
                body.push_str(&c[8..]);
                body.push_str("\"\n");
            }
            drop(population);
            let (base, server) = start_service(&addr, &token, version, true, &auth, service_runtime.handle()).await?;
            let started = Instant::now();
            let answer = auth
                .client
                .post(format!("{base}/v1/domains/bench/pseudonyms"))
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await?
                .text()
                .await?;
            let secs = started.elapsed().as_secs_f64();
            let lines = answer.lines().count();
            server.abort();
            println!(
                "service, local mode, NDJSON stream of {lines} identifiers: {secs:.1} s ({:.0} records/s)",
                rate(lines, secs)
            );
            anyhow::Ok(())
        })?;
    } else {
        println!(
            "(b), (e): set VAULT_ADDR and VAULT_TOKEN (eval \"$(environments/local/cluster/cluster.sh env)\")"
        );
    }

    drop(sample);
    let population = identifiers(POPULATION);
    let before = peak_rss_mib();
    let started = Instant::now();
    for id in &population {
        key.pseudonym_into(id.as_bytes(), &mut out);
        checksum = checksum.wrapping_add(out.len());
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "in process, {POPULATION} identifiers:      {secs:>8.2} s ({:.0} records/s); peak memory of the bench process {:.0} MiB ({before:.0} MiB before this step)",
        rate(POPULATION, secs),
        peak_rss_mib()
    );
    std::hint::black_box(checksum);
    Ok(())
}
