//! Dovecot-style passwd-file of virtual users.
//!
//! Line format, as Dovecot's passwd-file (`doc.dovecot.org`, "passwd-file"):
//! ```text
//! user:password:uid:gid:(gecos):home:(shell):extra_fields
//! ```
//! Only `user` and `password` are required; gecos and shell are ignored. `extra_fields` is a
//! space-separated list of `key=value`; `mail=`, `userdb_mail=`, `mail_path=` and
//! `userdb_mail_path=` set the account's mailbox (`/path`, `mbox:/path`, or Dovecot's
//! `mbox:~/mail:INBOX=/var/mail/%u`, from which the INBOX path is taken). As a convenience a
//! 7th field that contains `=` is read as extra fields (`user:pw:uid:gid:gecos:home:mail=...`),
//! since a shell never contains `=`. Empty lines and lines starting with `#` are ignored.
//!
//! The file is re-read when its inode, size, mtime or ctime change (one `stat` per lookup). A
//! reload that fails keeps the last good version and logs the failure once. Lines that cannot be
//! used are skipped with a warning naming the line; the first line wins for duplicate users.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use super::hash::{DummyVerifier, Secret};
use super::{username, Account, AuthError, Authenticator};

/// What identifies one version of the file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(m: &Metadata) -> FileStamp {
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// One usable line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub account: Account,
    pub secret: Secret,
}

/// A line that was skipped or partly ignored, for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineWarning {
    pub line: usize,
    pub message: String,
}

/// The parsed file: usable entries in file order, and what was wrong with the rest.
#[derive(Debug, Default)]
pub struct Parsed {
    pub entries: Vec<Entry>,
    pub warnings: Vec<LineWarning>,
}

/// Parse the whole file. Never fails: bad lines become warnings.
pub fn parse(text: &[u8]) -> Parsed {
    let mut out = Parsed::default();
    let mut seen = std::collections::HashSet::new();
    for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
        let lineno = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.is_empty() || raw.starts_with(b"#") || raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut warn = |message: String| {
            out.warnings.push(LineWarning {
                line: lineno,
                message,
            })
        };
        let Ok(line) = std::str::from_utf8(raw) else {
            warn("not valid UTF-8, line skipped".into());
            continue;
        };
        match parse_line(line, &mut warn) {
            Ok(entry) => {
                if seen.insert(entry.account.name.clone()) {
                    out.entries.push(entry);
                } else {
                    warn(format!(
                        "duplicate user {:?}, the first line wins",
                        entry.account.name
                    ));
                }
            }
            Err(e) => warn(format!("{e}, line skipped")),
        }
    }
    out
}

fn parse_id(field: Option<&&str>, what: &str) -> Result<Option<u32>, String> {
    match field.map(|f| f.trim()) {
        None | Some("") => Ok(None),
        Some(s) => match s.parse::<u32>() {
            Ok(0) => Err(format!("{what} 0 (root) is not allowed")),
            Ok(v) => Ok(Some(v)),
            Err(_) => Err(format!("{what} {s:?} is not a number")),
        },
    }
}

