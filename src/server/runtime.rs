//! Building a worker's io_uring runtime.
//!
//! A worker is the only thread that ever submits to its ring, and it only needs completions
//! when it has nothing else to run, so the ring is set up with `IORING_SETUP_SINGLE_ISSUER`
//! and `IORING_SETUP_DEFER_TASKRUN` (Linux 6.1): the kernel no longer interrupts the worker
//! with an inter-processor interrupt for every finished receive or send; the completions are
//! processed in one batch when the worker next waits for events. On this project's 2-core
//! machine that cut the relay's CPU per 1 KiB message by about 8 % (perf/results). Older
//! kernels refuse the flags with `EINVAL`; the builder then falls back to
//! `IORING_SETUP_COOP_TASKRUN` (Linux 5.19) and finally to a plain ring.

use std::io;

use monoio::time::TimeDriver;
use monoio::{IoUringDriver, Runtime, RuntimeBuilder};

/// How a worker's ring was set up (most preferred first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UringMode {
    /// `SINGLE_ISSUER | DEFER_TASKRUN`: completions are run only when the worker waits.
    DeferTaskrun,
    /// `COOP_TASKRUN | TASKRUN_FLAG`: no interrupt per completion, run at the next syscall.
    CoopTaskrun,
    /// No setup flags: the kernel interrupts the worker to run completion work.
    Plain,
}

impl UringMode {
    /// Every mode, most preferred first.
    pub const ALL: [UringMode; 3] = [
        UringMode::DeferTaskrun,
        UringMode::CoopTaskrun,
        UringMode::Plain,
    ];

    /// The name used in logs.
    pub fn name(self) -> &'static str {
        match self {
            UringMode::DeferTaskrun => "single-issuer, deferred task work",
            UringMode::CoopTaskrun => "cooperative task work",
            UringMode::Plain => "plain",
        }
    }

    fn builder(self) -> io_uring::Builder {
        let mut b = io_uring::IoUring::builder();
        match self {
            UringMode::DeferTaskrun => {
                b.setup_single_issuer().setup_defer_taskrun();
            }
            UringMode::CoopTaskrun => {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            UringMode::Plain => {}
        }
        b
    }
}

/// An io_uring runtime with a timer and `entries` submission slots, in the first mode of
/// `modes` the kernel accepts. Must be called on the thread that will run it (the ring
/// belongs to the thread that creates it in [`UringMode::DeferTaskrun`]).
pub fn uring_runtime(
    entries: u32,
    modes: &[UringMode],
) -> io::Result<(Runtime<TimeDriver<IoUringDriver>>, UringMode)> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no io_uring mode to try");
    for &mode in modes {
        match RuntimeBuilder::<IoUringDriver>::new()
            .enable_timer()
            .with_entries(entries)
            .uring_builder(mode.builder())
            .build()
        {
            Ok(rt) => return Ok((rt, mode)),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The mode named by `MSRPD_URING_MODE` (`defer`, `coop`, `plain`) and the ones after it,
/// or all of them: for measuring what each mode is worth.
pub fn modes_from_env() -> &'static [UringMode] {
    match std::env::var("MSRPD_URING_MODE").as_deref() {
        Ok("coop") => &UringMode::ALL[1..],
        Ok("plain") => &UringMode::ALL[2..],
        _ => &UringMode::ALL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt};
    use std::time::Duration;

    /// Every mode the kernel accepts carries TCP traffic both ways and is woken by another
    /// thread (the mesh's doorbell and the gauges' drain events rely on that); a mode the
    /// kernel refuses is said and skipped.
    #[test]
    fn each_mode_carries_traffic_and_cross_thread_wakeups() {
        if !monoio::utils::detect_uring() {
            eprintln!("no io_uring in this kernel: the workers use epoll, nothing to test");
            return;
        }
        let mut accepted = 0;
        for mode in UringMode::ALL {
            let mut rt = match uring_runtime(64, &[mode]) {
                Ok((rt, m)) => {
                    assert_eq!(m, mode);
                    rt
                }
                Err(e) => {
                    eprintln!("kernel refuses {}: {e}", mode.name());
                    continue;
                }
            };
            accepted += 1;
            rt.block_on(async {
                let l = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                let echo = monoio::spawn(async move {
                    let (mut s, _) = l.accept().await.unwrap();
                    let (r, buf) = s.read_exact(vec![0u8; 5]).await;
                    r.unwrap();
                    let (r, _) = s.write_all(buf).await;
                    r.unwrap();
                });
                let mut c = monoio::net::TcpStream::connect(addr).await.unwrap();
                let (r, _) = c.write_all(b"hello".to_vec()).await;
                r.unwrap();
                let (r, buf) = c.read_exact(vec![0u8; 5]).await;
                r.unwrap();
                assert_eq!(&buf[..], b"hello");
                echo.await;

                // A wake-up from another thread while this one sleeps in the ring.
                let ev = std::sync::Arc::new(event_listener::Event::new());
                let listener = ev.listen();
                let ev2 = ev.clone();
                let t = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    ev2.notify(usize::MAX);
                });
                let woke = monoio::time::timeout(Duration::from_secs(5), listener).await;
                assert!(woke.is_ok(), "{}: cross-thread wake-up lost", mode.name());
                t.join().unwrap();
            });
        }
        assert!(accepted > 0, "the kernel accepts no io_uring mode at all");
    }
}
