//! The gateway as a preset of the daemon: configured from a TOML file (a
//! codec restriction there is what the SIP side is offered), and shut down
//! like the daemon (SIGTERM: BYE to every call, every browser user's
//! registration removed at the registrar, exit 0).

use e2e::audio::{tone, write_wav};
use e2e::baresip::{Baresip, BaresipOptions};
use e2e::gateway::{Gateway, Softphone};
use e2e::kamailio::{Kamailio, KamailioOptions};
use e2e::process::test_dir;
use serde_json::json;
use std::net::UdpSocket;
use std::path::Path;
use std::time::Duration;

fn page(dir: &Path, name: &str, gw: &Gateway) -> Softphone {
    let page = Softphone::start(dir, name, &gw.url(), 660).unwrap();
    page.wait_ready().unwrap();
    page
}

#[test]
fn sigterm_byes_every_call_unregisters_every_user_and_exits_0() {
    let dir = test_dir("gateway_sigterm");
    let users = [("alice", "a-pw"), ("carol", "c-pw"), ("bob", "b-pw"), ("dave", "d-pw")];
    let k = Kamailio::start(&dir, &KamailioOptions::new("example.test", &users)).unwrap();
    let wav = dir.join("baresip-tone.wav");
    write_wav(&wav, &tone(440.0, 60.0, 8000, 0.3)).unwrap();
    let phones = Baresip::start(
        &dir,
        &BaresipOptions {
            accounts: vec![k.baresip_account("bob", "b-pw", true), k.baresip_account("dave", "d-pw", true)],
            play: Some(wav),
            record: false,
            limit: Duration::from_secs(120),
        },
    )
    .unwrap();
    phones.wait_registered(2, Duration::from_secs(10)).unwrap();
    let mut gw = Gateway::start(&dir, None, &[]).unwrap();

    // Two browser users, each registered through the gateway and in a call.
    let mut pages = Vec::new();
    for ((user, password), callee) in [(("alice", "a-pw"), "bob"), (("carol", "c-pw"), "dave")] {
        let p = page(&dir, user, &gw);
        p.register(&k.aor(user), password, &k.proxy_uri("udp")).unwrap();
        let ev = p.wait(|d| d["event"] == "registered" || d["event"] == "registration_failed").unwrap();
        assert_eq!(ev["event"], "registered", "{ev}\n{}", gw.log());
        p.fill("#target", &k.aor(callee)).unwrap();
        p.click("#call").unwrap();
        let accepted = p.wait(|d| d["event"] == "accepted" || d["event"] == "hangup").unwrap();
        assert_eq!(accepted["event"], "accepted", "{accepted}\n{}", gw.log());
        p.wait(|d| d["event"] == "pcstate" && d["state"] == "connected").unwrap();
        pages.push(p);
    }
    for user in ["alice", "carol"] {
        assert!(k.log().contains(&format!("BINDINGS sip:{user}@example.test 1")), "{user} registered:\n{}", k.log());
    }

    gw.child.signal(libc::SIGTERM);
    let status = gw.child.wait_timeout(Duration::from_secs(15)).unwrap().expect("the gateway exits after SIGTERM");
    assert!(status.success(), "exit status {status}\n{}", gw.log());
    // Both phones had their call ended by our BYE.
    for _ in 0..2 {
        phones.wait_event("call", "CALL_CLOSED", Duration::from_secs(5)).unwrap();
    }
    let log = gw.log();
    assert_eq!(log.matches("call ended by us (BYE)").count(), 2, "{log}");
    assert!(k.log().matches("REQ BYE").count() >= 2, "{}", k.log());
    // The registrar holds no binding for either browser user any more.
    for user in ["alice", "carol"] {
        assert!(
            k.log().contains(&format!("BINDINGS sip:{user}@example.test 0")),
            "{user} was not unregistered:\n{}",
            k.log()
        );
    }
    // Each page heard of the end of its call before the socket closed.
    for p in &pages {
        let h = p.wait_event("hangup").unwrap();
        assert_eq!(h["by"], "local", "{h}");
    }
}

