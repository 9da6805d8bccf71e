//! Witnesses of the reference flow that do not use the code under test: the indicators of
//! use case D counted from the synthetic extracts themselves, and a scan of every object in a
//! bucket for identity numbers.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::Duration;
use vardhub::flow::scan;
use vardhub::flow::store::Bucket;
use vardhub::flow::synth::{self, HIP_FRACTURE_ICD, HIP_FRACTURE_KVA, Source, Vardform};
use vardhub::pseudonymisation::identifier::parse_personal;

/// The indicators of use case D, per county, computed from the extracts alone: admissions,
/// operated within 24 h, within 36 h, dead within 30 days. A record the hub must refuse (an
/// identity number with a wrong check digit, a stay that ends before it starts, a malformed
/// diagnosis) is left out, as the standardisation's rules say.
pub fn expected_indicators(sources: &[(&str, Source)]) -> BTreeMap<String, [u64; 4]> {
    let mut out = BTreeMap::new();
    for (county, source) in sources {
        let mut figures = [0u64; 4];
        for k in &source.kontakter {
            let Some(patient) = source
                .patients
                .iter()
                .find(|p| p.personnummer == k.personnummer)
            else {
                continue;
            };
            let hip = k
                .huvuddiagnos
                .as_deref()
                .is_some_and(|d| HIP_FRACTURE_ICD.contains(&d));
            if k.vardform != Vardform::Slutenvard
                || !hip
                || k.utskrivning < k.inskrivning
                || parse_personal(&patient.personnummer, synth::YEAR).is_err()
            {
                continue;
            }
            figures[0] += 1;
            let surgery = source
                .atgarder
                .iter()
                .filter(|a| {
                    a.kontakt_id == k.kontakt_id && HIP_FRACTURE_KVA.contains(&a.kva.as_str())
                })
                .map(|a| a.tidpunkt)
                .min();
            if let Some(s) = surgery {
                figures[1] += u64::from(s - k.inskrivning <= Duration::hours(24));
                figures[2] += u64::from(s - k.inskrivning <= Duration::hours(36));
            }
            let admitted = k.inskrivning.date();
            figures[3] += u64::from(
                patient
                    .avliden
                    .is_some_and(|d| d >= admitted && d - admitted <= Duration::days(30)),
            );
        }
        out.insert((*county).to_owned(), figures);
    }
    out
}

/// Every object of a bucket, read with `root` and scanned for personnummer and
/// samordningsnummer: the number of objects, and what was found where.
pub async fn scan_bucket(root: &aws_sdk_s3::Client, name: &str) -> Result<(usize, Vec<String>)> {
    let bucket = Bucket::new(root.clone(), name);
    let mut found = Vec::new();
    let objects = bucket.list("").await?;
    for (key, _) in &objects {
        if let Some(finding) = scan::object(key, bucket.get(key).await?)? {
            found.push(format!("s3://{name}/{key}: {finding:?}"));
        }
    }
    Ok((objects.len(), found))
}
