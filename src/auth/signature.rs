//! Request signatures: the remoting one that RocketMQ's `AclClientRPCHook`
//! adds (verified by `DefaultAuthenticationContextBuilder` and
//! `DefaultAuthenticationHandler` on the broker), and the gRPC
//! `authorization` metadata of the 5.x clients.
//!
//! Remoting: the client adds `AccessKey` (and `SecurityToken` when it has
//! one) to the ext fields, then signs the values of every ext field but
//! `Signature`, ordered by key the way a Java `TreeMap<String, String>`
//! orders them, concatenated and followed by the body bytes. The signature
//! is `base64(HMAC-SHA1(secretKey, content))` (`AclSigner`, `AclUtils`).
//! For requests stamped with a version up to `V4_9_3` the broker also
//! leaves `_UNIQUE_KEY_QUERY` out of the content (old clients added it after
//! signing).
//!
//! gRPC: `authorization: MQv2-HMAC-SHA1 Credential=<ak>[/...],
//! SignedHeaders=x-mq-date-time, Signature=<hex>` where the hex is
//! `HMAC-SHA1(secretKey, <x-mq-date-time value>)`. Like the proxy, the
//! parser takes the first `/`-separated part of the credential as the user
//! and accepts either hex case.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::wire::command::ExtFields;

/// Ext field carrying the user name (`SessionCredentials.ACCESS_KEY`).
pub const ACCESS_KEY: &str = "AccessKey";
/// Ext field carrying the signature (`SessionCredentials.SIGNATURE`).
pub const SIGNATURE: &str = "Signature";
/// Optional ext field (`SessionCredentials.SECURITY_TOKEN`); it is signed
/// like any other field.
pub const SECURITY_TOKEN: &str = "SecurityToken";
/// `MixAll.UNIQUE_MSG_QUERY_FLAG`, left out of the content for old clients.
pub const UNIQUE_KEY_QUERY: &str = "_UNIQUE_KEY_QUERY";
/// Ordinal of `MQVersion.Version.V4_9_3`.
pub const VERSION_V4_9_3: i32 = 399;

/// gRPC metadata keys (`GrpcConstants.AUTHORIZATION`, `DATE_TIME`).
pub const GRPC_AUTHORIZATION: &str = "authorization";
pub const GRPC_DATE_TIME: &str = "x-mq-date-time";

type HmacSha1 = Hmac<Sha1>;

fn hmac_sha1(secret: &str, parts: &[&[u8]]) -> [u8; 20] {
    // HMAC accepts keys of any length; an empty secret is a valid key.
    let mut mac = HmacSha1::new_from_slice(secret.as_bytes()).expect("hmac takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Java's `String.compareTo`: UTF-16 code units, not code points.
fn java_string_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.encode_utf16().cmp(b.encode_utf16())
}

/// The bytes a remoting signature covers: the values of `pairs` except
/// `Signature`, ordered by key like a Java `TreeMap` (a later pair with the
/// same key replaces an earlier one, as in the Java `HashMap`), then `body`.
pub fn signed_content<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
) -> Vec<u8> {
    let mut fields: Vec<(&str, &str)> =
        pairs.into_iter().filter(|(k, _)| *k != SIGNATURE).collect();
    // Stable: among equal keys, arrival order is kept, so the last wins below.
    fields.sort_by(|a, b| java_string_cmp(a.0, b.0));
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.1.len()).sum::<usize>() + body.len());
    for (i, (k, v)) in fields.iter().enumerate() {
        if fields.get(i + 1).is_some_and(|next| next.0 == *k) {
            continue;
        }
        out.extend_from_slice(v.as_bytes());
    }
    out.extend_from_slice(body);
    out
}

/// `base64(HMAC-SHA1(secret, content))` over [`signed_content`].
pub fn sign<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    secret: &str,
) -> String {
    sign_bytes(&signed_content(pairs, body), secret)
}

/// `base64(HMAC-SHA1(secret, data))` (`AclSigner.calSignature`).
pub fn sign_bytes(data: &[u8], secret: &str) -> String {
    BASE64.encode(hmac_sha1(secret, &[data]))
}

/// Checks `signature` against the one computed over `pairs` and `body`;
/// the comparison takes the same time wherever the strings differ.
pub fn verify<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    body: &[u8],
    secret: &str,
    signature: &str,
) -> bool {
    constant_time_eq(sign(pairs, body, secret).as_bytes(), signature.as_bytes())
}

/// The pairs of a remoting request that its signature covers: every ext
/// field (the caller's `Signature` is skipped by [`signed_content`]), less
/// `_UNIQUE_KEY_QUERY` for requests of version `V4_9_3` and older.
pub fn remoting_pairs(ext: &ExtFields, version: i32) -> impl Iterator<Item = (&str, &str)> {
    ext.iter()
        .filter(move |(k, _)| !(version <= VERSION_V4_9_3 && *k == UNIQUE_KEY_QUERY))
}

