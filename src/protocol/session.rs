//! The POP3 session state machine (RFC 1939 states, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034
//! AUTH, RFC 6856 UTF8/LANG).
//!
//! The session owns no socket: the driver (`server::connection`) feeds it one line at a time,
//! it writes responses into the driver's buffered writer and returns a [`Step`] telling the
//! driver whether to continue, close or start TLS, and how long to wait before flushing
//! (failed logins are slowed down). The driver flushes only when no further pipelined line is
//! buffered, so each response leaves in as few writes as possible.

use std::io::{self, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::protocol::command::{self, Command, MessageNumber, ParseError};
use crate::protocol::error::{Account, AuthError};
use crate::protocol::ports::{Maildrop, Services};
use crate::protocol::response::{self, Code};
use crate::protocol::sasl::{self, ClientResponse, Mechanism};

/// Everything the session needs to know about its connection and configuration.
/// When plaintext passwords (USER/PASS, AUTH PLAIN/LOGIN) are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaintextAuth {
    /// USER/PASS, AUTH PLAIN/LOGIN never allowed.
    Never,
    /// Allowed on TLS connections and from loopback only.
    Tls,
    /// Always allowed.
    Always,
}

#[derive(Debug, Clone)]
pub struct SessionParams {
    pub hostname: String,
    /// e.g. "mboxpopd 0.1.0", sent as the RFC 2449 IMPLEMENTATION capability.
    pub implementation: String,
    /// `<pid.nanos@host>` when APOP is enabled and usable; it then appears in the greeting.
    pub apop_timestamp: Option<String>,
    /// The connection is already encrypted (implicit TLS).
    pub tls_active: bool,
    /// A TLS context exists, so STLS may be offered on a plaintext connection.
    pub stls_available: bool,
    pub plaintext_auth: PlaintextAuth,
    /// Loopback peers (and inetd over pipes) may use plaintext auth under `plaintext_auth = tls`.
    pub peer_is_loopback: bool,
    /// The peer as it appears in log lines.
    pub peer: String,
    /// The peer is a trusted proxy: XCLIENT is offered (greeting and CAPA) and accepted.
    pub xclient: bool,
    pub login_delay: Option<u64>,
    pub max_auth_failures: u32,
    pub auth_failure_delay: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Close,
    /// The session answered STLS with `+OK`: flush, discard buffered input, handshake, then
    /// call [`Session::tls_started`].
    StartTls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub flow: Flow,
    /// Wait this long before flushing the response (failed authentication).
    pub delay: Option<Duration>,
}

impl Step {
    fn cont() -> Step {
        Step {
            flow: Flow::Continue,
            delay: None,
        }
    }
    fn close() -> Step {
        Step {
            flow: Flow::Close,
            delay: None,
        }
    }
}

/// What the session-end log line reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSummary {
    pub user: Option<String>,
    /// (messages, octets) sent by RETR.
    pub retrieved: (u64, u64),
    /// (messages, octets) removed by the QUIT commit.
    pub deleted: (u64, u64),
    pub auth_failures: u32,
    /// "quit" after QUIT; otherwise empty and the driver supplies the reason (eof, timeout...).
    pub end: &'static str,
}

enum SaslStage {
    Plain,
    LoginUser,
    LoginPassword { user: String },
    CramMd5 { challenge: String },
}

enum State {
    Authorization { user: Option<String> },
    Sasl(SaslStage),
    Transaction(Transaction),
    Closed,
}

struct Transaction {
    maildrop: Box<dyn Maildrop>,
    deleted: Vec<bool>,
}

impl Transaction {
    fn totals(&self) -> (usize, u64) {
        self.deleted
            .iter()
            .enumerate()
            .filter(|(_, &d)| !d)
            .fold((0, 0), |(n, o), (i, _)| (n + 1, o + self.maildrop.size(i)))
    }

