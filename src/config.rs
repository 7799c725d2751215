//! Command line and configuration file. Every relay setting is a flag and a key of the
//! TOML file given with `--config`; flags win over the file, the file over defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

use crate::relay::RelayConfig;
use crate::server::{Driver, ServerConfig};

/// What `--help` says after the options: the signals.
const SIGNALS: &str = "\
Signals:
  SIGHUP    re-read the users file and the TLS certificate, key and CA files
            (as POST /v1/reload on the admin API)
  SIGINT, SIGTERM
            stop accepting, let frames in flight finish (up to 5 s), close
  SIGUSR1   log each worker's tables and every connection with bytes queued";

/// msrpd: an MSRP relay (RFC 4975, RFC 4976), thread-per-core on io_uring.
#[derive(Debug, Parser)]
#[command(name = "msrpd", version, about, long_about = None, after_help = SIGNALS)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub relay: RelayArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add or change a user in a users file (htdigest format); the password is read from stdin.
    Passwd {
        /// The users file (created if missing).
        #[arg(long, value_name = "FILE")]
        users: PathBuf,
        /// Realm (default: this machine's host name, as the relay uses by default).
        #[arg(long)]
        realm: Option<String>,
        /// The user name.
        user: String,
    },
    /// Parse and check every setting (flags and --config FILE, users file, TLS files,
    /// admin token), print what would be used, exit non-zero on any error.
    CheckConfig(Box<RelayArgs>),
}

