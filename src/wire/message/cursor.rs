//! Bounds-checked big-endian reader used by the record and batch decoders:
//! every read reports the field name, absolute offset and need/have sizes.

use super::MessageError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Bounds-checked little reader over one record; offsets reported are absolute.
pub(crate) struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Cursor { buf, pos: 0, base }
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn abs(&self) -> usize {
        self.base + self.pos
    }
    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], MessageError> {
        let have = self.buf.len() - self.pos;
        if n > have {
            return Err(MessageError::Truncated {
                field,
                offset: self.abs(),
                need: n,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], MessageError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }
    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, MessageError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, MessageError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, MessageError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }
    /// Reads a non-negative length field.
    pub(crate) fn len_i32(&mut self, field: &'static str) -> Result<usize, MessageError> {
        let at = self.abs();
        let v = self.i32(field)?;
        usize::try_from(v).map_err(|_| MessageError::InvalidLength {
            field,
            offset: at,
            value: v as i64,
        })
    }
    pub(crate) fn len_i16(&mut self, field: &'static str) -> Result<usize, MessageError> {
        let at = self.abs();
        let v = self.i16(field)?;
        usize::try_from(v).map_err(|_| MessageError::InvalidLength {
            field,
            offset: at,
            value: v as i64,
        })
    }
    pub(crate) fn host(
        &mut self,
        v6: bool,
        field: &'static str,
    ) -> Result<SocketAddr, MessageError> {
        let ip = if v6 {
            IpAddr::V6(Ipv6Addr::from(self.array::<16>(field)?))
        } else {
            IpAddr::V4(Ipv4Addr::from(self.array::<4>(field)?))
        };
        let port = self.i32(field)?;
        Ok(SocketAddr::new(ip, port as u16))
    }
}
