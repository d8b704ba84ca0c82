//! The call core in simulated time: a fake node ([`FakeEnv`]: a plan,
//! registrations, a real live-call table), SIP messages built and parsed
//! with the message layer, and a clock that only moves when a test says.
//! No sockets, no database, no tokio.

mod carriers;
mod click_to_call;
mod continued;
mod forward;
mod outbound;
mod pbx_agents;
mod props;
mod races;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::calls::live::{CallControl, LiveCalls};
use crate::calls::plan::CallPlan;
use crate::domain::{
    Agent, AttendanceChange, Department, Extension, Registration, Trunk, fixtures,
};
use crate::routing::MissedCalls;
use crate::sip::dialog::CounterIds;
use crate::sip::message::{Host, Method, parse, response_to};
use crate::sip::transaction::TransactionKey;

pub(super) const PROTOCOL: &str = "20261207000001";
pub(super) const CALLER: &str = "127.0.0.1:5090";
const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n";

pub(super) fn wall0() -> Timestamp {
    "2026-12-07T15:00:00Z".parse().unwrap()
}

pub(super) fn department(id: Id, code: u16) -> Department {
    Department {
        pabx_code: Some(code),
        close_on_hangup: true,
        ..fixtures::department(id)
    }
}

fn agent(id: Id, extension_id: Id, departments: &[Id]) -> Agent {
    fixtures::agent(id, Some(extension_id), departments)
}

fn extension(id: Id, number: &str) -> Extension {
    fixtures::extension(id, number, true)
}

pub(super) fn trunk() -> Trunk {
    Trunk {
        id: 1,
        name: "carrier".into(),
        host: "127.0.0.1".into(),
        port: 5060,
        transport: crate::domain::Transport::Udp,
        username: None,
        has_secret: false,
        register: false,
        register_expires_s: 300,
        max_channels: None,
        inbound: vec!["127.0.0.0/8".parse().unwrap()],
        did_routes: Vec::new(),
        created_at: wall0(),
        updated_at: wall0(),
    }
}

/// The agent of extension `10xx` is agent `xx`; it registers from port
/// `50xx`.
pub(super) fn agent_port(agent: Id) -> u16 {
    5000 + agent as u16
}

/// Departments as given; agents 1..=n on extensions 1001.. in the
/// departments listed for each.
pub(super) fn plan(departments: Vec<Department>, agents: &[&[Id]]) -> CallPlan {
    plan_with_periods(departments, Vec::new(), agents)
}

pub(super) fn plan_with_periods(
    departments: Vec<Department>,
    periods: Vec<crate::domain::Period>,
    agents: &[&[Id]],
) -> CallPlan {
    plan_full(departments, periods, agents, trunk())
}

/// A plan whose one trunk (for 127.0.0.0/8) is `trunk`.
pub(super) fn plan_full(
    departments: Vec<Department>,
    periods: Vec<crate::domain::Period>,
    agents: &[&[Id]],
    trunk: Trunk,
) -> CallPlan {
    let extensions: Vec<Extension> = (1..=agents.len() as Id)
        .map(|i| extension(100 + i, &format!("{}", 1000 + i)))
        .collect();
    let agents: Vec<Agent> = agents
        .iter()
        .enumerate()
        .map(|(i, ds)| agent(i as Id + 1, 101 + i as Id, ds))
        .collect();
    CallPlan::from_parts(
        1,
        departments,
        periods,
        Vec::new(),
        agents,
        extensions,
        vec![trunk],
    )
}

/// The node around the call under test.
pub(super) struct FakeEnv {
    pub plan: Arc<CallPlan>,
    pub registered: Mutex<HashSet<String>>,
    /// The PBX's SIP address (`None`: no PBX enabled).
    pub pbx: Mutex<Option<SocketAddr>>,
    /// Presence on the PBX, as the AMI client would publish it.
    pub pbx_presence: crate::pbx_presence::PbxPresence,
    pub live: LiveCalls,
    idle: Mutex<HashMap<Id, Timestamp>>,
    missed: Mutex<MissedCalls>,
    control: tokio::sync::mpsc::UnboundedSender<CallControl>,
    _control_rx: tokio::sync::mpsc::UnboundedReceiver<CallControl>,
}

