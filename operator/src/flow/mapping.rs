//! The region's mapping: its own model (see [`super::synth`]) to OMOP CDM 5.4. Pure.
//!
//! - `patient` → `person` (and `death` when a date of death is known);
//! - an inpatient `vardkontakt` → `visit_occurrence` (9201) and its main diagnosis as a
//!   `condition_occurrence`;
//! - an outpatient first visit after a referral → `visit_occurrence` (9202) and the referral
//!   as an `observation` whose date is the referral's and whose value is the specialty;
//! - `atgard` → `procedure_occurrence`, linked to its visit.
//!
//! Identifiers stay in the region here: `person_source_value` holds the identity number.
//! The mapping copies values as they are; judging them is the hub's standardisation.

use std::collections::HashMap;

use chrono::Datelike as _;

use super::omop::{
    ConditionOccurrence, Death, EHR, FEMALE, INPATIENT, MALE, NO_CONCEPT, OUTPATIENT, Observation,
    Omop, PRIMARY_DIAGNOSIS, Person, ProcedureOccurrence, VisitOccurrence,
};
use super::synth::{Source, Vardform};

/// Birth date of an identity number (`YYYYMMDD…`, coordination numbers with day + 60).
fn birth(number: &str) -> (i32, Option<i32>, Option<i32>) {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let y = digits.get(0..4).and_then(|s| s.parse().ok()).unwrap_or(0);
    let m = digits.get(4..6).and_then(|s| s.parse().ok());
    let d = digits
        .get(6..8)
        .and_then(|s| s.parse::<i32>().ok())
        .map(|d| if d > 60 { d - 60 } else { d });
    (y, m, d)
}

/// The region's extract in the common model.
pub fn map(source: &Source) -> Omop {
    let mut omop = Omop::default();
    let mut person_of: HashMap<&str, i64> = HashMap::with_capacity(source.patients.len());
    for (n, p) in source.patients.iter().enumerate() {
        let person_id = n as i64 + 1;
        person_of.insert(p.personnummer.as_str(), person_id);
        let (year, month, day) = birth(&p.personnummer);
        omop.person.push(Person {
            person_id,
            gender_concept_id: match p.kon.as_str() {
                "M" => MALE,
                "K" => FEMALE,
                _ => NO_CONCEPT,
            },
            year_of_birth: year,
            month_of_birth: month,
            day_of_birth: day,
            race_concept_id: NO_CONCEPT,
            ethnicity_concept_id: NO_CONCEPT,
            location_id: None,
            person_source_value: Some(p.personnummer.clone()),
            gender_source_value: Some(p.kon.clone()),
            gender_source_concept_id: Some(NO_CONCEPT),
        });
        if let Some(died) = p.avliden {
            omop.death.push(Death {
                person_id,
                death_date: died,
                death_datetime: None,
                death_type_concept_id: Some(EHR),
                cause_concept_id: None,
            });
        }
    }
    let mut condition_id = 0;
    let mut observation_id = 0;
    for k in &source.kontakter {
        // A contact of a person the extract does not list keeps person 0, which no person
        // has: the hub quarantines it.
        let person_id = person_of.get(k.personnummer.as_str()).copied().unwrap_or(0);
        let visit_occurrence_id = k.kontakt_id as i64;
        omop.visit_occurrence.push(VisitOccurrence {
            visit_occurrence_id,
            person_id,
            visit_concept_id: match k.vardform {
                Vardform::Slutenvard => INPATIENT,
                Vardform::Oppenvard => OUTPATIENT,
            },
            visit_start_date: k.inskrivning.date(),
            visit_start_datetime: Some(k.inskrivning),
            visit_end_date: k.utskrivning.date(),
            visit_end_datetime: Some(k.utskrivning),
            visit_type_concept_id: EHR,
            care_site_id: None,
            visit_source_value: Some(k.kontakt_id.to_string()),
        });
        if let Some(code) = &k.huvuddiagnos {
            condition_id += 1;
            omop.condition_occurrence.push(ConditionOccurrence {
                condition_occurrence_id: condition_id,
                person_id,
                condition_concept_id: NO_CONCEPT,
                condition_start_date: k.inskrivning.date(),
                condition_start_datetime: Some(k.inskrivning),
                condition_type_concept_id: EHR,
                condition_status_concept_id: Some(PRIMARY_DIAGNOSIS),
                visit_occurrence_id: Some(visit_occurrence_id),
                condition_source_value: Some(code.clone()),
                condition_source_concept_id: Some(NO_CONCEPT),
            });
        }
        if let Some(referred) = k.remissdatum {
            observation_id += 1;
            omop.observation.push(Observation {
                observation_id,
                person_id,
                observation_concept_id: NO_CONCEPT,
                observation_date: referred,
                observation_type_concept_id: EHR,
                value_as_string: k.specialitet.clone(),
                visit_occurrence_id: Some(visit_occurrence_id),
                observation_source_value: Some("remiss".into()),
            });
        }
    }
    let person_of_visit: HashMap<u64, i64> = source
        .kontakter
        .iter()
        .map(|k| {
            (
                k.kontakt_id,
                person_of.get(k.personnummer.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    for (n, a) in source.atgarder.iter().enumerate() {
        omop.procedure_occurrence.push(ProcedureOccurrence {
            procedure_occurrence_id: n as i64 + 1,
            person_id: person_of_visit.get(&a.kontakt_id).copied().unwrap_or(0),
            procedure_concept_id: NO_CONCEPT,
            procedure_date: a.tidpunkt.date(),
            procedure_datetime: Some(a.tidpunkt),
            procedure_type_concept_id: EHR,
            visit_occurrence_id: Some(a.kontakt_id as i64),
            procedure_source_value: Some(a.kva.clone()),
            procedure_source_concept_id: Some(NO_CONCEPT),
        });
    }
    omop
}

/// Age in whole years at `on` of a person born in `year_of_birth`/`month_of_birth`
/// (the first of the month when only that is known).
pub fn age_at(person: &Person, on: chrono::NaiveDate) -> i32 {
    let month = person.month_of_birth.unwrap_or(1) as u32;
    let had_birthday = (on.month(), on.day()) >= (month, 1);
    on.year() - person.year_of_birth - i32::from(!had_birthday)
}
