//! System accounts: the passwd and shadow databases.
//!
//! Accounts come from NSS (`getpwnam_r`, `getspnam_r`), so users from every source listed in
//! nsswitch.conf (files, extrausers, LDAP, sssd) are seen with their uid, gid and home. The
//! hash itself is verified here, by the same code as passwd-file hashes (yescrypt and friends
//! without libcrypt), so this backend works on machines without PAM; sources that do not hand
//! out hashes (sssd, Kerberos) need `auth = pam`. Tests inject plain files instead of NSS.
//!
//! Refused even with the right password: uid 0 (sessions must never run as root), locked
//! hashes (`!`, `*`), accounts past their shadow expiry date, and passwords that are expired or
//! must be changed at next login (POP3 has no way to change them), as pam_unix would.
//! No plaintext secrets: APOP and CRAM-MD5 are never offered with this backend.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::hash::{DummyVerifier, Secret};
use super::{username, Account, AuthError, Authenticator};
use crate::sys::credentials;

/// The parts of a shadow(5) line that decide whether the account may log in.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShadowEntry {
    hash: String,
    /// Days since 1970-01-01 of the last change; `Some(0)` = must change at next login.
    last_change: Option<i64>,
    max_days: Option<i64>,
    inactive_days: Option<i64>,
    expire: Option<i64>,
}

/// Why an otherwise valid login is refused (logged, never told to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    AccountExpired,
    /// Password expired longer ago than the inactivity period.
    Inactive,
    PasswordExpired,
    MustChangePassword,
}

impl ShadowEntry {
    fn parse(fields: &[&str]) -> ShadowEntry {
        let num = |i: usize| fields.get(i).and_then(|f| f.trim().parse::<i64>().ok());
        ShadowEntry {
            hash: fields.get(1).copied().unwrap_or("").to_string(),
            last_change: num(2),
            max_days: num(4),
            inactive_days: num(6),
            expire: num(7),
        }
    }

    /// The same checks as pam_unix's `check_shadow_expiry`, on day numbers.
    fn refusal(&self, today: i64) -> Option<Refusal> {
        if let Some(expire) = self.expire.filter(|&e| e >= 0) {
            if today >= expire {
                return Some(Refusal::AccountExpired);
            }
        }
        if self.last_change == Some(0) {
            return Some(Refusal::MustChangePassword);
        }
        if let (Some(last), Some(max)) = (self.last_change, self.max_days.filter(|&m| m >= 0)) {
            // Past max + inactive the account is disabled; past max alone the password must be
            // changed, which POP3 cannot do: both refuse.
            let inactive = self.inactive_days.filter(|&i| i >= 0);
            if inactive.is_some_and(|i| today - last > max + i) {
                return Some(Refusal::Inactive);
            }
            if today - last > max {
                return Some(Refusal::PasswordExpired);
            }
        }
        None
    }
}

/// /etc/passwd fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    password: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, AuthError> {
    fs::read(path).map_err(|e| AuthError::Temporary(format!("{}: {e}", path.display())))
}

/// The colon-separated fields of the first line whose name is `user`. NIS compat lines
/// (`+`, `-`) are skipped.
fn find_line<'a>(text: &'a [u8], user: &str) -> Option<Vec<&'a str>> {
    text.split(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"+") && !l.starts_with(b"-") && !l.starts_with(b"#"))
        .filter_map(|l| std::str::from_utf8(l).ok())
        .map(|l| l.trim_end_matches('\r'))
        .find(|l| l.split(':').next() == Some(user))
        .map(|l| l.split(':').collect())
}

fn today() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400) as i64
}

/// The system backend.
pub struct SystemAuth {
    passwd: PathBuf,
    shadow: PathBuf,
    /// Look accounts up through NSS; otherwise parse `passwd` and `shadow` (tests). The shadow
    /// file is read either way, for the hash that dummy checks imitate.
    nss: bool,
    dummy: DummyVerifier,
}

impl Default for SystemAuth {
    fn default() -> Self {
        Self::new()
    }
}

impl SystemAuth {
    /// The system's databases, through NSS.
    pub fn new() -> SystemAuth {
        SystemAuth {
            nss: true,
            ..Self::with_paths(Path::new("/etc/passwd"), Path::new("/etc/shadow"))
        }
    }

    /// Plain passwd and shadow files, bypassing NSS.
    pub fn with_paths(passwd: &Path, shadow: &Path) -> SystemAuth {
        SystemAuth {
            passwd: passwd.to_path_buf(),
            shadow: shadow.to_path_buf(),
            nss: false,
            dummy: DummyVerifier::new(),
        }
    }