fn parse_line(line: &str, warn: &mut dyn FnMut(String)) -> Result<Entry, String> {
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() < 2 {
        return Err("no password field".into());
    }
    let name = username::validate(fields[0]).map_err(|e| format!("{e}"))?;
    let secret = Secret::parse(fields[1]).map_err(|e| format!("user {name:?}: {e}"))?;
    let uid = parse_id(fields.get(2), "uid")?;
    let gid = parse_id(fields.get(3), "gid")?;
    let home = match fields.get(5).copied().unwrap_or("") {
        "" => None,
        h if h.starts_with('/') => Some(PathBuf::from(h)),
        h => return Err(format!("home {h:?} is not an absolute path")),
    };
    // Extra fields: everything from field 8 on (values may contain ':'), or a 7th field that
    // holds key=value pairs instead of a shell.
    let extra = if fields.len() > 7 {
        fields[7..].join(":")
    } else if fields.get(6).is_some_and(|f| f.contains('=')) {
        fields[6].to_string()
    } else {
        String::new()
    };
    let mut mailbox = None;
    for kv in extra.split(' ').filter(|s| !s.is_empty()) {
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        let key = key.strip_prefix("userdb_").unwrap_or(key);
        if key == "mail" || key == "mail_path" {
            match mailbox_from_mail_field(value) {
                Some(p) => mailbox = Some(p),
                None => warn(format!(
                    "user {name:?}: {kv:?} is not an mbox path, using the mailbox template"
                )),
            }
        }
    }
    Ok(Entry {
        account: Account {
            name: name.to_string(),
            uid,
            gid,
            home,
            mailbox,
        },
        secret,
    })
}

/// The mbox path in a Dovecot `mail` value: `/path`, `~/path`, `mbox:PATH[:...]`, or the
/// `INBOX=` part of `mbox:~/mail:INBOX=/var/mail/%u`. Other formats (maildir, ...) give `None`.
fn mailbox_from_mail_field(value: &str) -> Option<PathBuf> {
    let path = if let Some(rest) = value.strip_prefix("mbox:") {
        match rest.split(':').find_map(|p| p.strip_prefix("INBOX=")) {
            Some(inbox) => inbox,
            None => rest.split(':').next().unwrap_or(""),
        }
    } else if value.contains(':') {
        return None;
    } else {
        value
    };
    (path.starts_with('/') || path.starts_with("~/") || path.starts_with('%'))
        .then(|| PathBuf::from(path))
}

/// One loaded version of the file.
#[derive(Debug)]
struct Snapshot {
    stamp: FileStamp,
    users: HashMap<String, Entry>,
    /// The hash dummies imitate: the most common kind in the file, so that an unknown user
    /// costs what a real user costs.
    template: Option<Secret>,
    has_plaintext: bool,
}

impl Snapshot {
    fn build(stamp: FileStamp, parsed: Parsed) -> Snapshot {
        let has_plaintext = parsed
            .entries
            .iter()
            .any(|e| e.secret.plaintext().is_some());
        let template = most_common_secret(&parsed.entries);
        let users = parsed
            .entries
            .into_iter()
            .map(|e| (e.account.name.clone(), e))
            .collect();
        Snapshot {
            stamp,
            users,
            template,
            has_plaintext,
        }
    }
}

fn most_common_secret(entries: &[Entry]) -> Option<Secret> {
    let mut counts: HashMap<String, (usize, &Secret)> = HashMap::new();
    for e in entries.iter().filter(|e| !e.secret.is_disabled()) {
        counts
            .entry(e.secret.cost_key())
            .or_insert((0, &e.secret))
            .0 += 1;
    }
    counts
        .into_values()
        .max_by_key(|(n, _)| *n)
        .map(|(_, s)| s.clone())
}

/// The passwd-file backend.
pub struct PasswdFile {
    path: PathBuf,
    current: RwLock<Arc<Snapshot>>,
    /// The stamp of a version that failed to load (or `None` stamp for a failed stat), so
    /// the failure is logged once instead of on every login.
    failed: Mutex<Option<Option<FileStamp>>>,
    dummy: DummyVerifier,
}

fn load(path: &Path) -> Result<(FileStamp, Parsed), String> {
    let mut f = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The stamp comes from the descriptor we read, so content and stamp always match even if
    // the file is replaced meanwhile.
    let meta = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    let mut buf = Vec::with_capacity(meta.len().min(1 << 24) as usize);
    f.read_to_end(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((FileStamp::of(&meta), parse(&buf)))
}

fn log_warnings(path: &Path, parsed: &Parsed) {
    for w in &parsed.warnings {
        log::warn!("{}:{}: {}", path.display(), w.line, w.message);
    }
    let plaintext = parsed
        .entries
        .iter()
        .any(|e| e.secret.plaintext().is_some());
    if plaintext && is_world_readable(path) {
        log::warn!(
            "{}: holds {{PLAIN}} secrets but is readable by everyone; chmod o-r it",
            path.display()
        );
    }
}

fn is_world_readable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.mode() & 0o004 != 0)
}

