//! The users file on disk: reading it for the relay (at start and on SIGHUP) and
//! writing it for `msrpd passwd`. The format and its parsing (htdigest lines, RFC 2617
//! §3.2.2.2 HA1s for RFC 4976 §6.3's AUTH) are [`crate::relay::users`]'s, which stays
//! sans-I/O; this module is the file side.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::relay::users::{self, Users, UsersError};

/// Reads and parses a users file; errors carry the path.
pub fn load(path: impl AsRef<Path>) -> Result<Users, UsersError> {
    let path = path.as_ref();
    let text = fs::read_to_string(path).map_err(|e| UsersError::io(path, e))?;
    Users::parse(&text).map_err(|e| e.in_file(path))
}

/// Logs a warning when no user of `users` can AUTH because none has a password in
/// `realm`, the realm the relay challenges with (RFC 4976 §5.1).
pub fn warn_on_realm_mismatch(users: &Users, realm: &str, path: &Path) {
    if let Some(w) = users.realm_mismatch(realm) {
        tracing::warn!(file = %path.display(), "{w}");
    }
}

/// What [`set_password`] did besides writing the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The directory created for the file (with mode 0750) because it did not exist.
    pub created_dir: Option<PathBuf>,
    /// The file did not exist and was created (mode 0640, the caller's group).
    pub created_file: bool,
}

/// Sets `user`'s password in `realm` in the users file at `path` (`msrpd passwd`, like
/// `htdigest`), creating the file, and its directory when that is missing.
///
/// The new text (see [`users::with_password`]) is written to a temporary file beside
/// the old one, synced and renamed over it, so a reader sees the old or the new file,
/// never half of one. A new file is created with mode 0640 (owner read-write, the
/// group read: the relay's service group, `chgrp msrpd FILE`, reads it, nobody else);
/// an existing one keeps its mode, owner and group. A missing parent directory is
/// created with mode 0750 (the file holds password equivalents: no access for others)
/// and returned in [`Written::created_dir`]. An existing file that does not parse is
/// left alone and the error names its line.
pub fn set_password(
    path: impl AsRef<Path>,
    realm: &str,
    user: &str,
    password: &str,
) -> Result<Written, UsersError> {
    let path = path.as_ref();
    let (old, perms) = match fs::read_to_string(path) {
        Ok(text) => {
            let meta = fs::metadata(path).map_err(|e| UsersError::io(path, e))?;
            (text, Some(Kept::of(&meta)))
        }
        // A new file; its directory may be missing too (or be a file: ENOTDIR), which
        // the directory step below reports by name.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            (String::new(), None)
        }
        Err(e) => return Err(UsersError::io(path, e)),
    };
    let text = users::with_password(&old, realm, user, password).map_err(|e| e.in_file(path))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut written = Written::default();
    if perms.is_none() && !dir.exists() {
        let mut b = fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, DIR_MODE);
        let made = b.create(dir);
        // The mode asked for whatever the umask is (it may only take bits away).
        #[cfg(unix)]
        let made = made.and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE))
        });
        made.map_err(|source| UsersError::Dir {
            path: path.to_owned(),
            dir: dir.to_owned(),
            action: "create",
            source,
        })?;
        written.created_dir = Some(dir.to_owned());
    }
    written.created_file = perms.is_none();
    write_atomically(path, dir, text.as_bytes(), perms)?;
    Ok(written)
}

/// The mode of a users file `msrpd passwd` creates: root (or whoever runs it) writes,
/// the relay's group reads.
pub const FILE_MODE: u32 = 0o640;
/// The mode of a directory `msrpd passwd` creates for the users file.
pub const DIR_MODE: u32 = 0o750;

/// What a rewritten file keeps of the old one: its mode, owner and group (a file made
/// `root:msrpd 0640` must stay readable by the relay after a password change).
struct Kept {
    perms: fs::Permissions,
    #[cfg(unix)]
    owner: (u32, u32),
}

