//! The registrar over real sockets, driven by a minimal client written
//! here (the independent user agents are in `e2e_register.rs`): UDP and TCP
//! framing, digest with MD5 and SHA-256, OPTIONS, unknown methods, the
//! registrations API, and the lockout.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::TestServer;
use pbx_bridge::sip::auth::{Challenge, answer_challenge};
use pbx_bridge::sip::message::{SipMessage, parse};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

struct Phone {
    socket: UdpSocket,
    server: SocketAddr,
    cseq: u32,
}

impl Phone {
    async fn new(server: SocketAddr) -> Self {
        Self {
            socket: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            server,
            cseq: 0,
        }
    }

    fn port(&self) -> u16 {
        self.socket.local_addr().unwrap().port()
    }

    async fn send(&mut self, text: String) -> Option<SipMessage> {
        self.socket
            .send_to(text.as_bytes(), self.server)
            .await
            .unwrap();
        self.recv().await
    }

    async fn recv(&self) -> Option<SipMessage> {
        let mut buf = vec![0u8; 65535];
        loop {
            let n = tokio::time::timeout(Duration::from_secs(3), self.socket.recv(&mut buf))
                .await
                .ok()?
                .ok()?;
            let msg = parse(Bytes::copy_from_slice(&buf[..n])).expect("a parsable answer");
            if msg.status() != Some(100) {
                return Some(msg);
            }
        }
    }

    fn register_text(&mut self, user: &str, expires: u32, auth: Option<String>) -> String {
        self.cseq += 1;
        let port = self.port();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:{port};rport;branch=z9hG4bK-t{port}-{cseq}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@127.0.0.1>;tag=ph{port}\r\n\
             To: <sip:{user}@127.0.0.1>\r\n\
             Call-ID: reg-{port}@test\r\n\
             CSeq: {cseq} REGISTER\r\n\
             Contact: <sip:{user}@127.0.0.1:{port}>\r\n\
             Expires: {expires}\r\n\
             User-Agent: pbx-bridge-test-phone\r\n\
             {auth}Content-Length: 0\r\n\r\n",
            cseq = self.cseq
        )
    }

    /// REGISTER, answer the first challenge, return the final response.
    async fn register(&mut self, user: &str, password: &str, expires: u32) -> SipMessage {
        let text = self.register_text(user, expires, None);
        let first = self.send(text).await.expect("a 401");
        assert_eq!(first.status(), Some(401));
        let challenge = Challenge::parse(
            std::str::from_utf8(first.header("WWW-Authenticate").unwrap()).unwrap(),
        )
        .unwrap();
        let creds = answer_challenge(
            &challenge,
            "REGISTER",
            "sip:127.0.0.1",
            user,
            password,
            "abc",
            1,
        )
        .unwrap();
        let text = self.register_text(user, expires, Some(creds.to_string()));
        self.send(text).await.expect("a final response")
    }
}

async fn extension(srv: &TestServer, number: &str, algorithms: serde_json::Value) {
    srv.create(
        "/extensions",
        json!({"number": number, "secret": "right-secret", "digest_algorithms": algorithms}),
    )
    .await;
}

both!(
    register_right_wrong_and_unregister,
    |srv: TestServer| async move {
        extension(&srv, "1001", json!(["SHA-256", "MD5"])).await;
        let mut phone = Phone::new(srv.sip).await;

        let wrong = phone.register("1001", "wrong-secret", 300).await;
        assert_eq!(wrong.status(), Some(403));
        let (_, regs) = srv.get("/registrations").await;
        assert_eq!(regs["items"], json!([]));

        let ok = phone.register("1001", "right-secret", 300).await;
        assert_eq!(ok.status(), Some(200));
        let (status, regs) = srv.get("/registrations").await;
        assert_eq!(status, StatusCode::OK);
        let item = &regs["items"][0];
        assert_eq!(item["extension"], "1001");
        assert_eq!(item["user_agent"], "pbx-bridge-test-phone");
        assert_eq!(item["source"], format!("127.0.0.1:{}", phone.port()));
        assert_eq!(item["transport"], "udp");

        let gone = phone.register("1001", "right-secret", 0).await;
        assert_eq!(gone.status(), Some(200));
        let (_, regs) = srv.get("/registrations").await;
        assert_eq!(regs["items"], json!([]));
    }
);