    /// Resolve a 1-based message number to an index of a message that is not deleted.
    fn resolve(&self, number: MessageNumber) -> Result<usize, String> {
        match number {
            MessageNumber::Number(n) if n >= 1 && n <= self.deleted.len() as u64 => {
                let index = (n - 1) as usize;
                if self.deleted[index] {
                    Err(format!("Message {n} already deleted"))
                } else {
                    Ok(index)
                }
            }
            _ => Err(String::from("No such message")),
        }
    }
}

const LANGUAGES: &[(&str, &str)] = &[("en", "English"), ("i-default", "Default language")];

pub struct Session<'a> {
    services: &'a dyn Services,
    params: SessionParams,
    state: State,
    tls_active: bool,
    utf8: bool,
    /// The capabilities offered in AUTHORIZATION, kept for CAPA after login (RFC 2449 §5:
    /// capabilities available in AUTHORIZATION must be announced in both states).
    authorization_capabilities: Vec<String>,
    summary: SessionSummary,
}

impl<'a> Session<'a> {
    pub fn new(services: &'a dyn Services, params: SessionParams) -> Self {
        let tls_active = params.tls_active;
        Session {
            services,
            params,
            state: State::Authorization { user: None },
            tls_active,
            utf8: false,
            authorization_capabilities: Vec::new(),
            summary: SessionSummary::default(),
        }
    }

    pub fn greeting(&self, out: &mut dyn Write) -> io::Result<()> {
        // Dovecot's POP3 proxy looks for `[XCLIENT]` right after `+OK` in the greeting.
        let xclient = if self.params.xclient {
            "[XCLIENT] "
        } else {
            ""
        };
        match &self.params.apop_timestamp {
            Some(ts) => response::ok(out, &format!("{xclient}POP3 server ready {ts}")),
            None => response::ok(out, &format!("{xclient}POP3 server ready")),
        }
    }

    /// The client as log lines name it (changed by XCLIENT).
    pub fn peer(&self) -> &str {
        &self.params.peer
    }

    /// The longest line the driver should accept next: AUTH initial responses and SASL
    /// continuations may exceed the normal command limit (RFC 5034 §4).
    pub fn max_line_len(&self) -> usize {
        match self.state {
            State::Authorization { .. } | State::Sasl(_) => command::MAX_SASL_LINE,
            _ => command::MAX_COMMAND_LINE,
        }
    }

    pub fn summary(&self) -> SessionSummary {
        self.summary.clone()
    }

    pub fn is_logged_in(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    pub fn tls_started(&mut self) {
        self.tls_active = true;
        // RFC 2595 §4: forget everything learned before the handshake.
        self.state = State::Authorization { user: None };
    }

    /// The reader dropped a line longer than [`Session::max_line_len`].
    pub fn line_too_long(&mut self, out: &mut dyn Write) -> Step {
        if let State::Sasl(_) = self.state {
            self.state = State::Authorization { user: None };
        }
        self.finish(response::err(out, "Command line too long"), Step::cont())
    }

    pub fn handle_line(&mut self, line: &[u8], out: &mut dyn Write) -> Step {
        if let State::Sasl(_) = self.state {
            let result = self.sasl_continue(line, out);
            return self.finish_result(result);
        }
        let result = match command::parse(line) {
            Ok(cmd) => self.dispatch(cmd, out),
            Err(e) => {
                self.forget_pending_user();
                let text = match e {
                    ParseError::Empty => String::from("Empty command"),
                    ParseError::TooLong => String::from("Command line too long"),
                    ParseError::Unknown => String::from("Unknown command"),
                    ParseError::Syntax(usage) => format!("Syntax error, expected: {usage}"),
                };
                response::err(out, &text).map(|_| Step::cont())
            }
        };
        self.finish_result(result)
    }

    fn finish_result(&mut self, result: io::Result<Step>) -> Step {
        match result {
            Ok(step) => {
                if step.flow == Flow::Close {
                    self.state = State::Closed;
                }
                step
            }
            Err(e) => {
                // The client stopped reading (send timeout) or went away mid-response.
                self.summary.end = match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "write timeout",
                    _ => "disconnected",
                };
                self.state = State::Closed;
                Step::close()
            }
        }
    }

