//! Typed request / response headers ("custom headers"), converted to and
//! from `extFields` (`CommandCustomHeader`). One file per family of codes.
//!
//! Each header is declared with [`ext_header!`]: `req` fields must be present
//! (a missing one is a clear `MissingField` error), `def` fields fall back to
//! their type's default, `opt` fields are `Option`s. Values parse leniently:
//! numbers may carry spaces or decimals, booleans may be `true`/`false` or
//! `1`/`0` as some clients send them.

use super::command::{parse_i64, ExtFields};
use super::WireError;

pub mod admin;
pub mod client;
pub mod consume;
pub mod controller;
pub mod namesrv;
pub mod offset;
pub mod pop;
pub mod pull;
pub mod query;
pub mod send;

/// A value that can live in `extFields`.
pub trait ExtValue: Sized {
    fn parse_ext(s: &str) -> Option<Self>;
    /// Appends the value's text to `out`.
    fn render_into(&self, out: &mut String);
    fn render_ext(&self) -> String {
        let mut s = String::new();
        self.render_into(&mut s);
        s
    }
}

impl ExtValue for String {
    fn parse_ext(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
    fn render_into(&self, out: &mut String) {
        out.push_str(self)
    }
}

impl ExtValue for i32 {
    fn parse_ext(s: &str) -> Option<Self> {
        parse_i64(s).map(|v| v as i32)
    }
    fn render_into(&self, out: &mut String) {
        super::json_header::push_int(out, *self as i64)
    }
}

impl ExtValue for i64 {
    fn parse_ext(s: &str) -> Option<Self> {
        parse_i64(s)
    }
    fn render_into(&self, out: &mut String) {
        super::json_header::push_int(out, *self)
    }
}

impl ExtValue for bool {
    fn parse_ext(s: &str) -> Option<Self> {
        match s.trim() {
            t if t.eq_ignore_ascii_case("true") || t == "1" => Some(true),
            t if t.eq_ignore_ascii_case("false") || t == "0" || t.is_empty() => Some(false),
            _ => None,
        }
    }
    fn render_into(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" })
    }
}

/// Conversion between a typed header and `extFields`.
pub trait CommandHeader: Sized {
    fn from_ext(ext: &ExtFields) -> Result<Self, WireError>;
    fn write_ext(&self, ext: &mut ExtFields);
    fn to_ext(&self) -> ExtFields {
        let mut e = ExtFields::default();
        self.write_ext(&mut e);
        e
    }
}

#[doc(hidden)]
pub fn req_raw<T: ExtValue>(raw: Option<&str>, key: &'static str) -> Result<T, WireError> {
    let raw = raw.ok_or(WireError::MissingField(key))?;
    T::parse_ext(raw).ok_or_else(|| WireError::BadField(key, raw.to_owned()))
}

/// Declares a header struct and its `CommandHeader` impl. With
/// `borrowed as NameRef`, also a copy of it whose text fields borrow from
/// the `extFields` they are read from (the send path reads its header
/// without a string per field).
#[macro_export]
macro_rules! ext_header {
    (
        $(#[$meta:meta])*
        pub struct $name:ident borrowed as $rname:ident {
            $( $kind:ident $field:ident : $ty:ident = $key:literal ),* $(,)?
        }
    ) => {
        $crate::ext_header! {
            $(#[$meta])*
            pub struct $name { $( $kind $field : $ty = $key ),* }
        }

        #[doc = concat!("[`", stringify!($name), "`] with its text borrowed from `extFields`.")]
        #[derive(Debug, Clone, Copy, Default, PartialEq)]
        pub struct $rname<'a> {
            $( pub $field: $crate::ext_header!(@rty $kind $ty), )*
        }

        impl<'a> $rname<'a> {
            pub fn from_ext(ext: &'a $crate::wire::command::ExtFields)
                -> Result<Self, $crate::wire::WireError> {
                $( let mut $field: Option<&'a str> = None; )*
                for (k, v) in ext.iter() {
                    match k {
                        $( $key => $field = Some(v), )*
                        _ => {}
                    }
                }
                Ok($rname {
                    $( $field: $crate::ext_header!(@rget $kind $field $ty, $key), )*
                })
            }

            /// The owned header.
            pub fn to_owned_header(&self) -> $name {
                $name {
                    $( $field: $crate::ext_header!(@own $kind $ty, self.$field), )*
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $kind:ident $field:ident : $ty:ty = $key:literal ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $( pub $field: $crate::ext_header!(@ty $kind $ty), )*
        }

        impl $crate::wire::headers::CommandHeader for $name {
            fn from_ext(ext: &$crate::wire::command::ExtFields)
                -> Result<Self, $crate::wire::WireError> {
                // One pass over the fields (a later duplicate wins), then
                // the conversions.
                $( let mut $field: Option<&str> = None; )*
                for (k, v) in ext.iter() {
                    match k {
                        $( $key => $field = Some(v), )*
                        _ => {}
                    }
                }
                Ok($name {
                    $( $field: $crate::ext_header!(@get $kind $field $ty, $key), )*
                })
            }
            fn write_ext(&self, ext: &mut $crate::wire::command::ExtFields) {
                $( $crate::ext_header!(@put $kind ext self.$field, $key); )*
            }
        }
    };
    (@rty req String) => { &'a str };
    (@rty def String) => { &'a str };
    (@rty opt String) => { Option<&'a str> };
    (@rty $kind:ident $ty:ident) => { $crate::ext_header!(@ty $kind $ty) };
    (@rget req $raw:ident String, $key:literal) => {
        $raw.ok_or($crate::wire::WireError::MissingField($key))?
    };
    (@rget def $raw:ident String, $key:literal) => { $raw.unwrap_or_default() };
    (@rget opt $raw:ident String, $key:literal) => { $raw };
    (@rget $kind:ident $raw:ident $ty:ident, $key:literal) => {
        $crate::ext_header!(@get $kind $raw $ty, $key)
    };
    (@own opt String, $v:expr) => { $v.map(str::to_owned) };
    (@own $kind:ident String, $v:expr) => { $v.to_owned() };
    (@own $kind:ident $ty:ident, $v:expr) => { $v };
    (@ty req $ty:ty) => { $ty };
    (@ty def $ty:ty) => { $ty };
    (@ty opt $ty:ty) => { Option<$ty> };
    (@get req $raw:ident $ty:ty, $key:literal) => {
        $crate::wire::headers::req_raw::<$ty>($raw, $key)?
    };
    (@get def $raw:ident $ty:ty, $key:literal) => {
        $raw.and_then(<$ty as $crate::wire::headers::ExtValue>::parse_ext).unwrap_or_default()
    };
    (@get opt $raw:ident $ty:ty, $key:literal) => {
        $raw.and_then(<$ty as $crate::wire::headers::ExtValue>::parse_ext)
    };
    (@put req $ext:ident $v:expr, $key:literal) => {
        $ext.set_with($key, |s| $crate::wire::headers::ExtValue::render_into(&$v, s))
    };
    (@put def $ext:ident $v:expr, $key:literal) => {
        $ext.set_with($key, |s| $crate::wire::headers::ExtValue::render_into(&$v, s))
    };
    (@put opt $ext:ident $v:expr, $key:literal) => {
        if let Some(v) = &$v {
            $ext.set_with($key, |s| $crate::wire::headers::ExtValue::render_into(v, s))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    crate::ext_header! {
        pub struct Demo {
            req topic: String = "topic",
            def queue_id: i32 = "queueId",
            opt flag: bool = "flag",
        }
    }

    #[test]
    fn required_optional_default() {
        let mut e = ExtFields::default();
        assert!(matches!(
            Demo::from_ext(&e),
            Err(WireError::MissingField("topic"))
        ));
        e.insert("topic", "T");
        e.insert("flag", "1");
        let d = Demo::from_ext(&e).unwrap();
        assert_eq!(
            d,
            Demo {
                topic: "T".into(),
                queue_id: 0,
                flag: Some(true)
            }
        );
        assert_eq!(Demo::from_ext(&d.to_ext()).unwrap(), d);
    }
}
