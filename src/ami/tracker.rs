//! Follows the calls Asterisk handles by itself, from AMI events, and says
//! what happened as [`CallDecision`] values (the caller writes the database
//! and the outbox; this file stays pure).
//!
//! A customer's call is one `Linkedid`: every leg Asterisk creates for it (a
//! ring-all fork creates one per agent) carries the Linkedid of the first
//! channel (the *root*, whose `Uniqueid == Linkedid`). So decisions are
//! keyed by Linkedid and a fork never opens a second call.
//!
//! When a call opens: as soon as the root channel is at a real extension
//! (not `s`, `h` or empty). A SIP INVITE channel is born there (`Newchannel`
//! with `Exten: 701`); an `Originate`d channel starts at `s` and opens when,
//! answered, it enters the dialplan (`Newexten Exten: 1002`). An originate
//! that is never answered therefore opens nothing: it was no call.
//!
//! When it is answered: a `DialEnd` with `DialStatus: ANSWER` dialed *from*
//! a channel of the call (the leg that rings the agent), or the root going
//! `Up` by itself after opening (an IVR `Answer()`), or a `Cdr` saying
//! `ANSWERED` if both were missed.
//!
//! When it ends: when its last known channel hangs up. Ended Linkedids are
//! remembered for a while so late events (`Cdr`, a stray `VarSet`) cannot
//! re-open them.
//!
//! A call whose other side is the bridge (`bridge_endpoints`, the rendered
//! `bridge` PJSIP endpoint) is the bridge's: it carries it and opens its own
//! SIP attendance, so this tracker never opens a second one. Both directions:
//! - calls that dial the bridge (the rendered dialplan sends department
//!   codes and some DIDs there with `Dial(PJSIP/701@bridge)`). A call not
//!   rooted on the bridge is therefore *held* once it could open, until it
//!   shows it is not going to the bridge: a leg other than the bridge is
//!   created (an agent rung), another leg answers it, or it ends; a non-root
//!   leg on a bridge endpoint makes it the bridge's and it never opens. If a
//!   call already opened (it rang an agent first) goes to the bridge before
//!   any other leg answered it, [`CallDecision::CallToBridge`] withdraws its
//!   attendance; one an agent answered stays followed (an agent's transfer
//!   to a department on the bridge). The dialplan answering a held call
//!   (`Answer()`) does not release it.
//! - calls the bridge places through Asterisk (an agent rung "through the
//!   PBX": the bridge's INVITE arrives on the `bridge` endpoint, so the root
//!   channel is `PJSIP/bridge-…` dialling `PJSIP/<extension>`): never opened.
//!
//! Transfers: once a leg answered, a later `DialEnd ANSWER` from the call to
//! another channel means a leg was sent elsewhere (an AMI `Redirect` to a
//! department code, a blind transfer) and someone else answered there:
//! [`CallDecision::CallTransferred`] names the new agent.
//!
//! After a reconnect, [`Tracker::resync`] reconciles with the
//! `CoreShowChannel` snapshot: calls that vanished end once, live calls not
//! known open once, known ones are not reported again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, SystemTime};

use super::packet::Packet;

mod handover;
pub use handover::PROTOCOL_VARIABLE;

/// Which contexts and names mean what on this PBX.
#[derive(Debug, Clone, Default)]
pub struct TrackerConfig {
    /// Contexts where calls from outside arrive (e.g. `from-bridge`,
    /// `from-trunk`): a call whose root channel is here is inbound.
    pub inbound_contexts: HashSet<String>,
    /// PJSIP endpoints that are trunks (e.g. `bridge`): a call from one is
    /// inbound whatever its context; a call answered by one is outbound.
    pub trunk_endpoints: HashSet<String>,
    /// PJSIP endpoints of the bridge itself (`bridge`): a call that dials one
    /// is the bridge's (never opened here); a call from one is followed.
    /// Empty: no call is held (every call opens as soon as it can).
    pub bridge_endpoints: HashSet<String>,
    /// PJSIP endpoint names of agents' extensions (`1001`, `1002`).
    pub known_extensions: HashSet<String>,
    /// Department PABX codes (`701`).
    pub department_codes: HashSet<String>,
    /// How many ended Linkedids to remember against late events.
    pub ended_memory: usize,
}

