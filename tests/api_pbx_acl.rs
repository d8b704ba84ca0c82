//! The PBX singleton and the ACL through the admin API, on SQLite and
//! PostgreSQL.

mod common;

use common::{TestServer, assert_invalid};
use pbx_bridge::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Creates a token with `scopes` and returns its value.
async fn token(srv: &TestServer, scopes: Value) -> String {
    let (status, t) = srv
        .post("/tokens", json!({"name": "limited", "scopes": scopes}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

both!(pbx_default_put_patch, |srv: TestServer| async move {
    let (status, pbx) = srv.get("/pbx").await;
    assert_eq!(status, StatusCode::OK, "{pbx}");
    assert_eq!(
        pbx,
        json!({"ami_host": "127.0.0.1", "ami_port": 5038, "ami_username": "",
               "has_ami_secret": false, "sip_host": "127.0.0.1", "sip_port": 5060,
               "enabled": false, "updated_at": null})
    );

    // Enabling needs credentials.
    let result = srv
        .put(
            "/pbx",
            json!({"ami_host": "10.0.0.5", "sip_host": "10.0.0.5", "enabled": true,
                   "ami_username": "bridge"}),
        )
        .await;
    assert_invalid(&result, "ami_secret");

    let (status, pbx) = srv
        .put(
            "/pbx",
            json!({"ami_host": "10.0.0.5", "sip_host": "pbx.example", "enabled": true,
                   "ami_username": "bridge", "ami_secret": "ami-secret-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pbx}");
    assert_eq!(pbx["ami_host"], "10.0.0.5");
    assert_eq!(pbx["sip_host"], "pbx.example");
    assert_eq!(pbx["ami_port"], 5038);
    assert_eq!(pbx["enabled"], true);
    assert_eq!(pbx["has_ami_secret"], true);
    assert!(pbx["updated_at"].is_string(), "{pbx}");
    assert!(
        pbx.get("ami_secret").is_none(),
        "secrets are never returned"
    );
    assert_eq!(srv.get("/pbx").await.1, pbx);

    // PATCH merges onto the stored connection and keeps the secret.
    let (status, pbx) = srv.patch("/pbx", json!({"ami_port": 5039})).await;
    assert_eq!(status, StatusCode::OK, "{pbx}");
    assert_eq!(pbx["ami_port"], 5039);
    assert_eq!(pbx["ami_host"], "10.0.0.5");
    assert_eq!(pbx["enabled"], true);
    assert_eq!(pbx["has_ami_secret"], true);
    assert!(pbx.get("ami_secret").is_none());

    // PUT without a secret keeps it too; with one replaces it.
    let (status, pbx) = srv
        .put(
            "/pbx",
            json!({"ami_host": "10.0.0.6", "sip_host": "10.0.0.6", "enabled": true,
                   "ami_username": "bridge"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pbx}");
    assert_eq!(pbx["ami_port"], 5038, "PUT replaces: defaults return");
    assert_eq!(pbx["has_ami_secret"], true);
    let store = Store::connect(&srv.db.url).await.unwrap();
    assert_eq!(
        store.pbx_ami_secret().await.unwrap().as_deref(),
        Some("ami-secret-1")
    );
    srv.patch("/pbx", json!({"ami_secret": "ami-secret-2"}))
        .await;
    assert_eq!(
        store.pbx_ami_secret().await.unwrap().as_deref(),
        Some("ami-secret-2")
    );
    store.close().await;

    for (body, field) in [
        (json!({"sip_host": "x"}), "ami_host"),
        (json!({"ami_host": "x"}), "sip_host"),
        (json!({"ami_host": "bad host", "sip_host": "x"}), "ami_host"),
        (
            json!({"ami_host": "x", "sip_host": "x", "ami_port": 0}),
            "ami_port",
        ),
        (
            json!({"ami_host": "x", "sip_host": "x", "ami_port": "5038"}),
            "ami_port",
        ),
        (
            json!({"ami_host": "x", "sip_host": "x", "sip_port": 70000}),
            "sip_port",
        ),
        (
            json!({"ami_host": "x", "sip_host": "x", "enabled": "yes"}),
            "enabled",
        ),
        (
            json!({"ami_host": "x", "sip_host": "x", "colour": "red"}),
            "colour",
        ),
        (
            json!({"ami_host": "x", "sip_host": "x", "ami_secret": ""}),
            "ami_secret",
        ),
    ] {
        assert_invalid(&srv.put("/pbx", body).await, field);
    }
    assert_invalid(&srv.patch("/pbx", json!({"enabled": 1})).await, "enabled");
    assert_invalid(
        &srv.patch("/pbx", json!({"ami_host": null})).await,
        "ami_host",
    );
    assert_eq!(srv.get("/pbx").await.1["ami_host"], "10.0.0.6");

    // A singleton has no POST or DELETE.
    for method in [Method::POST, Method::DELETE] {
        let (status, body) = srv.call(method, "/pbx", Some(json!({}))).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    }
});

both!(pbx_scopes, |srv: TestServer| async move {
    let reader = token(&srv, json!(["config:read"])).await;
    let writer = token(&srv, json!(["config:write"])).await;
    let body = json!({"ami_host": "10.0.0.5", "sip_host": "10.0.0.5"});
    assert_eq!(
        srv.call_as(&reader, Method::GET, "/pbx", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        srv.call_as(&reader, Method::PUT, "/pbx", Some(body.clone()))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        srv.call_as(
            &reader,
            Method::PATCH,
            "/pbx",
            Some(json!({"enabled": false}))
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        srv.call_as(&writer, Method::PUT, "/pbx", Some(body))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        srv.call_as(&writer, Method::GET, "/pbx", None).await.0,
        StatusCode::OK,
        "config:write implies config:read"
    );
});

both!(acl_crud_round_trip, |srv: TestServer| async move {
    let a = srv
        .create(
            "/acl",
            json!({"cidr": "198.51.100.0/24", "action": "deny", "applies_to": "sip"}),
        )
        .await;
    let b = srv
        .create("/acl", json!({"cidr": "2001:db8::/32", "action": "allow"}))
        .await;
    let (status, rule) = srv.get(&format!("/acl/{a}")).await;
    assert_eq!(status, StatusCode::OK, "{rule}");
    assert_eq!(rule["cidr"], "198.51.100.0/24");
    assert_eq!(rule["action"], "deny");
    assert_eq!(rule["applies_to"], "sip");
    assert_eq!(rule["position"], 0);
    let (_, rule_b) = srv.get(&format!("/acl/{b}")).await;
    assert_eq!(rule_b["position"], 1, "an absent position goes last");
    assert_eq!(rule_b["applies_to"], "both");

    let (status, rule) = srv
        .patch(
            &format!("/acl/{a}"),
            json!({"action": "allow", "position": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rule}");
    assert_eq!(rule["action"], "allow");
    assert_eq!(rule["position"], 5);
    assert_eq!(rule["cidr"], "198.51.100.0/24");

    let (status, rule) = srv
        .put(
            &format!("/acl/{a}"),
            json!({"cidr": "192.0.2.0/24", "action": "deny", "applies_to": "sip"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rule}");
    assert_eq!(rule["cidr"], "192.0.2.0/24");
    assert_eq!(
        rule["position"], 5,
        "an absent position keeps the rule's place"
    );

    let (status, page) = srv.get("/acl?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, page) = srv.get(&format!("/acl?limit=1&cursor={cursor}")).await;
    assert_eq!(page["items"][0]["id"], b);
    assert_eq!(page["next_cursor"], Value::Null);

    assert_eq!(
        srv.delete(&format!("/acl/{a}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(srv.get(&format!("/acl/{a}")).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        srv.delete(&format!("/acl/{a}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.put(
            &format!("/acl/{a}"),
            json!({"cidr": "10.0.0.0/8", "action": "deny"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
});

both!(acl_bad_input_is_named, |srv: TestServer| async move {
    for (body, field) in [
        (json!({"cidr": "10.0.0.300/8", "action": "deny"}), "cidr"),
        (json!({"cidr": "10.0.0.0/33", "action": "deny"}), "cidr"),
        (json!({"cidr": "not a network", "action": "deny"}), "cidr"),
        (json!({"cidr": 10, "action": "deny"}), "cidr"),
        (json!({"action": "deny"}), "cidr"),
        (json!({"cidr": "10.0.0.0/8"}), "action"),
        (json!({"cidr": "10.0.0.0/8", "action": "maybe"}), "action"),
        (
            json!({"cidr": "10.0.0.0/8", "action": "deny", "applies_to": "web"}),
            "applies_to",
        ),
        (
            json!({"cidr": "10.0.0.0/8", "action": "deny", "position": -1}),
            "position",
        ),
        (
            json!({"cidr": "10.0.0.0/8", "action": "deny", "position": "first"}),
            "position",
        ),
        (
            json!({"cidr": "10.0.0.0/8", "action": "deny", "colour": "red"}),
            "colour",
        ),
    ] {
        assert_invalid(&srv.post("/acl", body).await, field);
    }
    // The reason says what a CIDR is.
    let (_, problem) = srv
        .post("/acl", json!({"cidr": "10.0.0.300/8", "action": "deny"}))
        .await;
    let reason = problem["errors"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("CIDR") && reason.contains("10.0.0.300/8"),
        "unclear reason: {reason}"
    );
    let (_, page) = srv.get("/acl").await;
    assert_eq!(page["items"], json!([]));
});

both!(
    acl_changes_apply_to_the_next_request,
    |srv: TestServer| async move {
        // A deny for SIP never blocks the API.
        srv.create(
            "/acl",
            json!({"cidr": "127.0.0.0/8", "action": "deny", "applies_to": "sip"}),
        )
        .await;
        assert_eq!(srv.get("/extensions").await.0, StatusCode::OK);

        // An earlier allow wins over a later deny for the API.
        let allow = srv
        .create(
            "/acl",
            json!({"cidr": "127.0.0.1/32", "action": "allow", "applies_to": "api", "position": 0}),
        )
        .await;
        srv.create(
            "/acl",
            json!({"cidr": "127.0.0.0/8", "action": "deny", "applies_to": "api", "position": 10}),
        )
        .await;
        assert_eq!(srv.get("/extensions").await.0, StatusCode::OK);

        // Deleting the allow exposes the deny at once: the next request is 403.
        assert_eq!(
            srv.delete(&format!("/acl/{allow}")).await.0,
            StatusCode::NO_CONTENT
        );
        let (status, problem) = srv.get("/extensions").await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("ACL"),
            "{problem}"
        );
        let (status, _) = srv.get("/acl").await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "the ACL API is behind it too"
        );
    }
);

both!(acl_deny_both_blocks_the_api, |srv: TestServer| async move {
    let (status, _) = srv
        .post("/acl", json!({"cidr": "127.0.0.0/8", "action": "deny"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(srv.get("/pbx").await.0, StatusCode::FORBIDDEN);
});
