//! Stored secrets and password verification.
//!
//! A stored password field is parsed once (when a passwd-file is loaded, or a shadow line read)
//! into a [`Secret`]; verification then never re-parses the scheme. Supported:
//! - crypt(3) strings: md5-crypt `$1$`, sha256-crypt `$5$`, sha512-crypt `$6$`, bcrypt
//!   `$2a$`/`$2b$`/`$2y$` (all through `pwhash`) and yescrypt `$y$` (the `yescrypt` crate;
//!   Debian's default for /etc/shadow since bullseye);
//! - Dovecot scheme prefixes: `{PLAIN}`/`{CLEARTEXT}` (also `.b64`/`.hex` encoded),
//!   `{CRYPT}`, `{MD5-CRYPT}`, `{SHA256-CRYPT}`, `{SHA512-CRYPT}`, `{BLF-CRYPT}`;
//! - locked or disabled fields (`!…`, `*…`, empty), which never verify.
//!
//! Traditional DES crypt (13 characters) is refused on purpose: it ignores everything after the
//! 8th password byte and is brute-forced in minutes.

use std::fmt;

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[cfg(test)]
pub(crate) use super::dummy::timing;
pub use super::dummy::DummyVerifier;
use super::gate::HASH_GATE;

/// The crypt(3) family a hash belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CryptKind {
    Md5,
    Sha256,
    Sha512,
    Bcrypt,
    Yescrypt,
}

impl CryptKind {
    /// Recognise a crypt string by its `$id$` prefix.
    fn of(hash: &str) -> Option<CryptKind> {
        let id = hash.strip_prefix('$')?.split('$').next()?;
        Some(match id {
            "1" => CryptKind::Md5,
            "5" => CryptKind::Sha256,
            "6" => CryptKind::Sha512,
            "2a" | "2b" | "2y" => CryptKind::Bcrypt,
            "y" => CryptKind::Yescrypt,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            CryptKind::Md5 => "md5-crypt",
            CryptKind::Sha256 => "sha256-crypt",
            CryptKind::Sha512 => "sha512-crypt",
            CryptKind::Bcrypt => "bcrypt",
            CryptKind::Yescrypt => "yescrypt",
        }
    }
}

/// Why a stored password field could not be understood. The account then cannot log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashError {
    /// A `{SCHEME}` prefix we do not implement (e.g. `{SSHA}`, `{ARGON2ID}`).
    UnknownScheme(String),
    /// A crypt string with an id we do not implement (e.g. DES, `$7$`, `$gy$`).
    UnsupportedCrypt,
    /// `{SHA512-CRYPT}` followed by something that is not a `$6$` hash, and the like.
    SchemeMismatch(&'static str),
    /// Structurally broken (bad characters, missing fields, bad base64/hex).
    Malformed(&'static str),
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashError::UnknownScheme(s) => write!(f, "unsupported password scheme {{{s}}}"),
            HashError::UnsupportedCrypt => write!(
                f,
                "unsupported crypt format (use $y$, $6$, $5$, $2b$ or $1$; DES is refused)"
            ),
            HashError::SchemeMismatch(s) => write!(f, "hash does not match its {{{s}}} prefix"),
            HashError::Malformed(m) => write!(f, "malformed password hash: {m}"),
        }
    }
}

impl std::error::Error for HashError {}

/// A parsed stored secret.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A plaintext secret (`{PLAIN}`): usable for APOP and CRAM-MD5 too.
    Plain(Vec<u8>),
    /// A crypt(3) string, already checked to be of a supported kind.
    Crypt { kind: CryptKind, hash: String },
    /// Locked or disabled: never verifies.
    Disabled,
}

// Never print secrets, not even in debug logs.
impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Plain(_) => write!(f, "Secret::Plain(..)"),
            Secret::Crypt { kind, .. } => write!(f, "Secret::Crypt({})", kind.name()),
            Secret::Disabled => write!(f, "Secret::Disabled"),
        }
    }
}

