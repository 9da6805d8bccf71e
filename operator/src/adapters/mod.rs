//! Narrow, idempotent adapters to the external systems: OpenBao (or Vault) and S3. All I/O.

pub mod openbao;
pub mod s3;

/// Retries `attempt` every five seconds until it succeeds, saying why it waits: how a
/// component that cannot work without OpenBao (or its issuer) starts while that is slow or
/// away, instead of exiting and being restarted with a growing back-off.
pub async fn until_ok<T, F, Fut>(what: &str, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    loop {
        match attempt().await {
            Ok(v) => return v,
            Err(e) => tracing::warn!(error = format!("{e:#}"), "{what}; trying again in 5 s"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}
