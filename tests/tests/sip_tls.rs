//! SIP over TLS as a client: the server certificate is verified against
//! the configured CA, else the system roots; an untrusted one fails with an
//! error that says so, and other requests of the same user agent go on.

use e2e::certs::{self_signed_cert, self_signed_cert_for_name};
use e2e::process::test_dir;
use signaling::{Caller, Config, Listen, TlsSettings, Transport, UserAgent};

async fn user_agent(listen: &[Transport], tls: Option<TlsSettings>) -> UserAgent {
    let any = "127.0.0.1:0".parse().unwrap();
    let listen = listen.iter().map(|t| Listen { transport: *t, addr: any }).collect();
    UserAgent::start(Config { listen, tls, ..Config::default() }).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_server_certificate_is_a_clear_error_and_nothing_else_breaks() {
    let dir = test_dir("sip_tls_verify");
    let (server_cert, server_key, other_cert) =
        (dir.join("server.pem"), dir.join("server-key.pem"), dir.join("other.pem"));
    self_signed_cert(&server_cert, &server_key).unwrap();
    self_signed_cert(&other_cert, &dir.join("other-key.pem")).unwrap();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();

    let server = user_agent(
        &[Transport::Udp, Transport::Tls],
        Some(TlsSettings { cert_pem: Some(read(&server_cert)), key_pem: Some(read(&server_key)), ca_pem: None }),
    )
    .await;
    let tls_addr = server.local_addr(Transport::Tls).unwrap();
    // rsipstack starts serving its TLS listener after start() returns.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::TcpStream::connect(tls_addr).is_err() {
        assert!(std::time::Instant::now() < until, "the TLS listener at {tls_addr} never accepted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let tls_target = format!("sip:bob@127.0.0.1:{};transport=tls", tls_addr.port());
    let udp_target = format!("sip:bob@127.0.0.1:{}", server.local_addr(Transport::Udp).unwrap().port());
    let guest = Caller::Guest { uri: "sip:alice@127.0.0.1".into(), display_name: None };

    // Trusting another certificate: refused, and the error names the cause.
    let wrong_ca = TlsSettings { ca_pem: Some(read(&other_cert)), ..Default::default() };
    let client = user_agent(&[Transport::Udp], Some(wrong_ca)).await;
    let err = client.options(&guest, &tls_target).await.unwrap_err();
    assert!(err.to_string().contains("invalid peer certificate"), "{err}");
    // The same user agent's other requests are untouched.
    client.options(&guest, &udp_target).await.unwrap();

    // No CA configured: the system roots, which do not hold a self-signed one.
    let system = user_agent(&[Transport::Udp], None).await;
    let err = system.options(&guest, &tls_target).await.unwrap_err();
    assert!(err.to_string().contains("invalid peer certificate"), "{err}");

    // The right CA: accepted.
    let trusting = TlsSettings { ca_pem: Some(read(&server_cert)), ..Default::default() };
    user_agent(&[Transport::Udp], Some(trusting)).await.options(&guest, &tls_target).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certificate_must_carry_the_host_name_the_uri_gave() {
    let dir = test_dir("sip_tls_name");
    let (cert, key) = (dir.join("localhost.pem"), dir.join("localhost-key.pem"));
    self_signed_cert_for_name(&cert, &key, "localhost").unwrap();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let server = user_agent(
        &[Transport::Udp, Transport::Tls],
        Some(TlsSettings { cert_pem: Some(read(&cert)), key_pem: Some(read(&key)), ca_pem: None }),
    )
    .await;
    let port = server.local_addr(Transport::Tls).unwrap().port();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < until, "the TLS listener on port {port} never accepted");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let guest = Caller::Guest { uri: "sip:alice@127.0.0.1".into(), display_name: None };
    let client =
        user_agent(&[Transport::Udp], Some(TlsSettings { ca_pem: Some(read(&cert)), ..Default::default() })).await;

    // Dialled by address: the certificate does not name 127.0.0.1.
    let err = client.options(&guest, &format!("sip:bob@127.0.0.1:{port};transport=tls")).await.unwrap_err();
    assert!(err.to_string().contains("certificate not valid for name \"127.0.0.1\""), "{err}");
    // Dialled by name, located at 127.0.0.1: the certificate names it (the
    // connection is then reused for the address too, rsipstack keys by address).
    client.options(&guest, &format!("sip:bob@localhost:{port};transport=tls")).await.unwrap();
}
