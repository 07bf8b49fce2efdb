//! POP3 command-line parsing (RFC 1939, 2449, 2595, 5034, 6856). Pure: bytes in, `Command` out.

use std::fmt;
use std::net::IpAddr;

/// Longest command line accepted outside SASL exchanges. RFC 2449 asks for at least 255 octets.
pub const MAX_COMMAND_LINE: usize = 1024;
/// Longest line accepted for `AUTH` with an initial response and for SASL continuation lines.
/// RFC 5034 lets initial responses exceed the 255-octet command limit.
pub const MAX_SASL_LINE: usize = 12 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(Vec<u8>),
    /// Everything after "PASS ": passwords may contain spaces (RFC 1939 §7).
    Pass(Vec<u8>),
    Apop {
        name: Vec<u8>,
        digest: Vec<u8>,
    },
    Stat,
    List(Option<MessageNumber>),
    Retr(MessageNumber),
    Dele(MessageNumber),
    Noop,
    Rset,
    Quit,
    Top(MessageNumber, u64),
    Uidl(Option<MessageNumber>),
    Capa,
    Stls,
    Auth {
        mechanism: Option<Vec<u8>>,
        initial: Option<Vec<u8>>,
    },
    Utf8,
    Lang(Option<Vec<u8>>),
    /// Dovecot's proxy naming the real client: `XCLIENT ADDR=ip PORT=n SESSION=id TTL=n`.
    /// Only the address and port matter here; other attributes are accepted and ignored.
    Xclient {
        addr: IpAddr,
        port: Option<u16>,
    },
}

/// A message number as the client wrote it. Values that do not fit are kept as `TooLarge`
/// so that `LIST 4294967297` is "no such message" rather than a wrapped-around number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageNumber {
    Number(u64),
    TooLarge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Empty,
    TooLong,
    Unknown,
    /// Wrong argument count or a non-numeric argument; the text names what was expected.
    Syntax(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => write!(f, "Empty command"),
            ParseError::TooLong => write!(f, "Command line too long"),
            ParseError::Unknown => write!(f, "Unknown command"),
            ParseError::Syntax(usage) => write!(f, "Syntax: {usage}"),
        }
    }
}

/// Parse one command line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    // A stray CR survives when the transport split on a bare LF.
    let raw = line.strip_suffix(b"\r").unwrap_or(line);
    let line = trim_trailing_blanks(raw);
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    if keyword.len() > 8 {
        return Err(ParseError::Unknown);
    }
    let keyword = keyword.to_ascii_uppercase();
    let oversized = line.len() > MAX_COMMAND_LINE;
    if oversized && keyword != b"AUTH" {
        return Err(ParseError::TooLong);
    }
    // PASS keeps its argument verbatim; every other command splits on runs of blanks, which
    // tolerates clients that pad with extra spaces.
    if keyword == b"PASS" {
        // Trailing blanks can be part of a password: take the raw line, not the trimmed one.
        return match rest.map(|_| &raw[keyword.len() + 1..]) {
            Some(p) if !p.is_empty() => Ok(Command::Pass(p.to_vec())),
            _ => Err(ParseError::Syntax("PASS password")),
        };
    }
    let args: Vec<&[u8]> = rest
        .map(|r| {
            r.split(|&b| b == b' ' || b == b'\t')
                .filter(|a| !a.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let arity = |n: usize, usage: &'static str| {
        if args.len() == n {
            Ok(())
        } else {
            Err(ParseError::Syntax(usage))
        }
    };
    let optional = |usage: &'static str| {
        if args.len() <= 1 {
            Ok(())
        } else {
            Err(ParseError::Syntax(usage))
        }
    };
    match keyword.as_slice() {
        b"USER" => {
            arity(1, "USER name")?;
            Ok(Command::User(args[0].to_vec()))
        }
        b"APOP" => {
            arity(2, "APOP name digest")?;
            Ok(Command::Apop {
                name: args[0].to_vec(),
                digest: args[1].to_vec(),
            })
        }
        b"STAT" => arity(0, "STAT").map(|_| Command::Stat),
        b"LIST" => {
            optional("LIST [msg]")?;
            let n = args.first().map(|a| number(a, "LIST [msg]")).transpose()?;
            Ok(Command::List(n))
        }
        b"RETR" => {
            arity(1, "RETR msg")?;
            Ok(Command::Retr(number(args[0], "RETR msg")?))
        }
        b"DELE" => {
            arity(1, "DELE msg")?;
            Ok(Command::Dele(number(args[0], "DELE msg")?))
        }
        b"NOOP" => arity(0, "NOOP").map(|_| Command::Noop),
        b"RSET" => arity(0, "RSET").map(|_| Command::Rset),
        b"QUIT" => arity(0, "QUIT").map(|_| Command::Quit),
        b"TOP" => {
            arity(2, "TOP msg lines")?;
            let msg = number(args[0], "TOP msg lines")?;
            let lines = match number(args[1], "TOP msg lines")? {
                MessageNumber::Number(n) => n,
                // "Send everything" is what any line count beyond the message means anyway.
                MessageNumber::TooLarge => u64::MAX,
            };
            Ok(Command::Top(msg, lines))
        }
        b"UIDL" => {
            optional("UIDL [msg]")?;
            let n = args.first().map(|a| number(a, "UIDL [msg]")).transpose()?;
            Ok(Command::Uidl(n))
        }
        b"CAPA" => arity(0, "CAPA").map(|_| Command::Capa),
        b"STLS" => arity(0, "STLS").map(|_| Command::Stls),
        b"AUTH" => {
            if args.len() > 2 {
                return Err(ParseError::Syntax("AUTH [mechanism [initial-response]]"));
            }
            if oversized && args.len() < 2 {
                return Err(ParseError::TooLong);
            }
            Ok(Command::Auth {
                mechanism: args.first().map(|m| m.to_ascii_uppercase()),
                initial: args.get(1).map(|r| r.to_vec()),
            })
        }
        b"UTF8" => arity(0, "UTF8").map(|_| Command::Utf8),
        b"XCLIENT" => parse_xclient(&args),
        b"LANG" => {
            optional("LANG [language]")?;
            Ok(Command::Lang(args.first().map(|a| a.to_vec())))
        }
        _ => Err(ParseError::Unknown),
    }
}

