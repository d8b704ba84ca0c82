//! The call plan: what the call engine decides on, read from the database
//! in one go and kept in memory, so an INVITE never waits on more than the
//! attendance insert. Reloaded when the API changes the numbering plan,
//! agents, periods or holidays (the [`crate::plan_changes::PlanChanges`]
//! generation),
//! and every few seconds for changes made by other nodes.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use std::net::SocketAddr;

use crate::domain::{
    Agent, Department, Extension, Holiday, Id, OutboundRoute, Pbx, Period, Timestamp, Trunk,
};
use crate::routing::{AgentEntry, AgentState, Directory};
use crate::store::{Store, StoreError, all_pages};

/// A snapshot of everything calls are routed by.
#[derive(Debug, Clone, Default)]
pub struct CallPlan {
    /// The plan generation this snapshot was read at.
    pub generation: u64,
    departments: Vec<Department>,
    periods: Vec<Period>,
    holidays: Vec<Holiday>,
    agents: Vec<Agent>,
    extensions: HashMap<String, Extension>,
    /// Agent id → its active extension's number.
    agent_numbers: HashMap<Id, String>,
    /// Active extension number → its agent.
    number_agents: HashMap<String, Id>,
    trunks: Vec<Trunk>,
    /// The PBX beside the bridge, when enabled.
    pbx: Option<Pbx>,
    routes: Vec<OutboundRoute>,
    /// The trunks' digest secrets (answering a carrier's challenge).
    trunk_secrets: HashMap<Id, String>,
    /// Where each trunk's calls go (its host resolved by the background
    /// reader, never on a call's path).
    trunk_addrs: HashMap<Id, SocketAddr>,
}

impl CallPlan {
    pub async fn load(store: &Store, generation: u64) -> Result<CallPlan, StoreError> {
        let departments = store.all_departments().await?;
        let periods = all_pages(|a, n| store.list_periods(a, n), |p: &Period| p.id).await?;
        let holidays = all_pages(|a, n| store.list_holidays(a, n), |h: &Holiday| h.id).await?;
        let agents = all_pages(|a, n| store.list_agents(a, n), |a: &Agent| a.id).await?;
        let extensions =
            all_pages(|a, n| store.list_extensions(a, n), |e: &Extension| e.id).await?;
        let accounts = store.trunk_accounts().await?;
        let trunk_secrets: HashMap<Id, String> = accounts
            .iter()
            .filter_map(|(t, secret)| Some((t.id, secret.clone()?)))
            .collect();
        let trunks: Vec<Trunk> = accounts.into_iter().map(|(t, _)| t).collect();
        let pbx = store.get_pbx().await?;
        let routes = store.all_outbound_routes().await?;
        let mut trunk_addrs = HashMap::new();
        for t in &trunks {
            // A trunk whose host does not resolve is skipped when dialled
            // (logged there), so a failing name is not logged every read.
            match crate::sip::transport::resolve(&t.host, t.port).await {
                Ok(addr) => {
                    trunk_addrs.insert(t.id, addr);
                }
                Err(e) => {
                    tracing::debug!(trunk = %t.name, error = %e, "trunk host does not resolve")
                }
            }
        }
        Ok(CallPlan::from_parts(
            generation,
            departments,
            periods,
            holidays,
            agents,
            extensions,
            trunks,
        )
        .with_pbx(pbx.enabled.then_some(pbx))
        .with_routes(routes, trunk_addrs)
        .with_trunk_secrets(trunk_secrets))
    }

    /// A plan from its rows (the database's, or a test's).
    pub fn from_parts(
        generation: u64,
        departments: Vec<Department>,
        periods: Vec<Period>,
        holidays: Vec<Holiday>,
        agents: Vec<Agent>,
        extensions: Vec<Extension>,
        trunks: Vec<Trunk>,
    ) -> CallPlan {
        let numbers: HashMap<Id, &Extension> = extensions
            .iter()
            .filter(|e| e.active)
            .map(|e| (e.id, e))
            .collect();
        let agent_numbers: HashMap<Id, String> = agents
            .iter()
            .filter_map(|a| Some((a.id, numbers.get(&a.extension_id?)?.number.clone())))
            .collect();
        let number_agents = agent_numbers.iter().map(|(a, n)| (n.clone(), *a)).collect();
        CallPlan {
            generation,
            departments,
            periods,
            holidays,
            agents,
            extensions: extensions
                .into_iter()
                .map(|e| (e.number.clone(), e))
                .collect(),
            agent_numbers,
            number_agents,
            trunks,
            pbx: None,
            routes: Vec::new(),
            trunk_secrets: HashMap::new(),
            trunk_addrs: HashMap::new(),
        }
    }

    /// The plan with the trunks' digest secrets.
    pub fn with_trunk_secrets(mut self, secrets: HashMap<Id, String>) -> CallPlan {
        self.trunk_secrets = secrets;
        self
    }

    /// Trunk `id`'s digest secret, if it has one.
    pub fn trunk_secret(&self, id: Id) -> Option<&str> {
        self.trunk_secrets.get(&id).map(String::as_str)
    }

    /// The plan with its outbound routes and the trunks' addresses.
    pub fn with_routes(
        mut self,
        routes: Vec<OutboundRoute>,
        trunk_addrs: HashMap<Id, SocketAddr>,
    ) -> CallPlan {
        self.routes = routes;
        self.trunk_addrs = trunk_addrs;
        self
    }

    pub fn routes(&self) -> &[OutboundRoute] {
        &self.routes
    }

