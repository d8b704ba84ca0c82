//! The API's own surface: OpenAPI lists every route served, health and
//! metrics answer, unknown paths are problems.

mod common;

use common::TestServer;
use reqwest::StatusCode;

both!(openapi_health_and_metrics, |srv: TestServer| async move {
    let doc: serde_json::Value = srv
        .client
        .get(srv.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("#/components/schemas/").skip(1) {
        let name: String = piece.chars().take_while(|c| *c != '"').collect();
        assert!(schemas.contains_key(&name), "dangling schema ref {name}");
    }
    // Every documented operation is served (never a 404 or 405 from routing).
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "1")
            .replace("{protocol}", "20260101000001");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let resp = srv
                .client
                .request(m, srv.url(&format!("/api/v1{concrete}")))
                .bearer_auth(&srv.token)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_ne!(
                resp.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            if resp.status() == StatusCode::NOT_FOUND {
                let body: serde_json::Value = resp.json().await.unwrap();
                assert_ne!(
                    body["detail"], "no such endpoint",
                    "{method} {path} is documented but not routed"
                );
            }
        }
    }
    for path in [
        "/extensions",
        "/tokens",
        "/attendances",
        "/export/attendances.csv",
    ] {
        assert!(paths.contains_key(path), "{path} documented");
    }

    let health = srv.client.get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready: serde_json::Value = srv
        .client
        .get(srv.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["database"], "ok");
    let metrics = srv.client.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);

    let (status, body) = srv.get("/no-such-thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["status"], 404);
});
