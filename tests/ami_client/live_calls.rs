//! A call Asterisk carries, followed from AMI, is a live call of the API:
//! listed in `GET /calls` (`source: ami`) with its protocol and agent, and
//! hung up by `DELETE /calls/{protocol}` through AMI `Hangup`, its
//! attendance closed `api`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::{Bridge, Db, Plan, closed, fake_ami, fast_tuning, header, timeline};

both!(
    an_asterisk_call_is_listed_and_hung_up_through_ami,
    |db| async move {
        let bridge = Bridge::start(db, fast_tuning()).await;
        let (dept, agent) = bridge.numbering_plan(true).await;
        // Nothing to hang up while the PBX is disabled: 404.
        let (s, v) = bridge
            .call(reqwest::Method::DELETE, "/calls/20261207000001", None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        // Replay b up to the moment 1002 and the customer are bridged; hold
        // there until the bridge hangs up, then replay Asterisk's hang-up.
        let rows = timeline("b-");
        let bridged = rows
            .iter()
            .rposition(|r| r.incoming && r.data.contains("Event: BridgeEnter"))
            .unwrap();
        let (port, log) = fake_ami(vec![Plan::HoldForHangup {
            rows,
            hold: bridged,
        }])
        .await;
        bridge.enable_pbx(port, "bridge-secret").await;
        let items = bridge
            .wait_attendances("b answered", |i| {
                i.len() == 1 && i[0]["status"] == "in_progress"
            })
            .await;
        let protocol = items[0]["protocol"].as_str().unwrap().to_owned();
        // Listed beside the bridge's own calls, with its protocol and agent.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let call = loop {
            let (s, v) = bridge.get("/calls").await;
            assert_eq!(s, StatusCode::OK, "{v}");
            let items = v["items"].as_array().cloned().unwrap_or_default();
            if let Some(c) = items.iter().find(|c| c["agent_id"] == agent) {
                break c.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "not listed: {v}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        };
        assert_eq!(call["source"], "ami", "{call}");
        assert_eq!(call["id"], protocol.as_str(), "{call}");
        assert_eq!(call["protocol"], protocol.as_str(), "{call}");
        assert_eq!(call["state"], "answered", "{call}");
        assert_eq!(call["agent_extension"], "1002", "{call}");
        assert_eq!(call["department_id"], dept, "{call}");
        assert_eq!(call["caller"], "+4930123456", "{call}");
        assert_eq!(call["callee"], "701", "{call}");
        assert_eq!(call["direction"], "inbound", "{call}");
        assert_eq!(call["customer_channel"], "PJSIP/bridge-00000000", "{call}");
        let (s, one) = bridge.get(&format!("/calls/{protocol}")).await;
        assert_eq!(s, StatusCode::OK, "{one}");
        assert_eq!(one, call);
        // Hang it up: the customer's channel first, then 1002's.
        let (s, v) = bridge
            .call(reqwest::Method::DELETE, &format!("/calls/{protocol}"), None)
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["source"], "ami", "{v}");
        let hangups = log.actions_named("Hangup");
        assert_eq!(
            header(&hangups[0], "Channel"),
            Some("PJSIP/bridge-00000000")
        );
        assert!(
            hangups
                .iter()
                .any(|h| header(h, "Channel") == Some("PJSIP/1002-00000002")),
            "{hangups:?}"
        );
        // Asterisk's hang-up (replayed): closed `api`, and no longer listed.
        let items = bridge.wait_attendances("closed", closed).await;
        assert_eq!(items[0]["protocol"], protocol.as_str());
        assert_eq!(items[0]["close_reason"], "api", "{:#?}", items[0]);
        let (s, v) = bridge.get("/calls").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["items"], json!([]), "{v}");
        let (s, _) = bridge.get(&format!("/calls/{protocol}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, v) = bridge
            .call(reqwest::Method::DELETE, &format!("/calls/{protocol}"), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        bridge.stop().await;
    }
);
