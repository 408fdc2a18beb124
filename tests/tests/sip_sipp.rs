//! signaling's user agent against SIPp scenarios of ours (tests/sip/*.xml):
//! as caller (180/200, 183 early media, 486, BYE either way, INVITE
//! retransmission, reliable 183 and PRACK, session timers, 302, REFER sent)
//! and as callee (CANCEL -> 487, hold/resume re-INVITEs, INFO DTMF, BYE
//! either way, 200 retransmission, Require: 100rel, session timers, 420 and
//! 422, REFER received).

use e2e::process::test_dir;
use e2e::sipp::{Sipp, SippRun};
use signaling::{
    Call, CallEvent, Caller, Config, IncomingCall, Listen, OfferKind, Party, Transport, UaEvent, UserAgent,
};
use std::time::Duration;

fn sdp(dir: &str) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na={dir}\r\n")
}

async fn ua() -> UserAgent {
    UserAgent::start(Config {
        listen: vec![Listen { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() }],
        ..Config::default()
    })
    .await
    .unwrap()
}

/// An agent with a session interval short enough to test (RFC 4028's
/// floor is 90 s) and, with `t1`, fast transaction timeouts.
async fn ua_with_timer(expires: u32, t1: Duration) -> UserAgent {
    UserAgent::start(Config {
        listen: vec![Listen { transport: Transport::Udp, addr: "127.0.0.1:0".parse().unwrap() }],
        session_timer: Some(signaling::SessionTimer { expires, min_se: 1 }),
        t1,
        ..Config::default()
    })
    .await
    .unwrap()
}

fn guest() -> Caller {
    Caller::Guest { uri: "sip:alice@127.0.0.1".into(), display_name: Some("Alice".into()) }
}

async fn next(call: &mut Call) -> CallEvent {
    tokio::time::timeout(Duration::from_secs(10), call.next_event())
        .await
        .expect("call event in time")
        .expect("call event")
}

/// Next event that is not a provisional one.
async fn next_final(call: &mut Call) -> CallEvent {
    loop {
        match next(call).await {
            CallEvent::Trying | CallEvent::Ringing | CallEvent::Progress { .. } => {}
            other => return other,
        }
    }
}

/// Next event other than 100 Trying.
async fn next_after_trying(call: &mut Call) -> CallEvent {
    loop {
        match next(call).await {
            CallEvent::Trying => {}
            other => return other,
        }
    }
}

/// SIPp running a callee `scenario`, given time to bind before we call it.
async fn sipp_uas(dir: &std::path::Path, scenario: &str, name: &str) -> SippRun {
    let sipp = Sipp::new(scenario).spawn(dir, name).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sipp
}

/// Our guest calls the SIPp callee, offering PCMU sendrecv.
fn call_sipp(ua: &UserAgent, sipp: &SippRun) -> Call {
    ua.invite(guest(), &format!("sip:sipp@{}", sipp.addr()), Some(sdp("sendrecv")), &[]).unwrap()
}

/// Answers the next incoming call; returns it once the ACK has come.
async fn answer_next(events: &mut tokio::sync::mpsc::UnboundedReceiver<UaEvent>) -> Call {
    let mut call = wait_call(events).await.call;
    call.answer(&sdp("sendrecv")).unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Confirmed { sdp: None });
    call
}

async fn wait_call(events: &mut tokio::sync::mpsc::UnboundedReceiver<UaEvent>) -> IncomingCall {
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("incoming call in time") {
        Some(UaEvent::IncomingCall(c)) => c,
        other => panic!("expected a call, got {other:?}"),
    }
}

