//! The PROXY protocol (HAProxy's `proxy-protocol.txt`, versions 1 and 2): the header a TCP
//! proxy sends before anything else, carrying the client's address.
//!
//! [`parse`] is sans-IO: it looks at the bytes received so far and says either what the header
//! holds and how many bytes it took, that more bytes are needed (and how many at least, so a
//! caller reading exactly that many never consumes a byte of what follows the header: the
//! POP3 command stream or a TLS ClientHello), or why the bytes cannot be a header. It never
//! panics and never asks for more than [`MAX_HEADER`] bytes in total, whatever it is fed.
//! [`read_header`] drives it over a blocking reader with a deadline.

use std::fmt;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// The v2 signature.
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// v1: the longest line the spec allows, CRLF included.
pub const V1_MAX: usize = 107;
/// v2: the fixed part (signature, version/command, family, length).
const V2_FIXED: usize = 16;
/// v2: the most address and TLV bytes accepted. The spec allows 65535; HAProxy's own TLVs
/// (ALPN, authority, unique id, SSL details) fit in a fraction of this, and a bound keeps a
/// hostile or broken peer from making the server buffer 64 KiB per connection.
pub const V2_MAX_PAYLOAD: usize = 2048;
/// The longest header [`parse`] ever asks for.
pub const MAX_HEADER: usize = V2_FIXED + V2_MAX_PAYLOAD;

/// What the proxy says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A relayed client connection: the client's address and the address it connected to.
    Client {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 `LOCAL` (the proxy's own health check) or v1 `UNKNOWN` / a v2 family without an
    /// IP address: the connection speaks for itself, use the socket's peer.
    Local,
}

/// A complete header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub origin: Origin,
    /// Bytes the header took; whatever follows belongs to the proxied stream.
    pub consumed: usize,
}

/// The result of looking at a prefix of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    Done(Header),
    /// At least this many more bytes are needed (always at least 1, and never more than the
    /// header still lacks).
    NeedMore(usize),
}

/// Why the bytes are not an acceptable header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// Neither the v1 prefix nor the v2 signature.
    NotProxy,
    /// A v1 line that does not follow the grammar (or is too long).
    BadV1(&'static str),
    /// A v2 header with an unknown version, command, family or transport, or bad lengths.
    BadV2(&'static str),
    /// The v2 payload is longer than [`V2_MAX_PAYLOAD`].
    TooLong(usize),
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyError::NotProxy => f.write_str("no PROXY protocol header"),
            ProxyError::BadV1(why) => write!(f, "malformed PROXY v1 header: {why}"),
            ProxyError::BadV2(why) => write!(f, "malformed PROXY v2 header: {why}"),
            ProxyError::TooLong(n) => write!(
                f,
                "PROXY v2 header of {n} address/TLV bytes (at most {V2_MAX_PAYLOAD} accepted)"
            ),
        }
    }
}

impl std::error::Error for ProxyError {}

