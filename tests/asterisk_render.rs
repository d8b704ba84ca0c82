//! `pbx-bridge asterisk render` and `reload` as a user runs them: a database
//! seeded through the store (SQLite and PostgreSQL), the real binary, the
//! files it writes. The seed is the example committed in `dialplans/`; the
//! rendered files must equal it (`PBX_BRIDGE_UPDATE_DIALPLANS=1` rewrites
//! the example instead).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{Db, TestDb};
use pbx_bridge::asterisk::{EXTENSIONS_FILE, PJSIP_FILE};
use pbx_bridge::domain::{
    DepartmentInput, DigestAlgorithm, ExtensionInput, OutboundRouteInput, PbxInput, TrunkInput,
};
use pbx_bridge::store::Store;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn input<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("valid input")
}

/// 3 extensions, departments 701/702, one registering trunk, 2 routes.
async fn seed(store: &Store) {
    let md5 = [DigestAlgorithm::Md5];
    let mut ext = Vec::new();
    for (number, name) in [
        ("1001", "Ana Souza"),
        ("1002", "Bruno Lima"),
        ("1003", "Recepção"),
    ] {
        let e: ExtensionInput = input(json!({
            "number": number,
            "display_name": name,
            "secret": format!("change-me-{number}-x7Qp"),
        }));
        ext.push(store.create_extension(&e, &md5).await.unwrap().id);
    }
    let support: DepartmentInput = input(json!({
        "name": "Suporte", "pabx_code": 701, "ring_strategy": "simultaneous"
    }));
    let support = store.create_department(&support).await.unwrap().id;
    let sales: DepartmentInput = input(json!({
        "name": "Vendas", "pabx_code": 702, "ring_strategy": "overflow"
    }));
    store.create_department(&sales).await.unwrap();
    let trunk: TrunkInput = input(json!({
        "name": "operadora",
        "host": "sip.operadora.example.com",
        "username": "1130000000",
        "secret": "trunk-secret-9Kd2",
        "register": true,
        "register_expires_s": 600,
        "max_channels": 30,
        "inbound": ["198.51.100.0/24"],
        "did_routes": [
            {"did": "1130000701", "department_id": support},
            {"did": "1130001001", "extension_id": ext[0]},
        ],
    }));
    let trunk = store.create_trunk(&trunk).await.unwrap().id;
    // Created in the opposite order of their priorities.
    let long_distance: OutboundRouteInput = input(json!({
        "name": "Longa distância",
        "priority": 20,
        "patterns": ["_0ZXXXXXXXXX", "_0ZXXXXXXXX"],
        "strip": 1,
        "prepend": "015",
        "trunk_ids": [trunk],
        "allowed_extension_ids": [ext[0], ext[1]],
    }));
    store.create_outbound_route(&long_distance).await.unwrap();
    let local: OutboundRouteInput = input(json!({
        "name": "Local",
        "priority": 10,
        "patterns": ["_[2-5]XXXXXXX", "_9XXXXXXXX"],
        "trunk_ids": [trunk],
    }));
    store.create_outbound_route(&local).await.unwrap();
}

fn bin(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pbx-bridge"))
        .env_clear()
        .env("PBX_BRIDGE_DATABASE_URL", &db.url)
        .env("PBX_BRIDGE_SIP_LISTEN", "127.0.0.1:5070")
        .env("PBX_BRIDGE_DATA_DIR", db.dir().join("data"))
        .env("PBX_BRIDGE_LOG", "warn")
        .args(args)
        .output()
        .expect("run pbx-bridge")
}

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans")
}

