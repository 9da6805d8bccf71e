//! The reference data flow, from a region's source data to a use case's report:
//!
//! 1. [`synth`]: synthetic source data in a region's own model (CSV), from a seed;
//! 2. [`mapping`]: in the region, to the common model, OMOP CDM 5.4 ([`omop`], Parquet);
//! 3. [`export`]: identifiers replaced by the pseudonyms of one purpose, to the hub's landing
//!    zone (central mode) or the region's export prefix (federated mode);
//! 4. [`standardise`]: in the hub, each row checked against the model; failures quarantined
//!    with a reason; a manifest of counts and checksums;
//! 5. [`publish`]: the purpose-specific data products, aggregates suppressed below a
//!    threshold;
//! 6. [`report`]: the use case's indicators as a self-contained HTML page.
//!
//! Every step is a pure function over rows; [`store`] moves the files through S3 with the
//! credential of the step, and [`layout`] says where each file lives. [`scan`] is the witness
//! that no identity number reached the hub.

pub mod export;
pub mod layout;
pub mod mapping;
pub mod omop;
pub mod publish;
pub mod report;
pub mod run;
pub mod scan;
pub mod standardise;
pub mod store;
pub mod synth;
pub mod table;

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use zeroize::Zeroizing;

    use super::export::{Pseudonymiser, export};
    use super::omop::Omop;
    use super::synth::{Params, region};
    use super::*;
    use crate::pseudonymisation::pseudonym::LocalKey;

    fn params() -> Params {
        Params {
            seed: 11,
            patients: 6000,
            regions: vec!["01".into(), "03".into(), "14".into()],
            defects_per_mille: 30,
        }
    }

    fn key(byte: u8) -> Pseudonymiser {
        Pseudonymiser::Local(LocalKey::new(1, Zeroizing::new(vec![byte; 32])))
    }

    #[tokio::test]
    async fn rows_are_conserved_and_no_identity_number_passes_standardisation() {
        let p = params();
        let purpose = key(1);
        for (n, county) in p.regions.iter().enumerate() {
            let source = region(&p, n);
            let omop = mapping::map(&source);
            assert_eq!(omop.person.len(), source.patients.len());
            assert_eq!(omop.visit_occurrence.len(), source.kontakter.len());
            assert_eq!(omop.procedure_occurrence.len(), source.atgarder.len());
            let hub = export(&omop, county.parse().unwrap_or(0), "a", &purpose)
                .await
                .expect("export");
            let outcome = standardise::standardise(&hub);
            let (i, s, q) = (
                hub.counts(),
                outcome.standardised.counts(),
                outcome.quarantined.counts(),
            );
            for table in i.keys() {
                assert_eq!(i[table], s[table] + q[table], "{county} {table}");
            }
            assert!(q.values().sum::<u64>() > 0, "defects are quarantined");
            assert_eq!(outcome.rejected.len() as u64, q.values().sum::<u64>());
            for (name, bytes) in outcome.standardised.to_files(&[]).expect("files") {
                assert_eq!(
                    scan::object(&name, bytes).expect("scan"),
                    None,
                    "{county} {name}"
                );
            }
            let round = Omop::from_files(|name| {
                Ok(outcome
                    .standardised
                    .to_files(&[])?
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, b)| b)
                    .unwrap_or_default())
            })
            .expect("read back");
            assert_eq!(round, outcome.standardised);
        }
    }

    #[tokio::test]
    async fn one_person_is_one_pseudonym_within_a_purpose_and_two_across_purposes() {
        let p = params();
        let (a, b) = (key(1), key(2));
        let persons = |omop: &Omop| -> HashSet<String> {
            omop.person
                .iter()
                .filter_map(|p| p.person_source_value.clone())
                .collect()
        };
        let r0 = mapping::map(&region(&p, 0));
        let r1 = mapping::map(&region(&p, 1));
        let (a0, a1) = (
            persons(&export(&r0, 1, "a", &a).await.expect("a0")),
            persons(&export(&r1, 3, "a", &a).await.expect("a1")),
        );
        let b1 = persons(&export(&r1, 3, "b", &b).await.expect("b1"));
        let shared = a0.intersection(&a1).count();
        assert!(
            shared > 0,
            "people in two regions share a pseudonym in one purpose"
        );
        assert_eq!(
            a0.intersection(&b1).count(),
            0,
            "no pseudonym is shared across purposes"
        );
    }
}