/// Look at the first bytes of a connection.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    // Decide the version as soon as the bytes seen so far rule one out.
    let n = buf.len().min(V2_SIGNATURE.len());
    let maybe_v2 = buf[..n] == V2_SIGNATURE[..n];
    let m = buf.len().min(V1_PREFIX.len());
    let maybe_v1 = buf[..m] == V1_PREFIX[..m];
    if maybe_v2 && buf.len() >= V2_SIGNATURE.len() {
        return parse_v2(buf);
    }
    if maybe_v1 && buf.len() >= V1_PREFIX.len() {
        return parse_v1(buf);
    }
    if !maybe_v1 && !maybe_v2 {
        return Err(ProxyError::NotProxy);
    }
    // Both headers are at least 15 bytes long ("PROXY UNKNOWN\r\n"; 16 for v2): asking for up
    // to that many cannot read past either.
    Ok(Parsed::NeedMore(15 - buf.len().min(14)))
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() >= V1_MAX {
            return Err(ProxyError::BadV1("no line end within 107 bytes"));
        }
        if window
            .iter()
            .any(|&b| !(0x20..0x7f).contains(&b) && b != b'\r')
        {
            return Err(ProxyError::BadV1("non-printable byte"));
        }
        // One byte at a time: the line end may be the next byte.
        return Ok(Parsed::NeedMore(1));
    };
    if lf == 0 || window[lf - 1] != b'\r' {
        return Err(ProxyError::BadV1("line does not end in CRLF"));
    }
    let line = std::str::from_utf8(&window[V1_PREFIX.len()..lf - 1])
        .map_err(|_| ProxyError::BadV1("not ASCII"))?;
    let consumed = lf + 1;
    let mut fields = line.split(' ');
    let proto = fields.next().unwrap_or("");
    if proto == "UNKNOWN" {
        // The rest of the line is to be ignored (the spec says so).
        return Ok(Parsed::Done(Header {
            version: 1,
            origin: Origin::Local,
            consumed,
        }));
    }
    let rest: Vec<&str> = fields.collect();
    let [src, dst, sport, dport] = rest[..] else {
        return Err(ProxyError::BadV1("expected 4 fields after the protocol"));
    };
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            IpAddr::V4(
                src.parse()
                    .map_err(|_| ProxyError::BadV1("bad IPv4 source"))?,
            ),
            IpAddr::V4(
                dst.parse()
                    .map_err(|_| ProxyError::BadV1("bad IPv4 destination"))?,
            ),
        ),
        "TCP6" => (
            IpAddr::V6(
                src.parse()
                    .map_err(|_| ProxyError::BadV1("bad IPv6 source"))?,
            ),
            IpAddr::V6(
                dst.parse()
                    .map_err(|_| ProxyError::BadV1("bad IPv6 destination"))?,
            ),
        ),
        _ => return Err(ProxyError::BadV1("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let sport = v1_port(sport)?;
    let dport = v1_port(dport)?;
    Ok(Parsed::Done(Header {
        version: 1,
        origin: Origin::Client {
            source: SocketAddr::new(src, sport),
            destination: SocketAddr::new(dst, dport),
        },
        consumed,
    }))
}

/// A decimal port, 0 to 65535, without a sign or leading zeros.
fn v1_port(s: &str) -> Result<u16, ProxyError> {
    let ok = !s.is_empty()
        && s.len() <= 5
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !ok {
        return Err(ProxyError::BadV1("bad port"));
    }
    s.parse()
        .map_err(|_| ProxyError::BadV1("port out of range"))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if buf.len() < V2_FIXED {
        return Ok(Parsed::NeedMore(V2_FIXED - buf.len()));
    }
    let ver_cmd = buf[12];
    let fam = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::BadV2("version is not 2"));
    }
    let command = ver_cmd & 0x0f;
    if command > 1 {
        return Err(ProxyError::BadV2("command is neither LOCAL nor PROXY"));
    }
    if len > V2_MAX_PAYLOAD {
        return Err(ProxyError::TooLong(len));
    }
    let total = V2_FIXED + len;
    if buf.len() < total {
        return Ok(Parsed::NeedMore(total - buf.len()));
    }
    let payload = &buf[V2_FIXED..total];
    let family = fam >> 4;
    let transport = fam & 0x0f;
    if family > 3 || transport > 2 {
        return Err(ProxyError::BadV2("unknown address family or transport"));
    }
    let done = |origin| {
        Ok(Parsed::Done(Header {
            version: 2,
            origin,
            consumed: total,
        }))
    };
    // LOCAL: the proxy speaks for itself; whatever address block it sent is skipped.
    if command == 0 {
        return done(Origin::Local);
    }
    if transport == 2 {
        return Err(ProxyError::BadV2(
            "datagram transport on a stream connection",
        ));
    }
    let origin = match family {
        1 => {
            let a = payload
                .get(..12)
                .ok_or(ProxyError::BadV2("IPv4 address block too short"))?;
            let ip = |o: usize| Ipv4Addr::new(a[o], a[o + 1], a[o + 2], a[o + 3]);
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            Origin::Client {
                source: SocketAddr::new(IpAddr::V4(ip(0)), port(8)),
                destination: SocketAddr::new(IpAddr::V4(ip(4)), port(10)),
            }
        }
        2 => {
            let a = payload
                .get(..36)
                .ok_or(ProxyError::BadV2("IPv6 address block too short"))?;
            let ip = |o: usize| {
                let mut b = [0u8; 16];
                b.copy_from_slice(&a[o..o + 16]);
                Ipv6Addr::from(b)
            };
            let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
            Origin::Client {
                source: SocketAddr::new(IpAddr::V6(ip(0)), port(32)),
                destination: SocketAddr::new(IpAddr::V6(ip(16)), port(34)),
            }
        }
        // UNSPEC or a Unix socket: no IP address to take; the spec says to use the
        // connection's own addresses.
        _ => Origin::Local,
    };
    // TLVs (ALPN, authority, CRC, SSL, ...) follow the addresses. None is needed here; they
    // are skipped as a whole, their framing already bounded by the checked total length.
    done(origin)
}

