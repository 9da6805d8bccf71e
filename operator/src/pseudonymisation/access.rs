//! Who may call the pseudonymisation service, and for which domains.
//!
//! A caller presents a projected ServiceAccount token whose audience is the service
//! (`Authorization: Bearer …`). The token's signature is checked against the keys the API
//! server publishes for its ServiceAccount issuer (`/openid/v1/jwks`, readable by every
//! ServiceAccount by default), and so are its issuer, audience and lifetime. The namespace and
//! ServiceAccount the token names then meet the grants the resource lists per domain.
//!
//! Verification costs one signature check per request, never per row. A key the service has
//! not seen (the API server rotated its signing key) makes it read the published keys again,
//! at most once every [`REFRESH_INTERVAL`].
//!
//! A signature proves who a token was issued to, not that its ServiceAccount, or the pod it
//! is bound to, still exists. With [`Liveness`] the service also has each token confirmed by
//! OpenBao's Kubernetes auth method, which asks the API server (TokenReview): a token of a
//! deleted ServiceAccount or pod is refused, at most [`LIVENESS_TTL`] after the deletion.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;

/// The least time between two reads of the API server's published keys.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Clock skew tolerated on a token's expiry and not-before times, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// The audience a caller's token must carry to be accepted by the service `name` in
/// `namespace`. Unique per service, so that a token for one service is refused by another.
pub fn audience(namespace: &str, name: &str) -> String {
    format!("vardhub.io/pseudonymisation/{namespace}/{name}")
}

/// An authenticated caller: a ServiceAccount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub service_account: String,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.service_account)
    }
}

/// Who a grant admits: every ServiceAccount of a namespace, or one of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// The namespace.
    pub namespace: String,
    /// The ServiceAccount; `None` admits every ServiceAccount of the namespace.
    pub service_account: Option<String>,
}

impl Subject {
    fn admits(&self, caller: &Caller) -> bool {
        self.namespace == caller.namespace
            && self
                .service_account
                .as_ref()
                .is_none_or(|sa| *sa == caller.service_account)
    }
}

/// The grants of a service: per domain, who may use it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants(HashMap<String, Vec<Subject>>);

impl Grants {
    /// Parses grants written `DOMAIN=NAMESPACE` or `DOMAIN=NAMESPACE/SERVICEACCOUNT`.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut grants = Self::default();
        for entry in entries {
            let text = entry.as_ref();
            let err = || format!("grant {text:?} is not DOMAIN=NAMESPACE[/SERVICEACCOUNT]");
            let (domain, who) = text.split_once('=').ok_or_else(err)?;
            let (namespace, service_account) = match who.split_once('/') {
                Some((ns, sa)) => (ns, Some(sa)),
                None => (who, None),
            };
            let bad = |s: &str| s.is_empty() || s.contains(['/', '=']);
            if bad(domain) || bad(namespace) || service_account.is_some_and(bad) {
                return Err(err());
            }
            grants.0.entry(domain.into()).or_default().push(Subject {
                namespace: namespace.into(),
                service_account: service_account.map(Into::into),
            });
        }
        Ok(grants)
    }

    /// One grant as [`Grants::parse`] reads it.
    pub fn entry(domain: &str, namespace: &str, service_account: Option<&str>) -> String {
        match service_account {
            Some(sa) => format!("{domain}={namespace}/{sa}"),
            None => format!("{domain}={namespace}"),
        }
    }

    /// Whether `caller` may use `domain`.
    pub fn allows(&self, domain: &str, caller: &Caller) -> bool {
        self.0
            .get(domain)
            .is_some_and(|subjects| subjects.iter().any(|s| s.admits(caller)))
    }
}

/// How many rows one caller may send per second; a second's worth is also the most rows
/// one request may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLimit {
    /// Rows per second, per caller.
    pub per_second: std::num::NonZeroU32,
}

/// Rows per second per caller unless the resource says otherwise: a region's nightly export of
/// two million people takes under a minute, while trying every possible personal identity
/// number (some 46 million) takes a quarter of an hour and leaves a trail.
pub const DEFAULT_ROWS_PER_SECOND: u32 = 50_000;