impl PasswdFile {
    /// Load the file; fails (with the path in the message) if it cannot be read.
    pub fn open(path: &Path) -> Result<PasswdFile, String> {
        let (stamp, parsed) = load(path)?;
        log_warnings(path, &parsed);
        log::debug!("{}: {} users loaded", path.display(), parsed.entries.len());
        Ok(PasswdFile {
            path: path.to_path_buf(),
            current: RwLock::new(Arc::new(Snapshot::build(stamp, parsed))),
            failed: Mutex::new(None),
            dummy: DummyVerifier::new(),
        })
    }

    /// Re-read the file now (SIGHUP), whether or not it looks changed. On failure the last good
    /// version stays in use.
    pub fn reload(&self) -> Result<(), String> {
        let (stamp, parsed) = load(&self.path)?;
        log_warnings(&self.path, &parsed);
        self.install(Snapshot::build(stamp, parsed));
        Ok(())
    }

    /// Number of users currently loaded.
    pub fn len(&self) -> usize {
        self.snapshot().users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn install(&self, snap: Snapshot) {
        match self.current.write() {
            Ok(mut cur) => *cur = Arc::new(snap),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(snap),
        }
        if let Ok(mut f) = self.failed.lock() {
            *f = None;
        }
    }

    fn loaded(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(cur) => Arc::clone(&cur),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The current version, re-read first if the file changed on disk.
    fn snapshot(&self) -> Arc<Snapshot> {
        let snap = self.loaded();
        let now = std::fs::metadata(&self.path)
            .map(|m| FileStamp::of(&m))
            .ok();
        if now == Some(snap.stamp) {
            return snap;
        }
        // Changed or gone. Skip versions we already failed on.
        if let Ok(failed) = self.failed.lock() {
            if *failed == Some(now) {
                return snap;
            }
        }
        match load(&self.path) {
            Ok((stamp, parsed)) => {
                log::info!(
                    "{}: changed on disk, reloaded ({} users)",
                    self.path.display(),
                    parsed.entries.len()
                );
                log_warnings(&self.path, &parsed);
                self.install(Snapshot::build(stamp, parsed));
                self.loaded()
            }
            Err(e) => {
                log::error!("reloading passwd-file failed, keeping the last good version: {e}");
                if let Ok(mut failed) = self.failed.lock() {
                    *failed = Some(now);
                }
                snap
            }
        }
    }
}

impl Authenticator for PasswdFile {
    fn verify(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        let snap = self.snapshot();
        let entry = username::validate(user)
            .ok()
            .and_then(|u| snap.users.get(u))
            .filter(|e| !e.secret.is_disabled());
        match entry {
            Some(e) if e.secret.verify(password) => Ok(e.account.clone()),
            Some(_) => Err(AuthError::Invalid),
            None => {
                self.dummy.burn(snap.template.as_ref(), password);
                Err(AuthError::Invalid)
            }
        }
    }

    fn plaintext_secret(&self, user: &str) -> Result<Option<(Account, Vec<u8>)>, AuthError> {
        let Ok(user) = username::validate(user) else {
            return Ok(None);
        };
        let snap = self.snapshot();
        Ok(snap.users.get(user).and_then(|e| {
            e.secret
                .plaintext()
                .map(|p| (e.account.clone(), p.to_vec()))
        }))
    }

    fn has_plaintext_secrets(&self) -> bool {
        self.snapshot().has_plaintext
    }

    fn reload(&self) -> Result<(), String> {
        PasswdFile::reload(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hash::timing::{assert_similar, min_times};
    use proptest::prelude::*;
    use std::io::Write;
    use std::time::Duration;

    const SHA512: &str = "$6$ilq6.jE2SMB2SlVN$03NAv5A2HZaYCkNCs8QBdGwxZRk0jO9Qf8tes7Z6fk2kxrFT96YuD9NdSbIRnjxBb08RSOp2sI2Dhzh5Eb88R0";
    const BCRYPT: &str = "$2b$05$M89a0T4KUef52JhUwwwTjeRpjw2X8337VHB/v4GUrYswNHCXDTNQG";

    fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn parses_dovecot_lines() {
        let text = format!(
            "# virtual users\n\
             \n\
             alice:{{PLAIN}}wonderland:1001:1001::/home/alice::userdb_mail=mbox:~/mail:INBOX=/var/mail/%u quota=1G\n\
             bob:{SHA512}:1002:1002:Bob B:/home/bob:/bin/false:\n\
             carol:{{BLF-CRYPT}}{BCRYPT}\n\
             dave:{{PLAIN}}x:::::mail=/srv/mail/dave.mbox\r\n\
             erin:{{PLAIN}}y:2000:2000:Erin:/home/erin:mail_path=/srv/erin\n"
        );
        let p = parse(text.as_bytes());
        assert_eq!(p.warnings, vec![]);
        let names: Vec<_> = p.entries.iter().map(|e| e.account.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol", "dave", "erin"]);
        let alice = &p.entries[0].account;
        assert_eq!(alice.uid, Some(1001));
        assert_eq!(alice.gid, Some(1001));
        assert_eq!(alice.home.as_deref(), Some(Path::new("/home/alice")));
        assert_eq!(alice.mailbox.as_deref(), Some(Path::new("/var/mail/%u")));
        assert_eq!(p.entries[0].secret.plaintext(), Some(&b"wonderland"[..]));
        let bob = &p.entries[1];
        assert_eq!(bob.account.mailbox, None);
        assert!(bob.secret.verify(b"correct horse"));
        let carol = &p.entries[2].account;
        assert_eq!(
            (carol.uid, carol.gid, carol.home.clone()),
            (None, None, None)
        );
        assert_eq!(
            p.entries[3].account.mailbox.as_deref(),
            Some(Path::new("/srv/mail/dave.mbox"))
        );
        // The 7-field convenience form: field 7 with '=' is extra fields, not a shell.
        assert_eq!(
            p.entries[4].account.mailbox.as_deref(),
            Some(Path::new("/srv/erin"))
        );
    }

    #[test]
    fn bad_lines_are_skipped_with_their_line_number() {
        let text = "ok:{PLAIN}a\n\
                    nopass\n\
                    ../etc:{PLAIN}a\n\
                    root0:{PLAIN}a:0:0\n\
                    uidx:{PLAIN}a:abc\n\
                    rel:{PLAIN}a:5:5::home/rel\n\
                    ssha:{SSHA}abc\n\
                    ok:{PLAIN}second\n\
                    maildir:{PLAIN}a:5:5::/h::mail=maildir:~/Maildir\n";
        let p = parse(text.as_bytes());
        let lines: Vec<usize> = p.warnings.iter().map(|w| w.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7, 8, 9], "{:#?}", p.warnings);
        let names: Vec<_> = p.entries.iter().map(|e| e.account.name.as_str()).collect();
        assert_eq!(names, ["ok", "maildir"]);
        // The first "ok" wins, the maildir user falls back to the template.
        assert_eq!(p.entries[0].secret.plaintext(), Some(&b"a"[..]));
        assert_eq!(p.entries[1].account.mailbox, None);
        assert!(p.warnings[6].message.contains("duplicate"));
    }

    #[test]
    fn locked_accounts_never_log_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            "passwd",
            &format!("locked:!{SHA512}\nstar:*\nempty:\nplainempty:{{PLAIN}}\n"),
        );
        let pf = PasswdFile::open(&path).unwrap();
        for u in ["locked", "star", "empty"] {
            assert!(matches!(
                pf.verify(u, b"correct horse"),
                Err(AuthError::Invalid)
            ));
            assert!(matches!(pf.verify(u, b""), Err(AuthError::Invalid)));
        }
        // An empty plaintext password is as disabled as an empty hash field.
        assert!(pf.verify("plainempty", b"").is_err());
        assert!(pf.plaintext_secret("plainempty").unwrap().is_none());
    }

    #[test]
    fn verify_and_plaintext_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            "passwd",
            &format!("alice:{{PLAIN}}wonderland:1001:1001::/home/alice\nbob:{SHA512}:1002:1002\n"),
        );
        let pf = PasswdFile::open(&path).unwrap();
        assert!(pf.has_plaintext_secrets());
        let acc = pf.verify("alice", b"wonderland").unwrap();
        assert_eq!(acc.uid, Some(1001));
        assert!(matches!(
            pf.verify("alice", b"Wonderland"),
            Err(AuthError::Invalid)
        ));
        assert_eq!(pf.verify("bob", b"correct horse").unwrap().name, "bob");
        assert!(matches!(pf.verify("nobody", b"x"), Err(AuthError::Invalid)));
        assert!(matches!(
            pf.verify("../alice", b"wonderland"),
            Err(AuthError::Invalid)
        ));

        let (acc, secret) = pf.plaintext_secret("alice").unwrap().unwrap();
        assert_eq!(
            (acc.name.as_str(), secret.as_slice()),
            ("alice", &b"wonderland"[..])
        );
        assert!(pf.plaintext_secret("bob").unwrap().is_none());
        assert!(pf.plaintext_secret("nobody").unwrap().is_none());
        assert!(pf.plaintext_secret("a/b").unwrap().is_none());

        let only_hashes = write_file(dir.path(), "hashed", &format!("bob:{SHA512}\n"));
        assert!(!PasswdFile::open(&only_hashes)
            .unwrap()
            .has_plaintext_secrets());
    }

