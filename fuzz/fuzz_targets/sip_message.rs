//! Fuzzes the SIP message layer: datagram parsing, every typed accessor,
//! the inbound validator and the stream framer must never panic.
//! Run: `cargo fuzz run -s none sip_message -- -max_total_time=120`
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use pbx_bridge::sip::message::{
    Frame, Policy, StreamFramer, inspect, parse, response_to, validate,
};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    if let Ok(m) = parse(bytes.clone()) {
        let _ = (m.request_uri(), m.call_id(), m.cseq(), m.from(), m.to());
        let _ = (m.vias(), m.top_via(), m.contacts(), m.expires());
        let _ = (m.max_forwards(), m.content_length(), m.media_type());
        let _ = (m.require(), m.supported(), m.route(), m.record_route());
        let _ = validate::check_request(&m, &Policy::default());
        let _ = response_to(&m, 200, None).map(|b| b.to_tag("x").to_bytes());
        let mut e = m.clone();
        e.remove_top_via();
        let _ = e.prepend_via("SIP/2.0/UDP h;branch=z9hG4bKx");
        // An unedited message serializes to a prefix of its input.
        let out = m.to_bytes();
        assert!(data.windows(out.len()).any(|w| w == &out[..]) || out.is_empty());
    }
    let _ = inspect(bytes, &Policy::default());
    let mut framer = StreamFramer::default();
    let mut buf = BytesMut::from(data);
    for _ in 0..64 {
        match framer.next_frame(&mut buf) {
            Ok(Some(Frame::Message(msg))) => {
                let _ = inspect(msg, &Policy::default());
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
});
