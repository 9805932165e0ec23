//! The hot path of the JSON header: a single-pass reader and a direct
//! writer.
//!
//! Every SEND_MESSAGE_V2 and its response cross this code, so it avoids the
//! generic machinery: the reader walks the bytes once and decodes keys and
//! values of `extFields` straight into the command's one text buffer (see
//! [`ExtFields`]); the writer appends to the outgoing frame buffer without
//! an intermediate string.
//!
//! The reader covers the shapes clients send (strings with escapes, integer
//! literals, booleans, nulls, an `extFields` object). For anything else — a
//! fraction or exponent, a nested array or object under an unknown key, a
//! duplicate top-level field, invalid UTF-8, a lone surrogate — it returns
//! `None` and the caller falls back to the serde reader, which then either
//! accepts the header with its lenient rules or reports the precise error.
//! The two readers agree on every header the fast one accepts (checked by a
//! property test below).

use bytes::BytesMut;

use super::command::parse_i64;
use super::command::{
    ExtFields, LanguageCode, RemotingCommand, SerializeType, Spans, INLINE_FIELDS,
};

/// A scalar value position: where its text landed, or none for `null`.
type Span = Option<(usize, usize)>;

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn ws(&mut self) {
        while let Some(c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// Reads a string literal (the opening quote is next), appending its
    /// decoded bytes to `out` (validated as UTF-8 once, by the caller).
    fn string(&mut self, out: &mut Vec<u8>) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let start = self.i;
            while let Some(&c) = self.b.get(self.i) {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.extend_from_slice(&self.b[start..self.i]);
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(());
                }
                b'\\' => {
                    let e = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    let c = match e {
                        b'"' | b'\\' | b'/' => e as char,
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                _ => return None, // raw control character
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = self.b.get(self.i..self.i + 4)?;
        let v = u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok()?;
        if !h.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        self.i += 4;
        Some(v)
    }

    /// The code point of `\uXXXX` (the `\u` is consumed), joining a
    /// surrogate pair.
    fn unicode_escape(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) {
            if self.b.get(self.i..self.i + 2)? != b"\\u" {
                return None;
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
        } else {
            char::from_u32(hi)
        }
    }

    /// Reads a scalar into `out` the way the lenient reader renders it:
    /// strings decoded, integers as written, booleans as words, `null` as
    /// nothing. Anything else is left to the fallback.
    fn scalar(&mut self, out: &mut Vec<u8>) -> Option<Span> {
        let start = out.len();
        match self.peek()? {
            b'"' => self.string(out)?,
            b't' => {
                self.literal(b"true")?;
                out.extend_from_slice(b"true");
            }
            b'f' => {
                self.literal(b"false")?;
                out.extend_from_slice(b"false");
            }
            b'n' => {
                self.literal(b"null")?;
                return Some(None);
            }
            b'-' | b'0'..=b'9' => {
                let s = self.i;
                if self.b[self.i] == b'-' {
                    self.i += 1;
                }
                let digits = self.i;
                while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
                let n = self.i - digits;
                if n == 0 || (n > 1 && self.b[digits] == b'0') {
                    return None;
                }
                if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
                    return None;
                }
                let text = std::str::from_utf8(&self.b[s..self.i]).ok()?; // ASCII digits
                                                                          // Out of the 64-bit range the fallback renders a float.
                if text.parse::<i64>().is_err() && text.parse::<u64>().is_err() {
                    return None;
                }
                if text == "-0" {
                    return None; // the general reader makes it a float
                }
                out.extend_from_slice(text.as_bytes());
            }
            _ => return None,
        }
        Some(Some((start, out.len())))
    }

    /// Reads the `extFields` object: decoded keys and values go to `text`,
    /// their positions to `spans`.
    fn ext_fields(&mut self, text: &mut Vec<u8>, spans: &mut Spans) -> Option<()> {
        if self.peek()? == b'n' {
            return self.literal(b"null");
        }
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            let mark = text.len();
            self.string(text)?;
            let key_end = text.len();
            self.eat(b':')?;
            match self.scalar(text)? {
                Some((_, end)) => spans.push((mark as u32, key_end as u32, end as u32)),
                None => text.truncate(mark),
            }
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

const KEYS: [&[u8]; 8] = [
    b"code",
    b"language",
    b"version",
    b"opaque",
    b"flag",
    b"remark",
    b"extFields",
    b"serializeTypeCurrentRPC",
];

/// Decodes a JSON header on the fast path; `None` means "ask the general
/// reader" (it is not necessarily an error).
pub fn decode(header: &[u8]) -> Option<RemotingCommand> {
    let mut r = Reader { b: header, i: 0 };
    let mut cmd = RemotingCommand {
        code: 0,
        language: LanguageCode::default(),
        version: 0,
        opaque: 0,
        flag: 0,
        remark: None,
        ext: ExtFields::default(),
        body: Default::default(),
        serialize_type: SerializeType::Json,
    };
    let mut text = Vec::with_capacity(header.len());
    let mut spans = Spans::new();
    let mut seen = 0u32;
    r.eat(b'{')?;
    if r.eat(b'}').is_none() {
        loop {
            r.peek()?;
            // Keys are plain ASCII in every header we know; an escaped key
            // goes to the general reader.
            r.eat(b'"')?;
            let ks = r.i;
            while r
                .b
                .get(r.i)
                .is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20)
            {
                r.i += 1;
            }
            if r.b.get(r.i) != Some(&b'"') {
                return None;
            }
            let key = &r.b[ks..r.i];
            r.i += 1;
            r.eat(b':')?;
            let field = KEYS.iter().position(|k| *k == key);
            if let Some(f) = field {
                if seen & (1 << f) != 0 {
                    return None; // duplicate field: the general reader rejects it
                }
                seen |= 1 << f;
            }
            match field {
                Some(6) => r.ext_fields(&mut text, &mut spans)?,
                _ => {
                    // Scalars of the top level are read into the tail of
                    // the text buffer and cut off again (no allocation).
                    let mark = text.len();
                    let v = match r.scalar(&mut text)? {
                        Some((s, e)) => Some(std::str::from_utf8(&text[s..e]).ok()?),
                        None => None,
                    };
                    let int = || v.and_then(parse_i64).unwrap_or(0) as i32;
                    match field {
                        Some(0) => cmd.code = int(),
                        Some(1) => {
                            cmd.language = match v {
                                Some(v) => match v.parse::<u8>() {
                                    Ok(n) => LanguageCode(n),
                                    Err(_) => LanguageCode::from_name(v),
                                },
                                None => LanguageCode::JAVA,
                            }
                        }
                        Some(2) => cmd.version = int(),
                        Some(3) => cmd.opaque = int(),
                        Some(4) => cmd.flag = int(),
                        Some(5) => cmd.remark = v.filter(|r| !r.is_empty()).map(str::to_owned),
                        _ => {}
                    }
                    text.truncate(mark);
                }
            }
            match r.peek()? {
                b',' => r.i += 1,
                b'}' => {
                    r.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    r.ws();
    if r.i != header.len() {
        return None;
    }
    // One UTF-8 validation for all keys and values; spans sit on string
    // boundaries, so they stay char boundaries.
    cmd.ext = ExtFields::from_parts(String::from_utf8(text).ok()?, spans);
    Some(cmd)
}

/// Appends `v` as a JSON string literal: runs without anything to escape
/// are copied whole.
pub fn put_string(out: &mut BytesMut, v: &str) {
    out.extend_from_slice(b"\"");
    escape(v, |chunk| out.extend_from_slice(chunk));
    out.extend_from_slice(b"\"");
}

/// Feeds the escaped form of `v` to `put`, in chunks.
pub fn escape(v: &str, mut put: impl FnMut(&[u8])) {
    let b = v.as_bytes();
    let mut run = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        put(&b[run..i]);
        if esc.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            put(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ]);
        } else {
            put(esc);
        }
        run = i + 1;
    }
    put(&b[run..]);
}

/// Appends a decimal integer to a string.
pub fn push_int(out: &mut String, v: i64) {
    let mut buf = [0u8; 20];
    out.push_str(decimal(v, &mut buf));
}

/// `v` in decimal, written at the end of `buf`.
fn decimal(v: i64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// Appends a decimal integer.
pub fn put_int(out: &mut BytesMut, v: i64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(decimal(v, &mut buf).as_bytes());
}

/// Writes the header of `cmd` as Java's serializer does: keys sorted,
/// nulls omitted, `extFields` values as strings.
pub fn encode(cmd: &RemotingCommand, out: &mut BytesMut) {
    out.extend_from_slice(b"{\"code\":");
    put_int(out, cmd.code as i64);
    if !cmd.ext.is_empty() {
        out.extend_from_slice(b",\"extFields\":{");
        // Sorted by key; the order lives on the stack for usual headers.
        let mut order: smallvec::SmallVec<[(&str, &str); INLINE_FIELDS]> = cmd.ext.iter().collect();
        order.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (i, (k, v)) in order.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(b",");
            }
            put_string(out, k);
            out.extend_from_slice(b":");
            put_string(out, v);
        }
        out.extend_from_slice(b"}");
    }
    out.extend_from_slice(b",\"flag\":");
    put_int(out, cmd.flag as i64);
    out.extend_from_slice(b",\"language\":\"");
    out.extend_from_slice(cmd.language.name().as_bytes());
    out.extend_from_slice(b"\",\"opaque\":");
    put_int(out, cmd.opaque as i64);
    if let Some(r) = &cmd.remark {
        out.extend_from_slice(b",\"remark\":");
        put_string(out, r);
    }
    out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"JSON\",\"version\":");
    put_int(out, cmd.version as i64);
    out.extend_from_slice(b"}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn general(h: &[u8]) -> Option<RemotingCommand> {
        super::super::command::decode_json_general(h).ok()
    }

    #[test]
    fn reads_what_clients_send() {
        let java = "{\"code\":310,\"extFields\":{\"a\":\"T\",\"i\":\"UNIQ_KEY\\u0001AB\\u0002TAGS\\u0001x\\u0002\",\"m\":\"false\"},\"flag\":0,\"language\":\"JAVA\",\"opaque\":7,\"serializeTypeCurrentRPC\":\"JSON\",\"version\":453}";
        let c = decode(java.as_bytes()).expect("fast path");
        assert_eq!(c.code, 310);
        assert_eq!(c.ext.get("i"), Some("UNIQ_KEY\u{1}AB\u{2}TAGS\u{1}x\u{2}"));
        assert_eq!(Some(c), general(java.as_bytes()));
        let cpp = b"{\"code\":10,\"extFields\":{\"queueId\":3,\"batch\":false,\"x\":null},\"language\":\"CPP\",\"opaque\":5,\"remark\":\"\",\"version\":63}\n";
        let c = decode(cpp).expect("fast path");
        assert_eq!(c.ext.get("queueId"), Some("3"));
        assert_eq!(c.ext.get("x"), None);
        assert_eq!(Some(c), general(cpp));
    }

    #[test]
    fn leaves_the_unusual_to_the_general_reader() {
        for h in [
            &br#"{"code":1.5}"#[..],
            br#"{"code":1,"code":2}"#,
            br#"{"code":1,"other":[1,2]}"#,
            br#"{"code":"\ud800"}"#,
            b"{\"code\":\"\x01\"}",
            br#"{"code":1} x"#,
        ] {
            assert!(decode(h).is_none(), "{}", String::from_utf8_lossy(h));
        }
    }

    #[test]
    fn writes_what_the_general_reader_reads() {
        let mut c = RemotingCommand::request(-3);
        c.opaque = i32::MIN;
        c.remark = Some("q\"\\\n\u{1}é".into());
        c.ext.insert("k\t", "v\u{1f}");
        let mut out = BytesMut::new();
        encode(&c, &mut out);
        let back = general(&out).unwrap();
        assert_eq!(back.remark, c.remark);
        assert_eq!(back.ext, c.ext);
        assert_eq!(back.opaque, i32::MIN);
        assert_eq!(back.code, -3);
    }

    fn json_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~\u{1}\u{2}é\u{1F600}]{0,12}".prop_map(|s| {
                let mut out = BytesMut::new();
                put_string(&mut out, &s);
                String::from_utf8(out.to_vec()).unwrap()
            }),
            any::<i64>().prop_map(|n| n.to_string()),
            Just("true".to_owned()),
            Just("false".to_owned()),
            Just("null".to_owned()),
            Just("1.25".to_owned()),
            Just("\"\\ud83d\\ude00\\/\"".to_owned()),
            Just("[1]".to_owned()),
            Just("{}".to_owned()),
        ]
    }

    proptest! {
        /// Whatever the fast reader accepts, the general reader reads the same.
        #[test]
        fn agrees_with_the_general_reader(
            top in proptest::collection::vec(
                (prop_oneof![Just("code"), Just("opaque"), Just("flag"), Just("language"),
                    Just("remark"), Just("version"), Just("zz")], json_value()), 0..6),
            ext in proptest::collection::vec(("[a-z\u{1}]{1,4}", json_value()), 0..6),
            ws in prop_oneof![Just(""), Just(" "), Just("\n")],
        ) {
            let mut s = String::from("{");
            let mut parts: Vec<String> = top.iter().map(|(k, v)| format!("\"{k}\":{ws}{v}")).collect();
            let fields: Vec<String> = ext.iter().map(|(k, v)| {
                let mut key = BytesMut::new();
                put_string(&mut key, k);
                format!("{}:{v}", String::from_utf8(key.to_vec()).unwrap())
            }).collect();
            parts.push(format!("\"extFields\":{{{}}}", fields.join(",")));
            s.push_str(&parts.join(","));
            s.push('}');
            s.push_str(ws);
            if let Some(fast) = decode(s.as_bytes()) {
                prop_assert_eq!(Some(fast), general(s.as_bytes()), "{}", s);
            }
        }
    }
}