/// Throttles callers by rows, each caller on its own.
pub struct Throttle {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    limit: RowLimit,
}

/// Why rows were not admitted.
#[derive(Debug, PartialEq, Eq)]
pub enum Throttled {
    /// The caller sent its share; it may send these rows after this long.
    Wait(Duration),
    /// More rows than one request may carry.
    TooMany(u32),
}

impl Throttle {
    /// A throttle with `limit` per caller.
    pub fn new(limit: RowLimit) -> Self {
        let quota = governor::Quota::per_second(limit.per_second);
        Self {
            limiter: governor::RateLimiter::keyed(quota),
            limit,
        }
    }

    /// The most rows one request may carry.
    pub fn max_rows(&self) -> u32 {
        self.limit.per_second.get()
    }

    fn cells(&self, rows: usize) -> Result<Option<std::num::NonZeroU32>, Throttled> {
        let rows = u32::try_from(rows).map_err(|_| Throttled::TooMany(self.max_rows()))?;
        if rows > self.max_rows() {
            return Err(Throttled::TooMany(self.max_rows()));
        }
        Ok(std::num::NonZeroU32::new(rows))
    }

    /// Admits `rows` of `caller` now, or says how long to wait.
    pub fn admit(&self, caller: &Caller, rows: usize) -> Result<(), Throttled> {
        let Some(n) = self.cells(rows)? else {
            return Ok(());
        };
        use governor::clock::{Clock, DefaultClock};
        match self.limiter.check_key_n(&caller.to_string(), n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Throttled::Wait(
                not_until.wait_time_from(DefaultClock::default().now()),
            )),
            Err(_) => Err(Throttled::TooMany(self.max_rows())),
        }
    }

    /// Waits until `rows` of `caller` may go on (a stream slows down instead of failing).
    pub async fn wait(&self, caller: &Caller, rows: usize) -> Result<(), Throttled> {
        let Some(n) = self.cells(rows)? else {
            return Ok(());
        };
        self.limiter
            .until_key_n_ready(&caller.to_string(), n)
            .await
            .map_err(|_| Throttled::TooMany(self.max_rows()))
    }
}

/// Why a request was not authenticated. The text never repeats the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    /// No bearer token.
    #[error("send a ServiceAccount token with this service's audience in Authorization: Bearer")]
    Missing,
    /// The token did not verify.
    #[error("the token is not valid for this service: {0}")]
    Invalid(String),
    /// The token verified but names no ServiceAccount.
    #[error("the token names no ServiceAccount")]
    NotServiceAccount,
    /// The API server no longer vouches for the token: its ServiceAccount or pod is gone.
    #[error("the token's ServiceAccount or pod no longer exists")]
    NotLive,
    /// Whether the token is still live could not be confirmed now (OpenBao unreachable).
    #[error("the token could not be confirmed now; try again")]
    Unconfirmed,
}

/// How long a token OpenBao confirmed is trusted before it is confirmed again.
pub const LIVENESS_TTL: Duration = Duration::from_secs(60);

