//! Trunks through the admin API, on SQLite and PostgreSQL.

mod common;

use common::{TestServer, assert_conflict, assert_invalid};
use pbx_bridge::store::Store;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn extension(srv: &TestServer, number: &str) -> i64 {
    srv.create(
        "/extensions",
        json!({"number": number, "secret": "s3cret-pass"}),
    )
    .await
}

fn trunk(name: &str) -> Value {
    json!({"name": name, "host": "sip.carrier.example"})
}

both!(trunk_crud_round_trip, |srv: TestServer| async move {
    let ext = extension(&srv, "1001").await;
    let ext2 = extension(&srv, "1002").await;
    let id = srv
        .create(
            "/trunks",
            json!({
                "name": "Carrier", "host": "sip.carrier.example", "port": 5080,
                "transport": "tcp", "username": "acct42", "secret": "trunk-secret-1",
                "register": true, "register_expires_s": 600, "max_channels": 30,
                "inbound": ["203.0.113.0/24", "2001:db8::/32"],
                "did_routes": [
                    {"did": "551130000002", "extension_id": ext2},
                    {"did": "551130000001", "extension_id": ext}
                ]
            }),
        )
        .await;
    let (status, t) = srv.get(&format!("/trunks/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["name"], "Carrier");
    assert_eq!(t["port"], 5080);
    assert_eq!(t["transport"], "tcp");
    assert_eq!(t["username"], "acct42");
    assert_eq!(t["has_secret"], true);
    assert_eq!(t["register"], true);
    assert_eq!(t["register_expires_s"], 600);
    assert_eq!(t["max_channels"], 30);
    assert_eq!(t["inbound"], json!(["203.0.113.0/24", "2001:db8::/32"]));
    assert_eq!(
        t["did_routes"],
        json!([
            {"did": "551130000002", "extension_id": ext2},
            {"did": "551130000001", "extension_id": ext}
        ]),
        "DID routes keep their order"
    );
    assert!(t.get("secret").is_none(), "secrets are never returned: {t}");

    // PATCH keeps what it does not name, the secret included.
    let (status, t) = srv
        .patch(
            &format!("/trunks/{id}"),
            json!({"host": "198.51.100.7", "max_channels": null, "did_routes": []}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["host"], "198.51.100.7");
    assert_eq!(t["port"], 5080);
    assert_eq!(t["max_channels"], Value::Null);
    assert_eq!(t["did_routes"], json!([]));
    assert_eq!(t["has_secret"], true);
    assert!(t.get("secret").is_none(), "{t}");

    // PUT without a secret keeps the stored one (register needs it).
    let (status, t) = srv
        .put(
            &format!("/trunks/{id}"),
            json!({"name": "Carrier B", "host": "sip.b.example", "username": "acct42",
                   "register": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    assert_eq!(t["name"], "Carrier B");
    assert_eq!(t["port"], 5060);
    assert_eq!(t["transport"], "udp");
    assert_eq!(t["register_expires_s"], 3600);
    assert_eq!(t["has_secret"], true);
    let store = Store::connect(&srv.db.url).await.unwrap();
    assert_eq!(
        store.trunk_secret(id).await.unwrap().as_deref(),
        Some("trunk-secret-1")
    );

    // A new secret replaces it.
    let (status, _) = srv
        .patch(
            &format!("/trunks/{id}"),
            json!({"secret": "trunk-secret-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        store.trunk_secret(id).await.unwrap().as_deref(),
        Some("trunk-secret-2")
    );
    store.close().await;

    // Without a secret at all.
    let plain = srv.create("/trunks", trunk("Peer")).await;
    let (_, p) = srv.get(&format!("/trunks/{plain}")).await;
    assert_eq!(p["has_secret"], false);
    assert_eq!(p["username"], Value::Null);

    let (status, page) = srv.get("/trunks").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Carrier B", "Peer"]);
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("secret").is_none())
    );

    assert_eq!(
        srv.delete(&format!("/trunks/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.get(&format!("/trunks/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.delete(&format!("/trunks/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.put(&format!("/trunks/{id}"), trunk("Gone")).await.0,
        StatusCode::NOT_FOUND
    );
});

both!(trunk_bad_input_is_named, |srv: TestServer| async move {
    let ext = extension(&srv, "1001").await;
    let with = |extra: Value| {
        let mut body = trunk("T");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (body, field) in [
        (json!({"host": "sip.example"}), "name"),
        (json!({"name": "T"}), "host"),
        (with(json!({"host": "bad host!"})), "host"),
        (with(json!({"port": 0})), "port"),
        (with(json!({"port": "5060"})), "port"),
        (with(json!({"port": 70000})), "port"),
        (with(json!({"transport": "sctp"})), "transport"),
        (with(json!({"secret": "short"})), "secret"),
        (with(json!({"register": true})), "username"),
        (with(json!({"register": true, "username": "u"})), "secret"),
        (with(json!({"register_expires_s": 5})), "register_expires_s"),
        (with(json!({"max_channels": 0})), "max_channels"),
        (with(json!({"inbound": ["10.0.0.300/8"]})), "inbound[0]"),
        (with(json!({"colour": "red"})), "colour"),
        (
            with(json!({"did_routes": [{"did": "5511", "department_id": 999}]})),
            "did_routes[0].department_id",
        ),
        (
            with(json!({"did_routes": [
                {"did": "5511", "extension_id": ext},
                {"did": "5512", "extension_id": 999}
            ]})),
            "did_routes[1].extension_id",
        ),
        (
            with(json!({"did_routes": [{"did": "5511"}]})),
            "did_routes[0]",
        ),
        (
            with(json!({"did_routes": [{"did": "55x", "extension_id": ext}]})),
            "did_routes[0].did",
        ),
        (
            with(json!({"did_routes": [
                {"did": "5511", "extension_id": ext},
                {"did": "5511", "extension_id": ext}
            ]})),
            "did_routes[1].did",
        ),
        (
            with(json!({"did_routes": [{"did": "5511", "extension_id": ext, "x": 1}]})),
            "did_routes[0].x",
        ),
    ] {
        assert_invalid(&srv.post("/trunks", body).await, field);
    }
    let (_, page) = srv.get("/trunks").await;
    assert_eq!(page["items"], json!([]), "nothing invalid was stored");

    let first = srv.create("/trunks", trunk("Carrier")).await;
    assert_conflict(&srv.post("/trunks", trunk("Carrier")).await, "Carrier");
    let other = srv.create("/trunks", trunk("Other")).await;
    assert_conflict(
        &srv.put(&format!("/trunks/{other}"), trunk("Carrier")).await,
        &format!("trunk {first}"),
    );
    // Renaming to its own name is no conflict.
    assert_eq!(
        srv.put(&format!("/trunks/{first}"), trunk("Carrier"))
            .await
            .0,
        StatusCode::OK
    );
    assert_invalid(
        &srv.patch(&format!("/trunks/{first}"), json!({"port": "x"}))
            .await,
        "port",
    );
});

both!(
    trunk_used_by_an_outbound_route_cannot_be_deleted,
    |srv: TestServer| async move {
        let t = srv.create("/trunks", trunk("Carrier")).await;
        let route = srv
            .create(
                "/outbound-routes",
                json!({"name": "Mobile", "patterns": ["_9XXXXXXXX"], "trunk_ids": [t]}),
            )
            .await;
        let result = srv.delete(&format!("/trunks/{t}")).await;
        assert_conflict(&result, &format!("outbound route {route}"));
        assert_eq!(srv.get(&format!("/trunks/{t}")).await.0, StatusCode::OK);
        assert_eq!(
            srv.delete(&format!("/outbound-routes/{route}")).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            srv.delete(&format!("/trunks/{t}")).await.0,
            StatusCode::NO_CONTENT
        );
    }
);

both!(
    extension_in_a_did_route_cannot_be_deleted,
    |srv: TestServer| async move {
        let ext = extension(&srv, "1001").await;
        let mut body = trunk("Carrier");
        body["did_routes"] = json!([{"did": "5511", "extension_id": ext}]);
        let t = srv.create("/trunks", body).await;
        assert_conflict(
            &srv.delete(&format!("/extensions/{ext}")).await,
            &format!("trunk {t}"),
        );
    }
);

both!(
    trunk_pages_carry_their_own_did_routes,
    |srv: TestServer| async move {
        let ext = extension(&srv, "1001").await;
        for n in 0..5 {
            let mut body = trunk(&format!("T{n}"));
            body["did_routes"] = json!([
                {"did": format!("{n}1"), "extension_id": ext},
                {"did": format!("{n}2"), "extension_id": ext}
            ]);
            srv.create("/trunks", body).await;
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/trunks?limit=2&cursor={c}"),
                None => "/trunks?limit=2".to_owned(),
            };
            let (status, page) = srv.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            for t in page["items"].as_array().unwrap() {
                let name = t["name"].as_str().unwrap().to_owned();
                let n = &name[1..];
                let dids: Vec<&str> = t["did_routes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["did"].as_str().unwrap())
                    .collect();
                assert_eq!(dids, [format!("{n}1"), format!("{n}2")], "{t}");
                seen.push(name);
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen, ["T0", "T1", "T2", "T3", "T4"]);
        assert_invalid(&srv.get("/trunks?limit=501").await, "limit");
    }
);
