//! The bench's connection to the relay: plain TCP, or TLS (msrps) over TCP with the
//! server certificate verified against `--ca` (or the Mozilla roots), or not at all
//! with `--insecure` (self-signed test certificates).

use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::net::TcpStream;
use monoio_rustls::ClientTlsStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How to reach the relay over TLS.
pub struct Tls {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

impl Tls {
    /// A client configuration trusting `ca` (PEM) or the Mozilla roots, or anything
    /// when `insecure`.
    pub fn new(host: &str, ca: Option<&Path>, insecure: bool) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            if let Some(ca) = ca {
                let certs = CertificateDer::pem_file_iter(ca)
                    .map_err(|e| format!("--ca {}: {e}", ca.display()))?;
                for c in certs {
                    let c = c.map_err(|e| format!("--ca {}: {e}", ca.display()))?;
                    roots
                        .add(c)
                        .map_err(|e| format!("--ca {}: {e}", ca.display()))?;
                }
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare.to_string())
            .map_err(|e| format!("relay host {host:?} is not a TLS name: {e}"))?;
        Ok(Tls {
            config: Arc::new(config),
            name,
        })
    }
}

/// Accepts any server certificate (`--insecure`); signatures are still checked.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection to the relay, and the socket under it (for shutdown(2) from outside).
pub struct Conn {
    fd: RawFd,
    io: Io,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
}

impl Conn {
    /// Connects, and completes the TLS handshake when `tls` is given.
    pub async fn connect(addr: std::net::SocketAddr, tls: Option<&Tls>) -> Result<Conn, String> {
        let s = TcpStream::connect_addr(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let _ = s.set_nodelay(true);
        let fd = s.as_raw_fd();
        let io = match tls {
            None => Io::Plain(s),
            Some(t) => monoio_rustls::TlsConnector::from(t.config.clone())
                .connect(t.name.clone(), s)
                .await
                .map(|s| Io::Tls(Box::new(s)))
                .map_err(|e| format!("TLS handshake with {addr}: {}", std::io::Error::from(e)))?,
        };
        Ok(Conn { fd, io })
    }
}

impl AsRawFd for Conn {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

// SAFETY: both variants are `Split` (monoio's TcpStream, monoio-rustls's stream); the
// wrapper only forwards to them.
unsafe impl Split for Conn {}

impl AsyncReadRent for Conn {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.io {
            Io::Plain(s) => s.read(buf).await,
            Io::Tls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.io {
            Io::Plain(s) => s.readv(buf).await,
            Io::Tls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for Conn {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.io {
            Io::Plain(s) => s.write(buf).await,
            Io::Tls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.io {
            Io::Plain(s) => s.writev(buf).await,
            Io::Tls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => s.flush().await,
            Io::Tls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        match &mut self.io {
            Io::Plain(s) => s.shutdown().await,
            Io::Tls(s) => s.shutdown().await,
        }
    }
}
