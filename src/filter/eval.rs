//! Three-valued evaluation of a filter [`Expr`] against message properties.

use super::{CmpOp, Expr, StrOp, Value};
use std::cmp::Ordering;

fn tri(b: Option<bool>) -> Value {
    b.map(Value::Bool).unwrap_or(Value::Null)
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Str(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::Str(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A number from a value (strings are parsed).
fn as_number(v: &Value) -> Option<Num> {
    match v {
        Value::Long(l) => Some(Num::L(*l)),
        Value::Double(d) => Some(Num::D(*d)),
        Value::Str(s) => {
            let s = s.trim();
            s.parse::<i64>()
                .map(Num::L)
                .ok()
                .or_else(|| s.parse::<f64>().ok().filter(|d| d.is_finite()).map(Num::D))
        }
        _ => None,
    }
}

#[derive(Clone, Copy)]
enum Num {
    L(i64),
    D(f64),
}

fn cmp_num(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::L(x), Num::L(y)) => Some(x.cmp(&y)),
        (Num::L(x), Num::D(y)) => (x as f64).partial_cmp(&y),
        (Num::D(x), Num::L(y)) => x.partial_cmp(&(y as f64)),
        (Num::D(x), Num::D(y)) => x.partial_cmp(&y),
    }
}

fn is_num(v: &Value) -> bool {
    matches!(v, Value::Long(_) | Value::Double(_))
}

/// Compares two values; None is unknown.
fn compare(op: CmpOp, l: &Value, r: &Value) -> Option<bool> {
    if matches!(l, Value::Null) || matches!(r, Value::Null) {
        return None;
    }
    let ord = if is_num(l) || is_num(r) {
        cmp_num(as_number(l)?, as_number(r)?)?
    } else if matches!(l, Value::Bool(_)) || matches!(r, Value::Bool(_)) {
        let (a, b) = (as_bool(l)?, as_bool(r)?);
        return match op {
            CmpOp::Eq => Some(a == b),
            CmpOp::Ne => Some(a != b),
            _ => None,
        };
    } else {
        match (l, r) {
            (Value::Str(a), Value::Str(b)) => match op {
                CmpOp::Eq => return Some(a == b),
                CmpOp::Ne => return Some(a != b),
                _ => return None,
            },
            _ => return None,
        }
    };
    Some(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
    })
}

fn negate(v: Value, neg: bool) -> Value {
    match v {
        Value::Bool(b) if neg => Value::Bool(!b),
        other => other,
    }
}

pub fn eval<'a, F: Fn(&str) -> Option<&'a str>>(e: &Expr, props: &F) -> Value {
    match e {
        Expr::Lit(v) => v.clone(),
        Expr::Prop(name) => props(name)
            .map(|s| Value::Str(s.to_owned()))
            .unwrap_or(Value::Null),
        Expr::Cmp(op, l, r) => tri(compare(*op, &eval(l, props), &eval(r, props))),
        Expr::And(l, r) => {
            let a = as_bool(&eval(l, props));
            if a == Some(false) {
                return Value::Bool(false);
            }
            match (a, as_bool(&eval(r, props))) {
                (_, Some(false)) => Value::Bool(false),
                (Some(true), Some(true)) => Value::Bool(true),
                _ => Value::Null,
            }
        }
        Expr::Or(l, r) => {
            let a = as_bool(&eval(l, props));
            if a == Some(true) {
                return Value::Bool(true);
            }
            match (a, as_bool(&eval(r, props))) {
                (_, Some(true)) => Value::Bool(true),
                (Some(false), Some(false)) => Value::Bool(false),
                _ => Value::Null,
            }
        }
        Expr::Not(x) => tri(as_bool(&eval(x, props)).map(|b| !b)),
        Expr::In(x, list, neg) => {
            let v = match eval(x, props) {
                Value::Str(s) => Value::Bool(list.contains(&s)),
                _ => Value::Null,
            };
            negate(v, *neg)
        }
        Expr::Between(x, lo, hi, neg) => {
            let v = eval(x, props);
            let ge = compare(CmpOp::Ge, &v, &eval(lo, props));
            let le = compare(CmpOp::Le, &v, &eval(hi, props));
            let r = match (ge, le) {
                (Some(a), Some(b)) => Value::Bool(a && b),
                _ => Value::Null,
            };
            negate(r, *neg)
        }
        Expr::IsNull(x, neg) => Value::Bool(matches!(eval(x, props), Value::Null) != *neg),
        Expr::StrTest(op, x, s, neg) => {
            let v = match eval(x, props) {
                Value::Str(v) => Value::Bool(match op {
                    StrOp::Contains => v.contains(s.as_str()),
                    StrOp::StartsWith => v.starts_with(s.as_str()),
                    StrOp::EndsWith => v.ends_with(s.as_str()),
                }),
                _ => Value::Null,
            };
            negate(v, *neg)
        }
    }
}