both!(
    options_and_unknown_methods_are_answered,
    |srv: TestServer| async move {
        // Keep the whole server alive: the block would otherwise capture
        // only `srv.sip` and drop the server (stopping it) at once.
        let srv = srv;
        let mut phone = Phone::new(srv.sip).await;
        let port = phone.port();
        let options = phone
        .send(format!(
            "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKopt1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:ping@127.0.0.1>;tag=a\r\nTo: <sip:127.0.0.1>\r\n\
             Call-ID: opt1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        ))
        .await;
        let options = options.expect("OPTIONS is answered");
        assert_eq!(options.status(), Some(200));
        assert!(options.header("Allow").is_some());
        let unknown = phone
        .send(format!(
            "FROBNICATE sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKfrob\r\n\
             Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=a\r\nTo: <sip:127.0.0.1>\r\n\
             Call-ID: frob1\r\nCSeq: 1 FROBNICATE\r\nContent-Length: 0\r\n\r\n"
        ))
        .await
        .unwrap();
        assert_eq!(unknown.status(), Some(501));
        let garbage = phone.send("\u{1}\u{2}garbage\r\n\r\n".to_owned()).await;
        assert!(garbage.is_none(), "garbage gets no answer");
    }
);

both!(
    repeated_failures_lock_the_address_out,
    |srv: TestServer| async move {
        extension(&srv, "1002", json!(["MD5"])).await;
        let mut phone = Phone::new(srv.sip).await;
        for _ in 0..5 {
            assert_eq!(
                phone.register("1002", "guess", 300).await.status(),
                Some(403)
            );
        }
        // Locked: refused at once, no challenge, even with no credentials.
        let text = phone.register_text("1002", 300, None);
        let locked = phone.send(text).await.unwrap();
        assert_eq!(locked.status(), Some(403));
        let (_, regs) = srv.get("/registrations").await;
        let lock = &regs["lockouts"][0];
        assert_eq!(lock["address"], "127.0.0.1");
        assert!(
            lock["reason"].as_str().unwrap().contains("wrong password"),
            "{lock}"
        );
    }
);

both!(register_over_tcp_is_framed, |srv: TestServer| async move {
    extension(&srv, "1003", json!(["MD5"])).await;
    let mut stream = TcpStream::connect(srv.sip).await.unwrap();
    let local = stream.local_addr().unwrap();
    let request = |cseq: u32, auth: &str| {
        format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/TCP {local};branch=z9hG4bK-tcp-{cseq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:1003@127.0.0.1>;tag=t\r\nTo: <sip:1003@127.0.0.1>\r\n\
             Call-ID: tcp-reg\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1003@{local};transport=tcp>\r\n\
             {auth}Content-Length: 0\r\n\r\n"
        )
    };
    // A keep-alive first, then the request split across two writes.
    stream.write_all(b"\r\n\r\n").await.unwrap();
    let text = request(1, "");
    let (a, b) = text.split_at(40);
    stream.write_all(a.as_bytes()).await.unwrap();
    stream.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stream.write_all(b.as_bytes()).await.unwrap();
    let first = read_response(&mut stream).await;
    assert_eq!(first.status(), Some(401));
    let challenge =
        Challenge::parse(std::str::from_utf8(first.header("WWW-Authenticate").unwrap()).unwrap())
            .unwrap();
    let creds = answer_challenge(
        &challenge,
        "REGISTER",
        "sip:127.0.0.1",
        "1003",
        "right-secret",
        "x",
        1,
    )
    .unwrap();
    stream
        .write_all(request(2, &format!("Authorization: {creds}\r\n")).as_bytes())
        .await
        .unwrap();
    let ok = read_response(&mut stream).await;
    assert_eq!(ok.status(), Some(200));
    let (_, regs) = srv.get("/registrations").await;
    assert_eq!(regs["items"][0]["transport"], "tcp");
});

async fn read_response(stream: &mut TcpStream) -> SipMessage {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Skip the CRLF pong and any 100 Trying.
        while buf.starts_with(b"\r\n") {
            buf.drain(..2);
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let msg = parse(Bytes::copy_from_slice(&buf[..end + 4])).unwrap();
            buf.drain(..end + 4);
            if msg.status() != Some(100) {
                return msg;
            }
            continue;
        }
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn options_text(port: u16, n: u32) -> String {
    format!(
        "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKacl{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:ping@127.0.0.1>;tag=a{n}\r\nTo: <sip:127.0.0.1>\r\n\
         Call-ID: acl{n}\r\nCSeq: {n} OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

both!(
    sip_acl_rules_drop_packets_but_not_the_api,
    |srv: TestServer| async move {
        let mut phone = Phone::new(srv.sip).await;
        let port = phone.port();
        assert_eq!(
            phone.send(options_text(port, 1)).await.unwrap().status(),
            Some(200)
        );
        let rule = srv
            .create(
                "/acl",
                json!({"cidr": "127.0.0.0/8", "action": "deny", "applies_to": "sip"}),
            )
            .await;
        assert!(
            phone.send(options_text(port, 2)).await.is_none(),
            "denied source gets silence"
        );
        let (status, _) = srv.get("/extensions").await;
        assert_eq!(status, StatusCode::OK, "a sip rule does not block the API");
        assert_eq!(
            srv.delete(&format!("/acl/{rule}")).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            phone.send(options_text(port, 3)).await.unwrap().status(),
            Some(200)
        );
    }
);

both!(
    responses_carry_received_and_rport,
    |srv: TestServer| async move {
        let srv = srv;
        let mut phone = Phone::new(srv.sip).await;
        let port = phone.port();
        // The phone believes it is 10.0.0.7 (behind NAT) and asks for rport.
        let text = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5060;rport;branch=z9hG4bKnat1\r\n\
         Max-Forwards: 70\r\nFrom: <sip:nat@127.0.0.1>;tag=n\r\nTo: <sip:127.0.0.1>\r\n\
         Call-ID: nat1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n".to_owned();
        let answer = phone
            .send(text)
            .await
            .expect("answered at the source address");
        let via = answer.top_via().unwrap();
        assert_eq!(via.received.as_deref(), Some("127.0.0.1"));
        assert_eq!(via.rport, Some(Some(port)));
    }
);
