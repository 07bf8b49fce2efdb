//! The mbox dialect and UIDL scheme a maildrop is read with (set by `mbox_format` and
//! `uidl_format` in the configuration, which only parses into these).

/// How `>From ` lines in message bodies are unquoted on transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MboxFormat {
    /// mboxo / mboxcl: `>From ` quoting is not reversible, bodies are sent as stored.
    Mboxo,
    /// mboxrd: one `>` is removed from `>+From ` lines on RETR/TOP (sizes match).
    Mboxrd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidlFormat {
    /// mboxpopd's own scheme (see mboxpopd.8): digest of the message plus an occurrence
    /// counter for identical messages.
    Native,
    /// popa3d: MD5 over selected raw header lines, 16 hex digits.
    Popa3d,
    /// qpopper / mailutils: reuse an `X-UIDL:` header when present and unique.
    XUidl,
    /// UW c-client / Dovecot default: `%08x%08x` of X-IMAPbase UIDVALIDITY and X-UID.
    Imap,
    /// Dovecot `pop3_uidl_format = %m` (`mbox_md5 = apop3d`): MD5 over the values of the
    /// same header fields as popa3d, 32 hex digits (not popa3d's output). Config value
    /// `dovecot-md5`.
    DovecotMd5,
    /// Dovecot's default `pop3_uidl_format = %08Xu%08Xv`: X-UID first, then UIDVALIDITY (the
    /// reverse of UW's order). Config value `dovecot-uid`.
    DovecotUid,
}
