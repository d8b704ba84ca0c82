//! SIP request methods.

use std::fmt;

use super::syntax::is_token;

/// A request method.  Methods are case-sensitive (RFC 3261 §7.1): `invite`
/// is an extension method, not INVITE.  Any `token` is accepted so that the
/// server can answer 501/405 to methods it does not know.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    /// RFC 3262.
    Prack,
    /// RFC 6665 (3265).
    Subscribe,
    /// RFC 6665 (3265).
    Notify,
    /// RFC 3903.
    Publish,
    /// RFC 6086.
    Info,
    /// RFC 3515.
    Refer,
    /// RFC 3428.
    Message,
    /// RFC 3311.
    Update,
    /// Any other token.
    Extension(String),
}

impl Method {
    /// Parses a method token; `None` if `s` is not a non-empty token.
    pub fn from_token(s: &[u8]) -> Option<Method> {
        Some(match s {
            b"INVITE" => Method::Invite,
            b"ACK" => Method::Ack,
            b"BYE" => Method::Bye,
            b"CANCEL" => Method::Cancel,
            b"REGISTER" => Method::Register,
            b"OPTIONS" => Method::Options,
            b"PRACK" => Method::Prack,
            b"SUBSCRIBE" => Method::Subscribe,
            b"NOTIFY" => Method::Notify,
            b"PUBLISH" => Method::Publish,
            b"INFO" => Method::Info,
            b"REFER" => Method::Refer,
            b"MESSAGE" => Method::Message,
            b"UPDATE" => Method::Update,
            other if is_token(other) => {
                // A token is ASCII, so this conversion cannot fail.
                Method::Extension(String::from_utf8_lossy(other).into_owned())
            }
            _ => return None,
        })
    }

    /// The method as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Publish => "PUBLISH",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Update => "UPDATE",
            Method::Extension(s) => s,
        }
    }

    /// True for methods outside the RFC set this layer knows (answer 501
    /// when such a request is addressed to the server itself).
    pub fn is_extension(&self) -> bool {
        matches!(self, Method::Extension(_))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Method::from_token(s.as_bytes()).ok_or(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_extension() {
        assert_eq!(Method::from_token(b"INVITE"), Some(Method::Invite));
        assert_eq!(
            Method::from_token(b"invite"),
            Some(Method::Extension("invite".into()))
        );
        assert!(Method::from_token(b"RE%47IST%45R").is_some());
        assert!(Method::from_token(b"").is_none());
        assert!(Method::from_token(b"IN VITE").is_none());
        assert_eq!(Method::Update.to_string(), "UPDATE");
    }
}
