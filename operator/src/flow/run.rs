//! The flow's steps over S3: each reads its input, calls its pure step and writes its output
//! where [`super::layout`] says, through the [`Bucket`]s of the step's own credential.

use std::collections::HashMap;

use anyhow::{Context as _, Result};

use super::export::{Pseudonymiser, export};
use super::layout;
use super::omop::{Counts, Omop, file_names};
use super::publish::{self, HipFracture, WaitingTimes};
use super::report::{self, Indicators};
use super::standardise::{Manifest, Rejected, standardise};
use super::store::{Bucket, sha256};
use super::synth::{self, Source};
use super::table::{Table as _, from_parquet, to_parquet};

use super::store::PARQUET;

/// A product's indicators, next to its rows.
pub const INDICATORS_FILE: &str = "indicators.json";
/// A product's report page, next to its rows.
pub const REPORT_FILE: &str = "report.html";

/// The file name of a table's rows.
pub fn rows_file<T: super::table::Table>() -> String {
    format!("{}.parquet", T::NAME)
}

/// Metadata written into every Parquet file of a synthetic run.
fn synthetic() -> Vec<(&'static str, String)> {
    vec![
        ("vardhub.synthetic", "true".into()),
        ("vardhub.model", "OMOP CDM 5.4".into()),
    ]
}

/// Writes a region's extract to `source/` of its landing bucket.
pub async fn write_source(landing: &Bucket, source: &Source) -> Result<u64> {
    let mut bytes = 0;
    for (name, body) in synth::to_csv(source)? {
        bytes += body.len() as u64;
        landing
            .put(
                &layout::key(layout::SOURCE, &format!("synthetic-{name}")),
                body,
                "text/csv",
            )
            .await?;
    }
    Ok(bytes)
}

/// Reads a region's extract from `source/` of its landing bucket.
pub async fn read_source(landing: &Bucket) -> Result<Source> {
    let mut files = HashMap::new();
    for name in ["patient.csv", "vardkontakt.csv", "atgard.csv"] {
        let key = layout::key(layout::SOURCE, &format!("synthetic-{name}"));
        files.insert(name, landing.get(&key).await?);
    }
    synth::from_csv(|name| files.remove(name).with_context(|| format!("no {name}")))
}

/// Writes the tables of `omop` under `prefix`; returns each file's URL and checksum.
pub async fn write_omop(
    bucket: &Bucket,
    prefix: &str,
    omop: &Omop,
) -> Result<Vec<(String, String)>> {
    let mut sums = Vec::new();
    for (name, body) in omop.to_files(&synthetic())? {
        let key = layout::key(prefix, &name);
        sums.push((bucket.url(&key), sha256(&body)));
        bucket.put(&key, body, PARQUET).await?;
    }
    Ok(sums)
}

/// Reads the tables under `prefix`; returns them and each file's URL and checksum.
pub async fn read_omop(bucket: &Bucket, prefix: &str) -> Result<(Omop, Vec<(String, String)>)> {
    let mut files = HashMap::new();
    let mut sums = Vec::new();
    for name in file_names() {
        let key = layout::key(prefix, &name);
        let body = bucket.get(&key).await?;
        sums.push((bucket.url(&key), sha256(&body)));
        files.insert(name, body);
    }
    let omop = Omop::from_files(|name| files.remove(name).with_context(|| format!("no {name}")))?;
    Ok((omop, sums))
}

/// The region's mapping job: `source/` of its landing bucket → `omop/` of its standardised
/// bucket.
pub async fn map_region(landing: &Bucket, standardised: &Bucket) -> Result<Counts> {
    let omop = super::mapping::map(&read_source(landing).await?);
    write_omop(standardised, layout::OMOP, &omop).await?;
    Ok(omop.counts())
}

/// Where an export goes.
pub enum Destination<'a> {
    /// Central mode: the region's write-only prefix in the hub's landing zone; the hub
    /// standardises it.
    Central {
        /// The hub's landing bucket, through the region's ingest credential.
        landing: &'a Bucket,
    },
    /// Federated mode: the region's own export prefix, standardised in the region (the hub
    /// never holds the rows); quarantined rows stay in the region's `quarantine/<purpose>/`.
    Federated,
}

/// The region's export job for one purpose: `omop/` of its standardised bucket →
/// pseudonymised tables at `destination`. Returns the rows exported (before any
/// standardisation) and, in federated mode, the standardisation's manifest.
pub async fn export_region(
    standardised: &Bucket,
    destination: Destination<'_>,
    county: &str,
    purpose: &str,
    pseudonymiser: &Pseudonymiser,
) -> Result<(Counts, Option<Manifest>)> {
    let (omop, _) = read_omop(standardised, layout::OMOP).await?;
    let county_number: u32 = county
        .parse()
        .with_context(|| format!("county code {county:?} is not a number"))?;
    let exported = export(&omop, county_number, purpose, pseudonymiser).await?;
    let counts = exported.counts();
    match destination {
        Destination::Central { landing } => {
            write_omop(landing, &layout::central_export(county, purpose), &exported).await?;
            Ok((counts, None))
        }
        Destination::Federated => {
            let outcome = standardise(&exported);
            let mut manifest = outcome.manifest(&exported, county, purpose);
            let written = write_omop(
                standardised,
                &layout::federated_export(purpose),
                &outcome.standardised,
            )
            .await?;
            let quarantined = write_quarantine(
                standardised,
                &layout::federated_quarantine(purpose),
                &outcome,
            )
            .await?;
            for (key, sum) in written.into_iter().chain(quarantined) {
                manifest.checksums.insert(key, sum);
            }
            Ok((counts, Some(manifest)))
        }
    }
}

