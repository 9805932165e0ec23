//! Recursive-descent parser of the SQL92 filter subset into an [`Expr`].
//!
//! ```text
//! expr    := and (OR and)*
//! and     := not (AND not)*
//! not     := NOT not | pred
//! pred    := value [cmp value | [NOT] IN (lit, ...) | [NOT] BETWEEN value AND value
//!                   | IS [NOT] NULL | [NOT] (CONTAINS|STARTSWITH|ENDSWITH) 'str']
//! value   := '(' expr ')' | literal | ident | '-' number
//! ```

use super::lexer::Token;
use super::{CmpOp, Expr, FilterError, StrOp, Value};

/// Deepest nesting accepted (keeps random input from exhausting the stack).
const MAX_DEPTH: usize = 64;

pub struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser {
    pub fn new(toks: Vec<Token>) -> Self {
        Parser {
            toks,
            pos: 0,
            depth: 0,
        }
    }

    fn err(&self, what: &str) -> FilterError {
        FilterError::at(self.pos, what)
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn eat(&mut self, t: &Token) -> bool {
        if self.peek() == Some(t) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Token, what: &str) -> Result<(), FilterError> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.err(&format!("expected {what}")))
        }
    }

    /// Parses a whole boolean expression.
    pub fn parse_all(&mut self) -> Result<Expr, FilterError> {
        let e = self.expr()?;
        if self.pos != self.toks.len() {
            return Err(self.err("unexpected trailing input"));
        }
        if !e.is_boolean() {
            return Err(FilterError::at(
                0,
                "expression will not result in a boolean value",
            ));
        }
        Ok(e)
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("expression nested too deeply"));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, FilterError> {
        self.enter()?;
        let mut e = self.and()?;
        while self.eat(&Token::Or) {
            let r = self.and()?;
            e = Expr::Or(Box::new(boolean(e, self)?), Box::new(boolean(r, self)?));
        }
        self.depth -= 1;
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.not()?;
        while self.eat(&Token::And) {
            let r = self.not()?;
            e = Expr::And(Box::new(boolean(e, self)?), Box::new(boolean(r, self)?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.eat(&Token::Not) {
            self.enter()?;
            let e = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(boolean(e, self)?)));
        }
        self.pred()
    }

    fn pred(&mut self) -> Result<Expr, FilterError> {
        let left = self.value()?;
        let op = match self.peek() {
            Some(Token::Eq) => Some(CmpOp::Eq),
            Some(Token::Ne) => Some(CmpOp::Ne),
            Some(Token::Gt) => Some(CmpOp::Gt),
            Some(Token::Ge) => Some(CmpOp::Ge),
            Some(Token::Lt) => Some(CmpOp::Lt),
            Some(Token::Le) => Some(CmpOp::Le),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let right = self.value()?;
            return Ok(Expr::Cmp(op, Box::new(left), Box::new(right)));
        }
        if self.eat(&Token::Is) {
            let negated = self.eat(&Token::Not);
            self.expect(&Token::Null, "NULL")?;
            return Ok(Expr::IsNull(Box::new(left), negated));
        }
        let negated = self.eat(&Token::Not);
        if self.eat(&Token::In) {
            self.expect(&Token::LParen, "( after IN")?;
            let mut list = Vec::new();
            loop {
                match self.peek().cloned() {
                    Some(Token::Str(s)) => list.push(s),
                    _ => return Err(self.err("expected a string literal in IN (...)")),
                }
                self.pos += 1;
                if self.eat(&Token::RParen) {
                    break;
                }
                self.expect(&Token::Comma, ", or ) in IN list")?;
            }
            return Ok(Expr::In(Box::new(left), list, negated));
        }
        if self.eat(&Token::Between) {
            let lo = self.value()?;
            self.expect(&Token::And, "AND in BETWEEN")?;
            let hi = self.value()?;
            return Ok(Expr::Between(
                Box::new(left),
                Box::new(lo),
                Box::new(hi),
                negated,
            ));
        }
        let sop = match self.peek() {
            Some(Token::Contains) => Some(StrOp::Contains),
            Some(Token::StartsWith) => Some(StrOp::StartsWith),
            Some(Token::EndsWith) => Some(StrOp::EndsWith),
            _ => None,
        };
        if let Some(sop) = sop {
            self.pos += 1;
            let Some(Token::Str(s)) = self.peek().cloned() else {
                return Err(self.err("expected a string literal"));
            };
            self.pos += 1;
            return Ok(Expr::StrTest(sop, Box::new(left), s, negated));
        }
        if negated {
            return Err(self.err("expected IN, BETWEEN or a string test after NOT"));
        }
        Ok(left)
    }

    fn value(&mut self) -> Result<Expr, FilterError> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.err("unexpected end of expression"));
        };
        self.pos += 1;
        Ok(match t {
            Token::LParen => {
                let e = self.expr()?;
                self.expect(&Token::RParen, ")")?;
                e
            }
            Token::Ident(name) => Expr::Prop(name),
            Token::Str(s) => Expr::Lit(Value::Str(s)),
            Token::Long(v) => Expr::Lit(Value::Long(v)),
            Token::Double(v) => Expr::Lit(Value::Double(v)),
            Token::True => Expr::Lit(Value::Bool(true)),
            Token::False => Expr::Lit(Value::Bool(false)),
            Token::Null => Expr::Lit(Value::Null),
            Token::Minus => match self.peek().cloned() {
                Some(Token::Long(v)) => {
                    self.pos += 1;
                    Expr::Lit(Value::Long(v.wrapping_neg()))
                }
                Some(Token::Double(v)) => {
                    self.pos += 1;
                    Expr::Lit(Value::Double(-v))
                }
                _ => return Err(self.err("expected a number after -")),
            },
            _ => {
                self.pos -= 1;
                return Err(self.err("expected a value"));
            }
        })
    }
}

fn boolean(e: Expr, p: &Parser) -> Result<Expr, FilterError> {
    if e.is_boolean() {
        Ok(e)
    } else {
        Err(p.err("operand of AND / OR / NOT is not a boolean expression"))
    }
}
