//! URIs: `sip:`/`sips:` (RFC 3261 §19.1, §25; IPv6 per RFC 5118), `tel:`
//! (RFC 3966, kept opaque) and any other absolute URI (kept opaque so the
//! server can answer 416 instead of 400).
//!
//! Parts are stored as written (escapes kept) so `Display` round-trips;
//! `SipUri::user_unescaped` decodes the user part.  Equality is syntactic,
//! not the RFC 3261 §19.1.4 comparison.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::error::UriError;
use super::params::{Param, Params};
use super::syntax::{Cursor, is_unreserved, parse_digits};

/// A host: name, IPv4 address or IPv6 reference (`[...]` on the wire).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name as written.
    Domain(String),
    Ipv4(Ipv4Addr),
    Ipv6(Ipv6Addr),
}

impl Host {
    /// Parses a host: `[IPv6]`, dotted IPv4, or a hostname (alphanumerics,
    /// `-`, `.`, and `_` which real traffic uses).
    pub fn parse(s: &str) -> Result<Host, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or(UriError("unclosed IPv6 reference"))?;
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::Ipv6)
                .map_err(|_| UriError("bad IPv6 address"));
        }
        if s.is_empty() {
            return Err(UriError("empty host"));
        }
        if let Ok(v4) = s.parse::<Ipv4Addr>() {
            return Ok(Host::Ipv4(v4));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(UriError("bad character in host"));
        }
        Ok(Host::Domain(s.to_owned()))
    }

    /// Consumes a host from a cursor (for Via sent-by and URIs).
    pub(crate) fn take(c: &mut Cursor<'_>) -> Result<Host, UriError> {
        if c.peek() == Some(b'[') {
            let s = c.take_while(|b| b != b']');
            if !c.eat(b']') {
                return Err(UriError("unclosed IPv6 reference"));
            }
            let inner = s.get(1..).unwrap_or("");
            return inner
                .parse::<Ipv6Addr>()
                .map(Host::Ipv6)
                .map_err(|_| UriError("bad IPv6 address"));
        }
        let s = c.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        Host::parse(s)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ipv4(a) => write!(f, "{a}"),
            Host::Ipv6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` when true.
    pub secure: bool,
    /// The user part as written (escapes kept; may contain `;`, `?`, ...).
    pub user: Option<String>,
    /// The password as written (discouraged by RFC 3261, still legal).
    pub password: Option<String>,
    pub host: Host,
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`), names/values as written.
    pub params: Params,
    /// The `?headers` part as written, without the `?`.
    pub headers: Option<String>,
}

impl SipUri {
    /// A plain `sip:user@host` URI.
    pub fn new(user: Option<&str>, host: Host) -> SipUri {
        SipUri {
            secure: false,
            user: user.map(str::to_owned),
            password: None,
            host,
            port: None,
            params: Params::default(),
            headers: None,
        }
    }

    /// The user part with `%HH` escapes decoded (may contain any octet,
    /// including NUL: RFC 4475 §3.1.1.4).
    pub fn user_unescaped(&self) -> Option<Vec<u8>> {
        self.user.as_deref().map(unescape)
    }

    /// The `transport` URI parameter, if any.
    pub fn transport(&self) -> Option<&str> {
        self.params.value("transport")
    }
}