async fn write_quarantine(
    bucket: &Bucket,
    prefix: &str,
    outcome: &super::standardise::Outcome,
) -> Result<Vec<(String, String)>> {
    let mut sums = write_omop(bucket, prefix, &outcome.quarantined).await?;
    let reasons = to_parquet(&outcome.rejected, &synthetic())?;
    let key = layout::key(prefix, &format!("{}.parquet", Rejected::NAME));
    sums.push((bucket.url(&key), sha256(&reasons)));
    bucket.put(&key, reasons, PARQUET).await?;
    Ok(sums)
}

/// The hub's standardisation of one region and purpose: the landing prefix → the
/// standardised prefix, the quarantine prefix and the manifest.
pub async fn standardise_region(
    landing: &Bucket,
    standardised: &Bucket,
    county: &str,
    purpose: &str,
) -> Result<Manifest> {
    let (input, read) = read_omop(landing, &layout::central_export(county, purpose)).await?;
    let outcome = standardise(&input);
    let mut manifest = outcome.manifest(&input, county, purpose);
    let written = write_omop(
        standardised,
        &layout::standardised(county, purpose),
        &outcome.standardised,
    )
    .await?;
    let quarantined =
        write_quarantine(standardised, &layout::quarantine(county, purpose), &outcome).await?;
    for (key, sum) in read.into_iter().chain(written).chain(quarantined) {
        manifest.checksums.insert(key, sum);
    }
    standardised
        .put(
            &layout::manifest(county, purpose),
            serde_json::to_vec_pretty(&manifest)?,
            "application/json",
        )
        .await?;
    Ok(manifest)
}

/// Where a product's input lies: the county and the bucket and prefix of its standardised
/// data (the hub's, or the region's own export in federated mode).
pub struct Input {
    /// County code.
    pub county: String,
    /// The bucket, through the publishing step's credential.
    pub bucket: Bucket,
    /// The prefix.
    pub prefix: String,
}

/// Publishes the `hip-fracture` product and its report: the rows (with only `columns`, when
/// declared), `indicators.json` and `report.html` under `<product>/` of the products bucket.
pub async fn publish_hip_fracture(
    inputs: &[Input],
    products: &Bucket,
    product: &str,
    columns: &[String],
    threshold: u64,
) -> Result<Vec<Indicators>> {
    let mut rows: Vec<HipFracture> = Vec::new();
    for input in inputs {
        let (omop, _) = read_omop(&input.bucket, &input.prefix).await?;
        rows.extend(publish::hip_fracture(&input.county, &omop));
    }
    let batch = publish::project(&HipFracture::to_batch(&rows)?, columns)?;
    let mut body = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut body, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    products
        .put(
            &layout::key(product, &rows_file::<HipFracture>()),
            body,
            PARQUET,
        )
        .await?;
    let indicators = report::indicators(&rows, threshold);
    products
        .put(
            &layout::key(product, INDICATORS_FILE),
            serde_json::to_vec_pretty(&indicators)?,
            "application/json",
        )
        .await?;
    products
        .put(
            &layout::key(product, REPORT_FILE),
            report::html(product, &indicators, threshold).into_bytes(),
            "text/html; charset=utf-8",
        )
        .await?;
    Ok(indicators)
}

/// Publishes the `waiting-times` product: the suppressed aggregate under `<product>/`.
pub async fn publish_waiting_times(
    inputs: &[Input],
    products: &Bucket,
    product: &str,
    threshold: u64,
) -> Result<Vec<WaitingTimes>> {
    let mut regions = Vec::new();
    for input in inputs {
        regions.push((
            input.county.clone(),
            read_omop(&input.bucket, &input.prefix).await?.0,
        ));
    }
    let cells = publish::waiting_times(regions.iter().map(|(c, o)| (c.as_str(), o)), threshold);
    products
        .put(
            &layout::key(product, &rows_file::<WaitingTimes>()),
            to_parquet(&cells, &synthetic())?,
            PARQUET,
        )
        .await?;
    Ok(cells)
}

/// Reads back a product's rows (for tests and the demo).
pub async fn read_waiting_times(products: &Bucket, product: &str) -> Result<Vec<WaitingTimes>> {
    from_parquet(
        products
            .get(&layout::key(product, &rows_file::<WaitingTimes>()))
            .await?,
    )
}
