//! How a department's agents ring for an inbound call (SPEC §5 "Inbound to
//! a department"), as a state machine with no I/O.
//!
//! ```text
//! start ─► enter(dept) ─ loop? ──────────────────────────────► Finished(NoAnswer / AfterHoursHangup)
//!              │ closed ─► AfterHours ─ department ─► enter(that)
//!              │                       ─ number / hangup ───► Finished(AfterHours…)
//!              │ nobody to ring ─► overflow department ─► enter(that) | Finished(NoAnswer)
//!              ▼
//!   simultaneous: every fork until ring_timeout_s ┐ first answer ─► Connect, CANCEL others
//!   overflow: one fork at a time, agent_ring_timeout_s each ┘ ring-out ─► overflow department
//!   caller hangs up ─► CANCEL every fork, Finished(Abandoned)
//! ```
//!
//! The driver creates a [`Ring`] with a [`Directory`] snapshot, feeds it
//! what happens (SIP responses of the agent forks, presence changes, the
//! caller's hang-up, [`Ring::tick`] at [`Ring::next_deadline`]) with the
//! current [`Instant`], and executes the [`Output`]s it drains. The ring
//! never reads a clock: every rule and race is tested in simulated time.
//!
//! Rules, and why:
//! - every input first fires the timers that are due at its `now`, so the
//!   result never depends on whether the driver's tick ran first: an answer
//!   at or after the deadline is a late answer, and is hung up;
//! - an agent is rung at most once per call: one that let the call ring out,
//!   declined it or was cancelled is not rung again by an overflow
//!   department it also belongs to (it just did not answer this call), and
//!   the agent id then names the fork unambiguously in every input;
//! - the list of agents is taken when the call enters a department (longest
//!   idle first); agents that become unavailable later are skipped or have
//!   their fork cancelled, agents that become available later wait for the
//!   next call;
//! - a department is entered at most once per call: the API refuses
//!   overflow loops, but after-hours targets and concurrent edits can still
//!   close one, and a caller must never circle forever;
//! - an inactive department, or one whose `ring_target` is `none`, rings
//!   nobody and overflows at once; a missing department ends the ring;
//! - the wall-clock time for business hours is `wall` at [`Ring::start`]
//!   plus the monotonic time elapsed since, so a department entered by
//!   overflow is judged at the moment it is entered.

mod directory;
mod missed;
mod output;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

pub use directory::{AgentEntry, AgentState, Directory};
pub use missed::MissedCalls;
pub use output::{AfterHoursTarget, Entry, FailReason, MISSED_CALLS, Outcome, Output};

use crate::domain::{Department, Id, RingStrategy, Timestamp};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ForkState {
    /// INVITE sent, no provisional response yet.
    Calling,
    /// 180/183 seen: the phone is ringing.
    Ringing,
    Answered,
    Cancelled,
    Failed,
}

impl ForkState {
    fn live(self) -> bool {
        matches!(self, ForkState::Calling | ForkState::Ringing)
    }
}

#[derive(Debug, Clone, Copy)]
struct Fork {
    department: Id,
    state: ForkState,
}

#[derive(Debug, Clone)]
enum Phase {
    /// Every fork at once, until `deadline` (`ring_timeout_s`).
    Simultaneous {
        deadline: Instant,
    },
    /// `current` until `deadline` (`agent_ring_timeout_s`), then `queue`.
    Sequential {
        current: Id,
        deadline: Instant,
        queue: VecDeque<Id>,
    },
    Done,
}

/// One inbound call ringing a department (and its overflow chain).
#[derive(Debug, Clone)]
pub struct Ring {
    directory: Directory,
    started: Instant,
    wall_at_start: Timestamp,
    department: Id,
    visited: BTreeSet<Id>,
    forks: BTreeMap<Id, Fork>,
    phase: Phase,
    outcome: Option<Outcome>,
    out: VecDeque<Output>,
}

