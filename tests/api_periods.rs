//! Periods (business hours) and holidays through the admin API, on SQLite
//! and PostgreSQL.

mod common;

use common::{TestServer, assert_conflict, assert_invalid};
use reqwest::StatusCode;
use serde_json::json;

both!(period_crud_round_trip, |srv: TestServer| async move {
    let ranges = json!([
        {"weekday": "monday", "start": "08:00", "end": "18:36"},
        {"weekday": "saturday", "start": "09:00", "end": "24:00"}
    ]);
    let id = srv
        .create(
            "/periods",
            json!({"name": "Comercial", "ranges": ranges.clone()}),
        )
        .await;
    let (status, p) = srv.get(&format!("/periods/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(p["name"], "Comercial");
    assert_eq!(p["time_zone"], "America/Sao_Paulo");
    assert_eq!(p["ranges"], ranges);

    let (status, p) = srv
        .patch(
            &format!("/periods/{id}"),
            json!({"time_zone": "Europe/Lisbon"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["time_zone"], "Europe/Lisbon");
    assert_eq!(p["ranges"], ranges);

    let (status, p) = srv
        .put(&format!("/periods/{id}"), json!({"name": "Plantão"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["name"], "Plantão");
    assert_eq!(p["ranges"], json!([]));
    assert_eq!(p["time_zone"], "America/Sao_Paulo");

    let (status, page) = srv.get("/periods?limit=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_cursor"], json!(null));

    assert_eq!(
        srv.delete(&format!("/periods/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.get(&format!("/periods/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        srv.put(&format!("/periods/{id}"), json!({"name": "x"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
});

both!(period_bad_input_is_named, |srv: TestServer| async move {
    for (body, field) in [
        (json!({"name": ""}), "name"),
        (
            json!({"name": "P", "time_zone": "Mars/Olympus"}),
            "time_zone",
        ),
        (
            json!({"name": "P", "ranges": [{"weekday": "monday", "start": "8:00", "end": "18:00"}]}),
            "ranges[0].start",
        ),
        (
            json!({"name": "P", "ranges": [{"weekday": "monday", "start": "18:00", "end": "08:00"}]}),
            "ranges[0].end",
        ),
        (
            json!({"name": "P", "ranges": [{"weekday": "someday", "start": "08:00", "end": "18:00"}]}),
            "ranges[0].weekday",
        ),
    ] {
        assert_invalid(&srv.post("/periods", body).await, field);
    }
});

both!(
    delete_of_a_period_in_use_says_by_what,
    |srv: TestServer| async move {
        let p = srv.create("/periods", json!({"name": "Comercial"})).await;
        let d = srv
            .create("/departments", json!({"name": "A", "period_id": p}))
            .await;
        let h = srv
            .create(
                "/holidays",
                json!({"date": "2026-12-25", "name": "Natal", "period_id": p}),
            )
            .await;
        let result = srv.delete(&format!("/periods/{p}")).await;
        assert_conflict(&result, &format!("department {d}"));
        assert_conflict(&result, &format!("holiday {h}"));

        srv.patch(&format!("/departments/{d}"), json!({"period_id": null}))
            .await;
        assert_conflict(
            &srv.delete(&format!("/periods/{p}")).await,
            &format!("holiday {h}"),
        );
        assert_eq!(
            srv.delete(&format!("/holidays/{h}")).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            srv.delete(&format!("/periods/{p}")).await.0,
            StatusCode::NO_CONTENT
        );
    }
);

both!(holiday_crud_round_trip, |srv: TestServer| async move {
    let p = srv.create("/periods", json!({"name": "Comercial"})).await;
    let id = srv
        .create("/holidays", json!({"date": "2026-12-25", "name": "Natal"}))
        .await;
    let (status, h) = srv.get(&format!("/holidays/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h["date"], "2026-12-25");
    assert_eq!(h["name"], "Natal");
    assert_eq!(h["period_id"], json!(null));

    let (status, h) = srv
        .patch(&format!("/holidays/{id}"), json!({"period_id": p}))
        .await;
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(h["period_id"], p);
    assert_eq!(h["date"], "2026-12-25");

    let (status, h) = srv
        .put(
            &format!("/holidays/{id}"),
            json!({"date": "2027-01-01", "name": "Ano novo"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{h}");
    assert_eq!(h["date"], "2027-01-01");
    assert_eq!(h["period_id"], json!(null));

    srv.create(
        "/holidays",
        json!({"date": "2027-04-21", "name": "Tiradentes"}),
    )
    .await;
    let (_, page) = srv.get("/holidays?limit=1").await;
    assert_eq!(page["items"][0]["id"], id);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, page) = srv.get(&format!("/holidays?limit=1&cursor={cursor}")).await;
    assert_eq!(page["items"][0]["name"], "Tiradentes");
    assert_eq!(page["next_cursor"], json!(null));

    assert_eq!(
        srv.delete(&format!("/holidays/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        srv.delete(&format!("/holidays/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
});

both!(holiday_bad_input_is_named, |srv: TestServer| async move {
    let p = srv.create("/periods", json!({"name": "Comercial"})).await;
    for (body, field) in [
        (json!({"date": "2026-12-25", "name": ""}), "name"),
        (json!({"date": "2026-13-25", "name": "X"}), "date"),
        (json!({"name": "X"}), "date"),
        (
            json!({"date": "2026-12-25", "name": "X", "period_id": 999}),
            "period_id",
        ),
    ] {
        assert_invalid(&srv.post("/holidays", body).await, field);
    }
    let id = srv
        .create(
            "/holidays",
            json!({"date": "2026-12-25", "name": "Natal", "period_id": p}),
        )
        .await;
    assert_invalid(
        &srv.patch(&format!("/holidays/{id}"), json!({"period_id": 999}))
            .await,
        "period_id",
    );
});
