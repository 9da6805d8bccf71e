//! Pseudonymisation throughput, printed as figures (not asserted).
//!
//! (a) HMAC-SHA256 in process, one core: the physical limit.
//! (b) OpenBao Transit batch HMAC, called directly (sequential and 4 concurrent batches).
//! (e) single-item Transit calls: the naive baseline.
//! local: Sweden's population (10.5 million identifiers) in process, with peak memory.
//!
//! The HTTP service's figures (c, d) are added when the service lands.

use std::time::Instant;

use vardhub::adapters::openbao::{MAX_BATCH, Transit};
use vardhub::pseudonymisation::identifier::{luhn_check_digit, parse_personal};
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

fn rate(n: usize, secs: f64) -> f64 {
    n as f64 / secs
}

fn main() -> anyhow::Result<()> {
    let key = LocalKey::new(1, Zeroizing::new(vec![42u8; 32]));
    let sample = identifiers(1_000_000);

    let started = Instant::now();
    let mut checksum = 0usize;
    for id in &sample {
        checksum = checksum.wrapping_add(key.pseudonym(id.as_bytes()).len());
    }
    let a = rate(sample.len(), started.elapsed().as_secs_f64());
    println!(
        "(a) in-process HMAC-SHA256, 1 core:       {a:>12.0} records/s  ({} records)",
        sample.len()
    );

    let runtime = tokio::runtime::Runtime::new()?;
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
            println!(
                "    ratios: a/b = {:.1}, b/e = {:.1}",
                a / b4.max(b),
                b4.max(b) / e
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
    let started = Instant::now();
    for id in &population {
        checksum = checksum.wrapping_add(key.pseudonym(id.as_bytes()).len());
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "local mode, {POPULATION} identifiers:      {secs:>8.2} s ({:.0} records/s), peak memory {:.0} MiB (includes the input held in memory)",
        rate(POPULATION, secs),
        peak_rss_mib()
    );
    std::hint::black_box(checksum);
    Ok(())
}
