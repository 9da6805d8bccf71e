//! The common data model: OMOP CDM 5.4, the tables the reference flow fills, with the model's
//! own table and column names.
//!
//! Why OMOP: the report's work package B.4 asks for the least common denominator of the
//! regions' models for secondary use. OMOP CDM is the model built for exactly that: it is
//! published and versioned by OHDSI, it is what the EHDEN network and the European Health
//! Data Space pilots map to, and its analytic tools (ACHILLES, ATLAS, HADES) run on any source
//! mapped to it. Version 5.4 is the current release.
//!
//! Concepts: the reference mapping writes the source codes (ICD-10-SE, KVÅ) into the
//! `*_source_value` columns and the standard concept 0 ("no matching concept") where a
//! mapping to OHDSI's standardised vocabularies would go. Those vocabularies are licensed
//! per user through Athena and are not shipped; a region loads them and maps to them in its
//! own mapping. Type concepts (`32817` EHR, `32902` primary diagnosis) and the gender
//! concepts (`8507` male, `8532` female) are standard concepts of the model's own domains.

use chrono::{NaiveDate, NaiveDateTime};

use super::table::table;

/// Gender concept: male.
pub const MALE: i32 = 8507;
/// Gender concept: female.
pub const FEMALE: i32 = 8532;
/// Visit concept: inpatient visit.
pub const INPATIENT: i32 = 9201;
/// Visit concept: outpatient visit.
pub const OUTPATIENT: i32 = 9202;
/// Type concept: the record comes from an electronic health record.
pub const EHR: i32 = 32817;
/// Condition status concept: primary diagnosis.
pub const PRIMARY_DIAGNOSIS: i32 = 32902;
/// No matching concept.
pub const NO_CONCEPT: i32 = 0;

table! {
    /// `person`: one row per person.
    Person = "person" {
        person_id: i64,
        gender_concept_id: i32,
        year_of_birth: i32,
        month_of_birth: Option<i32>,
        day_of_birth: Option<i32>,
        race_concept_id: i32,
        ethnicity_concept_id: i32,
        location_id: Option<i64>,
        /// In the region: the personal identity or coordination number. In the hub: the
        /// pseudonym of the product's purpose.
        person_source_value: Option<String>,
        gender_source_value: Option<String>,
        gender_source_concept_id: Option<i32>,
    }
}

table! {
    /// `visit_occurrence`: admissions and outpatient visits.
    VisitOccurrence = "visit_occurrence" {
        visit_occurrence_id: i64,
        person_id: i64,
        visit_concept_id: i32,
        visit_start_date: NaiveDate,
        visit_start_datetime: Option<NaiveDateTime>,
        visit_end_date: NaiveDate,
        visit_end_datetime: Option<NaiveDateTime>,
        visit_type_concept_id: i32,
        care_site_id: Option<i64>,
        visit_source_value: Option<String>,
    }
}

table! {
    /// `condition_occurrence`: diagnoses.
    ConditionOccurrence = "condition_occurrence" {
        condition_occurrence_id: i64,
        person_id: i64,
        condition_concept_id: i32,
        condition_start_date: NaiveDate,
        condition_start_datetime: Option<NaiveDateTime>,
        condition_type_concept_id: i32,
        condition_status_concept_id: Option<i32>,
        visit_occurrence_id: Option<i64>,
        /// The ICD-10-SE code.
        condition_source_value: Option<String>,
        condition_source_concept_id: Option<i32>,
    }
}

table! {
    /// `procedure_occurrence`: procedures (KVÅ).
    ProcedureOccurrence = "procedure_occurrence" {
        procedure_occurrence_id: i64,
        person_id: i64,
        procedure_concept_id: i32,
        procedure_date: NaiveDate,
        procedure_datetime: Option<NaiveDateTime>,
        procedure_type_concept_id: i32,
        visit_occurrence_id: Option<i64>,
        /// The KVÅ code.
        procedure_source_value: Option<String>,
        procedure_source_concept_id: Option<i32>,
    }
}

