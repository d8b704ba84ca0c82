//! Agents: the generic CRUD, plus starting and ending pauses (SPEC §3).

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};

use super::ApiError;
use super::auth::Caller;
use super::json::StrictJson;
use super::resource::Resource;
use crate::app::App;
use crate::domain::{Agent, AgentInput, Id, PauseInput, Scope};
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
        Ok(app.store().list_agents(after, limit).await?)
    }

    async fn get(app: &App, id: Id) -> Result<Agent, ApiError> {
        Ok(app.store().get_agent(id).await?)
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
    tracing::info!(agent = id, reason = %input.reason, "agent paused");
    Ok(Json(agent))
}

async fn unpause(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<Id>,
) -> Result<Json<Agent>, ApiError> {
    caller.require(Scope::Calls)?;
    let agent = app.store().unpause_agent(id).await?;
    tracing::info!(agent = id, "agent pause ended");
    Ok(Json(agent))
}
