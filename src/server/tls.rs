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
//! handshakes use the new certificate while open connections keep theirs. Each context
//! has one rustls [`ServerConfig`] for all its accepted connections, and so one ticket
//! key: a client that comes back resumes its session (RFC 8446 §2.2, RFC 5077) instead
//! of a full handshake. The client certificate is read from the connection once the
//! handshake is done ([`accept`]); rustls keeps it in the session, so a resumed relay
//! is still identified by the certificate it showed the first time.
//!
//! Both handshakes ([`accept`], [`connect`]) are driven here with rustls directly and
//! end in a [`TlsStream`] (`tls_stream.rs`), whose reader and writer halves share the
//! rustls connection safely: monoio-rustls's split stream is not used (its halves share
//! one buffer, and a read error wrote an alert through the writer's buffer: a panic).
//!
//! [`TlsContext::load`] also looks at our own leaf certificate: a CA certificate
//! (basicConstraints cA TRUE, as `openssl req -x509` makes by default) is refused by
//! webpki-based peers as a server or client certificate (`CaUsedAsEndEntity`), and the
//! operator is told so ([`ca_leaf_warning`]).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::tls_stream::TlsStream;
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
    /// For accepted connections, when we have a certificate: one for all of them, so
    /// that their sessions can be resumed.
    server: Option<Arc<ServerConfig>>,
    /// For outbound `msrps:` connections.
    pub client: Arc<ClientConfig>,
    /// What is wrong with our certificate but does not stop us (logged at load).
    warnings: Vec<String>,
}

impl fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsContext")
            .field("has_cert", &self.server.is_some())
            .field("warnings", &self.warnings.len())
            .finish()
    }
}

/// A warning when `leaf` is a CA certificate (basicConstraints cA TRUE, RFC 5280
/// §4.2.1.9): webpki (rustls) refuses such a certificate as a server or client
/// certificate with `CaUsedAsEndEntity`, so relays verifying ours would fail every
/// handshake. `None` for an end-entity certificate, or one that cannot be parsed here
/// (rustls has accepted it already; it will judge it).
pub fn ca_leaf_warning(leaf: &CertificateDer<'_>, path: &Path) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let bc = cert.basic_constraints().ok()??;
    if !bc.value.ca {
        return None;
    }
    Some(format!(
        "certificate {}: its leaf is a CA certificate (basicConstraints CA:TRUE), which \
         peers verifying it as a server or client certificate refuse (rustls/webpki: \
         CaUsedAsEndEntity), so relays and TLS clients will fail the handshake with us. \
         Use a leaf with basicConstraints CA:FALSE, signed by a CA the peers trust, or \
         self-signed: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -days 825 -subj /CN=HOST -addext subjectAltName=DNS:HOST -addext \
         basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth,clientAuth \
         -keyout key.pem -out cert.pem (see README.md, MSRP over TLS)",
        path.display()
    ))
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
    /// connections (no client certificate) but cannot serve TLS. Logs a warning when
    /// our leaf certificate is a CA certificate ([`ca_leaf_warning`]).
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
        let mut warnings = Vec::new();
        let certified = match (&files.cert, &files.key) {
            (Some(cert), Some(key)) => {
                let chain = load_certs(cert)?;
                warnings.extend(chain.first().and_then(|leaf| ca_leaf_warning(leaf, cert)));
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
        let config_err = |e: rustls::Error| TlsError::Config(e.to_string());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config_err)?
            .with_root_certificates(roots.clone());
        let client = match &certified {
            Some(ck) => builder.with_client_cert_resolver(Arc::new(OurCert(ck.clone()))),
            None => builder.with_no_client_auth(),
        };
        let server = match &certified {
            Some(ck) => {
                // A client certificate is asked for, not required (RFC 4976 §6.1: only
                // relays have one); one that is presented must verify.
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
                    .allow_unauthenticated()
                    .clear_root_hint_subjects()
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?;
                let mut cfg = ServerConfig::builder_with_provider(provider.clone())
                    .with_safe_default_protocol_versions()
                    .map_err(config_err)?
                    .with_client_cert_verifier(verifier)
                    .with_cert_resolver(Arc::new(OurCert(ck.clone())));
                // Stateless tickets (RFC 5077, RFC 8446 §4.6.1) under a key of this
                // context: resumption costs the relay no memory per client, works on
                // every worker, and ends with a reload (a new key).
                cfg.ticketer = rustls::crypto::ring::Ticketer::new().map_err(config_err)?;
                Some(Arc::new(cfg))
            }
            None => None,
        };
        // Said each time the files are loaded: at start and on every reload (SIGHUP).
        for w in &warnings {
            tracing::warn!("{w}");
        }
        Ok(TlsContext {
            server,
            client: Arc::new(client),
            warnings,
        })
    }

    /// `true` when we have a certificate to serve TLS with.
    pub fn can_serve(&self) -> bool {
        self.server.is_some()
    }

    /// The server configuration for accepted connections (the same one each time, so
    /// sessions resume). `None` without a certificate.
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.server.clone()
    }

    /// Problems with our certificate that do not stop us but will stop some peers
    /// (see [`ca_leaf_warning`]).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// Bytes read from the socket at a time during a handshake. rustls takes at most 4 KiB
/// per `read_tls`, and [`handshake`] hands rustls all it read before the stream is built,
/// so what the peer sent after its Finished (the first MSRP bytes) is never lost: the
/// stream's reader hands it out first. 4 KiB of records also always fits rustls's 16 KiB
/// plaintext buffer.
const HANDSHAKE_READ: usize = 4096;

