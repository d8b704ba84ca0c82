//! `GET /api/v1/registrations`: who is registered from where, since when,
//! until when and with which User-Agent; and which addresses the registrar
//! has locked out after failed authentication, with the reason.

use axum::Json;
use axum::extract::State;

use super::ApiError;
use super::auth::Caller;
use crate::app::App;
use crate::domain::{Registrations, Scope};

pub async fn list(State(app): State<App>, caller: Caller) -> Result<Json<Registrations>, ApiError> {
    caller.require(Scope::ConfigRead)?;
    let mut view = app.registrations();
    view.items.sort_by(|a, b| {
        a.extension
            .cmp(&b.extension)
            .then(a.contact.cmp(&b.contact))
    });
    Ok(Json(view))
}
