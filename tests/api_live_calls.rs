//! The live calls of the bridge's own B2BUA through the API (SPEC §5 "Live
//! calls", "Debugging"): the tests stand in for the call engine by
//! publishing calls and traces in the running service's `App`, and for a
//! call task by holding the control channel's receiving end.

mod common;

use chrono::{TimeZone, Utc};
use common::{TestServer, assert_invalid};
use pbx_bridge::calls::{
    CallControl, CallState, LegRole, LegState, LiveCall, LiveLeg, TraceDirection,
};
use pbx_bridge::domain::Direction;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const P1: &str = "20260301000001";
const P2: &str = "20260301000002";

fn live_call(protocol: &str, since_s: i64) -> LiveCall {
    LiveCall {
        id: protocol.into(),
        protocol: protocol.into(),
        direction: Direction::Inbound,
        state: CallState::Answered,
        department_id: Some(3),
        agent_id: Some(7),
        caller: "5511999990000".into(),
        callee: "100".into(),
        since: Utc.timestamp_opt(1_770_000_000 + since_s, 0).unwrap(),
        answered_at: Some(Utc.timestamp_opt(1_770_000_005 + since_s, 0).unwrap()),
        legs: vec![
            LiveLeg {
                role: LegRole::Caller,
                call_id: format!("caller-{protocol}"),
                peer: "192.0.2.1:5060".into(),
                extension: None,
                agent_id: None,
                state: LegState::Answered,
            },
            LiveLeg {
                role: LegRole::Agent,
                call_id: format!("agent-{protocol}"),
                peer: "127.0.0.1:5062".into(),
                extension: Some("1001".into()),
                agent_id: Some(7),
                state: LegState::Answered,
            },
        ],
    }
}

/// Publishes a call; returns the receiving end of its control channel.
fn publish(srv: &TestServer, call: LiveCall) -> mpsc::UnboundedReceiver<CallControl> {
    let (tx, rx) = mpsc::unbounded_channel();
    srv.app.calls().insert(call, tx);
    rx
}

