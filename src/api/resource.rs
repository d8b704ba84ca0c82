//! The CRUD shape every configuration resource shares (SPEC §3): list with
//! cursor pagination, create (with `Idempotency-Key`), read, replace (PUT),
//! merge-patch (PATCH, RFC 7396) and delete. A resource only says how to
//! reach its rows; the HTTP behaviour is written once, here.

use std::future::Future;

use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::ApiError;
use super::auth::Caller;
use super::json::{StrictJson, from_value};
use crate::app::App;
use crate::domain::{Id, Scope};
use crate::store::{Page, StoredResponse};

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

impl ListParams {
    pub const MAX: usize = 500;

    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(100),
            Some(n) if (1..=Self::MAX).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::invalid("limit", "must be 1 to 500")),
        }
    }

    /// The cursor of id-ordered lists: the last id of the previous page.
    pub fn after_id(&self) -> Result<Id, ApiError> {
        match &self.cursor {
            None => Ok(0),
            Some(c) => c
                .parse::<Id>()
                .map_err(|_| ApiError::invalid("cursor", "is not a cursor this API gave")),
        }
    }
}

/// How one configuration resource is stored and checked.
pub trait Resource: Send + Sync + 'static {
    type Repr: Serialize + Send;
    type Input: DeserializeOwned + Serialize + Send;
    /// What a create answers (the representation, or more for tokens).
    type Created: Serialize + Send;

    const READ: Scope;
    const WRITE: Scope;

    fn to_input(repr: &Self::Repr) -> Self::Input;

    fn list(
        app: &App,
        after: Id,
        limit: usize,
    ) -> impl Future<Output = Result<Page<Self::Repr>, ApiError>> + Send;
    fn get(app: &App, id: Id) -> impl Future<Output = Result<Self::Repr, ApiError>> + Send;
    /// Validates and creates.
    fn create(
        app: &App,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Created, ApiError>> + Send;
    /// Validates and replaces.
    fn replace(
        app: &App,
        id: Id,
        input: Self::Input,
    ) -> impl Future<Output = Result<Self::Repr, ApiError>> + Send;
    fn delete(app: &App, id: Id) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// The routes of `R` under `path` (`/extensions` and `/extensions/{id}`).
pub fn routes<R: Resource>(path: &str) -> Router<App> {
    Router::new()
        .route(path, get(list::<R>).post(create::<R>))
        .route(
            &format!("{path}/{{id}}"),
            get(read::<R>)
                .put(replace::<R>)
                .patch(patch::<R>)
                .delete(remove::<R>),
        )
}

async fn list<R: Resource>(
    State(app): State<App>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<R::Repr>>, ApiError> {
    caller.require(R::READ)?;
    Ok(Json(
        R::list(&app, params.after_id()?, params.limit()?).await?,
    ))
}

async fn read<R: Resource>(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<Id>,
) -> Result<Json<R::Repr>, ApiError> {
    caller.require(R::READ)?;
    Ok(Json(R::get(&app, id).await?))
}

async fn create<R: Resource>(
    State(app): State<App>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    StrictJson(input): StrictJson<R::Input>,
) -> Result<Response, ApiError> {
    caller.require(R::WRITE)?;
    idempotent(&app, &caller, &headers, uri.path(), || async {
        let created = R::create(&app, input).await?;
        Ok((
            StatusCode::CREATED,
            serde_json::to_string(&created).unwrap_or_default(),
        ))
    })
    .await
}

/// Runs `work` once per `Idempotency-Key` (per token): a retry with the same
/// key gets the first answer back, byte for byte.
pub async fn idempotent<F, Fut>(
    app: &App,
    caller: &Caller,
    headers: &HeaderMap,
    path: &str,
    work: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, String), ApiError>>,
{
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let k = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= 255)
                .ok_or_else(|| {
                    ApiError::invalid("Idempotency-Key", "must be 1 to 255 visible characters")
                })?;
            Some(k.to_owned())
        }
    };
    let store = app.store();
    if let Some(key) = &key
        && let Some(first) = store.idempotent_response(caller.0.id, key).await?
    {
        if first.path != path || first.method != Method::POST.as_str() {
            return Err(ApiError::invalid(
                "Idempotency-Key",
                format!("was already used for POST {}", first.path),
            ));
        }
        return Ok(json_response(first.status, first.body));
    }
    let (status, body) = work().await?;
    if let Some(key) = &key {
        store
            .remember_response(
                caller.0.id,
                key,
                &StoredResponse {
                    method: Method::POST.as_str().to_owned(),
                    path: path.to_owned(),
                    status: status.as_u16(),
                    body: body.clone(),
                },
            )
            .await?;
    }
    Ok(json_response(status.as_u16(), body))
}

fn json_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (
        status,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn replace<R: Resource>(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<Id>,
    StrictJson(input): StrictJson<R::Input>,
) -> Result<Json<R::Repr>, ApiError> {
    caller.require(R::WRITE)?;
    Ok(Json(R::replace(&app, id, input).await?))
}

async fn patch<R: Resource>(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<Id>,
    StrictJson(patch): StrictJson<serde_json::Value>,
) -> Result<Json<R::Repr>, ApiError> {
    caller.require(R::WRITE)?;
    let current = R::get(&app, id).await?;
    let input = merged::<R::Input>(&R::to_input(&current), patch)?;
    Ok(Json(R::replace(&app, id, input).await?))
}

/// Applies an RFC 7396 merge patch to `base` and reads the result back with
/// the same strictness as a full body.
pub fn merged<I: Serialize + DeserializeOwned>(
    base: &I,
    patch: serde_json::Value,
) -> Result<I, ApiError> {
    if !patch.is_object() {
        return Err(ApiError::invalid(
            "body",
            "a merge patch must be a JSON object",
        ));
    }
    let mut doc = serde_json::to_value(base)
        .map_err(|e| ApiError::Internal(format!("cannot represent resource: {e}")))?;
    merge(&mut doc, patch);
    from_value(doc)
}

fn merge(target: &mut serde_json::Value, patch: serde_json::Value) {
    use serde_json::Value;
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(Default::default());
            }
            if let Value::Object(t) = target {
                for (k, v) in fields {
                    if v.is_null() {
                        t.remove(&k);
                    } else {
                        merge(t.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other,
    }
}

async fn remove<R: Resource>(
    State(app): State<App>,
    caller: Caller,
    Path(id): Path<Id>,
) -> Result<StatusCode, ApiError> {
    caller.require(R::WRITE)?;
    R::delete(&app, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge(&mut doc, json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"list": [1, 2]});
        merge(&mut doc, json!({"list": [3]}));
        assert_eq!(doc, json!({"list": [3]}));
    }
}
