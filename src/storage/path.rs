//! Mailbox path templates: where an account's mbox lives.
//!
//! Escapes: `%u` the user name, `%h` the home directory, `%%` a literal `%`; a leading `~/`
//! (or a template that is just `~`) stands for the home directory, as in `~/Mailbox`. Anything
//! else after `%` is an error rather than a literal, so a typo such as `%U` cannot silently
//! put every user into the same file.
//!
//! A per-account `mailbox` from the backend (passwd-file `mail=`) replaces the configured
//! template and is expanded the same way.
//!
//! The user name is validated again here (it already was at login): a name with `/`, a leading
//! `.`, NUL or control characters never reaches a path, whatever the caller forgot.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use crate::auth::username::{self, UsernameError};
use crate::auth::Account;
use crate::storage::StoreError;

/// Longest path we build (Linux PATH_MAX).
const MAX_PATH: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// The account name failed validation.
    InvalidUser(UsernameError),
    /// `%` followed by something other than `u`, `h` or `%`.
    UnknownEscape(char),
    /// The template ends with a lone `%`.
    TrailingPercent,
    /// `%h` or `~` used but the account has no (absolute) home directory.
    NoHome,
    /// `~user/...` forms are not supported.
    TildeUser,
    /// The expansion is not an absolute path.
    NotAbsolute(PathBuf),
    /// The expansion contains a `..` component (from the template or the home directory).
    DotDot(PathBuf),
    /// Empty template, NUL byte, or longer than PATH_MAX.
    Invalid(&'static str),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::InvalidUser(e) => write!(f, "invalid user name: {e}"),
            PathError::UnknownEscape(c) => {
                write!(
                    f,
                    "unknown escape %{c} in mailbox template (use %u, %h or %%)"
                )
            }
            PathError::TrailingPercent => write!(f, "mailbox template ends with a lone %"),
            PathError::NoHome => write!(f, "mailbox template needs a home directory (%h or ~)"),
            PathError::TildeUser => write!(f, "~user in a mailbox template is not supported"),
            PathError::NotAbsolute(p) => {
                write!(f, "mailbox path {} is not absolute", p.display())
            }
            PathError::DotDot(p) => write!(f, "mailbox path {} contains '..'", p.display()),
            PathError::Invalid(m) => write!(f, "invalid mailbox path: {m}"),
        }
    }
}

impl std::error::Error for PathError {}

/// A bad template or home directory is an admin's error that retrying will not fix.
impl From<PathError> for StoreError {
    fn from(e: PathError) -> StoreError {
        StoreError::Permanent(e.to_string())
    }
}

fn home_bytes(account: &Account) -> Result<&[u8], PathError> {
    match &account.home {
        Some(h) if h.is_absolute() => Ok(h.as_os_str().as_bytes()),
        _ => Err(PathError::NoHome),
    }
}

/// Expand the mailbox location of `account`: its own `mailbox` if the backend gave one,
/// else `template`.
pub fn expand_mailbox_template(template: &str, account: &Account) -> Result<PathBuf, PathError> {
    let name = username::validate(&account.name).map_err(PathError::InvalidUser)?;
    let source: &[u8] = match &account.mailbox {
        Some(m) => m.as_os_str().as_bytes(),
        None => template.as_bytes(),
    };
    if source.is_empty() {
        return Err(PathError::Invalid("empty mailbox template"));
    }

    let mut out = Vec::with_capacity(source.len() + name.len() + 32);
    let mut rest = source;
    if rest == b"~" || rest.starts_with(b"~/") {
        out.extend_from_slice(home_bytes(account)?);
        rest = &rest[1..];
    } else if rest.starts_with(b"~") {
        return Err(PathError::TildeUser);
    }

    let mut bytes = rest.iter();
    while let Some(&b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'u') => out.extend_from_slice(name.as_bytes()),
            Some(b'h') => out.extend_from_slice(home_bytes(account)?),
            Some(b'%') => out.push(b'%'),
            Some(&other) => {
                // Report the whole character when the escape starts a UTF-8 sequence.
                let at = rest.len() - bytes.as_slice().len() - 1;
                let window = &rest[at..(at + 4).min(rest.len())];
                let c = String::from_utf8_lossy(window)
                    .chars()
                    .next()
                    .unwrap_or(other as char);
                return Err(PathError::UnknownEscape(c));
            }
            None => return Err(PathError::TrailingPercent),
        }
    }

    if out.contains(&0) {
        return Err(PathError::Invalid("NUL byte in mailbox path"));
    }
    if out.len() > MAX_PATH {
        return Err(PathError::Invalid("mailbox path longer than PATH_MAX"));
    }
    let path = PathBuf::from(OsString::from_vec(out));
    if !path.is_absolute() {
        return Err(PathError::NotAbsolute(path));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(PathError::DotDot(path));
    }
    Ok(path)
}