/// Characters crypt(3) strings are made of (`=` and `,` for `rounds=`-style parameters).
fn is_crypt_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'$' | b'=' | b',')
}

fn parse_crypt(
    hash: &str,
    expected: Option<(&'static str, &[CryptKind])>,
) -> Result<Secret, HashError> {
    if hash.is_empty() || hash.starts_with('!') || hash.starts_with('*') {
        return Ok(Secret::Disabled);
    }
    let kind = CryptKind::of(hash).ok_or(HashError::UnsupportedCrypt)?;
    if let Some((scheme, kinds)) = expected {
        if !kinds.contains(&kind) {
            return Err(HashError::SchemeMismatch(scheme));
        }
    }
    if !hash.bytes().all(is_crypt_char) {
        return Err(HashError::Malformed("character outside the crypt alphabet"));
    }
    // `$id$[params$]salt$checksum`: every kind has at least salt and checksum.
    let fields: Vec<&str> = hash[1..].split('$').collect();
    let min_fields = match kind {
        CryptKind::Yescrypt => 4, // id, params, salt, checksum
        _ => 3,
    };
    if fields.len() < min_fields || fields.iter().skip(1).any(|f| f.is_empty()) {
        return Err(HashError::Malformed("missing crypt fields"));
    }
    check_cost(kind, &fields)?;
    Ok(Secret::Crypt {
        kind,
        hash: hash.to_owned(),
    })
}

/// Upper bounds on the work one verification may cost. A corrupted or hostile hash must not
/// tie up a session thread for minutes or make yescrypt allocate until the kernel kills the
/// daemon (an allocation failure aborts the whole process, not just the session).
const MAX_BCRYPT_COST: u32 = 16;
const MAX_SHA_ROUNDS: u64 = 1_000_000;
const MAX_YESCRYPT_MEMORY: u64 = 1 << 30;
const MAX_YESCRYPT_T: u32 = 32;

fn check_cost(kind: CryptKind, fields: &[&str]) -> Result<(), HashError> {
    const TOO_COSTLY: HashError = HashError::Malformed("work parameters beyond the sane maximum");
    match kind {
        CryptKind::Bcrypt => {
            let cost: u32 = fields[1]
                .parse()
                .map_err(|_| HashError::Malformed("bad bcrypt cost"))?;
            if cost > MAX_BCRYPT_COST {
                return Err(TOO_COSTLY);
            }
        }
        CryptKind::Sha256 | CryptKind::Sha512 => {
            if let Some(r) = fields[1].strip_prefix("rounds=") {
                let rounds: u64 = r.parse().map_err(|_| HashError::Malformed("bad rounds="))?;
                if rounds > MAX_SHA_ROUNDS {
                    return Err(TOO_COSTLY);
                }
            }
        }
        CryptKind::Yescrypt => {
            let p =
                yescrypt_params(fields[1]).ok_or(HashError::Malformed("bad yescrypt params"))?;
            // The crate must accept them too, or every verification would fail.
            fields[1]
                .parse::<yescrypt::Params>()
                .map_err(|_| HashError::Malformed("bad yescrypt params"))?;
            // V takes 128 * r * N bytes; N = 2^nlog2.
            let mem = 128u64
                .checked_mul(u64::from(p.r))
                .and_then(|m| m.checked_shl(p.nlog2))
                .filter(|&m| p.nlog2 < 40 && m >> p.nlog2 == 128 * u64::from(p.r));
            match mem {
                Some(m) if m <= MAX_YESCRYPT_MEMORY && p.t <= MAX_YESCRYPT_T && p.p <= 64 => {}
                _ => return Err(TOO_COSTLY),
            }
        }
        CryptKind::Md5 => {}
    }
    Ok(())
}

/// The cost-relevant yescrypt parameters, decoded from the `$y$<params>$` field.
struct YescryptCost {
    nlog2: u32,
    r: u32,
    p: u32,
    t: u32,
}

/// Mirror of `decode64_uint32` in the reference implementation (yescrypt-common.c): a
/// variable-length little-endian number in the crypt alphabet, offset by `min`.
///
/// Kept on purpose: `yescrypt::Params` parses the same field but exposes only `n`, `r` and `p`,
/// not `t`, which the cost bound needs.
fn decode64_uint32(src: &[u8], pos: &mut usize, min: u32) -> Option<u32> {
    fn atoi64(c: u8) -> Option<u32> {
        const ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        ALPHABET.iter().position(|&a| a == c).map(|i| i as u32)
    }
    let mut c = atoi64(*src.get(*pos)?)?;
    *pos += 1;
    let (mut start, mut end, mut chars, mut bits) = (0u32, 47u32, 1u32, 0u32);
    let mut dst = min;
    while c > end {
        dst = dst.checked_add((end + 1 - start).checked_shl(bits)?)?;
        start = end + 1;
        end = start + (62 - end) / 2;
        chars += 1;
        bits += 6;
    }
    dst = dst.checked_add((c - start).checked_shl(bits)?)?;
    while chars > 1 {
        chars -= 1;
        c = atoi64(*src.get(*pos)?)?;
        *pos += 1;
        bits -= 6;
        dst = dst.checked_add(c.checked_shl(bits)?)?;
    }
    Some(dst)
}

fn yescrypt_params(s: &str) -> Option<YescryptCost> {
    let b = s.as_bytes();
    let mut pos = 0;
    let _flavor = decode64_uint32(b, &mut pos, 0)?;
    let nlog2 = decode64_uint32(b, &mut pos, 1)?;
    let r = decode64_uint32(b, &mut pos, 1)?;
    let (mut p, mut t) = (1, 0);
    if pos < b.len() {
        let have = decode64_uint32(b, &mut pos, 1)?;
        if have & 1 != 0 {
            p = decode64_uint32(b, &mut pos, 2)?;
        }
        if have & 2 != 0 {
            t = decode64_uint32(b, &mut pos, 1)?;
        }
    }
    Some(YescryptCost { nlog2, r, p, t })
}

fn decode_plain(encoding: Option<&str>, value: &str) -> Result<Vec<u8>, HashError> {
    match encoding.map(|e| e.to_ascii_lowercase()) {
        None => Ok(value.as_bytes().to_vec()),
        Some(e) if e == "b64" || e == "base64" => base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| HashError::Malformed("bad base64 in {PLAIN.b64}")),
        Some(e) if e == "hex" => base16ct::mixed::decode_vec(value)
            .map_err(|_| HashError::Malformed("bad hex in {PLAIN.hex}")),
        Some(_) => Err(HashError::Malformed("unknown encoding suffix")),
    }
}

