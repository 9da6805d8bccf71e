//! The hub's publication: standardised data → a purpose-specific data product. Pure.
//!
//! - `hip-fracture` (use case D), individual-level: one row per hip fracture admission, with
//!   only the columns the product declares ([`project`]);
//! - `waiting-times` (use case B), aggregate: referrals per region, specialty and month, with
//!   every cell below the threshold suppressed.

use std::collections::{BTreeMap, HashMap};

use chrono::{Datelike as _, NaiveDateTime};

use super::mapping::age_at;
use super::omop::{INPATIENT, MALE, OUTPATIENT, Omop};
use super::synth::{HIP_FRACTURE_ICD, HIP_FRACTURE_KVA};
use super::table::table;

/// Default suppression threshold: cells counting fewer are not published.
pub const DEFAULT_THRESHOLD: u64 = 5;

/// The wait the Swedish care guarantee allows from referral to a first specialist visit.
pub const CARE_GUARANTEE_DAYS: i64 = 90;

table! {
    /// A hip fracture admission, as the `hip-fracture` product holds it.
    HipFracture = "hip_fracture" {
        person_id: i64,
        region: String,
        gender: String,
        age_group: String,
        diagnosis: String,
        admission_datetime: NaiveDateTime,
        surgery_datetime: Option<NaiveDateTime>,
        hours_to_surgery: Option<f64>,
        died_within_30_days: bool,
    }
}

table! {
    /// One cell of the `waiting-times` product.
    WaitingTimes = "waiting_times" {
        region: String,
        specialty: String,
        month: String,
        /// Referrals whose first visit happened; null when suppressed.
        referrals: Option<i64>,
        /// Median days from referral to first visit; null when suppressed.
        median_wait_days: Option<f64>,
        /// Share seen within the care guarantee's 90 days; null when suppressed.
        within_90_days: Option<f64>,
        /// Whether the cell counts fewer than the threshold.
        suppressed: bool,
    }
}

fn age_group(age: i32) -> String {
    let low = (age / 5) * 5;
    format!("{low}-{}", low + 4)
}

/// The hip fracture admissions of one region's standardised data.
pub fn hip_fracture(region: &str, omop: &Omop) -> Vec<HipFracture> {
    let persons: HashMap<i64, _> = omop.person.iter().map(|p| (p.person_id, p)).collect();
    let deaths: HashMap<i64, _> = omop
        .death
        .iter()
        .map(|d| (d.person_id, d.death_date))
        .collect();
    let mut diagnosis: HashMap<i64, &str> = HashMap::new();
    for c in &omop.condition_occurrence {
        if let (Some(v), Some(code)) = (c.visit_occurrence_id, c.condition_source_value.as_deref())
            && HIP_FRACTURE_ICD.contains(&code)
        {
            diagnosis.insert(v, code);
        }
    }
    let mut surgery: HashMap<i64, NaiveDateTime> = HashMap::new();
    for p in &omop.procedure_occurrence {
        if let (Some(v), Some(code), Some(at)) = (
            p.visit_occurrence_id,
            p.procedure_source_value.as_deref(),
            p.procedure_datetime,
        ) && HIP_FRACTURE_KVA.contains(&code)
        {
            let first = surgery.entry(v).or_insert(at);
            *first = (*first).min(at);
        }
    }
    let mut rows = Vec::new();
    for v in &omop.visit_occurrence {
        let (Some(code), Some(person), Some(admitted)) = (
            diagnosis.get(&v.visit_occurrence_id),
            persons.get(&v.person_id),
            v.visit_start_datetime,
        ) else {
            continue;
        };
        if v.visit_concept_id != INPATIENT {
            continue;
        }
        let operated = surgery.get(&v.visit_occurrence_id).copied();
        rows.push(HipFracture {
            person_id: v.person_id,
            region: region.into(),
            gender: if person.gender_concept_id == MALE {
                "M"
            } else {
                "K"
            }
            .into(),
            age_group: age_group(age_at(person, admitted.date())),
            diagnosis: (*code).into(),
            admission_datetime: admitted,
            surgery_datetime: operated,
            hours_to_surgery: operated.map(|s| (s - admitted).num_minutes() as f64 / 60.0),
            died_within_30_days: deaths
                .get(&v.person_id)
                .is_some_and(|d| (*d - admitted.date()).num_days() <= 30 && *d >= admitted.date()),
        });
    }
    rows.sort_by_key(|r| (r.admission_datetime, r.person_id));
    rows
}

/// Keeps only the `columns` a product declares (all of them when none is declared); an
/// unknown column is named in the error.
pub fn project(
    batch: &arrow_array::RecordBatch,
    columns: &[String],
) -> anyhow::Result<arrow_array::RecordBatch> {
    if columns.is_empty() {
        return Ok(batch.clone());
    }
    let schema = batch.schema();
    let indices = columns
        .iter()
        .map(|c| {
            schema.index_of(c).map_err(|_| {
                anyhow::anyhow!("the product declares column {c}, which the data has not")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(batch.project(&indices)?)
}

fn median(values: &mut [i64]) -> f64 {
    values.sort_unstable();
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2] as f64
    } else {
        (values[n / 2 - 1] + values[n / 2]) as f64 / 2.0
    }
}

/// The waiting-times cells of several regions' standardised data, each below `threshold`
/// suppressed.
pub fn waiting_times<'a>(
    regions: impl IntoIterator<Item = (&'a str, &'a Omop)>,
    threshold: u64,
) -> Vec<WaitingTimes> {
    let mut cells: BTreeMap<(String, String, String), Vec<i64>> = BTreeMap::new();
    for (region, omop) in regions {
        let visits: HashMap<i64, _> = omop
            .visit_occurrence
            .iter()
            .filter(|v| v.visit_concept_id == OUTPATIENT)
            .map(|v| (v.visit_occurrence_id, v.visit_start_date))
            .collect();
        for o in &omop.observation {
            let (Some(visit), Some(specialty)) = (
                o.visit_occurrence_id.and_then(|v| visits.get(&v)),
                o.value_as_string.as_deref(),
            ) else {
                continue;
            };
            let month = format!(
                "{:04}-{:02}",
                o.observation_date.year(),
                o.observation_date.month()
            );
            cells
                .entry((region.to_owned(), specialty.to_owned(), month))
                .or_default()
                .push((*visit - o.observation_date).num_days());
        }
    }
    cells
        .into_iter()
        .map(|((region, specialty, month), mut waits)| {
            let n = waits.len() as u64;
            let suppressed = n < threshold;
            let within =
                waits.iter().filter(|w| **w <= CARE_GUARANTEE_DAYS).count() as f64 / n as f64;
            WaitingTimes {
                region,
                specialty,
                month,
                referrals: (!suppressed).then_some(n as i64),
                median_wait_days: (!suppressed).then(|| median(&mut waits)),
                within_90_days: (!suppressed).then_some(within),
                suppressed,
            }
        })
        .collect()
}
