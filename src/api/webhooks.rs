//! Webhooks (the secret is required at creation and never returned) and
//! their delivery history at `/webhooks/{id}/deliveries`, newest first.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use super::ApiError;
use super::auth::Caller;
use super::resource::{ListParams, Resource, routes as crud};
use crate::app::App;
use crate::domain::{Id, Scope, Webhook, WebhookDelivery, WebhookInput};
use crate::store::Page;

pub struct Webhooks;

impl Resource for Webhooks {
    type Repr = Webhook;
    type Input = WebhookInput;
    type Created = Webhook;
    const READ: Scope = Scope::ConfigRead;
    const WRITE: Scope = Scope::ConfigWrite;

    fn to_input(repr: &Webhook) -> WebhookInput {
        repr.to_input()
    }

    async fn list(app: &App, after: Id, limit: usize) -> Result<Page<Webhook>, ApiError> {
        Ok(app.store().list_webhooks(after, limit).await?)
    }

    async fn get(app: &App, id: Id) -> Result<Webhook, ApiError> {
        Ok(app.store().get_webhook(id).await?)
    }

    async fn create(app: &App, input: WebhookInput) -> Result<Webhook, ApiError> {
        input.validate(true)?;
        Ok(app.store().create_webhook(&input).await?)
    }

    async fn replace(app: &App, id: Id, input: WebhookInput) -> Result<Webhook, ApiError> {
        input.validate(false)?;
        Ok(app.store().replace_webhook(id, &input).await?)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        Ok(app.store().delete_webhook(id).await?)
    }
}

/// The CRUD routes under `/webhooks` plus the delivery history.
pub fn routes() -> Router<App> {
    crud::<Webhooks>("/webhooks").route("/webhooks/{id}/deliveries", get(deliveries))
}

async fn deliveries(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<Id>,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<WebhookDelivery>>, ApiError> {
    caller.require(Webhooks::READ)?;
    let limit = params.limit()?;
    let before = match params.after_id()? {
        0 => None,
        id => Some(id),
    };
    Ok(Json(
        app.store()
            .list_webhook_deliveries(id, before, limit)
            .await?,
    ))
}