/// A TLS handshake that did not complete, saying why.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The socket failed (or was shut down by the handshake timeout).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// rustls refused the peer or its messages (a certificate that does not verify, an
    /// alert from the peer, a protocol violation); the alert rustls queued was sent.
    #[error("{0}")]
    Tls(#[from] rustls::Error),
    #[error("peer closed the connection during the TLS handshake")]
    Eof,
}

/// Runs the server side of a TLS handshake on `io` with `cfg` (from
/// [`TlsContext::server_config`]) and returns the stream, and the relay identity when
/// the client presented a certificate that verified (RFC 4976 §6.1; on a resumed
/// session, the one it presented when the session began). A certificate that does not
/// verify fails the handshake; no certificate makes an ordinary client. `peer` names the
/// client in the stream's logs.
pub async fn accept<IO>(
    cfg: Arc<ServerConfig>,
    mut io: IO,
    peer: String,
) -> Result<(TlsStream<IO>, Option<PeerIdentity>), HandshakeError>
where
    IO: AsyncReadRent + AsyncWriteRent,
{
    let mut conn = Connection::from(ServerConnection::new(cfg)?);
    handshake(&mut conn, &mut io).await?;
    let relay = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| {
            let der = leaf.clone().into_owned();
            PeerIdentity::new(move |host| cert_covers(&der, host))
        });
    Ok((TlsStream::new(io, conn, peer), relay))
}

/// Runs the client side of a TLS handshake towards a next hop named by an `msrps:` URI
/// (RFC 4976 §6.1): its certificate must verify for `name` (see [`server_name`]), and
/// ours, when the context has one, is presented for mutual TLS between relays. `peer`
/// names the next hop in the stream's logs.
pub async fn connect<IO>(
    cfg: Arc<ClientConfig>,
    name: ServerName<'static>,
    mut io: IO,
    peer: String,
) -> Result<TlsStream<IO>, HandshakeError>
where
    IO: AsyncReadRent + AsyncWriteRent,
{
    let mut conn = Connection::from(ClientConnection::new(cfg, name)?);
    handshake(&mut conn, &mut io).await?;
    Ok(TlsStream::new(io, conn, peer))
}

/// Drives a handshake to its end, for either side: our flights written in full, the
/// peer's read and fed to rustls, until rustls is no longer handshaking. On failure the
/// alert rustls queued is sent, as far as the peer listens.
async fn handshake<IO>(conn: &mut Connection, io: &mut IO) -> Result<(), HandshakeError>
where
    IO: AsyncReadRent + AsyncWriteRent,
{
    let mut out = Vec::new();
    let mut buf = Vec::with_capacity(HANDSHAKE_READ);
    loop {
        // Our flight (or an alert), in full, before anything else.
        while conn.wants_write() {
            out.clear();
            conn.write_tls(&mut out)?;
            let (r, b) = io.write_all(out).await;
            out = b;
            r?;
        }
        if !conn.is_handshaking() {
            return Ok(());
        }
        buf.clear();
        let (r, b) = io.read(buf).await;
        buf = b;
        if r? == 0 {
            return Err(HandshakeError::Eof);
        }
        let mut rd: &[u8] = &buf;
        while !rd.is_empty() {
            conn.read_tls(&mut rd)?;
            if let Err(e) = conn.process_new_packets() {
                // Tell the peer why (the alert rustls queued), as far as it listens.
                while conn.wants_write() {
                    out.clear();
                    if conn.write_tls(&mut out).is_err() {
                        break;
                    }
                    let (r, b) = io.write_all(out).await;
                    out = b;
                    if r.is_err() {
                        break;
                    }
                }
                return Err(HandshakeError::Tls(e));
            }
        }
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

/// The name to verify a next hop's certificate against.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    fn self_signed(is_ca: IsCa) -> CertificateDer<'static> {
        let mut p = CertificateParams::new(vec!["relay.example.com".to_string()]).unwrap();
        p.is_ca = is_ca;
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_ca_leaf_is_warned_about_an_end_entity_is_not() {
        let path = Path::new("/etc/msrpd/cert.pem");
        let w = ca_leaf_warning(
            &self_signed(IsCa::Ca(BasicConstraints::Unconstrained)),
            path,
        )
        .expect("CA:TRUE is warned about");
        assert!(w.starts_with("certificate /etc/msrpd/cert.pem: "), "{w}");
        for needle in [
            "CA:TRUE",
            "CaUsedAsEndEntity",
            "basicConstraints=critical,CA:FALSE",
        ] {
            assert!(w.contains(needle), "{needle}: {w}");
        }
        let w = ca_leaf_warning(
            &self_signed(IsCa::Ca(BasicConstraints::Constrained(0))),
            path,
        );
        assert!(w.is_some());
        // basicConstraints CA:FALSE, or no basicConstraints at all: an end entity.
        assert_eq!(
            ca_leaf_warning(&self_signed(IsCa::ExplicitNoCa), path),
            None
        );
        assert_eq!(ca_leaf_warning(&self_signed(IsCa::NoCa), path), None);
        // Not a certificate x509-parser can read: no warning (rustls judges it).
        assert_eq!(
            ca_leaf_warning(&CertificateDer::from(vec![0x30, 0x00]), path),
            None
        );
    }
}
