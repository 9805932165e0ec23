//! The REGISTER_BROKER body (`RegisterBrokerBody`): JSON, or the Java
//! broker's zlib-compressed layout (`compressRegister=true`): the data
//! version as length-prefixed JSON, a topic count, then each topic config as
//! length-prefixed `name read write perm filter [attributes]` text.

use super::bodies::{self, RegisterBrokerBody};

/// Most bytes a compressed body may inflate to: the frame limit, so a small
/// "zip bomb" cannot take more memory than an honest frame.
pub const MAX_INFLATED: usize = super::frame::MAX_FRAME_LEN;

pub use super::inflate::inflate_capped;

/// Reads a REGISTER_BROKER body: JSON, or the zlib-compressed layout
/// (`RegisterBrokerBody.encode(true)`) when the header says so or JSON fails on a zlib start.
pub fn decode_register_body(raw: &[u8], compressed: bool) -> Result<RegisterBrokerBody, String> {
    if raw.is_empty() {
        return Ok(RegisterBrokerBody::default());
    }
    if !compressed {
        match crate::wire::json::from_fastjson(raw) {
            Ok(b) => return Ok(b),
            Err(e) if raw[0] != 0x78 => return Err(e.to_string()),
            Err(_) => {}
        }
    }
    decode_compressed_register_body(raw)
}

fn decode_compressed_register_body(raw: &[u8]) -> Result<RegisterBrokerBody, String> {
    let data = inflate_capped(raw, MAX_INFLATED)?;
    let mut pos = 0usize;
    let mut next = |data: &[u8]| -> Result<Vec<u8>, String> {
        let len_bytes = data.get(pos..pos + 4).ok_or("truncated")?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        if len < 0 {
            return Err("negative length".into());
        }
        let v = data
            .get(pos + 4..pos + 4 + len as usize)
            .ok_or("truncated")?
            .to_vec();
        pos += 4 + len as usize;
        Ok(v)
    };
    let mut body = RegisterBrokerBody::default();
    body.topic_config_serialize_wrapper.data_version =
        serde_json::from_slice(&next(&data)?).map_err(|e| e.to_string())?;
    let count_bytes = data.get(pos..pos + 4).ok_or("truncated")?;
    let count = i32::from_be_bytes([
        count_bytes[0],
        count_bytes[1],
        count_bytes[2],
        count_bytes[3],
    ]);
    pos += 4;
    let mut next = |data: &[u8]| -> Result<Vec<u8>, String> {
        let len_bytes = data.get(pos..pos + 4).ok_or("truncated")?;
        let len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]])
            .max(0) as usize;
        let v = data
            .get(pos + 4..pos + 4 + len)
            .ok_or("truncated")?
            .to_vec();
        pos += 4 + len;
        Ok(v)
    };
    for _ in 0..count.max(0) {
        let text = String::from_utf8_lossy(&next(&data)?).into_owned();
        let mut parts = text.splitn(6, ' ');
        let name = parts.next().unwrap_or_default().to_owned();
        let num = |s: Option<&str>| s.and_then(|v| v.parse::<i32>().ok()).unwrap_or(0);
        let read = num(parts.next());
        let write = num(parts.next());
        let perm = num(parts.next());
        let filter = parts.next().unwrap_or("SINGLE_TAG").to_owned();
        let attributes = parts
            .next()
            .and_then(|a| serde_json::from_str(a).ok())
            .unwrap_or_default();
        let tc = bodies::TopicConfig {
            topic_name: name.clone(),
            read_queue_nums: read,
            write_queue_nums: write,
            perm,
            topic_filter_type: filter,
            attributes,
            ..Default::default()
        };
        body.topic_config_serialize_wrapper
            .topic_config_table
            .insert(name, tc);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn inflation_is_capped() {
        let bomb = zlib(&vec![0u8; 4 << 20]);
        assert!(bomb.len() < 64 << 10);
        assert!(inflate_capped(&bomb, 1 << 20)
            .unwrap_err()
            .contains("beyond"));
        assert_eq!(inflate_capped(&bomb, 4 << 20).unwrap().len(), 4 << 20);
    }

    #[test]
    fn compressed_register_body_round_trip() {
        let mut raw = Vec::new();
        let dv = br#"{"counter":3,"timestamp":7}"#;
        raw.extend_from_slice(&(dv.len() as i32).to_be_bytes());
        raw.extend_from_slice(dv);
        raw.extend_from_slice(&1i32.to_be_bytes());
        let t = b"TopicA 4 4 6 SINGLE_TAG";
        raw.extend_from_slice(&(t.len() as i32).to_be_bytes());
        raw.extend_from_slice(t);
        let body = decode_register_body(&zlib(&raw), true).unwrap();
        let tc = &body.topic_config_serialize_wrapper.topic_config_table["TopicA"];
        assert_eq!(
            (tc.read_queue_nums, tc.write_queue_nums, tc.perm),
            (4, 4, 6)
        );
    }
}
