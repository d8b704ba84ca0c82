//! The admin API (SPEC §3, §4, §8): axum routes over the store, bearer
//! tokens with scopes, problem+json errors, and the OpenAPI document.

mod attendances;
mod auth;
mod extensions;
mod health;
mod json;
mod openapi;
mod problem;
mod resource;
mod tokens;

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
        .merge(attendances::routes())
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
