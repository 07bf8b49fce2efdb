//! The POP3 command parser on arbitrary lines.
//!
//! Invariants: no panic; a line-end CR (of CRLF) never changes the result; only AUTH with an initial
//! response is accepted beyond MAX_COMMAND_LINE; every accepted command, written back in
//! canonical form, parses to the same command.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mboxpopd::protocol::command::{parse, Command, MessageNumber, MAX_COMMAND_LINE};

fn number(n: &MessageNumber) -> Vec<u8> {
    match n {
        MessageNumber::Number(v) => v.to_string().into_bytes(),
        MessageNumber::TooLarge => b"99999999999999999999999".to_vec(),
    }
}

fn join(keyword: &str, args: &[&[u8]]) -> Vec<u8> {
    let mut line = keyword.as_bytes().to_vec();
    for a in args {
        line.push(b' ');
        line.extend_from_slice(a);
    }
    line
}

/// The command in canonical form (single spaces, upper-case keyword).
fn canonical(cmd: &Command) -> Vec<u8> {
    match cmd {
        Command::User(n) => join("USER", &[n]),
        // A CR of the password itself must survive the line-end CR the parser strips.
        Command::Pass(p) => {
            let mut l = join("PASS", &[p]);
            l.push(b'\r');
            l
        }
        Command::Apop { name, digest } => join("APOP", &[name, digest]),
        Command::Stat => join("STAT", &[]),
        Command::List(n) => match n {
            Some(n) => join("LIST", &[&number(n)]),
            None => join("LIST", &[]),
        },
        Command::Retr(n) => join("RETR", &[&number(n)]),
        Command::Dele(n) => join("DELE", &[&number(n)]),
        Command::Noop => join("NOOP", &[]),
        Command::Rset => join("RSET", &[]),
        Command::Quit => join("QUIT", &[]),
        Command::Top(n, k) => join("TOP", &[&number(n), k.to_string().as_bytes()]),
        Command::Uidl(n) => match n {
            Some(n) => join("UIDL", &[&number(n)]),
            None => join("UIDL", &[]),
        },
        Command::Capa => join("CAPA", &[]),
        Command::Stls => join("STLS", &[]),
        Command::Auth { mechanism, initial } => {
            let mut args: Vec<&[u8]> = Vec::new();
            if let Some(m) = mechanism {
                args.push(m);
            }
            if let Some(i) = initial {
                args.push(i);
            }
            join("AUTH", &args)
        }
        Command::Utf8 => join("UTF8", &[]),
        Command::Lang(l) => match l {
            Some(l) => join("LANG", &[l]),
            None => join("LANG", &[]),
        },
        Command::Xclient { addr, port } => {
            let a = format!("ADDR={addr}");
            match port {
                Some(p) => join("XCLIENT", &[a.as_bytes(), format!("PORT={p}").as_bytes()]),
                None => join("XCLIENT", &[a.as_bytes()]),
            }
        }
    }
}

fuzz_target!(|line: &[u8]| {
    let got = parse(line);

    // The CR of a CRLF the transport left in place is not part of the line.
    if line.last() != Some(&b'\r') {
        let mut with_cr = line.to_vec();
        with_cr.push(b'\r');
        assert_eq!(parse(&with_cr), got, "a line-end CR changed the result");
    }

    let Ok(cmd) = got else { return };

    let raw = line.strip_suffix(b"\r").unwrap_or(line);
    let mut trimmed = raw;
    while let [rest @ .., b' ' | b'\t' | b'\r'] = trimmed {
        trimmed = rest;
    }
    if trimmed.len() > MAX_COMMAND_LINE {
        assert!(
            matches!(
                cmd,
                Command::Auth {
                    initial: Some(_),
                    ..
                }
            ),
            "over-long line accepted as {cmd:?}"
        );
    }

    // Arguments never hold blanks (PASS excepted) and are never empty.
    let blank_free = |a: &[u8]| !a.is_empty() && !a.iter().any(|&b| b == b' ' || b == b'\t');
    match &cmd {
        Command::User(n) | Command::Lang(Some(n)) => assert!(blank_free(n)),
        Command::Apop { name, digest } => assert!(blank_free(name) && blank_free(digest)),
        Command::Auth { mechanism, initial } => {
            if let Some(m) = mechanism {
                assert!(blank_free(m));
                assert!(
                    !m.iter().any(u8::is_ascii_lowercase),
                    "mechanism not upper-cased"
                );
            }
            if let Some(i) = initial {
                assert!(blank_free(i));
                assert!(mechanism.is_some());
            }
        }
        Command::Pass(p) => assert!(!p.is_empty()),
        _ => {}
    }

    let again = canonical(&cmd);
    assert_eq!(
        parse(&again),
        Ok(cmd.clone()),
        "canonical form {:?} does not parse back",
        String::from_utf8_lossy(&again)
    );
    // Keywords are case-insensitive.
    let mut lower = again.clone();
    let kw_end = lower.iter().position(|&b| b == b' ').unwrap_or(lower.len());
    lower[..kw_end].make_ascii_lowercase();
    assert_eq!(parse(&lower), Ok(cmd));
});
