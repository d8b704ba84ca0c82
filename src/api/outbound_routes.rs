//! Outbound routes: dial patterns, failover trunks and allowed extensions.

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
        Ok(app.store().create_outbound_route(&input).await?)
    }

    async fn replace(
        app: &App,
        id: Id,
        input: OutboundRouteInput,
    ) -> Result<OutboundRoute, ApiError> {
        input.validate()?;
        Ok(app.store().replace_outbound_route(id, &input).await?)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        Ok(app.store().delete_outbound_route(id).await?)
    }
}
