//! The `msrpd` binary: allocator, CLI, configuration, signals; everything else is in the
//! library.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

use msrpd::config::{self, Cli, Command};
use msrpd::server::users_file;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long mimalloc keeps freed memory before giving it back to the system, in ms.
/// Its default (1 s) is shorter than the gaps between bursts on a busy relay: at 1 KiB /
/// 50 pairs it purged and faulted back about 900 pages a second (each a 2 MiB huge page
/// zeroed by the kernel), some 4 % of the relay's CPU. With 10 s there were none. The
/// `MIMALLOC_PURGE_DELAY` environment variable still wins when set.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

unsafe extern "C" {
    /// mimalloc's option setter (mimalloc.h), linked in with the allocator.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_t` (libmimalloc-sys 0.1.49 does not
/// name it; `mi_option_eager_commit_delay` = 14 and `mi_option_use_numa_nodes` = 16,
/// which it does name, sit on either side).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: a plain setter of the allocator's option table, with a valid option
        // index and value, called before any other thread exists.
        unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

fn main() -> ExitCode {
    tune_allocator();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Passwd { users, realm, user }) => passwd(&users, realm, &user),
        Some(Command::CheckConfig(args)) => check_config(&args),
        None => relay(&cli.relay),
    }
}

/// `msrpd passwd --users FILE [--realm R] USER`: like Apache's htdigest.
fn passwd(path: &std::path::Path, realm: Option<String>, user: &str) -> ExitCode {
    let realm = realm.unwrap_or_else(config::default_realm);
    if std::io::stdin().is_terminal() {
        eprintln!("password for {user} in realm {realm} (end with Enter):");
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("msrpd passwd: cannot read the password from stdin: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("msrpd passwd: empty password refused");
        return ExitCode::FAILURE;
    }
    match users_file::set_password(path, &realm, user, password) {
        Ok(written) => {
            if let Some(dir) = written.created_dir {
                eprintln!(
                    "msrpd passwd: created directory {} (mode 0750)",
                    dir.display()
                );
            }
            eprintln!(
                "msrpd passwd: set password of {user} in realm {realm} in {}",
                path.display()
            );
            if written.created_file {
                eprintln!(
                    "msrpd passwd: created {} with mode 0640; for the relay's group to read it: chgrp msrpd {}",
                    path.display(),
                    path.display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("msrpd passwd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Flags over the file over defaults, or the error to print.
fn resolve(args: &config::RelayArgs) -> Result<config::Resolved, String> {
    let file = match &args.config {
        Some(p) => config::read_file(p).map_err(|e| e.to_string())?,
        None => config::FileConfig::default(),
    };
    config::resolve(args, file).map_err(|e| e.to_string())
}

/// `msrpd check-config [--config FILE] [flags]`: everything the relay would check at
/// start, short of binding sockets; prints the settings in force.
fn check_config(args: &config::RelayArgs) -> ExitCode {
    let r = match resolve(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("msrpd check-config: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(w) = r
        .server
        .admin
        .as_ref()
        .and_then(msrpd::admin::token_file_warning)
    {
        eprintln!("msrpd check-config: warning: {w}");
    }
    match msrpd::server::check(&r.server) {
        Ok(lines) => {
            if let Some(p) = &args.config {
                println!("# settings from {} (flags win), checked", p.display());
            } else {
                println!("# settings from flags and defaults, checked");
            }
            println!("log_level = {:?}", r.log_level);
            println!(
                "log_format = {:?}",
                match r.log_format {
                    config::LogFormat::Text => "text",
                    config::LogFormat::Json => "json",
                }
            );
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("msrpd check-config: {e}");
            ExitCode::FAILURE
        }
    }
}

fn relay(args: &config::RelayArgs) -> ExitCode {
    let resolved = match resolve(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("msrpd: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Checked by config::resolve; should EnvFilter still refuse it, say so rather than
    // run without the logs the operator asked for.
    let filter = match tracing_subscriber::EnvFilter::builder().parse(&resolved.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("msrpd: bad log filter {:?}: {e}", resolved.log_level);
            return ExitCode::FAILURE;
        }
    };
    match resolved.log_format {
        config::LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .init(),
        config::LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGUSR1])
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("msrpd: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match msrpd::server::start(resolved.server) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("msrpd: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Lines on stdout that scripts can read: where the relay listens. A reader that has
    // gone (a closed pipe) must not stop the relay: write errors are ignored.
    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        for a in server.local_addrs() {
            let _ = writeln!(out, "msrpd listening on {a} as {}", server.advertise());
        }
        for a in server.tls_addrs() {
            let _ = writeln!(
                out,
                "msrpd listening on {a} (TLS) as {}",
                server.advertise()
            );
        }
        if let Some(a) = server.admin_addr() {
            let _ = writeln!(out, "msrpd admin API on http://{a}");
        }
        let _ = out.flush();
    }
    // systemd (Type=notify): the listeners are bound and the workers run.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    for sig in signals.forever() {
        match sig {
            SIGUSR1 => server.dump(),
            SIGHUP => {
                // Outcomes are logged; files that fail leave the old ones in use.
                let _ = server.ops().reload(true, true);
            }
            _ => {
                tracing::info!(signal = sig, "shutting down");
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
                server.shutdown();
                break;
            }
        }
    }
    server.join();
    ExitCode::SUCCESS
}
