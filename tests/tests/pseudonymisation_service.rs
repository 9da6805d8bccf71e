//! The pseudonymisation service against a real OpenBao, logging in with a real
//! ServiceAccount token of the local cluster.

use std::io::Write;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Api;
use kube::api::DeleteParams;
use vardhub::adapters::openbao::{KubernetesRole, Transit};
use vardhub::pseudonymisation::access::Grants;
use vardhub::pseudonymisation::audit::AuditLog;
use vardhub::pseudonymisation::identifier::luhn_check_digit;
use vardhub::pseudonymisation::service::{Access, Auth, Config, Service, TlsSettings};
use vardhub_tests::{LocalCluster, eventually, free_port};
use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

const NS: &str = "vardhub-test-pseudo";
const MOUNT: &str = "vardhub-test-pseudo";

/// Everything the service logs, to check that no identifier ever reaches a log line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
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

/// Everything any test's service logs in this process, captured once.
fn captured_logs() -> &'static Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .try_init();
        captured
    })
}

fn personnummer(i: usize) -> String {
    let nine = format!("8503{:02}{:03}", 1 + i % 28, i % 1000);
    format!("{}-{}{}", &nine[..6], &nine[6..], luhn_check_digit(&nine))
}

/// Keys, policy, role and a ServiceAccount token in a file named after `test`, so that tests
/// running side by side never share (or delete) each other's token file.
async fn prepare(cluster: &LocalCluster, test: &str) -> Result<(std::path::PathBuf, u64, u64)> {
    let transit = Transit::new(&cluster.vault_addr, &cluster.vault_token, MOUNT)?;
    transit.ensure_mount().await?;
    let a = transit.ensure_key("domain-a", true).await?.latest_version;
    let b = transit.ensure_key("domain-b", true).await?.latest_version;

    // OpenBao accepts policies as JSON, so the policy is built as data, not as HCL text.
    let policy = serde_json::json!({"path": {
        format!("{MOUNT}/hmac/*"): {"capabilities": ["update"]},
        format!("{MOUNT}/export/hmac-key/*"): {"capabilities": ["read"]},
    }});
    let admin = cluster.openbao_admin()?;
    admin
        .ensure_policy("vardhub-test-pseudonymiser", &policy)
        .await?;
    let role = KubernetesRole {
        service_accounts: vec!["pseudonymiser".into()],
        namespaces: vec![NS.into()],
        policies: vec!["vardhub-test-pseudonymiser".into()],
        ttl_seconds: 600,
        ..Default::default()
    };
    admin
        .ensure_kubernetes_role("kubernetes", "vardhub-test-pseudonymiser", &role)
        .await?;
    cluster.ensure_service_account(NS, "pseudonymiser").await?;
    let token = cluster
        .service_account_token(NS, "pseudonymiser", None)
        .await?;
    let path = std::env::temp_dir().join(format!(
        "vardhub-test-sa-token-{}-{test}",
        std::process::id()
    ));
    std::fs::write(&path, token)?;
    Ok((path, a, b))
}

async fn serve(config: Config) -> Result<(String, tokio::task::JoinHandle<()>)> {
    let service = Service::start(config).await?;
    let port = free_port()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let base = if service.is_tls() {
        format!("https://{TLS_HOST}:{port}")
    } else {
        format!("http://127.0.0.1:{port}")
    };
    let task = tokio::spawn(async move {
        let _ = service.serve(listener, std::future::pending()).await;
    });
    Ok((base, task))
}

/// The name a TLS service of the tests answers to (resolved to 127.0.0.1 by its clients).
const TLS_HOST: &str = "pseudo.vardhub-test-pseudo.svc";
/// The PKI mount that issues the tests' TLS service its certificate.
const TLS_PKI: &str = "vardhub-test-pseudo-pki";

/// The PKI engine of the tests' TLS service, and its CA.
async fn test_pki(cluster: &LocalCluster) -> Result<String> {
    use vardhub::adapters::openbao::{ServerPki, ca_certificate};
    let pki = ServerPki {
        mount: TLS_PKI.into(),
        names: vec![TLS_HOST.into()],
    };
    cluster
        .openbao_admin()?
        .ensure_server_pki(&pki, "vardhub test CA")
        .await?;
    Ok(ca_certificate(&reqwest::Client::new(), &cluster.vault_addr, TLS_PKI).await?)
}

/// A client that trusts only `ca`, reaches [`TLS_HOST`] at 127.0.0.1 and presents the tests'
/// caller's token.
async fn tls_caller(cluster: &LocalCluster, ca: &str, base: &str) -> Result<reqwest::Client> {
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {base}"))?;
    let token = cluster
        .service_account_token(NS, CALLER, Some(AUDIENCE))
        .await?;
    let mut bearer = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
    bearer.set_sensitive(true);
    Ok(reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes())?])
        .resolve(TLS_HOST, std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::AUTHORIZATION,
            bearer,
        )]))
        .build()?)
}

/// The audience of the service the tests run in process.
const AUDIENCE: &str = "vardhub.io/pseudonymisation/vardhub-test-pseudo/test";
/// The ServiceAccount the tests call the service as.
const CALLER: &str = "export";

/// Grants `domains` to the tests' caller.
async fn access(cluster: &LocalCluster, domains: &[&str]) -> Result<Access> {
    let grants: Vec<String> = domains
        .iter()
        .map(|d| Grants::entry(d, NS, Some(CALLER)))
        .collect();
    cluster.pseudonymisation_access(AUDIENCE, &grants).await
}

