//! The registrar (RFC 3261 §10.3) for the extensions of the admin API, as a
//! sans-IO core: it takes a REGISTER, the time, and a way to look up an
//! extension's credentials, and returns the response to send and what
//! changed. Digest authentication (RFC 8760), the per-address lockout and
//! binding expiry live here; sockets and the database do not.

mod bindings;
mod core;

pub use bindings::{Binding, BindingChange, BindingTable, ChangeCause};
pub use core::{Credential, Handled, Registrar, RegistrarConfig};