/// Relay settings given on the command line.
#[derive(Debug, Default, Args)]
pub struct RelayArgs {
    /// TOML file with any of the settings below (flags win).
    #[arg(long, value_name = "FILE", help_heading = "Listeners")]
    pub config: Option<PathBuf>,
    /// Address to listen on for MSRP over TCP; repeat for several [default: 0.0.0.0:2855].
    #[arg(long, value_name = "ADDR", help_heading = "Listeners")]
    pub listen: Vec<SocketAddr>,
    /// Address to listen on for MSRP over TLS (msrps:); repeatable; needs --cert and --key.
    #[arg(long, value_name = "ADDR", help_heading = "Listeners")]
    pub listen_tls: Vec<SocketAddr>,
    /// Our certificate chain (PEM) for TLS listeners and as client certificate towards relays.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub cert: Option<PathBuf>,
    /// The private key of --cert (PEM).
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub key: Option<PathBuf>,
    /// Extra trust anchors (PEM) for msrps next hops and relay client certificates.
    #[arg(long, value_name = "FILE", help_heading = "TLS")]
    pub ca: Option<PathBuf>,
    /// Host (and port) the relay puts in its own URIs, e.g. relay.example.com:2855.
    #[arg(long, value_name = "HOST[:PORT]", help_heading = "Listeners")]
    pub advertise: Option<String>,
    /// Another host name that means this relay in a To-Path URI; repeatable.
    #[arg(long, value_name = "HOST", help_heading = "Listeners")]
    pub alias: Vec<String>,
    /// Number of worker threads, one per core, on CPUs 0..N [default: all CPUs].
    #[arg(
        long,
        value_name = "N",
        conflicts_with = "cpus",
        help_heading = "Workers"
    )]
    pub cores: Option<usize>,
    /// CPUs to run workers on, e.g. 0,2-3 (one worker per CPU).
    #[arg(long, value_name = "LIST", help_heading = "Workers")]
    pub cpus: Option<String>,
    /// Do not pin worker threads to their CPUs.
    #[arg(long, help_heading = "Workers")]
    pub no_pin: bool,
    /// Users file for HTTP Digest AUTH (htdigest format); without it only loopback clients may AUTH.
    #[arg(long, value_name = "FILE", help_heading = "AUTH")]
    pub users: Option<PathBuf>,
    /// Digest realm [default: the advertised host].
    #[arg(long, help_heading = "AUTH")]
    pub realm: Option<String>,
    /// Log level: error, warn, info, debug, trace or off, or tracing directives such as
    /// msrpd=debug,info; anything else is refused. Without it (and without log_level in
    /// --config) the RUST_LOG environment variable decides, checked the same way
    /// [default: $RUST_LOG, else info].
    #[arg(long, value_name = "LEVEL", help_heading = "Logging")]
    pub log_level: Option<String>,
    /// Expires granted when an AUTH asks for none, in seconds [default: 600].
    #[arg(long, value_name = "SECS", help_heading = "AUTH")]
    pub expires_default: Option<u32>,
    /// Smallest Expires accepted; below it AUTH gets 423 [default: 60].
    #[arg(long, value_name = "SECS", help_heading = "AUTH")]
    pub expires_min: Option<u32>,
    /// Largest Expires accepted; above it AUTH gets 423 [default: 3600].
    #[arg(long, value_name = "SECS", help_heading = "AUTH")]
    pub expires_max: Option<u32>,
    /// Seconds to wait for the next hop's response before a 408 REPORT [default: 30].
    #[arg(long, value_name = "SECS", help_heading = "Timeouts")]
    pub txn_timeout: Option<f64>,
    /// Seconds a new connection has to make a successful request [default: 30].
    #[arg(long, value_name = "SECS", help_heading = "Timeouts")]
    pub probation: Option<f64>,
    /// Seconds without traffic before a connection is closed [default: 3600].
    #[arg(long, value_name = "SECS", help_heading = "Timeouts")]
    pub idle_timeout: Option<f64>,
    /// Lifetime of digest nonces in seconds [default: 30].
    #[arg(long, value_name = "SECS", help_heading = "AUTH")]
    pub nonce_lifetime: Option<f64>,
    /// Refuse methods other than SEND, REPORT, AUTH and NICKNAME with 501.
    #[arg(long, help_heading = "Limits")]
    pub block_unknown_methods: bool,
    /// Write-queue high-water mark per connection in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    pub high_water: Option<usize>,
    /// Largest header block accepted in bytes [default: 16384].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    pub max_head: Option<usize>,
    /// I/O driver: auto, io-uring or epoll [default: auto].
    #[arg(long, value_name = "DRIVER", help_heading = "Workers")]
    pub driver: Option<String>,
    /// Largest body of a non-SEND request in bytes, at most 10240 [default: 10240].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    pub max_non_send_body: Option<u64>,
    /// Most URIs in a To-Path or From-Path, 2 to 32 [default: 32].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub max_path_uris: Option<usize>,
    /// Accepted connections open at once over all workers [default: 100000].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub max_connections: Option<usize>,
    /// Accepted connections open at once from one source address [default: 1000].
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub max_connections_per_ip: Option<usize>,
    /// Failed AUTH requests tolerated on one connection before it is closed [default: 3].
    #[arg(long, value_name = "N", help_heading = "AUTH")]
    pub max_auth_failures: Option<u32>,
    /// Hard cap of one connection's write queue in bytes; a peer whose queue passes it
    /// is disconnected [default: 16777216].
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    pub max_queue: Option<usize>,
    /// Seconds a header block may take to arrive in full [default: 10].
    #[arg(long, value_name = "SECS", help_heading = "Timeouts")]
    pub head_timeout: Option<f64>,
    /// Seconds a frame's body may go without a byte while the relay waits for it; then the
    /// frame is aborted (`#`) and its connection closed [default: 30].
    #[arg(long, value_name = "SECS", help_heading = "Timeouts")]
    pub body_timeout: Option<f64>,
    /// Seconds a TLS handshake may take, inbound or outbound [default: 10].
    #[arg(long, value_name = "SECS", help_heading = "TLS")]
    pub tls_handshake_timeout: Option<f64>,
    /// Seconds to resolve and connect to a next hop, TLS handshake included; then the
    /// messages waiting for it are reported failed (408) to their senders [default: 10].
    #[arg(long, value_name = "SECS", help_heading = "Timeouts")]
    pub connect_timeout: Option<f64>,
    /// Log line format: text (for people) or json (one object a line, for log
    /// shippers) [default: text].
    #[arg(long, value_name = "FORMAT", help_heading = "Logging")]
    pub log_format: Option<String>,
    /// Address of the admin HTTP API (health, metrics, sessions, events), or off
    /// [default: 127.0.0.1:8665]. Any non-loopback address needs --admin-token-file.
    #[arg(long, value_name = "ADDR|off", help_heading = "Admin")]
    pub admin: Option<String>,
    /// File holding the bearer token every admin request must carry
    /// (Authorization: Bearer TOKEN); required on a non-loopback --admin address.
    #[arg(long, value_name = "FILE", help_heading = "Admin")]
    pub admin_token_file: Option<PathBuf>,
    /// POST each event (JSON) to this http:// URL, with retries; dropped and counted
    /// when it is down.
    #[arg(long, value_name = "URL", help_heading = "Admin")]
    pub events_webhook: Option<String>,
    /// Status code INVITE, MESSAGE and other SIP requests nobody owns are answered
    /// with, 300 to 699 (RFC 3261 §8.2) [default: 404].
    #[arg(long, value_name = "CODE", help_heading = "SIP")]
    pub sip_reject: Option<u16>,
    /// Do not take SIP over UDP on the listeners' ports (TCP and TLS still sniff SIP).
    #[arg(long, help_heading = "SIP")]
    pub no_sip_udp: bool,
    /// What is neither MSRP nor SIP and shorter than this is a NAT keepalive: dropped and
    /// counted, no event (as Kamailio's nosip module) [default: 32].
    #[arg(long, value_name = "BYTES", help_heading = "SIP")]
    pub nosip_min_bytes: Option<u32>,
    /// Only what is neither MSRP nor SIP and matches this regular expression (Rust
    /// `regex` syntax, on the raw bytes) becomes a nosip.packet event [default: all].
    #[arg(long, value_name = "REGEX", help_heading = "SIP")]
    pub nosip_match: Option<String>,
    /// What is neither MSRP nor SIP and matches this regular expression is skipped:
    /// counted, no event.
    #[arg(long, value_name = "REGEX", help_heading = "SIP")]
    pub nosip_skip: Option<String>,
    /// SIP timer T1, the round-trip estimate every retransmission and timeout scales
    /// with (RFC 3261 §17.1.1.1; timers B and F are 64*T1), 1 to 10000 [default: 500].
    #[arg(long, value_name = "MS", help_heading = "SIP")]
    pub sip_t1_ms: Option<u64>,
    /// SIP timer T2, the longest retransmission interval of non-INVITE requests and
    /// INVITE responses, 1 to 60000, at least T1 [default: 4000].
    #[arg(long, value_name = "MS", help_heading = "SIP")]
    pub sip_t2_ms: Option<u64>,
    /// SIP timer T4, how long a message may stay in the network (timers I and K),
    /// 1 to 60000 [default: 5000].
    #[arg(long, value_name = "MS", help_heading = "SIP")]
    pub sip_t4_ms: Option<u64>,
    /// Send every outbound SIP request to this proxy (a sip: or sips: URI; the request
    /// carries Route: <URI;lr>, RFC 3261 §8.1.2). Without it requests go to the
    /// Request-URI's host (A/AAAA records only: no NAPTR or SRV).
    #[arg(long, value_name = "URI", help_heading = "SIP")]
    pub sip_outbound_proxy: Option<String>,
    /// File of user:realm:password lines (OpenSIPS credential form): a 401/407 to an
    /// outbound SIP request from a listed realm is answered once with digest (MD5 or
    /// SHA-256). Keep it unreadable for others.
    #[arg(long, value_name = "FILE", help_heading = "SIP")]
    pub sip_credentials: Option<PathBuf>,
    /// Answer INVITEs offering MSRP whose Request-URI matches this regular expression
    /// with msrpd's user agent (accept-types text/plain and message/cpim); repeat for
    /// more. The config file's [[ua_answer]] tables also match From and To and set the
    /// accept-types. Without any, INVITEs get --sip-reject.
    #[arg(long, value_name = "REGEX", help_heading = "User agent")]
    pub ua_answer: Vec<String>,
    /// A user agent session ends this many seconds after it starts, 0 for never
    /// [default: 43200, 12 h].
    #[arg(long, value_name = "SECONDS", help_heading = "User agent")]
    pub ua_max_duration: Option<u64>,
    /// The largest message the user agent takes, 1 to 1073741824 bytes (413 beyond)
    /// [default: 16777216].
    #[arg(long, value_name = "BYTES", help_heading = "User agent")]
    pub ua_max_message: Option<u64>,
    /// Send every user agent session through this MSRP relay (RFC 4976), e.g.
    /// msrp://relay.example.com:2855;tcp or msrps://...; needs --ua-relay-credentials.
    #[arg(long, value_name = "URI", help_heading = "User agent")]
    pub ua_relay: Option<String>,
    /// A file with one line `user:password`: the digest credentials for --ua-relay.
    #[arg(long, value_name = "FILE", help_heading = "User agent")]
    pub ua_relay_credentials: Option<PathBuf>,
}