impl FakeEnv {
    pub fn new(plan: CallPlan) -> Arc<FakeEnv> {
        let registered = (1001..1010).map(|n| n.to_string()).collect();
        let (control, rx) = tokio::sync::mpsc::unbounded_channel();
        Arc::new(FakeEnv {
            plan: Arc::new(plan),
            registered: Mutex::new(registered),
            pbx: Mutex::new(None),
            pbx_presence: Default::default(),
            live: LiveCalls::new(),
            idle: Mutex::new(HashMap::new()),
            missed: Mutex::new(MissedCalls::new()),
            control,
            _control_rx: rx,
        })
    }
}

impl CallEnv for FakeEnv {
    fn plan(&self) -> Arc<CallPlan> {
        self.plan.clone()
    }
    fn bindings_of(&self, number: &str) -> Vec<Registration> {
        if !self.registered.lock().unwrap().contains(number) {
            return Vec::new();
        }
        let agent: u16 = number.parse::<u16>().unwrap() - 1000;
        vec![Registration {
            extension: number.into(),
            contact: format!("<sip:{number}@127.0.0.1:{}>", 5000 + agent),
            source: format!("127.0.0.1:{}", 5000 + agent),
            transport: "udp".into(),
            user_agent: None,
            registered_at: wall0(),
            expires_at: wall0() + chrono::Duration::hours(1),
        }]
    }
    fn registered_extensions(&self) -> HashSet<String> {
        self.registered.lock().unwrap().clone()
    }
    fn pbx_address(&self) -> Option<SocketAddr> {
        *self.pbx.lock().unwrap()
    }
    fn pbx_availability(&self, number: &str) -> crate::pbx_presence::Availability {
        self.pbx_presence.availability(number)
    }
    fn pbx_presence(&self) -> HashMap<String, crate::pbx_presence::Availability> {
        self.pbx_presence.snapshot()
    }
    fn busy_agents(&self) -> HashSet<Id> {
        self.live.busy_agents()
    }
    fn idle_times(&self) -> HashMap<Id, Timestamp> {
        self.idle.lock().unwrap().clone()
    }
    fn agent_idle(&self, agent: Id, at: Timestamp) {
        self.idle.lock().unwrap().insert(agent, at);
    }
    fn with_missed(&self, f: &mut dyn FnMut(&mut MissedCalls)) {
        f(&mut self.missed.lock().unwrap());
    }
    fn local(&self, transport: Transport) -> LocalParty {
        LocalParty::new(
            transport,
            Host::Ipv4("127.0.0.1".parse().unwrap()),
            Some(5060),
            "sip:pbx-bridge@127.0.0.1:5060".parse().unwrap(),
        )
    }
    fn node(&self) -> String {
        "node-a".into()
    }
    fn publish(&self, call: crate::calls::live::LiveCall) {
        if self.live.get(&call.id).is_some() {
            let id = call.id.clone();
            self.live.update(&id, |c| *c = call);
        } else {
            self.live.insert(call, self.control.clone());
        }
    }
    fn unpublish(&self, id: &str) {
        self.live.remove(id);
    }
    fn claim(&self, id: &str, leg: crate::calls::live::LiveLeg) -> bool {
        self.live.claim(id, leg)
    }
    fn take_trunk_channel(&self, trunk: Id, max: u32) -> bool {
        self.live.take_trunk_channel(trunk, max)
    }

    fn release_trunk_channel(&self, trunk: Id) {
        self.live.release_trunk_channel(trunk)
    }
}

pub(super) fn msg(text: &str) -> SipMessage {
    parse(Bytes::from(text.replace('\n', "\r\n"))).expect("test message parses")
}

pub(super) fn with_sdp(head: &str) -> SipMessage {
    let text = format!(
        "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        head.replace('\n', "\r\n"),
        SDP.len()
    );
    parse(Bytes::from(text)).expect("test message parses")
}