/// Confirms tokens by logging in with them to OpenBao's Kubernetes auth method, under a role
/// bound to the service's audience and its callers' namespaces. The login yields a batch
/// token, which OpenBao does not store and the service throws away; its only use is the
/// API server's answer. One login per token per [`LIVENESS_TTL`], never per request.
pub struct Liveness {
    client: vaultrs::client::VaultClient,
    mount: String,
    role: String,
    confirmed: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Liveness {
    /// Confirms tokens through the role `role` of the Kubernetes auth method at `mount` of
    /// the OpenBao at `address`.
    pub fn new(address: &str, mount: &str, role: &str) -> Result<Self, String> {
        let settings = vaultrs::client::VaultClientSettingsBuilder::default()
            .address(address)
            .timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client: vaultrs::client::VaultClient::new(settings).map_err(|e| e.to_string())?,
            mount: mount.into(),
            role: role.into(),
            confirmed: Mutex::default(),
        })
    }

    fn digest(token: &str) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes()).into()
    }

    fn recently_confirmed(&self, digest: &[u8; 32]) -> bool {
        self.confirmed
            .lock()
            .is_ok_and(|held| held.get(digest).is_some_and(|t| t.elapsed() < LIVENESS_TTL))
    }

    /// Whether the API server, asked through OpenBao, still vouches for `token`.
    pub async fn confirm(&self, token: &str) -> Result<(), Refusal> {
        let digest = Self::digest(token);
        if self.recently_confirmed(&digest) {
            return Ok(());
        }
        match vaultrs::auth::kubernetes::login(&self.client, &self.mount, &self.role, token).await {
            Ok(_) => {
                if let Ok(mut held) = self.confirmed.lock() {
                    held.retain(|_, t| t.elapsed() < LIVENESS_TTL);
                    held.insert(digest, Instant::now());
                }
                Ok(())
            }
            Err(vaultrs::error::ClientError::APIError { code, .. })
                if (400..500).contains(&code) =>
            {
                Err(Refusal::NotLive)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not confirm a caller's token with OpenBao");
                Err(Refusal::Unconfirmed)
            }
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    #[serde(rename = "kubernetes.io")]
    kubernetes: KubernetesClaims,
}

#[derive(Deserialize)]
struct KubernetesClaims {
    namespace: String,
    serviceaccount: Named,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// Errors while reading the API server's published keys.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The API server refused or could not be reached.
    #[error("reading the ServiceAccount issuer's keys: {0}")]
    Kube(#[from] kube::Error),
    /// The keys could not be used.
    #[error("the token issuer's keys are unusable: {0}")]
    Keys(String),
    /// An OIDC issuer's discovery document or keys could not be read.
    #[error("reading the OIDC issuer's keys: {0}")]
    Oidc(String),
}

/// Where a verifier reads its issuer's keys again.
enum KeySource {
    /// The API server's ServiceAccount issuer, through the API server.
    Kube(kube::Client),
    /// An OIDC issuer, through its discovery document.
    Oidc {
        http: reqwest::Client,
        issuer: String,
    },
}

/// Verifies bearer tokens: signature, issuer, audience and lifetime. [`Verifier::verify`]
/// then reads a ServiceAccount from them; [`Verifier::subject`] the plain OIDC subject.
pub struct Verifier {
    issuer: String,
    audience: String,
    keys: RwLock<HashMap<String, (Algorithm, DecodingKey)>>,
    source: Option<KeySource>,
    refreshed: Mutex<Instant>,
    liveness: Option<Liveness>,
    leeway: u64,
}

impl Verifier {
    /// Reads the issuer and its keys from the API server `client` talks to.
    pub async fn discover(client: kube::Client, audience: &str) -> Result<Self, DiscoveryError> {
        let (issuer, keys) = Self::fetch(&client).await?;
        Ok(Self {
            issuer,
            audience: audience.into(),
            keys: RwLock::new(keys),
            source: Some(KeySource::Kube(client)),
            refreshed: Mutex::new(Instant::now()),
            liveness: None,
            leeway: LEEWAY_SECONDS,
        })
    }

    /// Reads the keys of the OIDC issuer `issuer` (`<issuer>/.well-known/openid-configuration`,
    /// then its `jwks_uri`) with `http`. The discovery document must name the same issuer.
    pub async fn discover_oidc(
        http: reqwest::Client,
        issuer: &str,
        audience: &str,
    ) -> Result<Self, DiscoveryError> {
        let keys = Self::fetch_oidc(&http, issuer).await?;
        Ok(Self {
            issuer: issuer.into(),
            audience: audience.into(),
            keys: RwLock::new(keys),
            source: Some(KeySource::Oidc {
                http,
                issuer: issuer.into(),
            }),
            refreshed: Mutex::new(Instant::now()),
            liveness: None,
            leeway: LEEWAY_SECONDS,
        })
    }

    /// The same verifier, tolerating `seconds` of clock skew instead of [`LEEWAY_SECONDS`].
    pub fn with_leeway(self, seconds: u64) -> Self {
        Self {
            leeway: seconds,
            ..self
        }
    }

    async fn fetch_oidc(
        http: &reqwest::Client,
        issuer: &str,
    ) -> Result<HashMap<String, (Algorithm, DecodingKey)>, DiscoveryError> {
        async fn get_json<T: serde::de::DeserializeOwned>(
            http: &reqwest::Client,
            url: &str,
        ) -> Result<T, DiscoveryError> {
            let oidc = |e: reqwest::Error| DiscoveryError::Oidc(e.without_url().to_string());
            http.get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(oidc)?
                .json()
                .await
                .map_err(oidc)
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: Discovery = get_json(http, &url).await?;
        if discovery.issuer != issuer {
            return Err(DiscoveryError::Keys(format!(
                "the discovery document names the issuer {}, not {issuer}",
                discovery.issuer
            )));
        }
        let jwks: JwkSet = get_json(http, &discovery.jwks_uri).await?;
        decoding_keys(&jwks)
    }

    /// The same verifier, also having every token confirmed as live (see [`Liveness`]).
    pub fn confirming(self, liveness: Liveness) -> Self {
        Self {
            liveness: Some(liveness),
            ..self
        }
    }

    /// A verifier with fixed keys (a key set the operator of the service provides).
    pub fn with_keys(issuer: &str, audience: &str, jwks: &JwkSet) -> Result<Self, DiscoveryError> {
        Ok(Self {
            issuer: issuer.into(),
            audience: audience.into(),
            keys: RwLock::new(decoding_keys(jwks)?),
            source: None,
            refreshed: Mutex::new(Instant::now()),
            liveness: None,
            leeway: LEEWAY_SECONDS,
        })
    }

    /// The audience tokens must carry.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    async fn fetch(
        client: &kube::Client,
    ) -> Result<(String, HashMap<String, (Algorithm, DecodingKey)>), DiscoveryError> {
        let get = |path: &str| {
            axum::http::Request::get(path)
                .body(Vec::new())
                .map_err(|e| DiscoveryError::Keys(e.to_string()))
        };
        let discovery: Discovery = client
            .request(get("/.well-known/openid-configuration")?)
            .await?;
        // The API server publishes its keys at a path of its own; the discovery document's
        // `jwks_uri` may name an external host, so only its path is used.
        let path = discovery
            .jwks_uri
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
            .unwrap_or_else(|| "/openid/v1/jwks".into());
        let jwks: JwkSet = client.request(get(&path)?).await?;
        Ok((discovery.issuer, decoding_keys(&jwks)?))
    }

    /// Reads the keys again when the last read is older than [`REFRESH_INTERVAL`].
    async fn refresh(&self) {
        let Some(source) = &self.source else { return };
        {
            let Ok(mut last) = self.refreshed.lock() else {
                return;
            };
            if last.elapsed() < REFRESH_INTERVAL {
                return;
            }
            *last = Instant::now();
        }
        let fetched = match source {
            KeySource::Kube(client) => Self::fetch(client).await.map(|(_, keys)| keys),
            KeySource::Oidc { http, issuer } => Self::fetch_oidc(http, issuer).await,
        };
        match fetched {
            Ok(keys) => {
                if let Ok(mut held) = self.keys.write() {
                    *held = keys;
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not read the token issuer's keys"),
        }
    }

    fn key(&self, kid: &str) -> Option<(Algorithm, DecodingKey)> {
        self.keys.read().ok()?.get(kid).cloned()
    }

    /// The claims of a bearer token whose signature, issuer, audience and lifetime verify.
    async fn verified_claims(&self, token: &str) -> Result<serde_json::Value, Refusal> {
        let header = decode_header(token).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let kid = header.kid.unwrap_or_default();
        let (alg, key) = match self.key(&kid) {
            Some(found) => found,
            None => {
                self.refresh().await;
                self.key(&kid)
                    .ok_or_else(|| Refusal::Invalid("signed with an unknown key".into()))?
            }
        };
        let mut validation = Validation::new(alg);
        validation.set_audience(&[&self.audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway;
        Ok(decode::<serde_json::Value>(token, &key, &validation)
            .map_err(|e| Refusal::Invalid(e.to_string()))?
            .claims)
    }

    /// The subject (`sub`) of a verified OIDC token.
    pub async fn subject(&self, token: &str) -> Result<String, Refusal> {
        let claims = self.verified_claims(token).await?;
        claims["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| Refusal::Invalid("the token names no subject".into()))
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The caller a bearer token proves, or why it proves none.
    pub async fn verify(&self, token: &str) -> Result<Caller, Refusal> {
        let claims = self.verified_claims(token).await?;
        let claims: Claims =
            serde_json::from_value(claims).map_err(|_| Refusal::NotServiceAccount)?;
        if let Some(liveness) = &self.liveness {
            liveness.confirm(token).await?;
        }
        Ok(Caller {
            namespace: claims.kubernetes.namespace,
            service_account: claims.kubernetes.serviceaccount.name,
        })
    }
}

/// The signature keys of a key set by key id, each with the one algorithm it may verify.
/// Keys without an id or algorithm, and encryption keys, are left out.
fn decoding_keys(
    jwks: &JwkSet,
) -> Result<HashMap<String, (Algorithm, DecodingKey)>, DiscoveryError> {
    let mut out = HashMap::new();
    for jwk in &jwks.keys {
        let (Some(kid), Some(alg)) = (&jwk.common.key_id, &jwk.common.key_algorithm) else {
            continue;
        };
        let Ok(alg) = Algorithm::from_str(&alg.to_string()) else {
            continue;
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|e| DiscoveryError::Keys(e.to_string()))?;
        out.insert(kid.clone(), (alg, key));
    }
    if out.is_empty() {
        return Err(DiscoveryError::Keys(
            "no signature key with an id and an algorithm".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(ns: &str, sa: &str) -> Caller {
        Caller {
            namespace: ns.into(),
            service_account: sa.into(),
        }
    }

    #[test]
    fn grants_admit_a_namespace_or_one_service_account_of_it() {
        let grants = Grants::parse(&["a=region-one", "b=region-two/export"]).expect("grants");
        assert!(grants.allows("a", &caller("region-one", "anything")));
        assert!(!grants.allows("a", &caller("region-two", "export")));
        assert!(grants.allows("b", &caller("region-two", "export")));
        assert!(!grants.allows("b", &caller("region-two", "mapping")));
        assert!(!grants.allows("c", &caller("region-one", "anything")));
    }

    #[test]
    fn malformed_grants_are_refused() {
        for bad in ["a", "=ns", "a=", "a=ns/", "a=ns/sa/x", "a=/sa"] {
            assert!(Grants::parse(&[bad]).is_err(), "{bad}");
        }
        assert_eq!(
            Grants::parse(&[Grants::entry("d", "ns", Some("sa"))]),
            Grants::parse(&["d=ns/sa"])
        );
    }

    #[test]
    fn each_caller_gets_its_own_share_of_rows() {
        let limit = RowLimit {
            per_second: std::num::NonZeroU32::new(1000).expect("non-zero"),
        };
        let throttle = Throttle::new(limit);
        let a = caller("region-one", "export");
        let b = caller("region-two", "export");
        assert_eq!(throttle.admit(&a, 1000), Ok(()));
        assert!(matches!(throttle.admit(&a, 10), Err(Throttled::Wait(_))));
        assert_eq!(
            throttle.admit(&b, 600),
            Ok(()),
            "another caller is not held up"
        );
        assert_eq!(throttle.admit(&b, 1001), Err(Throttled::TooMany(1000)));
        assert_eq!(throttle.admit(&b, 0), Ok(()));
    }

    #[test]
    fn audiences_differ_per_service() {
        assert_ne!(audience("hub-a", "pseudo"), audience("hub-b", "pseudo"));
    }
}
