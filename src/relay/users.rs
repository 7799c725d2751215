//! The user database for AUTH (RFC 4976 §6.3): who may use the relay, and with which
//! password, kept as an htdigest file.
//!
//! Each line is `user:realm:HA1`, where HA1 is `H(user ":" realm ":" password)` in hex
//! (RFC 2617 §3.2.2.2; RFC 7616 §3.4.2): 32 hex digits for MD5, 64 for SHA-256. A user may
//! have one line of each per realm, so that a client can answer either challenge
//! (RFC 7616 §3.7). Lines starting with `#` and blank lines are ignored. The realm is the
//! text between the first and the last `:` of a line, so it may itself contain `:`.
//!
//! [`with_password`] backs `msrpd passwd`, in the manner of Apache's `htdigest`.
//!
//! Sans-I/O like the rest of `relay/`: this module parses and edits the text of a users
//! file; reading and writing the file itself is `crate::server::users_file`'s job.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::auth::{Algorithm, Hex};

/// A stored `H(A1)` (RFC 2617 §3.2.2.2): the digest of `user:realm:password`.
///
/// It is password-equivalent, so its `Debug` output does not show it.
#[derive(Clone, Copy)]
pub struct Ha1 {
    algorithm: Algorithm,
    /// The digest; MD5 uses the first 16 bytes.
    bytes: [u8; 32],
}

impl Ha1 {
    /// Computes `H(user ":" realm ":" password)` (RFC 2617 §3.2.2.2, RFC 7616 §3.4.2).
    pub fn compute(algorithm: Algorithm, user: &str, realm: &str, password: &str) -> Ha1 {
        let bytes = algorithm.hash(&[
            user.as_bytes(),
            b":",
            realm.as_bytes(),
            b":",
            password.as_bytes(),
        ]);
        Ha1 { algorithm, bytes }
    }

    /// Reads an HA1 written in hex (either case); the length tells the algorithm:
    /// 32 digits for MD5, 64 for SHA-256.
    pub fn from_hex(s: &str) -> Option<Ha1> {
        let algorithm = match s.len() {
            32 => Algorithm::Md5,
            64 => Algorithm::Sha256,
            _ => return None,
        };
        let mut bytes = [0u8; 32];
        let out = bytes.get_mut(..algorithm.output_len())?;
        hex::decode_to_slice(s, out).ok()?;
        Some(Ha1 { algorithm, bytes })
    }

    /// The hash function this HA1 was made with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw digest (16 bytes for MD5, 32 for SHA-256).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes
            .get(..self.algorithm.output_len())
            .unwrap_or(&self.bytes)
    }

    /// The digest in lowercase hex, as digest computations and the users file use it.
    pub fn to_hex(&self) -> String {
        self.hex().as_str().to_owned()
    }

    pub(crate) fn hex(&self) -> Hex {
        Hex::encode(self.as_bytes())
    }
}

impl fmt::Debug for Ha1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ha1")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// Why one line of a users file was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("expected user:realm:HA1")]
    MissingField,
    #[error("empty user name")]
    EmptyUser,
    #[error("HA1 is not 32 (MD5) or 64 (SHA-256) hex digits")]
    BadHa1,
    #[error("a second line for the same user, realm and algorithm")]
    Duplicate,
}

