//! Exposure by API, end to end on the real node: a hub with `exposure.api` runs the project's
//! API component in a real pod; holders with tokens of a real OIDC issuer (OpenBao's identity
//! tokens) read exactly what their permits grant, byte ranges included; everything else is
//! refused with the specific status; a deleted permit and an expired token stop working; and
//! the component's audit trail holds every request the test made, and nothing else.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, LogParams, Patch, PatchParams};
use kube::{Api, Client};
use reqwest::StatusCode;
use serde_json::{Value, json};
use vardhub::api::{DataHub, DataPermit};
use vardhub_tests::{
    LocalCluster, OPERATOR_LOCK, RunningOperator, counted_accesses, data_permit, env, eventually,
    exposed_hub, large_object, presigned_read_seconds, remove_exposed_hub, rolled_out_pod,
    small_object,
};

const HUB: &str = "exposed";
const NS: &str = "hub-exposed";
const USERPASS: &str = "exposure-holders";
const OIDC_KEY: &str = "exposure-tests";
/// Tokens of this OIDC role live 20 seconds, so that the test sees one expire.
const OIDC_ROLE: &str = "exposure-tests";
const HOLDER_POLICY: &str = "exposure-test-holder";

/// OpenBao's HTTP API as its root, for setting up the issuer and its users.
struct Bao {
    http: reqwest::Client,
    addr: String,
    token: String,
}

impl Bao {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.token);
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn write(&self, path: &str, body: Value) -> Result<Value> {
        let (status, value) = self.call(reqwest::Method::POST, path, Some(body)).await?;
        if !status.is_success() {
            bail!("OpenBao refused POST {path}: {status} {value}");
        }
        Ok(value)
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.call(reqwest::Method::DELETE, path, None).await?;
        Ok(())
    }
}

/// A holder: a user of OpenBao's userpass method, whose entity is the token subject.
struct Holder {
    token: String,
    entity: String,
}

async fn holder(bao: &Bao, name: &str) -> Result<Holder> {
    bao.write(
        &format!("auth/{USERPASS}/users/{name}"),
        json!({"password": "exposure-test-password", "token_policies": HOLDER_POLICY}),
    )
    .await?;
    let login = bao
        .write(
            &format!("auth/{USERPASS}/login/{name}"),
            json!({"password": "exposure-test-password"}),
        )
        .await?;
    Ok(Holder {
        token: login["auth"]["client_token"]
            .as_str()
            .context("login token")?
            .into(),
        entity: login["auth"]["entity_id"]
            .as_str()
            .context("entity id")?
            .into(),
    })
}

