//! The inner loop of RETR: whole body lines copied with CRLF line ends and stuffed dots. Line
//! by line (a memchr, a copy and a push per line) this was most of RETR's user CPU; 32 bytes a
//! step it is a few instructions per step and per line.

/// Append the whole lines of `block` (which ends with LF) to `out`: each line end becomes
/// CRLF (a line that already ends with CR LF keeps it), and a line starting with '.' gets one
/// more. With `stop_at_gt`, stops before the first line starting with '>' (mboxrd lines that
/// may need unquoting). Returns the bytes of `block` consumed (whole lines) and their count.
pub fn encode_lines(block: &[u8], out: &mut Vec<u8>, stop_at_gt: bool) -> (usize, u64) {
    debug_assert!(block.is_empty() || block.last() == Some(&b'\n'));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && block.last() == Some(&b'\n') {
        // SAFETY: the CPU supports AVX2 (checked just above) and `block` ends with LF, the
        // requirements of `avx2::encode_lines` beyond valid references.
        return unsafe { avx2::encode_lines(block, out, stop_at_gt) };
    }
    scalar(block, out, stop_at_gt)
}

/// The reference: one line at a time.
fn scalar(block: &[u8], out: &mut Vec<u8>, stop_at_gt: bool) -> (usize, u64) {
    out.reserve(block.len() + block.len() / 16 + 64);
    let mut start = 0;
    let mut lines = 0;
    for nl in memchr::memchr_iter(b'\n', block) {
        let line = &block[start..nl];
        match line.first() {
            Some(b'.') => out.push(b'.'),
            Some(b'>') if stop_at_gt => break,
            _ => {}
        }
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
        start = nl + 1;
        lines += 1;
    }
    (start, lines)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Each step copies 32 bytes with one unaligned store and looks for an LF in them; a
    /// store may run past the line, and the next step (or line end) overwrites the excess.
    ///
    /// # Safety
    /// The CPU must support AVX2, and `block` must end with LF.
    #[target_feature(enable = "avx2")]
    pub unsafe fn encode_lines(block: &[u8], out: &mut Vec<u8>, stop_at_gt: bool) -> (usize, u64) {
        let n = block.len();
        // Every input byte gives at most two output bytes (LF -> CRLF, a line's first '.' ->
        // ".."), and a store writes at most 32 bytes past the output so far.
        out.reserve(2 * n + 64);
        let base = out.len();
        let src = block.as_ptr();
        // SAFETY: `base` is the length, within the allocation just reserved.
        let dst = unsafe { out.as_mut_ptr().add(base) };
        let lf = _mm256_set1_epi8(b'\n' as i8);
        let (mut p, mut o, mut lines) = (0usize, 0usize, 0u64);
        // `p` is always at a line start here, and `o` <= 2 * p.
        'lines: while p < n {
            let (start, line_out) = (p, o);
            // SAFETY (all raw accesses below): reads are at indexes < n (`p < n` here; a
            // vector load only when p + 32 <= n; the LF search stays inside `block`, which
            // ends with LF, so `p` stops at an LF < n). Writes stay below base + 2 * n + 64:
            // while the line is copied, o <= start + p + 1 <= 2 * p + 1, so a store at `o`
            // ends by 2 * p + 33 <= 2 * n (it needs p + 32 <= n), a tail copy by p + j + n + 1
            // <= 2 * n + 1, and the line end writes 2 more at o <= 2 * n.
            unsafe {
                match *src.add(p) {
                    b'.' => {
                        *dst.add(o) = b'.';
                        o += 1;
                    }
                    b'>' if stop_at_gt => break 'lines,
                    _ => {}
                }
                loop {
                    if p + 32 <= n {
                        let v = _mm256_loadu_si256(src.add(p).cast::<__m256i>());
                        _mm256_storeu_si256(dst.add(o).cast::<__m256i>(), v);
                        let m = _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, lf)) as u32;
                        if m == 0 {
                            p += 32;
                            o += 32;
                            continue;
                        }
                        let j = m.trailing_zeros() as usize;
                        p += j;
                        o += j;
                    } else {
                        // Always found (`block` ends with LF); if not, the partial line is
                        // left out.
                        let Some(j) = memchr::memchr(b'\n', &block[p..]) else {
                            (p, o) = (start, line_out);
                            break 'lines;
                        };
                        std::ptr::copy_nonoverlapping(src.add(p), dst.add(o), j);
                        p += j;
                        o += j;
                    }
                    break;
                }
                // block[p] is the line's LF; a CR before it (inside the line) was copied.
                if p > start && *src.add(p - 1) == b'\r' {
                    *dst.add(o) = b'\n';
                    o += 1;
                } else {
                    *dst.add(o) = b'\r';
                    *dst.add(o + 1) = b'\n';
                    o += 2;
                }
            }
            p += 1;
            lines += 1;
        }
        // SAFETY: bytes base..base + o were all written above, within the reservation.
        unsafe { out.set_len(base + o) };
        (p, lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agrees(block: &[u8], stop_at_gt: bool) {
        let mut fast = b"held".to_vec();
        let mut slow = b"held".to_vec();
        let f = encode_lines(block, &mut fast, stop_at_gt);
        let s = scalar(block, &mut slow, stop_at_gt);
        assert_eq!(
            (f, &fast),
            (s, &slow),
            "{:?}",
            String::from_utf8_lossy(block)
        );
    }

    #[test]
    fn every_line_length_and_position() {
        for len in 0..80 {
            for first in [b'a', b'.', b'>', b'\r', b'\n'] {
                let mut line = vec![b'x'; len];
                if let Some(f) = line.first_mut() {
                    *f = first;
                }
                line.push(b'\n');
                let block = [&b"ab\n"[..], &line, &line, b".\r\n\n\r\n", &line].concat();
                agrees(&block, false);
                agrees(&block, true);
            }
        }
    }

    #[test]
    fn converts_line_ends_and_stuffs_dots() {
        let mut out = Vec::new();
        let block = b"a\n.b\r\n\r\n..\nc\r\r\n";
        assert_eq!(encode_lines(block, &mut out, false), (block.len(), 5));
        assert_eq!(out, b"a\r\n..b\r\n\r\n...\r\nc\r\r\n");
        out.clear();
        assert_eq!(encode_lines(b"a\n>From x\nb\n", &mut out, true), (2, 1));
        assert_eq!(out, b"a\r\n");
    }

    proptest! {
        #[test]
        fn the_fast_copy_is_the_line_by_line_copy(
            pieces in prop::collection::vec(
                prop_oneof![
                    Just(&b"\n"[..]),
                    Just(&b"\r"[..]),
                    Just(&b"\r\n"[..]),
                    Just(&b"."[..]),
                    Just(&b">"[..]),
                    Just(&b"a line of text"[..]),
                    Just(&b"0123456789abcdef0123456789abcdef"[..]),
                    Just(&b"\0\xff"[..]),
                ],
                0..120,
            ),
            stop_at_gt in any::<bool>(),
        ) {
            let mut block = pieces.concat();
            block.push(b'\n');
            agrees(&block, stop_at_gt);
        }
    }
}
