//! Tests of the AMI core. Fixture-driven ones read the real Asterisk 22
//! transcripts in `tests/fixtures/ami/`.

mod click_to_call;
mod codec_unit;
mod fixtures;
mod follow_store;
mod handover;
mod live;
mod presence;
mod props;
mod session_sim;
mod support;
mod tracker_bridge;
mod tracker_scenarios;
mod tracker_transfer;
