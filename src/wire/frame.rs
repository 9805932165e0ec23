//! Frame codec for the remoting protocol (`NettyEncoder` / `NettyDecoder`), for
//! `tokio_util::codec::Framed{Read,Write}`.
//!
//! The 16 MiB cap is checked on the 4-byte length before anything is
//! allocated. A frame whose header does not decode is still consumed whole
//! and reported as [`Inbound::Malformed`], so the connection can answer with
//! an error and keep serving; only an oversized or negative length is fatal.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::command::RemotingCommand;
use super::WireError;

/// Java's default `frameMaxLength`.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// What the decoder yields for each frame.
// A command is moved once per frame; boxing it would cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Inbound {
    Command(RemotingCommand),
    /// A frame that arrived whole but whose header is unreadable, with the
    /// request's opaque when it could still be found.
    Malformed(WireError, Option<i32>),
}

#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_frame: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec {
            max_frame: MAX_FRAME_LEN,
        }
    }
}

impl FrameCodec {
    pub fn with_max_frame(max_frame: usize) -> Self {
        FrameCodec { max_frame }
    }
}

impl Decoder for FrameCodec {
    type Item = Inbound;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, WireError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let frame_len = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        if frame_len < 4 || frame_len as usize > self.max_frame {
            return Err(WireError::FrameLength(frame_len as i64));
        }
        let frame_len = frame_len as usize;
        if src.len() < 4 + frame_len {
            src.reserve(4 + frame_len - src.len());
            return Ok(None);
        }
        src.advance(4);
        let mut frame = src.split_to(frame_len).freeze();
        let word = frame.get_u32();
        let stype = (word >> 24) as u8;
        let header_len = (word & 0x00FF_FFFF) as usize;
        if header_len > frame.len() {
            return Ok(Some(Inbound::Malformed(
                WireError::Truncated {
                    at: 8,
                    need: header_len,
                    have: frame.len(),
                },
                None,
            )));
        }
        let header = frame.split_to(header_len);
        match RemotingCommand::decode(stype, &header, frame) {
            Ok(cmd) => Ok(Some(Inbound::Command(cmd))),
            Err(e) => Ok(Some(Inbound::Malformed(e, salvage_opaque(stype, &header)))),
        }
    }
}

impl Encoder<RemotingCommand> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, cmd: RemotingCommand, dst: &mut BytesMut) -> Result<(), WireError> {
        cmd.encode_to(dst);
        Ok(())
    }
}

/// Best-effort opaque of a malformed header, so the error response can
/// still be matched by the peer: the binary header has it at byte 5; in JSON
/// the first `"opaque":` key followed by digits.
pub fn salvage_opaque(stype: u8, header: &[u8]) -> Option<i32> {
    if stype == 1 {
        let b = header.get(5..9)?;
        return Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    }
    let text = std::str::from_utf8(header).ok()?;
    let at = text.find("\"opaque\"")? + 8;
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let rest = rest.strip_prefix('"').unwrap_or(rest);
    let end = rest
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
        .map(|(i, _)| i)
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn oversized_is_rejected_before_allocation() {
        let mut c = FrameCodec::default();
        let mut b = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff, 0, 0][..]);
        assert!(c.decode(&mut b).is_err());
    }

    #[test]
    fn garbage_header_is_malformed_not_fatal() {
        let mut c = FrameCodec::default();
        let mut b = BytesMut::new();
        b.extend_from_slice(&9u32.to_be_bytes());
        b.extend_from_slice(&5u32.to_be_bytes());
        b.extend_from_slice(b"{nope");
        match c.decode(&mut b).unwrap() {
            Some(Inbound::Malformed(_, None)) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(b.is_empty());
    }

    proptest! {
        #[test]
        fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut c = FrameCodec::default();
            let mut b = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = c.decode(&mut b) {}
        }

        #[test]
        fn command_round_trip(code in any::<i16>(), opaque in any::<i32>(),
                              k in "[a-zA-Z]{1,8}", v in "\\PC{0,16}",
                              body in proptest::collection::vec(any::<u8>(), 0..64),
                              binary in any::<bool>()) {
            let mut cmd = RemotingCommand::request(code as i32).with_ext(&k, &v).with_body(body.clone());
            cmd.opaque = opaque;
            let mut out = BytesMut::new();
            if binary { cmd.encode_binary_to(&mut out) } else { cmd.encode_to(&mut out) }
            let mut c = FrameCodec::default();
            match c.decode(&mut out).unwrap() {
                Some(Inbound::Command(back)) => {
                    prop_assert_eq!(back.code, code as i32);
                    prop_assert_eq!(back.opaque, opaque);
                    prop_assert_eq!(back.ext.get(&k), Some(v.as_str()));
                    prop_assert_eq!(back.body_bytes().to_vec(), body);
                }
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}

#[cfg(test)]
mod salvage_tests {
    use super::salvage_opaque;

    #[test]
    fn finds_opaque_in_broken_json() {
        assert_eq!(
            salvage_opaque(0, br#"{"code":10,"opaque":42,"flag":0,"#),
            Some(42)
        );
        assert_eq!(salvage_opaque(0, br#"{"opaque": "7"]"#), Some(7));
        assert_eq!(salvage_opaque(0, b"garbage"), None);
    }
}
