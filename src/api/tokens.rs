//! API tokens: managed by admins only; the value is shown once.

use serde::Serialize;

use super::ApiError;
use super::resource::Resource;
use crate::app::App;
use crate::domain::{ApiToken, ApiTokenInput, Id, Scope};
use crate::store::Page;

pub struct Tokens;

/// The answer to a create: the token and, this once, its value.
#[derive(Serialize, utoipa::ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: ApiToken,
    /// The bearer value; it cannot be read again.
    pub token: String,
}

impl Resource for Tokens {
    type Repr = ApiToken;
    type Input = ApiTokenInput;
    type Created = CreatedToken;
    const READ: Scope = Scope::Admin;
    const WRITE: Scope = Scope::Admin;

    fn to_input(repr: &ApiToken) -> ApiTokenInput {
        repr.to_input()
    }

    async fn list(app: &App, after: Id, limit: usize) -> Result<Page<ApiToken>, ApiError> {
        Ok(app.store().list_tokens(after, limit).await?)
    }

    async fn get(app: &App, id: Id) -> Result<ApiToken, ApiError> {
        Ok(app.store().get_token(id).await?)
    }

    async fn create(app: &App, input: ApiTokenInput) -> Result<CreatedToken, ApiError> {
        input.validate()?;
        let (info, token) = app.store().create_token(&input).await?;
        Ok(CreatedToken { info, token })
    }

    async fn replace(app: &App, id: Id, input: ApiTokenInput) -> Result<ApiToken, ApiError> {
        input.validate()?;
        Ok(app.store().replace_token(id, &input).await?)
    }

    async fn delete(app: &App, id: Id) -> Result<(), ApiError> {
        Ok(app.store().delete_token(id).await?)
    }
}
