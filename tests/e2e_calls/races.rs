//! Races between real peers, where the peers' timing decides the path.

use super::*;

/// Two agents of a simultaneous department answer at the same instant: one
/// is bridged, the other's 200 gets an ACK and a BYE; one attendance.
///
/// Which way the loser's race goes is the peers' timing: when the winner's
/// 200 reaches the bridge before the loser's SIPp has sent its 200, the
/// bridge's CANCEL arrives between the loser's 180 and 200, and SIPp (which
/// cannot branch there) aborts that call. The bridge was right either way,
/// so the loser passes or shows exactly that; the winner and the
/// attendance are checked whatever the timing. The crossing itself is
/// pinned in simulated time (`calls::call::tests::races`).
#[tokio::test(flavor = "multi_thread")]
async fn test_two_agents_answer_at_once() {
    let pbx = Pbx::start().await;
    let dept = pbx
        .department(json!({"name": "Suporte", "pabx_code": 860, "close_on_hangup": true}))
        .await;
    let first = pbx.agent("1861", &[dept]).await;
    let second = pbx.agent("1862", &[dept]).await;
    let a1 = sipp_agent(&pbx, "1861", "agent_answers_at_once.xml");
    let a2 = sipp_agent(&pbx, "1862", "agent_answers_at_once.xml");
    std::thread::sleep(Duration::from_millis(300));
    let mut caller = pbx.caller("860").hangup_after(1.0).spawn();
    assert_eq!(caller.wait(20 * SECS), 0, "caller:\n{}", caller.log());
    let ends = [a1.join().unwrap(), a2.join().unwrap()];
    let a = pbx.closed().await;
    assert_eq!(a["close_reason"], "caller_hangup", "{a}");
    let winner = if a["agent_id"] == first {
        0
    } else {
        assert_eq!(a["agent_id"], second, "{a}");
        1
    };
    let (code, out) = &ends[winner];
    assert_eq!(
        *code, 0,
        "the bridged agent got its ACK and the BYE:\n{out}"
    );
    let (code, out) = &ends[1 - winner];
    assert!(
        *code == 0 || out.contains("unexpected CANCEL"),
        "the other's 200 got an ACK and a BYE (or the CANCEL crossed before it):\n{out}"
    );
}
