//! The admin API (SPEC §3, §4, §8): axum routes over the store, bearer
//! tokens with scopes, problem+json errors, and the OpenAPI document.

mod acl;
mod agents;
mod attendances;
mod auth;
mod calls;
mod departments;
mod extensions;
mod health;
mod holidays;
mod json;
mod openapi;
mod outbound_routes;
mod pbx;
mod periods;
mod problem;
mod registrations;
mod resource;
mod tokens;
mod trunks;
mod webhooks;

pub use problem::ApiError;

use axum::Router;
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use resource::routes;

/// Largest request body the API reads (configuration is small).
const MAX_BODY: usize = 1024 * 1024;

pub fn router(app: App) -> Router {
    let v1 = Router::new()
        .merge(routes::<extensions::Extensions>("/extensions"))
        .merge(routes::<tokens::Tokens>("/tokens"))
        .merge(routes::<departments::Departments>("/departments"))
        .merge(routes::<agents::Agents>("/agents"))
        .merge(agents::pause_routes())
        .merge(routes::<periods::Periods>("/periods"))
        .merge(routes::<holidays::Holidays>("/holidays"))
        .merge(routes::<trunks::Trunks>("/trunks"))
        .merge(trunks::status_routes())
        .merge(routes::<outbound_routes::OutboundRoutes>(
            "/outbound-routes",
        ))
        .merge(pbx::routes())
        .merge(routes::<acl::Acl>("/acl"))
        .merge(webhooks::routes())
        .merge(attendances::routes())
        .merge(calls::routes())
        .route("/registrations", get(registrations::list))
        .route("/openapi.json", get(openapi::document));
    Router::new()
        .nest("/api/v1", v1)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::acl_guard,
        ))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such endpoint".into())
}
