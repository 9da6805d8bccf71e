//! The reference data flow at scale, printed as figures (not asserted): by default 1,000,000
//! synthetic patients over three regions, every step in this process with the files it would
//! store encoded and decoded as they are in S3 (CSV extracts, Parquet tables), and the
//! pseudonyms derived in process as the pseudonymisation service's `local` mode does.
//!
//! Figures: records per second of each step, the whole flow's time, and the bytes stored and
//! copied between region and hub in each storage mode; also written as JSON to
//! `target/bench/flow.json` for `vardhub compare --measured`.
//!
//! `cargo bench -p vardhub --bench flow` (`VARDHUB_BENCH_PATIENTS=N` for another size).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use vardhub::flow::export::Pseudonymiser;
use vardhub::flow::omop::Omop;
use vardhub::flow::synth::{self, Params};
use vardhub::flow::{mapping, publish, report, standardise};
use vardhub::pseudonymisation::pseudonym::LocalKey;
use zeroize::Zeroizing;

#[derive(Default, Serialize)]
struct Step {
    records: u64,
    seconds: f64,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Mode {
    /// Bytes kept in the regions' buckets.
    stored_in_regions: u64,
    /// Bytes kept in the hub's buckets.
    stored_in_hub: u64,
    /// Bytes that cross from a region to the hub.
    copied_to_hub: u64,
}

#[derive(Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Figures {
    patients: u64,
    regions: usize,
    steps: BTreeMap<&'static str, Step>,
    whole_flow_seconds: f64,
    central: Mode,
    federated: Mode,
}

fn size(files: &[(String, Vec<u8>)]) -> u64 {
    files.iter().map(|(_, b)| b.len() as u64).sum()
}

fn rows(omop: &Omop) -> u64 {
    omop.counts().values().sum()
}

fn main() -> anyhow::Result<()> {
    let patients = std::env::var("VARDHUB_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let params = Params {
        seed: 1,
        patients,
        regions: vec!["01".into(), "03".into(), "14".into()],
        defects_per_mille: 2,
    };
    let key = Pseudonymiser::Local(LocalKey::new(1, Zeroizing::new(vec![7; 32])));
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let mut f = Figures {
        patients,
        regions: params.regions.len(),
        ..Figures::default()
    };
    let mut step = |name: &'static str, records: u64, seconds: f64| {
        let s = f.steps.entry(name).or_default();
        s.records += records;
        s.seconds += seconds;
    };
    let started = Instant::now();
    let mut standardised = Vec::new();
    let (mut central, mut federated) = (Mode::default(), Mode::default());
    for (n, county) in params.regions.iter().enumerate() {
        let t = Instant::now();
        let source = synth::region(&params, n);
        let extract = synth::to_csv(&source)?;
        let records =
            (source.patients.len() + source.kontakter.len() + source.atgarder.len()) as u64;
        step(
            "synthetic extract (CSV)",
            records,
            t.elapsed().as_secs_f64(),
        );
        let extract_bytes: u64 = extract.values().map(|b| b.len() as u64).sum();

        let t = Instant::now();
        let source = synth::from_csv(|name| Ok(extract.get(name).cloned().unwrap_or_default()))?;
        let omop = mapping::map(&source);
        let omop_files = omop.to_files(&[])?;
        step(
            "mapping to OMOP (CSV in, Parquet out)",
            records,
            t.elapsed().as_secs_f64(),
        );

        let t = Instant::now();
        let omop = Omop::from_files(|name| {
            Ok(omop_files
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.clone())
                .unwrap_or_default())
        })?;
        let identifiers: Vec<&str> = omop
            .person
            .iter()
            .map(|p| p.person_source_value.as_deref().unwrap_or_default())
            .collect();
        let t_pseudo = Instant::now();
        let pseudonyms = runtime.block_on(key.pseudonyms("bench", &identifiers))?;
        step(
            "pseudonyms, local mode (identifiers)",
            identifiers.len() as u64,
            t_pseudo.elapsed().as_secs_f64(),
        );
        let hub = vardhub::flow::export::pseudonymise(&omop, county.parse()?, &pseudonyms);
        let export_files = hub.to_files(&[])?;
        step(
            "export (Parquet in and out, with pseudonyms)",
            rows(&omop),
            t.elapsed().as_secs_f64(),
        );

        let t = Instant::now();
        let landed = Omop::from_files(|name| {
            Ok(export_files
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, b)| b.clone())
                .unwrap_or_default())
        })?;
        let outcome = standardise::standardise(&landed);
        let std_files = outcome.standardised.to_files(&[])?;
        let quarantine_files = outcome.quarantined.to_files(&[])?;
        step(
            "standardise (Parquet in and out)",
            rows(&landed),
            t.elapsed().as_secs_f64(),
        );

        let (omop_bytes, export_bytes) = (size(&omop_files), size(&export_files));
        let std_bytes = size(&std_files) + size(&quarantine_files);
        central.stored_in_regions += extract_bytes + omop_bytes;
        central.stored_in_hub += export_bytes + std_bytes;
        central.copied_to_hub += export_bytes;
        federated.stored_in_regions += extract_bytes + omop_bytes + std_bytes;
        standardised.push((county.clone(), outcome.standardised));
    }

    let t = Instant::now();
    let mut hip = Vec::new();
    for (county, omop) in &standardised {
        hip.extend(publish::hip_fracture(county, omop));
    }
    let cells = publish::waiting_times(standardised.iter().map(|(c, o)| (c.as_str(), o)), 5);
    let hip_bytes = vardhub::flow::table::to_parquet(&hip, &[])?;
    let cell_bytes = vardhub::flow::table::to_parquet(&cells, &[])?;
    let page = report::html("hip-fracture", &report::indicators(&hip, 5), 5);
    let input: u64 = standardised.iter().map(|(_, o)| rows(o)).sum();
    step("publish and report", input, t.elapsed().as_secs_f64());
    let product_bytes = (hip_bytes.len() + cell_bytes.len() + page.len()) as u64;
    central.stored_in_hub += product_bytes;
    federated.stored_in_hub += product_bytes;
    federated.copied_to_hub += product_bytes;
    f.whole_flow_seconds = started.elapsed().as_secs_f64();
    f.central = central;
    f.federated = federated;

    println!(
        "the reference flow: {patients} patients over {} regions",
        f.regions
    );
    println!(
        "{:<46} {:>12} {:>9} {:>14}",
        "step", "records", "seconds", "records/s"
    );
    for (name, s) in &f.steps {
        println!(
            "{name:<46} {:>12} {:>9.2} {:>14.0}",
            s.records,
            s.seconds,
            s.records as f64 / s.seconds.max(1e-9)
        );
    }
    println!("whole flow: {:.1} s", f.whole_flow_seconds);
    let mb = |b: u64| b as f64 / 1e6;
    for (name, m) in [("central", &f.central), ("federated", &f.federated)] {
        println!(
            "{name:<10} stored in regions {:>8.1} MB, in the hub {:>8.1} MB, copied to the hub {:>8.1} MB",
            mb(m.stored_in_regions),
            mb(m.stored_in_hub),
            mb(m.copied_to_hub)
        );
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("flow.json"), serde_json::to_vec_pretty(&f)?)?;
    Ok(())
}
