//! The MSRP wire format (RFC 4975 §7 and §9; RFC 4976 §7 for AUTH and its headers).
//!
//! Bytes in, borrowed views out. Nothing here touches sockets, threads or the clock, and
//! the hot path does not allocate: the [`Scanner`] splits a connection's read buffer into
//! a head and zero-copy body pieces, [`Head`] types the header block in place, [`Uri`]
//! parses and compares MSRP URIs, and [`encode`] writes frames back out.

mod chars;
pub mod encode;
pub mod head;
pub mod header;
pub mod scanner;
pub mod uri;

pub use chars::hex_u64;
pub use head::{Head, HeadError, Header, Method, StartLine};
pub use header::{
    AuthInfo, ByteRange, Challenge, ContentType, Credentials, DigestParams, FailureReport,
    HeaderKind, Path, PathCache, Status, SuccessReport, ValueError,
};
pub use scanner::{Event, Flag, RawHead, ScanError, ScanLimits, Scanner};
pub use uri::{Host, Uri, UriError};
