//! Message ids (`MessageDecoder.createMessageId`, `MessageClientIDSetter`): the offset message id (store host + commit
//! log offset, what `VIEW_MESSAGE_BY_ID` decodes) and RocketMQ-format unique
//! ids (`UNIQ_KEY`) generated with a precomputed prefix and an atomic counter.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xF) as usize] as char);
    }
}

fn ip_bytes(ip: &IpAddr, out: &mut String) {
    match ip {
        IpAddr::V4(v4) => push_hex(out, &v4.octets()),
        IpAddr::V6(v6) => push_hex(out, &v6.octets()),
    }
}

/// Uppercase hex of `ip + port(i32) + offset(i64)`: 32 chars for IPv4, 56 for IPv6.
pub fn offset_msg_id(store_host: SocketAddr, phys_offset: i64) -> String {
    let mut s = String::with_capacity(56);
    push_offset_msg_id(&mut s, store_host, phys_offset);
    s
}

/// Appends the offset message id to `s` (no allocation of its own).
pub fn push_offset_msg_id(s: &mut String, store_host: SocketAddr, phys_offset: i64) {
    ip_bytes(&store_host.ip(), s);
    push_hex(s, &(store_host.port() as i32).to_be_bytes());
    push_hex(s, &phys_offset.to_be_bytes());
}

fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        let hi = (b[2 * i] as char).to_digit(16)?;
        let lo = (b[2 * i + 1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Inverse of [`offset_msg_id`] (accepts either hex case).
pub fn decode_offset_msg_id(id: &str) -> Option<(SocketAddr, i64)> {
    if !id.is_ascii() {
        return None;
    }
    let ip_len = match id.len() {
        32 => 8,
        56 => 32,
        _ => return None,
    };
    let ip = if ip_len == 8 {
        IpAddr::V4(Ipv4Addr::from(parse_hex::<4>(&id[..8])?))
    } else {
        IpAddr::V6(Ipv6Addr::from(parse_hex::<16>(&id[..32])?))
    };
    let port = i32::from_be_bytes(parse_hex::<4>(&id[ip_len..ip_len + 8])?);
    let off = i64::from_be_bytes(parse_hex::<8>(&id[ip_len + 8..])?);
    Some((SocketAddr::new(ip, port as u16), off))
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31) (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const DAY_MS: i64 = 86_400_000;

/// (start of the month containing `now_ms`, start of the next month), UTC, in ms.
fn month_bounds(now_ms: i64) -> (i64, i64) {
    let (y, m, _) = civil_from_days(now_ms.div_euclid(DAY_MS));
    let start = days_from_civil(y, m, 1) * DAY_MS;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (start, days_from_civil(ny, nm, 1) * DAY_MS)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Generates `UNIQ_KEY`s: `ip + pid(u16) + random(i32)` (precomputed hex prefix)
/// `+ ms since the start of the month (i32) + counter(u16)`. Thread-safe.
#[derive(Debug)]
pub struct UniqIdGenerator {
    prefix: String,
    counter: AtomicU32,
    month_start: AtomicI64,
    next_month_start: AtomicI64,
}

impl UniqIdGenerator {
    pub fn new(ip: IpAddr) -> Self {
        let mut prefix = String::with_capacity(44);
        ip_bytes(&ip, &mut prefix);
        push_hex(&mut prefix, &(std::process::id() as u16).to_be_bytes());
        push_hex(&mut prefix, &rand::random::<i32>().to_be_bytes());
        let (start, next) = month_bounds(now_ms());
        UniqIdGenerator {
            prefix,
            counter: AtomicU32::new(rand::random::<u16>() as u32),
            month_start: AtomicI64::new(start),
            next_month_start: AtomicI64::new(next),
        }
    }

    /// The next id (32 hex chars for IPv4, 56 for IPv6).
    pub fn next_id(&self) -> String {
        self.next().as_str().to_owned()
    }

    /// The next id, held inline (no allocation).
    pub fn next(&self) -> UniqId {
        let now = now_ms();
        if now >= self.next_month_start.load(Ordering::Relaxed) {
            let (start, next) = month_bounds(now);
            self.month_start.store(start, Ordering::Relaxed);
            self.next_month_start.store(next, Ordering::Relaxed);
        }
        let elapsed = (now - self.month_start.load(Ordering::Relaxed)) as i32;
        let seq = self.counter.fetch_add(1, Ordering::Relaxed) as u16;
        let mut id = UniqId {
            buf: [0; UNIQ_ID_MAX],
            len: 0,
        };
        id.push(self.prefix.as_bytes());
        id.push_hex(&elapsed.to_be_bytes());
        id.push_hex(&seq.to_be_bytes());
        id
    }
}

/// Longest id the generator makes (IPv6).
const UNIQ_ID_MAX: usize = 56;

/// A generated `UNIQ_KEY`, inline.
#[derive(Clone, Copy)]
pub struct UniqId {
    buf: [u8; UNIQ_ID_MAX],
    len: u8,
}

impl UniqId {
    /// `s` held inline, when it fits.
    pub fn copy_of(s: &str) -> Option<UniqId> {
        (s.len() <= UNIQ_ID_MAX).then(|| {
            let mut id = UniqId {
                buf: [0; UNIQ_ID_MAX],
                len: 0,
            };
            id.push(s.as_bytes());
            id
        })
    }

    pub fn as_str(&self) -> &str {
        // Whole strings or ASCII hex digits are pushed: valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or_default()
    }

    fn push(&mut self, b: &[u8]) {
        let at = self.len as usize;
        let n = b.len().min(UNIQ_ID_MAX - at);
        self.buf[at..at + n].copy_from_slice(&b[..n]);
        self.len += n as u8;
    }

    fn push_hex(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.push(&[HEX[(b >> 4) as usize], HEX[(b & 0xF) as usize]]);
        }
    }
}

impl std::fmt::Debug for UniqId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new unique id from the process-wide generator, inline.
pub fn next_uniq_id() -> UniqId {
    generator().next()
}

fn generator() -> &'static UniqIdGenerator {
    static GEN: OnceLock<UniqIdGenerator> = OnceLock::new();
    GEN.get_or_init(|| UniqIdGenerator::new(local_ip()))
}

/// Best guess of this host's outward IP (a UDP "connect" sends no packet);
/// falls back to 127.0.0.1.
fn local_ip() -> IpAddr {
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("8.8.8.8:80").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .ok()
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A new unique id from the process-wide generator.
pub fn new_uniq_id() -> String {
    generator().next_id()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn offset_id_known_value() {
        let host: SocketAddr = "10.0.0.1:10911".parse().unwrap();
        let id = offset_msg_id(host, 0x1234);
        assert_eq!(id, "0A00000100002A9F0000000000001234");
        assert_eq!(decode_offset_msg_id(&id), Some((host, 0x1234)));
        assert_eq!(
            decode_offset_msg_id(&id.to_lowercase()),
            Some((host, 0x1234))
        );
        assert_eq!(decode_offset_msg_id("XYZ"), None);
        assert_eq!(
            decode_offset_msg_id("0A00000100002A9F000000000000123G"),
            None
        );
        assert_eq!(decode_offset_msg_id("é0000100002A9F000000000000123"), None);
    }

    #[test]
    fn uniq_ids_are_unique_and_well_formed() {
        let g = UniqIdGenerator::new("192.168.1.2".parse().unwrap());
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = g.next_id();
            assert_eq!(id.len(), 32);
            assert!(id.starts_with("C0A80102"));
            assert!(id.bytes().all(|b| HEX.contains(&b)));
            assert!(seen.insert(id));
        }
        let v6 = UniqIdGenerator::new("::1".parse().unwrap());
        assert_eq!(v6.next_id().len(), 56);
        assert_eq!(new_uniq_id().len() % 4, 0);
    }

    #[test]
    fn month_bounds_are_right() {
        // 2024-02-29T12:00:00Z
        let t = 1_709_208_000_000;
        let (s, n) = month_bounds(t);
        assert_eq!(s, 1_706_745_600_000); // 2024-02-01
        assert_eq!(n, 1_709_251_200_000); // 2024-03-01
        let (s, n) = month_bounds(1_703_980_800_000); // 2023-12-31
        assert_eq!(s, 1_701_388_800_000); // 2023-12-01
        assert_eq!(n, 1_704_067_200_000); // 2024-01-01
    }

    proptest! {
        #[test]
        fn offset_id_round_trip(v4 in any::<[u8; 4]>(), v6 in any::<[u8; 16]>(), port in any::<u16>(), off in any::<i64>(), use6 in any::<bool>()) {
            let ip = if use6 { IpAddr::V6(Ipv6Addr::from(v6)) } else { IpAddr::V4(Ipv4Addr::from(v4)) };
            let host = SocketAddr::new(ip, port);
            let id = offset_msg_id(host, off);
            prop_assert_eq!(id.len(), if use6 { 56 } else { 32 });
            prop_assert_eq!(decode_offset_msg_id(&id), Some((host, off)));
        }

        #[test]
        fn decode_offset_id_never_panics(s in ".{0,60}") {
            let _ = decode_offset_msg_id(&s);
        }
    }
}