/// An HTTP client that presents the tests' caller's token.
async fn caller(cluster: &LocalCluster) -> Result<reqwest::Client> {
    cluster.caller(NS, CALLER, AUDIENCE).await
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn service_pseudonymises_per_domain_stably_with_per_row_errors_and_no_identifier_in_logs()
-> Result<()> {
    let captured = captured_logs();

    let cluster = LocalCluster::get();
    let (token_path, version_a, version_b) = prepare(cluster, "batches").await?;
    let access = access(cluster, &["a", "b"]).await?;
    let config = |local: bool| Config {
        openbao_addr: cluster.vault_addr.clone(),
        tls: None,
        auth: Auth::Kubernetes {
            mount: "kubernetes".into(),
            role: "vardhub-test-pseudonymiser".into(),
            jwt_path: token_path.clone(),
        },
        transit_mount: MOUNT.into(),
        local,
        reversible: Vec::new(),
        domains: vec![
            ("a".into(), "domain-a".into(), version_a),
            ("b".into(), "domain-b".into(), version_b),
        ],
        access: access.clone(),
    };
    let http = caller(cluster).await?;
    let ids: Vec<String> = (0..1200).map(personnummer).collect();
    let bad_check = {
        let good = personnummer(5);
        let last = good.as_bytes()[good.len() - 1] - b'0';
        format!("{}{}", &good[..good.len() - 1], (last + 1) % 10)
    };
    let mut rows = ids.clone();
    rows.insert(3, bad_check.clone());
    rows.insert(7, "not-a-number".into());

    let batch = |base: String, domain: &'static str, rows: Vec<String>| {
        let http = http.clone();
        async move {
            let body = serde_json::json!({"kind": "personnummer", "identifiers": rows});
            let response = http
                .post(format!("{base}/v1/domains/{domain}/pseudonyms"))
                .json(&body)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "status {}",
                response.status()
            );
            anyhow::Ok(response.json::<serde_json::Value>().await?)
        }
    };

    let (base, task) = serve(config(false)).await?;
    let first = batch(base.clone(), "a", rows.clone()).await?;
    let errors = first["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 2, "two bad rows reported");
    assert_eq!(errors[0]["index"], 3);
    assert_eq!(errors[0]["reason"], "the check digit is wrong");
    assert_eq!(errors[1]["index"], 7);
    let text = first.to_string();
    assert!(
        !text.contains(&bad_check) && !text.contains("not-a-number"),
        "bad values are not echoed"
    );
    let pseudonyms = first["pseudonyms"].as_array().cloned().unwrap_or_default();
    assert_eq!(pseudonyms.len(), rows.len());
    assert!(pseudonyms[3].is_null() && pseudonyms[7].is_null());
    assert_eq!(first["keyVersion"], version_a);

    let other_domain = batch(base.clone(), "b", rows.clone()).await?;
    let other = other_domain["pseudonyms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        pseudonyms
            .iter()
            .zip(&other)
            .filter(|(x, _)| !x.is_null())
            .all(|(x, y)| x != y),
        "domains differ"
    );

    let unknown = http
        .post(format!("{base}/v1/domains/nope/pseudonyms"))
        .json(&serde_json::json!({}))
        .send()
        .await?;
    assert_eq!(
        unknown.status(),
        403,
        "a domain without a grant is refused whether or not it exists"
    );
    let malformed = http
        .post(format!("{base}/v1/domains/a/pseudonyms"))
        .header("content-type", "application/json")
        .body("{\"kind\": \"personnummer\", \"identifiers\": [")
        .send()
        .await?;
    assert_eq!(malformed.status(), 400);
    let other_column = {
        use arrow_array::{RecordBatch, StringArray};
        let column = StringArray::from(vec![personnummer(1)]);
        let batch = RecordBatch::try_from_iter([("id", std::sync::Arc::new(column) as _)])?;
        let mut writer = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())?;
        writer.write(&batch)?;
        writer.into_inner()?
    };
    let no_column = http
        .post(format!("{base}/v1/domains/a/pseudonyms"))
        .header(
            "content-type",
            vardhub::pseudonymisation::arrow::CONTENT_TYPE,
        )
        .body(other_column)
        .send()
        .await?;
    assert_eq!(no_column.status(), 400);
    let detail = no_column.json::<serde_json::Value>().await?;
    assert_eq!(
        detail["detail"], "the Arrow stream has no column `identifier`",
        "the refusal names the column"
    );

    // NDJSON streaming: one line per row, in order, errors by index.
    let mut body = String::new();
    for row in &rows {
        body.push_str(&serde_json::to_string(row)?);
        body.push('\n');
    }
    let streamed = http
        .post(format!("{base}/v1/domains/a/pseudonyms"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?
        .text()
        .await?;
    let lines: Vec<serde_json::Value> = streamed
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), rows.len());
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i);
        assert!(
            line.get("pseudonym") == pseudonyms.get(i).filter(|p| !p.is_null()),
            "row {i} matches the JSON API"
        );
    }
    assert!(lines[7]["error"].is_string());
    task.abort();

    // A restart gives the same pseudonyms; so does local mode (same key version, in process);
    // and so does an Arrow stream, in either mode.
    let mut arrow_rows: Vec<Option<String>> = rows.iter().cloned().map(Some).collect();
    arrow_rows.push(None);
    let mut expected: Vec<Option<String>> = pseudonyms
        .iter()
        .map(|p| p.as_str().map(str::to_string))
        .collect();
    expected.push(None);
    for local in [false, true] {
        let (base, task) = serve(config(local)).await?;
        let again = batch(base.clone(), "a", rows.clone()).await?;
        assert!(
            again["pseudonyms"] == first["pseudonyms"],
            "stable across restarts (local mode: {local})"
        );
        let answer = arrow_pseudonyms(&http, &base, &arrow_rows).await?;
        assert_eq!(answer.metadata["domain"], "a");
        assert_eq!(answer.metadata["keyVersion"], version_a.to_string());
        assert_eq!(answer.batches, 2, "one answer batch per batch sent");
        assert!(
            answer.pseudonyms == expected,
            "Arrow gives the JSON API's pseudonyms row for row (local mode: {local})"
        );
        let refused: Vec<(usize, &str)> = answer
            .errors
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.as_deref()?)))
            .collect();
        assert_eq!(
            refused,
            [
                (3, "the check digit is wrong"),
                (
                    7,
                    "not a personal identity number in an accepted form (YYYYMMDD-NNNC, YYMMDD-NNNC, …)"
                ),
                (rows.len(), "empty identifier"),
            ]
        );
        task.abort();
    }

    let (base, task) = serve(config(true)).await?;
    batch(base.clone(), "a", rows.clone()).await?;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("vardhub_pseudonymisation_records_total{domain=\"a\"} 1200"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vardhub_pseudonymisation_row_errors_total{domain=\"a\"} 2"),
        "{metrics}"
    );
    let ready = reqwest::get(format!("{base}/readyz")).await?;
    assert!(ready.status().is_success());
    task.abort();

    let logs =
        String::from_utf8_lossy(&captured.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?)
            .into_owned();
    assert!(
        logs.contains("pseudonymisation service ready"),
        "logs were captured"
    );
    let leaked = rows.iter().any(|r| {
        let digits = r.replace('-', "");
        logs.contains(r.as_str()) || logs.contains(&digits) || logs.contains(&format!("19{digits}"))
    });
    assert!(!leaked, "no identifier appears in any log line");
    assert!(!logs.contains("eyJ"), "no token appears in any log line");
    let _ = std::fs::remove_file(token_path);
    Ok(())
}

