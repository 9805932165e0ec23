//! JSON helpers for the fastjson dialect spoken by Java peers
//! (`RemotingSerializable`): bare numeric map keys on input, and their
//! faithful output.

#[derive(Clone, Copy)]
enum Ctx {
    /// In an object; true while a key is expected.
    Obj(bool),
    Arr,
}

/// Length of the JSON string literal starting at `s[0] == '"'` (including both quotes).
fn string_len(s: &str) -> usize {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return i + 1,
            _ => {}
        }
    }
    s.len()
}

/// Length of the balanced `{...}` / `[...]` starting at `s[0]`.
fn balanced_len(s: &str) -> usize {
    let mut depth = 0usize;
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let Some(c) = rest.chars().next() else { break };
        match c {
            '"' => {
                i += string_len(rest);
                continue;
            }
            '{' | '[' => depth += 1,
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += c.len_utf8();
    }
    s.len()
}

/// Rewrites fastjson output into standard JSON: bare object keys
/// (`{0:123}`) get quoted, and object keys that are whole JSON objects
/// (`{{"a":1}:2}`) become strings holding that JSON. String contents are
/// left untouched.
pub fn fastjson_to_standard(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    let mut stack: Vec<Ctx> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        let Some(c) = rest.chars().next() else { break };
        let expecting_key = matches!(stack.last(), Some(Ctx::Obj(true)));
        match c {
            '"' => {
                let n = string_len(rest);
                out.push_str(&rest[..n]);
                i += n;
                continue;
            }
            c if c.is_whitespace() => out.push(c),
            '{' | '[' if expecting_key => {
                let n = balanced_len(rest);
                out.push_str(&serde_json::Value::String(rest[..n].to_owned()).to_string());
                if let Some(top) = stack.last_mut() {
                    *top = Ctx::Obj(false);
                }
                i += n;
                continue;
            }
            '{' => {
                stack.push(Ctx::Obj(true));
                out.push(c);
            }
            '[' => {
                stack.push(Ctx::Arr);
                out.push(c);
            }
            '}' | ']' => {
                stack.pop();
                out.push(c);
            }
            ',' => {
                if let Some(top @ Ctx::Obj(_)) = stack.last_mut() {
                    *top = Ctx::Obj(true);
                }
                out.push(c);
            }
            ':' => {
                if let Some(top @ Ctx::Obj(_)) = stack.last_mut() {
                    *top = Ctx::Obj(false);
                }
                out.push(c);
            }
            _ if expecting_key => {
                let n = rest.find(':').unwrap_or(rest.len());
                let key = rest[..n].trim_end();
                out.push_str(&serde_json::Value::String(key.to_owned()).to_string());
                out.push_str(&rest[key.len()..n]);
                if let Some(top) = stack.last_mut() {
                    *top = Ctx::Obj(false);
                }
                i += n;
                continue;
            }
            _ => out.push(c),
        }
        i += c.len_utf8();
    }
    out
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

/// A map keyed by `MessageQueue` objects, written the way fastjson writes
/// such maps (`ConsumeStats.offsetTable`, `ResetOffsetBody.offsetTable`):
/// `{{"brokerName":"b","queueId":0,"topic":"t"}:value,...}`. Values are
/// JSON text already.
pub fn mq_keyed<'a, V: AsRef<str>>(
    entries: impl IntoIterator<Item = (&'a super::bodies::MessageQueue, V)>,
) -> String {
    let mut s = String::from("{");
    for (i, (mq, v)) in entries.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&serde_json::to_string(mq).unwrap_or_default());
        s.push(':');
        s.push_str(v.as_ref());
    }
    s.push('}');
    s
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
