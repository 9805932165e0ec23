//! zlib inflation with a ceiling, wherever the project inflates what a peer
//! sent: REGISTER_BROKER bodies on the name server, compressed message
//! bodies in the client. A few hundred compressed bytes can claim gigabytes;
//! the ceiling is what an honest sender could have sent uncompressed.

/// Java's default `maxMessageSize` (4 MiB): no honest message inflates past
/// it.
pub const MAX_INFLATED_MESSAGE: usize = 4 * 1024 * 1024;

/// Inflates zlib data, refusing output beyond `limit` bytes.
pub fn inflate_capped(raw: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut data = Vec::new();
    flate2::read::ZlibDecoder::new(raw)
        .take(limit as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    if data.len() > limit {
        return Err(format!("compressed body inflates beyond {limit} bytes"));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn inflation_stops_at_the_limit() {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&vec![7u8; 8 << 20]).unwrap();
        let bomb = e.finish().unwrap();
        assert!(inflate_capped(&bomb, MAX_INFLATED_MESSAGE).is_err());
        assert_eq!(inflate_capped(&bomb, 8 << 20).unwrap().len(), 8 << 20);
        assert!(inflate_capped(b"not zlib", 100).is_err());
    }
}