/// Errors reading, parsing or writing a users file.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read or written.
    #[error("users file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line does not follow `user:realm:HA1` (`line` counts from 1).
    #[error("{}line {line}: {reason}", path.as_ref().map(|p| format!("users file {}: ", p.display())).unwrap_or_default())]
    Line {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        line: usize,
        reason: LineError,
    },
    /// The directory of the file could not be created or written in.
    #[error("users file {}: cannot {action} directory {}: {source}", path.display(), dir.display())]
    Dir {
        path: PathBuf,
        dir: PathBuf,
        /// What was tried, e.g. "create" or "create a temporary file in".
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// A user name or realm that cannot be written to the file.
    #[error("cannot store this {0}: it is empty or holds a ':' or a control character")]
    InvalidName(&'static str),
}

impl UsersError {
    /// An I/O error on the users file at `path`.
    pub fn io(path: &Path, source: io::Error) -> UsersError {
        UsersError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The same error, naming `path` as the file its line came from.
    pub fn in_file(self, path: &Path) -> UsersError {
        match self {
            UsersError::Line { line, reason, .. } => UsersError::Line {
                path: Some(path.to_owned()),
                line,
                reason,
            },
            other => other,
        }
    }
}

/// The HA1s of one user in one realm.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    md5: Option<Ha1>,
    sha256: Option<Ha1>,
}

impl Entry {
    fn slot(&mut self, algorithm: Algorithm) -> &mut Option<Ha1> {
        match algorithm {
            Algorithm::Md5 => &mut self.md5,
            Algorithm::Sha256 => &mut self.sha256,
        }
    }
}

/// The users allowed to AUTH (RFC 4976 §6.3), loaded from an htdigest file.
///
/// Read-only once loaded; a reload builds a new one (see
/// [`Authenticator::set_users`](super::auth::Authenticator::set_users)).
#[derive(Debug, Clone, Default)]
pub struct Users {
    /// realm -> user -> HA1s.
    realms: HashMap<String, HashMap<String, Entry>>,
    len: usize,
}

/// One significant line: `(user, realm, HA1)`, or `None` for a comment or blank line.
fn parse_line(line: &str) -> Result<Option<(&str, &str, Ha1)>, LineError> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (user, rest) = line.split_once(':').ok_or(LineError::MissingField)?;
    let (realm, ha1) = rest.rsplit_once(':').ok_or(LineError::MissingField)?;
    if user.is_empty() {
        return Err(LineError::EmptyUser);
    }
    let ha1 = Ha1::from_hex(ha1).ok_or(LineError::BadHa1)?;
    Ok(Some((user, realm, ha1)))
}

impl Users {
    /// Parses the text of a users file. Errors name the line (counted from 1).
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let mut users = Users::default();
        for (i, line) in text.lines().enumerate() {
            let err = |reason| UsersError::Line {
                path: None,
                line: i + 1,
                reason,
            };
            let Some((user, realm, ha1)) = parse_line(line).map_err(err)? else {
                continue;
            };
            let by_user = users.realms.entry(realm.to_owned()).or_default();
            let entry = match by_user.get_mut(user) {
                Some(e) => e,
                None => {
                    users.len += 1;
                    by_user.entry(user.to_owned()).or_default()
                }
            };
            let slot = entry.slot(ha1.algorithm());
            if slot.is_some() {
                return Err(err(LineError::Duplicate));
            }
            *slot = Some(ha1);
        }
        Ok(users)
    }

    /// The HA1 of `user` in `realm` for `algorithm`, if the file has that line.
    /// User names and realms compare exactly (case-sensitively).
    pub fn lookup(&self, user: &str, realm: &str, algorithm: Algorithm) -> Option<Ha1> {
        let entry = self.realms.get(realm)?.get(user)?;
        match algorithm {
            Algorithm::Md5 => entry.md5,
            Algorithm::Sha256 => entry.sha256,
        }
    }

    /// The number of distinct (user, realm) pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when the file named no user.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The realms the file names, each with its number of users, in name order.
    pub fn realms(&self) -> BTreeMap<&str, usize> {
        self.realms
            .iter()
            .map(|(r, users)| (r.as_str(), users.len()))
            .collect()
    }

    /// The number of users with a password in `realm` (compared exactly, as
    /// [`Users::lookup`] does).
    pub fn count_in_realm(&self, realm: &str) -> usize {
        self.realms.get(realm).map_or(0, HashMap::len)
    }

    /// What to tell the operator when no user can AUTH because none is in `realm`, the
    /// realm the relay challenges with (RFC 4976 §5.1): every digest would then fail
    /// as "unknown user". `None` when some user is in `realm` or the file is empty.
    pub fn realm_mismatch(&self, realm: &str) -> Option<String> {
        if self.is_empty() || self.count_in_realm(realm) > 0 {
            return None;
        }
        let listed: Vec<String> = self
            .realms()
            .into_iter()
            .map(|(r, n)| format!("{r:?} ({n})"))
            .collect();
        Some(format!(
            "users file has {} user{}, none in realm {realm:?} (realms in the file: {}); \
             set --realm to one of them or add users with `msrpd passwd --realm {realm}`",
            self.len,
            if self.len == 1 { "" } else { "s" },
            listed.join(", ")
        ))
    }
}

/// `true` when `s` can stand in a users-file line as a user (`colon_ok` false) or realm.
fn storable(s: &str, colon_ok: bool) -> bool {
    !s.is_empty() && s.trim() == s && !s.chars().any(|c| c.is_control() || (c == ':' && !colon_ok))
}