impl TrackerConfig {
    pub fn new() -> Self {
        TrackerConfig {
            ended_memory: 4096,
            ..TrackerConfig::default()
        }
    }

    pub fn inbound_context(mut self, ctx: &str) -> Self {
        self.inbound_contexts.insert(ctx.to_owned());
        self
    }

    pub fn trunk(mut self, endpoint: &str) -> Self {
        self.trunk_endpoints.insert(endpoint.to_owned());
        self
    }

    pub fn bridge(mut self, endpoint: &str) -> Self {
        self.bridge_endpoints.insert(endpoint.to_owned());
        self
    }

    pub fn extension(mut self, ext: &str) -> Self {
        self.known_extensions.insert(ext.to_owned());
        self
    }

    pub fn department(mut self, code: &str) -> Self {
        self.department_codes.insert(code.to_owned());
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Inbound,
    Outbound,
    Internal,
}

/// Q.850 cause as Asterisk reports it (`Cause: 16`, `Cause-txt: Normal Clearing`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HangupCause {
    pub code: u16,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallDecision {
    CallOpened {
        linkedid: String,
        /// Caller ID number of the root channel.
        caller: String,
        /// The extension dialed (an extension, a department code, a number).
        callee: String,
        direction: Direction,
        /// Set when `callee` is a configured department PABX code.
        department_code: Option<String>,
        opened_at: SystemTime,
    },
    CallAnswered {
        linkedid: String,
        /// The answering PJSIP endpoint, when it is a known extension.
        agent_extension: Option<String>,
        /// When it was answered (reported later when the call opens later).
        at: SystemTime,
    },
    RecordingAnnounced {
        linkedid: String,
        /// As Asterisk gave it (`MIXMONITOR_FILENAME`); an opaque string.
        path: String,
    },
    CallEnded {
        linkedid: String,
        /// The root channel's cause; `None` when the call vanished while we
        /// were disconnected (found by a re-sync).
        cause: Option<HangupCause>,
        ended_at: SystemTime,
        answered: bool,
        /// Which side asked to hang up first (`HangupRequest`); `None`
        /// when only the dialplan or a re-sync ended it.
        hangup_by: Option<Party>,
    },
    /// The call carries the protocol the bridge opened for it before
    /// asking Asterisk to place it (click-to-call: `Originate` with
    /// `Variable: __PBX_BRIDGE_PROTOCOL=…`): it is that attendance's, none
    /// is opened for it. Reported before the call opens (or, for a followed
    /// call, on the `Setvar` before a `Redirect`: the attendance it has).
    CallClaimed { linkedid: String, protocol: String },
    /// The call went to the bridge before any other leg answered it: the
    /// bridge has the attendance, the one opened for it here is withdrawn.
    /// Nothing else is reported for this Linkedid.
    CallToBridge { linkedid: String },
    /// The call carries `protocol` (`PBX_BRIDGE_PROTOCOL`) and went to the
    /// bridge, which continues that attendance (`X-Protocol`): it is the
    /// bridge's from now on, kept as it is (not withdrawn), and nothing
    /// else is reported for this Linkedid.
    CallHandedOver { linkedid: String, protocol: String },
    /// Answered again, by another channel, after a leg answered it: a leg of
    /// the call was sent elsewhere (an AMI `Redirect`, a blind transfer),
    /// dialled anew from `target`, and `agent_extension` answered there; it
    /// now attends the call (and the department, when `department_code`).
    CallTransferred {
        linkedid: String,
        /// The extension the redirected leg dialled from (a department code
        /// or an extension).
        target: String,
        /// Set when `target` is a configured department PABX code.
        department_code: Option<String>,
        /// The answering PJSIP endpoint, when it is a known extension
        /// (`None`: someone else, e.g. the bridge).
        agent_extension: Option<String>,
        at: SystemTime,
    },
}

/// A side of a call: the root channel (who called) or any other leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    Caller,
    Callee,
}

/// The channels of a live call, for actions on it (`Redirect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallChannels {
    /// The root channel (the one that called), when still alive.
    pub root: Option<String>,
    /// Every other live leg, sorted.
    pub others: Vec<String>,
    /// The channel of the customer: the root of a call from a trunk or an
    /// inbound context, else the first other leg that is not a known
    /// extension (the trunk leg of an outbound call), else the root.
    pub customer: Option<String>,
}

