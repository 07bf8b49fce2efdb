//! `auth = pam`: the password and the account checked by the system's PAM stack
//! (`/etc/pam.d/<pam_service>`), the uid/gid/home then looked up through NSS.
//!
//! A login runs `pam_authenticate` and `pam_acct_mgmt` with `PAM_USER` set to the validated
//! name and `PAM_RHOST` to the client's address; the session then serves `PAM_USER` as the
//! stack left it (modules may map names). Any refusal is [`AuthError::Invalid`], the same
//! `-ERR [AUTH]` and penalty as a wrong password; errors of the system kind (a module that
//! cannot be loaded, an unreachable directory, a conversation that took too long) are
//! [`AuthError::Temporary`].
//!
//! PAM modules may block (network directories, `pam_exec`, `pam_faildelay`) and are not all
//! thread-safe, so every conversation runs in a thread of its own, at most
//! `pam_max_concurrent` at once across the whole process. The session thread waits at most
//! `pam_timeout` for a slot and at most `pam_timeout` for the answer; a conversation that
//! overruns is abandoned (its answer is discarded when it comes) and keeps its slot until its
//! modules return, so a hung module costs one slot, never the daemon.
//!
//! Identity while PAM runs: the conversation thread is started by the session thread inside
//! `credentials::with_root_files` and inherits its credentials: real/effective/saved uid 0
//! (what modules such as pam_unix test before reading /etc/shadow themselves), file-system
//! uid and gid 0 (root's owner bits: /etc/shadow, /run/faillock), no supplementary groups and
//! only CAP_SETUID/CAP_SETGID/CAP_SETPCAP, no capability that overrides file modes. The only
//! session data it receives are the user name (after `username::validate`), the password
//! (refused when it holds a NUL, which C strings cannot carry) and the client's address as
//! text. A program run by `pam_exec` is started by execve as uid 0 and gets root's full
//! capabilities, as under any other POP3 daemon that uses PAM: the admin chose it.

use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Condvar, Mutex};
use std::time::{Duration, Instant};

use pam_client::{Context, ConversationHandler, ErrorCode, Flag};

use super::{username, Account, AuthError, Authenticator};
use crate::sys::credentials;

/// The conversation slots of the whole process: a reload replaces the backend, not the
/// threads still stuck in the old one, so the bound must outlive any one backend.
struct Slots {
    max: AtomicUsize,
    busy: Mutex<usize>,
    freed: Condvar,
}

static SLOTS: Slots = Slots {
    max: AtomicUsize::new(4),
    busy: Mutex::new(0),
    freed: Condvar::new(),
};

