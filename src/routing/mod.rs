//! Call routing decisions: which trunk carries a dialled number, and (later)
//! how a department's agents ring.

mod pattern;

pub use pattern::{DialPattern, PatternError};