impl CallDecision {
    pub fn linkedid(&self) -> &str {
        match self {
            CallDecision::CallOpened { linkedid, .. }
            | CallDecision::CallAnswered { linkedid, .. }
            | CallDecision::RecordingAnnounced { linkedid, .. }
            | CallDecision::CallEnded { linkedid, .. }
            | CallDecision::CallToBridge { linkedid }
            | CallDecision::CallHandedOver { linkedid, .. }
            | CallDecision::CallClaimed { linkedid, .. }
            | CallDecision::CallTransferred { linkedid, .. } => linkedid,
        }
    }
}

/// What is known about one channel (a leg).
#[derive(Debug, Clone, Default)]
struct Leg {
    name: String,
    context: String,
    exten: String,
    caller_num: String,
    up: bool,
}

#[derive(Debug)]
struct Call {
    root: Option<String>,
    legs: HashMap<String, Leg>,
    opened: bool,
    /// `Some(agent)` once answered (reported when opened).
    answer: Option<Option<String>>,
    answered_at: SystemTime,
    /// The channel that answered, when a leg did (not the dialplan); the
    /// last one after a transfer.
    answered_by: Option<String>,
    answer_reported: bool,
    recordings: Vec<String>,
    recordings_reported: usize,
    root_cause: Option<HangupCause>,
    last_cause: Option<HangupCause>,
    hangup_by: Option<Party>,
    /// Could have opened since then, held until it shows it is not the
    /// bridge's call.
    held_since: Option<SystemTime>,
    /// Showed it is not going (only) to the bridge: opens when it can.
    released: bool,
    /// Dialed the bridge unanswered: the bridge's call, never (re)opened.
    to_bridge: bool,
    /// Placed by `Originate`: its root picking up is the agent taking the
    /// click-to-call, not the call being answered.
    originated: bool,
    /// Carries a protocol of the bridge (click-to-call through AMI): its
    /// legs to the bridge do not make it the bridge's call.
    claimed: bool,
    /// The protocol the call carries (Originate's variable, or `Setvar`
    /// before a `Redirect`): its legs to the bridge hand it over.
    carried: Option<String>,
}

impl Call {
    fn new() -> Self {
        Call {
            root: None,
            legs: HashMap::new(),
            opened: false,
            answer: None,
            answered_at: SystemTime::UNIX_EPOCH,
            answered_by: None,
            answer_reported: false,
            recordings: Vec::new(),
            recordings_reported: 0,
            root_cause: None,
            last_cause: None,
            hangup_by: None,
            held_since: None,
            released: false,
            to_bridge: false,
            originated: false,
            claimed: false,
            carried: None,
        }
    }
}

/// The channel fields every Asterisk channel event carries, read with an
/// optional prefix (`Dest` for the dialed side of `DialBegin`/`DialEnd`).
struct Snapshot<'a> {
    channel: &'a str,
    uniqueid: &'a str,
    linkedid: &'a str,
    context: Option<&'a str>,
    exten: Option<&'a str>,
    caller_num: Option<&'a str>,
    state: Option<&'a str>,
}

fn snapshot<'a>(ev: &'a Packet, prefix: &str) -> Option<Snapshot<'a>> {
    let get = |name: &str| -> Option<&'a str> {
        if prefix.is_empty() {
            ev.get(name)
        } else {
            ev.get(&format!("{prefix}{name}"))
        }
    };
    Some(Snapshot {
        channel: get("Channel")?,
        uniqueid: get("Uniqueid")?,
        linkedid: get("Linkedid")?,
        context: get("Context"),
        exten: get("Exten"),
        caller_num: get("CallerIDNum"),
        state: get("ChannelState"),
    })
}

/// `PJSIP/1002-00000002` → `1002` (endpoint names may contain `-`, the
/// sequence suffix is the last one). `Local/...` channels have no endpoint.
pub fn endpoint_of(channel: &str) -> Option<&str> {
    let (tech, rest) = channel.split_once('/')?;
    if !(tech.eq_ignore_ascii_case("PJSIP") || tech.eq_ignore_ascii_case("SIP")) {
        return None;
    }
    Some(rest.rsplit_once('-').map_or(rest, |(ep, _)| ep))
}

