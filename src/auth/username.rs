//! User-name validation.
//!
//! Every name a client sends passes through [`validate`] before it is looked up in a backend or
//! substituted into a mailbox path. The rules are deliberately stricter than what Unix allows:
//! a name that fails here can never become a path component other than a plain file name, and
//! never smuggles control characters into log lines.
//!
//! UTF-8 names are allowed (RFC 6856 `UTF8` + `USER`), but the Unicode characters that are
//! invisible or reorder text (format characters such as bidi overrides and zero-width joiners)
//! are refused, because they would let one name look like another in logs.

use std::fmt;

/// Longest accepted name in bytes (not characters): bounds every buffer and path built from it.
/// Debian's `useradd` allows 32; Dovecot virtual users are often `local@domain`.
pub const MAX_USERNAME_LEN: usize = 64;

/// Why a user name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernameError {
    Empty,
    /// Longer than [`MAX_USERNAME_LEN`] bytes.
    TooLong(usize),
    /// Not valid UTF-8 (only from [`validate_bytes`]).
    NotUtf8,
    /// Starts with `.`: covers `.` and `..` and hidden files such as `.lock` names.
    LeadingDot,
    /// A character that must never reach a path, a backend file or a log line.
    ForbiddenChar(char),
}

impl fmt::Display for UsernameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UsernameError::Empty => write!(f, "empty user name"),
            UsernameError::TooLong(n) => {
                write!(f, "user name too long ({n} bytes, max {MAX_USERNAME_LEN})")
            }
            UsernameError::NotUtf8 => write!(f, "user name is not valid UTF-8"),
            UsernameError::LeadingDot => write!(f, "user name starts with '.'"),
            UsernameError::ForbiddenChar(c) => {
                write!(
                    f,
                    "user name contains forbidden character U+{:04X}",
                    *c as u32
                )
            }
        }
    }
}

impl std::error::Error for UsernameError {}

/// Characters refused anywhere in a name.
fn is_forbidden(c: char) -> bool {
    // `/` and `\` could build paths (the latter on nothing we run on, but it confuses admins),
    // `:` is the field separator of passwd files, `%` would look like a template escape in logs.
    matches!(c, '/' | '\\' | ':' | '%')
        || c.is_control()
        || c.is_whitespace()
        || is_invisible_format(c)
}

/// Unicode format characters (category Cf) that are invisible or reorder text: zero-width
/// characters, bidi marks, embeddings, overrides and isolates, word joiners, the BOM.
fn is_invisible_format(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x061C | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFEFF
        | 0xFFF9..=0xFFFB)
}

/// Validate a user name. Returns the name unchanged on success so callers can chain it.
pub fn validate(name: &str) -> Result<&str, UsernameError> {
    if name.is_empty() {
        return Err(UsernameError::Empty);
    }
    if name.len() > MAX_USERNAME_LEN {
        return Err(UsernameError::TooLong(name.len()));
    }
    if name.starts_with('.') {
        return Err(UsernameError::LeadingDot);
    }
    if let Some(c) = name.chars().find(|&c| is_forbidden(c)) {
        return Err(UsernameError::ForbiddenChar(c));
    }
    Ok(name)
}

