//! Tokens of RocketMQ's SQL92 filter language.

use super::FilterError;

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    Ident(String),
    Str(String),
    Long(i64),
    Double(f64),
    LParen,
    RParen,
    Comma,
    Minus,
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    And,
    Or,
    Not,
    In,
    Between,
    Is,
    Null,
    True,
    False,
    Contains,
    StartsWith,
    EndsWith,
}

fn keyword(word: &str) -> Option<Token> {
    Some(match word.to_ascii_uppercase().as_str() {
        "AND" => Token::And,
        "OR" => Token::Or,
        "NOT" => Token::Not,
        "IN" => Token::In,
        "BETWEEN" => Token::Between,
        "IS" => Token::Is,
        "NULL" => Token::Null,
        "TRUE" => Token::True,
        "FALSE" => Token::False,
        "CONTAINS" => Token::Contains,
        "STARTSWITH" => Token::StartsWith,
        "ENDSWITH" => Token::EndsWith,
        _ => return None,
    })
}

fn ident_char(c: char, first: bool) -> bool {
    c.is_alphabetic() || c == '_' || c == '$' || (!first && (c.is_ascii_digit() || c == '.'))
}

/// Splits `src` into tokens; positions in errors are character offsets.
pub fn tokenize(src: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two = chars.get(i + 1).copied();
        let (tok, len) = match c {
            '(' => (Token::LParen, 1),
            ')' => (Token::RParen, 1),
            ',' => (Token::Comma, 1),
            '-' => (Token::Minus, 1),
            '=' => (Token::Eq, 1),
            '<' if two == Some('>') => (Token::Ne, 2),
            '<' if two == Some('=') => (Token::Le, 2),
            '<' => (Token::Lt, 1),
            '>' if two == Some('=') => (Token::Ge, 2),
            '>' => (Token::Gt, 1),
            '!' if two == Some('=') => (Token::Ne, 2),
            '\'' => {
                // 'it''s' → it's
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => return Err(FilterError::at(i, "unterminated string literal")),
                        Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                            s.push('\'');
                            j += 2;
                        }
                        Some('\'') => break,
                        Some(&ch) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                out.push(Token::Str(s));
                i = j + 1;
                continue;
            }
            d if d.is_ascii_digit() || (d == '.' && two.is_some_and(|t| t.is_ascii_digit())) => {
                let mut j = i;
                let mut float = false;
                while j < chars.len()
                    && (chars[j].is_ascii_digit()
                        || chars[j] == '.'
                        || chars[j] == 'e'
                        || chars[j] == 'E'
                        || ((chars[j] == '+' || chars[j] == '-')
                            && j > i
                            && matches!(chars[j - 1], 'e' | 'E')))
                {
                    if !chars[j].is_ascii_digit() {
                        float = true;
                    }
                    j += 1;
                }
                // Java-style suffixes: 10L, 1.5D, 2F.
                let text: String = chars[i..j].iter().collect();
                if j < chars.len() && matches!(chars[j], 'l' | 'L' | 'd' | 'D' | 'f' | 'F') {
                    float |= !matches!(chars[j], 'l' | 'L');
                    j += 1;
                }
                let tok = if float {
                    text.parse::<f64>()
                        .map(Token::Double)
                        .map_err(|_| FilterError::at(i, "bad number"))?
                } else {
                    match text.parse::<i64>() {
                        Ok(v) => Token::Long(v),
                        Err(_) => text
                            .parse::<f64>()
                            .map(Token::Double)
                            .map_err(|_| FilterError::at(i, "bad number"))?,
                    }
                };
                out.push(tok);
                i = j;
                continue;
            }
            a if ident_char(a, true) => {
                let mut j = i + 1;
                while j < chars.len() && ident_char(chars[j], false) {
                    j += 1;
                }
                let word: String = chars[i..j].iter().collect();
                out.push(keyword(&word).unwrap_or(Token::Ident(word)));
                i = j;
                continue;
            }
            other => {
                return Err(FilterError::at(
                    i,
                    &format!("unexpected character {other:?}"),
                ))
            }
        };
        out.push(tok);
        i += len;
    }
    Ok(out)
}
