//! Fuzzes the SDP layer: parsing, the audio view and the rewrite must never
//! panic; the rewrite of an SDP that parses must parse again, and rewriting
//! is idempotent.
//! Run: `cargo fuzz run -s none sdp -- -max_total_time=120`
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use pbx_bridge::media::sdp::{SessionDescription, rewrite};

const PORT: u16 = 20_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = SessionDescription::parse(text);
    if let Ok(s) = &parsed {
        let _ = s.audio();
    }
    for ip in [
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
    ] {
        let Ok(out) = rewrite(text, ip, PORT) else {
            continue;
        };
        if parsed.is_ok() {
            let again = SessionDescription::parse(&out);
            assert!(
                again.is_ok(),
                "the rewrite does not parse: {again:?}\n{out:?}"
            );
            let _ = again.unwrap().audio();
        }
        let twice = rewrite(&out, ip, PORT).expect("a rewrite rewrites");
        assert_eq!(twice, out, "rewrite is not idempotent");
    }
});