/// Registers alice at a SIPp registrar running `scenario` (after `adjust`
/// has had its say on the account); the scenario must have succeeded.
async fn register_at_sipp(
    dir: &std::path::Path,
    scenario: &str,
    ua: &UserAgent,
    adjust: impl FnOnce(&mut signaling::Account),
) -> signaling::Registration {
    let mut registrar = sipp_uas(dir, scenario, "registrar").await;
    let mut account =
        signaling::Account::new("sip:alice@sipp.test", "a-pw").with_proxy(format!("sip:{}", registrar.addr()));
    adjust(&mut account);
    let mut reg = ua.register(account).unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(10), reg.next_event()).await.expect("registered in time");
    assert!(matches!(ev, Some(signaling::RegistrationEvent::Registered { .. })), "{ev:?}\n{}", registrar.traces());
    finish(&mut registrar);
    reg
}

fn finish(sipp: &mut SippRun) {
    sipp.expect_success(Duration::from_secs(15)).unwrap();
}

/// Counts SIPp trace entries for received messages starting with `start`
/// and containing `needle`.
fn count_received(dir: &std::path::Path, start: &str, needle: &str) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_name().to_string_lossy().ends_with("_messages.log") {
            let text = std::fs::read_to_string(e.path()).unwrap();
            for block in text.split("message received") {
                let body = block.split_once("\n\n").map_or("", |(_, rest)| rest).trim_start();
                if body.starts_with(start) && body.split("\n\n").next().unwrap_or("").contains(needle) {
                    n += 1;
                }
            }
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_rings_then_answers_and_we_hang_up() {
    let dir = test_dir("sip_sipp_ring_answer");
    let mut sipp = sipp_uas(&dir, "uas_ring_answer.xml", "sipp").await;
    let ua = ua().await;
    let mut call = call_sipp(&ua, &sipp);
    let mut seen = Vec::new();
    let answered = loop {
        match next(&mut call).await {
            ev @ CallEvent::Answered { .. } => break ev,
            other => seen.push(other),
        }
    };
    assert!(seen.contains(&CallEvent::Ringing), "{seen:?}");
    assert!(matches!(answered, CallEvent::Answered { sdp: Some(ref s) } if s.contains("m=audio")), "{answered:?}");
    call.bye().await.unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Local, reason: "BYE".into() });
    finish(&mut sipp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_media_183_then_far_end_hangs_up() {
    let dir = test_dir("sip_sipp_early_media");
    let mut sipp = sipp_uas(&dir, "uas_early_media.xml", "sipp").await;
    let ua = ua().await;
    let mut call = call_sipp(&ua, &sipp);
    let progress = next_after_trying(&mut call).await;
    assert!(
        matches!(progress, CallEvent::Progress { code: 183, sdp: Some(ref s) } if s.contains("s=early")),
        "{progress:?}"
    );
    let answered = next_final(&mut call).await;
    assert!(matches!(answered, CallEvent::Answered { sdp: Some(ref s) } if s.contains("s=answer")), "{answered:?}");
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Remote, reason: "BYE".into() });
    finish(&mut sipp);
}

/// RFC 3262 as UAC: our INVITE offers 100rel; the callee's reliable 183
/// (early media) is PRACKed with the right RAck (SIPp fails otherwise) and
/// reported as progress with its SDP, then the call is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliable_183_is_pracked_and_reported() {
    let dir = test_dir("sip_sipp_reliable_183");
    let mut sipp = sipp_uas(&dir, "uas_reliable_183.xml", "sipp").await;
    let ua = ua().await;
    let mut call = call_sipp(&ua, &sipp);
    let progress = next_after_trying(&mut call).await;
    assert!(
        matches!(progress, CallEvent::Progress { code: 183, sdp: Some(ref s) } if s.contains("s=early")),
        "{progress:?}\n{}",
        sipp.traces()
    );
    let answered = next_final(&mut call).await;
    assert!(matches!(answered, CallEvent::Answered { .. }), "{answered:?}\n{}", sipp.traces());
    call.bye().await.unwrap();
    finish(&mut sipp);
}

