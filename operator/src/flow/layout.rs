//! Where the flow's files live, inside the buckets of [`crate::controller::storage`]. Pure.
//!
//! | Step output | Bucket | Key |
//! |---|---|---|
//! | source extract | node landing | `source/<file>.csv` |
//! | common model | node standardised | `omop/<table>.parquet` |
//! | export, central | hub landing | `<county>/<purpose>/<table>.parquet` |
//! | export, federated (standardised in the region) | node standardised | `export/<purpose>/<table>.parquet` |
//! | its quarantine | node standardised | `quarantine/<purpose>/<table>.parquet` |
//! | standardised | hub standardised | `<county>/<purpose>/<table>.parquet` |
//! | quarantine | hub standardised | `quarantine/<county>/<purpose>/<table>.parquet` |
//! | manifest | hub standardised | `manifests/<county>/<purpose>.json` |
//! | data product | hub products | `<product>/<table>.parquet`, `<product>/report.html` |

use crate::layout::federated_export_prefix;

/// Prefix of a region's source extract in its landing bucket.
pub const SOURCE: &str = "source";
/// Prefix of the region's common model in its standardised bucket.
pub const OMOP: &str = "omop";

/// Prefix of a central export in the hub's landing bucket (the region's write-only prefix).
pub fn central_export(county: &str, purpose: &str) -> String {
    format!("{county}/{purpose}")
}

/// Prefix of a federated export in the region's standardised bucket.
pub fn federated_export(purpose: &str) -> String {
    federated_export_prefix(purpose)
}

/// Prefix of a federated export's quarantined rows in the region's standardised bucket.
pub fn federated_quarantine(purpose: &str) -> String {
    format!("quarantine/{purpose}")
}

/// Prefix of a region's standardised data in the hub.
pub fn standardised(county: &str, purpose: &str) -> String {
    format!("{county}/{purpose}")
}

/// Prefix of a region's quarantined rows in the hub.
pub fn quarantine(county: &str, purpose: &str) -> String {
    format!("quarantine/{county}/{purpose}")
}

/// Key of a standardisation run's manifest.
pub fn manifest(county: &str, purpose: &str) -> String {
    format!("manifests/{county}/{purpose}.json")
}

/// Joins a prefix and a file name.
pub fn key(prefix: &str, file: &str) -> String {
    format!("{}/{file}", prefix.trim_end_matches('/'))
}
