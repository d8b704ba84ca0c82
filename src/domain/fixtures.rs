//! Plain rows of the domain for unit tests across modules (the ring, the
//! call plan, the call core, Asterisk rendering): one baseline each, which
//! a test changes with struct update syntax.

use super::{
    Agent, Department, Extension, Id, Membership, Presence, RingStrategy, RingTarget, Timestamp,
};

/// The instant fixtures are created and updated at.
pub fn at() -> Timestamp {
    "2026-11-23T15:00:00Z"
        .parse()
        .expect("a constant timestamp")
}

/// An active department `d{id}` with no PABX code: simultaneous, all
/// agents, 15 s per agent / 30 s in all, records, keeps attendances open.
pub fn department(id: Id) -> Department {
    Department {
        id,
        name: format!("d{id}"),
        description: String::new(),
        active: true,
        order: 0,
        pabx_code: None,
        ring_strategy: RingStrategy::Simultaneous,
        ring_target: RingTarget::All,
        ring_count: None,
        agent_ring_timeout_s: 15,
        ring_timeout_s: 30,
        overflow_department_id: None,
        close_on_hangup: false,
        record: true,
        period_id: None,
        after_hours: None,
        auto_pause_after_missed: None,
        created_at: at(),
        updated_at: at(),
    }
}

/// Membership that receives calls.
pub fn member(department_id: Id) -> Membership {
    Membership {
        department_id,
        receives_calls: true,
        responsible: false,
    }
}

/// An active, unpaused agent `a{id}` on `extension_id`, receiving calls in
/// `departments`.
pub fn agent(id: Id, extension_id: Option<Id>, departments: &[Id]) -> Agent {
    Agent {
        id,
        name: format!("a{id}"),
        extension_id,
        active: true,
        departments: departments.iter().map(|d| member(*d)).collect(),
        pause: None,
        presence: Presence::Offline,
        busy: false,
        created_at: at(),
        updated_at: at(),
    }
}

/// Extension `number`, active or not.
pub fn extension(id: Id, number: &str, active: bool) -> Extension {
    Extension {
        id,
        number: number.into(),
        display_name: String::new(),
        digest_algorithms: Vec::new(),
        agent_id: None,
        active,
        follow_me: Default::default(),
        created_at: at(),
        updated_at: at(),
    }
}