const XCLIENT_USAGE: &str = "XCLIENT ADDR=address [PORT=port] [NAME=value ...]";

fn parse_xclient(args: &[&[u8]]) -> Result<Command, ParseError> {
    let mut addr = None;
    let mut port = None;
    for arg in args {
        let text = std::str::from_utf8(arg).map_err(|_| ParseError::Syntax(XCLIENT_USAGE))?;
        let (name, value) = text
            .split_once('=')
            .ok_or(ParseError::Syntax(XCLIENT_USAGE))?;
        match name.to_ascii_uppercase().as_str() {
            "ADDR" => {
                // Dovecot sends the bare address; Postfix's form prefixes IPv6 with `IPV6:`,
                // and some proxies bracket it.
                let bare = value
                    .strip_prefix("IPV6:")
                    .or_else(|| value.strip_prefix("ipv6:"))
                    .unwrap_or(value);
                let bare = bare
                    .strip_prefix('[')
                    .and_then(|b| b.strip_suffix(']'))
                    .unwrap_or(bare);
                let ip: IpAddr = bare
                    .parse()
                    .map_err(|_| ParseError::Syntax(XCLIENT_USAGE))?;
                addr = Some(ip.to_canonical());
            }
            "PORT" => {
                port = Some(
                    value
                        .parse::<u16>()
                        .map_err(|_| ParseError::Syntax(XCLIENT_USAGE))?,
                )
            }
            _ => {}
        }
    }
    match addr {
        Some(addr) => Ok(Command::Xclient { addr, port }),
        None => Err(ParseError::Syntax(XCLIENT_USAGE)),
    }
}

