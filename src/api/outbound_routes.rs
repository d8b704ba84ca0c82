//! Outbound routes: dial patterns, failover trunks and allowed extensions.
//! Every write bumps the numbering plan, so the next call (an extension
//! dialling out, follow-me, an after-hours number) is routed by it at once
//! rather than after the plan's periodic re-read.

use super::ApiError;
use super::resource::Resource;
use crate::app::App;
use crate::domain::{Id, OutboundRoute, OutboundRouteInput, Scope};
use crate::store::Page;

pub struct OutboundRoutes;

impl Resource for OutboundRoutes {
    type Repr = OutboundRoute;
    type Input = OutboundRouteInput;
    type Created = OutboundRoute;
    const READ: Scope = Scope::ConfigRead;
    const WRITE: Scope = Scope::ConfigWrite;

    fn to_input(repr: &OutboundRoute) -> OutboundRouteInput {
        repr.to_input()
    }

    async fn list(app: &App, after: Id, limit: usize) -> Result<Page<OutboundRoute>, ApiError> {
        Ok(app.store().list_outbound_routes(after, limit).await?)
    }

    async fn get(app: &App, id: Id) -> Result<OutboundRoute, ApiError> {
        Ok(app.store().get_outbound_route(id).await?)
    }

    async fn create(app: &App, input: OutboundRouteInput) -> Result<OutboundRoute, ApiError> {
        input.validate()?;
        let done = app.store().create_outbound_route(&input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn replace(
        app: &App,
        id: Id,
        input: OutboundRouteInput,
    ) -> Result<OutboundRoute, ApiError> {
        input.validate()?;
        let done = app.store().replace_outbound_route(id, &input).await?;
        app.numbering_plan_changed();
        Ok(done)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        app.store().delete_outbound_route(id).await?;
        app.numbering_plan_changed();
        Ok(())
    }
}