/// Creates a token with `scopes` and returns its value.
async fn token(srv: &TestServer, scopes: Value) -> String {
    let (status, t) = srv
        .post("/tokens", json!({"name": "scoped", "scopes": scopes}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    t["token"].as_str().expect("token value").to_owned()
}

both!(list_read_and_hang_up, |srv: TestServer| async move {
    let (status, body) = srv.get("/calls").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"items": []}));

    let mut rx2 = publish(&srv, live_call(P2, 10));
    let _rx1 = publish(&srv, live_call(P1, 0));
    let (status, body) = srv.get("/calls").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], P1, "oldest first: {body}");
    assert_eq!(items[1]["id"], P2);
    assert_eq!(items[0]["source"], "sip", "the bridge's own: {body}");

    let (status, call) = srv.get(&format!("/calls/{P2}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(call["protocol"], P2);
    assert_eq!(call["source"], "sip");
    assert_eq!(call["state"], "answered");
    assert_eq!(call["direction"], "inbound");
    assert_eq!(call["department_id"], 3);
    assert_eq!(call["agent_id"], 7);
    assert_eq!(call["since"], "2026-02-02T02:40:10Z");
    assert_eq!(call["legs"][1]["role"], "agent");
    assert_eq!(call["legs"][1]["extension"], "1001");
    assert_eq!(call["legs"][1]["state"], "answered");
    assert_eq!(call["legs"][0]["call_id"], format!("caller-{P2}"));

    let (status, _) = srv.get("/calls/20260301000009").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = srv.get("/calls/not-a-protocol").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = srv.delete(&format!("/calls/{P2}")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["id"], P2);
    assert!(matches!(rx2.try_recv(), Ok(CallControl::HangUp)));
    assert!(rx2.try_recv().is_err(), "one request only");

    // The task ends the call: gone from the list.
    srv.app.calls().remove(P2);
    let (status, _) = srv.get(&format!("/calls/{P2}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = srv.delete(&format!("/calls/{P2}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = srv.get("/calls").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);

    // A call whose task is gone without removing it is not live either.
    drop(_rx1);
    let (status, _) = srv.delete(&format!("/calls/{P1}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
});

both!(
    sip_trace_of_live_and_ended_calls,
    |srv: TestServer| async move {
        let traces = srv.app.traces();
        let peer = "192.0.2.1:5060".parse().unwrap();
        traces.record(
            P1,
            TraceDirection::In,
            peer,
            "udp",
            b"INVITE sip:100@bridge SIP/2.0\r\nCall-ID: c1@192.0.2.1\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        traces.record(
            P1,
            TraceDirection::Out,
            peer,
            "udp",
            b"SIP/2.0 180 Ringing\r\ni: c1@192.0.2.1\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        let (status, body) = srv.get(&format!("/calls/{P1}/sip-trace")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["protocol"], P1);
        assert_eq!(body["ended"], false);
        assert_eq!(body["dropped"], 0);
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0]["direction"], "in");
        assert_eq!(messages[0]["first_line"], "INVITE sip:100@bridge SIP/2.0");
        assert_eq!(messages[0]["call_id"], "c1@192.0.2.1");
        assert_eq!(messages[0]["peer"], "192.0.2.1:5060");
        assert_eq!(messages[0]["transport"], "udp");
        assert!(messages[0]["at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(messages[1]["direction"], "out");
        assert_eq!(messages[1]["first_line"], "SIP/2.0 180 Ringing");
        assert_eq!(messages[1]["call_id"], "c1@192.0.2.1");

        // Ended: still served, by protocol, with no live call behind it.
        traces.end(P1);
        let (status, body) = srv.get(&format!("/calls/{P1}/sip-trace")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["ended"], true);
        assert_eq!(body["messages"].as_array().unwrap().len(), 2);

        let (status, _) = srv.get(&format!("/calls/{P2}/sip-trace")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
);

both!(
    transfer_of_a_live_call_goes_to_its_task,
    |srv: TestServer| async move {
        let mut rx = publish(&srv, live_call(P1, 0));
        // The call task: accepts department 200, refuses anything else.
        let task = tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Some(control) = rx.recv().await {
                match control {
                    CallControl::Transfer { target, reply } => {
                        let answer = if target == "200" {
                            Ok(())
                        } else {
                            Err(format!("no department or extension {target}"))
                        };
                        seen.push(target);
                        let _ = reply.send(answer);
                    }
                    CallControl::HangUp | CallControl::Shutdown => break,
                }
            }
            seen
        });
        let path = format!("/calls/{P1}/transfer");
        let (status, body) = srv.post(&path, json!({"target": "200"})).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["protocol"], P1);
        assert_eq!(body["target"], "200");
        assert_eq!(body["via"], "sip");

        let refused = srv.post(&path, json!({"target": "300"})).await;
        assert_invalid(&refused, "target");
        assert_eq!(
            refused.1["errors"][0]["reason"], "no department or extension 300",
            "the task's reason reaches the client"
        );
        // Checked before the task is asked.
        assert_invalid(&srv.post(&path, json!({"target": "x"})).await, "target");

        let (status, _) = srv.delete(&format!("/calls/{P1}")).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(task.await.unwrap(), ["200", "300"]);

        // The task is gone (its receiver dropped) but still listed.
        let (status, body) = srv.post(&path, json!({"target": "200"})).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        srv.app.calls().remove(P1);
    }
);

both!(
    transfer_times_out_when_the_task_is_stuck,
    |srv: TestServer| async move {
        let mut rx = publish(&srv, live_call(P2, 0));
        // Receives the request but never answers it (keeps the reply open).
        let stuck = tokio::spawn(async move {
            let held = rx.recv().await;
            tokio::time::sleep(std::time::Duration::from_secs(8)).await;
            drop(held);
        });
        let started = std::time::Instant::now();
        let (status, body) = srv
            .post(&format!("/calls/{P2}/transfer"), json!({"target": "200"}))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(started.elapsed() >= std::time::Duration::from_secs(5));
        stuck.abort();

        // The reply dropped without an answer: the call ended meanwhile.
        let mut rx = publish(&srv, live_call(P1, 0));
        tokio::spawn(async move {
            let _ = rx.recv().await;
        });
        let (status, body) = srv
            .post(&format!("/calls/{P1}/transfer"), json!({"target": "200"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
    }
);

both!(
    live_calls_need_the_calls_scope,
    |srv: TestServer| async move {
        let _rx = publish(&srv, live_call(P1, 0));
        srv.app.traces().record(
            P1,
            TraceDirection::In,
            "192.0.2.1:5060".parse().unwrap(),
            "udp",
            b"BYE sip:x SIP/2.0\r\n\r\n",
        );
        let reader = token(&srv, json!(["attendances:read", "config:read"])).await;
        let calls = token(&srv, json!(["calls"])).await;
        let ops = [
            (Method::GET, "/calls".to_owned(), None),
            (Method::GET, format!("/calls/{P1}"), None),
            (Method::GET, format!("/calls/{P1}/sip-trace"), None),
            (
                Method::POST,
                format!("/calls/{P1}/transfer"),
                Some(json!({"target": "200"})),
            ),
            (Method::DELETE, format!("/calls/{P1}"), None),
        ];
        for (method, path, body) in &ops {
            let resp = srv
                .client
                .request(method.clone(), srv.url(&format!("/api/v1{path}")))
                .send()
                .await
                .unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} without a token"
            );
            let (status, _) = srv
                .call_as(&reader, method.clone(), path, body.clone())
                .await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{method} {path} without calls"
            );
        }
        let (status, _) = srv.call_as(&calls, Method::GET, "/calls", None).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = srv
            .call_as(&calls, Method::GET, &format!("/calls/{P1}/sip-trace"), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = srv
            .call_as(&calls, Method::DELETE, &format!("/calls/{P1}"), None)
            .await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
);

both!(
    transfer_of_a_sip_call_not_live_here_is_a_conflict,
    |srv: TestServer| async move {
        let store = pbx_bridge::store::Store::connect(&srv.db.url)
            .await
            .unwrap();
        let new = pbx_bridge::store::NewAttendance {
            direction: Direction::Inbound,
            department_id: None,
            agent_id: None,
            caller: "5511999990000".into(),
            callee: "700".into(),
            source: pbx_bridge::domain::CallSource::Sip,
            opened_at: Utc::now(),
            call_ref: Some("sip-call".into()),
            node: None,
        };
        let a = store
            .open_attendance(&new, srv.settings.time_zone)
            .await
            .unwrap();
        let (status, body) = srv
            .post(
                &format!("/calls/{}/transfer", a.protocol),
                json!({"target": "200"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert!(
            body["detail"].as_str().unwrap().contains("not live"),
            "{body}"
        );
    }
);

/// Extension `number` "registered" at a UDP socket the test holds (the
/// registrar's view, as the registrar would publish it).
async fn phone_on_the_bridge(srv: &TestServer, number: &str) -> tokio::net::UdpSocket {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    srv.app.update_registrations(|r| {
        r.items.push(pbx_bridge::domain::Registration {
            extension: number.into(),
            contact: format!("<sip:{number}@{addr}>"),
            source: addr.to_string(),
            transport: "udp".into(),
            user_agent: Some("test".into()),
            registered_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
        })
    });
    socket
}

/// The next SIP request the phone receives (retransmissions included).
async fn next_request(socket: &tokio::net::UdpSocket) -> pbx_bridge::sip::message::SipMessage {
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("a request within 5 s")
        .unwrap();
    pbx_bridge::sip::message::parse(bytes::Bytes::copy_from_slice(&buf[..n])).unwrap()
}

both!(
    click_to_call_on_the_bridge_answers_201_with_the_attendance,
    |srv: TestServer| async move {
        for (number, name) in [("1001", "Ana"), ("1002", "Bia")] {
            srv.create(
                "/extensions",
                json!({"number": number, "display_name": name, "secret": "a-long-secret"}),
            )
            .await;
        }
        // Not registered anywhere, no PBX: named on from_extension.
        let refused = srv
            .post("/calls", json!({"from_extension": "1001", "to": "1002"}))
            .await;
        assert_invalid(&refused, "from_extension");
        assert!(
            refused.1.to_string().contains("not registered"),
            "{}",
            refused.1
        );
        assert_invalid(
            &srv.post("/calls", json!({"from_extension": "1999", "to": "1002"}))
                .await,
            "from_extension",
        );
        let phone = phone_on_the_bridge(&srv, "1001").await;
        // Nothing routes an external number (no outbound route): on `to`.
        assert_invalid(
            &srv.post(
                "/calls",
                json!({"from_extension": "1001", "to": "5511999990000"}),
            )
            .await,
            "to",
        );
        let (status, body) = srv
            .post("/calls", json!({"from_extension": "1001", "to": "1002"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let protocol = body["protocol"].as_str().expect("a protocol").to_owned();
        assert_eq!(protocol.len(), 14, "{body}");
        assert_eq!(body["status"], "ringing", "{body}");
        assert_eq!(body["direction"], "internal", "{body}");
        assert_eq!(body["caller"], "1001", "{body}");
        assert_eq!(body["callee"], "1002", "{body}");
        assert_eq!(body["source"], "sip", "{body}");
        assert!(
            body["answered_at"].is_null() && body["ended_at"].is_null(),
            "{body}"
        );
        // The extension rings: the protocol and what is dialled.
        let invite = next_request(&phone).await;
        assert_eq!(
            invite.method(),
            Some(&pbx_bridge::sip::message::Method::Invite)
        );
        assert_eq!(
            invite
                .header("X-Protocol")
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            Some(protocol.clone())
        );
        let from = invite.from().unwrap();
        assert_eq!(from.display_name.as_deref(), Some("Click-to-call"));
        assert_eq!(from.uri.user_text().as_deref(), Some("1002"));
        // Listed and controllable while it lives.
        let (_, list) = srv.get("/calls").await;
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{list}");
        assert_eq!(items[0]["protocol"], protocol.as_str());
        assert_eq!(items[0]["legs"][0]["extension"], "1001", "{list}");
        let (status, body) = srv.delete(&format!("/calls/{protocol}")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let (_, a) = srv.get(&format!("/attendances/{protocol}")).await;
            if a["status"] == "closed" {
                assert_eq!(a["close_reason"], "api", "{a}");
                assert!(a["answered_at"].is_null(), "{a}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "not closed: {a}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let (_, list) = srv.get("/calls").await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
    }
);