impl Secret {
    /// Parse a stored password field (passwd-file field 2, shadow field 2).
    ///
    /// Without a `{SCHEME}` prefix the field is a crypt string, as in Dovecot (its default
    /// scheme is CRYPT) and /etc/shadow.
    pub fn parse(field: &str) -> Result<Secret, HashError> {
        let Some(rest) = field.strip_prefix('{') else {
            return parse_crypt(field, None);
        };
        let Some((scheme, value)) = rest.split_once('}') else {
            return Err(HashError::Malformed("unterminated {SCHEME}"));
        };
        // Dovecot allows `{PLAIN.b64}`-style encoding suffixes; scheme names are case-blind.
        let (name, encoding) = match scheme.split_once('.') {
            Some((n, e)) => (n, Some(e)),
            None => (scheme, None),
        };
        let upper = name.to_ascii_uppercase();
        let crypt_kinds: Option<(&'static str, &[CryptKind])> = match upper.as_str() {
            "PLAIN" | "CLEARTEXT" => {
                // An empty secret is a disabled account, as an empty hash field is.
                let plain = decode_plain(encoding, value)?;
                return Ok(if plain.is_empty() {
                    Secret::Disabled
                } else {
                    Secret::Plain(plain)
                });
            }
            "CRYPT" => Some((
                "CRYPT",
                &[
                    CryptKind::Md5,
                    CryptKind::Sha256,
                    CryptKind::Sha512,
                    CryptKind::Bcrypt,
                    CryptKind::Yescrypt,
                ],
            )),
            "MD5-CRYPT" => Some(("MD5-CRYPT", &[CryptKind::Md5])),
            "SHA256-CRYPT" => Some(("SHA256-CRYPT", &[CryptKind::Sha256])),
            "SHA512-CRYPT" => Some(("SHA512-CRYPT", &[CryptKind::Sha512])),
            "BLF-CRYPT" => Some(("BLF-CRYPT", &[CryptKind::Bcrypt])),
            _ => None,
        };
        match crypt_kinds {
            Some(_) if encoding.is_some() => {
                Err(HashError::Malformed("encoding suffix on a crypt scheme"))
            }
            Some(expected) => parse_crypt(value, Some(expected)),
            None => Err(HashError::UnknownScheme(scheme.to_owned())),
        }
    }

