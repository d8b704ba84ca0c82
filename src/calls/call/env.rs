//! What a call reads from (and claims in) the node's shared memory: the
//! numbering plan snapshot, registrations, presence on the PBX, the
//! live-call table, idle times and missed-call counts. Synchronous and cheap: memory, never I/O, so
//! the call core stays free of awaits; tests give it a fake.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use crate::calls::live::{LiveCall, LiveLeg};
use crate::calls::plan::CallPlan;
use crate::domain::{Id, Registration, Timestamp};
use crate::pbx_presence::Availability;
use crate::routing::MissedCalls;
use crate::sip::dialog::LocalParty;
use crate::sip::transaction::Transport;

pub trait CallEnv: Send + Sync {
    /// The numbering plan now (a snapshot kept fresh in the background).
    fn plan(&self) -> Arc<CallPlan>;
    /// Where extension `number` is registered on this bridge.
    fn bindings_of(&self, number: &str) -> Vec<Registration>;
    /// The extensions registered now (agent presence).
    fn registered_extensions(&self) -> HashSet<String>;
    /// The PBX's SIP address (UDP), when there is an enabled PBX to ring
    /// agents through.
    fn pbx_address(&self) -> Option<SocketAddr>;
    /// How extension `number` stands on the PBX, as AMI reports it now
    /// (`Unknown` while AMI is down).
    fn pbx_availability(&self, number: &str) -> Availability;
    /// Every extension AMI reports on the PBX, with how it stands.
    fn pbx_presence(&self) -> HashMap<String, Availability>;
    /// Agents on a live leg of any call.
    fn busy_agents(&self) -> HashSet<Id>;
    /// When each agent last ended a call (longest idle rings first).
    fn idle_times(&self) -> HashMap<Id, Timestamp>;
    /// `agent` ended a call at `at`.
    fn agent_idle(&self, agent: Id, at: Timestamp);
    /// The missed-call counts the ring updates (auto-pause).
    fn with_missed(&self, f: &mut dyn FnMut(&mut MissedCalls));
    /// How the bridge names itself on `transport` (Via, Contact).
    fn local(&self, transport: Transport) -> LocalParty;
    /// This bridge's node id (stored on the attendance).
    fn node(&self) -> String;
    /// Inserts or replaces the call's entry in the live-call table.
    fn publish(&self, call: LiveCall);
    /// Removes it.
    fn unpublish(&self, id: &str);
    /// Adds `leg` to call `id` unless its agent or extension is on a live
    /// leg already: check and claim under one lock.
    fn claim(&self, id: &str, leg: LiveLeg) -> bool;
    /// Takes one of trunk `trunk`'s channels unless `max` are in use
    /// (check and take under one lock).
    fn take_trunk_channel(&self, trunk: Id, max: u32) -> bool;
    /// Gives a channel back.
    fn release_trunk_channel(&self, trunk: Id);
}
