//! SASL (RFC 5034) and UTF8/LANG (RFC 6856) end to end, over inetd pipes (which count as
//! loopback, so plaintext mechanisms are allowed by the default policy too).

use crate::common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::Md5;

use common::*;

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.write_mbox("alice", &mbox(&[MSG1, MSG3]));
    f
}

fn sasl_caps(c: &mut Conn) -> Vec<String> {
    c.ok("CAPA");
    let caps = c.multi_lines();
    caps.iter()
        .find_map(|l| l.strip_prefix("SASL "))
        .map(|s| s.split(' ').map(str::to_string).collect())
        .unwrap_or_default()
}

#[test]
fn auth_plain_with_initial_response() {
    let f = fixture();
    let mut c = f.inetd();
    assert!(sasl_caps(&mut c).contains(&"PLAIN".to_string()));
    let ir = B64.encode(b"\0alice\0secret");
    c.ok(&format!("AUTH PLAIN {ir}"));
    assert_eq!(
        c.ok("STAT"),
        format!("+OK 2 {}", content(MSG1).len() + content(MSG3).len())
    );
    c.quit();
}

#[test]
fn auth_plain_without_initial_response_and_wrong_password() {
    let f = fixture();
    let mut c = f.inetd();
    c.send(b"AUTH PLAIN\r\n");
    let l = c.line();
    assert!(
        l.starts_with("+ ") || l == "+",
        "continuation expected: {l}"
    );
    let bad = B64.encode(b"\0alice\0wrong");
    let r = c.cmd(&bad);
    assert!(r.starts_with("-ERR [AUTH]"), "{r}");
    c.send(b"AUTH PLAIN\r\n");
    c.line();
    c.ok(&B64.encode(b"\0alice\0secret"));
    c.quit();
}

#[test]
fn auth_login_exchange() {
    let f = fixture();
    let mut c = f.inetd();
    assert!(sasl_caps(&mut c).contains(&"LOGIN".to_string()));
    c.send(b"AUTH LOGIN\r\n");
    assert!(c.line().starts_with('+'));
    c.send(format!("{}\r\n", B64.encode("alice")).as_bytes());
    assert!(c.line().starts_with('+'));
    c.ok(&B64.encode("secret"));
    assert!(c.ok("STAT").starts_with("+OK 2 "));
    c.quit();
}

#[test]
fn auth_cancel_bad_base64_unknown_mechanism_and_listing() {
    let f = fixture();
    let mut c = f.inetd();
    c.send(b"AUTH PLAIN\r\n");
    assert!(c.line().starts_with('+'));
    // "*" cancels the exchange.
    c.err("*");
    c.err("AUTH PLAIN !!!not-base64!!!");
    c.err("AUTH NO-SUCH-MECHANISM");
    // AUTH without an argument lists the mechanisms (the de facto extension clients use).
    c.ok("AUTH");
    let mechs = c.multi_lines();
    assert!(mechs.contains(&"PLAIN".to_string()), "{mechs:?}");
    // The session is still usable.
    c.login("alice", "secret");
    c.quit();
}

#[test]
fn cram_md5_with_a_plaintext_secret() {
    let f = fixture();
    let mut c = f.inetd();
    assert!(
        sasl_caps(&mut c).contains(&"CRAM-MD5".to_string()),
        "CRAM-MD5 not offered although the passwd-file holds {{PLAIN}} secrets"
    );
    c.send(b"AUTH CRAM-MD5\r\n");
    let l = c.line();
    let challenge = B64
        .decode(l.strip_prefix("+ ").expect("challenge"))
        .expect("base64 challenge");
    let mut mac = Hmac::<Md5>::new_from_slice(b"secret").expect("hmac key");
    mac.update(&challenge);
    let digest: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    c.ok(&B64.encode(format!("alice {digest}")));
    assert!(c.ok("STAT").starts_with("+OK 2 "));
    c.quit();
}

#[test]
fn long_initial_responses_are_accepted() {
    // RFC 5034: an initial response may exceed the 255-octet command limit.
    let mut f = fixture();
    let long_pw = "p".repeat(400);
    f.passwd_line(&format!("carol:{{PLAIN}}{long_pw}"));
    let mut c = f.inetd();
    let ir = B64.encode(format!("\0carol\0{long_pw}"));
    assert!(ir.len() > 500);
    c.ok(&format!("AUTH PLAIN {ir}"));
    assert_eq!(c.ok("STAT"), "+OK 0 0");
    c.quit();
}

#[test]
fn utf8_and_lang() {
    let f = fixture();
    let mut c = f.inetd();
    c.ok("CAPA");
    let caps = c.multi_lines();
    assert!(
        caps.iter().any(|l| l == "UTF8" || l.starts_with("UTF8 ")),
        "{caps:?}"
    );
    assert!(caps.iter().any(|l| l == "LANG"), "{caps:?}");
    c.ok("LANG");
    let langs = c.multi_lines();
    assert!(langs.iter().any(|l| l.starts_with("en ")), "{langs:?}");
    c.ok("LANG en");
    c.ok("UTF8");
    c.login("alice", "secret");
    // Outlook sends UTF8 after login (again): accepted there too.
    c.ok("UTF8");
    assert!(c.ok("STAT").starts_with("+OK 2 "));
    c.quit();
}
