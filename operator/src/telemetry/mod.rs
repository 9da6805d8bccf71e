//! Observability: Prometheus metrics, the `/healthz`, `/readyz` and `/metrics` endpoints, and
//! logging.

mod audit;
pub mod calls;
mod metrics;
mod server;

pub use audit::AuditSink;
pub use metrics::Metrics;
pub use server::{Health, serve};

/// Libraries whose log lines are off unless the filter names them. The OpenBao client logs
/// every non-2xx answer at ERROR, including the 404s by which the operator learns that
/// something is not there yet (about ten per resource on a first roll-out); the operator
/// reports real failures itself, in conditions, events and its own log lines.
const QUIET_LIBRARIES: [&str; 2] = ["vaultrs", "rustify"];

/// The `tracing` filter for a `RUST_LOG` value (`info` when unset): the value, with
/// [`QUIET_LIBRARIES`] off unless it names them (`RUST_LOG=info,vaultrs=debug` brings them
/// back).
#[must_use]
pub fn log_filter(rust_log: Option<&str>) -> String {
    let spec = rust_log.map_or("info", str::trim);
    let mut directives = vec![if spec.is_empty() { "info" } else { spec }.to_string()];
    for library in QUIET_LIBRARIES {
        if !spec.contains(library) {
            directives.push(format!("{library}=off"));
        }
    }
    directives.join(",")
}

/// Sets up `tracing` output: human-readable by default, JSON with `--log-format json`. The
/// filter comes from `RUST_LOG` (see [`log_filter`]).
pub fn init_logging(json: bool) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = tracing_subscriber::EnvFilter::try_new(log_filter(rust_log.as_deref()))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter(None)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn the_openbao_client_is_quiet_unless_the_filter_names_it() {
        assert_eq!(log_filter(None), "info,vaultrs=off,rustify=off");
        assert_eq!(log_filter(Some("")), "info,vaultrs=off,rustify=off");
        assert_eq!(
            log_filter(Some("warn,vardhub=debug")),
            "warn,vardhub=debug,vaultrs=off,rustify=off"
        );
        assert_eq!(
            log_filter(Some("info,vaultrs=debug")),
            "info,vaultrs=debug,rustify=off"
        );
        for filter in [log_filter(None), log_filter(Some("info,vaultrs=debug"))] {
            assert!(
                tracing_subscriber::EnvFilter::try_new(&filter).is_ok(),
                "{filter}"
            );
        }
    }
}
