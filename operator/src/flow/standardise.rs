//! The hub's standardisation: every row of a region's export is checked against the common
//! model; rows that pass go to the standardised zone, rows that fail to quarantine with a
//! reason. Pure; the run's manifest adds the checksums of what was read and written.
//!
//! Checks, per table, in the order rows depend on each other:
//! - `person`: a positive, unique `person_id`; `person_source_value` a pseudonym and never
//!   an identity number; a known gender concept; a plausible year and month of birth;
//! - every other table: its person passed;
//! - `visit_occurrence`: a known visit concept; it ends no earlier than it starts;
//! - `condition_occurrence`: an ICD-10 code; its visit passed;
//! - `procedure_occurrence`: a KVÅ code; its visit passed;
//! - `death`: no earlier than the year of birth;
//! - `observation`: its visit passed and does not come before the referral.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::omop::{FEMALE, INPATIENT, MALE, OUTPATIENT, Omop};
use super::scan;
use super::synth::YEAR;
use super::table::{Table, table};

table! {
    /// One quarantined row: its table, its id and why.
    Rejected = "rejected" {
        table_name: String,
        row_id: i64,
        reason: String,
    }
}

/// The outcome of one run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Rows that passed.
    pub standardised: Omop,
    /// Rows that failed, in their own tables.
    pub quarantined: Omop,
    /// Why each quarantined row failed.
    pub rejected: Vec<Rejected>,
}

/// What a run read, wrote and refused, written beside its output.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// County code of the region.
    pub region: String,
    /// The purpose.
    pub purpose: String,
    /// Rows read, per table.
    pub rows_in: BTreeMap<&'static str, u64>,
    /// Rows standardised, per table.
    pub rows_out: BTreeMap<&'static str, u64>,
    /// Rows quarantined, per table.
    pub rows_rejected: BTreeMap<&'static str, u64>,
    /// Quarantined rows per reason.
    pub reasons: BTreeMap<String, u64>,
    /// SHA-256 of every object read and written, by `s3://` URL.
    pub checksums: BTreeMap<String, String>,
}

impl Outcome {
    /// The manifest's counts (checksums are added by the caller).
    pub fn manifest(&self, input: &Omop, region: &str, purpose: &str) -> Manifest {
        let mut reasons = BTreeMap::new();
        for r in &self.rejected {
            *reasons.entry(r.reason.clone()).or_default() += 1;
        }
        Manifest {
            region: region.into(),
            purpose: purpose.into(),
            rows_in: input.counts(),
            rows_out: self.standardised.counts(),
            rows_rejected: self.quarantined.counts(),
            reasons,
            checksums: BTreeMap::new(),
        }
    }
}

fn is_icd10(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() >= 3
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && (b.len() == 3
            || (b.len() >= 5
                && b.len() <= 8
                && b[3] == b'.'
                && b[4..]
                    .iter()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())))
}

fn is_kva(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() == 5
        && b[..3].iter().all(u8::is_ascii_uppercase)
        && b[3..].iter().all(u8::is_ascii_digit)
}

fn is_pseudonym(value: &str) -> bool {
    value
        .strip_prefix("vault:v")
        .and_then(|rest| rest.split_once(':'))
        .is_some_and(|(v, tag)| {
            !v.is_empty() && v.bytes().all(|c| c.is_ascii_digit()) && tag.len() >= 40
        })
}

/// Splits `rows` by `check`, recording why each failed.
fn split<T: Table + Clone>(
    rows: &[T],
    id: impl Fn(&T) -> i64,
    mut check: impl FnMut(&T) -> Result<(), &'static str>,
    passed: &mut Vec<T>,
    failed: &mut Vec<T>,
    rejected: &mut Vec<Rejected>,
) {
    for row in rows {
        match check(row) {
            Ok(()) => passed.push(row.clone()),
            Err(reason) => {
                rejected.push(Rejected {
                    table_name: T::NAME.into(),
                    row_id: id(row),
                    reason: reason.into(),
                });
                failed.push(row.clone());
            }
        }
    }
}

