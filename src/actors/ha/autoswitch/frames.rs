//! The AutoSwitch HA frames (`AutoSwitchHAClient` / `AutoSwitchHAConnection`),
//! all integers big-endian; each frame starts with the i32 state
//! (`HAConnectionState` ordinal: HANDSHAKE = 1, TRANSFER = 2).
//!
//! ```text
//! slave → master  HANDSHAKE  [4: 1][2: isSyncFromLastFile][2: isAsyncLearner][8: broker id]
//! slave → master  ack        [4: 2][8: slave max offset]
//! master → slave  HANDSHAKE  [4: 1][4: 12·N][8: master max offset][4: last epoch]
//!                            N × [4: epoch][8: start offset]
//! master → slave  TRANSFER   [4: 2][4: body size][8: offset][4: epoch][8: epoch start]
//!                            [8: confirmOffset][body]
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;

pub const HANDSHAKE: i32 = 1;
pub const TRANSFER: i32 = 2;
pub const HANDSHAKE_SIZE: usize = 16;
pub const ACK_SIZE: usize = 12;
pub const HANDSHAKE_REPLY_HEADER: usize = 20;
pub const TRANSFER_HEADER: usize = 36;
/// Java's master buffer holds at most 1000 epoch entries.
pub const MAX_EPOCH_ENTRIES: usize = 1000;
/// Largest transfer body accepted (Java's read buffer is 4 MiB).
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// What a slave sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaveFrame {
    Handshake {
        sync_from_last_file: bool,
        async_learner: bool,
        broker_id: i64,
    },
    Ack(i64),
}

impl SlaveFrame {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(HANDSHAKE_SIZE);
        match *self {
            SlaveFrame::Handshake {
                sync_from_last_file,
                async_learner,
                broker_id,
            } => {
                b.put_i32(HANDSHAKE);
                b.put_i16(sync_from_last_file as i16);
                b.put_i16(async_learner as i16);
                b.put_i64(broker_id);
            }
            SlaveFrame::Ack(o) => {
                b.put_i32(TRANSFER);
                b.put_i64(o);
            }
        }
        b
    }
}

fn bad(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// The master's decoder of slave frames.
pub struct SlaveCodec;

impl Decoder for SlaveCodec {
    type Item = SlaveFrame;
    type Error = std::io::Error;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<SlaveFrame>, std::io::Error> {
        if src.len() < 4 {
            return Ok(None);
        }
        let state = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let need = match state {
            HANDSHAKE => HANDSHAKE_SIZE,
            TRANSFER => ACK_SIZE,
            s => return Err(bad(format!("slave frame with state {s}"))),
        };
        if src.len() < need {
            return Ok(None);
        }
        src.advance(4);
        Ok(Some(if state == HANDSHAKE {
            SlaveFrame::Handshake {
                sync_from_last_file: src.get_i16() == 1,
                async_learner: src.get_i16() == 1,
                broker_id: src.get_i64(),
            }
        } else {
            SlaveFrame::Ack(src.get_i64())
        }))
    }
}

/// What a master sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterFrame {
    Handshake {
        max_offset: i64,
        last_epoch: i32,
        epochs: Vec<(i32, i64)>,
    },
    Transfer(TransferHeader, Bytes),
}

/// A TRANSFER frame's header past the state and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransferHeader {
    pub offset: i64,
    pub epoch: i32,
    pub epoch_start: i64,
    pub confirm: i64,
}

/// The master's handshake reply.
pub fn handshake_reply(max_offset: i64, epochs: &[(i32, i64)]) -> Vec<u8> {
    let epochs = &epochs[epochs.len().saturating_sub(MAX_EPOCH_ENTRIES)..];
    let mut b = Vec::with_capacity(HANDSHAKE_REPLY_HEADER + 12 * epochs.len());
    b.put_i32(HANDSHAKE);
    b.put_i32(12 * epochs.len() as i32);
    b.put_i64(max_offset);
    b.put_i32(epochs.last().map_or(-1, |e| e.0));
    for (e, s) in epochs {
        b.put_i32(*e);
        b.put_i64(*s);
    }
    b
}

