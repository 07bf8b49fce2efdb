//! The `popa3d` UIDL preset against the real popa3d's output on the same mbox
//! (tests/fixtures/README.md says how the expected listing was produced).

use mboxpopd::config::{MboxFormat, UidlFormat};
use mboxpopd::storage::index::{index_mbox, IndexOptions};

const MBOX: &[u8] = include_bytes!("../fixtures/uidl-headers.mbox");
const POPA3D: &str = include_str!("../fixtures/uidl-headers.popa3d-uidl");
const DOVECOT: &str = include_str!("../fixtures/uidl-headers.dovecot-m-uidl");
const DOVECOT_LIST: &str = include_str!("../fixtures/uidl-headers.dovecot-list");
/// The fixture after Dovecot served it (it adds X-IMAPbase, X-UID, Status and padding).
const REWRITTEN: &[u8] = include_bytes!("../fixtures/uidl-headers.dovecot-rewritten.mbox");
const REWRITTEN_UIDL: &str = include_str!("../fixtures/uidl-headers.dovecot-rewritten.uidl");

fn index(mbox: &[u8], uidl: UidlFormat) -> Vec<(String, u64)> {
    let opts = IndexOptions {
        format: MboxFormat::Mboxo,
        uidl,
    };
    let index = index_mbox(mbox, &opts).expect("fixture indexes");
    index
        .messages
        .into_iter()
        .map(|m| (m.uidl.to_string(), m.size))
        .collect()
}

fn listing(text: &str) -> Vec<String> {
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            let (n, uidl) = l.split_once(' ').expect("`n uidl` lines");
            assert_eq!(n.parse::<usize>().expect("number"), i + 1);
            uidl.to_string()
        })
        .collect()
}

#[test]
fn popa3d_preset_matches_real_popa3d() {
    for format in [MboxFormat::Mboxo, MboxFormat::Mboxrd] {
        let opts = IndexOptions {
            format,
            uidl: UidlFormat::Popa3d,
        };
        let index = index_mbox(MBOX, &opts).expect("fixture indexes");
        let got: Vec<String> = index.messages.iter().map(|m| m.uidl.to_string()).collect();
        let mut want = listing(POPA3D);
        assert_eq!(got.len(), want.len(), "message count");
        // popa3d gives the three identical copies (6, 7, 8) one UIDL; ours stay unique.
        assert_eq!(want[5], want[6]);
        assert_eq!(want[6], want[7]);
        want[6].push_str("-2");
        want[7].push_str("-3");
        assert_eq!(got, want);
    }
}

#[test]
fn dovecot_md5_preset_matches_real_dovecot() {
    let opts = IndexOptions {
        format: MboxFormat::Mboxo,
        uidl: UidlFormat::DovecotMd5,
    };
    let index = index_mbox(MBOX, &opts).expect("fixture indexes");
    let got: Vec<String> = index.messages.iter().map(|m| m.uidl.to_string()).collect();
    let mut want = listing(DOVECOT);
    assert_eq!(want[5], want[6]);
    assert_eq!(want[6], want[7]);
    want[6].push_str("-2");
    want[7].push_str("-3");
    assert_eq!(got, want);
    // The two daemons' schemes are not the same: a Dovecot user needs this preset.
    let popa3d = listing(POPA3D);
    assert!(want.iter().zip(&popa3d).all(|(d, p)| d != p));
}

#[test]
fn sizes_match_dovecot_list() {
    let opts = IndexOptions {
        format: MboxFormat::Mboxo,
        uidl: UidlFormat::Native,
    };
    let index = index_mbox(MBOX, &opts).expect("fixture indexes");
    let got: Vec<String> = index.messages.iter().map(|m| m.size.to_string()).collect();
    assert_eq!(got, listing(DOVECOT_LIST));
}

#[test]
fn dovecot_uid_preset_matches_dovecot_default_on_a_dovecot_synced_mbox() {
    let got: Vec<String> = index(REWRITTEN, UidlFormat::DovecotUid)
        .into_iter()
        .map(|(u, _)| u)
        .collect();
    assert_eq!(got, listing(REWRITTEN_UIDL));
    // UW's order is the reverse.
    let uw = index(REWRITTEN, UidlFormat::Imap);
    let first = &listing(REWRITTEN_UIDL)[0];
    assert_eq!(uw[0].0, format!("{}{}", &first[8..], &first[..8]));
}

#[test]
fn native_uidls_and_sizes_survive_dovecots_rewrite() {
    // Dovecot added X-IMAPbase, X-UID, Status and padding to every message: nothing a client
    // sees changed, so neither may the native UIDLs, the sizes, or the content-based presets.
    assert_ne!(MBOX, REWRITTEN);
    for uidl in [UidlFormat::Native, UidlFormat::DovecotMd5] {
        assert_eq!(index(MBOX, uidl), index(REWRITTEN, uidl), "{uidl:?}");
    }
    // popa3d's scheme too, except for the CRLF message (14): Dovecot rewrote its header
    // terminator as a bare LF, so popa3d itself would now stop hashing at the body.
    let (before, after) = (
        index(MBOX, UidlFormat::Popa3d),
        index(REWRITTEN, UidlFormat::Popa3d),
    );
    assert_eq!(before[..13], after[..13]);
    assert_ne!(before[13].0, after[13].0);
}

#[test]
fn other_presets_stay_unique_on_the_fixture() {
    for uidl in [
        UidlFormat::Native,
        UidlFormat::XUidl,
        UidlFormat::Imap,
        UidlFormat::DovecotMd5,
    ] {
        let opts = IndexOptions {
            format: MboxFormat::Mboxo,
            uidl,
        };
        let index = index_mbox(MBOX, &opts).expect("fixture indexes");
        let mut all: Vec<String> = index.messages.iter().map(|m| m.uidl.to_string()).collect();
        assert_eq!(all.len(), 14);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 14, "{uidl:?} UIDLs are unique");
    }
}
