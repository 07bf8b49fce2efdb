//! Response lines, and the one place where typed errors become POP3 response codes
//! (RFC 2449 §8 `[IN-USE]`, `[LOGIN-DELAY]`; RFC 3206 `[SYS/TEMP]`, `[SYS/PERM]`, `[AUTH]`).

use std::io::{self, Write};

use crate::protocol::error::{AuthError, StoreError};

/// RFC 2449 limits a response line to 512 octets including CRLF.
pub const MAX_RESPONSE_LINE: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Auth,
    InUse,
    SysTemp,
    SysPerm,
}

impl Code {
    fn tag(self) -> &'static str {
        match self {
            Code::Auth => "[AUTH] ",
            Code::InUse => "[IN-USE] ",
            Code::SysTemp => "[SYS/TEMP] ",
            Code::SysPerm => "[SYS/PERM] ",
        }
    }
}

pub fn ok(out: &mut dyn Write, text: &str) -> io::Result<()> {
    line(out, "+OK", None, text)
}

pub fn err(out: &mut dyn Write, text: &str) -> io::Result<()> {
    line(out, "-ERR", None, text)
}

pub fn err_code(out: &mut dyn Write, code: Code, text: &str) -> io::Result<()> {
    line(out, "-ERR", Some(code), text)
}

fn line(out: &mut dyn Write, status: &str, code: Option<Code>, text: &str) -> io::Result<()> {
    let mut buf = String::with_capacity(64);
    buf.push_str(status);
    if code.is_some() || !text.is_empty() {
        buf.push(' ');
    }
    if let Some(code) = code {
        buf.push_str(code.tag());
    }
    // Texts may echo client-supplied words: keep the line printable and within RFC 2449's
    // 512-octet limit so a hostile argument cannot forge or overflow a response.
    for c in text.chars() {
        if buf.len() + c.len_utf8() > MAX_RESPONSE_LINE - 2 {
            break;
        }
        buf.push(if c.is_control() { '?' } else { c });
    }
    buf.push_str("\r\n");
    out.write_all(buf.as_bytes())
}

/// A multi-line body line, dot-stuffed (RFC 1939 §3).
pub fn data_line(out: &mut dyn Write, text: &str) -> io::Result<()> {
    if text.starts_with('.') {
        out.write_all(b".")?;
    }
    out.write_all(text.as_bytes())?;
    out.write_all(b"\r\n")
}

pub fn end_multiline(out: &mut dyn Write) -> io::Result<()> {
    out.write_all(b".\r\n")
}

/// How a maildrop failure is reported: the response code and the text the client sees.
/// Log lines carry the details; clients get a short, stable reason.
pub fn store_error(e: &StoreError) -> Option<(Code, &'static str)> {
    match e {
        StoreError::InUse(_) => Some((Code::InUse, "Mailbox is locked by another session")),
        StoreError::Temporary(_) => {
            Some((Code::SysTemp, "Temporary mailbox failure, try again later"))
        }
        StoreError::Permanent(_) => Some((
            Code::SysPerm,
            "Mailbox cannot be opened, contact your administrator",
        )),
        StoreError::Changed(_) => Some((
            Code::SysTemp,
            "Mailbox was changed by another program, reconnect",
        )),
        // Nothing can be said to a client whose connection failed.
        StoreError::Client(_) => None,
    }
}

pub fn auth_error(e: &AuthError) -> (Code, &'static str) {
    match e {
        AuthError::Invalid => (Code::Auth, "Authentication failed"),
        AuthError::Temporary(_) => (Code::SysTemp, "Authentication is temporarily unavailable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut v = Vec::new();
        f(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn lines() {
        assert_eq!(render(|o| ok(o, "")), "+OK\r\n");
        assert_eq!(render(|o| ok(o, "2 320")), "+OK 2 320\r\n");
        assert_eq!(
            render(|o| err_code(o, Code::InUse, "locked")),
            "-ERR [IN-USE] locked\r\n"
        );
        assert_eq!(render(|o| data_line(o, ".hidden")), "..hidden\r\n");
    }

    #[test]
    fn echoed_text_cannot_break_the_line() {
        let hostile = format!("a\r\n+OK forged{}", "x".repeat(2000));
        let s = render(|o| err(o, &hostile));
        assert_eq!(s.matches("\r\n").count(), 1);
        assert!(s.len() <= MAX_RESPONSE_LINE);
        assert!(s.ends_with("\r\n"));
    }
}
