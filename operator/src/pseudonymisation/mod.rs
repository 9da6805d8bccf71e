//! The pseudonymisation service's core: identifier validation and pseudonym derivation.
//!
//! [`identifier`], [`pseudonym`] and [`arrow`] (the bulk format) are pure; [`access`] verifies callers and holds their
//! grants; [`audit`] records every request; [`service`] is the HTTP service and [`tls`] its
//! certificates (I/O).

pub mod access;
pub mod arrow;
pub mod audit;
pub mod identifier;
pub mod pseudonym;
pub mod service;
pub mod tls;