/// RFC 3262 as UAS: an INVITE with `Require: 100rel` is taken (no 420);
/// our 180 and 183 are reliable (Require, rising RSeq), the 183 is
/// retransmitted until its PRACK, and the call is answered after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_100rel_gets_reliable_180_and_183() {
    let dir = test_dir("sip_sipp_require_100rel");
    let ua = ua().await;
    let mut events = ua.take_events().unwrap();
    let addr = ua.local_addr(Transport::Udp).unwrap();
    let mut sipp = Sipp::new("uac_require_100rel.xml").remote(addr.to_string()).spawn(&dir, "sipp").unwrap();
    let incoming = wait_call(&mut events).await;
    let call = incoming.call;
    call.ringing().unwrap();
    // The next reliable response waits for the PRACK of the first.
    let until = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Err(e) = call.progress(&sdp("sendrecv")) {
        assert!(tokio::time::Instant::now() < until, "180 never PRACKed: {e}\n{}", sipp.traces());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIPp PRACKs the 183 after 1.2 s (T1 = 500 ms: one retransmission).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    call.answer(&sdp("sendrecv")).unwrap();
    finish(&mut sipp);
    let copies = count_received(&dir, "SIP/2.0 183", "RSeq:");
    assert!(copies >= 2, "the unacknowledged 183 must be retransmitted; SIPp got {copies}");
}

/// RFC 4028 as UAC: the callee's 422 (Min-SE 4) makes us ask again for
/// 4 s; granted with us refreshing, we refresh by UPDATE three times (SIPp
/// checks each) and the call lives until the callee's BYE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_timer_422_then_three_refreshes() {
    let dir = test_dir("sip_sipp_session_timer");
    let mut sipp = sipp_uas(&dir, "uas_session_timer.xml", "sipp").await;
    let ua = ua_with_timer(2, Duration::from_millis(500)).await;
    let mut call = call_sipp(&ua, &sipp);
    let answered = next_final(&mut call).await;
    assert!(matches!(answered, CallEvent::Answered { .. }), "{answered:?}\n{}", sipp.traces());
    let ended = tokio::time::timeout(Duration::from_secs(15), call.next_event()).await.expect("BYE in time");
    assert_eq!(ended, Some(CallEvent::Ended { by: Party::Remote, reason: "BYE".into() }), "{}", sipp.traces());
    finish(&mut sipp);
}

/// RFC 4028 §10: our refresh goes unanswered (transaction timeout, T1 =
/// 50 ms here): the call is ended with BYE and reported ended by us.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_session_refresh_ends_the_call_with_bye() {
    let dir = test_dir("sip_sipp_refresh_unanswered");
    let mut sipp = sipp_uas(&dir, "uas_refresh_unanswered.xml", "sipp").await;
    let ua = ua_with_timer(2, Duration::from_millis(50)).await;
    let mut call = call_sipp(&ua, &sipp);
    let answered = next_final(&mut call).await;
    assert!(matches!(answered, CallEvent::Answered { .. }), "{answered:?}\n{}", sipp.traces());
    let ended = tokio::time::timeout(Duration::from_secs(15), call.next_event()).await.expect("end in time");
    assert_eq!(ended, Some(CallEvent::Ended { by: Party::Local, reason: "session refresh failed".into() }));
    finish(&mut sipp);
}

/// RFC 4028 as UAS: the caller asks for 2 s and will refresh; it never
/// does, so we send BYE before the interval is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_not_refreshed_by_the_caller_is_ended_with_bye() {
    let dir = test_dir("sip_sipp_session_not_refreshed");
    let ua = ua_with_timer(1800, Duration::from_millis(500)).await;
    let mut events = ua.take_events().unwrap();
    let addr = ua.local_addr(Transport::Udp).unwrap();
    let mut sipp = Sipp::new("uac_session_not_refreshed.xml").remote(addr.to_string()).spawn(&dir, "sipp").unwrap();
    let mut call = answer_next(&mut events).await;
    let started = std::time::Instant::now();
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Local, reason: "session expired".into() });
    let after = started.elapsed();
    assert!(after < Duration::from_secs(2), "BYE before the 2 s interval ends, not after {after:?}");
    finish(&mut sipp);
}