    fn finish(&mut self, result: io::Result<()>, step: Step) -> Step {
        self.finish_result(result.map(|_| step))
    }

    fn forget_pending_user(&mut self) {
        if let State::Authorization { user } = &mut self.state {
            *user = None;
        }
    }

    fn dispatch(&mut self, cmd: Command, out: &mut dyn Write) -> io::Result<Step> {
        // Commands valid in every state.
        match &cmd {
            Command::Capa => {
                self.forget_pending_user();
                return self.capa(out);
            }
            Command::Utf8 => {
                self.forget_pending_user();
                self.utf8 = true;
                response::ok(out, "UTF8 enabled")?;
                return Ok(Step::cont());
            }
            Command::Lang(arg) => {
                self.forget_pending_user();
                return self.lang(arg.as_deref(), out);
            }
            _ => {}
        }
        match self.state {
            State::Authorization { .. } => self.authorization(cmd, out),
            State::Transaction(_) => self.transaction(cmd, out),
            State::Sasl(_) | State::Closed => {
                response::err(out, "Session is closing")?;
                Ok(Step::close())
            }
        }
    }

    // ---- AUTHORIZATION -------------------------------------------------------------------

    fn plaintext_allowed(&self) -> bool {
        match self.params.plaintext_auth {
            PlaintextAuth::Never => false,
            PlaintextAuth::Always => true,
            PlaintextAuth::Tls => self.tls_active || self.params.peer_is_loopback,
        }
    }

    fn mechanisms(&self) -> Vec<Mechanism> {
        let mut mechs = Vec::new();
        if self.plaintext_allowed() {
            mechs.push(Mechanism::Plain);
            mechs.push(Mechanism::Login);
        }
        if self.services.has_plaintext_secrets() {
            mechs.push(Mechanism::CramMd5);
        }
        mechs
    }

