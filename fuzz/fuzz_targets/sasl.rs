//! SASL decoding: client response lines (base64, `*`, `=`), PLAIN and CRAM-MD5 messages, LOGIN
//! (user name and password are plain decoded responses), mechanism names, and the digest checks.
//!
//! Invariants: no panic; only canonical base64 is accepted (re-encoding gives the line back);
//! an accepted PLAIN or CRAM-MD5 message is exactly what its parts rebuild; a correct
//! APOP/CRAM-MD5 digest (computed here independently) verifies, in either case, and a wrong
//! one does not.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use mboxpopd::protocol::sasl::{
    decode_response, encode_challenge, parse_cram_md5, parse_plain, verify_apop, verify_cram_md5,
    ClientResponse, Mechanism,
};
use md5::{Digest, Md5};

fn hex(bytes: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect()
}

fn check_message(msg: &[u8]) {
    if let Ok((user, pw)) = parse_plain(msg) {
        assert!(!user.is_empty() && !user.contains('\0'));
        let rebuilt = |authzid: &[u8]| {
            let mut m = authzid.to_vec();
            m.push(0);
            m.extend_from_slice(user.as_bytes());
            m.push(0);
            m.extend_from_slice(&pw);
            m
        };
        assert!(
            msg == rebuilt(b"") || msg == rebuilt(user.as_bytes()),
            "PLAIN parts do not rebuild the message"
        );
    }
    if let Ok((user, digest)) = parse_cram_md5(msg) {
        assert!(!user.is_empty());
        assert_eq!(digest.len(), 32);
        assert!(!digest.contains(&b' '));
        let mut m = user.into_bytes();
        m.push(b' ');
        m.extend_from_slice(&digest);
        assert_eq!(m, msg, "CRAM-MD5 parts do not rebuild the message");
    }
}

fuzz_target!(|data: &[u8]| {
    // The line as a client response.
    match decode_response(data) {
        Ok(ClientResponse::Cancel) => assert_eq!(data, b"*"),
        Ok(ClientResponse::Data(d)) => {
            if data != b"=" {
                assert_eq!(
                    STANDARD.encode(&d).as_bytes(),
                    data,
                    "non-canonical base64 accepted"
                );
            } else {
                assert!(d.is_empty());
            }
            check_message(&d);
        }
        Err(_) => assert!(data != b"*" && data != b"="),
    }
    // The bytes as a decoded message, and their encoding round-trips.
    check_message(data);
    let encoded = encode_challenge(data);
    if data != b"*" && data != b"=" {
        assert_eq!(
            decode_response(encoded.as_bytes()),
            Ok(ClientResponse::Data(data.to_vec()))
        );
    }

    // Mechanism names.
    if let Some(m) = Mechanism::from_name(data) {
        assert!(data.eq_ignore_ascii_case(m.name().as_bytes()));
    }
    for m in [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5] {
        assert_eq!(Mechanism::from_name(m.name().as_bytes()), Some(m));
    }

    // Digests: split the input into secret | challenge | candidate digest.
    let cut1 = data.len() / 3;
    let cut2 = 2 * data.len() / 3;
    let (secret, challenge, candidate) = (&data[..cut1], &data[cut1..cut2], &data[cut2..]);
    let _ = verify_cram_md5(secret, challenge, candidate);
    let mut mac = Hmac::<Md5>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(challenge);
    let good = hex(&mac.finalize().into_bytes());
    assert!(verify_cram_md5(secret, challenge, &good));
    assert!(verify_cram_md5(
        secret,
        challenge,
        &good.to_ascii_uppercase()
    ));
    let mut bad = good.clone();
    bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
    assert!(!verify_cram_md5(secret, challenge, &bad));
    assert!(!verify_cram_md5(secret, challenge, &good[..31]));

    let timestamp = String::from_utf8_lossy(challenge);
    let _ = verify_apop(&timestamp, secret, candidate);
    let mut md5 = Md5::new();
    md5.update(timestamp.as_bytes());
    md5.update(secret);
    let good = hex(&md5.finalize());
    assert!(verify_apop(&timestamp, secret, &good));
    assert!(verify_apop(&timestamp, secret, &good.to_ascii_uppercase()));
    let mut bad = good.clone();
    bad[31] = if bad[31] == b'a' { b'b' } else { b'a' };
    assert!(!verify_apop(&timestamp, secret, &bad));
});