impl Ring {
    /// A call for `department` arrived at `now` (monotonic) / `wall`
    /// (wall clock, for business hours). The first outputs (entering the
    /// department, the first forks or the end) are ready to drain.
    pub fn start(directory: Directory, department: Id, now: Instant, wall: Timestamp) -> Self {
        let mut ring = Ring {
            directory,
            started: now,
            wall_at_start: wall,
            department,
            visited: BTreeSet::new(),
            forks: BTreeMap::new(),
            phase: Phase::Done,
            outcome: None,
            out: VecDeque::new(),
        };
        ring.enter(department, Entry::Called, now);
        ring
    }

    /// When [`Ring::tick`] must be called next; `None` once finished.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Simultaneous { deadline } | Phase::Sequential { deadline, .. } => {
                Some(*deadline)
            }
            Phase::Done => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        self.outcome.is_some()
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// The department the call is in (the last one entered).
    pub fn department(&self) -> Id {
        self.department
    }

    /// The agents whose forks are ringing (or being set up) right now.
    pub fn ringing_agents(&self) -> Vec<Id> {
        self.live_forks()
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    /// Fires the timers due at `now`.
    pub fn tick(&mut self, now: Instant) {
        self.advance(now);
    }

    /// The agent's phone is ringing (180/183).
    pub fn agent_ringing(&mut self, agent: Id, now: Instant) {
        self.advance(now);
        if let Some(f) = self.forks.get_mut(&agent)
            && f.state == ForkState::Calling
        {
            f.state = ForkState::Ringing;
        }
    }

    /// The agent's fork got a 200 OK. Connects if that fork is still
    /// wanted; otherwise (late, cancelled, someone else won, never rung)
    /// answers [`Output::HangUpLateAnswer`].
    pub fn agent_answered(&mut self, agent: Id, now: Instant) {
        self.advance(now);
        let live = !self.is_finished() && self.forks.get(&agent).is_some_and(|f| f.state.live());
        if !live {
            self.out.push_back(Output::HangUpLateAnswer(agent));
            return;
        }
        let department = self.department;
        if let Some(f) = self.forks.get_mut(&agent) {
            f.state = ForkState::Answered;
        }
        self.directory.set_agent_state(agent, AgentState::Busy);
        self.out.push_back(Output::Connect { agent, department });
        self.cancel_live();
        self.finish(Outcome::Answered { agent, department });
    }

    /// The agent's fork ended with a final non-2xx answer (or none at
    /// all). A failure of a fork already cancelled (487) is ignored.
    pub fn agent_failed(&mut self, agent: Id, reason: FailReason, now: Instant) {
        self.advance(now);
        let Some(f) = self.forks.get_mut(&agent) else {
            return;
        };
        if !f.state.live() {
            return;
        }
        let was_ringing = f.state == ForkState::Ringing;
        f.state = ForkState::Failed;
        let department = f.department;
        if reason == FailReason::NoAnswer && was_ringing {
            self.out.push_back(Output::RangOut { agent, department });
        }
        self.fork_gone(agent, now);
    }

    /// The agent's state changed (paused, unregistered, busy with another
    /// call, available again…). A ringing fork of an agent who is no longer
    /// available is cancelled and the ring moves on.
    pub fn agent_changed(&mut self, agent: Id, state: AgentState, now: Instant) {
        self.advance(now);
        self.directory.set_agent_state(agent, state);
        if state == AgentState::Available {
            return;
        }
        let Some(f) = self.forks.get_mut(&agent) else {
            return;
        };
        if !f.state.live() {
            return;
        }
        f.state = ForkState::Cancelled;
        self.out.push_back(Output::CancelAgents(vec![agent]));
        self.fork_gone(agent, now);
    }

    /// The caller hung up: every fork is cancelled and the call is
    /// abandoned. Timers due at `now` are not fired first: nothing new is
    /// rung for a caller who is gone.
    pub fn caller_hung_up(&mut self, _now: Instant) {
        if self.is_finished() {
            return;
        }
        self.cancel_live();
        self.finish(Outcome::Abandoned {
            department: self.department,
        });
    }

    /// Takes the outputs so far, in order. Ring-outs go through `missed`
    /// (shared by every ring): an agent reaching its department's
    /// `auto_pause_after_missed` gets an [`Output::PauseAgent`] right after
    /// the ring-out; a connect resets the agent's counts.
    pub fn drain(&mut self, missed: &mut MissedCalls) -> Vec<Output> {
        let mut outputs = Vec::with_capacity(self.out.len());
        while let Some(o) = self.out.pop_front() {
            match &o {
                Output::RangOut { agent, department } => {
                    let (agent, department) = (*agent, *department);
                    let threshold = self
                        .directory
                        .department(department)
                        .and_then(|d| d.auto_pause_after_missed);
                    outputs.push(o);
                    if missed.missed(agent, department, threshold) {
                        self.directory.set_agent_state(agent, AgentState::Paused);
                        outputs.push(Output::PauseAgent {
                            agent,
                            reason: MISSED_CALLS,
                        });
                    }
                    continue;
                }
                Output::Connect { agent, .. } => missed.answered(*agent),
                _ => {}
            }
            outputs.push(o);
        }
        outputs
    }

    fn wall(&self, now: Instant) -> Timestamp {
        let elapsed = now.saturating_duration_since(self.started);
        self.wall_at_start + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }

    fn live_forks(&self) -> Vec<Id> {
        self.forks
            .iter()
            .filter(|(_, f)| f.state.live())
            .map(|(a, _)| *a)
            .collect()
    }

    /// Cancels every live fork (one [`Output::CancelAgents`]); returns them.
    fn cancel_live(&mut self) -> Vec<Id> {
        let live = self.live_forks();
        for a in &live {
            if let Some(f) = self.forks.get_mut(a) {
                f.state = ForkState::Cancelled;
            }
        }
        if !live.is_empty() {
            self.out.push_back(Output::CancelAgents(live.clone()));
        }
        live
    }

    fn finish(&mut self, outcome: Outcome) {
        debug_assert!(self.live_forks().is_empty());
        self.phase = Phase::Done;
        self.outcome = Some(outcome.clone());
        self.out.push_back(Output::Finished(outcome));
    }

    /// Fires every timer due at `now`.
    fn advance(&mut self, now: Instant) {
        loop {
            match &self.phase {
                Phase::Simultaneous { deadline } if *deadline <= now => {
                    self.ring_out_live();
                    self.overflow(now);
                }
                Phase::Sequential {
                    current, deadline, ..
                } if *deadline <= now => {
                    let current = *current;
                    debug_assert_eq!(self.live_forks(), vec![current]);
                    self.ring_out_live();
                    self.next_in_sequence(now);
                }
                _ => return,
            }
        }
    }

    /// The ring's timer expired: every live fork is cancelled, and those
    /// that were ringing count as ring-outs.
    fn ring_out_live(&mut self) {
        let ringing: Vec<(Id, Id)> = self
            .forks
            .iter()
            .filter(|(_, f)| f.state == ForkState::Ringing)
            .map(|(a, f)| (*a, f.department))
            .collect();
        self.cancel_live();
        for (agent, department) in ringing {
            self.out.push_back(Output::RangOut { agent, department });
        }
    }

    /// `agent`'s fork just ended without an answer: move on if it was the
    /// one (sequential) or the last one (simultaneous).
    fn fork_gone(&mut self, agent: Id, now: Instant) {
        match &self.phase {
            Phase::Simultaneous { .. } if self.live_forks().is_empty() => self.overflow(now),
            Phase::Sequential { current, .. } if *current == agent => self.next_in_sequence(now),
            _ => {}
        }
    }

    /// Rings the next agent of the sequence still available, or overflows.
    fn next_in_sequence(&mut self, now: Instant) {
        let department = self.department;
        let Phase::Sequential { queue, .. } = &mut self.phase else {
            return;
        };
        let mut queue = std::mem::take(queue);
        while let Some(agent) = queue.pop_front() {
            if self.can_ring(agent, department) {
                let timeout = self
                    .directory
                    .department(department)
                    .map_or(0, |d| d.agent_ring_timeout_s);
                self.ring(department, vec![agent]);
                self.phase = Phase::Sequential {
                    current: agent,
                    deadline: now + secs(timeout),
                    queue,
                };
                return;
            }
        }
        self.overflow(now);
    }

    fn can_ring(&self, agent: Id, department: Id) -> bool {
        !self.forks.contains_key(&agent)
            && self
                .directory
                .agent(agent)
                .is_some_and(|a| a.can_ring_for(department))
    }

    fn ring(&mut self, department: Id, agents: Vec<Id>) {
        for a in &agents {
            self.forks.insert(
                *a,
                Fork {
                    department,
                    state: ForkState::Calling,
                },
            );
        }
        self.out
            .push_back(Output::RingAgents { department, agents });
    }

    /// Nobody answered in the current department (or nobody could be rung).
    fn overflow(&mut self, now: Instant) {
        let from = self.department;
        match self
            .directory
            .department(from)
            .and_then(|d| d.overflow_department_id)
        {
            Some(next) => self.enter(next, Entry::Overflow { from }, now),
            None => self.finish(Outcome::NoAnswer { department: from }),
        }
    }

    fn enter(&mut self, mut target: Id, mut via: Entry, now: Instant) {
        self.phase = Phase::Done;
        loop {
            let dead_end = |department| match via {
                Entry::AfterHours { .. } => Outcome::AfterHoursHangup { department },
                _ => Outcome::NoAnswer { department },
            };
            if self.visited.contains(&target) {
                self.out.push_back(Output::LoopCut {
                    from: self.department,
                    to: target,
                });
                return self.finish(dead_end(self.department));
            }
            let Some(department) = self.directory.department(target).cloned() else {
                let last = if self.visited.is_empty() {
                    target
                } else {
                    self.department
                };
                return self.finish(dead_end(last));
            };
            self.visited.insert(target);
            self.department = target;
            self.out.push_back(Output::EnteredDepartment {
                department: target,
                via,
            });
            if !self.directory.is_open(&department, self.wall(now)) {
                let action = AfterHoursTarget::from_config(department.after_hours.as_ref());
                self.out.push_back(Output::AfterHours {
                    department: target,
                    target: action.clone(),
                });
                match action {
                    AfterHoursTarget::Department(next) => {
                        via = Entry::AfterHours { from: target };
                        target = next;
                        continue;
                    }
                    AfterHoursTarget::Number(number) => {
                        self.out.push_back(Output::ForwardToNumber(number.clone()));
                        return self.finish(Outcome::AfterHoursNumber {
                            department: target,
                            number,
                        });
                    }
                    AfterHoursTarget::Hangup => {
                        return self.finish(Outcome::AfterHoursHangup { department: target });
                    }
                }
            }
            let agents: Vec<Id> = self
                .directory
                .ring_list(&department)
                .into_iter()
                .filter(|a| !self.forks.contains_key(a))
                .collect();
            if agents.is_empty() {
                match department.overflow_department_id {
                    Some(next) => {
                        via = Entry::Overflow { from: target };
                        target = next;
                        continue;
                    }
                    None => return self.finish(Outcome::NoAnswer { department: target }),
                }
            }
            return self.ring_department(&department, agents, now);
        }
    }

    fn ring_department(&mut self, department: &Department, agents: Vec<Id>, now: Instant) {
        match department.ring_strategy {
            RingStrategy::Simultaneous => {
                self.ring(department.id, agents);
                self.phase = Phase::Simultaneous {
                    deadline: now + secs(department.ring_timeout_s),
                };
            }
            RingStrategy::Overflow => {
                let mut queue: VecDeque<Id> = agents.into();
                // The caller overflows before an empty list gets here; if
                // one ever did, nobody can answer.
                let Some(first) = queue.pop_front() else {
                    return self.finish(Outcome::NoAnswer {
                        department: department.id,
                    });
                };
                self.ring(department.id, vec![first]);
                self.phase = Phase::Sequential {
                    current: first,
                    deadline: now + secs(department.agent_ring_timeout_s),
                    queue,
                };
            }
        }
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}