/// A TRANSFER header for a body of `size` bytes.
pub fn transfer_header(h: &TransferHeader, size: usize) -> [u8; TRANSFER_HEADER] {
    let mut b = [0u8; TRANSFER_HEADER];
    let mut w = &mut b[..];
    w.put_i32(TRANSFER);
    w.put_i32(size as i32);
    w.put_i64(h.offset);
    w.put_i32(h.epoch);
    w.put_i64(h.epoch_start);
    w.put_i64(h.confirm);
    b
}

/// The slave's decoder of master frames; a frame is returned only once it
/// is complete (#5651).
pub struct MasterCodec;

impl Decoder for MasterCodec {
    type Item = MasterFrame;
    type Error = std::io::Error;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<MasterFrame>, std::io::Error> {
        if src.len() < 8 {
            return Ok(None);
        }
        let state = i32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let size = i32::from_be_bytes([src[4], src[5], src[6], src[7]]);
        let header = match state {
            HANDSHAKE => HANDSHAKE_REPLY_HEADER,
            TRANSFER => TRANSFER_HEADER,
            s => return Err(bad(format!("master frame with state {s}"))),
        };
        if size < 0 || size as usize > MAX_BODY || (state == HANDSHAKE && size % 12 != 0) {
            return Err(bad(format!("master frame (state {state}) of {size} bytes")));
        }
        let total = header + size as usize;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(8);
        if state == HANDSHAKE {
            let max_offset = src.get_i64();
            let last_epoch = src.get_i32();
            let epochs = (0..size / 12)
                .map(|_| (src.get_i32(), src.get_i64()))
                .collect();
            return Ok(Some(MasterFrame::Handshake {
                max_offset,
                last_epoch,
                epochs,
            }));
        }
        let h = TransferHeader {
            offset: src.get_i64(),
            epoch: src.get_i32(),
            epoch_start: src.get_i64(),
            confirm: src.get_i64(),
        };
        Ok(Some(MasterFrame::Transfer(
            h,
            src.split_to(size as usize).freeze(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_have_java_sizes_and_round_trip() {
        let hs = SlaveFrame::Handshake {
            sync_from_last_file: false,
            async_learner: true,
            broker_id: 3,
        };
        let b = hs.encode();
        assert_eq!(b, [0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3]);
        let ack = SlaveFrame::Ack(0x0102);
        assert_eq!(ack.encode().len(), ACK_SIZE);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&b[..10]);
        assert_eq!(SlaveCodec.decode(&mut buf).unwrap(), None, "wait for 16");
        buf.extend_from_slice(&b[10..]);
        buf.extend_from_slice(&ack.encode());
        assert_eq!(SlaveCodec.decode(&mut buf).unwrap(), Some(hs));
        assert_eq!(SlaveCodec.decode(&mut buf).unwrap(), Some(ack));
        buf.extend_from_slice(&[0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(
            SlaveCodec.decode(&mut buf).is_err(),
            "illegal state (#6306)"
        );

        let reply = handshake_reply(4096, &[(1, 0), (2, 1024)]);
        assert_eq!(reply.len(), 20 + 24);
        let h = TransferHeader {
            offset: 1024,
            epoch: 2,
            epoch_start: 1024,
            confirm: 900,
        };
        let mut m = BytesMut::from(&reply[..]);
        m.extend_from_slice(&transfer_header(&h, 3));
        m.extend_from_slice(b"abc");
        assert_eq!(
            MasterCodec.decode(&mut m).unwrap(),
            Some(MasterFrame::Handshake {
                max_offset: 4096,
                last_epoch: 2,
                epochs: vec![(1, 0), (2, 1024)]
            })
        );
        let mut part = m.split_to(30);
        assert_eq!(
            MasterCodec.decode(&mut part).unwrap(),
            None,
            "partial (#5651)"
        );
        part.unsplit(m);
        assert_eq!(
            MasterCodec.decode(&mut part).unwrap(),
            Some(MasterFrame::Transfer(h, Bytes::from_static(b"abc")))
        );
        assert!(part.is_empty());
    }
}
