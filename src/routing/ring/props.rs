//! Property test: random departments, agents and presences, random
//! interleavings of every input, checked against the invariants a driver
//! relies on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::tests::{dept, member, monday_noon};
use super::*;
use crate::domain::{AfterHours, Membership, Period, RingTarget, Timestamp};

#[derive(Debug, Clone)]
struct DeptSpec {
    simultaneous: bool,
    target: u8, // 0 all, 1 count, 2 none
    count: u32,
    ring_timeout_s: u32,
    agent_ring_timeout_s: u32,
    overflow: Option<usize>,
    active: bool,
    closed: bool,
    after_hours: u8, // 0 none, 1 department, 2 number, 3 hangup
    after_hours_dept: usize,
    auto_pause: Option<u32>,
}

fn dept_spec() -> impl Strategy<Value = DeptSpec> {
    (
        any::<bool>(),
        prop_oneof![6 => Just(0u8), 3 => Just(1u8), 1 => Just(2u8)],
        1u32..4,
        5u32..40,
        5u32..20,
        proptest::option::weighted(0.6, 0usize..4),
        proptest::bool::weighted(0.9),
        proptest::bool::weighted(0.15),
        0u8..4,
        0usize..4,
        proptest::option::of(1u32..3),
    )
        .prop_map(
            |(simultaneous, target, count, rt, art, overflow, active, closed, ah, ahd, ap)| {
                DeptSpec {
                    simultaneous,
                    target,
                    count,
                    ring_timeout_s: rt,
                    agent_ring_timeout_s: art,
                    overflow,
                    active,
                    closed,
                    after_hours: ah,
                    after_hours_dept: ahd,
                    auto_pause: ap,
                }
            },
        )
}

#[derive(Debug, Clone)]
struct AgentSpec {
    state: AgentState,
    active: bool,
    idle: Option<i64>,
    /// (department index, receives_calls)
    memberships: Vec<(usize, bool)>,
}

fn state() -> impl Strategy<Value = AgentState> {
    prop_oneof![
        6 => Just(AgentState::Available),
        1 => Just(AgentState::Paused),
        1 => Just(AgentState::Offline),
        1 => Just(AgentState::Busy),
    ]
}

fn agent_spec() -> impl Strategy<Value = AgentSpec> {
    (
        state(),
        proptest::bool::weighted(0.9),
        proptest::option::of(0i64..600),
        proptest::collection::vec((0usize..4, proptest::bool::weighted(0.85)), 0..3),
    )
        .prop_map(|(state, active, idle, memberships)| AgentSpec {
            state,
            active,
            idle,
            memberships,
        })
}

/// Who an input is about.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// The n-th fork ringing now.
    Live(usize),
    /// The n-th agent ever rung in this call (live or not).
    Rung(usize),
    /// The n-th agent of the directory, or one unknown to it.
    Any(usize),
}

#[derive(Debug, Clone)]
enum Op {
    /// Let time pass, never beyond the next deadline, then tick.
    Wait(u64),
    /// Let time pass, possibly far beyond deadlines, without a tick.
    Jump(u64),
    Ringing(Who),
    Answer(Who),
    /// Two answers at the same instant.
    AnswerTwo(Who, Who),
    Fail(Who, FailReason),
    Change(Who, AgentState),
    HangUp,
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        6 => (0usize..8).prop_map(Who::Live),
        2 => (0usize..8).prop_map(Who::Rung),
        1 => (0usize..8).prop_map(Who::Any),
    ]
}

fn fail_reason() -> impl Strategy<Value = FailReason> {
    prop_oneof![
        Just(FailReason::Busy),
        Just(FailReason::Declined),
        Just(FailReason::NoAnswer),
        Just(FailReason::Unreachable),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u64..20_000).prop_map(Op::Wait),
        1 => (0u64..60_000).prop_map(Op::Jump),
        5 => who().prop_map(Op::Ringing),
        2 => who().prop_map(Op::Answer),
        1 => (who(), who()).prop_map(|(a, b)| Op::AnswerTwo(a, b)),
        3 => (who(), fail_reason()).prop_map(|(w, r)| Op::Fail(w, r)),
        2 => (who(), state()).prop_map(|(w, s)| Op::Change(w, s)),
        1 => Just(Op::HangUp),
    ]
}

