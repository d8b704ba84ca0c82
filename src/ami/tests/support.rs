//! Shared helpers: locating and loading the recorded transcripts.

use std::path::{Path, PathBuf};

use super::super::codec::{Decoder, Frame, decode_all};
use super::super::packet::Packet;
use super::super::tracker::TrackerConfig;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ami");

/// Every `*.ami.in` transcript, sorted.
pub fn transcripts_in() -> Vec<PathBuf> {
    files_ending(".ami.in")
}

pub fn files_ending(suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(FIXTURES).expect("fixture dir") {
        let dir = dir.expect("entry").path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).expect("scenario dir") {
            let f = f.expect("entry").path();
            if f.to_string_lossy().ends_with(suffix) {
                out.push(f);
            }
        }
    }
    out.sort();
    assert!(
        !out.is_empty(),
        "no {suffix} fixtures found under {FIXTURES}"
    );
    out
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The scenario file with the given prefix letter(s), e.g. `"b-"`.
pub fn scenario(prefix: &str, suffix: &str) -> PathBuf {
    files_ending(suffix)
        .into_iter()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
                && !p.to_string_lossy().contains(".observer.")
        })
        .unwrap_or_else(|| panic!("no scenario {prefix}*{suffix}"))
}

/// Unsplit parse of a whole transcript.
pub fn frames_of(bytes: &[u8]) -> Vec<Frame> {
    let mut d = Decoder::new();
    let (frames, errors) = decode_all(&mut d, bytes);
    assert!(errors.is_empty(), "errors: {errors:?}");
    frames
}

pub fn packets_of(bytes: &[u8]) -> Vec<Packet> {
    super::super::replay::packets(bytes)
}

/// One row of a `*.timeline.jsonl`.
pub struct Row {
    pub t: f64,
    pub incoming: bool,
    pub data: Vec<u8>,
}

pub fn timeline(path: &Path) -> Vec<Row> {
    let text = String::from_utf8(read(path)).expect("utf8 timeline");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json row");
            Row {
                t: v["t"].as_f64().expect("t"),
                incoming: v["dir"].as_str() == Some("in"),
                data: v["data"].as_str().expect("data").as_bytes().to_vec(),
            }
        })
        .collect()
}

/// The PBX of the fixtures.
pub fn fixture_tracker_config() -> TrackerConfig {
    TrackerConfig::new()
        .inbound_context("from-bridge")
        .trunk("bridge")
        .extension("1001")
        .extension("1002")
        .department("701")
        .department("702")
}
