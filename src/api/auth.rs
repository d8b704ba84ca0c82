//! Bearer tokens: who is calling, from where, and with which scopes.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::app::App;
use crate::domain::{AclApplies, ApiToken, Scope};
use crate::store::AuthenticatedToken;

/// The authenticated caller of a request.
pub struct Caller(pub AuthenticatedToken);

impl Caller {
    /// 403 unless the token grants `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if ApiToken::grants(&self.0.scopes, scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "token {:?} lacks the {} scope",
                self.0.name,
                scope.as_str()
            )))
        }
    }
}

fn peer(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized("missing bearer token"))?
            .to_str()
            .map_err(|_| ApiError::Unauthorized("malformed Authorization header"))?;
        let (scheme, token) = value
            .trim()
            .split_once(' ')
            .ok_or(ApiError::Unauthorized("malformed Authorization header"))?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(ApiError::Unauthorized("Authorization must be Bearer"));
        }
        let token = app
            .store()
            .authenticate(token.trim())
            .await?
            .ok_or(ApiError::Unauthorized("unknown token"))?;
        if !token.allowed_networks.is_empty() {
            let ip = peer(parts).map(|p| p.ip());
            let inside = ip.is_some_and(|ip| {
                let ip = match ip {
                    std::net::IpAddr::V6(v6) => {
                        v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip)
                    }
                    v4 => v4,
                };
                token.allowed_networks.iter().any(|n| n.contains(&ip))
            });
            if !inside {
                return Err(ApiError::Forbidden(format!(
                    "token {:?} may not be used from {}",
                    token.name,
                    ip.map(|i| i.to_string())
                        .unwrap_or_else(|| "an unknown address".into())
                )));
            }
        }
        Ok(Caller(token))
    }
}

/// Applies the ACL rules for `api` to every request, before anything else.
pub async fn acl_guard(State(app): State<App>, req: Request, next: Next) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(ip) = ip
        && !app.acl_allows(ip, AclApplies::Api)
    {
        tracing::info!(%ip, "API request refused by ACL");
        return ApiError::Forbidden(format!("{ip} is blocked by the ACL")).into_response();
    }
    next.run(req).await
}