/// Decodes `%HH` escapes (an invalid escape is kept literally).
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(v) = hex {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Any URI this layer can carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:` followed by this (number and parameters, as written).
    Tel(String),
    /// Another absolute URI, kept opaque: `scheme:rest`.
    Other { scheme: String, rest: String },
}

impl Uri {
    /// The user part of a sip/sips URI as text, unescaped (an extension
    /// number, a PABX code, a caller id); `None` for other schemes, no or
    /// an empty user, or one that is not UTF-8.
    pub fn user_text(&self) -> Option<String> {
        self.as_sip()?
            .user_unescaped()
            .and_then(|u| String::from_utf8(u).ok())
            .filter(|u| !u.is_empty())
    }

    /// The scheme, lower-case for sip/sips/tel, as written otherwise.
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Other { scheme, .. } => scheme,
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// Parses a URI (no surrounding whitespace or brackets allowed).
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let colon = s.find(':').ok_or(UriError("no scheme"))?;
        let scheme = s.get(..colon).unwrap_or("");
        let rest = s.get(colon + 1..).unwrap_or("");
        let mut sb = scheme.bytes();
        if !sb.next().is_some_and(|b| b.is_ascii_alphabetic())
            || !sb.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(UriError("bad scheme"));
        }
        if rest.is_empty() {
            return Err(UriError("nothing after scheme"));
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            return parse_sip(rest, scheme.len() == 4).map(Uri::Sip);
        }
        if !valid_chars(rest, |b| is_unreserved(b) || b"/;?:@&=+$,[]".contains(&b)) {
            return Err(UriError("bad character in URI"));
        }
        if scheme.eq_ignore_ascii_case("tel") {
            Ok(Uri::Tel(rest.to_owned()))
        } else {
            Ok(Uri::Other {
                scheme: scheme.to_owned(),
                rest: rest.to_owned(),
            })
        }
    }
}

impl FromStr for Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, UriError> {
        Uri::parse(s)
    }
}

/// True when every byte is allowed or part of a valid `%HH` escape.
fn valid_chars(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            match b.get(i + 1..i + 3) {
                Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else if c.is_ascii() && allowed(c) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn is_user_byte(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,;?/".contains(&b)
}
fn is_password_byte(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,".contains(&b)
}
fn is_paramchar(b: u8) -> bool {
    is_unreserved(b) || b"[]/:&+$".contains(&b)
}
fn is_header_byte(b: u8) -> bool {
    is_unreserved(b) || b"[]/?:+$=&".contains(&b)
}

fn parse_sip(rest: &str, secure_if_4: bool) -> Result<SipUri, UriError> {
    let secure = secure_if_4;
    let (userinfo, hostpart) = match rest.find('@') {
        Some(at) => (rest.get(..at), rest.get(at + 1..).unwrap_or("")),
        None => (None, rest),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match ui.find(':') {
                Some(c) => (ui.get(..c).unwrap_or(""), ui.get(c + 1..)),
                None => (ui, None),
            };
            if u.is_empty() || !valid_chars(u, is_user_byte) {
                return Err(UriError("bad user part"));
            }
            if let Some(p) = p
                && !valid_chars(p, is_password_byte)
            {
                return Err(UriError("bad password"));
            }
            (Some(u.to_owned()), p.map(str::to_owned))
        }
    };
    let mut c = Cursor::new(hostpart);
    let host = Host::take(&mut c)?;
    let port = if c.eat(b':') {
        let digits = c.take_while(|b| b.is_ascii_digit());
        Some(
            parse_digits(digits)
                .and_then(|p| u16::try_from(p).ok())
                .ok_or(UriError("bad port"))?,
        )
    } else {
        None
    };
    let mut params = Vec::new();
    while c.eat(b';') {
        let name = c.take_while(|b| is_paramchar(b) || b == b'%');
        if name.is_empty() || !valid_chars(name, is_paramchar) {
            return Err(UriError("bad URI parameter"));
        }
        let value = if c.eat(b'=') {
            let v = c.take_while(|b| is_paramchar(b) || b == b'%');
            if v.is_empty() || !valid_chars(v, is_paramchar) {
                return Err(UriError("bad URI parameter value"));
            }
            Some(v.to_owned())
        } else {
            None
        };
        params.push(Param {
            name: name.to_owned(),
            value,
        });
    }
    let headers = if c.eat(b'?') {
        let h = c.rest();
        if h.is_empty() || !valid_chars(h, is_header_byte) {
            return Err(UriError("bad URI headers"));
        }
        c = Cursor::new("");
        Some(h.to_owned())
    } else {
        None
    };
    if !c.is_empty() {
        return Err(UriError("unexpected characters after host"));
    }
    Ok(SipUri {
        secure,
        user,
        password,
        host,
        port,
        params: Params(params),
        headers,
    })
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => write!(f, "{u}"),
            Uri::Tel(n) => write!(f, "tel:{n}"),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(s: &str) -> Uri {
        let u = Uri::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(u.to_string(), s);
        assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
        u
    }

    #[test]
    fn sip_uris() {
        let u = rt("sip:alice:secret@example.com:5061;transport=tcp;lr?subject=x&priority=urgent");
        let s = u.as_sip().unwrap();
        assert_eq!(s.user.as_deref(), Some("alice"));
        assert_eq!(s.password.as_deref(), Some("secret"));
        assert_eq!(s.port, Some(5061));
        assert_eq!(s.transport(), Some("tcp"));
        assert!(s.params.contains("lr"));
        assert_eq!(s.headers.as_deref(), Some("subject=x&priority=urgent"));
        let u = rt("sips:[2001:db8::10]:5070");
        assert_eq!(
            u.as_sip().unwrap().host,
            Host::Ipv6("2001:db8::10".parse().unwrap())
        );
        rt("sip:192.0.2.1");
        rt("sip:user;par=u%40example.net@example.com");
        let u = rt("sip:null-%00-null@example.com");
        assert_eq!(
            u.as_sip().unwrap().user_unescaped().unwrap(),
            b"null-\0-null"
        );
        rt(
            "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com",
        );
        rt("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
    }

    #[test]
    fn other_schemes() {
        assert_eq!(
            rt("tel:+1-201-555-0123;phone-context=x"),
            Uri::Tel("+1-201-555-0123;phone-context=x".into())
        );
        assert_eq!(rt("soap.beep://192.0.2.103:3002").scheme(), "soap.beep");
        assert_eq!(
            rt("nobodyKnowsThisScheme:totallyopaquecontent").scheme(),
            "nobodyKnowsThisScheme"
        );
    }

    #[test]
    fn invalid() {
        for s in [
            "<sip:user@example.com>",
            "sip:user@example.com; lr",
            "sip:",
            "sip:@host",
            "sip:host:99999",
            "sip:host:",
            "sip:[::1",
            "sip:a b@host",
            "sip:a%zz@host",
            "1sip:x",
            "nocolon",
            "sip:h;=x",
        ] {
            assert!(Uri::parse(s).is_err(), "{s}");
        }
    }
}
