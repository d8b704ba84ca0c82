//! The states of the four RFC 3261 §17 machines (plus RFC 6026 Accepted),
//! in one enum so the layer can report any transaction's state.

/// A transaction state.  Which ones a machine uses: INVITE client
/// Calling → Proceeding → Completed | Accepted → Terminated; non-INVITE
/// client Trying → Proceeding → Completed → Terminated; INVITE server
/// Proceeding → Completed → Confirmed | Accepted → Terminated; non-INVITE
/// server Trying → Proceeding → Completed → Terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionState {
    Calling,
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    /// RFC 6026 §7.1/§7.2: after a 2xx to INVITE.
    Accepted,
    Terminated,
}
