//! The SIP message layer of pbx-bridge: parsing, framing, typed reads,
//! building and inbound validation of SIP messages (RFC 3261 §7, §18, §20,
//! §25; RFC 5118 IPv6; RFC 3581 rport; RFC 5626 keep-alives; RFC 4475).
//!
//! Design, for the engineers of the transaction layer and the registrar:
//! - **Lossless.**  A `SipMessage` keeps every header field as the exact
//!   bytes received (`HeaderField::raw`), in order, unknown ones included.
//!   `SipMessage::to_bytes` of an unedited message gives the input back;
//!   edits (`set_header`, `prepend_via`, `remove_top_via`, `set_body`)
//!   replace only the fields they touch.
//! - **Lazy.**  `parse` only checks the start line, cuts header fields and
//!   frames the body.  Typed values (`cseq()`, `vias()`, `from()`, ...) are
//!   parsed when asked and return `Result`, so one broken header does not
//!   make the message unroutable.
//! - **Bounded and panic-free** on any input (`Limits`; fuzzed).
//! - **Inbound policy** in `validate`: `inspect(bytes, &policy)` says
//!   whether to process, answer statelessly (400/416/420/501/505), or drop.
//!
//! On UDP call `inspect` (or `parse`) per datagram.  On TCP/TLS feed the
//! connection buffer to a `StreamFramer`, answer `Frame::Ping` with CRLF,
//! and `inspect` each `Frame::Message`.

mod accessors;
mod builder;
mod error;
mod framing;
mod headers;
mod method;
mod model;
mod name_addr;
mod params;
mod parse;
mod syntax;
mod uri;
pub mod validate;
mod via;

#[cfg(test)]
mod tests_props;
#[cfg(test)]
mod tests_rfc4475;

pub use accessors::CSeq;
pub use builder::{MessageBuilder, reason_phrase, response_to};
pub use error::{BuildError, HeaderError, ParseError, UriError};
pub use framing::{Frame, FramingError, StreamFramer};
pub use headers::{HeaderField, HeaderName};
pub use method::Method;
pub use model::{RequestLine, SipMessage, StartLine, StatusLine};
pub use name_addr::{Contacts, NameAddr};
pub use params::{Param, Params};
pub use parse::{Limits, parse, parse_with};
pub use uri::{Host, SipUri, Uri, unescape};
pub use validate::{DropReason, Inbound, Policy, Rejection, inspect};
pub use via::{BRANCH_MAGIC_COOKIE, Via};
