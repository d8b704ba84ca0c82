//! Test harness: a real pbx-bridge service in-process on an ephemeral port,
//! over a real database: a fresh SQLite file, or a fresh PostgreSQL database
//! on the server named by `PBX_BRIDGE_TEST_POSTGRES_URL` (the README's test
//! command starts one). Every API test runs on both through [`both!`].

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use pbx_bridge::app::App;
use pbx_bridge::config::{RawSettings, Settings, resolve};
use pbx_bridge::service::Service;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::watch;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A database for one test, dropped with it.
pub struct TestDb {
    pub url: String,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(db: Db) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = match db {
            Db::Sqlite => format!("sqlite://{}/test.db?mode=rwc", dir.path().display()),
            Db::Postgres => postgres_database().await,
        };
        Self { url, _dir: dir }
    }

    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }
}

/// Creates a fresh database on the test PostgreSQL server.
async fn postgres_database() -> String {
    use sqlx::Connection;
    let base = std::env::var("PBX_BRIDGE_TEST_POSTGRES_URL").expect(
        "PBX_BRIDGE_TEST_POSTGRES_URL is not set: run the tests with ./scripts/test, \
         which starts a PostgreSQL server",
    );
    let name = format!("t_{}", rand_suffix());
    let mut conn = sqlx::postgres::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    format!("{base}/{name}")
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn settings_for(db: &TestDb) -> Settings {
    let raw = RawSettings {
        database_url: Some(db.url.clone()),
        http_listen: Some("127.0.0.1:0".into()),
        sip_listen: Some("127.0.0.1:0".into()),
        data_dir: Some(db.dir().join("data").display().to_string()),
        recordings_dir: Some(db.dir().join("recordings").display().to_string()),
        admin_token: Some(ADMIN_TOKEN.into()),
        shutdown_grace_s: Some("5".into()),
        ..Default::default()
    };
    resolve(&raw).expect("test settings")
}

/// A running service and a client for it.
pub struct TestServer {
    pub addr: SocketAddr,
    /// SIP (UDP and TCP).
    pub sip: SocketAddr,
    pub db: TestDb,
    pub client: reqwest::Client,
    pub token: String,
    pub settings: Settings,
    /// The running service's shared state (in-process), for tests that
    /// stand in for the call engine (live calls, SIP traces).
    pub app: App,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    pub async fn start(db: Db) -> Self {
        Self::start_on(TestDb::new(db).await).await
    }

    pub async fn start_on(db: TestDb) -> Self {
        let settings = settings_for(&db);
        Self::start_with(db, settings).await
    }

    pub async fn start_with(db: TestDb, settings: Settings) -> Self {
        let service = Service::start(settings.clone())
            .await
            .expect("service starts");
        let addr = service.http_addr();
        let sip = service.sip_addr();
        let app = service.app().clone();
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(service.serve(rx));
        Self {
            addr,
            sip,
            db,
            client: reqwest::Client::new(),
            token: ADMIN_TOKEN.into(),
            settings,
            app,
            stop,
            task,
        }
    }

    /// Stops the service (as SIGTERM would) and gives the database back.
    pub async fn stop(self) -> TestDb {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("service stops within its grace period")
            .expect("service task")
            .expect("service exits cleanly");
        self.db
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request with the admin token; returns status and JSON body
    /// (`Value::Null` for an empty body).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.token.clone(), method, path, body).await
    }

    pub async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, self.url(&format!("/api/v1{path}")))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.expect("body");
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(
                ct, "application/problem+json",
                "errors are problems: {text}"
            );
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }
    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates and returns the new resource's id, failing the test otherwise.
    pub async fn create(&self, path: &str, body: Value) -> i64 {
        let (status, v) = self.post(path, body).await;
        assert_eq!(status, StatusCode::CREATED, "create {path}: {v}");
        v["id"].as_i64().expect("id")
    }
}

/// Asserts a 422 whose `errors` name `field`.
pub fn assert_invalid(result: &(StatusCode, Value), field: &str) {
    let (status, body) = result;
    assert_eq!(
        *status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "expected 422 for {field}: {body}"
    );
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        fields.contains(&field),
        "422 should name {field}, named {fields:?}: {body}"
    );
}

/// Asserts a 409 whose detail mentions `needle`.
pub fn assert_conflict(result: &(StatusCode, Value), needle: &str) {
    let (status, body) = result;
    assert_eq!(*status, StatusCode::CONFLICT, "expected 409: {body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(needle),
        "409 detail should mention {needle:?}: {detail}"
    );
}

/// Runs an async test body once on SQLite and once on PostgreSQL:
/// `both!(name, |srv| async move { ... });`
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let srv = $crate::common::TestServer::start($crate::common::Db::Sqlite).await;
                ($body)(srv).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let srv = $crate::common::TestServer::start($crate::common::Db::Postgres).await;
                ($body)(srv).await;
            }
        }
    };
}