/// 422 for an interval below our Min-SE (90 s by default) and 420 for a
/// required extension we lack, naming only that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_short_interval_is_422_and_unknown_extension_is_420() {
    let dir = test_dir("sip_sipp_422_420");
    let ua = ua().await;
    let addr = ua.local_addr(Transport::Udp).unwrap();
    for scenario in ["uac_session_too_short.xml", "uac_require_unknown.xml"] {
        let mut sipp = Sipp::new(scenario).remote(addr.to_string()).spawn(&dir, scenario).unwrap();
        finish(&mut sipp);
    }
}

/// A 302 is followed to its Contact (SIPp checks the new Request-URI) and
/// that target answers; a 302 back to the target already called is a loop:
/// the call fails with 302 at once instead of calling it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_302_is_followed_and_a_loop_is_not() {
    let dir = test_dir("sip_sipp_redirect");
    let ua = ua().await;
    let mut sipp = sipp_uas(&dir, "uas_redirect.xml", "sipp").await;
    let mut call = call_sipp(&ua, &sipp);
    let answered = next_final(&mut call).await;
    assert!(matches!(answered, CallEvent::Answered { .. }), "{answered:?}\n{}", sipp.traces());
    call.bye().await.unwrap();
    finish(&mut sipp);

    let mut sipp = sipp_uas(&dir, "uas_redirect_loop.xml", "sipp-loop").await;
    let mut call = call_sipp(&ua, &sipp);
    let failed = next_final(&mut call).await;
    assert!(matches!(failed, CallEvent::Failed { code: 302, .. }), "{failed:?}\n{}", sipp.traces());
    finish(&mut sipp);
}

/// RFC 3515 as transferee: the peer's REFER (Referred-By, Replaces in the
/// Refer-To) comes up as an event; accepted, it gets 202 and NOTIFYs
/// 100 then 200 (SIPp checks bodies and subscription states).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_refer_is_accepted_with_sipfrag_progress() {
    let dir = test_dir("sip_sipp_refer_in");
    let ua = ua().await;
    let mut events = ua.take_events().unwrap();
    let addr = ua.local_addr(Transport::Udp).unwrap();
    let mut sipp = Sipp::new("uac_refer.xml").remote(addr.to_string()).spawn(&dir, "sipp").unwrap();
    let mut call = answer_next(&mut events).await;
    match next(&mut call).await {
        CallEvent::Refer { target, referred_by, replaces } => {
            assert_eq!(target, "sip:carol@127.0.0.1");
            assert!(referred_by.is_some_and(|b| b.contains("sip:sipp@")));
            assert_eq!(replaces.as_deref(), Some("abc@example.test;to-tag=1;from-tag=2"));
        }
        other => panic!("expected a REFER, got {other:?}\n{}", sipp.traces()),
    }
    call.accept_refer().await.unwrap();
    call.notify_refer(200).await.unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Remote, reason: "BYE".into() });
    finish(&mut sipp);
}

