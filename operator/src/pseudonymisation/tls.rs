//! TLS for the pseudonymisation service and its callers.
//!
//! The service's certificate comes from OpenBao's PKI engine (a CA of the service's own,
//! whose key never leaves OpenBao), is held only in memory, and is replaced before it expires
//! without a restart: every new connection gets the certificate current at its handshake.
//! Callers trust that CA and nothing else.

use std::future::Future;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate or key that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM text could not be read.
    #[error("reading PEM: {0}")]
    Pem(String),
    /// rustls refused the certificate or key.
    #[error("the certificate or key is unusable: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The service's current certificate, swapped in place when a new one is issued.
#[derive(Debug, Default)]
pub struct Certificates {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

/// When to take a new certificate that expires at `expiration` (seconds since the epoch): at
/// two thirds of its remaining life.
pub fn renewal_time(expiration: u64) -> std::time::Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    std::time::Instant::now()
        + std::time::Duration::from_secs(expiration.saturating_sub(now) * 2 / 3)
}

fn certified(certificate_pem: &str, key_pem: &str) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    Ok(CertifiedKey::from_der(chain, key, &provider)?)
}

impl Certificates {
    /// The certificate (with its chain) and its private key, in PEM.
    pub fn new(certificate_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        Ok(Self {
            current: RwLock::new(Some(Arc::new(certified(certificate_pem, key_pem)?))),
        })
    }

    /// No certificate yet: every handshake fails until [`Certificates::replace`] gives one.
    pub fn pending() -> Self {
        Self::default()
    }

    /// Replaces the certificate; connections already open keep theirs.
    pub fn replace(&self, certificate_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        let next = Arc::new(certified(certificate_pem, key_pem)?);
        if let Ok(mut current) = self.current.write() {
            *current = Some(next);
        }
        Ok(())
    }

    /// A server configuration that presents the current certificate (TLS 1.2 and 1.3, HTTP/2
    /// and HTTP/1.1, no client certificates).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone() as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().and_then(|c| c.clone())
    }
}

/// Serves `router` over TLS on `listener` until `shutdown` completes. A connection whose
/// handshake fails is dropped without an answer.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    config: Arc<rustls::ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
}

/// An HTTP client that trusts the CA `ca_pem` and nothing else (no system roots).
pub fn client_trusting(ca_pem: &str) -> anyhow::Result<reqwest::Client> {
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes())?;
    Ok(reqwest::Client::builder().tls_certs_only([ca]).build()?)
}
