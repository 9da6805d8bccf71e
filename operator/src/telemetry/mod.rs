//! Observability: Prometheus metrics, the `/healthz`, `/readyz` and `/metrics` endpoints, and
//! logging.

mod audit;
mod metrics;
mod server;

pub use audit::AuditSink;
pub use metrics::Metrics;
pub use server::{Health, serve};

/// Sets up `tracing` output: human-readable by default, JSON with `--log-format json`. The
/// level comes from `RUST_LOG` (default `info`).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}