/// RFC 3515 as transferor: our REFER (Refer-To, Referred-By) is accepted
/// and the peer's NOTIFYs come up as progress, 180 then the final 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_refer_reports_the_transferees_progress() {
    let dir = test_dir("sip_sipp_refer_out");
    let mut sipp = sipp_uas(&dir, "uas_refer.xml", "sipp").await;
    let ua = ua().await;
    let mut call = call_sipp(&ua, &sipp);
    let answered = next_final(&mut call).await;
    assert!(matches!(answered, CallEvent::Answered { .. }), "{answered:?}");
    call.refer("sip:carol@127.0.0.1", None).await.unwrap();
    assert_eq!(next(&mut call).await, CallEvent::ReferProgress { code: 180, reason: "Ringing".into(), done: false });
    assert_eq!(next(&mut call).await, CallEvent::ReferProgress { code: 200, reason: "OK".into(), done: true });
    // Our 200 to that NOTIFY goes out on the dialog's task: let it leave first.
    tokio::time::sleep(Duration::from_millis(200)).await;
    call.bye().await.unwrap();
    finish(&mut sipp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_486_is_a_failure_with_code() {
    let dir = test_dir("sip_sipp_busy");
    let mut sipp = sipp_uas(&dir, "uas_busy.xml", "sipp").await;
    let ua = ua().await;
    let mut call = call_sipp(&ua, &sipp);
    let f = next_final(&mut call).await;
    assert!(matches!(f, CallEvent::Failed { code: 486, ref reason } if reason == "Busy Here"), "{f:?}");
    finish(&mut sipp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_is_retransmitted_when_the_first_goes_unanswered() {
    let dir = test_dir("sip_sipp_invite_retrans");
    // SIPp sits 1.2 s on the INVITE: T1 = 500 ms means at least one
    // retransmission before it answers.
    let mut sipp = Sipp::new("uas_ring_answer.xml").args(["-d", "1200"]).spawn(&dir, "sipp").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ua = ua().await;
    let mut call = call_sipp(&ua, &sipp);
    assert!(matches!(next_final(&mut call).await, CallEvent::Answered { .. }));
    call.bye().await.unwrap();
    finish(&mut sipp);
    let invites = count_received(&dir, "INVITE sip:", "CSeq: 1 INVITE");
    assert!(invites >= 2, "SIPp saw {invites} INVITE(s); expected a retransmission\n{}", sipp.traces());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_ringing_is_answered_487() {
    let dir = test_dir("sip_sipp_cancel");
    let ua = ua().await;
    let mut events = ua.take_events().unwrap();
    let addr = ua.local_addr(Transport::Udp).unwrap();
    let mut sipp =
        Sipp::new("uac_cancel.xml").args(["-s", "bob"]).remote(addr.to_string()).spawn(&dir, "sipp").unwrap();
    let inc = wait_call(&mut events).await;
    assert!(inc.from.contains("sipp@"), "{}", inc.from);
    assert!(inc.sdp_offer.as_deref().is_some_and(|s| s.contains("m=audio")));
    let mut call = inc.call;
    call.ringing().unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Remote, reason: "CANCEL".into() });
    finish(&mut sipp);
}

async fn answer_hold_resume_info(late_ack: bool) {
    let dir = test_dir(if late_ack { "sip_sipp_200_retrans" } else { "sip_sipp_hold" });
    let ua = ua().await;
    let mut events = ua.take_events().unwrap();
    let addr = ua.local_addr(Transport::Udp).unwrap();
    let mut sipp = Sipp::new("uac_hold_info.xml")
        .args(["-s", "bob", "-d", if late_ack { "1200" } else { "0" }])
        .remote(addr.to_string())
        .spawn(&dir, "sipp")
        .unwrap();
    let inc = wait_call(&mut events).await;
    let mut call = inc.call;
    call.ringing().unwrap();
    call.answer(&sdp("sendrecv")).unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Confirmed { sdp: None });
    // Hold: the peer's offer says sendonly, our answer recvonly.
    let ev = next(&mut call).await;
    assert!(
        matches!(&ev, CallEvent::Offer { kind: OfferKind::ReInvite, sdp: Some(s) } if s.contains("a=sendonly")),
        "{ev:?}"
    );
    call.accept_offer(&sdp("recvonly")).await.unwrap();
    // Resume.
    let ev = next(&mut call).await;
    assert!(
        matches!(&ev, CallEvent::Offer { kind: OfferKind::ReInvite, sdp: Some(s) } if s.contains("a=sendrecv")),
        "{ev:?}"
    );
    call.accept_offer(&sdp("sendrecv")).await.unwrap();
    let ev = next(&mut call).await;
    let CallEvent::Info { content_type, dtmf: Some(d), .. } = &ev else { panic!("{ev:?}") };
    assert_eq!((content_type.as_str(), d.digit, d.duration_ms), ("application/dtmf-relay", '5', Some(160)));
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Remote, reason: "BYE".into() });
    finish(&mut sipp);
    if late_ack {
        let oks = count_received(&dir, "SIP/2.0 200", "CSeq: 1 INVITE");
        assert!(oks >= 2, "SIPp saw {oks} 200 OK(s) to the INVITE; expected a retransmission\n{}", sipp.traces());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_and_resume_reinvites_info_dtmf_and_far_end_bye() {
    answer_hold_resume_info(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_200_is_retransmitted_until_the_late_ack() {
    answer_hold_resume_info(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incoming_call_we_hang_up() {
    let dir = test_dir("sip_sipp_we_bye");
    let ua = ua().await;
    let mut events = ua.take_events().unwrap();
    let addr = ua.local_addr(Transport::Udp).unwrap();
    let mut sipp = Sipp::new("uac_answered_then_bye.xml")
        .args(["-s", "bob"])
        .remote(addr.to_string())
        .spawn(&dir, "sipp")
        .unwrap();
    let mut call = answer_next(&mut events).await;
    call.bye().await.unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Local, reason: "BYE".into() });
    finish(&mut sipp);
}

/// A callee that challenges both the INVITE and, inside the call, the
/// re-INVITE (some PBXs challenge every request): both are answered with the
/// account's credentials, which SIPp verifies, and the call survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenged_invite_and_in_dialog_reinvite_are_answered() {
    let dir = test_dir("sip_sipp_auth_reinvite");
    let mut sipp = sipp_uas(&dir, "uas_auth_reinvite.xml", "sipp").await;
    let ua = ua().await;
    let account = signaling::Account::new("sip:alice@sipp.test", "a-pw").with_proxy(format!("sip:{}", sipp.addr()));
    let mut call =
        ua.invite(Caller::Account(account), &format!("sip:sipp@{}", sipp.addr()), Some(sdp("sendrecv")), &[]).unwrap();
    let answered = next_final(&mut call).await;
    assert!(matches!(answered, CallEvent::Answered { .. }), "{answered:?}\n{}", sipp.traces());
    let answer = tokio::time::timeout(Duration::from_secs(10), call.reinvite(&sdp("sendonly")))
        .await
        .expect("re-INVITE in time");
    assert!(matches!(&answer, Ok(Some(s)) if s.contains("a=recvonly")), "{answer:?}\n{}", sipp.traces());
    call.bye().await.unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Local, reason: "BYE".into() });
    finish(&mut sipp);
}