/// What the service answered to an Arrow stream.
struct ArrowAnswer {
    metadata: std::collections::HashMap<String, String>,
    batches: usize,
    pseudonyms: Vec<Option<String>>,
    errors: Vec<Option<String>>,
}

/// An Arrow IPC stream of one record batch per part, each with a nullable Utf8 column
/// `identifier`.
fn arrow_stream(parts: &[&[Option<String>]]) -> Result<Vec<u8>> {
    use arrow_array::{RecordBatch, StringArray};
    use std::sync::Arc;
    let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "identifier",
        arrow_schema::DataType::Utf8,
        true,
    )]));
    let mut writer = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema)?;
    for part in parts {
        let column = StringArray::from_iter(part.iter().map(Option::as_deref));
        writer.write(&RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(column)],
        )?)?;
    }
    Ok(writer.into_inner()?)
}

/// Sends `rows` to domain `a` as an Arrow IPC stream of two record batches and reads the
/// answer stream.
async fn arrow_pseudonyms(
    http: &reqwest::Client,
    base: &str,
    rows: &[Option<String>],
) -> Result<ArrowAnswer> {
    use arrow_array::{Array, StringArray};
    use vardhub::pseudonymisation::arrow::CONTENT_TYPE;
    let half = rows.len() / 2;
    let response = http
        .post(format!("{base}/v1/domains/a/pseudonyms"))
        .header("content-type", CONTENT_TYPE)
        .body(arrow_stream(&[&rows[..half], &rows[half..]])?)
        .send()
        .await?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "status {status}: {}",
        response.text().await?
    );
    assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
    let bytes = response.bytes().await?;
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    let mut answer = ArrowAnswer {
        metadata: reader.schema().metadata().clone().into(),
        batches: 0,
        pseudonyms: Vec::new(),
        errors: Vec::new(),
    };
    for batch in reader {
        let batch = batch?;
        answer.batches += 1;
        let column = |name: &str| -> Result<Vec<Option<String>>> {
            let array = batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| anyhow::anyhow!("no Utf8 column {name}"))?;
            Ok((0..array.len())
                .map(|i| array.is_valid(i).then(|| array.value(i).to_string()))
                .collect())
        };
        answer.pseudonyms.extend(column("pseudonym")?);
        answer.errors.extend(column("error")?);
    }
    Ok(answer)
}

/// A private OpenBao dev server, so that sealing it cannot disturb the other tests.
struct PrivateOpenBao {
    child: tokio::process::Child,
    addr: String,
    unseal_key: String,
}

const PRIVATE_ROOT: &str = "vardhub-test-private-root";

