//! The SIP digest credentials file (`--sip-credentials`): what msrpd answers a 401/407
//! to its own requests with (RFC 3261 §22.2). One credential a line, in the form of
//! OpenSIPS's `uac_auth` `credential` parameter: `user:realm:password` (the password
//! is the rest of the line, `:` included). Blank lines and lines starting with `#`
//! are skipped. Read once at start; a file that cannot be read or has a malformed
//! line stops the start, naming the line; one that others may read is warned about
//! (it holds passwords in the clear).

use std::path::Path;

use crate::sip::auth::RealmCredentials;

/// Why the credentials file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read SIP credentials file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("SIP credentials file {path} line {line}: {reason}; each line is user:realm:password")]
    Malformed {
        path: String,
        line: usize,
        reason: &'static str,
    },
}

/// Parses the text of a credentials file (`path` only names it in errors).
pub fn parse(text: &str, path: &str) -> Result<RealmCredentials, CredentialsError> {
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim_end_matches('\r');
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        let bad = |reason| CredentialsError::Malformed {
            path: path.to_string(),
            line: i + 1,
            reason,
        };
        let mut f = l.splitn(3, ':');
        let (Some(user), Some(realm), Some(pass)) = (f.next(), f.next(), f.next()) else {
            return Err(bad("fewer than three fields"));
        };
        if user.is_empty() {
            return Err(bad("empty user"));
        }
        if realm.is_empty() {
            return Err(bad("empty realm"));
        }
        if entries
            .iter()
            .any(|(r, _, _): &(String, String, String)| r == realm)
        {
            return Err(bad("a second credential for the same realm"));
        }
        entries.push((realm.to_string(), user.to_string(), pass.to_string()));
    }
    Ok(RealmCredentials { entries })
}

/// Reads and parses the file, warning when others may read it.
pub fn load(path: &Path) -> Result<RealmCredentials, CredentialsError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
        path: name.clone(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o007 != 0 {
                tracing::warn!(
                    file = %name,
                    "SIP credentials file has mode {mode:04o}: others can read the passwords (chmod 600 {name}, or 640 with msrpd's group)"
                );
            }
        }
    }
    parse(&text, &name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth::Credentials;

    #[test]
    fn lines() {
        let c = parse("# c\n\nalice:example.com:pa:ss\nbob:other:x\r\n", "f").unwrap();
        assert_eq!(c.lookup("example.com"), Some(("alice", "pa:ss")));
        assert_eq!(c.lookup("other"), Some(("bob", "x")));
        for (text, line) in [
            ("a:b\n", 1),
            ("\n:r:p\n", 2),
            ("u::p", 1),
            ("u:r:p\nv:r:q", 2),
        ] {
            let e = parse(text, "f").unwrap_err().to_string();
            assert!(e.contains(&format!("line {line}")), "{e}");
        }
    }
}
