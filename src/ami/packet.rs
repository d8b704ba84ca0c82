//! One AMI message as Asterisk sent it: an ordered list of `Key: Value`
//! headers, plus the free-text body of a legacy `Response: Follows`.
//!
//! Headers are kept as an ordered `Vec` and never folded into a map: AMI
//! repeats keys on purpose (`ChanVariable`, `Output`, `Variable`), and their
//! order carries meaning (command output lines). Look-ups ignore ASCII case
//! because Asterisk itself is not consistent (`Uniqueid` vs `UniqueID`).

use std::fmt;

/// One `Key: Value` line. The value is the text after the colon with exactly
/// one separating space removed, so leading alignment spaces in command output
/// survive and an encode → decode round trip is lossless.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    pub name: String,
    pub value: String,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// What a `Response:` header says. `Other` keeps values this code does not
/// know (old Asterisk answered `Ping` with `Response: Pong`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ResponseStatus {
    Success,
    Error,
    /// Legacy (Asterisk ≤ 13) command output; the text is in [`Packet::body`].
    Follows,
    /// The answer to `Logoff`; Asterisk closes the connection after it.
    Goodbye,
    Other(String),
}

impl ResponseStatus {
    pub fn parse(value: &str) -> Self {
        if value.eq_ignore_ascii_case("Success") {
            ResponseStatus::Success
        } else if value.eq_ignore_ascii_case("Error") {
            ResponseStatus::Error
        } else if value.eq_ignore_ascii_case("Follows") {
            ResponseStatus::Follows
        } else if value.eq_ignore_ascii_case("Goodbye") {
            ResponseStatus::Goodbye
        } else {
            ResponseStatus::Other(value.to_owned())
        }
    }
}

/// The three shapes of AMI message, decided by the first header (an
/// `OriginateResponse` event also carries a `Response:` header, so "has a
/// Response header" is not enough).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PacketKind {
    Response(ResponseStatus),
    Event(String),
    /// Neither (an `Action:` echoed in tests, or something unexpected): kept,
    /// not dropped, so nothing Asterisk says is lost silently.
    Generic,
}

/// A decoded AMI message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Packet {
    /// Every header in wire order, repeats included.
    pub headers: Vec<Header>,
    /// Lines that were not `Key: Value`: the output of a legacy
    /// `Response: Follows` (without the `--END COMMAND--` marker), or stray
    /// lines in a malformed message. Empty for every modern message.
    pub body: Vec<String>,
}

impl Packet {
    pub fn new() -> Self {
        Packet::default()
    }

    /// Builder helper, mainly for tests and synthetic snapshots.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.push(Header::new(name, value));
    }

    pub fn kind(&self) -> PacketKind {
        let classify = |h: &Header| {
            if h.name.eq_ignore_ascii_case("Event") {
                Some(PacketKind::Event(h.value.clone()))
            } else if h.name.eq_ignore_ascii_case("Response") {
                Some(PacketKind::Response(ResponseStatus::parse(&h.value)))
            } else {
                None
            }
        };
        if let Some(kind) = self.headers.first().and_then(classify) {
            return kind;
        }
        // First header is neither: fall back to Event, then Response, anywhere.
        if let Some(ev) = self.get("Event") {
            return PacketKind::Event(ev.to_owned());
        }
        if let Some(r) = self.get("Response") {
            return PacketKind::Response(ResponseStatus::parse(r));
        }
        PacketKind::Generic
    }

    /// The first value of `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The event name when this is an event.
    pub fn event_name(&self) -> Option<&str> {
        match self.headers.first() {
            Some(h) if h.name.eq_ignore_ascii_case("Event") => Some(h.value.as_str()),
            Some(h) if h.name.eq_ignore_ascii_case("Response") => None,
            _ => self.get("Event"),
        }
    }

    pub fn is_event(&self, name: &str) -> bool {
        self.event_name()
            .is_some_and(|e| e.eq_ignore_ascii_case(name))
    }

    pub fn is_response(&self) -> bool {
        matches!(self.kind(), PacketKind::Response(_))
    }

    /// The response status when this is a response.
    pub fn response(&self) -> Option<ResponseStatus> {
        match self.kind() {
            PacketKind::Response(s) => Some(s),
            _ => None,
        }
    }

    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID")
    }

    pub fn message(&self) -> Option<&str> {
        self.get("Message")
    }

    /// Command output lines, whichever way Asterisk sent them: the modern
    /// repeated `Output:` headers, or the legacy `Response: Follows` body.
    pub fn output_lines(&self) -> Vec<&str> {
        let modern: Vec<&str> = self.get_all("Output").collect();
        if !modern.is_empty() {
            return modern;
        }
        self.body.iter().map(String::as_str).collect()
    }

    /// `EventList: start` / `Complete` / `Cancelled`, if present.
    pub fn event_list(&self) -> Option<&str> {
        self.get("EventList")
    }
}

impl fmt::Display for Packet {
    /// Wire form (CRLF lines, blank-line terminated); the body of a legacy
    /// `Follows` response is written back with its `--END COMMAND--` marker.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for h in &self.headers {
            write!(f, "{}: {}\r\n", h.name, h.value)?;
        }
        if !self.body.is_empty() {
            for line in &self.body {
                write!(f, "{line}\r\n")?;
            }
            if matches!(self.kind(), PacketKind::Response(ResponseStatus::Follows)) {
                f.write_str("--END COMMAND--\r\n")?;
            }
        }
        f.write_str("\r\n")
    }
}