    fn authorization(&mut self, cmd: Command, out: &mut dyn Write) -> io::Result<Step> {
        let pending = match &mut self.state {
            State::Authorization { user } => user.take(),
            _ => None,
        };
        match cmd {
            Command::User(name) => {
                if !self.plaintext_allowed() {
                    return refuse_plaintext(out);
                }
                // Unknown users get the same answer as known ones; PASS decides.
                let name = String::from_utf8_lossy(&name).into_owned();
                self.state = State::Authorization { user: Some(name) };
                response::ok(out, "Send your password")?;
                Ok(Step::cont())
            }
            Command::Pass(password) => {
                if !self.plaintext_allowed() {
                    return refuse_plaintext(out);
                }
                let Some(user) = pending else {
                    response::err(out, "No user name given, send USER first")?;
                    return Ok(Step::cont());
                };
                let result = self.services.authenticate(&user, &password);
                self.complete_login(&user, result, out)
            }
            Command::Apop { name, digest } => {
                let Some(timestamp) = self.params.apop_timestamp.clone() else {
                    response::err(out, "APOP is not enabled")?;
                    return Ok(Step::cont());
                };
                let user = String::from_utf8_lossy(&name).into_owned();
                let result = match self.services.plaintext_secret(&user) {
                    Ok(Some((account, secret)))
                        if sasl::verify_apop(&timestamp, &secret, &digest) =>
                    {
                        Ok(account)
                    }
                    Ok(_) => Err(AuthError::Invalid),
                    Err(e) => Err(e),
                };
                self.complete_login(&user, result, out)
            }
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial, out),
            Command::Stls => {
                if self.tls_active {
                    response::err(out, "Command not permitted when TLS active")?;
                } else if !self.params.stls_available {
                    response::err(out, "TLS is not available")?;
                } else {
                    response::ok(out, "Begin TLS negotiation")?;
                    return Ok(Step {
                        flow: Flow::StartTls,
                        delay: None,
                    });
                }
                Ok(Step::cont())
            }
            Command::Quit => {
                self.summary.end = "quit";
                response::ok(out, "Logging out")?;
                Ok(Step::close())
            }
            Command::Stat
            | Command::List(_)
            | Command::Retr(_)
            | Command::Dele(_)
            | Command::Noop
            | Command::Rset
            | Command::Top(..)
            | Command::Uidl(_) => {
                response::err(
                    out,
                    "Not logged in, command valid only in TRANSACTION state",
                )?;
                Ok(Step::cont())
            }
            Command::Xclient { addr, port } => self.xclient(addr, port, out),
            Command::Capa | Command::Utf8 | Command::Lang(_) => unreachable!("handled in dispatch"),
        }
    }

    /// A trusted proxy names the real client before login: from here on the session, its log
    /// lines, the penalty and the limits are that client's, and it is judged as that client
    /// for plaintext logins (a client behind a proxy on this host is not local).
    fn xclient(
        &mut self,
        addr: std::net::IpAddr,
        port: Option<u16>,
        out: &mut dyn Write,
    ) -> io::Result<Step> {
        if !self.params.xclient {
            response::err(out, "Unknown command")?;
            return Ok(Step::cont());
        }
        if !self.services.set_client(addr) {
            log::warn!(
                "refused {addr} (via XCLIENT from {}): too many connections",
                self.params.peer
            );
            response::err_code(out, Code::SysTemp, "too many connections, try again later")?;
            return Ok(Step::close());
        }
        log::info!(
            "xclient: proxy={} peer={addr} port={}",
            self.params.peer,
            port.map_or_else(|| String::from("-"), |p| p.to_string())
        );
        self.params.peer = addr.to_string();
        self.params.peer_is_loopback = addr.is_loopback();
        // The named client is no proxy: it may not rename itself.
        self.params.xclient = false;
        response::ok(out, "")?;
        Ok(Step::cont())
    }

    fn auth(
        &mut self,
        mechanism: Option<Vec<u8>>,
        initial: Option<Vec<u8>>,
        out: &mut dyn Write,
    ) -> io::Result<Step> {
        let usable = self.mechanisms();
        let Some(name) = mechanism else {
            // De facto extension (pre-RFC 5034 clients): list the mechanisms.
            response::ok(out, "Supported mechanisms follow")?;
            for m in &usable {
                response::data_line(out, m.name())?;
            }
            response::end_multiline(out)?;
            return Ok(Step::cont());
        };
        let Some(mech) = Mechanism::from_name(&name).filter(|m| usable.contains(m)) else {
            if matches!(
                Mechanism::from_name(&name),
                Some(Mechanism::Plain | Mechanism::Login)
            ) {
                return refuse_plaintext(out);
            }
            response::err(out, "Unsupported authentication mechanism")?;
            return Ok(Step::cont());
        };
        let initial = match initial.map(|i| sasl::decode_response(&i)).transpose() {
            Ok(i) => i,
            Err(_) => {
                response::err(out, "Invalid base64 data in initial response")?;
                return Ok(Step::cont());
            }
        };
        match (mech, initial) {
            (_, Some(ClientResponse::Cancel)) => {
                response::err(out, "Authentication cancelled")?;
                Ok(Step::cont())
            }
            (Mechanism::Plain, None) => self.challenge(SaslStage::Plain, b"", out),
            (Mechanism::Plain, Some(ClientResponse::Data(msg))) => self.sasl_plain(&msg, out),
            (Mechanism::Login, None) => self.challenge(SaslStage::LoginUser, b"Username:", out),
            (Mechanism::Login, Some(ClientResponse::Data(user))) => {
                let user = String::from_utf8_lossy(&user).into_owned();
                self.challenge(SaslStage::LoginPassword { user }, b"Password:", out)
            }
            (Mechanism::CramMd5, None) => {
                let challenge = new_timestamp(&self.params.hostname);
                let bytes = challenge.clone().into_bytes();
                self.challenge(SaslStage::CramMd5 { challenge }, &bytes, out)
            }
            (Mechanism::CramMd5, Some(ClientResponse::Data(_))) => {
                // CRAM-MD5 is server-first (RFC 2195): an initial response is a protocol error.
                response::err(out, "CRAM-MD5 does not take an initial response")?;
                Ok(Step::cont())
            }
        }
    }

    fn challenge(
        &mut self,
        stage: SaslStage,
        text: &[u8],
        out: &mut dyn Write,
    ) -> io::Result<Step> {
        self.state = State::Sasl(stage);
        let encoded = sasl::encode_challenge(text);
        out.write_all(b"+ ")?;
        out.write_all(encoded.as_bytes())?;
        out.write_all(b"\r\n")?;
        Ok(Step::cont())
    }

    fn sasl_continue(&mut self, line: &[u8], out: &mut dyn Write) -> io::Result<Step> {
        let stage = match std::mem::replace(&mut self.state, State::Authorization { user: None }) {
            State::Sasl(stage) => stage,
            other => {
                self.state = other;
                return Ok(Step::cont());
            }
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let data = match sasl::decode_response(line) {
            Ok(ClientResponse::Cancel) => {
                response::err(out, "Authentication cancelled")?;
                return Ok(Step::cont());
            }
            Ok(ClientResponse::Data(d)) => d,
            Err(_) => {
                response::err(out, "Invalid base64 data")?;
                return Ok(Step::cont());
            }
        };
        match stage {
            SaslStage::Plain => self.sasl_plain(&data, out),
            SaslStage::LoginUser => {
                let user = String::from_utf8_lossy(&data).into_owned();
                self.challenge(SaslStage::LoginPassword { user }, b"Password:", out)
            }
            SaslStage::LoginPassword { user } => {
                let result = self.services.authenticate(&user, &data);
                self.complete_login(&user, result, out)
            }
            SaslStage::CramMd5 { challenge } => match sasl::parse_cram_md5(&data) {
                Ok((user, digest)) => {
                    let result = match self.services.plaintext_secret(&user) {
                        Ok(Some((account, secret)))
                            if sasl::verify_cram_md5(&secret, challenge.as_bytes(), &digest) =>
                        {
                            Ok(account)
                        }
                        Ok(_) => Err(AuthError::Invalid),
                        Err(e) => Err(e),
                    };
                    self.complete_login(&user, result, out)
                }
                Err(_) => self.complete_login("", Err(AuthError::Invalid), out),
            },
        }
    }

    fn sasl_plain(&mut self, message: &[u8], out: &mut dyn Write) -> io::Result<Step> {
        match sasl::parse_plain(message) {
            Ok((user, password)) => {
                let result = self.services.authenticate(&user, &password);
                self.complete_login(&user, result, out)
            }
            Err(sasl::SaslError::AuthzidNotPermitted) => {
                self.complete_login("", Err(AuthError::Invalid), out)
            }
            Err(_) => {
                response::err(out, "Malformed PLAIN response")?;
                Ok(Step::cont())
            }
        }
    }

    fn complete_login(
        &mut self,
        user: &str,
        result: Result<Account, AuthError>,
        out: &mut dyn Write,
    ) -> io::Result<Step> {
        self.state = State::Authorization { user: None };
        let account = match result {
            Ok(account) => account,
            Err(AuthError::Invalid) => return self.auth_failed(user, out),
            Err(e @ AuthError::Temporary(_)) => {
                log::error!(
                    "authentication backend failure for user={user} peer={}: {e}",
                    self.params.peer
                );
                let (code, text) = response::auth_error(&e);
                response::err_code(out, code, text)?;
                return Ok(Step::cont());
            }
        };
        self.services.auth_outcome(true);
        // The capability set offered before login stays announced after it.
        self.authorization_capabilities = self.authorization_capability_list();
        match self.services.open_maildrop(&account) {
            Ok(maildrop) => {
                let deleted = vec![false; maildrop.count()];
                let tx = Transaction { maildrop, deleted };
                let (n, octets) = tx.totals();
                self.summary.user = Some(account.name.clone());
                self.state = State::Transaction(tx);
                log::info!(
                    "login user={} peer={} messages={n} octets={octets}",
                    account.name,
                    self.params.peer
                );
                response::ok(out, &format!("Logged in, {n} messages ({octets} octets)"))?;
                Ok(Step::cont())
            }
            Err(e) => {
                log::warn!(
                    "cannot open maildrop user={} peer={}: {e}",
                    account.name,
                    self.params.peer
                );
                let bound = self.services.bound_to_user();
                if bound {
                    self.summary.end = "maildrop refused after the identity switch";
                }
                match response::store_error(&e) {
                    Some((code, text)) => {
                        response::err_code(out, code, text)?;
                        Ok(if bound { Step::close() } else { Step::cont() })
                    }
                    None => Ok(Step::close()),
                }
            }
        }
    }

    fn auth_failed(&mut self, user: &str, out: &mut dyn Write) -> io::Result<Step> {
        self.summary.auth_failures += 1;
        self.services.auth_outcome(false);
        // One line per failure for fail2ban: the peer comes before anything the client chose,
        // so no user name can forge it.
        log::info!(
            "authentication failed: peer={} user={} failures={}",
            self.params.peer,
            printable(user),
            self.summary.auth_failures
        );
        let delay = Some(self.params.auth_failure_delay).filter(|d| !d.is_zero());
        response::err_code(out, Code::Auth, "Authentication failed")?;
        let flow = if self.summary.auth_failures >= self.params.max_auth_failures {
            self.summary.end = "too many authentication failures";
            Flow::Close
        } else {
            Flow::Continue
        };
        Ok(Step { flow, delay })
    }

    // ---- CAPA, UTF8, LANG ------------------------------------------------------------------

    fn authorization_capability_list(&self) -> Vec<String> {
        let mut caps = vec![String::from("TOP"), String::from("UIDL")];
        if self.plaintext_allowed() {
            caps.push(String::from("USER"));
        }
        let mechs = self.mechanisms();
        if !mechs.is_empty() {
            let names: Vec<&str> = mechs.iter().map(|m| m.name()).collect();
            caps.push(format!("SASL {}", names.join(" ")));
        }
        if self.params.stls_available && !self.tls_active {
            caps.push(String::from("STLS"));
        }
        caps.extend(
            [
                "RESP-CODES",
                "AUTH-RESP-CODE",
                "PIPELINING",
                "EXPIRE NEVER",
                "UTF8 USER",
                "LANG",
            ]
            .map(String::from),
        );
        if let Some(delay) = self.params.login_delay {
            caps.push(format!("LOGIN-DELAY {delay}"));
        }
        if self.params.xclient {
            caps.push(String::from("XCLIENT"));
        }
        caps.push(format!("IMPLEMENTATION {}", self.params.implementation));
        caps
    }

    fn capa(&mut self, out: &mut dyn Write) -> io::Result<Step> {
        let caps = match self.state {
            State::Transaction(_) => self.authorization_capabilities.clone(),
            _ => self.authorization_capability_list(),
        };
        response::ok(out, "Capability list follows")?;
        for cap in &caps {
            response::data_line(out, cap)?;
        }
        response::end_multiline(out)?;
        Ok(Step::cont())
    }

    fn lang(&mut self, arg: Option<&[u8]>, out: &mut dyn Write) -> io::Result<Step> {
        match arg {
            None => {
                response::ok(out, "Language listing follows")?;
                for (tag, name) in LANGUAGES {
                    response::data_line(out, &format!("{tag} {name}"))?;
                }
                response::end_multiline(out)?;
            }
            Some(requested) => {
                let requested = String::from_utf8_lossy(requested).to_ascii_lowercase();
                let chosen = if requested == "*" {
                    Some("en")
                } else {
                    LANGUAGES.iter().map(|(t, _)| *t).find(|t| *t == requested)
                };
                match chosen {
                    Some(tag) => response::ok(out, &format!("{tag} Language changed"))?,
                    None => response::err(out, "Invalid language")?,
                }
            }
        }
        Ok(Step::cont())
    }

    // ---- TRANSACTION -------------------------------------------------------------------------

    fn transaction(&mut self, cmd: Command, out: &mut dyn Write) -> io::Result<Step> {
        let State::Transaction(tx) = &mut self.state else {
            unreachable!("transaction() is only called in the TRANSACTION state")
        };
        match cmd {
            Command::Stat => {
                let (n, octets) = tx.totals();
                response::ok(out, &format!("{n} {octets}"))?;
            }
            Command::List(None) => {
                let (n, octets) = tx.totals();
                response::ok(out, &format!("{n} messages ({octets} octets)"))?;
                for i in 0..tx.maildrop.count() {
                    if !tx.deleted[i] {
                        response::data_line(out, &format!("{} {}", i + 1, tx.maildrop.size(i)))?;
                    }
                }
                response::end_multiline(out)?;
            }
            Command::List(Some(n)) => match tx.resolve(n) {
                Ok(i) => {
                    let size = tx.maildrop.size(i);
                    response::ok(out, &format!("{} {size}", i + 1))?;
                }
                Err(e) => response::err(out, &e)?,
            },
            Command::Uidl(None) => {
                response::ok(out, "Unique-ID listing follows")?;
                for i in 0..tx.maildrop.count() {
                    if !tx.deleted[i] {
                        let uidl = tx.maildrop.info(i).uidl;
                        response::data_line(out, &format!("{} {uidl}", i + 1))?;
                    }
                }
                response::end_multiline(out)?;
            }
            Command::Uidl(Some(n)) => match tx.resolve(n) {
                Ok(i) => {
                    let uidl = tx.maildrop.info(i).uidl;
                    response::ok(out, &format!("{} {uidl}", i + 1))?;
                }
                Err(e) => response::err(out, &e)?,
            },
            Command::Retr(n) => match tx.resolve(n) {
                Ok(i) => {
                    let size = tx.maildrop.size(i);
                    let header = format!("+OK {size} octets\r\n");
                    let step = send_message(tx.maildrop.as_mut(), i, None, header, out)?;
                    if step.flow == Flow::Continue {
                        self.summary.retrieved.0 += 1;
                        self.summary.retrieved.1 += size;
                    }
                    return Ok(step);
                }
                Err(e) => response::err(out, &e)?,
            },
            Command::Top(n, lines) => match tx.resolve(n) {
                Ok(i) => {
                    let header = String::from("+OK Top of message follows\r\n");
                    return send_message(tx.maildrop.as_mut(), i, Some(lines), header, out);
                }
                Err(e) => response::err(out, &e)?,
            },
            Command::Dele(n) => match tx.resolve(n) {
                Ok(i) => {
                    tx.deleted[i] = true;
                    response::ok(out, &format!("Message {} deleted", i + 1))?;
                }
                Err(e) => response::err(out, &e)?,
            },
            Command::Noop => response::ok(out, "")?,
            Command::Rset => {
                tx.deleted.iter_mut().for_each(|d| *d = false);
                let (n, octets) = tx.totals();
                response::ok(out, &format!("Maildrop has {n} messages ({octets} octets)"))?;
            }
            Command::Quit => return self.quit(out),
            Command::User(_)
            | Command::Pass(_)
            | Command::Apop { .. }
            | Command::Auth { .. }
            | Command::Stls
            | Command::Xclient { .. } => {
                response::err(
                    out,
                    "Already logged in, command valid only in AUTHORIZATION state",
                )?;
            }
            Command::Capa | Command::Utf8 | Command::Lang(_) => unreachable!("handled in dispatch"),
        }
        Ok(Step::cont())
    }

    /// QUIT in TRANSACTION: the UPDATE state (RFC 1939 §6).
    fn quit(&mut self, out: &mut dyn Write) -> io::Result<Step> {
        let State::Transaction(mut tx) = std::mem::replace(&mut self.state, State::Closed) else {
            unreachable!("quit() is only called in the TRANSACTION state")
        };
        self.summary.end = "quit";
        let marked: Vec<usize> = tx
            .deleted
            .iter()
            .enumerate()
            .filter(|(_, &d)| d)
            .map(|(i, _)| i)
            .collect();
        let remaining = tx.deleted.len() - marked.len();
        match tx.maildrop.commit(&marked) {
            Ok(report) => {
                self.summary.deleted = (report.deleted_messages as u64, report.deleted_octets);
                response::ok(out, &format!("Logging out, {remaining} messages left"))?;
            }
            Err(e) => {
                log::error!(
                    "commit failed user={} peer={}: {e}",
                    self.summary.user.as_deref().unwrap_or("-"),
                    self.params.peer
                );
                let text = "Some deleted messages not removed, mailbox unchanged";
                match response::store_error(&e) {
                    Some((code, _)) => response::err_code(out, code, text)?,
                    None => return Ok(Step::close()),
                }
            }
        }
        Ok(Step::close())
    }
}

