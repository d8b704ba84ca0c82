//! One close rule (SPEC §4 "When a call ends"): whether an attendance
//! closes when its call ends is decided by `closes_when_call_ends`, and the
//! engines that end calls agree with it. Every row of (answered yes/no) ×
//! (department closes on hangup / department keeps attendances open / no
//! department) goes through the domain function, the AMI follower applying
//! real decisions to the store, and crash recovery over the store: the
//! three answers (closed or open) must be the same.

mod common;

use std::time::SystemTime;

use chrono::{Duration, Utc};
use common::TestServer;
use pbx_bridge::ami::follow::{Applied, Follower};
use pbx_bridge::ami::tracker::{CallDecision, Direction as AmiDirection};
use pbx_bridge::calls::recovery::recover;
use pbx_bridge::domain::{
    AttendanceStatus, CallSource, CloseReason, Direction, closes_when_call_ends,
};
use pbx_bridge::store::{NewAttendance, Store};
use serde_json::json;

/// The call's department in a row of the table.
#[derive(Debug, Clone, Copy)]
enum Dept {
    Closes,
    Keeps,
    None,
}

impl Dept {
    fn closes_on_hangup(self) -> Option<bool> {
        match self {
            Dept::Closes => Some(true),
            Dept::Keeps => Some(false),
            Dept::None => None,
        }
    }
}

/// What one engine left: closed (with the reason), or still open.
async fn closed(store: &Store, protocol: &str) -> bool {
    let a = store.get_attendance(protocol).await.unwrap();
    assert!(a.ended_at.is_some(), "{protocol}: the call ended");
    a.status == AttendanceStatus::Closed
}

both!(
    the_rule_the_ami_follower_and_recovery_close_alike,
    |srv: TestServer| async move {
        let closes = srv
            .create(
                "/departments",
                json!({"name": "Fecha", "pabx_code": 701, "close_on_hangup": true}),
            )
            .await;
        let keeps = srv
            .create(
                "/departments",
                json!({"name": "Mantém", "pabx_code": 702, "close_on_hangup": false}),
            )
            .await;
        let store = Store::connect(&srv.db.url).await.unwrap();
        let tz = srv.settings.time_zone;
        let node = srv.settings.node_id.clone();
        let department = |d: Dept| match d {
            Dept::Closes => Some((closes, "701")),
            Dept::Keeps => Some((keeps, "702")),
            Dept::None => None,
        };

        let mut follower = Follower::new(store.clone(), tz);
        follower.set_directory(store.call_directory().await.unwrap());

        let mut rows = Vec::new();
        for answered in [false, true] {
            for dept in [Dept::Closes, Dept::Keeps, Dept::None] {
                let row = rows.len();
                // (1) The domain rule.
                let rule = closes_when_call_ends(answered, dept.closes_on_hangup());

                // (2) The AMI follower: opened, maybe answered, ended.
                let linkedid = format!("1700000000.{row}");
                let mut decisions = vec![CallDecision::CallOpened {
                    linkedid: linkedid.clone(),
                    caller: "+5511999990000".into(),
                    callee: department(dept).map_or("1002", |(_, code)| code).into(),
                    direction: if dept.closes_on_hangup().is_some() {
                        AmiDirection::Inbound
                    } else {
                        AmiDirection::Internal
                    },
                    department_code: department(dept).map(|(_, code)| code.into()),
                    opened_at: SystemTime::now(),
                }];
                if answered {
                    decisions.push(CallDecision::CallAnswered {
                        linkedid: linkedid.clone(),
                        agent_extension: None,
                        at: SystemTime::now(),
                    });
                }
                decisions.push(CallDecision::CallEnded {
                    linkedid: linkedid.clone(),
                    cause: None,
                    ended_at: SystemTime::now(),
                    answered,
                    hangup_by: None,
                });
                let applied = follower.apply_batch(&decisions).await.unwrap();
                let Applied::Opened(ami) = &applied[0] else {
                    panic!("{applied:?}")
                };
                let a = store.get_attendance(ami).await.unwrap();
                assert_eq!(a.department_id, department(dept).map(|(id, _)| id));

                // (3) Crash recovery: a SIP call of this node, live when
                // the process died.
                let new = NewAttendance {
                    direction: if dept.closes_on_hangup().is_some() {
                        Direction::Inbound
                    } else {
                        Direction::Internal
                    },
                    department_id: department(dept).map(|(id, _)| id),
                    agent_id: None,
                    caller: "1001".into(),
                    callee: "1002".into(),
                    source: CallSource::Sip,
                    opened_at: Utc::now() - Duration::minutes(10),
                    call_ref: Some(format!("sip-call-{row}")),
                    node: Some(node.clone()),
                };
                let sip = store.open_attendance(&new, tz).await.unwrap().protocol;
                if answered {
                    store
                        .mark_attendance_answered(&sip, None, Utc::now() - Duration::minutes(9))
                        .await
                        .unwrap();
                }
                rows.push((answered, dept, rule, ami.clone(), sip));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        recover(&store, dir.path(), tz, &node).await.unwrap();

        let mut table = Vec::new();
        for (answered, dept, rule, ami, sip) in &rows {
            let by_ami = closed(&store, ami).await;
            let by_recovery = closed(&store, sip).await;
            assert_eq!(
                (rule, by_ami, by_recovery),
                (rule, *rule, *rule),
                "answered={answered} department={dept:?}: rule / AMI / recovery disagree"
            );
            if by_recovery {
                let a = store.get_attendance(sip).await.unwrap();
                assert_eq!(a.close_reason, Some(CloseReason::Failed));
            }
            table.push((*answered, format!("{dept:?}"), *rule));
        }
        // The rule itself, spelled out.
        let expected = [
            (false, "Closes", true),
            (false, "Keeps", true),
            (false, "None", true),
            (true, "Closes", true),
            (true, "Keeps", false),
            (true, "None", true),
        ];
        let table: Vec<_> = table.iter().map(|(a, d, c)| (*a, d.as_str(), *c)).collect();
        assert_eq!(table, expected);
        srv.stop().await;
    }
);