async fn renders_the_example(db: Db) {
    let db = TestDb::new(db).await;
    let store = Store::connect(&db.url).await.unwrap();
    seed(&store).await;
    store.close().await;
    let out = db.dir().join("asterisk");
    let run = bin(&db, &["asterisk", "render", "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "render failed: {stderr}");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let listed: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        listed,
        [
            out.join(PJSIP_FILE).display().to_string(),
            out.join(EXTENSIONS_FILE).display().to_string()
        ]
    );
    let pjsip = std::fs::read_to_string(out.join(PJSIP_FILE)).unwrap();
    let ext = std::fs::read_to_string(out.join(EXTENSIONS_FILE)).unwrap();
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    for n in ["1001", "1002", "1003"] {
        assert!(pjsip.contains(&format!("[{n}](pbx-bridge-extension-endpoint)")));
        assert!(pjsip.contains(&format!("password = change-me-{n}-x7Qp")));
    }
    assert!(pjsip.contains("[operadora]\ntype = registration\n"));
    assert!(pjsip.contains("client_uri = sip:1130000000@sip.operadora.example.com:5060\n"));
    assert!(
        pjsip.contains("[bridge]\ntype = identify\nendpoint = bridge\nmatch = 127.0.0.1:5070\n")
    );
    assert!(ext.contains("exten => 701,1,"));
    assert!(ext.contains("exten => 702,1,"));
    assert!(ext.contains("same => n,Set(PBX_BRIDGE_NUMBER=015${EXTEN:1})"));
    // Local (priority 10) before Longa distância (priority 20), which 1003
    // may not use.
    let local = ext.find("\"Local\"").unwrap();
    let long = ext.find("\"Longa dist").unwrap();
    assert!(local < long);
    assert!(ext.contains(
        "[pbx-bridge-ext-1003]\ninclude => pbx-bridge-extensions\n\
         include => pbx-bridge-departments\ninclude => pbx-bridge-route-2\n\n"
    ));

    let dir = example_dir();
    if std::env::var_os("PBX_BRIDGE_UPDATE_DIALPLANS").is_some() {
        std::fs::write(dir.join(PJSIP_FILE), &pjsip).unwrap();
        std::fs::write(dir.join(EXTENSIONS_FILE), &ext).unwrap();
    } else {
        for (name, text) in [(PJSIP_FILE, &pjsip), (EXTENSIONS_FILE, &ext)] {
            let committed = std::fs::read_to_string(dir.join(name)).unwrap();
            assert_eq!(
                &committed, text,
                "dialplans/{name} is not what render writes for its seed; \
                 rerun with PBX_BRIDGE_UPDATE_DIALPLANS=1"
            );
        }
    }

    // Rendering again replaces the files with the same bytes.
    let again = bin(&db, &["asterisk", "render", "--out", out.to_str().unwrap()]);
    assert!(again.status.success());
    assert_eq!(
        std::fs::read_to_string(out.join(PJSIP_FILE)).unwrap(),
        pjsip
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_writes_the_example_on_sqlite() {
    renders_the_example(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_writes_the_example_on_postgres() {
    renders_the_example(Db::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_fails_clearly_when_the_pbx_is_disabled_or_unreachable() {
    let db = TestDb::new(Db::Sqlite).await;
    let run = bin(&db, &["asterisk", "reload"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("the PBX is disabled"), "{stderr}");

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let store = Store::connect(&db.url).await.unwrap();
    let pbx: PbxInput = input(json!({
        "ami_host": "127.0.0.1", "ami_port": port, "ami_username": "bridge",
        "ami_secret": "bridge-secret", "sip_host": "127.0.0.1", "enabled": true
    }));
    store.put_pbx(&pbx).await.unwrap();
    store.close().await;
    let run = bin(&db, &["asterisk", "reload", "--timeout-s", "3"]);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains(&format!("cannot reach Asterisk's AMI at 127.0.0.1:{port}")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_sends_reload_to_the_configured_ami() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let db = TestDb::new(Db::Sqlite).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let (r, mut w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        w.write_all(b"Asterisk Call Manager/11.0.0\r\n")
            .await
            .unwrap();
        let mut actions = Vec::new();
        let mut block = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            if !line.is_empty() {
                block.push(line);
                continue;
            }
            let id = block
                .iter()
                .find_map(|l| l.strip_prefix("ActionID: "))
                .unwrap_or("")
                .to_owned();
            actions.push(block.join("|"));
            let logoff = block.iter().any(|l| l == "Action: Logoff");
            block.clear();
            w.write_all(
                format!("Response: Success\r\nActionID: {id}\r\nMessage: ok\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            if logoff {
                break;
            }
        }
        actions
    });
    let store = Store::connect(&db.url).await.unwrap();
    let pbx: PbxInput = input(json!({
        "ami_host": "127.0.0.1", "ami_port": port, "ami_username": "bridge",
        "ami_secret": "bridge-secret", "sip_host": "127.0.0.1", "enabled": true
    }));
    store.put_pbx(&pbx).await.unwrap();
    store.close().await;
    let run = tokio::task::spawn_blocking(move || bin(&db, &["asterisk", "reload"]))
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(String::from_utf8_lossy(&run.stdout).contains("reloaded"));
    let actions = server.await.unwrap();
    assert_eq!(actions.len(), 3, "{actions:?}");
    assert!(actions[0].starts_with("Action: Login|"));
    assert!(actions[0].contains("Username: bridge|Secret: bridge-secret"));
    assert!(actions[1].starts_with("Action: Reload|"));
    assert!(actions[2].starts_with("Action: Logoff|"));
}