fn refuse_plaintext(out: &mut dyn Write) -> io::Result<Step> {
    response::err_code(
        out,
        Code::Auth,
        "Plaintext authentication disallowed on non-secure connections",
    )?;
    Ok(Step::cont())
}

/// Writes the `+OK` line lazily, just before the first message byte, so that a maildrop that
/// refuses to serve (for example after a foreign rewrite) can still be answered with `-ERR`.
struct LazyHeader<'w> {
    out: &'w mut dyn Write,
    header: Option<String>,
}

impl LazyHeader<'_> {
    fn emit(&mut self) -> io::Result<()> {
        if let Some(h) = self.header.take() {
            self.out.write_all(h.as_bytes())?;
        }
        Ok(())
    }
}

impl Write for LazyHeader<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.emit()?;
        self.out.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.emit()?;
        self.out.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn send_message(
    maildrop: &mut dyn Maildrop,
    index: usize,
    top: Option<u64>,
    header: String,
    out: &mut dyn Write,
) -> io::Result<Step> {
    let mut writer = LazyHeader {
        out,
        header: Some(header),
    };
    match maildrop.write_message(index, top, &mut writer) {
        Ok(()) => {
            writer.emit()?;
            response::end_multiline(writer.out)?;
            Ok(Step::cont())
        }
        Err(crate::protocol::error::StoreError::Client(e)) => Err(e),
        // Part of the message is already on its way: the only honest end is to hang up.
        Err(_) if writer.header.is_none() => Ok(Step::close()),
        Err(e) => {
            log::error!("cannot read message {}: {e}", index + 1);
            match (&e, response::store_error(&e)) {
                (crate::protocol::error::StoreError::Changed(_), Some((code, text))) => {
                    // Offsets are stale: serving or committing anything now could corrupt mail.
                    response::err_code(writer.out, code, text)?;
                    Ok(Step::close())
                }
                (_, Some((code, text))) => {
                    response::err_code(writer.out, code, text)?;
                    Ok(Step::cont())
                }
                (_, None) => Ok(Step::close()),
            }
        }
    }
}

/// A fresh `<pid.nanos@host>` token for APOP greetings and CRAM-MD5 challenges.
pub fn new_timestamp(hostname: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("<{}.{}@{}>", std::process::id(), nanos, hostname)
}

fn printable(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() || c == ' ' { '?' } else { c })
        .collect()
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
