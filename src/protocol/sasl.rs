//! SASL mechanisms (RFC 5034 framing; PLAIN RFC 4616, LOGIN, CRAM-MD5 RFC 2195) and the APOP
//! digest (RFC 1939 §7). Pure: decoding and verification, no I/O.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    CramMd5,
}

impl Mechanism {
    pub fn from_name(name: &[u8]) -> Option<Mechanism> {
        match name.to_ascii_uppercase().as_slice() {
            b"PLAIN" => Some(Mechanism::Plain),
            b"LOGIN" => Some(Mechanism::Login),
            b"CRAM-MD5" => Some(Mechanism::CramMd5),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
        }
    }
}

/// What the client sent on a SASL line (initial response or continuation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientResponse {
    /// `*`: the client cancels the exchange.
    Cancel,
    Data(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    BadBase64,
    Malformed,
    /// PLAIN with an authorization identity other than the authentication identity: we do
    /// not implement proxy authorisation.
    AuthzidNotPermitted,
}

/// Decode one client line: `*` cancels, `=` is an empty initial response (RFC 5034 §4).
pub fn decode_response(line: &[u8]) -> Result<ClientResponse, SaslError> {
    match line {
        b"*" => Ok(ClientResponse::Cancel),
        b"=" => Ok(ClientResponse::Data(Vec::new())),
        _ => STANDARD
            .decode(line)
            .map(ClientResponse::Data)
            .map_err(|_| SaslError::BadBase64),
    }
}

pub fn encode_challenge(challenge: &[u8]) -> String {
    STANDARD.encode(challenge)
}

/// PLAIN: `[authzid] NUL authcid NUL passwd` → (user, password).
pub fn parse_plain(message: &[u8]) -> Result<(String, Vec<u8>), SaslError> {
    let mut parts = message.splitn(3, |&b| b == 0);
    let authzid = parts.next().ok_or(SaslError::Malformed)?;
    let authcid = parts.next().ok_or(SaslError::Malformed)?;
    let password = parts.next().ok_or(SaslError::Malformed)?;
    let user = String::from_utf8(authcid.to_vec()).map_err(|_| SaslError::Malformed)?;
    if user.is_empty() {
        return Err(SaslError::Malformed);
    }
    if !authzid.is_empty() && authzid != authcid {
        return Err(SaslError::AuthzidNotPermitted);
    }
    Ok((user, password.to_vec()))
}

/// CRAM-MD5 response: `user SP lowercase-hex(HMAC-MD5(secret, challenge))`.
pub fn parse_cram_md5(message: &[u8]) -> Result<(String, Vec<u8>), SaslError> {
    let split = message
        .iter()
        .rposition(|&b| b == b' ')
        .ok_or(SaslError::Malformed)?;
    let user = String::from_utf8(message[..split].to_vec()).map_err(|_| SaslError::Malformed)?;
    let digest = message[split + 1..].to_vec();
    if user.is_empty() || digest.len() != 32 {
        return Err(SaslError::Malformed);
    }
    Ok((user, digest))
}

pub fn verify_cram_md5(secret: &[u8], challenge: &[u8], hex_digest: &[u8]) -> bool {
    let Ok(mut mac) = Hmac::<Md5>::new_from_slice(secret) else {
        return false;
    };
    mac.update(challenge);
    let mut digest = [0u8; 16];
    match base16ct::mixed::decode(hex_digest, &mut digest) {
        Ok(d) => mac.verify_slice(d).is_ok(),
        Err(_) => false,
    }
}

/// APOP: `digest = lowercase-hex(MD5(timestamp || secret))`.
pub fn verify_apop(timestamp: &str, secret: &[u8], hex_digest: &[u8]) -> bool {
    let mut md5 = Md5::new();
    md5.update(timestamp.as_bytes());
    md5.update(secret);
    let expected = md5.finalize();
    let mut digest = [0u8; 16];
    match base16ct::mixed::decode(hex_digest, &mut digest) {
        Ok(d) => bool::from(expected.as_slice().ct_eq(d)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn apop_rfc1939_example() {
        // RFC 1939 §7: the digest of "<1896.697170952@dbc.mtview.ca.us>tanstaaf".
        assert!(verify_apop(
            "<1896.697170952@dbc.mtview.ca.us>",
            b"tanstaaf",
            b"c4c9334bac560ecc979e58001b3e22fb"
        ));
        assert!(verify_apop(
            "<1896.697170952@dbc.mtview.ca.us>",
            b"tanstaaf",
            b"C4C9334BAC560ECC979E58001B3E22FB"
        ));
        assert!(!verify_apop(
            "<1896.697170952@dbc.mtview.ca.us>",
            b"wrong",
            b"c4c9334bac560ecc979e58001b3e22fb"
        ));
    }

    #[test]
    fn cram_md5_rfc2195_example() {
        // RFC 2195 §2: user "tim", secret "tanstaaftanstaaf".
        let challenge = b"<1896.697170952@postoffice.reston.mci.net>";
        let response = STANDARD
            .decode("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw")
            .unwrap();
        let (user, digest) = parse_cram_md5(&response).unwrap();
        assert_eq!(user, "tim");
        assert!(verify_cram_md5(b"tanstaaftanstaaf", challenge, &digest));
        assert!(!verify_cram_md5(b"other", challenge, &digest));
    }

    #[test]
    fn plain() {
        assert_eq!(
            parse_plain(b"\0bob\0secret pw"),
            Ok(("bob".into(), b"secret pw".to_vec()))
        );
        assert_eq!(
            parse_plain(b"bob\0bob\0pw"),
            Ok(("bob".into(), b"pw".to_vec()))
        );
        assert_eq!(
            parse_plain(b"admin\0bob\0pw"),
            Err(SaslError::AuthzidNotPermitted)
        );
        assert_eq!(parse_plain(b"bob\0pw"), Err(SaslError::Malformed));
        assert_eq!(parse_plain(b"\0\0pw"), Err(SaslError::Malformed));
    }

    #[test]
    fn responses() {
        assert_eq!(decode_response(b"*"), Ok(ClientResponse::Cancel));
        assert_eq!(decode_response(b"="), Ok(ClientResponse::Data(vec![])));
        assert_eq!(
            decode_response(b"AGJvYgBwdw=="),
            Ok(ClientResponse::Data(b"\0bob\0pw".to_vec()))
        );
        assert_eq!(decode_response(b"not base64!"), Err(SaslError::BadBase64));
    }

    proptest! {
        #[test]
        fn plain_round_trip(user in "[a-z][a-z0-9.]{0,20}", pw in proptest::collection::vec(1u8..=255, 0..64)) {
            let mut msg = vec![0u8];
            msg.extend_from_slice(user.as_bytes());
            msg.push(0);
            msg.extend_from_slice(&pw);
            let encoded = STANDARD.encode(&msg);
            let ClientResponse::Data(decoded) = decode_response(encoded.as_bytes()).unwrap() else {
                panic!("cancel")
            };
            prop_assert_eq!(parse_plain(&decoded), Ok((user, pw)));
        }
    }
}