    /// The plaintext secret, for APOP and CRAM-MD5.
    pub fn plaintext(&self) -> Option<&[u8]> {
        match self {
            Secret::Plain(p) => Some(p),
            _ => None,
        }
    }

    pub fn is_disabled(&self) -> bool {
        matches!(self, Secret::Disabled)
    }

    /// Check a password. Comparisons are constant-time (ours for plaintext, the crates' for
    /// hashes); the running time depends only on the secret's kind and cost.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Secret::Plain(stored) => ct_eq(stored, password),
            Secret::Crypt { kind, hash } => {
                let _slot = HASH_GATE.enter();
                match kind {
                    CryptKind::Yescrypt => verify_yescrypt(password, hash),
                    _ => pwhash::unix::verify(password, hash),
                }
            }
            Secret::Disabled => false,
        }
    }

    /// A key naming what verifying against this secret costs: the algorithm plus its work
    /// parameters (yescrypt params, bcrypt cost, sha-crypt rounds). Secrets with the same key
    /// take the same time to verify.
    pub fn cost_key(&self) -> String {
        match self {
            Secret::Plain(_) => "plain".into(),
            Secret::Disabled => "disabled".into(),
            Secret::Crypt { kind, hash } => {
                let fields: Vec<&str> = hash[1..].split('$').collect();
                let param = match kind {
                    CryptKind::Yescrypt | CryptKind::Bcrypt => fields.get(1).copied(),
                    CryptKind::Sha256 | CryptKind::Sha512 => {
                        fields.get(1).copied().filter(|f| f.starts_with("rounds="))
                    }
                    CryptKind::Md5 => None,
                };
                format!("{}${}", fields[0], param.unwrap_or(""))
            }
        }
    }

    /// A secret of the same kind and cost that no password verifies against in practice; used
    /// to make unknown users and disabled accounts cost what a wrong password costs.
    pub(super) fn dummy(&self) -> Secret {
        match self {
            Secret::Plain(_) | Secret::Disabled => Secret::Plain(DUMMY_PASSWORD.to_vec()),
            Secret::Crypt {
                kind: CryptKind::Yescrypt,
                hash,
            } => dummy_yescrypt(hash).unwrap_or_else(|| self.clone()),
            Secret::Crypt { kind, hash } => match pwhash::unix::crypt(DUMMY_PASSWORD, hash) {
                // Same salt and rounds as the template: exactly the same work.
                Ok(h) => Secret::Crypt {
                    kind: *kind,
                    hash: h,
                },
                Err(_) => self.clone(),
            },
        }
    }
}

/// The password behind every dummy hash. Its value does not matter: results of dummy
/// verifications are always discarded.
const DUMMY_PASSWORD: &[u8] = b"mboxpopd dummy password, never accepted";

