//! The audit trails of the project's components: one JSON line per record, written straight
//! to standard output (or a writer of the caller's choice), outside the log and its levels,
//! so that no log setting can switch them off. Each line carries its time and the name of
//! its trail (`audit`), to tell records from log lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Where one trail's records go.
#[derive(Clone)]
pub struct AuditSink {
    stream: &'static str,
    sink: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditSink({})", self.stream)
    }
}

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    time: String,
    audit: &'static str,
    #[serde(flatten)]
    record: &'a T,
}

impl AuditSink {
    /// The trail `stream`, written to `writer`.
    pub fn to(stream: &'static str, writer: impl Write + Send + 'static) -> Self {
        Self {
            stream,
            sink: Arc::new(Mutex::new(Box::new(writer))),
        }
    }

    /// The trail's name, the value of every record's `audit` field.
    pub fn stream(&self) -> &'static str {
        self.stream
    }

    /// Writes one record, whole, as one line, and flushes it.
    pub fn write<T: Serialize>(&self, record: &T) {
        let line = Line {
            time: k8s_openapi::jiff::Timestamp::now().to_string(),
            audit: self.stream,
            record,
        };
        let Ok(mut bytes) = serde_json::to_vec(&line) else {
            tracing::error!(trail = self.stream, "could not serialise an audit record");
            return;
        };
        bytes.push(b'\n');
        match self.sink.lock() {
            Ok(mut sink) => {
                if sink.write_all(&bytes).and_then(|()| sink.flush()).is_err() {
                    tracing::error!(trail = self.stream, "could not write an audit record");
                }
            }
            Err(_) => tracing::error!(trail = self.stream, "the audit trail is unusable"),
        }
    }
}
