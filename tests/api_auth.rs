//! Bearer tokens, scopes and allowed networks, on SQLite and PostgreSQL.

mod common;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Creates a token and returns (id, value).
async fn token(srv: &TestServer, body: Value) -> (i64, String) {
    let (status, t) = srv.post("/tokens", body).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    (
        t["id"].as_i64().unwrap(),
        t["token"].as_str().expect("the value, once").to_owned(),
    )
}

both!(
    missing_or_unknown_token_is_401,
    |srv: TestServer| async move {
        let resp = srv
            .client
            .get(srv.url("/api/v1/extensions"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge:?}");
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/problem+json"
        );

        let (status, problem) = srv
            .call_as("pbxb_not-a-real-token", Method::GET, "/extensions", None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{problem}");

        let resp = srv
            .client
            .get(srv.url("/api/v1/extensions"))
            .header("authorization", format!("Basic {}", srv.token))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(resp.headers().contains_key("www-authenticate"));
    }
);

both!(
    scopes_limit_what_a_token_does,
    |srv: TestServer| async move {
        let (_, reader) = token(&srv, json!({"name": "reader", "scopes": ["config:read"]})).await;
        let (status, page) = srv.call_as(&reader, Method::GET, "/extensions", None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let (status, problem) = srv
            .call_as(
                &reader,
                Method::POST,
                "/extensions",
                Some(json!({"number": "1001", "secret": "s3cret-pass"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("config:write"),
            "{problem}"
        );
        let (_, page) = srv.get("/extensions").await;
        assert_eq!(page["items"], json!([]), "the refused create did nothing");

        // Only admins manage tokens.
        assert_eq!(
            srv.call_as(&reader, Method::GET, "/tokens", None).await.0,
            StatusCode::FORBIDDEN
        );
        let (_, writer) = token(
            &srv,
            json!({"name": "writer", "scopes": ["config:write", "calls"]}),
        )
        .await;
        assert_eq!(
            srv.call_as(&writer, Method::GET, "/tokens", None).await.0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            srv.call_as(
                &writer,
                Method::POST,
                "/tokens",
                Some(json!({"name": "x", "scopes": ["admin"]}))
            )
            .await
            .0,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            srv.call_as(
                &writer,
                Method::POST,
                "/extensions",
                Some(json!({"number": "1001", "secret": "s3cret-pass"}))
            )
            .await
            .0,
            StatusCode::CREATED
        );
        // Attendances need their own scope.
        assert_eq!(
            srv.call_as(&reader, Method::GET, "/attendances", None)
                .await
                .0,
            StatusCode::FORBIDDEN
        );
        let (_, admin) = token(&srv, json!({"name": "admin2", "scopes": ["admin"]})).await;
        assert_eq!(
            srv.call_as(&admin, Method::GET, "/tokens", None).await.0,
            StatusCode::OK
        );
    }
);

both!(
    allowed_networks_are_enforced,
    |srv: TestServer| async move {
        let (far_id, far) = token(
            &srv,
            json!({"name": "far", "scopes": ["config:read"], "allowed_networks": ["10.0.0.0/8"]}),
        )
        .await;
        let (status, problem) = srv.call_as(&far, Method::GET, "/extensions", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("127.0.0.1"),
            "{problem}"
        );

        let (_, near) = token(
            &srv,
            json!({"name": "near", "scopes": ["config:read"], "allowed_networks": ["127.0.0.0/8"]}),
        )
        .await;
        assert_eq!(
            srv.call_as(&near, Method::GET, "/extensions", None).await.0,
            StatusCode::OK
        );

        common::assert_invalid(
            &srv.post(
                "/tokens",
                json!({"name": "bad", "scopes": ["admin"], "allowed_networks": ["10.0.0.300/8"]}),
            )
            .await,
            "allowed_networks[0]",
        );

        // Widening the networks lets the first token in.
        let (status, t) = srv
            .patch(
                &format!("/tokens/{far_id}"),
                json!({"allowed_networks": ["10.0.0.0/8", "127.0.0.1/32"]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{t}");
        assert_eq!(
            srv.call_as(&far, Method::GET, "/extensions", None).await.0,
            StatusCode::OK
        );
    }
);

both!(token_value_is_shown_once, |srv: TestServer| async move {
    let (status, created) = srv
        .post("/tokens", json!({"name": "crm", "scopes": ["calls"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let value = created["token"].as_str().unwrap().to_owned();
    let id = created["id"].as_i64().unwrap();
    assert!(value.len() >= 32, "{value}");
    assert!(
        value.starts_with(created["prefix"].as_str().unwrap()),
        "{created}"
    );

    let (status, t) = srv.get(&format!("/tokens/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.get("token").is_none(), "{t}");
    let (_, page) = srv.get("/tokens").await;
    let text = page.to_string();
    assert!(!text.contains(&value), "the value is never listed: {text}");
    for t in page["items"].as_array().unwrap() {
        assert!(
            t.get("token").is_none() && t.get("token_hash").is_none(),
            "{t}"
        );
    }
    let (status, t) = srv
        .patch(&format!("/tokens/{id}"), json!({"name": "crm-2"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(t.get("token").is_none(), "{t}");

    // The value works until the token is deleted.
    assert_eq!(
        srv.call_as(&value, Method::GET, "/extensions", None)
            .await
            .0,
        StatusCode::FORBIDDEN,
        "calls does not grant config:read"
    );
    assert_eq!(
        srv.delete(&format!("/tokens/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.call_as(&value, Method::GET, "/extensions", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
});
