//! The variable list of a catalogue as CSV, for registration in national variable catalogues.

use super::graph::{CatalogRef, DatasetRef, dataset_iri};
use crate::api::{AccessRights, Stage};

/// The columns of the export.
pub const HEADER: [&str; 13] = [
    "dataset",
    "dataset_uri",
    "dataset_title_sv",
    "dataset_title_en",
    "stage",
    "access_rights",
    "variable",
    "title_sv",
    "title_en",
    "description_sv",
    "description_en",
    "datatype",
    "code_system",
];

/// Writes one row per variable of every structured dataset.
pub fn csv(cat: CatalogRef<'_>, datasets: &[DatasetRef<'_>]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER)?;
    for d in datasets {
        let stage = match d.spec.location.stage {
            Stage::RegionalSource => "regionalSource",
            Stage::Standardised => "standardised",
            Stage::PurposeSpecific => "purposeSpecific",
        };
        let rights = match d.spec.access_rights {
            AccessRights::Public => "PUBLIC",
            AccessRights::Restricted => "RESTRICTED",
            AccessRights::NonPublic => "NON_PUBLIC",
        };
        let uri = dataset_iri(cat.spec, d.name);
        for v in &d.spec.variables {
            w.write_record([
                d.name,
                &uri,
                &d.spec.title.sv,
                &d.spec.title.en,
                stage,
                rights,
                &v.name,
                &v.title.sv,
                &v.title.en,
                &v.description.sv,
                &v.description.en,
                &v.datatype,
                v.code_system.as_deref().unwrap_or(""),
            ])?;
        }
    }
    w.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}