#[test]
fn a_gateway_configured_in_toml_offers_only_its_codecs() {
    let dir = test_dir("gateway_toml");
    let gw = Gateway::start_with_config(&dir, "[media]\ncodecs = [\"PCMA\"]\n[limits]\nmax_calls = 4\n").unwrap();
    // The far end is a bare socket: it reads the INVITE and answers 486.
    let far = UdpSocket::bind("127.0.0.1:0").unwrap();
    far.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let far_addr = far.local_addr().unwrap();
    let p = page(&dir, "page", &gw);
    let r = p.request("sip.register", json!({ "username": "sip:page@127.0.0.1", "guest": true })).unwrap();
    assert!(r.get("result").is_some(), "{r}");
    let r = p.request("sip.call", json!({ "uri": format!("sip:far@{far_addr}") })).unwrap();
    assert!(r["result"]["call"].is_string(), "{r}");

    let mut buf = vec![0u8; 8192];
    let (n, from) = far.recv_from(&mut buf).expect("an INVITE reaches the far end");
    let invite = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(invite.starts_with("INVITE "), "{invite}");
    let m_line = invite.lines().find(|l| l.starts_with("m=audio")).unwrap_or_else(|| panic!("no m=audio:\n{invite}"));
    let formats: Vec<&str> = m_line.split_whitespace().skip(3).collect();
    assert_eq!(formats, ["8", "101"], "only PCMA (and telephone-event) is offered: {m_line}");
    assert!(invite.contains("a=rtpmap:8 PCMA/8000"), "{invite}");
    assert!(!invite.contains("OPUS") && !invite.contains("PCMU") && !invite.contains("G722"), "{invite}");

    // 486, with the dialog headers of the INVITE: the page hears hangup 486.
    let header = |name: &str| {
        invite
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&format!("{}:", name.to_ascii_lowercase())))
            .unwrap_or_else(|| panic!("no {name}:\n{invite}"))
            .to_string()
    };
    let busy = format!(
        "SIP/2.0 486 Busy Here\r\n{}\r\n{}\r\n{};tag=far1\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        header("Via"),
        header("From"),
        header("To"),
        header("Call-ID"),
        header("CSeq")
    );
    far.send_to(busy.as_bytes(), from).unwrap();
    let h = p.wait_event("hangup").unwrap();
    assert_eq!(h["code"], 486, "{h}");
}

#[test]
fn a_sip_caller_hears_the_browser_as_early_media_before_any_answer() {
    let dir = test_dir("gateway_progress");
    let k =
        Kamailio::start(&dir, &KamailioOptions::new("example.test", &[("alice", "a-pw"), ("bob", "b-pw")])).unwrap();
    let bob = Baresip::start(
        &dir,
        &BaresipOptions {
            accounts: vec![k.baresip_account("bob", "b-pw", false)],
            play: None,
            record: true,
            limit: Duration::from_secs(60),
        },
    )
    .unwrap();
    bob.wait_registered(1, Duration::from_secs(10)).unwrap();
    let gw = Gateway::start(&dir, None, &[]).unwrap();
    let page = page(&dir, "alice", &gw);
    page.register(&k.aor("alice"), "a-pw", &k.proxy_uri("udp")).unwrap();
    page.wait_event("registered").unwrap();

    bob.command("dial", &k.aor("alice")).unwrap();
    page.wait_event("incomingcall").unwrap();
    let r = page.cmd("invoke", json!({ "fn": "earlyMedia" })).unwrap();
    assert!(r.get("error").is_none(), "{r}");
    bob.wait_event("call", "CALL_PROGRESS", Duration::from_secs(10)).unwrap();
    page.wait(|d| d["event"] == "pcstate" && d["state"] == "connected").unwrap();
    std::thread::sleep(Duration::from_millis(3000));
    // Declined without ever answering: what bob heard was early media.
    page.click("#decline").unwrap();
    let closed = bob.wait_event("call", "CALL_CLOSED", Duration::from_secs(10)).unwrap();
    assert!(closed.to_string().contains("486"), "declined with 486 after the early media: {closed}");
    let heard = bob.heard().unwrap();
    let share = heard.slice(0.5, heard.seconds()).tone_share(660.0);
    assert!(
        share > 0.5,
        "bob should hear the page's 660 Hz before any answer: share {share:.3}, {} s",
        heard.seconds()
    );
}