fn trim_trailing_blanks(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b' ' | b'\t' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

fn number(arg: &[u8], usage: &'static str) -> Result<MessageNumber, ParseError> {
    if arg.is_empty() || !arg.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Syntax(usage));
    }
    let mut value: u64 = 0;
    for &d in arg {
        value = match value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
        {
            Some(v) => v,
            None => return Ok(MessageNumber::TooLarge),
        };
    }
    Ok(MessageNumber::Number(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(v: u64) -> MessageNumber {
        MessageNumber::Number(v)
    }

    #[test]
    fn keywords_are_case_insensitive() {
        assert_eq!(parse(b"stat"), Ok(Command::Stat));
        assert_eq!(parse(b"StAt"), Ok(Command::Stat));
        assert_eq!(parse(b"capa"), Ok(Command::Capa));
    }

    #[test]
    fn arguments() {
        assert_eq!(parse(b"LIST"), Ok(Command::List(None)));
        assert_eq!(parse(b"LIST 3"), Ok(Command::List(Some(n(3)))));
        assert_eq!(parse(b"TOP 2 0"), Ok(Command::Top(n(2), 0)));
        assert_eq!(parse(b"UIDL  7 "), Ok(Command::Uidl(Some(n(7)))));
        assert_eq!(parse(b"USER bob"), Ok(Command::User(b"bob".to_vec())));
        assert_eq!(
            parse(b"APOP bob c4c9334bac560ecc979e58001b3e22fb"),
            Ok(Command::Apop {
                name: b"bob".to_vec(),
                digest: b"c4c9334bac560ecc979e58001b3e22fb".to_vec()
            })
        );
    }

    #[test]
    fn pass_keeps_spaces() {
        assert_eq!(
            parse(b"PASS my secret  pw"),
            Ok(Command::Pass(b"my secret  pw".to_vec()))
        );
        assert_eq!(parse(b"PASS"), Err(ParseError::Syntax("PASS password")));
        assert_eq!(
            parse(b"PASS trailing \r"),
            Ok(Command::Pass(b"trailing ".to_vec()))
        );
    }

    #[test]
    fn numbers_do_not_wrap() {
        assert_eq!(
            parse(b"LIST 4294967297"),
            Ok(Command::List(Some(n(4_294_967_297))))
        );
        assert_eq!(
            parse(b"RETR 99999999999999999999999"),
            Ok(Command::Retr(MessageNumber::TooLarge))
        );
        assert!(matches!(parse(b"RETR -1"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"RETR +1"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"RETR 1x"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"RETR"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"RETR 1 2"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"TOP 1"), Err(ParseError::Syntax(_))));
        assert_eq!(
            parse(b"TOP 1 99999999999999999999999"),
            Ok(Command::Top(n(1), u64::MAX))
        );
    }

    #[test]
    fn unknown_and_empty() {
        assert_eq!(parse(b""), Err(ParseError::Empty));
        assert_eq!(parse(b"   "), Err(ParseError::Empty));
        assert_eq!(parse(b"XTND XMIT"), Err(ParseError::Unknown));
        assert_eq!(parse(b"LAST"), Err(ParseError::Unknown));
        assert_eq!(parse(&[0xff, 0xfe]), Err(ParseError::Unknown));
    }

    #[test]
    fn sasl_and_extensions() {
        assert_eq!(
            parse(b"AUTH"),
            Ok(Command::Auth {
                mechanism: None,
                initial: None
            })
        );
        assert_eq!(
            parse(b"AUTH plain AGJvYgBzZWNyZXQ="),
            Ok(Command::Auth {
                mechanism: Some(b"PLAIN".to_vec()),
                initial: Some(b"AGJvYgBzZWNyZXQ=".to_vec())
            })
        );
        assert_eq!(parse(b"UTF8"), Ok(Command::Utf8));
        assert_eq!(parse(b"LANG"), Ok(Command::Lang(None)));
        assert_eq!(parse(b"LANG en"), Ok(Command::Lang(Some(b"en".to_vec()))));
        assert_eq!(parse(b"STLS"), Ok(Command::Stls));
    }

    #[test]
    fn long_lines() {
        let mut line = b"NOOP ".to_vec();
        line.resize(MAX_COMMAND_LINE + 1, b'x');
        assert_eq!(parse(&line), Err(ParseError::TooLong));
        let mut auth = b"AUTH PLAIN ".to_vec();
        auth.resize(4000, b'A');
        assert!(matches!(parse(&auth), Ok(Command::Auth { .. })));
    }

    proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&line);
        }

        #[test]
        fn message_numbers_round_trip(v in any::<u64>()) {
            let line = format!("RETR {v}");
            prop_assert_eq!(parse(line.as_bytes()), Ok(Command::Retr(MessageNumber::Number(v))));
        }

        #[test]
        fn pass_argument_is_verbatim(pw in proptest::collection::vec(1u8..=255, 1..200)) {
            prop_assume!(pw[pw.len() - 1] != b'\r' && pw.iter().any(|&b| b != b' ' && b != b'\t'));
            let mut line = b"PASS ".to_vec();
            line.extend_from_slice(&pw);
            prop_assert_eq!(parse(&line), Ok(Command::Pass(pw)));
        }
    }
}
