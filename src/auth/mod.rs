//! Account backends and password verification.
//!
//! - [`username`]: validation every client-supplied name passes before any lookup or path.
//! - [`hash`]: stored secrets (crypt(3), yescrypt, Dovecot `{SCHEME}` prefixes) and their
//!   constant-time verification; behind it `gate` (how many hash verifications run at once) and
//!   `dummy` (the work spent when there is no real hash, so failures take the same time).
//! - [`passwd_file`]: Dovecot-style passwd-file of virtual users, reloaded when it changes.
//! - [`system`]: the passwd and shadow databases through NSS, hashes verified here.
//! - [`pam`]: the system's PAM stack, accounts through NSS.
//!
//! Both backends answer every failure (unknown user, wrong password, locked or expired account)
//! with the same [`AuthError::Invalid`] after the same amount of work, so neither the reply nor
//! its timing tells a client which names exist.

mod account;
mod dummy;
mod gate;
pub mod hash;
pub mod pam;
pub mod passwd_file;
pub mod system;
pub mod username;

pub use account::{Account, AuthError};

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which account backend the daemon uses (`auth` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthBackend {
    /// /etc/passwd + /etc/shadow; sessions take the user's uid/gid.
    System,
    /// A Dovecot-style passwd-file of virtual users.
    PasswdFile,
    /// The PAM service `pam_service` checks the password and the account; NSS gives the
    /// uid/gid/home, as for `System`.
    Pam,
}

/// An account backend, shared by all session threads.
pub trait Authenticator: Send + Sync {
    /// Verify a user name and password (USER/PASS, SASL PLAIN and LOGIN). The name is
    /// validated here too, so callers cannot forget it.
    fn verify(&self, user: &str, password: &[u8]) -> Result<Account, AuthError>;

    /// [`verify`](Self::verify) for a client at `peer` (None: inetd over pipes). Only PAM
    /// uses the address (as `PAM_RHOST`, for pam_access and friends).
    fn verify_from(
        &self,
        user: &str,
        password: &[u8],
        peer: Option<IpAddr>,
    ) -> Result<Account, AuthError> {
        let _ = peer;
        self.verify(user, password)
    }

    /// The plaintext secret of `user`, for APOP and CRAM-MD5. `Ok(None)` for unknown users,
    /// invalid names and users whose secret is hashed.
    fn plaintext_secret(&self, user: &str) -> Result<Option<(Account, Vec<u8>)>, AuthError>;

    /// Whether the backend holds any plaintext secret at all (APOP/CRAM-MD5 can be offered).
    fn has_plaintext_secrets(&self) -> bool;

    /// Re-read backing files now (SIGHUP). Backends pick up changes by themselves too; this
    /// only forces it and reports a failure (the last good data stays in use).
    fn reload(&self) -> Result<(), String> {
        Ok(())
    }
}

/// What selects and configures the account backend (`auth`, `passwd_file` and the `pam_*`
/// settings); the configuration parses into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSettings {
    pub backend: AuthBackend,
    pub passwd_file: Option<PathBuf>,
    pub pam_service: String,
    pub pam_timeout: Duration,
    pub pam_max_concurrent: usize,
}

/// Build the configured backend. Errors are meant for the admin at startup (and `-t`): they
/// name the file and the problem, e.g. an unreadable passwd-file.
pub fn open(settings: &BackendSettings) -> Result<Box<dyn Authenticator>, String> {
    match settings.backend {
        AuthBackend::PasswdFile => {
            let path = settings
                .passwd_file
                .as_ref()
                .ok_or_else(|| "auth = passwd-file needs passwd_file = PATH".to_string())?;
            let backend = passwd_file::PasswdFile::open(path)?;
            Ok(Box::new(backend))
        }
        AuthBackend::System => {
            let backend = system::SystemAuth::new();
            backend.check()?;
            Ok(Box::new(backend))
        }
        AuthBackend::Pam => {
            let backend = pam::PamAuth::new(
                &settings.pam_service,
                settings.pam_timeout,
                settings.pam_max_concurrent,
            );
            backend.check()?;
            Ok(Box::new(backend))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn passwd_file(path: Option<PathBuf>) -> BackendSettings {
        BackendSettings {
            backend: AuthBackend::PasswdFile,
            passwd_file: path,
            pam_service: "mboxpopd".into(),
            pam_timeout: Duration::from_secs(30),
            pam_max_concurrent: 4,
        }
    }

    #[test]
    fn open_builds_a_working_passwd_file_backend() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        writeln!(f, "alice:{{PLAIN}}wonderland::::::").unwrap();
        let auth = open(&passwd_file(Some(f.path().to_path_buf()))).unwrap();
        assert!(auth.has_plaintext_secrets());
        assert_eq!(auth.verify("alice", b"wonderland").unwrap().name, "alice");
        assert!(matches!(
            auth.verify("alice", b"x"),
            Err(AuthError::Invalid)
        ));
    }

    #[test]
    fn open_fails_clearly() {
        assert!(open(&passwd_file(None))
            .err()
            .unwrap()
            .contains("passwd_file"));

        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = open(&passwd_file(Some(missing.clone()))).err().unwrap();
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }
}
