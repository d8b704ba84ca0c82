//! One test per rule and race of SPEC §5 "Inbound to a department", in
//! simulated time.

use std::time::{Duration, Instant};

use chrono::NaiveDate;

use super::*;
use crate::domain::{
    AfterHours, Holiday, Membership, Period, RingTarget, TimeRange, Timestamp, Weekday,
};

/// Monday 2026-11-23 12:00 in São Paulo.
pub(super) fn monday_noon() -> Timestamp {
    "2026-11-23T15:00:00Z".parse().unwrap()
}

pub(super) fn dept(id: Id) -> Department {
    crate::domain::fixtures::department(id)
}

fn sequential(id: Id) -> Department {
    Department {
        ring_strategy: RingStrategy::Overflow,
        ..dept(id)
    }
}

pub(super) use crate::domain::fixtures::member;

/// An available agent of `departments`, idle since `idle` minutes after
/// midnight (`None`: never had a call).
pub(super) fn agent(id: Id, departments: &[Id], idle: Option<i64>) -> AgentEntry {
    AgentEntry {
        id,
        active: true,
        state: AgentState::Available,
        idle_since: idle
            .map(|m| monday_noon() - chrono::Duration::hours(12) + chrono::Duration::minutes(m)),
        memberships: departments.iter().map(|d| member(*d)).collect(),
    }
}

fn dir(departments: Vec<Department>, agents: Vec<AgentEntry>) -> Directory {
    Directory::new(departments, [], [], agents)
}

/// A ring and the clock it is driven by.
struct Sim {
    ring: Ring,
    missed: MissedCalls,
    t0: Instant,
}

impl Sim {
    fn new(directory: Directory, department: Id) -> Self {
        Self::with(directory, department, MissedCalls::new())
    }

    fn with(directory: Directory, department: Id, missed: MissedCalls) -> Self {
        Self::at_wall(directory, department, missed, monday_noon())
    }

    fn at_wall(directory: Directory, department: Id, missed: MissedCalls, wall: Timestamp) -> Self {
        let t0 = Instant::now();
        Sim {
            ring: Ring::start(directory, department, t0, wall),
            missed,
            t0,
        }
    }

    fn t(&self, s: u64) -> Instant {
        self.t0 + Duration::from_secs(s)
    }