fn build(depts: &[DeptSpec], agents: &[AgentSpec]) -> Directory {
    let n = depts.len();
    let id = |i: usize| (i % n) as Id + 1;
    let departments = depts.iter().enumerate().map(|(i, s)| {
        let mut d = dept(id(i));
        d.ring_strategy = if s.simultaneous {
            RingStrategy::Simultaneous
        } else {
            RingStrategy::Overflow
        };
        (d.ring_target, d.ring_count) = match s.target {
            0 => (RingTarget::All, None),
            1 => (RingTarget::Count, Some(s.count)),
            _ => (RingTarget::None, None),
        };
        d.ring_timeout_s = s.ring_timeout_s;
        d.agent_ring_timeout_s = s.agent_ring_timeout_s;
        d.overflow_department_id = s.overflow.map(id);
        d.active = s.active;
        d.auto_pause_after_missed = s.auto_pause;
        if s.closed {
            d.period_id = Some(100); // a period with no ranges: always closed
        }
        d.after_hours = match s.after_hours {
            0 => None,
            1 => Some(AfterHours {
                department_id: Some(id(s.after_hours_dept)),
                ..Default::default()
            }),
            2 => Some(AfterHours {
                number: Some("0800".into()),
                ..Default::default()
            }),
            _ => Some(AfterHours {
                hangup: Some(true),
                ..Default::default()
            }),
        };
        d
    });
    let closed = Period {
        id: 100,
        name: "never".into(),
        time_zone: "UTC".into(),
        ranges: vec![],
        created_at: Timestamp::default(),
        updated_at: Timestamp::default(),
    };
    let agents = agents.iter().enumerate().map(|(i, s)| AgentEntry {
        id: 10 + i as Id,
        active: s.active,
        state: s.state,
        idle_since: s.idle.map(|m| monday_noon() - chrono::Duration::minutes(m)),
        memberships: s
            .memberships
            .iter()
            .map(|(d, receives)| Membership {
                receives_calls: *receives,
                ..member(id(*d))
            })
            .collect(),
    });
    Directory::new(departments.collect::<Vec<_>>(), [closed], [], agents)
}

/// What the driver knows, and the checks on every output.
struct Model {
    directory: Directory,
    states: BTreeMap<Id, AgentState>,
    live: BTreeSet<Id>,
    rung: Vec<Id>,
    entered: Vec<Id>,
    connects: usize,
    finished: Option<(Outcome, Instant)>,
    last: Option<Output>,
}

impl Model {
    fn available(&self, agent: Id, department: Id) -> bool {
        self.directory.agent(agent).is_some_and(|a| {
            a.active
                && self.states[&agent] == AgentState::Available
                && a.memberships
                    .iter()
                    .any(|m| m.department_id == department && m.receives_calls)
        })
    }

