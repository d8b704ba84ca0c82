//! Agents, their memberships and pauses through the admin API, on SQLite and
//! PostgreSQL.

mod common;

use common::{TestServer, assert_conflict, assert_invalid};
use reqwest::{Method, StatusCode};
use serde_json::json;

both!(agent_crud_round_trip, |srv: TestServer| async move {
    let ext = srv
        .create(
            "/extensions",
            json!({"number": "1001", "secret": "s3cret-pass"}),
        )
        .await;
    let sales = srv.create("/departments", json!({"name": "Vendas"})).await;
    let support = srv.create("/departments", json!({"name": "Suporte"})).await;
    let id = srv
        .create(
            "/agents",
            json!({"name": "Ana", "extension_id": ext, "departments": [
                {"department_id": support, "responsible": true},
                {"department_id": sales, "receives_calls": false}]}),
        )
        .await;
    let (status, a) = srv.get(&format!("/agents/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(a["name"], "Ana");
    assert_eq!(a["extension_id"], ext);
    assert_eq!(a["active"], true);
    assert_eq!(
        a["departments"],
        json!([
            {"department_id": support, "receives_calls": true, "responsible": true},
            {"department_id": sales, "receives_calls": false, "responsible": false}
        ]),
        "memberships keep their order"
    );
    assert_eq!(a["pause"], json!(null));
    // Not registered (the registrar comes later), so offline.
    assert_eq!(a["presence"], "offline");
    assert_eq!(a["busy"], false);
    // The extension shows its agent.
    let (_, e) = srv.get(&format!("/extensions/{ext}")).await;
    assert_eq!(e["agent_id"], id);

    let (status, a) = srv
        .patch(
            &format!("/agents/{id}"),
            json!({"name": "Ana Maria", "departments": [{"department_id": sales}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["name"], "Ana Maria");
    assert_eq!(a["extension_id"], ext);
    assert_eq!(
        a["departments"],
        json!([{"department_id": sales, "receives_calls": true, "responsible": false}])
    );

    let (status, a) = srv
        .put(
            &format!("/agents/{id}"),
            json!({"name": "Bia", "active": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["extension_id"], json!(null));
    assert_eq!(a["departments"], json!([]));
    assert_eq!(a["active"], false);
    assert_eq!(a["presence"], "offline");

    let second = srv
        .create(
            "/agents",
            json!({"name": "Caio", "departments": [{"department_id": support}]}),
        )
        .await;
    let (status, page) = srv.get("/agents?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, page) = srv.get(&format!("/agents?limit=1&cursor={cursor}")).await;
    assert_eq!(page["items"][0]["id"], second);
    assert_eq!(
        page["items"][0]["departments"],
        json!([{"department_id": support, "receives_calls": true, "responsible": false}]),
        "lists carry memberships too"
    );
    assert_eq!(page["next_cursor"], json!(null));

    assert_eq!(
        srv.delete(&format!("/agents/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.get(&format!("/agents/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    // Memberships went with the agent: only Caio still holds the department.
    assert_conflict(
        &srv.delete(&format!("/departments/{support}")).await,
        &format!("agent {second}"),
    );
    assert_eq!(
        srv.delete(&format!("/departments/{sales}")).await.0,
        StatusCode::NO_CONTENT
    );
});

both!(agent_bad_input_is_named, |srv: TestServer| async move {
    let dept = srv.create("/departments", json!({"name": "Vendas"})).await;
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (json!({"name": "Ana", "extension_id": 999}), "extension_id"),
        (
            json!({"name": "Ana", "departments": [{"department_id": dept}, {"department_id": 999}]}),
            "departments[1].department_id",
        ),
        (
            json!({"name": "Ana", "departments": [{"department_id": dept}, {"department_id": dept}]}),
            "departments[1].department_id",
        ),
        (
            json!({"name": "Ana", "departments": [{"department_id": dept, "boss": true}]}),
            "departments[0].boss",
        ),
        (json!({"name": "Ana", "presence": "available"}), "presence"),
    ] {
        assert_invalid(&srv.post("/agents", body).await, field);
    }
    let (_, page) = srv.get("/agents").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
});

both!(
    an_extension_belongs_to_one_agent,
    |srv: TestServer| async move {
        let ext = srv
            .create(
                "/extensions",
                json!({"number": "1001", "secret": "s3cret-pass"}),
            )
            .await;
        let ana = srv
            .create("/agents", json!({"name": "Ana", "extension_id": ext}))
            .await;
        assert_conflict(
            &srv.post("/agents", json!({"name": "Bia", "extension_id": ext}))
                .await,
            &format!("agent {ana}"),
        );
        let bia = srv.create("/agents", json!({"name": "Bia"})).await;
        assert_conflict(
            &srv.patch(&format!("/agents/{bia}"), json!({"extension_id": ext}))
                .await,
            &format!("agent {ana}"),
        );
        // Ana keeps hers on replace.
        let (status, a) = srv
            .patch(&format!("/agents/{ana}"), json!({"name": "Ana Maria"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{a}");
        assert_eq!(a["extension_id"], ext);
        // An extension in use by an agent cannot be deleted.
        assert_conflict(
            &srv.delete(&format!("/extensions/{ext}")).await,
            &format!("agent {ana}"),
        );
    }
);

both!(pause_and_unpause, |srv: TestServer| async move {
    let ext = srv
        .create(
            "/extensions",
            json!({"number": "1001", "secret": "s3cret-pass"}),
        )
        .await;
    let id = srv
        .create("/agents", json!({"name": "Ana", "extension_id": ext}))
        .await;
    let pause = format!("/agents/{id}/pause");

    assert_conflict(&srv.delete(&pause).await, "not paused");
    assert_invalid(&srv.post(&pause, json!({"reason": ""})).await, "reason");
    assert_invalid(&srv.post(&pause, json!({})).await, "reason");
    assert_invalid(
        &srv.post(&pause, json!({"reason": "lunch", "minutes": 30}))
            .await,
        "minutes",
    );

    let (status, a) = srv.post(&pause, json!({"reason": "almoço"})).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["presence"], "paused");
    assert_eq!(a["pause"]["reason"], "almoço");
    assert!(a["pause"]["since"].is_string(), "{a}");
    let (_, again) = srv.get(&format!("/agents/{id}")).await;
    assert_eq!(again["pause"], a["pause"]);

    assert_conflict(
        &srv.post(&pause, json!({"reason": "café"})).await,
        "already paused",
    );
    // Editing the agent keeps the pause.
    let (status, a) = srv
        .patch(&format!("/agents/{id}"), json!({"name": "Ana Maria"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["pause"]["reason"], "almoço");

    let (status, a) = srv.delete(&pause).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a["pause"], json!(null));
    assert_eq!(a["presence"], "offline");
    assert_conflict(&srv.delete(&pause).await, "not paused");

    assert_eq!(
        srv.post("/agents/999/pause", json!({"reason": "x"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.delete("/agents/999/pause").await.0,
        StatusCode::NOT_FOUND
    );
});

both!(pause_needs_the_calls_scope, |srv: TestServer| async move {
    let id = srv.create("/agents", json!({"name": "Ana"})).await;
    let (status, created) = srv
        .post(
            "/tokens",
            json!({"name": "config", "scopes": ["config:write"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let config = created["token"].as_str().expect("token value").to_owned();
    let (status, _) = srv
        .call_as(
            &config,
            Method::POST,
            &format!("/agents/{id}/pause"),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, created) = srv
        .post(
            "/tokens",
            json!({"name": "supervisor", "scopes": ["calls"]}),
        )
        .await;
    let calls = created["token"].as_str().expect("token value").to_owned();
    let (status, a) = srv
        .call_as(
            &calls,
            Method::POST,
            &format!("/agents/{id}/pause"),
            Some(json!({"reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (status, _) = srv
        .call_as(&calls, Method::DELETE, &format!("/agents/{id}/pause"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
});
