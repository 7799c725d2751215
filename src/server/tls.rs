//! MSRP over TLS (`msrps:` URIs, RFC 4975 §14, RFC 4976 §6.1 and §6.3): certificate
//! loading, the server and client configurations, and peer identities.
//!
//! - Server side: our certificate and key (PEM, `--cert`/`--key`). A client certificate
//!   is requested, not required: one that verifies against the trust roots is a relay
//!   and its subjectAltName must cover the host of the From-Path it speaks for
//!   ([`crate::conn::PeerIdentity`]); any other client authenticates with Digest.
//! - Client side (next hops named by `msrps:` URIs): the server certificate is verified
//!   against the URI host, with the Mozilla roots (webpki-roots) plus `--ca`; our own
//!   certificate, when we have one, is presented for mutual TLS between relays.
//!
//! [`TlsContext`] is built once and again on SIGHUP; workers swap the `Arc` and new
//! handshakes use the new certificate while open connections keep theirs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::conn::PeerIdentity;

/// Where the certificate material lives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// Our certificate chain (PEM), leaf first.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Further trust anchors (PEM), for next hops and relay client certificates.
    pub ca: Option<PathBuf>,
}

/// Certificate material that cannot be used, saying which file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{0}: no certificate found (expected PEM \"BEGIN CERTIFICATE\")")]
    NoCert(PathBuf),
    #[error("certificate {cert} and key {key} cannot be used: {reason}")]
    Key {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("--cert and --key must be given together")]
    Incomplete,
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// Everything a worker needs for TLS, shared by all workers.
pub struct TlsContext {
    provider: Arc<CryptoProvider>,
    /// Our certificate and key, when given.
    certified: Option<Arc<CertifiedKey>>,
    /// Verifies relay client certificates (optional client auth).
    client_verifier: Arc<dyn ClientCertVerifier>,
    /// For outbound `msrps:` connections.
    pub client: Arc<ClientConfig>,
}

impl fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsContext")
            .field("has_cert", &self.certified.is_some())
            .finish()
    }
}

fn read_err(path: &Path, e: impl fmt::Display) -> TlsError {
    TlsError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_err(path, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCert(path.to_path_buf()));
    }
    Ok(certs)
}

impl TlsContext {
    /// Loads the files. Without `cert`/`key` the context can still make outbound TLS
    /// connections (no client certificate) but cannot serve TLS.
    pub fn load(files: &TlsFiles) -> Result<TlsContext, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(ca) = &files.ca {
            for c in load_certs(ca)? {
                roots.add(c).map_err(|e| read_err(ca, e))?;
            }
        }
        let roots = Arc::new(roots);
        let certified = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => {
                let chain = load_certs(cert)?;
                let k = PrivateKeyDer::from_pem_file(key).map_err(|e| read_err(key, e))?;
                let ck =
                    CertifiedKey::from_der(chain, k, &provider).map_err(|e| TlsError::Key {
                        cert: cert.clone(),
                        key: key.clone(),
                        reason: e.to_string(),
                    })?;
                Some(Arc::new(ck))
            }
            (None, None) => None,
            _ => return Err(TlsError::Incomplete),
        };
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .allow_unauthenticated()
                .clear_root_hint_subjects()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_root_certificates(roots);
        let client = match &certified {
            Some(ck) => builder.with_client_cert_resolver(Arc::new(OurCert(ck.clone()))),
            None => builder.with_no_client_auth(),
        };
        Ok(TlsContext {
            provider,
            certified,
            client_verifier,
            client: Arc::new(client),
        })
    }

    /// `true` when we have a certificate to serve TLS with.
    pub fn can_serve(&self) -> bool {
        self.certified.is_some()
    }

    /// A server configuration for one accepted connection, and the slot where the
    /// client certificate lands if it verifies. `None` without a certificate.
    pub fn server_for_conn(&self) -> Option<(Arc<ServerConfig>, VerifiedPeer)> {
        let ck = self.certified.clone()?;
        let peer = VerifiedPeer::default();
        let verifier = Capture {
            inner: self.client_verifier.clone(),
            slot: peer.0.clone(),
        };
        let cfg = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .ok()?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(OurCert(ck)));
        Some((Arc::new(cfg), peer))
    }
}

/// Always our one certificate, on both sides.
#[derive(Debug)]
struct OurCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OurCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl rustls::client::ResolvesClientCert for OurCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The client certificate of one connection, once it has verified.
#[derive(Debug, Default, Clone)]
pub struct VerifiedPeer(Arc<Mutex<Option<CertificateDer<'static>>>>);

impl VerifiedPeer {
    /// The identity the relay checks From-Path hosts against, when the peer presented
    /// a certificate that verified.
    pub fn identity(&self) -> Option<PeerIdentity> {
        let der = self.0.lock().ok()?.take()?;
        Some(PeerIdentity::new(move |host| cert_covers(&der, host)))
    }
}

/// `true` when the certificate's subjectAltName covers `host` (a name or an address,
/// IPv6 possibly in brackets).
pub fn cert_covers(der: &CertificateDer<'_>, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let Ok(name) = ServerName::try_from(host) else {
        return false;
    };
    ParsedCertificate::try_from(der)
        .is_ok_and(|c| rustls::client::verify_server_name(&c, &name).is_ok())
}

/// Verifies with the shared verifier and keeps the certificate that passed.
#[derive(Debug)]
struct Capture {
    inner: Arc<dyn ClientCertVerifier>,
    slot: Arc<Mutex<Option<CertificateDer<'static>>>>,
}

impl ClientCertVerifier for Capture {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Ok(mut s) = self.slot.lock() {
            *s = Some(end_entity.clone().into_owned());
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The name to verify a next hop's certificate against.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).ok()
}
