//! Narrow, idempotent adapters to the external systems: OpenBao (or Vault). All I/O.

pub mod openbao;
