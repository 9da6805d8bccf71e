//! The service's audit trail: one JSON line per request, served or refused, through the
//! components' shared [`AuditSink`]; the platform's log collection keeps them with the pod's
//! other output. A record names the caller, the
//! domain, the action, the outcome and the row count: never an identifier, a pseudonym or a
//! token.

use std::io::Write;
use std::sync::Arc;

use crate::telemetry::AuditSink;

use serde::Serialize;

/// The value of every record's `audit` field, to tell records from log lines.
pub const STREAM: &str = "vardhub-pseudonymisation";

/// What the caller asked for.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Pseudonyms of a batch or a stream.
    Pseudonymise,
    /// Old and new pseudonyms across a key rotation.
    Migrate,
    /// Identifiers back from pseudonyms.
    Reidentify,
}

impl Action {
    /// The action a request path names (its last segment).
    pub fn of_path(path: &str) -> Option<Self> {
        match path.rsplit('/').next()? {
            "pseudonyms" => Some(Action::Pseudonymise),
            "migrations" => Some(Action::Migrate),
            "reidentifications" => Some(Action::Reidentify),
            _ => None,
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Answered.
    Served,
    /// No valid token for the service (401).
    Unauthenticated,
    /// A valid caller without a grant for the domain (403).
    Forbidden,
    /// OpenBao refused the caller's own token or policy (re-identification).
    RefusedByOpenbao,
    /// The request was malformed, too large, or OpenBao failed.
    Failed,
}

/// One audit record.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Record<'a> {
    /// What was asked.
    pub action: Option<Action>,
    /// How it ended.
    pub outcome: Outcome,
    /// The authenticated caller (`namespace/serviceaccount`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caller: Option<&'a str>,
    /// The OpenBao entity that re-identified, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub openbao_entity: Option<&'a str>,
    /// The pseudonym domain named in the request.
    pub domain: &'a str,
    /// Rows handled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// Why a request was refused or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    record: &'a Record<'a>,
    /// The purpose the resource states for the domain, so that a record says what the
    /// access was for without a look-up.
    #[serde(skip_serializing_if = "Option::is_none")]
    purpose: Option<&'a str>,
}

/// Where records go.
#[derive(Clone, Debug)]
pub struct AuditLog {
    sink: AuditSink,
    purposes: Arc<std::collections::BTreeMap<String, String>>,
}

impl Default for AuditLog {
    fn default() -> Self {
        Self::to(std::io::stdout())
    }
}

impl AuditLog {
    /// Records written to `writer`, one line each.
    pub fn to(writer: impl Write + Send + 'static) -> Self {
        Self {
            sink: AuditSink::to(STREAM, writer),
            purposes: Default::default(),
        }
    }

    /// The same log, naming each domain's stated purpose in its records.
    pub fn with_purposes(self, purposes: std::collections::BTreeMap<String, String>) -> Self {
        Self {
            purposes: Arc::new(purposes),
            ..self
        }
    }

    /// Writes one record, whole, as one line.
    pub fn record(&self, record: &Record<'_>) {
        self.sink.write(&Line {
            record,
            purpose: self.purposes.get(record.domain).map(String::as_str),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_record_is_one_json_line_without_empty_fields() {
        let shared = Shared::default();
        let log = AuditLog::to(shared.clone());
        log.record(&Record {
            action: Action::of_path("/v1/domains/a/pseudonyms"),
            outcome: Outcome::Forbidden,
            caller: Some("region-x/regional-node"),
            openbao_entity: None,
            domain: "a",
            rows: None,
            reason: None,
        });
        let text = String::from_utf8(shared.0.lock().expect("lock").clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 1);
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["audit"], STREAM);
        assert_eq!(value["action"], "pseudonymise");
        assert_eq!(value["outcome"], "forbidden");
        assert_eq!(value["caller"], "region-x/regional-node");
        assert!(value.get("rows").is_none() && value.get("openbaoEntity").is_none());
    }

    #[test]
    fn a_record_states_its_domains_purpose() {
        let shared = Shared::default();
        let purposes = [(
            "permit-42".to_string(),
            "Use case D: hip fractures".to_string(),
        )];
        let log = AuditLog::to(shared.clone()).with_purposes(purposes.into_iter().collect());
        for domain in ["permit-42", "unknown"] {
            log.record(&Record {
                action: Action::of_path("/v1/domains/permit-42/pseudonyms"),
                outcome: Outcome::Served,
                caller: Some("region-x/regional-node"),
                openbao_entity: None,
                domain,
                rows: Some(3),
                reason: None,
            });
        }
        let text = String::from_utf8(shared.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert_eq!(lines[0]["purpose"], "Use case D: hip fractures");
        assert!(lines[1].get("purpose").is_none(), "no purpose is made up");
    }
}