/// An incoming call to an account we registered: when the caller's side
/// challenges our BYE, it goes out again with that account's credentials
/// (otherwise the far end would keep the call up).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_bye_on_an_incoming_call_answers_a_challenge() {
    let dir = test_dir("sip_sipp_bye_challenged");
    let ua = ua().await;
    let mut events = ua.take_events().unwrap();
    let reg = register_at_sipp(&dir, "uas_registrar.xml", &ua, |_| {}).await;
    let addr = ua.local_addr(Transport::Udp).unwrap();
    let mut sipp =
        Sipp::new("uac_bye_challenged.xml").args(["-s", "alice"]).remote(addr.to_string()).spawn(&dir, "sipp").unwrap();
    let mut call = answer_next(&mut events).await;
    call.bye().await.unwrap();
    assert_eq!(next(&mut call).await, CallEvent::Ended { by: Party::Local, reason: "BYE".into() });
    finish(&mut sipp);
    drop(reg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_carries_the_accounts_custom_headers() {
    let dir = test_dir("sip_sipp_register_headers");
    let ua = ua().await;
    let reg = register_at_sipp(&dir, "uas_registrar_headers.xml", &ua, |account| {
        account.headers = vec![("X-Tenant".into(), "acme".into())];
    })
    .await;
    drop(reg);
}
