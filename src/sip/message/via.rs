//! The Via header (RFC 3261 §20.42, §18.2.1; rport per RFC 3581).

use std::fmt;

use super::params::{Params, parse_header_params};
use super::syntax::{Cursor, is_token_byte, parse_digits};
use super::uri::Host;

/// The magic cookie that marks an RFC 3261 branch (§8.1.1.7).
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

/// One Via value (one hop).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Protocol name and version, normally `SIP/2.0`.
    pub protocol: String,
    /// Transport, upper-cased (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or any
    /// other token: RFC 4475 §3.1.1.10).
    pub transport: String,
    /// sent-by host.
    pub host: Host,
    /// sent-by port.
    pub port: Option<u16>,
    /// `branch` (transaction id when it starts with the magic cookie).
    pub branch: Option<String>,
    /// `received` (the source address a server saw, §18.2.1).
    pub received: Option<String>,
    /// `rport`: `Some(None)` when present without value (the client asks
    /// for it, RFC 3581), `Some(Some(p))` when filled in.
    pub rport: Option<Option<u16>>,
    /// Every other parameter (maddr, ttl, extensions) in order.
    pub params: Params,
}

impl Via {
    /// A Via for a request we send: `SIP/2.0/{transport} host[:port];branch=..;rport`.
    pub fn new(transport: &str, host: Host, port: Option<u16>, branch: &str) -> Via {
        Via {
            protocol: "SIP/2.0".to_owned(),
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            branch: Some(branch.to_owned()),
            received: None,
            rport: Some(None),
            params: Params::default(),
        }
    }

    /// True when the branch carries the RFC 3261 magic cookie, so it can be
    /// used to match transactions (otherwise RFC 2543 matching applies).
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch
            .as_deref()
            .is_some_and(|b| b.starts_with(BRANCH_MAGIC_COOKIE))
    }

    /// Parses one Via element (not a comma list).
    pub fn parse(s: &str) -> Result<Via, &'static str> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let name = c.take_while(is_token_byte);
        c.skip_ws();
        if name.is_empty() || !c.eat(b'/') {
            return Err("bad sent-protocol");
        }
        c.skip_ws();
        let version = c.take_while(is_token_byte);
        c.skip_ws();
        if version.is_empty() || !c.eat(b'/') {
            return Err("bad sent-protocol");
        }
        c.skip_ws();
        let transport = c.take_while(is_token_byte);
        if transport.is_empty() {
            return Err("missing transport");
        }
        let before = c.rest().len();
        c.skip_ws();
        if c.rest().len() == before {
            return Err("no whitespace before sent-by");
        }
        let host = Host::take(&mut c).map_err(|e| e.0)?;
        c.skip_ws();
        let port = if c.eat(b':') {
            c.skip_ws();
            let digits = c.take_while(|b| b.is_ascii_digit());
            Some(
                parse_digits(digits)
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or("bad port")?,
            )
        } else {
            None
        };
        let all = parse_header_params(&mut c)?;
        c.skip_ws();
        if !c.is_empty() {
            return Err("unexpected characters in Via");
        }
        let mut via = Via {
            protocol: format!("{}/{}", name.to_ascii_uppercase(), version),
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            branch: None,
            received: None,
            rport: None,
            params: Params::default(),
        };
        for p in all.0 {
            if p.name.eq_ignore_ascii_case("branch") {
                via.branch = Some(p.value.ok_or("branch without value")?);
            } else if p.name.eq_ignore_ascii_case("received") {
                via.received = Some(p.value.ok_or("received without value")?);
            } else if p.name.eq_ignore_ascii_case("rport") {
                via.rport = Some(match p.value {
                    None => None,
                    Some(v) => Some(
                        parse_digits(&v)
                            .and_then(|p| u16::try_from(p).ok())
                            .ok_or("bad rport")?,
                    ),
                });
            } else {
                via.params.0.push(p);
            }
        }
        Ok(via)
    }
}

impl fmt::Display for Via {
    /// `SIP/2.0/UDP host:port;branch=..;<other params>;received=..;rport=..`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} {}", self.protocol, self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        if let Some(b) = &self.branch {
            write!(f, ";branch={b}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(r) = &self.received {
            write!(f, ";received={r}")?;
        }
        match self.rport {
            Some(Some(p)) => write!(f, ";rport={p}")?,
            Some(None) => f.write_str(";rport")?,
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tortuous() {
        let v = Via::parse("SIP  /   2.0  /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.protocol, "SIP/2.0");
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::Ipv4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.branch.as_deref(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let v = Via::parse("SIP/2.0/TCP [2001:db8::9:1]:5061 ; branch = z9hG4bK1;rport;received=2001:db8::9:255;maddr=x").unwrap();
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.rport, Some(None));
        assert_eq!(v.received.as_deref(), Some("2001:db8::9:255"));
        assert_eq!(v.params.value("maddr"), Some("x"));
        assert_eq!(Via::parse(&v.to_string()).unwrap(), v);
        let v = Via::parse("SIP/2.0/UDP h:5060;rport=1234").unwrap();
        assert_eq!(v.rport, Some(Some(1234)));
    }

    #[test]
    fn invalid() {
        for s in [
            "SIP/2.0/UDP 192.0.2.15;;",
            "SIP/2.0/UDP",
            "SIP/2.0 host",
            "SIP/2.0/UDPhost",
            "SIP/2.0/UDP host:70000",
            "SIP/2.0/UDP host;rport=x",
            "SIP/2.0/UDP host junk",
        ] {
            assert!(Via::parse(s).is_err(), "{s}");
        }
    }
}
