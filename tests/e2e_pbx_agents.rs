//! An agent whose phone registers on Asterisk, rung "through the PBX"
//! (SPEC §9), end to end: the bridge binary; a test AMI server in
//! Asterisk's place that logs the bridge in and answers its
//! `PJSIPShowEndpoints` with the real Asterisk 22 bytes of
//! `tests/fixtures/ami/a-login-coresettings-endpoints` (1001 and 1002
//! reachable, not in use); a SIPp UAS playing Asterisk's SIP side at
//! `pbx.sip_host:sip_port`; a PJSUA2 caller from a trunk dialling the
//! department code.

mod peers;

use std::path::PathBuf;
use std::time::Duration;

use peers::{CallerBuilder, Service, UaMedia, make_tone, wav_stat};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SECS: Duration = Duration::from_secs(1);

fn header<'a>(block: &'a str, name: &str) -> Option<&'a str> {
    block.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Fixture a's answer to `PJSIPShowEndpoints`, byte for byte but for its
/// ActionID.
fn endpoints_answer(id: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
        "tests/fixtures/ami/a-login-coresettings-endpoints/a-login-coresettings-endpoints.ami.in",
    );
    let text = String::from_utf8(std::fs::read(path).expect("fixture a")).unwrap();
    let recorded = "a-login-coresettings-endpoints-003";
    let start = text
        .find(&format!("Response: Success\r\nActionID: {recorded}"))
        .expect("the PJSIPShowEndpoints answer");
    let end = text.find("Response: Goodbye").expect("the Logoff answer");
    text[start..end].replace(recorded, id)
}

/// A test AMI server: banner, any login accepted, no live channel, the
/// fixture's endpoints, Ping and Logoff answered; anything else refused.
async fn fake_ami() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if stream
                    .write_all(b"Asterisk Call Manager/11.0.0\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let block = String::from_utf8_lossy(&buf[..end + 4]).to_string();
                        buf.drain(..end + 4);
                        let id = header(&block, "ActionID").unwrap_or_default();
                        let answer = match header(&block, "Action").unwrap_or_default() {
                            "Login" => format!(
                                "Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n"
                            ),
                            "CoreShowChannels" => format!(
                                "Response: Success\r\nActionID: {id}\r\nEventList: start\r\nMessage: Channels will follow\r\n\r\n\
Event: CoreShowChannelsComplete\r\nActionID: {id}\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
                            ),
                            "PJSIPShowEndpoints" => endpoints_answer(id),
                            "Ping" => format!(
                                "Response: Success\r\nActionID: {id}\r\nPing: Pong\r\nTimestamp: 1795295209.000000\r\n\r\n"
                            ),
                            "Logoff" => format!(
                                "Response: Goodbye\r\nActionID: {id}\r\nMessage: Thanks for all the fish.\r\n\r\n"
                            ),
                            _ => format!(
                                "Response: Error\r\nActionID: {id}\r\nMessage: Invalid/unknown command\r\n\r\n"
                            ),
                        };
                        if stream.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

async fn post(svc: &Service, path: &str, body: Value) -> Value {
    let (s, b) = svc.api(Method::POST, path, Some(body)).await;
    assert!(s == 201 || s == 200, "POST {path}: {s} {b}");
    b
}

/// The department's agent 1002 registers on Asterisk only; AMI reports it
/// reachable and free; a caller dials the department: the bridge sends
/// the INVITE for 1002 to the PBX's SIP address with X-Protocol, "Asterisk"
/// answers, media flows both ways (SIPp echoes the caller's tone), and one
/// attendance is closed with that agent.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_on_asterisk_is_rung_through_the_pbx() {
    let svc = Service::start(&[]).await;
    post(
        &svc,
        "/trunks",
        json!({"name": "carrier", "host": "127.0.0.1", "inbound": ["127.0.0.1/32"]}),
    )
    .await;
    let dept = post(
        &svc,
        "/departments",
        json!({"name": "Suporte", "pabx_code": 700, "close_on_hangup": true}),
    )
    .await["id"]
        .clone();
    let ext = post(
        &svc,
        "/extensions",
        json!({"number": "1002", "display_name": "Bruno", "secret": "pw-1002-x"}),
    )
    .await["id"]
        .clone();
    let agent = post(
        &svc,
        "/agents",
        json!({"name": "Bruno", "extension_id": ext, "departments": [{"department_id": dept}]}),
    )
    .await["id"]
        .as_i64()
        .unwrap();

    // Before the PBX: 1002 is registered nowhere the bridge knows of.
    let (_, a) = svc
        .api(Method::GET, &format!("/agents/{agent}"), None)
        .await;
    assert_eq!(a["presence"], "offline", "{a}");

    let ami_port = fake_ami().await;
    let sip_port = peers::free_port();
    let (s, b) = svc
        .api(
            Method::PUT,
            "/pbx",
            Some(json!({
                "ami_host": "127.0.0.1", "ami_port": ami_port, "ami_username": "bridge",
                "ami_secret": "an-ami-secret-long-enough", "sip_host": "127.0.0.1",
                "sip_port": sip_port, "enabled": true
            })),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // AMI logs in and re-reads the endpoints: the agent is available.
    let mut presence = Value::Null;
    for _ in 0..100 {
        let (_, a) = svc
            .api(Method::GET, &format!("/agents/{agent}"), None)
            .await;
        presence = a["presence"].clone();
        if presence == "available" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(presence, "available", "reachable on Asterisk (AMI)");

    let asterisk = peers::sipp_once(
        "tests/sipp/pbx_agent_answers.xml",
        sip_port,
        &["-rtp_echo", &svc.sip.to_string()],
        25 * SECS,
    );
    std::thread::sleep(Duration::from_millis(500));
    let tones = tempfile::tempdir().unwrap();
    let tone = tones.path().join("caller.wav");
    make_tone(&tone, 440, 10.0);
    let mut caller = CallerBuilder::new(&format!("sip:700@{}", svc.sip))
        .play(&tone)
        .hangup_after(3.0)
        .spawn();
    assert_eq!(caller.wait(30 * SECS), 0, "caller:\n{}", caller.log());
    let (code, out) = asterisk.join().unwrap();
    assert_eq!(
        code, 0,
        "Asterisk got the INVITE for 1002 with X-Protocol, answered and got the BYE:\n{out}"
    );

    let mut closed = Value::Null;
    for _ in 0..100 {
        let (s, b) = svc.api(Method::GET, "/attendances", None).await;
        assert_eq!(s, 200, "{b}");
        let items = b["items"].as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 1, "one attendance: {items:#?}");
        if let Some(a) = items.first()
            && a["status"] == "closed"
        {
            closed = a.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(closed["status"], "closed", "{closed}");
    assert_eq!(closed["agent_id"], agent, "{closed}");
    assert_eq!(closed["department_id"], dept, "{closed}");
    assert_eq!(closed["close_reason"], "caller_hangup", "{closed}");
    assert_eq!(closed["source"], "sip", "{closed}");
    // Media went through the PBX leg: the caller's tone left, and what
    // "Asterisk" sent back (its echo of that tone) right.
    let protocol = closed["protocol"].as_str().unwrap();
    let path = svc.recording(protocol);
    let left = wav_stat(&path, 1);
    let right = wav_stat(&path, 2);
    assert!(left.is_tone(440.0), "left channel: {left:?}");
    assert!(
        right.is_tone(440.0),
        "right channel (the PBX leg): {right:?}"
    );
}
