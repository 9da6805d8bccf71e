//! Narrow, idempotent adapters to the external systems: OpenBao (or Vault) and S3. All I/O.

pub mod openbao;
pub mod s3;