    fn apply(&mut self, outputs: Vec<Output>, now: Instant) {
        for o in outputs {
            if self.finished.is_some() {
                assert!(
                    matches!(o, Output::HangUpLateAnswer(_)),
                    "{o:?} after the end"
                );
            }
            match &o {
                Output::EnteredDepartment { department, .. } => {
                    assert!(
                        !self.entered.contains(department),
                        "department {department} entered twice"
                    );
                    assert!(self.live.is_empty(), "moved on with forks ringing");
                    self.entered.push(*department);
                }
                Output::RingAgents { department, agents } => {
                    assert_eq!(self.entered.last(), Some(department));
                    assert!(!agents.is_empty());
                    for a in agents {
                        assert!(self.available(*a, *department), "rang {a}, not available");
                        assert!(!self.rung.contains(a), "rang {a} twice");
                        self.rung.push(*a);
                        self.live.insert(*a);
                    }
                }
                Output::CancelAgents(agents) => {
                    assert!(!agents.is_empty());
                    for a in agents {
                        assert!(self.live.remove(a), "cancelled {a}, not ringing");
                    }
                }
                Output::Connect { agent, department } => {
                    assert_eq!(self.connects, 0, "a second connect");
                    self.connects += 1;
                    assert!(self.live.remove(agent), "connected {agent}, not ringing");
                    assert_eq!(self.entered.last(), Some(department));
                    self.states.insert(*agent, AgentState::Busy);
                }
                Output::RangOut { agent, .. } => {
                    assert!(self.rung.contains(agent));
                }
                Output::PauseAgent { agent, reason } => {
                    assert_eq!(*reason, MISSED_CALLS);
                    assert!(
                        matches!(&self.last, Some(Output::RangOut { agent: a, .. }) if a == agent)
                    );
                    self.states.insert(*agent, AgentState::Paused);
                }
                Output::Finished(outcome) => {
                    assert!(self.live.is_empty(), "finished with forks ringing");
                    assert_eq!(
                        matches!(outcome, Outcome::Answered { .. }),
                        self.connects == 1
                    );
                    self.finished = Some((outcome.clone(), now));
                }
                Output::HangUpLateAnswer(_)
                | Output::AfterHours { .. }
                | Output::ForwardToNumber(_)
                | Output::LoopCut { .. } => {}
            }
            self.last = Some(o);
        }
    }

    fn pick(&self, who: Who) -> Id {
        let live: Vec<Id> = self.live.iter().copied().collect();
        match who {
            Who::Live(i) if !live.is_empty() => live[i % live.len()],
            Who::Rung(i) if !self.rung.is_empty() => self.rung[i % self.rung.len()],
            Who::Live(i) | Who::Rung(i) | Who::Any(i) => 10 + i as Id,
        }
    }
}

/// The longest a ring may last when time never jumps past a deadline:
/// each department once, for its whole ring or one agent timeout per agent.
fn bound(directory: &Directory, agents: usize) -> Duration {
    let mut total = 0u64;
    for id in 1..=4 {
        if let Some(d) = directory.department(id) {
            total += u64::from(d.ring_timeout_s.max(d.agent_ring_timeout_s * agents as u32));
        }
    }
    Duration::from_secs(total)
}