    /// Startup check: both files readable (the shadow file needs root).
    pub fn check(&self) -> Result<(), String> {
        for p in [&self.passwd, &self.shadow] {
            fs::File::open(p).map_err(|e| {
                format!(
                    "auth = system: cannot read {}: {e} (the daemon must start as root)",
                    p.display()
                )
            })?;
        }
        Ok(())
    }

    fn passwd_entry(&self, user: &str) -> Result<Option<PasswdEntry>, AuthError> {
        if self.nss {
            let entry = credentials::getpwnam(user)
                .map_err(|e| AuthError::Temporary(format!("passwd lookup of {user:?}: {e}")))?;
            return Ok(entry.and_then(|u| {
                // A source may answer with another spelling (LDAP matches case-insensitively):
                // the mailbox and the logs use the name the source knows.
                if u.name != user && username::validate(&u.name).is_err() {
                    log::warn!("NSS returned the unusable name {:?} for {user:?}", u.name);
                    return None;
                }
                Some(PasswdEntry {
                    name: u.name,
                    password: u.passwd,
                    uid: u.uid,
                    gid: u.gid,
                    home: u.home,
                })
            }));
        }
        let text = read(&self.passwd)?;
        let Some(f) = find_line(&text, user) else {
            return Ok(None);
        };
        if f.len() < 7 {
            log::warn!("{}: malformed line for {user:?}", self.passwd.display());
            return Ok(None);
        }
        let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) else {
            log::warn!("{}: bad uid/gid for {user:?}", self.passwd.display());
            return Ok(None);
        };
        Ok(Some(PasswdEntry {
            name: user.to_string(),
            password: f[1].to_string(),
            uid,
            gid,
            home: PathBuf::from(f[5]),
        }))
    }

    /// The shadow line of `user`, plus the first usable hash in the file, which dummies
    /// imitate when the user has none (typically all hashes share login.defs settings).
    fn shadow_entry(
        &self,
        user: Option<&str>,
    ) -> Result<(Option<ShadowEntry>, Option<Secret>), AuthError> {
        let text = read(&self.shadow)?;
        let template = text
            .split(|&b| b == b'\n')
            .filter_map(|l| std::str::from_utf8(l).ok())
            .filter_map(|l| l.split(':').nth(1))
            .filter_map(|h| Secret::parse(h).ok())
            .find(|s| !s.is_disabled());
        let entry = match user {
            None => None,
            Some(u) if self.nss => credentials::getspnam(u)
                .map_err(|e| AuthError::Temporary(format!("shadow lookup of {u:?}: {e}")))?
                .map(|s| ShadowEntry {
                    hash: s.hash,
                    last_change: s.last_change,
                    max_days: s.max_days,
                    inactive_days: s.inactive_days,
                    expire: s.expire,
                }),
            Some(u) => find_line(&text, u).map(|f| ShadowEntry::parse(&f)),
        };
        Ok((entry, template))
    }
}

