//! Agents: the generic CRUD, plus starting and ending pauses (SPEC §3).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};

use super::ApiError;
use super::auth::Caller;
use super::json::StrictJson;
use super::resource::Resource;
use crate::app::App;
use crate::domain::{Agent, AgentInput, Id, PauseInput, Presence, Scope};
use crate::store::Page;

pub struct Agents;

impl Resource for Agents {
    type Repr = Agent;
    type Input = AgentInput;
    type Created = Agent;
    const READ: Scope = Scope::ConfigRead;
    const WRITE: Scope = Scope::ConfigWrite;

    fn to_input(repr: &Agent) -> AgentInput {
        repr.to_input()
    }

    async fn list(app: &App, after: Id, limit: usize) -> Result<Page<Agent>, ApiError> {
        let mut page = app.store().list_agents(after, limit).await?;
        with_presence(app, &mut page.items).await?;
        Ok(page)
    }

    async fn get(app: &App, id: Id) -> Result<Agent, ApiError> {
        one_with_presence(app, app.store().get_agent(id).await?).await
    }

    async fn create(app: &App, input: AgentInput) -> Result<Agent, ApiError> {
        input.validate()?;
        let done = app.store().create_agent(&input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn replace(app: &App, id: Id, input: AgentInput) -> Result<Agent, ApiError> {
        input.validate()?;
        let done = app.store().replace_agent(id, &input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        app.store().delete_agent(id).await?;
        app.numbering_plan_changed();
        Ok(())
    }
}

/// `POST /agents/{id}/pause` and `DELETE /agents/{id}/pause`: supervisors
/// pause agents, so these need the `calls` scope rather than config write.
pub fn pause_routes() -> Router<App> {
    Router::new().route("/agents/{id}/pause", post(pause).delete(unpause))
}

async fn pause(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<Id>,
    StrictJson(input): StrictJson<PauseInput>,
) -> Result<Json<Agent>, ApiError> {
    caller.require(Scope::Calls)?;
    input.validate()?;
    let agent = app.store().pause_agent(id, &input.reason).await?;
    app.numbering_plan_changed();
    tracing::info!(agent = id, reason = %input.reason, "agent paused");
    Ok(Json(one_with_presence(&app, agent).await?))
}

async fn unpause(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<Id>,
) -> Result<Json<Agent>, ApiError> {
    caller.require(Scope::Calls)?;
    let agent = app.store().unpause_agent(id).await?;
    app.numbering_plan_changed();
    tracing::info!(agent = id, "agent pause ended");
    Ok(Json(one_with_presence(&app, agent).await?))
}

/// Presence as the call engine sees it (SPEC §5 "available"): registered
/// from the registrar's bindings or reachable on the PBX (AMI), busy from
/// the live calls or in use on the PBX.
async fn with_presence(app: &App, agents: &mut [Agent]) -> Result<(), ApiError> {
    let directory = app.store().call_directory().await?;
    let numbers: HashMap<Id, &str> = directory
        .extensions
        .iter()
        .filter_map(|(number, agent)| Some(((*agent)?, number.as_str())))
        .collect();
    let registered = app.registered_extensions();
    let busy = app.calls().busy_agents();
    let on_pbx = app.pbx_presence();
    for a in agents {
        use crate::pbx_presence::Availability;
        let pbx = numbers.get(&a.id).map(|n| on_pbx.availability(n));
        let is_registered = numbers.get(&a.id).is_some_and(|n| registered.contains(*n))
            || matches!(pbx, Some(Availability::Free | Availability::InUse));
        a.presence = Presence::derive(
            a.active,
            a.extension_id.is_some(),
            a.pause.is_some(),
            is_registered,
        );
        a.busy = busy.contains(&a.id) || pbx == Some(Availability::InUse);
    }
    Ok(())
}

async fn one_with_presence(app: &App, agent: Agent) -> Result<Agent, ApiError> {
    let mut one = [agent];
    with_presence(app, &mut one).await?;
    let [agent] = one;
    Ok(agent)
}
