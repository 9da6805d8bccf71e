//! The pseudonymisation service's core: identifier validation and pseudonym derivation.
//!
//! [`identifier`] and [`pseudonym`] are pure; [`service`] is the HTTP service (I/O).

pub mod identifier;
pub mod pseudonym;
pub mod service;