/// Verifies a remoting request's `Signature` ext field with `secret`.
pub fn verify_remoting(ext: &ExtFields, version: i32, body: &[u8], secret: &str) -> bool {
    match ext.get(SIGNATURE) {
        Some(sig) => verify(remoting_pairs(ext, version), body, secret, sig),
        None => false,
    }
}

/// Signs an outgoing request the way `AclClientRPCHook.doBeforeRequest`
/// does: adds `AccessKey`, `SecurityToken` when given, then `Signature`.
pub fn sign_remoting(
    ext: &mut ExtFields,
    body: &[u8],
    access_key: &str,
    secret: &str,
    token: Option<&str>,
) {
    ext.insert(ACCESS_KEY, access_key);
    if let Some(t) = token {
        ext.insert(SECURITY_TOKEN, t);
    }
    ext.remove(SIGNATURE);
    let sig = sign(ext.iter(), body, secret);
    ext.insert(SIGNATURE, sig);
}

/// Equality of two byte strings without an early exit on the first
/// difference (`MessageDigest.isEqual`). Lengths are not secret.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A parsed gRPC `authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcAuthorization {
    /// The user: the first `/`-separated part of `Credential`.
    pub access_key: String,
    /// The signature, hex-decoded then base64-encoded (as the proxy keeps it).
    pub signature: Option<String>,
}

/// Why a gRPC `authorization` value was refused; the texts are the proxy's
/// `AuthenticationException` messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrpcAuthError {
    #[error("datetime is null.")]
    NoDateTime,
    #[error("authentication header is incorrect.")]
    Malformed,
    #[error("authentication keyValues length is incorrect, actual length=1.")]
    BadKeyValue,
    #[error("create authentication context error.")]
    BadSignatureHex,
}