/// One `[[ua_answer]]` table: which INVITEs the user agent answers (regular
/// expressions on the Request-URI, From and To; a missing one matches anything) and
/// with which accept-types (RFC 4975 §8.6).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UaAnswerFile {
    pub ruri: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub accept_types: Option<Vec<String>>,
    pub accept_wrapped_types: Option<Vec<String>>,
}

/// The accept-types a rule gets when it names none.
pub const UA_DEFAULT_ACCEPT: [&str; 2] = ["text/plain", "message/cpim"];

/// The same settings as read from a TOML file (keys in snake_case).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<Vec<SocketAddr>>,
    pub listen_tls: Option<Vec<SocketAddr>>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
    pub advertise: Option<String>,
    pub alias: Option<Vec<String>>,
    pub cores: Option<usize>,
    pub cpus: Option<String>,
    pub no_pin: Option<bool>,
    pub users: Option<PathBuf>,
    pub realm: Option<String>,
    pub log_level: Option<String>,
    pub expires_default: Option<u32>,
    pub expires_min: Option<u32>,
    pub expires_max: Option<u32>,
    pub txn_timeout: Option<f64>,
    pub probation: Option<f64>,
    pub idle_timeout: Option<f64>,
    pub nonce_lifetime: Option<f64>,
    pub block_unknown_methods: Option<bool>,
    pub high_water: Option<usize>,
    pub max_head: Option<usize>,
    pub driver: Option<String>,
    pub max_non_send_body: Option<u64>,
    pub max_path_uris: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    pub max_auth_failures: Option<u32>,
    pub max_queue: Option<usize>,
    pub head_timeout: Option<f64>,
    pub body_timeout: Option<f64>,
    pub tls_handshake_timeout: Option<f64>,
    pub connect_timeout: Option<f64>,
    pub log_format: Option<String>,
    pub admin: Option<String>,
    pub admin_token_file: Option<PathBuf>,
    pub events_webhook: Option<String>,
    pub sip_reject: Option<u16>,
    pub no_sip_udp: Option<bool>,
    pub nosip_min_bytes: Option<u32>,
    pub nosip_match: Option<String>,
    pub nosip_skip: Option<String>,
    pub sip_t1_ms: Option<u64>,
    pub sip_t2_ms: Option<u64>,
    pub sip_t4_ms: Option<u64>,
    pub sip_outbound_proxy: Option<String>,
    pub sip_credentials: Option<PathBuf>,
    pub ua_answer: Option<Vec<UaAnswerFile>>,
    pub ua_max_duration: Option<u64>,
    pub ua_max_message: Option<u64>,
    pub ua_relay: Option<String>,
    pub ua_relay_credentials: Option<PathBuf>,
}

/// The user agent's relay: its URI checked, its credentials read.
fn ua_relay(
    uri: Option<String>,
    creds: Option<PathBuf>,
) -> Result<Option<crate::ua::engine::RelayConfig>, ConfigError> {
    let Some(uri) = uri else {
        return match creds {
            Some(path) => Err(ConfigError::UaRelayCredentials {
                path,
                reason: "given without --ua-relay".into(),
            }),
            None => Ok(None),
        };
    };
    let bad = |reason: &str| ConfigError::UaRelay {
        uri: uri.clone(),
        reason: reason.into(),
    };
    let u = crate::codec::Uri::parse(&uri).map_err(|e| bad(&e.to_string()))?;
    if u.port().is_none() {
        return Err(bad("no port"));
    }
    let Some(path) = creds else {
        return Err(bad("needs --ua-relay-credentials FILE"));
    };
    let cred_err = |reason: &str| ConfigError::UaRelayCredentials {
        path: path.clone(),
        reason: reason.into(),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| cred_err(&e.to_string()))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| cred_err("empty"))?;
    let (user, password) = line
        .split_once(':')
        .filter(|(u, p)| !u.is_empty() && !p.is_empty())
        .ok_or_else(|| cred_err("not user:password"))?;
    Ok(Some(crate::ua::engine::RelayConfig {
        uri: uri.clone(),
        username: user.to_string(),
        password: password.to_string(),
    }))
}

/// A setting that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("bad --ua-relay {uri:?}: {reason} (use msrp://HOST:PORT;tcp or msrps://HOST:PORT;tcp)")]
    UaRelay { uri: String, reason: String },
    #[error("--ua-relay-credentials {path}: {reason} (one line user:password)")]
    UaRelayCredentials { path: PathBuf, reason: String },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("bad --cpus list {0:?}: use numbers and ranges, e.g. 0,2-3")]
    Cpus(String),
    #[error("bad --advertise {0:?}: use HOST or HOST:PORT")]
    Advertise(String),
    #[error("bad --driver {0:?}: use auto, io-uring or epoll")]
    Driver(String),
    #[error("bad --log-format {0:?}: use text or json")]
    LogFormat(String),
    #[error("bad --admin {0:?}: use ADDR:PORT (e.g. {default}) or off", default = crate::admin::DEFAULT_ADDR)]
    Admin(String),
    #[error("admin token file {path}: {reason}")]
    TokenFile { path: PathBuf, reason: String },
    #[error(
        "--admin {0} is not a loopback address: give --admin-token-file FILE (a bearer token every request must carry), or use 127.0.0.1"
    )]
    AdminToken(SocketAddr),
    #[error("bad --events-webhook {0:?}: use an http:// URL such as http://127.0.0.1:9000/events")]
    Webhook(String),
    #[error("--events-webhook needs the admin thread: remove --admin off")]
    WebhookWithoutAdmin,
    /// Not the URL itself: it holds a password.
    #[error(
        "bad --events-webhook: a user name or password in the URL (user:password@host) is never sent to the hook; remove it (msrpd sends no credentials: keep the hook on loopback or behind a proxy that adds them)"
    )]
    WebhookUserinfo,
    #[error("{0} must be a positive number of seconds")]
    Seconds(&'static str),
    #[error("expires bounds must satisfy min <= default <= max (got {0} <= {1} <= {2})")]
    Expires(u32, u32, u32),
    #[error("--cores must be at least 1")]
    Cores,
    #[error("--listen-tls needs --cert FILE and --key FILE (PEM)")]
    TlsWithoutCert,
    #[error("{0} must be between {1} and {2}")]
    Range(&'static str, u64, u64),
    #[error("sip-t2-ms ({t2}) must be at least sip-t1-ms ({t1})")]
    SipT2BelowT1 { t1: u64, t2: u64 },
    #[error(
        "bad --sip-outbound-proxy {uri:?}: {reason}; use a sip: or sips: URI such as sip:proxy.example.com:5060"
    )]
    SipProxy { uri: String, reason: String },
    #[error("bad {what} {value:?}: {reason}")]
    UaRule {
        /// `--ua-answer`, or `ua_answer.ruri` and the like.
        what: String,
        value: String,
        reason: String,
    },
    #[error("bad {flag} {pattern:?}: not a regular expression the regex crate takes:\n{reason}")]
    Regex {
        /// `--nosip-match` or `--nosip-skip`.
        flag: &'static str,
        pattern: String,
        reason: String,
    },
    #[error(
        "bad {source_name} {value:?}: {reason}; use one of error, warn, info, debug, trace, off, \
         or tracing directives such as msrpd=debug,info"
    )]
    LogLevel {
        /// Where the value came from: `--log-level`, `log_level` or `RUST_LOG`.
        source_name: &'static str,
        value: String,
        reason: String,
    },
}