impl Kept {
    fn of(meta: &fs::Metadata) -> Kept {
        Kept {
            perms: meta.permissions(),
            #[cfg(unix)]
            owner: {
                use std::os::unix::fs::MetadataExt;
                (meta.uid(), meta.gid())
            },
        }
    }

    /// Gives `file` the old owner and group, then the old mode (in this order: a chown
    /// may clear set-id bits).
    fn apply(&self, file: &fs::File) -> io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let meta = file.metadata()?;
            let (uid, gid) = self.owner;
            if (meta.uid(), meta.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
            }
        }
        file.set_permissions(self.perms.clone())
    }
}

/// Writes `data` to a new file in `dir` beside `path`, syncs it and renames it over
/// `path`.
fn write_atomically(
    path: &Path,
    dir: &Path,
    data: &[u8],
    perms: Option<Kept>,
) -> Result<(), UsersError> {
    let mut name = path
        .file_name()
        .ok_or_else(|| {
            UsersError::io(
                path,
                io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
            )
        })?
        .to_owned();
    name.push(format!(
        ".tmp-{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let tmp = dir.join(name);

    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    // 0600 while it is written; the final mode once it is whole.
    // The temporary name means nothing to the operator: the error names the directory.
    let mut file = opts.open(&tmp).map_err(|source| UsersError::Dir {
        path: path.to_owned(),
        dir: dir.to_owned(),
        action: "create a temporary file in",
        source,
    })?;
    let written = (|| {
        file.write_all(data)?;
        match &perms {
            Some(k) => k.apply(&file)?,
            #[cfg(unix)]
            None => {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
            }
            #[cfg(not(unix))]
            None => {}
        }
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(UsersError::io(path, e));
    }
    // Make the rename itself durable; failing here loses nothing already written.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::auth::Algorithm;
    use crate::relay::users::Ha1;

    const MD5_ALICE: &str = "0123456789abcdef0123456789abcdef";

    /// A unique path in the temp dir, removed (with any leftovers) when dropped.
    struct TempPath(PathBuf);

    impl TempPath {
        fn new(tag: &str) -> TempPath {
            let name = format!(
                "msrpd-users-{tag}-{}-{:016x}",
                std::process::id(),
                rand::random::<u64>()
            );
            TempPath(std::env::temp_dir().join(name))
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = fs::remove_file(&self.0);
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn load_errors_carry_the_path() {
        let p = TempPath::new("load");
        let e = load(&p.0).unwrap_err();
        assert!(matches!(e, UsersError::Io { .. }));
        assert!(e.to_string().contains(&*p.0.to_string_lossy()), "{e}");

        fs::write(&p.0, "# c\nalice:r:zz\n").unwrap();
        let e = load(&p.0).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&*p.0.to_string_lossy()), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn set_password_round_trip() {
        let p = TempPath::new("passwd");
        let w = set_password(&p.0, "relay.example.com", "alice", "secret").unwrap();
        assert_eq!(w.created_dir, None);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p.0).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o640);
        }
        let u = load(&p.0).unwrap();
        assert_eq!(u.len(), 1);
        for a in [Algorithm::Md5, Algorithm::Sha256] {
            let got = u.lookup("alice", "relay.example.com", a).unwrap();
            let want = Ha1::compute(a, "alice", "relay.example.com", "secret");
            assert_eq!(got.as_bytes(), want.as_bytes());
        }
        // An existing file keeps its mode and its other lines.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p.0, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let text = fs::read_to_string(&p.0).unwrap();
        fs::write(&p.0, format!("{text}bob:relay.example.com:{MD5_ALICE}\n")).unwrap();
        set_password(&p.0, "relay.example.com", "alice", "n3w").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p.0).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let u = load(&p.0).unwrap();
        assert_eq!(u.len(), 2);
        let got = u
            .lookup("alice", "relay.example.com", Algorithm::Sha256)
            .unwrap();
        let want = Ha1::compute(Algorithm::Sha256, "alice", "relay.example.com", "n3w");
        assert_eq!(got.as_bytes(), want.as_bytes());

        // No temporary file is left behind.
        let dir = p.0.parent().unwrap();
        let stem = p.0.file_name().unwrap().to_string_lossy().into_owned();
        let leftovers = fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n != stem && n.starts_with(&stem)
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn set_password_creates_a_missing_directory_0750() {
        let root = TempPath::new("mkdir");
        let dir = root.0.join("etc").join("msrpd");
        let file = dir.join("users");
        let w = set_password(&file, "r", "alice", "pw").unwrap();
        assert_eq!(w.created_dir.as_deref(), Some(dir.as_path()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for d in [&dir, &root.0.join("etc")] {
                let mode = fs::metadata(d).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o750, "{}", d.display());
            }
        }
        assert_eq!(load(&file).unwrap().len(), 1);
        // Once it exists, nothing is created.
        let w = set_password(&file, "r", "bob", "pw").unwrap();
        assert_eq!(w.created_dir, None);
    }

    /// A file the operator gave to the relay's group (`chgrp msrpd`) keeps that group
    /// when a password is changed (the rewrite is a new file renamed over it).
    #[cfg(unix)]
    #[test]
    fn set_password_keeps_the_owner_and_group_of_an_existing_file() {
        use std::os::unix::fs::MetadataExt;
        let p = TempPath::new("chgrp");
        set_password(&p.0, "r", "alice", "pw").unwrap();
        let meta = fs::metadata(&p.0).unwrap();
        // Another group: any when root; else one of ours other than the file's.
        let other = if meta.uid() == 0 {
            Some(meta.gid() + 4242)
        } else {
            let mut groups = vec![0 as libc::gid_t; 64];
            // SAFETY: the buffer holds 64 gids, as the length passed says.
            let n = unsafe { libc::getgroups(64, groups.as_mut_ptr()) };
            groups.truncate(usize::try_from(n).unwrap_or(0));
            groups.into_iter().find(|&g| g != meta.gid())
        };
        let Some(gid) = other else {
            eprintln!("SKIPPED: no second group to chgrp the file to");
            return;
        };
        std::os::unix::fs::chown(&p.0, None, Some(gid)).unwrap();
        set_password(&p.0, "r", "bob", "pw").unwrap();
        let after = fs::metadata(&p.0).unwrap();
        assert_eq!((after.uid(), after.gid()), (meta.uid(), gid));
        assert_eq!(after.mode() & 0o777, 0o640);
        assert_eq!(load(&p.0).unwrap().len(), 2);
    }

    #[test]
    fn set_password_names_a_directory_it_cannot_create() {
        // The parent "directory" is a regular file: it cannot be created or written in.
        let blocker = TempPath::new("blocker");
        fs::write(&blocker.0, "").unwrap();
        let file = blocker.0.join("sub").join("users");
        let e = set_password(&file, "r", "alice", "pw").unwrap_err();
        let msg = e.to_string();
        let dir = blocker.0.join("sub");
        assert!(
            msg.starts_with(&format!(
                "users file {}: cannot create directory {}: ",
                file.display(),
                dir.display()
            )),
            "{msg}"
        );
        assert!(!msg.contains(".tmp-"), "{msg}");
    }

    #[test]
    fn set_password_leaves_a_bad_file_alone() {
        let p = TempPath::new("bad");
        assert!(matches!(
            set_password(&p.0, "r", "a:b", "pw"),
            Err(UsersError::InvalidName("user name"))
        ));
        assert!(!p.0.exists());
        fs::write(&p.0, "ok:r:0123456789abcdef0123456789abcdef\nbroken\n").unwrap();
        let e = set_password(&p.0, "r", "alice", "pw").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains(&*p.0.to_string_lossy()), "{msg}");
        assert!(fs::read_to_string(&p.0).unwrap().ends_with("broken\n"));
    }
}