/// The caller's INVITE for `dialled`.
pub(super) fn caller_invite(dialled: &str) -> SipMessage {
    invite_with(dialled, "")
}

/// The caller's INVITE for `dialled` with `extra` header lines.
pub(super) fn invite_with(dialled: &str, extra: &str) -> SipMessage {
    with_sdp(&format!(
        "INVITE sip:{dialled}@127.0.0.1:5060 SIP/2.0\n\
         Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-caller-1\n\
         From: \"Cliente\" <sip:5511999990000@127.0.0.1>;tag=c1\n\
         To: <sip:{dialled}@127.0.0.1>\n\
         Call-ID: caller-1@127.0.0.1\n\
         CSeq: 1 INVITE\n\
         Contact: <sip:5511999990000@{CALLER}>\n\
         Max-Forwards: 70\n{extra}"
    ))
}

/// A call and its simulated clock; every output is kept in order.
pub(super) struct Sim {
    pub call: Call,
    pub env: Arc<FakeEnv>,
    pub now: Instant,
    pub out: Vec<Output>,
    /// Answer `OpenAttendance` at once with [`PROTOCOL`].
    pub auto_open: bool,
    caller_seq: u32,
}

impl Sim {
    pub fn start(plan: CallPlan, dialled: &str) -> Sim {
        Sim::start_with(FakeEnv::new(plan), dialled, true)
    }

    pub fn start_with(env: Arc<FakeEnv>, dialled: &str, auto_open: bool) -> Sim {
        Sim::start_invite(env, caller_invite(dialled), false, auto_open)
    }

    /// A call extension `number` (authenticated) makes to `dialled`.
    pub fn start_from_extension(env: Arc<FakeEnv>, number: &str, dialled: &str) -> Sim {
        let mut sim = Sim::start_call(env, caller_invite(dialled), Some(number), false, false);
        sim.auto_open = true;
        sim.feed(Input::Opened(Ok(PROTOCOL.into())));
        sim
    }

    /// A call from `invite` (`from_pbx`: signalling recognised the PBX).
    pub fn start_invite(
        env: Arc<FakeEnv>,
        invite: SipMessage,
        from_pbx: bool,
        auto_open: bool,
    ) -> Sim {
        Sim::start_call(env, invite, None, from_pbx, auto_open)
    }

    fn start_call(
        env: Arc<FakeEnv>,
        invite: SipMessage,
        extension: Option<&str>,
        from_pbx: bool,
        auto_open: bool,
    ) -> Sim {
        let now = Instant::now();
        let call = Call::new(
            IncomingCall {
                key: TransactionKey::server(&invite).unwrap(),
                invite,
                source: CALLER.parse().unwrap(),
                transport: Transport::Udp,
                extension: extension.map(str::to_owned),
                from_pbx,
                received: now,
            },
            env.clone(),
            CallConfig {
                media_address: "127.0.0.1".parse().unwrap(),
                caller_port: 20000,
                agent_port: 20002,
            },
            Box::new(CounterIds::new("t")),
            now,
            wall0(),
        );
        let mut sim = Sim {
            call,
            env,
            now,
            out: Vec::new(),
            auto_open,
            caller_seq: 1,
        };
        sim.drain();
        sim
    }

    pub fn drain(&mut self) {
        while let Some(o) = self.call.poll_output() {
            let open = matches!(o, Output::OpenAttendance(_));
            self.out.push(o);
            if open && self.auto_open {
                self.call
                    .handle(Input::Opened(Ok(PROTOCOL.into())), self.now);
            }
        }
    }

    pub fn feed(&mut self, input: Input) {
        self.call.handle(input, self.now);
        self.drain();
    }

    pub fn sip(&mut self, input: CallInput) {
        self.feed(Input::Sip(Box::new(input)));
    }

