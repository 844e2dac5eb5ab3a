//! TLS on the HTTP API (`--http-tls-cert`, `--http-tls-key`): tokens and job targets never
//! cross the network in plaintext when it is on.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

/// The API's certificate chain and key, ready to accept connections.
#[derive(Clone)]
pub struct HttpTls(Arc<rustls::ServerConfig>);

impl std::fmt::Debug for HttpTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpTls { .. }")
    }
}

impl HttpTls {
    /// Loads a PEM certificate chain (the server's certificate first) and its PEM key. Errors
    /// are one line naming the file.
    pub fn load(cert: &Path, key: &Path) -> Result<HttpTls, String> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("--http-tls-cert {}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("--http-tls-cert {}: no PEM certificate in it", cert.display()));
        }
        let private =
            PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--http-tls-key {}: {e}", key.display()))?;
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| format!("--http-tls-cert and --http-tls-key: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(HttpTls(Arc::new(config)))
    }

    /// An acceptor for incoming connections.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.0.clone())
    }
}