async fn private_openbao() -> Result<PrivateOpenBao> {
    use tokio::io::AsyncBufReadExt;
    let port = free_port()?;
    let mut child = tokio::process::Command::new("bao")
        .args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={PRIVATE_ROOT}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            "-dev-no-store-token",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut unseal_key = None;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while unseal_key.is_none() && tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line()).await {
            Ok(Ok(Some(line))) => {
                if let Some(key) = line.trim().strip_prefix("Unseal Key: ") {
                    unseal_key = Some(key.trim().to_string());
                }
            }
            _ => break,
        }
    }
    // Keep draining its output so that the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let unseal_key =
        unseal_key.ok_or_else(|| anyhow::anyhow!("the dev server printed no unseal key"))?;
    let addr = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    vardhub_tests::eventually(
        "the private OpenBao to answer",
        std::time::Duration::from_secs(20),
        || async {
            Ok(vardhub::adapters::openbao::healthy(&http, &addr)
                .await
                .then_some(()))
        },
    )
    .await?;
    Ok(PrivateOpenBao {
        child,
        addr,
        unseal_key,
    })
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn sealed_openbao_makes_the_service_not_ready_and_it_recovers_after_unseal() -> Result<()> {
    let cluster = LocalCluster::get();
    let mut bao = private_openbao().await?;
    let transit = Transit::new(&bao.addr, PRIVATE_ROOT, "transit")?;
    transit.ensure_mount().await?;
    let version = transit.ensure_key("domain-a", false).await?.latest_version;
    let config = Config {
        openbao_addr: bao.addr.clone(),
        tls: None,
        auth: Auth::Token(PRIVATE_ROOT.into()),
        transit_mount: "transit".into(),
        local: false,
        reversible: Vec::new(),
        domains: vec![("a".into(), "domain-a".into(), version)],
        access: access(cluster, &["a"]).await?,
    };
    let (base, task) = serve(config).await?;
    let http = caller(cluster).await?;
    let body = serde_json::json!({"kind": "personnummer", "identifiers": [personnummer(1), personnummer(2)]});
    let url = format!("{base}/v1/domains/a/pseudonyms");
    let before: serde_json::Value = http.post(&url).json(&body).send().await?.json().await?;

    let root = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&bao.addr)
            .token(PRIVATE_ROOT)
            .build()?,
    )?;
    vaultrs::sys::seal(&root).await?;
    vardhub_tests::eventually(
        "the service to report not ready",
        std::time::Duration::from_secs(15),
        || async {
            Ok((reqwest::get(format!("{base}/readyz")).await?.status() == 503).then_some(()))
        },
    )
    .await?;
    let refused = http.post(&url).json(&body).send().await?;
    assert_eq!(
        refused.status(),
        503,
        "requests fail cleanly while OpenBao is sealed"
    );
    let detail = refused.text().await?;
    assert!(detail.contains("OpenBao"), "{detail}");

    vaultrs::sys::unseal(&root, Some(bao.unseal_key.clone()), None, None).await?;
    vardhub_tests::eventually(
        "the service to recover",
        std::time::Duration::from_secs(15),
        || async {
            Ok(reqwest::get(format!("{base}/readyz"))
                .await?
                .status()
                .is_success()
                .then_some(()))
        },
    )
    .await?;
    let after: serde_json::Value = http.post(&url).json(&body).send().await?.json().await?;
    assert!(
        after["pseudonyms"] == before["pseudonyms"],
        "same pseudonyms after recovery"
    );
    task.abort();
    bao.child.kill().await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn migration_pairs_old_and_new_pseudonyms_across_a_rotation() -> Result<()> {
    let cluster = LocalCluster::get();
    let mount = "vardhub-test-migration";
    let transit = Transit::new(&cluster.vault_addr, &cluster.vault_token, mount)?;
    transit.ensure_mount().await?;
    let mut version = transit.ensure_key("epochs", true).await?.latest_version;
    if version < 2 {
        transit.rotate("epochs").await?;
        version = transit.ensure_key("epochs", true).await?.latest_version;
    }
    let access = access(cluster, &["d"]).await?;
    let config = |pinned: u64, local: bool| Config {
        openbao_addr: cluster.vault_addr.clone(),
        tls: None,
        auth: Auth::Token(cluster.vault_token.clone()),
        transit_mount: mount.into(),
        local,
        reversible: Vec::new(),
        domains: vec![("d".into(), "epochs".into(), pinned)],
        access: access.clone(),
    };
    let http = caller(cluster).await?;
    let ids: Vec<String> = (0..50).map(personnummer).collect();
    let pseudonyms = |base: String| {
        let http = http.clone();
        let body = serde_json::json!({"kind": "personnummer", "identifiers": ids});
        async move {
            let v: serde_json::Value = http
                .post(format!("{base}/v1/domains/d/pseudonyms"))
                .json(&body)
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(v["pseudonyms"].clone())
        }
    };
    let (old_base, old_task) = serve(config(version - 1, false)).await?;
    let old = pseudonyms(old_base).await?;
    old_task.abort();

    for local in [false, true] {
        let (base, task) = serve(config(version, local)).await?;
        let new = pseudonyms(base.clone()).await?;
        let body = serde_json::json!({"kind": "personnummer", "identifiers": ids, "fromVersion": version - 1});
        let migration: serde_json::Value = http
            .post(format!("{base}/v1/domains/d/migrations"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let pairs = migration["pairs"].as_array().cloned().unwrap_or_default();
        assert_eq!(pairs.len(), ids.len());
        for (i, pair) in pairs.iter().enumerate() {
            assert!(
                pair["old"] == old[i] && pair["new"] == new[i],
                "pair {i} maps old to new (local mode: {local})"
            );
        }
        assert_eq!(migration["toVersion"], version);
        let bad =
            serde_json::json!({"kind": "personnummer", "identifiers": ids, "fromVersion": version});
        let refused = http
            .post(format!("{base}/v1/domains/d/migrations"))
            .json(&bad)
            .send()
            .await?;
        assert_eq!(
            refused.status(),
            400,
            "fromVersion must be older than the pinned version"
        );
        task.abort();
    }
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn reversible_domain_reidentifies_only_with_the_second_policy_and_audits_the_caller()
-> Result<()> {
    let captured = captured_logs();
    let cluster = LocalCluster::get();
    let mount = "vardhub-test-reversible";
    let admin = cluster.openbao_admin()?;
    let transit = admin.transit(mount)?;
    transit.ensure_mount().await?;
    let version = transit.ensure_convergent_key("r").await?.latest_version;
    assert!(
        !transit.ensure_convergent_key("r").await?.created,
        "idempotent"
    );
    admin
        .ensure_policy(
            "vardhub-test-reversible-service",
            &serde_json::json!({"path": {
            format!("{mount}/encrypt/r"): {"capabilities": ["update"]},
            format!("{TLS_PKI}/issue/server"): {"capabilities": ["update"]}}}),
        )
        .await?;
    admin
        .ensure_policy(
            "vardhub-test-reversible-reidentify",
            &serde_json::json!({"path": {
            format!("{mount}/decrypt/r"): {"capabilities": ["update"]}}}),
        )
        .await?;
    let root = cluster.openbao_root()?;
    let token = |policy: &str, name: &str| {
        let mut request = vaultrs::api::token::requests::CreateTokenRequest::builder();
        request
            .policies(vec![policy.to_string()])
            .display_name(name)
            .ttl("10m");
        let root = &root;
        async move {
            anyhow::Ok(
                vaultrs::token::new(root, Some(&mut request))
                    .await?
                    .client_token,
            )
        }
    };
    let service_token = token("vardhub-test-reversible-service", "pseudonymiser").await?;
    let holder = token("vardhub-test-reversible-reidentify", "permit-holder").await?;
    let stranger = token("default", "stranger").await?;
    let trail = Captured::default();
    let ca = test_pki(cluster).await?;
    let config = |tls: bool, access: Access| Config {
        openbao_addr: cluster.vault_addr.clone(),
        tls: tls.then(|| TlsSettings {
            pki_mount: TLS_PKI.into(),
            names: vec![TLS_HOST.into()],
        }),
        auth: Auth::Token(service_token.clone()),
        transit_mount: mount.into(),
        local: false,
        reversible: vec!["r".into()],
        domains: vec![("r".into(), "r".into(), version)],
        access,
    };

    // Over plain HTTP a caller's OpenBao token is never taken.
    let (plain, plain_task) = serve(config(false, access(cluster, &["r"]).await?)).await?;
    let over_http = caller(cluster)
        .await?
        .post(format!("{plain}/v1/domains/r/reidentifications"))
        .header("x-vault-token", &holder)
        .json(&serde_json::json!({"pseudonyms": ["vault:v1:x"]}))
        .send()
        .await?;
    assert_eq!(over_http.status(), 403);
    assert!(over_http.text().await?.contains("only over TLS"));
    plain_task.abort();

    let access = Access {
        audit: AuditLog::to(trail.clone()),
        ..access(cluster, &["r"]).await?
    };
    let (base, task) = serve(config(true, access)).await?;
    assert!(base.starts_with("https://"));
    // A client that trusts only the usual public roots cannot even connect.
    let stranger_tls = reqwest::Client::builder()
        .resolve(
            TLS_HOST,
            format!("127.0.0.1:{}", base.rsplit(':').next().unwrap_or_default()).parse()?,
        )
        .build()?
        .get(format!("{base}/healthz"))
        .send()
        .await;
    // rustls refuses the handshake: the certificate's issuer is not among the public roots.
    assert!(
        stranger_tls
            .as_ref()
            .is_err_and(|e| e.is_connect() && format!("{e:?}").contains("UnknownIssuer")),
        "the certificate chains to the service's own CA only: {stranger_tls:?}"
    );
    let http = tls_caller(cluster, &ca, &base).await?;
    let ids: Vec<String> = (0..20).map(personnummer).collect();
    let body = serde_json::json!({"kind": "personnummer", "identifiers": ids});
    let url = format!("{base}/v1/domains/r/pseudonyms");
    let first: serde_json::Value = http.post(&url).json(&body).send().await?.json().await?;
    let second: serde_json::Value = http.post(&url).json(&body).send().await?.json().await?;
    assert!(
        first["pseudonyms"] == second["pseudonyms"],
        "reversible pseudonyms are stable too"
    );

    let reidentify = format!("{base}/v1/domains/r/reidentifications");
    let request = serde_json::json!({"pseudonyms": first["pseudonyms"]});
    let anonymous = http.post(&reidentify).json(&request).send().await?;
    assert_eq!(
        anonymous.status(),
        401,
        "a caller without an OpenBao token is refused"
    );
    let refused = http
        .post(&reidentify)
        .header("x-vault-token", &stranger)
        .json(&request)
        .send()
        .await?;
    assert_eq!(
        refused.status(),
        403,
        "a token without the re-identification policy is refused by OpenBao"
    );
    let answer: serde_json::Value = http
        .post(&reidentify)
        .header("x-vault-token", &holder)
        .json(&request)
        .send()
        .await?
        .json()
        .await?;
    let back = answer["identifiers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let expected: Vec<serde_json::Value> = ids
        .iter()
        .map(|i| serde_json::Value::from(format!("19{}", i.replace('-', ""))))
        .collect();
    assert!(
        back == expected,
        "the permit holder gets the canonical identifiers back"
    );
    task.abort();

    let logs =
        String::from_utf8_lossy(&captured.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?)
            .into_owned();
    let audit = records(&trail)?;
    let entity = |r: &serde_json::Value, name: &str| {
        r["action"] == "reidentify"
            && r["caller"] == format!("{NS}/{CALLER}")
            && r["openbaoEntity"]
                .as_str()
                .is_some_and(|e| e.contains(name))
    };
    assert!(
        audit
            .iter()
            .any(|r| r["outcome"] == "served" && entity(r, "permit-holder") && r["rows"] == 20),
        "the audit trail names the caller and its OpenBao entity: {audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|r| r["outcome"] == "refused-by-openbao" && entity(r, "stranger")),
        "refusals are audited too: {audit:?}"
    );
    let text = serde_json::to_string(&audit)?;
    assert!(
        !ids.iter().any(|i| text.contains(&i.replace('-', ""))),
        "no identifier in the audit trail"
    );
    assert!(
        !ids.iter().any(|i| logs.contains(&i.replace('-', ""))),
        "no identifier in the logs"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn service_logs_in_again_before_its_token_expires() -> Result<()> {
    let cluster = LocalCluster::get();
    let (token_path, version_a, _) = prepare(cluster, "renewal").await?;
    // A role whose tokens live 4 seconds: the service must log in again about every 3.
    let role = KubernetesRole {
        service_accounts: vec!["pseudonymiser".into()],
        namespaces: vec![NS.into()],
        policies: vec!["vardhub-test-pseudonymiser".into()],
        ttl_seconds: 4,
        ..Default::default()
    };
    cluster
        .openbao_admin()?
        .ensure_kubernetes_role("kubernetes", "vardhub-test-short-lived", &role)
        .await?;
    let (base, task) = serve(Config {
        openbao_addr: cluster.vault_addr.clone(),
        tls: None,
        auth: Auth::Kubernetes {
            mount: "kubernetes".into(),
            role: "vardhub-test-short-lived".into(),
            jwt_path: token_path.clone(),
        },
        transit_mount: MOUNT.into(),
        local: false,
        reversible: Vec::new(),
        domains: vec![("a".into(), "domain-a".into(), version_a)],
        access: access(cluster, &["a"]).await?,
    })
    .await?;
    let http = caller(cluster).await?;
    let body = serde_json::json!({"kind": "personnummer", "identifiers": [personnummer(9)]});
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_secs(4)).await;
        let answer = http
            .post(format!("{base}/v1/domains/a/pseudonyms"))
            .json(&body)
            .send()
            .await?;
        assert!(
            answer.status().is_success(),
            "still served after the first token expired: {}",
            answer.status()
        );
    }
    task.abort();
    Ok(())
}

/// The audit records written to `trail`, parsed.
fn records(trail: &Captured) -> Result<Vec<serde_json::Value>> {
    let bytes = trail.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

/// Posts one batch as `http`, with `token` as the bearer when given; answers the status.
async fn status_of(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> Result<u16> {
    let mut request = http.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Ok(request.send().await?.status().as_u16())
}

/// An attacker who can reach the service (the NetworkPolicy admits its namespace) tries it
/// without a token, with real tokens meant for someone else, with a forged token, from a
/// namespace without a grant, and for a domain granted to another caller. Each attempt gets
/// its specific refusal and leaves an audit line naming who tried; the granted callers get
/// through; no token reaches a log line.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn callers_need_a_token_for_this_service_and_a_grant_for_the_domain() -> Result<()> {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    const OTHER_NS: &str = "vardhub-test-pseudo-other";
    let captured = captured_logs();
    let cluster = LocalCluster::get();
    let (token_path, version_a, version_b) = prepare(cluster, "access").await?;
    let grants = vec![
        Grants::entry("a", NS, Some(CALLER)),
        Grants::entry("a", NS, Some("leaving")),
        Grants::entry("b", OTHER_NS, Some(CALLER)),
    ];
    let trail = Captured::default();
    let caller_role = "vardhub-test-pseudonymisation.callers";
    let verifier = cluster
        .confirming_verifier(AUDIENCE, caller_role, &[NS, OTHER_NS])
        .await?;
    let (base, task) = serve(Config {
        openbao_addr: cluster.vault_addr.clone(),
        tls: None,
        auth: Auth::Kubernetes {
            mount: "kubernetes".into(),
            role: "vardhub-test-pseudonymiser".into(),
            jwt_path: token_path.clone(),
        },
        transit_mount: MOUNT.into(),
        local: true,
        reversible: Vec::new(),
        domains: vec![
            ("a".into(), "domain-a".into(), version_a),
            ("b".into(), "domain-b".into(), version_b),
        ],
        access: Access {
            audit: AuditLog::to(trail.clone()),
            verifier: std::sync::Arc::new(verifier),
            ..cluster.pseudonymisation_access(AUDIENCE, &grants).await?
        },
    })
    .await?;
    let url = |domain: &str| format!("{base}/v1/domains/{domain}/pseudonyms");
    let body = serde_json::json!({"kind": "personnummer", "identifiers": [personnummer(1)]});
    let plain = reqwest::Client::new();

    let granted = caller(cluster).await?;
    assert_eq!(status_of(&granted, &url("a"), None, &body).await?, 200);

    let anonymous = plain.post(url("a")).json(&body).send().await?;
    assert_eq!(anonymous.status(), 401, "no token");
    assert_eq!(
        anonymous
            .headers()
            .get("www-authenticate")
            .map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    let for_the_api = cluster.service_account_token(NS, CALLER, None).await?;
    assert_eq!(
        status_of(&plain, &url("a"), Some(&for_the_api), &body).await?,
        401,
        "a real token of the granted ServiceAccount, but for the API server"
    );
    let for_another_service = cluster
        .service_account_token(NS, CALLER, Some("vardhub.io/pseudonymisation/hub-x/pseudo"))
        .await?;
    assert_eq!(
        status_of(&plain, &url("a"), Some(&for_another_service), &body).await?,
        401,
        "a real token of the granted ServiceAccount, but for another pseudonymisation service"
    );

    // A tenant with its own valid token rewrites the claims to name the granted caller and
    // keeps its signature.
    cluster.ensure_service_account(OTHER_NS, "mapping").await?;
    let own = cluster
        .service_account_token(OTHER_NS, "mapping", Some(AUDIENCE))
        .await?;
    let parts: Vec<&str> = own.split('.').collect();
    anyhow::ensure!(parts.len() == 3, "a JWT has three parts");
    let mut claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1])?)?;
    claims["kubernetes.io"]["namespace"] = NS.into();
    claims["kubernetes.io"]["serviceaccount"]["name"] = CALLER.into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?),
        parts[2]
    );
    assert_eq!(
        status_of(&plain, &url("a"), Some(&forged), &body).await?,
        401,
        "a token whose claims were rewritten"
    );
    assert_eq!(
        status_of(&plain, &url("a"), Some(&own), &body).await?,
        403,
        "a valid token of a ServiceAccount without a grant"
    );

    assert_eq!(
        status_of(&granted, &url("b"), None, &body).await?,
        403,
        "a granted caller asking for a domain granted to another namespace"
    );
    assert_eq!(
        status_of(&granted, &url("no-such-domain"), None, &body).await?,
        403,
        "a domain that does not exist is refused like one without a grant"
    );
    // The Arrow path is behind the same door: no token, or a granted caller asking for
    // another's domain, is refused before the stream is read.
    let stream = arrow_stream(&[&[Some(personnummer(1))]])?;
    for (client, domain, expected, why) in [
        (&plain, "a", 401, "an Arrow stream without a token"),
        (
            &granted,
            "b",
            403,
            "an Arrow stream for a domain granted to another namespace",
        ),
        (&granted, "a", 200, "the granted caller's Arrow stream"),
    ] {
        let response = client
            .post(url(domain))
            .header(
                "content-type",
                vardhub::pseudonymisation::arrow::CONTENT_TYPE,
            )
            .body(stream.clone())
            .send()
            .await?;
        assert_eq!(response.status(), expected, "{why}");
    }
    let other_exporter = cluster.caller(OTHER_NS, CALLER, AUDIENCE).await?;
    assert_eq!(
        status_of(&other_exporter, &url("b"), None, &body).await?,
        200
    );
    assert_eq!(
        status_of(&other_exporter, &url("a"), None, &body).await?,
        403
    );

    // A granted ServiceAccount is deleted: its token keeps a valid signature and lifetime,
    // but the API server, asked through OpenBao, no longer vouches for it.
    cluster.ensure_service_account(NS, "leaving").await?;
    let leaving = cluster
        .service_account_token(NS, "leaving", Some(AUDIENCE))
        .await?;
    let accounts: Api<ServiceAccount> = Api::namespaced(cluster.admin_client().await?, NS);
    accounts.delete("leaving", &DeleteParams::default()).await?;
    let refused = eventually(
        "the deleted ServiceAccount's token to be refused",
        std::time::Duration::from_secs(90),
        || async {
            let answer = plain
                .post(url("a"))
                .bearer_auth(&leaving)
                .json(&body)
                .send()
                .await?;
            if answer.status() != 401 {
                return Ok(None);
            }
            Ok(Some(answer.text().await?))
        },
    )
    .await?;
    assert!(refused.contains("no longer exists"), "{refused}");
    cluster
        .openbao_admin()?
        .delete_kubernetes_role("kubernetes", caller_role)
        .await?;

    // Limits: a batch of more rows than the service takes, and an over-long NDJSON line.
    let ones = vec!["1"; vardhub::pseudonymisation::service::MAX_ROWS + 1];
    let too_many = serde_json::json!({"kind": "local", "identifiers": ones});
    assert_eq!(status_of(&granted, &url("a"), None, &too_many).await?, 413);
    let long = format!("\"{}\"\n\"{}\"\n", "7".repeat(2000), personnummer(2));
    let streamed = granted
        .post(url("a"))
        .header("content-type", "application/x-ndjson")
        .body(long)
        .send()
        .await?
        .text()
        .await?;
    let lines: Vec<serde_json::Value> = streamed
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("longer than"))
    );
    assert!(lines[1]["pseudonym"].is_string());
    task.abort();

    let logs =
        String::from_utf8_lossy(&captured.0.lock().map_err(|_| anyhow::anyhow!("poisoned"))?)
            .into_owned();
    // The audit trail holds exactly this test's requests: one record each.
    let audit = records(&trail)?;
    let count = |outcome: &str, caller: Option<&str>, domain: &str| {
        audit
            .iter()
            .filter(|r| {
                r["outcome"] == outcome
                    && r["domain"] == domain
                    && r.get("caller").and_then(|c| c.as_str()) == caller
            })
            .count()
    };
    let granted_name = format!("{NS}/{CALLER}");
    let other_name = format!("{OTHER_NS}/{CALLER}");
    let stranger_name = format!("{OTHER_NS}/mapping");
    // No token (JSON and Arrow), one for the API server, one for another service, a rewritten
    // one, and the deleted ServiceAccount's (refused once; the wait ends with that refusal).
    assert_eq!(count("unauthenticated", None, "a"), 6, "{audit:?}");
    assert_eq!(
        count("forbidden", Some(&stranger_name), "a"),
        1,
        "{audit:?}"
    );
    assert_eq!(count("forbidden", Some(&granted_name), "b"), 2, "{audit:?}");
    assert_eq!(count("forbidden", Some(&granted_name), "no-such-domain"), 1);
    assert_eq!(count("forbidden", Some(&other_name), "a"), 1, "{audit:?}");
    assert_eq!(count("served", Some(&other_name), "b"), 1, "{audit:?}");
    // The first batch, the Arrow stream and the NDJSON stream were served; the oversized
    // batch was not.
    assert_eq!(count("served", Some(&granted_name), "a"), 3, "{audit:?}");
    assert_eq!(count("failed", Some(&granted_name), "a"), 1, "{audit:?}");
    assert!(
        audit
            .iter()
            .any(|r| r["outcome"] == "failed" && r["reason"] == "413 Payload Too Large"),
        "{audit:?}"
    );
    assert_eq!(audit.len(), 16, "nothing else is recorded: {audit:?}");
    assert!(
        audit
            .iter()
            .all(|r| r["audit"] == "vardhub-pseudonymisation")
    );
    let text = serde_json::to_string(&audit)?;
    assert!(!text.contains("eyJ"), "no token in the audit trail");
    assert!(!logs.contains("eyJ"), "no token appears in any log line");

    use k8s_openapi::api::core::v1::Namespace;
    kube::Api::<Namespace>::all(cluster.admin_client().await?)
        .delete(OTHER_NS, &Default::default())
        .await?;
    let _ = std::fs::remove_file(token_path);
    Ok(())
}