    fn ms(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn out(&mut self) -> Vec<Output> {
        self.ring.drain(&mut self.missed)
    }

    fn tick(&mut self, s: u64) -> Vec<Output> {
        self.ring.tick(self.t(s));
        self.out()
    }

    fn answer(&mut self, agent: Id, s: u64) -> Vec<Output> {
        self.ring.agent_answered(agent, self.t(s));
        self.out()
    }

    fn ringing(&mut self, agents: &[Id], s: u64) {
        for a in agents {
            self.ring.agent_ringing(*a, self.t(s));
        }
    }

    fn fail(&mut self, agent: Id, reason: FailReason, s: u64) -> Vec<Output> {
        self.ring.agent_failed(agent, reason, self.t(s));
        self.out()
    }

    fn change(&mut self, agent: Id, state: AgentState, s: u64) -> Vec<Output> {
        self.ring.agent_changed(agent, state, self.t(s));
        self.out()
    }
}

fn entered(department: Id, via: Entry) -> Output {
    Output::EnteredDepartment { department, via }
}

fn rings(department: Id, agents: &[Id]) -> Output {
    Output::RingAgents {
        department,
        agents: agents.to_vec(),
    }
}

fn cancel(agents: &[Id]) -> Output {
    Output::CancelAgents(agents.to_vec())
}

fn finished(o: Outcome) -> Output {
    Output::Finished(o)
}

// ---- simultaneous -------------------------------------------------------

#[test]
fn simultaneous_rings_every_available_agent_at_once() {
    let d = dir(
        vec![dept(1)],
        vec![
            agent(10, &[1], Some(5)),
            agent(11, &[1], None),
            agent(12, &[1], Some(1)),
        ],
    );
    let mut sim = Sim::new(d, 1);
    assert_eq!(
        sim.out(),
        [entered(1, Entry::Called), rings(1, &[11, 12, 10])]
    );
    assert_eq!(sim.ring.next_deadline(), Some(sim.t(30)));
    assert_eq!(sim.ring.ringing_agents(), [10, 11, 12]);
    assert!(sim.tick(29).is_empty(), "nothing before ring_timeout_s");
}

#[test]
fn simultaneous_first_answer_wins_and_others_are_cancelled() {
    let d = dir(
        vec![dept(1)],
        vec![
            agent(10, &[1], None),
            agent(11, &[1], None),
            agent(12, &[1], None),
        ],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    sim.ringing(&[10, 11, 12], 1);
    assert_eq!(
        sim.answer(11, 7),
        [
            Output::Connect {
                agent: 11,
                department: 1
            },
            cancel(&[10, 12]),
            finished(Outcome::Answered {
                agent: 11,
                department: 1
            }),
        ]
    );
    assert_eq!(sim.ring.next_deadline(), None);
    assert!(sim.ring.ringing_agents().is_empty());
    // The cancelled forks answer 487: nothing more happens.
    assert!(sim.fail(10, FailReason::Unreachable, 8).is_empty());
    assert!(sim.tick(100).is_empty());
}

#[test]
fn simultaneous_timeout_goes_to_overflow_department() {
    let mut a = dept(1);
    a.overflow_department_id = Some(2);
    let d = dir(
        vec![a, dept(2)],
        vec![agent(10, &[1], None), agent(20, &[2], None)],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    sim.ringing(&[10], 2);
    assert_eq!(
        sim.tick(30),
        [
            cancel(&[10]),
            Output::RangOut {
                agent: 10,
                department: 1
            },
            entered(2, Entry::Overflow { from: 1 }),
            rings(2, &[20]),
        ]
    );
    assert_eq!(sim.ring.department(), 2);
    assert_eq!(sim.ring.next_deadline(), Some(sim.t(60)));
}

#[test]
fn simultaneous_timeout_without_overflow_ends_no_answer() {
    let d = dir(
        vec![dept(1)],
        vec![agent(10, &[1], None), agent(11, &[1], None)],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    sim.ringing(&[11], 3);
    assert_eq!(
        sim.tick(31),
        [
            cancel(&[10, 11]),
            Output::RangOut {
                agent: 11,
                department: 1
            },
            finished(Outcome::NoAnswer { department: 1 }),
        ]
    );
    assert_eq!(
        sim.ring.outcome().and_then(Outcome::close_reason),
        Some(crate::domain::CloseReason::NoAnswer)
    );
}

#[test]
fn simultaneous_every_fork_failing_moves_on_at_once() {
    let mut a = dept(1);
    a.overflow_department_id = Some(2);
    let d = dir(
        vec![a, dept(2)],
        vec![
            agent(10, &[1], None),
            agent(11, &[1], None),
            agent(20, &[2], None),
        ],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    assert!(sim.fail(10, FailReason::Busy, 1).is_empty());
    assert_eq!(
        sim.fail(11, FailReason::Declined, 2),
        [entered(2, Entry::Overflow { from: 1 }), rings(2, &[20])]
    );
    assert_eq!(sim.ring.next_deadline(), Some(sim.t(32)));
}

#[test]
fn ring_count_takes_the_longest_idle() {
    for strategy in [RingStrategy::Simultaneous, RingStrategy::Overflow] {
        let mut a = dept(1);
        a.ring_strategy = strategy;
        a.ring_target = RingTarget::Count;
        a.ring_count = Some(2);
        let d = dir(
            vec![a],
            vec![
                agent(10, &[1], Some(30)),
                agent(11, &[1], Some(10)),
                agent(12, &[1], Some(20)),
                agent(13, &[1], Some(5)),
            ],
        );
        let mut sim = Sim::new(d, 1);
        let first = sim.out();
        match strategy {
            RingStrategy::Simultaneous => {
                assert_eq!(first[1], rings(1, &[13, 11]));
                assert_eq!(
                    sim.tick(30).last(),
                    Some(&finished(Outcome::NoAnswer { department: 1 }))
                );
            }
            RingStrategy::Overflow => {
                assert_eq!(first[1], rings(1, &[13]));
                assert_eq!(sim.tick(15), [cancel(&[13]), rings(1, &[11])]);
                assert_eq!(
                    sim.tick(30),
                    [cancel(&[11]), finished(Outcome::NoAnswer { department: 1 })]
                );
            }
        }
    }
}

// ---- overflow (transbordo) ---------------------------------------------

#[test]
fn overflow_rings_longest_idle_first_each_for_agent_ring_timeout() {
    let mut a = sequential(1);
    a.agent_ring_timeout_s = 10;
    a.ring_timeout_s = 12; // not used by this strategy
    let d = dir(
        vec![a],
        vec![
            agent(10, &[1], Some(50)),
            agent(11, &[1], None),
            agent(12, &[1], Some(40)),
        ],
    );
    let mut sim = Sim::new(d, 1);
    assert_eq!(sim.out(), [entered(1, Entry::Called), rings(1, &[11])]);
    assert_eq!(sim.ring.next_deadline(), Some(sim.t(10)));
    assert!(sim.tick(9).is_empty());
    sim.ringing(&[11], 1);
    assert_eq!(
        sim.tick(10),
        [
            cancel(&[11]),
            Output::RangOut {
                agent: 11,
                department: 1
            },
            rings(1, &[12]),
        ]
    );
    assert_eq!(sim.ring.next_deadline(), Some(sim.t(20)));
    assert_eq!(sim.tick(20), [cancel(&[12]), rings(1, &[10])]);
    assert_eq!(
        sim.answer(10, 25),
        [
            Output::Connect {
                agent: 10,
                department: 1
            },
            finished(Outcome::Answered {
                agent: 10,
                department: 1
            }),
        ]
    );
}

#[test]
fn overflow_failed_agent_moves_to_the_next_at_once() {
    let d = dir(
        vec![sequential(1)],
        vec![
            agent(10, &[1], None),
            agent(11, &[1], Some(1)),
            agent(12, &[1], Some(2)),
        ],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    assert_eq!(sim.fail(10, FailReason::Busy, 3), [rings(1, &[11])]);
    assert_eq!(sim.ring.next_deadline(), Some(sim.t(18)));
    assert_eq!(sim.fail(11, FailReason::Declined, 4), [rings(1, &[12])]);
    assert_eq!(
        sim.fail(12, FailReason::Unreachable, 5),
        [finished(Outcome::NoAnswer { department: 1 })]
    );
}

#[test]
fn overflow_after_the_last_agent_goes_to_the_overflow_department() {
    let mut a = sequential(1);
    a.overflow_department_id = Some(2);
    let d = dir(
        vec![a, dept(2)],
        vec![
            agent(10, &[1], None),
            agent(11, &[1], Some(0)),
            agent(20, &[2], None),
        ],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    assert_eq!(sim.tick(15), [cancel(&[10]), rings(1, &[11])]);
    assert_eq!(
        sim.tick(30),
        [
            cancel(&[11]),
            entered(2, Entry::Overflow { from: 1 }),
            rings(2, &[20]),
        ]
    );
    assert_eq!(sim.ring.next_deadline(), Some(sim.t(60)));
}

#[test]
fn overflow_skips_agents_who_became_unavailable_before_their_turn() {
    let d = dir(
        vec![sequential(1)],
        vec![
            agent(10, &[1], None),
            agent(11, &[1], Some(1)),
            agent(12, &[1], Some(2)),
        ],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    assert!(sim.change(11, AgentState::Paused, 2).is_empty());
    assert_eq!(sim.tick(15), [cancel(&[10]), rings(1, &[12])]);
}

#[test]
fn a_late_tick_starts_the_next_agent_from_when_it_ran() {
    let d = dir(
        vec![sequential(1)],
        vec![agent(10, &[1], None), agent(11, &[1], Some(1))],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    assert_eq!(sim.tick(40), [cancel(&[10]), rings(1, &[11])]);
    assert_eq!(sim.ring.next_deadline(), Some(sim.t(55)));
}

// ---- ring target none, nobody available, overflow chains ---------------

#[test]
fn ring_target_none_goes_to_overflow_department() {
    let mut a = dept(1);
    a.ring_target = RingTarget::None;
    a.overflow_department_id = Some(2);
    let d = dir(
        vec![a, dept(2)],
        vec![agent(10, &[1, 2], None), agent(20, &[2], Some(1))],
    );
    let mut sim = Sim::new(d, 1);
    assert_eq!(
        sim.out(),
        [
            entered(1, Entry::Called),
            entered(2, Entry::Overflow { from: 1 }),
            rings(2, &[10, 20]),
        ]
    );
}

#[test]
fn ring_target_none_without_overflow_is_no_answer() {
    let mut a = dept(1);
    a.ring_target = RingTarget::None;
    let mut sim = Sim::new(dir(vec![a], vec![agent(10, &[1], None)]), 1);
    assert_eq!(
        sim.out(),
        [
            entered(1, Entry::Called),
            finished(Outcome::NoAnswer { department: 1 })
        ]
    );
    assert!(sim.ring.is_finished());
    assert_eq!(sim.ring.next_deadline(), None);
}

#[test]
fn nobody_available_overflows_at_once() {
    let mut a = sequential(1);
    a.overflow_department_id = Some(2);
    let mut paused = agent(10, &[1], None);
    paused.state = AgentState::Paused;
    let d = dir(vec![a, dept(2)], vec![paused, agent(20, &[2], None)]);
    let mut sim = Sim::new(d, 1);
    assert_eq!(
        sim.out(),
        [
            entered(1, Entry::Called),
            entered(2, Entry::Overflow { from: 1 }),
            rings(2, &[20]),
        ]
    );
}

#[test]
fn inactive_department_overflows_at_once() {
    let mut a = dept(1);
    a.active = false;
    a.overflow_department_id = Some(2);
    let d = dir(vec![a, dept(2)], vec![agent(10, &[1, 2], None)]);
    let mut sim = Sim::new(d, 1);
    assert_eq!(
        sim.out(),
        [
            entered(1, Entry::Called),
            entered(2, Entry::Overflow { from: 1 }),
            rings(2, &[10]),
        ]
    );
}

#[test]
fn overflow_chain_ends_in_no_answer() {
    let mut a = dept(1);
    a.overflow_department_id = Some(2);
    let mut b = sequential(2);
    b.overflow_department_id = Some(3);
    let c = dept(3); // nobody in it, no overflow
    let d = dir(
        vec![a, b, c],
        vec![agent(10, &[1], None), agent(20, &[2], None)],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    assert_eq!(
        sim.tick(30),
        [
            cancel(&[10]),
            entered(2, Entry::Overflow { from: 1 }),
            rings(2, &[20])
        ]
    );
    assert_eq!(
        sim.tick(45),
        [
            cancel(&[20]),
            entered(3, Entry::Overflow { from: 2 }),
            finished(Outcome::NoAnswer { department: 3 }),
        ]
    );
}

#[test]
fn overflow_loop_is_cut() {
    // 1 → 2 → 1, nobody anywhere.
    let mut a = dept(1);
    a.overflow_department_id = Some(2);
    let mut b = dept(2);
    b.overflow_department_id = Some(1);
    let mut sim = Sim::new(dir(vec![a.clone(), b.clone()], vec![]), 1);
    assert_eq!(
        sim.out(),
        [
            entered(1, Entry::Called),
            entered(2, Entry::Overflow { from: 1 }),
            Output::LoopCut { from: 2, to: 1 },
            finished(Outcome::NoAnswer { department: 2 }),
        ]
    );
    // With agents: each department rings once, then the loop is cut.
    let d = dir(
        vec![a, b],
        vec![agent(10, &[1], None), agent(20, &[2], None)],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    sim.tick(30);
    assert_eq!(
        sim.tick(60),
        [
            cancel(&[20]),
            Output::LoopCut { from: 2, to: 1 },
            finished(Outcome::NoAnswer { department: 2 }),
        ]
    );
    // A department overflowing to itself.
    let mut selfish = dept(5);
    selfish.overflow_department_id = Some(5);
    let mut sim = Sim::new(dir(vec![selfish], vec![]), 5);
    assert_eq!(
        sim.out()[1..],
        [
            Output::LoopCut { from: 5, to: 5 },
            finished(Outcome::NoAnswer { department: 5 })
        ]
    );
}

#[test]
fn missing_department_ends_the_ring() {
    let mut sim = Sim::new(dir(vec![], vec![]), 7);
    assert_eq!(sim.out(), [finished(Outcome::NoAnswer { department: 7 })]);
    let mut a = dept(1);
    a.overflow_department_id = Some(99);
    let mut sim = Sim::new(dir(vec![a], vec![]), 1);
    assert_eq!(
        sim.out(),
        [
            entered(1, Entry::Called),
            finished(Outcome::NoAnswer { department: 1 })
        ]
    );
}

#[test]
fn an_agent_is_rung_at_most_once_per_call() {
    let mut a = dept(1);
    a.overflow_department_id = Some(2);
    let d = dir(
        vec![a, dept(2)],
        vec![agent(10, &[1, 2], None), agent(20, &[2], None)],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    assert_eq!(
        sim.tick(30),
        [
            cancel(&[10]),
            entered(2, Entry::Overflow { from: 1 }),
            rings(2, &[20])
        ]
    );
    // The first fork's 200 arriving now is late even though 10 belongs to
    // department 2 too.
    assert_eq!(sim.answer(10, 31), [Output::HangUpLateAnswer(10)]);
}

// ---- who is available --------------------------------------------------

#[test]
fn paused_busy_offline_inactive_and_non_receiving_agents_are_skipped() {
    let mut agents = vec![agent(1, &[1], None)];
    for (id, state) in [
        (2, AgentState::Paused),
        (3, AgentState::Busy),
        (4, AgentState::Offline),
    ] {
        let mut a = agent(id, &[1], None);
        a.state = state;
        agents.push(a);
    }
    let mut inactive = agent(5, &[1], None);
    inactive.active = false;
    let mut not_receiving = agent(6, &[1], None);
    not_receiving.memberships[0].receives_calls = false;
    not_receiving.memberships[0].responsible = true;
    agents.extend([inactive, not_receiving, agent(7, &[2], None)]);
    let mut sim = Sim::new(dir(vec![dept(1), dept(2)], agents), 1);
    assert_eq!(sim.out()[1], rings(1, &[1]));
}

/// Every combination of state, activity and membership for three agents
/// (13 824 directories, both strategies): exactly the available ones ring,
/// longest idle first.
#[test]
fn availability_is_exhaustive() {
    let states = [
        AgentState::Available,
        AgentState::Paused,
        AgentState::Offline,
        AgentState::Busy,
    ];
    // (state, active, membership: 0 none, 1 receives, 2 not receiving)
    let mut kinds = Vec::new();
    for s in states {
        for active in [true, false] {
            for m in 0..3 {
                kinds.push((s, active, m));
            }
        }
    }
    let mut cases = 0;
    for k1 in &kinds {
        for k2 in &kinds {
            for k3 in &kinds {
                for strategy in [RingStrategy::Simultaneous, RingStrategy::Overflow] {
                    let agents: Vec<AgentEntry> = [k1, k2, k3]
                        .iter()
                        .enumerate()
                        .map(|(i, (s, active, m))| AgentEntry {
                            id: i as Id + 1,
                            active: *active,
                            state: *s,
                            idle_since: Some(monday_noon() - chrono::Duration::minutes(i as i64)),
                            memberships: match m {
                                0 => vec![],
                                1 => vec![member(1)],
                                _ => vec![Membership {
                                    receives_calls: false,
                                    ..member(1)
                                }],
                            },
                        })
                        .collect();
                    let mut expected: Vec<Id> = agents
                        .iter()
                        .filter(|a| {
                            a.active
                                && a.state == AgentState::Available
                                && a.memberships.first().is_some_and(|m| m.receives_calls)
                        })
                        .map(|a| a.id)
                        .collect();
                    expected.reverse(); // agent 3 idle the longest
                    let d = Department {
                        ring_strategy: strategy,
                        ..dept(1)
                    };
                    let mut sim = Sim::new(dir(vec![d], agents), 1);
                    let out = sim.out();
                    match (expected.is_empty(), strategy) {
                        (true, _) => {
                            assert_eq!(out[1], finished(Outcome::NoAnswer { department: 1 }))
                        }
                        (false, RingStrategy::Simultaneous) => {
                            assert_eq!(out[1], rings(1, &expected))
                        }
                        (false, RingStrategy::Overflow) => {
                            let mut rung = Vec::new();
                            for o in out
                                .into_iter()
                                .chain((1..=3).flat_map(|i| sim.tick(15 * i)))
                            {
                                if let Output::RingAgents { agents, .. } = o {
                                    rung.extend(agents);
                                }
                            }
                            assert_eq!(rung, expected);
                        }
                    }
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 24 * 24 * 24 * 2);
}

// ---- races --------------------------------------------------------------

#[test]
fn answer_after_timeout_is_hung_up() {
    // Simultaneous: an answer at the very deadline, before any tick, loses.
    let d = dir(vec![dept(1)], vec![agent(10, &[1], None)]);
    let mut sim = Sim::new(d, 1);
    sim.out();
    sim.ringing(&[10], 1);
    assert_eq!(
        sim.answer(10, 30),
        [
            cancel(&[10]),
            Output::RangOut {
                agent: 10,
                department: 1
            },
            finished(Outcome::NoAnswer { department: 1 }),
            Output::HangUpLateAnswer(10),
        ]
    );
    // Sequential: the first agent answering after its turn, while the
    // second rings.
    let d = dir(
        vec![sequential(1)],
        vec![agent(10, &[1], None), agent(11, &[1], Some(0))],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    assert_eq!(sim.tick(15), [cancel(&[10]), rings(1, &[11])]);
    assert_eq!(sim.answer(10, 16), [Output::HangUpLateAnswer(10)]);
    assert_eq!(sim.ring.ringing_agents(), [11]);
}

/// Every answer time from 0 to 40 s in 250 ms steps, both strategies: the
/// answer connects exactly when it comes before the agent's deadline.
#[test]
fn answer_connects_exactly_before_the_deadline() {
    for strategy in [RingStrategy::Simultaneous, RingStrategy::Overflow] {
        for step in 0..=160u64 {
            let at = step * 250;
            let d = Department {
                ring_strategy: strategy,
                ..dept(1)
            };
            let mut sim = Sim::new(dir(vec![d], vec![agent(10, &[1], None)]), 1);
            sim.out();
            sim.ring.agent_answered(10, sim.ms(at));
            let out = sim.out();
            let deadline = match strategy {
                RingStrategy::Simultaneous => 30_000,
                RingStrategy::Overflow => 15_000,
            };
            let connected = out.iter().any(|o| matches!(o, Output::Connect { .. }));
            assert_eq!(connected, at < deadline, "{strategy:?} at {at} ms: {out:?}");
            assert_eq!(out.contains(&Output::HangUpLateAnswer(10)), at >= deadline);
            assert!(sim.ring.is_finished());
        }
    }
}

#[test]
fn answer_during_cancel_is_hung_up() {
    let d = dir(
        vec![dept(1)],
        vec![agent(10, &[1], None), agent(11, &[1], None)],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    sim.ringing(&[10, 11], 1);
    // 10 is paused: its fork is CANCELled, but its 200 crosses the CANCEL.
    assert_eq!(sim.change(10, AgentState::Paused, 5), [cancel(&[10])]);
    assert_eq!(sim.answer(10, 6), [Output::HangUpLateAnswer(10)]);
    // 11 still rings and can answer.
    assert_eq!(
        sim.answer(11, 7)[0],
        Output::Connect {
            agent: 11,
            department: 1
        }
    );
}

#[test]
fn caller_hangs_up_while_ringing_cancels_every_fork_and_abandons() {
    for strategy in [RingStrategy::Simultaneous, RingStrategy::Overflow] {
        let d = Department {
            ring_strategy: strategy,
            ..dept(1)
        };
        let mut sim = Sim::new(
            dir(vec![d], vec![agent(10, &[1], None), agent(11, &[1], None)]),
            1,
        );
        sim.out();
        sim.ringing(&[10, 11], 1);
        sim.ring.caller_hung_up(sim.t(4));
        let live: &[Id] = match strategy {
            RingStrategy::Simultaneous => &[10, 11],
            RingStrategy::Overflow => &[10],
        };
        assert_eq!(
            sim.out(),
            [cancel(live), finished(Outcome::Abandoned { department: 1 })]
        );
        assert_eq!(
            sim.ring.outcome().and_then(Outcome::close_reason),
            Some(crate::domain::CloseReason::Abandoned)
        );
        // No ring-out was counted, nothing more happens, a 200 crossing the
        // CANCEL is hung up.
        assert!(sim.tick(100).is_empty());
        assert_eq!(sim.answer(10, 5), [Output::HangUpLateAnswer(10)]);
    }
}

#[test]
fn caller_hanging_up_at_the_deadline_rings_nobody_new() {
    let mut a = dept(1);
    a.overflow_department_id = Some(2);
    let d = dir(
        vec![a, dept(2)],
        vec![agent(10, &[1], None), agent(20, &[2], None)],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    sim.ring.caller_hung_up(sim.t(30));
    assert_eq!(
        sim.out(),
        [
            cancel(&[10]),
            finished(Outcome::Abandoned { department: 1 })
        ]
    );
}

#[test]
fn caller_hanging_up_after_the_answer_is_not_the_ring_s_business() {
    let d = dir(vec![dept(1)], vec![agent(10, &[1], None)]);
    let mut sim = Sim::new(d, 1);
    sim.out();
    sim.answer(10, 2);
    sim.ring.caller_hung_up(sim.t(3));
    assert!(sim.out().is_empty());
    assert_eq!(
        sim.ring.outcome(),
        Some(&Outcome::Answered {
            agent: 10,
            department: 1
        })
    );
}

#[test]
fn two_agents_answer_at_once_second_is_hung_up() {
    let d = dir(
        vec![dept(1)],
        vec![
            agent(10, &[1], None),
            agent(11, &[1], None),
            agent(12, &[1], None),
        ],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    let at = sim.ms(5_000);
    sim.ring.agent_answered(12, at);
    sim.ring.agent_answered(10, at);
    assert_eq!(
        sim.out(),
        [
            Output::Connect {
                agent: 12,
                department: 1
            },
            cancel(&[10, 11]),
            finished(Outcome::Answered {
                agent: 12,
                department: 1
            }),
            Output::HangUpLateAnswer(10),
        ]
    );
    // A duplicate 200 (retransmission) of the winner is not a second connect.
    sim.ring.agent_answered(12, at);
    assert_eq!(sim.out(), [Output::HangUpLateAnswer(12)]);
}

#[test]
fn an_answer_from_an_agent_never_rung_is_hung_up() {
    let d = dir(vec![dept(1)], vec![agent(10, &[1], None)]);
    let mut sim = Sim::new(d, 1);
    sim.out();
    assert_eq!(sim.answer(99, 1), [Output::HangUpLateAnswer(99)]);
    assert_eq!(sim.ring.ringing_agents(), [10]);
}

#[test]
fn agent_paused_while_ringing_is_cancelled_and_overflow_moves_on() {
    // Sequential: the next agent rings at once, with a fresh timeout.
    let d = dir(
        vec![sequential(1)],
        vec![agent(10, &[1], None), agent(11, &[1], Some(0))],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    sim.ringing(&[10], 1);
    assert_eq!(
        sim.change(10, AgentState::Paused, 4),
        [cancel(&[10]), rings(1, &[11])]
    );
    assert_eq!(sim.ring.next_deadline(), Some(sim.t(19)));
    // Simultaneous: the last fork going away overflows at once; busy and
    // offline agents the same.
    for state in [AgentState::Paused, AgentState::Busy, AgentState::Offline] {
        let mut a = dept(1);
        a.overflow_department_id = Some(2);
        let d = dir(
            vec![a, dept(2)],
            vec![
                agent(10, &[1], None),
                agent(11, &[1], None),
                agent(20, &[2], None),
            ],
        );
        let mut sim = Sim::new(d, 1);
        sim.out();
        assert_eq!(sim.change(10, state, 2), [cancel(&[10])]);
        assert_eq!(
            sim.change(11, state, 3),
            [
                cancel(&[11]),
                entered(2, Entry::Overflow { from: 1 }),
                rings(2, &[20])
            ]
        );
    }
}

#[test]
fn agent_becoming_available_mid_ring_waits_for_the_next_call() {
    let mut paused = agent(11, &[1], None);
    paused.state = AgentState::Paused;
    let d = dir(vec![dept(1)], vec![agent(10, &[1], None), paused]);
    let mut sim = Sim::new(d, 1);
    sim.out();
    assert!(sim.change(11, AgentState::Available, 2).is_empty());
    assert_eq!(sim.ring.ringing_agents(), [10]);
    assert_eq!(
        sim.ring.directory().agent(11).map(|a| a.state),
        Some(AgentState::Available)
    );
}

// ---- auto pause ---------------------------------------------------------

fn missed_dept(n: u32) -> Department {
    let mut a = dept(1);
    a.auto_pause_after_missed = Some(n);
    a
}

/// One call to department 1 (agents 10 and 11) that rings out, with the
/// agents in `ringing` confirmed ringing; returns the outputs.
fn ring_out_call(missed: MissedCalls, ringing: &[Id]) -> (Vec<Output>, MissedCalls) {
    let d = dir(
        vec![missed_dept(3)],
        vec![agent(10, &[1], None), agent(11, &[1], None)],
    );
    let mut sim = Sim::with(d, 1, missed);
    sim.out();
    sim.ringing(ringing, 1);
    let out = sim.tick(30);
    (out, sim.missed)
}

fn pauses(out: &[Output]) -> Vec<Id> {
    out.iter()
        .filter_map(|o| match o {
            Output::PauseAgent { agent, reason } => {
                assert_eq!(*reason, "missed_calls");
                Some(*agent)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn auto_pause_after_n_missed_in_a_row() {
    let mut missed = MissedCalls::new();
    for call in 1..=3 {
        let (out, m) = ring_out_call(missed, &[10]);
        missed = m;
        if call < 3 {
            assert!(pauses(&out).is_empty(), "call {call}");
            assert_eq!(missed.count(10, 1), call);
        } else {
            assert_eq!(pauses(&out), [10]);
            let at = out
                .iter()
                .position(|o| matches!(o, Output::PauseAgent { .. }))
                .unwrap();
            assert_eq!(
                out[at - 1],
                Output::RangOut {
                    agent: 10,
                    department: 1
                },
                "the decision follows the ring-out"
            );
            assert_eq!(missed.count(10, 1), 0, "counting starts again");
        }
    }
    // 11 never rang (no 180): not counted.
    assert_eq!(missed.count(11, 1), 0);
}

#[test]
fn an_answer_resets_the_missed_streak() {
    let (_, mut missed) = ring_out_call(MissedCalls::new(), &[10]);
    let (_, m) = ring_out_call(missed, &[10]);
    missed = m;
    assert_eq!(missed.count(10, 1), 2);
    let d = dir(vec![missed_dept(3)], vec![agent(10, &[1], None)]);
    let mut sim = Sim::with(d, 1, missed);
    sim.out();
    sim.answer(10, 3);
    missed = sim.missed;
    assert_eq!(missed.count(10, 1), 0);
    let (out, _) = ring_out_call(missed, &[10]);
    assert!(pauses(&out).is_empty());
}

#[test]
fn declined_busy_abandoned_and_answered_elsewhere_are_not_missed() {
    let d = || {
        dir(
            vec![missed_dept(1)],
            vec![agent(10, &[1], None), agent(11, &[1], None)],
        )
    };
    // Declined and busy.
    let mut sim = Sim::new(d(), 1);
    sim.out();
    sim.ringing(&[10, 11], 1);
    sim.fail(10, FailReason::Declined, 2);
    let out = sim.fail(11, FailReason::Busy, 2);
    assert!(pauses(&out).is_empty());
    // Abandoned.
    let mut sim = Sim::new(d(), 1);
    sim.out();
    sim.ringing(&[10, 11], 1);
    sim.ring.caller_hung_up(sim.t(20));
    assert!(pauses(&sim.out()).is_empty());
    // Someone else answered.
    let mut sim = Sim::new(d(), 1);
    sim.out();
    sim.ringing(&[10, 11], 1);
    assert!(pauses(&sim.answer(11, 5)).is_empty());
}

#[test]
fn the_phone_giving_up_counts_as_a_ring_out_and_auto_pauses_in_sequence() {
    let mut a = sequential(1);
    a.auto_pause_after_missed = Some(1);
    let d = dir(
        vec![a],
        vec![agent(10, &[1], None), agent(11, &[1], Some(0))],
    );
    let mut sim = Sim::new(d, 1);
    sim.out();
    sim.ringing(&[10], 1);
    assert_eq!(
        sim.fail(10, FailReason::NoAnswer, 12),
        [
            Output::RangOut {
                agent: 10,
                department: 1
            },
            Output::PauseAgent {
                agent: 10,
                reason: MISSED_CALLS
            },
            rings(1, &[11]),
        ]
    );
    assert_eq!(
        sim.ring.directory().agent(10).map(|a| a.state),
        Some(AgentState::Paused)
    );
    sim.ringing(&[11], 13);
    let out = sim.tick(27);
    assert_eq!(pauses(&out), [11]);
    assert_eq!(
        out.last(),
        Some(&finished(Outcome::NoAnswer { department: 1 }))
    );
}

#[test]
fn missed_calls_count_per_department_and_reset_by_hand() {
    let mut m = MissedCalls::new();
    assert!(!m.missed(1, 10, None), "no threshold, no counting");
    assert_eq!(m.count(1, 10), 0);
    assert!(!m.missed(1, 10, Some(2)));
    assert!(!m.missed(1, 20, Some(2)));
    assert!(m.missed(1, 10, Some(2)));
    assert_eq!(m.count(1, 20), 1);
    m.reset(1);
    assert_eq!(m.count(1, 20), 0);
    // n = 1: every ring-out pauses.
    assert!(m.missed(2, 10, Some(1)));
    assert!(m.missed(2, 10, Some(1)));
}

// ---- after hours --------------------------------------------------------

fn weekdays_8_to_18(id: Id) -> Period {
    use Weekday::*;
    Period {
        id,
        name: "comercial".into(),
        time_zone: "America/Sao_Paulo".into(),
        ranges: [Monday, Tuesday, Wednesday, Thursday, Friday]
            .into_iter()
            .map(|weekday| TimeRange {
                weekday,
                start: "08:00".into(),
                end: "18:00".into(),
            })
            .collect(),
        created_at: Timestamp::default(),
        updated_at: Timestamp::default(),
    }
}

fn holiday(date: &str, period_id: Option<Id>) -> Holiday {
    Holiday {
        id: 1,
        date: date.parse::<NaiveDate>().unwrap(),
        name: "feriado".into(),
        period_id,
        created_at: Timestamp::default(),
        updated_at: Timestamp::default(),
    }
}

fn after_hours_call(
    after_hours: Option<AfterHours>,
    holidays: Vec<Holiday>,
    wall: &str,
) -> Vec<Output> {
    let mut a = dept(1);
    a.period_id = Some(7);
    a.after_hours = after_hours;
    let d = Directory::new(
        [a, dept(2)],
        [weekdays_8_to_18(7)],
        holidays,
        [agent(10, &[1], None), agent(20, &[2], None)],
    );
    let mut sim = Sim::at_wall(d, 1, MissedCalls::new(), wall.parse().unwrap());
    sim.out()
}

#[test]
fn after_hours_by_period_and_holiday() {
    let to_dept = Some(AfterHours {
        department_id: Some(2),
        ..Default::default()
    });
    // Open: Monday 12:00 local.
    let out = after_hours_call(to_dept.clone(), vec![], "2026-11-23T15:00:00Z");
    assert_eq!(out, [entered(1, Entry::Called), rings(1, &[10])]);
    // Closed: Monday 18:00 local → department 2.
    let closed = "2026-11-23T21:00:00Z";
    let out = after_hours_call(to_dept.clone(), vec![], closed);
    assert_eq!(
        out,
        [
            entered(1, Entry::Called),
            Output::AfterHours {
                department: 1,
                target: AfterHoursTarget::Department(2)
            },
            entered(2, Entry::AfterHours { from: 1 }),
            rings(2, &[20]),
        ]
    );
    // Holiday for every period, or for this one: closed; for another: open.
    for (h, open) in [(None, false), (Some(7), false), (Some(8), true)] {
        let out = after_hours_call(
            to_dept.clone(),
            vec![holiday("2026-11-23", h)],
            "2026-11-23T15:00:00Z",
        );
        assert_eq!(out[1] == rings(1, &[10]), open, "holiday period {h:?}");
    }
    // A number: forwarded, and the attendance is marked after_hours.
    let out = after_hours_call(
        Some(AfterHours {
            number: Some("08001234567".into()),
            ..Default::default()
        }),
        vec![],
        closed,
    );
    assert_eq!(
        out[1..],
        [
            Output::AfterHours {
                department: 1,
                target: AfterHoursTarget::Number("08001234567".into())
            },
            Output::ForwardToNumber("08001234567".into()),
            finished(Outcome::AfterHoursNumber {
                department: 1,
                number: "08001234567".into()
            }),
        ]
    );
    // Hang up, explicitly or when nothing is configured.
    for config in [
        Some(AfterHours {
            hangup: Some(true),
            ..Default::default()
        }),
        None,
    ] {
        let out = after_hours_call(config, vec![], "2026-11-22T15:00:00Z"); // Sunday
        assert_eq!(
            out[1..],
            [
                Output::AfterHours {
                    department: 1,
                    target: AfterHoursTarget::Hangup
                },
                finished(Outcome::AfterHoursHangup { department: 1 }),
            ]
        );
        assert_eq!(
            Outcome::AfterHoursHangup { department: 1 }.close_reason(),
            Some(crate::domain::CloseReason::AfterHours)
        );
    }
}

/// Every quarter hour of a week: the call rings exactly when the period is
/// open (672 cases).
#[test]
fn after_hours_follows_the_period_every_quarter_hour_of_a_week() {
    let monday: Timestamp = "2026-11-23T03:00:00Z".parse().unwrap(); // 00:00 local
    for q in 0..(7 * 24 * 4) {
        let wall = monday + chrono::Duration::minutes(15 * q);
        let out = after_hours_call(None, vec![], &wall.to_rfc3339());
        let local_hour = (q / 4) % 24;
        let weekday = q / (24 * 4);
        let open = weekday < 5 && (8..18).contains(&local_hour);
        assert_eq!(out[1] == rings(1, &[10]), open, "{wall}");
    }
}

#[test]
fn overflow_department_is_judged_by_its_hours_when_entered() {
    // Department 1 (always open) rings for 30 s from 17:59:45 local; its
    // overflow department 2 closes at 18:00 and sends calls to 3.
    let mut a = dept(1);
    a.overflow_department_id = Some(2);
    let mut b = dept(2);
    b.period_id = Some(7);
    b.after_hours = Some(AfterHours {
        department_id: Some(3),
        ..Default::default()
    });
    let d = Directory::new(
        [a, b, dept(3)],
        [weekdays_8_to_18(7)],
        [],
        [
            agent(10, &[1], None),
            agent(20, &[2], None),
            agent(30, &[3], None),
        ],
    );
    let wall: Timestamp = "2026-11-23T20:59:45Z".parse().unwrap();
    let mut sim = Sim::at_wall(d, 1, MissedCalls::new(), wall);
    sim.out();
    assert_eq!(
        sim.tick(30),
        [
            cancel(&[10]),
            entered(2, Entry::Overflow { from: 1 }),
            Output::AfterHours {
                department: 2,
                target: AfterHoursTarget::Department(3)
            },
            entered(3, Entry::AfterHours { from: 2 }),
            rings(3, &[30]),
        ]
    );
}

#[test]
fn after_hours_loop_is_cut() {
    let mut a = dept(1);
    a.period_id = Some(7);
    a.after_hours = Some(AfterHours {
        department_id: Some(2),
        ..Default::default()
    });
    let mut b = dept(2);
    b.period_id = Some(7);
    b.after_hours = Some(AfterHours {
        department_id: Some(1),
        ..Default::default()
    });
    let d = Directory::new([a, b], [weekdays_8_to_18(7)], [], []);
    let sunday: Timestamp = "2026-11-22T15:00:00Z".parse().unwrap();
    let mut sim = Sim::at_wall(d, 1, MissedCalls::new(), sunday);
    let out = sim.out();
    assert_eq!(
        out[out.len() - 2..],
        [
            Output::LoopCut { from: 2, to: 1 },
            finished(Outcome::AfterHoursHangup { department: 2 })
        ]
    );
}

// ---- small pieces -------------------------------------------------------

#[test]
fn fail_reasons_from_sip_status() {
    assert_eq!(FailReason::from_status(486), FailReason::Busy);
    assert_eq!(FailReason::from_status(600), FailReason::Busy);
    assert_eq!(FailReason::from_status(603), FailReason::Declined);
    assert_eq!(FailReason::from_status(480), FailReason::NoAnswer);
    assert_eq!(FailReason::from_status(408), FailReason::NoAnswer);
    for s in [404, 487, 500, 503] {
        assert_eq!(FailReason::from_status(s), FailReason::Unreachable);
    }
}

#[test]
fn agent_entry_from_the_api_agent() {
    use crate::domain::{Agent, Presence};
    let a = Agent {
        id: 3,
        name: "Ana".into(),
        extension_id: Some(1),
        active: true,
        departments: vec![member(1)],
        pause: None,
        presence: Presence::Available,
        busy: true,
        created_at: Timestamp::default(),
        updated_at: Timestamp::default(),
    };
    let e = AgentEntry::from_agent(&a, None);
    assert_eq!(e.state, AgentState::Busy);
    assert!(!e.can_ring_for(1));
    assert_eq!(
        AgentState::from_presence(Presence::Paused, true),
        AgentState::Paused
    );
    assert_eq!(
        AgentState::from_presence(Presence::Offline, false),
        AgentState::Offline
    );
    assert_eq!(
        AgentState::from_presence(Presence::Available, false),
        AgentState::Available
    );
}