table! {
    /// `death`: at most one row per person.
    Death = "death" {
        person_id: i64,
        death_date: NaiveDate,
        death_datetime: Option<NaiveDateTime>,
        death_type_concept_id: Option<i32>,
        cause_concept_id: Option<i32>,
    }
}

table! {
    /// `observation`: here the referral that starts a wait; its visit is the first visit.
    Observation = "observation" {
        observation_id: i64,
        person_id: i64,
        observation_concept_id: i32,
        observation_date: NaiveDate,
        observation_type_concept_id: i32,
        /// The specialty referred to.
        value_as_string: Option<String>,
        visit_occurrence_id: Option<i64>,
        observation_source_value: Option<String>,
    }
}

/// One region's data in the common model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Omop {
    /// `person`.
    pub person: Vec<Person>,
    /// `visit_occurrence`.
    pub visit_occurrence: Vec<VisitOccurrence>,
    /// `condition_occurrence`.
    pub condition_occurrence: Vec<ConditionOccurrence>,
    /// `procedure_occurrence`.
    pub procedure_occurrence: Vec<ProcedureOccurrence>,
    /// `death`.
    pub death: Vec<Death>,
    /// `observation`.
    pub observation: Vec<Observation>,
}

/// Row counts per table, in the model's table order.
pub type Counts = std::collections::BTreeMap<&'static str, u64>;

impl Omop {
    /// The row count of each table.
    pub fn counts(&self) -> Counts {
        use super::table::Table as _;
        Counts::from([
            (Person::NAME, self.person.len() as u64),
            (VisitOccurrence::NAME, self.visit_occurrence.len() as u64),
            (
                ConditionOccurrence::NAME,
                self.condition_occurrence.len() as u64,
            ),
            (
                ProcedureOccurrence::NAME,
                self.procedure_occurrence.len() as u64,
            ),
            (Death::NAME, self.death.len() as u64),
            (Observation::NAME, self.observation.len() as u64),
        ])
    }

    /// Every table as a Parquet file, keyed by file name (`person.parquet`, …).
    pub fn to_files(&self, metadata: &[(&str, String)]) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        use super::table::{Table, to_parquet};
        fn file<T: Table>(rows: &[T], m: &[(&str, String)]) -> anyhow::Result<(String, Vec<u8>)> {
            Ok((format!("{}.parquet", T::NAME), to_parquet(rows, m)?))
        }
        Ok(vec![
            file(&self.person, metadata)?,
            file(&self.visit_occurrence, metadata)?,
            file(&self.condition_occurrence, metadata)?,
            file(&self.procedure_occurrence, metadata)?,
            file(&self.death, metadata)?,
            file(&self.observation, metadata)?,
        ])
    }

    /// Reads the tables from files, through `get(file name)`.
    pub fn from_files(
        mut get: impl FnMut(&str) -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<Self> {
        use super::table::{Table, from_parquet};
        fn read<T: Table>(
            get: &mut impl FnMut(&str) -> anyhow::Result<Vec<u8>>,
        ) -> anyhow::Result<Vec<T>> {
            from_parquet(get(&format!("{}.parquet", T::NAME))?)
        }
        Ok(Self {
            person: read(&mut get)?,
            visit_occurrence: read(&mut get)?,
            condition_occurrence: read(&mut get)?,
            procedure_occurrence: read(&mut get)?,
            death: read(&mut get)?,
            observation: read(&mut get)?,
        })
    }
}

/// The names of the files [`Omop::to_files`] writes.
pub fn file_names() -> [String; 6] {
    use super::table::Table;
    [
        Person::NAME,
        VisitOccurrence::NAME,
        ConditionOccurrence::NAME,
        ProcedureOccurrence::NAME,
        Death::NAME,
        Observation::NAME,
    ]
    .map(|n| format!("{n}.parquet"))
}