/// The text of a users file with `user`'s password in `realm` set (the `msrpd passwd`
/// command, like `htdigest`); `old` is the file's text so far (empty for a new file).
///
/// Replaces any lines the user had for that realm with two new ones, an MD5 and a
/// SHA-256 HA1 (RFC 7616 §3.7 lets a client pick either), and keeps every other line,
/// comments included, as it was. An `old` text that does not parse is refused, and the
/// error names its line. Writing the result is `crate::server::users_file::set_password`.
pub fn with_password(
    old: &str,
    realm: &str,
    user: &str,
    password: &str,
) -> Result<String, UsersError> {
    if !storable(user, false) {
        return Err(UsersError::InvalidName("user name"));
    }
    if !storable(realm, true) {
        return Err(UsersError::InvalidName("realm"));
    }
    Users::parse(old)?;
    let new_lines = [Algorithm::Md5, Algorithm::Sha256]
        .map(|a| {
            format!(
                "{user}:{realm}:{}\n",
                Ha1::compute(a, user, realm, password).hex().as_str()
            )
        })
        .concat();
    let mut out = String::with_capacity(old.len() + new_lines.len() + 1);
    let mut placed = false;
    for line in old.split_inclusive('\n') {
        let same = matches!(parse_line(line), Ok(Some((u, r, _))) if u == user && r == realm);
        if !same {
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push('\n');
            }
        } else if !placed {
            out.push_str(&new_lines);
            placed = true;
        }
    }
    if !placed {
        out.push_str(&new_lines);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5_ALICE: &str = "0123456789abcdef0123456789abcdef";
    const SHA_ALICE: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn parses_lines_comments_and_both_algorithms() {
        let text = format!(
            "# users\n\n  # indented comment\r\nalice:relay.example.com:{MD5_ALICE}\r\n\
             alice:relay.example.com:{SHA_ALICE}\nbob:other:realm:with:colons:{}\n\
             alice:elsewhere:{}\n",
            MD5_ALICE.to_uppercase(),
            MD5_ALICE
        );
        let u = Users::parse(&text).unwrap();
        assert_eq!(u.len(), 3);
        assert!(!u.is_empty());
        let md5 = u
            .lookup("alice", "relay.example.com", Algorithm::Md5)
            .unwrap();
        assert_eq!(md5.algorithm(), Algorithm::Md5);
        assert_eq!(md5.to_hex(), MD5_ALICE);
        assert_eq!(md5.as_bytes().len(), 16);
        let sha = u
            .lookup("alice", "relay.example.com", Algorithm::Sha256)
            .unwrap();
        assert_eq!(sha.to_hex(), SHA_ALICE);
        assert_eq!(sha.as_bytes().len(), 32);
        let bob = u
            .lookup("bob", "other:realm:with:colons", Algorithm::Md5)
            .unwrap();
        assert_eq!(bob.to_hex(), MD5_ALICE);
        assert!(u.lookup("bob", "other", Algorithm::Md5).is_none());
        assert!(
            u.lookup("bob", "other:realm:with:colons", Algorithm::Sha256)
                .is_none()
        );
        assert!(
            u.lookup("Alice", "relay.example.com", Algorithm::Md5)
                .is_none()
        );
        assert!(u.lookup("alice", "elsewhere", Algorithm::Sha256).is_none());
        assert!(Users::parse("").unwrap().is_empty());
        assert!(!format!("{md5:?}").contains(MD5_ALICE));
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, LineError)] = &[
            ("alice", 1, LineError::MissingField),
            ("# c\n\nalice:realm", 3, LineError::MissingField),
            (
                ":realm:0123456789abcdef0123456789abcdef",
                1,
                LineError::EmptyUser,
            ),
            ("a:r:0123", 1, LineError::BadHa1),
            ("a:r:0123456789abcdef0123456789abcdeg", 1, LineError::BadHa1),
            (
                "a:r:0123456789abcdef0123456789abcdef0",
                1,
                LineError::BadHa1,
            ),
            ("a:r:", 1, LineError::BadHa1),
            (
                "a:r:0123456789abcdef0123456789abcdef\nb:r:0123456789abcdef0123456789abcdef\n\
                 a:r:00000000000000000000000000000000",
                3,
                LineError::Duplicate,
            ),
        ];
        for &(text, line, reason) in cases {
            match Users::parse(text) {
                Err(UsersError::Line {
                    path: None,
                    line: l,
                    reason: r,
                }) => assert_eq!((l, r), (line, reason), "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        let e = Users::parse("x\n").unwrap_err();
        assert_eq!(e.to_string(), "line 1: expected user:realm:HA1");
        // Non-ASCII must not trip the hex decoder into a panic.
        assert!(Users::parse("a:r:éééééééééééééééé\n").is_err());
    }

    #[test]
    fn with_password_round_trip() {
        let text = with_password("", "relay.example.com", "alice", "secret").unwrap();
        let u = Users::parse(&text).unwrap();
        assert_eq!(u.len(), 1);
        for a in [Algorithm::Md5, Algorithm::Sha256] {
            let got = u.lookup("alice", "relay.example.com", a).unwrap();
            let want = Ha1::compute(a, "alice", "relay.example.com", "secret");
            assert_eq!(got.as_bytes(), want.as_bytes());
        }
        // Known MD5 of "alice:relay.example.com:secret", computed independently.
        let md5 = u
            .lookup("alice", "relay.example.com", Algorithm::Md5)
            .unwrap();
        {
            use md5::Digest;
            let want = hex::encode(md5::Md5::digest(b"alice:relay.example.com:secret"));
            assert_eq!(md5.to_hex(), want);
        }

        // Other users, other realms and comments survive; alice's lines are replaced
        // where they stood.
        let edited = format!(
            "# managed by msrpd passwd\n{text}bob:relay.example.com:{MD5_ALICE}\n\
             alice:other.example.com:{MD5_ALICE}"
        );
        let text = with_password(&edited, "relay.example.com", "alice", "n3w").unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[0], "# managed by msrpd passwd");
        assert!(lines[1].starts_with("alice:relay.example.com:"));
        assert_eq!(lines[1].len(), "alice:relay.example.com:".len() + 32);
        assert!(lines[2].starts_with("alice:relay.example.com:"));
        assert_eq!(lines[2].len(), "alice:relay.example.com:".len() + 64);
        assert_eq!(lines[3], format!("bob:relay.example.com:{MD5_ALICE}"));
        assert_eq!(lines[4], format!("alice:other.example.com:{MD5_ALICE}"));
        assert!(text.ends_with('\n'));
        let u = Users::parse(&text).unwrap();
        assert_eq!(u.len(), 3);
        let got = u
            .lookup("alice", "relay.example.com", Algorithm::Sha256)
            .unwrap();
        let want = Ha1::compute(Algorithm::Sha256, "alice", "relay.example.com", "n3w");
        assert_eq!(got.as_bytes(), want.as_bytes());
    }

    #[test]
    fn with_password_refuses_bad_names_and_bad_text() {
        for user in ["", "a:b", "a\nb", " alice"] {
            assert!(matches!(
                with_password("", "r", user, "pw"),
                Err(UsersError::InvalidName("user name"))
            ));
        }
        assert!(matches!(
            with_password("", "r\n", "alice", "pw"),
            Err(UsersError::InvalidName("realm"))
        ));
        let e = with_password(
            "ok:r:0123456789abcdef0123456789abcdef\nbroken\n",
            "r",
            "alice",
            "pw",
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e = e.in_file(Path::new("/etc/msrpd/users"));
        assert_eq!(
            e.to_string(),
            "users file /etc/msrpd/users: line 2: expected user:realm:HA1"
        );
    }

    #[test]
    fn realms_and_the_realm_mismatch_warning() {
        let text = format!(
            "alice:a.example:{MD5_ALICE}\nalice:a.example:{SHA_ALICE}\n\
             bob:a.example:{MD5_ALICE}\ncarol:b:c:{MD5_ALICE}\n"
        );
        let u = Users::parse(&text).unwrap();
        assert_eq!(u.len(), 3);
        let realms: Vec<(&str, usize)> = u.realms().into_iter().collect();
        assert_eq!(realms, vec![("a.example", 2), ("b:c", 1)]);
        assert_eq!(u.count_in_realm("a.example"), 2);
        assert_eq!(u.count_in_realm("b:c"), 1);
        assert_eq!(u.count_in_realm("A.example"), 0);
        assert_eq!(u.realm_mismatch("a.example"), None);
        assert_eq!(u.realm_mismatch("b:c"), None);
        assert_eq!(
            u.realm_mismatch("relay.example.com").as_deref(),
            Some(
                "users file has 3 users, none in realm \"relay.example.com\" \
                 (realms in the file: \"a.example\" (2), \"b:c\" (1)); set --realm to one \
                 of them or add users with `msrpd passwd --realm relay.example.com`"
            )
        );
        let one = Users::parse(&format!("x:r:{MD5_ALICE}\n")).unwrap();
        let w = one.realm_mismatch("other").unwrap();
        assert!(
            w.starts_with("users file has 1 user, none in realm \"other\""),
            "{w}"
        );
        // An empty file is said otherwise (no user at all), not as a realm mismatch.
        assert_eq!(Users::parse("# none\n").unwrap().realm_mismatch("r"), None);
    }
}