/// The level names a log filter directive may be on its own.
pub const LOG_LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// Checks a log filter: comma-separated directives, each a level name or
/// `target[span{field}]=level` as tracing-subscriber's `EnvFilter` reads them. A bare
/// word that is not a level (`warning`) is refused: `EnvFilter` would take it for a
/// target name and turn every other log line off, errors included. Returns the filter
/// with the spaces around directives removed (`EnvFilter` does not allow them).
pub fn check_log_filter(value: &str, source_name: &'static str) -> Result<String, ConfigError> {
    let bad = |reason: String| ConfigError::LogLevel {
        source_name,
        value: value.to_string(),
        reason,
    };
    if value.trim().is_empty() {
        return Err(bad("empty".into()));
    }
    let mut directives = Vec::new();
    for d in value.split(',').map(str::trim) {
        if d.is_empty() {
            return Err(bad("empty directive".into()));
        }
        if !d.contains('=') && !LOG_LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d)) {
            return Err(bad(format!("{d:?} is not a level")));
        }
        directives.push(d);
    }
    let filter = directives.join(",");
    tracing_subscriber::EnvFilter::builder()
        .parse(&filter)
        .map_err(|e| bad(e.to_string()))?;
    Ok(filter)
}

/// The log filter in force: `--log-level` over the file's `log_level` over `RUST_LOG`
/// (when set and not empty) over `info`. Each is checked with [`check_log_filter`].
pub fn log_filter(
    flag: Option<&str>,
    file: Option<&str>,
    rust_log: Option<&str>,
) -> Result<String, ConfigError> {
    let (value, source_name) = match (flag, file, rust_log) {
        (Some(v), _, _) => (v, "--log-level"),
        (None, Some(v), _) => (v, "log_level"),
        (None, None, Some(v)) if !v.trim().is_empty() => (v, "RUST_LOG"),
        _ => ("info", "default"),
    };
    check_log_filter(value, source_name)
}

/// `v` (or `default`) when it lies in `lo..=hi`.
fn ranged<T: Copy + Into<u64>>(
    v: Option<T>,
    default: T,
    lo: T,
    hi: T,
    name: &'static str,
) -> Result<T, ConfigError> {
    let x = v.unwrap_or(default);
    if x.into() < lo.into() || x.into() > hi.into() {
        return Err(ConfigError::Range(name, lo.into(), hi.into()));
    }
    Ok(x)
}

/// A `--nosip-match` / `--nosip-skip` pattern, compiled once at start (the `regex`
/// crate: matching time linear in the packet, no backtracking). A pattern that does not
/// compile, or compiles too big, is refused with the crate's explanation.
fn nosip_regex(
    pattern: Option<String>,
    flag: &'static str,
) -> Result<Option<regex::bytes::Regex>, ConfigError> {
    let Some(pattern) = pattern else {
        return Ok(None);
    };
    regex::bytes::RegexBuilder::new(&pattern)
        .size_limit(1 << 20)
        .build()
        .map(Some)
        .map_err(|e| ConfigError::Regex {
            flag,
            pattern,
            reason: e.to_string(),
        })
}

/// One pattern of a user agent rule, compiled once at start.
fn ua_regex(what: &str, pattern: &Option<String>) -> Result<Option<regex::Regex>, ConfigError> {
    let Some(p) = pattern else {
        return Ok(None);
    };
    regex::RegexBuilder::new(p)
        .size_limit(1 << 20)
        .build()
        .map(Some)
        .map_err(|e| ConfigError::UaRule {
            what: what.to_string(),
            value: p.clone(),
            reason: format!("not a regular expression the regex crate takes:\n{e}"),
        })
}

/// A media type for accept-types: `*`, `type/*` or `type/subtype` (RFC 4975 §9).
fn ua_media_type(what: &str, t: &str) -> Result<String, ConfigError> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let ok = t == "*"
        || t.split_once('/')
            .is_some_and(|(a, b)| token(a) && (b == "*" || token(b)));
    if !ok {
        return Err(ConfigError::UaRule {
            what: what.to_string(),
            value: t.to_string(),
            reason: "use a media type such as text/plain, text/* or *".into(),
        });
    }
    Ok(t.to_string())
}

/// The user agent's rules: the `--ua-answer` patterns first (on the Request-URI, with
/// [`UA_DEFAULT_ACCEPT`]), then the file's `[[ua_answer]]` tables in order.
fn ua_rules(
    flags: &[String],
    tables: &[UaAnswerFile],
) -> Result<Vec<crate::ua::engine::Rule>, ConfigError> {
    let mut rules = Vec::new();
    let default: Vec<String> = UA_DEFAULT_ACCEPT.iter().map(|s| s.to_string()).collect();
    for f in flags {
        rules.push(crate::ua::engine::Rule {
            ruri: ua_regex("--ua-answer", &Some(f.clone()))?,
            from: None,
            to: None,
            accept_types: default.clone(),
            accept_wrapped_types: Vec::new(),
        });
    }
    for t in tables {
        let types = |what: &str, v: &Option<Vec<String>>, dflt: &[String]| match v {
            Some(list) => list.iter().map(|x| ua_media_type(what, x)).collect(),
            None => Ok(dflt.to_vec()),
        };
        let accept_types = types("ua_answer.accept_types", &t.accept_types, &default)?;
        if accept_types.is_empty() {
            return Err(ConfigError::UaRule {
                what: "ua_answer.accept_types".into(),
                value: "[]".into(),
                reason: "a rule must accept at least one type".into(),
            });
        }
        rules.push(crate::ua::engine::Rule {
            ruri: ua_regex("ua_answer.ruri", &t.ruri)?,
            from: ua_regex("ua_answer.from", &t.from)?,
            to: ua_regex("ua_answer.to", &t.to)?,
            accept_types,
            accept_wrapped_types: types(
                "ua_answer.accept_wrapped_types",
                &t.accept_wrapped_types,
                &[],
            )?,
        });
    }
    Ok(rules)
}