/// The dot-lock path MDAs use for `mailbox` (`/var/mail/alice` → `/var/mail/alice.lock`).
pub fn dotlock_path(mailbox: &Path) -> PathBuf {
    let mut s = mailbox.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn acct(name: &str) -> Account {
        Account {
            name: name.to_string(),
            uid: Some(1000),
            gid: Some(1000),
            home: Some(PathBuf::from("/home/alice")),
            mailbox: None,
        }
    }

    fn expand(t: &str, name: &str) -> Result<PathBuf, PathError> {
        expand_mailbox_template(t, &acct(name))
    }

    #[test]
    fn expands_escapes() {
        assert_eq!(
            expand("/var/mail/%u", "alice"),
            Ok("/var/mail/alice".into())
        );
        assert_eq!(
            expand("%h/Mailbox", "alice"),
            Ok("/home/alice/Mailbox".into())
        );
        assert_eq!(
            expand("~/Mailbox", "alice"),
            Ok("/home/alice/Mailbox".into())
        );
        assert_eq!(expand("~", "alice"), Ok("/home/alice".into()));
        assert_eq!(
            expand("/srv/%u/%u.mbox", "bob"),
            Ok("/srv/bob/bob.mbox".into())
        );
        assert_eq!(expand("/srv/100%%/%u", "bob"), Ok("/srv/100%/bob".into()));
        assert_eq!(
            expand("/var/mail/%u", "jürgen"),
            Ok("/var/mail/jürgen".into())
        );
        assert_eq!(
            expand("/var/mail/static", "alice"),
            Ok("/var/mail/static".into())
        );
    }

    #[test]
    fn template_errors() {
        assert_eq!(
            expand("/var/mail/%U", "a"),
            Err(PathError::UnknownEscape('U'))
        );
        assert_eq!(
            expand("/var/mail/%é", "a"),
            Err(PathError::UnknownEscape('é'))
        );
        assert_eq!(expand("/var/mail/%", "a"), Err(PathError::TrailingPercent));
        assert_eq!(
            expand("", "a"),
            Err(PathError::Invalid("empty mailbox template"))
        );
        assert_eq!(expand("~bob/Mailbox", "a"), Err(PathError::TildeUser));
        assert_eq!(
            expand("mail/%u", "a"),
            Err(PathError::NotAbsolute("mail/a".into()))
        );
        assert_eq!(
            expand("/var/mail/../../etc/%u", "a"),
            Err(PathError::DotDot("/var/mail/../../etc/a".into()))
        );
        let mut no_home = acct("alice");
        no_home.home = None;
        assert_eq!(
            expand_mailbox_template("%h/mbox", &no_home),
            Err(PathError::NoHome)
        );
        assert_eq!(
            expand_mailbox_template("~/mbox", &no_home),
            Err(PathError::NoHome)
        );
        no_home.home = Some("relative/home".into());
        assert_eq!(
            expand_mailbox_template("%h/mbox", &no_home),
            Err(PathError::NoHome)
        );
        assert!(expand(&format!("/{}%u", "x/".repeat(2100)), "a").is_err());
    }

    #[test]
    fn account_mailbox_overrides_template() {
        let mut a = acct("alice");
        a.mailbox = Some("/srv/mail/%u.mbox".into());
        assert_eq!(
            expand_mailbox_template("/var/mail/%u", &a),
            Ok("/srv/mail/alice.mbox".into())
        );
        a.mailbox = Some("~/mail/inbox".into());
        assert_eq!(
            expand_mailbox_template("/var/mail/%u", &a),
            Ok("/home/alice/mail/inbox".into())
        );
        a.mailbox = Some("relative".into());
        assert!(matches!(
            expand_mailbox_template("/var/mail/%u", &a),
            Err(PathError::NotAbsolute(_))
        ));
    }

    #[test]
    fn traversal_names_never_reach_a_path() {
        let names = [
            "../etc/passwd",
            "a/../../b",
            "..",
            ".",
            "",
            "a\0b",
            "a/b",
            "/etc/passwd",
            "..\\..\\x",
            "../",
            "./alice",
            "alice/",
            "%2e%2e",
            "a\nb",
            ".lock",
        ];
        for t in ["/var/mail/%u", "%h/%u", "~/%u/mbox", "/srv/%u/%u"] {
            for n in names {
                match expand(t, n) {
                    Err(PathError::InvalidUser(_)) => {}
                    other => panic!("{t} with {n:?} gave {other:?}"),
                }
            }
            // Even with an account mailbox, the name is checked first.
            let mut a = acct("../root");
            a.mailbox = Some("/srv/ok".into());
            assert!(matches!(
                expand_mailbox_template(t, &a),
                Err(PathError::InvalidUser(_))
            ));
        }
    }

    #[test]
    fn dotlock_names() {
        assert_eq!(
            dotlock_path(Path::new("/var/mail/alice")),
            PathBuf::from("/var/mail/alice.lock")
        );
    }

    #[test]
    fn errors_map_to_permanent_store_errors() {
        let e: StoreError = PathError::TrailingPercent.into();
        assert!(matches!(e, StoreError::Permanent(m) if m.contains('%')));
    }

    proptest! {
        // Whatever the name, an expansion of /var/mail/%u is either refused or exactly one file
        // directly inside /var/mail named after the user.
        #[test]
        fn expansions_stay_inside_the_spool(name in "\\PC{0,20}|[./\\\\a-z\\x00%~]{0,10}") {
            if let Ok(p) = expand("/var/mail/%u", &name) {
                prop_assert_eq!(p.parent(), Some(Path::new("/var/mail")));
                prop_assert_eq!(p.file_name().and_then(|f| f.to_str()), Some(name.as_str()));
                let normal = p.components().filter(|c| matches!(c, Component::Normal(_))).count();
                prop_assert_eq!(normal, 3);
            }
        }

        #[test]
        fn home_templates_stay_inside_home(name in "\\PC{0,20}|[./a-z\\x00]{0,10}") {
            if let Ok(p) = expand("%h/mail/%u", &name) {
                prop_assert!(p.starts_with("/home/alice/mail"));
                prop_assert_eq!(p.components().count(), 5);
            }
        }
    }
}
