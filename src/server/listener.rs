//! Listening sockets: one SO_REUSEPORT listener per worker per listen address, so the
//! kernel spreads connections over the workers.
//!
//! SO_REUSEPORT lets any socket of the same user join the group, so a second msrpd on
//! the same port would silently steal connections. Before binding the group we bind the
//! address once *without* SO_REUSEPORT: if that fails with "address in use", another
//! process holds the port and we refuse to start.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

use super::ServerError;

/// The listeners of one address, one per worker.
pub struct Bound {
    pub addr: SocketAddr,
    pub listeners: Vec<TcpListener>,
}

fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(reuse_port)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_nonblocking(true)?;
    Ok(s)
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = socket(addr, true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// Binds every address for `workers` workers.
pub fn bind_all(addrs: &[SocketAddr], workers: usize) -> Result<Vec<Bound>, ServerError> {
    let mut out = Vec::with_capacity(addrs.len());
    for &want in addrs {
        let bind_err = |source| ServerError::Bind { addr: want, source };
        let mut addr = want;
        if want.port() != 0 {
            // Probe without SO_REUSEPORT: fails if anyone holds the port.
            let probe = socket(want, false).map_err(bind_err)?;
            match probe.bind(&want.into()) {
                Ok(()) => drop(probe),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    return Err(ServerError::PortInUse(want));
                }
                Err(e) => return Err(bind_err(e)),
            }
        }
        let mut listeners = Vec::with_capacity(workers);
        for _ in 0..workers {
            let l = listen(addr).map_err(bind_err)?;
            if addr.port() == 0 {
                addr = l.local_addr().map_err(bind_err)?;
            }
            listeners.push(l);
        }
        out.push(Bound { addr, listeners });
    }
    Ok(out)
}

/// One SO_REUSEPORT UDP socket per worker on each of `addrs` (the MSRP listeners'
/// bound addresses: SIP over UDP shares their port numbers, RFC 3261 §18.1).
/// The receive buffer asked for on each SIP UDP socket. The default (about 208 KiB)
/// holds some 100 datagrams, 20 ms of 5,000 requests/s: a worker busy elsewhere for
/// longer (a large MSRP write, a core shared with other work) lost datagrams there, and
/// the UDP clients retransmitted them 500 ms later (perf/sip.sh: 1.3 % of requests at
/// 5,000/s, all counted in `RcvbufErrors`). 4 MiB holds about 2,000.
pub const UDP_RCVBUF: usize = 4 << 20;

pub fn bind_udp(
    addrs: &[SocketAddr],
    workers: usize,
) -> Result<Vec<Vec<std::net::UdpSocket>>, ServerError> {
    let mut out: Vec<Vec<std::net::UdpSocket>> = (0..workers).map(|_| Vec::new()).collect();
    for &addr in addrs {
        let bind_err = |source| ServerError::Bind { addr, source };
        for per in out.iter_mut() {
            let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
                .map_err(bind_err)?;
            s.set_reuse_address(true).map_err(bind_err)?;
            s.set_reuse_port(true).map_err(bind_err)?;
            if addr.is_ipv6() {
                s.set_only_v6(true).map_err(bind_err)?;
            }
            s.set_nonblocking(true).map_err(bind_err)?;
            // The kernel caps this at net.core.rmem_max; a smaller buffer still works,
            // it only drops sooner in a burst.
            if let Err(e) = s.set_recv_buffer_size(UDP_RCVBUF) {
                tracing::debug!(%addr, error = %e, "SO_RCVBUF not raised on the SIP UDP socket");
            }
            s.bind(&addr.into()).map_err(bind_err)?;
            per.push(s.into());
        }
    }
    Ok(out)
}