    pub fn trunk(&self, id: Id) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.id == id)
    }

    /// Where trunk `id`'s calls go, if its host resolved.
    pub fn trunk_addr(&self, id: Id) -> Option<SocketAddr> {
        self.trunk_addrs.get(&id).copied()
    }

    /// The plan with the PBX beside the bridge (`None`: none enabled).
    pub fn with_pbx(mut self, pbx: Option<Pbx>) -> CallPlan {
        self.pbx = pbx;
        self
    }

    /// The PBX beside the bridge, when enabled.
    pub fn pbx(&self) -> Option<&Pbx> {
        self.pbx.as_ref()
    }

    /// The department whose PABX code is `code`.
    pub fn department_by_code(&self, code: &str) -> Option<&Department> {
        let code: u16 = code.parse().ok()?;
        self.departments.iter().find(|d| d.pabx_code == Some(code))
    }

    pub fn department(&self, id: Id) -> Option<&Department> {
        self.departments.iter().find(|d| d.id == id)
    }

    /// An active extension by number.
    pub fn extension(&self, number: &str) -> Option<&Extension> {
        self.extensions.get(number).filter(|e| e.active)
    }

    /// An active extension by id.
    pub fn extension_by_id(&self, id: Id) -> Option<&Extension> {
        self.extensions.values().find(|e| e.id == id && e.active)
    }

    /// The extension number of an agent.
    pub fn agent_extension(&self, agent: Id) -> Option<&str> {
        self.agent_numbers.get(&agent).map(String::as_str)
    }

    /// The agent using an extension.
    pub fn agent_of_extension(&self, number: &str) -> Option<Id> {
        self.number_agents.get(number).copied()
    }

    /// The trunk whose inbound networks hold `ip` (RFC 3261 has no caller
    /// identity for carriers: they are known by address).
    pub fn trunk_for(&self, ip: IpAddr) -> Option<&Trunk> {
        self.trunks
            .iter()
            .find(|t| t.inbound.iter().any(|net| net.contains(&ip)))
    }

    /// The ring snapshot (SPEC §5 "available"): an agent is available when
    /// active, its extension registered, not paused and not in a call.
    pub fn directory(
        &self,
        registered: &HashSet<String>,
        busy: &HashSet<Id>,
        idle_since: &HashMap<Id, Timestamp>,
    ) -> Directory {
        let agents = self.agents.iter().map(|a| {
            let number = self.agent_extension(a.id);
            let state = if a.pause.is_some() {
                AgentState::Paused
            } else if !a.active || !number.is_some_and(|n| registered.contains(n)) {
                AgentState::Offline
            } else if busy.contains(&a.id) {
                AgentState::Busy
            } else {
                AgentState::Available
            };
            AgentEntry {
                id: a.id,
                active: a.active,
                state,
                idle_since: idle_since.get(&a.id).copied(),
                memberships: a.departments.clone(),
            }
        });
        Directory::new(
            self.departments.iter().cloned(),
            self.periods.iter().cloned(),
            self.holidays.iter().cloned(),
            agents,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Pause;

    fn agent(id: Id, extension_id: Option<Id>, paused: bool) -> Agent {
        Agent {
            pause: paused.then(|| Pause {
                reason: "lunch".into(),
                since: chrono::Utc::now(),
            }),
            ..fixtures::agent(id, extension_id, &[1])
        }
    }

    use crate::domain::fixtures::{self, extension};

    fn plan() -> CallPlan {
        let agents = vec![
            agent(1, Some(11), false), // registered, free
            agent(2, Some(12), true),  // paused
            agent(3, Some(13), false), // not registered
            agent(4, Some(14), false), // in a call
            agent(5, None, false),     // no extension
            agent(6, Some(16), false), // extension disabled
        ];
        let extensions = [
            extension(11, "1011", true),
            extension(12, "1012", true),
            extension(13, "1013", true),
            extension(14, "1014", true),
            extension(16, "1016", false),
        ];
        let agent_numbers: HashMap<Id, String> = agents
            .iter()
            .filter_map(|a| {
                let e = extensions
                    .iter()
                    .find(|e| Some(e.id) == a.extension_id && e.active)?;
                Some((a.id, e.number.clone()))
            })
            .collect();
        CallPlan {
            number_agents: agent_numbers.iter().map(|(a, n)| (n.clone(), *a)).collect(),
            agent_numbers,
            agents,
            extensions: extensions
                .into_iter()
                .map(|e| (e.number.clone(), e))
                .collect(),
            ..CallPlan::default()
        }
    }

    #[test]
    fn availability_comes_from_pause_registration_and_live_calls() {
        let registered: HashSet<String> = ["1011", "1012", "1014", "1016"]
            .into_iter()
            .map(String::from)
            .collect();
        let busy: HashSet<Id> = [4].into_iter().collect();
        let dir = plan().directory(&registered, &busy, &HashMap::new());
        let state = |id| dir.agent(id).map(|a| a.state);
        assert_eq!(state(1), Some(AgentState::Available));
        assert_eq!(state(2), Some(AgentState::Paused));
        assert_eq!(state(3), Some(AgentState::Offline));
        assert_eq!(state(4), Some(AgentState::Busy));
        assert_eq!(state(5), Some(AgentState::Offline));
        assert_eq!(
            state(6),
            Some(AgentState::Offline),
            "a disabled extension cannot ring"
        );
    }

    #[test]
    fn agents_and_extensions_are_found_both_ways() {
        let p = plan();
        assert_eq!(p.agent_extension(1), Some("1011"));
        assert_eq!(p.agent_of_extension("1014"), Some(4));
        assert_eq!(p.agent_extension(6), None);
        assert!(
            p.extension("1016").is_none(),
            "inactive extensions are not dialable"
        );
        assert!(p.department_by_code("abc").is_none());
    }
}
