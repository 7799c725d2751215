//! The `msrpd` binary: allocator, CLI, configuration, signals; everything else is in the
//! library.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

use msrpd::config::{self, Cli, Command};
use msrpd::relay::users;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Passwd { users, realm, user }) => passwd(&users, realm, &user),
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
    match users::set_password(path, &realm, user, password) {
        Ok(()) => {
            eprintln!(
                "msrpd passwd: set password of {user} in realm {realm} in {}",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("msrpd passwd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn relay(args: &config::RelayArgs) -> ExitCode {
    let file = match &args.config {
        Some(p) => match config::read_file(p) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("msrpd: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => config::FileConfig::default(),
    };
    let resolved = match config::resolve(args, file) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("msrpd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&resolved.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
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
    // One line on stdout that scripts can read: where the relay listens.
    for a in server.local_addrs() {
        println!("msrpd listening on {a} as {}", server.advertise());
    }
    for a in server.tls_addrs() {
        println!("msrpd listening on {a} (TLS) as {}", server.advertise());
    }
    for sig in signals.forever() {
        match sig {
            SIGUSR1 => server.dump(),
            SIGHUP => {
                if let Err(e) = server.reload_users() {
                    tracing::error!(error = %e, "users file not reloaded; keeping the old one");
                }
                if let Err(e) = server.reload_tls() {
                    tracing::error!(error = %e, "TLS files not reloaded; keeping the old ones");
                }
            }
            _ => {
                tracing::info!(signal = sig, "shutting down");
                server.shutdown();
                break;
            }
        }
    }
    server.join();
    ExitCode::SUCCESS
}