/// Checks one region's export. Pure.
pub fn standardise(input: &Omop) -> Outcome {
    let mut out = Outcome::default();
    let (s, q, r) = (
        &mut out.standardised,
        &mut out.quarantined,
        &mut out.rejected,
    );
    let mut persons: HashMap<i64, i32> = HashMap::with_capacity(input.person.len());
    split(
        &input.person,
        |p| p.person_id,
        |p| {
            let Some(value) = p.person_source_value.as_deref() else {
                return Err("person: no pseudonym (the service refused the identity number)");
            };
            if scan::contains_identity_number(value.as_bytes()) {
                return Err("person: person_source_value holds an identity number");
            }
            if !is_pseudonym(value) {
                return Err("person: person_source_value is not a pseudonym");
            }
            if p.person_id <= 0 {
                return Err("person: person_id is not positive");
            }
            if p.gender_concept_id != MALE && p.gender_concept_id != FEMALE {
                return Err("person: unknown gender_concept_id");
            }
            if !(1900..=YEAR).contains(&p.year_of_birth) {
                return Err("person: year_of_birth out of range");
            }
            if p.month_of_birth.is_some_and(|m| !(1..=12).contains(&m)) {
                return Err("person: month_of_birth out of range");
            }
            if persons.insert(p.person_id, p.year_of_birth).is_some() {
                return Err("person: duplicate person_id");
            }
            Ok(())
        },
        &mut s.person,
        &mut q.person,
        r,
    );
    let person_ok = |id: i64| persons.contains_key(&id);
    let mut visits: HashMap<i64, chrono::NaiveDate> = HashMap::new();
    split(
        &input.visit_occurrence,
        |v| v.visit_occurrence_id,
        |v| {
            if !person_ok(v.person_id) {
                return Err("visit_occurrence: person not standardised");
            }
            if v.visit_concept_id != INPATIENT && v.visit_concept_id != OUTPATIENT {
                return Err("visit_occurrence: unknown visit_concept_id");
            }
            let ends_before = match (v.visit_start_datetime, v.visit_end_datetime) {
                (Some(a), Some(b)) => b < a,
                _ => v.visit_end_date < v.visit_start_date,
            };
            if ends_before {
                return Err("visit_occurrence: ends before it starts");
            }
            visits.insert(v.visit_occurrence_id, v.visit_start_date);
            Ok(())
        },
        &mut s.visit_occurrence,
        &mut q.visit_occurrence,
        r,
    );
    let visit_ok = |id: Option<i64>| id.is_none_or(|v| visits.contains_key(&v));
    split(
        &input.condition_occurrence,
        |c| c.condition_occurrence_id,
        |c| {
            if !person_ok(c.person_id) {
                return Err("condition_occurrence: person not standardised");
            }
            if !c.condition_source_value.as_deref().is_some_and(is_icd10) {
                return Err("condition_occurrence: condition_source_value is not an ICD-10 code");
            }
            if !visit_ok(c.visit_occurrence_id) {
                return Err("condition_occurrence: visit not standardised");
            }
            Ok(())
        },
        &mut s.condition_occurrence,
        &mut q.condition_occurrence,
        r,
    );
    split(
        &input.procedure_occurrence,
        |p| p.procedure_occurrence_id,
        |p| {
            if !person_ok(p.person_id) {
                return Err("procedure_occurrence: person not standardised");
            }
            if !p.procedure_source_value.as_deref().is_some_and(is_kva) {
                return Err("procedure_occurrence: procedure_source_value is not a KVÅ code");
            }
            if !visit_ok(p.visit_occurrence_id) {
                return Err("procedure_occurrence: visit not standardised");
            }
            Ok(())
        },
        &mut s.procedure_occurrence,
        &mut q.procedure_occurrence,
        r,
    );
    split(
        &input.death,
        |d| d.person_id,
        |d| match persons.get(&d.person_id) {
            None => Err("death: person not standardised"),
            Some(born) if chrono::Datelike::year(&d.death_date) < *born => {
                Err("death: before the year of birth")
            }
            Some(_) => Ok(()),
        },
        &mut s.death,
        &mut q.death,
        r,
    );
    let mut seen_visits = HashSet::new();
    split(
        &input.observation,
        |o| o.observation_id,
        |o| {
            if !person_ok(o.person_id) {
                return Err("observation: person not standardised");
            }
            let Some(start) = o.visit_occurrence_id.and_then(|v| visits.get(&v)) else {
                return Err("observation: visit not standardised");
            };
            if *start < o.observation_date {
                return Err("observation: the visit comes before the referral");
            }
            if !seen_visits.insert(o.visit_occurrence_id) {
                return Err("observation: a second referral for one visit");
            }
            Ok(())
        },
        &mut s.observation,
        &mut q.observation,
        r,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_recognised() {
        assert!(is_icd10("S72.0"));
        assert!(is_icd10("S72"));
        assert!(!is_icd10("S7X"));
        assert!(is_kva("NFJ49"));
        assert!(!is_kva("NF J49"));
        assert!(is_pseudonym(&format!("vault:v1:{}", "A".repeat(44))));
        assert!(!is_pseudonym("19450307-1234"));
    }
}
