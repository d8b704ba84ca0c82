//! pbx-bridge: the telephony service between a customer-service platform and
//! an Asterisk PBX. See README.md for the layout and `SPEC.md` for the
//! product contract.

pub mod ami;
pub mod api;
pub mod app;
pub mod asterisk;
pub mod calls;
pub mod config;
pub mod domain;
pub mod ledger;
pub mod media;
pub mod pbx_peer;
pub mod pbx_presence;
pub mod plan_changes;
pub mod registrations;
pub mod routing;
pub mod service;
pub mod signalling;
pub mod sip;
pub mod store;
pub mod telemetry;
pub mod trunk_registrations;