/// One running conversation; dropped by the conversation thread when its modules return.
struct Slot(&'static Slots);

impl Slots {
    fn acquire(&'static self, deadline: Instant) -> Option<Slot> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if *busy < self.max.load(Ordering::Relaxed) {
                *busy += 1;
                return Some(Slot(self));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            busy = self
                .freed
                .wait_timeout(busy, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn busy(&self) -> usize {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|e| e.into_inner());
        *busy = busy.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

/// Answers the stack's prompts: the user name where it asks with echo, the password where it
/// asks without (what popa3d answers). Module messages are logged, never sent to the client.
struct Conversation {
    user: CString,
    password: CString,
}

impl ConversationHandler for Conversation {
    fn prompt_echo_on(&mut self, _prompt: &CStr) -> Result<CString, ErrorCode> {
        Ok(self.user.clone())
    }

    fn prompt_echo_off(&mut self, _prompt: &CStr) -> Result<CString, ErrorCode> {
        Ok(self.password.clone())
    }

    fn text_info(&mut self, msg: &CStr) {
        log::debug!("PAM info for {:?}: {:?}", self.user, msg);
    }

    fn error_msg(&mut self, msg: &CStr) {
        log::info!("PAM message for {:?}: {:?}", self.user, msg);
    }
}

impl Drop for Conversation {
    /// Wipe this copy of the password (libpam's copies are its modules' business).
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.password).into_bytes();
        bytes.fill(0);
        std::hint::black_box(&bytes);
    }
}

/// Why a PAM call failed, as the client will be told.
fn classify(service: &str, step: &str, user: &str, e: &pam_client::Error) -> AuthError {
    use ErrorCode::*;
    match e.code() {
        // The stack said no: wrong password, unknown or locked user, expired account or
        // password (POP3 cannot change it), a policy module's refusal.
        AUTH_ERR | USER_UNKNOWN | PERM_DENIED | MAXTRIES | ACCT_EXPIRED | NEW_AUTHTOK_REQD
        | AUTHTOK_EXPIRED | CRED_INSUFFICIENT | CRED_EXPIRED | CONV_ERR => {
            log::info!("PAM {service} {step} refused {user:?}: {e}");
            AuthError::Invalid
        }
        // The stack could not decide: broken configuration, a module that failed to load, a
        // directory service out of reach.
        _ => AuthError::Temporary(format!("PAM {service} {step} for {user:?}: {e}")),
    }
}

/// What a conversation thread gets: nothing else from the session reaches PAM.
struct Request {
    service: String,
    user: String,
    password: Vec<u8>,
    rhost: Option<String>,
}

/// Run the authentication and account stacks; the user name PAM ended with.
fn converse(req: Request) -> Result<String, AuthError> {
    let Request {
        service,
        user,
        password,
        rhost,
    } = req;
    // Checked by the caller; a failure here would be a bug, answered as a refusal.
    let (Ok(cuser), Ok(cpassword)) = (CString::new(user.as_str()), CString::new(password)) else {
        return Err(AuthError::Invalid);
    };
    let conv = Conversation {
        user: cuser,
        password: cpassword,
    };
    let mut ctx = Context::new(&service, Some(&user), conv)
        .map_err(|e| AuthError::Temporary(format!("pam_start({service}): {e}")))?;
    if let Some(rhost) = &rhost {
        ctx.set_rhost(Some(rhost))
            .map_err(|e| AuthError::Temporary(format!("PAM_RHOST: {e}")))?;
    }
    // No module may show the client anything, and an empty password is never a login.
    let flags = Flag::SILENT | Flag::DISALLOW_NULL_AUTHTOK;
    ctx.authenticate(flags)
        .map_err(|e| classify(&service, "authentication", &user, &e))?;
    ctx.acct_mgmt(flags)
        .map_err(|e| classify(&service, "account", &user, &e))?;
    ctx.user()
        .map_err(|e| AuthError::Temporary(format!("PAM_USER after login: {e}")))
}

/// The PAM backend.
pub struct PamAuth {
    service: String,
    timeout: Duration,
}

impl PamAuth {
    /// `max_concurrent` bounds the conversations of the whole process (the latest value wins
    /// on reload).
    pub fn new(service: &str, timeout: Duration, max_concurrent: usize) -> PamAuth {
        SLOTS.max.store(max_concurrent.max(1), Ordering::Relaxed);
        PamAuth {
            service: service.to_string(),
            timeout,
        }
    }

    /// Startup check: the service has a file. Without one, libpam falls back to the `other`
    /// service (on Debian: deny everything, with a warning), which would look like a wrong
    /// password at every login.
    pub fn check(&self) -> Result<(), String> {
        let dirs = ["/etc/pam.d", "/usr/lib/pam.d"];
        let found = dirs
            .iter()
            .any(|d| Path::new(d).join(&self.service).is_file());
        // A system configured through the single /etc/pam.conf has no pam.d at all.
        let legacy = !Path::new("/etc/pam.d").is_dir() && Path::new("/etc/pam.conf").is_file();
        if found || legacy {
            Ok(())
        } else {
            Err(format!(
                "auth = pam: no PAM service file /etc/pam.d/{0} (install etc/pam.d/mboxpopd, \
                 or copy another service's: cp /etc/pam.d/popa3d /etc/pam.d/{0})",
                self.service
            ))
        }
    }

    /// The account NSS knows under the name PAM settled on.
    fn account(&self, pam_user: &str) -> Result<Account, AuthError> {
        let name = username::validate(pam_user).map_err(|e| {
            log::warn!(
                "PAM {} mapped the login to an unusable name: {e}",
                self.service
            );
            AuthError::Invalid
        })?;
        let entry = credentials::getpwnam(name)
            .map_err(|e| AuthError::Temporary(format!("passwd lookup of {name:?}: {e}")))?
            .ok_or_else(|| {
                log::warn!(
                    "PAM {} accepted {name:?}, which NSS does not know: no uid to serve it as",
                    self.service
                );
                AuthError::Invalid
            })?;
        if entry.uid == 0 {
            log::warn!("account {name:?} has uid 0: POP3 logins as root are refused");
            return Err(AuthError::Invalid);
        }
        Ok(Account {
            name: name.to_string(),
            uid: Some(entry.uid),
            gid: Some(entry.gid),
            home: Some(entry.home),
            mailbox: None,
        })
    }
}

impl Authenticator for PamAuth {
    fn verify(&self, user: &str, password: &[u8]) -> Result<Account, AuthError> {
        self.verify_from(user, password, None)
    }

    fn verify_from(
        &self,
        user: &str,
        password: &[u8],
        peer: Option<IpAddr>,
    ) -> Result<Account, AuthError> {
        let Ok(name) = username::validate(user) else {
            return Err(AuthError::Invalid);
        };
        if password.contains(&0) {
            return Err(AuthError::Invalid);
        }
        let slot = SLOTS
            .acquire(Instant::now() + self.timeout)
            .ok_or_else(|| {
                AuthError::Temporary(format!(
                    "all {} PAM conversations busy for {}s",
                    SLOTS.busy(),
                    self.timeout.as_secs_f64()
                ))
            })?;
        let request = Request {
            service: self.service.clone(),
            user: name.to_string(),
            password: password.to_vec(),
            rhost: peer.map(|ip| ip.to_canonical().to_string()),
        };
        let (tx, rx) = mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(String::from("pam"))
            .spawn(move || {
                let _slot = slot;
                let outcome = credentials::with_root_files(|| converse(request));
                // The session may have given up waiting; its answer is then dropped.
                let _ = tx.send(outcome);
            })
            .map_err(|e| AuthError::Temporary(format!("cannot start a PAM conversation: {e}")))?;
        let pam_user = match rx.recv_timeout(self.timeout) {
            Ok(outcome) => outcome?,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(AuthError::Temporary(format!(
                    "PAM {} conversation for {name:?} took longer than {}s (abandoned)",
                    self.service,
                    self.timeout.as_secs_f64()
                )))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(AuthError::Temporary(String::from(
                    "PAM conversation ended without an answer",
                )))
            }
        };
        self.account(&pam_user)
    }

    fn plaintext_secret(&self, _user: &str) -> Result<Option<(Account, Vec<u8>)>, AuthError> {
        Ok(None)
    }

    /// PAM only checks a password it is given: APOP and CRAM-MD5 cannot work.
    fn has_plaintext_secrets(&self) -> bool {
        false
    }

    fn reload(&self) -> Result<(), String> {
        self.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_need_no_pam_call() {
        let auth = PamAuth::new("mboxpopd-test-none", Duration::from_secs(1), 4);
        for (user, pw) in [
            ("../etc", &b"x"[..]),
            ("", b"x"),
            ("a b", b"x"),
            ("alice", b"pass\0word"),
        ] {
            assert!(
                matches!(auth.verify(user, pw), Err(AuthError::Invalid)),
                "{user:?}"
            );
        }
        assert!(!auth.has_plaintext_secrets());
        assert!(auth.plaintext_secret("alice").unwrap().is_none());
        assert!(auth
            .check()
            .unwrap_err()
            .contains("/etc/pam.d/mboxpopd-test-none"));
    }
}
