//! JSON helpers for the fastjson dialect spoken by Java peers (protocol.md
//! §6.7): bare numeric map keys on input, and their faithful output.

/// Rewrites fastjson's bare (unquoted) object keys such as `{0:"a",1:"b"}`
/// into standard JSON (`{"0":"a","1":"b"}`); strings are left untouched.
pub fn fastjson_to_standard(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 16);
    let mut i = 0;
    let mut in_str = false;
    // Whether the next non-space token is in key position.
    let mut expect_key = false;
    while i < b.len() {
        let c = b[i];
        if in_str {
            out.push(c as char);
            if c == b'\\' && i + 1 < b.len() {
                out.push(b[i + 1] as char);
                i += 2;
                continue;
            }
            if c == b'"' {
                in_str = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => {
                in_str = true;
                expect_key = false;
                out.push('"');
                i += 1;
            }
            b'{' | b',' => {
                // A comma inside an array is not followed by a key, but a
                // bare token after it is a number value either way, and only
                // keys are followed by ':' — checked below.
                expect_key = true;
                out.push(c as char);
                i += 1;
            }
            c if expect_key && (c == b'-' || c.is_ascii_alphanumeric() || c == b'_') => {
                let start = i;
                while i < b.len()
                    && (b[i] == b'-'
                        || b[i].is_ascii_alphanumeric()
                        || b[i] == b'_'
                        || b[i] == b'.')
                {
                    i += 1;
                }
                let mut j = i;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                let tok = &s[start..i];
                if j < b.len() && b[j] == b':' {
                    out.push('"');
                    out.push_str(tok);
                    out.push('"');
                } else {
                    out.push_str(tok);
                }
                expect_key = false;
            }
            c if c.is_ascii_whitespace() => {
                out.push(c as char);
                i += 1;
            }
            _ => {
                expect_key = false;
                // Multi-byte UTF-8 outside strings cannot occur in JSON; copy bytes.
                let ch_len = utf8_len(c);
                out.push_str(&s[i..(i + ch_len).min(s.len())]);
                i += ch_len;
            }
        }
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Parses JSON that may use fastjson's bare keys.
pub fn from_fastjson<T: serde::de::DeserializeOwned>(s: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(s) {
        Ok(v) => Ok(v),
        Err(e) => {
            let text = String::from_utf8_lossy(s);
            serde_json::from_str(&fastjson_to_standard(&text)).map_err(|_| e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_bare_keys_only() {
        let s = r#"{"brokerAddrs":{0:"1.2.3.4:10911",1:"a,{2:x}"},"n":[1,2]}"#;
        let v: serde_json::Value = serde_json::from_str(&fastjson_to_standard(s)).unwrap();
        assert_eq!(v["brokerAddrs"]["0"], "1.2.3.4:10911");
        assert_eq!(v["brokerAddrs"]["1"], "a,{2:x}");
        assert_eq!(v["n"][1], 2);
    }
}