/// Reads a config file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// Parses a CPU list such as `0,2-3`.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, ConfigError> {
    let bad = || ConfigError::Cpus(s.to_string());
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if b < a {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    out.dedup();
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

fn parse_advertise(s: &str) -> Result<(String, Option<u16>), ConfigError> {
    let bad = || ConfigError::Advertise(s.to_string());
    if s.is_empty() {
        return Err(bad());
    }
    // [v6]:port, [v6], host:port, host
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        let host = format!("[{ip}]");
        return match after.strip_prefix(':') {
            Some(p) => Ok((host, Some(p.parse().map_err(|_| bad())?))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(bad()),
        };
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            Ok((h.to_string(), Some(p.parse().map_err(|_| bad())?)))
        }
        Some(_) => Err(bad()),
        None => Ok((s.to_string(), None)),
    }
}

fn seconds(v: Option<f64>, default: f64, name: &'static str) -> Result<Duration, ConfigError> {
    let v = v.unwrap_or(default);
    if !(v.is_finite() && v > 0.0) {
        return Err(ConfigError::Seconds(name));
    }
    Ok(Duration::from_secs_f64(v))
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// The resolved settings: the server configuration and the log filter.
pub struct Resolved {
    pub server: ServerConfig,
    /// A checked `EnvFilter` directive string (see [`log_filter`]).
    pub log_level: String,
    pub log_format: LogFormat,
}

/// The admin settings: `--admin` (or the default address; `off`: none), the token
/// file (read now) and the webhook URL, each checked.
fn resolve_admin(
    a: &RelayArgs,
    f: &FileConfig,
) -> Result<Option<crate::admin::AdminConfig>, ConfigError> {
    let value = a.admin.clone().or(f.admin.clone());
    let webhook = a.events_webhook.clone().or(f.events_webhook.clone());
    let (addr, explicit) = match value.as_deref().map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("off") => {
            if webhook.is_some() {
                return Err(ConfigError::WebhookWithoutAdmin);
            }
            return Ok(None);
        }
        Some(v) => (
            v.parse::<SocketAddr>()
                .map_err(|_| ConfigError::Admin(v.to_string()))?,
            true,
        ),
        None => (
            crate::admin::DEFAULT_ADDR
                .parse::<SocketAddr>()
                .map_err(|_| ConfigError::Admin(crate::admin::DEFAULT_ADDR.into()))?,
            false,
        ),
    };
    let token = match a.admin_token_file.as_ref().or(f.admin_token_file.as_ref()) {
        Some(p) => {
            let bad = |reason: String| ConfigError::TokenFile {
                path: p.clone(),
                reason,
            };
            let t = std::fs::read_to_string(p).map_err(|e| bad(e.to_string()))?;
            let t = t.trim();
            if t.is_empty() {
                return Err(bad("empty".into()));
            }
            if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad(
                    "the token must be one word (no spaces or control characters)".into(),
                ));
            }
            Some(t.to_string())
        }
        None => None,
    };
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(ConfigError::AdminToken(addr));
    }
    let webhook = match webhook {
        Some(w) => {
            // Before anything that would print the URL: it may hold a password.
            let authority = w
                .split_once("://")
                .map_or(w.as_str(), |(_, rest)| rest)
                .split(['/', '?', '#'])
                .next()
                .unwrap_or("");
            if authority.contains('@') {
                return Err(ConfigError::WebhookUserinfo);
            }
            let u: hyper::Uri = w.parse().map_err(|_| ConfigError::Webhook(w.clone()))?;
            if u.scheme_str() != Some("http") || u.authority().is_none() {
                return Err(ConfigError::Webhook(w));
            }
            Some(u)
        }
        None => None,
    };
    let mut admin = crate::admin::AdminConfig::new(addr);
    admin.explicit = explicit;
    admin.token = token;
    admin.token_file = a
        .admin_token_file
        .clone()
        .or(f.admin_token_file.clone())
        .filter(|_| admin.token.is_some());
    admin.webhook = webhook;
    Ok(Some(admin))
}

