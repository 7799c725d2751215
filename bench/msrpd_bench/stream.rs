//! The bench's connection to the relay: plain TCP, or TLS (msrps) over TCP with the
//! server certificate verified against `--ca` (or the Mozilla roots), or not at all
//! with `--insecure` (self-signed test certificates).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
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
use socket2::{Domain, Protocol, SockRef, Socket, Type};

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
    /// Connects (from `local` when given, else from whatever address the kernel picks),
    /// sets TCP_NODELAY when `nodelay` (clients that leave Nagle on pass `false`), and
    /// completes the TLS handshake when `tls` is given.
    pub async fn connect(
        addr: SocketAddr,
        tls: Option<&Tls>,
        local: Option<IpAddr>,
        nodelay: bool,
    ) -> Result<Conn, String> {
        let s = match local {
            None => TcpStream::connect_addr(addr).await,
            Some(ip) => connect_from(ip, addr).await,
        }
        .map_err(|e| match local {
            None => format!("connect {addr}: {e}"),
            Some(ip) => format!("connect {addr} from {ip}: {e}"),
        })?;
        if nodelay {
            let _ = s.set_nodelay(true);
        }
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

/// Connects to `addr` from the source address `local`. The port is picked at connect time
/// (`IP_BIND_ADDRESS_NO_PORT`), so each source address has the whole ephemeral port range
/// towards `addr`: one address gives only about 28,000 connections to one relay port.
pub async fn connect_from(local: IpAddr, addr: SocketAddr) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_nonblocking(true)?;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt reads `optlen` bytes from the int we pass, on our own socket.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    s.bind(&SocketAddr::new(local, 0).into())?;
    match s.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = TcpStream::from_std(std::net::TcpStream::from(s))?;
    // Writable once the handshake is done or has failed; SO_ERROR says which.
    stream.writable(false).await?;
    // SAFETY: `stream` owns the descriptor and outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    match SockRef::from(&fd).take_error()? {
        Some(e) => Err(e),
        None => Ok(stream),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::Ipv4Addr;

    /// Runs `f` on each runtime the bench can use: epoll, and io_uring when the kernel has it.
    fn on_each_driver(f: impl AsyncFn()) {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("epoll runtime")
            .block_on(f());
        if monoio::utils::detect_uring() {
            let (mut rt, _) =
                msrpd::server::runtime::uring_runtime(64, &msrpd::server::runtime::UringMode::ALL)
                    .expect("io_uring runtime");
            rt.block_on(f());
        }
    }

    /// A connection made with a source address comes from that address (127.0.0.3, not
    /// the 127.0.0.1 the kernel would pick) and carries bytes both ways.
    #[test]
    fn connect_from_uses_the_source_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
        on_each_driver(async || {
            let mut c = Conn::connect(addr, None, Some(src), true).await.unwrap();
            let (mut peer, from) = l.accept().unwrap();
            assert_eq!(from.ip(), src);
            peer.write_all(b"ping").unwrap();
            let (r, buf) = c.read(Vec::with_capacity(16)).await;
            assert_eq!(r.unwrap(), 4);
            assert_eq!(&buf[..], b"ping");
            let (r, _) = monoio::io::AsyncWriteRentExt::write_all(&mut c, b"pong".to_vec()).await;
            r.unwrap();
            let mut got = [0u8; 4];
            peer.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"pong");
        });
    }

    /// Without a source address the kernel picks 127.0.0.1 towards 127.0.0.1 (as before).
    #[test]
    fn connect_without_source_address_is_unchanged() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        on_each_driver(async || {
            let _c = Conn::connect(addr, None, None, true).await.unwrap();
            let (_, from) = l.accept().unwrap();
            assert_eq!(from.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        });
    }

    /// A refused connection is an error (the handshake's outcome is read, not assumed).
    #[test]
    fn connect_from_reports_a_refused_connection() {
        let addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
        on_each_driver(async || {
            let e = connect_from(src, addr)
                .await
                .expect_err("nothing listens there");
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        });
    }
}
