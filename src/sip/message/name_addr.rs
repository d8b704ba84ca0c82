//! `name-addr` / `addr-spec` with header parameters: the value shape of
//! From, To, Contact, Route, Record-Route, Refer-To, Reply-To...

use std::fmt;

use super::params::{Params, parse_header_params};
use super::syntax::{Cursor, is_token_byte, is_wsp, write_quoted};
use super::uri::Uri;

/// A display name, a URI and header parameters (`;tag=`, `;expires=`...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted and unescaped; `None` when absent.
    pub display_name: Option<String>,
    pub uri: Uri,
    /// Header parameters (after `>`, or after an unbracketed URI).
    pub params: Params,
}

impl NameAddr {
    /// A `<uri>` with no display name or parameters.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display_name: None,
            uri,
            params: Params::default(),
        }
    }

    /// The `tag` parameter (dialog identification, RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    /// Parses one element (no surrounding list).  Accepts the RFC forms:
    /// `"Quoted" <uri>;p`, `token token <uri>;p`, `<uri>;p` and `uri;p`
    /// (where `;p` belong to the header, not the URI, RFC 3261 §20.10).
    pub fn parse(s: &str) -> Result<NameAddr, &'static str> {
        let mut c = Cursor::new(s);
        let na = Self::take(&mut c)?;
        c.skip_ws();
        if !c.is_empty() {
            return Err("unexpected characters after parameters");
        }
        Ok(na)
    }

    /// Consumes one name-addr/addr-spec plus its parameters.
    pub(crate) fn take(c: &mut Cursor<'_>) -> Result<NameAddr, &'static str> {
        c.skip_ws();
        let mut display_name = None;
        let uri_text;
        if c.peek() == Some(b'"') {
            display_name = Some(
                c.quoted_string()
                    .ok_or("unterminated quoted display name")?,
            );
            c.skip_ws();
            uri_text = bracketed(c)?;
        } else if c.peek() == Some(b'<') {
            uri_text = bracketed(c)?;
        } else {
            // Either `token *(LWS token) <uri>` or a bare addr-spec.
            let save = c.clone();
            let tokens = c.take_while(|b| is_token_byte(b) || is_wsp(b));
            if c.peek() == Some(b'<') && !tokens.trim().is_empty() {
                display_name = Some(tokens.trim().to_owned());
                uri_text = bracketed(c)?;
            } else {
                *c = save;
                // addr-spec: ends at `;`, whitespace or `,`; it may not
                // contain `?` or `,` unbracketed (RFC 3261 §20.10).
                uri_text = c.take_while(|b| b != b';' && b != b',' && !is_wsp(b) && b != b'?');
                if c.peek() == Some(b'?') {
                    return Err("unbracketed URI with headers");
                }
            }
        }
        let uri = Uri::parse(uri_text).map_err(|e| e.0)?;
        let params = parse_header_params(c)?;
        Ok(NameAddr {
            display_name,
            uri,
            params,
        })
    }
}

/// Consumes `<uri>` and returns the text between the brackets.
fn bracketed<'a>(c: &mut Cursor<'a>) -> Result<&'a str, &'static str> {
    if !c.eat(b'<') {
        return Err("expected <");
    }
    let inner = c.take_while(|b| b != b'>');
    if !c.eat(b'>') {
        return Err("unclosed <");
    }
    Ok(inner)
}

impl fmt::Display for NameAddr {
    /// Always the bracketed form, display name quoted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display_name {
            write_quoted(f, d)?;
            f.write_str(" ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// A parsed Contact header value (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *` (REGISTER with Expires: 0 removes all bindings).
    Wildcard,
    /// The contacts of all Contact headers, in order.
    List(Vec<NameAddr>),
}

impl NameAddr {
    /// The `expires` contact parameter in seconds (saturating at u32::MAX).
    pub fn expires(&self) -> Option<u32> {
        let v = self.params.value("expires")?;
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(
            super::syntax::parse_digits(v)
                .map_or(u32::MAX, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        )
    }

    /// The `q` contact parameter (0.0..=1.0), `None` if absent or malformed.
    pub fn q(&self) -> Option<f32> {
        let v = self.params.value("q")?;
        let ok = v.len() <= 5
            && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && (v.starts_with("0") || v.starts_with("1"));
        let q: f32 = if ok { v.parse().ok()? } else { return None };
        (0.0..=1.0).contains(&q).then_some(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let n = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(n.display_name.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.display_name, None);
        assert_eq!(n.tag(), Some("1918181833n"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display_name.as_deref(), Some("caller"));
        let n = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(n.params.contains("unknownparam"));
        assert!(n.uri.as_sip().unwrap().params.is_empty());
        let n = NameAddr::parse("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert!(n.params.is_empty());
        let n = NameAddr::parse("<sip:[2001:db8::1]:5060>;expires=60;q=0.5").unwrap();
        assert_eq!(n.expires(), Some(60));
        assert_eq!(n.q(), Some(0.5));
        let n = NameAddr::parse(
            "token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;tag=_token~1'+`*%!-.",
        )
        .unwrap();
        assert_eq!(
            n.display_name.as_deref(),
            Some("token1~` token2'+_ token3*%!.-")
        );
        assert_eq!(n.tag(), Some("_token~1'+`*%!-."));
    }

    #[test]
    fn round_trip_display() {
        let n = NameAddr::parse(r#""a \"b\" \\ c" <sip:x@y>;tag=1;foo="bar baz""#).unwrap();
        assert_eq!(NameAddr::parse(&n.to_string()).unwrap(), n);
    }

    #[test]
    fn invalid() {
        for s in [
            r#""Mr. J. User <sip:j.user@example.com>"#,
            "< sip:t.watson@example.org >",
            "Bell, Alexander <sip:a.g.bell@example.com>",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            r#""Joe" <sip:joe@example.org>;;;;"#,
            "<sip:a@b",
            "",
        ] {
            assert!(NameAddr::parse(s).is_err(), "{s}");
        }
    }
}
