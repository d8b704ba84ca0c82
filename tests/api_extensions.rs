//! Extensions through the admin API, on SQLite and PostgreSQL.

mod common;

use common::{TestServer, assert_conflict, assert_invalid};
use reqwest::StatusCode;
use serde_json::json;

both!(extension_crud_round_trip, |srv: TestServer| async move {
    let id = srv
        .create(
            "/extensions",
            json!({"number": "1001", "display_name": "Agent One", "secret": "s3cret-pass"}),
        )
        .await;
    let (status, ext) = srv.get(&format!("/extensions/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ext["number"], "1001");
    assert_eq!(ext["digest_algorithms"], json!(["MD5"]));
    assert_eq!(ext["active"], true);
    assert!(
        ext.get("secret").is_none(),
        "secrets are never returned: {ext}"
    );

    let (status, ext) = srv
        .patch(
            &format!("/extensions/{id}"),
            json!({"display_name": "Ana", "digest_algorithms": ["SHA-256", "MD5"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ext}");
    assert_eq!(ext["display_name"], "Ana");
    assert_eq!(ext["number"], "1001");
    assert_eq!(ext["digest_algorithms"], json!(["SHA-256", "MD5"]));

    let (status, ext) = srv
        .put(
            &format!("/extensions/{id}"),
            json!({"number": "1002", "display_name": "Bia"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ext}");
    assert_eq!(ext["number"], "1002");

    let (status, page) = srv.get("/extensions").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    assert_eq!(
        srv.delete(&format!("/extensions/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.get(&format!("/extensions/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.delete(&format!("/extensions/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
});

both!(extension_bad_input_is_named, |srv: TestServer| async move {
    let ok = json!({"number": "1001", "secret": "s3cret-pass"});
    for (body, field) in [
        (json!({"number": "1", "secret": "s3cret-pass"}), "number"),
        (json!({"number": "12a4", "secret": "s3cret-pass"}), "number"),
        (json!({"number": "1001"}), "secret"),
        (json!({"number": "1001", "secret": "short"}), "secret"),
        (json!({"number": 1001, "secret": "s3cret-pass"}), "number"),
        (
            json!({"number": "1001", "secret": "s3cret-pass", "colour": "red"}),
            "colour",
        ),
        (
            json!({"number": "1001", "secret": "s3cret-pass", "digest_algorithms": ["SHA256"]}),
            "digest_algorithms[0]",
        ),
        (
            json!({"number": "1001", "secret": "s3cret-pass", "follow_me": {"enabled": true}}),
            "follow_me.number",
        ),
        (
            json!({"number": "1001", "secret": "s3cret-pass", "follow_me": {"enabled": true, "number": "x"}}),
            "follow_me.number",
        ),
        (
            json!({"number": "1001", "secret": "s3cret-pass", "agent_id": 999}),
            "agent_id",
        ),
        (json!({"secret": "s3cret-pass"}), "number"),
    ] {
        assert_invalid(&srv.post("/extensions", body).await, field);
    }
    srv.create("/extensions", ok.clone()).await;
    assert_conflict(&srv.post("/extensions", ok).await, "1001");
});

both!(
    pagination_walks_every_item_once,
    |srv: TestServer| async move {
        for n in 0..7 {
            srv.create(
                "/extensions",
                json!({"number": format!("20{n}"), "secret": "s3cret-pass"}),
            )
            .await;
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/extensions?limit=3&cursor={c}"),
                None => "/extensions?limit=3".to_owned(),
            };
            let (status, page) = srv.get(&path).await;
            assert_eq!(status, StatusCode::OK);
            for item in page["items"].as_array().unwrap() {
                seen.push(item["number"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, (0..7).map(|n| format!("20{n}")).collect::<Vec<_>>());
        assert_invalid(&srv.get("/extensions?limit=0").await, "limit");
        assert_invalid(&srv.get("/extensions?cursor=abc").await, "cursor");
    }
);

both!(
    idempotency_key_returns_the_first_result,
    |srv: TestServer| async move {
        let send = || {
            srv.client
                .post(srv.url("/api/v1/extensions"))
                .bearer_auth(&srv.token)
                .header("Idempotency-Key", "create-1001")
                .json(&json!({"number": "1001", "secret": "s3cret-pass"}))
                .send()
        };
        let first = send().await.unwrap();
        assert_eq!(first.status(), StatusCode::CREATED);
        let first: serde_json::Value = first.json().await.unwrap();
        let again = send().await.unwrap();
        assert_eq!(again.status(), StatusCode::CREATED);
        let again: serde_json::Value = again.json().await.unwrap();
        assert_eq!(first, again);
        let (_, page) = srv.get("/extensions").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
    }
);
