//! The RFC 3261 §17 transaction layer, sans-IO.
//!
//! Four state machines (INVITE and non-INVITE, client and server) with
//! every RFC 3261 timer, RFC 6026's Accepted state for 2xx to INVITE, and a
//! `TransactionLayer` that keys and drives them.  The core never reads the
//! clock and never touches a socket: the driver passes `now` with every
//! input, calls `on_tick` at `next_deadline`, and performs the `Output`s it
//! drains with `take_outputs` (send bytes, or hand a `TuEvent` to the TU).
//!
//! Driver loop, for the transport engineer:
//! ```text
//! inbound request  -> layer.on_request(msg, source, transport, now)
//! inbound response -> layer.on_response(msg, now)
//! TU sends         -> layer.send_request(..) / send_response(key, ..)
//! send failed      -> layer.on_transport_error(&key, now)
//! timer            -> layer.on_tick(now); re-arm at layer.next_deadline()
//! after each       -> for out in layer.take_outputs() { ... }
//! ```
//! Server responses go to the request's source address (RFC 3581 style,
//! which is also the connection for reliable transports, §18.2.2).

mod ack;
mod client_invite;
mod client_non_invite;
mod error;
mod key;
mod layer;
mod output;
mod server_invite;
mod server_non_invite;
mod state;
mod timers;
mod transport;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests_client;
#[cfg(test)]
mod tests_props;
#[cfg(test)]
mod tests_server;

use super::message;

pub use error::TransactionError;
pub use key::{Role, TransactionKey};
pub use layer::{LayerConfig, TransactionLayer};
pub use output::{Output, TuEvent};
pub use state::TransactionState;
pub use timers::{Timer, TimerConfig};
pub use transport::Transport;
