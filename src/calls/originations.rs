//! The API's way to the call engine for click-to-call on the bridge: the
//! request goes to signalling (which owns the engine and routes the new
//! call's Call-ID), and the answer comes back once the call's attendance
//! is durable on the node, before anyone answers (SPEC §5, §9).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::call::{NotOriginated, OriginateCall};
use crate::store::NewAttendance;

/// How long the API waits for the attendance of a click-to-call: the
/// node's journal answers in milliseconds unless the disk is stuck.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A click-to-call for the engine, with where its answer goes.
#[derive(Debug)]
pub struct Originate {
    pub call: OriginateCall,
    pub reply: oneshot::Sender<Result<Originated, NotOriginated>>,
}

/// The click-to-call's attendance, durable on the node.
#[derive(Debug, Clone)]
pub struct Originated {
    pub protocol: String,
    pub attendance: NewAttendance,
}

/// Why the API got no attendance.
#[derive(Debug, thiserror::Error)]
pub enum OriginateError {
    /// The call was refused (a field of the request, or the node).
    #[error("{}", .0.why)]
    Refused(NotOriginated),
    /// SIP is not running (stopping, or not started).
    #[error("calls cannot be placed now: {0}")]
    Unavailable(&'static str),
}

/// The channel from the API to signalling. Cheap to clone; signalling
/// takes the receiving end once, at start.
#[derive(Clone)]
pub struct Originations {
    tx: mpsc::UnboundedSender<Originate>,
    rx: Arc<Mutex<Option<mpsc::UnboundedReceiver<Originate>>>>,
}

impl Default for Originations {
    fn default() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Originations {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
        }
    }
}

impl Originations {
    /// The receiving end, for signalling (`None` once taken).
    pub fn take_receiver(&self) -> Option<mpsc::UnboundedReceiver<Originate>> {
        self.rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Places a click-to-call; answers once its attendance is durable.
    pub async fn originate(&self, call: OriginateCall) -> Result<Originated, OriginateError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Originate { call, reply })
            .map_err(|_| OriginateError::Unavailable("SIP is not running"))?;
        match tokio::time::timeout(REPLY_TIMEOUT, answer).await {
            Ok(Ok(result)) => result.map_err(OriginateError::Refused),
            Ok(Err(_)) => Err(OriginateError::Unavailable(
                "the call ended before it opened",
            )),
            Err(_) => Err(OriginateError::Unavailable(
                "no attendance within 5 s (SIP not running, or the node's journal is stuck)",
            )),
        }
    }
}