/// Merges flags over the file over defaults.
pub fn resolve(a: &RelayArgs, f: FileConfig) -> Result<Resolved, ConfigError> {
    let admin = resolve_admin(a, &f)?;
    // Like `off` for --admin, the words are case-insensitive.
    let log_format = match a.log_format.as_deref().or(f.log_format.as_deref()) {
        None => LogFormat::Text,
        Some(v) if v.trim().eq_ignore_ascii_case("text") => LogFormat::Text,
        Some(v) if v.trim().eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(v) => return Err(ConfigError::LogFormat(v.to_string())),
    };
    let listen_tls = if !a.listen_tls.is_empty() {
        a.listen_tls.clone()
    } else {
        f.listen_tls.unwrap_or_default()
    };
    // Plain TCP on 0.0.0.0:2855 unless some listener is configured.
    let listen = if !a.listen.is_empty() {
        a.listen.clone()
    } else {
        f.listen.unwrap_or_else(|| {
            if listen_tls.is_empty() {
                vec![SocketAddr::from(([0, 0, 0, 0], crate::conn::MSRP_PORT))]
            } else {
                Vec::new()
            }
        })
    };
    let mut s = ServerConfig::new(SocketAddr::from(([0, 0, 0, 0], crate::conn::MSRP_PORT)));
    s.listen = listen;
    s.listen_tls = listen_tls;
    s.tls.cert = a.cert.clone().or(f.cert);
    s.tls.key = a.key.clone().or(f.key);
    s.tls.ca = a.ca.clone().or(f.ca);
    if !s.listen_tls.is_empty() && (s.tls.cert.is_none() || s.tls.key.is_none()) {
        return Err(ConfigError::TlsWithoutCert);
    }
    let cpus = a.cpus.clone().or(f.cpus);
    let cores = a.cores.or(f.cores);
    s.cpus = match (cpus, cores) {
        (Some(list), _) => parse_cpus(&list)?,
        (None, Some(0)) => return Err(ConfigError::Cores),
        (None, Some(n)) => (0..n).collect(),
        (None, None) => s.cpus,
    };
    s.pin = !(a.no_pin || f.no_pin.unwrap_or(false));
    if let Some(adv) = a.advertise.clone().or(f.advertise) {
        let (h, p) = parse_advertise(&adv)?;
        s.advertise_host = Some(h);
        s.advertise_port = p;
    }
    s.aliases = if a.alias.is_empty() {
        f.alias.unwrap_or_default()
    } else {
        a.alias.clone()
    };
    s.users_file = a.users.clone().or(f.users);
    let mut r = RelayConfig::new("localhost", crate::conn::MSRP_PORT);
    r.realm = a
        .realm
        .clone()
        .or(f.realm)
        .or_else(|| s.advertise_host.clone())
        .unwrap_or_else(default_realm);
    r.expires_default = a.expires_default.or(f.expires_default).unwrap_or(600);
    r.expires_min = a.expires_min.or(f.expires_min).unwrap_or(60);
    r.expires_max = a.expires_max.or(f.expires_max).unwrap_or(3600);
    if !(r.expires_min <= r.expires_default && r.expires_default <= r.expires_max) {
        return Err(ConfigError::Expires(
            r.expires_min,
            r.expires_default,
            r.expires_max,
        ));
    }
    r.txn_timeout = seconds(a.txn_timeout.or(f.txn_timeout), 30.0, "txn-timeout")?;
    r.probation = seconds(a.probation.or(f.probation), 30.0, "probation")?;
    r.idle_timeout = seconds(a.idle_timeout.or(f.idle_timeout), 3600.0, "idle-timeout")?;
    r.nonce_lifetime = seconds(
        a.nonce_lifetime.or(f.nonce_lifetime),
        30.0,
        "nonce-lifetime",
    )?;
    r.block_unknown_methods = a.block_unknown_methods || f.block_unknown_methods.unwrap_or(false);
    r.max_path_uris = ranged(
        a.max_path_uris.or(f.max_path_uris).map(|n| n as u64),
        crate::codec::header::MAX_PATH_URIS as u64,
        2,
        crate::codec::header::MAX_PATH_URIS as u64,
        "max-path-uris",
    )? as usize;
    r.max_auth_failures = ranged(
        a.max_auth_failures.or(f.max_auth_failures),
        3,
        1,
        1000,
        "max-auth-failures",
    )?;
    s.relay = r;
    s.high_water = a.high_water.or(f.high_water).unwrap_or(1 << 20).max(4096);
    s.max_head = a
        .max_head
        .or(f.max_head)
        .unwrap_or(16 * 1024)
        .clamp(1024, 65535);
    s.max_non_send_body = ranged(
        a.max_non_send_body.or(f.max_non_send_body),
        10240,
        0,
        10240,
        "max-non-send-body",
    )?;
    s.max_connections = ranged(
        a.max_connections.or(f.max_connections).map(|n| n as u64),
        100_000,
        1,
        1 << 24,
        "max-connections",
    )? as usize;
    s.max_connections_per_ip = ranged(
        a.max_connections_per_ip
            .or(f.max_connections_per_ip)
            .map(|n| n as u64),
        1_000,
        1,
        1 << 24,
        "max-connections-per-ip",
    )? as usize;
    s.max_queue = a
        .max_queue
        .or(f.max_queue)
        .unwrap_or(16 << 20)
        .max(s.high_water);
    s.head_timeout = seconds(a.head_timeout.or(f.head_timeout), 10.0, "head-timeout")?;
    s.body_timeout = seconds(a.body_timeout.or(f.body_timeout), 30.0, "body-timeout")?;
    s.tls_handshake_timeout = seconds(
        a.tls_handshake_timeout.or(f.tls_handshake_timeout),
        10.0,
        "tls-handshake-timeout",
    )?;
    s.connect_timeout = seconds(
        a.connect_timeout.or(f.connect_timeout),
        10.0,
        "connect-timeout",
    )?;
    s.driver = match a.driver.clone().or(f.driver).as_deref() {
        None | Some("auto") => Driver::Auto,
        Some("io-uring") | Some("iouring") | Some("io_uring") => Driver::IoUring,
        Some("epoll") | Some("legacy") => Driver::Legacy,
        Some(d) => return Err(ConfigError::Driver(d.to_string())),
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    let log_level = log_filter(
        a.log_level.as_deref(),
        f.log_level.as_deref(),
        rust_log.as_deref(),
    )?;
    s.sip_reject = ranged(a.sip_reject.or(f.sip_reject), 404, 300, 699, "sip-reject")?;
    s.sip_udp = !(a.no_sip_udp || f.no_sip_udp.unwrap_or(false));
    s.nosip.min_bytes = ranged(
        a.nosip_min_bytes.or(f.nosip_min_bytes),
        32,
        0,
        65_536,
        "nosip-min-bytes",
    )? as usize;
    s.nosip.matches = nosip_regex(a.nosip_match.clone().or(f.nosip_match), "--nosip-match")?;
    s.nosip.skip = nosip_regex(a.nosip_skip.clone().or(f.nosip_skip), "--nosip-skip")?;
    let t1 = ranged(a.sip_t1_ms.or(f.sip_t1_ms), 500, 1, 10_000, "sip-t1-ms")?;
    let t2 = ranged(a.sip_t2_ms.or(f.sip_t2_ms), 4000, 1, 60_000, "sip-t2-ms")?;
    let t4 = ranged(a.sip_t4_ms.or(f.sip_t4_ms), 5000, 1, 60_000, "sip-t4-ms")?;
    if t2 < t1 {
        return Err(ConfigError::SipT2BelowT1 { t1, t2 });
    }
    s.sip_t1 = Duration::from_millis(t1);
    s.sip_t2 = Duration::from_millis(t2);
    s.sip_t4 = Duration::from_millis(t4);
    s.sip_outbound_proxy = a.sip_outbound_proxy.clone().or(f.sip_outbound_proxy);
    if let Some(uri) = &s.sip_outbound_proxy {
        crate::sip::outbound::check_uri(uri).map_err(|reason| ConfigError::SipProxy {
            uri: uri.clone(),
            reason,
        })?;
    }
    s.sip_credentials = a.sip_credentials.clone().or(f.sip_credentials);
    s.ua_rules = ua_rules(&a.ua_answer, f.ua_answer.as_deref().unwrap_or_default())?;
    s.ua_max_duration = match ranged(
        a.ua_max_duration.or(f.ua_max_duration),
        12 * 3600,
        0,
        365 * 24 * 3600,
        "ua-max-duration",
    )? {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    };
    s.ua_max_message = ranged(
        a.ua_max_message.or(f.ua_max_message),
        16 << 20,
        1,
        1 << 30,
        "ua-max-message",
    )?;
    s.ua_relay = ua_relay(
        a.ua_relay.clone().or(f.ua_relay),
        a.ua_relay_credentials.clone().or(f.ua_relay_credentials),
    )?;
    s.admin = admin;
    Ok(Resolved {
        server: s,
        log_level,
        log_format,
    })
}

/// The realm used when none is configured: the host name.
pub fn default_realm() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "msrpd".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0,2-3").unwrap(), vec![0, 2, 3]);
        assert_eq!(parse_cpus("1").unwrap(), vec![1]);
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("a").is_err());
        assert!(parse_cpus("").is_err());
    }

    #[test]
    fn advertise_forms() {
        assert_eq!(
            parse_advertise("r.example.com").unwrap(),
            ("r.example.com".into(), None)
        );
        assert_eq!(
            parse_advertise("r.example.com:2856").unwrap(),
            ("r.example.com".into(), Some(2856))
        );
        assert_eq!(
            parse_advertise("[::1]:9").unwrap(),
            ("[::1]".into(), Some(9))
        );
        assert!(parse_advertise("a:b:c").is_err());
        assert!(parse_advertise("h:x").is_err());
    }

    #[test]
    fn flags_win_over_file() {
        let f: FileConfig = toml::from_str(
            "listen = [\"127.0.0.1:7000\"]\nrealm = \"file\"\nexpires_max = 100\nexpires_default = 90\ncores = 1\n",
        )
        .unwrap();
        let a = RelayArgs {
            realm: Some("flag".into()),
            ..RelayArgs::default()
        };
        let r = resolve(&a, f).unwrap();
        assert_eq!(r.server.relay.realm, "flag");
        assert_eq!(r.server.relay.expires_max, 100);
        assert_eq!(r.server.listen, vec!["127.0.0.1:7000".parse().unwrap()]);
        assert_eq!(r.server.cpus, vec![0]);
        assert!(toml::from_str::<FileConfig>("nope = 1").is_err());
    }

    #[test]
    fn tls_settings() {
        let f: FileConfig = toml::from_str(
            "listen_tls = [\"127.0.0.1:7001\"]\ncert = \"file.pem\"\nkey = \"file.key\"\n",
        )
        .unwrap();
        let a = RelayArgs {
            cert: Some("flag.pem".into()),
            ..RelayArgs::default()
        };
        let r = resolve(&a, f).unwrap();
        assert_eq!(r.server.listen_tls, vec!["127.0.0.1:7001".parse().unwrap()]);
        assert!(
            r.server.listen.is_empty(),
            "TLS only: no default TCP listener"
        );
        assert_eq!(r.server.tls.cert, Some(PathBuf::from("flag.pem")));
        assert_eq!(r.server.tls.key, Some(PathBuf::from("file.key")));
        let a = RelayArgs {
            listen_tls: vec!["127.0.0.1:7001".parse().unwrap()],
            ..RelayArgs::default()
        };
        assert!(matches!(
            resolve(&a, FileConfig::default()),
            Err(ConfigError::TlsWithoutCert)
        ));
    }

    #[test]
    fn log_filters_are_checked_and_ranked() {
        for ok in [
            "error",
            "WARN",
            "info",
            "debug",
            "trace",
            "off",
            "msrpd=debug,info",
            " msrpd::server=trace , warn ",
            "msrpd[conn]=debug",
        ] {
            check_log_filter(ok, "--log-level").unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        assert_eq!(
            check_log_filter(" msrpd::server=trace , warn ", "x").unwrap(),
            "msrpd::server=trace,warn"
        );
        for bad in [
            "warning",
            "",
            " ",
            "msrpd",
            "info,",
            "msrpd=loud",
            "verbose,info",
        ] {
            let e = check_log_filter(bad, "--log-level").unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with("bad --log-level "), "{msg}");
            assert!(
                msg.contains("error, warn, info, debug, trace, off"),
                "{msg}"
            );
        }
        // Flag over file over RUST_LOG over info.
        assert_eq!(
            log_filter(Some("warn"), Some("debug"), Some("trace")).unwrap(),
            "warn"
        );
        assert_eq!(
            log_filter(None, Some("debug"), Some("trace")).unwrap(),
            "debug"
        );
        assert_eq!(log_filter(None, None, Some("trace")).unwrap(), "trace");
        assert_eq!(log_filter(None, None, Some("")).unwrap(), "info");
        assert_eq!(log_filter(None, None, None).unwrap(), "info");
        let e = log_filter(None, None, Some("warning")).unwrap_err();
        assert!(e.to_string().starts_with("bad RUST_LOG \"warning\""), "{e}");
        let e = log_filter(None, Some("loud"), None).unwrap_err();
        assert!(e.to_string().starts_with("bad log_level \"loud\""), "{e}");
        // An explicit, valid level wins over a bad RUST_LOG.
        assert_eq!(
            log_filter(Some("info"), None, Some("warning")).unwrap(),
            "info"
        );
    }

    #[test]
    fn sip_settings() {
        let d = resolve(&RelayArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(d.server.sip_t1, Duration::from_millis(500));
        assert_eq!(d.server.sip_t2, Duration::from_secs(4));
        assert_eq!(d.server.sip_t4, Duration::from_secs(5));
        assert!(d.server.sip_outbound_proxy.is_none() && d.server.sip_credentials.is_none());
        let f: FileConfig = toml::from_str(
            "sip_t1_ms = 50\nsip_t2_ms = 400\nsip_t4_ms = 100\nsip_outbound_proxy = \"sip:p.example\"\nsip_credentials = \"/etc/c\"\n",
        )
        .unwrap();
        let a = RelayArgs {
            sip_t1_ms: Some(20),
            ..RelayArgs::default()
        };
        let r = resolve(&a, f).unwrap().server;
        assert_eq!(r.sip_t1, Duration::from_millis(20));
        assert_eq!(r.sip_t2, Duration::from_millis(400));
        assert_eq!(r.sip_t4, Duration::from_millis(100));
        assert_eq!(r.sip_outbound_proxy.as_deref(), Some("sip:p.example"));
        assert_eq!(r.sip_credentials, Some(PathBuf::from("/etc/c")));
        for (text, want) in [
            ("sip_t1_ms = 0", "sip-t1-ms must be between 1 and 10000"),
            (
                "sip_t2_ms = 100000",
                "sip-t2-ms must be between 1 and 60000",
            ),
            (
                "sip_t1_ms = 900\nsip_t2_ms = 800",
                "must be at least sip-t1-ms",
            ),
            ("sip_outbound_proxy = \"tel:1\"", "bad --sip-outbound-proxy"),
        ] {
            let f: FileConfig = toml::from_str(text).unwrap();
            let Err(e) = resolve(&RelayArgs::default(), f) else {
                panic!("{text} accepted");
            };
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn nosip_settings() {
        let d = resolve(&RelayArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(d.server.nosip.min_bytes, 32);
        assert!(d.server.nosip.matches.is_none() && d.server.nosip.skip.is_none());
        let f: FileConfig =
            toml::from_str("nosip_min_bytes = 8\nnosip_match = \"^resume\"\n").unwrap();
        let a = RelayArgs {
            nosip_skip: Some("(?i)ignore".into()),
            ..RelayArgs::default()
        };
        let r = resolve(&a, f).unwrap();
        assert_eq!(r.server.nosip.min_bytes, 8);
        assert!(r.server.nosip.matches.unwrap().is_match(b"resume 1"));
        assert!(r.server.nosip.skip.unwrap().is_match(b"IGNORE"));
        let bad = RelayArgs {
            nosip_match: Some("[a-".into()),
            ..RelayArgs::default()
        };
        let Err(e) = resolve(&bad, FileConfig::default()) else {
            panic!("a bad regex accepted");
        };
        let e = e.to_string();
        assert!(e.starts_with("bad --nosip-match \"[a-\""), "{e}");
    }

    #[test]
    fn limits_from_file_and_flags() {
        let d = resolve(&RelayArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(d.server.max_non_send_body, 10240);
        assert_eq!(d.server.relay.max_path_uris, 32);
        assert_eq!(d.server.max_connections, 100_000);
        assert_eq!(d.server.max_connections_per_ip, 1_000);
        assert_eq!(d.server.relay.max_auth_failures, 3);
        assert_eq!(d.server.max_queue, 16 << 20);
        assert_eq!(d.server.head_timeout, Duration::from_secs(10));
        assert_eq!(d.server.tls_handshake_timeout, Duration::from_secs(10));
        assert_eq!(d.server.body_timeout, Duration::from_secs(30));
        let f: FileConfig = toml::from_str(
            "max_non_send_body = 100\nmax_path_uris = 4\nmax_connections = 9\nmax_connections_per_ip = 2\nmax_auth_failures = 5\nmax_queue = 2000000\nhead_timeout = 1.5\ntls_handshake_timeout = 2.5\nbody_timeout = 4\n",
        )
        .unwrap();
        let a = RelayArgs {
            max_connections_per_ip: Some(3),
            ..RelayArgs::default()
        };
        let r = resolve(&a, f).unwrap();
        assert_eq!(r.server.max_non_send_body, 100);
        assert_eq!(r.server.relay.max_path_uris, 4);
        assert_eq!(r.server.max_connections, 9);
        assert_eq!(r.server.max_connections_per_ip, 3);
        assert_eq!(r.server.relay.max_auth_failures, 5);
        assert_eq!(r.server.max_queue, 2_000_000);
        assert_eq!(r.server.head_timeout, Duration::from_millis(1500));
        assert_eq!(r.server.tls_handshake_timeout, Duration::from_millis(2500));
        assert_eq!(r.server.body_timeout, Duration::from_secs(4));
        for bad in [
            "max_non_send_body = 10241",
            "max_path_uris = 33",
            "max_path_uris = 1",
            "max_connections = 0",
            "head_timeout = 0",
            "tls_handshake_timeout = -1",
            "body_timeout = 0",
            "sip_reject = 200",
            "sip_reject = 700",
            "nosip_min_bytes = 65537",
            "nosip_match = \"(unclosed\"",
            "nosip_skip = \"a{99999}{99999}\"",
            "ua_max_message = 0",
            "ua_answer = [{ ruri = \"(unclosed\" }]",
            "ua_answer = [{ from = \"[a-\" }]",
            "ua_answer = [{ accept_types = [\"text\"] }]",
            "ua_answer = [{ accept_types = [\"text/plain;x\"] }]",
            "ua_answer = [{ accept_types = [] }]",
        ] {
            let f: FileConfig = toml::from_str(bad).unwrap();
            assert!(resolve(&RelayArgs::default(), f).is_err(), "{bad}");
        }
    }

    #[test]
    fn user_agent_rules() {
        let d = resolve(&RelayArgs::default(), FileConfig::default()).unwrap();
        assert!(
            d.server.ua_rules.is_empty(),
            "the user agent answers nothing by default"
        );
        assert_eq!(d.server.ua_max_duration, Some(Duration::from_secs(43_200)));
        let f: FileConfig = toml::from_str(
            "ua_max_duration = 0\n[[ua_answer]]\nto = \"bob@\"\naccept_types = [\"text/*\", \"message/cpim\"]\naccept_wrapped_types = [\"text/plain\"]\n",
        )
        .unwrap();
        let a = RelayArgs {
            ua_answer: vec!["^sip:chat@".into()],
            ..RelayArgs::default()
        };
        let r = resolve(&a, f).unwrap();
        assert_eq!(r.server.ua_max_duration, None);
        let rules = &r.server.ua_rules;
        assert_eq!(rules.len(), 2, "the flag's rule first, then the table's");
        assert!(
            rules[0]
                .ruri
                .as_ref()
                .unwrap()
                .is_match("sip:chat@example.com")
        );
        assert_eq!(rules[0].accept_types, UA_DEFAULT_ACCEPT);
        assert!(rules[1].ruri.is_none());
        assert!(
            rules[1]
                .to
                .as_ref()
                .unwrap()
                .is_match("<sip:bob@example.com>")
        );
        assert_eq!(rules[1].accept_types, ["text/*", "message/cpim"]);
        assert_eq!(rules[1].accept_wrapped_types, ["text/plain"]);
        let e = resolve(
            &RelayArgs {
                ua_answer: vec!["(".into()],
                ..RelayArgs::default()
            },
            FileConfig::default(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.starts_with("bad --ua-answer \"(\""), "{e}");
    }
}
