//! The pseudonymisation service's core: identifier validation and pseudonym derivation.
//!
//! Pure code; the HTTP service and the OpenBao adapter build on it.

pub mod identifier;
pub mod pseudonym;