    /// Moves the clock by `d`, ticking at every deadline on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.call.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.feed(Input::Tick);
        }
        self.now = end;
    }

    /// SIP commands sent so far.
    pub fn commands(&self) -> Vec<&Command> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Sip(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// Requests sent with `method` (through a transaction or not), with
    /// where they went.
    pub fn requests(&self, method: Method) -> Vec<(SipMessage, SocketAddr)> {
        self.commands()
            .into_iter()
            .filter_map(|c| match c {
                Command::Request {
                    request,
                    destination,
                    ..
                }
                | Command::Transmit {
                    message: request,
                    destination,
                    ..
                } if request.method() == Some(&method) => Some((request.clone(), *destination)),
                _ => None,
            })
            .collect()
    }

    /// Requests with `method` sent to agent `agent`.
    pub fn to_agent(&self, agent: Id, method: Method) -> Vec<SipMessage> {
        let port = agent_port(agent);
        self.requests(method)
            .into_iter()
            .filter(|(_, d)| d.port() == port)
            .map(|(m, _)| m)
            .collect()
    }

    /// Responses sent, as (status, CSeq method, Call-ID).
    pub fn responses(&self) -> Vec<(u16, Method, String)> {
        self.commands()
            .into_iter()
            .filter_map(|c| match c {
                Command::Respond { response, .. } => Some((
                    response.status().unwrap_or(0),
                    response.cseq().ok()?.method,
                    response.call_id().ok()?.to_owned(),
                )),
                _ => None,
            })
            .collect()
    }

    /// Statuses of the responses to the caller's (first) INVITE.
    pub fn to_caller_invite(&self) -> Vec<u16> {
        self.commands()
            .into_iter()
            .filter_map(|c| match c {
                Command::Respond { response, .. }
                    if response.call_id().ok() == Some("caller-1@127.0.0.1")
                        && response
                            .cseq()
                            .is_ok_and(|c| c.method == Method::Invite && c.seq == 1) =>
                {
                    response.status()
                }
                _ => None,
            })
            .collect()
    }

    pub fn changes(&self) -> Vec<&AttendanceChange> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Attendance(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// The close reason the attendance's end carries (`Some(None)`: ended
    /// and left open), or `None` when not ended.
    pub fn ended(&self) -> Option<Option<CloseReason>> {
        let ends: Vec<_> = self
            .changes()
            .into_iter()
            .filter_map(|c| match c {
                AttendanceChange::Ended { close, .. } => Some(*close),
                _ => None,
            })
            .collect();
        assert!(ends.len() <= 1, "the attendance ends once: {ends:?}");
        ends.first().copied()
    }

    /// The attendance the call asked to open.
    pub fn opened(&self) -> crate::store::NewAttendance {
        self.out
            .iter()
            .find_map(|o| match o {
                Output::OpenAttendance(new) => Some(new.clone()),
                _ => None,
            })
            .expect("an attendance")
    }

    pub fn media(&self) -> Vec<&MediaOp> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Media(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// The agent `agent` answers our INVITE with `status` (a 200 carries
    /// SDP and a Contact).
    pub fn agent_says(&mut self, agent: Id, status: u16) {
        let invite = self
            .to_agent(agent, Method::Invite)
            .last()
            .cloned()
            .expect("the agent was rung");
        let response = agent_response(&invite, status, &format!("a{agent}"), agent);
        self.sip(CallInput::Response { response });
    }

    /// A request of the caller in its dialog (after the 200).
    pub fn caller_request(&mut self, method: &str, body: bool) -> TransactionKey {
        self.caller_seq += 1;
        let to_tag = self.caller_to_tag();
        let head = format!(
            "{method} sip:pbx-bridge@127.0.0.1:5060 SIP/2.0\n\
             Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-caller-{}\n\
             From: \"Cliente\" <sip:5511999990000@127.0.0.1>;tag=c1\n\
             To: <sip:700@127.0.0.1>;tag={to_tag}\n\
             Call-ID: caller-1@127.0.0.1\n\
             CSeq: {} {method}\n\
             Contact: <sip:5511999990000@{CALLER}>\n\
             Max-Forwards: 70\n",
            self.caller_seq, self.caller_seq
        );
        let request = if body {
            with_sdp(&head)
        } else {
            msg(&format!("{head}Content-Length: 0\n\n"))
        };
        let key = TransactionKey::server(&request).unwrap();
        self.sip(CallInput::Request {
            key: key.clone(),
            request,
            source: CALLER.parse().unwrap(),
            transport: Transport::Udp,
        });
        key
    }

    /// A request of agent `agent` in its dialog with the bridge.
    pub fn agent_request(&mut self, agent: Id, method: &str, extra: &str) -> TransactionKey {
        let invite = self
            .to_agent(agent, Method::Invite)
            .last()
            .cloned()
            .unwrap();
        let from_tag = invite.from().unwrap().tag().unwrap().to_owned();
        let call_id = invite.call_id().unwrap().to_owned();
        let number = 1000 + agent;
        let request = msg(&format!(
            "{method} sip:pbx-bridge@127.0.0.1:5060 SIP/2.0\n\
             Via: SIP/2.0/UDP 127.0.0.1:{};branch=z9hG4bK-agent-{method}\n\
             From: <sip:{number}@127.0.0.1>;tag=a{agent}\n\
             To: <sip:pbx-bridge@127.0.0.1>;tag={from_tag}\n\
             Call-ID: {call_id}\n\
             CSeq: 100 {method}\n\
             Contact: <sip:{number}@127.0.0.1:{}>\n\
             Max-Forwards: 70\n\
             {extra}Content-Length: 0\n\n",
            agent_port(agent),
            agent_port(agent),
        ));
        let key = TransactionKey::server(&request).unwrap();
        self.sip(CallInput::Request {
            key: key.clone(),
            request,
            source: format!("127.0.0.1:{}", agent_port(agent)).parse().unwrap(),
            transport: Transport::Udp,
        });
        key
    }

    /// The To tag the bridge gave the caller's dialog.
    pub fn caller_to_tag(&self) -> String {
        self.commands()
            .into_iter()
            .find_map(|c| match c {
                Command::Respond { response, .. }
                    if response.status() == Some(200)
                        && response.call_id().ok() == Some("caller-1@127.0.0.1") =>
                {
                    response.to().ok()?.tag().map(str::to_owned)
                }
                _ => None,
            })
            .expect("the caller was answered")
    }

    /// The caller ACKs the 2xx with CSeq `seq`.
    pub fn caller_ack(&mut self, seq: u32) {
        let to_tag = self.caller_to_tag();
        let ack = msg(&format!(
            "ACK sip:pbx-bridge@127.0.0.1:5060 SIP/2.0\n\
             Via: SIP/2.0/UDP {CALLER};branch=z9hG4bK-ack-{seq}\n\
             From: \"Cliente\" <sip:5511999990000@127.0.0.1>;tag=c1\n\
             To: <sip:700@127.0.0.1>;tag={to_tag}\n\
             Call-ID: caller-1@127.0.0.1\n\
             CSeq: {seq} ACK\n\
             Max-Forwards: 70\n\
             Content-Length: 0\n\n"
        ));
        self.sip(CallInput::Ack { request: ack });
    }

    /// How many times the caller's 200 OK to its INVITE was sent.
    pub fn caller_200s(&self) -> usize {
        self.to_caller_invite()
            .into_iter()
            .filter(|s| *s == 200)
            .count()
    }

    pub fn is_live(&self) -> bool {
        self.env.live.get(PROTOCOL).is_some()
    }
}

/// An agent's response to the bridge's INVITE.
pub(super) fn agent_response(invite: &SipMessage, status: u16, tag: &str, agent: Id) -> SipMessage {
    let b = response_to(invite, status, None)
        .unwrap()
        .to_tag(tag)
        .header(
            "Contact",
            format!("<sip:{}@127.0.0.1:{}>", 1000 + agent, agent_port(agent)),
        );
    let b = if status == 200 {
        b.body("application/sdp", Bytes::from(SDP))
    } else {
        b
    };
    parse(b.build().unwrap().to_bytes()).unwrap()
}

/// Department 700 (simultaneous) with agents 1 and 2.
pub(super) fn two_agents() -> CallPlan {
    plan(vec![department(1, 700)], &[&[1], &[1]])
}
