//! Trunks: secrets are write-only (`has_secret` says one is stored);
//! `GET /trunks/{id}/status` shows the bridge's registration with it.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::ApiError;
use super::auth::Caller;
use super::resource::Resource;
use crate::app::App;
use crate::domain::{Id, Scope, Trunk, TrunkInput, TrunkRegistration};
use crate::store::Page;

pub fn status_routes() -> Router<App> {
    Router::new().route("/trunks/{id}/status", get(status))
}

/// The bridge's registration with trunk `id` (`disabled` when it does
/// not register); 404 for no such trunk.
async fn status(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<Id>,
) -> Result<Json<TrunkRegistration>, ApiError> {
    caller.require(Scope::ConfigRead)?;
    let trunk = app.store().get_trunk(id).await?;
    let mut registration = app.trunk_registrations().get(id);
    if !trunk.register {
        registration = TrunkRegistration::disabled(id);
    }
    Ok(Json(registration))
}

pub struct Trunks;

impl Resource for Trunks {
    type Repr = Trunk;
    type Input = TrunkInput;
    type Created = Trunk;
    const READ: Scope = Scope::ConfigRead;
    const WRITE: Scope = Scope::ConfigWrite;

    fn to_input(repr: &Trunk) -> TrunkInput {
        repr.to_input()
    }

    async fn list(app: &App, after: Id, limit: usize) -> Result<Page<Trunk>, ApiError> {
        Ok(app.store().list_trunks(after, limit).await?)
    }

    async fn get(app: &App, id: Id) -> Result<Trunk, ApiError> {
        Ok(app.store().get_trunk(id).await?)
    }

    async fn create(app: &App, input: TrunkInput) -> Result<Trunk, ApiError> {
        input.validate(false)?;
        let done = app.store().create_trunk(&input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn replace(app: &App, id: Id, input: TrunkInput) -> Result<Trunk, ApiError> {
        let current = app.store().get_trunk(id).await?;
        input.validate(current.has_secret)?;
        let done = app.store().replace_trunk(id, &input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        app.store().delete_trunk(id).await?;
        app.numbering_plan_changed();
        Ok(())
    }
}