fn verify_yescrypt(password: &[u8], hash: &str) -> bool {
    use yescrypt::PasswordVerifier;
    PasswordVerifier::<str>::verify_password(&yescrypt::Yescrypt::default(), password, hash).is_ok()
}

fn dummy_yescrypt(hash: &str) -> Option<Secret> {
    use yescrypt::PasswordHasher;
    let params: yescrypt::Params = hash[1..].split('$').nth(1)?.parse().ok()?;
    let h = yescrypt::Yescrypt::from(params)
        .hash_password(DUMMY_PASSWORD)
        .ok()?;
    Some(Secret::Crypt {
        kind: CryptKind::Yescrypt,
        hash: h.as_str().to_owned(),
    })
}

/// Constant-time equality that does not leak the stored length either: both sides are hashed
/// to fixed-size digests first, then compared without early exit.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let da = Sha256::digest(a);
    let db = Sha256::digest(b);
    let same = bool::from(da.as_slice().ct_eq(db.as_slice()));
    // Digest equality implies input equality except with negligible probability; the length
    // check only decides ties and runs after the constant-time part.
    same && a.len() == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Test vectors generated on Debian 12 with `mkpasswd` (whois 5.5.17, libxcrypt) and
    // `openssl passwd`; the password is "correct horse" unless noted.
    const MD5: &str = "$1$zNOVFBON$3IYLvEyezPlEowVUGW1Ug0";
    const SHA256: &str = "$5$Jkv9pDXdTG4p/dAl$PIq8ILcQgmKnu6BfwKJRtG53jHDwQxxXY6n9V7ao/nC";
    const SHA512: &str = "$6$ilq6.jE2SMB2SlVN$03NAv5A2HZaYCkNCs8QBdGwxZRk0jO9Qf8tes7Z6fk2kxrFT96YuD9NdSbIRnjxBb08RSOp2sI2Dhzh5Eb88R0";
    const BCRYPT_2B: &str = "$2b$05$M89a0T4KUef52JhUwwwTjeRpjw2X8337VHB/v4GUrYswNHCXDTNQG";
    const BCRYPT_2A: &str = "$2a$05$Qpl/.zedSrZVPqHGdrxd9.QKCXborDibjgH37g8Mm07xAV6qX0SHW";
    const YESCRYPT: &str =
        "$y$j9T$yCPnPvLO3.I2hp4XJwa/T.$gmEzyZm0a/6dX8ZgBEDOqFVqgzTj7GDP.L0XURqBC83";
    // `mkpasswd -m yescrypt -R 3 'pässwörd'` (UTF-8 password, lower cost).
    const YESCRYPT_UTF8: &str =
        "$y$j7T$eq0FGzGClVVLA5XqnKzlt/$SBUSqB7xgvgO9Dx8bZZfRm3sj5z15vsLbxF1GUDl8mD";
    // `openssl passwd -6 -salt saltsalt 'correct horse'`
    const SHA512_OPENSSL: &str = "$6$saltsalt$hRM5XZ86KXEw9UOmjigeVqFgULtFB2sgpC9lXQDfMib3Zgw7mEiUvBJI2EplzfAqxL5Vvwp2scFtv/uamSo5z0";
    // pwhash's documented $2y$ vector (password "password").
    const BCRYPT_2Y: &str = "$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe";

    fn check(field: &str, good: &[u8]) {
        let s = Secret::parse(field).unwrap_or_else(|e| panic!("{field}: {e}"));
        assert!(s.verify(good), "{field} should accept");
        assert!(!s.verify(b"wrong"), "{field} should reject");
        assert!(!s.verify(b""), "{field} should reject empty");
        let mut almost = good.to_vec();
        almost.push(b'x');
        assert!(
            !s.verify(&almost),
            "{field} should reject a longer password"
        );
    }

    #[test]
    fn crypt_vectors_from_debian_tools() {
        for h in [
            MD5,
            SHA256,
            SHA512,
            BCRYPT_2B,
            BCRYPT_2A,
            YESCRYPT,
            SHA512_OPENSSL,
        ] {
            check(h, b"correct horse");
        }
        check(BCRYPT_2Y, b"password");
        check(YESCRYPT_UTF8, "pässwörd".as_bytes());
    }

    #[test]
    fn dovecot_scheme_prefixes() {
        check(&format!("{{CRYPT}}{YESCRYPT}"), b"correct horse");
        check(&format!("{{SHA512-CRYPT}}{SHA512}"), b"correct horse");
        check(&format!("{{sha256-crypt}}{SHA256}"), b"correct horse");
        check(&format!("{{MD5-CRYPT}}{MD5}"), b"correct horse");
        check(&format!("{{BLF-CRYPT}}{BCRYPT_2Y}"), b"password");
        check("{PLAIN}s3cret", b"s3cret");
        check("{CLEARTEXT}s3cret", b"s3cret");
        check("{PLAIN.b64}czNjcmV0", b"s3cret");
        check("{PLAIN.hex}733363726574", b"s3cret");
        // `{PLAIN}` secrets may contain anything, including ':'-free punctuation and '$'.
        check("{PLAIN}$6$not-a-hash", b"$6$not-a-hash");
        assert_eq!(
            Secret::parse("{PLAIN}s3cret").unwrap().plaintext(),
            Some(&b"s3cret"[..])
        );
        assert_eq!(Secret::parse(SHA512).unwrap().plaintext(), None);
    }

    #[test]
    fn scheme_mismatch_and_unknowns_are_errors() {
        assert_eq!(
            Secret::parse(&format!("{{MD5-CRYPT}}{SHA512}")),
            Err(HashError::SchemeMismatch("MD5-CRYPT"))
        );
        assert_eq!(
            Secret::parse("{SSHA}abcd"),
            Err(HashError::UnknownScheme("SSHA".into()))
        );
        assert_eq!(
            Secret::parse("{PLAIN"),
            Err(HashError::Malformed("unterminated {SCHEME}"))
        );
        // DES crypt, scrypt and gost-yescrypt are not supported.
        assert_eq!(
            Secret::parse("aZGJuE6EXrjEE"),
            Err(HashError::UnsupportedCrypt)
        );
        assert_eq!(
            Secret::parse("$7$abc$def"),
            Err(HashError::UnsupportedCrypt)
        );
        assert_eq!(
            Secret::parse("$gy$j9T$a$b"),
            Err(HashError::UnsupportedCrypt)
        );
        assert!(matches!(
            Secret::parse("$6$salt"),
            Err(HashError::Malformed(_))
        ));
        assert!(matches!(
            Secret::parse("$6$sa lt$abc"),
            Err(HashError::Malformed(_))
        ));
        assert!(matches!(
            Secret::parse("$y$j9T$salt"),
            Err(HashError::Malformed(_))
        ));
        assert!(matches!(
            Secret::parse("{PLAIN.b64}!!"),
            Err(HashError::Malformed(_))
        ));
    }

    #[test]
    fn absurd_work_parameters_are_refused() {
        assert!(
            Secret::parse("$2b$31$M89a0T4KUef52JhUwwwTjeRpjw2X8337VHB/v4GUrYswNHCXDTNQG").is_err()
        );
        assert!(Secret::parse("$6$rounds=999999999$saltsalt$abc").is_err());
        assert!(Secret::parse("$6$rounds=5000$saltsalt$abc").is_ok());
        // 'b' decodes to nlog2 = 40: N = 2^40 would need 512 TiB.
        assert_eq!(yescrypt_params("jbT").map(|p| p.nlog2), Some(40));
        assert_eq!(
            Secret::parse(
                "$y$jbT$yCPnPvLO3.I2hp4XJwa/T.$gmEzyZm0a/6dX8ZgBEDOqFVqgzTj7GDP.L0XURqBC83"
            ),
            Err(HashError::Malformed(
                "work parameters beyond the sane maximum"
            ))
        );
        // At r = 32: 'G' (nlog2 = 19, 2 GiB) is refused, 'F' (2^18, exactly 1 GiB) is fine.
        assert!(Secret::parse(
            "$y$jGT$yCPnPvLO3.I2hp4XJwa/T.$gmEzyZm0a/6dX8ZgBEDOqFVqgzTj7GDP.L0XURqBC83"
        )
        .is_err());
        assert!(Secret::parse(
            "$y$jFT$yCPnPvLO3.I2hp4XJwa/T.$gmEzyZm0a/6dX8ZgBEDOqFVqgzTj7GDP.L0XURqBC83"
        )
        .is_ok());
    }

    #[test]
    fn yescrypt_params_decode_like_the_reference() {
        // Debian's default "j9T" is N = 4096 (2^12), r = 32, p = 1 (16 MiB).
        let p = yescrypt_params("j9T").unwrap();
        assert_eq!((p.nlog2, p.r, p.p, p.t), (12, 32, 1, 0));
        // `mkpasswd -R 3` gives "j7T": N = 2^10.
        let p = yescrypt_params("j7T").unwrap();
        assert_eq!((p.nlog2, p.r), (10, 32));
        // The reference test vector "jD5.7": N = 2^16... with p and t present.
        assert!(yescrypt_params("jD5.7").is_some());
        assert!(yescrypt_params("").is_none());
        assert!(yescrypt_params("j9").is_none());
    }

    #[test]
    fn locked_and_empty_never_verify() {
        for f in [
            "",
            "!",
            "*",
            "!!",
            "*LK*",
            &format!("!{SHA512}"),
            &format!("{{CRYPT}}!{YESCRYPT}"),
        ] {
            let s = Secret::parse(f).unwrap();
            assert!(s.is_disabled(), "{f:?}");
            assert!(!s.verify(b""));
            assert!(!s.verify(b"correct horse"));
        }
    }

    #[test]
    fn ct_eq_is_exact() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"abc", b""));
    }

    #[test]
    fn dummies_have_the_same_cost_class_and_reject() {
        for h in [MD5, SHA256, SHA512, BCRYPT_2B, YESCRYPT, YESCRYPT_UTF8] {
            let s = Secret::parse(h).unwrap();
            let d = s.dummy();
            assert_eq!(d.cost_key(), s.cost_key(), "{h}");
            assert!(!d.verify(b"correct horse"));
            assert!(d.verify(DUMMY_PASSWORD), "{h}: dummy must be a real hash");
        }
        let rounds = Secret::parse("$6$rounds=1000$saltsalt$xyz").unwrap();
        assert_eq!(rounds.cost_key(), "6$rounds=1000");
        assert_eq!(rounds.dummy().cost_key(), "6$rounds=1000");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = Secret::parse("{PLAIN}hunter2").unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
        let s = Secret::parse(SHA512).unwrap();
        assert!(!format!("{s:?}").contains("ilq6"));
    }

    proptest! {
        // Parsing and verifying arbitrary junk must never panic; junk never verifies the
        // empty password unless it is a plaintext secret.
        #[test]
        fn parse_and_verify_never_panic(field in "(\\{[A-Za-z0-9.-]{0,14}\\})?(\\$(1|5|6|2a|2b|2y|y)\\$)?[ -~]{0,40}",
                                         pw in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(s) = Secret::parse(&field) {
                let ok = s.verify(&pw);
                if ok {
                    prop_assert!(matches!(s, Secret::Plain(_)) || field.contains('$'));
                }
            }
        }

        #[test]
        fn plain_round_trip(pw in "[ -~]{1,40}") {
            let s = Secret::parse(&format!("{{PLAIN}}{pw}")).unwrap();
            prop_assert!(s.verify(pw.as_bytes()));
            let mut other = pw.clone().into_bytes();
            other.push(b'!');
            prop_assert!(!s.verify(&other));
        }
    }
}
