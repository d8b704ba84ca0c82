//! Webhooks and their delivery history through the admin API, on SQLite
//! and PostgreSQL.

mod common;

use common::{TestServer, assert_invalid};
use pbx_bridge::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

const SECRET: &str = "whsec-0123456789abcdef";

both!(webhook_crud_round_trip, |srv: TestServer| async move {
    let id = srv
        .create(
            "/webhooks",
            json!({"url": "https://crm.example/hooks/pbx", "secret": SECRET,
                   "events": ["attendance.opened", "call.ended"]}),
        )
        .await;
    let (status, w) = srv.get(&format!("/webhooks/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{w}");
    assert_eq!(w["url"], "https://crm.example/hooks/pbx");
    assert_eq!(w["events"], json!(["attendance.opened", "call.ended"]));
    assert_eq!(w["active"], true);
    assert!(w.get("secret").is_none(), "secrets are never returned: {w}");

    let (status, w) = srv
        .patch(
            &format!("/webhooks/{id}"),
            json!({"active": false, "events": ["recording.ready"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{w}");
    assert_eq!(w["active"], false);
    assert_eq!(w["events"], json!(["recording.ready"]));
    assert_eq!(w["url"], "https://crm.example/hooks/pbx");
    assert!(w.get("secret").is_none());

    // PUT without a secret keeps the stored one.
    let (status, w) = srv
        .put(
            &format!("/webhooks/{id}"),
            json!({"url": "http://10.0.0.9:8080/in", "events": ["agent.paused", "agent.unpaused"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{w}");
    assert_eq!(w["url"], "http://10.0.0.9:8080/in");
    assert_eq!(w["active"], true);
    let store = Store::connect(&srv.db.url).await.unwrap();
    assert_eq!(store.webhook_secret(id).await.unwrap(), SECRET);
    srv.patch(
        &format!("/webhooks/{id}"),
        json!({"secret": "another-secret-0123"}),
    )
    .await;
    assert_eq!(
        store.webhook_secret(id).await.unwrap(),
        "another-secret-0123"
    );
    store.close().await;

    let (status, page) = srv.get("/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["items"][0].get("secret").is_none());

    let (status, deliveries) = srv.get(&format!("/webhooks/{id}/deliveries")).await;
    assert_eq!(status, StatusCode::OK, "{deliveries}");
    assert_eq!(deliveries, json!({"items": [], "next_cursor": null}));
    assert_eq!(
        srv.get("/webhooks/999/deliveries").await.0,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        srv.delete(&format!("/webhooks/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.get(&format!("/webhooks/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.get(&format!("/webhooks/{id}/deliveries")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.delete(&format!("/webhooks/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.put(
            &format!("/webhooks/{id}"),
            json!({"url": "https://x.example", "events": ["call.ended"]})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
});

both!(webhook_bad_input_is_named, |srv: TestServer| async move {
    let base = json!({"url": "https://crm.example/h", "secret": SECRET, "events": ["call.ended"]});
    let with = |extra: Value| {
        let mut body = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, field) in [
        (
            json!({"url": "https://crm.example/h", "events": ["call.ended"]}),
            "secret",
        ),
        (with(json!({"secret": "short"})), "secret"),
        (with(json!({"url": "ftp://crm.example/h"})), "url"),
        (with(json!({"url": "https://"})), "url"),
        (with(json!({"url": "https://a b.example"})), "url"),
        (json!({"secret": SECRET, "events": ["call.ended"]}), "url"),
        (with(json!({"events": []})), "events"),
        (with(json!({"events": ["call.exploded"]})), "events[0]"),
        (
            with(json!({"events": ["call.ended", "call.ended"]})),
            "events[1]",
        ),
        (with(json!({"events": "call.ended"})), "events"),
        (with(json!({"active": "yes"})), "active"),
        (with(json!({"colour": "red"})), "colour"),
    ] {
        assert_invalid(&srv.post("/webhooks", body).await, field);
    }
    let (_, page) = srv.get("/webhooks").await;
    assert_eq!(page["items"], json!([]));
    let id = srv.create("/webhooks", base).await;
    assert_invalid(
        &srv.patch(&format!("/webhooks/{id}"), json!({"secret": "short"}))
            .await,
        "secret",
    );
    assert_invalid(
        &srv.get(&format!("/webhooks/{id}/deliveries?limit=0")).await,
        "limit",
    );
    assert_invalid(
        &srv.get(&format!("/webhooks/{id}/deliveries?cursor=x"))
            .await,
        "cursor",
    );
});

both!(
    webhook_deliveries_newest_first,
    |srv: TestServer| async move {
        let id = srv
            .create(
                "/webhooks",
                json!({"url": "https://crm.example/h", "secret": SECRET, "events": ["call.ended"]}),
            )
            .await;
        let other = srv
        .create(
            "/webhooks",
            json!({"url": "https://other.example/h", "secret": SECRET, "events": ["call.ended"]}),
        )
        .await;
        // The outbox does not exist yet: write its rows as it will.
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&srv.db.url).await.unwrap();
        for n in 0..5i64 {
            for hook in [id, other] {
                sqlx::query(
                    "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, status, \
                 attempts, last_status_code, last_error, next_attempt_at, created_at, \
                 delivered_at) VALUES ($1, $2, 'call.ended', $3, $4, $5, $6, NULL, $7, $8)",
                )
                .bind(hook)
                .bind(format!("ev-{hook}-{n}"))
                .bind(if n == 4 { "failed" } else { "delivered" })
                .bind(n + 1)
                .bind(if n == 4 { 503i64 } else { 200 })
                .bind(if n == 4 {
                    Some("503 Service Unavailable")
                } else {
                    None
                })
                .bind(1_700_000_000_000 + n)
                .bind(if n == 4 {
                    None
                } else {
                    Some(1_700_000_000_500 + n)
                })
                .execute(&pool)
                .await
                .unwrap();
            }
        }
        pool.close().await;

        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/webhooks/{id}/deliveries?limit=2&cursor={c}"),
                None => format!("/webhooks/{id}/deliveries?limit=2"),
            };
            let (status, page) = srv.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            for d in page["items"].as_array().unwrap() {
                seen.push(d["event_id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let expected: Vec<String> = (0..5).rev().map(|n| format!("ev-{id}-{n}")).collect();
        assert_eq!(seen, expected, "newest first, only this webhook's");

        let (_, page) = srv.get(&format!("/webhooks/{id}/deliveries?limit=1")).await;
        let d = &page["items"][0];
        assert_eq!(d["event_type"], "call.ended");
        assert_eq!(d["status"], "failed");
        assert_eq!(d["attempts"], 5);
        assert_eq!(d["last_status_code"], 503);
        assert_eq!(d["last_error"], "503 Service Unavailable");
        assert_eq!(d["delivered_at"], Value::Null);
        assert_eq!(d["next_attempt_at"], Value::Null);
        assert!(d["created_at"].is_string());
        let (_, page) = srv.get(&format!("/webhooks/{id}/deliveries?limit=5")).await;
        assert_eq!(page["items"][4]["status"], "delivered");
        assert_eq!(page["items"][4]["last_status_code"], 200);
        assert!(page["items"][4]["delivered_at"].is_string());

        // Deleting the webhook takes its history with it.
        assert_eq!(
            srv.delete(&format!("/webhooks/{id}")).await.0,
            StatusCode::NO_CONTENT
        );
        let (_, page) = srv.get(&format!("/webhooks/{other}/deliveries")).await;
        assert_eq!(page["items"].as_array().unwrap().len(), 5);
    }
);
