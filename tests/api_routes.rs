//! Outbound routes through the admin API, on SQLite and PostgreSQL.

mod common;

use common::{TestServer, assert_conflict, assert_invalid};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn trunk(srv: &TestServer, name: &str) -> i64 {
    srv.create("/trunks", json!({"name": name, "host": "sip.example"}))
        .await
}

async fn extension(srv: &TestServer, number: &str) -> i64 {
    srv.create(
        "/extensions",
        json!({"number": number, "secret": "s3cret-pass"}),
    )
    .await
}

both!(
    outbound_route_crud_round_trip,
    |srv: TestServer| async move {
        let t1 = trunk(&srv, "A").await;
        let t2 = trunk(&srv, "B").await;
        let e1 = extension(&srv, "1001").await;
        let e2 = extension(&srv, "1002").await;
        let id = srv
            .create(
                "/outbound-routes",
                json!({
                    "name": "Mobile", "priority": 10,
                    "patterns": ["_0XX9XXXXXXXX", "_9XXXXXXXX", "190"],
                    "strip": 1, "prepend": "0015",
                    "trunk_ids": [t2, t1],
                    "allowed_extension_ids": [e1, e2]
                }),
            )
            .await;
        let (status, r) = srv.get(&format!("/outbound-routes/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["name"], "Mobile");
        assert_eq!(r["priority"], 10);
        assert_eq!(r["patterns"], json!(["_0XX9XXXXXXXX", "_9XXXXXXXX", "190"]));
        assert_eq!(r["strip"], 1);
        assert_eq!(r["prepend"], "0015");
        assert_eq!(r["trunk_ids"], json!([t2, t1]), "failover order is kept");
        assert_eq!(r["allowed_extension_ids"], json!([e1, e2]));

        let (status, r) = srv
            .patch(
                &format!("/outbound-routes/{id}"),
                json!({"priority": 1, "trunk_ids": [t1, t2], "allowed_extension_ids": [e2]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["priority"], 1);
        assert_eq!(r["name"], "Mobile");
        assert_eq!(r["strip"], 1);
        assert_eq!(r["trunk_ids"], json!([t1, t2]));
        assert_eq!(r["allowed_extension_ids"], json!([e2]));

        let (status, r) = srv
            .put(
                &format!("/outbound-routes/{id}"),
                json!({"name": "Local", "patterns": ["_NXXXXXXX"], "trunk_ids": [t2]}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!(r["name"], "Local");
        assert_eq!(r["priority"], 0);
        assert_eq!(r["strip"], 0);
        assert_eq!(r["prepend"], "");
        assert_eq!(r["trunk_ids"], json!([t2]));
        assert_eq!(r["allowed_extension_ids"], json!([]));

        // Lists are in id order whatever the priority.
        let second = srv
            .create(
                "/outbound-routes",
                json!({"name": "Intl", "priority": -5, "patterns": ["_00."], "trunk_ids": [t1]}),
            )
            .await;
        let (status, page) = srv.get("/outbound-routes").await;
        assert_eq!(status, StatusCode::OK);
        let ids: Vec<i64> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, [id, second]);
        assert_eq!(page["items"][1]["trunk_ids"], json!([t1]));

        assert_eq!(
            srv.delete(&format!("/outbound-routes/{id}")).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            srv.get(&format!("/outbound-routes/{id}")).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            srv.delete(&format!("/outbound-routes/{id}")).await.0,
            StatusCode::NOT_FOUND
        );
        // Its trunk is free again.
        assert_eq!(
            srv.delete(&format!("/trunks/{t2}")).await.0,
            StatusCode::NO_CONTENT
        );
    }
);

both!(
    outbound_route_bad_input_is_named,
    |srv: TestServer| async move {
        let t = trunk(&srv, "A").await;
        let e = extension(&srv, "1001").await;
        let base = json!({"name": "R", "patterns": ["_9X."], "trunk_ids": [t]});
        let with = |extra: Value| {
            let mut body = base.clone();
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            body
        };
        for (body, field) in [
            (with(json!({"patterns": ["_[12"]})), "patterns[0]"),
            (with(json!({"patterns": ["190", "_X[5-"]})), "patterns[1]"),
            (with(json!({"patterns": []})), "patterns"),
            (json!({"name": "R", "trunk_ids": [t]}), "patterns"),
            (json!({"name": "R", "patterns": ["190"]}), "trunk_ids"),
            (with(json!({"trunk_ids": []})), "trunk_ids"),
            (with(json!({"trunk_ids": [999]})), "trunk_ids[0]"),
            (with(json!({"trunk_ids": [t, 999]})), "trunk_ids[1]"),
            (with(json!({"trunk_ids": [t, t]})), "trunk_ids[1]"),
            (
                with(json!({"allowed_extension_ids": [999]})),
                "allowed_extension_ids[0]",
            ),
            (
                with(json!({"allowed_extension_ids": [e, e]})),
                "allowed_extension_ids[1]",
            ),
            (with(json!({"strip": 21})), "strip"),
            (with(json!({"strip": -1})), "strip"),
            (with(json!({"prepend": "0a"})), "prepend"),
            (with(json!({"priority": "high"})), "priority"),
            (with(json!({"trunk_ids": ["1"]})), "trunk_ids[0]"),
            (with(json!({"name": ""})), "name"),
            (with(json!({"colour": "red"})), "colour"),
        ] {
            assert_invalid(&srv.post("/outbound-routes", body).await, field);
        }
        let (_, page) = srv.get("/outbound-routes").await;
        assert_eq!(page["items"], json!([]), "nothing invalid was stored");

        let id = srv.create("/outbound-routes", base.clone()).await;
        assert_invalid(
            &srv.patch(
                &format!("/outbound-routes/{id}"),
                json!({"patterns": ["_[12"]}),
            )
            .await,
            "patterns[0]",
        );
        assert_invalid(
            &srv.patch(
                &format!("/outbound-routes/{id}"),
                json!({"trunk_ids": [t, 999]}),
            )
            .await,
            "trunk_ids[1]",
        );
        let (_, r) = srv.get(&format!("/outbound-routes/{id}")).await;
        assert_eq!(
            r["patterns"],
            json!(["_9X."]),
            "a refused write changes nothing"
        );
        assert_eq!(r["trunk_ids"], json!([t]));
    }
);

both!(
    extension_allowed_on_a_route_cannot_be_deleted,
    |srv: TestServer| async move {
        let t = trunk(&srv, "A").await;
        let e = extension(&srv, "1001").await;
        let route = srv
            .create(
                "/outbound-routes",
                json!({"name": "R", "patterns": ["190"], "trunk_ids": [t],
                       "allowed_extension_ids": [e]}),
            )
            .await;
        assert_conflict(
            &srv.delete(&format!("/extensions/{e}")).await,
            &format!("outbound route {route}"),
        );
        srv.delete(&format!("/outbound-routes/{route}")).await;
        assert_eq!(
            srv.delete(&format!("/extensions/{e}")).await.0,
            StatusCode::NO_CONTENT
        );
    }
);

both!(
    outbound_route_pages_carry_their_own_trunks,
    |srv: TestServer| async move {
        let trunks = [trunk(&srv, "A").await, trunk(&srv, "B").await];
        for n in 0..5usize {
            srv.create(
                "/outbound-routes",
                json!({"name": format!("R{n}"), "patterns": [format!("19{n}")],
                       "trunk_ids": [trunks[n % 2], trunks[(n + 1) % 2]]}),
            )
            .await;
        }
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/outbound-routes?limit=2&cursor={c}"),
                None => "/outbound-routes?limit=2".to_owned(),
            };
            let (status, page) = srv.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            for r in page["items"].as_array().unwrap() {
                let n = seen.len();
                assert_eq!(r["name"], format!("R{n}"));
                assert_eq!(r["trunk_ids"], json!([trunks[n % 2], trunks[(n + 1) % 2]]));
                seen.push(n);
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(seen.len(), 5);
    }
);