impl Authenticator for SystemAuth {
    fn verify(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        let name = username::validate(user).ok();
        let pw_entry = match name {
            Some(n) => self.passwd_entry(n)?,
            None => None,
        };
        // Always read the shadow file, even for unknown users, so both cost the same I/O.
        let wants_shadow = pw_entry.as_ref().is_some_and(|e| e.password == "x");
        let shadow_name = pw_entry.as_ref().map(|e| e.name.as_str());
        let (shadow, template) =
            self.shadow_entry(if wants_shadow { shadow_name } else { None })?;

        let (Some(_), Some(entry)) = (name, &pw_entry) else {
            self.dummy.burn(template.as_ref(), password);
            return Err(AuthError::Invalid);
        };
        let name = entry.name.as_str();
        let stored = match (&shadow, wants_shadow) {
            (Some(s), true) => s.hash.as_str(),
            (None, true) => "", // "x" but no shadow line: no password, locked
            (_, false) => entry.password.as_str(),
        };
        let secret = match Secret::parse(stored) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("system account {name:?}: {e}");
                Secret::Disabled
            }
        };
        if secret.is_disabled() || secret.plaintext().is_some() {
            // Plaintext `{PLAIN}` fields have no business in /etc/shadow.
            self.dummy.burn(template.as_ref(), password);
            return Err(AuthError::Invalid);
        }
        if !secret.verify(password) {
            return Err(AuthError::Invalid);
        }
        // Refusals come after verification, so they are neither cheaper nor revealed to
        // someone who does not know the password.
        if let Some(r) = shadow.as_ref().and_then(|s| s.refusal(today())) {
            log::info!("system account {name:?} refused: {r:?}");
            return Err(AuthError::Invalid);
        }
        if entry.uid == 0 {
            log::warn!("system account {name:?} has uid 0: POP3 logins as root are refused");
            return Err(AuthError::Invalid);
        }
        Ok(Account {
            name: name.to_string(),
            uid: Some(entry.uid),
            gid: Some(entry.gid),
            home: Some(entry.home.clone()),
            mailbox: None,
        })
    }

    fn plaintext_secret(&self, _user: &str) -> Result<Option<(Account, Vec<u8>)>, AuthError> {
        Ok(None)
    }

    fn has_plaintext_secrets(&self) -> bool {
        false
    }

    /// The files are read on every login, so there is nothing to refresh; report whether they
    /// are still readable.
    fn reload(&self) -> Result<(), String> {
        self.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hash::timing::{assert_similar, min_times};

    // `mkpasswd -m yescrypt -R 3 'pässwörd'` and `mkpasswd -m sha512crypt 'correct horse'`.
    const YESCRYPT: &str =
        "$y$j7T$eq0FGzGClVVLA5XqnKzlt/$SBUSqB7xgvgO9Dx8bZZfRm3sj5z15vsLbxF1GUDl8mD";
    const SHA512: &str = "$6$ilq6.jE2SMB2SlVN$03NAv5A2HZaYCkNCs8QBdGwxZRk0jO9Qf8tes7Z6fk2kxrFT96YuD9NdSbIRnjxBb08RSOp2sI2Dhzh5Eb88R0";

    struct Fixture {
        _dir: tempfile::TempDir,
        auth: SystemAuth,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let t = today();
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      +nis::::::\n\
                      alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\n\
                      bob:x:1001:1001::/home/bob:/usr/sbin/nologin\n\
                      locked:x:1002:1002::/home/locked:/bin/sh\n\
                      expired:x:1003:1003::/home/expired:/bin/sh\n\
                      pwexpired:x:1004:1004::/home/pwexpired:/bin/sh\n\
                      mustchange:x:1005:1005::/home/mustchange:/bin/sh\n\
                      noshadow:x:1006:1006::/home/noshadow:/bin/sh\n\
                      oldstyle:OLDHASH:1007:1007::/home/oldstyle:/bin/sh\n\
                      future:x:1008:1008::/home/future:/bin/sh\n";
        let passwd = passwd.replace("OLDHASH", SHA512);
        let shadow = format!(
            "root:{SHA512}:19000:0:99999:7:::\n\
             alice:{YESCRYPT}:{t}:0:99999:7:::\n\
             bob:{SHA512}:{t}:0:99999:7:::\n\
             locked:!{SHA512}:{t}:0:99999:7:::\n\
             expired:{SHA512}:{t}:0:99999:7::{}:\n\
             pwexpired:{SHA512}:{}:0:30:7:::\n\
             mustchange:{SHA512}:0:0:99999:7:::\n\
             future:{SHA512}:{t}:0:99999:7::{}:\n",
            t - 1,
            t - 31,
            t + 10
        );
        let p = dir.path().join("passwd");
        let s = dir.path().join("shadow");
        fs::write(&p, passwd).unwrap();
        fs::write(&s, shadow).unwrap();
        let auth = SystemAuth::with_paths(&p, &s);
        Fixture { _dir: dir, auth }
    }

    #[test]
    fn good_passwords_give_accounts_with_ids_and_home() {
        let f = fixture();
        let a = f.auth.verify("alice", "pässwörd".as_bytes()).unwrap();
        assert_eq!(
            a,
            Account {
                name: "alice".into(),
                uid: Some(1000),
                gid: Some(1000),
                home: Some("/home/alice".into()),
                mailbox: None
            }
        );
        assert_eq!(
            f.auth.verify("bob", b"correct horse").unwrap().uid,
            Some(1001)
        );
        assert_eq!(
            f.auth.verify("oldstyle", b"correct horse").unwrap().uid,
            Some(1007)
        );
        assert_eq!(
            f.auth.verify("future", b"correct horse").unwrap().uid,
            Some(1008)
        );
    }

    #[test]
    fn refusals() {
        let f = fixture();
        for (user, pw) in [
            ("alice", &b"wrong"[..]),
            ("root", b"correct horse"), // right password, uid 0
            ("locked", b"correct horse"),
            ("expired", b"correct horse"),
            ("pwexpired", b"correct horse"),
            ("mustchange", b"correct horse"),
            ("noshadow", b""),
            ("nosuchuser", b"correct horse"),
            ("+nis", b""),
            ("../alice", "pässwörd".as_bytes()),
        ] {
            assert!(
                matches!(f.auth.verify(user, pw), Err(AuthError::Invalid)),
                "{user} must be refused"
            );
        }
        assert!(!f.auth.has_plaintext_secrets());
        assert!(f.auth.plaintext_secret("alice").unwrap().is_none());
    }

    #[test]
    fn shadow_lines_written_by_debian_chpasswd() {
        // Produced by `chpasswd -R <chroot> -c YESCRYPT` (and `-c SHA512`, `-c YESCRYPT -s 7`)
        // from Debian 12's passwd 1:4.13 into a scratch /etc: the real on-disk format.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("passwd");
        let s = dir.path().join("shadow");
        fs::write(
            &p,
            "root:x:0:0:root:/root:/bin/bash\n\
             v1:x:4242:4242::/home/v1:/bin/sh\n\
             v2:x:4243:4243::/home/v2:/bin/sh\n\
             v3:x:4244:4244::/home/v3:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            &s,
            "root:*:19000:0:99999:7:::\n\
             v1:$y$j9T$A9AT4n3IpLLgW1C8zlaP01$cd2Y4tEWV23aOoHunMtKljQMo.g1VG5K.uZPvL2fevA:20783:0:99999:7:::\n\
             v2:$6$jNq1dNFd.bkJH3DS$BUtCvTH6Iyf1bgH1k.chS7vVXpV1LfpEMsl.u4wd9IX2pt5J08HsnogLwJGQYLrRxY9CxIV1IP.FpcAkMbPnc/:20783:0:99999:7:::\n\
             v3:$y$jBT$491tbnVm5CJR7ogO0wOl9.$aPHhYs6eCYDJXOBXzuAD8GH1Qi0G6rlvdtDJt3EGY5D:20783:0:99999:7:::\n",
        )
        .unwrap();
        let auth = SystemAuth::with_paths(&p, &s);
        assert_eq!(
            auth.verify("v1", "Tr0ub4dor&3 é".as_bytes()).unwrap().uid,
            Some(4242)
        );
        assert!(auth.verify("v1", b"Tr0ub4dor&3").is_err());
        assert_eq!(auth.verify("v2", b"Tr0ub4dor&3").unwrap().uid, Some(4243));
        assert_eq!(auth.verify("v3", b"Tr0ub4dor&3").unwrap().uid, Some(4244));
        assert!(auth.verify("v3", b"tr0ub4dor&3").is_err());
    }

    #[test]
    fn unknown_users_cost_about_what_wrong_passwords_cost() {
        let f = fixture();
        // Builds and caches the dummy (the first usable shadow hash is root's sha512-crypt).
        f.auth.verify("warmup", b"x").ok();
        let fail = |user: &'static str| {
            let auth = &f.auth;
            move || assert!(auth.verify(user, b"wrong").is_err())
        };
        let (mut known, mut unknown, mut locked) =
            (fail("bob"), fail("nosuchuser"), fail("locked"));
        let times = min_times(9, &mut [&mut known, &mut unknown, &mut locked]);
        assert_similar(&times, &["known", "unknown", "locked"]);
    }

    #[test]
    fn expiry_rules_match_pam_unix() {
        let e = |last, max, expire| ShadowEntry {
            hash: String::new(),
            last_change: last,
            max_days: max,
            inactive_days: None,
            expire,
        };
        assert_eq!(e(Some(100), Some(99999), None).refusal(200), None);
        assert_eq!(e(None, None, None).refusal(200), None);
        assert_eq!(e(Some(100), Some(50), None).refusal(150), None);
        assert_eq!(
            e(Some(100), Some(50), None).refusal(151),
            Some(Refusal::PasswordExpired)
        );
        let mut inact = e(Some(100), Some(50), None);
        inact.inactive_days = Some(10);
        assert_eq!(inact.refusal(160), Some(Refusal::PasswordExpired));
        assert_eq!(inact.refusal(161), Some(Refusal::Inactive));
        assert_eq!(
            e(Some(0), None, None).refusal(1),
            Some(Refusal::MustChangePassword)
        );
        assert_eq!(e(Some(100), None, Some(200)).refusal(199), None);
        assert_eq!(
            e(Some(100), None, Some(200)).refusal(200),
            Some(Refusal::AccountExpired)
        );
        assert_eq!(e(Some(100), Some(-1), Some(-1)).refusal(100_000), None);
    }

    #[test]
    fn unreadable_files_are_temporary_errors_and_fail_the_startup_check() {
        let dir = tempfile::tempdir().unwrap();
        let auth = SystemAuth::with_paths(&dir.path().join("p"), &dir.path().join("s"));
        assert!(matches!(
            auth.verify("alice", b"x"),
            Err(AuthError::Temporary(_))
        ));
        let err = auth.check().unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }

    #[test]
    fn real_system_files_are_readable_as_root() {
        // Tests run as root here; elsewhere /etc/shadow is unreadable and the check must say so.
        let auth = SystemAuth::new();
        let root = crate::sys::credentials::is_root();
        assert_eq!(auth.check().is_ok(), root);
        if root {
            assert!(matches!(
                auth.verify("mboxpopd-no-such-user", b"x"),
                Err(AuthError::Invalid)
            ));
        }
    }
}
