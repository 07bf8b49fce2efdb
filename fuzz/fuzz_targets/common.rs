//! Helpers shared by the storage targets: a line-by-line reference model of the transmit
//! encoder (written the obvious, non-streaming way) and wire-format checks.
#![allow(dead_code)]

use mboxpopd::config::MboxFormat;
use mboxpopd::storage::encode::is_private_header;

/// Bytes a header line's first bytes are probed for a colon (the encoder's `NAME_PROBE`).
const NAME_PROBE: usize = 16;

/// The lines (without CRLF, before byte-stuffing) the encoder must send for `content`.
pub fn model(content: &[u8], format: MboxFormat, top: Option<u64>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut in_headers = true;
    let mut hiding = false;
    let mut body_lines = 0u64;
    for raw in content.split_inclusive(|&b| b == b'\n') {
        let terminated = raw.ends_with(b"\n");
        let text = if terminated {
            let t = &raw[..raw.len() - 1];
            t.strip_suffix(b"\r").unwrap_or(t)
        } else {
            raw
        };
        if in_headers {
            if raw == b"\n" || raw == b"\r\n" {
                out.push(Vec::new());
                in_headers = false;
                if top == Some(0) {
                    return out;
                }
                continue;
            }
            let hidden = match raw[0] {
                b' ' | b'\t' => hiding,
                _ => {
                    let probe = &raw[..raw.len().min(NAME_PROBE)];
                    match probe.iter().position(|&b| b == b':') {
                        Some(colon) => is_private_header(&probe[..colon]),
                        None => false,
                    }
                }
            };
            hiding = hidden;
            if !hidden {
                out.push(unquote(text, format));
            }
        } else {
            out.push(unquote(text, format));
            if terminated {
                body_lines += 1;
                if top.is_some_and(|k| body_lines >= k) {
                    return out;
                }
            }
        }
    }
    out
}

/// mboxrd: `>+From ` loses one `>`.
fn unquote(line: &[u8], format: MboxFormat) -> Vec<u8> {
    if format == MboxFormat::Mboxrd {
        let gts = line.iter().take_while(|&&b| b == b'>').count();
        if gts > 0 && line[gts..].starts_with(b"From ") {
            return line[1..].to_vec();
        }
    }
    line.to_vec()
}

/// The wire form of model lines: byte-stuffed, CRLF-terminated.
pub fn wire(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        if l.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(l);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Remove byte-stuffing from wire output: what a client gets back.
pub fn unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut line_start = true;
    for &b in wire {
        if !(line_start && b == b'.') {
            out.push(b);
        }
        line_start = b == b'\n';
    }
    out
}

/// Properties of any transmit output, independent of the model.
pub fn check_wire(out: &[u8]) {
    for (i, &b) in out.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {i}");
        }
    }
    if !out.is_empty() {
        assert!(out.ends_with(b"\r\n"), "output does not end with CRLF");
    }
    // A line starting with '.' is stuffed: no line is a lone "." (the end-of-response mark)
    // and every dot-led line carries at least the stuffing dot plus its own first byte.
    for line in out.split(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            assert!(line.starts_with(b".."), "unstuffed line {line:?}");
        }
    }
}