/// Validate a name received as raw bytes from the wire (USER, SASL authcid).
pub fn validate_bytes(name: &[u8]) -> Result<&str, UsernameError> {
    if name.len() > MAX_USERNAME_LEN {
        return Err(UsernameError::TooLong(name.len()));
    }
    let s = std::str::from_utf8(name).map_err(|_| UsernameError::NotUtf8)?;
    validate(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "alice",
            "bob.smith",
            "user-1",
            "u_2",
            "alice@example.org",
            "ÄÖÜ",
            "用户",
            "a",
        ] {
            assert_eq!(validate(n), Ok(n), "{n}");
        }
        let max = "x".repeat(MAX_USERNAME_LEN);
        assert!(validate(&max).is_ok());
    }

    #[test]
    fn refuses_traversal_and_separators() {
        assert_eq!(validate(""), Err(UsernameError::Empty));
        assert_eq!(validate("."), Err(UsernameError::LeadingDot));
        assert_eq!(validate(".."), Err(UsernameError::LeadingDot));
        assert_eq!(validate(".profile"), Err(UsernameError::LeadingDot));
        assert_eq!(validate("../etc/passwd"), Err(UsernameError::LeadingDot));
        assert_eq!(
            validate("a/../../b"),
            Err(UsernameError::ForbiddenChar('/'))
        );
        assert_eq!(validate("a/b"), Err(UsernameError::ForbiddenChar('/')));
        assert_eq!(validate("a\\b"), Err(UsernameError::ForbiddenChar('\\')));
        assert_eq!(validate("root:x"), Err(UsernameError::ForbiddenChar(':')));
        assert_eq!(validate("a%u"), Err(UsernameError::ForbiddenChar('%')));
    }

    #[test]
    fn refuses_control_whitespace_and_invisible() {
        assert_eq!(validate("a\0b"), Err(UsernameError::ForbiddenChar('\0')));
        assert_eq!(validate("a b"), Err(UsernameError::ForbiddenChar(' ')));
        assert_eq!(validate("a\tb"), Err(UsernameError::ForbiddenChar('\t')));
        assert_eq!(validate("a\r\nb"), Err(UsernameError::ForbiddenChar('\r')));
        assert_eq!(
            validate("a\x7fb"),
            Err(UsernameError::ForbiddenChar('\x7f'))
        );
        assert_eq!(
            validate("a\u{85}b"),
            Err(UsernameError::ForbiddenChar('\u{85}'))
        );
        assert_eq!(
            validate("a\u{a0}b"),
            Err(UsernameError::ForbiddenChar('\u{a0}'))
        );
        assert_eq!(
            validate("a\u{3000}b"),
            Err(UsernameError::ForbiddenChar('\u{3000}'))
        );
        assert_eq!(
            validate("adm\u{202e}in"),
            Err(UsernameError::ForbiddenChar('\u{202e}'))
        );
        assert_eq!(
            validate("ro\u{200b}ot"),
            Err(UsernameError::ForbiddenChar('\u{200b}'))
        );
    }

    #[test]
    fn length_is_counted_in_bytes() {
        // 22 three-byte characters = 66 bytes > 64.
        let long = "用".repeat(22);
        assert_eq!(validate(&long), Err(UsernameError::TooLong(66)));
        assert!(validate(&"用".repeat(21)).is_ok());
        assert_eq!(
            validate_bytes(&[b'a'; MAX_USERNAME_LEN + 1]),
            Err(UsernameError::TooLong(MAX_USERNAME_LEN + 1))
        );
    }

    #[test]
    fn bytes_must_be_utf8() {
        assert_eq!(validate_bytes(b"al\xffce"), Err(UsernameError::NotUtf8));
        assert_eq!(validate_bytes("jürgen".as_bytes()), Ok("jürgen"));
    }

    proptest! {
        // Whatever is accepted is a single, harmless path component.
        #[test]
        fn accepted_names_are_single_plain_components(s in "\\PC{0,40}|[./a-z\\x00-\\x20]{0,12}") {
            if let Ok(n) = validate(&s) {
                let p = std::path::Path::new(n);
                let comps: Vec<_> = p.components().collect();
                prop_assert_eq!(comps.len(), 1);
                prop_assert!(matches!(comps[0], std::path::Component::Normal(_)));
                prop_assert!(!n.starts_with('.'));
                prop_assert!(n.len() <= MAX_USERNAME_LEN);
                prop_assert!(!n.chars().any(|c| c.is_control() || c.is_whitespace()));
            }
        }

        #[test]
        fn validate_bytes_agrees_with_validate(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            match std::str::from_utf8(&b) {
                Ok(s) => prop_assert_eq!(validate_bytes(&b), validate(s)),
                Err(_) => prop_assert!(validate_bytes(&b).is_err()),
            }
        }
    }
}