fn is_real_exten(exten: &str) -> bool {
    !(exten.is_empty() || exten == "s" || exten == "h")
}

/// `ChannelState: 6` is Up.
fn is_up(state: Option<&str>) -> bool {
    state == Some("6")
}

/// The call tracker.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    calls: HashMap<String, Call>,
    /// Uniqueid → Linkedid (Cdr events only carry the root's UniqueID).
    leg_call: HashMap<String, String>,
    ended: HashSet<String>,
    ended_order: VecDeque<String>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Tracker {
            config,
            calls: HashMap::new(),
            leg_call: HashMap::new(),
            ended: HashSet::new(),
            ended_order: VecDeque::new(),
        }
    }

    /// Calls currently followed (opened or not yet).
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// Linkedids of opened calls still alive.
    pub fn open_calls(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .calls
            .iter()
            .filter(|(_, c)| c.opened)
            .map(|(id, _)| id.as_str())
            .collect();
        v.sort_unstable();
        v
    }

    /// The live channels of the call `linkedid`, if it is followed.
    pub fn channels(&self, linkedid: &str) -> Option<CallChannels> {
        let call = self.calls.get(linkedid)?;
        let root_leg = call.root.as_ref().and_then(|r| call.legs.get(r));
        let mut others: Vec<&Leg> = call
            .legs
            .iter()
            .filter(|(u, _)| Some(*u) != call.root.as_ref())
            .map(|(_, l)| l)
            .collect();
        others.sort_by(|a, b| a.name.cmp(&b.name));
        let cfg = &self.config;
        let root_is_customer = root_leg.is_some_and(|r| {
            cfg.inbound_contexts.contains(&r.context)
                || endpoint_of(&r.name).is_some_and(|e| cfg.trunk_endpoints.contains(e))
        });
        let customer = if root_is_customer {
            root_leg.map(|r| r.name.clone())
        } else {
            others
                .iter()
                .find(|l| !endpoint_of(&l.name).is_some_and(|e| cfg.known_extensions.contains(e)))
                .map(|l| l.name.clone())
                .or_else(|| root_leg.map(|r| r.name.clone()))
        };
        Some(CallChannels {
            root: root_leg.map(|r| r.name.clone()),
            others: others.iter().map(|l| l.name.clone()).collect(),
            customer,
        })
    }

    pub fn is_department_code(&self, exten: &str) -> bool {
        self.config.department_codes.contains(exten)
    }

    /// Replaces the configuration (extensions, codes… changed in the
    /// database); calls already followed keep what they were decided with.
    pub fn set_config(&mut self, config: TrackerConfig) {
        self.config = config;
    }

    /// Feed one event; returns the decisions it caused.
    pub fn on_event(&mut self, ev: &Packet, at: SystemTime) -> Vec<CallDecision> {
        let mut out = Vec::new();
        self.on_event_into(ev, at, &mut out);
        out
    }

    /// Same as [`Tracker::on_event`], appending to `out` (no allocation per
    /// event on the hot path).
    pub fn on_event_into(&mut self, ev: &Packet, at: SystemTime, out: &mut Vec<CallDecision>) {
        let Some(name) = ev.event_name() else {
            return;
        };
        match name {
            "Newchannel" | "Newexten" | "Newstate" | "BridgeEnter" | "BridgeLeave" => {
                if let Some(s) = snapshot(ev, "") {
                    let root_came_up = name == "Newstate" && is_up(s.state);
                    self.touch(&s, at, out);
                    if root_came_up {
                        self.root_up(s.linkedid, s.uniqueid, at, out);
                    }
                }
            }
            "DialBegin" => {
                let caller = snapshot(ev, "");
                if let Some(s) = &caller {
                    self.touch(s, at, out);
                }
                if let Some(d) = snapshot(ev, "Dest") {
                    self.touch(&d, at, out);
                    // No calling channel: an `Originate` dialling its root.
                    if caller.is_none()
                        && let Some(call) = self.calls.get_mut(d.linkedid)
                    {
                        call.originated = true;
                    }
                }
            }
            "DialEnd" => self.on_dial_end(ev, at, out),
            "Hangup" => self.on_hangup(ev, at, out),
            "HangupRequest" => self.on_hangup_request(ev),
            "VarSet"
                if ev
                    .get("Variable")
                    .is_some_and(|v| v.eq_ignore_ascii_case("MIXMONITOR_FILENAME")) =>
            {
                self.on_recording(ev, at, out);
            }
            "VarSet"
                if ev
                    .get("Variable")
                    .is_some_and(handover::is_protocol_variable) =>
            {
                self.on_claim(ev, at, out);
            }
            "Cdr" => self.on_cdr(ev, at, out),
            _ => {}
        }
    }

    /// Record a leg's current snapshot, creating its call; open the call if
    /// the root is now at a real extension.
    fn touch(&mut self, s: &Snapshot<'_>, at: SystemTime, out: &mut Vec<CallDecision>) {
        if self.ended.contains(s.linkedid) {
            return;
        }
        let call = self
            .calls
            .entry(s.linkedid.to_owned())
            .or_insert_with(Call::new);
        let leg = call.legs.entry(s.uniqueid.to_owned()).or_insert_with(|| {
            self.leg_call
                .insert(s.uniqueid.to_owned(), s.linkedid.to_owned());
            Leg {
                name: s.channel.to_owned(),
                ..Leg::default()
            }
        });
        if let Some(c) = s.context {
            leg.context.clear();
            leg.context.push_str(c);
        }
        if let Some(e) = s.exten {
            leg.exten.clear();
            leg.exten.push_str(e);
        }
        if let Some(n) = s.caller_num {
            leg.caller_num.clear();
            leg.caller_num.push_str(n);
        }
        if let Some(st) = s.state {
            leg.up = is_up(Some(st));
        }
        if call.root.is_none() || s.uniqueid == s.linkedid {
            call.root = Some(s.uniqueid.to_owned());
        }
        if s.uniqueid != s.linkedid && !call.to_bridge {
            // A leg the call created: the bridge, or someone else.
            let bridge_leg =
                endpoint_of(s.channel).is_some_and(|e| self.config.bridge_endpoints.contains(e));
            if bridge_leg && handover::runs_the_handler(s) && call.carried.is_some() {
                Self::hand_over(s.linkedid, call, out);
            } else if !bridge_leg || call.claimed {
                call.released = true;
            } else if call.answered_by.is_none() {
                call.to_bridge = true;
                if call.opened {
                    call.opened = false;
                    out.push(CallDecision::CallToBridge {
                        linkedid: s.linkedid.to_owned(),
                    });
                }
            }
        }
        if !call.opened {
            let linkedid = s.linkedid.to_owned();
            self.try_open(&linkedid, at, out);
        }
    }

    fn try_open(&mut self, linkedid: &str, at: SystemTime, out: &mut Vec<CallDecision>) {
        let Some(call) = self.calls.get_mut(linkedid) else {
            return;
        };
        let Some(root) = call.root.as_ref().and_then(|r| call.legs.get(r)) else {
            return;
        };
        if call.opened || call.to_bridge || !is_real_exten(&root.exten) {
            return;
        }
        let cfg = &self.config;
        if endpoint_of(&root.name).is_some_and(|e| cfg.bridge_endpoints.contains(e)) {
            // Placed by the bridge through Asterisk: the bridge's call.
            call.to_bridge = true;
            return;
        }
        if !call.released && !cfg.bridge_endpoints.is_empty() {
            call.held_since.get_or_insert(at);
            return;
        }
        let opened_at = call.held_since.unwrap_or(at);
        let callee = root.exten.clone();
        let from_trunk = endpoint_of(&root.name).is_some_and(|e| cfg.trunk_endpoints.contains(e));
        let direction = if from_trunk || cfg.inbound_contexts.contains(&root.context) {
            Direction::Inbound
        } else if cfg.known_extensions.contains(&callee) || cfg.department_codes.contains(&callee) {
            Direction::Internal
        } else {
            Direction::Outbound
        };
        let department_code = cfg
            .department_codes
            .contains(&callee)
            .then(|| callee.clone());
        let caller = root.caller_num.clone();
        call.opened = true;
        out.push(CallDecision::CallOpened {
            linkedid: linkedid.to_owned(),
            caller,
            callee,
            direction,
            department_code,
            opened_at,
        });
        Self::flush_pending(linkedid, call, out);
    }

    /// Report what was learnt before the call opened (answer, recordings).
    fn flush_pending(linkedid: &str, call: &mut Call, out: &mut Vec<CallDecision>) {
        if !call.opened {
            return;
        }
        if let (Some(agent), false) = (&call.answer, call.answer_reported) {
            call.answer_reported = true;
            out.push(CallDecision::CallAnswered {
                linkedid: linkedid.to_owned(),
                agent_extension: agent.clone(),
                at: call.answered_at,
            });
        }
        while call.recordings_reported < call.recordings.len() {
            out.push(CallDecision::RecordingAnnounced {
                linkedid: linkedid.to_owned(),
                path: call.recordings[call.recordings_reported].clone(),
            });
            call.recordings_reported += 1;
        }
    }

    /// The call was answered by the channel `by` (a leg), or by the
    /// dialplan (`None`).
    fn answered(
        &mut self,
        linkedid: &str,
        agent: Option<String>,
        by: Option<&str>,
        at: SystemTime,
        out: &mut Vec<CallDecision>,
    ) {
        let Some(call) = self.calls.get_mut(linkedid) else {
            return;
        };
        if call.answered_by.is_none()
            && let Some(by) = by
        {
            call.answered_by = Some(by.to_owned());
        }
        if call.answer.is_some() {
            return;
        }
        call.answer = Some(agent);
        call.answered_at = at;
        if call.opened {
            Self::flush_pending(linkedid, call, out);
        } else if by.is_some() {
            // Answered by a leg (the bridge's leg made it the bridge's
            // already): a held call opens now. The dialplan answering it
            // does not say where it is going: it stays held.
            self.release(linkedid, at, out);
        }
    }

    /// A call a leg answered was answered again by `dest` (dialled from
    /// the channel at `target`): a transfer.
    fn transferred(
        &mut self,
        linkedid: &str,
        target: &str,
        dest: &str,
        at: SystemTime,
        out: &mut Vec<CallDecision>,
    ) {
        let agent_extension = self.agent_of(dest);
        let department_code = self.is_department_code(target).then(|| target.to_owned());
        let Some(call) = self.calls.get_mut(linkedid) else {
            return;
        };
        call.answered_by = Some(dest.to_owned());
        // Who hung up first is about the new agent's conversation.
        call.hangup_by = None;
        if call.opened {
            out.push(CallDecision::CallTransferred {
                linkedid: linkedid.to_owned(),
                target: target.to_owned(),
                department_code,
                agent_extension,
                at,
            });
        }
    }

    /// A held call turned out not to be the bridge's: open it (with the
    /// time it could first have opened) and report what it learnt.
    fn release(&mut self, linkedid: &str, at: SystemTime, out: &mut Vec<CallDecision>) {
        let Some(call) = self.calls.get_mut(linkedid) else {
            return;
        };
        if call.opened || call.to_bridge || call.held_since.is_none() {
            return;
        }
        call.released = true;
        self.try_open(linkedid, at, out);
    }

    fn agent_of(&self, channel: &str) -> Option<String> {
        endpoint_of(channel)
            .filter(|e| self.config.known_extensions.contains(*e))
            .map(str::to_owned)
    }

    fn root_up(
        &mut self,
        linkedid: &str,
        uniqueid: &str,
        at: SystemTime,
        out: &mut Vec<CallDecision>,
    ) {
        let is_root_of_open_call = self.calls.get(linkedid).is_some_and(|c| {
            (c.opened || c.held_since.is_some())
                && c.root.as_deref() == Some(uniqueid)
                && !c.originated
        });
        if is_root_of_open_call {
            self.answered(linkedid, None, None, at, out);
        }
    }

    fn on_dial_end(&mut self, ev: &Packet, at: SystemTime, out: &mut Vec<CallDecision>) {
        let caller = snapshot(ev, "");
        if let Some(s) = &caller {
            self.touch(s, at, out);
        }
        let Some(dest) = snapshot(ev, "Dest") else {
            return;
        };
        self.touch(&dest, at, out);
        // Only a dial made *from* the call answers it: the DialEnd of an
        // originate (no calling Channel) is the agent picking up the
        // click-to-call leg, before the real callee rings.
        let answered = ev
            .get("DialStatus")
            .is_some_and(|s| s.eq_ignore_ascii_case("ANSWER"));
        let Some(caller) = caller.filter(|_| answered) else {
            return;
        };
        let linkedid = dest.linkedid.to_owned();
        let again = self.calls.get(&linkedid).is_some_and(|c| {
            c.answer.is_some() && c.answered_by.as_deref().is_some_and(|b| b != dest.channel)
        });
        if again {
            let target = caller.exten.unwrap_or_default().to_owned();
            self.transferred(&linkedid, &target, dest.channel, at, out);
        } else {
            let agent = self.agent_of(dest.channel);
            self.answered(&linkedid, agent, Some(dest.channel), at, out);
        }
    }

    /// The first `HangupRequest` of a call says who hung up.
    fn on_hangup_request(&mut self, ev: &Packet) {
        let (Some(uniqueid), Some(linkedid)) = (ev.get("Uniqueid"), ev.get("Linkedid")) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(linkedid)
            && call.hangup_by.is_none()
        {
            call.hangup_by = Some(if call.root.as_deref() == Some(uniqueid) {
                Party::Caller
            } else {
                Party::Callee
            });
        }
    }

    fn on_hangup(&mut self, ev: &Packet, at: SystemTime, out: &mut Vec<CallDecision>) {
        let (Some(uniqueid), Some(linkedid)) = (ev.get("Uniqueid"), ev.get("Linkedid")) else {
            return;
        };
        let last_leg = self
            .calls
            .get(linkedid)
            .is_some_and(|c| c.legs.len() == 1 && c.legs.contains_key(uniqueid));
        if last_leg {
            // A held call that ends without dialing the bridge was a call.
            self.release(linkedid, at, out);
        }
        let Some(call) = self.calls.get_mut(linkedid) else {
            return;
        };
        let cause = ev.get("Cause").map(|c| HangupCause {
            code: c.trim().parse().unwrap_or(0),
            text: ev.get("Cause-txt").unwrap_or_default().to_owned(),
        });
        if call.root.as_deref() == Some(uniqueid) {
            call.root_cause.clone_from(&cause);
        }
        if cause.is_some() {
            call.last_cause = cause;
        }
        call.legs.remove(uniqueid);
        self.leg_call.remove(uniqueid);
        if call.legs.is_empty() {
            let linkedid = linkedid.to_owned();
            self.end_call(&linkedid, at, true, out);
        }
    }

    fn end_call(
        &mut self,
        linkedid: &str,
        at: SystemTime,
        with_cause: bool,
        out: &mut Vec<CallDecision>,
    ) {
        self.release(linkedid, at, out);
        let Some(call) = self.calls.remove(linkedid) else {
            return;
        };
        for uid in call.legs.keys() {
            self.leg_call.remove(uid);
        }
        if call.opened {
            out.push(CallDecision::CallEnded {
                linkedid: linkedid.to_owned(),
                cause: if with_cause {
                    call.root_cause.or(call.last_cause)
                } else {
                    None
                },
                ended_at: at,
                answered: call.answer.is_some(),
                hangup_by: if with_cause { call.hangup_by } else { None },
            });
        }
        self.remember_ended(linkedid);
    }

    fn remember_ended(&mut self, linkedid: &str) {
        if self.config.ended_memory == 0 {
            return;
        }
        if self.ended.insert(linkedid.to_owned()) {
            self.ended_order.push_back(linkedid.to_owned());
        }
        while self.ended_order.len() > self.config.ended_memory {
            if let Some(old) = self.ended_order.pop_front() {
                self.ended.remove(&old);
            }
        }
    }

    /// `PBX_BRIDGE_PROTOCOL` set on a channel: the call is the bridge's
    /// click-to-call with that protocol.
    fn on_recording(&mut self, ev: &Packet, at: SystemTime, out: &mut Vec<CallDecision>) {
        let Some(s) = snapshot(ev, "") else {
            return;
        };
        let Some(path) = ev.get("Value").filter(|p| !p.is_empty()) else {
            return;
        };
        self.touch(&s, at, out);
        let Some(call) = self.calls.get_mut(s.linkedid) else {
            return;
        };
        if !call.recordings.iter().any(|p| p == path) {
            call.recordings.push(path.to_owned());
        }
        Self::flush_pending(s.linkedid, call, out);
    }

    fn on_cdr(&mut self, ev: &Packet, at: SystemTime, out: &mut Vec<CallDecision>) {
        let answered = ev
            .get("Disposition")
            .is_some_and(|d| d.eq_ignore_ascii_case("ANSWERED"));
        if !answered {
            return;
        }
        let Some(linkedid) = ev
            .get("UniqueID")
            .and_then(|u| self.leg_call.get(u))
            .cloned()
        else {
            return;
        };
        let dest = ev.get("DestinationChannel").filter(|c| !c.is_empty());
        if dest.is_none() && self.calls.get(&linkedid).is_some_and(|c| c.originated) {
            // The originate's own record: the agent took the click-to-call.
            return;
        }
        let agent = dest.and_then(|c| self.agent_of(c));
        self.answered(&linkedid, agent, dest, at, out);
    }

    /// Reconcile with the live channels read after a (re)connect: the
    /// `CoreShowChannel` events of [`super::Output::Resync`].
    pub fn resync(&mut self, snapshot_events: &[Packet], at: SystemTime) -> Vec<CallDecision> {
        let mut out = Vec::new();
        let mut live: HashMap<&str, Vec<&Packet>> = HashMap::new();
        for ev in snapshot_events {
            if let Some(l) = ev.get("Linkedid") {
                live.entry(l).or_default().push(ev);
            }
        }
        // Calls that are gone: end them (once; they leave `calls`).
        let mut gone: Vec<String> = self
            .calls
            .keys()
            .filter(|l| !live.contains_key(l.as_str()))
            .cloned()
            .collect();
        gone.sort_unstable();
        for l in gone {
            self.end_call(&l, at, false, &mut out);
        }
        let mut linkedids: Vec<&str> = live.keys().copied().collect();
        linkedids.sort_unstable();
        for linkedid in linkedids {
            if self.ended.contains(linkedid) {
                continue;
            }
            let chans = &live[linkedid];
            // Legs that hung up unseen are dropped; live ones (re)recorded.
            let live_uids: HashSet<&str> = chans.iter().filter_map(|e| e.get("Uniqueid")).collect();
            if let Some(call) = self.calls.get_mut(linkedid) {
                let stale: Vec<String> = call
                    .legs
                    .keys()
                    .filter(|u| !live_uids.contains(u.as_str()))
                    .cloned()
                    .collect();
                for u in stale {
                    call.legs.remove(&u);
                    self.leg_call.remove(&u);
                }
            }
            // Root first, so an unknown call is opened from its root.
            let mut ordered: Vec<&Packet> = chans.clone();
            ordered.sort_by_key(|e| e.get("Uniqueid") != Some(linkedid));
            let opened_at = ordered
                .first()
                .and_then(|e| e.get("Duration"))
                .and_then(parse_hms)
                .and_then(|d| at.checked_sub(d))
                .unwrap_or(at);
            for ev in &ordered {
                if let Some(s) = snapshot(ev, "") {
                    self.touch(&s, opened_at, &mut out);
                }
            }
            // Answered while we were away: a non-root leg of a known
            // extension is up (bridged to the caller), or the root is up.
            let Some(call) = self.calls.get(linkedid) else {
                continue;
            };
            if call.answer.is_some() {
                continue;
            }
            let root = call.root.clone();
            let agent_leg = call
                .legs
                .iter()
                .filter(|(u, leg)| leg.up && Some(*u) != root.as_ref())
                .map(|(_, leg)| leg.name.clone())
                .min();
            let root_up = root
                .as_ref()
                .and_then(|r| call.legs.get(r))
                .is_some_and(|l| l.up);
            if let Some(chan) = agent_leg {
                let agent = self.agent_of(&chan);
                self.answered(linkedid, agent, Some(&chan), at, &mut out);
            } else if root_up && (call.opened || call.held_since.is_some()) && call.legs.len() == 1
            {
                self.answered(linkedid, None, None, at, &mut out);
            }
        }
        out
    }
}

/// `HH:MM:SS` (CoreShowChannel `Duration`).
fn parse_hms(s: &str) -> Option<Duration> {
    let mut parts = s.trim().split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let sec: u64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    Some(Duration::from_secs(h * 3600 + m * 60 + sec))
}
