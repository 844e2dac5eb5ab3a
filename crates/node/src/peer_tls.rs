//! Mutual TLS between nodes (docs/SECURITY.md, "Peer TLS").
//!
//! Every gRPC connection, in both directions, presents a certificate signed by the cluster CA
//! and checks the other side's. A node's raft id is bound to its certificate: the certificate
//! of node `n` names `node-n.belfry` (a DNS subject alternative name). A client checks that the
//! server it dialled for node `n` holds that name, whatever address it dialled; a server learns
//! its caller's id from the caller's certificate and refuses requests that claim another.
//!
//! Without certificates (`--insecure-peer`) nothing is checked: every claim is believed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::raft::NodeId;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The name the certificate of node `id` carries.
pub fn peer_name(id: NodeId) -> String {
    format!("node-{id}.belfry")
}

/// This node's certificate, key and the cluster CA.
#[derive(Clone)]
pub struct PeerTls {
    ca: Certificate,
    identity: Identity,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls { .. }")
    }
}

/// Why the peer certificates could not be used. One line, naming the file at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

fn read(what: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError(format!("{what} {}: {e}", path.display())))
}

impl PeerTls {
    /// Loads the CA certificate, this node's certificate and its key (PEM files), and checks
    /// that the certificate is node `id`'s.
    pub fn load(id: NodeId, ca: &Path, cert: &Path, key: &Path) -> Result<PeerTls, TlsError> {
        let ca_pem = read("--peer-ca", ca)?;
        let cert_pem = read("--peer-cert", cert)?;
        let key_pem = read("--peer-key", key)?;
        if CertificateDer::pem_slice_iter(&ca_pem).next().is_none() {
            return Err(TlsError(format!("--peer-ca {}: no PEM certificate in it", ca.display())));
        }
        let leaf = CertificateDer::from_pem_slice(&cert_pem)
            .map_err(|e| TlsError(format!("--peer-cert {}: {e}", cert.display())))?;
        if rustls_pki_types::PrivateKeyDer::from_pem_slice(&key_pem).is_err() {
            return Err(TlsError(format!("--peer-key {}: no PEM private key in it", key.display())));
        }
        if certified_id(&leaf, [id]) != Some(id) {
            return Err(TlsError(format!(
                "--peer-cert {}: not a certificate of node {id} (it must name {} and no other node)",
                cert.display(),
                peer_name(id)
            )));
        }
        Ok(PeerTls { ca: Certificate::from_pem(ca_pem), identity: Identity::from_pem(cert_pem, key_pem) })
    }

    /// The server side: present this node's certificate, require one from the cluster CA.
    pub fn server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// The client side, dialling node `peer`: its certificate must name it.
    pub fn client(&self, peer: NodeId) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(peer_name(peer))
            .timeout(HANDSHAKE_TIMEOUT)
    }
}

/// Whether `cert` names node `id`.
fn names(cert: &webpki::EndEntityCert<'_>, id: NodeId) -> bool {
    match ServerName::try_from(peer_name(id)) {
        Ok(name) => cert.verify_is_valid_for_subject_name(&name).is_ok(),
        Err(_) => false,
    }
}

/// The one id among `ids` that `cert` names. None when it names none, or more than one, or a
/// wildcard (it names `node-0.belfry`, which no node is): such a certificate could speak for
/// several nodes and is no proof of any.
fn certified_id(cert: &CertificateDer<'_>, ids: impl IntoIterator<Item = NodeId>) -> Option<NodeId> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    if names(&cert, 0) {
        return None;
    }
    let mut found = ids.into_iter().filter(|id| names(&cert, *id));
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Who sent a request, as far as this node can tell.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Peer TLS is off: nothing is known, every claim is believed.
    Unverified,
    /// The caller's certificate chain, checked against the cluster CA by the handshake.
    Certified(Arc<Vec<CertificateDer<'static>>>),
    /// Peer TLS is on and the connection carried no certificate: believed in nothing.
    Nobody,
    /// This node itself (a call that did not cross the network).
    Local,
}

impl Caller {
    /// The caller of `req` on a node whose peer TLS is `tls_on`.
    pub fn of<T>(req: &tonic::Request<T>, tls_on: bool) -> Caller {
        if !tls_on {
            return Caller::Unverified;
        }
        match req.peer_certs() {
            Some(chain) if !chain.is_empty() => Caller::Certified(chain),
            _ => Caller::Nobody,
        }
    }

    /// Whether the caller may speak for node `id` (this node, for [`Caller::Local`]).
    pub fn is(&self, id: NodeId, me: NodeId) -> bool {
        self.is_any([id], me)
    }

    /// Whether the caller is one of `ids` (any, when peer TLS is off).
    pub fn is_any(&self, ids: impl IntoIterator<Item = NodeId>, me: NodeId) -> bool {
        match self {
            Caller::Unverified => true,
            Caller::Local => ids.into_iter().any(|id| id == me),
            Caller::Nobody => false,
            Caller::Certified(chain) => certified_id(&chain[0], ids).is_some(),
        }
    }

    /// A certified caller, or none at all (for RPCs any cluster certificate may make).
    pub fn is_cluster_node(&self) -> bool {
        !matches!(self, Caller::Nobody)
    }
}
