//! Departments through the admin API, on SQLite and PostgreSQL.

mod common;

use common::{TestServer, assert_conflict, assert_invalid};
use reqwest::StatusCode;
use serde_json::json;

both!(department_crud_round_trip, |srv: TestServer| async move {
    let id = srv
        .create(
            "/departments",
            json!({"name": "Suporte", "pabx_code": 701, "order": 2}),
        )
        .await;
    let (status, d) = srv.get(&format!("/departments/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(d["name"], "Suporte");
    assert_eq!(d["pabx_code"], 701);
    assert_eq!(d["order"], 2);
    assert_eq!(d["active"], true);
    assert_eq!(d["record"], true);
    assert_eq!(d["ring_strategy"], "simultaneous");
    assert_eq!(d["ring_target"], "all");
    assert_eq!(d["agent_ring_timeout_s"], 15);
    assert_eq!(d["ring_timeout_s"], 30);
    assert_eq!(d["after_hours"], json!(null));

    let (status, d) = srv
        .patch(
            &format!("/departments/{id}"),
            json!({"ring_strategy": "overflow", "ring_target": "count", "ring_count": 2,
                   "after_hours": {"number": "+5511999990000"}, "close_on_hangup": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["name"], "Suporte");
    assert_eq!(d["pabx_code"], 701);
    assert_eq!(d["ring_strategy"], "overflow");
    assert_eq!(d["ring_count"], 2);
    assert_eq!(d["close_on_hangup"], true);
    assert_eq!(d["after_hours"], json!({"number": "+5511999990000"}));

    // Merge patch: null removes the field, so the code goes.
    let (status, d) = srv
        .patch(&format!("/departments/{id}"), json!({"pabx_code": null}))
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["pabx_code"], json!(null));

    let (status, d) = srv
        .put(
            &format!("/departments/{id}"),
            json!({"name": "Vendas", "pabx_code": 702}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    assert_eq!(d["name"], "Vendas");
    assert_eq!(d["ring_strategy"], "simultaneous");
    assert_eq!(d["after_hours"], json!(null));

    let (status, page) = srv.get("/departments").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    assert_eq!(
        srv.delete(&format!("/departments/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.get(&format!("/departments/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.delete(&format!("/departments/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.put(&format!("/departments/{id}"), json!({"name": "x"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
});

both!(
    department_bad_input_is_named,
    |srv: TestServer| async move {
        for (body, field) in [
            (json!({"name": "A", "pabx_code": 99}), "pabx_code"),
            (json!({"name": "A", "pabx_code": 1000}), "pabx_code"),
            (json!({"name": ""}), "name"),
            (json!({"name": "A", "ring_target": "count"}), "ring_count"),
            (
                json!({"name": "A", "ring_strategy": "random"}),
                "ring_strategy",
            ),
            (
                json!({"name": "A", "overflow_department_id": 999}),
                "overflow_department_id",
            ),
            (json!({"name": "A", "period_id": 999}), "period_id"),
            (
                json!({"name": "A", "after_hours": {"department_id": 999}}),
                "after_hours.department_id",
            ),
            (
                json!({"name": "A", "after_hours": {"number": "1", "hangup": true}}),
                "after_hours",
            ),
            (json!({"name": "A", "colour": "red"}), "colour"),
        ] {
            assert_invalid(&srv.post("/departments", body).await, field);
        }
        let (_, page) = srv.get("/departments").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 0);
    }
);

both!(
    pabx_code_is_unique_and_never_an_extension_number,
    |srv: TestServer| async move {
        let first = srv
            .create("/departments", json!({"name": "A", "pabx_code": 101}))
            .await;
        assert_conflict(
            &srv.post("/departments", json!({"name": "B", "pabx_code": 101}))
                .await,
            &format!("department {first}"),
        );
        // Keeping its own code on replace is fine.
        let (status, d) = srv
            .patch(&format!("/departments/{first}"), json!({"name": "A2"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{d}");

        let ext = srv
            .create(
                "/extensions",
                json!({"number": "102", "secret": "s3cret-pass"}),
            )
            .await;
        assert_conflict(
            &srv.post("/departments", json!({"name": "B", "pabx_code": 102}))
                .await,
            &format!("extension {ext}"),
        );
        let second = srv.create("/departments", json!({"name": "B"})).await;
        assert_conflict(
            &srv.patch(&format!("/departments/{second}"), json!({"pabx_code": 102}))
                .await,
            &format!("extension {ext}"),
        );

        // And the reverse: an extension numbered like a department's code.
        assert_conflict(
            &srv.post(
                "/extensions",
                json!({"number": "101", "secret": "s3cret-pass"}),
            )
            .await,
            &format!("department {first}"),
        );
    }
);

both!(overflow_must_not_loop, |srv: TestServer| async move {
    let a = srv.create("/departments", json!({"name": "A"})).await;
    let b = srv
        .create(
            "/departments",
            json!({"name": "B", "overflow_department_id": a}),
        )
        .await;
    let c = srv
        .create(
            "/departments",
            json!({"name": "C", "overflow_department_id": b}),
        )
        .await;
    let (_, got) = srv.get(&format!("/departments/{c}")).await;
    assert_eq!(got["overflow_department_id"], b);

    // To itself.
    let result = srv
        .patch(
            &format!("/departments/{a}"),
            json!({"overflow_department_id": a}),
        )
        .await;
    assert_invalid(&result, "overflow_department_id");
    assert!(result.1["detail"].as_str().unwrap().contains("loop"));

    // A → C → B → A.
    let result = srv
        .patch(
            &format!("/departments/{a}"),
            json!({"overflow_department_id": c}),
        )
        .await;
    assert_invalid(&result, "overflow_department_id");
    let reason = result.1["errors"][0]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("loop"), "{reason}");
    assert!(
        reason.contains(&format!("{a} → {c} → {b} → {a}")),
        "the reason lists the chain: {reason}"
    );

    // A chain that ends is fine.
    let d = srv.create("/departments", json!({"name": "D"})).await;
    let (status, got) = srv
        .patch(
            &format!("/departments/{a}"),
            json!({"overflow_department_id": d}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
});

both!(
    delete_of_a_department_in_use_says_by_what,
    |srv: TestServer| async move {
        let a = srv.create("/departments", json!({"name": "A"})).await;
        let b = srv
            .create(
                "/departments",
                json!({"name": "B", "overflow_department_id": a}),
            )
            .await;
        assert_conflict(
            &srv.delete(&format!("/departments/{a}")).await,
            &format!("department {b}"),
        );
        srv.patch(
            &format!("/departments/{b}"),
            json!({"overflow_department_id": null, "after_hours": {"department_id": a}}),
        )
        .await;
        let (_, got) = srv.get(&format!("/departments/{b}")).await;
        assert_eq!(got["after_hours"], json!({"department_id": a}));
        assert_conflict(
            &srv.delete(&format!("/departments/{a}")).await,
            &format!("department {b}"),
        );
        let (status, got) = srv
            .put(&format!("/departments/{b}"), json!({"name": "B"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{got}");

        let agent = srv
            .create(
                "/agents",
                json!({"name": "Ana", "departments": [{"department_id": a}]}),
            )
            .await;
        assert_conflict(
            &srv.delete(&format!("/departments/{a}")).await,
            &format!("agent {agent}"),
        );
        srv.patch(&format!("/agents/{agent}"), json!({"departments": []}))
            .await;

        let trunk = srv
            .create(
                "/trunks",
                json!({"name": "Carrier", "host": "198.51.100.7",
                       "did_routes": [{"did": "551130000000", "department_id": a}]}),
            )
            .await;
        assert_conflict(
            &srv.delete(&format!("/departments/{a}")).await,
            &format!("trunk {trunk}"),
        );
        assert_eq!(
            srv.delete(&format!("/trunks/{trunk}")).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            srv.delete(&format!("/departments/{a}")).await.0,
            StatusCode::NO_CONTENT
        );
    }
);

both!(
    department_self_after_hours_and_period_refs,
    |srv: TestServer| async move {
        let p = srv
            .create(
                "/periods",
                json!({"name": "Comercial", "ranges": [{"weekday": "monday", "start": "08:00", "end": "18:00"}]}),
            )
            .await;
        let a = srv
            .create("/departments", json!({"name": "A", "period_id": p}))
            .await;
        let (_, got) = srv.get(&format!("/departments/{a}")).await;
        assert_eq!(got["period_id"], p);
        assert_invalid(
            &srv.patch(
                &format!("/departments/{a}"),
                json!({"after_hours": {"department_id": a}}),
            )
            .await,
            "after_hours.department_id",
        );
        assert_invalid(
            &srv.patch(&format!("/departments/{a}"), json!({"period_id": 999}))
                .await,
            "period_id",
        );
    }
);

both!(
    department_pagination_walks_every_item_once,
    |srv: TestServer| async move {
        for n in 0..5 {
            srv.create("/departments", json!({"name": format!("D{n}")}))
                .await;
        }
        let (_, first) = srv.get("/departments?limit=2").await;
        assert_eq!(first["items"].as_array().unwrap().len(), 2);
        let mut names = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/departments?limit=2&cursor={c}"),
                None => "/departments?limit=2".to_owned(),
            };
            let (status, page) = srv.get(&path).await;
            assert_eq!(status, StatusCode::OK);
            for item in page["items"].as_array().unwrap() {
                names.push(item["name"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        assert_eq!(names, ["D0", "D1", "D2", "D3", "D4"]);
    }
);