/// A caller that sends rows as fast as it can (as one enumerating every identity number
/// would) is held to its share: over it, a JSON batch gets 429 with `Retry-After` and a stream
/// slows down instead of failing; another caller is not held up; a batch larger than a
/// second's share gets 413.
#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn each_caller_is_held_to_its_share_of_rows() -> Result<()> {
    use std::num::NonZeroU32;
    use vardhub::pseudonymisation::access::{RowLimit, Throttle};
    const OTHER_NS: &str = "vardhub-test-pseudo-throttle";
    const SHARE: usize = 1000;
    let cluster = LocalCluster::get();
    let (token_path, version_a, _) = prepare(cluster, "throttle").await?;
    let trail = Captured::default();
    let grants = vec![
        Grants::entry("a", NS, Some(CALLER)),
        Grants::entry("a", OTHER_NS, Some(CALLER)),
    ];
    let limit = RowLimit {
        per_second: NonZeroU32::new(SHARE as u32).ok_or_else(|| anyhow::anyhow!("zero"))?,
    };
    let (base, task) = serve(Config {
        openbao_addr: cluster.vault_addr.clone(),
        tls: None,
        auth: Auth::Kubernetes {
            mount: "kubernetes".into(),
            role: "vardhub-test-pseudonymiser".into(),
            jwt_path: token_path.clone(),
        },
        transit_mount: MOUNT.into(),
        local: true,
        reversible: Vec::new(),
        domains: vec![("a".into(), "domain-a".into(), version_a)],
        access: Access {
            audit: AuditLog::to(trail.clone()),
            throttle: Some(std::sync::Arc::new(Throttle::new(limit))),
            ..cluster.pseudonymisation_access(AUDIENCE, &grants).await?
        },
    })
    .await?;
    let url = format!("{base}/v1/domains/a/pseudonyms");
    let batch = |n: usize| serde_json::json!({"kind": "personnummer", "identifiers": (0..n).map(personnummer).collect::<Vec<_>>()});
    let greedy = caller(cluster).await?;
    let other = cluster.caller(OTHER_NS, CALLER, AUDIENCE).await?;

    assert_eq!(status_of(&greedy, &url, None, &batch(SHARE)).await?, 200);
    let held = greedy.post(&url).json(&batch(SHARE)).send().await?;
    assert_eq!(held.status(), 429, "the second share within a second");
    let retry: u64 = held
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no Retry-After"))?;
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(
        status_of(&other, &url, None, &batch(SHARE)).await?,
        200,
        "another caller has its own share"
    );
    assert_eq!(
        status_of(&greedy, &url, None, &batch(SHARE + 1)).await?,
        413,
        "more rows than a second's share in one request"
    );
    // An Arrow stream is held to the same share: its rows are counted before any is served.
    let arrow = |n: usize| -> Result<Vec<u8>> {
        let rows: Vec<Option<String>> = (0..n).map(|i| Some(personnummer(i))).collect();
        arrow_stream(&[&rows[..n / 2], &rows[n / 2..]])
    };
    for (rows, expected, why) in [
        (SHARE, 429, "the share is spent, whatever the format"),
        (
            SHARE + 1,
            413,
            "more rows than a second's share in one Arrow stream",
        ),
    ] {
        let response = greedy
            .post(&url)
            .header(
                "content-type",
                vardhub::pseudonymisation::arrow::CONTENT_TYPE,
            )
            .body(arrow(rows)?)
            .send()
            .await?;
        assert_eq!(response.status(), expected, "{why}");
    }
    eventually(
        "the share to come back",
        std::time::Duration::from_secs(5),
        || async { Ok((status_of(&greedy, &url, None, &batch(10)).await? == 200).then_some(())) },
    )
    .await?;

    // A stream of two and a half shares is served whole, at the caller's pace; right after
    // it, the caller has no share left.
    let mut body = String::new();
    for i in 0..(SHARE * 5 / 2) {
        body.push_str(&serde_json::to_string(&personnummer(i))?);
        body.push('\n');
    }
    let streamed = greedy
        .post(&url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await?
        .text()
        .await?;
    let served = streamed
        .lines()
        .filter(|l| l.contains("\"pseudonym\""))
        .count();
    assert_eq!(served, SHARE * 5 / 2, "every row of the stream is served");
    assert_eq!(status_of(&greedy, &url, None, &batch(SHARE)).await?, 429);
    task.abort();

    let audit = records(&trail)?;
    assert!(
        audit.iter().any(|r| r["outcome"] == "failed"
            && r["reason"] == "429 Too Many Requests"
            && r["caller"] == format!("{NS}/{CALLER}")),
        "a throttled request is recorded: {audit:?}"
    );
    use k8s_openapi::api::core::v1::Namespace;
    kube::Api::<Namespace>::all(cluster.admin_client().await?)
        .delete(OTHER_NS, &Default::default())
        .await?;
    let _ = std::fs::remove_file(token_path);
    Ok(())
}