fn run(depts: Vec<DeptSpec>, agents: Vec<AgentSpec>, ops: Vec<Op>) {
    let directory = build(&depts, &agents);
    let t0 = Instant::now();
    let mut now = t0;
    let mut missed = MissedCalls::new();
    let mut ring = Ring::start(directory.clone(), 1, now, monday_noon());
    let mut model = Model {
        states: directory.agents().map(|a| (a.id, a.state)).collect(),
        directory: directory.clone(),
        live: BTreeSet::new(),
        rung: Vec::new(),
        entered: Vec::new(),
        connects: 0,
        finished: None,
        last: None,
    };
    let mut jumped = false;
    let check = |ring: &Ring, model: &Model| {
        let ringing: BTreeSet<Id> = ring.ringing_agents().into_iter().collect();
        assert_eq!(ringing, model.live, "the ring and the driver disagree");
        assert_eq!(ring.is_finished(), model.finished.is_some());
        assert_eq!(ring.next_deadline().is_none(), ring.is_finished());
        if !ring.is_finished() {
            assert!(!model.live.is_empty(), "waiting with nothing ringing");
        }
    };
    model.apply(ring.drain(&mut missed), now);
    check(&ring, &model);
    for op in ops {
        match op {
            Op::Wait(ms) => {
                now += Duration::from_millis(ms);
                if let Some(d) = ring.next_deadline() {
                    now = now.min(d);
                }
                ring.tick(now);
            }
            Op::Jump(ms) => {
                now += Duration::from_millis(ms);
                jumped |= ring.next_deadline().is_some_and(|d| d < now);
            }
            Op::Ringing(w) => ring.agent_ringing(model.pick(w), now),
            Op::Answer(w) => {
                let a = model.pick(w);
                settle(&mut ring, &mut model, &mut missed, a, now);
                let wins = model.live.contains(&a) && ring.next_deadline().is_some_and(|d| now < d);
                ring.agent_answered(a, now);
                let out = ring.drain(&mut missed);
                let connect = Output::Connect {
                    agent: a,
                    department: ring.department(),
                };
                assert_eq!(out.contains(&connect), wins, "{out:?}");
                assert_eq!(out.contains(&Output::HangUpLateAnswer(a)), !wins, "{out:?}");
                model.apply(out, now);
            }
            Op::AnswerTwo(w1, w2) => {
                let (a, b) = (model.pick(w1), model.pick(w2));
                ring.agent_answered(a, now);
                ring.agent_answered(b, now);
                let out = ring.drain(&mut missed);
                let connects = out
                    .iter()
                    .filter(|o| matches!(o, Output::Connect { .. }))
                    .count();
                let late = out
                    .iter()
                    .filter(|o| matches!(o, Output::HangUpLateAnswer(_)))
                    .count();
                assert_eq!(connects + late, 2, "each answer connects or is hung up");
                model.apply(out, now);
            }
            Op::Fail(w, reason) => {
                let a = model.pick(w);
                settle(&mut ring, &mut model, &mut missed, a, now);
                // A live fork whose timer has not fired fails now (a failure
                // at or after the deadline comes after the timer's CANCEL).
                let fails =
                    model.live.contains(&a) && ring.next_deadline().is_some_and(|d| now < d);
                ring.agent_failed(a, reason, now);
                if fails {
                    model.live.remove(&a);
                }
                let out = ring.drain(&mut missed);
                if fails {
                    assert!(!out.contains(&Output::CancelAgents(vec![a])));
                }
                model.apply(out, now);
            }
            Op::Change(w, s) => {
                let a = model.pick(w);
                // The ring fires the timers due at `now` before it takes the
                // change (so it may ring `a` while `a` is still available);
                // the model sees those outputs under the old state first.
                ring.tick(now);
                model.apply(ring.drain(&mut missed), now);
                ring.agent_changed(a, s, now);
                model.states.insert(a, s);
            }
            Op::HangUp => {
                let was = ring.is_finished();
                ring.caller_hung_up(now);
                let out = ring.drain(&mut missed);
                if !was {
                    assert!(matches!(
                        out.last(),
                        Some(Output::Finished(Outcome::Abandoned { .. }))
                    ));
                }
                model.apply(out, now);
            }
        }
        let out = ring.drain(&mut missed);
        model.apply(out, now);
        check(&ring, &model);
    }
    // Nobody does anything any more: the timers alone end the ring.
    let mut steps = 0;
    while let Some(d) = ring.next_deadline() {
        now = now.max(d);
        ring.tick(now);
        model.apply(ring.drain(&mut missed), now);
        check(&ring, &model);
        steps += 1;
        assert!(steps <= agents.len() + depts.len() + 1, "does not end");
    }
    let (outcome, at) = model.finished.clone().expect("finished");
    assert!(model.live.is_empty());
    assert!(model.entered.len() <= depts.len());
    if !jumped {
        assert!(
            at - t0 <= bound(&directory, agents.len()),
            "took {:?}",
            at - t0
        );
    }
    if let Outcome::Answered { agent, .. } = outcome {
        assert_eq!(
            missed_counts(&missed, agent),
            0,
            "an answer resets the streak"
        );
    }
}

/// A driver only hears from forks it started: before an input about an
/// agent not rung yet, the timers due fire (they may ring it now).
fn settle(ring: &mut Ring, model: &mut Model, missed: &mut MissedCalls, agent: Id, now: Instant) {
    if !model.rung.contains(&agent) {
        ring.tick(now);
        model.apply(ring.drain(missed), now);
    }
}

fn missed_counts(missed: &MissedCalls, agent: Id) -> u32 {
    (1..=4).map(|d| missed.count(agent, d)).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn ring_invariants_hold_for_any_interleaving(
        depts in proptest::collection::vec(dept_spec(), 1..5),
        agents in proptest::collection::vec(agent_spec(), 0..7),
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        run(depts, agents, ops);
    }
}
