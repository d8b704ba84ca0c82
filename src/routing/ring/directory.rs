//! The snapshot a ring decides on: departments, business hours, holidays and
//! the agents with their presence and idle time.

use std::collections::BTreeMap;

use crate::domain::{Agent, Department, Holiday, Id, Membership, Period, Presence, Timestamp};

/// Whether an agent can be rung right now, as the call engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentState {
    Available,
    Paused,
    /// Not registered (and not reachable through the PBX trunk), inactive,
    /// or without an extension.
    Offline,
    /// Already in a call.
    Busy,
}

impl AgentState {
    /// From the agent's derived presence and whether it is in a call.
    pub fn from_presence(presence: Presence, busy: bool) -> Self {
        match presence {
            Presence::Paused => Self::Paused,
            Presence::Offline => Self::Offline,
            Presence::Available if busy => Self::Busy,
            Presence::Available => Self::Available,
        }
    }
}

/// One agent in the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentEntry {
    pub id: Id,
    pub active: bool,
    pub state: AgentState,
    /// When the agent's last call ended; `None` = no call yet, which counts
    /// as the longest idle of all.
    pub idle_since: Option<Timestamp>,
    pub memberships: Vec<Membership>,
}

impl AgentEntry {
    pub fn from_agent(agent: &Agent, idle_since: Option<Timestamp>) -> Self {
        AgentEntry {
            id: agent.id,
            active: agent.active,
            state: AgentState::from_presence(agent.presence, agent.busy),
            idle_since,
            memberships: agent.departments.clone(),
        }
    }

    /// Active, available, and receiving that department's calls.
    pub fn can_ring_for(&self, department: Id) -> bool {
        self.active
            && self.state == AgentState::Available
            && self
                .memberships
                .iter()
                .any(|m| m.department_id == department && m.receives_calls)
    }
}

/// Everything a ring looks up, copied when the call arrives. Presence
/// changes during the ring are fed to the ring
/// ([`super::Ring::agent_changed`]), which keeps its copy current.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    departments: BTreeMap<Id, Department>,
    periods: BTreeMap<Id, Period>,
    holidays: Vec<Holiday>,
    agents: BTreeMap<Id, AgentEntry>,
}

impl Directory {
    pub fn new(
        departments: impl IntoIterator<Item = Department>,
        periods: impl IntoIterator<Item = Period>,
        holidays: impl IntoIterator<Item = Holiday>,
        agents: impl IntoIterator<Item = AgentEntry>,
    ) -> Self {
        Directory {
            departments: departments.into_iter().map(|d| (d.id, d)).collect(),
            periods: periods.into_iter().map(|p| (p.id, p)).collect(),
            holidays: holidays.into_iter().collect(),
            agents: agents.into_iter().map(|a| (a.id, a)).collect(),
        }
    }

    pub fn department(&self, id: Id) -> Option<&Department> {
        self.departments.get(&id)
    }

    pub fn agent(&self, id: Id) -> Option<&AgentEntry> {
        self.agents.get(&id)
    }

    pub fn agents(&self) -> impl Iterator<Item = &AgentEntry> {
        self.agents.values()
    }

    /// Updates an agent's state; unknown agents are ignored (they cannot be
    /// rung by this snapshot anyway).
    pub fn set_agent_state(&mut self, agent: Id, state: AgentState) {
        if let Some(a) = self.agents.get_mut(&agent) {
            a.state = state;
        }
    }

    /// Whether the department takes calls at `at`: no period = always open;
    /// a period that is not in the snapshot counts as open too (a dangling
    /// reference must not hang up every caller).
    pub fn is_open(&self, department: &Department, at: Timestamp) -> bool {
        match department.period_id.and_then(|p| self.periods.get(&p)) {
            None => true,
            Some(period) => period.is_open(at, &self.holidays),
        }
    }

    /// The department's available agents, longest idle first (never idle
    /// before any idle time, ties by id), cut to `ring_count` for
    /// `ring_target = count` and empty for `none` or an inactive department.
    pub fn ring_list(&self, department: &Department) -> Vec<Id> {
        use crate::domain::RingTarget;
        if !department.active || department.ring_target == RingTarget::None {
            return Vec::new();
        }
        let mut list: Vec<&AgentEntry> = self
            .agents
            .values()
            .filter(|a| a.can_ring_for(department.id))
            .collect();
        list.sort_by_key(|a| (a.idle_since.is_some(), a.idle_since, a.id));
        let mut ids: Vec<Id> = list.into_iter().map(|a| a.id).collect();
        if department.ring_target == RingTarget::Count {
            ids.truncate(department.ring_count.unwrap_or(u32::MAX) as usize);
        }
        ids
    }
}
