//! Attendances as stored: list, filters, read, close, recording download
//! with Range, CSV export. Calls arrive in a later issue, so the test opens
//! attendances through the store, as the call engine will.

mod common;

use chrono::{Duration, Utc};
use common::{TestServer, assert_invalid};
use pbx_bridge::domain::{CallSource, Direction};
use pbx_bridge::store::{NewAttendance, Store};
use reqwest::StatusCode;
use serde_json::json;

async fn open(store: &Store, caller: &str, minutes_ago: i64) -> String {
    let new = NewAttendance {
        direction: Direction::Inbound,
        department_id: None,
        agent_id: None,
        caller: caller.into(),
        callee: "701".into(),
        source: CallSource::Sip,
        opened_at: Utc::now() - Duration::minutes(minutes_ago),
        call_ref: Some(format!("call-{caller}")),
        node: None,
    };
    store
        .open_attendance(&new, chrono_tz::America::Sao_Paulo)
        .await
        .unwrap()
        .protocol
}

both!(
    attendances_list_read_close_export,
    |srv: TestServer| async move {
        let store = Store::connect(&srv.db.url).await.unwrap();
        let p1 = open(&store, "+5511999990001", 30).await;
        let p2 = open(&store, "=HYPERLINK(\"x\")", 10).await;
        assert_eq!(p1.len(), 14);
        assert!(p2 > p1, "protocols grow: {p1} {p2}");

        let (status, page) = srv.get("/attendances").await;
        assert_eq!(status, StatusCode::OK);
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["protocol"], p2.as_str(), "newest first");
        assert_eq!(items[0]["status"], "ringing");
        assert_eq!(items[0]["source"], "sip");
        assert_eq!(items[0]["recording"], serde_json::Value::Null);

        let (status, page) = srv.get("/attendances?limit=1").await;
        assert_eq!(status, StatusCode::OK);
        let cursor = page["next_cursor"].as_str().unwrap().to_owned();
        let (_, page) = srv
            .get(&format!("/attendances?limit=1&cursor={cursor}"))
            .await;
        assert_eq!(page["items"][0]["protocol"], p1.as_str());
        assert!(page["next_cursor"].is_null());

        let from = (Utc::now() - Duration::minutes(20)).to_rfc3339();
        let (_, page) = srv
            .get(&format!("/attendances?from={}", urlencode(&from)))
            .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        assert_invalid(&srv.get("/attendances?status=open").await, "status");
        assert_invalid(&srv.get("/attendances?from=yesterday").await, "from");
        assert_invalid(&srv.get("/attendances/123").await, "protocol");
        assert_eq!(
            srv.get("/attendances/20200101000001").await.0,
            StatusCode::NOT_FOUND
        );

        let (status, closed) = srv
            .post(&format!("/attendances/{p1}/close"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{closed}");
        assert_eq!(closed["status"], "closed");
        assert_eq!(closed["close_reason"], "api");
        assert!(closed["closed_at"].is_string());
        let (status, _) = srv
            .post(&format!("/attendances/{p1}/close"), json!({}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        let (_, page) = srv.get("/attendances?status=closed").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1);

        let resp = srv
            .client
            .get(srv.url("/api/v1/export/attendances.csv"))
            .bearer_auth(&srv.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let csv = resp.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        assert!(lines[0].starts_with("protocol,direction,status"));
        assert!(lines[1].starts_with(&p1), "oldest first: {csv}");
        assert!(
            lines[2].contains("\"'=HYPERLINK(\"\"x\"\")\""),
            "formula defused: {csv}"
        );

        let (status, _) = srv.get(&format!("/attendances/{p2}/recording")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
);

both!(
    recording_download_supports_ranges,
    |srv: TestServer| async move {
        let store = Store::connect(&srv.db.url).await.unwrap();
        let p = open(&store, "100", 1).await;
        // Attach a file the way the recorder will.
        let rel = format!("2026/11/21/{p}.wav");
        let full = srv.settings.recordings_dir.join(&rel);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&full, &bytes).unwrap();
        store
            .attach_recording(&p, &rel, 1000, bytes.len() as u64, "ab")
            .await
            .unwrap();

        let get = |range: Option<&str>| {
            let mut req = srv
                .client
                .get(srv.url(&format!("/api/v1/attendances/{p}/recording")))
                .bearer_auth(&srv.token);
            if let Some(r) = range {
                req = req.header("Range", r);
            }
            req.send()
        };
        let full_resp = get(None).await.unwrap();
        assert_eq!(full_resp.status(), StatusCode::OK);
        assert_eq!(full_resp.headers()["content-type"], "audio/wav");
        assert_eq!(full_resp.bytes().await.unwrap().as_ref(), &bytes[..]);

        let part = get(Some("bytes=100-199")).await.unwrap();
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.headers()["content-range"], "bytes 100-199/1000");
        assert_eq!(part.bytes().await.unwrap().as_ref(), &bytes[100..200]);

        let tail = get(Some("bytes=-10")).await.unwrap();
        assert_eq!(tail.bytes().await.unwrap().as_ref(), &bytes[990..]);

        let bad = get(Some("bytes=5000-")).await.unwrap();
        assert_eq!(bad.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(bad.headers()["content-range"], "bytes */1000");

        let (_, a) = srv.get(&format!("/attendances/{p}")).await;
        assert_eq!(
            a["recording"],
            json!({"duration_ms": 1000, "bytes": 1000, "sha256": "ab"})
        );
    }
);

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
