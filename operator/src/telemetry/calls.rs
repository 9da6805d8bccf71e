//! Calls to the servers the operator depends on (OpenBao and the S3 server), counted per
//! controller: `vardhub_external_calls_total{controller, server, operation, outcome}`.
//!
//! The reconcile driver runs each reconcile inside [`scope`], which names its controller for
//! the task; the adapters hold a [`Pending`] for each request they send (the S3 adapter
//! through an SDK interceptor, so retries count as the requests they are) and count it when
//! its answer comes, or as unanswered when it is cut off. A request sent outside a scope (the
//! operator's login, the pseudonymisation service, the command line) is not counted.

use std::future::Future;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The server a request went to.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Server {
    /// OpenBao (or Vault).
    OpenBao,
    /// The S3 server, including its STS endpoint.
    S3,
}

/// How a request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer.
    Ok,
    /// 404: how the operator learns that something is not there yet.
    NotFound,
    /// Another 4xx answer.
    Refused,
    /// A 5xx answer (a sealed OpenBao answers 503).
    ServerError,
    /// No answer: the connection failed or the call's timeout ran out.
    Unanswered,
}

impl Server {
    fn label(self) -> &'static str {
        match self {
            Self::OpenBao => "openbao",
            Self::S3 => "s3",
        }
    }
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::NotFound => "not_found",
            Self::Refused => "refused",
            Self::ServerError => "server_error",
            Self::Unanswered => "unanswered",
        }
    }

    /// The outcome of an HTTP answer with status `code`.
    pub fn of_status(code: u16) -> Self {
        match code {
            200..=399 => Self::Ok,
            404 => Self::NotFound,
            400..=499 => Self::Refused,
            _ => Self::ServerError,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct CallLabels {
    controller: &'static str,
    server: &'static str,
    operation: String,
    outcome: &'static str,
}

/// The counter family, registered with the operator's other metrics.
pub(super) type Calls = Family<CallLabels, Counter>;

#[derive(Clone)]
struct Scope {
    controller: &'static str,
    calls: Calls,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Runs `work` with its requests counted under `controller` in `metrics`.
pub async fn scope<F: Future>(
    metrics: &super::Metrics,
    controller: &'static str,
    work: F,
) -> F::Output {
    let scope = Scope {
        controller,
        calls: metrics.calls(),
    };
    SCOPE.scope(scope, work).await
}

/// Counts one request to `server` (the scope's controller; nothing outside a scope).
fn record(server: Server, operation: &str, outcome: Outcome) {
    // Outside a scope there is no controller to count it under.
    let _ = SCOPE.try_with(|s| {
        s.calls
            .get_or_create(&CallLabels {
                controller: s.controller,
                server: server.label(),
                operation: operation.to_string(),
                outcome: outcome.label(),
            })
            .inc();
    });
}

/// A request sent and not yet answered: [`Pending::answered`] counts it with its outcome; a
/// request dropped before that (cut off by a timeout or a reconcile's deadline) counts as
/// [`Outcome::Unanswered`] when it is dropped.
#[derive(Debug)]
pub struct Pending {
    server: Server,
    operation: String,
    counted: bool,
}

impl Pending {
    /// A request to `server` is on its way.
    pub fn sent(server: Server, operation: &str) -> Self {
        Self {
            server,
            operation: operation.to_string(),
            counted: false,
        }
    }

    /// Its answer came, with `outcome`.
    pub fn answered(mut self, outcome: Outcome) {
        record(self.server, &self.operation, outcome);
        self.counted = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.counted {
            record(self.server, &self.operation, Outcome::Unanswered);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_are_counted_under_their_scope_only() {
        let metrics = super::super::Metrics::default();
        record(Server::OpenBao, "kv.read", Outcome::Ok);
        scope(&metrics, "datahub", async {
            record(Server::OpenBao, "kv.read", Outcome::NotFound);
            record(Server::OpenBao, "kv.read", Outcome::NotFound);
            // Futures polled inside the reconcile (as `join` or a buffered stream polls
            // them) are in its scope.
            futures::future::join(
                async { record(Server::S3, "PutBucketPolicy", Outcome::Ok) },
                async { record(Server::S3, "AssumeRole", Outcome::of_status(503)) },
            )
            .await;
        })
        .await;
        let text = metrics.encode();
        assert!(text.contains(
            "vardhub_external_calls_total{controller=\"datahub\",server=\"openbao\",operation=\"kv.read\",outcome=\"not_found\"} 2"
        ), "{text}");
        assert!(text.contains(
            "vardhub_external_calls_total{controller=\"datahub\",server=\"s3\",operation=\"PutBucketPolicy\",outcome=\"ok\"} 1"
        ), "{text}");
        assert!(text.contains(
            "vardhub_external_calls_total{controller=\"datahub\",server=\"s3\",operation=\"AssumeRole\",outcome=\"server_error\"} 1"
        ), "{text}");
        assert_eq!(text.matches("server=\"openbao\"").count(), 1, "{text}");
    }

    #[tokio::test]
    async fn a_request_cut_off_by_a_deadline_counts_as_unanswered() {
        let metrics = super::super::Metrics::default();
        let cut = scope(&metrics, "regionalnode", async {
            tokio::time::timeout(std::time::Duration::from_millis(10), async {
                let pending = Pending::sent(Server::OpenBao, "kv.read");
                std::future::pending::<()>().await;
                pending.answered(Outcome::Ok);
            })
            .await
        })
        .await;
        assert!(cut.is_err());
        let text = metrics.encode();
        assert!(text.contains(
            "vardhub_external_calls_total{controller=\"regionalnode\",server=\"openbao\",operation=\"kv.read\",outcome=\"unanswered\"} 1"
        ), "{text}");
        assert!(!text.contains("outcome=\"ok\""), "{text}");
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(Outcome::of_status(204), Outcome::Ok);
        assert_eq!(Outcome::of_status(404), Outcome::NotFound);
        assert_eq!(Outcome::of_status(403), Outcome::Refused);
        assert_eq!(Outcome::of_status(503), Outcome::ServerError);
    }
}