/// A fresh identity token of the holder.
async fn id_token(bao: &Bao, holder: &Holder) -> Result<String> {
    let answer: Value = bao
        .http
        .get(format!("{}/v1/identity/oidc/token/{OIDC_ROLE}", bao.addr))
        .header("X-Vault-Token", &holder.token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(answer["data"]["token"]
        .as_str()
        .context("identity token")?
        .into())
}

/// Sets up OpenBao as the OIDC issuer: its issuer URL, a signing key, a role whose tokens
/// live 20 s, a userpass method and the policy that lets holders ask for tokens. Returns the
/// issuer and the audience.
async fn issuer(bao: &Bao) -> Result<(String, String)> {
    bao.write("identity/oidc/config", json!({"issuer": bao.addr}))
        .await?;
    let (status, value) = bao
        .call(
            reqwest::Method::POST,
            &format!("sys/auth/{USERPASS}"),
            Some(json!({"type": "userpass"})),
        )
        .await?;
    if !status.is_success() && !value.to_string().contains("path is already in use") {
        bail!("enabling userpass: {status} {value}");
    }
    bao.write(
        &format!("identity/oidc/key/{OIDC_KEY}"),
        json!({"allowed_client_ids": "*", "rotation_period": "24h", "verification_ttl": "24h"}),
    )
    .await?;
    bao.write(
        &format!("identity/oidc/role/{OIDC_ROLE}"),
        json!({"key": OIDC_KEY, "ttl": "20s"}),
    )
    .await?;
    bao.write(
        &format!("sys/policies/acl/{HOLDER_POLICY}"),
        json!({"policy": format!("path \"identity/oidc/token/{OIDC_ROLE}\" {{ capabilities = [\"read\"] }}")}),
    )
    .await?;
    let (_, role) = bao
        .call(
            reqwest::Method::GET,
            &format!("identity/oidc/role/{OIDC_ROLE}"),
            None,
        )
        .await?;
    let audience = role["data"]["client_id"]
        .as_str()
        .context("the role's client id")?
        .to_string();
    let discovery: Value = bao
        .http
        .get(format!(
            "{}/v1/identity/oidc/.well-known/openid-configuration",
            bao.addr
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let issuer = discovery["issuer"]
        .as_str()
        .context("the issuer")?
        .to_string();
    Ok((issuer, audience))
}

fn permit(name: &str, product: &str, issuer: &str, subject: &str) -> Result<DataPermit> {
    data_permit(
        HUB,
        name,
        product,
        json!({"name": format!("holder of {name}"), "oidc": {"issuer": issuer, "subject": subject}}),
    )
}

#[tokio::test]
#[ignore = "needs the local cluster and the real node: make test"]
async fn permit_holders_read_exactly_their_products_through_the_api() -> Result<()> {
    let _serial = OPERATOR_LOCK.lock().await;
    let cluster = LocalCluster::get();
    let admin = cluster.admin_client().await?;
    let bao = Bao {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        addr: cluster.vault_addr.clone(),
        token: env("VAULT_TOKEN")?,
    };
    let operator = RunningOperator::start_with_image(cluster, "exposure-test").await?;
    let outcome = scenario(cluster, &admin, &bao).await;
    let cleanup = clean_up(&admin, &bao).await;
    operator.stop().await?;
    outcome?;
    cleanup
}

async fn clean_up(admin: &Client, bao: &Bao) -> Result<()> {
    remove_exposed_hub(admin, HUB, &["permit-a", "permit-b"]).await?;
    for path in [
        format!("sys/auth/{USERPASS}"),
        format!("identity/oidc/role/{OIDC_ROLE}"),
        format!("identity/oidc/key/{OIDC_KEY}"),
        format!("sys/policies/acl/{HOLDER_POLICY}"),
    ] {
        bao.delete(&path).await?;
    }
    Ok(())
}

async fn scenario(cluster: &LocalCluster, admin: &Client, bao: &Bao) -> Result<()> {
    let (issuer, audience) = issuer(bao).await?;
    let a = holder(bao, "holder-a").await?;
    let b = holder(bao, "holder-b").await?;

    // The hub exposes two products over the API, its pod on the real node.
    let hubs: Api<DataHub> = Api::all(admin.clone());
    exposed_hub(
        admin,
        HUB,
        json!({"api": true, "oidc": {"issuer": issuer, "audience": audience}}),
    )
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(admin.clone(), NS);
    let (pod_name, ip) = rolled_out_pod(admin, NS, "exposure-api").await?;
    // Over HTTPS, with a certificate that chains to the hub's own exposure CA in OpenBao and
    // names the Service.
    let host = format!("exposure-api.{NS}.svc");
    let ca = vardhub::adapters::openbao::ca_certificate(
        &reqwest::Client::new(),
        &cluster.vault_addr,
        &format!("hub-{HUB}/exposure-pki"),
    )
    .await?;
    let base = format!("https://{host}:8080/v1/products");

    // The products, as the publish job would leave them (written as the S3 server's root).
    let s3 = cluster.s3_root();
    let bucket = format!("vardhub-hub-{HUB}-products");
    let bytes = small_object();
    s3.put_object()
        .bucket(&bucket)
        .key("waiting-times/waiting_times.csv")
        .body(bytes.clone().into())
        .send()
        .await?;
    s3.put_object()
        .bucket(&bucket)
        .key("hip-fracture/hip_fracture.parquet")
        .body(b"rows of b".to_vec().into())
        .send()
        .await?;

    let permits: Api<DataPermit> = Api::namespaced(admin.clone(), NS);
    for p in [
        permit("permit-a", "waiting-times", &issuer, &a.entity)?,
        permit("permit-b", "hip-fracture", &issuer, &b.entity)?,
    ] {
        let name = p.metadata.name.clone().unwrap_or_default();
        permits
            .patch(
                &name,
                &PatchParams::apply("vardhub-tests"),
                &Patch::Apply(&p),
            )
            .await?;
    }

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_certs_only([reqwest::Certificate::from_pem(ca.as_bytes())?])
        .resolve(&host, std::net::SocketAddr::new(ip.parse()?, 8080))
        .build()?;
    // Plain HTTP is not spoken at all, so no token can cross the network in clear.
    let plain = reqwest::Client::new()
        .get(format!("http://{ip}:8080/v1/products"))
        .send()
        .await;
    assert!(
        plain.is_err(),
        "plain HTTP is refused: {:?}",
        plain.map(|r| r.status())
    );
    let mut requests = 0usize;
    let mut get = async |url: String,
                         token: Option<&str>,
                         range: Option<&str>|
           -> Result<reqwest::Response> {
        requests += 1;
        let mut r = http.get(url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(range) = range {
            r = r.header("Range", range);
        }
        Ok(r.send().await?)
    };
    let own = format!("{base}/waiting-times/objects/waiting_times.csv");
    let other = format!("{base}/hip-fracture/objects/hip_fracture.parquet");

    // No token, or a token that is not the issuer's → 401.
    let r = get(own.clone(), None, None).await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "no token");
    assert!(r.headers().contains_key("www-authenticate"));
    let r = get(own.clone(), Some("not.a.token"), None).await?;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "a made-up token");
    let foreign = cluster
        .service_account_token(NS, "default", Some(&audience))
        .await?;
    let r = get(own.clone(), Some(&foreign), None).await?;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a token of another issuer"
    );

    // Holder A: lists and reads its product, whole and by range.
    let token_a = id_token(bao, &a).await?;
    let listed: Value = get(base.clone(), Some(&token_a), None)
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(
        listed["products"],
        json!([{"name": "waiting-times", "permit": "permit-a"}]),
        "{listed}"
    );
    let objects: Value = get(
        format!("{base}/waiting-times/objects"),
        Some(&token_a),
        None,
    )
    .await?
    .error_for_status()?
    .json()
    .await?;
    assert_eq!(
        objects["objects"],
        json!([{"key": "waiting_times.csv", "size": 4096}]),
        "{objects}"
    );
    let whole = get(own.clone(), Some(&token_a), None)
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    assert_eq!(whole.as_ref(), bytes.as_slice(), "the whole object");
    let part = get(own.clone(), Some(&token_a), Some("bytes=1000-1099")).await?;
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok()),
        Some("bytes 1000-1099/4096")
    );
    assert_eq!(
        part.bytes().await?.as_ref(),
        &bytes[1000..1100],
        "exactly the bytes asked for"
    );

    // Throughput (figures only, no assertion on time): the same 32 MiB object through the
    // API over HTTPS, and straight from the S3 server, best of three each.
    let large = large_object();
    s3.put_object()
        .bucket(&bucket)
        .key("waiting-times/large.bin")
        .body(large.clone().into())
        .send()
        .await?;
    let mib = large.len() as f64 / f64::from(1u32 << 20);
    let mut through_api = f64::MAX;
    for _ in 0..3 {
        let token = id_token(bao, &a).await?;
        let begun = std::time::Instant::now();
        let got = get(
            format!("{base}/waiting-times/objects/large.bin"),
            Some(&token),
            None,
        )
        .await?
        .error_for_status()?
        .bytes()
        .await?;
        through_api = through_api.min(begun.elapsed().as_secs_f64());
        assert_eq!(got.len(), large.len(), "the whole large object");
    }
    // Straight from the S3 server through a presigned URL, so that only the path differs.
    let direct =
        presigned_read_seconds(&s3, &bucket, "waiting-times/large.bin", large.len()).await?;
    println!(
        "throughput of {mib:.0} MiB: API (HTTPS, permit checked) {:.0} MiB/s, S3 directly (HTTP, presigned) {:.0} MiB/s, API/direct {:.2}",
        mib / through_api,
        mib / direct,
        direct / through_api
    );

    // From here the S3 server's trace witnesses every read of B's product: only B's served
    // requests may reach it.
    let trace = cluster.s3_trace().await?;
    // Holder A cannot reach B's product, nor leave its own by the key.
    let r = get(other.clone(), Some(&token_a), None).await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "A reads B's product");
    let r = get(format!("{base}/hip-fracture/objects"), Some(&token_a), None).await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "A lists B's product");
    let r = get(
        format!("{base}/waiting-times/objects/..%2Fhip-fracture%2Fhip_fracture.parquet"),
        Some(&token_a),
        None,
    )
    .await?;
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a key that climbs out of the product"
    );

    // Holder B reads its own and not A's.
    let token_b = id_token(bao, &b).await?;
    let r = get(other.clone(), Some(&token_b), None).await?;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await?.as_ref(), b"rows of b");
    let r = get(own.clone(), Some(&token_b), None).await?;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "B reads A's product");

    // Revocation: A's permit is deleted; A's next request is refused.
    permits.delete("permit-a", &DeleteParams::default()).await?;
    let mut refused_after = None;
    for attempt in 0..50 {
        let token = id_token(bao, &a).await?;
        if get(own.clone(), Some(&token), None).await?.status() == StatusCode::FORBIDDEN {
            refused_after = Some(attempt);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let refused_after = refused_after.context("A is refused once its permit is deleted")?;
    println!("revocation: refused after {refused_after} allowed request(s)");

    // Expiry: B's first token (20 s) stops working on its own, within the 5 s leeway.
    let mut expired = false;
    for _ in 0..60 {
        if get(other.clone(), Some(&token_b), None).await?.status() == StatusCode::UNAUTHORIZED {
            expired = true;
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(expired, "an expired token is refused");
    let reads_of_b = trace
        .stop()
        .into_iter()
        .filter(|c| {
            c.api == "s3.GetObject"
                && c.path.contains(&bucket)
                && c.path.ends_with("/hip-fracture/hip_fracture.parquet")
        })
        .count();
    let made = requests;

    // The audit trail: one record per request the test made, none else, never the token.
    let records = eventually(
        "every request in the audit trail",
        Duration::from_secs(30),
        || async {
            let logs = pods.logs(&pod_name, &LogParams::default()).await?;
            let records: Vec<Value> = logs
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["audit"] == "vardhub-exposure")
                .collect();
            Ok((records.len() >= made).then_some((records, logs)))
        },
    )
    .await?;
    let (records, logs) = records;
    assert_eq!(records.len(), made, "one record per request");
    for token in [&token_a, &token_b, &foreign] {
        assert!(
            !logs.contains(token.as_str()),
            "no token in the pod's output"
        );
    }
    let count = |outcome: &str| records.iter().filter(|r| r["outcome"] == outcome).count();
    println!(
        "audit: {} records: {} served, {} unauthenticated, {} forbidden, {} failed",
        records.len(),
        count("served"),
        count("unauthenticated"),
        count("forbidden"),
        count("failed")
    );
    let ranged = records
        .iter()
        .find(|r| r["range"] == "bytes=1000-1099")
        .context("the range request's record")?;
    assert_eq!(ranged["bytes"], 100);
    assert_eq!(ranged["permit"], "permit-a");
    assert_eq!(ranged["subject"], a.entity.as_str());
    assert_eq!(
        count("forbidden"),
        4,
        "A on B's object and listing, B on A's, A after revocation"
    );
    assert_eq!(count("failed"), 1, "the climbing key");

    // The permit's status counts what its holder did, as the audit trail records it.
    let of_b: Vec<&Value> = records
        .iter()
        .filter(|r| r["permit"] == "permit-b")
        .collect();
    let served_b = of_b.iter().filter(|r| r["outcome"] == "served").count() as i64;
    let bytes_b: i64 = of_b.iter().filter_map(|r| r["bytes"].as_i64()).sum();
    assert!(
        served_b >= 1 && bytes_b == 9 * served_b,
        "{served_b} {bytes_b}"
    );
    assert_eq!(
        usize::try_from(served_b)?,
        reads_of_b,
        "each access served under permit-b is one read of its product on the S3 server, and \
         no refused request reached it"
    );
    let counted = counted_accesses(admin, HUB, "permit-b", false, served_b).await?;
    assert_eq!((counted.refused, counted.bytes), (0, bytes_b));
    assert!(counted.last.is_some());

    // Switched off, the API goes, and nobody can log in to OpenBao as it any more.
    hubs.patch(
        HUB,
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"exposure": {"api": false}}})),
    )
    .await?;
    eventually("the API to be gone", Duration::from_secs(60), || async {
        Ok(deployments
            .get_opt("exposure-api")
            .await?
            .is_none()
            .then_some(()))
    })
    .await?;
    for path in [
        format!("auth/kubernetes/role/vardhub-hub-{HUB}.exposure"),
        format!("sys/policy/vardhub-hub-{HUB}.exposure"),
    ] {
        let (status, _) = bao.call(reqwest::Method::GET, &path, None).await?;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path} is removed");
    }
    Ok(())
}
