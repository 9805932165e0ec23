//! SQL92 property filters (`expressionType=SQL92`), RocketMQ's subset:
//! comparisons `= <> > >= < <=`, `AND` / `OR` / `NOT`, parentheses,
//! `[NOT] IN ('a', ...)`, `[NOT] BETWEEN a AND b`, `IS [NOT] NULL`,
//! `CONTAINS` / `STARTSWITH` / `ENDSWITH`, string literals in single quotes,
//! long / double literals, `TRUE` / `FALSE` / `NULL`; identifiers name
//! message properties (`TAGS` included).
//!
//! Evaluation uses SQL's three-valued logic: a missing property is NULL,
//! comparisons with NULL are unknown, and a message matches only when the
//! whole expression is TRUE. Property values are strings; compared with a
//! number they are read as numbers (a non-numeric value compares unknown).
//! Used by the broker's pull path; pure, no I/O.

mod eval;
mod lexer;
mod parser;

/// A malformed expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} (at token/char {pos})")]
pub struct FilterError {
    pub pos: usize,
    pub what: String,
}

impl FilterError {
    fn at(pos: usize, what: &str) -> Self {
        FilterError {
            pos,
            what: what.to_owned(),
        }
    }
}

/// A literal or computed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    Contains,
    StartsWith,
    EndsWith,
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Lit(Value),
    Prop(String),
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `e [NOT] IN (list)`; the flag is NOT.
    In(Box<Expr>, Vec<String>, bool),
    Between(Box<Expr>, Box<Expr>, Box<Expr>, bool),
    IsNull(Box<Expr>, bool),
    StrTest(StrOp, Box<Expr>, String, bool),
}

impl Expr {
    /// True for expressions that yield a boolean.
    pub fn is_boolean(&self) -> bool {
        !matches!(
            self,
            Expr::Prop(_)
                | Expr::Lit(Value::Null | Value::Long(_) | Value::Double(_) | Value::Str(_))
        )
    }

    /// Whether a message with these properties matches.
    pub fn matches<'a>(&self, props: impl Fn(&str) -> Option<&'a str> + Copy) -> bool {
        eval::eval(self, &props) == Value::Bool(true)
    }
}

/// Parses a SQL92 filter expression.
pub fn parse(src: &str) -> Result<Expr, FilterError> {
    if src.trim().is_empty() {
        return Err(FilterError::at(0, "empty expression"));
    }
    let toks = lexer::tokenize(src)?;
    parser::Parser::new(toks).parse_all()
}

#[cfg(test)]
mod tests;