/// Why no header could be read.
#[derive(Debug)]
pub enum ReadHeaderError {
    Proxy(ProxyError),
    /// The deadline passed before the header was complete.
    Timeout,
    /// The peer closed the connection without sending a byte (a TCP health check).
    Closed,
    /// The peer closed the connection in the middle of a header.
    Eof,
    Io(io::Error),
}

impl fmt::Display for ReadHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadHeaderError::Proxy(e) => e.fmt(f),
            ReadHeaderError::Timeout => f.write_str("no PROXY protocol header in time"),
            ReadHeaderError::Closed => f.write_str("closed without sending anything"),
            ReadHeaderError::Eof => f.write_str("closed before a complete PROXY header"),
            ReadHeaderError::Io(e) => write!(f, "reading the PROXY header: {e}"),
        }
    }
}

impl std::error::Error for ReadHeaderError {}

/// Read one header from `src`, consuming exactly its bytes, before `deadline`.
/// `set_timeout` bounds each blocking read (a socket's read timeout, a pipe's poll).
pub fn read_header<R: Read + ?Sized>(
    src: &mut R,
    deadline: Instant,
    set_timeout: &mut dyn FnMut(&R, Duration) -> io::Result<()>,
) -> Result<Header, ReadHeaderError> {
    let mut buf: Vec<u8> = Vec::with_capacity(64);
    loop {
        let want = match parse(&buf) {
            Ok(Parsed::Done(h)) => return Ok(h),
            Ok(Parsed::NeedMore(n)) => n,
            Err(e) => return Err(ReadHeaderError::Proxy(e)),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadHeaderError::Timeout);
        }
        set_timeout(src, left).map_err(ReadHeaderError::Io)?;
        let start = buf.len();
        buf.resize(start + want, 0);
        match src.read(&mut buf[start..]) {
            Ok(0) if start == 0 => return Err(ReadHeaderError::Closed),
            Ok(0) => return Err(ReadHeaderError::Eof),
            Ok(n) => buf.truncate(start + n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => buf.truncate(start),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(ReadHeaderError::Timeout)
            }
            Err(e) => return Err(ReadHeaderError::Io(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done(buf: &[u8]) -> Header {
        match parse(buf) {
            Ok(Parsed::Done(h)) => h,
            other => panic!("{other:?} for {buf:?}"),
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v2(cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = V2_SIGNATURE.to_vec();
        v.push(0x20 | cmd);
        v.push(fam);
        v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let h = done(b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\r\nUSER x\r\n");
        assert_eq!(h.version, 1);
        assert_eq!(h.consumed, 45);
        assert_eq!(
            h.origin,
            Origin::Client {
                source: sa("192.0.2.7:56324"),
                destination: sa("198.51.100.1:110")
            }
        );
        let h = done(b"PROXY TCP6 2001:db8::1 ::1 65535 995\r\n");
        assert_eq!(
            h.origin,
            Origin::Client {
                source: sa("[2001:db8::1]:65535"),
                destination: sa("[::1]:995")
            }
        );
        let h = done(b"PROXY UNKNOWN\r\n");
        assert_eq!((h.origin, h.consumed), (Origin::Local, 15));
        let h = done(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n");
        assert_eq!(h.origin, Origin::Local);
    }

    #[test]
    fn v1_rejects_what_the_grammar_does_not_allow() {
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\n"[..],
            b"PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",
            b"PROXY TCP4 192.0.2.7  198.51.100.1 1 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n",
            b"PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",
            b"PROXY \r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyError::BadV1(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("PROXY UNKNOWN {}", "x".repeat(120));
        assert!(matches!(parse(long.as_bytes()), Err(ProxyError::BadV1(_))));
        assert!(matches!(
            parse(b"PROXY TCP4 \x01"),
            Err(ProxyError::BadV1(_))
        ));
    }

    #[test]
    fn anything_else_is_not_a_header() {
        for bad in [
            &b"USER alice\r\n"[..],
            b"CAPA\r\n",
            b"\x16\x03\x01\x02\x00",
            b"P\n",
        ] {
            assert_eq!(parse(bad), Err(ProxyError::NotProxy), "{bad:?}");
        }
        assert_eq!(parse(b""), Ok(Parsed::NeedMore(15)));
        assert_eq!(parse(b"PRO"), Ok(Parsed::NeedMore(12)));
        assert_eq!(parse(b"\r\n\r\n"), Ok(Parsed::NeedMore(11)));
    }

    #[test]
    fn v2_inet_inet6_local_unspec_and_tlvs() {
        let mut p = vec![192, 0, 2, 7, 198, 51, 100, 1];
        p.extend_from_slice(&56324u16.to_be_bytes());
        p.extend_from_slice(&110u16.to_be_bytes());
        let h = done(&v2(1, 0x11, &p));
        assert_eq!(h.version, 2);
        assert_eq!(h.consumed, 28);
        assert_eq!(
            h.origin,
            Origin::Client {
                source: sa("192.0.2.7:56324"),
                destination: sa("198.51.100.1:110")
            }
        );
        // TLVs after the addresses (ALPN "pop3", a NOOP with padding) are skipped.
        let mut with_tlv = p.clone();
        with_tlv.extend_from_slice(&[0x01, 0x00, 0x04]);
        with_tlv.extend_from_slice(b"pop3");
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]);
        let mut bytes = v2(1, 0x11, &with_tlv);
        bytes.extend_from_slice(b"\x16\x03\x01");
        let h = done(&bytes);
        assert_eq!(h.consumed, bytes.len() - 3);

        let mut p6 = Vec::new();
        p6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        p6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        p6.extend_from_slice(&[0x12, 0x34, 0x00, 0x6e]);
        let h = done(&v2(1, 0x21, &p6));
        assert_eq!(
            h.origin,
            Origin::Client {
                source: sa("[2001:db8::7]:4660"),
                destination: sa("[::1]:110")
            }
        );
        // LOCAL carries no client, whatever follows.
        assert_eq!(done(&v2(0, 0x00, &[])).origin, Origin::Local);
        assert_eq!(done(&v2(0, 0x11, &p)).origin, Origin::Local);
        // PROXY over UNSPEC or a Unix socket: use the connection's addresses.
        assert_eq!(done(&v2(1, 0x00, &[])).origin, Origin::Local);
        assert_eq!(done(&v2(1, 0x31, &[0u8; 216])).origin, Origin::Local);
    }

    #[test]
    fn v2_rejects_bad_versions_commands_families_and_lengths() {
        let mut bad_version = v2(1, 0x11, &[0; 12]);
        bad_version[12] = 0x11;
        assert!(matches!(parse(&bad_version), Err(ProxyError::BadV2(_))));
        assert!(matches!(
            parse(&v2(2, 0x11, &[0; 12])),
            Err(ProxyError::BadV2(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x41, &[0; 12])),
            Err(ProxyError::BadV2(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x12, &[0; 12])),
            Err(ProxyError::BadV2(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x11, &[0; 11])),
            Err(ProxyError::BadV2(_))
        ));
        assert!(matches!(
            parse(&v2(1, 0x21, &[0; 35])),
            Err(ProxyError::BadV2(_))
        ));
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&huge), Err(ProxyError::TooLong(65535)));
    }

    #[test]
    fn need_more_never_reads_past_the_header() {
        let mut p = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 1, 0, 2];
        p.extend_from_slice(&[0x04, 0x00, 0x01, 0]);
        let whole = v2(1, 0x11, &p);
        let mut got = Vec::new();
        loop {
            match parse(&got).unwrap() {
                Parsed::Done(h) => {
                    assert_eq!(h.consumed, whole.len());
                    break;
                }
                Parsed::NeedMore(n) => {
                    assert!(n >= 1 && got.len() + n <= whole.len());
                    got.extend_from_slice(&whole[got.len()..got.len() + n]);
                }
            }
        }
    }

    #[test]
    fn read_header_leaves_the_rest_and_times_out() {
        let data = b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\r\nCAPA\r\n".to_vec();
        let mut r = io::Cursor::new(data);
        let far = Instant::now() + Duration::from_secs(5);
        let h = read_header(&mut r, far, &mut |_, _| Ok(())).unwrap();
        assert_eq!(h.version, 1);
        let mut rest = String::new();
        r.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "CAPA\r\n");
        let mut short = io::Cursor::new(b"PROXY TCP4".to_vec());
        assert!(matches!(
            read_header(&mut short, far, &mut |_, _| Ok(())),
            Err(ReadHeaderError::Eof)
        ));
        assert!(matches!(
            read_header(&mut io::Cursor::new(Vec::new()), far, &mut |_, _| Ok(())),
            Err(ReadHeaderError::Closed)
        ));
        let past = Instant::now() - Duration::from_millis(1);
        assert!(matches!(
            read_header(&mut io::Cursor::new(Vec::new()), past, &mut |_, _| Ok(())),
            Err(ReadHeaderError::Timeout)
        ));
    }

    proptest! {
        /// Arbitrary bytes: no panic, and a request for more never exceeds the bound.
        #[test]
        fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            match parse(&bytes) {
                Ok(Parsed::NeedMore(n)) => prop_assert!(n >= 1 && bytes.len() + n <= MAX_HEADER),
                Ok(Parsed::Done(h)) => prop_assert!(h.consumed <= bytes.len()),
                Err(_) => {}
            }
        }

        /// Arbitrary bytes after a valid signature exercise the v2 paths.
        #[test]
        fn arbitrary_v2_tails(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut bytes = V2_SIGNATURE.to_vec();
            bytes.extend_from_slice(&tail);
            match parse(&bytes) {
                Ok(Parsed::NeedMore(n)) => prop_assert!(n >= 1 && bytes.len() + n <= MAX_HEADER),
                Ok(Parsed::Done(h)) => prop_assert!(h.consumed <= bytes.len()),
                Err(_) => {}
            }
        }

        /// Every TCP4 header round-trips, fed in one piece or byte by byte.
        #[test]
        fn v1_round_trip(a in any::<u32>(), b in any::<u32>(), sp in any::<u16>(), dp in any::<u16>()) {
            let (a, b) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
            let line = format!("PROXY TCP4 {a} {b} {sp} {dp}\r\n");
            let want = Origin::Client {
                source: SocketAddr::new(IpAddr::V4(a), sp),
                destination: SocketAddr::new(IpAddr::V4(b), dp),
            };
            prop_assert_eq!(done(line.as_bytes()).origin, want);
            for cut in 0..line.len() {
                prop_assert!(matches!(parse(&line.as_bytes()[..cut]), Ok(Parsed::NeedMore(_))));
            }
        }
    }
}
