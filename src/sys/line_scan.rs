//! One pass over a block of mail lines that counts line ends, notices carriage returns and
//! stops at the first line starting with "From ". The indexer used three passes for this
//! (a newline count, a CR search and a substring search); on a big mailbox they were a sixth
//! of a first login's CPU.

/// What [`until_from_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineScan {
    /// Offset of the first LF that is followed by "From ", or the block's length.
    pub stop: usize,
    /// LFs before `stop`.
    pub newlines: u64,
    /// A CR occurs before `stop`. May also be true for a CR in the 32 bytes after it, which
    /// callers treat only as "look for CRs" (a slower path that gives the same result).
    pub cr: bool,
}

/// Scan `s` up to the first LF followed by "From " (the bytes after `s` do not count).
pub fn until_from_line(s: &[u8]) -> LineScan {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above), the only requirement of
        // `avx2::until_from_line` beyond a valid slice.
        return unsafe { avx2::until_from_line(s) };
    }
    scalar(s, 0, false)
}

/// The reference: byte by byte from `s`'s start, with counts carried in.
fn scalar(s: &[u8], mut newlines: u64, mut cr: bool) -> LineScan {
    for (i, &b) in s.iter().enumerate() {
        if b == b'\n' {
            if s[i + 1..].starts_with(b"From ") {
                return LineScan {
                    stop: i,
                    newlines,
                    cr,
                };
            }
            newlines += 1;
        } else if b == b'\r' {
            cr = true;
        }
    }
    LineScan {
        stop: s.len(),
        newlines,
        cr,
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{scalar, LineScan};
    use std::arch::x86_64::*;

    /// 32 bytes a step: LFs and CRs by comparison masks, "From " candidates where an LF is
    /// followed by 'F' (checked in full only there).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2,popcnt")]
    pub unsafe fn until_from_line(s: &[u8]) -> LineScan {
        let lf = _mm256_set1_epi8(b'\n' as i8);
        let crv = _mm256_set1_epi8(b'\r' as i8);
        let f = _mm256_set1_epi8(b'F' as i8);
        let mut crs = _mm256_setzero_si256();
        let mut newlines = 0u64;
        let mut i = 0usize;
        // Each step reads s[i..i + 33]: this chunk and the byte after each of its bytes.
        while i + 33 <= s.len() {
            // SAFETY: i + 33 <= s.len(), so both unaligned 32-byte loads, at i and at i + 1,
            // stay inside `s`.
            let (v, next) = unsafe {
                let p = s.as_ptr().add(i);
                (
                    _mm256_loadu_si256(p.cast::<__m256i>()),
                    _mm256_loadu_si256(p.add(1).cast::<__m256i>()),
                )
            };
            let is_cr = _mm256_cmpeq_epi8(v, crv);
            let lfs = _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, lf)) as u32;
            let mut candidates = lfs & _mm256_movemask_epi8(_mm256_cmpeq_epi8(next, f)) as u32;
            crs = _mm256_or_si256(crs, is_cr);
            while candidates != 0 {
                let bit = candidates.trailing_zeros();
                let stop = i + bit as usize;
                if s[stop + 1..].starts_with(b"From ") {
                    let below = (1u32 << bit) - 1;
                    return LineScan {
                        stop,
                        newlines: newlines + u64::from((lfs & below).count_ones()),
                        cr: _mm256_movemask_epi8(crs) != 0,
                    };
                }
                candidates &= candidates - 1;
            }
            newlines += u64::from(lfs.count_ones());
            i += 32;
        }
        let tail = scalar(&s[i..], newlines, _mm256_movemask_epi8(crs) != 0);
        LineScan {
            stop: i + tail.stop,
            ..tail
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(s: &[u8]) -> LineScan {
        scalar(s, 0, false)
    }

    fn agrees(s: &[u8]) {
        let fast = until_from_line(s);
        let slow = exact(s);
        assert_eq!(
            (fast.stop, fast.newlines),
            (slow.stop, slow.newlines),
            "{s:?}"
        );
        // A CR may be reported for the rest of the chunk the stop is in, never missed.
        assert!(fast.cr >= slow.cr, "{s:?}");
        let chunk_end = (fast.stop / 32 * 32 + 33).min(s.len());
        assert!(!fast.cr || s[..chunk_end].contains(&b'\r'), "{s:?}");
    }

    #[test]
    fn stops_at_the_first_from_line_at_every_position() {
        for len in 0..100 {
            for at in 0..len {
                let mut s = vec![b'a'; len];
                for k in (0..len).step_by(7) {
                    s[k] = b'\n';
                }
                let tail = b"\nFrom x\n";
                s.truncate(at);
                s.extend_from_slice(tail);
                s.extend_from_slice(b"more\r\nlines\n\nFrom y\n");
                agrees(&s);
                assert_eq!(until_from_line(&s).stop, at);
            }
        }
    }

    #[test]
    fn near_misses_do_not_stop() {
        let s = b"a\nFrom\nb\nFrm x\n>From x\nFROM x\nxFrom y\n".repeat(5);
        agrees(&s);
        assert_eq!(until_from_line(&s).stop, s.len());
        assert_eq!(until_from_line(&s).newlines, 35);
    }

    proptest! {
        #[test]
        fn the_fast_scan_is_the_byte_by_byte_scan(
            pieces in prop::collection::vec(
                prop_oneof![
                    Just(&b"\n"[..]),
                    Just(&b"\r"[..]),
                    Just(&b"\r\n"[..]),
                    Just(&b"From "[..]),
                    Just(&b"Fro"[..]),
                    Just(&b"F"[..]),
                    Just(&b"a line of text"[..]),
                    Just(&b"\0\xff"[..]),
                ],
                0..80,
            ),
        ) {
            agrees(&pieces.concat());
        }
    }
}
