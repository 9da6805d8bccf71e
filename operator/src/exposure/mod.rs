//! Exposure: the hub's data products reach the holders of data permits.
//!
//! The API component (`vardhub exposure-api`, run by the hub's controller when
//! `spec.exposure.api` is on) answers only bearer tokens of the hub's OIDC issuer, and only
//! for the products a `DataPermit` in force grants the token's subject. It decides on every
//! request from a watch of the permits of the hub's namespace, so a permit that expires or is
//! deleted stops working at once. It reads the purpose-specific zone with a read-only
//! credential it fetches from OpenBao, and every request, served or refused, leaves a record
//! in its audit trail.

pub mod api;
