//! Character classes and small lexing helpers from the RFC 3261 §25 grammar.
//!
//! Everything here works on bytes or on `&str` positions of ASCII characters
//! only, so slicing at the returned offsets can never split a UTF-8 sequence.

use std::borrow::Cow;

/// `token` characters (RFC 3261 §25.1): alphanum and `-.!%*_+`'~`.
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// True when `s` is a non-empty `token`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token_byte(b))
}

/// `unreserved` = alphanum / mark.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// Characters of Call-ID `word` (RFC 3261 §25.1).
pub(crate) fn is_word_byte(b: u8) -> bool {
    is_token_byte(b)
        || matches!(
            b,
            b'(' | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        )
}

/// Space or horizontal tab.
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims SP/HT/CR/LF on both sides.
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'))
}

/// Trims SP/HT/CR/LF on both sides of a byte slice.
pub(crate) fn trim_lws_bytes(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if matches!(first, b' ' | b'\t' | b'\r' | b'\n') {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if matches!(last, b' ' | b'\t' | b'\r' | b'\n') {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Replaces line folding (CR/LF inside a header value) with spaces, so the
/// typed parsers only ever see SP/HT as whitespace.  Borrowed, without an
/// allocation, in the common case of an unfolded value.
pub(crate) fn unfold(value: &[u8]) -> Cow<'_, [u8]> {
    if value.iter().any(|&b| b == b'\r' || b == b'\n') {
        Cow::Owned(
            value
                .iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                .collect(),
        )
    } else {
        Cow::Borrowed(value)
    }
}

/// A cursor over a `&str` for the recursive-descent typed parsers.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    /// Remaining input.
    pub(crate) fn rest(&self) -> &'a str {
        self.s.get(self.pos..).unwrap_or("")
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest().is_empty()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.rest().as_bytes().first().copied()
    }

    /// Skips SP/HT (values are unfolded before typed parsing).
    pub(crate) fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            if is_wsp(b) {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// Consumes `b` if it is next (after no whitespace).
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Consumes the longest run of ASCII bytes satisfying `f`.
    pub(crate) fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a str {
        let rest = self.rest();
        let n = rest.bytes().take_while(|&b| b.is_ascii() && f(b)).count();
        self.pos += n;
        rest.get(..n).unwrap_or("")
    }

    /// Consumes a quoted string starting at `"` and returns its decoded
    /// content (quoted-pairs resolved).  `None` if unterminated or not at `"`.
    pub(crate) fn quoted_string(&mut self) -> Option<String> {
        let rest = self.rest();
        let mut chars = rest.char_indices();
        if chars.next() != Some((0, '"')) {
            return None;
        }
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Some(out);
                }
                '\\' => {
                    let (_, esc) = chars.next()?;
                    if esc == '\r' || esc == '\n' || !esc.is_ascii() {
                        return None;
                    }
                    out.push(esc);
                }
                c if c.is_ascii_control() && c != '\t' => return None,
                c => out.push(c),
            }
        }
        None
    }

    /// Consumes a quoted string and returns it raw, quotes included.
    pub(crate) fn quoted_raw(&mut self) -> Option<&'a str> {
        let start = self.pos;
        self.quoted_string()?;
        self.s.get(start..self.pos)
    }
}

/// Writes `s` as a `quoted-string`, escaping `"`, `\` and control
/// characters (CR/LF, which cannot be escaped, become spaces).
pub(crate) fn write_quoted(f: &mut impl std::fmt::Write, s: &str) -> std::fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '\r' | '\n' => f.write_char(' ')?,
            '"' | '\\' => {
                f.write_char('\\')?;
                f.write_char(c)?;
            }
            c if c.is_ascii_control() && c != '\t' => {
                f.write_char('\\')?;
                f.write_char(c)?;
            }
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// Parses an unsigned decimal made only of digits (leading zeros allowed).
/// `None` on empty input, any non-digit, or overflow of `u64`.
pub(crate) fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

/// Splits a comma-separated header value into its elements, never splitting
/// inside a quoted string (with `\` escapes) or inside `<...>`.  Elements are
/// trimmed; empty elements are kept so callers can reject them.
pub(crate) fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut in_angle = false;
    let mut start = 0;
    for (i, b) in value.bytes().enumerate() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_quotes = false;
            }
            continue;
        }
        match b {
            b'"' => in_quotes = true,
            b'<' => in_angle = true,
            b'>' => in_angle = false,
            b',' if !in_angle => {
                out.push(trim_lws(value.get(start..i).unwrap_or("")));
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(trim_lws(value.get(start..).unwrap_or("")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_respects_quotes_and_angles() {
        let v = r#""Bell, A" <sip:a@b;x=1,2>, <sip:c@d>;q=0.5 , "x\",y" <sip:e@f>"#;
        let parts = split_list(v);
        assert_eq!(
            parts,
            vec![
                r#""Bell, A" <sip:a@b;x=1,2>"#,
                "<sip:c@d>;q=0.5",
                r#""x\",y" <sip:e@f>"#
            ]
        );
    }

    #[test]
    fn quoted_string_escapes() {
        let mut c = Cursor::new(r#""J Rosenberg \\\"" rest"#);
        assert_eq!(c.quoted_string().as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(c.rest(), " rest");
        assert!(Cursor::new("\"open").quoted_string().is_none());
    }

    #[test]
    fn digits() {
        assert_eq!(parse_digits("0068"), Some(68));
        assert_eq!(parse_digits(""), None);
        assert_eq!(parse_digits("-1"), None);
        assert_eq!(parse_digits("36893488147419103232"), None);
    }
}