    #[test]
    fn picks_up_changes_and_keeps_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "passwd", "alice:{PLAIN}one\n");
        let pf = PasswdFile::open(&path).unwrap();
        assert!(pf.verify("alice", b"one").is_ok());

        // In-place rewrite with a different size.
        std::fs::write(&path, "alice:{PLAIN}two\nbob:{PLAIN}b\n").unwrap();
        assert!(pf.verify("alice", b"two").is_ok());
        assert!(pf.verify("alice", b"one").is_err());
        assert_eq!(pf.len(), 2);

        // Atomic replacement by rename (new inode), same size as before.
        let tmp = write_file(dir.path(), "passwd.new", "alice:{PLAIN}333\nbob:{PLAIN}b\n");
        std::fs::rename(&tmp, &path).unwrap();
        assert!(pf.verify("alice", b"333").is_ok());

        // Same size, same inode, rewritten in place: mtime/ctime tell.
        std::thread::sleep(Duration::from_millis(20));
        let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(b"alice:{PLAIN}444").unwrap();
        drop(f);
        assert!(pf.verify("alice", b"444").is_ok());

        // The file becomes unreadable (removed): the last good version stays.
        std::fs::remove_file(&path).unwrap();
        assert!(pf.verify("alice", b"444").is_ok());
        assert!(pf.reload().is_err());
        assert!(pf.verify("bob", b"b").is_ok());

        // It comes back: picked up again.
        write_file(dir.path(), "passwd", "carol:{PLAIN}c\n");
        assert!(pf.verify("carol", b"c").is_ok());
        assert!(pf.verify("alice", b"444").is_err());
    }

    #[test]
    fn utf8_names_and_secrets() {
        // RFC 6856: UTF8 mode allows UTF-8 user names and passwords.
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(
            dir.path(),
            "passwd",
            "jürgen:{PLAIN}grüße\n用户:{PLAIN}密码\n",
        );
        let pf = PasswdFile::open(&path).unwrap();
        assert!(pf.verify("jürgen", "grüße".as_bytes()).is_ok());
        assert!(pf.verify("jurgen", "grüße".as_bytes()).is_err());
        assert!(pf.verify("用户", "密码".as_bytes()).is_ok());
    }

    #[test]
    fn world_readable_detection() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(dir.path(), "passwd", "a:{PLAIN}x\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(is_world_readable(&path));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(!is_world_readable(&path));
    }

    #[test]
    fn open_fails_for_unreadable_or_odd_files() {
        let dir = tempfile::tempdir().unwrap();
        let err = PasswdFile::open(&dir.path().join("missing")).err().unwrap();
        assert!(err.contains("missing"), "{err}");
        let err = PasswdFile::open(dir.path()).err().unwrap();
        assert!(
            err.contains("not a regular file") || err.contains("directory"),
            "{err}"
        );
    }

    #[test]
    fn unknown_users_cost_about_what_wrong_passwords_cost() {
        // bcrypt cost 5 takes milliseconds; a dummy of another kind (or none at all) would take
        // microseconds, far outside the tolerance, which only absorbs scheduling noise.
        let dir = tempfile::tempdir().unwrap();
        let mut text = String::new();
        for i in 0..5 {
            text.push_str(&format!("user{i}:{BCRYPT}\n"));
        }
        let path = write_file(dir.path(), "passwd", &text);
        let pf = PasswdFile::open(&path).unwrap();
        std::fs::write(&path, format!("{text}locked:!{BCRYPT}\n")).unwrap();
        pf.verify("warmup", b"x").ok(); // builds and caches the dummy
        let fail = |user: &'static str| {
            let pf = &pf;
            move || assert!(pf.verify(user, b"wrong").is_err())
        };
        let (mut known, mut unknown, mut locked) =
            (fail("user1"), fail("nosuchuser"), fail("locked"));
        let times = min_times(9, &mut [&mut known, &mut unknown, &mut locked]);
        assert_similar(&times, &["known", "unknown", "locked"]);
    }

    #[test]
    fn template_is_the_most_common_kind() {
        let text = format!("a:{{PLAIN}}x\nb:{BCRYPT}\nc:{BCRYPT}\nd:{SHA512}\n");
        let p = parse(text.as_bytes());
        let t = most_common_secret(&p.entries).unwrap();
        assert!(matches!(
            t,
            Secret::Crypt {
                kind: super::super::hash::CryptKind::Bcrypt,
                ..
            }
        ));
    }

    proptest! {
        // Arbitrary file contents never panic the parser, and every entry it returns has a
        // valid name.
        #[test]
        fn parser_never_panics(text in proptest::collection::vec(
            prop_oneof![Just(b':'), Just(b'\n'), Just(b'{'), Just(b'}'), Just(b'='), Just(b' '), any::<u8>()], 0..200)) {
            let p = parse(&text);
            for e in p.entries {
                prop_assert!(username::validate(&e.account.name).is_ok());
            }
        }

        #[test]
        fn plain_entries_round_trip(name in "[a-z][a-z0-9._-]{0,20}", pw in "[!-9;-~]{1,30}",
                                    uid in 1u32..100000, gid in 1u32..100000) {
            let line = format!("{name}:{{PLAIN}}{pw}:{uid}:{gid}::/home/{name}\n");
            let p = parse(line.as_bytes());
            prop_assert_eq!(p.warnings.len(), 0);
            let e = &p.entries[0];
            prop_assert_eq!(&e.account.name, &name);
            prop_assert_eq!(e.account.uid, Some(uid));
            prop_assert_eq!(e.account.gid, Some(gid));
            prop_assert!(e.secret.verify(pw.as_bytes()));
        }
    }
}