/// Parses `authorization` as `DefaultAuthenticationContextBuilder` does:
/// `<algorithm> <k>=<v>, <k>=<v>, ...`, taking `Credential` and `Signature`
/// and ignoring other keys (`SignedHeaders`). `date_time` must be present.
pub fn parse_grpc_authorization(
    authorization: &str,
    date_time: Option<&str>,
) -> Result<GrpcAuthorization, GrpcAuthError> {
    if date_time.is_none_or(str::is_empty) {
        return Err(GrpcAuthError::NoDateTime);
    }
    let (_algorithm, rest) = authorization
        .split_once(' ')
        .ok_or(GrpcAuthError::Malformed)?;
    let mut out = GrpcAuthorization {
        access_key: String::new(),
        signature: None,
    };
    for kv in rest.split(',') {
        let (k, v) = kv
            .trim()
            .split_once('=')
            .ok_or(GrpcAuthError::BadKeyValue)?;
        match k {
            "Credential" => out.access_key = v.split('/').next().unwrap_or("").to_owned(),
            "Signature" => {
                let raw = decode_hex(v).ok_or(GrpcAuthError::BadSignatureHex)?;
                out.signature = Some(BASE64.encode(raw));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Checks a parsed gRPC authorization against `secret`: the signature must
/// be HMAC-SHA1 of the `x-mq-date-time` value.
pub fn verify_grpc(auth: &GrpcAuthorization, date_time: &str, secret: &str) -> bool {
    match &auth.signature {
        Some(sig) => constant_time_eq(
            sign_bytes(date_time.as_bytes(), secret).as_bytes(),
            sig.as_bytes(),
        ),
        None => false,
    }
}

/// The value a client puts in `authorization` (lower-case hex, as the Java
/// and Rust clients send it).
pub fn grpc_authorization_value(access_key: &str, secret: &str, date_time: &str) -> String {
    let mac = hmac_sha1(secret, &[date_time.as_bytes()]);
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "MQv2-HMAC-SHA1 Credential={access_key}, SignedHeaders={GRPC_DATE_TIME}, Signature={hex}"
    )
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `AclSignerTest.calSignatureTest`: Java's HMAC-SHA1 of "RocketMQ"
    /// with the key "12345678", base64.
    const JAVA_VECTOR: &str = "IUc8rrO/0gDch8CjObLQsW2rsiA=";

    #[test]
    fn matches_the_java_signer_vector() {
        assert_eq!(sign_bytes(b"RocketMQ", "12345678"), JAVA_VECTOR);
        // The same content reached through fields and a body.
        assert_eq!(sign([("x", "Rocket")], b"MQ", "12345678"), JAVA_VECTOR);
        // Signature is never part of the content.
        assert_eq!(
            sign([("x", "Rocket"), (SIGNATURE, "old")], b"MQ", "12345678"),
            JAVA_VECTOR
        );
    }

    #[test]
    fn content_is_ordered_like_a_java_tree_map() {
        let pairs = [
            ("topic", "T"),
            ("AccessKey", "ak"),
            ("a", "1"),
            ("B", "2"),
            ("SecurityToken", "tok"),
        ];
        // Upper case sorts before lower case: AccessKey, B, SecurityToken, a, topic.
        assert_eq!(signed_content(pairs, b"body"), b"ak2tok1Tbody".to_vec());
        // UTF-16 order: U+FF21 (one unit 0xFF21) sorts after U+1F600 (surrogate 0xD83D),
        // the reverse of UTF-8 byte order.
        let odd = [("\u{FF21}", "x"), ("\u{1F600}", "y")];
        assert_eq!(signed_content(odd, b""), b"yx".to_vec());
        // A repeated key: the last value counts, once.
        assert_eq!(signed_content([("k", "1"), ("k", "2")], b""), b"2".to_vec());
    }

    fn signed_request() -> (ExtFields, Vec<u8>) {
        let mut ext = ExtFields::default();
        ext.insert("consumerGroup", "group");
        ext.insert("topic", "topic");
        ext.insert("queueId", "1");
        let body = b"payload".to_vec();
        sign_remoting(&mut ext, &body, "ak", "secret-key", None);
        (ext, body)
    }

    #[test]
    fn remoting_round_trip_and_tampering() {
        let (ext, body) = signed_request();
        // Worked by hand: values by key order AccessKey, consumerGroup, queueId, topic.
        let expect = sign_bytes(b"akgroup1topicpayload", "secret-key");
        assert_eq!(ext.get(SIGNATURE), Some(expect.as_str()));
        assert!(verify_remoting(&ext, 479, &body, "secret-key"));
        assert!(!verify_remoting(&ext, 479, &body, "other-key"));

        let mut tampered = ext.clone();
        tampered.insert("queueId", "2");
        assert!(!verify_remoting(&tampered, 479, &body, "secret-key"));

        let mut body2 = body.clone();
        body2[0] ^= 1;
        assert!(!verify_remoting(&ext, 479, &body2, "secret-key"));

        let mut added = ext.clone();
        added.insert("extra", "x");
        assert!(!verify_remoting(&added, 479, &body, "secret-key"));

        let mut unsigned = ext.clone();
        unsigned.remove(SIGNATURE);
        assert!(!verify_remoting(&unsigned, 479, &body, "secret-key"));
    }

    #[test]
    fn unique_key_flag_is_ignored_only_for_old_clients() {
        let (mut ext, body) = signed_request();
        ext.insert(UNIQUE_KEY_QUERY, "true");
        assert!(verify_remoting(&ext, VERSION_V4_9_3, &body, "secret-key"));
        assert!(!verify_remoting(
            &ext,
            VERSION_V4_9_3 + 1,
            &body,
            "secret-key"
        ));
    }

    #[test]
    fn security_token_is_signed() {
        let mut ext = ExtFields::default();
        ext.insert("topic", "T");
        sign_remoting(&mut ext, b"", "ak", "sk", Some("tok"));
        assert_eq!(ext.get(SECURITY_TOKEN), Some("tok"));
        assert_eq!(
            ext.get(SIGNATURE),
            Some(sign_bytes(b"aktokT", "sk").as_str())
        );
    }

    #[test]
    fn constant_time_eq_compares_whole_strings() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn grpc_header_parses_like_the_proxy() {
        // From RocketMQ's DefaultAuthenticationContextBuilderTest: upper-case
        // hex converts to this base64.
        let h = "MQv2-HMAC-SHA1 Credential=abc, SignedHeaders=x-mq-date-time, \
                 Signature=D18A9CBCDDBA9041D6693268FEF15A989E64430B";
        let a = parse_grpc_authorization(h, Some("20231227T194619Z")).unwrap();
        assert_eq!(a.access_key, "abc");
        assert_eq!(a.signature.as_deref(), Some("0YqcvN26kEHWaTJo/vFamJ5kQws="));
        // Credentials with a scope suffix (Go and C++ clients).
        let b = parse_grpc_authorization(
            "MQv2-HMAC-SHA1 Credential=ak//Rocketmq, Signature=00",
            Some("t"),
        )
        .unwrap();
        assert_eq!(b.access_key, "ak");

        assert_eq!(
            parse_grpc_authorization(h, None),
            Err(GrpcAuthError::NoDateTime)
        );
        assert_eq!(
            parse_grpc_authorization("nospace", Some("t")),
            Err(GrpcAuthError::Malformed)
        );
        assert_eq!(
            parse_grpc_authorization("X Credential", Some("t")),
            Err(GrpcAuthError::BadKeyValue)
        );
        assert_eq!(
            parse_grpc_authorization("X Signature=zz", Some("t")),
            Err(GrpcAuthError::BadSignatureHex)
        );
    }

    #[test]
    fn grpc_round_trip_and_tampering() {
        let dt = "20231227T194619Z";
        let value = grpc_authorization_value("ak", "sk", dt);
        let a = parse_grpc_authorization(&value, Some(dt)).unwrap();
        assert!(verify_grpc(&a, dt, "sk"));
        assert!(!verify_grpc(&a, "20231227T194620Z", "sk"));
        assert!(!verify_grpc(&a, dt, "sk2"));
        // Upper-case hex of the same signature verifies too.
        let upper = value.replace(
            value.rsplit('=').next().unwrap(),
            &value.rsplit('=').next().unwrap().to_uppercase(),
        );
        assert!(verify_grpc(
            &parse_grpc_authorization(&upper, Some(dt)).unwrap(),
            dt,
            "sk"
        ));
    }
}
